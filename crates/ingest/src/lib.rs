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
pub mod report;

pub mod api;
mod catalog;
pub mod erase;
#[cfg(test)]
mod rules;
mod spill;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use aisle_core::hash::{hash_fields, StableHasher};
use aisle_core::{CatalogItem, Event, EventType};

pub use config::{DatasetConfig, Format, Protocol, TimeFormat, UserOrder};
pub use report::{CatalogReport, QualityReport, QuarantinedRow, Reason, SourceFile, StoreOutcome};
pub use spill::remove_stale_spills;

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

/// Logical fields, in a fixed order.
#[derive(Clone, Copy)]
#[repr(usize)]
enum F {
    User,
    Item,
    Time,
    TimeOffset,
    Type,
    Quantity,
    Price,
    Session,
    Value,
    Title,
    Description,
    Category,
}
const NF: usize = 12;

/// A candidate event that passed row-level validation.
struct Candidate {
    event: Event,
    line: u64,
    raw: (u64, u64),
    /// Identical rows seen before this one.
    ordinal: u32,
    content_hash: u64,
    dropped: Option<Reason>,
    /// An identical row was accepted before this one (see [`Accum::add`]).
    repeat: bool,
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
        if let Some(cp) = catalog_path {
            let (items, rep, q) = catalog::read_catalog_file(&self.cfg, cp)?;
            for it in items {
                catalog.insert(it.id.clone(), it);
            }
            catalog_report = Some(rep);
            quarantine.extend(q);
        }
        let known_items =
            (catalog_path.is_some() && self.cfg.cleaning.require_catalog_item).then_some(&catalog);
        let cfg = self.cfg.clone();
        let mut state = RowState::new(&cfg, self.now, known_items, sink);
        state.q_sink = self.quarantine_sink.take();
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

/// Running figures over accepted events.
#[derive(Default)]
struct Accum {
    events: Vec<Event>,
    accepted: u64,
    /// Distinct users and items, as 64-bit hashes of the ids (8 bytes each,
    /// not the ids: the report needs only the counts; a collision among
    /// ten million ids has a chance of about 3 in a million).
    users: aisle_core::hash::FastSet<u64>,
    items: aisle_core::hash::FastSet<u64>,
    /// Accepted events per type, in [`EventType::ALL`] order.
    by_type: [u64; EventType::ALL.len()],
    tmin: Option<i64>,
    tmax: Option<i64>,
}

impl Accum {
    /// Counts an accepted event. `repeat`: an identical row was accepted
    /// before, so its user and item are already counted (two hash lookups
    /// saved per repeated row).
    fn add(&mut self, e: &Event, repeat: bool) {
        self.accepted += 1;
        if !repeat {
            self.users.insert(hash_fields([e.user.as_bytes()]));
            self.items.insert(hash_fields([e.item.as_bytes()]));
        }
        self.by_type[e.event_type as usize] += 1;
        self.tmin = Some(self.tmin.map_or(e.ts, |m| m.min(e.ts)));
        self.tmax = Some(self.tmax.map_or(e.ts, |m| m.max(e.ts)));
    }

    fn by_type(&self) -> BTreeMap<String, u64> {
        EventType::ALL
            .iter()
            .zip(self.by_type)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str().to_string(), n))
            .collect()
    }
}

type Progress = Option<Box<dyn FnMut(u64, u64)>>;

