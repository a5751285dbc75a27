//! Keyword search latency on a catalog CSV (item_id,title,description,category,price,in_stock),
//! e.g. the 100k-item demo shop: `aisle demo --dir /tmp/d --items 100000 --train-seconds 0 --no-serve`
//! then `cargo run --release -p aisle-search --example latency -- /tmp/d/data/catalog.csv`.
//! Prints the median and p99 per query form.

use std::time::Instant;

use aisle_core::CatalogItem;
use aisle_search::{Filters, KeywordIndex};

fn main() {
    let path = std::env::args().nth(1).expect("catalog.csv");
    let text = std::fs::read_to_string(&path).expect("read catalog");
    let mut items = Vec::new();
    for line in text.lines().skip(1) {
        // The demo catalog quotes only the description.
        let (head, rest) = line.split_once(",\"").unwrap_or((line, ""));
        let h: Vec<&str> = head.split(',').collect();
        let (desc, tail) = rest.split_once("\",").unwrap_or(("", ""));
        let t: Vec<&str> = tail.split(',').collect();
        items.push(CatalogItem {
            id: h[0].to_string(),
            title: Some(h[1].to_string()),
            description: Some(desc.to_string()),
            category: t.first().map(|s| s.to_string()),
            price: t.get(1).and_then(|p| p.parse().ok()),
            in_stock: t.get(2).is_none_or(|s| *s != "false"),
        });
    }
    let t = Instant::now();
    // A second argument: an on-disk index folder (built there when absent,
    // as the server does), else in RAM.
    let k = match std::env::args().nth(2) {
        Some(dir) => KeywordIndex::open(std::path::Path::new(&dir), &items).expect("index"),
        None => KeywordIndex::in_ram(&items).expect("index"),
    };
    println!(
        "{} items indexed in {:.2} s",
        items.len(),
        t.elapsed().as_secs_f64()
    );
    let queries = [
        "tea",
        "tea light",
        "red rustic candle",
        "lantrn",
        "mug",
        "polka dot bag",
    ];
    let none = Filters::default();
    // What the server passes: in-stock items only.
    let serving = Filters {
        in_stock_only: true,
        ..Filters::default()
    };
    let time = |name: &str, f: &dyn Fn(&str)| {
        let mut ms = Vec::new();
        for _ in 0..30 {
            for q in queries {
                let t = Instant::now();
                f(q);
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{name:<54} p50 {:>7.3} ms  p99 {:>7.3} ms",
            ms[ms.len() / 2],
            ms[ms.len() * 99 / 100]
        );
    };
    time("candidates, no facets, top 10", &|q| {
        k.search_no_facets(q, &none, 10).unwrap();
    });
    time("candidates, no facets, top 100", &|q| {
        k.search_no_facets(q, &none, 100).unwrap();
    });
    time("candidates + facets, top 100", &|q| {
        k.search(q, &none, 100).unwrap();
    });
    time("candidates + facets, top 100, in stock", &|q| {
        k.search(q, &serving, 100).unwrap();
    });
    time(
        "candidates + facets, top 100, 10 explained, in stock",
        &|q| {
            let r = k.search(q, &serving, 100).unwrap();
            for i in 0..r.candidates.len().min(10) {
                r.explain(i).unwrap();
            }
        },
    );
    // The HTTP load test's mix: 1-3 random words of its vocabulary, read
    // from the script itself (bench/load/search.lua, `local words = {...}`)
    // so the two cannot drift apart; 500 queries.
    let lua = include_str!("../../../bench/load/search.lua");
    let list = lua
        .split_once("local words = {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .expect("bench/load/search.lua declares `local words = {...}`")
        .0;
    let words: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    assert!(!words.is_empty(), "no words in bench/load/search.lua");
    let mut rng = aisle_core::rng::Rng::seed(42);
    let mix: Vec<String> = (0..500)
        .map(|_| {
            let n = 1 + rng.below(3);
            (0..n)
                .map(|_| *rng.pick(&words))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // MIX_REPEAT=N runs the mix N times (for a profiler).
    let repeat: usize = std::env::var("MIX_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut ms = Vec::new();
    for q in mix.iter().cycle().take(mix.len() * repeat) {
        let t = Instant::now();
        let r = k.search(q, &serving, 100).unwrap();
        for i in 0..r.candidates.len().min(10) {
            r.explain(i).unwrap();
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "{:<54} p50 {:>7.3} ms  p99 {:>7.3} ms",
        "random 1-3 words (load-test mix), as above",
        ms[ms.len() / 2],
        ms[ms.len() * 99 / 100]
    );
}
