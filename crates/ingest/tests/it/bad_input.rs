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

#[test]
fn a_line_over_the_limit_is_quarantined_as_an_excerpt_and_the_rest_is_read() {
    let long = "x".repeat(5_000);
    let data = format!(
        "{HEADER}u1,i1,1600000000,view,,\nu2,{long},1600000001,view,,\nu3,i3,1600000002,view,,\n"
    );
    let out = ingest_bytes(cfg("max_line_bytes = 1000"), data.as_bytes());
    assert_eq!(out.report.accepted, 2);
    assert_eq!(reasons(&out), r(&[("line_too_long", 1)]));
    let q = &out.quarantine[0];
    assert_eq!(q.line, 3);
    assert_eq!(q.raw.len(), 256);
    assert!(q.raw.starts_with("u2,xxx"), "{}", q.raw);
    assert!(q.detail.contains("5021 bytes"), "{}", q.detail);
    // Rows after it keep their true line numbers.
    let users: Vec<&str> = out.events.iter().map(|e| e.user.as_str()).collect();
    assert_eq!(users, ["u1", "u3"]);
}

#[test]
fn a_header_over_the_line_limit_is_a_clear_error() {
    let tmp = Tmp::new();
    let p = tmp.file(
        "h.csv",
        format!("{}\nu,i,1,view,,\n", "h".repeat(3000)).as_bytes(),
    );
    let err = Ingestor::new(cfg("max_line_bytes = 1000"))
        .ingest(&p, None)
        .unwrap_err();
    assert!(err.to_string().contains("header line"), "{err}");
}

#[test]
fn a_gzip_bomb_is_a_clear_error_not_a_memory_blowup() {
    let tmp = Tmp::new();
    // 80 MiB of zeros after a header: over 1000:1, past the 64 MiB grace.
    let mut body = HEADER.as_bytes().to_vec();
    body.resize(body.len() + (80 << 20), 0);
    let p = tmp.gz("bomb.csv.gz", &body);
    let err = Ingestor::new(cfg("")).ingest(&p, None).unwrap_err();
    assert!(matches!(err, IngestError::Read { .. }), "{err}");
    assert!(err.to_string().contains("compression bomb"), "{err}");
    // With the check off, the zeros are one over-long line, quarantined.
    let out = Ingestor::new(cfg("max_decompression_ratio = 0"))
        .ingest(&p, None)
        .unwrap();
    assert_eq!(reasons(&out), r(&[("line_too_long", 1)]));
}

#[test]
fn ids_with_control_characters_are_quarantined_as_bad_id() {
    let data = format!(
        "{HEADER}u1,i1,1600000000,view,,\n\"u\t2\",i1,1600000001,view,,\nu3,\"i\u{0}3\",1600000002,view,,\n{},i1,1600000003,view,,\n",
        "u".repeat(300)
    );
    let out = ingest_bytes(cfg(""), data.as_bytes());
    assert_eq!(out.report.accepted, 1);
    assert_eq!(reasons(&out), r(&[("bad_id", 3)]));
}

#[test]
fn times_before_1970_or_after_2100_are_bad_even_when_the_config_allows_them() {
    let data =
        format!("{HEADER}u1,i1,-100,view,,\nu1,i2,4200000000,view,,\nu1,i3,1600000000,view,,\n");
    let mut c = cfg("min_time = \"1900-01-01\"\nfuture_slack_s = 9000000000");
    c.cleaning.future_slack_s = 9_000_000_000;
    let out = ingest_bytes(c, data.as_bytes());
    assert_eq!(out.report.accepted, 1);
    assert_eq!(reasons(&out), r(&[("bad_timestamp", 2)]));
}

#[test]
fn a_quarantine_sink_takes_the_rows_and_the_report_still_counts_them() {
    let tmp = Tmp::new();
    let data = format!("{HEADER}u1,i1,1600000000,view,,\nu2,i2\nu3,i3,nope,view,,\n");
    let p = tmp.file("e.csv", data.as_bytes());
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s2 = seen.clone();
    let out = Ingestor::new(cfg(""))
        .with_now(1_800_000_000)
        .with_quarantine_sink(move |row| s2.borrow_mut().push((row.line, row.reason.as_str())))
        .ingest(&p, None)
        .unwrap();
    assert!(out.quarantine.is_empty());
    assert_eq!(out.report.quarantined, 2);
    assert_eq!(
        reasons(&out),
        r(&[("bad_timestamp", 1), ("wrong_column_count", 1)])
    );
    assert!(out.report.balanced());
    assert_eq!(
        *seen.borrow(),
        [(3, "wrong_column_count"), (4, "bad_timestamp")]
    );
}

#[test]
fn an_unclosed_quote_over_the_line_limit_is_a_clear_error_not_a_huge_record() {
    let tmp = Tmp::new();
    let mut data = format!("{HEADER}u1,i1,1600000000,view,,\nu2,\"i2,1600000001,view,,\n");
    // Past the limit plus a reader's read-ahead (1 MiB).
    for i in 0..60_000 {
        data.push_str(&format!("u{i},i{i},1600000002,view,,\n"));
    }
    let p = tmp.file("q.csv", data.as_bytes());
    // Under the limit the swallowed rows are one quarantined record...
    let out = Ingestor::new(cfg("")).ingest(&p, None).unwrap();
    assert_eq!(reasons(&out), r(&[("wrong_column_count", 1)]));
    // ...over it, the record is refused instead of buffered whole.
    let err = Ingestor::new(cfg("max_line_bytes = 100"))
        .ingest(&p, None)
        .unwrap_err();
    assert!(err.to_string().contains("unclosed quote"), "{err}");
}
