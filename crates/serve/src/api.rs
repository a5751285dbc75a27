//! Routes and handlers. Every error is a 4xx (or 5xx for a broken store)
//! with `{"error":{"code","message"}}`; nothing is half-written: a batch of
//! events is validated whole before one durable append.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use aisle_core::CatalogItem;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::Live;
use crate::{auth, App, ServeError};

/// An API error: status, stable code, message.
pub struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, code, msg.into())
    }
    fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, "not_found", msg.into())
    }
}

impl ApiError {
    /// What the client is told. A 500's message (an internal error's own
    /// text: paths, SQL, library messages) goes to the log under a
    /// reference, and the client gets only the reference.
    fn client_message(self) -> String {
        if !self.0.is_server_error() || self.0 == StatusCode::SERVICE_UNAVAILABLE {
            return self.2;
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let reference = format!("{:016x}", aisle_core::hash::mix(nanos ^ n.rotate_left(40)));
        tracing::error!(%reference, code = self.1, error = %self.2, "internal error");
        format!("internal error (reference {reference}); the details are in the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.0, self.1);
        let message = self.client_message();
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> ApiError {
        match e {
            ServeError::BadRequest(m) => ApiError::bad("bad_request", m),
            ServeError::NotFound(m) => ApiError::not_found(m),
            ServeError::Unauthorized(m) => ApiError(StatusCode::UNAUTHORIZED, "unauthorized", m),
            ServeError::Store(e) => {
                tracing::error!(error = %e, "store error");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store could not complete the request (see the server log); nothing was acknowledged".into(),
                )
            }
            // Logged (with the reference the client sees) by `client_message`.
            other => ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_body"
        };
        ApiError(status, code, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad("bad_query", e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::bad("bad_path", e.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

/// A user or item id from the path: at most 256 bytes, no control
/// characters (400 `bad_id` otherwise).
fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id?;
    match aisle_core::id_problem(&id) {
        None => Ok(id),
        Some(why) => Err(ApiError::bad("bad_id", format!("the id in the path {why}"))),
    }
}
type Q = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The API.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.cfg.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/events", post(post_events))
        .route("/v1/users/{id}/recommendations", get(user_recs))
        .route("/v1/users/{id}", axum::routing::delete(delete_user))
        .route("/v1/items/{id}/similar", get(similar))
        .route(
            "/v1/items/{id}",
            get(get_item).put(put_item).delete(delete_item),
        )
        .route("/v1/sessions/recommendations", post(session_recs))
        .route("/v1/popular", get(popular))
        .route("/v1/search", get(search))
        .route("/v1/search/suggest", get(suggest))
        .route("/v1/admin/models", get(admin_models))
        .route("/v1/admin/models/reload", post(admin_reload))
        .route("/v1/admin/models/promote", post(admin_promote))
        .route("/v1/admin/jobs", get(admin_jobs).post(admin_run_job))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route".into(),
            )
        })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// An error response with CORS headers for an allowed origin.
fn with_cors(mut r: Response, cors: Option<&str>) -> Response {
    if let Some(origin) = cors {
        if let Ok(v) = header::HeaderValue::from_str(origin) {
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                header::HeaderValue::from_static("retry-after"),
            );
            h.append(header::VARY, header::HeaderValue::from_static("origin"));
        }
    }
    r
}

fn rate_limited(wait: f64, msg: &str) -> Response {
    let mut r = ApiError(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{msg}; retry in {wait:.3} s"),
    )
    .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(wait.ceil().max(1.0) as u64),
    );
    r
}

fn peer_ip(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or("anonymous".to_string(), |c| c.0.ip().to_string())
}

/// Everything a request passes before its handler, in order: browser
/// checks (Host in development mode, Origin, CORS preflight), the key and
/// its scope (failures rate-limited per peer), the client's rate limit, the
/// body's size (413 before any `100 Continue`), its content type (415) and
/// its arrival within the body timeout (408); then per-route latency
/// metrics. Health routes skip all of it.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let t = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let resp = match admit(&app, &route, req).await {
        Ok((req, cors)) => with_cors(next.run(req).await, cors.as_deref()),
        Err(r) => r,
    };
    app.metrics
        .observe(&route, resp.status().as_u16(), t.elapsed().as_secs_f64());
    resp
}

