//! What every ingest leaves beside the events: its data-quality report and
//! the rows it quarantined, kept where the store keeps its data.
//!
//! A store in a folder keeps them as files beside its database
//! (`reports/ingest-<at>-<pid>.json`, `quarantine/<input>-<at>-<pid>.jsonl`,
//! one JSON row per line); a PostgreSQL store keeps them in its database
//! (tables `ingest_reports`, `quarantine_batches`, and `quarantine`, which
//! holds a batch's rows in chunks of JSON lines with their counts by
//! reason), so every
//! replica's data page shows every machine's ingests, an erasure through any
//! replica removes the user's rows, and `aisle store copy` carries them.
//!
//! This module stores text: the report's and the rows' JSON are the ingest
//! crate's types, which this crate does not know.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pg::Shared;
use crate::{parse_url, Location, Result, StoreError};

/// The folder, in a store's folder, that keeps every ingest's report.
pub const REPORTS_DIR: &str = "reports";
/// The folder, in a store's folder, that keeps the quarantined rows.
pub const QUARANTINE_DIR: &str = "quarantine";
/// A chunk of a batch in PostgreSQL: at most this many rows, or about
/// this many bytes of their JSON (a row of text per chunk, as a file holds
/// lines: one insert per chunk, not per row).
const CHUNK_ROWS: usize = 2_000;
const CHUNK_BYTES: usize = 1 << 20;
/// A report file read at most (larger ones are skipped).
const REPORT_BYTES: u64 = 1 << 20;
/// Bytes of a quarantine file read for the data page's counts.
const FILE_BYTES: u64 = 8 << 20;

/// Where a store keeps its ingests' reports and quarantined rows.
#[derive(Clone)]
pub struct IngestLog(Where);

#[derive(Clone)]
enum Where {
    /// Files in the store's folder.
    Files(PathBuf),
    /// Tables in the store's PostgreSQL database.
    Pg(Arc<Shared>),
}

/// A kept report: its name, when the ingest finished (Unix seconds) and
/// its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptReport {
    pub name: String,
    pub at: i64,
    pub json: String,
}

/// One ingest's quarantined rows as the data page shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineBatch {
    /// Its name (a file's name in a folder store).
    pub name: String,
    /// When it was written (Unix seconds).
    pub at: i64,
    /// Rows counted (a file: those in its first 8 MiB).
    pub rows: u64,
    /// Reason → rows, most rows first.
    pub by_reason: Vec<(String, u64)>,
    /// The first rows' JSON (each at most 400 characters).
    pub samples: Vec<String>,
}

/// What [`IngestLog::copy_to`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestsCopy {
    /// Reports the source holds; of them, new to the target.
    pub reports: u64,
    pub reports_added: u64,
    /// Quarantined rows the source holds; of them, new to the target.
    pub quarantined_rows: u64,
    pub quarantined_added: u64,
}

