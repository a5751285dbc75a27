//! Top-k selection with a bounded heap: O(n log k), never a full sort.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// An entry ordered so that the heap's top is the *worst* kept item.
#[derive(PartialEq)]
struct Entry(f32, u32);

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Better = higher score, then lower index. The max-heap keeps the worst on top.
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The indices of the `k` best unmasked scores, best first; ties go to the
/// lower index. NaN scores rank last.
pub fn top_k(scores: &[f32], k: usize, masked: impl Fn(usize) -> bool) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        let s = if s.is_nan() { f32::NEG_INFINITY } else { s };
        if heap.len() == k {
            let worst = heap.peek().expect("k > 0");
            // Strictly better than the worst kept one?
            if !(s > worst.0 || (s == worst.0 && (i as u32) < worst.1)) {
                continue;
            }
        }
        if masked(i) {
            continue;
        }
        heap.push(Entry(s, i as u32));
        if heap.len() > k {
            heap.pop();
        }
    }
    let mut v = heap.into_vec();
    v.sort();
    v.into_iter().map(|e| e.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::Lcg;

    #[test]
    fn matches_full_sort() {
        let mut rng = Lcg(3);
        for _ in 0..500 {
            let n = (rng.next() % 80) as usize;
            let scores: Vec<f32> = (0..n).map(|_| (rng.next() % 9) as f32).collect();
            let masked: Vec<bool> = (0..n).map(|_| rng.next().is_multiple_of(5)).collect();
            let k = (rng.next() % 12) as usize;
            let mut idx: Vec<u32> = (0..n as u32).filter(|&i| !masked[i as usize]).collect();
            idx.sort_by(|&a, &b| {
                scores[b as usize]
                    .total_cmp(&scores[a as usize])
                    .then(a.cmp(&b))
            });
            idx.truncate(k);
            assert_eq!(top_k(&scores, k, |i| masked[i]), idx);
        }
    }
}