/// The checks of `guard`: the request (its body read) and the origin to
/// answer with CORS headers, or the response that refuses it.
async fn admit(
    app: &Arc<App>,
    route: &str,
    req: Request,
) -> Result<(Request, Option<String>), Response> {
    let Some(scope) = auth::required_scope(req.method(), route) else {
        return Ok((req, None));
    };
    let open = !app.keys.enforced();
    let cors = match auth::check_origin(req.headers(), open, &app.cfg.cors_origins) {
        auth::OriginCheck::Ok => None,
        auth::OriginCheck::Cors(o) => Some(o),
        auth::OriginCheck::Refused(why) => {
            let code = if why.starts_with("Host") {
                "forbidden_host"
            } else {
                "forbidden_origin"
            };
            return Err(ApiError(StatusCode::FORBIDDEN, code, why).into_response());
        }
    };
    let cors_ref = cors.as_deref();
    // A CORS preflight carries no key; answer it for allowed origins.
    if req.method() == axum::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let Some(origin) = cors_ref else {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "a CORS preflight needs an allowed Origin".into(),
            )
            .into_response());
        };
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::HeaderValue::from_static("GET, POST, PUT, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::HeaderValue::from_static("content-type, x-api-key, authorization"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            header::HeaderValue::from_static("600"),
        );
        return Err(with_cors(r, Some(origin)));
    }
    let refuse = |r: Response| with_cors(r, cors_ref);
    // Keys and scopes.
    let ip = peer_ip(&req);
    let client = if open {
        format!("ip:{ip}")
    } else {
        if let Err(wait) = app.auth_failures.peek(&ip) {
            return Err(refuse(rate_limited(
                wait,
                "too many failed authentications from this address",
            )));
        }
        match auth::presented_key(req.headers()).and_then(|k| app.keys.check(k)) {
            Some((i, have)) if have >= scope => format!("key:{i}"),
            Some((_, have)) => {
                return Err(refuse(
                    ApiError(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!(
                            "this key has the {} scope; {} {route} needs {}",
                            have.as_str(),
                            req.method(),
                            scope.as_str()
                        ),
                    )
                    .into_response(),
                ))
            }
            None => {
                let _ = app.auth_failures.check(&ip);
                return Err(refuse(
                    ApiError(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "missing or invalid API key (x-api-key header or Authorization: Bearer)"
                            .into(),
                    )
                    .into_response(),
                ));
            }
        }
    };
    if let Some(l) = &app.limiter {
        if let Err(wait) = l.check(&client) {
            return Err(refuse(rate_limited(
                wait,
                "too many requests from this client",
            )));
        }
    }
    // The body: size, type, arrival.
    let limit = app.cfg.max_body_bytes;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > limit as u64) {
        return Err(refuse(too_large(limit)));
    }
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(app.cfg.body_timeout, axum::body::to_bytes(body, limit)).await {
            Err(_) => {
                return Err(refuse(
                    ApiError(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "the request body did not arrive within {} s",
                            app.cfg.body_timeout.as_secs_f64()
                        ),
                    )
                    .into_response(),
                ))
            }
            Ok(Err(e)) => {
                let e = e.into_inner();
                return Err(refuse(if e.is::<http_body_util::LengthLimitError>() {
                    too_large(limit)
                } else {
                    ApiError::bad("bad_body", format!("reading the body: {e}")).into_response()
                }));
            }
            Ok(Ok(b)) => b,
        };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let writes = matches!(
        parts.method,
        axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
    );
    let json_ok = match &content_type {
        Some(ct) => auth::is_json(ct),
        None => bytes.is_empty(),
    };
    if writes && !json_ok {
        return Err(refuse(
            ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "a request body must be JSON with Content-Type: application/json (got {})",
                    content_type.as_deref().unwrap_or("no Content-Type")
                ),
            )
            .into_response(),
        ));
    }
    Ok((
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        cors,
    ))
}

fn too_large(limit: usize) -> Response {
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {limit} bytes"),
    )
    .into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready (200) while the server can answer; `status` is `degraded` with a
