//! `aisle bench` / `evaluate` / `train`: the protocol check against the peer
//! figures of shared/baselines/RESULTS.md, the JSON contract, and bad input.

use crate::{data_dir, json, ok, run};

fn bench(
    preset: &str,
    file: &str,
    models: &str,
    extra: &[&str],
) -> (serde_json::Value, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let input = data_dir().join(file);
    let store = tmp.path().join("store");
    let out = tmp.path().join("out");
    let mut args = vec![
        "bench",
        "--preset",
        preset,
        "--input",
        input.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--models",
        models,
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let report = json(&ok(&args));
    for f in ["bench.json", "leaderboard.md", "leaderboard.svg"] {
        assert!(out.join(f).exists(), "{f} not written");
    }
    (report, tmp)
}

fn row<'a>(report: &'a serde_json::Value, model: &str) -> &'a serde_json::Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .unwrap()
}

fn within(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want
}

#[test]
fn pop_reproduces_the_peer_figures_on_ml1m_and_retail() {
    // RESULTS.md (RecBole 1.2.1): ml1m Pop Recall@10 .0396 NDCG@10 .0188; retail .0450 / .0234.
    // Recall@10 is reproduced within 3%. NDCG@10 comes out 3-4% higher than
    // RecBole's on both (an independent Python evaluator agrees with ours to
    // the last digit; see BENCHMARKS.md), so it is held to 5%.
    for (preset, file, recall, ndcg) in [
        ("ml-1m", "ml-1m/interactions.csv.gz", 0.0396, 0.0188),
        (
            "online-retail",
            "online-retail/transactions.csv.gz",
            0.0450,
            0.0234,
        ),
    ] {
        let (rep, _tmp) = bench(preset, file, "pop,itemknn", &[]);
        let pop = row(&rep, "pop");
        assert_eq!(pop["masking"], true);
        let (r, n) = (
            pop["recall@10"].as_f64().unwrap(),
            pop["ndcg@10"].as_f64().unwrap(),
        );
        assert!(
            within(r, recall, 0.03),
            "{preset} pop recall@10 {r} vs {recall}"
        );
        assert!(within(n, ndcg, 0.05), "{preset} pop ndcg@10 {n} vs {ndcg}");
        if preset == "ml-1m" {
            // RESULTS.md: "an independent numpy evaluator gave ml1m Recall@10 0.0394".
            assert!((r - 0.0394).abs() < 5e-5, "{r}");
            // Item-kNN at least RecBole's ItemKNN (.0366).
            assert!(row(&rep, "itemknn")["ndcg@10"].as_f64().unwrap() >= 0.0366);
        }
        // The contract of each row.
        for key in [
            "model",
            "masking",
            "ndcg@10",
            "recall@10",
            "mrr@10",
            "ndcg@20",
            "recall@20",
            "coverage@10",
            "fit_s",
            "fit_cpu_s",
            "eval_s",
            "peak_rss_mb",
        ] {
            assert!(!pop[key].is_null(), "{key} missing in {pop}");
        }
        for m in ["ndcg@10", "recall@10", "mrr@10", "coverage@10"] {
            let v = pop[m].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v));
        }
        assert_eq!(rep["protocol"]["split"], "leave_one_out");
        assert!(rep["protocol"]["masking"]
            .as_str()
            .unwrap()
            .contains("model default"));
    }
}

#[test]
fn als_on_retail_matches_implicit_and_masking_can_be_forced() {
    let (rep, tmp) = bench(
        "online-retail",
        "online-retail/transactions.csv.gz",
        "als,repeat",
        &[],
    );
    // implicit 0.7.3 on this protocol: NDCG@10 .1506 (RESULTS.md); seeds vary by about ±.003.
    let als = row(&rep, "als")["ndcg@10"].as_f64().unwrap();
    assert!(als > 0.145, "als ndcg@10 {als}");
    assert_eq!(row(&rep, "repeat")["masking"], false);
    // Reuse the store, force masking off, override a hyperparameter.
    let store = tmp.path().join("store");
    let rep2 = json(&ok(&[
        "evaluate",
        "--store",
        store.to_str().unwrap(),
        "--models",
        "pop,repeat",
        "--masking",
        "off",
        "--set",
        "repeat.decay=0.9",
        "--json",
    ]));
    assert_eq!(row(&rep2, "pop")["masking"], false);
    assert_eq!(row(&rep2, "repeat")["config"]["decay"], 0.9);
    // Training publishes a loadable artifact.
    let art = tmp.path().join("pop.safetensors");
    let summary = json(&ok(&[
        "train",
        "--store",
        store.to_str().unwrap(),
        "--model",
        "pop",
        "--out",
        art.to_str().unwrap(),
    ]));
    assert_eq!(summary["model"], "pop");
    assert!(std::fs::metadata(&art).unwrap().len() > 1000);
}

