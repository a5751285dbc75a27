//! Matrix factorisation on the binary user-item matrix: BPR-MF (pairwise
//! ranking loss, Hogwild SGD over threads) and implicit ALS (Hu, Koren &
//! Volinsky 2008) solved with a few conjugate-gradient steps per row
//! (Takács et al. 2011), as the `implicit` library does.

use std::sync::atomic::{AtomicU64, Ordering};

use aisle_core::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::linalg::{axpy, dot};
use crate::{shape_err, ModelConfig, Progress, Recommender, Result, TrainData};

/// BPR-MF hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BprConfig {
    pub factors: usize,
    /// Passes over the training pairs (one uniform negative per positive).
    pub epochs: usize,
    pub lr: f64,
    pub reg: f64,
    pub seed: u64,
}

impl Default for BprConfig {
    fn default() -> Self {
        BprConfig {
            factors: 64,
            epochs: 100,
            lr: 0.05,
            reg: 0.002,
            seed: 42,
        }
    }
}

/// Implicit-ALS hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlsConfig {
    pub factors: usize,
    pub iterations: usize,
    /// L2 regularisation.
    pub reg: f64,
    /// Confidence of an observed pair is `1 + alpha` (0 = plain binary, as
    /// `implicit` does with a binary matrix).
    pub alpha: f64,
    /// Conjugate-gradient steps per row and half-iteration.
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        AlsConfig {
            factors: 64,
            iterations: 15,
            reg: 0.01,
            alpha: 0.0,
            cg_steps: 3,
            seed: 42,
        }
    }
}

fn init(rows: usize, f: usize, rng: &mut Rng, scale: f64) -> Vec<f32> {
    (0..rows * f)
        .map(|_| (rng.normal() * scale) as f32)
        .collect()
}

/// Scores = user vector · every item vector.
fn mf_scores(x: &[f32], items: &[f32], f: usize, out: &mut [f32]) {
    debug_assert_eq!(x.len(), f);
    aisle_core::vector::dot_rows(x, items, out);
}

/// Every observed (user, item) pair of the binary matrix.
pub(crate) fn observed_pairs(sets: &[Vec<u32>]) -> Vec<(u32, u32)> {
    sets.iter()
        .enumerate()
        .flat_map(|(u, s)| s.iter().map(move |&i| (u as u32, i)))
        .collect()
}

/// A BPR triple: a random observed pair and a uniform item the user has
/// not interacted with (`set` sorted); None when the user has every item.
pub(crate) fn bpr_triple(
    rng: &mut Rng,
    pairs: &[(u32, u32)],
    sets: &[Vec<u32>],
    n_items: usize,
) -> Option<(u32, u32, u32)> {
    let (u, i) = pairs[rng.below(pairs.len() as u64) as usize];
    let set = &sets[u as usize];
    if set.len() >= n_items {
        return None;
    }
    let mut j = rng.below(n_items as u64) as u32;
    while set.binary_search(&j).is_ok() {
        j = rng.below(n_items as u64) as u32;
    }
    Some((u, i, j))
}

// ---------------------------------------------------------------- BPR

pub struct Bpr {
    cfg: BprConfig,
    users: Vec<f32>,
    items: Vec<f32>,
}

// Hogwild SGD in safe Rust: factors live in relaxed atomics, two f32 per
// AtomicU64 (half the atomic operations of one per float). A row of `f`
// factors takes `f.div_ceil(2)` words.

fn load(a: &[AtomicU64], out: &mut [f32]) {
    for (o, v) in out.chunks_mut(2).zip(a) {
        let w = v.load(Ordering::Relaxed);
        o[0] = f32::from_bits(w as u32);
        if let Some(hi) = o.get_mut(1) {
            *hi = f32::from_bits((w >> 32) as u32);
        }
    }
}