/// `reason` when the promoted model was refused and popularity serves.
async fn readyz(State(app): State<Arc<App>>) -> Json<Value> {
    let s = app.current();
    let mut body =
        json!({"ready": true, "status": "ok", "model": {"name": s.name, "version": s.version}});
    if let Some(why) = app.degraded() {
        body["status"] = json!("degraded");
        body["reason"] = json!(why);
    }
    Json(body)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let s = app.current();
    let events = app.live.read().unwrap_or_else(|e| e.into_inner()).events;
    let mut text = app.metrics.render(&s.name, &s.version, events);
    app.jobs.render_metrics(&mut text);
    {
        use std::fmt::Write;
        let (evicted, refused) = app.conns.shed();
        let _ = writeln!(text, "# TYPE aisle_connections_open gauge");
        let _ = writeln!(text, "aisle_connections_open {}", app.conns.open());
        let _ = writeln!(text, "# TYPE aisle_connections_shed_total counter");
        let _ = writeln!(
            text,
            "aisle_connections_shed_total{{reason=\"evicted_idle\"}} {evicted}"
        );
        let _ = writeln!(
            text,
            "aisle_connections_shed_total{{reason=\"refused_all_busy\"}} {refused}"
        );
        let _ = writeln!(text, "# TYPE aisle_ready gauge");
        let _ = writeln!(
            text,
            "aisle_ready{{status=\"{}\"}} 1",
            if app.degraded().is_some() {
                "degraded"
            } else {
                "ok"
            }
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn body_json(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad("malformed_json", e.to_string()))
}

async fn post_events(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let v = body_json(body)?;
    let list: Vec<Value> = match v {
        Value::Object(mut o) if o.contains_key("events") => {
            if o.len() != 1 {
                return Err(ApiError::bad(
                    "bad_events",
                    "a batch is {\"events\": [...]} and nothing else",
                ));
            }
            match o.remove("events") {
                Some(Value::Array(a)) => a,
                _ => return Err(ApiError::bad("bad_events", "`events` must be an array")),
            }
        }
        Value::Object(o) => vec![Value::Object(o)],
        _ => {
            return Err(ApiError::bad(
                "bad_events",
                "expected an event object or {\"events\": [...]}",
            ))
        }
    };
    if list.is_empty() {
        return Err(ApiError::bad("bad_events", "no events"));
    }
    if list.len() > app.cfg.max_batch {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} events; at most {} per request",
                list.len(),
                app.cfg.max_batch
            ),
        ));
    }
    let now = aisle_core::time::unix_now();
    let mut events = Vec::with_capacity(list.len());
    for (i, ev) in list.into_iter().enumerate() {
        let raw = ev.to_string();
        let parsed: aisle_ingest::api::ApiEvent = serde_json::from_value(ev)
            .map_err(|e| ApiError::bad("bad_event", format!("events[{i}]: {e}")))?;
        let counter = app.counter.fetch_add(1, Ordering::Relaxed);
        events.push(
            aisle_ingest::api::to_event(parsed, raw.as_bytes(), now, counter, app.nonce)
                .map_err(|m| ApiError::bad("bad_event", format!("events[{i}]: {m}")))?,
        );
    }
    let n = events.len();
    // One durable transaction, then the in-memory view (see `write`).
    let app2 = app.clone();
    let inserted = write(
        &app,
        move |store| Ok((store.append_detailed(&events)?, events)),
        move |live, (fresh, events)| {
            let mut k = 0;
            for (e, f) in events.iter().zip(&fresh) {
                if *f {
                    live.apply(e);
                    if let Some(p) = &app2.purchase {
                        let facts = live
                            .index
                            .get(&e.item)
                            .and_then(|&i| live.catalog[i as usize].as_ref())
                            .map(aisle_features::behaviour::ItemFacts::from)
                            .unwrap_or_default();
                        let seq = app2.counter.fetch_add(1, Ordering::Relaxed) as i64;
                        p.observe(e, seq, facts);
                    }
                    k += 1;
                }
            }
            k
        },
    )
    .await?;
    app.metrics
        .events_ingested
        .fetch_add(inserted as u64, Ordering::Relaxed);
    Ok(
        Json(json!({"accepted": n, "inserted": inserted, "duplicates": n - inserted}))
            .into_response(),
    )
}

/// Common query parameters of list endpoints.
struct ListQuery {
    k: usize,
    category: Option<String>,
    price_min: Option<f64>,
    price_max: Option<f64>,
    exclude_purchased: bool,
    experiment: Option<String>,
    /// Re-rank model candidates by the purchase model (when one is loaded).
    rerank: bool,
}

/// A boolean query parameter: absent = `default`; `true`, `1` or empty (a
/// bare `?name`) = true; `false` or `0` = false; anything else is a 400.
fn flag(q: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(ApiError::bad(
            "bad_query",
            format!("{name} must be true or false, not {other:?}"),
        )),
    }
}

