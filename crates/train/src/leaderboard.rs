//! The leave-one-out full-ranking protocol of shared/baselines/PROTOCOL.md
//! over the models of aisle-models and aisle-seq: one [`Row`] of test and
//! validation metrics per model, the protocol written down with them.

use std::time::Instant;

use aisle_eval::{evaluate_loo, LooConfig, LooResult, Stage};
use aisle_features::Sequences;
use aisle_models::{ModelConfig, TrainData};
use aisle_seq::{Arch, SeqConfig, SeqFit, SideInfo};
use serde::{Deserialize, Serialize};

use crate::fit::{stepped, Monitor};
use crate::usage::{cpu_seconds, peak_rss_mb};
use crate::{Result, TrainError};

/// The leave-one-out training view: each user's sequence without its last two items.
pub fn loo_train(seqs: &Sequences) -> TrainData {
    let cut = |n: usize| n.saturating_sub(2);
    TrainData {
        n_items: seqs.items.len(),
        seqs: seqs
            .seqs
            .iter()
            .map(|s| s[..cut(s.len())].to_vec())
            .collect(),
        times: Some(
            seqs.times
                .iter()
                .map(|t| t[..cut(t.len())].to_vec())
                .collect(),
        ),
    }
}

/// One row of the leaderboard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    pub masking: bool,
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    #[serde(rename = "recall@10")]
    pub recall10: f64,
    #[serde(rename = "mrr@10")]
    pub mrr10: f64,
    #[serde(rename = "ndcg@20")]
    pub ndcg20: f64,
    #[serde(rename = "recall@20")]
    pub recall20: f64,
    #[serde(rename = "mrr@20")]
    pub mrr20: f64,
    #[serde(rename = "coverage@10")]
    pub coverage10: f64,
    #[serde(rename = "popularity_bias@10")]
    pub popularity_bias10: f64,
    #[serde(rename = "valid_ndcg@10")]
    pub valid_ndcg10: f64,
    pub users: u64,
    /// The test metrics of users whose target they already had ("seen")
    /// and of those whose target is new to them.
    pub by_target: RowByTarget,
    pub fit_s: f64,
    pub fit_cpu_s: f64,
    pub eval_s: f64,
    pub peak_rss_mb: f64,
    /// Sequence models: epochs run, the epoch kept (best validation NDCG@10),
    /// and training wall/CPU seconds (= fit_s / fit_cpu_s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_cpu_s: Option<f64>,
    pub config: serde_json::Value,
}

impl Row {
    /// A row from the validation and test results of one model; the
    /// sequence-model fields are left empty.
    pub fn new(
        model: &str,
        masking: bool,
        valid: &LooResult,
        test: &LooResult,
        fit: (f64, f64),
        config: serde_json::Value,
    ) -> Row {
        Row {
            model: model.to_string(),
            masking,
            ndcg10: test.ndcg(10),
            recall10: test.recall(10),
            mrr10: test.mrr(10),
            ndcg20: test.ndcg(20),
            recall20: test.recall(20),
            mrr20: test.mrr(20),
            coverage10: test.coverage,
            popularity_bias10: test.popularity_bias,
            valid_ndcg10: valid.ndcg(10),
            users: test.users,
            by_target: RowByTarget {
                seen: KindMetrics::of(&test.by_target.seen),
                new: KindMetrics::of(&test.by_target.new),
            },
            fit_s: fit.0,
            fit_cpu_s: fit.1,
            eval_s: test.eval_s,
            peak_rss_mb: peak_rss_mb(),
            epochs: None,
            best_epoch: None,
            train_s: None,
            train_cpu_s: None,
            config,
        }
    }
}

/// A row's test metrics by target kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowByTarget {
    pub seen: KindMetrics,
    pub new: KindMetrics,
}

/// The metrics of one kind of target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindMetrics {
    pub users: u64,
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    #[serde(rename = "recall@10")]
    pub recall10: f64,
}

