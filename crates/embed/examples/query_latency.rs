//! Latency of embedding one query at a time (what a search request without
//! a cache hit pays): `cargo run --release -p aisle-embed --example
//! query_latency -- [WORDS] [QUERIES]` prints p50/p99 in ms for queries of
//! WORDS (default 5) random words from a shop vocabulary.

fn main() {
    let mut a = std::env::args().skip(1);
    let words: usize = a.next().map_or(5, |s| s.parse().expect("WORDS"));
    let n: usize = a.next().map_or(200, |s| s.parse().expect("QUERIES"));
    let vocab = [
        "paper",
        "green",
        "cream",
        "blue",
        "rustic",
        "metal",
        "white",
        "cotton",
        "retro",
        "black",
        "ceramic",
        "botanical",
        "pink",
        "striped",
        "red",
        "polka",
        "dot",
        "vintage",
        "recycled",
        "modern",
        "heart",
        "wooden",
        "glass",
        "floral",
        "silver",
        "gold",
        "bamboo",
        "star",
        "linen",
        "enamel",
        "bag",
        "tea",
        "set",
        "card",
        "candle",
        "plates",
        "lunch",
        "doormat",
        "light",
        "mug",
        "lantern",
        "holder",
        "cushion",
        "gift",
        "box",
    ];
    let e = aisle_embed::Embedder::load(&aisle_embed::default_dir()).expect("embedder");
    let mut rng = aisle_core::rng::Rng::seed(7);
    let queries: Vec<String> = (0..n + 10)
        .map(|_| {
            (0..words)
                .map(|_| *rng.pick(&vocab))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // `embed_one` (what search uses: one thread) unless ALL_THREADS is set.
    let all = std::env::var_os("ALL_THREADS").is_some();
    let one = |q: &str| {
        if all {
            e.embed(&[q]).expect("embed").pop().unwrap_or_default()
        } else {
            e.embed_one(q).expect("embed")
        }
    };
    for q in &queries[..10] {
        one(q);
    }
    let mut ms: Vec<f64> = queries[10..]
        .iter()
        .map(|q| {
            let t = std::time::Instant::now();
            std::hint::black_box(one(q));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let p = |x: f64| ms[((ms.len() - 1) as f64 * x).round() as usize];
    println!(
        "{{\"words\":{words},\"queries\":{n},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        p(0.5),
        p(0.99),
        ms[ms.len() - 1]
    );
}
