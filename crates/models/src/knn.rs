//! Item-kNN: cosine similarity between items' user sets with shrinkage,
//! `sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink)`, keeping
//! the `k` most similar neighbours of each item. A user's score for item j
//! is the sum of similarities from the distinct items of the history.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{shape_err, ModelConfig, Progress, Recommender, Result, TrainData};

/// Item-kNN hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ItemKnnConfig {
    /// Neighbours kept per item.
    pub k: usize,
    /// Shrinkage added to the cosine denominator (damps rare co-occurrences).
    pub shrink: f64,
}

impl Default for ItemKnnConfig {
    fn default() -> Self {
        ItemKnnConfig {
            k: 100,
            shrink: 0.0,
        }
    }
}

pub struct ItemKnn {
    cfg: ItemKnnConfig,
    /// Neighbours actually kept per item (`k`, capped at items − 1).
    k: usize,
    /// `n_items * k` neighbour ids (u32::MAX = none) and similarities.
    neighbors: Vec<u32>,
    sims: Vec<f32>,
    n_items: usize,
}

impl ItemKnn {
    pub fn fit(cfg: &ItemKnnConfig, data: &TrainData, progress: Progress<'_>) -> Self {
        let n = data.n_items;
        let k = cfg.k.min(n.saturating_sub(1)).max(1);
        let user_sets = data.user_sets();
        let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (u, set) in user_sets.iter().enumerate() {
            for &i in set {
                item_users[i as usize].push(u as u32);
            }
        }
        let norms: Vec<f64> = item_users.iter().map(|u| (u.len() as f64).sqrt()).collect();
        let done = std::sync::atomic::AtomicU64::new(0);
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n], Vec::<u32>::new()),
                |(acc, touched), i| {
                    for &u in &item_users[i] {
                        for &j in &user_sets[u as usize] {
                            if acc[j as usize] == 0 {
                                touched.push(j);
                            }
                            acc[j as usize] += 1;
                        }
                    }
                    let mut cand: Vec<(f32, u32)> = touched
                        .iter()
                        .filter(|&&j| j as usize != i)
                        .map(|&j| {
                            let s = acc[j as usize] as f64
                                / (norms[i] * norms[j as usize] + cfg.shrink);
                            (s as f32, j)
                        })
                        .collect();
                    for &j in touched.iter() {
                        acc[j as usize] = 0;
                    }
                    touched.clear();
                    let keep = k.min(cand.len());
                    if keep > 0 && cand.len() > keep {
                        cand.select_nth_unstable_by(keep - 1, |a, b| {
                            b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                        });
                        cand.truncate(keep);
                    }
                    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if d.is_multiple_of(256) {
                        progress(d, n as u64);
                    }
                    (
                        cand.iter().map(|c| c.1).collect(),
                        cand.iter().map(|c| c.0).collect(),
                    )
                },
            )
            .collect();
        let mut neighbors = vec![u32::MAX; n * k];
        let mut sims = vec![0f32; n * k];
        for (i, (js, ss)) in rows.into_iter().enumerate() {
            neighbors[i * k..i * k + js.len()].copy_from_slice(&js);
            sims[i * k..i * k + ss.len()].copy_from_slice(&ss);
        }
        ItemKnn {
            cfg: cfg.clone(),
            k,
            neighbors,
            sims,
            n_items: n,
        }
    }

    pub fn from_parts(
        cfg: ItemKnnConfig,
        nb: (Vec<usize>, Vec<f32>),
        sims: (Vec<usize>, Vec<f32>),
    ) -> Result<Self> {
        if nb.0.len() != 2 || nb.0 != sims.0 || nb.0[1] > cfg.k.max(1) {
            return Err(shape_err(
                "neighbors",
                "[items, <= k] like similarities",
                &nb.0,
            ));
        }
        Ok(ItemKnn {
            n_items: nb.0[0],
            k: nb.0[1],
            neighbors: nb
                .1
                .iter()
                .map(|&x| if x < 0.0 { u32::MAX } else { x as u32 })
                .collect(),
            sims: sims.1,
            cfg,
        })
    }
}

impl aisle_eval::Scorer for ItemKnn {
    fn score(&self, _user: u32, history: &[u32], out: &mut [f32]) {
        let k = self.k;
        let mut seen: Vec<u32> = history.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for &i in &seen {
            let i = i as usize;
            if i >= self.n_items {
                continue;
            }
            for (&j, &s) in self.neighbors[i * k..(i + 1) * k]
                .iter()
                .zip(&self.sims[i * k..(i + 1) * k])
            {
                if j == u32::MAX {
                    break;
                }
                out[j as usize] += s;
            }
        }
    }
}

impl Recommender for ItemKnn {
    fn kind(&self) -> &'static str {
        "itemknn"
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::ItemKnn(self.cfg.clone())
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let shape = vec![self.n_items, self.k];
        vec![
            (
                "neighbors".into(),
                shape.clone(),
                // Item ids are exact in f32 up to 2^24 (16.7M items).
                self.neighbors
                    .iter()
                    .map(|&j| if j == u32::MAX { -1.0 } else { j as f32 })
                    .collect(),
            ),
            ("similarities".into(), shape, self.sims.clone()),
        ]
    }
}
