//! Bad input at the command line: a clear error and exit status 2, never a panic.

use crate::run;

fn fails_with(args: &[&str], needle: &str) {
    let (code, _, err) = run(args);
    assert_eq!(code, 2, "expected failure for {args:?}, stderr: {err}");
    assert!(
        err.contains(needle),
        "stderr for {args:?} lacks {needle:?}: {err}"
    );
}

#[test]
fn ingest_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let store = store.to_str().unwrap();
    fails_with(
        &[
            "ingest", "--preset", "shopify", "--input", "x.csv", "--store", store,
        ],
        "unknown preset `shopify`",
    );
    fails_with(
        &[
            "ingest",
            "--preset",
            "ml-1m",
            "--input",
            "/nonexistent/file.csv",
            "--store",
            store,
        ],
        "/nonexistent/file.csv",
    );
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    fails_with(
        &[
            "ingest",
            "--preset",
            "ml-1m",
            "--input",
            empty.to_str().unwrap(),
            "--store",
            store,
        ],
        "empty",
    );
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "name = \"x\"\nformat = \"csv\"\ncolour = \"red\"\n[fields]\nuser = \"u\"\nitem = \"i\"\n",
    )
    .unwrap();
    fails_with(
        &[
            "ingest",
            "--config",
            cfg.to_str().unwrap(),
            "--input",
            empty.to_str().unwrap(),
            "--store",
            store,
        ],
        "colour",
    );
    fails_with(
        &[
            "ingest",
            "--preset",
            "ml-1m",
            "--input",
            empty.to_str().unwrap(),
            "--store",
            "postgres://aisle:pw@127.0.0.1:1/aisle",
        ],
        "cannot reach the store at postgres://aisle:***@127.0.0.1:1/aisle",
    );
}

#[test]
fn a_file_with_bad_rows_still_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("e.csv");
    std::fs::write(
        &input,
        "user_id,movie_id,position\n1,10,0\n1,,1\nx\n2,5,zero\n",
    )
    .unwrap();
    let store = tmp.path().join("s");
    let report = tmp.path().join("r.json");
    let (code, out, err) = run(&[
        "ingest",
        "--preset",
        "ml-1m",
        "--input",
        input.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("every row accounted for"), "{out}");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        (
            rep["rows_read"].as_u64(),
            rep["accepted"].as_u64(),
            rep["quarantined"].as_u64()
        ),
        (Some(4), Some(1), Some(3))
    );
    // The quarantined rows are on disk, one JSON object per line, with reasons.
    let qfile = rep["store"]["quarantine_file"].as_str().unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(qfile)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = lines
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["missing_item", "wrong_column_count", "bad_timestamp"]
    );
    assert_eq!(lines[1]["raw"], "x");
}

#[test]
fn stats_and_split_on_a_missing_store() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("none");
    fails_with(
        &["stats", "--store", missing.to_str().unwrap()],
        "does not exist",
    );
    fails_with(
        &[
            "split",
            "--store",
            missing.to_str().unwrap(),
            "--protocol",
            "loo",
            "--out",
            tmp.path().to_str().unwrap(),
        ],
        "does not exist",
    );
}

#[test]
fn temporal_split_of_order_only_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("e.csv");
    std::fs::write(&input, "user_id,movie_id,position\n1,10,0\n1,11,1\n").unwrap();
    let store = tmp.path().join("s");
    crate::ok(&[
        "ingest",
        "--preset",
        "ml-1m",
        "--input",
        input.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    fails_with(
        &[
            "split",
            "--store",
            store.to_str().unwrap(),
            "--protocol",
            "temporal",
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ],
        "order only",
    );
}

/// Output piped into a reader that stops early (`aisle presets | head -0`)
/// ends quietly, without a panic message.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let mut child = crate::aisle()
        .args(["presets"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
