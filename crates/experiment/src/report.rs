//! An experiment's report from per-user, per-day outcomes: each arm's
//! metrics with intervals, each arm against control (fixed-horizon and
//! always-valid p-values, CUPED), the sample-ratio check and a verdict.

use serde::{Deserialize, Serialize};

use crate::interleave::Credit;
use crate::spec::{ExperimentSpec, Metric, Mode};
use crate::stats::{self, Estimate, Msprt, Stat, ALPHA, SRM_ALPHA};

/// One user's attributed outcomes on one day of an experiment, in one arm.
/// Interleaving rows carry arm 0 and the user's credited clicks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UserDay {
    /// The user's dense index (into `ReportInput::pre`).
    pub user: u32,
    pub arm: u16,
    /// Days since the experiment started (the looks of the always-valid test).
    pub day: u32,
    pub impressions: u64,
    pub clicks: u64,
    pub carts: u64,
    pub purchases: u64,
    pub gmv: f64,
    pub credit: Credit,
}

/// A user's behaviour before the experiment: CUPED's covariate (clicks for
/// click metrics, purchases for conversion, spend for GMV).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PrePeriod {
    pub clicks: f64,
    pub carts: f64,
    pub purchases: f64,
    pub gmv: f64,
}

pub struct ReportInput<'a> {
    pub spec: &'a ExperimentSpec,
    pub rows: &'a [UserDay],
    /// By user index; empty when no pre-period is known (CUPED is skipped).
    pub pre: &'a [PrePeriod],
    /// A stopped experiment that found nothing reports "no detectable difference".
    pub stopped: bool,
}

/// The report of one experiment (the JSON of
/// `GET /v1/admin/experiments/{name}/report`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub experiment: String,
    pub mode: Mode,
    pub primary_metric: Metric,
    pub arms: Vec<ArmReport>,
    pub comparisons: Vec<Comparison>,
    pub srm: Srm,
    /// Interleaving only: users' preferences between the two rankers.
    pub interleaving: Option<InterleavingReport>,
    /// `winner`, `no_detectable_difference`, `keep_running`, or
    /// `sample_ratio_mismatch` (the split is broken: nothing else can be read).
    pub verdict: Verdict,
    /// The winning arm's name (with verdict `winner`).
    pub winner: Option<String>,
    /// Users (all arms) still needed for 80% power at the observed effect
    /// of the primary metric (with verdict `keep_running`).
    pub users_needed: Option<u64>,
    /// Days of data the always-valid p-values looked at.
    pub looks: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Winner,
    NoDetectableDifference,
    KeepRunning,
    SampleRatioMismatch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub name: String,
    pub users: u64,
    pub impressions: u64,
    /// Attributed clicks (interleaving: clicks credited to this ranker).
    pub clicks: u64,
    pub carts: u64,
    pub purchases: u64,
    pub gmv: f64,
    /// Clicks per impression (delta method over users).
    pub ctr: Option<Estimate>,
    /// Add-to-carts per impression.
    pub cart_rate: Option<Estimate>,
    /// Share of users with an attributed purchase.
    pub cvr: Option<Estimate>,
    /// Attributed purchase value per user.
    pub gmv_per_user: Option<Estimate>,
}

/// One arm against control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub arm: String,
    pub metric: Metric,
    /// Relative lift over control, `arm / control − 1`, and its 95% interval
    /// (interleaving: the preference margin, the share of deciding users who
    /// preferred this arm minus the share who preferred control).
    pub lift: f64,
    pub low: f64,
    pub high: f64,
    /// Fixed-horizon two-sided p-value (valid when read once, at the planned end).
    pub p_value: f64,
    /// mSPRT p-value: valid however many days it is read.
    pub always_valid_p_value: f64,
    /// The same comparison on CUPED-adjusted values (per-user metrics with a
    /// pre-period).
    pub cuped: Option<CupedComparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CupedComparison {
    pub lift: f64,
    pub low: f64,
    pub high: f64,
    pub p_value: f64,
    /// The coefficients of the pre-period clicks, carts, purchases and spend.
    pub theta: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    pub p_value: f64,
    pub flagged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterleavingReport {
    /// Users whose credited clicks favoured each ranker, and the tied ones.
    pub wins: [u64; 2],
    pub ties: u64,
    /// Share of deciding users who preferred the second arm, with Wilson's interval.
    pub preference: Estimate,
    /// Exact binomial test of that share against ½.
    pub p_value: f64,
    pub always_valid_p_value: f64,
}

/// The scale of plausible relative effects that sets the mSPRT mixture
/// (τ = 10% of the pooled metric): any τ keeps the test valid; this one
/// makes lifts of a few percent decidable in a shop's traffic.
pub const TAU_RELATIVE: f64 = 0.1;
/// τ of interleaving's preference share (5 points away from ½).
pub const TAU_PREFERENCE: f64 = 0.05;

const AB_METRICS: [Metric; 4] = [
    Metric::Ctr,
    Metric::CartRate,
    Metric::Cvr,
    Metric::GmvPerUser,
];

/// One unit's (user in an arm) running totals.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    user: u32,
    arm: u16,
    impressions: f64,
    clicks: f64,
    carts: f64,
    purchases: f64,
    gmv: f64,
    credit: Credit,
}

