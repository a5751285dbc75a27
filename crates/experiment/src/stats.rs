//! The estimators of an experiment report, as pure functions over per-user
//! values. Every interval is two-sided at 95%; every p-value two-sided.
//!
//! Units: a *user* is the unit of randomisation, so every variance is
//! computed over users (a user's impressions are not independent draws).
//! Ratio metrics (CTR = clicks / impressions) get the delta method over the
//! per-user sums (Deng et al. 2018, "Applying the Delta Method in Metric
//! Analytics").

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, Discrete, DiscreteCDF, Normal};

/// z for a two-sided 95% interval (scipy `norm.ppf(0.975)`).
pub const Z95: f64 = 1.959_963_984_540_054;
/// z for 80% power (`norm.ppf(0.8)`).
pub const Z80: f64 = 0.841_621_233_572_914_3;
/// The significance level every test and verdict uses.
pub const ALPHA: f64 = 0.05;
/// A sample-ratio mismatch is flagged below this p-value (the customary
/// threshold: a mismatch this unlikely is a bug, not chance).
pub const SRM_ALPHA: f64 = 0.001;

/// A point estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    fn normal(value: f64, var: f64) -> Estimate {
        let half = Z95 * var.max(0.0).sqrt();
        Estimate {
            value,
            low: value - half,
            high: value + half,
        }
    }

    /// Whether `x` lies inside the interval (bounds included).
    pub fn covers(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// An estimate with its sampling variance over `n` users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub n: usize,
    pub value: f64,
    /// The variance of `value` (not of one user's value).
    pub var: f64,
}

impl Stat {
    pub fn interval(&self) -> Estimate {
        Estimate::normal(self.value, self.var)
    }

    /// The variance of one user's contribution (`var * n`), what sample
    /// sizes are planned from.
    pub fn unit_var(&self) -> f64 {
        self.var * self.n as f64
    }
}

/// The mean of per-user values and its variance (sample variance / n).
pub fn mean(xs: &[f64]) -> Stat {
    let n = xs.len();
    if n == 0 {
        return Stat {
            n,
            value: f64::NAN,
            var: f64::NAN,
        };
    }
    let m = xs.iter().sum::<f64>() / n as f64;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    let var = if n > 1 { ss / (n - 1) as f64 } else { 0.0 };
    Stat {
        n,
        value: m,
        var: var / n as f64,
    }
}

/// sum(ys) / sum(xs) over users, with the delta-method variance
/// `(s²_y − 2r·s_xy + r²·s²_x) / (n·x̄²)`.
pub fn ratio(ys: &[f64], xs: &[f64]) -> Stat {
    assert_eq!(ys.len(), xs.len(), "one numerator and denominator per user");
    let n = ys.len();
    let (sy, sx): (f64, f64) = (ys.iter().sum(), xs.iter().sum());
    if n == 0 || sx == 0.0 {
        return Stat {
            n,
            value: f64::NAN,
            var: f64::NAN,
        };
    }
    let (my, mx) = (sy / n as f64, sx / n as f64);
    let r = sy / sx;
    if n == 1 {
        return Stat {
            n,
            value: r,
            var: 0.0,
        };
    }
    let (mut vy, mut vx, mut cxy) = (0.0, 0.0, 0.0);
    for (y, x) in ys.iter().zip(xs) {
        vy += (y - my) * (y - my);
        vx += (x - mx) * (x - mx);
        cxy += (y - my) * (x - mx);
    }
    let d = (n - 1) as f64;
    let (vy, vx, cxy) = (vy / d, vx / d, cxy / d);
    Stat {
        n,
        value: r,
        var: ((vy - 2.0 * r * cxy + r * r * vx) / (n as f64 * mx * mx)).max(0.0),
    }
}

/// Treatment against control: relative lift `t / c − 1` with a
/// delta-method interval, and the two-sided z-test of `t − c = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lift {
    pub lift: f64,
    pub low: f64,
    pub high: f64,
    pub p_value: f64,
    /// The absolute difference `t − c` and its variance (what the
    /// sequential test and sample-size planning read).
    pub diff: f64,
    pub diff_var: f64,
}

