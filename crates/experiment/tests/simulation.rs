//! The report's statistics by simulation: thousands of synthetic experiments
//! whose truth is known (no HTTP; the shop simulator checks the same end
//! to end). Shoppers differ in how often they come and how likely they
//! click; the pre-period is the same shoppers' behaviour in the 14 days
//! before, so it predicts the experiment's outcomes as it does in a shop.

use aisle_core::rng::Rng;
use aisle_experiment::{
    report, ArmSpec, ExperimentSpec, Metric, Mode, PrePeriod, Report, ReportInput, Surface,
    UserDay, Verdict,
};

struct Sim {
    users: usize,
    days: u32,
    /// Multiplies the click propensity of arm 1's users.
    click_effect: f64,
}

const PURCHASE_PER_CLICK: f64 = 0.1;

fn spec(salt: String) -> ExperimentSpec {
    ExperimentSpec {
        name: "sim".into(),
        surface: Surface::Recommendations,
        mode: Mode::Ab,
        arms: vec![
            ArmSpec {
                name: "control".into(),
                model: "pop".into(),
                traffic: 50.0,
            },
            ArmSpec {
                name: "treatment".into(),
                model: "sasrec".into(),
                traffic: 50.0,
            },
        ],
        salt,
        primary_metric: Metric::Ctr,
        min_detectable_lift: 0.05,
    }
    .validate()
    .unwrap()
}

/// One shopper's day: impressions, clicks, carts, purchases, spend.
fn day(rng: &mut Rng, lists_per_day: f64, p_click: f64) -> (u64, u64, u64, u64, f64) {
    let impressions = rng.poisson(lists_per_day);
    let (mut clicks, mut carts, mut purchases, mut gmv) = (0, 0, 0, 0.0);
    for _ in 0..impressions {
        if rng.chance(p_click) {
            clicks += 1;
            if rng.chance(0.3) {
                carts += 1;
                if rng.chance(PURCHASE_PER_CLICK / 0.3) {
                    purchases += 1;
                    gmv += 20.0 * (0.6 * rng.normal()).exp();
                }
            }
        }
    }
    (impressions, clicks, carts, purchases, gmv)
}

fn run(sim: &Sim, seed: u64) -> Report {
    let mut rng = Rng::seed(seed);
    let spec = spec(format!("salt-{seed}"));
    let mut rows = Vec::new();
    let mut pre = Vec::with_capacity(sim.users);
    for u in 0..sim.users {
        let arm = spec.assign(&format!("user-{u}"));
        // Heterogeneous shoppers: activity and taste for clicking.
        let lists = 0.6 * (0.8 * rng.normal()).exp();
        let p = (0.08 * (0.7 * rng.normal()).exp()).min(0.8);
        let mut before = PrePeriod::default();
        for _ in 0..14 {
            let (_, c, k, b, g) = day(&mut rng, lists, p);
            before.clicks += c as f64;
            before.carts += k as f64;
            before.purchases += b as f64;
            before.gmv += g;
        }
        pre.push(before);
        let p_arm = if arm == 1 {
            (p * sim.click_effect).min(1.0)
        } else {
            p
        };
        for d in 0..sim.days {
            let (impressions, clicks, carts, purchases, gmv) = day(&mut rng, lists, p_arm);
            if impressions > 0 {
                rows.push(UserDay {
                    user: u as u32,
                    arm: arm as u16,
                    day: d,
                    impressions,
                    clicks,
                    carts,
                    purchases,
                    gmv,
                    ..UserDay::default()
                });
            }
        }
    }
    report(&ReportInput {
        spec: &spec,
        rows: &rows,
        pre: &pre,
        stopped: false,
    })
}

fn comparison(r: &Report, m: Metric) -> &aisle_experiment::report::Comparison {
    r.comparisons.iter().find(|c| c.metric == m).unwrap()
}

const EXPERIMENTS: u64 = 2000;

