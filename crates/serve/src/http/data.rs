//! `GET /v1/admin/data`: the store's data at a glance, as the console's data
//! page shows it: the store's figures, each day's event-type mix and new
//! users and items, drift of the recent events against the serving model's
//! training data, the ingests' data-quality reports and their quarantined
//! rows.
//!
//! The figures scan the events table, so they are computed off the request
//! path: at start, and again in the background when a request finds them
//! stale (events arrived, or the serving model changed, and at least a
//! second and ten times the last computation's time passed). A request answers with the last computed figures and says when
//! they were computed (`computed_at`) and whether newer ones are on the way
//! (`refreshing`); only the very first request waits for them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::error::{ApiError, ApiResult, Code};
use crate::App;

/// Days of the per-day table (ending at the newest event).
pub const DAYS: i64 = 30;
/// Ingest reports listed, newest first.
pub const REPORTS: usize = 20;
/// Quarantine files (batches) shown at most, and sample rows of each.
const QUARANTINE_FILES: usize = 20;
const SAMPLES: usize = 5;
/// Events each side of a drift comparison needs before its level is read.
pub const DRIFT_MIN_EVENTS: u64 = 200;
/// Figures are recomputed when events arrived (or the serving model
/// changed), at most once a second and never more than a tenth of the time:
/// after a computation that took `t`, not before `10 t` passed.
const MIN_AGE: Duration = Duration::from_secs(1);
const DUTY: u32 = 10;

