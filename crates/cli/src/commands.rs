//! The subcommands.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aisle_core::protocol::Protocol;
use aisle_core::{time, Event, TimeKind};
use aisle_features::{temporal_split, Sequences};
use aisle_ingest::{DatasetConfig, Ingestor, QualityReport, StoreOutcome};
use aisle_store::DatasetMeta;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::Digest;
use tracing::info;

use crate::{BenchArgs, EvaluateArgs, ModelArgs, TrainArgs};

use crate::{
    AppendArgs, DemoArgs, DemoDataArgs, IngestArgs, PresetsArgs, SplitArgs, SplitProtocol,
    StatsArgs,
};

/// The folder that holds a store (for quarantine files and reports).
/// The sentence encoder's folder: `AISLE_EMBEDDER_DIR` when set (only the
/// binary reads the environment), else where `aisle_embed` finds it.
pub(crate) fn embedder_dir() -> PathBuf {
    std::env::var_os("AISLE_EMBEDDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(aisle_embed::default_dir)
}

/// A server configuration for `store` and `addr`, with the encoder's folder.
fn serve_config(store: &str, addr: std::net::SocketAddr) -> aisle_serve::ServeConfig {
    let mut cfg = aisle_serve::ServeConfig::new(store, addr);
    cfg.search.embedder_dir = Some(embedder_dir());
    cfg
}

/// The store's folder; the temporary directory for an in-memory store.
fn store_dir(url: &str) -> Result<PathBuf> {
    Ok(aisle_store::parse_url(url)?
        .dir()
        .unwrap_or_else(std::env::temp_dir))
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {percent:>3}% {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Runs `f` with a progress bar named `what`, moved by the `(done, total)`
/// callback `f` hands to the work; the bar is cleared when `f` returns.
pub(crate) fn with_bar<T>(what: &str, f: impl FnOnce(&(dyn Fn(u64, u64) + Sync)) -> T) -> T {
    let pb = bar(0, what);
    let pb2 = pb.clone();
    let out = f(&move |done, total| {
        pb2.set_length(total);
        pb2.set_position(done);
    });
    pb.finish_and_clear();
    out
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn presets(a: PresetsArgs) -> Result<()> {
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

fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Ingests a file into a store and returns the completed report.
fn run_ingest(
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
        store.end_bulk()?;
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
    // Quarantined rows are written as they are found (the file is created
    // with the first one), never gathered in memory.
    let dir = store_dir(store_url)?;
    let qpath = dir.join("quarantine").join(format!(
        "{}-{}-{}.jsonl",
        name,
        unix_now(),
        std::process::id()
    ));
    let qwriter = std::rc::Rc::new(std::cell::RefCell::new(QuarantineWriter::new(qpath)));
    let qw = qwriter.clone();
    // The whole-history rules spill beside the store (a real disk; the
    // system's temporary directory may be memory-backed); a killed earlier
    // ingest's spill is removed first.
    let stale = aisle_ingest::remove_stale_spills(&dir)?;
    if stale > 0 {
        info!(stale, "removed the spill of an ingest that did not finish");
    }
    let ingested = Ingestor::new(cfg)
        .with_spill_dir(dir)
        .with_progress(move |done, total| {
            pb2.set_length(total);
            pb2.set_position(done);
        })
        .with_quarantine_sink(move |row| qw.borrow_mut().write(row))
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
        qw.write(q);
    }
    outcome.quarantine_file = qw.finish()?;
    drop(qw);
    report.store = Some(outcome);
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.rows_per_s = report.rows_read as f64 / report.elapsed_s.max(1e-9);
    if !report.balanced() {
        bail!("internal error: the report does not add up: {report:?}");
    }
    Ok(report)
}

/// What the ingest hands the store's writer thread.
enum Batch {
    Events(Vec<aisle_core::Event>),
    Items(Vec<aisle_core::CatalogItem>),
}

/// Writes quarantined rows as JSON lines, creating the file (and its
/// folder) with the first row; the first I/O error is kept for `finish`.
struct QuarantineWriter {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    error: Option<std::io::Error>,
}

impl QuarantineWriter {
    fn new(path: PathBuf) -> QuarantineWriter {
        QuarantineWriter {
            path,
            out: None,
            error: None,
        }
    }

    fn write(&mut self, row: &aisle_ingest::QuarantinedRow) {
        if self.error.is_some() {
            return;
        }
        let r = (|| -> std::io::Result<()> {
            if self.out.is_none() {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                self.out = Some(std::io::BufWriter::new(std::fs::File::create(&self.path)?));
            }
            let w = self.out.as_mut().expect("opened");
            serde_json::to_writer(&mut *w, row)?;
            w.write_all(b"\n")
        })();
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// Flushes and syncs; the file's path if any row was written.
    fn finish(&mut self) -> Result<Option<String>> {
        if let Some(e) = self.error.take() {
            return Err(e).with_context(|| format!("writing {}", self.path.display()));
        }
        match self.out.take() {
            None => Ok(None),
            Some(w) => {
                let f = w.into_inner().map_err(|e| e.into_error())?;
                f.sync_all()?;
                Ok(Some(self.path.display().to_string()))
            }
        }
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
    println!("store        {}", a.store);
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

pub fn demo(a: DemoArgs) -> Result<()> {
    let data = a.dir.join("data");
    let store = a.dir.join("store");
    println!("== 1. generating the demo shop in {}", data.display());
    demo_data(DemoDataArgs {
        out: data.clone(),
        seed: a.seed,
        users: a.users,
        items: a.items,
        days: 90,
    })?;
    println!("\n== 2. ingesting it into {}", store.display());
    let report = run_ingest(
        DatasetConfig::preset("demo")?,
        &data.join("events.csv"),
        Some(&data.join("catalog.csv")),
        &store.display().to_string(),
    )?;
    write_json(&a.dir.join("quality-report.json"), &report)?;
    println!("{}", report.summary());
    println!("\n== 3. the store");
    stats(StatsArgs {
        store: store.display().to_string(),
        json: false,
    })?;
    println!(
        "      report JSON: {}",
        a.dir.join("quality-report.json").display()
    );
    let store_url = store.display().to_string();
    if a.train_seconds > 0.0 {
        println!(
            "\n== 4. training SASRec for up to {:.0} s and promoting it",
            a.train_seconds
        );
        let overrides = crate::bench::parse_overrides(&["max_len=50".to_string()])?;
        let arch_cfg = crate::bench::seq_config("sasrec", &overrides, Some(a.train_seconds))?;
        let out = store
            .join("models")
            .join(format!("sasrec-{}.safetensors", unix_now()));
        let data = aisle_train::StoreData::load(&store_url)?;
        let r = with_bar("sasrec", |progress| {
            aisle_train::train_sequence(
                &store_url,
                &data,
                (arch_cfg.0, &arch_cfg.1),
                &out,
                progress,
            )
        })?;
        let reg = registry(&store_url)?;
        reg.promote(&reg.version_of(&out)?)?;
        println!(
            "   {} epochs, best validation NDCG@10 {:.4} (epoch {}), saved {}",
            r.epochs.unwrap_or(0),
            r.best_valid_ndcg10.unwrap_or(0.0),
            r.best_epoch.unwrap_or(0),
            out.display()
        );
    }
    if a.no_serve {
        println!(
            "\nNext: aisle serve --store {} --addr {}",
            store.display(),
            a.addr
        );
        return Ok(());
    }
    let base = format!("http://{}", a.addr);
    println!("\n== 5. serving the shop on {base} (Ctrl-C stops; nothing acknowledged is lost)");
    println!("   curl {base}/v1/users/u00165/recommendations?k=5");
    println!("   curl {base}/v1/popular?k=5");
    println!(
        "   curl -X POST {base}/v1/events -H 'content-type: application/json' \\\n        -d '{{\"user_id\":\"u00001\",\"item_id\":\"P10000\",\"type\":\"view\"}}'"
    );
    println!("   curl {base}/v1/items/P10000/similar?k=5");
    println!("   curl '{base}/v1/search?q=gift+for+a+tea+lover&user=u00165&k=5'");
    println!("   curl '{base}/v1/search/suggest?q=mu'");
    println!("   curl {base}/metrics");
    let retrain = a.train_seconds > 0.0;
    if retrain {
        println!(
            "   curl {base}/v1/admin/jobs      # SASRec retrains after every 1,000 new events (or: curl -X POST {base}/v1/admin/jobs)"
        );
    }
    serve(crate::ServeArgs {
        store: store_url,
        addr: a.addr,
        api_key: None,
        admin_key: None,
        read_key: None,
        write_key: None,
        read_key_file: None,
        write_key_file: None,
        admin_key_file: None,
        cors_origins: Vec::new(),
        header_timeout: 10.0,
        body_timeout: 30.0,
        max_connections: None,
        max_body_bytes: 1 << 20,
        rate_limit: None,
        retrain_model: retrain.then(|| "sasrec".to_string()),
        retrain_every: None,
        retrain_after_events: retrain.then_some(1000),
        retrain_budget: a.train_seconds,
        retrain_set: vec!["max_len=50".to_string()],
        ann_min_items: aisle_serve::search::SearchConfig::default().ann_min_items,
        ann_ef: aisle_serve::search::SearchConfig::default().ann_ef,
        ranker: None,
    })
}

fn report_models(
    store: &str,
    dataset: &str,
    seqs: &Sequences,
    protocol: &Protocol,
    m: &ModelArgs,
    default_out: PathBuf,
) -> Result<()> {
    let masking = crate::bench::parse_masking(m.masking.as_deref())?;
    let models: Vec<String> = m
        .models
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    // A config file may describe more models than are run: keep the selected ones.
    let mut overrides: crate::bench::Overrides = match &m.model_config {
        Some(p) => crate::bench::file_overrides(p)?
            .into_iter()
            .filter(|(om, _, _)| om.as_ref().is_some_and(|om| models.contains(om)))
            .collect(),
        None => Vec::new(),
    };
    overrides.extend(crate::bench::parse_overrides(&m.set)?);
    if models.is_empty() {
        bail!("--models is empty");
    }
    let (purchase_models, models): (Vec<String>, Vec<String>) = models
        .into_iter()
        .partition(|m| crate::purchase::PURCHASE_MODELS.contains(&m.as_str()));
    let two_stage = models.iter().any(|m| m == "two-stage");
    let models: Vec<String> = models.into_iter().filter(|m| m != "two-stage").collect();
    let (seq_models, classical): (Vec<String>, Vec<String>) = models
        .iter()
        .cloned()
        .partition(|m| crate::bench::SEQ_MODELS.contains(&m.as_str()));
    let purchase_keys: Vec<String> = if purchase_models.is_empty() {
        Vec::new()
    } else {
        crate::purchase::ranker_keys()
    };
    // Route each override: scoped ones to their model; unscoped ones to every
    // selected model that has the key (an error if none has it).
    let classical_keys: Vec<String> = classical
        .iter()
        .filter_map(|c| aisle_models::ModelConfig::default_for(c).ok())
        .flat_map(|c| c.keys())
        .collect();
    if m.seq_feature.is_some() && purchase_models.is_empty() {
        bail!("--seq-feature applies to the purchase models (ranker, logreg)");
    }
    let seq_keys: Vec<String> =
        if seq_models.is_empty() && m.two_stage_seq.is_none() && m.seq_feature.is_none() {
            Vec::new()
        } else {
            crate::bench::seq_keys()
        };
    for (om, k, _) in &overrides {
        if om.is_none()
            && !classical_keys.contains(k)
            && !seq_keys.contains(k)
            && !purchase_keys.contains(k)
        {
            bail!("--set {k}: no selected model has a hyperparameter `{k}`");
        }
        if let Some(om) = om {
            if !models.contains(om)
                && !purchase_models.contains(om)
                && m.seq_feature.as_ref() != Some(om)
                && m.two_stage_seq.as_ref() != Some(om)
            {
                bail!("--set {om}.{k}: model `{om}` is not in --models");
            }
        }
    }
    let classical_overrides: crate::bench::Overrides = overrides
        .iter()
        .filter(|(om, k, _)| match om {
            Some(m) => classical.contains(m),
            None => classical_keys.contains(k),
        })
        .cloned()
        .collect();
    let configs = crate::bench::model_configs(&classical, &classical_overrides)?;
    let out = m.out.clone().unwrap_or(default_out);
    let (ranking, skipped) = if configs.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        crate::bench::run_models(seqs, &configs, masking)?
    };
    let mut results: Vec<crate::bench::Row> = ranking;
    for sm in &seq_models {
        let arch_cfg = crate::bench::seq_config(sm, &overrides, m.time_budget)?;
        let side = if arch_cfg.1.side_info {
            aisle_train::side_info(store, seqs)?
        } else {
            None
        };
        results.push(crate::bench::run_seq(
            sm, seqs, &arch_cfg, side, masking, &out,
        )?);
    }
    if two_stage {
        eprintln!(
            "two-stage: training {} sources, candidates, ranker",
            crate::twostage::SOURCES.join(", ")
        );
        let seq_source = match &m.two_stage_seq {
            Some(name) => {
                let arch_cfg = crate::bench::seq_config(name, &overrides, m.time_budget)?;
                let side = if arch_cfg.1.side_info {
                    aisle_train::side_info(store, seqs)?
                } else {
                    None
                };
                let t0 = std::time::Instant::now();
                let (model, _) = crate::bench::train_seq(arch_cfg.0, &arch_cfg.1, seqs, side)?;
                Some((name.as_str(), model, t0.elapsed().as_secs_f64()))
            }
            None => None,
        };
        results.push(crate::twostage::run(
            seqs,
            masking,
            // One network: the re-ranker trains twice per run on ~650k
            // candidate rows (BENCHMARKS §6.3 was measured so).
            &aisle_rank::RankerConfig {
                ensemble: 1,
                ..Default::default()
            },
            seq_source
                .as_ref()
                .map(|(n, m, s)| (*n, m as &dyn aisle_eval::Scorer, *s)),
        )?);
    }
    let mut purchase_protocol = None;
    let mut purchase_rows = Vec::new();
    if !purchase_models.is_empty() {
        let cfgs = purchase_models
            .iter()
            .map(|pm| {
                let o: Vec<(String, String)> = overrides
                    .iter()
                    .filter(|(om, k, _)| match om {
                        Some(m) => m == pm,
                        None => purchase_keys.contains(k),
                    })
                    .map(|(_, k, v)| (k.clone(), v.clone()))
                    .collect();
                Ok((pm.clone(), crate::purchase::ranker_config(pm, &o)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let seq = match &m.seq_feature {
            Some(name) => Some(crate::bench::seq_config(name, &overrides, m.time_budget)?),
            None => None,
        };
        let (rows, proto) = crate::purchase::run(store, &cfgs, seq.as_ref())?;
        purchase_rows = rows;
        purchase_protocol = Some(proto);
    }
    let report = crate::bench::BenchReport {
        dataset: dataset.to_string(),
        protocol: crate::bench::protocol_json(seqs, protocol, masking),
        purchase_protocol,
        best_by_validation: crate::bench::best_by_validation(&results),
        results: results
            .into_iter()
            .map(crate::bench::ResultRow::Ranking)
            .chain(
                purchase_rows
                    .into_iter()
                    .map(crate::bench::ResultRow::Purchase),
            )
            .collect(),
        skipped,
        threads: rayon_threads(),
    };
    crate::bench::write_outputs(&out, &report)?;
    if m.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", std::fs::read_to_string(out.join("leaderboard.md"))?);
    }
    eprintln!(
        "wrote {}/{{bench.json,leaderboard.md,leaderboard.svg}}",
        out.display()
    );
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let cfg = match (&a.preset, &a.config) {
        (Some(p), _) => Some(DatasetConfig::preset(p)?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            Some(DatasetConfig::from_toml(&text)?)
        }
        (None, None) => None,
    };
    let name = cfg.as_ref().map(|c| c.name.clone());
    let store = match (&a.store, &name) {
        (Some(s), _) => s.clone(),
        (None, Some(n)) => crate::bench::default_out(n)
            .join("store")
            .display()
            .to_string(),
        (None, None) => bail!("give --preset/--config with --input, or --store"),
    };
    // Reuse the store when it already holds this data set.
    let reusable = match aisle_store::open_existing(&store) {
        Ok(s) => {
            let meta = DatasetMeta::read(s.as_ref())?;
            s.stats()?.events > 0
                && (name.is_none() || meta.as_ref().map(|m| &m.name) == name.as_ref())
        }
        Err(_) => false,
    };
    if !reusable {
        let (Some(cfg), Some(input)) = (cfg, &a.input) else {
            bail!("store {store} does not hold this data set yet: give --input FILE to ingest it");
        };
        eprintln!("ingesting {} into {store}", input.display());
        let report = run_ingest(cfg, input, None, &store)?;
        eprintln!("{}", report.summary());
    } else {
        eprintln!("reusing store {store}");
    }
    let aisle_train::StoreData {
        seqs,
        protocol,
        dataset,
        ..
    } = aisle_train::StoreData::load(&store)?;
    let out = crate::bench::default_out(&dataset);
    report_models(&store, &dataset, &seqs, &protocol, &a.m, out)
}

pub fn evaluate(a: EvaluateArgs) -> Result<()> {
    let aisle_train::StoreData {
        seqs,
        protocol,
        dataset,
        ..
    } = aisle_train::StoreData::load(&a.store)?;
    let out = store_dir(&a.store)?.join("evaluation");
    report_models(&a.store, &dataset, &seqs, &protocol, &a.m, out)
}

pub fn train(a: TrainArgs) -> Result<()> {
    let mut overrides = match &a.model_config {
        Some(p) => crate::bench::file_overrides(p)?
            .into_iter()
            .filter(|(m, _, _)| m.as_deref() == Some(a.model.as_str()))
            .collect(),
        None => Vec::new(),
    };
    overrides.extend(crate::bench::parse_overrides(&a.set)?);
    let out = match a.out.clone() {
        Some(p) => p,
        None => store_dir(&a.store)?.join("models").join(format!(
            "{}-{}.safetensors",
            a.model,
            unix_now()
        )),
    };
    let is_seq = crate::bench::SEQ_MODELS.contains(&a.model.as_str());
    let is_purchase = crate::purchase::PURCHASE_MODELS.contains(&a.model.as_str());
    if a.samples.is_some() && !is_purchase {
        bail!("--samples applies to the purchase models (ranker, logreg)");
    }
    if a.seq_feature.is_some() && !is_purchase {
        bail!("--seq-feature applies to the purchase models (ranker, logreg)");
    }
    if is_purchase {
        if a.promote || a.promote_if_better || (a.time_budget.is_some() && a.seq_feature.is_none())
        {
            bail!("--promote, --promote-if-better and --time-budget apply to the served models ({}); --time-budget also to --seq-feature", aisle_train::model_names().join(", "));
        }
        let summary = crate::purchase::train(&a, &overrides, &out)?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if a.time_budget.is_some() && !is_seq {
        bail!(
            "--time-budget applies to sequence models ({})",
            crate::bench::SEQ_MODELS.join(", ")
        );
    }
    let data = aisle_train::StoreData::load(&a.store)?;
    let mut report = with_bar(&a.model, |progress| {
        if is_seq {
            let (arch, cfg) = crate::bench::seq_config(&a.model, &overrides, a.time_budget)?;
            Ok::<_, anyhow::Error>(aisle_train::train_sequence(
                &a.store,
                &data,
                (arch, &cfg),
                &out,
                progress,
            )?)
        } else {
            let cfg =
                crate::bench::model_configs(std::slice::from_ref(&a.model), &overrides)?.remove(0);
            Ok(aisle_train::train_classical(&data, &cfg, &out, progress)?)
        }
    })?;
    if a.promote {
        let reg = registry(&a.store)?;
        let version = reg.version_of(&out).context("--promote (drop --out)")?;
        reg.promote(&version)?;
        eprintln!("promoted {version}");
    } else if a.promote_if_better {
        let d = aisle_train::promote_if_better(&registry(&a.store)?, &data.seqs, &out)
            .context("--promote-if-better (drop --out)")?;
        eprintln!(
            "candidate NDCG@10 {:.4} vs serving {}: {}",
            d.candidate.ndcg10,
            d.serving
                .as_ref()
                .map_or("none".to_string(), |s| format!("{:.4}", s.ndcg10)),
            match d.action {
                aisle_train::Action::Promoted => "promoted",
                aisle_train::Action::Kept => "kept the serving version",
            }
        );
        report.decision = Some(d);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn registry(store: &str) -> Result<aisle_train::Registry> {
    let dir = aisle_store::data_dir(store)
        .with_context(|| format!("{store} has no directory for a model registry"))?;
    Ok(aisle_train::Registry::new(&dir))
}

pub fn models(a: crate::ModelsArgs) -> Result<()> {
    match a.action {
        crate::ModelsAction::List { store, json } => {
            let list = registry(&store)?.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no models yet (aisle train --store {store} --model sasrec --promote)");
            } else {
                for e in list {
                    let ndcg = e
                        .meta
                        .get("best_valid_ndcg10")
                        .and_then(|v| v.as_str())
                        .unwrap_or("-");
                    println!(
                        "{} {:<40} {:<8} valid NDCG@10 {ndcg}",
                        if e.promoted { "*" } else { " " },
                        e.version,
                        e.model
                    );
                }
            }
        }
        crate::ModelsAction::Promote { store, version } => {
            registry(&store)?.promote(&version)?;
            println!("promoted {version}");
        }
        crate::ModelsAction::Rollback { store } => {
            let v = registry(&store)?.rollback()?;
            println!("promoted {v} again");
        }
    }
    Ok(())
}

pub fn serve(a: crate::ServeArgs) -> Result<()> {
    let mut cfg = serve_config(&a.store, a.addr);
    let on_command_line: Vec<&str> = ["--api-key", "--admin-key", "--read-key", "--write-key"]
        .into_iter()
        .filter(|f| std::env::args().any(|x| x == *f || x.starts_with(&format!("{f}="))))
        .collect();
    if !on_command_line.is_empty() {
        eprintln!(
            "warning: {} on the command line can be read by anyone who lists processes; prefer --read-key-file/--write-key-file/--admin-key-file or AISLE_READ_KEY/AISLE_WRITE_KEY/AISLE_ADMIN_KEY",
            on_command_line.join(", ")
        );
    }
    let read_file = |p: &Option<PathBuf>| -> Result<Option<String>> {
        let Some(p) = p else { return Ok(None) };
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading the key file {}", p.display()))?;
        // One line; the newline an editor adds is not part of the key.
        let key = text.strip_suffix('\n').unwrap_or(&text);
        let key = key.strip_suffix('\r').unwrap_or(key);
        Ok(Some(key.to_string()))
    };
    let one = |scope: &str, keys: Vec<Option<String>>| -> Result<Option<String>> {
        let given: Vec<String> = keys.into_iter().flatten().collect();
        match given.as_slice() {
            [] => Ok(None),
            [k] => Ok(Some(k.clone())),
            [k, rest @ ..] if rest.iter().all(|r| r == k) => Ok(Some(k.clone())),
            _ => bail!("two different {scope} keys were given; give one"),
        }
    };
    cfg.read_key = one("read", vec![a.read_key, read_file(&a.read_key_file)?])?;
    cfg.api_key = one(
        "write",
        vec![a.api_key, a.write_key, read_file(&a.write_key_file)?],
    )?;
    cfg.admin_key = one("admin", vec![a.admin_key, read_file(&a.admin_key_file)?])?;
    cfg.cors_origins = a.cors_origins;
    for (flag, v) in [
        ("--header-timeout", a.header_timeout),
        ("--body-timeout", a.body_timeout),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
            bail!("{flag} must be a number of seconds above 0 (at most a day)");
        }
    }
    cfg.conn.header_timeout = std::time::Duration::from_secs_f64(a.header_timeout);
    cfg.body_timeout = std::time::Duration::from_secs_f64(a.body_timeout);
    if let Some(n) = a.max_connections {
        if n == 0 {
            bail!("--max-connections must be at least 1");
        }
        cfg.conn.max_connections = n;
    }
    cfg.max_body_bytes = a.max_body_bytes;
    cfg.search.ann_min_items = a.ann_min_items;
    cfg.search.ann_ef = a.ann_ef;
    cfg.ranker = a.ranker;
    if let Some(r) = a.rate_limit {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate-limit must be a positive number of requests per second");
        }
        cfg.rate_limit = Some(r);
    }
    if a.retrain_model.is_none() && (a.retrain_every.is_some() || a.retrain_after_events.is_some())
    {
        bail!("--retrain-every/--retrain-after-events need --retrain-model");
    }
    if let Some(m) = &a.retrain_model {
        if !crate::bench::SEQ_MODELS.contains(&m.as_str()) {
            bail!(
                "--retrain-model {m:?}: the server retrains sequence models ({})",
                crate::bench::SEQ_MODELS.join(", ")
            );
        }
        // Check the overrides now rather than in every failed run.
        crate::bench::seq_config(
            m,
            &crate::bench::parse_overrides(&a.retrain_set)?,
            Some(a.retrain_budget),
        )?;
        let exe = std::env::current_exe().context("locating the aisle binary")?;
        let mut command = vec![
            exe.display().to_string(),
            "train".into(),
            "--store".into(),
            a.store.clone(),
            "--model".into(),
            m.clone(),
            "--time-budget".into(),
            a.retrain_budget.to_string(),
            "--promote-if-better".into(),
        ];
        for kv in &a.retrain_set {
            command.extend(["--set".to_string(), kv.clone()]);
        }
        cfg.retrain = Some(aisle_serve::RetrainConfig {
            model: m.clone(),
            command,
            interval: a
                .retrain_every
                .map(std::time::Duration::try_from_secs_f64)
                .transpose()
                .context("--retrain-every")?,
            min_new_events: a.retrain_after_events,
            low_priority: true,
        });
    }
    aisle_store::open_existing(&a.store)?;
    let app = aisle_serve::App::open(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let s = app.current();
    eprintln!(
        "serving {} (model {} {}) on http://{}",
        a.store, s.name, s.version, a.addr
    );
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        aisle_serve::serve(app, async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("shutting down (in-flight requests finish; acknowledged events are on disk)");
        })
        .await
        .map_err(anyhow::Error::from)
    })?;
    Ok(())
}

pub fn index(a: crate::IndexArgs) -> Result<()> {
    let t = std::time::Instant::now();
    aisle_store::open_existing(&a.store)?;
    let mut cfg = serve_config(&a.store, "127.0.0.1:0".parse().expect("literal address"));
    cfg.search.ann_min_items = a.ann_min_items;
    let bars: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>> =
        Default::default();
    let b2 = bars.clone();
    cfg.search.progress = aisle_serve::search::Progress(Some(std::sync::Arc::new(
        move |stage: &str, done: u64, total: u64| {
            let mut m = b2.lock().unwrap_or_else(|e| e.into_inner());
            let pb = m
                .entry(stage.to_string())
                .or_insert_with(|| bar(total, stage));
            pb.set_length(total);
            pb.set_position(done);
            if done >= total {
                pb.finish();
            }
        },
    )));
    let app = aisle_serve::App::open(cfg)?;
    let s = &app.search;
    let semantic = s.semantic.as_ref().map(|sem| {
        let ix = sem.index.read().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({"vectors": aisle_search::VectorIndex::len(&*ix), "graph": ix.has_graph()})
    });
    let summary = serde_json::json!({
        "store": a.store,
        "keyword": s.keyword.is_some(),
        "keyword_error": s.error,
        "semantic": semantic,
        "semantic_note": s.semantic_note,
        "seconds": t.elapsed().as_secs_f64(),
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "indexed {}: keyword {}, semantic {} ({:.1} s)",
            a.store,
            if s.keyword.is_some() {
                "ready"
            } else {
                "unavailable"
            },
            match &summary["semantic"] {
                serde_json::Value::Null => s.semantic_note.clone(),
                v => format!("{} vectors, graph {}", v["vectors"], v["graph"]),
            },
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

pub fn search(a: crate::SearchArgs) -> Result<()> {
    let t = std::time::Instant::now();
    if a.query.trim().is_empty() {
        bail!("the query is empty");
    }
    if a.k == 0 || a.k > 1000 {
        bail!("--k must be from 1 to 1000");
    }
    for (name, p) in [("--price-min", a.price_min), ("--price-max", a.price_max)] {
        if p.is_some_and(|p| !p.is_finite() || p < 0.0) {
            bail!("{name} must be a non-negative number");
        }
    }
    aisle_store::open_existing(&a.store)?;
    let app = aisle_serve::App::open(serve_config(
        &a.store,
        "127.0.0.1:0".parse().expect("literal address"),
    ))?;
    let req = aisle_serve::search::SearchRequest {
        q: a.query.trim().to_string(),
        user: a.user.clone(),
        k: a.k,
        filters: aisle_search::Filters {
            category: a.category.clone(),
            price_min: a.price_min,
            price_max: a.price_max,
            in_stock_only: true,
        },
        personal: true,
        mode: a.mode.clone(),
    };
    let t_search = std::time::Instant::now();
    let mut out = app.search(&req).map_err(anyhow::Error::msg)?;
    out.took_ms = t_search.elapsed().as_secs_f64() * 1000.0;
    let out = serde_json::to_value(&out)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let results = out["results"].as_array().cloned().unwrap_or_default();
    println!(
        "{} results for {:?} ({} matching; search {:.2} ms, {:.1} s with loading the store)",
        results.len(),
        a.query,
        out["total"],
        out["took_ms"].as_f64().unwrap_or(0.0),
        t.elapsed().as_secs_f64()
    );
    for (n, r) in results.iter().enumerate() {
        let why = &r["why"];
        let mut reasons = Vec::new();
        if let Some(m) = why["matched"].as_array().filter(|m| !m.is_empty()) {
            let words: Vec<&str> = m.iter().filter_map(|w| w.as_str()).collect();
            reasons.push(format!("matched {}", words.join(", ")));
        }
        if let Some(m) = why["approximate"].as_array().filter(|m| !m.is_empty()) {
            let words: Vec<&str> = m.iter().filter_map(|w| w.as_str()).collect();
            reasons.push(format!("approximately {}", words.join(", ")));
        }
        if let Some(p) = why["personal"]["rank"].as_u64() {
            reasons.push(format!("personal rank {p}"));
        }
        println!(
            "{:>3}. {:<12} {:<45} {}",
            n + 1,
            r["item_id"].as_str().unwrap_or(""),
            r["title"].as_str().unwrap_or(""),
            reasons.join("; ")
        );
    }
    if let Some(note) = out["query"]["personal"].as_str() {
        println!("personal: {note}");
    }
    Ok(())
}
