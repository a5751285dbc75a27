//! A store in PostgreSQL through the CLI (`scripts/start-postgres.sh` starts
//! the server the tests use): a directory store copied into it with nothing
//! lost, read back by `stats`, and its password kept out of the output.

use aisle_store::pg::ScratchDb;

use crate::{json, ok};

#[test]
fn a_directory_store_copies_into_postgres_with_nothing_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = tmp.path().join("store");
    ok(&[
        "demo-data",
        "--out",
        data.to_str().unwrap(),
        "--users",
        "200",
        "--items",
        "100",
    ]);
    ok(&[
        "ingest",
        "--preset",
        "demo",
        "--input",
        data.join("events.csv").to_str().unwrap(),
        "--catalog",
        data.join("catalog.csv").to_str().unwrap(),
        "--store",
        dir.to_str().unwrap(),
    ]);
    // A list a server showed there, and its click.
    {
        use aisle_store::online::{Impression, OnlineLog, Shown};
        let mut log = OnlineLog::open(&dir.join("online.db")).unwrap();
        log.log_impressions(&[Impression {
            rid: 77,
            ts_ms: 1_800_000_000_000,
            user: Some("u1".into()),
            session: None,
            surface: "recommendations".into(),
            experiment: None,
            arm: None,
            model: "pop@live".into(),
            query: None,
            items: vec![Shown {
                item: "P10001".into(),
                score: 1.0,
                propensity: None,
                team: None,
            }],
            events_seq: Some(5),
        }])
        .unwrap();
    }
    // Two retraining jobs a server ran there.
    std::fs::create_dir_all(dir.join(aisle_store::copy::JOBS_DIR)).unwrap();
    std::fs::write(
        aisle_store::copy::jobs_file(&dir),
        "{\"id\":1,\"status\":\"failed\"}\n{\"id\":2,\"status\":\"succeeded\"}\n",
    )
    .unwrap();
    let db = ScratchDb::new();
    let out = ok(&[
        "store",
        "copy",
        "--from",
        dir.to_str().unwrap(),
        "--to",
        &db.url,
    ]);
    assert!(out.contains("equal: nothing lost, nothing added"), "{out}");
    // The URL is printed with its password hidden.
    assert!(out.contains(":***@"), "{out}");
    assert!(!out.contains("aisle:aisle@"), "{out}");
    let src = json(&ok(&["stats", "--store", dir.to_str().unwrap(), "--json"]));
    let dst = json(&ok(&["stats", "--store", &db.url, "--json"]));
    for k in [
        "events",
        "users",
        "items",
        "catalog_items",
        "events_by_type",
        "dataset",
        "time_from",
        "time_to",
    ] {
        assert_eq!(src[k], dst[k], "{k}");
    }
    assert!(src["events"].as_u64().unwrap() > 1000);
    // Again: nothing new, the digests still equal.
    let r = json(&ok(&[
        "store",
        "copy",
        "--from",
        dir.to_str().unwrap(),
        "--to",
        &db.url,
        "--json",
    ]));
    assert_eq!(r["inserted"], 0);
    assert_eq!(r["already_present"], src["events"]);
    assert_eq!(r["source"], r["target"]);
    // The online log went along: one list of one item.
    assert_eq!(
        r["online_log"]["source"],
        serde_json::json!([1, 1, 0, 0]),
        "{r}"
    );
    assert_eq!(r["online_log"]["source"], r["online_log"]["target"], "{r}");
    assert!(out.contains("online log: 1 lists (1 items shown)"), "{out}");
    // The jobs' history went along once, and the ingest's report.
    assert!(out.contains("jobs 2 (2 new to the target)"), "{out}");
    assert!(
        out.contains("ingest reports 1 (1 new to the target)"),
        "{out}"
    );
    assert_eq!(r["jobs"], serde_json::json!({"jobs": 2, "added": 0}), "{r}");
    assert_eq!(r["ingests"]["reports"], 1, "{r}");
    assert_eq!(r["ingests"]["reports_added"], 0, "{r}");
    let jobs = aisle_store::pg::PgJobs::open(&db.url).unwrap();
    assert_eq!(
        jobs.latest(10).unwrap(),
        [
            "{\"id\":1,\"status\":\"failed\"}",
            "{\"id\":2,\"status\":\"succeeded\"}"
        ]
    );
}

#[test]
fn an_ingest_into_postgres_keeps_its_report_and_quarantine_in_the_database_and_a_copy_carries_them()
{
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.csv");
    std::fs::write(
        &events,
        "user_id,item_id,event_type,timestamp,quantity,price,session_id\n\
         u1,P1,view,2025-06-01T00:06:59Z,,,s1\n\
         u-bad,P2,teleport,2025-06-01T00:07:00Z,,,s1\n",
    )
    .unwrap();
    let db = ScratchDb::new();
    let dir = aisle_store::files_dir(&db.url).unwrap();
    ok(&[
        "ingest",
        "--preset",
        "demo",
        "--input",
        events.to_str().unwrap(),
        "--store",
        &db.url,
    ]);
    // In the database, not in this machine's folder of it.
    let log = aisle_store::IngestLog::open(&db.url).unwrap().unwrap();
    let reports = log.recent_reports(10).unwrap();
    let batches = log.quarantine_batches(10, 10).unwrap();
    let on_disk = ["reports", "quarantine"].map(|sub| dir.join(sub).exists());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(on_disk, [false, false]);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].json.contains("\"quarantined\": 1"),
        "{}",
        reports[0].json
    );
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(
        batches[0].by_reason,
        [("unknown_event_type".to_string(), 1)]
    );
    assert!(batches[0].samples[0].contains("u-bad"), "{batches:?}");
    // A copy into a folder store carries both, as files.
    let to = tmp.path().join("copy");
    let out = ok(&[
        "store",
        "copy",
        "--from",
        &db.url,
        "--to",
        to.to_str().unwrap(),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["ingests"]["reports_added"], 1, "{r}");
    assert_eq!(r["ingests"]["quarantined_added"], 1, "{r}");
    let copied = aisle_store::IngestLog::in_folder(to.clone());
    assert_eq!(copied.quarantine_batches(10, 10).unwrap(), batches);
    assert_eq!(copied.recent_reports(10).unwrap(), reports);
}
