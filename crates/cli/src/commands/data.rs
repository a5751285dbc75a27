//! The data commands: presets, ingest, append, stats, split, demo-data.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use aisle_core::{time, Event, TimeKind};
use aisle_features::temporal_split;
use aisle_ingest::{DatasetConfig, Ingestor, QualityReport, StoreOutcome};
use aisle_store::DatasetMeta;
use anyhow::{bail, Context, Result};
use sha2::Digest;
use tracing::info;

use super::{bar, store_dir, unix_now, write_json};
use crate::args::{
    AppendArgs, DemoDataArgs, IngestArgs, LinkArgs, PresetsArgs, SplitArgs, SplitProtocol,
    StatsArgs,
};

pub fn presets(a: PresetsArgs) -> Result<()> {
    if a.reference {
        print!("{}", aisle_ingest::config::REFERENCE);
        return Ok(());
    }
    match a.show {
        Some(name) => print!("{}", aisle_ingest::config::preset_toml(&name)?),
        None => {
            for name in aisle_ingest::config::preset_names() {
                let cfg = DatasetConfig::preset(name)?;
                println!("{name:<26} {}", cfg.description);
            }
        }
    }
    Ok(())
}

pub fn ingest(a: IngestArgs) -> Result<()> {
    let mut cfg = match (&a.preset, &a.config) {
        (Some(p), _) => DatasetConfig::preset(p)?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            DatasetConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        (None, None) => bail!("give --preset NAME or --config FILE"),
    };
    if a.dedupe {
        cfg.cleaning.dedupe_exact = true;
    }
    if a.drop_non_products {
        cfg.cleaning.drop_non_products = true;
    }
    if let Some(n) = a.bot_cap {
        cfg.cleaning.bot_max_events_per_minute = Some(n);
    }
    if let Some(k) = a.kcore {
        cfg.cleaning.kcore = k;
    }
    if let Some(w) = a.consecutive_window {
        cfg.cleaning.consecutive_duplicate_window_s = Some(w);
    }
    // The flags must make sense with the config too (e.g. --bot-cap on order-only data).
    cfg.validate()?;
    let report = match (&a.store, a.dry_run) {
        (Some(store), false) => run_ingest(cfg, &a.input, a.catalog.as_deref(), store)?,
        // Dry run: validate and count, keep nothing.
        _ => {
            Ingestor::new(cfg)
                .with_quarantine_sink(|_| {})
                .with_catalog_sink(|_| {})
                .ingest_into(&a.input, a.catalog.as_deref(), &mut |_| true)?
                .report
        }
    };
    if let Some(path) = &a.report {
        write_json(path, &report)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.summary());
    }
    Ok(())
}