fn read_events(
    cfg: &DatasetConfig,
    mut progress: Progress,
    path: &Path,
    st: &mut RowState<'_, '_>,
) -> Result<()> {
    let input = input::open_with(path, limits_of(cfg))?;
    let long_lines = input.long_lines.clone();
    let record_start = input.record_start.clone();
    let size = input.file_size;
    let consumed = input.consumed.clone();
    let mut tick = 0u64;
    let mut report_progress = |force: bool| {
        tick += 1;
        if force || tick.is_multiple_of(16_384) {
            if let Some(p) = progress.as_mut() {
                p(consumed.load(std::sync::atomic::Ordering::Relaxed), size);
            }
        }
    };
    let path_s = path.display().to_string();
    match cfg.format {
        Format::Csv | Format::Tsv => {
            let delim = if cfg.format == Format::Tsv {
                b'\t'
            } else {
                cfg.delimiter.as_bytes()[0]
            };
            let mut rdr = csv::ReaderBuilder::new()
                .delimiter(delim)
                .has_headers(false)
                .flexible(true)
                .quoting(cfg.format == Format::Csv)
                .buffer_capacity(256 * 1024)
                .from_reader(input.reader);
            let mut rec = csv::ByteRecord::new();
            let header: Vec<String> = if cfg.header {
                record_start.store(0, std::sync::atomic::Ordering::Relaxed);
                match rdr.read_byte_record(&mut rec) {
                    Ok(true) => rec
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let s = String::from_utf8_lossy(f).trim().to_string();
                            if i == 0 {
                                s.trim_start_matches('\u{feff}').to_string()
                            } else {
                                s
                            }
                        })
                        .collect(),
                    Ok(false) => {
                        return Err(IngestError::EmptyInput { path: path_s });
                    }
                    Err(e) => return Err(read_err(&path_s, 1, e)),
                }
            } else {
                cfg.columns.clone()
            };
            if cfg.header {
                header_fits(&long_lines, &path_s, cfg.cleaning.max_line_bytes)?;
            }
            let idx = column_indices(cfg, &header, &path_s)?;
            let ncols = header.len();
            loop {
                // The guard refuses a record (a quoted field spanning lines)
                // that runs past the line limit.
                record_start.store(rdr.position().byte(), std::sync::atomic::Ordering::Relaxed);
                match rdr.read_byte_record(&mut rec) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        let line = e.position().map(|p| p.line()).unwrap_or(0);
                        return Err(read_err(&path_s, line, e));
                    }
                }
                let line = rec.position().map(|p| p.line()).unwrap_or(0);
                st.csv_row(&rec, line, ncols, &idx, delim);
                report_progress(false);
            }
        }
        Format::Jsonl => for_each_line(input.reader, &path_s, |text, line| {
            st.json_row(text, line);
            report_progress(false);
        })?,
        Format::Seqlines => for_each_line(input.reader, &path_s, |text, line| {
            st.seq_line(text, line);
            report_progress(false);
        })?,
    }
    report_progress(true);
    for row in long_line_rows(&long_lines, SourceFile::Events) {
        st.rows_read += 1;
        st.push_q(row);
    }
    Ok(())
}

/// An error when the guard dropped line 1, the header (the line after it
/// would be read as the header otherwise).
pub(crate) fn header_fits(
    long: &std::sync::Mutex<Vec<input::LongLine>>,
    path: &str,
    limit: usize,
) -> Result<()> {
    let long = long.lock().unwrap_or_else(|e| e.into_inner());
    match long.iter().find(|l| l.line == 1) {
        Some(l) => Err(read_err(
            path,
            1,
            format!(
                "the header line is {} bytes long, over the {limit}-byte line limit (cleaning.max_line_bytes)",
                l.bytes
            ),
        )),
        None => Ok(()),
    }
}

/// The input limits a config sets.
pub(crate) fn limits_of(cfg: &DatasetConfig) -> input::Limits {
    input::Limits {
        max_line_bytes: cfg.cleaning.max_line_bytes.max(1),
        max_ratio: cfg.cleaning.max_decompression_ratio,
    }
}

/// Quarantine rows for the lines a [`input::LineGuard`] dropped (an
/// over-long header was already refused by [`header_fits`]).
pub(crate) fn long_line_rows(
    long: &std::sync::Mutex<Vec<input::LongLine>>,
    file: SourceFile,
) -> Vec<QuarantinedRow> {
    let long = std::mem::take(&mut *long.lock().unwrap_or_else(|e| e.into_inner()));
    let mut out = Vec::with_capacity(long.len());
    for l in long {
        let text = String::from_utf8_lossy(&l.excerpt).into_owned();
        let hex = std::str::from_utf8(&l.excerpt)
            .is_err()
            .then(|| l.excerpt.iter().map(|b| format!("{b:02x}")).collect());
        out.push(QuarantinedRow {
            file,
            line: l.line,
            reason: Reason::LineTooLong,
            detail: format!(
                "the line is {} bytes long; only its first {} are kept",
                l.bytes,
                l.excerpt.len()
            )
            .into(),
            raw: text,
            raw_hex: hex,
        });
    }
    out
}

/// Calls `f(text, line_number)` for every non-blank line (newline stripped).
fn for_each_line(
    mut reader: impl std::io::BufRead,
    path: &str,
    mut f: impl FnMut(&[u8], u64),
) -> Result<()> {
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_err(path, line_no + 1, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let text = trim_newline(&buf);
        if !text.iter().all(|b| b.is_ascii_whitespace()) {
            f(text, line_no);
        }
    }
}

