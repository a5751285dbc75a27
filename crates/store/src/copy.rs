//! Copying a store into another (`aisle store copy`): every event, in
//! insertion order, the catalog and the data set's description; then a
//! digest of both sides proves nothing was lost.

use aisle_core::hash::{hash_fields, mix};
use aisle_core::StoredEvent;
use serde::Serialize;

use crate::{DatasetMeta, EventStore, Result};

/// Events per append into the target.
const CHUNK: usize = 50_000;

/// An order-independent fingerprint of a store's events and catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Digest {
    pub events: u64,
    /// The wrapping sum of a hash of every event's fields (key, user, item,
    /// time, type, source type, quantity, price, session, value).
    pub events_sum: u64,
    pub catalog_items: u64,
    /// The same over the catalog's fields.
    pub catalog_sum: u64,
}

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub events_read: u64,
    pub inserted: u64,
    pub already_present: u64,
    pub catalog_items: u64,
    /// Identity links read from the source (each linked in the target).
    pub aliases: u64,
    /// The target's events before the copy.
    pub target_events_before: u64,
    pub source: Digest,
    pub target: Digest,
}

impl CopyReport {
    /// Whether the target now holds exactly the source's events and catalog.
    pub fn complete(&self) -> bool {
        self.source == self.target
    }
}

impl Digest {
    fn add_event(&mut self, e: &StoredEvent) {
        self.events += 1;
        self.events_sum = self.events_sum.wrapping_add(mix(event_hash(e)));
    }

    fn add_items(&mut self, catalog: &[aisle_core::CatalogItem]) {
        for c in catalog {
            self.catalog_items += 1;
            let price = c.price.map_or([0xff; 8], f64::to_le_bytes);
            let h = hash_fields([
                c.id.as_bytes(),
                c.title.as_deref().unwrap_or("\u{0}none").as_bytes(),
                c.description.as_deref().unwrap_or("\u{0}none").as_bytes(),
                c.category.as_deref().unwrap_or("\u{0}none").as_bytes(),
                &price,
                &[c.in_stock as u8],
            ]);
            self.catalog_sum = self.catalog_sum.wrapping_add(mix(h));
        }
    }
}

fn event_hash(e: &StoredEvent) -> u64 {
    let e = &e.event;
    let opt = |x: Option<f64>| x.map_or([0xff; 8], f64::to_le_bytes);
    hash_fields([
        &e.key.to_le_bytes()[..],
        e.user.as_bytes(),
        e.item.as_bytes(),
        &e.ts.to_le_bytes(),
        &[e.event_type.code()],
        e.source_type.as_bytes(),
        &opt(e.quantity),
        &opt(e.price),
        e.session.as_deref().unwrap_or("\u{0}none").as_bytes(),
        &opt(e.value),
    ])
}

/// The digest of a store (one scan of its events).
pub fn digest(store: &dyn EventStore) -> Result<Digest> {
    let mut d = Digest::default();
    store.scan_events(&mut |e| d.add_event(&e))?;
    d.add_items(&store.catalog()?);
    Ok(d)
}

