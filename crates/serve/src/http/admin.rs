//! `/v1/admin/*`: models, promotion, retraining jobs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use super::error::{body_as, ApiError, ApiResult, Code};
use super::recs::serving_model;
use super::types::{JobQueued, ModelRef, ModelVersion, Models, Serving};
use crate::App;

pub(super) async fn admin_models(State(app): State<Arc<App>>) -> ApiResult {
    // (Over PostgreSQL the registry is a database: a blocking client.)
    let versions = match &app.registry {
        Some(r) => crate::off_runtime(|| r.list())?
            .into_iter()
            .map(ModelVersion::from)
            .collect(),
        None => Vec::new(),
    };
    Ok(Json(Models {
        serving: serving_model(&app),
        versions,
    })
    .into_response())
}

pub(super) fn reload(app: &App, version: &str) -> Result<ModelRef, ApiError> {
    let reg = app
        .registry
        .as_ref()
        .ok_or_else(|| ApiError::new(Code::NoRegistry, "this store has no model registry"))?;
    // A corrupt or incompatible artifact is refused; the old model keeps serving.
    let s = crate::load_version(reg, version)
        .map_err(|e| ApiError::new(Code::BadArtifact, e.to_string()))?;
    app.swap(s);
    Ok(serving_model(app))
}

pub(super) async fn admin_reload(State(app): State<Arc<App>>) -> ApiResult {
    let serving = tokio::task::spawn_blocking(move || {
        let v = app
            .registry
            .as_ref()
            .map(|r| r.promoted_name())
            .transpose()?
            .flatten()
            .ok_or_else(|| ApiError::new(Code::NothingPromoted, "no model is promoted"))?;
        reload(&app, &v)
    })
    .await
    .map_err(ApiError::task)??;
    Ok(Json(Serving { serving }).into_response())
}

/// `POST /v1/admin/models/promote`: `{"version": "FILE.safetensors"}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PromoteBody {
    /// A file name listed by `GET /v1/admin/models`.
    version: String,
}

pub(super) async fn admin_promote(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let PromoteBody { version } = body_as(body, Code::BadRequest)?;
    // Loading runs off the request workers so serving never waits on it
    // (over PostgreSQL the artifact may come from the database first);
    // `reload` swaps it in, then the promotion is recorded without a second
    // load (and, over PostgreSQL, reaches the other replicas).
    let serving = tokio::task::spawn_blocking(move || {
        let reg = app
            .registry
            .as_ref()
            .ok_or_else(|| ApiError::new(Code::NoRegistry, "this store has no model registry"))?;
        if !reg.path_of(&version).is_ok_and(|p| p.exists()) {
            return Err(ApiError::not_found(format!("no model version {version:?}")));
        }
        let serving = reload(&app, &version)?;
        reg.mark_promoted(&version)?;
        Ok::<_, ApiError>(serving)
    })
    .await
    .map_err(ApiError::task)??;
    Ok(Json(Serving { serving }).into_response())
}

/// `POST /v1/admin/models/rollback`: serves the version promoted before
/// the current one again (409 `nothing_to_roll_back` when there is none).
pub(super) async fn admin_rollback(State(app): State<Arc<App>>) -> ApiResult {
    let serving = tokio::task::spawn_blocking(move || {
        let reg = app
            .registry
            .as_ref()
            .ok_or_else(|| ApiError::new(Code::NoRegistry, "this store has no model registry"))?;
        let version = reg.rollback().map_err(|e| match e {
            aisle_train::TrainError::NoEarlierPromotion => ApiError::new(
                Code::NothingToRollBack,
                "no version was promoted before the current one",
            ),
            e => ApiError::new(Code::BadArtifact, e.to_string()),
        })?;
        reload(&app, &version)
    })
    .await
    .map_err(ApiError::task)??;
    Ok(Json(Serving { serving }).into_response())
}

pub(super) async fn admin_jobs(State(app): State<Arc<App>>) -> ApiResult {
    // (Over PostgreSQL the history is read from the database: a blocking client.)
    let view = tokio::task::spawn_blocking(move || app.jobs.snapshot(app.events_seen()))
        .await
        .map_err(ApiError::task)?;
    Ok(Json(view).into_response())
}

/// Queues a retraining run now (202); 409 while one runs or is queued.
pub(super) async fn admin_run_job(State(app): State<Arc<App>>) -> ApiResult {
    let a = app.clone();
    let queued = tokio::task::spawn_blocking(move || a.jobs.trigger())
        .await
        .map_err(ApiError::task)?;
    match queued {
        Ok(id) => Ok((
            StatusCode::ACCEPTED,
            Json(JobQueued {
                queued: true,
                job_id: id,
                kind: "retrain",
            }),
        )
            .into_response()),
        Err(crate::jobs::TriggerError::NotConfigured) if app.cfg.role == crate::Role::Api => {
            Err(ApiError::new(
                Code::RetrainingNotConfigured,
                "this replica runs with --role api and never retrains: trigger the job on a --role worker process",
            ))
        }
        Err(crate::jobs::TriggerError::NotConfigured) => Err(ApiError::new(
            Code::RetrainingNotConfigured,
            "this server has no retraining command (start it with --retrain-model)",
        )),
        Err(crate::jobs::TriggerError::Busy) => Err(ApiError::new(
            Code::JobRunning,
            "a retraining job is already running or queued",
        )),
        Err(crate::jobs::TriggerError::Standby) => Err(ApiError::new(
            Code::JobRunning,
            "another worker holds the worker lock and runs the jobs: trigger it there",
        )),
    }
}
