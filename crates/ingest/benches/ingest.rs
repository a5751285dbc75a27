//! Parse + validate throughput (no store). Uses Online Retail from
//! ../shared/data when present, else a generated file of the same shape.
//! `cargo bench -p aisle-ingest`

use std::path::PathBuf;

use aisle_ingest::{DatasetConfig, Ingestor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn retail() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/online-retail/transactions.csv.gz");
    p.exists().then_some(p)
}

fn synthetic(dir: &std::path::Path) -> PathBuf {
    let mut s = String::from("invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country,event_type\n");
    let mut rng = aisle_core::rng::Rng::seed(3);
    for i in 0..200_000u64 {
        let cust = if rng.chance(0.25) {
            String::new()
        } else {
            (12_000 + rng.below(4_000)).to_string()
        };
        s.push_str(&format!(
            "{},{},\"ITEM {}, RED\",{},2011-0{}-1{} 10:{:02}:00,{:.2},{},United Kingdom,purchase\n",
            536_000 + i / 20,
            20_000 + rng.below(4_000),
            rng.below(4_000),
            1 + rng.below(12),
            1 + rng.below(9),
            rng.below(9),
            rng.below(60),
            rng.f64() * 10.0,
            cust
        ));
    }
    let p = dir.join("synthetic.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (name, path) = match retail() {
        Some(p) => ("online_retail_gz", p),
        None => ("synthetic_retail_csv", synthetic(tmp.path())),
    };
    let cfg = DatasetConfig::preset("online-retail").unwrap();
    let rows = Ingestor::new(cfg.clone())
        .ingest_into(&path, None, &mut |_| true)
        .unwrap()
        .report
        .rows_read;
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows));
    g.bench_function(format!("parse_validate/{name}"), |b| {
        b.iter(|| {
            Ingestor::new(cfg.clone())
                .ingest_into(&path, None, &mut |_| true)
                .unwrap()
                .report
                .accepted
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
