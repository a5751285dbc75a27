//! Issue 20: a shop's own data. Reports that stay honest when most targets
//! are repeats, the config reference, keys that cannot act, output folders
//! that hold every file, and name lists from one registry.

use crate::{aisle, data_dir, json, run};

/// Online Retail: about 30% of test targets are items the user bought
/// before. Each row is split by target kind, the share is stated, the best
/// is picked per masking rule, and stderr warns that masked metrics are
/// degenerate here.
#[test]
fn a_repeat_heavy_shop_gets_split_metrics_a_best_per_rule_and_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let input = data_dir().join("online-retail/transactions.csv.gz");
    let (code, out, err) = run(&[
        "bench",
        "--preset",
        "online-retail",
        "--input",
        input.to_str().unwrap(),
        "--models",
        "pop,als,repeat",
        "--out",
        tmp.path().join("out").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rep = json(&out);
    let share = rep["seen_target_share"].as_f64().unwrap();
    assert!((0.2..0.5).contains(&share), "{share}");
    assert!(
        err.contains("warning: masked metrics are degenerate"),
        "{err}"
    );
    assert!(!rep["warnings"].as_array().unwrap().is_empty());
    for r in rep["results"].as_array().unwrap() {
        let (seen, new) = (&r["by_target"]["seen"], &r["by_target"]["new"]);
        assert_eq!(
            seen["users"].as_u64().unwrap() + new["users"].as_u64().unwrap(),
            r["users"].as_u64().unwrap(),
            "{r}"
        );
        // The row's NDCG@10 is the users' mean over both kinds.
        let mean = (seen["ndcg@10"].as_f64().unwrap() * seen["users"].as_f64().unwrap()
            + new["ndcg@10"].as_f64().unwrap() * new["users"].as_f64().unwrap())
            / r["users"].as_f64().unwrap();
        assert!((mean - r["ndcg@10"].as_f64().unwrap()).abs() < 1e-9, "{r}");
        assert!(new["recall@10"].as_f64().is_some());
    }
    // Masked ALS against unmasked repeat: never compared across rules.
    assert_eq!(rep["best_by_masking"]["on"], "als");
    assert_eq!(rep["best_by_masking"]["off"], "repeat");
    // With most masked hits coming from seen targets, the pick is the unmasked rule's.
    assert_eq!(rep["best_by_validation"], "repeat");
    let md = std::fs::read_to_string(tmp.path().join("out/leaderboard.md")).unwrap();
    assert!(
        md.contains("Best per masking rule") && md.contains("NDCG@10 seen"),
        "{md}"
    );
}

#[test]
fn presets_reference_prints_every_key_as_a_valid_config() {
    let (code, out, err) = run(&["presets", "--reference"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, aisle_ingest::config::REFERENCE);
    for key in [
        "time_offset_ms",
        "tie_order",
        "exclude",
        "kcore",
        "from_events",
    ] {
        assert!(out.contains(&format!("{key} = ")), "{key}");
    }
}

/// A key that cannot act in the combination given is refused, naming it.
#[test]
fn a_time_offset_on_order_only_data_is_refused_by_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    let text = aisle_ingest::config::preset_toml("ml-1m").unwrap().replace(
        "time_format = \"order\"",
        "time_format = \"order\"\ntime_offset_ms = \"add_to_cart_order\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let input = data_dir().join("ml-1m/interactions.csv.gz");
    let (code, _, err) = run(&[
        "ingest",
        "--config",
        cfg.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("time_offset_ms"), "{err}");
}

/// `bench --out DIR` puts the store under DIR too: nothing lands in the
/// folder the command runs in.
#[test]
fn bench_out_holds_every_file_it_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let out = tmp.path().join("out");
    let input = data_dir().join("ml-100k/u.data.gz");
    let o = aisle()
        .current_dir(&cwd)
        .args([
            "bench",
            "--preset",
            "ml-100k",
            "--input",
            input.to_str().unwrap(),
            "--models",
            "pop",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(out.join("store").is_dir() && out.join("bench.json").is_file());
}

/// An unknown name lists every model a run accepts, from one registry.
#[test]
fn an_unknown_model_lists_every_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::small_demo(tmp.path());
    let (code, _, err) = run(&[
        "bench",
        "--store",
        store.to_str().unwrap(),
        "--models",
        "gpt",
    ]);
    assert_ne!(code, 0);
    for name in [
        "pop",
        "als",
        "gat",
        "sasrec",
        "gru4rec",
        "lstm",
        "ranker",
        "two-stage",
    ] {
        assert!(err.contains(name), "{name} missing: {err}");
    }
}

/// Each row's peak memory is its model's alone: EASE (a dense item-item
/// matrix over a 4,895-item demo catalog) peaks far above popularity run
/// after it, because each model runs in a process of its own; in one
/// process the high-water mark is never reset (that hid earlier peaks from
/// `/usr/bin/time` too), so a later row carries the earlier peak.
#[test]
fn each_rows_peak_memory_is_its_models_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    crate::ok(&[
        "demo-data",
        "--out",
        data.to_str().unwrap(),
        "--users",
        "1500",
        "--items",
        "5000",
    ]);
    let (input, store, out_dir) = (
        data.join("events.csv"),
        tmp.path().join("store"),
        tmp.path().join("out"),
    );
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--preset",
            "demo",
            "--input",
            input.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--models",
            "ease,pop",
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let rep = json(&out);
        let peak = |m: &str| {
            rep["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["model"] == m)
                .unwrap()["peak_rss_mb"]
                .as_f64()
                .unwrap()
        };
        (peak("ease"), peak("pop"))
    };
    let (ease, pop) = bench(&[]);
    assert!(ease > pop + 100.0, "ease {ease} MB, pop {pop} MB");
    let (ease, pop) = bench(&["--in-process"]);
    assert!(pop >= ease, "in one process: ease {ease} MB, pop {pop} MB");
}

/// The help texts list the model names from the same registry.
#[test]
fn help_lists_every_model_from_the_registry() {
    let (_, bench, _) = run(&["bench", "--help"]);
    for name in [
        "pop",
        "lightgcn",
        "sasrec",
        "lstm",
        "two-stage",
        "ranker",
        "logreg",
    ] {
        assert!(bench.contains(name), "bench --help lacks {name}: {bench}");
    }
    let (_, train, _) = run(&["train", "--help"]);
    assert!(
        train.contains("gru4rec") && train.contains("logreg"),
        "{train}"
    );
}
