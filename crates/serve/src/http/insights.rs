//! What the operator's console shows, as API routes a script can call too:
//! `GET /v1/admin/overview` (the shop and the server at a glance),
//! `GET /v1/admin/search/queries` (top and zero-result queries),
//! `GET /v1/admin/users/{id}` (one shopper: history and experiment arms).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::error::{path_id, ApiError, ApiResult, Code};
use super::query::{Params, QueryStatsParams};
use super::recs::serving_model;
use super::types::ModelRef;
use crate::{App, RouteSummary};

/// Seconds of event time that make a user "active".
pub const ACTIVE_WINDOW_S: i64 = 30 * 60;

/// `GET /v1/admin/overview`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub serving: ModelRef,
    /// `ok`, or `degraded` with a reason (popularity serves).
    pub status: &'static str,
    pub degraded_reason: Option<String>,
    /// Items in the catalog (not deleted).
    pub catalog_items: u64,
    /// Users with at least one event.
    pub users: u64,
    /// Users with an event in the 30 minutes before the latest event.
    pub active_users: u64,
    /// Events in memory (the store's, and those acknowledged since).
    pub events: u64,
    /// Events acknowledged since the server started.
    pub events_ingested: u64,
    /// Events and requests per minute over the last hour, oldest first.
    pub per_minute: Vec<MinuteCount>,
    /// Requests in the last full minute.
    pub requests_last_minute: u64,
    /// Per route since the server started.
    pub routes: Vec<RouteSummary>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MinuteCount {
    /// Unix seconds at the minute's start.
    pub minute: i64,
    pub events: u64,
    pub requests: u64,
}

/// The overview, as the route answers it (and the console renders it).
pub fn overview(app: &App) -> Overview {
    let (catalog_items, users, active_users, events) = {
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        let catalog = live
            .catalog
            .iter()
            .zip(&live.deleted)
            .filter(|(c, d)| c.is_some() && !**d)
            .count();
        (
            catalog as u64,
            live.users.len() as u64,
            live.active_users(ACTIVE_WINDOW_S) as u64,
            live.events,
        )
    };
    let per_minute: Vec<MinuteCount> = app
        .metrics
        .per_minute()
        .into_iter()
        .map(|(m, e, r)| MinuteCount {
            minute: m * 60,
            events: e,
            requests: r,
        })
        .collect();
    let requests_last_minute = per_minute
        .len()
        .checked_sub(2)
        .map_or(0, |i| per_minute[i].requests);
    let degraded_reason = app.degraded();
    Overview {
        serving: serving_model(app),
        status: if degraded_reason.is_some() {
            "degraded"
        } else {
            "ok"
        },
        degraded_reason,
        catalog_items,
        users,
        active_users,
        events,
        events_ingested: app
            .metrics
            .events_ingested
            .load(std::sync::atomic::Ordering::Relaxed),
        per_minute,
        requests_last_minute,
        routes: app.metrics.routes(),
    }
}

pub(super) async fn get_overview(State(app): State<Arc<App>>) -> ApiResult {
    Ok(Json(overview(&app)).into_response())
}

/// Searches by query over a time range.
pub fn search_queries(
    app: &App,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> Result<aisle_store::online::QueryStats, ApiError> {
    app.online.flush();
    let log = app.online.reader.lock().unwrap_or_else(|e| e.into_inner());
    Ok(log.search_queries(from_ms, to_ms, limit)?)
}

/// The `limit` parameter of the query lists.
pub(super) fn limit_of(v: Option<&str>) -> Result<usize, ApiError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(20),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadQuery,
                    format!("limit must be a whole number from 1 to 1000, not {s:?}"),
                )
            }),
    }
}

pub(super) async fn get_search_queries(
    State(app): State<Arc<App>>,
    q: Params<QueryStatsParams>,
) -> ApiResult {
    let Query(p) = q?;
    let (from, to) = super::query::time_range(&p.from, &p.to, 7 * aisle_store::online::DAY_MS)?;
    let limit = limit_of(p.limit.as_deref())?;
    let out = tokio::task::spawn_blocking(move || search_queries(&app, from, to, limit))
        .await
        .map_err(ApiError::task)??;
    Ok(Json(out).into_response())
}

/// `GET /v1/admin/users/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Shopper {
    pub user_id: String,
    /// Whether any event of theirs is stored.
    pub known: bool,
    /// Their latest events, newest first (at most 100).
    pub events: Vec<ShopperEvent>,
    /// The arm each running experiment serves them (`interleaved` for an
    /// interleaving experiment: both arms, per request).
    pub experiments: Vec<ShopperArm>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopperEvent {
    /// Unix seconds.
    pub ts: i64,
    pub event_type: String,
    pub item_id: String,
    pub title: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopperArm {
    pub experiment: String,
    pub surface: &'static str,
    pub arm: String,
}

/// One shopper, as the route answers it.
pub fn shopper(app: &App, user: &str) -> Result<Shopper, ApiError> {
    let stored = app
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .user_events(user, 100)?;
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let title = |item: &str| live.catalog_item(item).and_then(|c| c.title.clone());
    let mut events: Vec<ShopperEvent> = stored
        .iter()
        .map(|e| ShopperEvent {
            ts: e.event.ts,
            event_type: e.event.event_type.as_str().to_string(),
            title: title(&e.event.item),
            item_id: e.event.item.clone(),
        })
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.ts));
    let experiments = app
        .online
        .experiments()
        .into_iter()
        .filter(|r| r.running())
        .map(|r| ShopperArm {
            surface: r.spec.surface.name(),
            arm: match r.spec.mode {
                aisle_experiment::Mode::Interleave => "interleaved".to_string(),
                aisle_experiment::Mode::Ab => r.spec.arms[r.spec.assign(user)].name.clone(),
            },
            experiment: r.spec.name,
        })
        .collect();
    Ok(Shopper {
        user_id: user.to_string(),
        known: !stored.is_empty(),
        events,
        experiments,
    })
}

pub(super) async fn get_shopper(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let user = path_id(id)?;
    let out = tokio::task::spawn_blocking(move || shopper(&app, &user))
        .await
        .map_err(ApiError::task)??;
    Ok(Json(out).into_response())
}
