//! The HTTP boundary: routes split by resource, one error type
//! ([`error::ApiError`], codes in [`error::Code`]), and the guard every
//! request passes. Handlers parse, call the library, and shape the answer;
//! blocking work (the store, model loading, search) runs off the async
//! workers.

mod admin;
pub mod error;
mod events;
mod guard;
mod health;
mod items;
mod query;
mod recs;
mod search;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::state::Live;
use crate::{App, ServeError};
use error::{ApiError, Code};

/// The API.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.cfg.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/events", post(events::post_events))
        .route("/v1/users/{id}/recommendations", get(recs::user_recs))
        .route("/v1/users/{id}", axum::routing::delete(users::delete_user))
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
        .route(
            "/v1/admin/jobs",
            get(admin::admin_jobs).post(admin::admin_run_job),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::with(
                Code::MethodNotAllowed,
                "method not allowed on this route".into(),
            )
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
        Ok::<T, ServeError>(apply(&mut live, r))
    })
    .await
    .map_err(|e| ApiError::with(Code::Internal, e.to_string()))??;
    Ok(out)
}
