//! The OpenAPI document served at `GET /openapi.json`, generated (utoipa)
//! from the request and response types of this module's siblings. Each
//! operation below is the documentation of the handler the router mounts
//! at that path (a test checks that the two lists are the same and that
//! every route answers what its operation says).

#![allow(dead_code)] // the functions below exist for their `utoipa::path` attributes

use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::admin::PromoteBody;
use super::items::ItemBody;
use super::query::{FilterParams, KpiParams, SearchParams, SuggestParams, UserRecsParams};
use super::recs::SessionBody;
use super::types::*;
use super::users::AliasBody;
use crate::jobs::{Job, JobStatus, JobsView, Scheduler, Trigger};
use crate::search::{
    FacetCount, Facets, PersonalBoost, QueryInfo, SearchHit, SearchResults, SemanticMatch, Why,
};

/// One behaviour event from a client (the fields `aisle_ingest::api::ApiEvent` reads).
#[derive(ToSchema)]
struct Event {
    /// A string or a number, at most 256 bytes.
    #[schema(value_type = String)]
    user_id: String,
    #[schema(value_type = String)]
    item_id: String,
    /// view, click, cart, purchase, ... (alias `event_type`).
    r#type: String,
    /// Unix seconds or an RFC 3339 string; server time when absent.
    #[schema(value_type = Option<String>)]
    timestamp: Option<String>,
    /// Client id for idempotency.
    event_id: Option<String>,
    quantity: Option<f64>,
    price: Option<f64>,
    session_id: Option<String>,
    /// The `request_id` of the list the event came from.
    request_id: Option<String>,
    /// The item's 1-based position in that list.
    position: Option<u32>,
    /// A purchase's value (GMV); price × quantity when absent.
    value: Option<f64>,
}

/// `POST /v1/admin/experiments`.
#[derive(ToSchema)]
struct ExperimentIn {
    /// 1-64 letters, digits, `-` or `_`.
    name: String,
    /// recommendations, search or similar.
    surface: String,
    /// ab or interleave.
    mode: String,
    arms: Vec<ArmIn>,
    /// Hashed with the user id for the assignment (default: the name).
    salt: Option<String>,
    /// ctr (default), cvr, cart_rate or gmv_per_user.
    primary_metric: Option<String>,
    /// The smallest relative lift worth detecting (default 0.05).
    min_detectable_lift: Option<f64>,
}

#[derive(ToSchema)]
struct ArmIn {
    name: String,
    /// `pop`, `promoted`, a registry version or a model kind.
    model: String,
    /// Percent of users (A/B; the arms sum to 100).
    traffic: Option<f64>,
}

/// An estimate with its 95% interval.
#[derive(ToSchema)]
struct EstimateOut {
    value: f64,
    low: f64,
    high: f64,
}

#[derive(ToSchema)]
struct ArmOut {
    name: String,
    users: u64,
    impressions: u64,
    clicks: u64,
    carts: u64,
    purchases: u64,
    gmv: f64,
    ctr: Option<EstimateOut>,
    cart_rate: Option<EstimateOut>,
    cvr: Option<EstimateOut>,
    gmv_per_user: Option<EstimateOut>,
}

#[derive(ToSchema)]
struct ComparisonOut {
    arm: String,
    metric: String,
    lift: f64,
    low: f64,
    high: f64,
    p_value: f64,
    always_valid_p_value: f64,
    #[schema(value_type = Option<Object>)]
    cuped: Option<String>,
}

#[derive(ToSchema)]
struct SrmOut {
    p_value: f64,
    flagged: bool,
}

/// `GET /v1/admin/experiments/{name}/report`.
#[derive(ToSchema)]
struct ReportOut {
    experiment: String,
    mode: String,
    primary_metric: String,
    arms: Vec<ArmOut>,
    comparisons: Vec<ComparisonOut>,
    srm: SrmOut,
    #[schema(value_type = Option<Object>)]
    interleaving: Option<String>,
    /// winner, no_detectable_difference, keep_running or sample_ratio_mismatch.
    verdict: String,
    winner: Option<String>,
    users_needed: Option<u64>,
    looks: u32,
}

/// A batch of events.
#[derive(ToSchema)]
struct EventBatch {
    events: Vec<Event>,
}

/// `POST /v1/events` takes one event or a batch.
#[derive(ToSchema)]
#[allow(clippy::large_enum_variant)]
enum EventsIn {
    One(Event),
    Batch(EventBatch),
}

