//! `aisle bench`, `aisle evaluate` and `aisle train`: the leave-one-out
//! full-ranking protocol of shared/baselines/PROTOCOL.md over the models of
//! aisle-models, with a JSON report, a markdown leaderboard and an SVG chart.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aisle_eval::{evaluate_loo, LooConfig, LooResult, Stage};
use aisle_features::Sequences;
use aisle_models::{ModelConfig, TrainData};
use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::commands::with_bar;

/// Parsed overrides: (model or None for all, key, value).
pub type Overrides = Vec<(Option<String>, String, String)>;

pub fn parse_overrides(sets: &[String]) -> Result<Overrides> {
    sets.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("--set {s:?}: expected key=value"))?;
            let (model, key) = match k.split_once('.') {
                Some((m, k)) => (Some(m.trim().to_string()), k.trim().to_string()),
                None => (None, k.trim().to_string()),
            };
            if key.is_empty() {
                bail!("--set {s:?}: empty key");
            }
            Ok((model, key, v.trim().to_string()))
        })
        .collect()
}

/// Reads a model-config TOML (`[model] key = value` tables, see
/// config/models.toml) as overrides scoped to each model.
pub fn file_overrides(path: &Path) -> Result<Overrides> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut out = Vec::new();
    for (model, v) in table {
        if !SEQ_MODELS.contains(&model.as_str()) {
            ModelConfig::default_for(&model).with_context(|| format!("in {}", path.display()))?;
        }
        let toml::Value::Table(keys) = v else {
            bail!(
                "{}: `{model}` must be a table of hyperparameters",
                path.display()
            );
        };
        for (k, v) in keys {
            out.push((Some(model.clone()), k, v.to_string()));
        }
    }
    Ok(out)
}

/// The config of `model` with the overrides that apply to it. A key given
/// without a model prefix applies to every listed model that has it; it is an
/// error if none does.
pub fn model_configs(models: &[String], overrides: &Overrides) -> Result<Vec<ModelConfig>> {
    let mut used = vec![false; overrides.len()];
    let mut out = Vec::new();
    for m in models {
        let base = ModelConfig::default_for(m)?;
        let keys = base.keys();
        let mine: Vec<(String, String)> = overrides
            .iter()
            .enumerate()
            .filter(|(_, (om, k, _))| match om {
                Some(om) => om == m,
                None => keys.contains(k),
            })
            .map(|(i, (_, k, v))| {
                used[i] = true;
                (k.clone(), v.clone())
            })
            .collect();
        out.push(base.with_overrides(&mine)?);
    }
    for (i, (om, k, _)) in overrides.iter().enumerate() {
        if !used[i] {
            match om {
                Some(m) if !models.contains(m) => {
                    bail!("--set {m}.{k}: model `{m}` is not in --models")
                }
                _ => bail!("--set {k}: no selected model has a hyperparameter `{k}`"),
            }
        }
    }
    Ok(out)
}

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

/// Peak resident memory since the last reset, in MB (Linux; 0 elsewhere).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Resets the peak-RSS counter so each model's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user + system) of this process so far (Linux; 0 elsewhere).
pub(crate) fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (USER_HZ = 100 on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// One row of the leaderboard.
#[derive(Debug, Clone, Serialize)]
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
    pub(crate) fn new(
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

/// How a masking choice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    ModelDefault,
    On,
    Off,
}

pub fn parse_masking(s: Option<&str>) -> Result<Masking> {
    Ok(match s {
        None => Masking::ModelDefault,
        Some("on") | Some("true") => Masking::On,
        Some("off") | Some("false") => Masking::Off,
        Some(o) => bail!("--masking must be on or off, got {o:?}"),
    })
}

/// A model that could not run on this data set (e.g. EASE on a huge catalog).
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub model: String,
    pub reason: String,
}