impl std::fmt::Debug for IngestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Where::Files(d) => write!(f, "IngestLog::Files({})", d.display()),
            Where::Pg(_) => write!(f, "IngestLog::Pg"),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl IngestLog {
    /// The log of a store URL: its folder's files (see
    /// [`crate::files_dir`]), or its PostgreSQL database; None for a store
    /// in memory.
    pub fn open(url: &str) -> Result<Option<IngestLog>> {
        Ok(match parse_url(url)? {
            Location::Postgres(u) => Some(IngestLog(Where::Pg(Arc::new(Shared::open(&u)?)))),
            loc => loc.dir().map(IngestLog::in_folder),
        })
    }

    /// The files of a store's folder.
    pub fn in_folder(dir: PathBuf) -> IngestLog {
        IngestLog(Where::Files(dir))
    }

    /// A writer of one ingest's quarantined rows, named after its input
    /// (`events`, `catalog`, a file's stem) and `at` (Unix seconds).
    /// Nothing is created until the first row.
    pub fn quarantine(&self, input: &str, at: i64) -> QuarantineWriter {
        QuarantineWriter {
            log: self.clone(),
            input: input.to_string(),
            at,
            name: None,
            file: None,
            pending: Chunk::default(),
            chunks: 0,
            rows: 0,
            error: None,
        }
    }

    /// Keeps a report; returns where (a file's path, or the report's name
    /// in the database).
    pub fn save_report(&self, at: i64, json: &str) -> Result<String> {
        let name = match &self.0 {
            Where::Files(_) => format!("ingest-{at}-{}.json", std::process::id()),
            Where::Pg(db) => {
                let n: i64 = db
                    .client()?
                    .query_one("SELECT nextval('ingest_numbers')", &[])?
                    .get(0);
                format!("ingest-{at}-{n}.json")
            }
        };
        self.put_report(&name, at, json)
    }

    /// Stores a report under `name` (a name already there is kept as it
    /// is in the database, replaced in a folder); returns where.
    fn put_report(&self, name: &str, at: i64, json: &str) -> Result<String> {
        match &self.0 {
            Where::Files(dir) => {
                let dir = dir.join(REPORTS_DIR);
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                write_file(&dir, name, json.as_bytes())
            }
            Where::Pg(db) => {
                db.client()?.execute(
                    "INSERT INTO ingest_reports(name, at, report) VALUES($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &at, &json],
                )?;
                Ok(name.to_string())
            }
        }
    }

    /// The newest `n` reports, newest first (a folder's unreadable or
    /// oversized files are skipped).
    pub fn recent_reports(&self, n: usize) -> Result<Vec<KeptReport>> {
        match &self.0 {
            Where::Files(dir) => Ok(report_files(&dir.join(REPORTS_DIR))
                .into_iter()
                .filter_map(|(at, name, path)| {
                    if std::fs::metadata(&path).ok()?.len() > REPORT_BYTES {
                        return None;
                    }
                    let json = std::fs::read_to_string(&path).ok()?;
                    Some(KeptReport { name, at, json })
                })
                .take(n)
                .collect()),
            Where::Pg(db) => Ok(db
                .client()?
                .query(
                    "SELECT name, at, report FROM ingest_reports
                     ORDER BY at DESC, name DESC LIMIT $1",
                    &[&(n as i64)],
                )?
                .iter()
                .map(|r| KeptReport {
                    name: r.get(0),
                    at: r.get(1),
                    json: r.get(2),
                })
                .collect()),
        }
    }

    /// The newest `n` ingests' quarantined rows: counts by reason and the
    /// first `samples` rows.
    pub fn quarantine_batches(&self, n: usize, samples: usize) -> Result<Vec<QuarantineBatch>> {
        match &self.0 {
            Where::Files(dir) => Ok(quarantine_files(&dir.join(QUARANTINE_DIR))
                .into_iter()
                .take(n)
                .filter_map(|(at, path)| quarantine_file(&path, at, samples))
                .collect()),
            Where::Pg(db) => {
                let mut c = db.client()?;
                let batches = c.query(
                    "SELECT name, at FROM quarantine_batches ORDER BY at DESC, name DESC LIMIT $1",
                    &[&(n as i64)],
                )?;
                let mut out = Vec::new();
                for b in batches {
                    let name: String = b.get(0);
                    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
                    let mut first = Vec::new();
                    let mut rows = 0;
                    let chunks = c.query(
                        "SELECT rows, by_reason, chunk FROM quarantine WHERE name = $1 ORDER BY chunk",
                        &[&name],
                    )?;
                    for ch in &chunks {
                        rows += ch.get::<_, i64>(0) as u64;
                        for (r, n) in reasons(ch.get(1)) {
                            *by_reason.entry(r).or_default() += n;
                        }
                        if first.len() < samples && ch.get::<_, i64>(0) > 0 {
                            let lines: String = c
                                .query_one(
                                    "SELECT lines FROM quarantine WHERE name = $1 AND chunk = $2",
                                    &[&name, &ch.get::<_, i64>(2)],
                                )?
                                .get(0);
                            first.extend(lines.lines().take(samples - first.len()).map(sample));
                        }
                    }
                    out.push(QuarantineBatch {
                        rows,
                        name,
                        at: b.get(1),
                        by_reason: most_first(by_reason),
                        samples: first,
                    });
                }
                Ok(out)
            }
        }
    }

    /// Removes every quarantined row that `drop` says mentions a user.
    /// Only rows whose JSON contains one of `needles` are handed to `drop`
    /// (a cheap pre-filter: the id as it may appear in a row's text).
    /// Returns how many rows were removed.
    pub fn erase_rows(&self, needles: &[String], drop: &dyn Fn(&[u8]) -> bool) -> Result<u64> {
        let needles: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
        if needles.is_empty() {
            return Ok(0);
        }
        match &self.0 {
            Where::Files(dir) => erase_in_files(&dir.join(QUARANTINE_DIR), &needles, drop),
            Where::Pg(db) => {
                let mut c = db.client()?;
                let mut tx = c.transaction()?;
                let mut removed = 0;
                let mut seen = std::collections::HashSet::new();
                for needle in needles {
                    let chunks = tx.query(
                        "SELECT name, chunk, lines FROM quarantine WHERE strpos(lines, $1) > 0",
                        &[needle],
                    )?;
                    for r in chunks {
                        let (name, chunk, lines): (String, i64, String) =
                            (r.get(0), r.get(1), r.get(2));
                        if !seen.insert((name.clone(), chunk)) {
                            continue;
                        }
                        let mut kept = Chunk::default();
                        let mut n = 0;
                        for line in lines.lines() {
                            if drop(line.as_bytes()) {
                                n += 1;
                            } else {
                                kept.push(&reason_of(line), line);
                            }
                        }
                        if n > 0 {
                            tx.execute(
                                "UPDATE quarantine SET rows = $3, by_reason = $4, lines = $5
                                 WHERE name = $1 AND chunk = $2",
                                &[
                                    &name,
                                    &chunk,
                                    &(kept.rows as i64),
                                    &kept.by_reason_json(),
                                    &kept.lines,
                                ],
                            )?;
                            removed += n;
                        }
                    }
                }
                tx.commit()?;
                Ok(removed)
            }
        }
    }

    /// Every report, oldest first.
    fn all_reports(&self) -> Result<Vec<KeptReport>> {
        let mut all = self.recent_reports(usize::MAX >> 1)?;
        all.reverse();
        Ok(all)
    }

    /// Every quarantine batch's name and time, oldest first.
    fn batch_names(&self) -> Result<Vec<(String, i64)>> {
        match &self.0 {
            Where::Files(dir) => {
                let mut v: Vec<(String, i64)> = quarantine_files(&dir.join(QUARANTINE_DIR))
                    .into_iter()
                    .filter_map(|(at, p)| Some((p.file_name()?.to_str()?.to_string(), at)))
                    .collect();
                v.reverse();
                Ok(v)
            }
            Where::Pg(db) => Ok(db
                .client()?
                .query(
                    "SELECT name, at FROM quarantine_batches ORDER BY at, name",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()),
        }
    }

    /// Every row of a batch, in order: (reason, JSON). A file's rows carry
    /// their reason inside their JSON; it is read from there.
    fn batch_rows(&self, name: &str, mut each: impl FnMut(&str, &str) -> Result<()>) -> Result<()> {
        match &self.0 {
            Where::Files(dir) => {
                use std::io::BufRead;
                let path = dir.join(QUARANTINE_DIR).join(name);
                let f = std::fs::File::open(&path).map_err(io(&path))?;
                for line in std::io::BufReader::new(f).lines() {
                    let line = line.map_err(io(&path))?;
                    if line.is_empty() {
                        continue;
                    }
                    each(&reason_of(&line), &line)?;
                }
                Ok(())
            }
            Where::Pg(db) => {
                let mut c = db.client()?;
                let mut last = -1i64;
                loop {
                    let Some(r) = c.query_opt(
                        "SELECT chunk, lines FROM quarantine
                         WHERE name = $1 AND chunk > $2 ORDER BY chunk LIMIT 1",
                        &[&name, &last],
                    )?
                    else {
                        return Ok(());
                    };
                    last = r.get(0);
                    for line in r.get::<_, &str>(1).lines() {
                        each(&reason_of(line), line)?;
                    }
                }
            }
        }
    }

    /// Whether a batch or report of this name is here already.
    fn holds(&self, report: bool, name: &str) -> Result<bool> {
        match &self.0 {
            Where::Files(dir) => Ok(dir
                .join(if report { REPORTS_DIR } else { QUARANTINE_DIR })
                .join(name)
                .exists()),
            Where::Pg(db) => {
                let q = if report {
                    "SELECT 1 FROM ingest_reports WHERE name = $1"
                } else {
                    "SELECT 1 FROM quarantine_batches WHERE name = $1"
                };
                Ok(db.client()?.query_opt(q, &[&name])?.is_some())
            }
        }
    }

    /// Copies every report and quarantine batch that `to` does not hold
    /// yet (by name: copying twice adds nothing), keeping names and times.
    pub fn copy_to(&self, to: &IngestLog) -> Result<IngestsCopy> {
        let mut out = IngestsCopy::default();
        for r in self.all_reports()? {
            out.reports += 1;
            if to.holds(true, &r.name)? {
                continue;
            }
            to.put_report(&r.name, r.at, &r.json)?;
            out.reports_added += 1;
        }
        for (name, at) in self.batch_names()? {
            let fresh = !to.holds(false, &name)?;
            let mut w = to.quarantine("", at);
            w.name = Some(name.clone());
            self.batch_rows(&name, |reason, json| {
                out.quarantined_rows += 1;
                if fresh {
                    out.quarantined_added += 1;
                    w.write(reason, json);
                }
                Ok(())
            })?;
            w.finish()?;
        }
        Ok(out)
    }

    /// How many reports and quarantined rows are kept.
    pub fn counts(&self) -> Result<(u64, u64)> {
        match &self.0 {
            Where::Pg(db) => {
                let mut c = db.client()?;
                let r: i64 = c
                    .query_one("SELECT count(*) FROM ingest_reports", &[])?
                    .get(0);
                let q: i64 = c
                    .query_one("SELECT coalesce(sum(rows), 0)::bigint FROM quarantine", &[])?
                    .get(0);
                Ok((r as u64, q as u64))
            }
            Where::Files(_) => {
                let reports = self.all_reports()?.len() as u64;
                let mut rows = 0;
                for (name, _) in self.batch_names()? {
                    self.batch_rows(&name, |_, _| {
                        rows += 1;
                        Ok(())
                    })?;
                }
                Ok((reports, rows))
            }
        }
    }
}

/// Writes one ingest's quarantined rows as they are found (a file is
/// created, or a batch named, with the first row); the first error is kept
/// for [`QuarantineWriter::finish`].
pub struct QuarantineWriter {
    log: IngestLog,
    input: String,
    at: i64,
    name: Option<String>,
    file: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
    pending: Chunk,
    chunks: i64,
    rows: i64,
    error: Option<StoreError>,
}

impl QuarantineWriter {
    /// Adds a row: its reason (also inside `json`) and its JSON (one line).
    pub fn write(&mut self, reason: &str, json: &str) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.try_write(reason, json) {
            self.error = Some(e);
        }
    }

    fn try_write(&mut self, reason: &str, json: &str) -> Result<()> {
        match &self.log.0 {
            Where::Files(dir) => {
                if self.file.is_none() {
                    let dir = dir.join(QUARANTINE_DIR);
                    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    let name = self.name.get_or_insert_with(|| {
                        format!("{}-{}-{}.jsonl", self.input, self.at, std::process::id())
                    });
                    let path = dir.join(&*name);
                    let f = std::fs::File::create(&path).map_err(io(&path))?;
                    self.file = Some((path, std::io::BufWriter::new(f)));
                }
                let (path, w) = self.file.as_mut().expect("opened");
                w.write_all(json.as_bytes())
                    .and_then(|_| w.write_all(b"\n"))
                    .map_err(io(path))?;
            }
            Where::Pg(_) => {
                self.pending.push(reason, json);
                if self.pending.rows >= CHUNK_ROWS || self.pending.lines.len() >= CHUNK_BYTES {
                    self.flush_pg()?;
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn flush_pg(&mut self) -> Result<()> {
        let Where::Pg(db) = &self.log.0 else {
            return Ok(());
        };
        if self.pending.rows == 0 {
            return Ok(());
        }
        let mut c = db.client()?;
        let mut tx = c.transaction()?;
        if self.name.is_none() {
            let n: i64 = tx
                .query_one("SELECT nextval('ingest_numbers')", &[])?
                .get(0);
            self.name = Some(format!("{}-{}-{n}.jsonl", self.input, self.at));
        }
        let name = self.name.as_deref().expect("named");
        tx.execute(
            "INSERT INTO quarantine_batches(name, at) VALUES($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &self.at],
        )?;
        let chunk = std::mem::take(&mut self.pending);
        tx.execute(
            "INSERT INTO quarantine(name, chunk, rows, by_reason, lines) VALUES($1, $2, $3, $4, $5)
             ON CONFLICT (name, chunk) DO NOTHING",
            &[
                &name,
                &self.chunks,
                &(chunk.rows as i64),
                &chunk.by_reason_json(),
                &chunk.lines,
            ],
        )?;
        tx.commit()?;
        self.chunks += 1;
        Ok(())
    }

    /// Writes what is pending (synced, for a file); where the rows went
    /// (a file's path, a batch's name), None if there were none.
    pub fn finish(&mut self) -> Result<Option<String>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.flush_pg()?;
        if let Some((path, mut w)) = self.file.take() {
            w.flush().map_err(io(&path))?;
            let f = w.get_ref();
            // The batch's time (a copied batch keeps its own).
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.at.max(0) as u64);
            f.set_modified(at).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
            return Ok(Some(path.display().to_string()));
        }
        Ok(self.name.clone().filter(|_| self.rows > 0))
    }
}

/// Rows of a batch as PostgreSQL keeps them: JSON lines (each ending in a
/// newline) and their count by reason.
#[derive(Default)]
struct Chunk {
    rows: usize,
    by_reason: BTreeMap<String, u64>,
    lines: String,
}

impl Chunk {
    fn push(&mut self, reason: &str, json: &str) {
        self.rows += 1;
        match self.by_reason.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.by_reason.insert(reason.to_string(), 1);
            }
        }
        self.lines.push_str(json);
        self.lines.push('\n');
    }

    fn by_reason_json(&self) -> String {
        serde_json::to_string(&self.by_reason).unwrap_or_else(|_| "{}".into())
    }
}

