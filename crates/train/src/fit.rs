//! Fitting a model of any kind on a store's data and publishing the artifact.

use std::path::Path;
use std::time::Instant;

use aisle_features::Sequences;
use aisle_models::{ModelConfig, TrainData};
use aisle_seq::{Arch, SeqConfig, SeqFit, SeqModel};
use serde::{Deserialize, Serialize};

use crate::{Artifact, Classical, Decision, Model, Result, StoreData};

/// Version of [`TrainReport`]'s layout (what a retraining process prints).
pub const REPORT_VERSION: u32 = 1;

/// Progress of a long fit: (done, total).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Shows the progress of each long step of a run (one per model fit): a
/// step's indicator ends when the callback it returned is dropped.
pub trait Monitor: Sync {
    fn step<'a>(&'a self, what: &str) -> Box<dyn Fn(u64, u64) + Sync + 'a>;
}

/// Shows nothing.
pub struct Quiet;

impl Monitor for Quiet {
    fn step<'a>(&'a self, _: &str) -> Box<dyn Fn(u64, u64) + Sync + 'a> {
        Box::new(|_, _| {})
    }
}

/// Runs `f` as one step of `monitor` named `what`.
pub fn stepped<T>(monitor: &dyn Monitor, what: &str, f: impl FnOnce(Progress<'_>) -> T) -> T {
    let progress = monitor.step(what);
    f(&*progress)
}

/// What `aisle train` reports (one JSON object on stdout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Always [`REPORT_VERSION`].
    pub report_version: u32,
    pub model: String,
    pub dataset: String,
    /// Path of the artifact written.
    pub artifact: String,
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
    pub fit_s: f64,
    /// Sequence models: epochs run, best epoch, its validation NDCG@10 and
    /// why training stopped (`epochs`, `early_stopping`, `time_budget`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_valid_ndcg10: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// The hyperparameters it was trained with.
    pub config: serde_json::Value,
    /// Set when the run decided on promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

impl TrainReport {
    fn new(data: &StoreData, model: &str, out: &Path, fit_s: f64) -> TrainReport {
        let seqs = &data.seqs;
        TrainReport {
            report_version: REPORT_VERSION,
            model: model.to_string(),
            dataset: data.dataset.clone(),
            artifact: out.display().to_string(),
            users: seqs.users.len(),
            items: seqs.items.len(),
            interactions: seqs.interactions(),
            fit_s,
            epochs: None,
            best_epoch: None,
            best_valid_ndcg10: None,
            stopped_by: None,
            config: serde_json::Value::Null,
            decision: None,
        }
    }
}

/// The metadata key of a sequence model's training curve: a JSON array of
/// `{"epoch", "loss", "valid_ndcg10"}`, one per epoch.
pub const CURVE: &str = "curve";

/// A training curve as the artifact keeps it (under [`CURVE`]).
pub fn curve_json(curve: &[aisle_seq::EpochLog]) -> String {
    let rows: Vec<serde_json::Value> = curve
        .iter()
        .map(|e| {
            serde_json::json!({
                "epoch": e.epoch,
                "loss": (e.loss * 1e5).round() / 1e5,
                "valid_ndcg10": (e.valid_ndcg10 * 1e5).round() / 1e5,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// The header every artifact trained on `data` carries.
fn artifact(model: Model, data: &StoreData) -> Artifact {
    let mut a = Artifact::new(model, data.seqs.items.clone());
    a.header.data = Some(data.time_range());
    let seqs = &data.seqs;
    for (k, v) in [
        ("dataset", data.dataset.clone()),
        ("users", seqs.users.len().to_string()),
        ("interactions", seqs.interactions().to_string()),
    ] {
        a.header.extra.insert(k.to_string(), v);
    }
    a
}

/// Fits a model of aisle-models' kinds: GAT through aisle-graph (burn), with
/// the items' categories when given; every other kind by aisle-models.
pub fn fit_recommender(
    cfg: &ModelConfig,
    train: &TrainData,
    categories: Option<&aisle_graph::Categories>,
    progress: Progress<'_>,
) -> Result<Box<dyn aisle_models::Recommender>, aisle_models::ModelError> {
    match cfg {
        ModelConfig::Gat(c) => {
            let (model, fit) = aisle_graph::fit(c, train, categories, progress)?;
            tracing::info!(
                epochs = fit.epochs,
                steps = fit.steps,
                train_s = fit.train_s,
                mean_epoch_s = fit.epoch_s.iter().sum::<f64>() / fit.epoch_s.len().max(1) as f64,
                "gat trained"
            );
            Ok(Box::new(model))
        }
        _ => aisle_models::fit(cfg, train, progress),
    }
}

/// The items' categories for GAT when `cfg` is one that uses them (the
/// store's catalog, numbered as [`crate::side_info`] numbers them).
pub fn gat_categories(
    url: &str,
    seqs: &Sequences,
    cfg: &ModelConfig,
) -> Result<Option<aisle_graph::Categories>> {
    match cfg {
        ModelConfig::Gat(c) if c.category => Ok(crate::side_info(url, seqs)?
            .filter(|s| s.n_categories > 0)
            .map(|s| aisle_graph::Categories {
                of_item: s.category,
                n: s.n_categories,
            })),
        _ => Ok(None),
    }
}

/// Fits a classical model on each user's whole sequence (no hold-out) and
/// writes its artifact to `out`.
pub fn train_classical(
    data: &StoreData,
    cfg: &ModelConfig,
    categories: Option<&aisle_graph::Categories>,
    out: &Path,
    progress: Progress<'_>,
) -> Result<TrainReport> {
    let seqs = &data.seqs;
    let train = TrainData {
        n_items: seqs.items.len(),
        seqs: seqs.seqs.clone(),
        times: Some(seqs.times.clone()),
    };
    let t0 = Instant::now();
    let model = fit_recommender(cfg, &train, categories, progress)?;
    let fit_s = t0.elapsed().as_secs_f64();
    let n = seqs.items.len();
    artifact(Model::Classical(Classical::new(model, n)), data).save(out)?;
    Ok(TrainReport {
        config: serde_json::to_value(cfg).unwrap_or_default(),
        ..TrainReport::new(data, cfg.name(), out, fit_s)
    })
}

/// Trains a sequence model on `seqs` (each user's last two items serve for
/// early stopping).
pub fn fit_sequence(
    arch: Arch,
    cfg: &SeqConfig,
    seqs: &Sequences,
    side: Option<aisle_seq::SideInfo>,
    progress: Progress<'_>,
) -> Result<(SeqModel, SeqFit)> {
    let data = aisle_seq::TrainData {
        n_items: seqs.items.len(),
        seqs: &seqs.seqs,
        side,
    };
    Ok(aisle_seq::train(arch, cfg, &data, progress)?)
}

/// Trains a sequence model on every user's sequence of the store at `url`
/// and writes its artifact (with the best validation NDCG@10) to `out`.
pub fn train_sequence(
    url: &str,
    data: &StoreData,
    (arch, cfg): (Arch, &SeqConfig),
    out: &Path,
    progress: Progress<'_>,
) -> Result<TrainReport> {
    let side = if cfg.side_info {
        crate::side_info(url, &data.seqs)?
    } else {
        None
    };
    let t0 = Instant::now();
    let (m, fit) = fit_sequence(arch, cfg, &data.seqs, side, progress)?;
    let fit_s = t0.elapsed().as_secs_f64();
    let mut a = artifact(Model::Sequence(Box::new(m)), data);
    a.header.extra.insert(
        "best_valid_ndcg10".into(),
        fit.best_valid_ndcg10.to_string(),
    );
    a.header.extra.insert(CURVE.into(), curve_json(&fit.curve));
    a.save(out)?;
    Ok(TrainReport {
        epochs: Some(fit.epochs),
        best_epoch: Some(fit.best_epoch),
        best_valid_ndcg10: Some(fit.best_valid_ndcg10),
        stopped_by: Some(fit.stopped_by.clone()),
        config: serde_json::to_value(cfg).unwrap_or_default(),
        ..TrainReport::new(data, arch.name(), out, fit_s)
    })
}
