//! GAT: graph attention over the user–item graph (after Veličković et al.
//! 2018, one attention layer on the bipartite graph) — its config and its
//! inference side. The network is trained with burn in `aisle-graph`; what
//! it leaves here is plain tensors, so scoring needs no deep-learning crate.
//!
//! # The layer
//! Every node starts from a vector `x`: a user's free embedding; an item's
//! embedding plus its category's. A shared `W` makes each node's message
//! `z = x W`. A node `n` attends over itself and its neighbours `k` (a
//! user's items, an item's users), head by head (`z` split into `heads`
//! slices):
//!
//! ```text
//! e_nk = LeakyReLU_0.2(a_self · z_n + a_nb · z_k)     α_nk = softmax_k(e_nk)
//! out_n = x_n + Σ_k α_nk z_k                          score(u, i) = out_u · out_i
//! ```
//!
//! # A shopper the model never saw
//! A live shopper is a history of items, not a training user. Their `x` is
//! zero and their own message is the mean of their items' messages, so
//! `out_u = Σ α z` over their items and that mean: the same function
//! training uses for a share of its users (`user_dropout`), so the model
//! learns to serve it. The attention weights over the history are the
//! explanation: the item that weighed most in a recommendation.

use serde::{Deserialize, Serialize};

use crate::linalg::axpy;
use crate::{shape_err, ModelConfig, Recommender, Result};

/// GAT hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatConfig {
    /// Width of every vector (a multiple of `heads`).
    pub factors: usize,
    /// Attention heads (each attends over its `factors / heads` slice).
    pub heads: usize,
    /// Neighbours sampled per node per training step (all at inference).
    pub neighbors: usize,
    /// Passes over the training pairs.
    pub epochs: usize,
    /// (user, item) pairs per step.
    pub batch_size: usize,
    /// Uniform negative items shared by a step's pairs (sampled softmax).
    pub negatives: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Share of a step's users trained as a shopper the model never saw
    /// (their own embedding hidden): what serving a live history needs.
    pub user_dropout: f64,
    /// Add a category embedding to every item (when the store has categories).
    pub category: bool,
    /// Stop after this many seconds of training (0 = no budget).
    pub time_budget_s: f64,
    pub seed: u64,
}

impl Default for GatConfig {
    fn default() -> Self {
        GatConfig {
            factors: 64,
            heads: 2,
            neighbors: 32,
            epochs: 20,
            batch_size: 1024,
            negatives: 512,
            lr: 0.002,
            weight_decay: 0.0,
            user_dropout: 0.3,
            category: true,
            time_budget_s: 0.0,
            seed: 42,
        }
    }
}

impl GatConfig {
    /// Range checks serde cannot express.
    pub fn check(&self) -> Result<(), String> {
        if self.factors == 0 || self.heads == 0 || !self.factors.is_multiple_of(self.heads) {
            return Err("factors must be a positive multiple of heads".into());
        }
        if self.neighbors == 0 || self.batch_size == 0 || self.negatives == 0 {
            return Err("neighbors, batch_size and negatives must be positive".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err("lr must be positive".into());
        }
        if !(0.0..1.0).contains(&self.user_dropout) {
            return Err("user_dropout must be in [0, 1)".into());
        }
        if self.weight_decay < 0.0 {
            return Err("weight_decay must be >= 0".into());
        }
        Ok(())
    }
}

/// LeakyReLU with GAT's slope.
fn leaky(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.2 * x
    }
}

/// One head's attention weights into `out`: `softmax_k(LeakyReLU(q + s_k))`
/// over the terms `s` (a node's own first), with `q` the node's `a_self`
/// term. What the trainer's final propagation and a live history's
/// attention both compute, so serving weighs as training did.
pub fn attention_weights(q: f32, s: impl IntoIterator<Item = f32>, out: &mut Vec<f32>) {
    out.clear();
    out.extend(s.into_iter().map(|s| leaky(q + s)));
    let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in out.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    for l in out.iter_mut() {
        *l /= sum;
    }
}

/// A trained GAT: the propagated tables, and what attention over a live
/// history needs (the items' messages and the attention vectors).
pub struct Gat {
    cfg: GatConfig,
    /// `out` of every training user, `[users, factors]`.
    users: Vec<f32>,
    /// `out` of every item, `[items, factors]`.
    items: Vec<f32>,
    /// Every item's message `z = x W`, `[items, factors]`.
    item_z: Vec<f32>,
    /// `a_self` then `a_nb`, each `[heads, factors / heads]` (= `factors`).
    attention: Vec<f32>,
}