const ERRORS: &str = "an error: `{\"error\": {\"code\", \"message\"}}`";

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Ready), (status = "default", description = ERRORS, body = ErrorBody)))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = "default", description = ERRORS, body = ErrorBody)))]
fn metrics() {}

#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = EventsIn,
    responses((status = 200, description = "durable before the answer", body = EventsAccepted),
        (status = "default", description = ERRORS, body = ErrorBody)))]
fn post_events() {}

#[utoipa::path(get, path = "/v1/users/{id}/recommendations", tag = "recommendations",
    params(("id" = String, Path, description = "user id"), UserRecsParams),
    responses((status = 200, body = UserRecs), (status = "default", description = ERRORS, body = ErrorBody)))]
fn user_recs() {}

#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserErased), (status = "default", description = ERRORS, body = ErrorBody)))]
fn delete_user() {}

#[utoipa::path(post, path = "/v1/users/{id}/aliases", tag = "users", request_body = AliasBody,
    params(("id" = String, Path, description = "user id")),
    responses((status = 201, description = "linked: the alias's events are the user's from now on", body = AliasLinked),
        (status = 200, description = "already linked (nothing changed)", body = AliasLinked),
        (status = 409, description = "alias_conflict: the alias is another user's, or the link would chain", body = ErrorBody),
        (status = "default", description = ERRORS, body = ErrorBody)))]
fn post_alias() {}

#[utoipa::path(get, path = "/v1/users/{id}/aliases", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserAliases), (status = "default", description = ERRORS, body = ErrorBody)))]
fn get_aliases() {}

#[utoipa::path(delete, path = "/v1/users/{id}/aliases/{alias}", tag = "users",
    params(("id" = String, Path, description = "user id"), ("alias" = String, Path, description = "the alias to unlink")),
    responses((status = 200, description = "unlinked: each id keeps its own events", body = AliasLinked),
        (status = 404, description = "unknown_alias: not an alias of this user", body = ErrorBody),
        (status = "default", description = ERRORS, body = ErrorBody)))]
fn delete_alias() {}

#[utoipa::path(get, path = "/v1/items/{id}/similar", tag = "recommendations",
    params(("id" = String, Path, description = "item id"), FilterParams),
    responses((status = 200, body = ItemList), (status = "default", description = ERRORS, body = ErrorBody)))]
fn similar() {}

#[utoipa::path(get, path = "/v1/items/{id}", tag = "items",
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemView), (status = "default", description = ERRORS, body = ErrorBody)))]
fn get_item() {}

#[utoipa::path(put, path = "/v1/items/{id}", tag = "items", request_body = ItemBody,
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemStored), (status = "default", description = ERRORS, body = ErrorBody)))]
fn put_item() {}

#[utoipa::path(delete, path = "/v1/items/{id}", tag = "items",
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemDeleted), (status = "default", description = ERRORS, body = ErrorBody)))]
fn delete_item() {}

#[utoipa::path(post, path = "/v1/sessions/recommendations", tag = "recommendations",
    request_body = SessionBody, params(FilterParams),
    responses((status = 200, body = SessionRecs), (status = "default", description = ERRORS, body = ErrorBody)))]
fn session_recs() {}

#[utoipa::path(get, path = "/v1/popular", tag = "recommendations", params(FilterParams),
    responses((status = 200, body = ItemList), (status = "default", description = ERRORS, body = ErrorBody)))]
fn popular() {}

#[utoipa::path(get, path = "/v1/search", tag = "search", params(SearchParams),
    responses((status = 200, body = SearchResults), (status = "default", description = ERRORS, body = ErrorBody)))]
fn search() {}

#[utoipa::path(get, path = "/v1/search/suggest", tag = "search", params(SuggestParams),
    responses((status = 200, body = Suggestions), (status = "default", description = ERRORS, body = ErrorBody)))]
fn suggest() {}