/// Ingests a file into a store and returns the completed report.
pub(super) fn run_ingest(
    cfg: DatasetConfig,
    input: &Path,
    catalog: Option<&Path>,
    store_url: &str,
) -> Result<QualityReport> {
    let started = Instant::now();
    let name = cfg.name.clone();
    let meta = DatasetMeta {
        name: cfg.name.clone(),
        time_kind: cfg.time_kind(),
        protocol: cfg.protocol.clone(),
    };
    // Open the store first: a bad URL should fail before minutes of parsing.
    let mut store = aisle_store::open(store_url)?;
    if let Ok(Some(prev)) = DatasetMeta::read(store.as_ref()) {
        if prev.name != meta.name {
            tracing::warn!(previous = %prev.name, now = %meta.name, "store already holds another data set; its protocol is replaced");
        }
    }
    meta.write(store.as_mut())?;

    // Storing overlaps parsing: a second thread commits each chunk of
    // accepted events while the reader validates the next one.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
    let writer = std::thread::spawn(move || -> Result<(StoreOutcome, f64)> {
        let mut outcome = StoreOutcome::default();
        let mut busy = 0.0;
        let mut bulk = false;
        for batch in rx {
            let t = Instant::now();
            match batch {
                Batch::Events(chunk) => {
                    if !bulk {
                        // Into an empty store: build the indexes once at the end.
                        bulk = store.begin_bulk()?;
                    }
                    let o = store.append(&chunk)?;
                    outcome.inserted += o.inserted;
                    outcome.already_present += o.already_present;
                }
                Batch::Items(items) => outcome.catalog_upserted += store.upsert_items(&items)?,
            }
            busy += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        // Events the bulk load took twice were counted as inserted.
        let twice = store.end_bulk()?;
        outcome.inserted -= twice;
        outcome.already_present += twice;
        busy += t.elapsed().as_secs_f64();
        Ok((outcome, busy))
    });
    let pb = bar(0, "ingesting");
    let pb2 = pb.clone();
    let mut sink = |chunk: Vec<aisle_core::Event>| tx.send(Batch::Events(chunk)).is_ok();
    // The catalog follows the events in chunks; a closed channel means the
    // writer failed, and its error is the one reported.
    let items_tx = tx.clone();
    let catalog_sink = move |items| {
        let _ = items_tx.send(Batch::Items(items));
    };
    // Quarantined rows are kept as they are found (a file, or a batch in
    // the database, is made with the first one), never gathered in memory.
    let dir = store_dir(store_url)?;
    let log = aisle_store::IngestLog::open(store_url)?;
    let kept = log.is_some();
    let log = log.unwrap_or_else(|| aisle_store::IngestLog::in_folder(dir.clone()));
    let qwriter = std::rc::Rc::new(std::cell::RefCell::new(log.quarantine(&name, unix_now())));
    let qw = qwriter.clone();
    // The whole-history rules spill beside the store (a real disk; the
    // system's temporary directory may be memory-backed); a killed earlier
    // ingest's spill is removed first.
    let stale = aisle_ingest::remove_stale_spills(&dir)?;
    if stale > 0 {
        info!(stale, "removed the spill of an ingest that did not finish");
    }
    let ingested = Ingestor::new(cfg)
        .with_spill_dir(dir.clone())
        .with_progress(move |done, total| {
            pb2.set_length(total);
            pb2.set_position(done);
        })
        .with_quarantine_sink(move |row| quarantine(&mut qw.borrow_mut(), row))
        .with_catalog_sink(catalog_sink)
        .ingest_into(input, catalog, &mut sink);
    drop(tx);
    pb.finish_and_clear();
    let stored = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the store writer thread panicked"))?;
    // A store error explains a closed sink better than the ingest error does.
    let (mut outcome, store_busy) = stored?;
    let out = ingested?;
    let mut report = out.report;
    info!(
        rows = report.rows_read,
        accepted = report.accepted,
        "ingested"
    );
    report.timings.insert("store_busy".into(), store_busy);
    // The catalog's quarantined rows (the events' are already written).
    let mut qw = qwriter.borrow_mut();
    for q in &out.quarantine {
        quarantine(&mut qw, q);
    }
    outcome.quarantine_file = qw.finish().context("keeping the quarantined rows")?;
    drop(qw);
    report.store = Some(outcome);
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.rows_per_s = report.rows_read as f64 / report.elapsed_s.max(1e-9);
    if !report.balanced() {
        bail!("internal error: the report does not add up: {report:?}");
    }
    // Kept with the store: the console's data page shows them over time.
    if kept {
        let at = log
            .save_report(unix_now(), &serde_json::to_string_pretty(&report)?)
            .context("keeping the data-quality report")?;
        info!(report = %at, "report kept");
    }
    Ok(report)
}

/// What the ingest hands the store's writer thread.
enum Batch {
    Events(Vec<aisle_core::Event>),
    Items(Vec<aisle_core::CatalogItem>),
}

/// Hands a quarantined row to the store's writer.
fn quarantine(w: &mut aisle_store::ingests::QuarantineWriter, row: &aisle_ingest::QuarantinedRow) {
    match serde_json::to_string(row) {
        Ok(json) => w.write(row.reason.as_str(), &json),
        Err(e) => tracing::error!(error = %e, line = row.line, "a quarantined row has no JSON"),
    }
}

fn parse_append(line: &str, now: i64, counter: u64) -> Result<Event, String> {
    let l: aisle_ingest::api::ApiEvent =
        serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
    aisle_ingest::api::to_event(l, line.as_bytes(), now, counter, std::process::id() as u64)
}

pub fn append(a: AppendArgs) -> Result<()> {
    let mut store = aisle_store::open(&a.store)?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut batch = Vec::with_capacity(a.batch.max(1));
    let (mut acked, mut rejected, mut counter) = (0u64, 0u64, 0u64);
    let mut flush = |batch: &mut Vec<Event>,
                     out: &mut std::io::StdoutLock<'_>,
                     acked: &mut u64|
     -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        store.append(batch)?;
        *acked += batch.len() as u64;
        batch.clear();
        writeln!(out, "ack {acked}")?;
        out.flush()?;
        Ok(())
    };
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        counter += 1;
        match parse_append(&line, unix_now(), counter) {
            Ok(ev) => batch.push(ev),
            Err(reason) => {
                rejected += 1;
                eprintln!("reject line {}: {reason}", n + 1);
            }
        }
        if batch.len() >= a.batch.max(1) {
            flush(&mut batch, &mut out, &mut acked)?;
        }
    }
    flush(&mut batch, &mut out, &mut acked)?;
    eprintln!("appended {acked} events, rejected {rejected} lines");
    Ok(())
}

