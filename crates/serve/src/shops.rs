//! Many shops in one server: `/v1/shops/{shop}/…` reaches shop `shop`,
//! an [`App`] of its own over its own store (`aisle_store::shops`: a
//! folder or a database per shop), with its own keys, models, search
//! indexes, online log, experiments, rate limits and retraining. The
//! single-shop paths (`/v1/events`, …) are the default shop's, the store
//! given to `--store`, also reachable as `/v1/shops/default/…`.
//!
//! Isolation is by construction: a shop's requests are answered by its
//! own router over its own `App`, whose keys are the shop's alone (kept
//! in its store as digests by `aisle shops create`), so a key of one shop
//! is an unknown key to every other.
//!
//! The server looks at the registry (the shops' folders or databases)
//! every `shops_refresh`: it opens shops created since and closes deleted
//! ones, on every replica alike.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tower::ServiceExt;

use crate::http::error::{ApiError, Code};
use crate::{App, ServeConfig, ServeError};
use aisle_store::shops::{check_name, DEFAULT_SHOP};

/// How often a server looks for shops created or deleted.
pub const REFRESH: Duration = Duration::from_secs(2);

/// A shop's server: its app and its router.
#[derive(Clone)]
struct Shop {
    app: Arc<App>,
    router: Router,
}