#[utoipa::path(get, path = "/v1/admin/models", tag = "admin",
    responses((status = 200, body = Models), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_models() {}

#[utoipa::path(post, path = "/v1/admin/models/reload", tag = "admin",
    responses((status = 200, body = Serving), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_reload() {}

#[utoipa::path(post, path = "/v1/admin/models/promote", tag = "admin", request_body = PromoteBody,
    responses((status = 200, body = Serving), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_promote() {}

#[utoipa::path(post, path = "/v1/admin/models/rollback", tag = "admin",
    responses((status = 200, body = Serving), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_rollback() {}

#[utoipa::path(get, path = "/v1/admin/overview", tag = "admin",
    responses((status = 200, body = super::insights::Overview), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_overview() {}

#[utoipa::path(get, path = "/v1/admin/data", tag = "admin",
    responses((status = 200, body = super::data::DataReport), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_data() {}

#[utoipa::path(get, path = "/v1/admin/evaluation", tag = "admin",
    responses((status = 200, body = super::data::Evaluation), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_evaluation() {}

#[utoipa::path(get, path = "/v1/admin/search/queries", tag = "search", params(super::query::QueryStatsParams),
    responses((status = 200, description = "searches, zero-result searches, the top queries and the top zero-result queries with their clicks", body = Object),
        (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_search_queries() {}

#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = super::insights::Shopper), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_shopper() {}

#[utoipa::path(get, path = "/v1/admin/experiments", tag = "experiments",
    responses((status = 200, body = super::experiments::ExperimentList), (status = "default", description = ERRORS, body = ErrorBody)))]
fn experiments_list() {}

#[utoipa::path(post, path = "/v1/admin/experiments", tag = "experiments", request_body = ExperimentIn,
    responses((status = 201, body = super::experiments::ExperimentView), (status = "default", description = ERRORS, body = ErrorBody)))]
fn experiments_create() {}

#[utoipa::path(get, path = "/v1/admin/experiments/{name}/report", tag = "experiments",
    params(("name" = String, Path, description = "experiment name")),
    responses((status = 200, body = ReportOut), (status = "default", description = ERRORS, body = ErrorBody)))]
fn experiments_report() {}

#[utoipa::path(post, path = "/v1/admin/experiments/{name}/stop", tag = "experiments",
    params(("name" = String, Path, description = "experiment name")),
    responses((status = 200, body = super::experiments::ExperimentView), (status = "default", description = ERRORS, body = ErrorBody)))]
fn experiments_stop() {}

#[utoipa::path(get, path = "/v1/admin/kpis", tag = "experiments", params(KpiParams),
    responses((status = 200, description = "impressions, clicks, CTR (by position), attributed and total GMV, zero-result rate", body = Object),
        (status = "default", description = ERRORS, body = ErrorBody)))]
fn kpis() {}

#[utoipa::path(get, path = "/v1/admin/jobs", tag = "admin",
    responses((status = 200, body = JobsView), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_jobs() {}

#[utoipa::path(post, path = "/v1/admin/jobs", tag = "admin",
    responses((status = 202, body = JobQueued), (status = "default", description = ERRORS, body = ErrorBody)))]
fn admin_run_job() {}

#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "this document (OpenAPI 3.1)"),
        (status = "default", description = ERRORS, body = ErrorBody)))]
fn openapi_json() {}

/// Keys: `x-api-key` or `Authorization: Bearer` (every route but health).
struct Keys;

impl Modify for Keys {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Aisle", description = "E-commerce search and recommendation engine: events in, recommendations and search out."),
    paths(healthz, readyz, metrics, post_events, user_recs, delete_user, post_alias, get_aliases,
        delete_alias, similar, get_item,
        put_item, delete_item, session_recs, popular, search, suggest, admin_models,
        admin_reload, admin_promote, admin_rollback, admin_overview, admin_data, admin_evaluation, admin_search_queries,
        admin_shopper, admin_jobs, admin_run_job, experiments_list,
        experiments_create, experiments_report, experiments_stop, kpis, openapi_json),
    components(schemas(ErrorBody, ErrorDetail, Job, JobStatus, Trigger, Scheduler, JobsView,
        SearchResults, SearchHit, Why, SemanticMatch, PersonalBoost, Facets, FacetCount, QueryInfo,
        Event, EventBatch, crate::RouteSummary, super::insights::MinuteCount,
        super::insights::ShopperEvent, super::insights::ShopperArm)),
    modifiers(&Keys),
    security(("api_key" = []), ("bearer" = [])),
)]
struct ApiDoc;

/// The document as JSON (built once).
pub fn document() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or_default())
}

/// `GET /openapi.json`.
pub(super) async fn openapi_json_route() -> axum::response::Response {
    Json(document()).into_response()
}