pub fn lift(treatment: Stat, control: Stat) -> Lift {
    let (t, c) = (treatment.value, control.value);
    let diff = t - c;
    let diff_var = treatment.var + control.var;
    let lift = t / c - 1.0;
    // d(t/c) = dt/c − t·dc/c²
    let var = treatment.var / (c * c) + t * t * control.var / (c * c * c * c);
    let half = Z95 * var.max(0.0).sqrt();
    Lift {
        lift,
        low: lift - half,
        high: lift + half,
        p_value: z_test_p(diff, diff_var),
        diff,
        diff_var,
    }
}

/// Two-sided p-value of an estimate `x` with variance `var` against 0; 1
/// when the variance is not positive (one user, or none: nothing to test).
pub fn z_test_p(x: f64, var: f64) -> f64 {
    if var.is_nan() || var <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let z = x.abs() / var.sqrt();
    2.0 * standard_normal().sf(z)
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// Φ(x), the standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    standard_normal().cdf(x)
}

/// Φ⁻¹(p).
pub fn normal_quantile(p: f64) -> f64 {
    standard_normal().inverse_cdf(p)
}

/// The mixture sequential probability ratio test (mSPRT) of Johari,
/// Pekelis & Walsh (2017, "Always Valid Inference"): with a normal mixing
/// distribution N(0, τ²) over the true difference θ, after each look n the
/// likelihood ratio of an estimate θ̂ₙ with variance Vₙ is
///
/// Λₙ = √(Vₙ / (Vₙ + τ²)) · exp(θ̂ₙ² τ² / (2 Vₙ (Vₙ + τ²)))
///
/// and pₙ = min(pₙ₋₁, 1/Λₙ) is a p-value that stays valid however often it
/// is read: under the null, P(∃n: pₙ ≤ α) ≤ α.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Msprt {
    tau2: f64,
    p: f64,
}

impl Msprt {
    /// τ² is the variance of plausible true differences; any τ > 0 keeps the
    /// guarantee, the right scale makes the test fast.
    pub fn new(tau: f64) -> Msprt {
        Msprt {
            tau2: tau * tau,
            p: 1.0,
        }
    }

    /// One look at the data so far: its difference and that difference's variance.
    pub fn look(&mut self, diff: f64, var: f64) -> f64 {
        if var > 0.0 && diff.is_finite() && self.tau2 > 0.0 {
            let v = var;
            let log_lambda = 0.5 * (v / (v + self.tau2)).ln()
                + diff * diff * self.tau2 / (2.0 * v * (v + self.tau2));
            self.p = self.p.min((-log_lambda).exp().min(1.0));
        }
        self.p
    }

    pub fn p_value(&self) -> f64 {
        self.p
    }
}

/// CUPED (Deng et al. 2013) with one or more covariates: `y − Σ θₖ (xₖ − x̄ₖ)`
/// with θ the least-squares coefficients of y on the covariates (one
/// covariate: `θ = cov(x, y) / var(x)`), fitted over all users of the
/// experiment (every arm pooled, so the adjustment is the same function in
/// every arm and keeps each arm's mean unbiased). The covariates are the
/// user's behaviour before the experiment, which the arm cannot have
/// changed. `xs[k]` is covariate k, one value per user. Returns the adjusted
/// values and θ.
pub fn cuped(ys: &[f64], xs: &[&[f64]]) -> (Vec<f64>, Vec<f64>) {
    let (n, k) = (ys.len(), xs.len());
    assert!(
        xs.iter().all(|x| x.len() == n),
        "one value of each covariate per user"
    );
    if n < 2 || k == 0 {
        return (ys.to_vec(), vec![0.0; k]);
    }
    let my = ys.iter().sum::<f64>() / n as f64;
    let mx: Vec<f64> = xs
        .iter()
        .map(|x| x.iter().sum::<f64>() / n as f64)
        .collect();
    // Normal equations: Sxx θ = Sxy over centred values.
    let mut sxx = vec![vec![0.0; k]; k];
    let mut sxy = vec![0.0; k];
    for i in 0..n {
        let dy = ys[i] - my;
        for a in 0..k {
            let da = xs[a][i] - mx[a];
            sxy[a] += da * dy;
            for b in 0..=a {
                sxx[a][b] += da * (xs[b][i] - mx[b]);
            }
        }
    }
    for a in 1..k {
        let (upper, lower) = sxx.split_at_mut(a);
        for (b, row) in upper.iter_mut().enumerate() {
            row[a] = lower[0][b];
        }
    }
    let theta = solve_spd(sxx, sxy);
    let adjusted = (0..n)
        .map(|i| ys[i] - (0..k).map(|a| theta[a] * (xs[a][i] - mx[a])).sum::<f64>())
        .collect();
    (adjusted, theta)
}

