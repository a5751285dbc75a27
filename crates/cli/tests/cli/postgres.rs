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
}
