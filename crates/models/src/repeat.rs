//! Repeat-aware baseline: what a user bought before, weighted by recency,
//! plus a little popularity for the rest. For repeat-purchase shops (30% of
//! Online Retail test targets were bought before), so by default nothing is
//! masked.

use serde::{Deserialize, Serialize};

use crate::{shape_err, ModelConfig, Recommender, Result, TrainData};

/// Repeat-aware hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepeatConfig {
    /// Weight multiplier per step back in the user's history (1 = no decay).
    pub decay: f64,
    /// Weight of normalised popularity (max 1) added to every item.
    pub pop_weight: f64,
    /// Only the last `max_history` items count.
    pub max_history: usize,
}

impl Default for RepeatConfig {
    fn default() -> Self {
        RepeatConfig {
            decay: 0.98,
            pop_weight: 0.05,
            max_history: 200,
        }
    }
}

pub struct Repeat {
    cfg: RepeatConfig,
    popularity: Vec<f32>,
}

impl Repeat {
    pub fn fit(cfg: &RepeatConfig, data: &TrainData) -> Self {
        let counts = data.item_counts();
        let max = counts.iter().copied().max().unwrap_or(1).max(1) as f32;
        Repeat {
            cfg: cfg.clone(),
            popularity: counts.iter().map(|&c| c as f32 / max).collect(),
        }
    }

    pub fn from_parts(cfg: RepeatConfig, popularity: (Vec<usize>, Vec<f32>)) -> Result<Self> {
        if popularity.0.len() != 1 {
            return Err(shape_err("popularity", "[items]", &popularity.0));
        }
        Ok(Repeat {
            cfg,
            popularity: popularity.1,
        })
    }
}

impl aisle_eval::Scorer for Repeat {
    fn score(&self, _user: u32, history: &[u32], out: &mut [f32]) {
        let w = self.cfg.pop_weight as f32;
        for (o, p) in out.iter_mut().zip(&self.popularity) {
            *o = w * p;
        }
        let mut weight = 1.0f64;
        for &i in history.iter().rev().take(self.cfg.max_history) {
            if let Some(o) = out.get_mut(i as usize) {
                *o += weight as f32;
            }
            weight *= self.cfg.decay;
        }
    }
}

impl Recommender for Repeat {
    fn kind(&self) -> &'static str {
        "repeat"
    }
    fn default_masking(&self) -> bool {
        false
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::Repeat(self.cfg.clone())
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![(
            "popularity".into(),
            vec![self.popularity.len()],
            self.popularity.clone(),
        )]
    }
}