impl Totals {
    fn add(&mut self, r: &UserDay) {
        self.impressions += r.impressions as f64;
        self.clicks += r.clicks as f64;
        self.carts += r.carts as f64;
        self.purchases += r.purchases as f64;
        self.gmv += r.gmv;
        self.credit.a += r.credit.a;
        self.credit.b += r.credit.b;
    }
}

/// Per-user columns of one arm.
#[derive(Default)]
struct Columns {
    impressions: Vec<f64>,
    clicks: Vec<f64>,
    carts: Vec<f64>,
    converted: Vec<f64>,
    gmv: Vec<f64>,
    users: Vec<u32>,
}

impl Columns {
    /// Refills the columns with arm `arm`'s users (keeping the buffers).
    fn fill(&mut self, units: &[Totals], arm: u16) {
        let c = self;
        c.impressions.clear();
        c.clicks.clear();
        c.carts.clear();
        c.converted.clear();
        c.gmv.clear();
        c.users.clear();
        for t in units.iter().filter(|t| t.arm == arm) {
            c.impressions.push(t.impressions);
            c.clicks.push(t.clicks);
            c.carts.push(t.carts);
            c.converted.push(if t.purchases > 0.0 { 1.0 } else { 0.0 });
            c.gmv.push(t.gmv);
            c.users.push(t.user);
        }
    }

    fn stat(&self, m: Metric) -> Option<Stat> {
        let s = match m {
            Metric::Ctr => stats::ratio(&self.clicks, &self.impressions),
            Metric::CartRate => stats::ratio(&self.carts, &self.impressions),
            Metric::Cvr => stats::mean(&self.converted),
            Metric::GmvPerUser => stats::mean(&self.gmv),
            Metric::Preference => return None,
        };
        s.value.is_finite().then_some(s)
    }

    /// The per-user values CUPED adjusts (per-user means only) and their
    /// covariates: every pre-period series of the user.
    fn per_user(&self, m: Metric, pre: &[PrePeriod]) -> Option<(&[f64], [Vec<f64>; 4])> {
        let ys: &[f64] = match m {
            Metric::Cvr => &self.converted,
            Metric::GmvPerUser => &self.gmv,
            _ => return None,
        };
        let of = |f: fn(&PrePeriod) -> f64| -> Vec<f64> {
            self.users
                .iter()
                .map(|&u| pre.get(u as usize).map_or(0.0, f))
                .collect()
        };
        Some((
            ys,
            [
                of(|p| p.clicks),
                of(|p| p.carts),
                of(|p| p.purchases),
                of(|p| p.gmv),
            ],
        ))
    }
}

/// Each (user, arm)'s slot in `units`: a dense table when user indices
/// are dense (as the store makes them), else a hash map.
enum UnitIndex {
    Dense { arms: usize, slots: Vec<u32> },
    Sparse(std::collections::HashMap<(u32, u16), u32>),
}

impl UnitIndex {
    fn new(rows: &[UserDay], arms: usize) -> UnitIndex {
        let max_user = rows.iter().map(|r| r.user).max().unwrap_or(0) as usize;
        let arms = arms.max(rows.iter().map(|r| r.arm as usize + 1).max().unwrap_or(1));
        let size = (max_user + 1).saturating_mul(arms);
        if size <= (4 * rows.len()).max(1 << 16) {
            UnitIndex::Dense {
                arms,
                slots: vec![u32::MAX; size],
            }
        } else {
            UnitIndex::Sparse(std::collections::HashMap::new())
        }
    }

