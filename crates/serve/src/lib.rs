//! `aisle-serve`: the HTTP API (axum + tokio) over an Aisle store.
//!
//! One process: the embedded store (every event durable before its 2xx),
//! an in-memory view of the catalog, histories and popularity that each
//! event updates at once, and the promoted sequence model (hot-swapped
//! atomically; popularity when none). Errors are `{"error":{"code","message"}}`
//! with a 4xx; the server documents itself at `GET /openapi.json`.

pub mod auth;
pub mod conn;
mod console;
pub mod feed;
mod http;
pub mod identity;
pub mod jobs;
mod limit;
pub mod online;
pub mod ope;
pub mod purchase;
pub mod search;
pub mod shared;
pub mod shops;
mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use aisle_store::EventStore;

pub use aisle_train::{Entry, Registry};
pub use auth::{Keys, Scope};
pub use conn::{ConnLimits, Conns};
pub use feed::FeedState;
pub use http::error::{ApiError, Code};
pub use http::router;
pub use jobs::{Job, Jobs, RetrainConfig};
pub use limit::RateLimiter;
pub use online::{Online, OnlineConfig};
pub use state::{Live, Serving, UserState};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("store error: {0}")]
    Store(#[from] aisle_store::StoreError),
    #[error("model error: {0}")]
    Model(#[from] aisle_seq::SeqError),
    #[error(transparent)]
    Train(#[from] aisle_train::TrainError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Erased {
    /// Events deleted from the store.
    pub events: u64,
    /// Lines removed from the search query log.
    pub queries: u64,
    /// Quarantined rows that mentioned the user.
    pub quarantine_rows: u64,
    /// Logged impressions (lists shown to the user), with their shown
    /// items and the user's joined clicks, carts and purchases.
    pub impressions: u64,
    /// The user's aliases, erased with their events, lists and links.
    pub aliases: Vec<String>,
}

/// What a server process does (`aisle serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers requests; never retrains (any number of replicas).
    Api,
    /// Answers requests and runs the retraining scheduler, while it holds
    /// the store's worker lock (one leads, the others stand by).
    Worker,
    /// Both, in one process: the single-machine default.
    #[default]
    All,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::All => "all",
        }
    }

    /// Whether this process runs the retraining scheduler.
    pub fn retrains(self) -> bool {
        self != Role::Api
    }
}

/// Values loaded once per process and shared while anything holds them
/// (the embedder, the Redis handle: one for every shop), by key.
pub(crate) struct ProcessShared<K, V>(Mutex<Vec<(K, std::sync::Weak<V>)>>);

impl<K: PartialEq, V> ProcessShared<K, V> {
    pub(crate) const fn new() -> Self {
        ProcessShared(Mutex::new(Vec::new()))
    }

    /// The value under `key`, made by `make` when nothing holds one.
    pub(crate) fn get_or<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, w)| w.strong_count() > 0);
        if let Some(v) = all
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(v);
        }
        let v = Arc::new(make()?);
        all.push((key, Arc::downgrade(&v)));
        Ok(v)
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Store URL or directory (see aisle-store).
    pub store: String,
    pub role: Role,
    pub addr: SocketAddr,
    /// Read-scope key: recommendations, search, popular, similar, items,
    /// metrics (`x-api-key` or `Authorization: Bearer`).
    pub read_key: Option<String>,
    /// Write-scope key (`--api-key`): read + events + catalog.
    pub api_key: Option<String>,
    /// Admin-scope key: everything, /v1/admin and erasure included.
    pub admin_key: Option<String>,
    /// Browser origins (`https://shop.example`) allowed to call the API
    /// cross-origin (CORS); `*` allows any.
    pub cors_origins: Vec<String>,
    /// Header timeout (and keep-alive idle timeout) and the connection cap.
    pub conn: conn::ConnLimits,
    /// Longest time a request body may take to arrive (408 after it).
    pub body_timeout: std::time::Duration,
    /// Failed authentications allowed per peer address: a burst of this
    /// many, refilled at `auth_failure_rate` per second; 429 beyond.
    pub auth_failure_burst: f64,
    pub auth_failure_rate: f64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest `k` a request may ask for.
    pub max_k: usize,
    /// Most events in one POST.
    pub max_batch: usize,
    /// Requests per second per client (API key, else peer address) on the
    /// /v1 routes; None: unlimited.
    pub rate_limit: Option<f64>,
    /// The retraining scheduler (None: retraining only by hand).
    pub retrain: Option<RetrainConfig>,
    pub search: search::SearchConfig,
    /// A purchase-probability model (`aisle train --model ranker`) that
    /// re-ranks recommendation candidates; None: the sequence model's order.
    pub ranker: Option<PathBuf>,
    /// Impressions, attribution and experiments.
    pub online: OnlineConfig,
    /// How often the server looks for shops created or deleted
    /// (`aisle shops`).
    pub shops_refresh: std::time::Duration,
    /// Redis (`redis://HOST[:PORT][/DB]`) for what replicas count together:
    /// rate limits and failed authentications (see `shared`).
    pub redis: Option<String>,
    /// The shop this server answers for (its Redis keys' prefix).
    pub shop: String,
}