fn trim_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn read_err(path: &str, line: u64, e: impl std::fmt::Display) -> IngestError {
    let msg = e.to_string();
    let message =
        if msg.contains("invalid gzip") || msg.contains("corrupt") || msg.contains("deflate") {
            format!("the gzip stream is corrupt or truncated ({msg})")
        } else {
            msg
        };
    IngestError::Read {
        path: path.to_string(),
        line,
        message,
    }
}

fn column_indices(
    cfg: &DatasetConfig,
    header: &[String],
    path: &str,
) -> Result<[Option<usize>; NF]> {
    let f = &cfg.fields;
    let wanted: [(&str, &Option<String>); NF] = [
        ("user", &f.user),
        ("item", &f.item),
        ("time", &f.time),
        ("time_offset_ms", &f.time_offset_ms),
        ("event_type", &f.event_type),
        ("quantity", &f.quantity),
        ("price", &f.price),
        ("session", &f.session),
        ("value", &f.value),
        ("title", &f.title),
        ("description", &f.description),
        ("category", &f.category),
    ];
    let mut out = [None; NF];
    for (i, (field, col)) in wanted.iter().enumerate() {
        if let Some(col) = col {
            match header.iter().position(|h| h == col) {
                Some(p) => out[i] = Some(p),
                None => {
                    return Err(IngestError::MissingColumn {
                        path: path.to_string(),
                        field: field.to_string(),
                        column: col.clone(),
                        header: header.join(", "),
                    })
                }
            }
        }
    }
    Ok(out)
}

/// Row-level validation state.
struct RowState<'c, 's> {
    cfg: &'c DatasetConfig,
    known_items: Option<&'c BTreeMap<String, CatalogItem>>,
    sink: Option<&'s mut dyn FnMut(Vec<Event>) -> bool>,
    /// A whole-history rule is on: candidates are held until the end.
    needs_history: bool,
    stopped: bool,
    acc: Accum,
    min_ts: i64,
    max_ts: i64,
    candidates: Vec<Candidate>,
    /// The spill of candidates when a whole-history rule is on.
    history: Option<spill::History>,
    /// The first failure writing the spill.
    spill_error: Option<std::io::Error>,
    spill_dir: Option<std::path::PathBuf>,
    run_bytes: usize,
    /// Distinct rows counted in memory before counting moves to the spill.
    seen_cap: usize,
    quarantine: Vec<QuarantinedRow>,
    /// With a sink, rows go there and only their counts stay here.
    q_sink: Option<QuarantineSink>,
    sunk: BTreeMap<&'static str, u64>,
    arena: String,
    rows_read: u64,
    seen: aisle_core::hash::FastMap<u64, u32>,
    catalog_agg: catalog::Aggregator,
    type_cache: aisle_core::hash::FastMap<String, Option<EventType>>,
}

impl<'c, 's> RowState<'c, 's> {
    fn new(
        cfg: &'c DatasetConfig,
        now: i64,
        known_items: Option<&'c BTreeMap<String, CatalogItem>>,
        sink: Option<&'s mut dyn FnMut(Vec<Event>) -> bool>,
    ) -> Self {
        let c = &cfg.cleaning;
        let needs_history = c.consecutive_duplicate_window_s.is_some()
            || (c.bot_max_events_per_minute.is_some()
                && cfg.fields.time_format != TimeFormat::Order)
            || c.kcore > 0;
        RowState {
            cfg,
            known_items,
            sink,
            needs_history,
            stopped: false,
            acc: Accum::default(),
            min_ts: aisle_core::time::parse_datetime(&cfg.cleaning.min_time)
                .unwrap_or(i64::MIN)
                .max(aisle_core::MIN_TS),
            max_ts: now
                .saturating_add(cfg.cleaning.future_slack_s)
                .min(aisle_core::MAX_TS),
            candidates: Vec::new(),
            history: None,
            spill_error: None,
            spill_dir: None,
            run_bytes: spill::RUN_BYTES,
            seen_cap: spill::SEEN_CAP,
            quarantine: Vec::new(),
            q_sink: None,
            sunk: BTreeMap::new(),
            arena: String::new(),
            rows_read: 0,
            seen: Default::default(),
            catalog_agg: catalog::Aggregator::default(),
            type_cache: Default::default(),
        }
    }

