//! LightGCN (He et al. 2020): user and item embeddings smoothed over the
//! user–item graph, trained with BPR loss.
//!
//! The graph is the binary user–item matrix `R` with the symmetric
//! normalisation `Â = D^-1/2 [[0, R], [Rᵀ, 0]] D^-1/2`. With `E₀` the free
//! embeddings (users then items), layer `k` is `E_k = Â E_{k-1}` and the
//! embeddings that score are the layer mean `E = (E₀ + … + E_K) / (K + 1)`;
//! a user's score for an item is `e_u · e_i`.
//!
//! Training is exact full-graph back-propagation: the map `E₀ → E` is linear
//! and `Â` is symmetric, so the gradient of the loss with respect to `E₀` is
//! the same layer mean applied to the gradient with respect to `E`. One step
//! = forward propagation, BPR gradients of a batch of (user, positive, uniform
//! negative) triples, backward propagation, Adam. Each propagation pulls the
//! neighbours of every node in parallel (no atomics, deterministic).
//!
//! Saved as the propagated (final) user and item tables, so inference is a
//! plain dot product; an unknown user is the mean of their items' vectors.

use std::time::Instant;

use aisle_core::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::linalg::{axpy, dot, simd};
use crate::mf::{bpr_triple, observed_pairs};
use crate::{shape_err, ModelConfig, Progress, Recommender, Result, TrainData};

/// LightGCN hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LightGcnConfig {
    pub factors: usize,
    /// Propagation layers K.
    pub layers: usize,
    /// Passes over the training pairs (one uniform negative per positive).
    pub epochs: usize,
    /// Triples per step (each step propagates over the whole graph twice).
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 weight on the layer-0 embeddings of the batch's users and items.
    pub reg: f64,
    /// Stop after this many seconds of training (0 = no budget).
    pub time_budget_s: f64,
    pub seed: u64,
}

impl Default for LightGcnConfig {
    fn default() -> Self {
        LightGcnConfig {
            factors: 64,
            layers: 2,
            epochs: 30,
            batch_size: 4096,
            lr: 0.005,
            reg: 1e-4,
            time_budget_s: 0.0,
            seed: 42,
        }
    }
}

pub struct LightGcn {
    cfg: LightGcnConfig,
    users: Vec<f32>,
    items: Vec<f32>,
}

/// The normalised graph as CSR over nodes (users `0..nu`, then items).
struct Graph {
    offsets: Vec<usize>,
    neighbors: Vec<u32>,
    weights: Vec<f32>,
}

/// The user–item graph as CSR over nodes (users `0..nu`, then items `nu..`):
/// node `v`'s neighbours are `neighbors[offsets[v]..offsets[v + 1]]`, from
/// each user's distinct items (`sets`). Shared with aisle-graph's GAT.
pub fn bipartite_csr(sets: &[Vec<u32>], nu: usize, ni: usize) -> (Vec<usize>, Vec<u32>) {
    let n = nu + ni;
    let mut offsets = vec![0usize; n + 1];
    for (u, s) in sets.iter().enumerate() {
        offsets[u + 1] += s.len();
        for &i in s {
            offsets[nu + i as usize + 1] += 1;
        }
    }
    for v in 0..n {
        offsets[v + 1] += offsets[v];
    }
    let mut fill = offsets.clone();
    let mut neighbors = vec![0u32; offsets[n]];
    for (u, s) in sets.iter().enumerate() {
        for &i in s {
            let iv = nu + i as usize;
            neighbors[fill[u]] = iv as u32;
            fill[u] += 1;
            neighbors[fill[iv]] = u as u32;
            fill[iv] += 1;
        }
    }
    (offsets, neighbors)
}

impl Graph {
    fn new(sets: &[Vec<u32>], nu: usize, ni: usize) -> Graph {
        let (offsets, neighbors) = bipartite_csr(sets, nu, ni);
        let deg = |v: usize| offsets[v + 1] - offsets[v];
        let weights = (0..nu + ni)
            .flat_map(|v| {
                let (offsets, neighbors) = (&offsets, &neighbors);
                (offsets[v]..offsets[v + 1]).map(move |e| {
                    let w = neighbors[e] as usize;
                    1.0 / ((deg(v) * deg(w)) as f32).sqrt()
                })
            })
            .collect();
        Graph {
            offsets,
            neighbors,
            weights,
        }
    }

