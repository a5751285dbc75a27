//! `aisle-ingest`: read a shop's behaviour events and catalog from CSV, TSV,
//! JSONL or sequence-line files (plain or gzip), validate and clean every row,
//! and account for each one in a [`QualityReport`].
//!
//! Design:
//! - **Every row ends in exactly one place**: an accepted [`aisle_core::Event`]
//!   (possibly transformed, e.g. a cancellation) or a [`QuarantinedRow`] with
//!   the first [`Reason`] it failed. `rows_read == accepted + quarantined`.
//! - **A bad row never fails the batch**: only an unreadable *file* (missing,
//!   empty, corrupt gzip, a header lacking a configured column) is an error.
//! - **Idempotency keys** are a stable hash of the row's bytes plus how many
//!   identical rows came before it in the file, so re-ingesting a file maps
//!   every row to the key it had the first time.
//! - Row-level checks stream; the rules that need a user's whole history
//!   (consecutive duplicates, bots, k-core) run once all rows are read, over
//!   candidates spilled to a temporary directory ([`spill`]), so memory stays
//!   bounded however long the file.
//!
//! ```no_run
//! use aisle_ingest::{DatasetConfig, Ingestor};
//! let cfg = DatasetConfig::preset("online-retail").unwrap();
//! let out = Ingestor::new(cfg)
//!     .ingest(std::path::Path::new("../shared/data/online-retail/transactions.csv.gz"), None)
//!     .unwrap();
//! assert_eq!(out.report.rows_read, out.report.accepted + out.report.quarantined);
//! ```

pub mod config;
pub mod input;
pub mod links;
pub mod report;

pub mod api;
mod catalog;
pub mod drift;
pub mod erase;
mod read;
mod rows;
#[cfg(test)]
mod rules;
mod spill;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use aisle_core::{CatalogItem, Event};

pub use config::{DatasetConfig, Format, Protocol, TimeFormat, UserOrder};
pub use report::{
    CatalogReport, QualityReport, QuarantinedRow, Reason, SavedReport, SourceFile, StoreOutcome,
};
pub use spill::remove_stale_spills;

use read::read_events;
pub(crate) use read::{header_fits, limits_of, long_line_rows};
use rows::{Accum, Candidate, RowState};

/// Errors that stop an ingest (bad rows never do: they are quarantined).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is empty (0 bytes): nothing to ingest, not even a header")]
    EmptyInput { path: String },
    #[error("unknown preset `{name}`; known presets: {known}")]
    UnknownPreset { name: String, known: String },
    #[error("invalid dataset config: {0}")]
    Config(String),
    #[error("column `{column}` (fields.{field}) is not in the header of {path}; header columns: {header}")]
    MissingColumn {
        path: String,
        field: String,
        column: String,
        header: String,
    },
    #[error("the consumer of accepted events stopped (see its error)")]
    SinkClosed,
    #[error("cannot spill rows to a temporary directory in {dir}: {source}")]
    Spill { dir: String, source: std::io::Error },
    #[error("cannot read {path} near line {line}: {message}")]
    Read {
        path: String,
        line: u64,
        message: String,
    },
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Everything an ingest produced.
#[derive(Debug, Default)]
pub struct IngestOutput {
    /// Accepted events in file order.
    pub events: Vec<Event>,
    /// Catalog entries (from a catalog file and/or the event rows), in id
    /// order; empty when they went to [`Ingestor::with_catalog_sink`].
    pub catalog: Vec<CatalogItem>,
    /// Quarantined rows (events first, then catalog rows), in file order.
    pub quarantine: Vec<QuarantinedRow>,
    pub report: QualityReport,
}

/// Runs an ingest. Configure with the builder methods, then call [`Ingestor::ingest`].
pub struct Ingestor {
    cfg: DatasetConfig,
    now: i64,
    progress: Option<Box<dyn FnMut(u64, u64)>>,
    quarantine_sink: Option<QuarantineSink>,
    catalog_sink: Option<CatalogSink>,
    spill_dir: Option<std::path::PathBuf>,
    run_bytes: usize,
    seen_cap: usize,
}

/// Where catalog items go, a chunk at a time, when they should not be
/// gathered in [`IngestOutput::catalog`].
pub type CatalogSink = Box<dyn FnMut(Vec<CatalogItem>)>;

/// Where quarantined event rows go as they are found (instead of
/// [`IngestOutput::quarantine`]), so a file of bad rows never sits in memory.
pub type QuarantineSink = Box<dyn FnMut(&QuarantinedRow)>;