    /// Quarantines a row: to the sink when there is one, else kept.
    fn push_q(&mut self, row: QuarantinedRow) {
        match self.q_sink.as_mut() {
            Some(sink) => {
                sink(&row);
                *self.sunk.entry(row.reason.as_str()).or_insert(0) += 1;
            }
            None => self.quarantine.push(row),
        }
    }

    /// Moves finished candidates out: dropped ones to the quarantine, the
    /// rest (with their idempotency keys) to the sink or the output.
    fn flush(&mut self) {
        let mut chunk = Vec::with_capacity(self.candidates.len());
        let mut candidates = std::mem::take(&mut self.candidates);
        for c in candidates.drain(..) {
            match c.dropped {
                Some(reason) => {
                    let row = QuarantinedRow {
                        file: SourceFile::Events,
                        line: c.line,
                        reason,
                        detail: rule_detail(reason, &c.event).into(),
                        raw: self.arena[c.raw.0 as usize..c.raw.1 as usize].to_string(),
                        raw_hex: None,
                    };
                    self.push_q(row);
                }
                None => {
                    let mut ev = c.event;
                    ev.key = hash_fields([
                        c.content_hash.to_le_bytes().as_slice(),
                        c.ordinal.to_le_bytes().as_slice(),
                    ]);
                    self.acc.add(&ev, c.repeat);
                    chunk.push(ev);
                }
            }
        }
        self.arena.clear();
        // Keep the allocation for the next chunk.
        self.candidates = candidates;
        if chunk.is_empty() {
            return;
        }
        match self.sink.as_mut() {
            Some(sink) => {
                if !self.stopped && !sink(chunk) {
                    self.stopped = true;
                }
            }
            None => self.acc.events.extend(chunk),
        }
    }

