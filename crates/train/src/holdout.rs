//! Judging an artifact on a store's newest data, whatever its kind.

use std::collections::HashMap;
use std::path::Path;

use aisle_eval::{evaluate_loo, LooConfig, Stage};
use aisle_features::Sequences;
use serde::{Deserialize, Serialize};

use crate::{Artifact, Model, Result, Servable};

/// The newest hold-out: each user's last item, history = everything before
/// it, full ranking without masking, K = 10.
pub const HOLDOUT_PROTOCOL: &str =
    "newest hold-out: each user's last item as target, all earlier items as history; full ranking over the store's current items, no masking; items the model never saw score -inf";

/// One model's figures on the newest hold-out ([`HOLDOUT_PROTOCOL`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// The artifact's file name.
    pub version: Option<String>,
    pub model: String,
    pub ndcg10: f64,
    pub recall10: f64,
    pub mrr10: f64,
    pub users: u64,
    /// Current items the model has no number for (they score -inf).
    pub items_unknown_to_model: usize,
    pub eval_s: f64,
}

/// An artifact's model and how its items line up with a store's.
pub struct MappedModel {
    pub model: Model,
    /// Item id -> the model's item.
    pub index: HashMap<String, u32>,
    /// The store's item (dense id) -> the model's item.
    pub map: Vec<Option<u32>>,
}

impl MappedModel {
    /// Loads `artifact` and maps its item ids onto `items` (a store's current ids).
    pub fn load(artifact: &Path, items: &[String]) -> Result<MappedModel> {
        let Artifact { header, model } = Artifact::load(artifact)?;
        let index: HashMap<String, u32> = header
            .item_ids
            .into_iter()
            .enumerate()
            .map(|(i, s)| (s, i as u32))
            .collect();
        let map = items.iter().map(|s| index.get(s).copied()).collect();
        Ok(MappedModel { model, index, map })
    }
}

impl aisle_eval::Scorer for MappedModel {
    /// Scores over the store's numbering; items the model never saw get -inf.
    fn score(&self, _user: u32, history: &[u32], out: &mut [f32]) {
        let h: Vec<u32> = history
            .iter()
            .filter_map(|&i| self.map[i as usize])
            .collect();
        let mut own = vec![0f32; self.model.n_items()];
        self.model.score_history(&h, &mut own);
        for (o, m) in out.iter_mut().zip(&self.map) {
            *o = m.map_or(f32::NEG_INFINITY, |j| own[j as usize]);
        }
    }
}

/// Scores an artifact on the store's current sequences ([`HOLDOUT_PROTOCOL`]).
/// Its item ids are mapped onto the current ones, so a model trained on
/// older data is judged on the same targets as a new one.
pub fn holdout_eval(seqs: &Sequences, artifact: &Path) -> Result<Holdout> {
    let mapped = MappedModel::load(artifact, &seqs.items)?;
    let unknown = mapped.map.iter().filter(|m| m.is_none()).count();
    let r = evaluate_loo(
        &mapped,
        &seqs.seqs,
        seqs.items.len(),
        &[],
        &LooConfig {
            stage: Stage::Test,
            masking: false,
            ks: vec![10],
            list_k: 0,
        },
    );
    Ok(Holdout {
        version: artifact
            .file_name()
            .map(|f| f.to_string_lossy().to_string()),
        model: mapped.model.kind().to_string(),
        ndcg10: r.ndcg(10),
        recall10: r.recall(10),
        mrr10: r.mrr(10),
        users: r.users,
        items_unknown_to_model: unknown,
        eval_s: r.eval_s,
    })
}