fn store(a: &[AtomicU64], v: &[f32]) {
    for (d, x) in a.iter().zip(v.chunks(2)) {
        let hi = x.get(1).map_or(0, |h| h.to_bits());
        d.store(
            x[0].to_bits() as u64 | ((hi as u64) << 32),
            Ordering::Relaxed,
        );
    }
}

fn to_atomic(v: &[f32], f: usize) -> Vec<AtomicU64> {
    v.chunks(f)
        .flat_map(|row| {
            row.chunks(2).map(|x| {
                let hi = x.get(1).map_or(0, |h| h.to_bits());
                AtomicU64::new(x[0].to_bits() as u64 | ((hi as u64) << 32))
            })
        })
        .collect()
}

fn from_atomic(a: Vec<AtomicU64>, f: usize) -> Vec<f32> {
    let w = f.div_ceil(2);
    let words: Vec<u64> = a.into_iter().map(AtomicU64::into_inner).collect();
    words
        .chunks(w)
        .flat_map(|row| {
            let mut out = Vec::with_capacity(f);
            for &x in row {
                out.push(f32::from_bits(x as u32));
                out.push(f32::from_bits((x >> 32) as u32));
            }
            out.truncate(f);
            out
        })
        .collect()
}

impl Bpr {
    pub fn fit(cfg: &BprConfig, data: &TrainData, progress: Progress<'_>) -> Self {
        let f = cfg.factors;
        let (nu, ni) = (data.n_users(), data.n_items);
        let sets = data.user_sets();
        let pairs = observed_pairs(&sets);
        let mut rng = Rng::seed(cfg.seed);
        let users = to_atomic(&init(nu, f, &mut rng, 0.1 / (f as f64).sqrt()), f);
        let items = to_atomic(&init(ni, f, &mut rng, 0.1 / (f as f64).sqrt()), f);
        let w = f.div_ceil(2);
        let threads = rayon::current_num_threads().max(1);
        let (lr, reg) = (cfg.lr as f32, cfg.reg as f32);
        for epoch in 0..cfg.epochs {
            (0..threads).into_par_iter().for_each(|t| {
                let mut rng = Rng::seed(
                    cfg.seed ^ ((epoch as u64) << 20) ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9),
                );
                let (mut pu, mut qi, mut qj) = (vec![0f32; f], vec![0f32; f], vec![0f32; f]);
                let (mut gu, mut gi) = (vec![0f32; f], vec![0f32; f]);
                let n = pairs.len() / threads + usize::from(t < pairs.len() % threads);
                for _ in 0..n {
                    let Some((u, i, j)) = bpr_triple(&mut rng, &pairs, &sets, ni) else {
                        continue;
                    };
                    let (u, i, j) = (u as usize, i as usize, j as usize);
                    load(&users[u * w..(u + 1) * w], &mut pu);
                    load(&items[i * w..(i + 1) * w], &mut qi);
                    load(&items[j * w..(j + 1) * w], &mut qj);
                    let x = dot(&pu, &qi) - dot(&pu, &qj);
                    let g = 1.0 / (1.0 + x.exp()); // sigmoid(-x)
                    for k in 0..f {
                        gu[k] = g * (qi[k] - qj[k]) - reg * pu[k];
                        gi[k] = g * pu[k];
                    }
                    for k in 0..f {
                        pu[k] += lr * gu[k];
                        qi[k] += lr * (gi[k] - reg * qi[k]);
                        qj[k] += lr * (-gi[k] - reg * qj[k]);
                    }
                    store(&users[u * w..(u + 1) * w], &pu);
                    store(&items[i * w..(i + 1) * w], &qi);
                    store(&items[j * w..(j + 1) * w], &qj);
                }
            });
            progress(epoch as u64 + 1, cfg.epochs as u64);
        }
        Bpr {
            cfg: cfg.clone(),
            users: from_atomic(users, f),
            items: from_atomic(items, f),
        }
    }

    pub fn from_parts(
        cfg: BprConfig,
        u: (Vec<usize>, Vec<f32>),
        i: (Vec<usize>, Vec<f32>),
    ) -> Result<Self> {
        check_factors(&u, &i, cfg.factors)?;
        Ok(Bpr {
            cfg,
            users: u.1,
            items: i.1,
        })
    }
}

