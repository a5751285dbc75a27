//! The purchase-probability task from a store: the behaviour log, the
//! view -> purchase samples on a temporal split, their point-in-time feature
//! rows, and the `ranker` / `logreg` rows of `aisle bench`.

use std::path::Path;
use std::time::Instant;

use aisle_features::behaviour::{
    purchase_samples, EventLog, MissingCounts, PurchaseTask, Sample, FEATURES,
};
use aisle_rank::{Dataset, Ranker, RankerConfig};
use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::commands::with_bar;

/// Purchase models `aisle bench` and `aisle train` accept.
pub const PURCHASE_MODELS: &[&str] = &["ranker", "logreg"];
/// A view is a positive when the same user buys the item within this window.
pub const HORIZON_S: i64 = 24 * 3600;
/// The test period: the last day whose label windows close inside the log.
pub const TEST_S: i64 = 24 * 3600;

/// A sequence model behind the `seq_score` feature (`--seq-feature MODEL`).
pub type SeqFeatureSpec = (aisle_seq::Arch, aisle_seq::SeqConfig);

/// Where the sequence feature's model stops reading events: the moment
/// this share of the training rows (in time order) is before. Those rows have
/// no `seq_score` (the model's weights would have seen their future); later
/// rows, and every test row, do. (A quantile, not the middle of the time
/// span: a log may hold a few stray early timestamps.)
pub const SEQ_CUT_SHARE: f64 = 0.5;

/// The sequence feature's training cut-off for rows at `times`.
pub fn seq_cut(times: impl Iterator<Item = i64>) -> i64 {
    let mut t: Vec<i64> = times.collect();
    t.sort_unstable();
    t.get((t.len() as f64 * SEQ_CUT_SHARE) as usize)
        .or(t.last())
        .copied()
        .unwrap_or(0)
}

/// Trains the sequence feature's model on the log's events before the
/// [`seq_cut`] of `row_times`; returns it with what it did, for the report.
fn train_seq_feature(
    log: &EventLog,
    row_times: impl Iterator<Item = i64>,
    spec: &SeqFeatureSpec,
) -> Result<(aisle_serve::seqfeature::SeqFeature, serde_json::Value)> {
    let before = seq_cut(row_times);
    let t0 = Instant::now();
    let (f, fit) = with_bar(&format!("seq feature ({})", spec.0.name()), |progress| {
        aisle_serve::seqfeature::SeqFeature::train(log, before, spec.0, &spec.1, progress)
    })?;
    let info = serde_json::json!({
        "model": spec.0.name(), "trained_before": before, "cut_share": SEQ_CUT_SHARE,
        "epochs": fit.epochs, "best_epoch": fit.best_epoch,
        "best_valid_ndcg10": fit.best_valid_ndcg10, "train_s": t0.elapsed().as_secs_f64(),
        "config": spec.1,
    });
    Ok((f, info))
}

/// The whole behaviour log of a store, with catalog categories and prices
/// (the same log the server keeps for the ranker).
pub fn event_log(store: &str) -> Result<EventLog> {
    let s = aisle_store::open_existing(store).with_context(|| format!("opening {store}"))?;
    Ok(aisle_serve::purchase::event_log(s.as_ref())?)
}

/// The protocol text written with every purchase figure.
pub fn protocol_json(task: &PurchaseTask) -> serde_json::Value {
    serde_json::json!({
        "task": "will this view turn into a purchase: every view event (user, item, t) is a sample; label 1 when the user buys that item in [t, t + horizon)",
        "negatives": "real impressions: views not followed by a purchase of the item within the horizon",
        "horizon_s": task.horizon_s,
        "split": "temporal: test = views with t in [test_from, test_to) where test_to = last event - horizon; train = views with t < test_from - horizon (their label windows close before the test period starts)",
        "test_from": task.test_from,
        "test_to": task.test_to,
        "features": "point-in-time: each row reads only events with ts < t (see aisle_features::behaviour::FEATURES)",
        "early_stopping": "the latest 15% of the training rows (time order) are held out; best validation log loss kept",
        "metrics": "AUC, log loss, accuracy at 0.5, ECE (10 equal-width bins) on the test samples",
        "feature_names": FEATURES.iter().map(|f| f.name).collect::<Vec<_>>(),
    })
}