impl ServeConfig {
    pub fn new(store: &str, addr: SocketAddr) -> ServeConfig {
        ServeConfig {
            store: store.to_string(),
            role: Role::All,
            addr,
            read_key: None,
            api_key: None,
            admin_key: None,
            cors_origins: Vec::new(),
            conn: conn::ConnLimits::default(),
            body_timeout: std::time::Duration::from_secs(30),
            auth_failure_burst: 20.0,
            auth_failure_rate: 1.0,
            max_body_bytes: 1 << 20,
            max_k: 1000,
            max_batch: 10_000,
            rate_limit: None,
            retrain: None,
            search: search::SearchConfig::default(),
            ranker: None,
            online: OnlineConfig::default(),
            shops_refresh: shops::REFRESH,
            redis: None,
            shop: aisle_store::shops::DEFAULT_SHOP.to_string(),
        }
    }
}

/// Per-route request counts and latency histograms, Prometheus text format;
/// events and requests per minute over the last hour (the console's
/// overview).
#[derive(Default)]
pub struct Metrics {
    pub events_ingested: AtomicU64,
    pub model_swaps: AtomicU64,
    routes: Mutex<std::collections::BTreeMap<(String, u16), RouteStats>>,
    minutes: Mutex<Minutes>,
}

/// Minutes the per-minute counts go back.
pub const MINUTES: usize = 60;

/// A ring of per-minute counts: slot `m % MINUTES` holds minute `m` (since
/// the Unix epoch) when its stamp says so, else nothing.
#[derive(Default)]
struct Minutes {
    slots: Vec<(i64, u64, u64)>,
}

impl Minutes {
    fn add(&mut self, minute: i64, events: u64, requests: u64) {
        if self.slots.is_empty() {
            self.slots = vec![(-1, 0, 0); MINUTES];
        }
        let s = &mut self.slots[minute.rem_euclid(MINUTES as i64) as usize];
        if s.0 != minute {
            *s = (minute, 0, 0);
        }
        s.1 += events;
        s.2 += requests;
    }

    /// (minute, events, requests) for the last MINUTES minutes up to `now`, oldest first.
    fn window(&self, now: i64) -> Vec<(i64, u64, u64)> {
        (now - MINUTES as i64 + 1..=now)
            .map(|m| {
                self.slots
                    .get(m.rem_euclid(MINUTES as i64) as usize)
                    .filter(|s| s.0 == m)
                    .map_or((m, 0, 0), |s| (m, s.1, s.2))
            })
            .collect()
    }
}