/// Trains and evaluates each config; one row per model that ran, and the
/// models that refused this data set (too large) with their reason.
pub fn run_models(
    seqs: &Sequences,
    configs: &[ModelConfig],
    masking: Masking,
) -> Result<(Vec<Row>, Vec<Skipped>)> {
    if seqs.users.is_empty() || seqs.items.is_empty() {
        bail!("the split is empty: no users with interactions under this protocol");
    }
    let train = loo_train(seqs);
    let popularity = train.item_counts();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for cfg in configs {
        let name = cfg.name();
        reset_peak_rss();
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let fitted = with_bar(name, |progress| aisle_models::fit(cfg, &train, progress));
        let model = match fitted {
            Ok(m) => m,
            Err(e @ aisle_models::ModelError::TooLarge { .. }) => {
                tracing::warn!(model = name, "skipped: {e}");
                eprintln!("skipping {name}: {e}");
                skipped.push(Skipped {
                    model: name.to_string(),
                    reason: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("training {name}")),
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
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ResultRow {
    Ranking(Row),
    Purchase(crate::purchase::PurchaseRow),
}

/// The whole report printed by `aisle bench --json`.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub dataset: String,
    pub protocol: serde_json::Value,
    /// The purchase task's protocol, when purchase models ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_protocol: Option<serde_json::Value>,
    pub results: Vec<ResultRow>,
    /// Models that refused this data set, with the reason.
    pub skipped: Vec<Skipped>,
    /// The model with the best validation NDCG@10 (model selection never looks at test).
    pub best_by_validation: Option<String>,
    pub threads: usize,
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
            Masking::ModelDefault => "model default: on for pop/itemknn/ease/bpr/als/lightgcn (train+validation items masked, the target never), off for repeat",
            Masking::On => "on for every model (forced by --masking on)",
            Masking::Off => "off for every model (forced by --masking off)",
        },
        "ties": "metrics are expected values under uniformly random tie-breaking (target rank uniform over its tie block); top-10 lists for coverage break ties by item index",
        "ks": [10, 20],
        "metrics": "Recall@K (= HitRate@K with one target), NDCG@K, MRR@K averaged over users with a test target; coverage@10 = share of items in any top-10; popularity_bias@10 = mean training popularity of top-10 items / mean item popularity",
        "users": seqs.users.len(),
        "items": seqs.items.len(),
        "interactions": seqs.interactions(),
        "sequences": protocol,
    })
}

pub fn best_by_validation(rows: &[Row]) -> Option<String> {
    rows.iter()
        .max_by(|a, b| a.valid_ndcg10.total_cmp(&b.valid_ndcg10))
        .map(|r| r.model.clone())
}

/// Writes `bench.json`, `leaderboard.md` and `leaderboard.svg` into `dir`.
pub fn write_outputs(dir: &Path, report: &BenchReport) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    let mut md = String::new();
    let _ = writeln!(md, "# Leaderboard: {}\n", report.dataset);
    let _ = writeln!(
        md,
        "Leave-one-out, full ranking over {} items, {} users; test metrics of models trained on the train part. Masking per row. Best by validation NDCG@10: **{}**.\n",
        report.protocol["items"],
        report.protocol["users"],
        report.best_by_validation.as_deref().unwrap_or("-")
    );
    let _ = writeln!(md, "| model | masking | NDCG@10 | Recall@10 | MRR@10 | NDCG@20 | Recall@20 | coverage@10 | pop. bias@10 | valid NDCG@10 | fit s | fit CPU s | eval s | peak RSS MB |");
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut rows: Vec<&Row> = report
        .results
        .iter()
        .filter_map(|r| match r {
            ResultRow::Ranking(r) => Some(r),
            ResultRow::Purchase(_) => None,
        })
        .collect();
    rows.sort_by(|a, b| b.ndcg10.total_cmp(&a.ndcg10));
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.3} | {:.2} | {:.4} | {:.2} | {:.2} | {:.2} | {:.0} |",
            r.model, if r.masking { "on" } else { "off" }, r.ndcg10, r.recall10, r.mrr10, r.ndcg20, r.recall20,
            r.coverage10, r.popularity_bias10, r.valid_ndcg10, r.fit_s, r.fit_cpu_s, r.eval_s, r.peak_rss_mb
        );
    }
    let purchase: Vec<&crate::purchase::PurchaseRow> = report
        .results
        .iter()
        .filter_map(|r| match r {
            ResultRow::Purchase(p) => Some(p),
            ResultRow::Ranking(_) => None,
        })
        .collect();
    if !purchase.is_empty() {
        let _ = writeln!(
            md,
            "\n## Purchase probability (temporal hold-out)\n\n| model | AUC | AUC − logreg [95% CI] | log loss | prior log loss | accuracy | ECE | train rows (pos) | test rows (pos) | epochs (best) | fit s |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in purchase {
            let vs = p.auc_vs_logreg.as_ref().map_or("–".to_string(), |d| {
                format!("{:+.4} [{:+.4}, {:+.4}]", d.diff, d.ci95[0], d.ci95[1])
            });
            let _ = writeln!(
                md,
                "| {} | {:.4} | {vs} | {:.4} | {:.4} | {:.4} | {:.4} | {} ({}) | {} ({}) | {} ({}) | {:.1} |",
                p.model, p.auc, p.logloss, p.prior_logloss, p.accuracy, p.ece, p.train_rows,
                p.train_positives, p.test_rows, p.test_positives, p.epochs, p.best_epoch, p.fit_s
            );
        }
    }
    for s in &report.skipped {
        let _ = writeln!(md, "\nSkipped {}: {}", s.model, s.reason);
    }
    std::fs::write(dir.join("leaderboard.md"), md)?;
    std::fs::write(
        dir.join("leaderboard.svg"),
        svg_chart(&report.dataset, &rows),
    )?;
    Ok(())
}