/// One purchase-model row of `aisle bench`.
#[derive(Debug, Clone, Serialize)]
pub struct PurchaseRow {
    pub model: String,
    pub auc: f64,
    pub logloss: f64,
    pub accuracy: f64,
    pub ece: f64,
    pub train_rows: usize,
    pub train_positives: usize,
    pub test_rows: usize,
    pub test_positives: usize,
    /// Log loss of always predicting the training positive rate (the floor
    /// a model must beat to have learned anything).
    pub prior_logloss: f64,
    pub fit_s: f64,
    pub epochs: usize,
    pub best_epoch: usize,
    pub missing: MissingCounts,
    pub config: serde_json::Value,
    /// This model's test AUC minus logistic regression's, with a 95%
    /// interval from a paired bootstrap over test users (when `logreg` is
    /// in the same run; absent on its own row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auc_vs_logreg: Option<aisle_eval::AucDifference>,
}

/// Bootstrap resamples of [`PurchaseRow::auc_vs_logreg`].
pub const AUC_RESAMPLES: usize = 1000;

/// The ranker config of a purchase model name with `key=value` overrides.
pub fn ranker_config(model: &str, overrides: &[(String, String)]) -> Result<RankerConfig> {
    let base = match model {
        "ranker" => RankerConfig::default(),
        "logreg" => RankerConfig::logreg(),
        other => bail!("unknown purchase model {other}"),
    };
    let cfg: RankerConfig = aisle_models::apply_overrides(&base, overrides)
        .map_err(|m| anyhow::anyhow!("bad hyperparameter for {model}: {m}"))?;
    cfg.validate()?;
    Ok(cfg)
}

