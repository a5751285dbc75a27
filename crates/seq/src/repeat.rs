//! The repeat bias: a learned score added to every item the user already has
//! in the history, by how long ago it was last seen. An item last seen `d`
//! positions back (`d = 1`: the latest item) falls in bucket `floor(log2 d)`,
//! the last bucket collecting everything older; each bucket has one weight,
//! trained with the rest of the network (zero at the start).
//!
//! The network's dot products cannot express "not this item again" or "this
//! one again" for a whole history; the bias can, and it is learned from the
//! data, not set by hand: where nobody repeats (MovieLens ratings) it becomes
//! a large penalty, where shoppers come back to what they viewed (Taobao) a
//! bonus for recent items.

use std::collections::HashMap;

/// Recency buckets of the repeat bias (the last one holds items seen 2,048
/// or more positions ago).
pub const REPEAT_BUCKETS: usize = 12;

/// The bucket of an item last seen `distance >= 1` positions back.
#[inline]
pub(crate) fn bucket(distance: usize) -> u8 {
    let d = distance.max(1);
    ((usize::BITS - 1 - d.leading_zeros()) as usize).min(REPEAT_BUCKETS - 1) as u8
}

/// For every position `t >= from` of `history` (oldest first), each distinct
/// item of `history[..=t]` with the bucket of its latest occurrence, in order
/// of first appearance. Returns `history.len() - from` lists (none when
/// `from` is past the end). Training asks for every position of a window;
/// inference, through [`seen`], for the last.
pub(crate) fn seen_after_each(history: &[u32], from: usize) -> Vec<Vec<(u32, u8)>> {
    let mut last: HashMap<u32, usize> = HashMap::with_capacity(history.len());
    let mut order = Vec::new();
    let mut out = Vec::with_capacity(history.len().saturating_sub(from));
    for (t, &i) in history.iter().enumerate() {
        if last.insert(i, t).is_none() {
            order.push(i);
        }
        if t >= from {
            out.push(
                order
                    .iter()
                    .map(|&j| (j, bucket(t + 1 - last[&j])))
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
            *s += weights[b as usize];
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
    fn buckets_are_log2_of_the_distance() {
        let got: Vec<u8> = [1, 2, 3, 4, 7, 8, 1000, 2047, 2048, 1 << 20]
            .iter()
            .map(|&d| bucket(d))
            .collect();
        assert_eq!(got, vec![0, 1, 1, 2, 2, 3, 9, 10, 11, 11]);
    }

    #[test]
    fn seen_keeps_the_latest_occurrence() {
        // 5 was seen 1 back, 7 2 back (its later occurrence counts), 3 3 back, 9 5 back.
        assert_eq!(seen(&[9, 7, 3, 7, 5]), vec![(9, 2), (7, 1), (3, 1), (5, 0)]);
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
            firsts
                .into_iter()
                .map(|i| (i, bucket(p.len() - last(i))))
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
        apply(&w, &[(1, 0), (3, 2), (9, 0)], &mut s);
        assert_eq!(s, vec![0.0, 1.0, 0.0, 3.0]);
    }
}