    /// `dst = Â src` (rows of `f` floats).
    fn propagate(&self, src: &[f32], dst: &mut [f32], f: usize) {
        dst.par_chunks_mut(f).enumerate().for_each(|(v, row)| {
            simd(
                #[inline(always)]
                || {
                    row.fill(0.0);
                    for e in self.offsets[v]..self.offsets[v + 1] {
                        let w = self.neighbors[e] as usize;
                        axpy(row, self.weights[e], &src[w * f..(w + 1) * f]);
                    }
                },
            )
        });
    }

    /// `(x + Âx + … + Â^K x) / (K + 1)`, with `tmp` as scratch.
    fn layer_mean(
        &self,
        x: &[f32],
        out: &mut Vec<f32>,
        tmp: &mut [Vec<f32>; 2],
        k: usize,
        f: usize,
    ) {
        out.clear();
        out.extend_from_slice(x);
        tmp[0].clear();
        tmp[0].extend_from_slice(x);
        for _ in 0..k {
            let [cur, next] = tmp;
            next.resize(x.len(), 0.0);
            self.propagate(cur, next, f);
            out.par_iter_mut()
                .zip(next.par_iter())
                .for_each(|(o, n)| *o += n);
            tmp.swap(0, 1);
        }
        let scale = 1.0 / (k + 1) as f32;
        out.par_iter_mut().for_each(|o| *o *= scale);
    }
}

/// Adam state for one dense parameter vector.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn step(&mut self, p: &mut [f32], g: &[f32], lr: f32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        let a = lr * c2.sqrt() / c1;
        p.par_chunks_mut(4096)
            .zip(g.par_chunks(4096))
            .zip(self.m.par_chunks_mut(4096).zip(self.v.par_chunks_mut(4096)))
            .for_each(|((p, g), (m, v))| {
                simd(
                    #[inline(always)]
                    || {
                        for k in 0..p.len() {
                            m[k] = B1 * m[k] + (1.0 - B1) * g[k];
                            v[k] = B2 * v[k] + (1.0 - B2) * g[k] * g[k];
                            p[k] -= a * m[k] / (v[k].sqrt() + 1e-8);
                        }
                    },
                )
            });
    }
}

impl LightGcn {
    pub fn fit(cfg: &LightGcnConfig, data: &TrainData, progress: Progress<'_>) -> Self {
        let (f, k) = (cfg.factors, cfg.layers);
        let (nu, ni) = (data.n_users(), data.n_items);
        let sets = data.user_sets();
        let pairs = observed_pairs(&sets);
        let graph = Graph::new(&sets, nu, ni);
        let mut rng = Rng::seed(cfg.seed);
        // Xavier-style init as in the paper's code (normal, std 0.1).
        let mut e0: Vec<f32> = (0..(nu + ni) * f)
            .map(|_| (rng.normal() * 0.1) as f32)
            .collect();
        let mut adam = Adam {
            m: vec![0.0; e0.len()],
            v: vec![0.0; e0.len()],
            t: 0,
        };
        let (mut fin, mut grad, mut g0) = (Vec::new(), vec![0f32; e0.len()], Vec::new());
        let mut tmp = [Vec::new(), Vec::new()];
        let batch = cfg.batch_size.max(1);
        let steps = pairs.len().div_ceil(batch).max(1);
        let total = (cfg.epochs * steps) as u64;
        let start = Instant::now();
        let (lr, reg) = (cfg.lr as f32, cfg.reg as f32);
        let mut triples = Vec::with_capacity(batch);
        'outer: for epoch in 0..cfg.epochs {
            for step in 0..steps {
                if cfg.time_budget_s > 0.0 && start.elapsed().as_secs_f64() > cfg.time_budget_s {
                    break 'outer;
                }
                triples.clear();
                for _ in 0..batch {
                    if let Some((u, i, j)) = bpr_triple(&mut rng, &pairs, &sets, ni) {
                        triples.push((u as usize, nu + i as usize, nu + j as usize));
                    }
                }
                if triples.is_empty() {
                    break 'outer;
                }
                graph.layer_mean(&e0, &mut fin, &mut tmp, k, f);
                // d(mean over the batch of -ln σ(e_u·e_i - e_u·e_j)) / dE.
                grad.fill(0.0);
                let inv_b = 1.0 / triples.len() as f32;
                simd(
                    #[inline(always)]
                    || {
                        for &(u, i, j) in &triples {
                            let (eu, ei, ej) = (
                                &fin[u * f..(u + 1) * f],
                                &fin[i * f..(i + 1) * f],
                                &fin[j * f..(j + 1) * f],
                            );
                            let x = dot(eu, ei) - dot(eu, ej);
                            let g = inv_b / (1.0 + x.exp()); // σ(-x) / B
                            for d in 0..f {
                                grad[u * f + d] -= g * (ei[d] - ej[d]);
                                grad[i * f + d] -= g * eu[d];
                                grad[j * f + d] += g * eu[d];
                            }
                        }
                    },
                );
                graph.layer_mean(&grad, &mut g0, &mut tmp, k, f);
                // L2 on the batch's layer-0 rows (reg · ‖e‖² / B per occurrence).
                for &(u, i, j) in &triples {
                    for r in [u, i, j] {
                        let (row, g) = (&e0[r * f..(r + 1) * f], &mut g0[r * f..(r + 1) * f]);
                        axpy(g, 2.0 * reg * inv_b, row);
                    }
                }
                adam.step(&mut e0, &g0, lr);
                progress((epoch * steps + step + 1) as u64, total);
            }
            tracing::debug!(
                epoch,
                elapsed_s = start.elapsed().as_secs_f64(),
                "lightgcn epoch"
            );
        }
        graph.layer_mean(&e0, &mut fin, &mut tmp, k, f);
        let items = fin.split_off(nu * f);
        LightGcn {
            cfg: cfg.clone(),
            users: fin,
            items,
        }
    }

    pub fn from_parts(
        cfg: LightGcnConfig,
        u: (Vec<usize>, Vec<f32>),
        i: (Vec<usize>, Vec<f32>),
    ) -> Result<Self> {
        let f = cfg.factors;
        if u.0.len() != 2 || u.0[1] != f {
            return Err(shape_err("user_factors", &format!("[users, {f}]"), &u.0));
        }
        if i.0.len() != 2 || i.0[1] != f {
            return Err(shape_err("item_factors", &format!("[items, {f}]"), &i.0));
        }
        Ok(LightGcn {
            cfg,
            users: u.1,
            items: i.1,
        })
    }
}

