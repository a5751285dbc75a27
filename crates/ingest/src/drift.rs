//! Drift of recent behaviour against a reference period: the population
//! stability index (PSI) of a signal's distribution over the same bins,
//! `Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)` with `e` the reference shares and `a` the
//! recent ones. A bin empty on one side gets the share [`FLOOR`] (the
//! usual guard against ln 0) before both sides are renormalised.
//! Conventional reading: below 0.1 stable, 0.1 to 0.25 a moderate shift,
//! above 0.25 a shift worth acting on ([`Level`]).

use serde::Serialize;

/// The share an empty bin counts as.
pub const FLOOR: f64 = 1e-4;
/// PSI from which a shift is "moderate".
pub const MODERATE: f64 = 0.1;
/// PSI from which a shift is "major" (the console warns).
pub const MAJOR: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Stable,
    Moderate,
    Major,
}

impl Level {
    pub fn of(psi: f64) -> Level {
        if psi >= MAJOR {
            Level::Major
        } else if psi >= MODERATE {
            Level::Moderate
        } else {
            Level::Stable
        }
    }
}

fn shares(counts: &[u64]) -> Vec<f64> {
    let n: u64 = counts.iter().sum();
    let raw: Vec<f64> = counts
        .iter()
        .map(|&c| {
            if n == 0 {
                0.0
            } else {
                (c as f64 / n as f64).max(FLOOR)
            }
        })
        .collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter()
        .map(|s| s / total.max(f64::MIN_POSITIVE))
        .collect()
}

/// The PSI of `recent` against `reference` (counts over the same bins);
/// None when either side has no observation or the bins differ in number.
pub fn psi(reference: &[u64], recent: &[u64]) -> Option<f64> {
    if reference.len() != recent.len()
        || reference.iter().sum::<u64>() == 0
        || recent.iter().sum::<u64>() == 0
    {
        return None;
    }
    let (e, a) = (shares(reference), shares(recent));
    Some(
        e.iter()
            .zip(&a)
            .map(|(&e, &a)| (a - e) * (a / e).ln())
            .sum(),
    )
}

/// Bin edges at the reference's deciles (for a numeric signal such as
/// price): at most 9 distinct inner edges, ascending.
pub fn decile_edges(mut values: Vec<f64>) -> Vec<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return Vec::new();
    }
    values.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..10)
        .map(|d| values[(d * values.len() / 10).min(values.len() - 1)])
        .collect();
    edges.dedup();
    edges
}

/// The bin of `x` among `edges` (bin i holds values below edge i; the
/// last bin the rest).
pub fn bin_of(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&e| e <= x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_matches_values_computed_by_hand() {
        // e = (.5, .5), a = (.6, .4): .1 ln 1.2 + .1 ln 1.25 = 0.0405465.
        let v = psi(&[50, 50], &[60, 40]).unwrap();
        assert!(
            (v - (0.1 * 1.2f64.ln() + 0.1 * 1.25f64.ln())).abs() < 1e-12,
            "{v}"
        );
        // e = (.25, .25, .5), a = (.5, .25, .25): .25 ln 2 + .25 ln 2 = 0.3465736.
        let v = psi(&[25, 25, 50], &[50, 25, 25]).unwrap();
        assert!((v - 0.5 * 2f64.ln()).abs() < 1e-12, "{v}");
        assert_eq!(psi(&[3, 7], &[3, 7]), Some(0.0));
        assert_eq!(Level::of(v), Level::Major);
        assert_eq!(Level::of(0.05), Level::Stable);
        assert_eq!(Level::of(0.12), Level::Moderate);
    }

    #[test]
    fn an_empty_bin_counts_as_the_floor_share_and_no_data_is_none() {
        // e = (1, 0) floored to (1/(1+1e-4), 1e-4/(1+1e-4)); a = (.5, .5).
        let v = psi(&[10, 0], &[5, 5]).unwrap();
        let e1 = 1.0 / (1.0 + FLOOR);
        let e2 = FLOOR / (1.0 + FLOOR);
        let want = (0.5 - e1) * (0.5 / e1).ln() + (0.5 - e2) * (0.5 / e2).ln();
        assert!((v - want).abs() < 1e-12, "{v} vs {want}");
        assert_eq!(psi(&[0, 0], &[1, 2]), None);
        assert_eq!(psi(&[1, 2], &[0, 0]), None);
        assert_eq!(psi(&[1, 2], &[1, 2, 3]), None);
    }

    /// Two samples of the same 10-bin distribution almost never read as a
    /// shift; a real shift of the same size always does.
    #[test]
    fn by_simulation_same_distribution_is_stable_and_a_shift_is_major() {
        let mut rng = aisle_core::rng::Rng::seed(21);
        let probs = [0.3, 0.2, 0.1, 0.1, 0.08, 0.07, 0.05, 0.04, 0.03, 0.03];
        let draw = |rng: &mut aisle_core::rng::Rng, p: &[f64], n: usize| -> Vec<u64> {
            let mut c = vec![0u64; p.len()];
            for _ in 0..n {
                let mut u = rng.f64();
                let mut i = 0;
                while i + 1 < p.len() && u >= p[i] {
                    u -= p[i];
                    i += 1;
                }
                c[i] += 1;
            }
            c
        };
        let shifted = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
        let (mut false_alarms, mut missed) = (0, 0);
        for _ in 0..200 {
            let reference = draw(&mut rng, &probs, 5_000);
            let same = draw(&mut rng, &probs, 2_000);
            let other = draw(&mut rng, &shifted, 2_000);
            if Level::of(psi(&reference, &same).unwrap()) != Level::Stable {
                false_alarms += 1;
            }
            if Level::of(psi(&reference, &other).unwrap()) != Level::Major {
                missed += 1;
            }
        }
        assert_eq!(false_alarms, 0, "same distribution read as a shift");
        assert_eq!(missed, 0, "a shift to uniform not read as major");
    }

    #[test]
    fn decile_edges_bin_values_into_tenths() {
        let edges = decile_edges((1..=100).map(f64::from).collect());
        assert_eq!(edges.len(), 9);
        assert_eq!(bin_of(&edges, 1.0), 0);
        assert_eq!(bin_of(&edges, 100.0), 9);
        let mut counts = [0u64; 10];
        for v in 1..=100 {
            counts[bin_of(&edges, f64::from(v))] += 1;
        }
        assert!(counts.iter().all(|&c| c == 10), "{counts:?}");
        assert_eq!(decile_edges(vec![2.0; 50]), vec![2.0]);
        assert!(decile_edges(Vec::new()).is_empty());
    }
}