/// Solves a small symmetric positive semi-definite system by Gaussian
/// elimination with partial pivoting; a covariate with no variance (or one
/// that repeats another) gets θ = 0.
fn solve_spd(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let k = b.len();
    let scale = (0..k)
        .map(|i| a[i][i].abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut used = vec![true; k];
    for c in 0..k {
        let p = (c..k)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        if a[p][c].abs() <= 1e-12 * scale {
            used[c] = false;
            continue;
        }
        a.swap(c, p);
        b.swap(c, p);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for (i, row) in rest.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *x -= f * p;
            }
            b[c + 1 + i] -= f * b[c];
        }
    }
    let mut x = vec![0.0; k];
    for c in (0..k).rev() {
        if !used[c] {
            continue;
        }
        let s: f64 = (c + 1..k).map(|j| a[c][j] * x[j]).sum();
        x[c] = (b[c] - s) / a[c][c];
    }
    x
}

/// Pearson's χ² goodness-of-fit test of observed counts against expected
/// shares (which need not be normalised). Returns (statistic, p-value).
pub fn chi_square_gof(observed: &[u64], shares: &[f64]) -> (f64, f64) {
    assert_eq!(observed.len(), shares.len(), "one share per cell");
    let total: u64 = observed.iter().sum();
    let share_sum: f64 = shares.iter().sum();
    if observed.len() < 2 || total == 0 || share_sum.is_nan() || share_sum <= 0.0 {
        return (0.0, 1.0);
    }
    let stat: f64 = observed
        .iter()
        .zip(shares)
        .filter(|(_, s)| **s > 0.0)
        .map(|(&o, &s)| {
            let e = total as f64 * s / share_sum;
            (o as f64 - e) * (o as f64 - e) / e
        })
        .sum();
    let df = shares
        .iter()
        .filter(|s| **s > 0.0)
        .count()
        .saturating_sub(1);
    if df == 0 {
        return (stat, 1.0);
    }
    let chi = ChiSquared::new(df as f64).expect("df > 0");
    (stat, chi.sf(stat))
}

/// The exact two-sided binomial test of `k` successes in `n` trials against
/// p = ½ (scipy `binomtest(k, n, 0.5)`: the symmetric case sums both tails).
pub fn binomial_test_half(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let b = Binomial::new(0.5, n).expect("p in [0, 1]");
    let lo = k.min(n - k);
    if 2 * lo == n {
        return 1.0;
    }
    (2.0 * b.cdf(lo)).min(1.0)
}

/// P(X = k) of a binomial, for tests.
pub fn binomial_pmf(k: u64, n: u64, p: f64) -> f64 {
    Binomial::new(p, n).expect("p in [0, 1]").pmf(k)
}

/// Wilson's 95% score interval of a proportion k / n.
pub fn wilson(k: u64, n: u64) -> Estimate {
    if n == 0 {
        return Estimate {
            value: f64::NAN,
            low: 0.0,
            high: 1.0,
        };
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Estimate {
        value: p,
        low: centre - half,
        high: centre + half,
    }
}

/// Users per arm a two-arm test needs for 80% power at level 5% to detect
/// an absolute difference `delta`, given each arm's per-user variance.
pub fn users_per_arm(delta: f64, unit_var_t: f64, unit_var_c: f64) -> Option<f64> {
    if delta.is_nan() || delta == 0.0 || !(unit_var_t + unit_var_c).is_finite() {
        return None;
    }
    let z = Z95 + Z80;
    Some((z * z * (unit_var_t + unit_var_c) / (delta * delta)).ceil())
}
