//! Off-policy estimates: a candidate ranker's CTR (expected clicks per
//! list) from lists another policy showed, before the candidate is shown
//! to anyone.
//!
//! **Logging policy** ([`explore`]): the serving ranker's top `pool` items
//! are its candidates; a share ε of requests shows the first k of a uniform
//! random permutation of the pool, the rest show the pool's top k in order.
//! So the probability that item i is shown at position p is known exactly:
//! `(1 − ε)·[i is the ranker's p-th] + ε / pool` for pool items, 0 outside.
//! Every shown item's probability is logged as its propensity.
//!
//! **Item-position model** (Li et al. 2018, "Offline Evaluation of Ranking
//! Policies with Click Models"): a click at position p depends on the item
//! there and on p only. Then for each logged list and position p, with the
//! candidate's item c_p, the shown item s_p, its propensity π_p and click y_p:
//!
//! - IPS: `Σ_p 1[s_p = c_p]·y_p / π_p` (unbiased where the candidate's items
//!   have positive logging probability: inside the pool);
//! - SNIPS: per position, the weighted clicks divided by the sum of the
//!   weights `1[s_p = c_p]/π_p` (whose mean is 1 under full support: the
//!   `support` figure), summed over positions; its interval by the delta
//!   method;
//! - DR: `Σ_p r̂(c_p, p) + 1[s_p = c_p]·(y_p − r̂(c_p, p)) / π_p` with a
//!   click model `r̂ = θ̂_p · α̂(item, affinity)` fitted on the logs
//!   (cross-fitted: each half of the lists is corrected by the model fitted
//!   on the other half). θ̂ (position bias) comes from the explored lists,
//!   where items land on positions at random; α̂ is the item's
//!   position-debiased click rate when it is or is not in a category of the
//!   shopper's recent history, shrunk towards all items' rate.
//!
//! Intervals are normal over lists (each list one independent draw).

use std::collections::HashMap;

use aisle_core::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::stats::{self, Estimate};

/// The logging policy's randomisation of one request: which pool entries
/// are shown (in order) and each shown entry's propensity. `share` is ε in
/// [0, 0.5]; `pool` items are ranked best first, of which `k` are shown.
pub fn explore(pool: usize, k: usize, share: f64, rng: &mut Rng) -> (Vec<usize>, Vec<f64>) {
    let k = k.min(pool);
    let explored = share > 0.0 && rng.chance(share);
    let mut order: Vec<usize> = (0..pool).collect();
    if explored {
        // The first k of a uniform permutation (partial Fisher-Yates).
        for i in 0..k {
            let j = i + rng.below((pool - i) as u64) as usize;
            order.swap(i, j);
        }
    }
    order.truncate(k);
    let uniform = share / pool as f64;
    let props = order
        .iter()
        .enumerate()
        .map(|(p, &o)| {
            if o == p {
                (1.0 - share) + uniform
            } else {
                uniform
            }
        })
        .collect();
    (order, props)
}

/// A shown item: its (caller's) item index, logged propensity, whether it
/// was clicked, and whether its category is among the shopper's recent ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    pub item: u32,
    pub propensity: f64,
    pub click: bool,
    pub affinity: bool,
}

/// The candidate's item at a position, with the same affinity flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    pub item: u32,
    pub affinity: bool,
}

/// One logged list and what the candidate would have shown in its place.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedList {
    pub shown: Vec<Slot>,
    pub candidate: Vec<Pick>,
}

impl LoggedList {
    /// Whether the list was randomised: a logged propensity below ½ (the
    /// ranker's own item at its own position has at least 1 − ε ≥ ½).
    pub fn explored(&self) -> bool {
        self.shown.iter().any(|s| s.propensity < 0.5)
    }
}

/// What `aisle ope` prints: the estimates with 95% intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpeReport {
    /// Logged lists with propensities (the sample).
    pub lists: u64,
    /// Of which randomised.
    pub explored_lists: u64,
    /// (list, position) pairs where the candidate's item is the shown one.
    pub matched_slots: u64,
    /// Mean importance weight per position (1 when every candidate item
    /// could have been shown; lower: part of the candidate lies outside
    /// what the logging policy ever shows, where only DR's model speaks).
    pub support: f64,
    /// The logging policy's own clicks per list.
    pub logged_ctr: Estimate,
    pub ips: Estimate,
    pub snips: Estimate,
    pub dr: Estimate,
    /// The click model alone (DR without its correction; no interval).
    pub direct: f64,
    /// θ̂: relative examination of positions 1.. (position 1 = 1).
    pub position_bias: Vec<f64>,
}

