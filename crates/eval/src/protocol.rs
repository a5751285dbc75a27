//! The leave-one-out full-ranking protocol of shared/baselines/PROTOCOL.md.
//!
//! For each user's sequence `s` (dense item ids, oldest first):
//! - **validation**: history `s[..n-2]`, target `s[n-2]` (users with n >= 2);
//! - **test**: history `s[..n-1]`, target `s[n-1]` (users with n >= 1).
//!
//! Every item of the data set is ranked (no sampled negatives). With
//! masking on, the items of the history are excluded from the ranking,
//! except the target itself, which is never masked. Metrics are averaged
//! over the users that have a target; equal scores count as a uniformly
//! random order (the expected metric over the tied positions). Users are scored in parallel; each
//! keeps only a top-k heap for coverage, never a full sort.

use rayon::prelude::*;
use serde::Serialize;

use crate::{coverage, popularity_bias, rank_counts, top_k, RankingTotals};

/// Anything that can score every item for a user.
pub trait Scorer: Sync {
    /// Writes one score per item into `out` (`out.len()` = number of items).
    /// `user` is the dense training index; `history` the items the user
    /// interacted with, oldest first (for the test stage, the validation
    /// target is the last of them).
    fn score(&self, user: u32, history: &[u32], out: &mut [f32]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Valid,
    Test,
}

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct LooConfig {
    pub stage: Stage,
    pub masking: bool,
    /// Cut-offs for Recall/NDCG/MRR.
    pub ks: Vec<usize>,
    /// Cut-off of the lists used for coverage and popularity bias.
    pub list_k: usize,
}

/// Results of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct LooResult {
    pub stage: Stage,
    pub masking: bool,
    pub users: u64,
    pub totals: RankingTotals,
    /// Share of items in at least one top-`list_k` list.
    pub coverage: f64,
    /// Mean popularity of recommended items / mean item popularity.
    pub popularity_bias: f64,
    /// The same metrics split by the kind of target: one the user already
    /// had in the history ("seen", a repeat) or a new one.
    pub by_target: ByTarget,
    pub eval_s: f64,
}

/// Metrics of the users whose target is a repeat of a history item
/// (`seen`) and of those whose target is new to them; `seen.users +
/// new.users` = all users evaluated. With masking on, a seen target is
/// exempt from the mask while every other history item is masked, so a
/// model that ranks any seen item first scores well on the seen part
/// without predicting anything: read the `new` part for what masking
/// measures.
#[derive(Debug, Clone, Serialize)]
pub struct ByTarget {
    pub seen: RankingTotals,
    pub new: RankingTotals,
}

/// Share of users whose test target (their last item) is already in the
/// rest of their sequence: the `seen` share of a test-stage [`ByTarget`],
/// known before any model runs.
pub fn seen_target_share(seqs: &[Vec<u32>]) -> f64 {
    let (mut seen, mut all) = (0u64, 0u64);
    for (last, history) in seqs.iter().filter_map(|s| s.split_last()) {
        all += 1;
        seen += u64::from(history.contains(last));
    }
    if all == 0 {
        0.0
    } else {
        seen as f64 / all as f64
    }
}

impl LooResult {
    pub fn recall(&self, k: usize) -> f64 {
        self.totals.recall(k)
    }
    pub fn ndcg(&self, k: usize) -> f64 {
        self.totals.ndcg(k)
    }
    pub fn mrr(&self, k: usize) -> f64 {
        self.totals.mrr(k)
    }
}

