//! `aisle-serve`: the HTTP API (axum + tokio) over an Aisle store.
//!
//! One process: the embedded store (every event durable before its 2xx),
//! an in-memory view of the catalog, histories and popularity that each
//! event updates at once, and the promoted sequence model (hot-swapped
//! atomically; popularity when none). Errors are `{"error":{"code","message"}}`
//! with a 4xx; see `openapi.yaml` at the repository root.

mod api;
pub mod jobs;
mod limit;
pub mod purchase;
pub mod registry;
pub mod search;
pub mod seqfeature;
mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use aisle_store::EventStore;

pub use api::router;
pub use jobs::{Job, Jobs, RetrainConfig};
pub use limit::RateLimiter;
pub use registry::{Entry, Registry};
pub use state::{Live, Serving};

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
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Store URL or directory (see aisle-store).
    pub store: String,
    pub addr: SocketAddr,
    /// Key for events and reads (`x-api-key` or `Authorization: Bearer`).
    pub api_key: Option<String>,
    /// Key for /v1/admin routes (also accepted wherever the API key is).
    pub admin_key: Option<String>,
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
}

impl ServeConfig {
    pub fn new(store: &str, addr: SocketAddr) -> ServeConfig {
        ServeConfig {
            store: store.to_string(),
            addr,
            api_key: None,
            admin_key: None,
            max_body_bytes: 1 << 20,
            max_k: 1000,
            max_batch: 10_000,
            rate_limit: None,
            retrain: None,
            search: search::SearchConfig::default(),
            ranker: None,
        }
    }
}

/// Per-route request counts and latency histograms, Prometheus text format.
#[derive(Default)]
pub struct Metrics {
    pub events_ingested: AtomicU64,
    pub model_swaps: AtomicU64,
    routes: Mutex<std::collections::BTreeMap<(String, u16), RouteStats>>,
}

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

#[derive(Default, Clone)]
struct RouteStats {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

impl Metrics {
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
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
}

impl App {
    /// Opens the store, builds the in-memory view and loads the promoted model.
    pub fn open(cfg: ServeConfig) -> Result<Arc<App>, ServeError> {
        let store = aisle_store::open(&cfg.store)?;
        let catalog = store.catalog()?;
        // Events in time order per user (ties in insertion order).
        let mut all = Vec::new();
        store.scan_events(&mut |e| all.push(e))?;
        all.sort_by_key(|e| (e.event.ts, e.seq));
        // The purchase model's log comes from the same read of the store.
        let purchase = match &cfg.ranker {
            Some(p) => Some(purchase::Purchase::open(
                p,
                purchase::log_of(&all, &catalog),
            )?),
            None => None,
        };
        let mut live = Live::default();
        for c in catalog {
            live.upsert_item(c);
        }
        for e in &all {
            live.apply(&e.event);
        }
        drop(all);
        let dir = store_dir(&cfg.store);
        let registry = dir.as_deref().map(Registry::new);
        let search = search::Search::open(
            search::dir_of(dir.as_deref()).as_deref(),
            &live,
            cfg.search.clone(),
        );
        let jobs = Jobs::new(cfg.retrain.clone(), dir);
        let limiter = cfg.rate_limit.map(|r| RateLimiter::new(r, r));
        let nonce = aisle_core::hash::hash_fields([
            b"serve".as_slice(),
            &std::process::id().to_le_bytes(),
            &aisle_core::time::unix_now().to_le_bytes(),
        ]);
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
        });
        if let Some(reg) = &app.registry {
            if let Some(v) = reg.promoted_name()? {
                match reg.path_of(&v).and_then(|p| load_serving(&p, &v)) {
                    Ok(s) => app.swap(s),
                    Err(e) => {
                        tracing::error!(version = v, error = %e, "promoted model refused; serving popularity")
                    }
                }
            }
        }
        Ok(app)
    }

    /// Replaces the serving model atomically (requests in flight finish on
    /// the old one).
    pub fn swap(&self, s: Arc<Serving>) {
        tracing::info!(model = s.name, version = s.version, "serving model");
        *self.serving.write().unwrap_or_else(|e| e.into_inner()) = s;
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
        let s = reg.path_of(&v).and_then(|p| load_serving(&p, &v))?;
        self.swap(s.clone());
        Ok(s)
    }

    /// Runs a search (what `GET /v1/search` answers, without `took_ms`).
    pub fn search(&self, req: &search::SearchRequest) -> Result<serde_json::Value, String> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        search::run(&self.search, &live, &self.current(), req)
    }

    pub fn current(&self) -> Arc<Serving> {
        self.serving
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A sequence-model artifact and its item ids (one per model item).
pub fn load_artifact(path: &Path) -> Result<(aisle_seq::SeqModel, Vec<String>), ServeError> {
    let (model, meta) = aisle_seq::SeqModel::load(path)?;
    let items: Vec<String> = meta
        .get("item_ids")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            ServeError::Config(format!("{}: no item_ids in the artifact", path.display()))
        })?;
    if items.len() != model.n_items {
        return Err(ServeError::Config(format!(
            "{}: {} item ids for a model of {} items",
            path.display(),
            items.len(),
            model.n_items
        )));
    }
    Ok((model, items))
}

/// Loads a sequence-model artifact with its item ids.
pub fn load_serving(path: &Path, version: &str) -> Result<Arc<Serving>, ServeError> {
    let (model, items) = load_artifact(path)?;
    let index = items
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i as u32))
        .collect();
    Ok(Arc::new(Serving {
        name: model.arch.name().to_string(),
        version: version.to_string(),
        model: Some(model),
        model_items: items,
        model_index: index,
    }))
}

/// The directory of a store URL (None for in-memory stores).
pub fn store_dir(url: &str) -> Option<PathBuf> {
    match aisle_store::parse_url(url).ok()? {
        aisle_store::Location::SqliteFile(p) => p.parent().map(Path::to_path_buf),
        _ => None,
    }
}

/// Serves until `shutdown` resolves; in-flight requests finish first and
/// every acknowledged event is already durable.
pub async fn serve(
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let open = app.cfg.api_key.is_none() && app.cfg.admin_key.is_none();
    if open && !app.cfg.addr.ip().is_loopback() {
        return Err(ServeError::Config(format!(
            "no API key configured: refusing to listen on {} (development mode binds loopback only; give --api-key and --admin-key)",
            app.cfg.addr
        )));
    }
    let listener = tokio::net::TcpListener::bind(app.cfg.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    jobs::start(&app);
    let served = axum::serve(
        listener,
        router(app.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    // A retraining run in flight is killed; its candidate was not promoted.
    let a = app.clone();
    tokio::task::spawn_blocking(move || a.jobs.stop())
        .await
        .map_err(|e| ServeError::Config(format!("stopping the scheduler: {e}")))?;
    served?;
    Ok(())
}
