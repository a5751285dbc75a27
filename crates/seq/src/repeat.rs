//! The repeat bias: a learned score added to every item the user already has
//! in the history, by how long ago it was last seen and how often. An item
//! last seen `d` positions back (`d = 1`: the latest item) falls in recency
//! class `floor(log2 d)` (the last class collecting everything older), an
//! item seen `n` times in count class `floor(log2 n)` (1, 2–3, 4–7, 8 or
//! more). The bias is one weight per recency class plus one per count class
//! above the first (additive, so a count never seen in training still gets
//! its recency's weight), trained with the rest of the network (zero at the
//! start).
//!
//! The network's dot products cannot express "not this item again" or "this
//! one again" for a whole history; the bias can, and it is learned from the
//! data, not set by hand: where nobody repeats (MovieLens ratings) it becomes
//! a large penalty, where shoppers come back to what they viewed (Taobao) a
//! bonus for recent items.

use std::collections::HashMap;

/// Recency classes (the last one holds items seen 2,048 or more positions
/// ago).
pub const RECENCY_CLASSES: usize = 12;
/// Count classes (the last one holds items seen 8 or more times).
pub const COUNT_CLASSES: usize = 4;
/// Weights of the repeat bias: the recency classes', then the count classes'
/// from the second (seen twice or three times) on.
pub const REPEAT_BUCKETS: usize = RECENCY_CLASSES + COUNT_CLASSES - 1;

/// The weights a bucket (`count_class * RECENCY_CLASSES + recency_class`,
/// as [`bucket`] gives it) adds up: its recency class's, and its count
/// class's unless it was seen once.
#[inline]
pub(crate) fn weight_indices(bucket: u8) -> (usize, Option<usize>) {
    let (c, r) = (
        bucket as usize / RECENCY_CLASSES,
        bucket as usize % RECENCY_CLASSES,
    );
    (r, (c > 0).then(|| RECENCY_CLASSES + c - 1))
}

/// The bias of an item in `bucket`.
#[inline]
pub(crate) fn bias(weights: &[f32], bucket: u8) -> f32 {
    let (r, c) = weight_indices(bucket);
    weights[r] + c.map_or(0.0, |c| weights[c])
}

#[inline]
fn log2_class(x: usize, classes: usize) -> usize {
    let x = x.max(1);
    ((usize::BITS - 1 - x.leading_zeros()) as usize).min(classes - 1)
}

/// The bucket of an item last seen `distance >= 1` positions back, `count
/// >= 1` times in all: `count_class * RECENCY_CLASSES + recency_class`.
#[inline]
pub(crate) fn bucket(distance: usize, count: usize) -> u8 {
    (log2_class(count, COUNT_CLASSES) * RECENCY_CLASSES + log2_class(distance, RECENCY_CLASSES))
        as u8
}

/// For every position `t >= from` of `history` (oldest first), each distinct
/// item of `history[..=t]` with the bucket of its latest occurrence, in order
/// of first appearance. Returns `history.len() - from` lists (none when
/// `from` is past the end). Training asks for every position of a window;
/// inference, through [`seen`], for the last.
pub(crate) fn seen_after_each(history: &[u32], from: usize) -> Vec<Vec<(u32, u8)>> {
    // Each item's latest position and count so far.
    let mut last: HashMap<u32, (usize, usize)> = HashMap::with_capacity(history.len());
    let mut order = Vec::new();
    let mut out = Vec::with_capacity(history.len().saturating_sub(from));
    for (t, &i) in history.iter().enumerate() {
        let e = last.entry(i).or_insert_with(|| {
            order.push(i);
            (t, 0)
        });
        *e = (t, e.1 + 1);
        if t >= from {
            out.push(
                order
                    .iter()
                    .map(|&j| {
                        let (at, n) = last[&j];
                        (j, bucket(t + 1 - at, n))
                    })
                    .collect(),
            );
        }
    }
    out
}

/// The seen items of the whole `history`, as [`seen_after_each`] gives them
/// at its last position.
pub(crate) fn seen(history: &[u32]) -> Vec<(u32, u8)> {
    seen_after_each(history, history.len().saturating_sub(1))
        .pop()
        .unwrap_or_default()
}

/// Adds the bias of each seen item to its score.
pub(crate) fn apply(weights: &[f32], seen: &[(u32, u8)], scores: &mut [f32]) {
    for &(i, b) in seen {
        if let Some(s) = scores.get_mut(i as usize) {
            *s += bias(weights, b);
        }
    }
}