impl Ingestor {
    pub fn new(cfg: DatasetConfig) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ingestor {
            cfg,
            now,
            progress: None,
            quarantine_sink: None,
            catalog_sink: None,
            spill_dir: None,
            run_bytes: spill::RUN_BYTES,
            seen_cap: spill::SEEN_CAP,
        }
    }

    /// Where the whole-history rules spill candidate rows (a temporary
    /// directory is made inside and removed at the end); the system's
    /// temporary directory by default. Pick a disk with room for about the
    /// uncompressed size of the input.
    pub fn with_spill_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Bytes of sort keys held in memory before a sorted run is written
    /// (tests use a small value to exercise the merge).
    #[doc(hidden)]
    pub fn with_run_bytes(mut self, n: usize) -> Self {
        self.run_bytes = n.max(1);
        self
    }

    /// Distinct rows counted in memory before counting moves to the spill
    /// (tests use a small value to exercise it).
    #[doc(hidden)]
    pub fn with_seen_cap(mut self, n: usize) -> Self {
        self.seen_cap = n;
        self
    }

    /// Hands every quarantined event row to `sink` as soon as it is final
    /// (the report still counts them); [`IngestOutput::quarantine`] then
    /// holds only the catalog's rows. Memory stays flat however many rows
    /// are bad.
    pub fn with_quarantine_sink(mut self, sink: impl FnMut(&QuarantinedRow) + 'static) -> Self {
        self.quarantine_sink = Some(Box::new(sink));
        self
    }

    /// Hands the catalog to `sink` in chunks at the end of the ingest (the
    /// events' items in id order, then the catalog file's, which win over
    /// them) instead of returning it whole in [`IngestOutput::catalog`]: a
    /// catalog of millions of items then never exists as one vector.
    pub fn with_catalog_sink(mut self, sink: impl FnMut(Vec<CatalogItem>) + 'static) -> Self {
        self.catalog_sink = Some(Box::new(sink));
        self
    }

    /// The "current time" used for the future-timestamp check.
    pub fn with_now(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    /// Called now and then with (bytes of the file consumed, file size).
    pub fn with_progress(mut self, f: impl FnMut(u64, u64) + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    pub fn config(&self) -> &DatasetConfig {
        &self.cfg
    }

    /// Reads `events_path` (and `catalog_path`, if given), validates, cleans
    /// and reports. Accepted events are returned in [`IngestOutput::events`].
    pub fn ingest(self, events_path: &Path, catalog_path: Option<&Path>) -> Result<IngestOutput> {
        self.run(events_path, catalog_path, None)
    }

    /// Like [`Ingestor::ingest`], but hands accepted events to `sink` in chunks
    /// of [`CHUNK`] as soon as they are final, so storing can overlap parsing.
    /// When a whole-history rule is on (consecutive duplicates, bots, k-core)
    /// the chunks come only after the whole file is read. If `sink` returns
    /// `false` the ingest stops early with [`IngestError::SinkClosed`].
    /// [`IngestOutput::events`] is empty.
    pub fn ingest_into(
        self,
        events_path: &Path,
        catalog_path: Option<&Path>,
        sink: &mut dyn FnMut(Vec<Event>) -> bool,
    ) -> Result<IngestOutput> {
        self.run(events_path, catalog_path, Some(sink))
    }

    fn run(
        mut self,
        events_path: &Path,
        catalog_path: Option<&Path>,
        sink: Option<&mut dyn FnMut(Vec<Event>) -> bool>,
    ) -> Result<IngestOutput> {
        let start = Instant::now();
        let mut quarantine = Vec::new();
        let mut catalog_report = None;
        let mut catalog: BTreeMap<String, CatalogItem> = BTreeMap::new();
        let mut excluded = Default::default();
        if let Some(cp) = catalog_path {
            let (items, rep, q, ex) = catalog::read_catalog_file(&self.cfg, cp)?;
            for it in items {
                catalog.insert(it.id.clone(), it);
            }
            catalog_report = Some(rep);
            quarantine.extend(q);
            excluded = ex;
        } else if !self.cfg.cleaning.exclude.is_empty() {
            let bad_key = self.cfg.cleaning.exclude.keys().find(|k| {
                !(self.cfg.catalog.from_events && matches!(k.as_str(), "category" | "title"))
            });
            if let Some(k) = bad_key {
                return Err(IngestError::Config(format!(
                    "cleaning.exclude.{k} cannot act: without a catalog file (--catalog) only `category` and `title` of event rows can exclude items, with catalog.from_events = true"
                )));
            }
        }
        let known_items =
            (catalog_path.is_some() && self.cfg.cleaning.require_catalog_item).then_some(&catalog);
        let cfg = self.cfg.clone();
        let mut state = RowState::new(&cfg, self.now, known_items, sink);
        state.q_sink = self.quarantine_sink.take();
        state.excluded = excluded;
        let spill_err = |dir: &Option<std::path::PathBuf>, source| IngestError::Spill {
            dir: dir.as_ref().map_or_else(
                || std::env::temp_dir().display().to_string(),
                |d| d.display().to_string(),
            ),
            source,
        };
        state.spill_dir = self.spill_dir.clone();
        state.run_bytes = self.run_bytes;
        state.seen_cap = self.seen_cap;
        if state.needs_history {
            let h = spill::History::new(self.spill_dir.as_deref(), self.run_bytes, true)
                .map_err(|e| spill_err(&self.spill_dir, e))?;
            state.history = Some(h);
        }
        read_events(&cfg, self.progress.take(), events_path, &mut state)?;
        if let Some(e) = state.spill_error.take() {
            return Err(spill_err(&self.spill_dir, e));
        }
        if let Some(h) = state.history.take() {
            let seen = std::mem::take(&mut state.seen);
            let rows = h
                .finish(&cfg, seen)
                .map_err(|e| spill_err(&self.spill_dir, e))?;
            for row in rows {
                let row = row.map_err(|e| spill_err(&self.spill_dir, e))?;
                let start = state.arena.len() as u64;
                state.arena.push_str(&row.raw);
                state.candidates.push(Candidate {
                    event: row.event,
                    line: row.line,
                    raw: (start, state.arena.len() as u64),
                    ordinal: row.ordinal,
                    content_hash: row.content_hash,
                    dropped: row.dropped,
                    repeat: false,
                });
                if state.candidates.len() >= CHUNK {
                    state.flush();
                }
            }
        }
        state.flush();
        if state.stopped {
            return Err(IngestError::SinkClosed);
        }
        let RowState {
            quarantine: mut row_q,
            rows_read,
            catalog_agg,
            acc,
            sunk,
            ..
        } = state;
        let (catalog, catalog_len) =
            emit_catalog(&cfg, catalog, catalog_agg, self.catalog_sink.as_mut());
        row_q.sort_by_key(|q| q.line);
        quarantine.extend(row_q);
        let report = build_report(
            &cfg,
            events_path,
            rows_read,
            &acc,
            &quarantine,
            &sunk,
            catalog_len,
            catalog_report,
            start.elapsed().as_secs_f64(),
        );
        self.cfg = cfg;
        Ok(IngestOutput {
            events: acc.events,
            catalog,
            quarantine,
            report,
        })
    }
}

/// The catalog, to the sink or returned whole (then in id order), and its
/// size: the file's entries win over what the events say.
fn emit_catalog(
    cfg: &DatasetConfig,
    file: BTreeMap<String, CatalogItem>,
    agg: catalog::Aggregator,
    mut sink: Option<&mut CatalogSink>,
) -> (Vec<CatalogItem>, u64) {
    let mut all = Vec::new();
    let mut len = 0u64;
    let merged = cfg.catalog.from_events && !file.is_empty() && agg.len() > 0;
    let mut out = |chunk: Vec<CatalogItem>| {
        len += chunk.len() as u64;
        match &mut sink {
            Some(s) => s(chunk),
            None => all.extend(chunk),
        }
    };
    if cfg.catalog.from_events {
        agg.drain(&mut |mut chunk| {
            if !file.is_empty() {
                chunk.retain(|it| !file.contains_key(&it.id));
            }
            if !chunk.is_empty() {
                out(chunk);
            }
        });
    }
    let mut rest = file.into_values();
    loop {
        let chunk: Vec<CatalogItem> = rest.by_ref().take(catalog::CATALOG_CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        out(chunk);
    }
    if merged {
        all.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    }
    (all, len)
}

/// Events per chunk handed to a sink.
pub const CHUNK: usize = 50_000;

#[allow(clippy::too_many_arguments)]
fn build_report(
    cfg: &DatasetConfig,
    path: &Path,
    rows_read: u64,
    acc: &Accum,
    quarantine: &[QuarantinedRow],
    sunk: &BTreeMap<&'static str, u64>,
    catalog_items: u64,
    catalog: Option<CatalogReport>,
    elapsed: f64,
) -> QualityReport {
    let mut by_reason = BTreeMap::new();
    let mut quarantined = 0;
    for q in quarantine.iter().filter(|q| q.file == SourceFile::Events) {
        *by_reason.entry(q.reason.as_str().to_string()).or_insert(0) += 1;
        quarantined += 1;
    }
    for (reason, n) in sunk {
        *by_reason.entry(reason.to_string()).or_insert(0) += n;
        quarantined += n;
    }
    let mut transformed = BTreeMap::new();
    let by_type = acc.by_type();
    if let Some(n) = by_type.get("cancel") {
        // Cancelled lines kept as `cancel` events with a positive quantity.
        transformed.insert("cancellation".to_string(), *n);
    }
    QualityReport {
        dataset: cfg.name.clone(),
        input: path.display().to_string(),
        rows_read,
        accepted: acc.accepted,
        quarantined,
        by_reason,
        transformed,
        accepted_by_type: by_type,
        users: acc.users.len() as u64,
        items: acc.items.len() as u64,
        time_kind: match cfg.time_kind() {
            aisle_core::TimeKind::Unix => "unix".into(),
            aisle_core::TimeKind::Order => "order".into(),
        },
        time_min: acc.tmin,
        time_max: acc.tmax,
        catalog_items,
        catalog,
        cleaning: serde_json::to_value(&cfg.cleaning).unwrap_or_default(),
        elapsed_s: elapsed,
        rows_per_s: if elapsed > 0.0 {
            rows_read as f64 / elapsed
        } else {
            0.0
        },
        timings: BTreeMap::from([("read_validate".to_string(), elapsed)]),
        store: None,
    }
}