/// One route's requests since the server started.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RouteSummary {
    pub route: String,
    pub requests: u64,
    /// Answers with a 5xx status.
    pub server_errors: u64,
    /// Answers with a 4xx status.
    pub client_errors: u64,
    /// server_errors / requests.
    pub error_rate: f64,
    /// Latency percentiles (ms), interpolated within the histogram's buckets
    /// (0.5, 1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 500, 1000, 2500 ms;
    /// 2500 when beyond).
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A quantile of a bucketed histogram (cumulative counts per bound),
/// linearly interpolated within its bucket, in the bounds' unit.
pub fn bucket_quantile(bounds: &[f64], cumulative: &[u64], count: u64, q: f64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    let target = q * count as f64;
    let (mut lo, mut below) = (0.0, 0u64);
    for (&le, &c) in bounds.iter().zip(cumulative) {
        if c as f64 >= target && c > below {
            return lo + (le - lo) * (target - below as f64) / (c - below) as f64;
        }
        (lo, below) = (le, c);
    }
    *bounds.last().unwrap_or(&0.0)
}

/// Latency bucket bounds in seconds.
/// (Between 0.1 and 1 s at 1-2-3-5 steps too, so that a console page or a
/// heavy search is not read as 300 ms when it takes 110.)
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
];

#[derive(Default, Clone)]
struct RouteStats {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Metrics {
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.minutes.lock().unwrap_or_else(|e| e.into_inner()).add(
            aisle_core::time::unix_now() / 60,
            0,
            1,
        );
        let mut m = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let r = m.entry((route.to_string(), status)).or_default();
        r.count += 1;
        r.sum += seconds;
        for (b, &le) in r.buckets.iter_mut().zip(&BUCKETS) {
            if seconds <= le {
                *b += 1;
            }
        }
    }

    /// Counts events acknowledged now (the per-minute series).
    pub fn count_events(&self, n: u64) {
        self.events_ingested.fetch_add(n, Ordering::Relaxed);
        self.minutes.lock().unwrap_or_else(|e| e.into_inner()).add(
            aisle_core::time::unix_now() / 60,
            n,
            0,
        );
    }

    /// (minute since the epoch, events, requests) over the last hour, oldest first.
    pub fn per_minute(&self) -> Vec<(i64, u64, u64)> {
        self.minutes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .window(aisle_core::time::unix_now() / 60)
    }

    /// Every route's requests, errors and latency percentiles.
    pub fn routes(&self) -> Vec<RouteSummary> {
        let m = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<RouteSummary> = Vec::new();
        let mut hist: Vec<[u64; BUCKETS.len()]> = Vec::new();
        for ((route, status), r) in m.iter() {
            if out.last().is_none_or(|o| &o.route != route) {
                out.push(RouteSummary {
                    route: route.clone(),
                    requests: 0,
                    server_errors: 0,
                    client_errors: 0,
                    error_rate: 0.0,
                    p50_ms: 0.0,
                    p99_ms: 0.0,
                });
                hist.push([0; BUCKETS.len()]);
            }
            let (o, h) = (
                out.last_mut().expect("pushed"),
                hist.last_mut().expect("pushed"),
            );
            o.requests += r.count;
            match status {
                500.. => o.server_errors += r.count,
                400..=499 => o.client_errors += r.count,
                _ => {}
            }
            for (a, b) in h.iter_mut().zip(&r.buckets) {
                *a += b;
            }
        }
        let ms: Vec<f64> = BUCKETS.iter().map(|b| b * 1000.0).collect();
        for (o, h) in out.iter_mut().zip(&hist) {
            o.error_rate = o.server_errors as f64 / o.requests.max(1) as f64;
            o.p50_ms = bucket_quantile(&ms, h, o.requests, 0.5);
            o.p99_ms = bucket_quantile(&ms, h, o.requests, 0.99);
        }
        out
    }

