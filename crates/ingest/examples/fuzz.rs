//! A bounded fuzz loop over the readers (CSV, TSV, JSONL, sequence lines),
//! the client event parser and the dataset config, without a nightly
//! toolchain: seeded random inputs — valid rows mutated byte by byte, spliced
//! together, or random bytes with delimiters, quotes, NULs, invalid UTF-8 and
//! long runs — fed in batches; every batch runs under `catch_unwind` and also
//! checks the report adds up (`rows_read == accepted + quarantined`).
//!
//! ```sh
//! cargo run --release -p aisle-ingest --example fuzz -- [INPUTS] [SEED]
//! ```
//! Prints one JSON line: inputs per target, panics, unbalanced reports, seconds.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use aisle_core::rng::Rng;
use aisle_ingest::{DatasetConfig, Ingestor};

/// Rows of one file: a file of many rows is one ingest (reading a file per
/// row would measure the file system, not the parser).
const ROWS_PER_FILE: usize = 20_000;

const JSONL: &str = r#"
name = "fuzz-jsonl"
format = "jsonl"
[fields]
user = "user_id"
item = "item_id"
event_type = "type"
time = "ts"
time_format = "unix"
price = "price"
quantity = "qty"
session = "session"
"#;

struct Target {
    name: &'static str,
    cfg: DatasetConfig,
    header: Option<&'static str>,
    seeds: &'static [&'static str],
}

fn targets() -> Vec<Target> {
    let preset = |n| DatasetConfig::preset(n).expect("preset");
    vec![
        Target {
            name: "csv_online_retail",
            cfg: preset("online-retail"),
            header: Some("invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country,event_type"),
            seeds: &[
                "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom,purchase",
                "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom,purchase",
                "536370,22728,\"ALARM CLOCK, \"\"BAKELIKE\"\" PINK\",24,2010-12-01 08:45:00,3.75,12583,France,purchase",
            ],
        },
        Target {
            name: "csv_demo_all_rules",
            cfg: preset("demo"),
            header: Some("event_id,user_id,item_id,event_type,timestamp,price,quantity,session_id"),
            seeds: &[
                "e1,u00001,P10001,view,2024-03-01 10:00:00,12.5,1,s1",
                "e2,u00001,P10002,purchase,2024-03-01 10:05:00,3.99,2,s1",
                "e3,u00002,P10001,add_to_cart,2024-03-02 11:00:00,,,",
            ],
        },
        Target {
            name: "tsv_ml100k",
            cfg: preset("ml-100k"),
            header: None,
            seeds: &["196\t242\t3\t881250949", "186\t302\t3\t891717742", "22\t377\t1\t878887116"],
        },
        Target {
            name: "jsonl",
            cfg: DatasetConfig::from_toml(JSONL).expect("jsonl config"),
            header: None,
            seeds: &[
                r#"{"user_id":"u1","item_id":"P1","type":"view","ts":1700000000}"#,
                r#"{"user_id":7,"item_id":"P2","type":"purchase","ts":"1700000100","price":2.5,"qty":3,"session":"s1"}"#,
                r#"{"user_id":"u2","item_id":"P3","type":"add_to_cart","ts":1700000200.5}"#,
            ],
        },
        Target {
            name: "seqlines_amazon",
            cfg: preset("amazon-5core-seq"),
            header: None,
            seeds: &["1 2 3 4 5", "17 4 4 9", "3 1"],
        },
    ]
}

/// One fuzzed row (no newline inside unless `allow_newline`).
fn row(rng: &mut Rng, seeds: &[&str], delims: &[u8]) -> Vec<u8> {
    let mut r: Vec<u8> = match (seeds.is_empty(), rng.below(10)) {
        (false, 0..=6) => rng.pick(seeds).as_bytes().to_vec(),
        (false, 7) => {
            // Splice two seeds.
            let a = rng.pick(seeds).as_bytes();
            let b = rng.pick(seeds).as_bytes();
            let (i, j) = (
                rng.below(a.len() as u64 + 1) as usize,
                rng.below(b.len() as u64 + 1) as usize,
            );
            [&a[..i], &b[j..]].concat()
        }
        _ => {
            let n = rng.below(80) as usize;
            (0..n).map(|_| interesting_byte(rng, delims)).collect()
        }
    };
    // Mutations.
    for _ in 0..rng.below(6) {
        if r.is_empty() {
            r.push(interesting_byte(rng, delims));
            continue;
        }
        let i = rng.below(r.len() as u64) as usize;
        match rng.below(8) {
            0 => r[i] = interesting_byte(rng, delims),
            1 => {
                r.remove(i);
            }
            2 => r.insert(i, interesting_byte(rng, delims)),
            3 => r.truncate(i),
            4 => {
                // A long run (long fields, huge numbers).
                let b = interesting_byte(rng, delims);
                let n = [10usize, 300, 70_000][rng.below(3) as usize];
                r.splice(i..i, std::iter::repeat_n(b, n));
            }
            5 => {
                const NUMS: [&[u8]; 10] = [
                    b"-9223372036854775808",
                    b"1e309",
                    b"NaN",
                    b"-0",
                    b"99999999999999999999999",
                    b"0x1F",
                    b"",
                    b"\xff\xfe",
                    b"1970-01-01T00:00:00Z",
                    b"9999-12-31 23:59:59",
                ];
                let num: &[u8] = NUMS[rng.below(NUMS.len() as u64) as usize];
                r.splice(i..i, num.iter().copied());
            }
            6 => r[i] = r[i].wrapping_add(rng.below(3) as u8).wrapping_sub(1),
            _ => {
                let j = rng.below(r.len() as u64) as usize;
                r.swap(i, j);
            }
        }
    }
    r.retain(|&b| b != b'\n');
    r
}