/// The tensors of a factor model: user and item factor matrices.
fn factor_tensors(f: usize, users: &[f32], items: &[f32]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    vec![
        (
            "user_factors".into(),
            vec![users.len() / f, f],
            users.to_vec(),
        ),
        (
            "item_factors".into(),
            vec![items.len() / f, f],
            items.to_vec(),
        ),
    ]
}

fn check_factors(u: &(Vec<usize>, Vec<f32>), i: &(Vec<usize>, Vec<f32>), f: usize) -> Result<()> {
    if u.0.len() != 2 || u.0[1] != f {
        return Err(shape_err("user_factors", &format!("[users, {f}]"), &u.0));
    }
    if i.0.len() != 2 || i.0[1] != f {
        return Err(shape_err("item_factors", &format!("[items, {f}]"), &i.0));
    }
    Ok(())
}

/// Every item's score for `user`: from its trained factors when training
/// saw it, else from the vector `unseen` makes of its history.
fn user_scores(
    (users, items, f): (&[f32], &[f32], usize),
    user: u32,
    out: &mut [f32],
    unseen: impl FnOnce() -> Vec<f32>,
) {
    let u = user as usize;
    match users.get(u * f..(u + 1) * f) {
        Some(x) => mf_scores(x, items, f, out),
        None => mf_scores(&unseen(), items, f, out),
    }
}

impl aisle_eval::Scorer for Bpr {
    fn score(&self, user: u32, history: &[u32], out: &mut [f32]) {
        let f = self.cfg.factors;
        // Unknown user: the mean of the history's item vectors.
        user_scores((&self.users, &self.items, f), user, out, || {
            let mut x = vec![0f32; f];
            for &i in history {
                if let Some(y) = self.items.get(i as usize * f..(i as usize + 1) * f) {
                    axpy(&mut x, 1.0 / history.len() as f32, y);
                }
            }
            x
        });
    }
}

/// The `Recommender` face of a factor model: its kind, config and factors.
macro_rules! factor_recommender {
    ($model:ident, $kind:literal) => {
        impl Recommender for $model {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn config(&self) -> ModelConfig {
                ModelConfig::$model(self.cfg.clone())
            }
            fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
                factor_tensors(self.cfg.factors, &self.users, &self.items)
            }
        }
    };
}

factor_recommender!(Bpr, "bpr");

// ---------------------------------------------------------------- ALS

pub struct Als {
    cfg: AlsConfig,
    users: Vec<f32>,
    items: Vec<f32>,
    /// `YᵀY + reg·I` of the final item factors, for folding in unknown users
    /// (computed once, not per request).
    yty: Vec<f32>,
}

/// `YᵀY + reg·I` (f×f, row-major).
fn gram(y: &[f32], f: usize, reg: f32) -> Vec<f32> {
    let parts: Vec<Vec<f32>> = y
        .par_chunks(f * 1024)
        .map(|block| {
            let mut g = vec![0f32; f * f];
            for row in block.chunks_exact(f) {
                for a in 0..f {
                    axpy(&mut g[a * f..(a + 1) * f], row[a], row);
                }
            }
            g
        })
        .collect();
    let mut g = vec![0f32; f * f];
    for p in parts {
        axpy(&mut g, 1.0, &p);
    }
    for a in 0..f {
        g[a * f + a] += reg;
    }
    g
}