fn list_query(app: &App, q: Q, allowed: &[&str]) -> Result<ListQuery, ApiError> {
    let Query(q) = q?;
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad(
                "bad_query",
                format!("unknown parameter `{k}` (known: {})", allowed.join(", ")),
            ));
        }
    }
    let k = match q.get("k") {
        None => 10,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(k) if k >= 1 && k as usize <= app.cfg.max_k => k as usize,
            _ => {
                return Err(ApiError::bad(
                    "bad_k",
                    format!("k must be an integer from 1 to {}", app.cfg.max_k),
                ))
            }
        },
    };
    let price = |name: &str| -> Result<Option<f64>, ApiError> {
        match q.get(name) {
            None => Ok(None),
            Some(s) => match s.trim().parse::<f64>() {
                Ok(p) if p.is_finite() && p >= 0.0 => Ok(Some(p)),
                _ => Err(ApiError::bad(
                    "bad_price",
                    format!("{name} must be a non-negative number"),
                )),
            },
        }
    };
    let exclude_purchased = flag(&q, "exclude_purchased", false)?;
    Ok(ListQuery {
        k,
        category: q.get("category").filter(|c| !c.is_empty()).cloned(),
        price_min: price("price_min")?,
        price_max: price("price_max")?,
        exclude_purchased,
        experiment: q.get("experiment").filter(|c| !c.is_empty()).cloned(),
        rerank: flag(&q, "rerank", true)?,
    })
}

impl ListQuery {
    fn allows(
        &self,
        live: &Live,
        i: u32,
        purchased: Option<&std::collections::HashSet<u32>>,
    ) -> bool {
        if !live.passes(i, self.category.as_deref(), self.price_min, self.price_max) {
            return false;
        }
        if self.exclude_purchased && purchased.is_some_and(|s| s.contains(&i)) {
            return false;
        }
        true
    }
}

fn item_json(live: &Live, i: u32, score: f32, source: &str, reason: String) -> Value {
    json!({"item_id": live.items[i as usize], "score": score, "source": source, "reason": reason})
}

/// Popular items passing the filter, skipping `taken`.
fn popular_items(
    live: &Live,
    q: &ListQuery,
    k: usize,
    purchased: Option<&std::collections::HashSet<u32>>,
    taken: &[u32],
) -> Vec<Value> {
    let scores = &live.popularity;
    aisle_eval::top_k(scores, k, |i| {
        taken.contains(&(i as u32)) || !q.allows(live, i as u32, purchased)
    })
    .into_iter()
    .map(|i| {
        let reason = match live.category(i) {
            Some(c) => format!("popular in {c}"),
            None => "popular in the shop".to_string(),
        };
        item_json(live, i, scores[i as usize], "popularity", reason)
    })
    .collect()
}

/// Model recommendations after `history` (live indices), topped up with
/// popular items. Returns (items, unknown history entries).
/// Model candidates the purchase model re-ranks (at least; 5·k when larger).
const RERANK_CANDIDATES: usize = 50;

#[allow(clippy::too_many_arguments)]
fn recommend(
    app: &App,
    live: &Live,
    q: &ListQuery,
    user: Option<&str>,
    history: &[u32],
    purchased: Option<&std::collections::HashSet<u32>>,
    use_model: bool,
) -> (Vec<Value>, usize) {
    let serving = app.current();
    let mut out = Vec::new();
    let mut taken = Vec::new();
    let mut unknown = 0;
    if let (Some(model), true) = (&serving.model, use_model && !history.is_empty()) {
        let hist = serving.known_history(live, history);
        unknown = history.len() - hist.len();
        if !hist.is_empty() {
            let mut scores = vec![0f32; model.n_items];
            model.score_history(&hist, &mut scores);
            let last = live.title(*history.last().expect("non-empty"));
            // With the purchase model: a wider candidate list, re-ranked.
            let rerank = app.purchase.as_ref().filter(|_| q.rerank && user.is_some());
            let n = if rerank.is_some() {
                (q.k * 5).max(RERANK_CANDIDATES)
            } else {
                q.k
            };
            let mut top = aisle_eval::top_k(&scores, n, |j| {
                match live.index.get(&serving.model_items[j]) {
                    Some(&li) => !q.allows(live, li, purchased),
                    None => true,
                }
            });
            let mut prob: Vec<Option<f64>> = vec![None; top.len()];
            if let (Some(p), Some(user)) = (rerank, user) {
                let ids: Vec<&str> = top
                    .iter()
                    .map(|&j| serving.model_items[j as usize].as_str())
                    .collect();
                let (probs, _) = p.probabilities(user, &ids, aisle_core::time::unix_now() + 1);
                let mut order: Vec<usize> = (0..top.len()).collect();
                order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
                order.truncate(q.k);
                prob = order.iter().map(|&o| Some(probs[o])).collect();
                top = order.iter().map(|&o| top[o]).collect();
            }
            for (j, p) in top.into_iter().zip(prob) {
                let li = live.index[&serving.model_items[j as usize]];
                taken.push(li);
                let mut v = item_json(
                    live,
                    li,
                    scores[j as usize],
                    &serving.name,
                    format!("follows your recent interest in {last}"),
                );
                if let Some(p) = p {
                    v["purchase_probability"] = json!(p);
                    v["source"] = json!(format!("{}+ranker", serving.name));
                    v["reason"] = json!(format!(
                        "follows your recent interest in {last}; purchase probability {:.1}%",
                        p * 100.0
                    ));
                }
                out.push(v);
            }
        }
    }
    if out.len() < q.k {
        out.extend(popular_items(live, q, q.k - out.len(), purchased, &taken));
    }
    (out, unknown)
}