    fn slot(&mut self, r: &UserDay, units: &mut Vec<Totals>) -> usize {
        let next = units.len() as u32;
        let s = match self {
            UnitIndex::Dense { arms, slots } => {
                let s = &mut slots[r.user as usize * *arms + r.arm as usize];
                if *s == u32::MAX {
                    *s = next;
                }
                *s
            }
            UnitIndex::Sparse(m) => *m.entry((r.user, r.arm)).or_insert(next),
        };
        if s == next {
            units.push(Totals {
                user: r.user,
                arm: r.arm,
                ..Totals::default()
            });
        }
        s as usize
    }
}

pub fn report(input: &ReportInput<'_>) -> Report {
    let spec = input.spec;
    let rows = input.rows;
    // The rows by day (a counting sort of their indices).
    let looks = rows.iter().map(|r| r.day + 1).max().unwrap_or(0);
    let mut by_day = vec![0usize; looks as usize + 1];
    for r in rows {
        by_day[r.day as usize + 1] += 1;
    }
    for d in 1..by_day.len() {
        by_day[d] += by_day[d - 1];
    }
    let mut order = vec![0u32; rows.len()];
    {
        let mut at = by_day.clone();
        for (i, r) in rows.iter().enumerate() {
            order[at[r.day as usize]] = i as u32;
            at[r.day as usize] += 1;
        }
    }
    let n_arms = spec.arms.len();

    // The always-valid p-values: one look per day over the data so far.
    let mut units: Vec<Totals> = Vec::new();
    let mut index = UnitIndex::new(rows, n_arms);
    let mut cols: Vec<Columns> = (0..n_arms).map(|_| Columns::default()).collect();
    let metrics: &[Metric] = match spec.mode {
        Mode::Ab => &AB_METRICS,
        Mode::Interleave => &[],
    };
    let mut seq: Vec<Vec<Option<Msprt>>> = vec![vec![None; metrics.len()]; n_arms];
    let mut pref_seq = Msprt::new(TAU_PREFERENCE);
    for day in 0..looks as usize {
        let today = &order[by_day[day]..by_day[day + 1]];
        if today.is_empty() {
            continue;
        }
        for &i in today {
            let r = &rows[i as usize];
            let u = index.slot(r, &mut units);
            units[u].add(r);
        }
        match spec.mode {
            Mode::Ab => {
                for (a, c) in cols.iter_mut().enumerate() {
                    c.fill(&units, a as u16);
                }
                for (mi, &m) in metrics.iter().enumerate() {
                    let Some(c) = cols[0].stat(m) else { continue };
                    for arm in 1..n_arms {
                        let Some(t) = cols[arm].stat(m) else { continue };
                        let Some(l) = comparable(t, c) else { continue };
                        let tau = TAU_RELATIVE * ((t.value + c.value) / 2.0).abs();
                        seq[arm][mi]
                            .get_or_insert_with(|| Msprt::new(tau.max(f64::MIN_POSITIVE)))
                            .look(l.diff, l.diff_var);
                    }
                }
            }
            Mode::Interleave => {
                let (wa, wb, _) = preferences(&units);
                let n = wa + wb;
                if n > 0 {
                    let share = wb as f64 / n as f64;
                    pref_seq.look(share - 0.5, 0.25 / n as f64);
                }
            }
        }
    }

    for (a, c) in cols.iter_mut().enumerate() {
        c.fill(&units, a as u16);
    }
    let arms: Vec<ArmReport> = spec
        .arms
        .iter()
        .enumerate()
        .map(|(a, s)| arm_report(&s.name, a as u16, &units, &cols[a], spec.mode))
        .collect();

    let mut comparisons = Vec::new();
    let mut interleaving = None;
    match spec.mode {
        Mode::Ab => {
            for arm in 1..n_arms {
                for (mi, &m) in metrics.iter().enumerate() {
                    let (Some(t), Some(c)) = (cols[arm].stat(m), cols[0].stat(m)) else {
                        continue;
                    };
                    let Some(l) = comparable(t, c) else { continue };
                    comparisons.push(Comparison {
                        arm: spec.arms[arm].name.clone(),
                        metric: m,
                        lift: l.lift,
                        low: l.low,
                        high: l.high,
                        p_value: l.p_value,
                        always_valid_p_value: seq[arm][mi].map_or(1.0, |s| s.p_value()),
                        cuped: cuped_comparison(&cols, arm, m, input.pre),
                    });
                }
            }
        }
        Mode::Interleave => {
            let (wa, wb, ties) = preferences(&units);
            let n = wa + wb;
            let pref = stats::wilson(wb, n);
            let p_value = stats::binomial_test_half(wb, n);
            if n > 0 {
                // The second arm's preference as a margin: the share of
                // deciding users preferring it minus the share preferring
                // control (2s − 1).
                let margin = |s: f64| 2.0 * s - 1.0;
                comparisons.push(Comparison {
                    arm: spec.arms[1].name.clone(),
                    metric: Metric::Preference,
                    lift: margin(pref.value),
                    low: margin(pref.low),
                    high: margin(pref.high),
                    p_value,
                    always_valid_p_value: pref_seq.p_value(),
                    cuped: None,
                });
            }
            interleaving = Some(InterleavingReport {
                wins: [wa, wb],
                ties,
                preference: pref,
                p_value,
                always_valid_p_value: pref_seq.p_value(),
            });
        }
    }

    let srm = match spec.mode {
        Mode::Ab => {
            let observed: Vec<u64> = arms.iter().map(|a| a.users).collect();
            let (_, p) = stats::chi_square_gof(&observed, &spec.shares());
            Srm {
                p_value: p,
                flagged: p < SRM_ALPHA,
            }
        }
        Mode::Interleave => Srm {
            p_value: 1.0,
            flagged: false,
        },
    };

    let users = match &interleaving {
        // Users whose clicks decided between the rankers.
        Some(i) => i.wins[0] + i.wins[1],
        None => arms.iter().map(|a| a.users).sum(),
    };
    let (verdict, winner, users_needed) =
        verdict(spec, users, &cols, &comparisons, &srm, input.stopped);
    Report {
        experiment: spec.name.clone(),
        mode: spec.mode,
        primary_metric: spec.primary_metric,
        arms,
        comparisons,
        srm,
        interleaving,
        verdict,
        winner,
        users_needed,
        looks,
    }
}