/// Explored lists needed before θ̂ is read from them (else 1/p).
const MIN_EXPLORED: usize = 100;
/// The click model's shrinkage: an item's rate counts as this many
/// examined impressions of the average item's rate.
const SHRINK: f64 = 10.0;

/// Position bias θ̂_p (θ̂_1 = 1) from the explored lists' clicks by
/// position, where the shown items are exchangeable across positions.
pub fn position_bias(lists: &[LoggedList], positions: usize) -> Vec<f64> {
    let (mut clicks, mut n) = (vec![0f64; positions], vec![0f64; positions]);
    let mut explored = 0;
    for l in lists.iter().filter(|l| l.explored()) {
        explored += 1;
        for (p, s) in l.shown.iter().enumerate().take(positions) {
            n[p] += 1.0;
            clicks[p] += s.click as u8 as f64;
        }
    }
    let fallback = || (1..=positions).map(|p| 1.0 / p as f64).collect();
    if explored < MIN_EXPLORED || clicks.first().is_none_or(|&c| c == 0.0) {
        return fallback();
    }
    let rate = |p: usize| (clicks[p] + 0.5) / (n[p] + 1.0);
    let top = rate(0);
    (0..positions).map(|p| (rate(p) / top).min(1.0)).collect()
}

/// The click model r̂(item, affinity, position) = θ̂_p · α̂.
struct ClickModel<'a> {
    theta: &'a [f64],
    base: [f64; 2],
    items: HashMap<(u32, bool), (f64, f64)>,
}

impl<'a> ClickModel<'a> {
    fn fit<'l>(lists: impl Iterator<Item = &'l LoggedList>, theta: &'a [f64]) -> ClickModel<'a> {
        let mut items: HashMap<(u32, bool), (f64, f64)> = HashMap::new();
        let mut tot = [(0f64, 0f64); 2];
        for l in lists {
            for (p, s) in l.shown.iter().enumerate() {
                let e = theta.get(p).copied().unwrap_or(0.0);
                let y = s.click as u8 as f64;
                let c = items.entry((s.item, s.affinity)).or_default();
                c.0 += y;
                c.1 += e;
                let t = &mut tot[s.affinity as usize];
                t.0 += y;
                t.1 += e;
            }
        }
        let all = (tot[0].0 + tot[1].0) / (tot[0].1 + tot[1].1).max(1e-12);
        let base = tot.map(|(y, e)| (y + SHRINK * all) / (e + SHRINK));
        ClickModel { theta, base, items }
    }

    fn predict(&self, pick: Pick, p: usize) -> f64 {
        let base = self.base[pick.affinity as usize];
        let alpha = match self.items.get(&(pick.item, pick.affinity)) {
            Some(&(y, e)) => (y + SHRINK * base) / (e + SHRINK),
            None => base,
        };
        (self.theta.get(p).copied().unwrap_or(0.0) * alpha).clamp(0.0, 1.0)
    }
}