/// The keys a purchase model accepts.
pub fn ranker_keys() -> Vec<String> {
    match serde_json::to_value(RankerConfig::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn train_with_bar(
    cfg: &RankerConfig,
    d: &Dataset,
    n_cats: usize,
    name: &str,
) -> Result<(Ranker, aisle_rank::RankFit)> {
    Ok(with_bar(name, |progress| {
        aisle_rank::train(cfg, d, n_cats, progress)
    })?)
}

/// Builds the task from the store and trains + evaluates each model.
pub fn run(
    store: &str,
    models: &[(String, RankerConfig)],
    seq: Option<&SeqFeatureSpec>,
) -> Result<(Vec<PurchaseRow>, serde_json::Value)> {
    let log = event_log(store)?;
    let task = purchase_samples(&log, HORIZON_S, TEST_S);
    if task.train.is_empty() || task.test.is_empty() {
        bail!(
            "the purchase task needs view events (impressions) before and in the last two days: {} training and {} test samples",
            task.train.len(),
            task.test.len()
        );
    }
    let seq_feature = match seq {
        Some(spec) => Some(train_seq_feature(
            &log,
            task.train.iter().map(|s| s.t),
            spec,
        )?),
        None => None,
    };
    let scorer = seq_feature
        .as_ref()
        .map(|(f, _)| f as &dyn aisle_features::behaviour::SequenceScorer);
    let mut missing = MissingCounts::default();
    let train = aisle_serve::purchase::dataset(&log, &task.train, scorer, &mut missing);
    let test = aisle_serve::purchase::dataset(&log, &task.test, scorer, &mut missing);
    let rate = train.positives() as f64 / train.len() as f64;
    let prior = vec![rate; test.len()];
    let prior_logloss = aisle_eval::logloss(&test.y, &prior);
    let mut rows = Vec::new();
    let mut preds: Vec<Vec<f64>> = Vec::new();
    for (name, cfg) in models {
        let t0 = Instant::now();
        let (model, fit) = train_with_bar(cfg, &train, log.n_categories, name)?;
        let fit_s = t0.elapsed().as_secs_f64();
        let p = model.predict(&test);
        rows.push(PurchaseRow {
            model: name.clone(),
            auc: aisle_eval::auc(&test.y, &p).unwrap_or(f64::NAN),
            logloss: aisle_eval::logloss(&test.y, &p),
            accuracy: aisle_eval::accuracy(&test.y, &p, 0.5),
            ece: aisle_eval::expected_calibration_error(&test.y, &p, 10),
            train_rows: train.len(),
            train_positives: train.positives(),
            test_rows: test.len(),
            test_positives: test.positives(),
            prior_logloss,
            fit_s,
            epochs: fit.epochs,
            best_epoch: fit.best_epoch,
            missing: missing.clone(),
            config: serde_json::to_value(cfg)?,
            auc_vs_logreg: None,
        });
        preds.push(p);
        tracing::info!(
            model = name,
            auc = rows.last().map(|r| r.auc),
            "purchase model evaluated"
        );
    }
    if let Some(base) = rows.iter().position(|r| r.model == "logreg") {
        let users: Vec<u32> = task.test.iter().map(|s| s.user).collect();
        for (r, row) in rows.iter_mut().enumerate() {
            if r != base {
                row.auc_vs_logreg = aisle_eval::auc_difference(
                    &test.y,
                    &preds[r],
                    &preds[base],
                    &users,
                    AUC_RESAMPLES,
                    1,
                );
            }
        }
    }
    let mut proto = protocol_json(&task);
    proto["seq_feature"] = seq_feature.map_or(serde_json::Value::Null, |(_, info)| info);
    Ok((rows, proto))
}

/// What reading a labelled-samples file did: every row is accepted or
/// quarantined with one reason.
#[derive(Debug, Default, Serialize)]
pub struct SamplesReport {
    pub rows_read: u64,
    pub accepted: u64,
    pub quarantined: u64,
    pub bad_label: u64,
    pub bad_time: u64,
    pub unknown_item: u64,
    pub malformed: u64,
    /// Accepted rows whose user has no events in the store (features at their defaults).
    pub unknown_user: u64,
}

/// Reads `user,item,ts,label` samples (header required, in any column
/// order). A label other than 0/1/true/false, a bad time, an item the store
/// has never seen or a row with missing fields is quarantined (written to
/// `PATH.quarantine.jsonl` with line, reason and raw text) and counted.
pub fn read_samples(path: &Path, log: &EventLog) -> Result<(Vec<Sample>, SamplesReport)> {
    use std::collections::HashMap;
    use std::io::Write;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = match lines.next() {
        Some((_, h)) => h
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect(),
        None => bail!(
            "{} is empty: expected the header user,item,ts,label",
            path.display()
        ),
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|c| c == name)
            .with_context(|| format!("{}: no `{name}` column in the header", path.display()))
    };
    let (cu, ci, ct, cl) = (col("user")?, col("item")?, col("ts")?, col("label")?);
    let users: HashMap<&str, u32> = log
        .users
        .iter()
        .enumerate()
        .map(|(k, u)| (u.as_str(), k as u32))
        .collect();
    let items: HashMap<&str, u32> = log
        .items
        .iter()
        .enumerate()
        .map(|(k, i)| (i.as_str(), k as u32))
        .collect();
    let mut rep = SamplesReport::default();
    let mut out = Vec::new();
    let qpath = path.with_extension("quarantine.jsonl");
    let mut q = std::io::BufWriter::new(std::fs::File::create(&qpath)?);
    let mut new_users: HashMap<String, u32> = HashMap::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        rep.rows_read += 1;
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| f.get(c).copied().filter(|v| !v.is_empty());
        let reason = match (get(cu), get(ci), get(ct), get(cl)) {
            (Some(u), Some(i), Some(t), Some(l)) => match (
                aisle_features::behaviour::parse_label(l),
                t.parse::<i64>().ok(),
                items.get(i),
            ) {
                (None, _, _) => {
                    rep.bad_label += 1;
                    format!("label must be 0 or 1, got {l:?}")
                }
                (_, None, _) => {
                    rep.bad_time += 1;
                    format!("ts must be Unix seconds, got {t:?}")
                }
                (_, _, None) => {
                    rep.unknown_item += 1;
                    format!("item {i:?} has no events in the store")
                }
                (Some(label), Some(ts), Some(&item)) => {
                    let user = match users.get(u) {
                        Some(&k) => k,
                        None => {
                            rep.unknown_user += 1;
                            // Ids past the log's users have no history.
                            let next = (log.users.len() + new_users.len()) as u32;
                            *new_users.entry(u.to_string()).or_insert(next)
                        }
                    };
                    out.push(Sample {
                        user,
                        item,
                        t: ts,
                        label,
                    });
                    rep.accepted += 1;
                    continue;
                }
            },
            _ => {
                rep.malformed += 1;
                "missing field".to_string()
            }
        };
        rep.quarantined += 1;
        writeln!(
            q,
            "{}",
            serde_json::json!({"line": n + 1, "reason": reason, "raw": line})
        )?;
    }
    q.flush()?;
    Ok((out, rep))
}