/// Treatment against control when both arms have at least two users and
/// the lift is a number (a control at 0 has no relative lift yet).
fn comparable(t: Stat, c: Stat) -> Option<stats::Lift> {
    if t.n < 2 || c.n < 2 {
        return None;
    }
    let l = stats::lift(t, c);
    [l.lift, l.low, l.high]
        .iter()
        .all(|x| x.is_finite())
        .then_some(l)
}

fn preferences(units: &[Totals]) -> (u64, u64, u64) {
    let (mut wa, mut wb, mut ties) = (0, 0, 0);
    for u in units {
        match u.credit.preference() {
            Some(crate::interleave::Team::A) => wa += 1,
            Some(crate::interleave::Team::B) => wb += 1,
            _ => ties += 1,
        }
    }
    (wa, wb, ties)
}

fn arm_report(name: &str, arm: u16, units: &[Totals], cols: &Columns, mode: Mode) -> ArmReport {
    let mine = || {
        units
            .iter()
            .filter(|t| t.arm == arm || mode == Mode::Interleave)
    };
    let sum = |f: fn(&Totals) -> f64| mine().map(f).sum::<f64>();
    let est = |m: Metric| cols.stat(m).map(|s| s.interval());
    match mode {
        Mode::Ab => ArmReport {
            name: name.to_string(),
            users: mine().count() as u64,
            impressions: sum(|t| t.impressions) as u64,
            clicks: sum(|t| t.clicks) as u64,
            carts: sum(|t| t.carts) as u64,
            purchases: sum(|t| t.purchases) as u64,
            gmv: sum(|t| t.gmv),
            ctr: est(Metric::Ctr),
            cart_rate: est(Metric::CartRate),
            cvr: est(Metric::Cvr),
            gmv_per_user: est(Metric::GmvPerUser),
        },
        Mode::Interleave => {
            // Every user saw both rankers: clicks are the credited ones, over
            // the lists shown.
            let credited: Vec<f64> = mine()
                .map(|t| if arm == 0 { t.credit.a } else { t.credit.b } as f64)
                .collect();
            let impressions: Vec<f64> = mine().map(|t| t.impressions).collect();
            let ctr = stats::ratio(&credited, &impressions);
            ArmReport {
                name: name.to_string(),
                users: mine().count() as u64,
                impressions: impressions.iter().sum::<f64>() as u64,
                clicks: credited.iter().sum::<f64>() as u64,
                carts: 0,
                purchases: 0,
                gmv: 0.0,
                ctr: ctr.value.is_finite().then(|| ctr.interval()),
                cart_rate: None,
                cvr: None,
                gmv_per_user: None,
            }
        }
    }
}

