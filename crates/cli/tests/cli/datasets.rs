//! The real datasets: presets, reports, stats, and the canonical sequences
//! of shared/baselines/PROTOCOL.md reproduced byte for byte.

use std::io::Read;

use crate::{baselines_dir, data_dir, json, ok};

fn canonical(name: &str) -> Vec<u8> {
    let path = baselines_dir()
        .join("sequences")
        .join(format!("{name}.tsv.gz"));
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut v).unwrap();
    v
}

fn ingest_and_split(preset: &str, file: &str, name: &str) -> (serde_json::Value, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let report = tmp.path().join("report.json");
    let input = data_dir().join(file);
    ok(&[
        "ingest",
        "--preset",
        preset,
        "--input",
        input.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let rep = json(&std::fs::read_to_string(&report).unwrap());
    let out = tmp.path().join("split");
    ok(&[
        "split",
        "--store",
        store.to_str().unwrap(),
        "--protocol",
        "loo",
        "--out",
        out.to_str().unwrap(),
    ]);
    let seqs = std::fs::read(out.join("sequences.tsv")).unwrap();
    let summary = json(&std::fs::read_to_string(out.join("split.json")).unwrap());
    assert_eq!(summary["split"]["kind"], "leave_one_out");
    assert_eq!(
        seqs,
        canonical(name),
        "{name}: sequences differ from the canonical file"
    );
    (rep, seqs)
}

fn check_report(rep: &serde_json::Value, rows: u64) {
    let read = rep["rows_read"].as_u64().unwrap();
    let acc = rep["accepted"].as_u64().unwrap();
    let q = rep["quarantined"].as_u64().unwrap();
    assert_eq!(read, rows);
    assert_eq!(read, acc + q);
    let by: u64 = rep["by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by, q);
}

#[test]
fn online_retail_matches_the_protocol() {
    let (rep, seqs) = ingest_and_split(
        "online-retail",
        "online-retail/transactions.csv.gz",
        "retail",
    );
    check_report(&rep, 541_909);
    // SOURCE.md: 135,080 rows without a customer; cancellations kept as their own type.
    assert_eq!(rep["by_reason"]["missing_user"], 135_080);
    assert_eq!(rep["accepted_by_type"]["purchase"], 397_924);
    assert!(rep["accepted_by_type"]["cancel"].as_u64().unwrap() > 8_000);
    assert_eq!(rep["catalog_items"], 4_070);
    assert_eq!(String::from_utf8(seqs).unwrap().lines().count(), 4_201);
}

#[test]
fn ml1m_matches_the_protocol() {
    let (rep, _) = ingest_and_split("ml-1m", "ml-1m/interactions.csv.gz", "ml1m");
    check_report(&rep, 1_000_209);
    assert_eq!(rep["quarantined"], 0);
    assert_eq!(rep["users"], 6_040);
    assert_eq!(rep["items"], 3_706);
}

#[test]
fn taobao_matches_the_protocol_and_reingest_adds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let input = data_dir().join("taobao-userbehavior-head/events.csv.gz");
    let args = [
        "ingest",
        "--preset",
        "taobao-userbehavior-head",
        "--input",
        input.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--json",
    ];
    let first = json(&ok(&args));
    assert_eq!(first["store"]["inserted"], 84_287);
    let second = json(&ok(&args));
    assert_eq!(second["store"]["inserted"], 0);
    assert_eq!(second["store"]["already_present"], 84_287);
    let stats = json(&ok(&[
        "stats",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(stats["users"], 814);
    assert_eq!(stats["items"], 55_233);
    assert_eq!(stats["events"], 84_287);
    let by = &stats["events_by_type"];
    assert_eq!(
        (
            by["view"].as_u64(),
            by["add_to_cart"].as_u64(),
            by["favorite"].as_u64(),
            by["purchase"].as_u64()
        ),
        (Some(75_693), Some(4_494), Some(2_351), Some(1_749))
    );
    assert_eq!(stats["time_kind"], "unix");
    let out = tmp.path().join("split");
    ok(&[
        "split",
        "--store",
        store.to_str().unwrap(),
        "--protocol",
        "loo",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(out.join("sequences.tsv")).unwrap(),
        canonical("taobao")
    );
    // A temporal split partitions every interaction.
    let out = tmp.path().join("temporal");
    let s = json(&ok(&[
        "split",
        "--store",
        store.to_str().unwrap(),
        "--protocol",
        "temporal",
        "--out",
        out.to_str().unwrap(),
        "--test-fraction",
        "0.2",
    ]));
    let (tr, te) = (
        s["split"]["train_interactions"].as_u64().unwrap(),
        s["split"]["test_interactions"].as_u64().unwrap(),
    );
    assert_eq!(tr + te, 84_287);
    assert!(te > 15_000 && te < 19_000, "{te}");
}

#[test]
fn beauty_matches_the_protocol() {
    let (rep, _) = ingest_and_split(
        "amazon-5core-seq",
        "amazon-5core-seq/Beauty.txt.gz",
        "beauty",
    );
    check_report(&rep, 198_502);
    assert_eq!(rep["users"], 22_363);
    assert_eq!(rep["items"], 12_101);
}

#[test]
fn ml100k_and_diginetica_presets_ingest_cleanly() {
    for (preset, file, rows) in [
        ("ml-100k", "ml-100k/u.data.gz", 100_000),
        (
            "diginetica-sample",
            "diginetica-sample/train-item-views-sample.csv.gz",
            12_391,
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let input = data_dir().join(file);
        let rep = json(&ok(&[
            "ingest",
            "--preset",
            preset,
            "--input",
            input.to_str().unwrap(),
            "--store",
            tmp.path().to_str().unwrap(),
            "--json",
        ]));
        check_report(&rep, rows);
        assert_eq!(rep["accepted"], rows);
    }
}

#[test]
fn extra_cleaning_flags_change_retail_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let input = data_dir().join("online-retail/transactions.csv.gz");
    let rep = json(&ok(&[
        "ingest",
        "--preset",
        "online-retail",
        "--input",
        input.to_str().unwrap(),
        "--store",
        tmp.path().to_str().unwrap(),
        "--json",
        "--dedupe",
        "--drop-non-products",
        "--kcore",
        "5",
    ]));
    check_report(&rep, 541_909);
    for reason in ["exact_duplicate", "non_product", "kcore"] {
        assert!(
            rep["by_reason"][reason].as_u64().unwrap_or(0) > 0,
            "{reason}: {}",
            rep["by_reason"]
        );
    }
}