fn model_json(app: &App) -> Value {
    let s = app.current();
    json!({"name": s.name, "version": s.version})
}

async fn user_recs(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    q: Q,
) -> ApiResult {
    let id = path_id(id)?;
    let q = list_query(
        &app,
        q,
        &[
            "k",
            "category",
            "exclude_purchased",
            "price_min",
            "price_max",
            "experiment",
            "rerank",
        ],
    )?;
    // A/B: a stable half of the users of an experiment get popularity.
    let variant = q.experiment.as_ref().map(|e| {
        let h = aisle_core::hash::hash_fields([e.as_bytes(), id.as_bytes()]);
        if h % 2 == 0 {
            "model"
        } else {
            "popularity"
        }
    });
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let user = live.users.get(&id);
    let history = user.map_or(&[][..], |u| &u.history[..]);
    let purchased = user.map(|u| &u.purchased);
    let (items, unknown) = recommend(
        &app,
        &live,
        &q,
        Some(&id),
        history,
        purchased,
        variant != Some("popularity"),
    );
    let mut body = json!({
        "items": items,
        "model": model_json(&app),
        "user_known": user.is_some(),
        "history_items_unknown_to_model": unknown,
    });
    if let (Some(e), Some(v)) = (&q.experiment, variant) {
        body["experiment"] = json!({"name": e, "variant": v});
    }
    Ok(Json(body).into_response())
}

async fn session_recs(
    State(app): State<Arc<App>>,
    q: Q,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let q = list_query(&app, q, &["k", "category", "price_min", "price_max"])?;
    let v = body_json(body)?;
    let ids = v
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("bad_session", "expected {\"items\": [item ids...]}"))?;
    let k = match v.get("k") {
        None => q.k,
        Some(k) => k
            .as_u64()
            .filter(|&k| k >= 1 && k as usize <= app.cfg.max_k)
            .ok_or_else(|| {
                ApiError::bad(
                    "bad_k",
                    format!("k must be an integer from 1 to {}", app.cfg.max_k),
                )
            })? as usize,
    };
    let q = ListQuery { k, ..q };
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let mut history = Vec::new();
    let mut unknown_ids = 0;
    for id in ids {
        match aisle_ingest::api::id_string(id).and_then(|s| live.index.get(&s).copied()) {
            Some(i) => history.push(i),
            None => unknown_ids += 1,
        }
    }
    let (items, unknown) = recommend(&app, &live, &q, None, &history, None, true);
    Ok(Json(json!({
        "items": items,
        "model": model_json(&app),
        "unknown_items": unknown_ids + unknown,
    }))
    .into_response())
}

async fn popular(State(app): State<Arc<App>>, q: Q) -> ApiResult {
    let q = list_query(&app, q, &["k", "category", "price_min", "price_max"])?;
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let items = popular_items(&live, &q, q.k, None, &[]);
    Ok(
        Json(json!({"items": items, "model": {"name": "popularity", "version": "live"}}))
            .into_response(),
    )
}