impl KindMetrics {
    fn of(t: &aisle_eval::RankingTotals) -> KindMetrics {
        KindMetrics {
            users: t.users,
            ndcg10: t.ndcg(10),
            recall10: t.recall(10),
        }
    }
}

/// Above this share of test targets already in the user's history, masked
/// metrics are called degenerate: the target is exempt from the mask, so a
/// masked model that ranks any seen item first hits every repeat target.
pub const DEGENERATE_SEEN_SHARE: f64 = 0.2;

/// The best model by validation NDCG@10 among the rows of each masking
/// rule: metrics under different rules are not comparable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BestByMasking {
    pub on: Option<String>,
    pub off: Option<String>,
}

impl BestByMasking {
    pub fn of(rows: &[Row]) -> BestByMasking {
        let best = |masking: bool| {
            rows.iter()
                .filter(|r| r.masking == masking)
                .max_by(|a, b| a.valid_ndcg10.total_cmp(&b.valid_ndcg10))
                .map(|r| r.model.clone())
        };
        BestByMasking {
            on: best(true),
            off: best(false),
        }
    }

    /// The one model to recommend: the best under the rule that is honest
    /// for this data set (masking off when masked metrics are degenerate,
    /// else masking on), or under the other rule when that one has no rows.
    pub fn pick(&self, seen_share: f64) -> Option<String> {
        let (first, second) = if seen_share > DEGENERATE_SEEN_SHARE {
            (&self.off, &self.on)
        } else {
            (&self.on, &self.off)
        };
        first.clone().or_else(|| second.clone())
    }
}

/// The warnings a report carries about its own metrics.
pub fn warnings(rows: &[Row], seen_share: f64) -> Vec<String> {
    let masked: Vec<&str> = rows
        .iter()
        .filter(|r| r.masking)
        .map(|r| r.model.as_str())
        .collect();
    let mut out = Vec::new();
    if !masked.is_empty() && seen_share > DEGENERATE_SEEN_SHARE {
        out.push(format!(
            "masked metrics are degenerate here: {:.1}% of test targets are items the user already had; \
             masking exempts the target, so a masked model ranking any seen item first hits every repeat \
             target. Masked rows ({}): read their by_target.new metrics, or compare with --masking off.",
            100.0 * seen_share,
            masked.join(", ")
        ));
    }
    let mixed = rows.iter().any(|r| r.masking) && rows.iter().any(|r| !r.masking);
    if mixed {
        out.push(
            "rows were evaluated under different masking rules and are not comparable across rules; \
             best_by_masking names the best of each"
                .to_string(),
        );
    }
    out
}

/// How a masking choice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    ModelDefault,
    On,
    Off,
}

impl Masking {
    /// `on`/`true`, `off`/`false`, or nothing (each model's default).
    pub fn parse(s: Option<&str>) -> Result<Masking> {
        Ok(match s {
            None => Masking::ModelDefault,
            Some("on") | Some("true") => Masking::On,
            Some("off") | Some("false") => Masking::Off,
            Some(o) => {
                return Err(TrainError::BadConfig(format!(
                    "--masking must be on or off, got {o:?}"
                )))
            }
        })
    }
}

/// A model that could not run on this data set (e.g. EASE on a huge catalog).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub model: String,
    pub reason: String,
}

