//! Integration tests of aisle-ingest: one binary, a module per area.
//! Each test writes a small file, ingests it with a config and checks where
//! every row went through the `check` helpers.

mod bad_input;
mod formats;
mod rules;

use std::io::Write;
use std::path::PathBuf;

use aisle_ingest::{DatasetConfig, IngestOutput, Ingestor};

/// A temp dir that lives as long as the test.
pub struct Tmp(pub tempfile::TempDir);

impl Default for Tmp {
    fn default() -> Self {
        Tmp(tempfile::tempdir().unwrap())
    }
}

impl Tmp {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    pub fn gz(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
        p
    }
}

/// A minimal CSV config with all optional rules off.
pub const CSV_CFG: &str = r#"
name = "t"
format = "csv"
[fields]
user = "user"
item = "item"
time = "ts"
time_format = "unix"
event_type = "type"
quantity = "qty"
price = "price"
"#;

pub fn cfg(extra: &str) -> DatasetConfig {
    // Extra TOML goes into [cleaning] unless it starts a table itself.
    let text = if extra.trim_start().starts_with('[') {
        format!("{CSV_CFG}\n{extra}")
    } else {
        format!("{CSV_CFG}\n[cleaning]\n{extra}")
    };
    DatasetConfig::from_toml(&text).unwrap()
}

pub fn ingest_bytes(cfg: DatasetConfig, bytes: &[u8]) -> IngestOutput {
    let tmp = Tmp::new();
    let p = tmp.file("events.csv", bytes);
    let out = Ingestor::new(cfg)
        .with_now(1_800_000_000)
        .ingest(&p, None)
        .unwrap();
    assert_balanced(&out);
    out
}

/// Every row in exactly one place, and the quarantine file agrees with the counts.
pub fn assert_balanced(out: &IngestOutput) {
    let r = &out.report;
    assert_eq!(r.rows_read, r.accepted + r.quarantined, "{r:#?}");
    assert_eq!(r.accepted as usize, out.events.len());
    let events_q = out
        .quarantine
        .iter()
        .filter(|q| q.file == aisle_ingest::SourceFile::Events)
        .count();
    assert_eq!(r.quarantined as usize, events_q);
    assert_eq!(r.by_reason.values().sum::<u64>(), r.quarantined);
    assert!(r.balanced());
}

/// Reason → count, as a sorted list of pairs, for compact assertions.
pub fn reasons(out: &IngestOutput) -> Vec<(String, u64)> {
    out.report
        .by_reason
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

pub fn r(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    v.sort();
    v
}
