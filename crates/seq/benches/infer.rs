//! Inference latency: top-10 for one user from a 50-event history, the call
//! serving makes after each new event (one thread: `RAYON_NUM_THREADS=1`).
//! Targets (issue 4): < 2 ms with 3,706 items, < 10 ms with 100k items.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p aisle-seq --bench infer`

use aisle_seq::{Arch, SeqConfig, SeqModel};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn top10(c: &mut Criterion) {
    let mut g = c.benchmark_group("top10_from_50_events");
    for arch in Arch::ALL {
        for items in [3_706usize, 100_000] {
            let model = SeqModel::init(arch, SeqConfig::for_arch(arch), items, None);
            let history: Vec<u32> = (0..50u32).map(|k| (k * 7919) % items as u32).collect();
            g.bench_with_input(BenchmarkId::new(arch.name(), items), &history, |b, h| {
                b.iter(|| model.recommend(h, 10, |_| false))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, top10);
criterion_main!(benches);
