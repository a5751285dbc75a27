//! Appends N synthetic retail-like events to a fresh store and prints the
//! time per stage: `cargo run --release -p aisle-store --example bulk_load -- 406829`.
use std::time::Instant;

use aisle_core::rng::Rng;
use aisle_core::{Event, EventType};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(406_829);
    let bulk = std::env::var("BULK").map(|v| v != "0").unwrap_or(true);
    let dir = std::env::temp_dir().join(format!("aisle-bulk-{}", std::process::id()));
    let mut rng = Rng::seed(1);
    let events: Vec<Event> = (0..n)
        .map(|i| Event {
            key: rng.next_u64(),
            user: format!("{}", 12_000 + rng.below(4_372)),
            item: format!("{}", 20_000 + rng.below(3_684)),
            ts: 1_291_191_960 + i as i64 * 10,
            event_type: EventType::Purchase,
            source_type: "purchase".into(),
            quantity: Some(6.0),
            price: Some(2.55),
            session: Some(format!("{}", 536_365 + i / 20)),
            value: None,
        })
        .collect();
    tracing_subscriber::fmt().with_env_filter("debug").init();
    let mut store = aisle_store::open(dir.to_str().unwrap()).unwrap();
    let t = Instant::now();
    if bulk {
        store.begin_bulk().unwrap();
    }
    for c in events.chunks(50_000) {
        store.append(c).unwrap();
    }
    let appended = t.elapsed();
    store.end_bulk().unwrap();
    let total = t.elapsed();
    println!(
        "{n} events: append {:.3} s, total {:.3} s ({:.0} events/s) bulk={bulk}",
        appended.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    std::fs::remove_dir_all(dir).ok();
}
