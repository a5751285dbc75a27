//! Sentence-encoder throughput on a file of texts (one per line):
//! `cargo run --release -p aisle-embed --example throughput -- titles.txt`
//! (RAYON_NUM_THREADS sets the threads). Prints one JSON line: texts, seconds,
//! texts per second (median of 3 passes after a warm-up pass).

fn main() {
    let path = std::env::args().nth(1).expect("a file of texts");
    let text = std::fs::read_to_string(&path).expect("read texts");
    let texts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let e = aisle_embed::Embedder::load(&aisle_embed::default_dir()).expect("embedder");
    e.embed(&texts[..texts.len().min(64)]).expect("warm-up");
    let mut secs = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let v = e.embed(&texts).expect("embed");
        assert_eq!(v.len(), texts.len());
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    let s = secs[1];
    println!(
        "{{\"engine\":\"aisle\",\"texts\":{},\"seconds\":{s:.4},\"texts_per_s\":{:.1}}}",
        texts.len(),
        texts.len() as f64 / s
    );
}