    pub fn render(&self, model: &str, version: &str, live_events: u64) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "# TYPE aisle_http_request_duration_seconds histogram");
        let m = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), r) in m.iter() {
            for (b, le) in r.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    s,
                    "aisle_http_request_duration_seconds_bucket{{route=\"{route}\",status=\"{status}\",le=\"{le}\"}} {b}"
                );
            }
            let _ = writeln!(s, "aisle_http_request_duration_seconds_bucket{{route=\"{route}\",status=\"{status}\",le=\"+Inf\"}} {}", r.count);
            let _ = writeln!(s, "aisle_http_request_duration_seconds_sum{{route=\"{route}\",status=\"{status}\"}} {}", r.sum);
            let _ = writeln!(s, "aisle_http_request_duration_seconds_count{{route=\"{route}\",status=\"{status}\"}} {}", r.count);
        }
        let _ = writeln!(s, "# TYPE aisle_events_ingested_total counter");
        let _ = writeln!(
            s,
            "aisle_events_ingested_total {}",
            self.events_ingested.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# TYPE aisle_events_in_memory gauge");
        let _ = writeln!(s, "aisle_events_in_memory {live_events}");
        let _ = writeln!(s, "# TYPE aisle_model_swaps_total counter");
        let _ = writeln!(
            s,
            "aisle_model_swaps_total {}",
            self.model_swaps.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# TYPE aisle_model_info gauge");
        let _ = writeln!(
            s,
            "aisle_model_info{{model=\"{model}\",version=\"{version}\"}} 1"
        );
        s
    }
}

/// Everything the handlers share.
pub struct App {
    pub cfg: ServeConfig,
    pub store: Mutex<Box<dyn EventStore>>,
    pub live: RwLock<Live>,
    pub serving: RwLock<Arc<Serving>>,
    pub registry: Option<Registry>,
    pub metrics: Metrics,
    /// Distinguishes anonymous event keys of this process from others.
    pub nonce: u64,
    pub counter: AtomicU64,
    pub jobs: Jobs,
    pub limiter: Option<RateLimiter>,
    pub search: search::Search,
    /// The purchase model and its live behaviour log (with `--ranker`).
    pub purchase: Option<purchase::Purchase>,
    /// The configured keys (none: development mode).
    pub keys: Keys,
    /// Failed authentications per peer address.
    pub auth_failures: RateLimiter,
    /// The open connections (for the cap and the metrics).
    pub conns: Arc<Conns>,
    /// Why the server is not fully ready (a promoted model was refused and
    /// popularity serves instead); None when ready.
    pub degraded: RwLock<Option<String>>,
    /// The impression log, attribution and experiments.
    pub online: Online,
    /// The console's session signing key.
    pub(crate) sessions: console::Sessions,
    /// Redis, when configured: rate limits counted across replicas.
    pub shared: Option<shared::Shared>,
    /// The data report (`GET /v1/admin/data`, the console's data page),
    /// computed off the request path (see `http::data`).
    pub(crate) data_page: http::data::DataSlot,
    /// Following the other processes over a shared store (see `feed`).
    pub feed: FeedState,
    /// The live view's event count when the server opened.
    events_at_open: u64,
    /// The ingests' reports and quarantined rows (opened at first use).
    ingests: Mutex<Option<aisle_store::IngestLog>>,
}

