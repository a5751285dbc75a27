//! What the impression log's thread spends on a group commit: 20 lists of
//! 10 items (what a server answering 1,000 recommendation requests a second
//! hands it every 20 ms) into a log that already holds 200,000, through the
//! writer's connection. `cargo bench -p aisle-store --bench online_write`

use aisle_core::rng::Rng;
use aisle_store::online::{Impression, OnlineLog, Shown};
use criterion::{criterion_group, criterion_main, Criterion};

const PREFILL: u64 = 200_000;
const GROUP: u64 = 20;
const USERS: u64 = 100_000;
const T0: i64 = 1_800_000_000_000;

/// Request ids as the server issues them: increasing with time.
fn rid(n: u64) -> u64 {
    if std::env::var_os("RANDOM_RIDS").is_some() {
        return aisle_core::hash::mix(n) >> 1;
    }
    ((T0 as u64 + n) << 20) | 0x3_5000
}

fn list(n: u64, rng: &mut Rng) -> Impression {
    Impression {
        rid: rid(n),
        ts_ms: T0 + n as i64,
        user: Some(format!("u{}", rng.below(USERS))),
        session: None,
        surface: "recommendations".into(),
        experiment: None,
        arm: None,
        model: "sasrec@v3".into(),
        query: None,
        events_seq: Some(n as i64),
        items: (0..10)
            .map(|_| Shown {
                item: format!("i{}", rng.below(5_000)),
                score: rng.below(1000) as f32 / 1000.0,
                propensity: None,
                team: None,
            })
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.db");
    let mut rng = Rng::seed(11);
    let mut n = 0u64;
    {
        let mut log = OnlineLog::open(&path).unwrap();
        while n < PREFILL {
            let imps: Vec<Impression> = (0..10_000)
                .map(|_| {
                    n += 1;
                    list(n, &mut rng)
                })
                .collect();
            log.log_impressions(&imps).unwrap();
        }
    }
    let mut log = OnlineLog::open_writer(&path).unwrap();
    let mut g = c.benchmark_group("online_write");
    g.throughput(criterion::Throughput::Elements(GROUP));
    g.bench_function("group_commit_20_lists", |b| {
        b.iter_batched(
            || {
                (0..GROUP)
                    .map(|_| {
                        n += 1;
                        list(n, &mut rng)
                    })
                    .collect::<Vec<_>>()
            },
            |imps| log.log_impressions(&imps).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