/// Inference: adds the bias (if the model has one) for the items of
/// `history` to `scores`, one per catalog item; ids past the catalog are
/// left out before distances are counted, as the network leaves them out.
pub(crate) fn add_for_history(weights: &[f32], history: &[u32], scores: &mut [f32]) {
    if weights.is_empty() {
        return;
    }
    let known: Vec<u32> = history
        .iter()
        .copied()
        .filter(|&i| (i as usize) < scores.len())
        .collect();
    apply(weights, &seen(&known), scores);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2_of_the_distance_and_count() {
        let got: Vec<u8> = [1, 2, 3, 4, 7, 8, 1000, 2047, 2048, 1 << 20]
            .iter()
            .map(|&d| bucket(d, 1))
            .collect();
        assert_eq!(got, vec![0, 1, 1, 2, 2, 3, 9, 10, 11, 11]);
        let by_count: Vec<u8> = [1, 2, 3, 4, 7, 8, 500]
            .iter()
            .map(|&n| bucket(1, n))
            .collect();
        assert_eq!(by_count, vec![0, 12, 12, 24, 24, 36, 36]);
        assert_eq!(bucket(5, 3), 12 + 2);
        assert_eq!(bucket(1 << 20, 1 << 20) as usize, 4 * 12 - 1);
        assert_eq!(weight_indices(0), (0, None));
        assert_eq!(weight_indices(bucket(5, 3)), (2, Some(12)));
        assert_eq!(weight_indices(bucket(3000, 9)), (11, Some(14)));
        let w: Vec<f32> = (0..REPEAT_BUCKETS).map(|k| k as f32).collect();
        assert_eq!(bias(&w, bucket(5, 3)), 2.0 + 12.0);
    }

    #[test]
    fn seen_keeps_the_latest_occurrence_and_counts() {
        // 5 was seen 1 back, 7 2 back (its later occurrence counts) and twice,
        // 3 3 back, 9 5 back.
        assert_eq!(
            seen(&[9, 7, 3, 7, 5]),
            vec![(9, 2), (7, 12 + 1), (3, 1), (5, 0)]
        );
        assert!(seen(&[]).is_empty());
    }

    #[test]
    fn each_position_matches_a_direct_count_on_its_prefix() {
        // The latest occurrence of each distinct item, counted directly.
        let direct = |p: &[u32]| -> Vec<(u32, u8)> {
            let mut firsts: Vec<u32> = Vec::new();
            for &i in p {
                if !firsts.contains(&i) {
                    firsts.push(i);
                }
            }
            let last = |i: u32| p.iter().rposition(|&x| x == i).unwrap();
            let count = |i: u32| p.iter().filter(|&&x| x == i).count();
            firsts
                .into_iter()
                .map(|i| (i, bucket(p.len() - last(i), count(i))))
                .collect()
        };
        let h = [4u32, 8, 4, 1, 8, 8, 2];
        for from in 0..=h.len() {
            let got = seen_after_each(&h, from);
            assert_eq!(got.len(), h.len() - from);
            for (k, entries) in got.iter().enumerate() {
                assert_eq!(entries, &direct(&h[..=from + k]));
            }
        }
        assert_eq!(seen(&h), direct(&h));
    }

    #[test]
    fn inference_leaves_unknown_ids_out_of_the_distances() {
        let w: Vec<f32> = (0..REPEAT_BUCKETS).map(|b| b as f32 + 1.0).collect();
        // 99 is past the 4-item catalog: 1 is then the latest item (bucket 0),
        // 3 two back (bucket 1).
        let mut s = vec![0f32; 4];
        add_for_history(&w, &[3, 1, 99], &mut s);
        assert_eq!(s, vec![0.0, 1.0, 0.0, 2.0]);
        let mut s = vec![0f32; 4];
        add_for_history(&[], &[3, 1], &mut s);
        assert_eq!(s, vec![0.0; 4]);
    }

    #[test]
    fn apply_adds_weights_and_ignores_unknown_items() {
        let w: Vec<f32> = (0..REPEAT_BUCKETS).map(|b| b as f32 + 1.0).collect();
        let mut s = vec![0f32; 4];
        apply(&w, &[(1, 0), (3, 2), (9, 0), (2, 12 + 1)], &mut s);
        // Item 2, seen twice, 2 back: recency weight 2 + count weight 13.
        assert_eq!(s, vec![0.0, 1.0, 15.0, 3.0]);
    }
}