fn svg_chart(title: &str, rows: &[&Row]) -> String {
    let (w, bar_h, gap, left) = (640.0, 14.0, 10.0, 90.0);
    let h = 50.0 + rows.len() as f64 * (2.0 * bar_h + gap) + 30.0;
    let max = rows
        .iter()
        .map(|r| r.recall10.max(r.ndcg10))
        .fold(1e-9, f64::max);
    let scale = (w - left - 70.0) / max;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{} — leave-one-out, full ranking</text>"#,
        xml(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="30" width="10" height="10" fill="#3b6ea8"/><text x="{}" y="39">NDCG@10</text><rect x="{}" y="30" width="10" height="10" fill="#e39a3b"/><text x="{}" y="39">Recall@10</text>"##,
        left + 14.0,
        left + 90.0,
        left + 104.0
    );
    for (k, r) in rows.iter().enumerate() {
        let y = 50.0 + k as f64 * (2.0 * bar_h + gap);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + bar_h + 4.0,
            xml(&r.model)
        );
        for (j, (v, color)) in [(r.ndcg10, "#3b6ea8"), (r.recall10, "#e39a3b")]
            .iter()
            .enumerate()
        {
            let yy = y + j as f64 * bar_h;
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{yy}" width="{:.1}" height="{}" fill="{color}"/>"#,
                v * scale,
                bar_h - 2.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}">{v:.4}</text>"#,
                left + v * scale + 4.0,
                yy + bar_h - 4.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Default output folder of a bench run.
pub fn default_out(dataset: &str) -> PathBuf {
    PathBuf::from("bench-out").join(dataset)
}

/// Sequence models run by `bench`/`evaluate`/`train` (trained with burn in aisle-seq).
pub const SEQ_MODELS: &[&str] = &["sasrec", "gru4rec", "lstm"];

/// The hyperparameter names of the sequence models (one config struct).
pub fn seq_keys() -> Vec<String> {
    match serde_json::to_value(aisle_seq::SeqConfig::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A sequence model's config: its defaults, then the overrides that name it
/// (or keys it has), then `--time-budget`.
pub fn seq_config(
    model: &str,
    overrides: &Overrides,
    time_budget: Option<f64>,
) -> Result<(aisle_seq::Arch, aisle_seq::SeqConfig)> {
    let arch = aisle_seq::Arch::parse(model)
        .with_context(|| format!("`{model}` is not a sequence model"))?;
    let keys = seq_keys();
    let mine: Vec<(String, String)> = overrides
        .iter()
        .filter(|(m, k, _)| match m {
            Some(m) => m == model,
            None => keys.contains(k),
        })
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect();
    let mut cfg = aisle_models::apply_overrides(&aisle_seq::SeqConfig::for_arch(arch), &mine)
        .map_err(|m| anyhow::anyhow!("bad hyperparameter for {model}: {m}"))?;
    if let Some(t) = time_budget {
        if !(t.is_finite() && t >= 0.0) {
            bail!("--time-budget must be a number of seconds >= 0");
        }
        cfg.time_budget_s = t;
    }
    Ok((arch, cfg))
}

/// Trains a sequence model with a progress bar.
pub(crate) fn train_seq(
    arch: aisle_seq::Arch,
    cfg: &aisle_seq::SeqConfig,
    seqs: &Sequences,
    side: Option<aisle_seq::SideInfo>,
) -> Result<(aisle_seq::SeqModel, aisle_seq::SeqFit)> {
    Ok(with_bar(arch.name(), |progress| {
        aisle_train::fit_sequence(arch, cfg, seqs, side, progress)
    })?)
}

/// The leaderboard's evaluation of one stage: K = 10 and 20, top-10 lists
/// kept for coverage and popularity bias.
fn bench_eval(
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
/// training curve as MODEL-curve.json and MODEL-curve.svg into `out`.
pub fn run_seq(
    model: &str,
    seqs: &Sequences,
    (arch, cfg): &(aisle_seq::Arch, aisle_seq::SeqConfig),
    side: Option<aisle_seq::SideInfo>,
    masking: Masking,
    out: &Path,
) -> Result<Row> {
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
    reset_peak_rss();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let (model_fit, fit) = train_seq(*arch, cfg, seqs, side)?;
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
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join(format!("{model}-curve.json")),
        serde_json::to_string_pretty(&fit)? + "\n",
    )?;
    std::fs::write(out.join(format!("{model}-curve.svg")), curve_svg(&fit))?;
    Ok(Row {
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
    })
}

/// Loss and validation NDCG@10 per epoch as an SVG line chart.
fn curve_svg(fit: &aisle_seq::SeqFit) -> String {
    let (w, h, pad) = (600.0, 260.0, 40.0);
    let n = fit.curve.len().max(2) as f64;
    let max_loss = fit.curve.iter().map(|e| e.loss).fold(1e-9, f64::max);
    let max_ndcg = fit
        .curve
        .iter()
        .map(|e| e.valid_ndcg10)
        .fold(1e-9, f64::max);
    let pts = |f: &dyn Fn(&aisle_seq::EpochLog) -> f64, max: f64| -> String {
        fit.curve
            .iter()
            .enumerate()
            .map(|(i, e)| {
                format!(
                    "{:.1},{:.1}",
                    pad + i as f64 / (n - 1.0) * (w - 2.0 * pad),
                    h - pad - f(e) / max * (h - 2.0 * pad)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="18" font-weight="bold">{} training: loss (blue, max {max_loss:.3}) and validation NDCG@10 (orange, max {max_ndcg:.4}); best epoch {}</text>
<polyline fill="none" stroke="#3b6ea8" stroke-width="2" points="{}"/>
<polyline fill="none" stroke="#e39a3b" stroke-width="2" points="{}"/>
<text x="{pad}" y="{}">epoch 1</text><text x="{}" y="{}" text-anchor="end">epoch {}</text>
</svg>
"##,
        fit.model,
        fit.best_epoch,
        pts(&|e| e.loss, max_loss),
        pts(&|e| e.valid_ndcg10, max_ndcg),
        h - 10.0,
        w - pad,
        h - 10.0,
        fit.curve.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_model_config_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/models.toml");
        let o = file_overrides(&path).unwrap();
        let models: Vec<String> = aisle_models::MODEL_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let classical: Overrides = o
            .iter()
            .filter(|(m, _, _)| !m.as_deref().is_some_and(|m| SEQ_MODELS.contains(&m)))
            .cloned()
            .collect();
        let from_file = model_configs(&models, &classical).unwrap();
        for sm in SEQ_MODELS {
            let scoped: Overrides = o
                .iter()
                .filter(|(m, _, _)| m.as_deref() == Some(sm))
                .cloned()
                .collect();
            let (arch, cfg) = seq_config(sm, &scoped, None).unwrap();
            assert_eq!(
                cfg,
                aisle_seq::SeqConfig::for_arch(arch),
                "[{sm}] in config/models.toml"
            );
            for k in seq_keys() {
                assert!(scoped.iter().any(|(_, ok, _)| ok == &k), "{sm}.{k} missing");
            }
        }
        for (m, c) in models.iter().zip(&from_file) {
            let d = ModelConfig::default_for(m).unwrap();
            assert_eq!(
                &d, c,
                "config/models.toml disagrees with the defaults of {m}"
            );
            // Every key is documented in the file.
            for k in d.keys() {
                assert!(
                    o.iter()
                        .any(|(om, ok, _)| om.as_deref() == Some(m.as_str()) && ok == &k),
                    "{m}.{k} missing"
                );
            }
        }
    }

    #[test]
    fn overrides_parse_and_scope() {
        let o = parse_overrides(&["factors=8".into(), "als.reg=0.5".into()]).unwrap();
        let c = model_configs(&["als".into(), "bpr".into()], &o).unwrap();
        assert_eq!(c[0].keys().len(), 6);
        let v = serde_json::to_value(&c[0]).unwrap();
        assert_eq!(
            (v["factors"].as_u64(), v["reg"].as_f64()),
            (Some(8), Some(0.5))
        );
        let v = serde_json::to_value(&c[1]).unwrap();
        assert_eq!(v["factors"].as_u64(), Some(8));
        assert!(parse_overrides(&["novalue".into()]).is_err());
        assert!(model_configs(
            &["pop".into()],
            &parse_overrides(&["factors=8".into()]).unwrap()
        )
        .is_err());
    }
}