async fn similar(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    q: Q,
) -> ApiResult {
    let id = path_id(id)?;
    let q = list_query(&app, q, &["k", "category", "price_min", "price_max"])?;
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    let Some(&li) = live.index.get(&id) else {
        return Err(ApiError::not_found(format!("unknown item {id:?}")));
    };
    let serving = app.current();
    let title = live.title(li);
    let mut items = Vec::new();
    if let (Some(model), Some(&mj)) = (&serving.model, serving.model_index.get(&id)) {
        let d = model.dim();
        let v = model.item_vectors();
        let norm = |r: &[f32]| r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let me = &v[mj as usize * d..(mj as usize + 1) * d];
        let nm = norm(me);
        let scores: Vec<f32> = v
            .chunks_exact(d)
            .map(|r| r.iter().zip(me).map(|(a, b)| a * b).sum::<f32>() / (norm(r) * nm))
            .collect();
        for j in aisle_eval::top_k(&scores, q.k, |j| {
            j == mj as usize
                || live
                    .index
                    .get(&serving.model_items[j])
                    .is_none_or(|&l| !q.allows(&live, l, None))
        }) {
            let l = live.index[&serving.model_items[j as usize]];
            items.push(item_json(
                &live,
                l,
                scores[j as usize],
                &serving.name,
                format!("often in the same sessions as {title}"),
            ));
        }
    }
    if items.len() < q.k {
        // Cold item (or no model): content similarity (title words, category).
        let taken: Vec<u32> = items
            .iter()
            .filter_map(|v| {
                v["item_id"]
                    .as_str()
                    .and_then(|s| live.index.get(s).copied())
            })
            .chain(std::iter::once(li))
            .collect();
        let scores = live.content_scores(li);
        let cat = live.category(li);
        for j in aisle_eval::top_k(&scores, q.k - items.len(), |j| {
            taken.contains(&(j as u32)) || !q.allows(&live, j as u32, None)
        }) {
            let words = live.shared_words(li, j);
            let same = cat.is_some() && live.category(j) == cat;
            let reason = match (words.is_empty(), same) {
                (false, true) => format!("\"{}\" like {title}, same category", words.join(" ")),
                (false, false) => format!("\"{}\" like {title}", words.join(" ")),
                (true, true) => format!("same category as {title}"),
                (true, false) => "popular in the shop".to_string(),
            };
            items.push(item_json(&live, j, scores[j as usize], "content", reason));
        }
    }
    Ok(Json(json!({"items": items, "model": model_json(&app)})).into_response())
}

async fn get_item(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    match live.index.get(&id) {
        Some(&i) if !live.deleted[i as usize] => {
            let c = live.catalog[i as usize].clone().unwrap_or(CatalogItem {
                id: id.clone(),
                in_stock: true,
                ..CatalogItem::default()
            });
            Ok(Json(json!({
                "item_id": c.id, "title": c.title, "description": c.description,
                "category": c.category, "price": c.price, "in_stock": c.in_stock,
                "interactions": live.popularity[i as usize],
            }))
            .into_response())
        }
        _ => Err(ApiError::not_found(format!("unknown item {id:?}"))),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    title: Option<String>,
    description: Option<String>,
    category: Option<String>,
    price: Option<f64>,
    in_stock: Option<bool>,
}

async fn put_item(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    if id.trim().is_empty() {
        return Err(ApiError::bad("bad_item", "item id must be 1 to 256 bytes"));
    }
    let v = body_json(body)?;
    let b: ItemBody =
        serde_json::from_value(v).map_err(|e| ApiError::bad("bad_item", e.to_string()))?;
    if b.price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(ApiError::bad(
            "bad_item",
            "price must be a non-negative number",
        ));
    }
    let item = CatalogItem {
        id: id.clone(),
        title: b.title,
        description: b.description,
        category: b.category,
        price: b.price,
        in_stock: b.in_stock.unwrap_or(true),
    };
    upsert(&app, item).await?;
    Ok((StatusCode::OK, Json(json!({"item_id": id, "stored": true}))).into_response())
}

/// Runs a change on a blocking thread under the store lock: first `durable`
/// on the store, then `apply` on the in-memory view, so memory and disk see
/// changes in the same order. The view's write lock is taken only after the
/// store has committed: readers never wait on a disk sync.
async fn write<R: Send + 'static, T: Send + 'static>(
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
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(out)
}

async fn upsert(app: &Arc<App>, item: CatalogItem) -> Result<(), ApiError> {
    write(
        app,
        {
            let app = app.clone();
            move |store| {
                store.upsert_items(std::slice::from_ref(&item))?;
                app.search.item_changed(&item, false);
                Ok(item)
            }
        },
        |live, item| {
            live.upsert_item(item);
        },
    )
    .await
}