fn cuped_comparison(
    cols: &[Columns],
    arm: usize,
    m: Metric,
    pre: &[PrePeriod],
) -> Option<CupedComparison> {
    if pre.is_empty() {
        return None;
    }
    let (yt, xt) = cols[arm].per_user(m, pre)?;
    let (yc, xc) = cols[0].per_user(m, pre)?;
    let ys: Vec<f64> = yt.iter().chain(yc).copied().collect();
    let xs: Vec<Vec<f64>> = (0..4)
        .map(|k| xt[k].iter().chain(&xc[k]).copied().collect())
        .collect();
    let cols: Vec<&[f64]> = xs.iter().map(|x| x.as_slice()).collect();
    let (adj, theta) = stats::cuped(&ys, &cols);
    let (at, ac) = adj.split_at(yt.len());
    let l = comparable(stats::mean(at), stats::mean(ac))?;
    Some(CupedComparison {
        lift: l.lift,
        low: l.low,
        high: l.high,
        p_value: l.p_value,
        theta,
    })
}

fn verdict(
    spec: &ExperimentSpec,
    users: u64,
    cols: &[Columns],
    comparisons: &[Comparison],
    srm: &Srm,
    stopped: bool,
) -> (Verdict, Option<String>, Option<u64>) {
    if srm.flagged {
        return (Verdict::SampleRatioMismatch, None, None);
    }
    let primary: Vec<&Comparison> = comparisons
        .iter()
        .filter(|c| c.metric == spec.primary_metric)
        .collect();
    let significant: Vec<&&Comparison> = primary
        .iter()
        .filter(|c| c.always_valid_p_value < ALPHA)
        .collect();
    if !significant.is_empty() {
        let winner = match spec.mode {
            Mode::Interleave => {
                let c = significant[0];
                if c.lift > 0.0 {
                    &spec.arms[1].name
                } else {
                    &spec.arms[0].name
                }
            }
            Mode::Ab => {
                // The best arm significantly above control; control when
                // every significant arm is below it.
                significant
                    .iter()
                    .filter(|c| c.lift > 0.0)
                    .max_by(|a, b| a.lift.total_cmp(&b.lift))
                    .map_or(&spec.arms[0].name, |c| &c.arm)
            }
        };
        return (Verdict::Winner, Some(winner.clone()), None);
    }
    if stopped {
        return (Verdict::NoDetectableDifference, None, None);
    }
    let arms = spec.arms.len() as f64;
    let (needed_mde, needed_obs) = match spec.mode {
        Mode::Interleave => {
            // Deciding users for a share of ½ + δ: n = (z_α + z_β)² · ¼ / δ²,
            // with δ = margin / 2.
            let share_gap = |margin: f64| (margin / 2.0).abs();
            let need = |lift: f64| stats::users_per_arm(share_gap(lift), 0.125, 0.125);
            let obs = primary.first().and_then(|c| need(c.lift));
            (need(spec.min_detectable_lift), obs)
        }
        Mode::Ab => {
            let Some(c) = cols[0].stat(spec.primary_metric) else {
                return (Verdict::KeepRunning, None, None);
            };
            let vt = (1..cols.len())
                .filter_map(|a| cols[a].stat(spec.primary_metric))
                .map(|s| s.unit_var())
                .fold(0.0, f64::max);
            let need_mde =
                stats::users_per_arm(spec.min_detectable_lift * c.value, vt, c.unit_var())
                    .map(|n| n * arms);
            let obs = primary
                .iter()
                .map(|p| p.lift.abs() * c.value)
                .fold(f64::NAN, f64::min);
            (
                need_mde,
                stats::users_per_arm(obs, vt, c.unit_var()).map(|n| n * arms),
            )
        }
    };
    if needed_mde.is_some_and(|n| users as f64 >= n) {
        return (Verdict::NoDetectableDifference, None, None);
    }
    // None when the fixed-horizon plan is already met: the always-valid
    // test, which pays for safe peeking, has not caught up yet.
    let still = needed_obs
        .or(needed_mde)
        .map(|n| (n - users as f64).max(0.0).min(u64::MAX as f64 / 2.0) as u64)
        .filter(|&n| n > 0);
    (Verdict::KeepRunning, None, still)
}