/// `aisle train --model ranker|logreg`: trains on every view whose label
/// window has closed (or on the labelled rows of `samples`) and saves the
/// model with its feature names.
pub fn train_and_save(
    store: &str,
    name: &str,
    cfg: &RankerConfig,
    samples: Option<&Path>,
    seq: Option<&SeqFeatureSpec>,
    out: &Path,
) -> Result<serde_json::Value> {
    let log = event_log(store)?;
    let (mut rows, report) = match samples {
        Some(p) => {
            let (s, r) = read_samples(p, &log)?;
            (s, Some(r))
        }
        // No test period: every sample whose label window closed is training data.
        None => (purchase_samples(&log, HORIZON_S, 0).train, None),
    };
    // Time order: the latest rows are the early-stopping hold-out.
    rows.sort_by_key(|s| s.t);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut meta = vec![
        ("kind", name.to_string()),
        (
            "feature_names",
            serde_json::to_string(&FEATURES.iter().map(|f| f.name).collect::<Vec<_>>())?,
        ),
        ("horizon_s", HORIZON_S.to_string()),
    ];
    let seq_feature = match seq {
        Some(spec) if !rows.is_empty() => {
            let (f, info) = train_seq_feature(&log, rows.iter().map(|s| s.t), spec)?;
            // Saved beside the ranker; the server loads it by this name.
            let file = format!(
                "{}.seq.safetensors",
                out.file_stem().and_then(|s| s.to_str()).unwrap_or("ranker")
            );
            f.save(&out.with_file_name(&file))?;
            meta.push((aisle_serve::purchase::META_SEQ_FEATURE, file));
            Some((f, info))
        }
        _ => None,
    };
    let scorer = seq_feature
        .as_ref()
        .map(|(f, _)| f as &dyn aisle_features::behaviour::SequenceScorer);
    let mut missing = MissingCounts::default();
    let train = aisle_serve::purchase::dataset(&log, &rows, scorer, &mut missing);
    let t0 = Instant::now();
    let (model, fit) = train_with_bar(cfg, &train, log.n_categories, name)?;
    model.save(out, &meta)?;
    Ok(serde_json::json!({
        "model": name, "artifact": out.display().to_string(), "rows": train.len(),
        "positives": train.positives(), "fit_s": t0.elapsed().as_secs_f64(),
        "epochs": fit.epochs, "best_epoch": fit.best_epoch,
        "best_valid_logloss": fit.best_valid_logloss, "missing": missing, "config": cfg,
        "samples": report,
        "seq_feature": seq_feature.map(|(_, info)| info),
    }))
}

/// `aisle train --model ranker|logreg`: the config from the overrides (the
/// ranker's keys apply to it; with `--seq-feature`, the others to the
/// sequence model), then [`train_and_save`].
pub fn train(
    a: &crate::TrainArgs,
    overrides: &crate::bench::Overrides,
    out: &Path,
) -> Result<serde_json::Value> {
    let ranker_keys = ranker_keys();
    let o: Vec<(String, String)> = overrides
        .iter()
        .filter(|(om, k, _)| match om {
            Some(om) => om == &a.model,
            None => a.seq_feature.is_none() || ranker_keys.contains(k),
        })
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect();
    let cfg = ranker_config(&a.model, &o)?;
    let seq = match &a.seq_feature {
        Some(name) => Some(crate::bench::seq_config(name, overrides, a.time_budget)?),
        None => None,
    };
    train_and_save(
        &a.store,
        &a.model,
        &cfg,
        a.samples.as_deref(),
        seq.as_ref(),
        out,
    )
}
