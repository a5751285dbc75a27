//! The operator's console: server-rendered pages at `/console/*` over the
//! same functions the `/v1/admin/*` routes answer with, a login that turns
//! an API key into a signed session cookie, and two embedded assets (no
//! CDN, no build step). Every action on a page is a call of a documented
//! admin route from `console.js`, carrying the session's CSRF token.
//!
//! Routes: `GET /` (to the overview), `GET /console/login`,
//! `POST /console/login` (form: `key`), `POST /console/logout`,
//! `GET /console/{overview,data,models,experiments,search,shopper}`,
//! `GET /console/assets/{console.css,console.js}`.

pub mod session;
pub mod view;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::Markup;

use crate::http::guard::Access;
use crate::http::insights;
use crate::App;
pub use session::Sessions;
use view::Viewer;

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// What a console page may load and do: its own assets and calls only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/overview") }))
        .route(
            "/console",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route(
            "/console/assets/console.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/console/assets/console.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .route("/console/overview", get(overview))
        .route("/console/data", get(data))
        .route("/console/models", get(models))
        .route("/console/experiments", get(experiments))
        .route("/console/search", get(search))
        .route("/console/shopper", get(shopper))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A page with the headers every console page carries.
fn page(m: Markup) -> Response {
    let mut r = axum::response::Html(m.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn viewer(a: &Access) -> Viewer {
    Viewer {
        scope: a.scope,
        csrf: a.csrf.clone(),
        session: a.csrf.is_some(),
    }
}

/// Runs page work off the async workers.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> T + Send + 'static,
) -> Result<T, Response> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|e| crate::http::error::ApiError::task(e).into_response())
}

async fn login_page(State(app): State<Arc<App>>) -> Response {
    if !app.keys.enforced() {
        return Redirect::to("/console/overview").into_response();
    }
    page(view::login(None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    key: String,
}

/// Checks the key like the API does (failures rate-limited per address),
/// then sets the session cookie for the key's scope.
async fn login(State(app): State<Arc<App>>, req: axum::extract::Request) -> Response {
    use axum::extract::FromRequest;
    let ip = crate::http::guard::peer_ip(&req);
    let headers = req.headers().clone();
    let form = Form::<LoginForm>::from_request(req, &()).await;
    if !app.keys.enforced() {
        return Redirect::to("/console/overview").into_response();
    }
    if !same_origin(&headers) {
        return crate::http::error::ApiError::new(
            crate::http::error::Code::ForbiddenOrigin,
            "a login must come from this server's own page",
        )
        .into_response();
    }
    if crate::http::guard::failures(&app, &ip, false)
        .await
        .is_err()
    {
        let mut r = page(view::login(Some(
            "Too many failed logins from this address: wait a minute.",
        )));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return r;
    }
    let scope = form
        .ok()
        .and_then(|Form(f)| app.keys.check(f.key.as_bytes()))
        .map(|(_, s)| s);
    let Some(scope) = scope else {
        let _ = crate::http::guard::failures(&app, &ip, true).await;
        let mut r = page(view::login(Some(
            "That key is not one of this server's keys.",
        )));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let Ok((cookie, _csrf)) = app.sessions.issue(scope, aisle_core::time::unix_now()) else {
        return crate::http::error::ApiError::new(
            crate::http::error::Code::Internal,
            "no random source for a session",
        )
        .into_response();
    };
    let mut r = Redirect::to("/console/overview").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        session::COOKIE,
        session::LIFETIME_S
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout() -> Response {
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("aisle_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// A form post whose Origin (when the browser sends one) is this server.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

async fn overview(State(app): State<Arc<App>>, Extension(a): Extension<Access>) -> Response {
    let o = insights::overview(&app);
    page(view::layout("overview", &viewer(&a), view::overview(&o)))
}

async fn models(State(app): State<Arc<App>>, Extension(a): Extension<Access>) -> Response {
    let out = blocking(&app, |app| {
        let versions = app
            .registry
            .as_ref()
            .map(|r| r.list())
            .transpose()
            .ok()
            .flatten()
            .unwrap_or_default();
        let jobs = serde_json::to_value(app.jobs.snapshot(app.events_seen())).unwrap_or_default();
        let evaluation = crate::http::data::evaluation(app);
        (versions, jobs, evaluation)
    })
    .await;
    let (versions, jobs, evaluation) = match out {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rows: Vec<view::VersionRow> = versions.into_iter().map(version_row).collect();
    let serving = crate::http::recs::serving_model(&app);
    page(view::layout(
        "models",
        &viewer(&a),
        view::models(&viewer(&a), &serving, &rows, &jobs, &evaluation),
    ))
}

/// Metadata keys shown as hold-out metrics (the rest that describe the
/// data go beside them).
fn version_row(e: aisle_train::Entry) -> view::VersionRow {
    let mut metrics = Vec::new();
    let mut data = Vec::new();
    let mut created = None;
    let mut curve = Vec::new();
    for (k, v) in &e.meta {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            x => x.to_string(),
        };
        // Figures to four decimals.
        let text = match text.parse::<f64>() {
            Ok(x) if text.contains('.') && x.is_finite() => format!("{x:.4}"),
            _ => text,
        };
        if k == "created_at" {
            created = text.parse::<i64>().ok().map(view::fmt_time).or(Some(text));
            continue;
        }
        if k == "curve" {
            curve = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some((
                                e.get("epoch")?.as_u64()?,
                                e.get("loss")?.as_f64()?,
                                e.get("valid_ndcg10")?.as_f64()?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            continue;
        }
        let metric = k.contains("ndcg")
            || k.contains("hr")
            || k.contains("recall")
            || k.contains("auc")
            || k.contains("mrr")
            || k.contains("loss");
        let described = [
            "dataset", "users", "items", "events", "train_", "epochs", "max_len",
        ]
        .iter()
        .any(|p| k.starts_with(p));
        if text.len() > 80 {
            continue;
        }
        if metric {
            metrics.push((k.clone(), text));
        } else if described {
            data.push((k.clone(), text));
        }
    }
    view::VersionRow {
        version: e.version,
        model: e.model,
        promoted: e.promoted,
        bytes: e.bytes,
        created,
        metrics,
        data,
        curve,
    }
}

async fn experiments(State(app): State<Arc<App>>, Extension(a): Extension<Access>) -> Response {
    let out = blocking(&app, |app| {
        app.online.flush();
        let log = app.online.reader.lock().unwrap_or_else(|e| e.into_inner());
        let rows: Vec<view::ExperimentRow> = app
            .online
            .experiments()
            .into_iter()
            .rev()
            .map(|rec| {
                let report = aisle_store::online::experiment_report(&log, &rec)
                    .ok()
                    .and_then(|r| serde_json::to_value(r).ok());
                view::ExperimentRow {
                    view: serde_json::to_value(crate::http::experiments::ExperimentView::from(rec))
                        .unwrap_or_default(),
                    report,
                }
            })
            .collect();
        let models: Vec<String> = app
            .registry
            .as_ref()
            .and_then(|r| r.list().ok())
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.version)
            .collect();
        (rows, models)
    })
    .await;
    match out {
        Ok((rows, models)) => page(view::layout(
            "experiments",
            &viewer(&a),
            view::experiments(&viewer(&a), &rows, &models),
        )),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize, Default)]
struct SearchPage {
    user: Option<String>,
}

async fn search(
    State(app): State<Arc<App>>,
    Extension(a): Extension<Access>,
    q: Result<Query<SearchPage>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let user = q.ok().and_then(|Query(p)| p.user).filter(|u| !u.is_empty());
    let out = blocking(&app, |app| {
        let now = aisle_core::time::unix_now_ms();
        let queries = insights::search_queries(app, now - 7 * aisle_store::online::DAY_MS, now, 20);
        let kpis = app
            .online
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kpis(now - aisle_store::online::DAY_MS, now, Some("search"))
            .ok()
            .and_then(|k| serde_json::to_value(k).ok())
            .unwrap_or_default();
        (queries, kpis)
    })
    .await;
    match out {
        Ok((Ok(queries), kpis)) => page(view::layout(
            "search",
            &viewer(&a),
            view::search(&kpis, &queries, user.as_deref()),
        )),
        Ok((Err(e), _)) => e.into_response(),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize, Default)]
struct ShopperPage {
    user: Option<String>,
    item: Option<String>,
}

async fn shopper(
    State(app): State<Arc<App>>,
    Extension(a): Extension<Access>,
    q: Result<Query<ShopperPage>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = q.map(|Query(p)| p).unwrap_or_default();
    let user = p.user.filter(|u| !u.trim().is_empty());
    let item = p.item.filter(|i| !i.trim().is_empty());
    let (u2, i2) = (user.clone(), item.clone());
    let out = blocking(&app, move |app| {
        let found = match &u2 {
            Some(u) => match insights::shopper(app, u) {
                Ok(s) => {
                    let (recs, model, arm) = crate::http::recs::preview_user(app, u, 10);
                    let titles = titles(app, recs.iter().map(|r| r.item_id.as_str()));
                    Some(view::ShopperView {
                        shopper: s,
                        recs,
                        titles,
                        model,
                        arm: arm.map(|a| a.arm),
                    })
                }
                Err(_) => None,
            },
            None => None,
        };
        let similar = i2.as_deref().and_then(|i| {
            let list = crate::http::recs::preview_similar(app, i, 10)?;
            let t = titles(app, list.iter().map(|r| r.item_id.as_str()));
            Some(list.into_iter().zip(t).collect::<Vec<_>>())
        });
        (found, similar)
    })
    .await;
    match out {
        Ok((found, similar)) => page(view::layout(
            "shopper",
            &viewer(&a),
            view::shopper(
                user.as_deref(),
                found.as_ref(),
                item.as_deref(),
                similar.as_deref(),
            ),
        )),
        Err(r) => r,
    }
}

fn titles<'a>(app: &App, ids: impl Iterator<Item = &'a str>) -> Vec<Option<String>> {
    let live = app.live.read().unwrap_or_else(|e| e.into_inner());
    ids.map(|id| live.catalog_item(id).and_then(|c| c.title.clone()))
        .collect()
}

async fn data(State(app): State<Arc<App>>, Extension(a): Extension<Access>) -> Response {
    let app2 = app.clone();
    match blocking(&app, move |_| crate::http::data::data_report(&app2)).await {
        Ok(Ok(d)) => page(view::layout("data", &viewer(&a), view::data(&d))),
        Ok(Err(e)) => e.into_response(),
        Err(r) => r,
    }
}

/// Whether a route is a console page (refused requests get the login page).
pub(crate) fn is_page(route: &str) -> bool {
    route == "/"
        || route == "/console"
        || (route.starts_with("/console/") && !route.starts_with("/console/assets/"))
}