/// The shops a server answers for.
pub struct Shops {
    default: Shop,
    open: RwLock<HashMap<String, Shop>>,
    /// Shops that exist but would not open, with why (for the log and a 503).
    failed: RwLock<HashMap<String, String>>,
    refresh: Duration,
    stop: (Mutex<bool>, Condvar),
    stopped: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What `aisle shops create` made: the shop's store and its keys (shown
/// once: the store keeps only their digests).
#[derive(Debug)]
pub struct CreatedShop {
    pub name: String,
    pub url: String,
    pub keys: Vec<(crate::Scope, String)>,
}

/// Creates shop `name` beside the deployment's store `base`, with a new
/// key per scope (read, write, admin).
pub fn create(base: &str, name: &str) -> Result<CreatedShop, ServeError> {
    let (keys, stored) = crate::auth::new_keys(name)
        .map_err(|e| ServeError::Config(format!("no random source for the shop's keys: {e}")))?;
    let url = aisle_store::shops::create(base, name)?;
    let mut store = aisle_store::open_existing(&url)?;
    store.set_meta(crate::auth::KEYS_META, &stored)?;
    Ok(CreatedShop {
        name: name.to_string(),
        url,
        keys,
    })
}

/// Replaces shop `name`'s keys with new ones (every server stops taking
/// the old ones at its next look at the registry); returns the new keys.
pub fn rotate_keys(base: &str, name: &str) -> Result<Vec<(crate::Scope, String)>, ServeError> {
    if name == DEFAULT_SHOP {
        return Err(ServeError::Config(
            "the default shop's keys are the server's --read-key-file/--write-key-file/--admin-key-file".into(),
        ));
    }
    if !aisle_store::shops::exists(base, name)? {
        return Err(aisle_store::StoreError::UnknownShop(name.to_string()).into());
    }
    let (keys, stored) = crate::auth::new_keys(name)
        .map_err(|e| ServeError::Config(format!("no random source for the shop's keys: {e}")))?;
    let mut store = aisle_store::open_existing(&aisle_store::shops::url_of(base, name)?)?;
    store.set_meta(crate::auth::KEYS_META, &stored)?;
    Ok(keys)
}

impl Shops {
    /// The shops of the server whose default shop is `default` (none open
    /// yet: see [`Shops::start`]).
    pub fn new(default: Arc<App>) -> Arc<Shops> {
        let refresh = default.cfg.shops_refresh;
        Arc::new(Shops {
            default: Shop {
                router: crate::router(default.clone()),
                app: default,
            },
            open: RwLock::new(HashMap::new()),
            failed: RwLock::new(HashMap::new()),
            refresh,
            stop: (Mutex::new(false), Condvar::new()),
            stopped: AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }

    /// Opens the shops that exist now, then looks for new and deleted ones
    /// every `shops_refresh` on a thread of its own.
    pub fn start(self: &Arc<Shops>) {
        self.refresh();
        let weak: Weak<Shops> = Arc::downgrade(self);
        let every = self.refresh;
        let handle = std::thread::Builder::new()
            .name("aisle-shops".into())
            .spawn(move || loop {
                let Some(s) = weak.upgrade() else { return };
                {
                    let (lock, cv) = &s.stop;
                    let stop = lock.lock().unwrap_or_else(|e| e.into_inner());
                    let (stop, _) = cv
                        .wait_timeout_while(stop, every, |stop| !*stop)
                        .unwrap_or_else(|e| e.into_inner());
                    if *stop {
                        return;
                    }
                }
                s.refresh();
            })
            .ok();
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = handle;
    }

    /// The default shop's app.
    pub fn default_app(&self) -> &Arc<App> {
        &self.default.app
    }

    /// An open shop's app (the default shop's for `default`).
    pub fn get(&self, name: &str) -> Option<Arc<App>> {
        if name == DEFAULT_SHOP {
            return Some(self.default.app.clone());
        }
        self.read().get(name).map(|s| s.app.clone())
    }

    /// The open shops' names (the default shop not among them), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.read().keys().cloned().collect();
        v.sort();
        v
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Shop>> {
        self.open.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the shops created since the last look and closes the deleted
    /// ones. A shop that does not open is logged and tried again next time.
    pub fn refresh(&self) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let base = &self.default.app.cfg.store;
        let names = match aisle_store::shops::list(base) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the shops; keeping the open ones");
                return;
            }
        };
        let gone: Vec<String> = self
            .read()
            .keys()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for name in gone {
            let shop = self
                .open
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            if let Some(s) = shop {
                tracing::info!(shop = %name, "shop deleted: closing it");
                close(&s.app);
            }
        }
        self.failed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n, _| names.contains(n));
        for name in names {
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
            let open = self.read().get(&name).map(|s| s.app.clone());
            if let Some(app) = open {
                // Keys rotated since the last look: the new ones replace
                // the old (a store it cannot read now keeps them as they are).
                if let Ok(Some(k)) = stored_keys(&app) {
                    if let Err(e) = app.keys.replace_with_stored(&k) {
                        tracing::warn!(shop = %name, error = %e, "the shop's stored keys are unreadable; keeping the old ones");
                    }
                }
                continue;
            }
            match self.open_shop(&name) {
                Ok(app) => {
                    tracing::info!(shop = %name, events = app.events_seen(), "shop open");
                    self.failed
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&name);
                    let router = crate::router(app.clone());
                    self.open
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name, Shop { app, router });
                }
                Err(e) => {
                    tracing::warn!(shop = %name, error = %e, "shop does not open; trying again later");
                    self.failed
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name, e.to_string());
                }
            }
        }
    }

    fn open_shop(&self, name: &str) -> Result<Arc<App>, ServeError> {
        let template = &self.default.app.cfg;
        let url = aisle_store::shops::url_of(&template.store, name)?;
        let mut cfg: ServeConfig = template.clone();
        cfg.store = url.clone();
        cfg.shop = name.to_string();
        // A shop's keys are its own (in its store), never the default shop's.
        cfg.read_key = None;
        cfg.api_key = None;
        cfg.admin_key = None;
        // The purchase model is a file of the default shop's.
        cfg.ranker = None;
        if let Some(r) = &mut cfg.retrain {
            if let Some(i) = r.command.iter().position(|a| a == "--store") {
                if let Some(s) = r.command.get_mut(i + 1) {
                    *s = url.clone();
                }
            }
        }
        let app = App::open(cfg)?;
        if !app.keys.enforced() {
            close(&app);
            return Err(ServeError::Config(format!(
                "shop {name} has no keys (make shops with `aisle shops create`)"
            )));
        }
        if app.cfg.role.retrains() {
            crate::jobs::start(&app);
        }
        crate::http::data::warm(&app);
        Ok(app)
    }

    /// Stops looking for shops and closes every shop (their retraining
    /// stopped, their online logs written); the default shop is the
    /// caller's.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        {
            let (lock, cv) = &self.stop;
            *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        let all: Vec<Shop> = self
            .open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in all {
            close(&s.app);
        }
    }
}