/// The A/A experiments, simulated once for the tests that read them.
fn aa_reports() -> &'static [Report] {
    static AA: std::sync::OnceLock<Vec<Report>> = std::sync::OnceLock::new();
    AA.get_or_init(|| {
        let sim = Sim {
            users: 1000,
            days: 7,
            click_effect: 1.0,
        };
        (0..EXPERIMENTS).map(|s| run(&sim, 1000 + s)).collect()
    })
}

fn rate(reports: &[Report], reject: impl Fn(&Report) -> bool) -> f64 {
    reports.iter().filter(|r| reject(r)).count() as f64 / reports.len() as f64
}

#[test]
fn fixed_horizon_tests_reject_five_percent_of_aa_experiments() {
    let reports = aa_reports();
    for m in [Metric::Ctr, Metric::Cvr, Metric::GmvPerUser] {
        let fp = rate(reports, |r| comparison(r, m).p_value < 0.05);
        eprintln!("{}: A/A rejection rate {fp:.4}", m.name());
        assert!((0.035..=0.065).contains(&fp), "{}: {fp}", m.name());
    }
}

#[test]
fn always_valid_tests_read_daily_stay_under_five_percent() {
    let reports = aa_reports();
    assert!(reports.iter().all(|r| r.looks == 7), "one look per day");
    for m in [Metric::Ctr, Metric::Cvr, Metric::GmvPerUser] {
        // The p-value is the minimum over the daily looks: a rejection on
        // any day counts.
        let fp = rate(reports, |r| comparison(r, m).always_valid_p_value < 0.05);
        eprintln!("{}: A/A always-valid rejection rate {fp:.4}", m.name());
        assert!(fp <= 0.05, "{}: {fp}", m.name());
    }
}

#[test]
fn aa_experiments_rarely_end_with_a_winner() {
    let reports = aa_reports();
    let winners = rate(reports, |r| r.verdict == Verdict::Winner);
    assert!(winners <= 0.05, "{winners}");
    let srm = rate(reports, |r| r.srm.flagged);
    assert!(
        srm <= 0.005,
        "sample-ratio mismatch flagged in {srm} of fair splits"
    );
}

#[test]
fn the_lift_interval_covers_the_true_lift_95_percent_of_the_time() {
    // Clicks ×1.1 in the treatment arm: CTR's true lift is +10%.
    let sim = Sim {
        users: 2000,
        days: 7,
        click_effect: 1.1,
    };
    let reports: Vec<Report> = (0..1000).map(|s| run(&sim, 50_000 + s)).collect();
    let covered = rate(&reports, |r| {
        let c = comparison(r, Metric::Ctr);
        c.low <= 0.1 && 0.1 <= c.high
    });
    eprintln!("coverage of the +10% CTR lift: {covered:.3}");
    assert!((0.93..=0.97).contains(&covered), "{covered}");
}

#[test]
fn cuped_narrows_the_interval_and_keeps_its_coverage() {
    let sim = Sim {
        users: 2000,
        days: 7,
        click_effect: 1.1,
    };
    let reports: Vec<Report> = (0..400).map(|s| run(&sim, 90_000 + s)).collect();
    // GMV and conversion follow clicks: their true lift is +10% as well
    // (up to the rare propensities capped at 1).
    for m in [Metric::GmvPerUser, Metric::Cvr] {
        let (mut plain, mut adjusted, mut covered) = (0.0, 0.0, 0usize);
        for r in &reports {
            let c = comparison(r, m);
            let cu = c.cuped.as_ref().expect("a pre-period gives CUPED");
            plain += c.high - c.low;
            adjusted += cu.high - cu.low;
            covered += usize::from(cu.low <= 0.1 && 0.1 <= cu.high);
        }
        let ratio = adjusted / plain;
        let coverage = covered as f64 / reports.len() as f64;
        eprintln!(
            "{}: CUPED width / plain width {ratio:.3}, coverage {coverage:.3}",
            m.name()
        );
        // A week's outcomes are noisy beside 14 days of history: the gain is
        // small here (BENCHMARKS.md §10 has the figures), but it must be a gain.
        assert!(ratio < 0.99, "{}: {ratio}", m.name());
        assert!(coverage >= 0.92, "{}: {coverage}", m.name());
    }
}

