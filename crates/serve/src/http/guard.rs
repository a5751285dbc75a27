//! What every request passes before its handler: browser checks, keys and
//! scopes, rate limits, the body's size, type and arrival.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};
use crate::{auth, App};

/// An error response with CORS headers for an allowed origin.
pub(super) fn with_cors(mut r: Response, cors: Option<&str>) -> Response {
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

pub(crate) fn rate_limited(wait: f64, msg: &str) -> Response {
    let mut r =
        ApiError::new(Code::RateLimited, format!("{msg}; retry in {wait:.3} s")).into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(wait.ceil().max(1.0) as u64),
    );
    r
}

pub(crate) fn peer_ip(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or("anonymous".to_string(), |c| c.0.ip().to_string())
}

/// Who a request acts as, for the handlers that show or hide by scope (the
/// console): the scope it authenticated with, and the CSRF token of its
/// session when a console cookie authenticated it.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub scope: auth::Scope,
    pub csrf: Option<String>,
}

/// Everything a request passes before its handler, in order: browser
/// checks (Host in development mode, Origin, CORS preflight), the key and
/// its scope (failures rate-limited per peer), the client's rate limit, the
/// body's size (413 before any `100 Continue`), its content type (415) and
/// its arrival within the body timeout (408); then per-route latency
/// metrics. Health routes skip all of it.
pub(super) async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let t = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let page = crate::console::is_page(&route) && req.method() == axum::http::Method::GET;
    let resp = match admit(&app, &route, req).await {
        Ok((req, cors)) => with_cors(next.run(req).await, cors.as_deref()),
        // A console page without a valid session: the login form.
        Err(r) if page && r.status() == StatusCode::UNAUTHORIZED => {
            axum::response::Redirect::to("/console/login").into_response()
        }
        Err(r) => r,
    };
    app.metrics
        .observe(&route, resp.status().as_u16(), t.elapsed().as_secs_f64());
    resp
}

/// The checks of `guard`: the request (its body read) and the origin to
/// answer with CORS headers, or the response that refuses it.
pub(super) async fn admit(
    app: &Arc<App>,
    route: &str,
    req: Request,
) -> Result<(Request, Option<String>), Response> {
    let Some(scope) = auth::required_scope(req.method(), route) else {
        return Ok((req, None));
    };
    let cors = browser_checks(app, &req)?;
    let refuse = |r: Response| with_cors(r, cors.as_deref());
    let who = (req.method(), req.headers(), peer_ip(&req));
    let (client, access) = authenticate(app, who, route, scope).await.map_err(refuse)?;
    let mut req = req;
    req.extensions_mut().insert(access);
    if let Some(l) = &app.limiter {
        if let Err(wait) = crate::shared::limit(app.shared.as_ref(), "rate", l, &client, true).await
        {
            return Err(refuse(rate_limited(
                wait,
                "too many requests from this client",
            )));
        }
    }
    let req = read_body(app, req).await.map_err(refuse)?;
    Ok((req, cors))
}

