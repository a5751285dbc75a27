//! `aisle-eval`: recommendation and classification metrics as pure functions.
//!
//! Ranking metrics take the 0-based **rank** of a user's single held-out
//! target among all candidate items (leave-one-out), or `None` when it is not
//! ranked (masked away). Ties: the protocol reports the **expected** metric
//! when ties are broken uniformly at random ([`rank_counts`], [`expected_at`]),
//! which is deterministic and does not favour any item order; top-k lists
//! ([`top_k`]) and [`rank_of`] break ties by item index, lower first.
//!
//! ```
//! use aisle_eval::{rank_of, ndcg_at, recall_at, mrr_at, top_k};
//! let scores = [0.1, 0.9, 0.5, 0.9];
//! // Item 3 ties with item 1 and loses the tie (higher index): rank 1.
//! assert_eq!(rank_of(&scores, 3, |_| false), Some(1));
//! assert_eq!(top_k(&scores, 2, |_| false), vec![1, 3]);
//! assert_eq!(recall_at(Some(1), 10), 1.0);
//! assert!((ndcg_at(Some(1), 10) - 1.0 / 3f64.log2()).abs() < 1e-12);
//! assert_eq!(mrr_at(Some(1), 10), 0.5);
//! ```

pub mod classify;
pub mod protocol;
pub mod topk;

pub use classify::{
    accuracy, auc, auc_difference, expected_calibration_error, logloss, AucDifference,
};
pub use protocol::{
    evaluate_loo, seen_target_share, ByTarget, LooConfig, LooResult, Scorer, Stage,
};
pub use topk::top_k;

/// 0-based rank of `target` among the unmasked items, ties broken by index.
/// `None` if the target itself is masked.
pub fn rank_of(scores: &[f32], target: usize, masked: impl Fn(usize) -> bool) -> Option<usize> {
    if masked(target) {
        return None;
    }
    let st = scores[target];
    let mut rank = 0;
    for (i, &s) in scores.iter().enumerate() {
        if i != target && (s > st || (s == st && i < target)) && !masked(i) {
            rank += 1;
        }
    }
    Some(rank)
}

/// How many unmasked items score strictly higher than `target`, and how many
/// tie with it. `None` if the target is masked.
pub fn rank_counts(
    scores: &[f32],
    target: usize,
    masked: impl Fn(usize) -> bool,
) -> Option<(usize, usize)> {
    if masked(target) {
        return None;
    }
    let st = scores[target];
    let (mut greater, mut ties) = (0, 0);
    for (i, &s) in scores.iter().enumerate() {
        if i != target && s >= st && !masked(i) {
            if s > st {
                greater += 1;
            } else {
                ties += 1;
            }
        }
    }
    Some((greater, ties))
}

/// The expected value of a rank metric when ties are broken uniformly at
/// random: the target's rank is uniform over `greater ..= greater + ties`.
pub fn expected_at(
    counts: Option<(usize, usize)>,
    k: usize,
    metric: fn(Option<usize>, usize) -> f64,
) -> f64 {
    match counts {
        None => 0.0,
        Some((g, t)) => {
            let last = (g + t).min(k.saturating_sub(1));
            if g > last {
                return 0.0;
            }
            (g..=last).map(|r| metric(Some(r), k)).sum::<f64>() / (t + 1) as f64
        }
    }
}

/// Hit rate / recall with one target: 1 if ranked within the top `k`.
pub fn recall_at(rank: Option<usize>, k: usize) -> f64 {
    match rank {
        Some(r) if r < k => 1.0,
        _ => 0.0,
    }
}

/// NDCG with one target: `1 / log2(rank + 2)` within the top `k` (ideal DCG is 1).
pub fn ndcg_at(rank: Option<usize>, k: usize) -> f64 {
    match rank {
        Some(r) if r < k => 1.0 / ((r + 2) as f64).log2(),
        _ => 0.0,
    }
}

/// NDCG@k with graded relevance: DCG of `shown` (each result's grade, best
/// first) with gain `2^grade - 1` and discount `log2(rank + 2)`, over the
/// DCG of the ideal order of `judged` (every judged item's grade). 0 when
/// nothing is relevant.
pub fn graded_ndcg_at(shown: &[u8], judged: &[u8], k: usize) -> f64 {
    let dcg = |grades: &mut dyn Iterator<Item = u8>| -> f64 {
        grades
            .take(k)
            .enumerate()
            .map(|(r, g)| ((1u64 << g) - 1) as f64 / ((r + 2) as f64).log2())
            .sum()
    };
    let mut ideal: Vec<u8> = judged.to_vec();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let best = dcg(&mut ideal.into_iter());
    if best == 0.0 {
        return 0.0;
    }
    dcg(&mut shown.iter().copied()) / best
}