/// IPS, SNIPS and DR estimates of the candidate's clicks per list.
pub fn estimate(lists: &[LoggedList]) -> OpeReport {
    let positions = lists.iter().map(|l| l.shown.len()).max().unwrap_or(0);
    let theta = position_bias(lists, positions);
    // Cross-fitting: the model of the other half corrects each half.
    let models = [
        ClickModel::fit(lists.iter().skip(1).step_by(2), &theta),
        ClickModel::fit(lists.iter().step_by(2), &theta),
    ];
    let n = lists.len();
    let (mut logged, mut ips, mut weight, mut dr, mut dm) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        0.0,
    );
    // Per position: Σ w·y and Σ w (SNIPS), and each list's terms.
    let (mut pos_wy, mut pos_w) = (vec![0f64; positions], vec![0f64; positions]);
    let mut terms: Vec<Vec<(usize, f64, f64)>> = Vec::with_capacity(n);
    let mut matched = 0u64;
    for (r, l) in lists.iter().enumerate() {
        let model = &models[r % 2];
        let (mut ips_r, mut w_r, mut dr_r) = (0.0, 0.0, 0.0);
        let mut t = Vec::new();
        for (p, c) in l.candidate.iter().enumerate() {
            let rhat = model.predict(*c, p);
            dr_r += rhat;
            dm += rhat;
            if let Some(s) = l
                .shown
                .get(p)
                .filter(|s| s.item == c.item && s.propensity > 0.0)
            {
                matched += 1;
                let w = 1.0 / s.propensity;
                let y = s.click as u8 as f64;
                ips_r += w * y;
                w_r += w;
                if p < positions {
                    pos_wy[p] += w * y;
                    pos_w[p] += w;
                    t.push((p, w * y, w));
                }
                dr_r += w * (y - rhat);
            }
        }
        let k = l.candidate.len().max(1) as f64;
        logged.push(l.shown.iter().filter(|s| s.click).count() as f64);
        ips.push(ips_r);
        weight.push(w_r / k);
        dr.push(dr_r);
        terms.push(t);
    }
    // SNIPS = Σ_p V_p, V_p = Σ w·y / Σ w; its linearisation per list:
    // ψ_r = Σ_p (w·y − V_p·w) / mean(w at p).
    let v: Vec<f64> = (0..positions)
        .map(|p| {
            if pos_w[p] > 0.0 {
                pos_wy[p] / pos_w[p]
            } else {
                0.0
            }
        })
        .collect();
    let snips_value: f64 = v.iter().sum();
    let psi: Vec<f64> = terms
        .iter()
        .map(|t| {
            t.iter()
                .map(|&(p, wy, w)| (wy - v[p] * w) / (pos_w[p] / n as f64))
                .sum()
        })
        .collect();
    let snips = stats::Stat {
        n,
        value: if n > 0 { snips_value } else { f64::NAN },
        var: stats::mean(&psi).var,
    };
    let support = stats::mean(&weight).value;
    OpeReport {
        lists: n as u64,
        explored_lists: lists.iter().filter(|l| l.explored()).count() as u64,
        matched_slots: matched,
        support,
        logged_ctr: stats::mean(&logged).interval(),
        ips: stats::mean(&ips).interval(),
        snips: snips.interval(),
        dr: stats::mean(&dr).interval(),
        direct: dm / n.max(1) as f64,
        position_bias: theta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exploration_propensities_are_the_marginals() {
        // Pool 4, k 2, ε ½: the ranker's first item is at position 1 with
        // probability ½ + ½·¼; any other pool item with ½·¼.
        let mut rng = Rng::seed(7);
        let (mut first, mut other, n) = (0u32, 0u32, 200_000);
        for _ in 0..n {
            let (order, props) = explore(4, 2, 0.5, &mut rng);
            match order[0] {
                0 => {
                    first += 1;
                    assert_eq!(props[0], 0.625);
                }
                2 => {
                    other += 1;
                    assert_eq!(props[0], 0.125);
                }
                _ => {}
            }
        }
        assert!((first as f64 / n as f64 - 0.625).abs() < 0.005);
        assert!((other as f64 / n as f64 - 0.125).abs() < 0.005);
    }

    #[test]
    fn no_exploration_shows_the_ranking() {
        let (order, props) = explore(50, 10, 0.0, &mut Rng::seed(1));
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert!(props.iter().all(|&p| p == 1.0));
    }

    #[test]
    fn ips_by_hand() {
        // One list: the candidate agrees at position 1 (clicked, π ½) and
        // not at position 2: IPS = 1/½ = 2; weights (2 + 0) / 2 = 1; SNIPS
        // = the clicked share of matches at position 1 (1) + nothing at 2.
        let slot = |item, propensity, click| Slot {
            item,
            propensity,
            click,
            affinity: false,
        };
        let pick = |item| Pick {
            item,
            affinity: false,
        };
        let l = LoggedList {
            shown: vec![slot(1, 0.5, true), slot(2, 0.5, false)],
            candidate: vec![pick(1), pick(3)],
        };
        let r = estimate(&[l.clone(), l]);
        assert_eq!(r.ips.value, 2.0);
        assert_eq!(r.support, 1.0);
        assert_eq!(r.snips.value, 1.0);
        assert_eq!(r.matched_slots, 2);
        assert_eq!(r.logged_ctr.value, 1.0);
    }
}
