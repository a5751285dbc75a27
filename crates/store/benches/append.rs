//! Durable append throughput into the SQLite store: 50k-event batches into a
//! fresh store, with and without bulk mode. `cargo bench -p aisle-store`

use aisle_core::rng::Rng;
use aisle_core::{Event, EventType};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn events(n: usize) -> Vec<Event> {
    let mut rng = Rng::seed(1);
    (0..n)
        .map(|i| Event {
            key: rng.next_u64(),
            user: (12_000 + rng.below(4_372)).to_string(),
            item: (20_000 + rng.below(3_684)).to_string(),
            ts: 1_291_191_960 + i as i64 * 10,
            event_type: EventType::Purchase,
            source_type: "purchase".into(),
            quantity: Some(6.0),
            price: Some(2.55),
            session: Some((536_365 + i / 20).to_string()),
            value: None,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let evs = events(100_000);
    let mut g = c.benchmark_group("store_append");
    g.sample_size(10);
    g.throughput(Throughput::Elements(evs.len() as u64));
    for bulk in [false, true] {
        g.bench_function(
            if bulk {
                "bulk_100k"
            } else {
                "incremental_100k"
            },
            |b| {
                b.iter_batched(
                    || {
                        let dir = tempfile::tempdir().unwrap();
                        let store = aisle_store::open(dir.path().to_str().unwrap()).unwrap();
                        (dir, store)
                    },
                    |(dir, mut store)| {
                        if bulk {
                            store.begin_bulk().unwrap();
                        }
                        for c in evs.chunks(50_000) {
                            store.append(c).unwrap();
                        }
                        store.end_bulk().unwrap();
                        drop(store);
                        dir
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
