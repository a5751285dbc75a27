//! `aisle bench` and `aisle evaluate` as a library: the models asked for,
//! their hyperparameters routed to each ([`Plan::new`]), then each family
//! fitted and evaluated under its protocol ([`Plan::run`]) into one
//! [`BenchReport`].

use aisle_models::ModelConfig;
use aisle_rank::RankerConfig;
use aisle_seq::{Arch, SeqConfig};

use crate::fit::{stepped, Monitor};
use crate::hyper::{self, bad, Overrides};
use crate::kind::{Kind, PurchaseModel};
use crate::leaderboard::{self, BenchReport, BestByMasking, Masking, ResultRow, Row};
use crate::purchase::SeqFeatureSpec;
use crate::{Result, StoreData, TrainError};

/// What a run was asked for: model names, hyperparameter overrides and the
/// options that attach a sequence model to another family.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub models: Vec<String>,
    pub overrides: Overrides,
    /// A sequence model behind the purchase models' `seq_score` feature.
    pub seq_feature: Option<String>,
    /// A sequence model as an extra two-stage candidate source.
    pub two_stage_seq: Option<String>,
    /// Training time budget of the sequence models, seconds.
    pub time_budget: Option<f64>,
}

/// The configs of every model of a run, by family.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub classical: Vec<ModelConfig>,
    pub sequence: Vec<(Arch, SeqConfig)>,
    /// Present when `two-stage` was asked for, with its optional sequence source.
    pub two_stage: Option<Option<(Arch, SeqConfig)>>,
    pub purchase: Vec<(PurchaseModel, RankerConfig)>,
    pub seq_feature: Option<SeqFeatureSpec>,
}

impl Plan {
    /// Parses the names and routes each override: scoped ones to their
    /// model, unscoped ones to every selected model that has the key (an
    /// error if none has it, or if a scoped one names no selected model).
    pub fn new(sel: &Selection) -> Result<Plan> {
        if sel.models.is_empty() {
            return Err(bad("--models is empty".into()));
        }
        let mut kinds = Vec::new();
        for m in &sel.models {
            kinds.push(Kind::parse(m).ok_or_else(|| TrainError::UnknownModel(m.clone()))?);
        }
        // The two-stage sequence source counts only when two-stage runs.
        let sel = &Selection {
            two_stage_seq: sel
                .two_stage_seq
                .clone()
                .filter(|_| kinds.contains(&Kind::TwoStage)),
            ..sel.clone()
        };
        let classical: Vec<String> = kinds
            .iter()
            .filter(|k| matches!(k, Kind::Classical(_)))
            .map(|k| k.name().to_string())
            .collect();
        let purchase: Vec<PurchaseModel> = kinds
            .iter()
            .filter_map(|k| match k {
                Kind::Purchase(p) => Some(*p),
                _ => None,
            })
            .collect();
        if sel.seq_feature.is_some() && purchase.is_empty() {
            return Err(bad(
                "--seq-feature applies to the purchase models (ranker, logreg)".into(),
            ));
        }
        let uses_seq = kinds.iter().any(|k| matches!(k, Kind::Sequence(_)))
            || sel.two_stage_seq.is_some()
            || sel.seq_feature.is_some();
        check_routes(sel, &classical, &purchase, uses_seq)?;
        let classical_overrides: Overrides = sel
            .overrides
            .iter()
            .filter(|(om, k, _)| match om {
                Some(m) => classical.contains(m),
                None => classical_has(&classical, k),
            })
            .cloned()
            .collect();
        let seq = |name: &str| hyper::seq_config(name, &sel.overrides, sel.time_budget);
        let mut plan = Plan {
            classical: hyper::model_configs(&classical, &classical_overrides)?,
            ..Plan::default()
        };
        for k in &kinds {
            match k {
                Kind::Sequence(a) => plan.sequence.push(seq(a.name())?),
                Kind::TwoStage => {
                    plan.two_stage = Some(sel.two_stage_seq.as_deref().map(seq).transpose()?)
                }
                Kind::Purchase(p) => plan
                    .purchase
                    .push((*p, hyper::purchase_config(*p, &sel.overrides, false)?)),
                Kind::Classical(_) => {}
            }
        }
        plan.seq_feature = sel.seq_feature.as_deref().map(seq).transpose()?;
        Ok(plan)
    }