    fn quarantine_raw(
        &mut self,
        line: u64,
        reason: Reason,
        detail: impl Into<Cow<'static, str>>,
        raw: &[u8],
    ) {
        let detail = detail.into();
        let (raw_s, raw_hex) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(raw).into_owned(),
                Some(raw.iter().map(|b| format!("{b:02x}")).collect()),
            ),
        };
        self.push_q(QuarantinedRow {
            file: SourceFile::Events,
            line,
            reason,
            detail,
            raw: raw_s,
            raw_hex,
        });
    }

    /// How many identical rows came before this one, while the count fits
    /// in memory; None once it would pass the cap (the row is then counted
    /// on disk, see [`RowState::spill`]).
    fn occurrence(&mut self, h: u64) -> Option<u32> {
        if let Some(e) = self.seen.get_mut(&h) {
            let o = *e;
            *e = e.saturating_add(1);
            return Some(o);
        }
        if self.seen.len() < self.seen_cap {
            self.seen.insert(h, 1);
            return Some(0);
        }
        None
    }

    /// Appends a candidate to the spill (opened here on first use when no
    /// whole-history rule is on) and drops its raw text from the arena. The
    /// first failure is kept for [`Ingestor::run`] to report; later rows are
    /// not written.
    fn spill(
        &mut self,
        event: &Event,
        line: u64,
        raw: (u64, u64),
        ordinal: Option<u32>,
        content_hash: u64,
        verdict: Option<Reason>,
    ) {
        if self.history.is_none() && self.spill_error.is_none() {
            match spill::History::new(self.spill_dir.as_deref(), self.run_bytes, false) {
                Ok(h) => self.history = Some(h),
                Err(e) => self.spill_error = Some(e),
            }
        }
        if let (Some(h), None) = (self.history.as_mut(), &self.spill_error) {
            let text = &self.arena[raw.0 as usize..raw.1 as usize];
            if let Err(e) = h.push(event, line, text, ordinal, content_hash, verdict) {
                self.spill_error = Some(e);
            }
        }
        self.arena.truncate(raw.0 as usize);
    }

    fn csv_row(
        &mut self,
        rec: &csv::ByteRecord,
        line: u64,
        ncols: usize,
        idx: &[Option<usize>; NF],
        delim: u8,
    ) {
        self.rows_read += 1;
        let raw_join = || {
            let mut v = Vec::with_capacity(rec.as_slice().len() + rec.len());
            for (i, f) in rec.iter().enumerate() {
                if i > 0 {
                    v.push(delim);
                }
                v.extend_from_slice(f);
            }
            v
        };
        let mut h = StableHasher::new();
        for f in rec.iter() {
            h.field(f);
        }
        let content_hash = h.finish();
        if rec.len() != ncols {
            let raw = raw_join();
            self.quarantine_raw(
                line,
                Reason::WrongColumnCount,
                format!("{} fields, header has {ncols}", rec.len()),
                &raw,
            );
            return;
        }
        if let Some((i, f)) = rec
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() > self.cfg.cleaning.max_field_bytes)
        {
            let raw = raw_join();
            self.quarantine_raw(
                line,
                Reason::FieldTooLarge,
                format!(
                    "field {} has {} bytes (max {})",
                    i + 1,
                    f.len(),
                    self.cfg.cleaning.max_field_bytes
                ),
                &raw,
            );
            return;
        }
        // Validate UTF-8 once for the whole record; fields are then sliced out
        // of it by their byte ranges (which end at ASCII delimiters).
        let Ok(whole) = std::str::from_utf8(rec.as_slice()) else {
            let raw = raw_join();
            self.quarantine_raw(line, Reason::InvalidUtf8, "row is not valid UTF-8", &raw);
            return;
        };
        let field =
            |i: usize| -> &str { rec.range(i).and_then(|r| whole.get(r)).unwrap_or_default() };
        let mut fields: [Option<&str>; NF] = [None; NF];
        for (k, slot) in idx.iter().enumerate() {
            if let Some(i) = slot {
                let s = field(*i).trim();
                fields[k] = if s.is_empty() { None } else { Some(s) };
            }
        }
        let raw_start = self.arena.len() as u64;
        for i in 0..rec.len() {
            if i > 0 {
                self.arena.push(delim as char);
            }
            self.arena.push_str(field(i));
        }
        let raw = (raw_start, self.arena.len() as u64);
        self.validate(line, fields, raw, content_hash);
    }

    fn json_row(&mut self, text: &[u8], line: u64) {
        self.rows_read += 1;
        let content_hash = hash_fields([text]);
        if text.len() > self.cfg.cleaning.max_field_bytes * 4 {
            self.quarantine_raw(
                line,
                Reason::FieldTooLarge,
                format!("line has {} bytes", text.len()),
                text,
            );
            return;
        }
        let Ok(s) = std::str::from_utf8(text) else {
            self.quarantine_raw(line, Reason::InvalidUtf8, "line is not valid UTF-8", text);
            return;
        };
        let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(s) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => {
                self.quarantine_raw(line, Reason::Unparseable, "not a JSON object", text);
                return;
            }
            Err(e) => {
                self.quarantine_raw(line, Reason::Unparseable, format!("bad JSON: {e}"), text);
                return;
            }
        };
        let f = &self.cfg.fields;
        let names = [
            &f.user,
            &f.item,
            &f.time,
            &f.time_offset_ms,
            &f.event_type,
            &f.quantity,
            &f.price,
            &f.session,
            &f.value,
            &f.title,
            &f.description,
            &f.category,
        ];
        let values: Vec<Option<String>> = names
            .iter()
            .map(|n| {
                n.as_ref().and_then(|k| match obj.get(k.as_str()) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
                    Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                        Some(v.to_string())
                    }
                    Some(other) => Some(other.to_string()),
                })
            })
            .collect();
        if let Some((i, _)) = values.iter().enumerate().find(|(_, v)| {
            v.as_ref()
                .is_some_and(|v| v.len() > self.cfg.cleaning.max_field_bytes)
        }) {
            self.quarantine_raw(
                line,
                Reason::FieldTooLarge,
                format!("field {} too large", i + 1),
                text,
            );
            return;
        }
        let mut fields: [Option<&str>; NF] = [None; NF];
        for (k, v) in values.iter().enumerate() {
            fields[k] = v.as_deref().filter(|s| !s.is_empty());
        }
        let raw_start = self.arena.len() as u64;
        self.arena.push_str(s);
        let raw = (raw_start, self.arena.len() as u64);
        self.validate(line, fields, raw, content_hash);
    }

    fn seq_line(&mut self, text: &[u8], line: u64) {
        let Ok(s) = std::str::from_utf8(text) else {
            self.rows_read += 1;
            self.quarantine_raw(line, Reason::InvalidUtf8, "line is not valid UTF-8", text);
            return;
        };
        let mut toks = s.split_ascii_whitespace();
        let user = toks.next().unwrap_or_default();
        let mut any = false;
        for (pos, item) in toks.enumerate() {
            any = true;
            self.rows_read += 1;
            let pos_s = pos.to_string();
            let content_hash = hash_fields([user.as_bytes(), item.as_bytes(), pos_s.as_bytes()]);
            if item.len() > self.cfg.cleaning.max_field_bytes
                || user.len() > self.cfg.cleaning.max_field_bytes
            {
                self.quarantine_raw(
                    line,
                    Reason::FieldTooLarge,
                    "field too large",
                    item.as_bytes(),
                );
                continue;
            }
            let mut fields: [Option<&str>; NF] = [None; NF];
            fields[F::User as usize] = Some(user);
            fields[F::Item as usize] = Some(item);
            fields[F::Time as usize] = Some(&pos_s);
            let raw_start = self.arena.len() as u64;
            self.arena.push_str(user);
            self.arena.push('\t');
            self.arena.push_str(item);
            self.arena.push('\t');
            self.arena.push_str(&pos_s);
            let raw = (raw_start, self.arena.len() as u64);
            self.validate(line, fields, raw, content_hash);
        }
        if !any {
            self.rows_read += 1;
            self.quarantine_raw(line, Reason::MissingItem, "a user with no items", text);
        }
    }

    fn event_type(&mut self, src: &str) -> Option<EventType> {
        if let Some(t) = self.type_cache.get(src) {
            return *t;
        }
        let t = self
            .cfg
            .event_types
            .get(src)
            .copied()
            .or_else(|| EventType::parse(src));
        self.type_cache.insert(src.to_string(), t);
        t
    }

    fn validate(&mut self, line: u64, f: [Option<&str>; NF], raw: (u64, u64), content_hash: u64) {
        let fail = |st: &mut Self, reason: Reason, detail: Cow<'static, str>| {
            let text = st.arena[raw.0 as usize..raw.1 as usize].to_string();
            st.arena.truncate(raw.0 as usize);
            st.push_q(QuarantinedRow {
                file: SourceFile::Events,
                line,
                reason,
                detail,
                raw: text,
                raw_hex: None,
            });
        };
        // The catalog learns from every row that names an item.
        if self.cfg.catalog.from_events {
            if let Some(item) = f[F::Item as usize] {
                let price = f[F::Price as usize].and_then(|p| p.parse::<f64>().ok());
                self.catalog_agg.observe(
                    item,
                    f[F::Title as usize],
                    f[F::Description as usize],
                    f[F::Category as usize],
                    price,
                );
            }
        }
        let Some(user) = f[F::User as usize] else {
            return fail(self, Reason::MissingUser, "user id is empty".into());
        };
        let Some(item) = f[F::Item as usize] else {
            return fail(self, Reason::MissingItem, "item id is empty".into());
        };
        for (what, id) in [
            ("user id", Some(user)),
            ("item id", Some(item)),
            ("session id", f[F::Session as usize]),
        ] {
            if let Some(why) = id.and_then(aisle_core::id_problem) {
                return fail(self, Reason::BadId, format!("{what} {why}").into());
            }
        }
        let (event_type, source_type) = match f[F::Type as usize] {
            Some(src) => match self.event_type(src) {
                Some(t) => (t, src.to_string()),
                None => {
                    return fail(
                        self,
                        Reason::UnknownEventType,
                        format!("event type {src:?} is not known").into(),
                    );
                }
            },
            None => match self.cfg.default_event_type {
                Some(t) => (
                    t,
                    self.cfg
                        .source_type
                        .clone()
                        .unwrap_or_else(|| t.as_str().to_string()),
                ),
                None => return fail(self, Reason::UnknownEventType, "event type is empty".into()),
            },
        };
        let ts = match parse_time(self.cfg, f[F::Time as usize], f[F::TimeOffset as usize]) {
            Ok(ts) => ts,
            Err(d) => return fail(self, Reason::BadTimestamp, d.into()),
        };
        if self.cfg.fields.time_format != TimeFormat::Order
            && (ts < self.min_ts || ts > self.max_ts)
        {
            return fail(
                self,
                Reason::BadTimestamp,
                format!(
                    "{} is outside the plausible range",
                    aisle_core::time::format_rfc3339(ts)
                )
                .into(),
            );
        }
        let num = |s: Option<&str>, what: &str| -> Result<Option<f64>, String> {
            match s {
                None => Ok(None),
                Some(s) => match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(Some(v)),
                    _ => Err(format!("{what} {s:?} is not a number")),
                },
            }
        };
        let (mut quantity, price, value) = match (
            num(f[F::Quantity as usize], "quantity"),
            num(f[F::Price as usize], "price"),
            num(f[F::Value as usize], "value"),
        ) {
            (Ok(q), Ok(p), Ok(v)) => (q, p, v),
            (Err(d), _, _) | (_, Err(d), _) | (_, _, Err(d)) => {
                return fail(self, Reason::BadNumber, d.into())
            }
        };
        if let Some(q) = quantity {
            if event_type == EventType::Cancel {
                if q < 0.0 {
                    quantity = Some(-q);
                }
            } else if q <= 0.0 {
                return fail(
                    self,
                    Reason::NonPositiveQuantity,
                    format!("quantity {q} on a {event_type} event").into(),
                );
            }
        }
        if let Some(p) = price {
            if p < 0.0 {
                return fail(self, Reason::NegativePrice, format!("price {p}").into());
            }
        }
        let event = Event {
            key: 0,
            user: user.to_string(),
            item: item.to_string(),
            ts,
            event_type,
            source_type,
            quantity,
            price,
            session: f[F::Session as usize].map(str::to_string),
            value,
        };
        // Identical rows are identical up to here (every check so far reads
        // only the row), so counting them at this point gives the same
        // ordinal as counting every row read.
        let ordinal = self.occurrence(content_hash);
        let c = &self.cfg.cleaning;
        let row_rule = if c.drop_non_products && self.cfg.is_non_product(&event.item) {
            Some(Reason::NonProduct)
        } else if self
            .known_items
            .is_some_and(|k| !k.contains_key(&event.item))
        {
            Some(Reason::UnknownItem)
        } else {
            None
        };
        let Some(ordinal) = ordinal else {
            // Past the in-memory count: the spill settles this row at the end.
            return self.spill(&event, line, raw, None, content_hash, row_rule);
        };
        let immediate = if c.dedupe_exact && ordinal > 0 {
            Some(Reason::ExactDuplicate)
        } else {
            row_rule
        };
        if let Some(reason) = immediate {
            return fail(self, reason, rule_detail(reason, &event).into());
        }
        if self.history.is_some() {
            return self.spill(&event, line, raw, Some(ordinal), content_hash, None);
        }
        // Without a whole-history rule or a spill, an earlier identical row
        // passed the same row-level checks and was accepted.
        self.candidates.push(Candidate {
            event,
            line,
            raw,
            ordinal,
            content_hash,
            dropped: None,
            repeat: ordinal > 0,
        });
        if self.candidates.len() >= CHUNK {
            self.flush();
        }
    }
}

