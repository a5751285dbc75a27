//! The model commands: `bench`, `evaluate`, `train` and `models` (the
//! registry). Each parses its arguments into an `aisle_train` call and
//! prints what it returns.

use std::path::PathBuf;

use aisle_ingest::DatasetConfig;
use aisle_store::DatasetMeta;
use aisle_train::bench::{Plan, Selection};
use aisle_train::hyper::{self, Overrides};
use aisle_train::leaderboard::{BenchPart, BenchReport, Masking};
use aisle_train::{Kind, StoreData};
use anyhow::{bail, Context, Result};

use super::data::run_ingest;
use super::report::{default_out, write_outputs};
use super::{registry, store_dir, unix_now, Bars};
use crate::args::{BenchArgs, EvaluateArgs, ModelArgs, ModelsAction, ModelsArgs, TrainArgs};

/// The overrides of `--model-config FILE` for the models `keep` accepts,
/// then those of `--set`.
fn overrides(
    file: Option<&std::path::Path>,
    set: &[String],
    keep: impl Fn(&str) -> bool,
) -> Result<Overrides> {
    let mut o: Overrides = match file {
        // A config file may describe more models than are run: keep the selected ones.
        Some(p) => hyper::file_overrides(p)?
            .into_iter()
            .filter(|(om, _, _)| om.as_deref().is_some_and(&keep))
            .collect(),
        None => Vec::new(),
    };
    o.extend(hyper::parse_overrides(set)?);
    Ok(o)
}

/// Runs the models of `m` on the store's leave-one-out split and writes and
/// prints the leaderboard. The store's data is loaded only by the process
/// that runs models (with a child process per model, not the parent).
fn report_models(store: &str, m: &ModelArgs, default_out: PathBuf) -> Result<()> {
    let masking = Masking::parse(m.masking.as_deref())?;
    let models: Vec<String> = m
        .models
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let selection = Selection {
        overrides: overrides(m.h.model_config.as_deref(), &m.h.set, |om| {
            models.iter().any(|x| x == om)
        })?,
        models,
        seq_feature: m.h.seq_feature.clone(),
        two_stage_seq: (m.two_stage_seq != "none").then(|| m.two_stage_seq.clone()),
        time_budget: m.h.time_budget,
    };
    let plan = Plan::new(&selection)?;
    let parts = plan.parts();
    if let Some(k) = m.part {
        let part = parts
            .get(k)
            .with_context(|| format!("--part {k}: this run has {} parts", parts.len()))?;
        let mut report = part.run(store, &StoreData::load(store)?, masking, &Bars)?;
        let curves = std::mem::take(&mut report.curves);
        println!("{}", serde_json::to_string(&BenchPart { report, curves })?);
        return Ok(());
    }
    let out = m.out.clone().unwrap_or(default_out);
    let report = if parts.len() > 1 && !m.in_process {
        let mut reports = Vec::new();
        for (k, p) in parts.iter().enumerate() {
            reports.push(run_part(k, &p.names())?);
        }
        BenchReport::merge(reports)?
    } else {
        plan.run(store, &StoreData::load(store)?, masking, &Bars)?
    };
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.model, s.reason);
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    write_outputs(&out, &report)?;
    if m.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", std::fs::read_to_string(out.join("leaderboard.md"))?);
    }
    eprintln!(
        "wrote {}/{{bench.json,leaderboard.md,leaderboard.svg}}",
        out.display()
    );
    Ok(())
}