/// A few CG steps on `(YtY + Σ_i (c-1) y_i y_iᵀ) x = Σ_i c y_i`, warm-started at `x`.
fn cg_solve(x: &mut [f32], yty: &[f32], y: &[f32], idx: &[u32], c: f32, steps: usize, f: usize) {
    let mut r = vec![0f32; f];
    for a in 0..f {
        r[a] = -dot(&yty[a * f..(a + 1) * f], x);
    }
    for &i in idx {
        let yi = &y[i as usize * f..(i as usize + 1) * f];
        // With c = 1 (a binary matrix) the weight is 1: skip the dot product.
        let w = if c == 1.0 {
            1.0
        } else {
            c - (c - 1.0) * dot(yi, x)
        };
        axpy(&mut r, w, yi);
    }
    let mut p = r.clone();
    let mut rs_old = dot(&r, &r);
    let mut ap = vec![0f32; f];
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        for a in 0..f {
            ap[a] = dot(&yty[a * f..(a + 1) * f], &p);
        }
        if c != 1.0 {
            for &i in idx {
                let yi = &y[i as usize * f..(i as usize + 1) * f];
                axpy(&mut ap, (c - 1.0) * dot(yi, &p), yi);
            }
        }
        let denom = dot(&p, &ap);
        if denom <= 0.0 || !denom.is_finite() {
            break;
        }
        let alpha = rs_old / denom;
        axpy(x, alpha, &p);
        axpy(&mut r, -alpha, &ap);
        let rs_new = dot(&r, &r);
        let beta = rs_new / rs_old;
        for a in 0..f {
            p[a] = r[a] + beta * p[a];
        }
        rs_old = rs_new;
    }
}

impl Als {
    pub fn fit(cfg: &AlsConfig, data: &TrainData, progress: Progress<'_>) -> Self {
        let f = cfg.factors;
        let sets = data.user_sets();
        let mut item_users: Vec<Vec<u32>> = vec![Vec::new(); data.n_items];
        for (u, s) in sets.iter().enumerate() {
            for &i in s {
                item_users[i as usize].push(u as u32);
            }
        }
        let mut rng = Rng::seed(cfg.seed);
        let mut users = init(data.n_users(), f, &mut rng, 0.01);
        let mut items = init(data.n_items, f, &mut rng, 0.01);
        let c = 1.0 + cfg.alpha as f32;
        let reg = cfg.reg as f32;
        for it in 0..cfg.iterations {
            let yty = gram(&items, f, reg);
            users
                .par_chunks_mut(f)
                .zip(sets.par_iter())
                .for_each(|(x, idx)| {
                    cg_solve(x, &yty, &items, idx, c, cfg.cg_steps, f);
                });
            let xtx = gram(&users, f, reg);
            items
                .par_chunks_mut(f)
                .zip(item_users.par_iter())
                .for_each(|(y, idx)| {
                    cg_solve(y, &xtx, &users, idx, c, cfg.cg_steps, f);
                });
            progress(it as u64 + 1, cfg.iterations as u64);
        }
        let yty = gram(&items, f, reg);
        Als {
            cfg: cfg.clone(),
            users,
            items,
            yty,
        }
    }

    pub fn from_parts(
        cfg: AlsConfig,
        u: (Vec<usize>, Vec<f32>),
        i: (Vec<usize>, Vec<f32>),
    ) -> Result<Self> {
        check_factors(&u, &i, cfg.factors)?;
        let yty = gram(&i.1, cfg.factors, cfg.reg as f32);
        Ok(Als {
            cfg,
            users: u.1,
            items: i.1,
            yty,
        })
    }
}

impl aisle_eval::Scorer for Als {
    fn score(&self, user: u32, history: &[u32], out: &mut [f32]) {
        let f = self.cfg.factors;
        // Unknown user: fold in by solving for a user vector from the history.
        user_scores((&self.users, &self.items, f), user, out, || {
            let mut idx: Vec<u32> = history
                .iter()
                .copied()
                .filter(|&i| (i as usize) < self.items.len() / f)
                .collect();
            idx.sort_unstable();
            idx.dedup();
            let mut x = vec![0f32; f];
            cg_solve(
                &mut x,
                &self.yty,
                &self.items,
                &idx,
                1.0 + self.cfg.alpha as f32,
                f.min(16),
                f,
            );
            x
        });
    }
}

factor_recommender!(Als, "als");
