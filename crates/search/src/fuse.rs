//! Rank fusion. Reciprocal rank fusion (Cormack et al. 2009) adds, for each
//! list an item is in, `weight / (K0 + rank)` with ranks from 1; it needs no
//! score calibration between BM25, cosine similarity and a recommender.

use std::collections::HashMap;

/// The RRF constant of the original paper.
pub const K0: f32 = 60.0;

/// Fuses ranked lists (best first) with weights; returns (id, score) best
/// first, ties broken by first appearance.
pub fn rrf(lists: &[(&[String], f32)]) -> Vec<(String, f32)> {
    let mut score: HashMap<&str, (f32, usize)> = HashMap::new();
    let mut order = 0;
    for (list, w) in lists {
        for (r, id) in list.iter().enumerate() {
            let e = score.entry(id.as_str()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += w / (K0 + r as f32 + 1.0);
        }
    }
    let mut out: Vec<(String, f32, usize)> = score
        .into_iter()
        .map(|(id, (s, o))| (id.to_string(), s, o))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(id, s, _)| (id, s)).collect()
}

/// One re-ranked candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Reranked {
    /// Index into the candidates.
    pub index: usize,
    pub score: f32,
    /// The candidate's rank (from 1) by the personal score, if it had one.
    pub personal_rank: Option<usize>,
    /// What the personal term added.
    pub boost: f32,
}

/// Re-ranks `candidates` (their fused scores, best first) by adding
/// `weight / (K0 + personal rank)`, the personal rank being the order of
/// `personal` scores among the candidates (None: no opinion, no boost).
pub fn personal_rerank(candidates: &[f32], personal: &[Option<f32>], weight: f32) -> Vec<Reranked> {
    let mut by_personal: Vec<usize> = (0..candidates.len())
        .filter(|&i| {
            personal
                .get(i)
                .copied()
                .flatten()
                .is_some_and(f32::is_finite)
        })
        .collect();
    by_personal.sort_by(|&a, &b| {
        personal[b]
            .unwrap_or(f32::MIN)
            .total_cmp(&personal[a].unwrap_or(f32::MIN))
            .then(a.cmp(&b))
    });
    let mut rank = vec![None; candidates.len()];
    for (r, &i) in by_personal.iter().enumerate() {
        rank[i] = Some(r + 1);
    }
    let mut out: Vec<Reranked> = candidates
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let boost = rank[i].map_or(0.0, |r| weight / (K0 + r as f32));
            Reranked {
                index: i,
                score: s + boost,
                personal_rank: rank[i],
                boost,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    out
}

/// One ranked result of [`rank`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub id: String,
    /// Fused score plus the personal boost.
    pub score: f32,
    pub personal_rank: Option<usize>,
    pub boost: f32,
}

/// The whole ranking: fuse `lists` (RRF), then re-rank the fused list by
/// `personal` scores (None: no personal opinion on that id) with `weight`.
/// Serving and the search benchmark both rank through this.
pub fn rank(
    lists: &[(&[String], f32)],
    personal: &dyn Fn(&str) -> Option<f32>,
    weight: f32,
) -> Vec<Ranked> {
    rank_fused(rrf(lists), personal, weight)
}

/// [`rank`] from a fused list (id, score; best first), e.g. one the
/// re-ranking stage has reordered.
pub fn rank_fused(
    fused: Vec<(String, f32)>,
    personal: &dyn Fn(&str) -> Option<f32>,
    weight: f32,
) -> Vec<Ranked> {
    let base: Vec<f32> = fused.iter().map(|(_, s)| *s).collect();
    let scores: Vec<Option<f32>> = if weight == 0.0 {
        vec![None; fused.len()]
    } else {
        fused.iter().map(|(id, _)| personal(id)).collect()
    };
    personal_rerank(&base, &scores, weight)
        .into_iter()
        .map(|r| Ranked {
            id: fused[r.index].0.clone(),
            score: r.score,
            personal_rank: r.personal_rank,
            boost: r.boost,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rrf_rewards_agreement_and_respects_weights() {
        let a = ids(&["x", "y", "z"]);
        let b = ids(&["y", "w"]);
        let f = rrf(&[(&a, 1.0), (&b, 1.0)]);
        assert_eq!(f[0].0, "y"); // in both lists
        assert!((f[0].1 - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-7);
        assert_eq!(f.len(), 4);
        // A heavy second list wins.
        let f = rrf(&[(&a, 0.1), (&b, 1.0)]);
        assert_eq!(f[0].0, "y");
        assert_eq!(f[1].0, "w");
    }

    #[test]
    fn personal_boost_reorders_and_none_means_no_boost() {
        // Fused text scores of ranks 1, 2, 3.
        let base = [1.0 / 61.0, 1.0 / 62.0, 1.0 / 63.0];
        let r = personal_rerank(&base, &[Some(0.1), None, Some(5.0)], 3.0);
        assert_eq!(r[0].index, 2, "{r:?}"); // the user's favourite jumps up
        assert_eq!(r[0].personal_rank, Some(1));
        let unboosted = r.iter().find(|x| x.index == 1).unwrap();
        assert_eq!((unboosted.boost, unboosted.personal_rank), (0.0, None));
        // Weight 0 keeps the text order.
        let r = personal_rerank(&base, &[Some(0.1), None, Some(5.0)], 0.0);
        assert_eq!(r.iter().map(|x| x.index).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
