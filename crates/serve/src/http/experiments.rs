//! `/v1/admin/experiments` and `/v1/admin/kpis`: experiments created,
//! listed, stopped and reported; the shop's online figures.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::error::{body_as, path_id, ApiError, ApiResult, Code};
use super::query::{KpiParams, Params};
use crate::App;
use aisle_experiment::{ExperimentError, ExperimentSpec};
use aisle_store::online::{ExperimentConflict, ExperimentRecord};

/// One experiment as the API lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentView {
    pub name: String,
    /// recommendations, search or similar.
    pub surface: &'static str,
    /// ab or interleave.
    pub mode: &'static str,
    pub arms: Vec<ArmView>,
    pub salt: String,
    pub primary_metric: &'static str,
    pub min_detectable_lift: f64,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub stopped_ms: Option<i64>,
    pub running: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArmView {
    pub name: String,
    /// `pop`, `promoted`, a registry version or a model kind.
    pub model: String,
    /// Percent of users (A/B).
    pub traffic: f64,
}

impl From<ExperimentRecord> for ExperimentView {
    fn from(r: ExperimentRecord) -> ExperimentView {
        ExperimentView {
            running: r.running(),
            name: r.spec.name,
            surface: r.spec.surface.name(),
            mode: match r.spec.mode {
                aisle_experiment::Mode::Ab => "ab",
                aisle_experiment::Mode::Interleave => "interleave",
            },
            arms: r
                .spec
                .arms
                .into_iter()
                .map(|a| ArmView {
                    name: a.name,
                    model: a.model,
                    traffic: a.traffic,
                })
                .collect(),
            salt: r.spec.salt,
            primary_metric: r.spec.primary_metric.name(),
            min_detectable_lift: r.spec.min_detectable_lift,
            started_ms: r.started_ms,
            stopped_ms: r.stopped_ms,
        }
    }
}

/// `GET /v1/admin/experiments`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentList {
    pub experiments: Vec<ExperimentView>,
}

fn conflict(c: ExperimentConflict) -> ApiError {
    let code = match c {
        ExperimentConflict::Exists(_) => Code::ExperimentExists,
        ExperimentConflict::SurfaceBusy { .. } => Code::SurfaceBusy,
        ExperimentConflict::Unknown(_) => Code::UnknownExperiment,
        ExperimentConflict::Stopped(_) => Code::ExperimentStopped,
    };
    ApiError::new(code, c.to_string())
}

/// Runs `f` with the online log's read connection on a blocking thread.
pub(super) async fn with_log<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App, &mut aisle_store::online::OnlineLog) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut log = app.online.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&app, &mut log)
    })
    .await
    .map_err(ApiError::task)?
}

/// Reads the experiments again after a change (on a blocking thread: over
/// PostgreSQL the log's client blocks).
async fn reload(app: &Arc<App>) -> Result<(), ApiError> {
    let a = app.clone();
    tokio::task::spawn_blocking(move || a.online.reload_experiments())
        .await
        .map_err(ApiError::task)??;
    Ok(())
}

/// `POST /v1/admin/experiments`: validated (the split, the arms, one
/// running experiment per surface), every arm's model resolved, then stored.
pub(super) async fn create(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let spec: ExperimentSpec = body_as(body, Code::BadExperiment)?;
    let spec = spec
        .validate()
        .map_err(|ExperimentError::InvalidSpec(why)| ApiError::new(Code::BadExperiment, why))?;
    let rec = with_log(&app, move |app, log| {
        for a in &spec.arms {
            app.arm_serving(&a.model)
                .map_err(|e| ApiError::new(Code::UnknownArm, format!("arm `{}`: {e}", a.name)))?;
        }
        let now = aisle_core::time::unix_now_ms();
        log.create_experiment(&spec, now)?.map_err(conflict)
    })
    .await?;
    reload(&app).await?;
    tracing::info!(
        experiment = rec.spec.name,
        surface = rec.spec.surface.name(),
        "experiment started"
    );
    Ok((StatusCode::CREATED, Json(ExperimentView::from(rec))).into_response())
}

pub(super) async fn list(State(app): State<Arc<App>>) -> ApiResult {
    let experiments = app
        .online
        .experiments()
        .into_iter()
        .map(ExperimentView::from)
        .collect();
    Ok(Json(ExperimentList { experiments }).into_response())
}

pub(super) async fn stop(
    State(app): State<Arc<App>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let name = path_id(name)?;
    let rec = with_log(&app, move |_, log| {
        log.stop_experiment(&name, aisle_core::time::unix_now_ms())?
            .map_err(conflict)
    })
    .await?;
    reload(&app).await?;
    tracing::info!(experiment = rec.spec.name, "experiment stopped");
    Ok(Json(ExperimentView::from(rec)).into_response())
}

pub(super) async fn report(
    State(app): State<Arc<App>>,
    name: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let name = path_id(name)?;
    // What was shown and clicked until now is in the log before the report reads it.
    let a = app.clone();
    tokio::task::spawn_blocking(move || a.online.flush())
        .await
        .map_err(ApiError::task)?;
    let report = with_log(&app, move |_, log| {
        let rec = log
            .experiment(&name)?
            .ok_or_else(|| conflict(ExperimentConflict::Unknown(name.clone())))?;
        Ok(aisle_store::online::experiment_report(log, &rec)?)
    })
    .await?;
    Ok(Json(report).into_response())
}

pub(super) async fn kpis(State(app): State<Arc<App>>, q: Params<KpiParams>) -> ApiResult {
    let Query(p) = q?;
    let (from, to) = super::query::time_range(&p.from, &p.to, aisle_store::online::DAY_MS)?;
    let surface = p.surface.clone().filter(|s| !s.is_empty());
    if let Some(s) = &surface {
        const SURFACES: [&str; 5] = ["recommendations", "session", "popular", "similar", "search"];
        if !SURFACES.contains(&s.as_str()) {
            return Err(ApiError::new(
                Code::BadQuery,
                format!("surface must be one of {}, not {s:?}", SURFACES.join(", ")),
            ));
        }
    }
    let a = app.clone();
    tokio::task::spawn_blocking(move || a.online.flush())
        .await
        .map_err(ApiError::task)?;
    let k = with_log(&app, move |_, log| {
        Ok(log.kpis(from, to, surface.as_deref())?)
    })
    .await?;
    Ok(Json(k).into_response())
}