/// Runs part `k` of this command's plan in a child process (the same
/// command line with `--part k`) and reads back its report.
fn run_part(k: usize, names: &[String]) -> Result<BenchReport> {
    let exe = std::env::current_exe().context("locating the aisle binary")?;
    let out = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .args(["--part", &k.to_string()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting a model's process")?;
    if !out.status.success() {
        bail!(
            "{} failed in its own process ({})",
            names.join(", "),
            out.status
        );
    }
    let part: BenchPart = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the report of {}", names.join(", ")))?;
    let mut report = part.report;
    report.curves = part.curves;
    Ok(report)
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let cfg = match (&a.preset, &a.config) {
        (Some(p), _) => Some(DatasetConfig::preset(p)?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            Some(DatasetConfig::from_toml(&text)?)
        }
        (None, None) => None,
    };
    let name = cfg.as_ref().map(|c| c.name.clone());
    // Every file goes under --out when it is given; else under bench-out/NAME.
    let out_of = |dataset: &str| a.m.out.clone().unwrap_or_else(|| default_out(dataset));
    let store = match (&a.store, &name) {
        (Some(s), _) => s.clone(),
        (None, Some(n)) => out_of(n).join("store").display().to_string(),
        (None, None) => bail!("give --preset/--config with --input, or --store"),
    };
    // Reuse the store when it already holds this data set.
    let reusable = match aisle_store::open_existing(&store) {
        Ok(s) => {
            let meta = DatasetMeta::read(s.as_ref())?;
            s.stats()?.events > 0
                && (name.is_none() || meta.as_ref().map(|m| &m.name) == name.as_ref())
        }
        Err(_) => false,
    };
    if !reusable {
        let (Some(cfg), Some(input)) = (cfg, &a.input) else {
            bail!("store {store} does not hold this data set yet: give --input FILE to ingest it");
        };
        eprintln!("ingesting {} into {store}", input.display());
        let report = run_ingest(cfg, input, None, &store)?;
        eprintln!("{}", report.summary());
    } else if a.m.part.is_none() {
        eprintln!("reusing store {store}");
    }
    let out = out_of(&StoreData::dataset_of(&store)?);
    report_models(&store, &a.m, out)
}

pub fn evaluate(a: EvaluateArgs) -> Result<()> {
    // A store that is not there is a clear error before any child starts.
    StoreData::dataset_of(&a.store)?;
    let out = store_dir(&a.store)?.join("evaluation");
    report_models(&a.store, &a.m, out)
}

pub fn train(a: TrainArgs) -> Result<()> {
    let overrides = overrides(a.h.model_config.as_deref(), &a.h.set, |om| om == a.model)?;
    // (Over PostgreSQL a connection of its own: opened once.)
    let reg = aisle_train::Registry::of_store(&a.store)?;
    let out = match a.out.clone() {
        Some(p) => p,
        None => {
            let name = format!("{}-{}.safetensors", a.model, unix_now());
            match &reg {
                Some(reg) => reg.dir().join(name),
                None => store_dir(&a.store)?.join("models").join(name),
            }
        }
    };
    let kind = Kind::parse(&a.model)
        .ok_or_else(|| aisle_train::TrainError::UnknownModel(a.model.clone()))?;
    let purchase_only = "applies to the purchase models (ranker, logreg)";
    if let Kind::Purchase(p) = kind {
        if a.promote
            || a.promote_if_better
            || (a.h.time_budget.is_some() && a.h.seq_feature.is_none())
        {
            bail!("--promote, --promote-if-better and --time-budget apply to the served models ({}); --time-budget also to --seq-feature", aisle_train::names_where(Kind::served));
        }
        // The ranker's keys apply to it; with --seq-feature, the others to the sequence model.
        let cfg = hyper::purchase_config(p, &overrides, a.h.seq_feature.is_none())?;
        let seq =
            a.h.seq_feature
                .as_deref()
                .map(|name| hyper::seq_config(name, &overrides, a.h.time_budget))
                .transpose()?;
        let report = aisle_train::purchase::train_and_save(
            &a.store,
            (p, &cfg),
            a.samples.as_deref(),
            seq.as_ref(),
            &out,
            &Bars,
        )?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if a.samples.is_some() {
        bail!("--samples {purchase_only}");
    }
    if a.h.seq_feature.is_some() {
        bail!("--seq-feature {purchase_only}");
    }
    match kind {
        Kind::Classical(_) if a.h.time_budget.is_some() => bail!(
            "--time-budget applies to sequence models ({})",
            aisle_train::names_where(|k| matches!(k, Kind::Sequence(_)))
        ),
        Kind::TwoStage => {
            bail!("`two-stage` is evaluated by `aisle bench|evaluate`, not trained on its own")
        }
        _ => {}
    }
    let data = StoreData::load(&a.store)?;
    let mut report = match kind {
        Kind::Sequence(_) => {
            let (arch, cfg) = hyper::seq_config(&a.model, &overrides, a.h.time_budget)?;
            aisle_train::stepped(&Bars, &a.model, |progress| {
                aisle_train::train_sequence(&a.store, &data, (arch, &cfg), &out, progress)
            })?
        }
        _ => {
            let cfg = hyper::model_configs(std::slice::from_ref(&a.model), &overrides)?.remove(0);
            let categories = aisle_train::gat_categories(&a.store, &data.seqs, &cfg)?;
            aisle_train::stepped(&Bars, &a.model, |progress| {
                aisle_train::train_classical(&data, &cfg, categories.as_ref(), &out, progress)
            })?
        }
    };
    if let (None, Some(reg)) = (&a.out, &reg) {
        // Into the database too, over a PostgreSQL store (a no-op otherwise).
        reg.publish(&out)?;
    }
    let registry = || reg.as_ref().ok_or_else(|| super::no_registry(&a.store));
    if a.promote {
        let reg = registry()?;
        let version = reg.version_of(&out).context("--promote (drop --out)")?;
        reg.promote(&version)?;
        eprintln!("promoted {version}");
    } else if a.promote_if_better {
        let d = aisle_train::promote_if_better(registry()?, &data.seqs, &out)
            .context("--promote-if-better (drop --out)")?;
        eprintln!(
            "candidate NDCG@10 {:.4} vs serving {}: {}",
            d.candidate.ndcg10,
            d.serving
                .as_ref()
                .map_or("none".to_string(), |s| format!("{:.4}", s.ndcg10)),
            match d.action {
                aisle_train::Action::Promoted => "promoted",
                aisle_train::Action::Kept => "kept the serving version",
            }
        );
        report.decision = Some(d);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub fn models(a: ModelsArgs) -> Result<()> {
    match a.action {
        ModelsAction::List { store, json } => {
            let list = registry(&store)?.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no models yet (aisle train --store {store} --model sasrec --promote)");
            } else {
                for e in list {
                    let ndcg = e
                        .meta
                        .get("best_valid_ndcg10")
                        .and_then(|v| v.as_str())
                        .unwrap_or("-");
                    println!(
                        "{} {:<40} {:<8} valid NDCG@10 {ndcg}",
                        if e.promoted { "*" } else { " " },
                        e.version,
                        e.model
                    );
                }
            }
        }
        ModelsAction::Promote { store, version } => {
            registry(&store)?.promote(&version)?;
            println!("promoted {version}");
        }
        ModelsAction::Rollback { store } => {
            let v = registry(&store)?.rollback()?;
            println!("promoted {v} again");
        }
    }
    Ok(())
}
