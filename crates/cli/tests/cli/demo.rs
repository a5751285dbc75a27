//! The demo shop: generated, ingested, and its planted dirt caught.

use crate::{json, ok};

#[test]
fn demo_runs_end_to_end_and_catches_the_planted_dirt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let out = ok(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--users",
        "300",
        "--items",
        "200",
        "--train-seconds",
        "3",
        "--no-serve",
    ]);
    assert!(out.contains("every row accounted for"), "{out}");
    let rep = json(&std::fs::read_to_string(dir.join("quality-report.json")).unwrap());
    assert_eq!(
        rep["rows_read"].as_u64().unwrap(),
        rep["accepted"].as_u64().unwrap() + rep["quarantined"].as_u64().unwrap()
    );
    // Planted counts are printed by demo-data; each kind of dirt is caught
    // under its reason (natural repeats can add to the duplicate reasons).
    let planted = |kind: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("planted {kind}: ")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no planted {kind} in {out}"))
    };
    let by = &rep["by_reason"];
    let caught = |r: &str| by[r].as_u64().unwrap_or(0);
    assert_eq!(caught("missing_user"), planted("missing_user"));
    assert_eq!(caught("unknown_item"), planted("unknown_item"));
    assert_eq!(caught("unknown_event_type"), planted("unknown_event_type"));
    assert_eq!(caught("wrong_column_count"), planted("wrong_column_count"));
    assert_eq!(caught("bad_timestamp"), planted("bad_timestamp"));
    assert_eq!(
        caught("non_positive_quantity"),
        planted("negative_quantity")
    );
    assert_eq!(caught("non_product"), planted("non_product_fee"));
    assert!(caught("exact_duplicate") >= planted("exact_duplicate"));
    assert!(caught("bot_user") + caught("consecutive_duplicate") >= planted("bot_user_event"));
    assert!(caught("bot_user") >= 390);
    // Running it again is idempotent.
    let again = ok(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--users",
        "300",
        "--items",
        "200",
        "--train-seconds",
        "3",
        "--no-serve",
    ]);
    assert!(again.contains(" 0 new events"), "{again}");
    // The store keeps each ingest's report, for the console's data page.
    let store = dir.join("store");
    let reports: Vec<_> = std::fs::read_dir(store.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("ingest-") && n.ends_with(".json"))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    // The evaluation the models page shows: pop, itemknn and ease.
    let bench = json(&std::fs::read_to_string(store.join("evaluation/bench.json")).unwrap());
    let mut models: Vec<&str> = bench["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    models.sort();
    assert_eq!(models, ["ease", "itemknn", "pop"]);
    // The trained SASRec keeps its training curve, one point per epoch.
    let list = json(&ok(&[
        "models",
        "list",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]));
    let curve = list[0]["meta"]["curve"].as_array().unwrap().clone();
    assert!(!curve.is_empty(), "{list}");
    assert_eq!(curve[0]["epoch"], 1);
    assert!(curve.iter().all(|e| e["loss"].as_f64().unwrap() > 0.0));
}

#[test]
fn presets_are_listed_and_printable_as_valid_configs() {
    let list = ok(&["presets"]);
    for p in [
        "online-retail",
        "taobao-userbehavior-head",
        "amazon-5core-seq",
        "ml-1m",
        "ml-100k",
        "diginetica-sample",
        "demo",
    ] {
        assert!(list.contains(p), "{p} missing from {list}");
        let toml = ok(&["presets", "--show", p]);
        aisle_ingest_check(&toml);
    }
}

fn aisle_ingest_check(toml: &str) {
    assert!(
        toml.contains("[fields]") || toml.contains("seqlines"),
        "{toml}"
    );
}