fn interesting_byte(rng: &mut Rng, delims: &[u8]) -> u8 {
    match rng.below(6) {
        0 => *rng.pick(delims),
        1 => *rng.pick(&[b'"', b'\\', b'{', b'}', b'[', b']', b':', b'\r', 0u8, b' ']),
        2 => rng.below(256) as u8,
        _ => *rng.pick(b"abcxyzAZ0123456789-._"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(42);
    let mut rng = Rng::seed(seed);
    let dir = std::env::temp_dir().join(format!("aisle-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let targets = targets();
    let t0 = Instant::now();
    // Silence the default panic message; panics are counted.
    std::panic::set_hook(Box::new(|_| {}));
    let mut done = 0u64;
    let mut panics = 0u64;
    let mut unbalanced = 0u64;
    let mut per_target = vec![0u64; targets.len() + 2];
    // 80% of the inputs go to the readers, 15% to the event parser, 5% to
    // the dataset config.
    let readers = total * 80 / 100;
    let events = total * 15 / 100;
    let configs = total - readers - events;
    let mut file_no = 0;
    while done < readers {
        let ti = file_no % targets.len();
        let t = &targets[ti];
        file_no += 1;
        let delims: &[u8] = match t.cfg.format {
            aisle_ingest::Format::Tsv => b"\t",
            aisle_ingest::Format::Seqlines => b" ",
            _ => b",",
        };
        let n = ROWS_PER_FILE.min((readers - done) as usize).max(1);
        let path = dir.join(format!("f{file_no}.txt"));
        let mut text = Vec::with_capacity(n * 64);
        if let Some(h) = t.header {
            text.extend_from_slice(h.as_bytes());
            text.push(b'\n');
        }
        for _ in 0..n {
            text.extend(row(&mut rng, t.seeds, delims));
            text.push(if rng.chance(0.01) { b'\r' } else { b'\n' });
        }
        // Sometimes gzip it (a corrupt tail is an error, never a panic).
        let gz = rng.chance(0.2);
        let bytes = if gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&text).expect("gzip");
            let mut b = e.finish().expect("gzip");
            if rng.chance(0.3) {
                let cut = rng.below(b.len() as u64) as usize;
                b.truncate(cut.max(1));
            }
            b
        } else {
            text
        };
        std::fs::write(&path, &bytes).expect("write input");
        let cfg = t.cfg.clone();
        let r = catch_unwind(AssertUnwindSafe(|| {
            Ingestor::new(cfg)
                .with_quarantine_sink(|_| {})
                .ingest_into(&path, None, &mut |_| true)
        }));
        match r {
            Err(_) => {
                panics += 1;
                let keep = dir.join(format!("panic-{}-{file_no}.txt", t.name));
                let _ = std::fs::copy(&path, &keep);
                eprintln!("PANIC in {}: input kept at {}", t.name, keep.display());
            }
            Ok(Ok(out)) if !out.report.balanced() => unbalanced += 1,
            Ok(_) => {}
        }
        let _ = std::fs::remove_file(&path);
        done += n as u64;
        per_target[ti] += n as u64;
    }
    // The client event parser (POST /v1/events, aisle append).
    let event_seeds = [
        r#"{"user_id":"u1","item_id":"P1","type":"view"}"#,
        r#"{"user_id":17850,"item_id":"85123A","type":"purchase","timestamp":"2010-12-01T08:26:00Z","quantity":6,"price":2.55,"event_id":"e1","session_id":"s"}"#,
        r#"{"user_id":"u","item_id":"i","event_type":"add_to_cart","timestamp":1700000000}"#,
    ];
    for k in 0..events {
        let raw = row(&mut rng, &event_seeds, b",:\"");
        let r = catch_unwind(AssertUnwindSafe(|| {
            if let Ok(e) = serde_json::from_slice::<aisle_ingest::api::ApiEvent>(&raw) {
                let _ = aisle_ingest::api::to_event(e, &raw, 1_700_000_000, k, 7);
            }
        }));
        if r.is_err() {
            panics += 1;
            eprintln!(
                "PANIC in the event parser: {:?}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
    per_target[targets.len()] = events;
    // Dataset configs: presets mutated line by line.
    let presets: Vec<&str> = aisle_ingest::config::preset_names()
        .into_iter()
        .map(|n| aisle_ingest::config::preset_toml(n).expect("preset"))
        .collect();
    for _ in 0..configs {
        let lines: Vec<&str> = rng.pick(&presets).lines().collect();
        let mut text: Vec<u8> = Vec::new();
        for l in &lines {
            if rng.chance(0.1) {
                text.extend(row(&mut rng, &[l], b"=\"[],"));
            } else if !rng.chance(0.05) {
                text.extend_from_slice(l.as_bytes());
            }
            text.push(b'\n');
        }
        let s = String::from_utf8_lossy(&text).into_owned();
        if catch_unwind(AssertUnwindSafe(|| {
            DatasetConfig::from_toml(&s).map(|c| c.validate())
        }))
        .is_err()
        {
            panics += 1;
            eprintln!("PANIC in the config parser: {s:?}");
        }
    }
    per_target[targets.len() + 1] = configs;
    let _ = std::fs::remove_dir_all(&dir);
    let mut names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    names.extend(["event_json", "dataset_config"]);
    let by: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&per_target)
        .map(|(n, c)| (n.to_string(), serde_json::json!(c)))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "inputs": done + events + configs,
            "seed": seed,
            "by_target": by,
            "panics": panics,
            "unbalanced_reports": unbalanced,
            "seconds": t0.elapsed().as_secs_f64(),
        })
    );
    if panics > 0 || unbalanced > 0 {
        std::process::exit(1);
    }
}