/// One history item's share of a recommendation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighed {
    /// The history item (the model's number).
    pub item: u32,
    /// Its attention weight, averaged over heads (the weights sum to 1 with
    /// the shopper's own term).
    pub attention: f32,
    /// Its message's dot product with the recommended item: its part of the score.
    pub contribution: f32,
}

impl Gat {
    /// Rebuilds a model from its tables (what the trainer and an artifact hand over).
    pub fn new(
        cfg: GatConfig,
        users: Vec<f32>,
        items: Vec<f32>,
        item_z: Vec<f32>,
        attention: Vec<f32>,
    ) -> Result<Gat> {
        let f = cfg.factors;
        let bad = |name: &str, want: &str, len: usize| Err(shape_err(name, want, &[len]));
        if !users.len().is_multiple_of(f) {
            return bad("user_out", &format!("[users, {f}]"), users.len());
        }
        if !items.len().is_multiple_of(f) || item_z.len() != items.len() {
            return bad(
                "item_z",
                &format!("[items, {f}] like item_out"),
                item_z.len(),
            );
        }
        if attention.len() != 2 * f {
            return bad("attention", &format!("[2, {f}]"), attention.len());
        }
        Ok(Gat {
            cfg,
            users,
            items,
            item_z,
            attention,
        })
    }

    pub fn from_parts(
        cfg: GatConfig,
        u: (Vec<usize>, Vec<f32>),
        i: (Vec<usize>, Vec<f32>),
        z: (Vec<usize>, Vec<f32>),
        a: (Vec<usize>, Vec<f32>),
    ) -> Result<Self> {
        let f = cfg.factors;
        for (name, t) in [("user_out", &u), ("item_out", &i), ("item_z", &z)] {
            if t.0.len() != 2 || t.0[1] != f {
                return Err(shape_err(name, &format!("[rows, {f}]"), &t.0));
            }
        }
        if a.0 != [2, f] {
            return Err(shape_err("attention", &format!("[2, {f}]"), &a.0));
        }
        Gat::new(cfg, u.1, i.1, z.1, a.1)
    }

    fn n_items(&self) -> usize {
        self.items.len() / self.cfg.factors
    }

    /// The attention of a live history (distinct known items): the weights
    /// per head of the shopper's own term (index 0) and of each item, and
    /// the shopper's vector.
    fn attend(&self, history: &[u32]) -> Option<(Vec<u32>, Vec<f32>, Vec<f32>)> {
        let f = self.cfg.factors;
        let h = self.cfg.heads;
        let dh = f / h;
        let mut items: Vec<u32> = history
            .iter()
            .copied()
            .filter(|&i| (i as usize) < self.n_items())
            .collect();
        items.sort_unstable();
        items.dedup();
        if items.is_empty() {
            return None;
        }
        let z = |i: u32| &self.item_z[i as usize * f..(i as usize + 1) * f];
        let mut own = vec![0f32; f];
        for &i in &items {
            axpy(&mut own, 1.0 / items.len() as f32, z(i));
        }
        let (a_self, a_nb) = self.attention.split_at(f);
        let n = items.len() + 1;
        // weights[k * h + head]
        let mut weights = vec![0f32; n * h];
        let mut out = vec![0f32; f];
        let mut head_w = Vec::with_capacity(n);
        for head in 0..h {
            let r = head * dh..(head + 1) * dh;
            let q: f32 = crate::linalg::dot(&a_self[r.clone()], &own[r.clone()]);
            let s = |m: &[f32]| crate::linalg::dot(&a_nb[r.clone()], &m[r.clone()]);
            attention_weights(
                q,
                std::iter::once(s(&own)).chain(items.iter().map(|&i| s(z(i)))),
                &mut head_w,
            );
            for (k, &w) in head_w.iter().enumerate() {
                weights[k * h + head] = w;
                let m = if k == 0 { &own[..] } else { z(items[k - 1]) };
                axpy(&mut out[r.clone()], w, &m[r.clone()]);
            }
        }
        Some((items, weights, out))
    }

    /// Which history items weighed most in recommending `item`, most first
    /// (the attention weight times the item's part of the score decides the
    /// order; only items that pushed the score up are listed).
    pub fn explain(&self, history: &[u32], item: u32) -> Vec<Weighed> {
        let f = self.cfg.factors;
        let h = self.cfg.heads;
        let dh = f / h;
        let Some(target) = self.items.get(item as usize * f..(item as usize + 1) * f) else {
            return Vec::new();
        };
        let Some((items, weights, _)) = self.attend(history) else {
            return Vec::new();
        };
        let mut out: Vec<Weighed> = items
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let z = &self.item_z[i as usize * f..(i as usize + 1) * f];
                let w = &weights[(k + 1) * h..(k + 2) * h];
                let contribution: f32 = (0..h)
                    .map(|head| {
                        let r = head * dh..(head + 1) * dh;
                        w[head] * crate::linalg::dot(&z[r.clone()], &target[r])
                    })
                    .sum();
                Weighed {
                    item: i,
                    attention: w.iter().sum::<f32>() / h as f32,
                    contribution,
                }
            })
            .filter(|w| w.contribution > 0.0)
            .collect();
        out.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        out
    }
}