/// `GET /v1/admin/data`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DataReport {
    /// When these figures were computed (Unix seconds).
    pub computed_at: i64,
    /// Whether newer figures are being computed (events arrived since).
    pub refreshing: bool,
    pub store: StoreFigures,
    /// The last 30 days with events (UTC), oldest first; empty when the
    /// data set's times are an order, not dates.
    pub daily: Vec<Day>,
    pub drift: Drift,
    /// The data-quality reports of the ingests into this store, newest first.
    pub ingests: Vec<IngestRun>,
    /// The newest quarantine files: rows by reason and sample rows.
    pub quarantine: Vec<QuarantineFile>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoreFigures {
    pub events: u64,
    /// Users with at least one event.
    pub users: u64,
    /// Items with at least one event.
    pub items: u64,
    /// Items in the catalog.
    pub catalog_items: u64,
    pub events_by_type: BTreeMap<String, u64>,
    /// Unix seconds (or positions, for an order-only data set).
    pub time_min: Option<i64>,
    pub time_max: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub events: u64,
    /// Event type → events (types with none are left out).
    pub by_type: BTreeMap<String, u64>,
    /// Users whose first event is on this day.
    pub new_users: u64,
    /// Items whose first event is on this day.
    pub new_items: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Drift {
    /// What the recent events are compared with.
    pub reference_is: String,
    /// Unix seconds, `[from, to)`.
    pub reference_from: i64,
    pub reference_to: i64,
    pub recent_from: i64,
    pub recent_to: i64,
    pub reference_events: u64,
    pub recent_events: u64,
    /// Events each side needs before a level is read (PSI on a handful of
    /// events is noise: 5 carts read as a major shift of every signal).
    pub min_events: u64,
    /// PSI from which a shift is moderate, and major (warned about).
    pub moderate: f64,
    pub major: f64,
    pub signals: Vec<DriftSignal>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftSignal {
    pub signal: String,
    /// Population stability index; null when a side has no events.
    pub psi: Option<f64>,
    /// `stable`, `moderate` or `major`; null while either side has fewer
    /// than `min_events` events (too few to tell a shift from noise).
    #[schema(value_type = Option<String>)]
    pub level: Option<aisle_ingest::drift::Level>,
}

/// One ingest's data-quality report (the whole report is the file in the
/// store's `reports/` folder).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IngestRun {
    /// The report's file name.
    pub file: String,
    /// When the ingest finished (Unix seconds).
    pub at: i64,
    pub dataset: String,
    pub input: String,
    pub rows_read: u64,
    pub accepted: u64,
    pub quarantined: u64,
    /// Quarantine reason → rows.
    pub by_reason: BTreeMap<String, u64>,
    /// Events new to the store, and accepted events it already held.
    pub inserted: Option<u64>,
    pub already_present: Option<u64>,
    /// Where its quarantined rows are: a file in the store folder's
    /// `quarantine/`, or a batch of the database's `quarantine` table.
    pub quarantine_file: Option<String>,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuarantineFile {
    /// The file's name (in the store folder's `quarantine/`), or the
    /// batch's name in the database.
    pub file: String,
    /// Rows counted (a file: those in its first 8 MiB).
    pub rows: u64,
    /// Most rows first.
    pub by_reason: Vec<ReasonCount>,
    /// The first rows, as stored (at most 400 characters each).
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReasonCount {
    pub reason: String,
    pub rows: u64,
}

/// The data report's cache, and the signal that a computation finished.
#[derive(Default)]
pub(crate) struct DataSlot {
    cache: std::sync::Mutex<DataCache>,
    done: std::sync::Condvar,
}

impl DataSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, DataCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The last computed figures and what they were computed from.
#[derive(Default)]
struct DataCache {
    current: Option<Computed>,
    refreshing: bool,
}

struct Computed {
    seq: i64,
    version: String,
    at: Instant,
    /// How long the computation took.
    took: Duration,
    report: Arc<DataReport>,
}

impl DataCache {
    fn fresh(&self, seq: i64, version: &str) -> bool {
        self.current.as_ref().is_some_and(|c| {
            (c.version == version && c.seq == seq) || c.at.elapsed() < (c.took * DUTY).max(MIN_AGE)
        })
    }
}

/// The data report: the last computed one, with a refresh started in the
/// background when it is stale; computed here when there is none yet.
pub fn data_report(app: &Arc<App>) -> Result<Arc<DataReport>, ApiError> {
    let (seq, version) = stamp(app);
    let mut cache = app.data_page.lock();
    // The computation at start is under way: wait for it rather than run a
    // second one beside it.
    while cache.current.is_none() && cache.refreshing {
        cache = app
            .data_page
            .done
            .wait(cache)
            .unwrap_or_else(|e| e.into_inner());
    }
    if let Some(r) = cache.current.as_ref().map(|c| c.report.clone()) {
        if !cache.fresh(seq, &version) && !cache.refreshing {
            cache.refreshing = true;
            let app = app.clone();
            std::thread::spawn(move || refresh(&app));
        }
        if cache.refreshing {
            let mut r = (*r).clone();
            r.refreshing = true;
            return Ok(Arc::new(r));
        }
        return Ok(r);
    }
    drop(cache);
    // None yet (the computation at start failed): compute it here.
    Ok(compute_and_keep(app, seq, version)?)
}

/// Starts computing the figures in the background (at start-up).
pub(crate) fn warm(app: &Arc<App>) {
    let app = app.clone();
    app.data_page.lock().refreshing = true;
    std::thread::spawn(move || refresh(&app));
}

fn refresh(app: &Arc<App>) {
    let (seq, version) = stamp(app);
    if let Err(e) = compute_and_keep(app, seq, version) {
        tracing::warn!(error = %e, "the data report could not be computed");
    }
    app.data_page.lock().refreshing = false;
    app.data_page.done.notify_all();
}

fn stamp(app: &App) -> (i64, String) {
    let seq = app.live.read().unwrap_or_else(|e| e.into_inner()).last_seq;
    (seq, app.current().version.clone())
}

fn compute_and_keep(
    app: &App,
    seq: i64,
    version: String,
) -> Result<Arc<DataReport>, aisle_store::StoreError> {
    let started = Instant::now();
    let report = Arc::new(compute(app)?);
    let mut cache = app.data_page.lock();
    let newer = cache
        .current
        .as_ref()
        .is_some_and(|c| c.report.computed_at > report.computed_at && c.seq > seq);
    if !newer {
        cache.current = Some(Computed {
            seq,
            version,
            at: Instant::now(),
            took: started.elapsed(),
            report: report.clone(),
        });
    }
    Ok(report)
}

fn compute(app: &App) -> Result<DataReport, aisle_store::StoreError> {
    // A store that a second open reaches (a file, a database server) is
    // read through a connection of its own: the scans do not hold up the
    // events being written meanwhile. Only an in-memory store is shared.
    let own = match aisle_store::parse_url(&app.cfg.store)? {
        aisle_store::Location::SqliteMemory => None,
        _ => Some(aisle_store::open(&app.cfg.store)?),
    };
    let shared;
    let store: &dyn aisle_store::EventStore = match &own {
        Some(s) => s.as_ref(),
        None => {
            shared = app.store.lock().unwrap_or_else(|e| e.into_inner());
            shared.as_ref()
        }
    };
    let stats = store.stats()?;
    let ordered = matches!(
        aisle_store::DatasetMeta::read(store),
        Ok(Some(m)) if m.time_kind == aisle_core::TimeKind::Order
    );
    let daily = match (ordered, stats.time_max) {
        (false, Some(max)) => {
            let to = max.div_euclid(86_400);
            let from = (to - DAYS + 1).max(stats.time_min.unwrap_or(max).div_euclid(86_400));
            store.daily(from, to)?.iter().map(day).collect()
        }
        _ => Vec::new(),
    };
    let drift = drift(app, store, &stats)?;
    drop(own);
    // (The store's: every machine's ingests over PostgreSQL.)
    let log = app.ingest_log()?;
    let ingests = match &log {
        Some(log) => log
            .recent_reports(REPORTS)?
            .into_iter()
            .filter_map(|k| aisle_ingest::SavedReport::parse(k.name, k.at, &k.json))
            .map(ingest_run)
            .collect(),
        None => Vec::new(),
    };
    let quarantine = match &log {
        Some(log) => log
            .quarantine_batches(QUARANTINE_FILES, SAMPLES)?
            .into_iter()
            .map(quarantine_file)
            .collect(),
        None => Vec::new(),
    };
    Ok(DataReport {
        computed_at: aisle_core::time::unix_now(),
        refreshing: false,
        store: StoreFigures {
            events: stats.events,
            users: stats.users,
            items: stats.items,
            catalog_items: stats.catalog_items,
            events_by_type: stats.events_by_type,
            time_min: stats.time_min,
            time_max: stats.time_max,
        },
        daily,
        drift,
        ingests,
        quarantine,
    })
}

fn day(d: &aisle_store::DayCounts) -> Day {
    let (y, m, dd) = aisle_core::time::civil_from_days(d.day);
    Day {
        date: format!("{y:04}-{m:02}-{dd:02}"),
        events: d.events(),
        by_type: d
            .by_type
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (type_name(code), *n))
            .collect(),
        new_users: d.new_users,
        new_items: d.new_items,
    }
}

fn type_name(code: usize) -> String {
    aisle_core::EventType::from_code(code as u8)
        .map(|t| t.as_str().to_string())
        .unwrap_or_else(|| format!("code_{code}"))
}

fn ingest_run(s: aisle_ingest::SavedReport) -> IngestRun {
    let r = s.report;
    let store = r.store.as_ref();
    IngestRun {
        file: s.file,
        at: s.at,
        dataset: r.dataset,
        input: r.input,
        rows_read: r.rows_read,
        accepted: r.accepted,
        quarantined: r.quarantined,
        by_reason: r.by_reason,
        inserted: store.map(|o| o.inserted),
        already_present: store.map(|o| o.already_present),
        quarantine_file: store
            .and_then(|o| o.quarantine_file.as_deref())
            .and_then(|p| std::path::Path::new(p).file_name())
            .map(|f| f.to_string_lossy().into_owned()),
        elapsed_s: r.elapsed_s,
    }
}

/// Drift of the events after the serving model's training data (its
/// artifact's `data_from`..`data_to`) against that data; for a model
/// without a data range, the last 7 days against what came before.
fn drift(
    app: &App,
    store: &dyn aisle_store::EventStore,
    stats: &aisle_store::StoreStats,
) -> Result<Drift, aisle_store::StoreError> {
    use aisle_ingest::drift::{bin_of, decile_edges, psi, Level, MAJOR, MODERATE};
    const WEEK: i64 = 7 * 86_400;
    let (lo, hi) = (stats.time_min.unwrap_or(0), stats.time_max.unwrap_or(0) + 1);
    let serving = app.current().version.clone();
    let range = app
        .registry
        .as_ref()
        .and_then(|r| r.list().ok())
        .and_then(|l| l.into_iter().find(|e| e.version == serving))
        .and_then(|e| {
            let f = |k: &str| e.meta.get(k)?.as_str()?.parse::<i64>().ok();
            Some((f("data_from")?, f("data_to")?))
        });
    let (reference_is, reference, recent) = match range {
        Some((from, to)) => (
            format!("the training data of {serving}"),
            (from, to + 1),
            (to + 1, hi.max(to + 1)),
        ),
        None => (
            "the events before the last 7 days".to_string(),
            (lo, (hi - WEEK).max(lo)),
            ((hi - WEEK).max(lo), hi),
        ),
    };
    let (a, b) = (
        store.profile(reference.0, reference.1)?,
        store.profile(recent.0, recent.1)?,
    );
    let mut signals = Vec::new();
    let enough = a.events() >= DRIFT_MIN_EVENTS && b.events() >= DRIFT_MIN_EVENTS;
    let mut push = |signal: &str, p: Option<f64>| {
        signals.push(DriftSignal {
            signal: signal.to_string(),
            psi: p,
            level: p.filter(|_| enough).map(Level::of),
        })
    };
    push("event type", psi(&a.by_type, &b.by_type));
    push("hour of day (UTC)", psi(&a.by_hour, &b.by_hour));
    // Category and price of the items interacted with.
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let item = |id: &str| live.catalog_item(id);
    let mut cats: std::collections::HashMap<String, u64> = Default::default();
    for (id, n) in &a.by_item {
        let c = item(id)
            .and_then(|c| c.category.clone())
            .unwrap_or_default();
        *cats.entry(c).or_default() += n;
    }
    let mut top: Vec<(String, u64)> = cats.into_iter().collect();
    top.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    top.truncate(20);
    let bin = |id: &str| -> usize {
        let c = item(id)
            .and_then(|c| c.category.clone())
            .unwrap_or_default();
        top.iter().position(|t| t.0 == c).unwrap_or(top.len())
    };
    let count = |p: &aisle_store::Profile, k: usize, f: &dyn Fn(&str) -> Option<usize>| {
        let mut c = vec![0u64; k];
        for (id, n) in &p.by_item {
            if let Some(b) = f(id) {
                c[b] += n;
            }
        }
        c
    };
    let k = top.len() + 1;
    push(
        "category",
        psi(
            &count(&a, k, &|id| Some(bin(id))),
            &count(&b, k, &|id| Some(bin(id))),
        ),
    );
    let prices: Vec<f64> = a
        .by_item
        .iter()
        .filter_map(|(id, n)| Some((item(id)?.price?, *n)))
        .flat_map(|(price, n)| std::iter::repeat_n(price, n.min(10_000) as usize))
        .collect();
    let edges = decile_edges(prices);
    let price_bin = |id: &str| item(id).and_then(|c| c.price).map(|x| bin_of(&edges, x));
    let k = edges.len() + 1;
    push(
        "price band (reference deciles)",
        psi(&count(&a, k, &price_bin), &count(&b, k, &price_bin)),
    );
    Ok(Drift {
        reference_is,
        reference_from: reference.0,
        reference_to: reference.1,
        recent_from: recent.0,
        recent_to: recent.1,
        reference_events: a.events(),
        recent_events: b.events(),
        min_events: DRIFT_MIN_EVENTS,
        moderate: MODERATE,
        major: MAJOR,
        signals,
    })
}

fn quarantine_file(b: aisle_store::ingests::QuarantineBatch) -> QuarantineFile {
    QuarantineFile {
        file: b.name,
        rows: b.rows,
        by_reason: b
            .by_reason
            .into_iter()
            .map(|(reason, rows)| ReasonCount { reason, rows })
            .collect(),
        samples: b.samples,
    }
}

pub(super) async fn get_data(State(app): State<Arc<App>>) -> ApiResult {
    let r = tokio::task::spawn_blocking(move || data_report(&app))
        .await
        .map_err(ApiError::task)??;
    Ok(Json(&*r).into_response())
}

/// The folder, in the store's directory, where `aisle evaluate` writes its
/// report (`bench.json`, `leaderboard.md`, each sequence model's curve).
pub const EVALUATION_DIR: &str = "evaluation";

/// `GET /v1/admin/evaluation`: the last `aisle evaluate` of this store.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// When its report was written (Unix seconds).
    pub at: i64,
    /// `bench.json` as `aisle evaluate` wrote it: `dataset`, `protocol`,
    /// `results` (one row per model: `ndcg@10`, `recall@10`, `mrr@10`,
    /// `valid_ndcg@10`, ...), `best_by_validation`, `warnings`.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// The last evaluation of the store, if `aisle evaluate` ran on it (a
/// report over 8 MiB or that does not parse is an error).
pub fn evaluation(app: &App) -> Result<Evaluation, ApiError> {
    let none = || {
        ApiError::new(
            Code::NoEvaluation,
            "this store has not been evaluated: run `aisle evaluate --store STORE`",
        )
    };
    let path = aisle_store::files_dir(&app.cfg.store)
        .ok_or_else(none)?
        .join(EVALUATION_DIR)
        .join("bench.json");
    let meta = std::fs::metadata(&path).map_err(|_| none())?;
    if meta.len() > 8 << 20 {
        return Err(ApiError::new(
            Code::Internal,
            format!("{} is over 8 MiB", path.display()),
        ));
    }
    let at = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    let report = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            ApiError::new(
                Code::Internal,
                format!("{} is not a readable report", path.display()),
            )
        })?;
    Ok(Evaluation { at, report })
}

pub(super) async fn get_evaluation(State(app): State<Arc<App>>) -> ApiResult {
    let r = tokio::task::spawn_blocking(move || evaluation(&app))
        .await
        .map_err(ApiError::task)??;
    Ok(Json(r).into_response())
}