/// Recall@k over several relevant items: relevant results in the top `k`
/// over `min(k, relevant items)` (so a perfect top k scores 1 however many
/// items are relevant). 0 when nothing is relevant.
pub fn capped_recall_at(shown_relevant: &[bool], relevant: usize, k: usize) -> f64 {
    let denom = relevant.min(k);
    if denom == 0 {
        return 0.0;
    }
    shown_relevant.iter().take(k).filter(|r| **r).count() as f64 / denom as f64
}

/// Reciprocal rank within the top `k`.
pub fn mrr_at(rank: Option<usize>, k: usize) -> f64 {
    match rank {
        Some(r) if r < k => 1.0 / (r + 1) as f64,
        _ => 0.0,
    }
}

/// Share of the catalog that appears in at least one user's top-k list.
pub fn coverage(lists: &[Vec<u32>], n_items: usize) -> f64 {
    if n_items == 0 {
        return 0.0;
    }
    let mut seen = vec![false; n_items];
    for l in lists {
        for &i in l {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
            }
        }
    }
    seen.iter().filter(|&&s| s).count() as f64 / n_items as f64
}

/// Average popularity (training interactions) of the recommended items,
/// divided by the average popularity of all items: 1.0 = unbiased, higher =
/// leans to popular items.
pub fn popularity_bias(lists: &[Vec<u32>], popularity: &[u32]) -> f64 {
    let total: u64 = popularity.iter().map(|&p| p as u64).sum();
    let (mut sum, mut n) = (0u64, 0u64);
    for l in lists {
        for &i in l {
            sum += popularity.get(i as usize).copied().unwrap_or(0) as u64;
            n += 1;
        }
    }
    if n == 0 || total == 0 || popularity.is_empty() {
        return 0.0;
    }
    (sum as f64 / n as f64) / (total as f64 / popularity.len() as f64)
}

/// Running means of ranking metrics at several cut-offs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RankingTotals {
    pub users: u64,
    /// (k, recall sum, ndcg sum, mrr sum)
    pub sums: Vec<(usize, f64, f64, f64)>,
}

impl RankingTotals {
    pub fn new(ks: &[usize]) -> Self {
        RankingTotals {
            users: 0,
            sums: ks.iter().map(|&k| (k, 0.0, 0.0, 0.0)).collect(),
        }
    }

    pub fn add(&mut self, rank: Option<usize>) {
        self.users += 1;
        for s in &mut self.sums {
            s.1 += recall_at(rank, s.0);
            s.2 += ndcg_at(rank, s.0);
            s.3 += mrr_at(rank, s.0);
        }
    }

    /// Adds a user whose target has `greater` better and `ties` equal items:
    /// the metrics' expected values under random tie-breaking.
    pub fn add_counts(&mut self, counts: Option<(usize, usize)>) {
        self.users += 1;
        for s in &mut self.sums {
            s.1 += expected_at(counts, s.0, recall_at);
            s.2 += expected_at(counts, s.0, ndcg_at);
            s.3 += expected_at(counts, s.0, mrr_at);
        }
    }