/// Trains and evaluates each config; one row per model that ran, and the
/// models that refused this data set (too large) with their reason.
pub fn run_models(
    seqs: &Sequences,
    categories: Option<&aisle_graph::Categories>,
    configs: &[ModelConfig],
    masking: Masking,
    monitor: &dyn Monitor,
) -> Result<(Vec<Row>, Vec<Skipped>)> {
    if seqs.users.is_empty() || seqs.items.is_empty() {
        return Err(TrainError::NoData(
            "the split is empty: no users with interactions under this protocol".into(),
        ));
    }
    let train = loo_train(seqs);
    let popularity = train.item_counts();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for cfg in configs {
        let name = cfg.name();
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let fitted = stepped(monitor, name, |progress| {
            crate::fit_recommender(cfg, &train, categories, progress)
        });
        let model = match fitted {
            Ok(m) => m,
            Err(e @ aisle_models::ModelError::TooLarge { .. }) => {
                tracing::warn!(model = name, "skipped: {e}");
                skipped.push(Skipped {
                    model: name.to_string(),
                    reason: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (fit_s, fit_cpu_s) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        let mask = match masking {
            Masking::ModelDefault => model.default_masking(),
            Masking::On => true,
            Masking::Off => false,
        };
        let eval = |stage| bench_eval(model.as_ref(), seqs, &popularity, stage, mask);
        let valid: LooResult = eval(Stage::Valid);
        let test: LooResult = eval(Stage::Test);
        tracing::info!(model = name, fit_s, ndcg10 = test.ndcg(10), "evaluated");
        rows.push(Row::new(
            name,
            mask,
            &valid,
            &test,
            (fit_s, fit_cpu_s),
            serde_json::to_value(model.config())?,
        ));
    }
    Ok((rows, skipped))
}

/// One row of `results`: a ranking model (leave-one-out metrics) or a
/// purchase-probability model (classification metrics on the temporal
/// hold-out of the purchase task).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResultRow {
    Ranking(Row),
    Purchase(crate::purchase::PurchaseRow),
}

/// The whole report printed by `aisle bench --json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub dataset: String,
    pub protocol: serde_json::Value,
    /// The purchase task's protocol, when purchase models ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_protocol: Option<serde_json::Value>,
    pub results: Vec<ResultRow>,
    /// Models that refused this data set, with the reason.
    pub skipped: Vec<Skipped>,
    /// The model to use: the best validation NDCG@10 (model selection never
    /// looks at test) among the rows of one masking rule, chosen by
    /// [`BestByMasking::pick`].
    pub best_by_validation: Option<String>,
    /// The best by validation NDCG@10 under each masking rule.
    pub best_by_masking: BestByMasking,
    /// Share of test targets the user already had in their history.
    pub seen_target_share: f64,
    /// What the reader must know about these metrics (also printed on stderr).
    pub warnings: Vec<String>,
    pub threads: usize,
    /// Each sequence model's training curve (written beside the report).
    #[serde(skip)]
    pub curves: Vec<SeqFit>,
}

impl BenchReport {
    /// The report of a run from the reports of its parts (each a plan of
    /// [`crate::bench::Plan::parts`], run on the same data in its own
    /// process): rows in the parts' order, then the picks and warnings
    /// over all of them.
    pub fn merge(parts: Vec<BenchReport>) -> Result<BenchReport> {
        let mut it = parts.into_iter();
        let mut out = it
            .next()
            .ok_or_else(|| TrainError::NoData("no parts to merge".into()))?;
        for p in it {
            out.results.extend(p.results);
            out.skipped.extend(p.skipped);
            out.curves.extend(p.curves);
            out.purchase_protocol = out.purchase_protocol.or(p.purchase_protocol);
        }
        out.finish();
        Ok(out)
    }

    /// Sets the picks and warnings from the ranking rows.
    pub fn finish(&mut self) {
        let rows: Vec<Row> = self
            .results
            .iter()
            .filter_map(|r| match r {
                ResultRow::Ranking(r) => Some(r.clone()),
                ResultRow::Purchase(_) => None,
            })
            .collect();
        self.best_by_masking = BestByMasking::of(&rows);
        self.best_by_validation = self.best_by_masking.pick(self.seen_target_share);
        self.warnings = warnings(&rows, self.seen_target_share);
    }
}

/// What one part of a run prints for the process that merges the parts:
/// its report and its training curves (which the report does not carry).
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchPart {
    pub report: BenchReport,
    pub curves: Vec<SeqFit>,
}

pub fn protocol_json(
    seqs: &Sequences,
    protocol: &aisle_core::protocol::Protocol,
    masking: Masking,
) -> serde_json::Value {
    serde_json::json!({
        "split": "leave_one_out",
        "rule": "per user: last item = test, second-to-last = validation, the rest = train; models train on train only",
        "ranking": "full (every item of the data set; no sampled negatives)",
        "masking": match masking {
            Masking::ModelDefault => "model default: on for pop/itemknn/ease/bpr/als/lightgcn/gat (train+validation items masked, the target never), off for repeat",
            Masking::On => "on for every model (forced by --masking on)",
            Masking::Off => "off for every model (forced by --masking off)",
        },
        "ties": "metrics are expected values under uniformly random tie-breaking (target rank uniform over its tie block); top-10 lists for coverage break ties by item index",
        "ks": [10, 20],
        "peak_rss_mb": "the high-water resident memory of a process that loaded the data and ran this model alone (aisle bench and evaluate run each model in a child process of its own; the purchase models share one); with --in-process, of the whole run so far",
        "metrics": "Recall@K (= HitRate@K with one target), NDCG@K, MRR@K averaged over users with a test target; coverage@10 = share of items in any top-10; popularity_bias@10 = mean training popularity of top-10 items / mean item popularity",
        "users": seqs.users.len(),
        "items": seqs.items.len(),
        "interactions": seqs.interactions(),
        "sequences": protocol,
    })
}

/// The leaderboard's evaluation of one stage: K = 10 and 20, top-10 lists
/// kept for coverage and popularity bias.
pub(crate) fn bench_eval(
    scorer: &dyn aisle_eval::Scorer,
    seqs: &Sequences,
    popularity: &[u32],
    stage: Stage,
    masking: bool,
) -> LooResult {
    evaluate_loo(
        scorer,
        &seqs.seqs,
        seqs.items.len(),
        popularity,
        &LooConfig {
            stage,
            masking,
            ks: vec![10, 20],
            list_k: 10,
        },
    )
}

/// Trains a sequence model under the protocol (masking off by default, as
/// for the peers' sequential models) and returns its row; writes the
/// training curve.
pub fn run_seq(
    seqs: &Sequences,
    (arch, cfg): &(Arch, SeqConfig),
    side: Option<SideInfo>,
    masking: Masking,
    monitor: &dyn Monitor,
) -> Result<(Row, SeqFit)> {
    let model = arch.name();
    let popularity = loo_train(seqs).item_counts();
    let mask = matches!(masking, Masking::On);
    // A masked final ranking picks its checkpoint on the masked validation
    // metric, and (train_masking = auto) trains on the candidates it ranks.
    let train_masking = match cfg.train_masking {
        aisle_seq::TrainMasking::Auto if mask => aisle_seq::TrainMasking::On,
        aisle_seq::TrainMasking::Auto => aisle_seq::TrainMasking::Off,
        m => m,
    };
    let cfg = &aisle_seq::SeqConfig {
        valid_masking: cfg.valid_masking || mask,
        train_masking,
        ..cfg.clone()
    };
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let (model_fit, fit) = stepped(monitor, model, |progress| {
        crate::fit_sequence(*arch, cfg, seqs, side, progress)
    })?;
    let (fit_s, fit_cpu_s) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let hist = |drop: usize| -> Vec<&[u32]> {
        seqs.seqs
            .iter()
            .map(|s| &s[..s.len().saturating_sub(drop)])
            .collect()
    };
    let eval = |stage, drop| {
        bench_eval(
            &model_fit.user_vectors(&hist(drop)),
            seqs,
            &popularity,
            stage,
            mask,
        )
    };
    let valid = eval(Stage::Valid, 2);
    let test = eval(Stage::Test, 1);
    let row = Row {
        epochs: Some(fit.epochs),
        best_epoch: Some(fit.best_epoch),
        train_s: Some(fit_s),
        train_cpu_s: Some(fit_cpu_s),
        ..Row::new(
            model,
            mask,
            &valid,
            &test,
            (fit_s, fit_cpu_s),
            serde_json::to_value(cfg)?,
        )
    };
    Ok((row, fit))
}