#[test]
fn bad_bench_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("tiny.csv");
    // 3 users, 4 items; retail-like protocol is not used: ml-1m preset keeps everything.
    std::fs::write(&input, "user_id,movie_id,position\n1,10,0\n1,11,1\n1,12,2\n2,10,0\n2,13,1\n2,11,2\n3,12,0\n3,13,1\n3,10,2\n").unwrap();
    let store = tmp.path().join("s");
    let s = store.to_str().unwrap();
    ok(&[
        "ingest",
        "--preset",
        "ml-1m",
        "--input",
        input.to_str().unwrap(),
        "--store",
        s,
    ]);
    let fail = |args: &[&str], needle: &str| {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    fail(
        &["evaluate", "--store", s, "--models", "pop,gpt4"],
        "unknown model `gpt4`",
    );
    fail(
        &[
            "evaluate",
            "--store",
            s,
            "--models",
            "als",
            "--set",
            "factors=-3",
        ],
        "als",
    );
    fail(
        &[
            "evaluate",
            "--store",
            s,
            "--models",
            "als",
            "--set",
            "colour=red",
        ],
        "colour",
    );
    fail(
        &[
            "evaluate",
            "--store",
            s,
            "--models",
            "pop",
            "--set",
            "bpr.epochs=3",
        ],
        "not in --models",
    );
    fail(
        &[
            "evaluate",
            "--store",
            s,
            "--models",
            "pop",
            "--masking",
            "maybe",
        ],
        "on or off",
    );
    fail(
        &[
            "bench",
            "--preset",
            "ml-1m",
            "--store",
            tmp.path().join("empty").to_str().unwrap(),
        ],
        "--input",
    );
    // A sequence model trains through the same command: rows gain epochs and
    // best_epoch, and the training curve is written beside the leaderboard.
    let longer = tmp.path().join("longer.csv");
    let mut csv = String::from("user_id,movie_id,position\n");
    for u in 0..6 {
        for p in 0..7 {
            csv.push_str(&format!("{u},{},{p}\n", 10 + (u + p) % 9));
        }
    }
    std::fs::write(&longer, csv).unwrap();
    let seq_store = tmp.path().join("seq-store");
    let ss = seq_store.to_str().unwrap();
    ok(&[
        "ingest",
        "--preset",
        "ml-1m",
        "--input",
        longer.to_str().unwrap(),
        "--store",
        ss,
    ]);
    let out = tmp.path().join("seq");
    let rep = json(&ok(&[
        "evaluate",
        "--store",
        ss,
        "--models",
        "pop,sasrec,gru4rec,lstm",
        "--json",
        "--out",
        out.to_str().unwrap(),
        "--time-budget",
        "60",
        "--set",
        "epochs=2",
        "--set",
        "lstm.loss=gbce",
        "--set",
        "negatives=3",
        "--set",
        "hidden=8",
        "--set",
        "heads=1",
        "--set",
        "inner=16",
        "--set",
        "max_len=5",
    ]));
    for m in ["sasrec", "gru4rec", "lstm"] {
        let r = row(&rep, m);
        assert_eq!(r["masking"], false, "{m}");
        assert_eq!(r["epochs"], 2, "{m}");
        assert!(r["best_epoch"].as_u64().unwrap() >= 1, "{m}");
        assert!(r["train_s"].as_f64().unwrap() > 0.0, "{m}");
        assert!(r["train_cpu_s"].as_f64().is_some(), "{m}");
        assert!(
            out.join(format!("{m}-curve.json")).exists()
                && out.join(format!("{m}-curve.svg")).exists(),
            "{m}"
        );
    }
    assert_eq!(row(&rep, "lstm")["config"]["loss"], "gbce");
    assert_eq!(row(&rep, "lstm")["config"]["time_budget_s"], 60.0);
    // `aisle train` saves a sequence model that loads back.
    let art = tmp.path().join("gru.safetensors");
    let summary = json(&ok(&[
        "train",
        "--store",
        ss,
        "--model",
        "gru4rec",
        "--set",
        "epochs=1",
        "--set",
        "hidden=8",
        "--out",
        art.to_str().unwrap(),
    ]));
    assert_eq!(summary["model"], "gru4rec");
    let a = aisle_train::Artifact::load(&art).unwrap();
    assert_eq!(a.model.kind(), "gru4rec");
    assert_eq!(
        a.header.item_ids.len(),
        summary["items"].as_u64().unwrap() as usize
    );
    fail(
        &[
            "evaluate",
            "--store",
            ss,
            "--models",
            "sasrec",
            "--set",
            "loss=softmax",
        ],
        "loss",
    );
    fail(
        &[
            "evaluate",
            "--store",
            ss,
            "--models",
            "lstm",
            "--time-budget=-1",
        ],
        "time-budget",
    );
    fail(
        &[
            "evaluate",
            "--store",
            ss,
            "--models",
            "sasrec",
            "--set",
            "sasrec.hidden=7",
            "--set",
            "heads=2",
        ],
        "multiple of heads",
    );
    // K (10, 20) larger than the 4-item catalog: documented behaviour is that
    // every unmasked target is within the top K.
    let rep = json(&ok(&[
        "evaluate",
        "--store",
        s,
        "--models",
        "pop",
        "--masking",
        "off",
        "--json",
    ]));
    assert_eq!(row(&rep, "pop")["recall@10"], 1.0);
    assert_eq!(row(&rep, "pop")["recall@20"], 1.0);
}

#[test]
fn an_empty_split_is_refused() {
    // Online-retail's protocol drops users with fewer than 3 purchases: here, everyone.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("r.csv");
    std::fs::write(
        &input,
        "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country,event_type\n1,A,X,1,2011-01-01 10:00:00,1.0,7,UK,purchase\n2,B,Y,1,2011-01-02 10:00:00,1.0,7,UK,purchase\n",
    )
    .unwrap();
    let store = tmp.path().join("s");
    ok(&[
        "ingest",
        "--preset",
        "online-retail",
        "--input",
        input.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    let (code, _, err) = run(&[
        "evaluate",
        "--store",
        store.to_str().unwrap(),
        "--models",
        "pop",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("empty"), "{err}");
}
