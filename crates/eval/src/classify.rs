//! Metrics of probabilistic classifiers (labels are 0/1, predictions in [0, 1]).

/// Area under the ROC curve by the rank-sum formula, with ties given half
/// credit. `None` when only one class is present.
pub fn auc(labels: &[bool], preds: &[f64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..preds.len()).collect();
    idx.sort_by(|&a, &b| preds[a].total_cmp(&preds[b]));
    let (mut rank_sum, mut pos, mut i) = (0.0f64, 0u64, 0usize);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && preds[idx[j + 1]] == preds[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &t in &idx[i..=j] {
            if labels[t] {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = labels.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64))
}

/// Mean binary cross-entropy, predictions clipped to [1e-7, 1 - 1e-7].
pub fn logloss(labels: &[bool], preds: &[f64]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let s: f64 = labels
        .iter()
        .zip(preds)
        .map(|(&y, &p)| {
            let p = p.clamp(1e-7, 1.0 - 1e-7);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    s / labels.len() as f64
}

/// Share of predictions on the right side of `threshold`.
pub fn accuracy(labels: &[bool], preds: &[f64], threshold: f64) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    labels
        .iter()
        .zip(preds)
        .filter(|(&y, &p)| (p >= threshold) == y)
        .count() as f64
        / labels.len() as f64
}

/// Expected calibration error over `bins` equal-width bins:
/// Σ (n_b / n) · |mean prediction_b − positive rate_b|.
pub fn expected_calibration_error(labels: &[bool], preds: &[f64], bins: usize) -> f64 {
    if labels.is_empty() || bins == 0 {
        return 0.0;
    }
    let mut n = vec![0u64; bins];
    let mut p_sum = vec![0.0f64; bins];
    let mut y_sum = vec![0.0f64; bins];
    for (&y, &p) in labels.iter().zip(preds) {
        let b = ((p.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        n[b] += 1;
        p_sum[b] += p;
        y_sum[b] += y as u8 as f64;
    }
    let total = labels.len() as f64;
    (0..bins)
        .filter(|&b| n[b] > 0)
        .map(|b| (n[b] as f64 / total) * (p_sum[b] / n[b] as f64 - y_sum[b] / n[b] as f64).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::Lcg;

    fn auc_oracle(labels: &[bool], preds: &[f64]) -> Option<f64> {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..labels.len() {
            for j in 0..labels.len() {
                if labels[i] && !labels[j] {
                    den += 1.0;
                    num += if preds[i] > preds[j] {
                        1.0
                    } else if preds[i] == preds[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        (den > 0.0).then(|| num / den)
    }

    #[test]
    fn auc_matches_pairwise_oracle() {
        let mut rng = Lcg(11);
        for _ in 0..300 {
            let n = 1 + (rng.next() % 40) as usize;
            let labels: Vec<bool> = (0..n).map(|_| rng.next().is_multiple_of(3)).collect();
            let preds: Vec<f64> = (0..n).map(|_| (rng.next() % 5) as f64 / 4.0).collect();
            match (auc(&labels, &preds), auc_oracle(&labels, &preds)) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12 && (0.0..=1.0).contains(&a)),
                (a, b) => assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn logloss_accuracy_ece() {
        let y = [true, false, true, false];
        let p = [0.9, 0.1, 0.6, 0.4];
        let ll = logloss(&y, &p);
        let want = -(0.9f64.ln() + 0.9f64.ln() + 0.6f64.ln() + 0.6f64.ln()) / 4.0;
        assert!((ll - want).abs() < 1e-12);
        assert_eq!(accuracy(&y, &p, 0.5), 1.0);
        // Perfectly calibrated bins give 0; a constant 1.0 on half positives gives 0.5.
        assert!(expected_calibration_error(&[true, false], &[0.5, 0.5], 10) < 1e-12);
        assert!((expected_calibration_error(&[true, false], &[1.0, 1.0], 10) - 0.5).abs() < 1e-12);
        assert!(logloss(&[true], &[0.0]).is_finite());
    }
}