impl App {
    /// Opens the store, builds the in-memory view and loads the promoted model.
    pub fn open(cfg: ServeConfig) -> Result<Arc<App>, ServeError> {
        let keys = keys_of(&cfg)?;
        let mut store = aisle_store::open(&cfg.store)?;
        // Refuse to start on a store that cannot take a write (a read-only
        // file, directory or disk), rather than answer every event with an error.
        store
            .set_meta(
                "serve_opened_at",
                &aisle_core::time::unix_now().to_string(),
            )
            .map_err(|e| {
                ServeError::Config(format!(
                    "the store {} does not accept writes ({e}): refusing to serve (events could not be stored)",
                    cfg.store
                ))
            })?;
        let mut keys = keys;
        if let Some(stored) = store.meta(auth::KEYS_META)? {
            keys.add_stored(&stored).map_err(ServeError::Config)?;
        }
        let catalog = store.catalog()?;
        // (Read before the events: an erasure after it is reconciled by the feed.)
        let erasures = store.erasures()?;
        let mut live = Live::default();
        for c in &catalog {
            live.upsert_item(c.clone());
        }
        // The server starts from each user's latest events, one user at a
        // time, never holding every event (the purchase model, if any,
        // needs every event).
        let windows = match cfg.ranker {
            None => store.live_windows(state::HISTORY_CAP, &mut |w| live.apply_window(w))?,
            _ => None,
        };
        // Else: every event, in time order per user (ties in insertion order).
        let mut all = Vec::new();
        match windows {
            Some(totals) => live.apply_totals(totals),
            None => {
                store.scan_events(&mut |e| all.push(e))?;
                all.sort_by_key(|e| (e.event.ts, e.seq));
                for e in &all {
                    live.apply(&e.event);
                }
                live.last_seq = all.iter().map(|e| e.seq).max().unwrap_or(0);
            }
        }
        // The purchase model's log comes from the same read of the store.
        let purchase = match &cfg.ranker {
            Some(p) => Some(purchase::Purchase::open(
                p,
                aisle_train::purchase::log_of(&all, &catalog),
            )?),
            None => None,
        };
        // Identity links: each linked user's state takes in its aliases' events.
        identity::reload(store.as_ref(), &mut live)?;
        let events_at_open = live.events;
        drop(all);
        let dir = aisle_store::data_dir(&cfg.store);
        let registry = Registry::of_store(&cfg.store)?;
        let search = search::Search::open(
            search::dir_of(dir.as_deref()).as_deref(),
            &live,
            cfg.search.clone(),
        );
        let nonce = aisle_core::hash::hash_fields([
            b"serve".as_slice(),
            &std::process::id().to_le_bytes(),
            &aisle_core::time::unix_now().to_le_bytes(),
            &aisle_core::time::unix_now_ms().to_le_bytes(),
        ]);
        let online = Online::open(&cfg.store, cfg.online.clone(), nonce)?;
        let sessions = console::Sessions::new().map_err(|e| {
            ServeError::Config(format!("no random source for console sessions: {e}"))
        })?;
        if cfg.retrain.is_some() && !cfg.role.retrains() {
            return Err(ServeError::Config(
                "retraining (--retrain-every, --retrain-after-events) runs on --role worker or all, not api".into(),
            ));
        }
        let shared_jobs = match aisle_store::parse_url(&cfg.store)? {
            aisle_store::Location::Postgres(u) => Some(aisle_store::pg::PgJobs::open(&u)?),
            _ => None,
        };
        let jobs = Jobs::new(cfg.retrain.clone(), dir, shared_jobs);
        let limiter = cfg.rate_limit.map(|r| RateLimiter::new(r, r));
        let shared = match &cfg.redis {
            Some(u) => Some(shared::Shared::new(u, &cfg.shop).map_err(ServeError::Config)?),
            None => None,
        };
        let (cfg_rate, cfg_burst) = (cfg.auth_failure_rate, cfg.auth_failure_burst);
        let app = Arc::new(App {
            cfg,
            store: Mutex::new(store),
            live: RwLock::new(live),
            serving: RwLock::new(Serving::popularity_only()),
            registry,
            metrics: Metrics::default(),
            nonce,
            counter: AtomicU64::new(0),
            jobs,
            limiter,
            search,
            purchase,
            keys,
            auth_failures: RateLimiter::new(cfg_rate, cfg_burst),
            conns: Arc::new(Conns::default()),
            degraded: RwLock::new(None),
            online,
            sessions,
            shared,
            data_page: Default::default(),
            feed: FeedState {
                erasures_seen: erasures.into(),
                ..FeedState::default()
            },
            events_at_open,
            ingests: Mutex::new(None),
        });
        if let Some(reg) = &app.registry {
            if let Some(v) = reg.promoted_name()? {
                match load_version(reg, &v) {
                    Ok(s) => app.swap(s),
                    Err(e) => {
                        tracing::error!(version = v, error = %e, "promoted model refused; serving popularity");
                        app.set_degraded(Some(format!(
                            "the promoted model {v} was refused ({e}); serving popularity"
                        )));
                    }
                }
            }
        }
        feed::start(&app);
        Ok(app)
    }