impl aisle_eval::Scorer for Gat {
    fn score(&self, user: u32, history: &[u32], out: &mut [f32]) {
        let f = self.cfg.factors;
        let u = user as usize;
        let x = if (u + 1) * f <= self.users.len() {
            self.users[u * f..(u + 1) * f].to_vec()
        } else {
            match self.attend(history) {
                Some((_, _, v)) => v,
                None => {
                    out.fill(0.0);
                    return;
                }
            }
        };
        aisle_core::vector::dot_rows(&x, &self.items, out);
    }
}

impl Recommender for Gat {
    fn kind(&self) -> &'static str {
        "gat"
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::Gat(self.cfg.clone())
    }
    fn explain(&self, history: &[u32], item: u32) -> Option<(u32, f32)> {
        Gat::explain(self, history, item)
            .first()
            .map(|w| (w.item, w.attention))
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let f = self.cfg.factors;
        vec![
            (
                "user_out".into(),
                vec![self.users.len() / f, f],
                self.users.clone(),
            ),
            (
                "item_out".into(),
                vec![self.items.len() / f, f],
                self.items.clone(),
            ),
            (
                "item_z".into(),
                vec![self.item_z.len() / f, f],
                self.item_z.clone(),
            ),
            ("attention".into(), vec![2, f], self.attention.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aisle_eval::Scorer;

    /// Two heads over 4 items in 2 dimensions each: a hand-checked model.
    fn tiny() -> Gat {
        let cfg = GatConfig {
            factors: 4,
            heads: 2,
            ..Default::default()
        };
        let z = vec![
            1.0, 0.0, 0.0, 0.0, //
            0.0, 1.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 0.0, //
            0.0, 0.0, 0.0, 1.0,
        ];
        // a_self = 0; a_nb favours dimension 0 (head 0) and 2 (head 1).
        let a = vec![0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 2.0, 0.0];
        Gat::new(cfg, vec![], z.clone(), z, a).unwrap()
    }

    #[test]
    fn a_live_history_is_attention_over_its_items_and_their_mean() {
        let m = tiny();
        let (items, w, v) = m.attend(&[1, 0, 0]).unwrap();
        assert_eq!(items, vec![0, 1]);
        // Head 0 (dims 0,1): own = (0.5, 0.5), logits: own 2*0.5 = 1,
        // item 0: 2, item 1: 0. softmax(1, 2, 0).
        let e = [1f32.exp(), 2f32.exp(), 1.0];
        let s: f32 = e.iter().sum();
        for k in 0..3 {
            assert!((w[k * 2] - e[k] / s).abs() < 1e-6, "{w:?}");
        }
        // Head 1 (dims 2,3): every message is zero there: uniform weights.
        for k in 0..3 {
            assert!((w[k * 2 + 1] - 1.0 / 3.0).abs() < 1e-6);
        }
        let want0 = e[0] / s * 0.5 + e[1] / s;
        assert!((v[0] - want0).abs() < 1e-6, "{v:?}");
        assert_eq!(v[2], 0.0);
        let mut out = vec![0f32; 4];
        m.score(u32::MAX, &[1, 0, 0], &mut out);
        assert!((out[0] - want0).abs() < 1e-6);
    }

    #[test]
    fn the_explanation_names_the_item_that_weighed_most() {
        let m = tiny();
        // Recommending item 0 after items 0 and 1: only item 0's message
        // points at it.
        let why = m.explain(&[0, 1], 0);
        assert_eq!(why.len(), 1);
        assert_eq!(why[0].item, 0);
        assert!(why[0].attention > 0.4 && why[0].contribution > 0.0);
        assert!(m.explain(&[], 0).is_empty());
        assert!(m.explain(&[0], 9).is_empty());
    }

    #[test]
    fn shapes_are_checked() {
        let cfg = GatConfig {
            factors: 4,
            heads: 2,
            ..Default::default()
        };
        assert!(Gat::new(cfg.clone(), vec![0.0; 3], vec![], vec![], vec![0.0; 8]).is_err());
        assert!(Gat::new(cfg.clone(), vec![], vec![0.0; 4], vec![], vec![0.0; 8]).is_err());
        assert!(Gat::new(cfg, vec![], vec![0.0; 4], vec![0.0; 4], vec![0.0; 7]).is_err());
    }
}
