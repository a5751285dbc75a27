//! `aisle experiments list|report`: the online log's experiments, read from
//! the store (a running server's log included: SQLite lets both read it;
//! over PostgreSQL it is the log every replica writes).

use anyhow::{bail, Result};

use crate::args::{ExperimentsAction, ExperimentsArgs};
use aisle_experiment::report::{Comparison, Report};
use aisle_experiment::stats::Estimate;
use aisle_store::online::{experiment_report, OnlineLog};

fn open_log(store: &str) -> Result<OnlineLog> {
    match OnlineLog::of_store(store)? {
        Some(log) => Ok(log),
        None => bail!(
            "{} has no online log yet: it is written by `aisle serve` (lists shown, outcomes, experiments)",
            store
        ),
    }
}

pub fn experiments(a: ExperimentsArgs) -> Result<()> {
    match a.action {
        ExperimentsAction::List { store, json } => {
            let all = open_log(&store)?.experiments()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no experiments (POST /v1/admin/experiments on a running server)");
            } else {
                for r in all {
                    let arms: Vec<String> = r
                        .spec
                        .arms
                        .iter()
                        .map(|a| format!("{}={}", a.name, a.model))
                        .collect();
                    println!(
                        "{:<24} {:<16} {:<10} {:<8} {}",
                        r.spec.name,
                        r.spec.surface.name(),
                        format!("{:?}", r.spec.mode).to_lowercase(),
                        if r.running() { "running" } else { "stopped" },
                        arms.join(" ")
                    );
                }
            }
        }
        ExperimentsAction::Report { name, store, json } => {
            let log = open_log(&store)?;
            let Some(rec) = log.experiment(&name)? else {
                bail!("no experiment named `{name}` in {store} (aisle experiments list --store {store})");
            };
            let report = experiment_report(&log, &rec)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render(&report));
            }
        }
    }
    Ok(())
}

fn est(e: &Option<Estimate>, pct: bool) -> String {
    match e {
        Some(e) if pct => format!(
            "{:.2}% [{:.2}, {:.2}]",
            e.value * 100.0,
            e.low * 100.0,
            e.high * 100.0
        ),
        Some(e) => format!("{:.2} [{:.2}, {:.2}]", e.value, e.low, e.high),
        None => "-".into(),
    }
}

fn comparison(c: &Comparison) -> String {
    let mut s = format!(
        "  {:<12} {:<13} lift {:+.1}% [{:+.1}, {:+.1}]  p {:.4}  always-valid p {:.4}",
        c.arm,
        c.metric.name(),
        c.lift * 100.0,
        c.low * 100.0,
        c.high * 100.0,
        c.p_value,
        c.always_valid_p_value
    );
    if let Some(cu) = &c.cuped {
        s.push_str(&format!(
            "  (CUPED {:+.1}% [{:+.1}, {:+.1}], p {:.4})",
            cu.lift * 100.0,
            cu.low * 100.0,
            cu.high * 100.0,
            cu.p_value
        ));
    }
    s
}

/// The report as text a person reads in a terminal.
pub(crate) fn render(r: &Report) -> String {
    let mut s = format!(
        "experiment {} ({:?}, primary metric {}, {} daily looks)\n",
        r.experiment,
        r.mode,
        r.primary_metric.name(),
        r.looks
    )
    .to_lowercase();
    for a in &r.arms {
        s.push_str(&format!(
            "  {:<12} users {:>7}  impressions {:>8}  clicks {:>7}  CTR {}  CVR {}  GMV/user {}\n",
            a.name,
            a.users,
            a.impressions,
            a.clicks,
            est(&a.ctr, true),
            est(&a.cvr, true),
            est(&a.gmv_per_user, false)
        ));
    }
    if let Some(i) = &r.interleaving {
        s.push_str(&format!(
            "  interleaving: users preferring each ranker {} / {} ({} ties), share {:.3} [{:.3}, {:.3}], binomial p {:.4}\n",
            i.wins[0], i.wins[1], i.ties, i.preference.value, i.preference.low, i.preference.high, i.p_value
        ));
    }
    for c in &r.comparisons {
        s.push_str(&comparison(c));
        s.push('\n');
    }
    s.push_str(&format!(
        "  sample ratio: p {:.4}{}\n",
        r.srm.p_value,
        if r.srm.flagged {
            "  MISMATCH: the split is broken"
        } else {
            ""
        }
    ));
    let verdict = serde_json::to_value(r.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    s.push_str(&format!("verdict: {verdict}"));
    if let Some(w) = &r.winner {
        s.push_str(&format!(" ({w})"));
    }
    if let Some(n) = r.users_needed {
        s.push_str(&format!(" (about {n} more users at the observed effect)"));
    }
    s.push('\n');
    s
}

/// `aisle ope --store DIR --candidate VERSION [--json]`.
pub fn ope(a: crate::args::OpeArgs) -> Result<()> {
    let o = aisle_serve::ope::off_policy(&a.store, &a.candidate)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
        return Ok(());
    }
    let r = &o.report;
    println!(
        "off-policy estimate of {} from {} logged lists ({} explored) served by {}",
        o.candidate,
        r.lists,
        r.explored_lists,
        o.logged_models.join(", ")
    );
    let line = |name: &str, e: &Estimate| {
        println!("  {name:<22} {:.4}  [{:.4}, {:.4}]", e.value, e.low, e.high)
    };
    println!("  clicks per list        value   95% interval");
    line("logged (what was shown)", &r.logged_ctr);
    line("IPS", &r.ips);
    line("self-normalised IPS", &r.snips);
    line("doubly robust", &r.dr);
    println!(
        "  click model alone {:.4}; candidate items matched {} times; support {:.2} (1 = every candidate item could have been shown)",
        r.direct, r.matched_slots, r.support
    );
    if r.support < 0.8 {
        println!(
            "  warning: much of the candidate lies outside what the logs ever showed; widen --explore-pool or trust DR's model part less"
        );
    }
    Ok(())
}