/// What `aisle link` did with a file: every line is linked, already linked,
/// refused by the store or rejected as malformed, each with its reason.
#[derive(Debug, Default, serde::Serialize)]
struct LinkReport {
    lines: u64,
    linked: u64,
    already_linked: u64,
    refused: u64,
    malformed: u64,
    /// Lines not linked, by reason (refusals by kind, malformed lines by problem).
    reasons: std::collections::BTreeMap<String, u64>,
    /// The first lines not linked, with their reason.
    examples: Vec<(u64, String)>,
}

pub fn link(a: LinkArgs) -> Result<()> {
    use aisle_ingest::links::{for_each_link, LinkLine};
    use aisle_store::{Link, LinkRefusal};
    let mut store = aisle_store::open_existing(&a.store)?;
    let mut r = LinkReport::default();
    let mut failed = None;
    let now = unix_now();
    for_each_link(&a.input, &mut |l| {
        if failed.is_some() {
            return;
        }
        r.lines += 1;
        let (line, reason, kind) = match l {
            LinkLine::Bad { line, reason } => {
                r.malformed += 1;
                (line, reason.clone(), format!("malformed: {reason}"))
            }
            LinkLine::Link { line, user, alias } => match store.link_alias(&user, &alias, now) {
                Ok(Link::Linked) => {
                    r.linked += 1;
                    return;
                }
                Ok(Link::Already) => {
                    r.already_linked += 1;
                    return;
                }
                Ok(Link::Refused(why)) => {
                    r.refused += 1;
                    let kind = match why {
                        LinkRefusal::SameId => "alias is the user",
                        LinkRefusal::AliasTaken { .. } => "alias linked to another user",
                        LinkRefusal::AliasHasAliases => "alias has aliases",
                        LinkRefusal::UserIsAlias { .. } => "user is an alias",
                    };
                    (line, why.message(&user, &alias), format!("refused: {kind}"))
                }
                Err(e) => {
                    failed = Some(e);
                    return;
                }
            },
        };
        *r.reasons.entry(kind).or_default() += 1;
        if r.examples.len() < 20 {
            r.examples.push((line, reason));
        }
    })?;
    if let Some(e) = failed {
        return Err(e).context("linking (the links before this line are stored)");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} lines: {} linked, {} already linked, {} refused, {} malformed",
            r.lines, r.linked, r.already_linked, r.refused, r.malformed
        );
        for (line, reason) in &r.examples {
            println!("  line {line}: {reason}");
        }
    }
    Ok(())
}