/// Counts by reason, most rows first (ties by reason).
fn most_first(by_reason: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = by_reason.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// A sample row as the data page shows it: at most 400 characters.
fn sample(line: &str) -> String {
    line.chars().take(400).collect()
}

/// A chunk's counts by reason, as stored.
fn reasons(json: &str) -> BTreeMap<String, u64> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Writes `bytes` to `dir/name` through a temporary name (a reader never
/// sees half of it); returns the path.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<String> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path.display().to_string())
}

/// `ingest-<at>-<pid>.json` files, newest first: (at, name, path).
fn report_files(dir: &Path) -> Vec<(i64, String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut named: Vec<(i64, String, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let at = file
                .strip_prefix("ingest-")?
                .strip_suffix(".json")?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            Some((at, file, e.path()))
        })
        .collect();
    named.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    named
}

/// `*.jsonl` files, newest first: (modified, Unix seconds; path).
fn quarantine_files(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(i64, PathBuf)> = rd
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| {
            let at = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            (at, e.path())
        })
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    files
}

/// A row's `reason` field, or `unreadable`.
fn reason_of(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unreadable".into())
}

/// A quarantine file's counts by reason (its first 8 MiB) and first rows.
fn quarantine_file(path: &Path, at: i64, samples: usize) -> Option<QuarantineBatch> {
    use std::io::{BufRead, Read};
    let f = std::fs::File::open(path).ok()?;
    let mut by_reason: BTreeMap<String, u64> = Default::default();
    let mut first = Vec::new();
    let mut rows = 0;
    for line in std::io::BufReader::new(f.take(FILE_BYTES)).lines() {
        let Ok(line) = line else { break };
        rows += 1;
        *by_reason.entry(reason_of(&line)).or_default() += 1;
        if first.len() < samples {
            first.push(sample(&line));
        }
    }
    Some(QuarantineBatch {
        name: path.file_name()?.to_string_lossy().into_owned(),
        at,
        rows,
        by_reason: most_first(by_reason),
        samples: first,
    })
}

/// Rewrites each `*.jsonl` file in `dir` without the rows `drop` picks
/// (beside itself, synced, renamed over it); files that contain none of
/// the needles are not read further.
fn erase_in_files(dir: &Path, needles: &[&String], drop: &dyn Fn(&[u8]) -> bool) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let text = std::fs::read(&path).map_err(io(&path))?;
        let contains = |n: &String| text.windows(n.len()).any(|w| w == n.as_bytes());
        if !needles.iter().any(|n| contains(n)) {
            continue;
        }
        let mut kept = Vec::with_capacity(text.len());
        let mut n = 0;
        for line in text.split_inclusive(|&b| b == b'\n') {
            if drop(line.strip_suffix(b"\n").unwrap_or(line)) {
                n += 1;
            } else {
                kept.extend_from_slice(line);
            }
        }
        if n > 0 {
            let tmp = path.with_extension("jsonl.tmp");
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&kept)
                .and_then(|_| f.sync_all())
                .map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            removed += n;
        }
    }
    Ok(removed)
}