/// Copies `from` into `to` (idempotent: events the target holds are
/// skipped by their keys) and digests both (the source's as it is read,
/// the target's by a scan after the copy). `progress` gets the events
/// read so far.
pub fn copy(
    from: &dyn EventStore,
    to: &mut dyn EventStore,
    progress: &mut dyn FnMut(u64),
) -> Result<CopyReport> {
    let target_events_before = to.stats()?.events;
    if let Some(meta) = DatasetMeta::read(from)? {
        meta.write(to)?;
    }
    let catalog = from.catalog()?;
    for chunk in catalog.chunks(CHUNK) {
        to.upsert_items(chunk)?;
    }
    let bulk = to.begin_bulk()?;
    let mut report = CopyReport {
        events_read: 0,
        inserted: 0,
        already_present: 0,
        catalog_items: catalog.len() as u64,
        aliases: 0,
        target_events_before,
        source: Digest::default(),
        target: Digest::default(),
    };
    let mut buf = Vec::with_capacity(CHUNK);
    let mut failed = None;
    let mut flush = |buf: &mut Vec<aisle_core::Event>, report: &mut CopyReport| -> Result<()> {
        let o = to.append(buf)?;
        report.inserted += o.inserted;
        report.already_present += o.already_present;
        buf.clear();
        Ok(())
    };
    let mut source = Digest::default();
    source.add_items(&catalog);
    from.scan_events(&mut |e| {
        if failed.is_some() {
            return;
        }
        source.add_event(&e);
        report.events_read += 1;
        buf.push(e.event);
        if buf.len() == CHUNK {
            if let Err(e) = flush(&mut buf, &mut report) {
                failed = Some(e);
            }
            progress(report.events_read);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    flush(&mut buf, &mut report)?;
    progress(report.events_read);
    if bulk {
        let twice = to.end_bulk()?;
        report.inserted -= twice;
        report.already_present += twice;
    }
    // Identity links go with the events (a link the target already has is
    // kept; one it refuses, to another user, is reported and not forced).
    for (alias, user) in from.aliases()? {
        if let crate::Link::Refused(why) =
            to.link_alias(&user, &alias, aisle_core::time::unix_now())?
        {
            tracing::warn!(
                alias,
                user,
                "link not copied: {}",
                why.message(&user, &alias)
            );
        }
        report.aliases += 1;
    }
    report.source = source;
    report.target = digest(to)?;
    Ok(report)
}

/// The jobs' history of a store: its folder's `jobs/jobs.jsonl` (one JSON
/// job per line; the server writes it, see `aisle_serve::jobs`), or its
/// database's table `jobs`.
pub const JOBS_DIR: &str = "jobs";
pub const JOBS_LOG: &str = "jobs.jsonl";

/// A store folder's jobs history file.
pub fn jobs_file(store_dir: &std::path::Path) -> std::path::PathBuf {
    store_dir.join(JOBS_DIR).join(JOBS_LOG)
}

/// What [`copy_jobs`] copied: jobs in the source; of them, new to the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobsCopy {
    pub jobs: u64,
    pub added: u64,
}

/// Every job of a store's history, by id (the last line of an id wins, as
/// the server shows it).
fn jobs_of(url: &str) -> Result<std::collections::BTreeMap<u64, String>> {
    let id = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["id"].as_u64())
    };
    let lines: Vec<String> = match crate::parse_url(url)? {
        crate::Location::Postgres(u) => crate::pg::PgJobs::open(&u)?.latest(usize::MAX >> 2)?,
        loc => match loc.dir() {
            Some(d) => match std::fs::read_to_string(jobs_file(&d)) {
                Ok(t) => t.lines().map(String::from).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(source) => {
                    return Err(crate::StoreError::Io {
                        path: jobs_file(&d).display().to_string(),
                        source,
                    })
                }
            },
            None => Vec::new(),
        },
    };
    Ok(lines
        .into_iter()
        .filter_map(|l| Some((id(&l)?, l)))
        .collect())
}

/// Copies the jobs' history: every job of `from` that `to` does not hold
/// (by id; copying twice adds nothing).
pub fn copy_jobs(from: &str, to: &str) -> Result<JobsCopy> {
    let source = jobs_of(from)?;
    let held = jobs_of(to)?;
    let mut out = JobsCopy {
        jobs: source.len() as u64,
        added: 0,
    };
    let new: Vec<(u64, String)> = source
        .into_iter()
        .filter(|(id, _)| !held.contains_key(id))
        .collect();
    if new.is_empty() {
        return Ok(out);
    }
    match crate::parse_url(to)? {
        crate::Location::Postgres(u) => {
            let db = crate::pg::PgJobs::open(&u)?;
            for (id, line) in &new {
                db.record(*id, line)?;
            }
        }
        loc => {
            let Some(d) = loc.dir() else { return Ok(out) };
            let path = jobs_file(&d);
            let io = |source| crate::StoreError::Io {
                path: path.display().to_string(),
                source,
            };
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(io)?;
            }
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            for (_, line) in &new {
                writeln!(f, "{line}").map_err(io)?;
            }
            f.sync_all().map_err(io)?;
        }
    }
    out.added = new.len() as u64;
    Ok(out)
}
