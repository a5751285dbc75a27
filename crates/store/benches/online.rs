//! An experiment's report over 1,000,000 impressions (10 items each) and
//! their joined clicks and purchases: the target is under 1 s.
//! `cargo bench -p aisle-store --bench online` (SQLite);
//! `ONLINE_BENCH_PG=postgres://… cargo bench -p aisle-store --bench online`
//! (the same log in PostgreSQL).

use aisle_core::rng::Rng;
use aisle_experiment::{ArmSpec, ExperimentSpec, Metric, Mode, Surface};
use aisle_store::online::{
    experiment_report, Impression, OnlineLog, Outcome, OutcomeKind, Shown, DAY_MS,
};
use criterion::{criterion_group, criterion_main, Criterion};

const IMPRESSIONS: u64 = 1_000_000;
const USERS: u64 = 100_000;
const T0: i64 = 1_800_000_000_000;

fn build(log: &mut OnlineLog) -> aisle_store::online::ExperimentRecord {
    let spec = ExperimentSpec {
        name: "bench".into(),
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
                model: "promoted".into(),
                traffic: 50.0,
            },
        ],
        salt: String::new(),
        primary_metric: Metric::Ctr,
        min_detectable_lift: 0.05,
    }
    .validate()
    .unwrap();
    let rec = log.create_experiment(&spec, T0).unwrap().unwrap();
    let mut rng = Rng::seed(7);
    let mut key = 0u64;
    for chunk in 0..IMPRESSIONS / 10_000 {
        let mut imps = Vec::with_capacity(10_000);
        let mut outcomes = Vec::new();
        for j in 0..10_000u64 {
            let rid = chunk * 10_000 + j + 1;
            let user = format!("u{}", rng.below(USERS));
            let arm = spec.assign(&user);
            let ts = T0 + rng.below(14 * DAY_MS as u64) as i64;
            let items: Vec<Shown> = (0..10)
                .map(|_| Shown {
                    item: format!("i{}", rng.below(5_000)),
                    score: 1.0,
                    propensity: None,
                    team: None,
                })
                .collect();
            if rng.chance(0.05) {
                let p = rng.below(10) as usize;
                for kind in [OutcomeKind::Click, OutcomeKind::Purchase] {
                    if kind == OutcomeKind::Purchase && !rng.chance(0.2) {
                        continue;
                    }
                    key += 1;
                    outcomes.push(Outcome {
                        key,
                        ts_ms: ts + 60_000,
                        user: user.clone(),
                        item: items[p].item.clone(),
                        kind,
                        value: if kind == OutcomeKind::Purchase {
                            25.0
                        } else {
                            0.0
                        },
                        quantity: None,
                        request_id: Some(rid),
                        request_id_given: true,
                        position: Some(p as u32 + 1),
                    });
                }
            }
            imps.push(Impression {
                rid,
                ts_ms: ts,
                user: Some(user),
                session: None,
                surface: "recommendations".into(),
                experiment: Some("bench".into()),
                arm: Some(spec.arms[arm].name.clone()),
                model: "m@v".into(),
                query: None,
                events_seq: None,
                items,
            });
        }
        log.batch(|b| {
            for i in &imps {
                b.log_impression(i)?;
            }
            for o in &outcomes {
                b.attribute(o, DAY_MS)?;
            }
            Ok(())
        })
        .unwrap();
    }
    rec
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let out = f();
    eprintln!(
        "built 1,000,000 impressions in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    out
}

fn bench(c: &mut Criterion) {
    // ONLINE_BENCH_DB=FILE keeps the log between runs (built once when
    // FILE does not exist): building it takes minutes.
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var_os("ONLINE_BENCH_DB") {
        Some(p) => std::path::PathBuf::from(p),
        None => dir.path().join("online.db"),
    };
    // ONLINE_BENCH_PG=postgres://… runs the same over the PostgreSQL log
    // (the database keeps it between runs the same way).
    let (log, rec, on) = match std::env::var("ONLINE_BENCH_PG") {
        Ok(url) => {
            let mut log = OnlineLog::open_postgres(&url).unwrap();
            let rec = match log.experiment("bench").unwrap() {
                Some(rec) => rec,
                None => timed(|| build(&mut log)),
            };
            (log, rec, "_postgres")
        }
        Err(_) => {
            let rec = if path.exists() {
                OnlineLog::open(&path)
                    .unwrap()
                    .experiment("bench")
                    .unwrap()
                    .expect("the bench experiment")
            } else {
                timed(|| build(&mut OnlineLog::open(&path).unwrap()))
            };
            (OnlineLog::open(&path).unwrap(), rec, "")
        }
    };
    let r = experiment_report(&log, &rec).unwrap();
    let users: u64 = r.arms.iter().map(|a| a.users).sum();
    let imps: u64 = r.arms.iter().map(|a| a.impressions).sum();
    assert_eq!(imps, IMPRESSIONS);
    eprintln!(
        "report: {users} users, {imps} impressions, verdict {:?}",
        r.verdict
    );
    let mut g = c.benchmark_group("online_report");
    g.sample_size(10);
    g.bench_function(format!("report_1m_impressions{on}"), |b| {
        b.iter(|| experiment_report(&log, &rec).unwrap())
    });
    // The two halves: the per-user, per-day rows from SQLite, and the
    // statistics over them.
    g.bench_function(format!("rows_1m_impressions{on}"), |b| {
        b.iter(|| log.experiment_data(&rec).unwrap())
    });
    let data = log.experiment_data(&rec).unwrap();
    g.bench_function(format!("stats_1m_impressions{on}"), |b| {
        b.iter(|| {
            aisle_experiment::report(&aisle_experiment::ReportInput {
                spec: &rec.spec,
                rows: &data.rows,
                pre: &data.pre,
                stopped: false,
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