fn parse_time(
    cfg: &DatasetConfig,
    t: Option<&str>,
    offset_ms: Option<&str>,
) -> Result<i64, String> {
    let Some(t) = t else {
        return Err("time is empty".into());
    };
    let int = |s: &str| -> Option<i64> {
        s.parse::<i64>().ok().or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && v.abs() < 9.0e15)
                .map(|v| v.floor() as i64)
        })
    };
    let base = match cfg.fields.time_format {
        TimeFormat::Unix | TimeFormat::Order => int(t),
        TimeFormat::UnixMs => int(t).map(|v| v.div_euclid(1000)),
        TimeFormat::Datetime => aisle_core::time::parse_datetime(t),
        TimeFormat::Date => aisle_core::time::parse_date(t),
    }
    .ok_or_else(|| format!("time {t:?} is not {:?}", cfg.fields.time_format))?;
    match offset_ms {
        None => Ok(base),
        Some(o) => int(o)
            .map(|ms| base + ms.div_euclid(1000))
            .ok_or_else(|| format!("time offset {o:?} is not a number")),
    }
}

fn rule_detail(reason: Reason, ev: &Event) -> String {
    match reason {
        Reason::ExactDuplicate => "identical to an earlier row".into(),
        Reason::NonProduct => format!("{} is a non-product code", ev.item),
        Reason::UnknownItem => format!("item {} is not in the catalog", ev.item),
        Reason::ConsecutiveDuplicate => format!(
            "repeats the user's previous {} of {}",
            ev.event_type, ev.item
        ),
        Reason::BotUser => format!("user {} exceeds the events-per-minute cap", ev.user),
        Reason::Kcore => format!(
            "user {} or item {} below the k-core threshold",
            ev.user, ev.item
        ),
        other => other.as_str().to_string(),
    }
}

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