/// Runs the protocol over `seqs` with `n_items` candidate items.
/// `popularity` (training interactions per item) feeds the bias figure.
pub fn evaluate_loo(
    scorer: &dyn Scorer,
    seqs: &[Vec<u32>],
    n_items: usize,
    popularity: &[u32],
    cfg: &LooConfig,
) -> LooResult {
    let start = std::time::Instant::now();
    let need = match cfg.stage {
        Stage::Valid => 2,
        Stage::Test => 1,
    };
    let (totals, (seen, new), lists) = seqs
        .par_iter()
        .enumerate()
        .filter(|(_, s)| s.len() >= need)
        .map_init(
            || (vec![0f32; n_items], vec![false; n_items]),
            |(scores, mask), (u, s)| {
                let cut = s.len() - (need - 1);
                let target = s[cut - 1] as usize;
                let history = &s[..cut - 1];
                scores.iter_mut().for_each(|x| *x = 0.0);
                scorer.score(u as u32, history, scores);
                if cfg.masking {
                    for &i in history {
                        mask[i as usize] = true;
                    }
                    mask[target] = false;
                }
                let counts = rank_counts(scores, target, |i| mask[i]);
                let list = top_k(scores, cfg.list_k, |i| mask[i]);
                if cfg.masking {
                    for &i in history {
                        mask[i as usize] = false;
                    }
                }
                let mut t = RankingTotals::new(&cfg.ks);
                t.add_counts(counts);
                let empty = RankingTotals::new(&cfg.ks);
                let split = if history.contains(&(target as u32)) {
                    (t.clone(), empty)
                } else {
                    (empty, t.clone())
                };
                (t, split, vec![list])
            },
        )
        .reduce(
            || {
                let e = || RankingTotals::new(&cfg.ks);
                (e(), (e(), e()), Vec::new())
            },
            |(a, (sa, na), mut la), (b, (sb, nb), lb)| {
                la.extend(lb);
                (a.merge(&b), (sa.merge(&sb), na.merge(&nb)), la)
            },
        );
    LooResult {
        stage: cfg.stage,
        masking: cfg.masking,
        users: totals.users,
        coverage: coverage(&lists, n_items),
        popularity_bias: popularity_bias(&lists, popularity),
        totals,
        by_target: ByTarget { seen, new },
        eval_s: start.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores items by a fixed vector: a popularity-like scorer.
    struct Fixed(Vec<f32>);
    impl Scorer for Fixed {
        fn score(&self, _: u32, _: &[u32], out: &mut [f32]) {
            out.copy_from_slice(&self.0);
        }
    }

    #[test]
    fn masking_excludes_history_but_never_the_target() {
        // Items 0 > 1 > 2 > 3 by score. User history [0, 1], target 1 again? No:
        // seq [0, 1, 2]: test target 2, history [0, 1].
        let s = Fixed(vec![4.0, 3.0, 2.0, 1.0]);
        let seqs = vec![vec![0, 1, 2]];
        let cfg = |masking| LooConfig {
            stage: Stage::Test,
            masking,
            ks: vec![1, 3],
            list_k: 1,
        };
        let r = evaluate_loo(&s, &seqs, 4, &[1, 1, 1, 1], &cfg(true));
        assert_eq!(r.recall(1), 1.0); // 0 and 1 masked: 2 is first
        let r = evaluate_loo(&s, &seqs, 4, &[1, 1, 1, 1], &cfg(false));
        assert_eq!(r.recall(1), 0.0);
        assert_eq!(r.recall(3), 1.0);
        assert!((r.ndcg(3) - 0.5).abs() < 1e-12); // rank 2 -> 1/log2(4)
                                                  // A repeat target (seen before) is never masked.
        let seqs = vec![vec![0, 1, 0]];
        let r = evaluate_loo(&s, &seqs, 4, &[1, 1, 1, 1], &cfg(true));
        assert_eq!(r.recall(1), 1.0);
    }

    #[test]
    fn a_seen_target_and_a_new_one_are_counted_apart() {
        // Items 0 > 1 > 2 > 3. User a repeats item 1 (history [0, 1]);
        // user b's target 3 is new to them. Masked, a's target is second
        // of what is left after masking 0 and keeping 1: first. b: item 3
        // ranks after 1 and 2 (0 masked): third.
        let s = Fixed(vec![4.0, 3.0, 2.0, 1.0]);
        let seqs = vec![vec![0, 1, 1], vec![0, 3]];
        let cfg = LooConfig {
            stage: Stage::Test,
            masking: true,
            ks: vec![1, 3],
            list_k: 1,
        };
        let r = evaluate_loo(&s, &seqs, 4, &[1, 1, 1, 1], &cfg);
        assert_eq!(r.users, 2);
        assert_eq!(r.by_target.seen.users, 1);
        assert_eq!(r.by_target.new.users, 1);
        assert_eq!(seen_target_share(&seqs), 0.5);
        assert_eq!(r.by_target.seen.recall(1), 1.0);
        assert_eq!(r.by_target.new.recall(1), 0.0);
        assert_eq!(r.by_target.new.recall(3), 1.0);
        assert!((r.by_target.new.ndcg(3) - 0.5).abs() < 1e-12);
        assert!((r.recall(1) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn validation_uses_the_second_to_last_item() {
        let s = Fixed(vec![1.0, 3.0, 2.0]);
        let seqs = vec![vec![0, 1, 2], vec![2]];
        let cfg = LooConfig {
            stage: Stage::Valid,
            masking: true,
            ks: vec![1],
            list_k: 2,
        };
        let r = evaluate_loo(&s, &seqs, 3, &[1, 1, 1], &cfg);
        assert_eq!(r.users, 1); // the 1-item user has no validation target
        assert_eq!(r.recall(1), 1.0); // target 1, history [0]
        assert!((r.coverage - 2.0 / 3.0).abs() < 1e-12);
    }
}