async fn delete_item(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    let existing = {
        let live = app.live.read().unwrap_or_else(|e| e.into_inner());
        match live.index.get(&id) {
            Some(&i) if !live.deleted[i as usize] => live.catalog[i as usize].clone(),
            _ => return Err(ApiError::not_found(format!("unknown item {id:?}"))),
        }
    };
    // Stored as out of stock (the store keeps its events); never recommended.
    let item = CatalogItem {
        in_stock: false,
        ..existing.unwrap_or(CatalogItem {
            id: id.clone(),
            ..CatalogItem::default()
        })
    };
    let app2 = app.clone();
    write(
        &app,
        move |store| {
            store.upsert_items(std::slice::from_ref(&item))?;
            app2.search.item_changed(&item, true);
            Ok(item)
        },
        |live, item| {
            let i = live.upsert_item(item);
            live.deleted[i as usize] = true;
        },
    )
    .await?;
    Ok(Json(json!({"item_id": id, "deleted": true})).into_response())
}

/// `DELETE /v1/users/{id}`: erases the user everywhere (see
/// [`App::erase_user`]) and says what was removed.
async fn delete_user(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = path_id(id)?;
    let app2 = app.clone();
    let id2 = id.clone();
    let erased = tokio::task::spawn_blocking(move || app2.erase_user(&id2))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(Json(json!({
        "user_id": id,
        "deleted_events": erased.events,
        "erased": erased,
    }))
    .into_response())
}

async fn admin_models(State(app): State<Arc<App>>) -> ApiResult {
    let versions = match &app.registry {
        Some(r) => serde_json::to_value(r.list()?).unwrap_or(Value::Null),
        None => json!([]),
    };
    Ok(Json(json!({"serving": model_json(&app), "versions": versions})).into_response())
}

fn reload(app: &App, version: &str) -> Result<Value, ApiError> {
    let reg = app
        .registry
        .as_ref()
        .ok_or_else(|| ApiError::bad("no_registry", "this store has no model registry"))?;
    // A corrupt or incompatible artifact is refused; the old model keeps serving.
    let s = reg
        .path_of(version)
        .and_then(|p| crate::load_serving(&p, version))
        .map_err(|e| {
            ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_artifact",
                e.to_string(),
            )
        })?;
    app.swap(s);
    Ok(model_json(app))
}

async fn admin_reload(State(app): State<Arc<App>>) -> ApiResult {
    let v = app
        .registry
        .as_ref()
        .map(|r| r.promoted_name())
        .transpose()?
        .flatten()
        .ok_or_else(|| ApiError::bad("nothing_promoted", "no model is promoted"))?;
    let serving = tokio::task::spawn_blocking(move || reload(&app, &v))
        .await
        .map_err(|e| ServeError::Config(format!("reload task: {e}")))??;
    Ok(Json(json!({"serving": serving})).into_response())
}

async fn admin_promote(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let v = body_json(body)?;
    let version = v
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad(
                "bad_request",
                "expected {\"version\": \"FILE.safetensors\"}",
            )
        })?
        .to_string();
    let reg = app
        .registry
        .as_ref()
        .ok_or_else(|| ApiError::bad("no_registry", "this store has no model registry"))?;
    if !reg.path_of(&version).is_ok_and(|p| p.exists()) {
        return Err(ApiError::not_found(format!("no model version {version:?}")));
    }
    // Loading runs off the request workers so serving never waits on it;
    // `reload` swaps it in, then the promotion is recorded without a second load.
    let app2 = app.clone();
    let v2 = version.clone();
    let serving = tokio::task::spawn_blocking(move || reload(&app2, &v2))
        .await
        .map_err(|e| ServeError::Config(format!("reload task: {e}")))??;
    reg.mark_promoted(&version)?;
    Ok(Json(json!({"serving": serving})).into_response())
}

async fn admin_jobs(State(app): State<Arc<App>>) -> ApiResult {
    let events = app.metrics.events_ingested.load(Ordering::Relaxed);
    Ok(Json(app.jobs.snapshot(events)).into_response())
}

/// Queues a retraining run now (202); 409 while one runs or is queued.
async fn admin_run_job(State(app): State<Arc<App>>) -> ApiResult {
    match app.jobs.trigger() {
        Ok(id) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"queued": true, "job_id": id, "kind": "retrain"})),
        )
            .into_response()),
        Err(crate::jobs::TriggerError::NotConfigured) => Err(ApiError(
            StatusCode::CONFLICT,
            "retraining_not_configured",
            "this server has no retraining command (start it with --retrain-model)".into(),
        )),
        Err(crate::jobs::TriggerError::Busy) => Err(ApiError(
            StatusCode::CONFLICT,
            "job_running",
            "a retraining job is already running or queued".into(),
        )),
    }
}