/// Host and Origin (development mode refuses foreign ones) and a CORS
/// preflight, answered here for an allowed origin. `Ok`: the origin to
/// answer with CORS headers, if any.
#[allow(clippy::result_large_err)] // a refusal is the response itself
fn browser_checks(app: &App, req: &Request) -> Result<Option<String>, Response> {
    let open = !app.keys.enforced();
    let cors = match auth::check_origin(req.headers(), open, &app.cfg.cors_origins) {
        auth::OriginCheck::Ok => None,
        auth::OriginCheck::Cors(o) => Some(o),
        auth::OriginCheck::Refused(why) => {
            let code = if why.starts_with("Host") {
                Code::ForbiddenHost
            } else {
                Code::ForbiddenOrigin
            };
            return Err(ApiError::new(code, why).into_response());
        }
    };
    // A CORS preflight carries no key; answer it for allowed origins.
    if req.method() == axum::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let Some(origin) = cors.as_deref() else {
            return Err(ApiError::new(
                Code::ForbiddenOrigin,
                "a CORS preflight needs an allowed Origin",
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
    Ok(cors)
}

/// The key (or the console's session cookie) and its scope (failures
/// rate-limited per peer address). `Ok`: the client the rate limit counts
/// (the key, or the address when no keys are configured or a cookie
/// authenticated), and who it acts as. A write authenticated by the cookie
/// must carry the session's CSRF token in `x-csrf-token`.
#[allow(clippy::result_large_err)]
async fn authenticate(
    app: &App,
    (method, headers, ip): (&axum::http::Method, &axum::http::HeaderMap, String),
    route: &str,
    scope: auth::Scope,
) -> Result<(String, Access), Response> {
    if !app.keys.enforced() {
        let access = Access {
            scope: auth::Scope::Admin,
            csrf: None,
        };
        return Ok((format!("ip:{ip}"), access));
    }
    if auth::presented_key(headers).is_none() {
        if let Some(s) = crate::console::session::cookie_of(headers)
            .and_then(|c| app.sessions.verify(c, aisle_core::time::unix_now()))
        {
            let reads = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
            let token = headers
                .get("x-csrf-token")
                .map_or(&b""[..], |v| v.as_bytes());
            if !reads && !crate::console::Sessions::csrf_matches(&s, token) {
                return Err(ApiError::new(
                    Code::Forbidden,
                    "a write with the console's session cookie needs its x-csrf-token header",
                )
                .into_response());
            }
            if s.scope < scope {
                return Err(ApiError::new(
                    Code::Forbidden,
                    format!(
                        "this session has the {} scope; {} {route} needs {}",
                        s.scope.as_str(),
                        method,
                        scope.as_str()
                    ),
                )
                .into_response());
            }
            let access = Access {
                scope: s.scope,
                csrf: Some(s.csrf),
            };
            return Ok((format!("ip:{ip}"), access));
        }
    }
    if let Err(wait) = failures(app, &ip, false).await {
        return Err(rate_limited(
            wait,
            "too many failed authentications from this address",
        ));
    }
    match auth::presented_key(headers).and_then(|k| app.keys.check(k)) {
        Some((i, have)) if have >= scope => Ok((
            format!("key:{i}"),
            Access {
                scope: have,
                csrf: None,
            },
        )),
        Some((_, have)) => Err(ApiError::new(
            Code::Forbidden,
            format!(
                "this key has the {} scope; {} {route} needs {}",
                have.as_str(),
                method,
                scope.as_str()
            ),
        )
        .into_response()),
        None => {
            let _ = failures(app, &ip, true).await;
            Err(ApiError::new(
                Code::Unauthorized,
                "missing or invalid API key (x-api-key header or Authorization: Bearer)",
            )
            .into_response())
        }
    }
}

/// The failed authentications of `ip`: `Err(seconds)` while it has used
/// its allowance; `take` counts one more. Counted in Redis when configured
/// (every replica's failures together), else by this replica.
pub(crate) async fn failures(app: &App, ip: &str, take: bool) -> Result<(), f64> {
    crate::shared::limit(
        app.shared.as_ref(),
        "authfail",
        &app.auth_failures,
        ip,
        take,
    )
    .await
}

/// The body: its declared size (413 before any `100 Continue`), its
/// arrival within the body timeout (408), its real size, and for writes a
/// JSON content type (415). Returns the request with the body read.
async fn read_body(app: &App, req: Request) -> Result<Request, Response> {
    let limit = app.cfg.max_body_bytes;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let (parts, body) = req.into_parts();
    let bytes =
        match tokio::time::timeout(app.cfg.body_timeout, axum::body::to_bytes(body, limit)).await {
            Err(_) => {
                return Err(ApiError::new(
                    Code::RequestTimeout,
                    format!(
                        "the request body did not arrive within {} s",
                        app.cfg.body_timeout.as_secs_f64()
                    ),
                )
                .into_response())
            }
            Ok(Err(e)) => {
                let e = e.into_inner();
                return Err(if e.is::<http_body_util::LengthLimitError>() {
                    too_large(limit)
                } else {
                    ApiError::new(Code::BadBody, format!("reading the body: {e}")).into_response()
                });
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
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "a request body must be JSON with Content-Type: application/json (got {})",
                content_type.as_deref().unwrap_or("no Content-Type")
            ),
        )
        .into_response());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

pub(super) fn too_large(limit: usize) -> Response {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
    .into_response()
}