    /// Erases a user everywhere the server keeps them: the event store
    /// (deleted pages zeroed, the WAL emptied), the in-memory histories and
    /// purchases, the purchase model's behaviour log, the search query log and
    /// the autocomplete counts built from it, and the quarantined rows that
    /// mention the id. Runs under the store lock, so no event of the user
    /// can slip in between.
    pub fn erase_user(&self, user: &str) -> Result<Erased, ServeError> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let aliases = store.aliases_of(user)?;
        let events = store.delete_user(user)?;
        let (mut queries, mut impressions) = self.erase_local(store.as_ref(), user)?;
        for a in &aliases {
            let (q, i) = self.erase_local(store.as_ref(), a)?;
            queries += q;
            impressions += i;
        }
        // The links are gone: an erased alias's user is rebuilt without it.
        identity::reload(
            store.as_ref(),
            &mut self.live.write().unwrap_or_else(|e| e.into_inner()),
        )?;
        if let Some(d) = aisle_store::files_dir(&self.cfg.store) {
            // A killed ingest's spill (on this machine) holds raw rows too.
            aisle_ingest::remove_stale_spills(&d)?;
        }
        let mut quarantine_rows = 0;
        if let Some(log) = self.ingest_log()? {
            use aisle_ingest::erase::{line_mentions, needles};
            for id in std::iter::once(user).chain(aliases.iter().map(String::as_str)) {
                quarantine_rows += log.erase_rows(&needles(id), &|line| line_mentions(line, id))?;
            }
        }
        tracing::info!(events, queries, quarantine_rows, impressions, "user erased");
        Ok(Erased {
            events,
            queries,
            quarantine_rows,
            impressions,
            aliases,
        })
    }

    /// The store's ingest reports and quarantined rows (its folder's files,
    /// or its database's tables); None for a store in memory.
    pub fn ingest_log(&self) -> Result<Option<aisle_store::IngestLog>, aisle_store::StoreError> {
        let mut log = self.ingests.lock().unwrap_or_else(|e| e.into_inner());
        if log.is_none() {
            *log = aisle_store::IngestLog::open(&self.cfg.store)?;
        }
        Ok(log.clone())
    }

    /// Erases a user from what this process keeps beside the store (the
    /// store itself erased them already, maybe through another replica):
    /// the live view, the purchase model's log, the search query log, the
    /// impression log. Returns the query lines and impressions removed.
    /// The caller holds the store's lock (`store`), so no event of the user
    /// slips in between.
    pub(crate) fn erase_local(
        &self,
        store: &dyn EventStore,
        user: &str,
    ) -> Result<(u64, u64), ServeError> {
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .users
            .remove(user);
        if let Some(p) = &self.purchase {
            let log = aisle_train::purchase::event_log(store)?;
            *p.log.write().unwrap_or_else(|e| e.into_inner()) = log;
        }
        let queries = self.search.erase_user(user)?;
        let impressions = self
            .online
            .erase_user(user)
            .map_err(|e| ServeError::Config(format!("erasing the online log: {e}")))?;
        Ok((queries, impressions))
    }

    /// Marks the server degraded (with the reason) or ready again.
    pub fn set_degraded(&self, why: Option<String>) {
        *self.degraded.write().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why the server is degraded, if it is.
    pub fn degraded(&self) -> Option<String> {
        self.degraded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the serving model atomically (requests in flight finish on
    /// the old one).
    pub fn swap(&self, s: Arc<Serving>) {
        tracing::info!(model = s.name, version = s.version, "serving model");
        *self.serving.write().unwrap_or_else(|e| e.into_inner()) = s;
        self.set_degraded(None);
        self.metrics.model_swaps.fetch_add(1, Ordering::Relaxed);
    }

    /// Loads the registry's promoted version and swaps it in; on error the
    /// old model keeps serving.
    pub fn reload_promoted(&self) -> Result<Arc<Serving>, ServeError> {
        let reg = self
            .registry
            .as_ref()
            .ok_or_else(|| ServeError::Config("this store has no model registry".into()))?;
        let v = reg
            .promoted_name()?
            .ok_or_else(|| ServeError::Config("no model is promoted".into()))?;
        let s = load_version(reg, &v)?;
        self.swap(s.clone());
        Ok(s)
    }

    /// Runs a search (what `GET /v1/search` answers, without `took_ms`).
    pub fn search(&self, req: &search::SearchRequest) -> Result<search::SearchResults, String> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        search::run(&self.search, &live, &self.current(), req)
    }

    /// The re-ranking stage's pool and features for a hybrid search (what
    /// `aisle bench-search --fit-ranker` fits on).
    pub fn search_pool(&self, req: &search::SearchRequest) -> Result<search::PoolFeatures, String> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        search::pool_features(&self.search, &live, &self.current(), req)
    }

    /// What an experiment arm's `model` names, ready to serve: `pop` (or
    /// `popularity`), `promoted` (the model serving now), a registry version
    /// (`sasrec-1764300000.safetensors`), or a model kind (its newest
    /// version in the registry). Loaded once per name.
    pub fn arm_serving(&self, model: &str) -> Result<Arc<Serving>, ServeError> {
        match model {
            "pop" | "popularity" => return Ok(Serving::popularity_only()),
            "promoted" | "current" => return Ok(self.current()),
            _ => {}
        }
        if let Some(s) = self
            .online
            .arm_models
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(model)
        {
            return Ok(s.clone());
        }
        let reg = self.registry.as_ref().ok_or_else(|| {
            ServeError::NotFound(format!(
                "unknown arm model `{model}`: this store has no model registry"
            ))
        })?;
        // (Once per name; over PostgreSQL the registry is a blocking client.)
        let s = off_runtime(|| load_version(reg, &registry_version(reg, model)?))?;
        self.online
            .arm_models
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.to_string(), s.clone());
        Ok(s)
    }

    /// Events the live view took in since the start (acknowledged here or,
    /// over a shared store, by any replica): what retraining counts.
    pub fn events_seen(&self) -> u64 {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.events.saturating_sub(self.events_at_open)
    }

    pub fn current(&self) -> Arc<Serving> {
        self.serving
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Runs blocking I/O from wherever it is called: on a worker thread of the
/// multi-threaded runtime it is moved out of the runtime's way (and out of
/// its context, which PostgreSQL's blocking client needs); elsewhere it
/// just runs.
pub(crate) fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The registry version `model` names: a version itself, or a model kind
/// (its newest version).
pub(crate) fn registry_version(reg: &Registry, model: &str) -> Result<String, ServeError> {
    let entries = reg.list()?;
    entries
        .iter()
        .find(|e| e.version == model)
        .or_else(|| entries.iter().rev().find(|e| e.model == model))
        .map(|e| e.version.clone())
        .ok_or_else(|| {
            ServeError::NotFound(format!(
                "unknown model `{model}`: not pop, promoted, a registry version or the kind of one"
            ))
        })
}

/// The keys of a configuration; an empty or blank key is an error.
fn keys_of(cfg: &ServeConfig) -> Result<Keys, ServeError> {
    let mut keys = Keys::default();
    for (k, scope) in [
        (&cfg.read_key, Scope::Read),
        (&cfg.api_key, Scope::Write),
        (&cfg.admin_key, Scope::Admin),
    ] {
        if let Some(k) = k {
            keys.add(k, scope)
                .map_err(|e| ServeError::Config(e.to_string()))?;
        }
    }
    Ok(keys)
}

/// Loads the registry's `version` for serving.
pub(crate) fn load_version(reg: &Registry, version: &str) -> Result<Arc<Serving>, ServeError> {
    load_serving(&reg.path_of(version)?, version)
}

/// Loads an artifact of any kind for serving, with its item ids.
pub fn load_serving(path: &Path, version: &str) -> Result<Arc<Serving>, ServeError> {
    let aisle_train::Artifact { header, model } = aisle_train::Artifact::load(path)?;
    let index = header
        .item_ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i as u32))
        .collect();
    Ok(Arc::new(Serving {
        name: model.kind().to_string(),
        version: version.to_string(),
        model: Some(model),
        model_items: header.item_ids,
        model_index: index,
    }))
}