#[test]
fn a_real_effect_is_found_and_named() {
    let sim = Sim {
        users: 20_000,
        days: 7,
        click_effect: 1.2,
    };
    let r = run(&sim, 7);
    assert_eq!(r.verdict, Verdict::Winner);
    assert_eq!(r.winner.as_deref(), Some("treatment"));
    assert!(comparison(&r, Metric::Ctr).always_valid_p_value < 0.05);
}

#[test]
fn a_small_aa_experiment_keeps_running_and_says_how_many_users_it_needs() {
    let sim = Sim {
        users: 200,
        days: 3,
        click_effect: 1.0,
    };
    let r = run(&sim, 11);
    assert_eq!(r.verdict, Verdict::KeepRunning);
    assert!(r.users_needed.is_some_and(|n| n > 0));
}

#[test]
fn a_large_aa_experiment_reports_no_detectable_difference() {
    let sim = Sim {
        users: 60_000,
        days: 7,
        click_effect: 1.0,
    };
    let r = run(&sim, 12);
    assert_eq!(r.verdict, Verdict::NoDetectableDifference, "{r:?}");
}

/// Interleaving: each user sees `lists` merged lists; a list's click lands
/// on a team-A item with probability `p_a`, on a team-B item with `p_b`.
fn run_interleaved(users: usize, p_a: f64, p_b: f64, seed: u64) -> Report {
    let mut rng = Rng::seed(seed);
    let mut spec = spec(format!("salt-{seed}"));
    spec.mode = Mode::Interleave;
    let spec = spec.validate().unwrap();
    let mut rows = Vec::new();
    for u in 0..users {
        for d in 0..7 {
            let impressions = rng.poisson(0.6);
            let mut credit = aisle_experiment::Credit::default();
            for _ in 0..impressions {
                if rng.chance(p_a) {
                    credit.add(aisle_experiment::Team::A);
                }
                if rng.chance(p_b) {
                    credit.add(aisle_experiment::Team::B);
                }
            }
            if impressions > 0 {
                rows.push(UserDay {
                    user: u as u32,
                    day: d,
                    impressions,
                    clicks: credit.a + credit.b,
                    credit,
                    ..UserDay::default()
                });
            }
        }
    }
    report(&ReportInput {
        spec: &spec,
        rows: &rows,
        pre: &[],
        stopped: false,
    })
}

#[test]
fn interleaving_aa_rejects_at_most_five_percent() {
    let reports: Vec<Report> = (0..1000)
        .map(|s| run_interleaved(500, 0.05, 0.05, s))
        .collect();
    let fixed = rate(&reports, |r| {
        r.interleaving.as_ref().unwrap().p_value < 0.05
    });
    let valid = rate(&reports, |r| {
        r.interleaving.as_ref().unwrap().always_valid_p_value < 0.05
    });
    eprintln!("interleaving A/A: binomial {fixed:.4}, always-valid {valid:.4}");
    // The exact binomial test is conservative (discrete): at most 5%, not far below.
    assert!((0.03..=0.055).contains(&fixed), "{fixed}");
    assert!(valid <= 0.05, "{valid}");
}

#[test]
fn interleaving_names_the_ranker_that_gets_more_clicks() {
    let r = run_interleaved(5000, 0.04, 0.06, 5);
    let i = r.interleaving.as_ref().unwrap();
    assert!(i.preference.low > 0.5, "{i:?}");
    assert_eq!(r.verdict, Verdict::Winner);
    assert_eq!(r.winner.as_deref(), Some("treatment"));
}