impl aisle_eval::Scorer for LightGcn {
    fn score(&self, user: u32, history: &[u32], out: &mut [f32]) {
        let f = self.cfg.factors;
        let u = user as usize;
        let mut x = vec![0f32; f];
        if (u + 1) * f <= self.users.len() {
            x.copy_from_slice(&self.users[u * f..(u + 1) * f]);
        } else {
            for &i in history {
                if let Some(y) = self.items.get(i as usize * f..(i as usize + 1) * f) {
                    axpy(&mut x, 1.0 / history.len() as f32, y);
                }
            }
        }
        debug_assert_eq!(x.len(), f);
        aisle_core::vector::dot_rows(&x, &self.items, out);
    }
}

impl Recommender for LightGcn {
    fn kind(&self) -> &'static str {
        "lightgcn"
    }
    fn config(&self) -> ModelConfig {
        ModelConfig::LightGcn(self.cfg.clone())
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let f = self.cfg.factors;
        vec![
            (
                "user_factors".into(),
                vec![self.users.len() / f, f],
                self.users.clone(),
            ),
            (
                "item_factors".into(),
                vec![self.items.len() / f, f],
                self.items.clone(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two disjoint communities: LightGCN must rank a user's unseen
    /// community item above the other community's items.
    #[test]
    fn learns_communities_and_propagation_is_self_adjoint() {
        let mut seqs = Vec::new();
        for u in 0..40u32 {
            let base = if u < 20 { 0 } else { 5 };
            seqs.push((0..4).map(|k| base + (u + k) % 5).collect());
        }
        let data = TrainData::new(10, seqs);
        let cfg = LightGcnConfig {
            epochs: 60,
            batch_size: 64,
            lr: 0.02,
            ..Default::default()
        };
        let m = LightGcn::fit(&cfg, &data, &|_, _| {});
        let mut s = vec![0f32; 10];
        use aisle_eval::Scorer;
        m.score(0, &[], &mut s);
        // User 0 saw items 0..4 except 4: item 4 beats every item of 5..10.
        assert!((5..10).all(|j| s[4] > s[j]), "{s:?}");

        // The backward pass is the transpose of the forward: <Â x, y> = <x, Â y>.
        let g = Graph::new(&data.user_sets(), 40, 10);
        let mut r = Rng::seed(7);
        let x: Vec<f32> = (0..50 * 3).map(|_| r.normal() as f32).collect();
        let y: Vec<f32> = (0..50 * 3).map(|_| r.normal() as f32).collect();
        let (mut ax, mut ay) = (vec![0f32; x.len()], vec![0f32; y.len()]);
        g.propagate(&x, &mut ax, 3);
        g.propagate(&y, &mut ay, 3);
        let (l, rr) = (dot(&ax, &y), dot(&x, &ay));
        assert!((l - rr).abs() < 1e-3 * l.abs().max(1.0), "{l} vs {rr}");
    }
}
