//! The purchase-probability task: the behaviour log of a store, the
//! view -> purchase samples on a temporal split, their point-in-time feature
//! rows (training and serving build rows here alike), and the `ranker` /
//! `logreg` rows of `aisle bench` and artifacts of `aisle train`.

use std::path::Path;
use std::time::Instant;

use aisle_core::{CatalogItem, StoredEvent};
use aisle_features::behaviour::{
    purchase_samples, set_sequence_score, CatalogFacts, EventLog, ItemFacts, MissingCounts,
    PurchaseTask, Sample, SequenceScorer, FEATURES, N_FEATURES,
};
use aisle_features::Interaction;
use aisle_rank::{Dataset, Ranker, RankerConfig};
use aisle_store::EventStore;
use serde::Serialize;

use crate::fit::{stepped, Monitor};
use crate::kind::PurchaseModel;
use crate::seqfeature::SeqFeature;
use crate::{Result, TrainError};

/// Ranker metadata key naming its sequence-feature model (a file beside it).
pub const META_SEQ_FEATURE: &str = "seq_feature";

/// The whole behaviour log of a store, with catalog categories and prices.
pub fn event_log(store: &dyn EventStore) -> Result<EventLog> {
    let mut events = Vec::new();
    store.scan_events(&mut |e| events.push(e))?;
    Ok(log_of(&events, &store.catalog()?))
}

/// The behaviour log of events already read from a store (no second scan).
pub fn log_of(events: &[StoredEvent], catalog: &[CatalogItem]) -> EventLog {
    let facts: CatalogFacts = catalog
        .iter()
        .map(|c| (c.id.as_str(), ItemFacts::from(c)))
        .collect();
    EventLog::build(events.iter().map(Interaction::from), &facts)
}

/// Feature rows of samples, with each item's category id for the
/// category embedding (training and serving build rows here alike); `seq`
/// fills `seq_score` (without it the column is missing on every row).
pub fn dataset(
    log: &EventLog,
    samples: &[Sample],
    seq: Option<&dyn SequenceScorer>,
    missing: &mut MissingCounts,
) -> Dataset {
    let mut d = Dataset::new(N_FEATURES);
    let mut row = vec![0f32; N_FEATURES];
    let scores = match seq {
        Some(s) => log.sequence_scores(samples, s),
        None => vec![None; samples.len()],
    };
    for (s, score) in samples.iter().zip(scores) {
        log.features(s.user, s.item, s.t, &mut row, missing);
        set_sequence_score(&mut row, score, missing);
        let cat = log.item_category.get(s.item as usize).copied().unwrap_or(0);
        d.push(&row, cat, s.label);
    }
    d
}

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
    monitor: &dyn Monitor,
) -> Result<(SeqFeature, serde_json::Value)> {
    let before = seq_cut(row_times);
    let t0 = Instant::now();
    let what = format!("seq feature ({})", spec.0.name());
    let (f, fit) = stepped(monitor, &what, |progress| {
        SeqFeature::train(log, before, spec.0, &spec.1, progress)
    })?;
    let info = serde_json::json!({
        "model": spec.0.name(), "trained_before": before, "cut_share": SEQ_CUT_SHARE,
        "epochs": fit.epochs, "best_epoch": fit.best_epoch,
        "best_valid_ndcg10": fit.best_valid_ndcg10, "train_s": t0.elapsed().as_secs_f64(),
        "config": spec.1,
    });
    Ok((f, info))
}

