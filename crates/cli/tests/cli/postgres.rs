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
}

#[test]
fn an_ingest_into_postgres_keeps_its_report_and_quarantine_in_a_folder_of_that_database() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.csv");
    std::fs::write(
        &events,
        "user_id,item_id,event_type,timestamp,quantity,price,session_id\n\
         u1,P1,view,2025-06-01T00:06:59Z,,,s1\n\
         u-bad,P2,teleport,2025-06-01T00:07:00Z,,,s1\n",
    )
    .unwrap();
    let (db, other) = (ScratchDb::new(), ScratchDb::new());
    let dir = aisle_store::files_dir(&db.url).unwrap();
    assert_ne!(Some(&dir), aisle_store::files_dir(&other.url).as_ref());
    ok(&[
        "ingest",
        "--preset",
        "demo",
        "--input",
        events.to_str().unwrap(),
        "--store",
        &db.url,
    ]);
    let listed = |sub: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.join(sub))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let (reports, quarantine) = (listed("reports"), listed("quarantine"));
    let rows = quarantine
        .first()
        .map(|q| std::fs::read_to_string(q).unwrap())
        .unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        rows.contains("u-bad") && rows.lines().count() == 1,
        "{rows}"
    );
}
