//! ANN against exact search on stored item vectors (a server's
//! `STORE/search/vectors.bin`): build time, recall@10 and query latency.
//!
//! `cargo run --release -p aisle-search --example ann -- STORE/search/vectors.bin [QUERIES]`
//!
//! The last QUERIES rows (default 1,000) are held out as queries (items the
//! index does not contain); the rest are indexed. Recall@10 is tie-aware: a
//! returned item counts when its similarity is at least the exact 10th best
//! (catalogs have many identical texts, so ids alone would undercount).

use std::time::Instant;

use aisle_search::hnsw::HnswParams;
use aisle_search::{AnnIndex, ExactIndex, VectorIndex};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: ann VECTORS.bin [QUERIES]");
    let nq: usize = args.next().map_or(1000, |s| s.parse().expect("QUERIES"));
    let dim = 384;
    let all =
        ExactIndex::load(std::path::Path::new(&path), dim).expect("a vectors.bin of 384-d vectors");
    let n = all.rows() - nq;
    let v = all.vectors();
    let mut exact = ExactIndex::new(dim);
    for i in 0..n {
        exact.upsert(&format!("{i}"), 0, &v[i * dim..(i + 1) * dim]);
    }
    let queries: Vec<&[f32]> = (n..n + nq).map(|i| &v[i * dim..(i + 1) * dim]).collect();
    println!("{n} vectors indexed, {nq} held-out queries, dim {dim}");
    let mut ann = AnnIndex::exact_only(exact.clone());
    let t0 = Instant::now();
    ann.build_graph(HnswParams::default(), &|_| {});
    let build = t0.elapsed().as_secs_f64();
    println!("HNSW build (m 16, ef_construction 128, 1 thread): {build:.1} s");
    let truth: Vec<Vec<(String, f32)>> = queries
        .iter()
        .map(|q| exact.search(q, 10, &|_| true))
        .collect();
    let mut lat: Vec<f64> = Vec::new();
    for q in &queries {
        let t = Instant::now();
        std::hint::black_box(exact.search(q, 100, &|_| true));
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "exact top-100: p50 {:.3} ms, p99 {:.3} ms",
        pct(&mut lat.clone(), 0.5),
        pct(&mut lat, 0.99)
    );
    for ef in [100, 128, 256, 512] {
        ann.ef = ef;
        let (mut hit, mut lat) = (0usize, Vec::new());
        for (q, t) in queries.iter().zip(&truth) {
            let s = Instant::now();
            let got = ann.search(q, 100, &|_| true);
            lat.push(s.elapsed().as_secs_f64() * 1e3);
            let tenth = t.last().map_or(f32::NEG_INFINITY, |x| x.1);
            hit += got
                .iter()
                .take(10)
                .filter(|(_, s)| *s >= tenth - 1e-6)
                .count();
        }
        println!(
            "ef {ef}: recall@10 {:.4}, top-100 p50 {:.3} ms, p99 {:.3} ms",
            hit as f64 / (10 * nq) as f64,
            pct(&mut lat.clone(), 0.5),
            pct(&mut lat, 0.99)
        );
    }
}