/// The behaviour log of the store at `url` (the same log the server keeps
/// for the ranker).
pub fn store_log(url: &str) -> Result<EventLog> {
    event_log(aisle_store::open_existing(url)?.as_ref())
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
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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

fn fit_ranker(
    cfg: &RankerConfig,
    d: &Dataset,
    n_cats: usize,
    name: &str,
    monitor: &dyn Monitor,
) -> Result<(Ranker, aisle_rank::RankFit)> {
    Ok(stepped(monitor, name, |progress| {
        aisle_rank::train(cfg, d, n_cats, progress)
    })?)
}

/// Builds the task from the store and trains + evaluates each model.
pub fn run(
    store: &str,
    models: &[(PurchaseModel, RankerConfig)],
    seq: Option<&SeqFeatureSpec>,
    monitor: &dyn Monitor,
) -> Result<(Vec<PurchaseRow>, serde_json::Value)> {
    let log = store_log(store)?;
    let task = purchase_samples(&log, HORIZON_S, TEST_S);
    if task.train.is_empty() || task.test.is_empty() {
        return Err(TrainError::NoData(format!(
            "the purchase task needs view events (impressions) before and in the last two days: {} training and {} test samples",
            task.train.len(),
            task.test.len()
        )));
    }
    let seq_feature = match seq {
        Some(spec) => Some(train_seq_feature(
            &log,
            task.train.iter().map(|s| s.t),
            spec,
            monitor,
        )?),
        None => None,
    };
    let scorer = seq_feature
        .as_ref()
        .map(|(f, _)| f as &dyn aisle_features::behaviour::SequenceScorer);
    let mut missing = MissingCounts::default();
    let train = dataset(&log, &task.train, scorer, &mut missing);
    let test = dataset(&log, &task.test, scorer, &mut missing);
    let rate = train.positives() as f64 / train.len() as f64;
    let prior = vec![rate; test.len()];
    let prior_logloss = aisle_eval::logloss(&test.y, &prior);
    let mut rows = Vec::new();
    let mut preds: Vec<Vec<f64>> = Vec::new();
    for (m, cfg) in models {
        let name = m.name();
        let t0 = Instant::now();
        let (model, fit) = fit_ranker(cfg, &train, log.n_categories, name, monitor)?;
        let fit_s = t0.elapsed().as_secs_f64();
        let p = model.predict(&test);
        rows.push(PurchaseRow {
            model: name.to_string(),
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
#[derive(Debug, Clone, Default, Serialize)]
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
    let bad = |message: String| TrainError::Samples {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = match lines.next() {
        Some((_, h)) => h
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect(),
        None => return Err(bad("empty: expected the header user,item,ts,label".into())),
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| bad(format!("no `{name}` column in the header")))
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

/// What `aisle train --model ranker|logreg` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PurchaseReport {
    pub model: String,
    pub artifact: String,
    pub rows: usize,
    pub positives: usize,
    pub fit_s: f64,
    pub epochs: usize,
    pub best_epoch: usize,
    pub best_valid_logloss: f64,
    pub missing: MissingCounts,
    pub config: RankerConfig,
    /// What reading `--samples` did (absent when training on the store's views).
    pub samples: Option<SamplesReport>,
    /// The sequence model behind `seq_score`, when one was trained.
    pub seq_feature: Option<serde_json::Value>,
}

/// `aisle train --model ranker|logreg`: trains on every view whose label
/// window has closed (or on the labelled rows of `samples`) and saves the
/// model with its feature names (and its sequence feature beside it).
pub fn train_and_save(
    store: &str,
    (model, cfg): (PurchaseModel, &RankerConfig),
    samples: Option<&Path>,
    seq: Option<&SeqFeatureSpec>,
    out: &Path,
    monitor: &dyn Monitor,
) -> Result<PurchaseReport> {
    let name = model.name();
    let log = store_log(store)?;
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
            let (f, info) = train_seq_feature(&log, rows.iter().map(|s| s.t), spec, monitor)?;
            // Saved beside the ranker; the server loads it by this name.
            let file = format!(
                "{}.seq.safetensors",
                out.file_stem().and_then(|s| s.to_str()).unwrap_or("ranker")
            );
            f.save(&out.with_file_name(&file))?;
            meta.push((META_SEQ_FEATURE, file));
            Some((f, info))
        }
        _ => None,
    };
    let scorer = seq_feature.as_ref().map(|(f, _)| f as &dyn SequenceScorer);
    let mut missing = MissingCounts::default();
    let train = dataset(&log, &rows, scorer, &mut missing);
    let t0 = Instant::now();
    let (ranker, fit) = fit_ranker(cfg, &train, log.n_categories, name, monitor)?;
    ranker.save(out, &meta)?;
    Ok(PurchaseReport {
        model: name.to_string(),
        artifact: out.display().to_string(),
        rows: train.len(),
        positives: train.positives(),
        fit_s: t0.elapsed().as_secs_f64(),
        epochs: fit.epochs,
        best_epoch: fit.best_epoch,
        best_valid_logloss: fit.best_valid_logloss,
        missing,
        config: cfg.clone(),
        samples: report,
        seq_feature: seq_feature.map(|(_, info)| info),
    })
}