/// `GET /v1/search?q=&user=&k=&category=&price_min=&price_max=&personal=`
async fn search(State(app): State<Arc<App>>, q: Q) -> ApiResult {
    let t = Instant::now();
    let Query(map) = q?;
    let lq = list_query(
        &app,
        Ok(Query(map.clone())),
        &[
            "q",
            "user",
            "k",
            "category",
            "price_min",
            "price_max",
            "personal",
            "mode",
        ],
    )?;
    let text = map.get("q").map(|s| s.trim()).unwrap_or("");
    if text.is_empty() {
        return Err(ApiError::bad(
            "empty_query",
            "q is required and must not be blank",
        ));
    }
    if text.len() > 10_000 {
        return Err(ApiError::bad(
            "query_too_long",
            "q is limited to 10,000 bytes",
        ));
    }
    let personal = flag(&map, "personal", true)?;
    let user = map.get("user").filter(|u| !u.is_empty()).cloned();
    if let Some(why) = user.as_deref().and_then(aisle_core::id_problem) {
        return Err(ApiError::bad("bad_id", format!("user {why}")));
    }
    let req = crate::search::SearchRequest {
        q: text.to_string(),
        user,
        k: lq.k,
        filters: aisle_search::Filters {
            category: lq.category.clone(),
            price_min: lq.price_min,
            price_max: lq.price_max,
            in_stock_only: true,
        },
        personal,
        mode: map.get("mode").filter(|m| !m.is_empty()).cloned(),
    };
    if let Some(m) = &req.mode {
        if !["keyword", "semantic", "hybrid"].contains(&m.as_str()) {
            return Err(ApiError::bad(
                "bad_query",
                format!("mode must be keyword, semantic or hybrid, not {m:?}"),
            ));
        }
        if m != "keyword" && app.search.semantic.is_none() {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "semantic_unavailable",
                format!("semantic search is {}", app.search.semantic_note),
            ));
        }
    }
    let app2 = app.clone();
    let (mut out, req) = tokio::task::spawn_blocking(move || app2.search(&req).map(|b| (b, req)))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, "search_unavailable", e))?;
    let took = t.elapsed().as_secs_f64() * 1000.0;
    out["took_ms"] = json!(took);
    let top: Vec<&Value> = out["results"]
        .as_array()
        .map(|r| r.iter().take(10).map(|x| &x["item_id"]).collect())
        .unwrap_or_default();
    app.search.record(&json!({
        "ts": aisle_core::time::unix_now(), "q": req.q, "user": req.user, "k": req.k,
        "total": out["total"], "top": top, "took_ms": took,
    }));
    Ok(Json(out).into_response())
}

/// `GET /v1/search/suggest?q=&k=`: past queries, then catalog titles.
async fn suggest(State(app): State<Arc<App>>, q: Q) -> ApiResult {
    let Query(map) = q?;
    let lq = list_query(&app, Ok(Query(map.clone())), &["q", "k"])?;
    let prefix = map.get("q").map(|s| s.trim()).unwrap_or("");
    if prefix.is_empty() {
        return Err(ApiError::bad(
            "empty_query",
            "q is required and must not be blank",
        ));
    }
    let mut out: Vec<Value> = app
        .search
        .popular_queries(prefix, lq.k)
        .into_iter()
        .map(|(text, n)| json!({"text": text, "source": "query", "count": n}))
        .collect();
    if out.len() < lq.k {
        if let Some(k) = &app.search.keyword {
            let titles = k.suggest_titles(prefix, lq.k - out.len()).map_err(|e| {
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "search_unavailable",
                    e.to_string(),
                )
            })?;
            out.extend(
                titles
                    .into_iter()
                    .map(|t| json!({"text": t, "source": "title"})),
            );
        }
    }
    Ok(Json(json!({"suggestions": out})).into_response())
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn an_internal_errors_text_stays_in_the_log() {
        let e = ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot open /srv/secret/aisle.db: permission denied".into(),
        );
        let m = e.client_message();
        assert!(!m.contains("secret"), "{m}");
        assert!(m.starts_with("internal error (reference "), "{m}");
    }

    #[test]
    fn client_errors_and_unavailability_keep_their_message() {
        let m = ApiError::bad("bad_id", "the id in the path is empty").client_message();
        assert_eq!(m, "the id in the path is empty");
        let m = ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "busy".into(),
        )
        .client_message();
        assert_eq!(m, "busy");
    }
}