/// Serves until `shutdown` resolves; in-flight requests finish first and
/// every acknowledged event is already durable.
pub async fn serve(
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if !app.keys.enforced() && !app.cfg.addr.ip().is_loopback() {
        return Err(ServeError::Config(format!(
            "no API key configured: refusing to listen on {} (development mode binds loopback only; give keys: --read-key-file, --write-key-file, --admin-key-file or AISLE_READ_KEY, AISLE_WRITE_KEY, AISLE_ADMIN_KEY)",
            app.cfg.addr
        )));
    }
    let listener = tokio::net::TcpListener::bind(app.cfg.addr).await?;
    serve_on(app, listener, shutdown).await
}

/// [`serve`] on a listener already bound (the loopback rule is the
/// caller's: `serve` checks it).
pub async fn serve_on(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    tracing::info!(addr = %listener.local_addr()?, role = app.cfg.role.as_str(), "listening");
    if app.cfg.role.retrains() {
        jobs::start(&app);
    }
    http::data::warm(&app);
    // The shops beside the default one, opened before the first request.
    let all = shops::Shops::new(app.clone());
    {
        let all = all.clone();
        tokio::task::spawn_blocking(move || all.start())
            .await
            .map_err(|e| ServeError::Config(format!("opening the shops: {e}")))?;
    }
    let served = conn::serve(
        listener,
        shops::router(all.clone()),
        app.cfg.conn.clone(),
        app.conns.clone(),
        shutdown,
    )
    .await;
    // A retraining run in flight is killed; its candidate was not promoted.
    let a = app.clone();
    tokio::task::spawn_blocking(move || {
        all.stop();
        a.jobs.stop();
        // Every impression queued before the shutdown is written.
        a.online.flush();
    })
    .await
    .map_err(|e| ServeError::Config(format!("stopping the scheduler: {e}")))?;
    served?;
    Ok(())
}