/// The keys a shop's store keeps now.
fn stored_keys(app: &App) -> Result<Option<String>, aisle_store::StoreError> {
    let store = app.store.lock().unwrap_or_else(|e| e.into_inner());
    store.meta(crate::auth::KEYS_META)
}

/// A shop's background work stopped and its queued log written.
fn close(app: &App) {
    app.jobs.stop();
    app.online.flush();
}

/// The server's router: `/v1/shops/{shop}/…` to that shop's router, every
/// other path to the default shop's.
pub fn router(shops: Arc<Shops>) -> Router {
    let default = shops.default.router.clone();
    Router::new()
        .route("/v1/shops/{*rest}", any(dispatch))
        .fallback_service(default)
        .with_state(shops)
}

/// The path a shop's router answers for the rest of a `/v1/shops/{shop}`
/// path: the health routes, `/metrics` and `/openapi.json` as they are,
/// the rest under `/v1`.
fn inner_path(rest: &str) -> String {
    match rest {
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" => rest.to_string(),
        _ => format!("/v1{rest}"),
    }
}

async fn dispatch(State(shops): State<Arc<Shops>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let tail = path.strip_prefix("/v1/shops/").unwrap_or("");
    let (name, rest) = match tail.find('/') {
        Some(i) => (&tail[..i], &tail[i..]),
        None => (tail, ""),
    };
    if let Err(why) = check_name(name) {
        return ApiError::new(Code::BadShop, why).into_response();
    }
    let shop = if name == DEFAULT_SHOP {
        Some(shops.default.clone())
    } else {
        shops.read().get(name).cloned()
    };
    let Some(shop) = shop else {
        // Probing for shop names counts as a failed authentication.
        let ip = crate::http::guard::peer_ip(&req);
        let app = &shops.default.app;
        if let Err(wait) = crate::http::guard::failures(app, &ip, false).await {
            return crate::http::guard::rate_limited(
                wait,
                "too many failed authentications from this address",
            );
        }
        let _ = crate::http::guard::failures(app, &ip, true).await;
        let failed = shops
            .failed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name);
        return if failed {
            ApiError::new(
                Code::ShopUnavailable,
                format!("shop {name} does not open on this server (the server log says why)"),
            )
            .into_response()
        } else {
            ApiError::new(
                Code::UnknownShop,
                format!(
                    "no shop named {name} (a shop made with `aisle shops create` is served within {} s)",
                    shops.refresh.as_secs_f64()
                ),
            )
            .into_response()
        };
    };
    let mut uri = inner_path(rest);
    if let Some(q) = req.uri().query() {
        uri.push('?');
        uri.push_str(q);
    }
    let Ok(uri) = uri.parse::<axum::http::Uri>() else {
        return ApiError::new(Code::BadPath, "a malformed path").into_response();
    };
    // A new request for the shop's router, which matches the path itself:
    // none of this router's extensions (its matched path and parameters)
    // go along, only the peer's address.
    let (parts, body) = req.into_parts();
    let mut inner = Request::new(body);
    *inner.method_mut() = parts.method;
    *inner.uri_mut() = uri;
    *inner.version_mut() = parts.version;
    *inner.headers_mut() = parts.headers;
    if let Some(peer) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        inner.extensions_mut().insert(*peer);
    }
    match shop.router.oneshot(inner).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shop_path_maps_to_the_same_route_of_the_shop() {
        assert_eq!(inner_path("/events"), "/v1/events");
        assert_eq!(inner_path("/admin/models"), "/v1/admin/models");
        assert_eq!(inner_path("/readyz"), "/readyz");
        assert_eq!(inner_path("/metrics"), "/metrics");
        assert_eq!(inner_path(""), "/v1");
    }
}