pub fn stats(a: StatsArgs) -> Result<()> {
    let store = aisle_store::open_existing(&a.store)?;
    let s = store.stats()?;
    let meta = DatasetMeta::read(store.as_ref())?;
    let order_only = meta
        .as_ref()
        .is_some_and(|m| m.time_kind == TimeKind::Order);
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        v["dataset"] = serde_json::json!(meta.as_ref().map(|m| m.name.clone()));
        v["time_kind"] = serde_json::json!(if order_only { "order" } else { "unix" });
        if !order_only {
            v["time_from"] = serde_json::json!(s.time_min.map(time::format_rfc3339));
            v["time_to"] = serde_json::json!(s.time_max.map(time::format_rfc3339));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("store        {}", aisle_store::pg::redact(&a.store));
    if let Some(m) = &meta {
        println!("dataset      {}", m.name);
    }
    println!("users        {}", s.users);
    println!("items        {} (catalog: {})", s.items, s.catalog_items);
    println!("events       {}", s.events);
    for (t, n) in &s.events_by_type {
        println!("  {t:<12}{n:>10}");
    }
    match (s.time_min, s.time_max, order_only) {
        (Some(a), Some(b), false) => println!(
            "time span    {} .. {}",
            time::format_rfc3339(a),
            time::format_rfc3339(b)
        ),
        (Some(a), Some(b), true) => println!("time span    order only (positions {a} .. {b})"),
        _ => println!("time span    (no events)"),
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn split(a: SplitArgs) -> Result<()> {
    let aisle_train::StoreData { seqs, meta, .. } = aisle_train::StoreData::load(&a.store)?;
    if seqs.users.is_empty() {
        bail!("the store has no interactions that the protocol keeps: nothing to split");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut buf = Vec::new();
    seqs.write_tsv(&mut buf)?;
    std::fs::write(a.out.join("sequences.tsv"), &buf)?;
    let mut summary = serde_json::json!({
        "dataset": meta.as_ref().map(|m| m.name.clone()),
        "protocol": meta.as_ref().map(|m| serde_json::to_value(&m.protocol)).transpose()?,
        "users": seqs.users.len(),
        "items": seqs.items.len(),
        "interactions": seqs.interactions(),
        "sequences_sha256": sha256_hex(&buf),
    });
    match a.protocol {
        SplitProtocol::Loo => {
            let (mut valid, mut test, mut train) = (0usize, 0usize, 0usize);
            for s in &seqs.seqs {
                let l = aisle_features::leave_one_out(s);
                train += l.train.len();
                valid += l.valid.is_some() as usize;
                test += l.test.is_some() as usize;
            }
            summary["split"] = serde_json::json!({
                "kind": "leave_one_out",
                "rule": "per user in sequences.tsv: last item = test, second-to-last = validation, the rest = train",
                "train_interactions": train, "valid_users": valid, "test_users": test,
            });
        }
        SplitProtocol::Temporal => {
            let order_only = meta
                .as_ref()
                .is_some_and(|m| m.time_kind == TimeKind::Order);
            let t = temporal_split(&seqs, a.test_fraction, order_only)?;
            for (name, part) in [("train.tsv", &t.train), ("test.tsv", &t.test)] {
                let mut b = Vec::new();
                part.write_tsv(&mut b)?;
                std::fs::write(a.out.join(name), b)?;
            }
            summary["split"] = serde_json::json!({
                "kind": "temporal",
                "cutoff": t.cutoff,
                "cutoff_time": time::format_rfc3339(t.cutoff),
                "test_fraction": a.test_fraction,
                "train_interactions": t.train.interactions(),
                "test_interactions": t.test.interactions(),
                "rule": "interactions with time < cutoff in train.tsv, the rest in test.tsv (per-user order kept)",
            });
        }
    }
    write_json(&a.out.join("split.json"), &summary)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

pub fn demo_data(a: DemoDataArgs) -> Result<()> {
    let cfg = aisle_demo::DemoConfig {
        seed: a.seed,
        users: a.users,
        items: a.items,
        days: a.days,
        ..aisle_demo::DemoConfig::default()
    };
    let s = aisle_demo::write_demo(&a.out, &cfg)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {} catalog rows and {} event rows to {}",
        s.catalog_rows,
        s.event_rows,
        a.out.display()
    );
    for (k, n) in &s.dirt {
        println!("  planted {k}: {n}");
    }
    Ok(())
}

/// `aisle store copy`: every event, the catalog, the data set's description
/// and the online log into another store, then both sides compared.
pub fn store(a: crate::args::StoreArgs) -> Result<()> {
    let crate::args::StoreAction::Copy { from, to, json } = a.action;
    let src = aisle_store::open_existing(&from)?;
    let total = src.stats()?.events;
    let mut dst = aisle_store::open(&to)?;
    let pb = bar(total, "copying");
    let started = Instant::now();
    let r = aisle_store::copy::copy(src.as_ref(), dst.as_mut(), &mut |n| pb.set_position(n))?;
    pb.finish_and_clear();
    // The online log (lists shown, outcomes, experiments) goes with the events.
    let log = match aisle_store::online::OnlineLog::of_store(&from)? {
        Some(source) => match aisle_store::online::OnlineLog::create_for_store(&to)? {
            Some(mut target) => Some(aisle_store::online::copy_log(&source, &mut target)?),
            None => None,
        },
        None => None,
    };
    // What the ingests left (reports, quarantined rows) and the jobs' history.
    let ingests = match (
        aisle_store::IngestLog::open(&from)?,
        aisle_store::IngestLog::open(&to)?,
    ) {
        (Some(s), Some(t)) => Some(s.copy_to(&t)?),
        _ => None,
    };
    let jobs = aisle_store::copy::copy_jobs(&from, &to)?;
    if json {
        let mut v = serde_json::to_value(&r)?;
        v["online_log"] = serde_json::to_value(&log)?;
        v["ingests"] = serde_json::to_value(ingests)?;
        v["jobs"] = serde_json::to_value(jobs)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let (f, t) = (aisle_store::pg::redact(&from), aisle_store::pg::redact(&to));
        println!(
            "copied {f} -> {t} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        println!(
            "  events read {}  inserted {}  already there {}  catalog items {}",
            r.events_read, r.inserted, r.already_present, r.catalog_items
        );
        for (side, d) in [("source", r.source), ("target", r.target)] {
            println!(
                "  {side}: {} events (checksum {:016x}), {} catalog items (checksum {:016x})",
                d.events, d.events_sum, d.catalog_items, d.catalog_sum
            );
        }
        if let Some(l) = &log {
            for (side, [i, n, o, e]) in [("source", l.source), ("target", l.target)] {
                println!(
                    "  {side} online log: {i} lists ({n} items shown), {o} outcomes, {e} experiments"
                );
            }
        }
        if let Some(g) = &ingests {
            println!(
                "  ingest reports {} ({} new to the target), quarantined rows {} ({} new)",
                g.reports, g.reports_added, g.quarantined_rows, g.quarantined_added
            );
        }
        println!("  jobs {} ({} new to the target)", jobs.jobs, jobs.added);
    }
    if !r.complete() {
        bail!(
            "the target does not hold exactly the source's events and catalog (it held {} events before the copy)",
            r.target_events_before
        );
    }
    if log.as_ref().is_some_and(|l| !l.complete()) {
        bail!("the target's online log does not hold exactly the source's lists, outcomes and experiments");
    }
    if !json {
        println!("  equal: nothing lost, nothing added");
    }
    Ok(())
}