#[cfg(test)]
mod metrics_tests {
    use super::{bucket_quantile, Minutes, MINUTES};

    #[test]
    fn a_quantile_is_interpolated_within_its_bucket() {
        // 10 requests, all between 1 and 2 ms.
        let (bounds, cum) = ([1.0, 2.0, 5.0], [0, 10, 10]);
        assert!((bucket_quantile(&bounds, &cum, 10, 0.5) - 1.5).abs() < 1e-12);
        assert!((bucket_quantile(&bounds, &cum, 10, 0.99) - 1.99).abs() < 1e-12);
        // 4 of 10 at most 1 ms: the median is in the next bucket, 1/6 in.
        assert!(
            (bucket_quantile(&bounds, &[4, 10, 10], 10, 0.5) - (1.0 + 1.0 / 6.0)).abs() < 1e-12
        );
        // Beyond the last bound: the last bound; nothing counted: 0.
        assert_eq!(bucket_quantile(&bounds, &[0, 0, 0], 5, 0.5), 5.0);
        assert_eq!(bucket_quantile(&bounds, &[0, 0, 0], 0, 0.5), 0.0);
    }

    #[test]
    fn the_minute_ring_keeps_the_last_hour_and_forgets_older_minutes() {
        let mut m = Minutes::default();
        m.add(100, 5, 0);
        m.add(100, 0, 2);
        m.add(101, 0, 3);
        let w = m.window(101);
        assert_eq!(w.len(), MINUTES);
        assert_eq!(w[MINUTES - 2], (100, 5, 2));
        assert_eq!(w[MINUTES - 1], (101, 0, 3));
        // An hour later minute 161 takes minute 101's slot; 100 is gone.
        m.add(161, 1, 0);
        let w = m.window(161);
        assert_eq!(w[MINUTES - 1], (161, 1, 0));
        assert!(w
            .iter()
            .all(|x| x.0 > 101 && (x.0 == 161 || x.1 + x.2 == 0)));
    }
}
