//! Malformed files and configs: a clear error or a counted quarantine, never a panic.

use aisle_ingest::{DatasetConfig, IngestError, Ingestor, Reason};

use crate::{cfg, ingest_bytes, r, reasons, Tmp};

const HEADER: &str = "user,item,ts,type,qty,price\n";

#[test]
fn wrong_column_count_is_quarantined_with_the_raw_row() {
    let data = format!(
        "{HEADER}u1,i1,1600000000,view,,\nu2,i2,1600000001\nu3,i3,1600000002,view,,,extra\n"
    );
    let out = ingest_bytes(cfg(""), data.as_bytes());
    assert_eq!(reasons(&out), r(&[("wrong_column_count", 2)]));
    assert_eq!(out.quarantine[0].line, 3);
    assert_eq!(out.quarantine[0].raw, "u2,i2,1600000001");
    assert_eq!(out.quarantine[1].raw, "u3,i3,1600000002,view,,,extra");
}

#[test]
fn broken_quotes_swallow_rows_into_one_quarantined_record() {
    // An unclosed quote runs to the end of the file: the reader sees one long
    // record, which is quarantined with all the text it swallowed.
    let data = format!(
        "{HEADER}u1,i1,1600000000,view,,\nu2,\"i2,1600000001,view,,\nu3,i3,1600000002,view,,\n"
    );
    let out = ingest_bytes(cfg(""), data.as_bytes());
    assert_eq!(out.report.accepted, 1);
    assert_eq!(reasons(&out), r(&[("wrong_column_count", 1)]));
    assert!(
        out.quarantine[0].raw.contains("u3"),
        "{:?}",
        out.quarantine[0]
    );
}

#[test]
fn invalid_utf8_is_quarantined_with_exact_bytes() {
    let mut data = HEADER.as_bytes().to_vec();
    data.extend_from_slice(b"u1,i1,1600000000,view,,\nu\xff\xfe2,i2,1600000001,view,,\n");
    let out = ingest_bytes(cfg(""), &data);
    assert_eq!(reasons(&out), r(&[("invalid_utf8", 1)]));
    let q = &out.quarantine[0];
    assert_eq!(q.reason, Reason::InvalidUtf8);
    let hex = q.raw_hex.as_deref().unwrap();
    assert!(hex.starts_with("75fffe32"), "{hex}");
}

#[test]
fn huge_fields_are_quarantined() {
    let big = "x".repeat(70_000);
    let data = format!("{HEADER}u1,i1,1600000000,view,,\nu2,{big},1600000001,view,,\n");
    let out = ingest_bytes(cfg(""), data.as_bytes());
    assert_eq!(reasons(&out), r(&[("field_too_large", 1)]));
    // Nothing lost: the quarantine keeps the whole row.
    assert!(out.quarantine[0].raw.len() > 70_000);
}

#[test]
fn empty_file_is_an_error_and_header_only_is_zero_rows() {
    let tmp = Tmp::new();
    let empty = tmp.file("empty.csv", b"");
    let err = Ingestor::new(cfg("")).ingest(&empty, None).unwrap_err();
    assert!(matches!(err, IngestError::EmptyInput { .. }), "{err}");
    assert!(err.to_string().contains("empty"));
    let header_only = tmp.file("h.csv", HEADER.as_bytes());
    let out = Ingestor::new(cfg("")).ingest(&header_only, None).unwrap();
    assert_eq!(out.report.rows_read, 0);
    assert!(out.report.balanced());
}

#[test]
fn missing_file_and_directory_are_errors() {
    let tmp = Tmp::new();
    let err = Ingestor::new(cfg(""))
        .ingest(&tmp.0.path().join("nope.csv"), None)
        .unwrap_err();
    assert!(matches!(err, IngestError::Open { .. }));
    assert!(err.to_string().contains("nope.csv"), "{err}");
    let err = Ingestor::new(cfg(""))
        .ingest(tmp.0.path(), None)
        .unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
}

#[test]
fn a_header_without_a_configured_column_names_both() {
    let out = Tmp::new();
    let p = out.file("e.csv", b"user,item,when,type,qty,price\nu1,i1,1,view,,\n");
    let err = Ingestor::new(cfg("")).ingest(&p, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`ts`") && msg.contains("when"), "{msg}");
}

#[test]
fn truncated_gzip_is_a_clear_error() {
    let tmp = Tmp::new();
    let mut body = HEADER.to_string();
    for i in 0..20_000 {
        body.push_str(&format!("u{i},i{},{},view,,\n", i % 97, 1_600_000_000 + i));
    }
    let p = tmp.gz("e.csv.gz", body.as_bytes());
    let bytes = std::fs::read(&p).unwrap();
    let cut = tmp.file("cut.csv.gz", &bytes[..bytes.len() / 2]);
    let err = Ingestor::new(cfg("")).ingest(&cut, None).unwrap_err();
    assert!(matches!(err, IngestError::Read { .. }), "{err}");
    // The whole file works.
    let out = Ingestor::new(cfg(""))
        .with_now(1_800_000_000)
        .ingest(&p, None)
        .unwrap();
    assert_eq!(out.report.accepted, 20_000);
}

#[test]
fn unknown_preset_and_unknown_config_keys() {
    let err = DatasetConfig::preset("no-such-shop")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-shop") && err.contains("online-retail"),
        "{err}"
    );
    let err = DatasetConfig::from_toml(&format!("{}\n[cleaning]\ndedupe = true\n", crate::CSV_CFG))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dedupe"), "{err}");
    let err = DatasetConfig::from_toml("name = \"x\"\nformat = \"xml\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("xml"), "{err}");
}

#[test]
fn garbage_bytes_never_panic() {
    // A cheap fuzz: random bytes with commas, quotes and newlines.
    let mut rng = aisle_core::rng::Rng::seed(99);
    let alphabet = b"ab,\"\n\r\t1 \xff\x00view";
    for _ in 0..200 {
        let len = rng.below(400) as usize;
        let mut data = HEADER.as_bytes().to_vec();
        data.extend((0..len).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]));
        let _ = ingest_bytes(cfg(""), &data);
    }
}
