//! The HTTP boundary: routes split by resource, one error type
//! ([`error::ApiError`], codes in [`error::Code`]), and the guard every
//! request passes. Handlers parse, call the library, and shape the answer;
//! blocking work (the store, model loading, search) runs off the async
//! workers.

mod admin;
pub mod data;
pub mod error;
mod events;
pub(crate) mod experiments;
pub(crate) mod guard;
mod health;
pub mod insights;
mod items;
pub mod openapi;
pub(crate) mod query;
pub(crate) mod recs;
mod search;
pub mod types;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::state::Live;
use crate::{App, ServeError};
use aisle_train::Servable;
use error::{ApiError, Code};

/// The API.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.cfg.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/openapi.json", get(openapi::openapi_json_route))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/events", post(events::post_events))
        .route("/v1/users/{id}/recommendations", get(recs::user_recs))
        .route("/v1/users/{id}", axum::routing::delete(users::delete_user))
        .route(
            "/v1/users/{id}/aliases",
            get(users::get_aliases).post(users::post_alias),
        )
        .route(
            "/v1/users/{id}/aliases/{alias}",
            axum::routing::delete(users::delete_alias),
        )
        .route("/v1/items/{id}/similar", get(recs::similar))
        .route(
            "/v1/items/{id}",
            get(items::get_item)
                .put(items::put_item)
                .delete(items::delete_item),
        )
        .route("/v1/sessions/recommendations", post(recs::session_recs))
        .route("/v1/popular", get(recs::popular))
        .route("/v1/search", get(search::search))
        .route("/v1/search/suggest", get(search::suggest))
        .route("/v1/admin/models", get(admin::admin_models))
        .route("/v1/admin/models/reload", post(admin::admin_reload))
        .route("/v1/admin/models/promote", post(admin::admin_promote))
        .route("/v1/admin/models/rollback", post(admin::admin_rollback))
        .route("/v1/admin/overview", get(insights::get_overview))
        .route("/v1/admin/data", get(data::get_data))
        .route("/v1/admin/evaluation", get(data::get_evaluation))
        .route(
            "/v1/admin/search/queries",
            get(insights::get_search_queries),
        )
        .route("/v1/admin/users/{id}", get(insights::get_shopper))
        .route(
            "/v1/admin/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route(
            "/v1/admin/experiments/{name}/report",
            get(experiments::report),
        )
        .route("/v1/admin/experiments/{name}/stop", post(experiments::stop))
        .route("/v1/admin/kpis", get(experiments::kpis))
        .route(
            "/v1/admin/jobs",
            get(admin::admin_jobs).post(admin::admin_run_job),
        )
        .merge(crate::console::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(middleware::from_fn_with_state(app.clone(), guard::guard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Runs a change on a blocking thread under the store lock: first `durable`
/// on the store, then `apply` on the in-memory view, so memory and disk see
/// changes in the same order. The view's write lock is taken only after the
/// store has committed: readers never wait on a disk sync.
pub(super) async fn write<R: Send + 'static, T: Send + 'static>(
    app: &Arc<App>,
    durable: impl FnOnce(&mut dyn aisle_store::EventStore) -> Result<R, ServeError> + Send + 'static,
    apply: impl FnOnce(&mut Live, R) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut store = app.store.lock().unwrap_or_else(|e| e.into_inner());
        let r = durable(store.as_mut())?;
        let mut live = app.live.write().unwrap_or_else(|e| e.into_inner());
        if store.shared() {
            // Every event committed up to this write, this one's included
            // (other replicas' too: see `feed`); `apply` adds none.
            app.catch_up(store.as_ref(), &mut live)?;
        } else {
            live.last_seq = store.last_seq()?;
        }
        Ok::<T, ServeError>(apply(&mut live, r))
    })
    .await
    .map_err(ApiError::task)??;
    Ok(out)
}

/// Scoring work (items × vector width) above which a request computes with
/// `block_in_place`, so the worker's other tasks move to another thread
/// meanwhile. Below it the work is shorter than the handoff: on the 2-core
/// bench machine, handing every recommendation off (blocking pool or
/// `block_in_place`) cost 18–20% of the flat-out throughput on the retail
/// shop (3,600 items) with no gain in p99 at 1,000 requests/s.
const OFFLOAD_WORK: usize = 4_000_000;

/// Whether scoring with the serving model is heavy enough to leave the
/// async worker (a catalog of ~60,000 items at width 64).
pub(super) fn heavy(app: &App) -> bool {
    let s = app.current();
    let live_items = app
        .live
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .items
        .len();
    let width = s.model.as_ref().map_or(1, |m| m.width());
    live_items.saturating_mul(width) >= OFFLOAD_WORK
}

/// Runs request work that computes (model scoring, top-k over the catalog):
/// off the async worker when `heavy` (and the runtime has other workers to
/// take over), inline otherwise.
pub(super) async fn compute<T>(
    heavy: bool,
    f: impl FnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if heavy && multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heavy_work_leaves_the_worker_and_returns_its_result() {
        let worker = std::thread::current().id();
        let (same_thread, v) = compute(true, || Ok((std::thread::current().id() == worker, 7)))
            .await
            .unwrap();
        // block_in_place runs the closure here, having moved the worker's
        // other tasks to another thread.
        assert!(same_thread);
        assert_eq!(v, 7);
    }

    #[tokio::test]
    async fn on_a_single_threaded_runtime_heavy_work_runs_inline_instead_of_panicking() {
        let v = compute(true, || Ok(3)).await.unwrap();
        assert_eq!(v, 3);
        let e = compute::<()>(false, || Err(ApiError::new(Code::BadK, "k")))
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::BadK);
    }
}
