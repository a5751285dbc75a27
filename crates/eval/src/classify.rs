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

/// How much one model's AUC is above another's ([`auc_difference`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AucDifference {
    /// AUC(a) − AUC(b) on the samples themselves.
    pub diff: f64,
    /// 2.5th and 97.5th percentiles of the resampled differences.
    pub ci95: [f64; 2],
    /// Share of resamples where `a`'s AUC is above `b`'s.
    pub share_above: f64,
    pub resamples: usize,
    pub clusters: usize,
}

/// AUC of `a` minus AUC of `b` on the same samples, with a 95% interval
/// from a paired cluster bootstrap: `resamples` times, draw as many
/// clusters (users) as there are, with replacement, take all their samples,
/// and recompute both AUCs on that sample. Resampling users rather than rows
/// keeps one user's correlated samples together. `None` when a class is
/// missing.
pub fn auc_difference(
    labels: &[bool],
    a: &[f64],
    b: &[f64],
    cluster: &[u32],
    resamples: usize,
    seed: u64,
) -> Option<AucDifference> {
    assert!(a.len() == labels.len() && b.len() == labels.len() && cluster.len() == labels.len());
    let diff = auc(labels, a)? - auc(labels, b)?;
    let mut rows: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (r, &c) in cluster.iter().enumerate() {
        rows.entry(c).or_default().push(r);
    }
    let groups: Vec<Vec<usize>> = rows.into_values().collect();
    let mut rng = aisle_core::rng::Rng::seed(seed);
    let (mut y, mut pa, mut pb) = (Vec::new(), Vec::new(), Vec::new());
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        y.clear();
        pa.clear();
        pb.clear();
        for _ in 0..groups.len() {
            for &r in &groups[rng.below(groups.len() as u64) as usize] {
                y.push(labels[r]);
                pa.push(a[r]);
                pb.push(b[r]);
            }
        }
        if let (Some(x), Some(z)) = (auc(&y, &pa), auc(&y, &pb)) {
            diffs.push(x - z);
        }
    }
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((diffs.len() - 1) as f64 * q).round() as usize];
    Some(AucDifference {
        diff,
        ci95: [at(0.025), at(0.975)],
        share_above: diffs.iter().filter(|&&d| d > 0.0).count() as f64 / diffs.len() as f64,
        resamples: diffs.len(),
        clusters: groups.len(),
    })
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

    #[test]
    fn auc_difference_bootstrap() {
        let unit = |r: &mut Lcg| r.next() as f64 / (1u64 << 31) as f64;
        // 200 users with 10 samples each; `good` tracks the label, `noise`
        // does not: a clear difference, an interval that excludes 0.
        let mut rng = Lcg(3);
        let (mut y, mut good, mut noise, mut user) = (vec![], vec![], vec![], vec![]);
        for u in 0..200u32 {
            for _ in 0..10 {
                let label = unit(&mut rng) < 0.2;
                y.push(label);
                good.push(if label { 0.6 } else { 0.4 } + 0.5 * unit(&mut rng));
                noise.push(unit(&mut rng));
                user.push(u);
            }
        }
        let d = auc_difference(&y, &good, &noise, &user, 300, 1).unwrap();
        assert_eq!(d.clusters, 200);
        assert_eq!(d.resamples, 300);
        assert!((d.diff - (auc(&y, &good).unwrap() - auc(&y, &noise).unwrap())).abs() < 1e-12);
        assert!(d.diff > 0.2 && d.ci95[0] > 0.0 && d.ci95[0] < d.diff && d.diff < d.ci95[1]);
        assert_eq!(d.share_above, 1.0);
        // A model against itself: exactly 0 everywhere.
        let same = auc_difference(&y, &good, &good, &user, 50, 1).unwrap();
        assert_eq!(
            (same.diff, same.ci95, same.share_above),
            (0.0, [0.0, 0.0], 0.0)
        );
        // One class only: no AUC, no difference.
        assert!(auc_difference(&[true, true], &[0.1, 0.2], &[0.2, 0.1], &[0, 1], 10, 1).is_none());
    }
}