#[test]
fn search_and_its_quality_benchmark_on_the_demo_shop() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::small_demo(&tmp.path().join("shop"));
    let st = store.to_str().unwrap();
    let out = json(&ok(&[
        "search", "--store", st, "--json", "--k", "5", "--mode", "keyword", "mug",
    ]));
    let results = out["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{out}");
    for r in results {
        assert!(
            r["title"].as_str().unwrap().to_lowercase().contains("mug"),
            "{r}"
        );
        assert_eq!(r["why"]["matched"][0], "mug");
    }
    assert!(out["took_ms"].is_number());
    // Personalized for a known user: the personal ranks are reported.
    let out = json(&ok(&[
        "search", "--store", st, "--json", "--user", "u00001", "mug",
    ]));
    assert!(
        out["query"]["personal"]
            .as_str()
            .unwrap()
            .starts_with("re-ranked"),
        "{out}"
    );
    // Semantic mode with the installed encoder.
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/all-MiniLM-L6-v2");
    let o = crate::aisle()
        .args([
            "search",
            "--store",
            st,
            "--json",
            "--mode",
            "semantic",
            "a cup for hot drinks",
        ])
        .env("AISLE_EMBEDDER_DIR", model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(out["query"]["mode"], "semantic", "{out}");
    let results = out["results"].as_array().unwrap();
    let cos: Vec<f64> = results
        .iter()
        .map(|r| r["why"]["semantic"]["cosine"].as_f64().unwrap())
        .collect();
    assert!(
        cos[0] > 0.3 && cos.windows(2).all(|w| w[0] >= w[1]),
        "{out}"
    );
    // No query word is in these titles; the meaning brings mugs and teas.
    let mugs = results[..5]
        .iter()
        .filter(|r| r["title"].as_str().unwrap().to_lowercase().contains("mug"))
        .count();
    assert!(mugs >= 1, "{out}");
    // An empty query is refused.
    let (code, _, err) = crate::run(&["search", "--store", st, "  "]);
    assert_ne!(code, 0);
    assert!(err.contains("empty"), "{err}");
    // The quality benchmark runs and reports every mode on the test split.
    let rep = json(&ok(&[
        "bench-search",
        "--store",
        st,
        "--json",
        "--weights",
        "1,16",
    ]));
    let t = &rep["test"];
    for m in ["keyword_expected_over_ties", "keyword_as_served"] {
        let n = t[m]["ndcg10"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&n), "{rep}");
    }
    assert!(
        t["keyword_personal"]["metrics"]["queries"]
            .as_u64()
            .unwrap()
            > 200,
        "{rep}"
    );
    assert!([1.0, 16.0].contains(&t["keyword_personal"]["weight"].as_f64().unwrap()));
}

/// A server with the HNSW graph on (every catalog size) answers semantic
/// queries like the exact scan, stores the graph, and a catalog change
/// through the API reaches semantic results at once.
#[test]
fn semantic_search_through_the_hnsw_graph() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::small_demo(&tmp.path().join("shop"));
    let st = store.to_str().unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/all-MiniLM-L6-v2");
    let q = "a cup for hot drinks";
    // The exact scan (200 items: below the default graph threshold).
    let o = crate::aisle()
        .args([
            "search", "--store", st, "--json", "--mode", "semantic", "--k", "10", q,
        ])
        .env("AISLE_EMBEDDER_DIR", model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let exact = json(&String::from_utf8_lossy(&o.stdout));
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["item_id"].as_str().unwrap().to_string())
            .collect()
    };
    // `aisle index` builds the vectors and the graph ahead of serving.
    let o = crate::aisle()
        .args(["index", "--store", st, "--ann-min-items", "1", "--json"])
        .env("AISLE_EMBEDDER_DIR", model)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(summary["semantic"]["graph"], true, "{summary}");
    assert!(
        summary["semantic"]["vectors"].as_u64().unwrap() >= 100,
        "{summary}"
    );
    assert!(store.join("search/hnsw.bin").exists());
    let (mut server, addr) = crate::start_server(
        st,
        &["--ann-min-items", "1"],
        &[("AISLE_EMBEDDER_DIR", model)],
    );
    let path = "/v1/search?q=a%20cup%20for%20hot%20drinks&mode=semantic&k=10";
    let (code, body) = crate::http(&addr, "GET", path, "").unwrap();
    assert_eq!(code, 200, "{body}");
    let ann = json(&body);
    let (e, a) = (ids(&exact), ids(&ann));
    let overlap = e.iter().filter(|x| a.contains(x)).count();
    assert!(overlap >= 9, "exact {e:?} vs graph {a:?}");
    assert!(store.join("search/hnsw.bin").exists());
    // A new product joins the graph at once.
    let (code, body) = crate::http(
        &addr,
        "PUT",
        "/v1/items/NEWCUP",
        r#"{"title":"Insulated cup for hot drinks","category":"kitchen","price":9.5,"in_stock":true}"#,
    )
    .unwrap();
    assert!(code < 300, "{code} {body}");
    let (_, body) = crate::http(&addr, "GET", path, "").unwrap();
    assert_eq!(ids(&json(&body))[0], "NEWCUP", "{body}");
    server.kill().unwrap();
    server.wait().unwrap();
}