    pub fn merge(mut self, other: &RankingTotals) -> Self {
        self.users += other.users;
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            a.1 += b.1;
            a.2 += b.2;
            a.3 += b.3;
        }
        self
    }

    fn mean(&self, k: usize, f: impl Fn(&(usize, f64, f64, f64)) -> f64) -> f64 {
        if self.users == 0 {
            return 0.0;
        }
        self.sums
            .iter()
            .find(|s| s.0 == k)
            .map(|s| f(s) / self.users as f64)
            .unwrap_or(f64::NAN)
    }
    pub fn recall(&self, k: usize) -> f64 {
        self.mean(k, |s| s.1)
    }
    pub fn ndcg(&self, k: usize) -> f64 {
        self.mean(k, |s| s.2)
    }
    pub fn mrr(&self, k: usize) -> f64 {
        self.mean(k, |s| s.3)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn graded_ndcg_matches_a_hand_computed_value() {
        // Shown grades 2, 0, 1; judged 2, 1, 1 (and zeros).
        // DCG = 3/log2(2) + 0 + 1/log2(4) = 3.5; ideal = 3 + 1/log2(3) + 1/2.
        let want = 3.5 / (3.0 + 1.0 / 3f64.log2() + 0.5);
        let got = graded_ndcg_at(&[2, 0, 1], &[0, 1, 2, 0, 1], 10);
        assert!((got - want).abs() < 1e-12, "{got} {want}");
        assert_eq!(graded_ndcg_at(&[2, 1, 1], &[1, 2, 1], 10), 1.0);
        assert_eq!(graded_ndcg_at(&[0, 0], &[0, 0], 10), 0.0);
        // Only the top k count, on both sides.
        assert_eq!(graded_ndcg_at(&[0, 1], &[1, 1], 1), 0.0);
        assert_eq!(graded_ndcg_at(&[1, 0], &[1, 1, 1], 1), 1.0);
    }

    #[test]
    fn graded_ndcg_with_one_relevant_item_is_the_single_target_ndcg() {
        for r in 0..12 {
            let mut shown = vec![0u8; 12];
            shown[r] = 1;
            let got = graded_ndcg_at(&shown, &[1], 10);
            assert!((got - ndcg_at(Some(r), 10)).abs() < 1e-12, "rank {r}");
        }
    }

    #[test]
    fn capped_recall_counts_relevant_results_over_what_k_could_hold() {
        assert_eq!(capped_recall_at(&[true, false, true], 2, 10), 1.0);
        assert_eq!(capped_recall_at(&[true, false, true], 50, 3), 2.0 / 3.0);
        assert_eq!(capped_recall_at(&[false; 3], 4, 10), 0.0);
        assert_eq!(capped_recall_at(&[true], 0, 10), 0.0);
    }

    use super::*;

    /// The oracle: rank by a full stable sort (score desc, index asc).
    fn oracle_rank(scores: &[f32], target: usize, masked: &[bool]) -> Option<usize> {
        if masked[target] {
            return None;
        }
        let mut idx: Vec<usize> = (0..scores.len()).filter(|&i| !masked[i]).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        idx.iter().position(|&i| i == target)
    }

    #[test]
    fn rank_matches_full_sort_oracle() {
        let mut rng = Lcg(7);
        for case in 0..500 {
            let n = 1 + (rng.next() % 60) as usize;
            // Few distinct values so ties are common.
            let scores: Vec<f32> = (0..n).map(|_| (rng.next() % 7) as f32 * 0.5).collect();
            let masked: Vec<bool> = (0..n).map(|_| rng.next().is_multiple_of(4)).collect();
            let target = (rng.next() as usize) % n;
            let fast = rank_of(&scores, target, |i| masked[i]);
            assert_eq!(fast, oracle_rank(&scores, target, &masked), "case {case}");
            for k in [1, 5, 10] {
                for v in [recall_at(fast, k), ndcg_at(fast, k), mrr_at(fast, k)] {
                    assert!((0.0..=1.0).contains(&v));
                }
            }
        }
    }

    #[test]
    fn expected_metrics_average_over_tie_positions() {
        // Target ties with 3 others, 1 item is better: rank uniform over 1..=4.
        let scores = [5.0, 1.0, 1.0, 1.0, 1.0];
        let c = rank_counts(&scores, 2, |_| false);
        assert_eq!(c, Some((1, 3)));
        let want: f64 = (1..=4).map(|r| ndcg_at(Some(r), 10)).sum::<f64>() / 4.0;
        assert!((expected_at(c, 10, ndcg_at) - want).abs() < 1e-12);
        // Cut-off inside the tie block: only ranks 1 and 2 count at k = 3.
        assert!((expected_at(c, 3, recall_at) - 0.5).abs() < 1e-12);
        // Without ties it is the plain metric.
        assert_eq!(expected_at(Some((2, 0)), 10, mrr_at), mrr_at(Some(2), 10));
        let mut rng = Lcg(5);
        for _ in 0..200 {
            let n = 1 + (rng.next() % 30) as usize;
            let scores: Vec<f32> = (0..n).map(|_| (rng.next() % 4) as f32).collect();
            let t = (rng.next() as usize) % n;
            let (g, ties) = rank_counts(&scores, t, |_| false).unwrap();
            let r = rank_of(&scores, t, |_| false).unwrap();
            assert!(g <= r && r <= g + ties);
            for k in [1, 5, 10] {
                let v = expected_at(Some((g, ties)), k, ndcg_at);
                assert!((0.0..=1.0).contains(&v));
            }
        }
    }

    #[test]
    fn coverage_and_bias_bounds() {
        assert_eq!(coverage(&[vec![0, 1], vec![1, 2]], 4), 0.75);
        assert_eq!(coverage(&[], 0), 0.0);
        let pop = [10, 0, 0, 0];
        assert_eq!(popularity_bias(&[vec![0]], &pop), 4.0);
        assert_eq!(popularity_bias(&[vec![1]], &pop), 0.0);
    }

    #[test]
    fn totals_average() {
        let mut t = RankingTotals::new(&[1, 10]);
        t.add(Some(0));
        t.add(Some(3));
        t.add(None);
        assert!((t.recall(1) - 1.0 / 3.0).abs() < 1e-12);
        assert!((t.recall(10) - 2.0 / 3.0).abs() < 1e-12);
        assert!((t.mrr(10) - (1.0 + 0.25) / 3.0).abs() < 1e-12);
    }

    pub(crate) struct Lcg(pub u64);
    impl Lcg {
        pub fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }
}