    /// Fits and evaluates every model of the plan on `data` (the store at
    /// `url`): classical and sequence models under leave-one-out, two-stage
    /// likewise, purchase models on their temporal hold-out.
    pub fn run(
        &self,
        url: &str,
        data: &StoreData,
        masking: Masking,
        monitor: &dyn Monitor,
    ) -> Result<BenchReport> {
        let seqs = &data.seqs;
        let (mut rows, skipped) = if self.classical.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let gat = self.classical.iter().find(|c| c.name() == "gat");
            let categories = match gat {
                Some(cfg) => crate::gat_categories(url, seqs, cfg)?,
                None => None,
            };
            leaderboard::run_models(seqs, categories.as_ref(), &self.classical, masking, monitor)?
        };
        let mut curves = Vec::new();
        for arch_cfg in &self.sequence {
            let side = side_info(url, data, &arch_cfg.1)?;
            let (row, curve) = leaderboard::run_seq(seqs, arch_cfg, side, masking, monitor)?;
            rows.push(row);
            curves.push(curve);
        }
        if let Some(seq_source) = &self.two_stage {
            rows.push(two_stage(url, data, seq_source.as_ref(), masking, monitor)?);
        }
        let mut purchase_protocol = None;
        let mut purchase_rows = Vec::new();
        if !self.purchase.is_empty() {
            let (rows, proto) =
                crate::purchase::run(url, &self.purchase, self.seq_feature.as_ref(), monitor)?;
            purchase_rows = rows;
            purchase_protocol = Some(proto);
        }
        let mut report = BenchReport {
            dataset: data.dataset.clone(),
            protocol: leaderboard::protocol_json(seqs, &data.protocol, masking),
            purchase_protocol,
            best_by_validation: None,
            best_by_masking: BestByMasking::default(),
            seen_target_share: aisle_eval::seen_target_share(&seqs.seqs),
            warnings: Vec::new(),
            results: rows
                .into_iter()
                .map(ResultRow::Ranking)
                .chain(purchase_rows.into_iter().map(ResultRow::Purchase))
                .collect(),
            skipped,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            curves,
        };
        report.finish();
        Ok(report)
    }

    /// The plan as parts that can each run in a process of its own: one
    /// per classical and sequence model, two-stage, and the purchase models
    /// together (their AUC difference is paired over the same test users).
    /// Running the parts and merging them ([`BenchReport::merge`]) gives
    /// the rows of [`Plan::run`], in its order.
    pub fn parts(&self) -> Vec<Plan> {
        let mut out: Vec<Plan> = Vec::new();
        for c in &self.classical {
            out.push(Plan {
                classical: vec![c.clone()],
                ..Plan::default()
            });
        }
        for s in &self.sequence {
            out.push(Plan {
                sequence: vec![s.clone()],
                ..Plan::default()
            });
        }
        if let Some(ts) = &self.two_stage {
            out.push(Plan {
                two_stage: Some(ts.clone()),
                ..Plan::default()
            });
        }
        if !self.purchase.is_empty() {
            out.push(Plan {
                purchase: self.purchase.clone(),
                seq_feature: self.seq_feature.clone(),
                ..Plan::default()
            });
        }
        out
    }

    /// The model names of the plan, as its rows will name them.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .classical
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        v.extend(self.sequence.iter().map(|(a, _)| a.name().to_string()));
        if self.two_stage.is_some() {
            v.push("two-stage".into());
        }
        v.extend(self.purchase.iter().map(|(p, _)| p.name().to_string()));
        v
    }
}

fn classical_has(classical: &[String], key: &String) -> bool {
    classical
        .iter()
        .filter_map(|c| ModelConfig::default_for(c).ok())
        .any(|c| c.keys().contains(key))
}

/// Every override must reach a selected model.
fn check_routes(
    sel: &Selection,
    classical: &[String],
    purchase: &[PurchaseModel],
    uses_seq: bool,
) -> Result<()> {
    let seq_keys = if uses_seq {
        hyper::seq_keys()
    } else {
        Vec::new()
    };
    let purchase_keys = if purchase.is_empty() {
        Vec::new()
    } else {
        hyper::ranker_keys()
    };
    for (om, k, _) in &sel.overrides {
        match om {
            None if !classical_has(classical, k)
                && !seq_keys.contains(k)
                && !purchase_keys.contains(k) =>
            {
                return Err(bad(format!(
                    "--set {k}: no selected model has a hyperparameter `{k}`"
                )));
            }
            Some(om)
                if (!sel.models.contains(om) || Kind::parse(om) == Some(Kind::TwoStage))
                    && sel.seq_feature.as_ref() != Some(om)
                    && sel.two_stage_seq.as_ref() != Some(om) =>
            {
                return Err(bad(format!(
                    "--set {om}.{k}: model `{om}` is not in --models"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Category and price side information when the config asks for it.
fn side_info(url: &str, data: &StoreData, cfg: &SeqConfig) -> Result<Option<aisle_seq::SideInfo>> {
    if cfg.side_info {
        crate::side_info(url, &data.seqs)
    } else {
        Ok(None)
    }
}

/// The two-stage row, with its optional sequence source trained first.
fn two_stage(
    url: &str,
    data: &StoreData,
    seq_source: Option<&(Arch, SeqConfig)>,
    masking: Masking,
    monitor: &dyn Monitor,
) -> Result<Row> {
    let seqs = &data.seqs;
    let extra = match seq_source {
        Some((arch, cfg)) => {
            let side = side_info(url, data, cfg)?;
            let t0 = std::time::Instant::now();
            let (model, _) = stepped(monitor, arch.name(), |progress| {
                crate::fit_sequence(*arch, cfg, seqs, side, progress)
            })?;
            Some((arch.name(), model, t0.elapsed().as_secs_f64()))
        }
        None => None,
    };
    crate::twostage::run(
        seqs,
        masking,
        // One network: the re-ranker trains twice per run on ~650k
        // candidate rows (BENCHMARKS §6.3 was measured so).
        &RankerConfig {
            ensemble: 1,
            ..Default::default()
        },
        extra
            .as_ref()
            .map(|(n, m, s)| (*n, m as &dyn aisle_eval::Scorer, *s)),
    )
}
