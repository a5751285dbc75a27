//! EASE (Steck 2019): a closed-form linear item-item autoencoder.
//! `G = XᵀX + λI`, `P = G⁻¹`, `B = −P / diag(P)` with a zero diagonal; a
//! user's scores are `x_u B`. Memory is two dense item×item `f32` matrices,
//! so catalogs above `max_items` are refused.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{linalg, shape_err, ModelConfig, ModelError, Progress, Recommender, Result, TrainData};

/// EASE hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EaseConfig {
    /// L2 regularisation added to the Gram matrix diagonal.
    pub lambda: f64,
    /// Largest catalog EASE will attempt (memory: 8 · items² bytes).
    pub max_items: usize,
}

impl Default for EaseConfig {
    fn default() -> Self {
        EaseConfig {
            lambda: 500.0,
            max_items: 16_000,
        }
    }
}

pub struct Ease {
    cfg: EaseConfig,
    n: usize,
    weights: Vec<f32>,
}

impl Ease {
    pub fn fit(cfg: &EaseConfig, data: &TrainData, progress: Progress<'_>) -> Result<Self> {
        let n = data.n_items;
        if n > cfg.max_items {
            return Err(ModelError::TooLarge {
                model: "ease".into(),
                needed: format!("{:.1} GB for {n} items", 8.0 * (n * n) as f64 / 1e9),
                detail: format!("the catalog exceeds max_items = {}; raise it with --set max_items=N if memory allows", cfg.max_items),
            });
        }
        let user_sets = data.user_sets();
        let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (u, set) in user_sets.iter().enumerate() {
            for &i in set {
                item_users[i as usize].push(u as u32);
            }
        }
        let mut g = vec![0f32; n * n];
        g.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for &u in &item_users[i] {
                for &j in &user_sets[u as usize] {
                    row[j as usize] += 1.0;
                }
            }
            row[i] += cfg.lambda as f32;
        });
        let mut p = linalg::spd_inverse(&mut g, n, progress).map_err(|pivot| ModelError::BadConfig {
            model: "ease".into(),
            message: format!("the regularised Gram matrix is not positive definite at item {pivot}; raise lambda"),
        })?;
        drop(g);
        let diag: Vec<f32> = (0..n).map(|j| p[j * n + j]).collect();
        p.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if i == j { 0.0 } else { -*v / diag[j] };
            }
        });
        Ok(Ease {
            cfg: cfg.clone(),
            n,
            weights: p,
        })
    }

    pub fn from_parts(cfg: EaseConfig, w: (Vec<usize>, Vec<f32>)) -> Result<Self> {
        if w.0.len() != 2 || w.0[0] != w.0[1] {
            return Err(shape_err("weights", "[items, items]", &w.0));
        }
        Ok(Ease {
            cfg,
            n: w.0[0],
            weights: w.1,
        })
    }
}

impl aisle_eval::Scorer for Ease {
    fn score(&self, _user: u32, history: &[u32], out: &mut [f32]) {
        let mut seen: Vec<u32> = history.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for &i in &seen {
            let i = i as usize;
            if i < self.n {
                linalg::axpy(out, 1.0, &self.weights[i * self.n..(i + 1) * self.n]);
            }
        }
    }
}

impl Recommender for Ease {
    fn kind(&self) -> &'static str {
        "ease"
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::Ease(self.cfg.clone())
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![("weights".into(), vec![self.n, self.n], self.weights.clone())]
    }
}
