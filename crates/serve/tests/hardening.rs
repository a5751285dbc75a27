//! The server as an attacker or a careless operator meets it: keys and
//! scopes that hold, browser checks in development mode, rate limits on
//! failed keys, connection and body timeouts, a connection cap that keeps
//! health checks answering, complete erasure, corrupt weights refused, and
//! input validation. One behaviour per test; each was a reproduced defect.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_core::{CatalogItem, Event, EventType};
use aisle_serve::{router, App, ServeConfig};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// A store with 6 items and 10 users (3 views each).
fn shop(dir: &std::path::Path) -> String {
    let url = dir.display().to_string();
    let mut store = aisle_store::open(&url).unwrap();
    let catalog: Vec<CatalogItem> = (0..6)
        .map(|i| CatalogItem {
            id: format!("i{i}"),
            title: Some(format!("Tea light holder {i}")),
            description: None,
            category: Some("home".into()),
            price: Some(2.0 + i as f64),
            in_stock: true,
        })
        .collect();
    store.upsert_items(&catalog).unwrap();
    let events: Vec<Event> = (0..10u32)
        .flat_map(|u| {
            (0..3u32).map(move |k| Event {
                key: (u as u64) << 32 | k as u64,
                user: format!("u{u}"),
                item: format!("i{}", (u + k) % 6),
                ts: 1_700_000_000 + k as i64,
                event_type: EventType::View,
                source_type: "view".into(),
                quantity: None,
                price: None,
                session: None,
                value: None,
            })
        })
        .collect();
    store.append(&events).unwrap();
    url
}

fn app(url: &str, cfg: impl FnOnce(&mut ServeConfig)) -> Arc<App> {
    let mut c = ServeConfig::new(url, "127.0.0.1:0".parse().unwrap());
    cfg(&mut c);
    App::open(c).unwrap()
}

/// One request through the router (no socket): method, uri, headers, body.
async fn call(
    app: &Arc<App>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let h = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v, h)
}

const JSON: (&str, &str) = ("content-type", "application/json");
const EVENT: &str = r#"{"user_id":"u1","item_id":"i2","type":"view"}"#;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn an_admin_key_alone_protects_every_route_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| c.admin_key = Some("adm".into()));
    for (m, uri, body) in [
        ("POST", "/v1/events", Some(EVENT)),
        ("DELETE", "/v1/users/u1", None),
        ("PUT", "/v1/items/i1", Some(r#"{"title":"x"}"#)),
        ("GET", "/v1/popular", None),
        ("GET", "/v1/users/u1/recommendations", None),
        ("GET", "/v1/search?q=tea", None),
        ("GET", "/metrics", None),
        ("GET", "/v1/no/such/route", None),
        ("POST", "/v1/admin/models/reload", None),
    ] {
        let (s, v, _) = call(&a, m, uri, &[JSON], body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {uri}: {v}");
        assert_eq!(code(&v), "unauthorized");
    }
    assert_eq!(
        call(&a, "GET", "/healthz", &[], None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&a, "GET", "/readyz", &[], None).await.0,
        StatusCode::OK
    );
    // Nothing was erased or inserted.
    assert!(a.live.read().unwrap().users.contains_key("u1"));
    assert_eq!(a.live.read().unwrap().events, 30);
    // With the key, everything.
    let (s, v, _) = call(
        &a,
        "POST",
        "/v1/events",
        &[JSON, ("x-api-key", "adm")],
        Some(EVENT),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn empty_or_blank_keys_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    for (field, key) in [
        ("api", ""),
        ("admin", "   "),
        ("read", ""),
        ("admin", "\tk"),
    ] {
        let mut c = ServeConfig::new(&url, "0.0.0.0:0".parse().unwrap());
        match field {
            "api" => c.api_key = Some(key.into()),
            "admin" => c.admin_key = Some(key.into()),
            _ => c.read_key = Some(key.into()),
        }
        let err = App::open(c).err().expect("refused");
        assert!(err.to_string().contains("refusing to start"), "{err}");
    }
}

#[tokio::test]
async fn an_empty_key_header_is_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| c.admin_key = Some("adm".into()));
    for h in [
        ("x-api-key", ""),
        ("authorization", "Bearer "),
        ("authorization", "Bearer"),
    ] {
        let (s, v, _) = call(&a, "POST", "/v1/admin/models/reload", &[h], None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{h:?}: {v}");
        let (s, _, _) = call(&a, "DELETE", "/v1/users/u1", &[h], None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    assert!(a.live.read().unwrap().users.contains_key("u1"));
}

#[tokio::test]
async fn each_scope_reaches_its_routes_and_no_further() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| {
        c.read_key = Some("r-key".into());
        c.api_key = Some("w-key".into());
        c.admin_key = Some("a-key".into());
    });
    let cases: &[(&str, &str, Option<&str>, [StatusCode; 3])] = &[
        // route, method, body, [read, write, admin]
        ("GET", "/v1/popular", None, [StatusCode::OK; 3]),
        (
            "GET",
            "/v1/users/u1/recommendations",
            None,
            [StatusCode::OK; 3],
        ),
        ("GET", "/v1/items/i1", None, [StatusCode::OK; 3]),
        ("GET", "/v1/items/i1/similar", None, [StatusCode::OK; 3]),
        ("GET", "/v1/search?q=tea", None, [StatusCode::OK; 3]),
        ("GET", "/metrics", None, [StatusCode::OK; 3]),
        (
            "POST",
            "/v1/sessions/recommendations",
            Some(r#"{"items":["i1"]}"#),
            [StatusCode::OK; 3],
        ),
        (
            "POST",
            "/v1/events",
            Some(EVENT),
            [StatusCode::FORBIDDEN, StatusCode::OK, StatusCode::OK],
        ),
        (
            "PUT",
            "/v1/items/i9",
            Some(r#"{"title":"New"}"#),
            [StatusCode::FORBIDDEN, StatusCode::OK, StatusCode::OK],
        ),
        (
            "GET",
            "/v1/admin/models",
            None,
            [StatusCode::FORBIDDEN, StatusCode::FORBIDDEN, StatusCode::OK],
        ),
        (
            "DELETE",
            "/v1/users/u3",
            None,
            [StatusCode::FORBIDDEN, StatusCode::FORBIDDEN, StatusCode::OK],
        ),
    ];
    for (m, uri, body, want) in cases {
        for (key, want) in ["r-key", "w-key", "a-key"].iter().zip(want) {
            let (s, v, _) = call(
                &a,
                m,
                uri,
                &[JSON, ("authorization", &format!("Bearer {key}"))],
                *body,
            )
            .await;
            assert_eq!(s, *want, "{key} {m} {uri}: {v}");
            if s == StatusCode::FORBIDDEN {
                assert_eq!(code(&v), "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn development_mode_refuses_rebinding_and_cross_site_requests() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    // DNS rebinding: a foreign name that resolves to 127.0.0.1.
    let (s, v, _) = call(
        &a,
        "POST",
        "/v1/admin/models/reload",
        &[("host", "evil.example:8080")],
        None,
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "forbidden_host"),
        "{v}"
    );
    // A malicious page posting a text/plain "simple request" to localhost.
    let (s, v, _) = call(
        &a,
        "POST",
        "/v1/events",
        &[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
            ("content-type", "text/plain"),
        ],
        Some(EVENT),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "forbidden_origin"),
        "{v}"
    );
    assert_eq!(a.live.read().unwrap().events, 30);
    // The same body without an Origin but as text/plain: JSON routes need JSON.
    let (s, v, _) = call(
        &a,
        "POST",
        "/v1/events",
        &[("content-type", "text/plain")],
        Some(EVENT),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (s, _, _) = call(&a, "POST", "/v1/events", &[], Some(EVENT)).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Local tools still work.
    let (s, v, _) = call(
        &a,
        "POST",
        "/v1/events",
        &[("host", "localhost:8080"), JSON],
        Some(EVENT),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_allowed_storefront_origin_gets_cors_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| {
        c.read_key = Some("r".into());
        c.cors_origins = vec!["https://shop.example".into()];
    });
    let pre = [
        ("origin", "https://shop.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "x-api-key"),
    ];
    let (s, _, h) = call(&a, "OPTIONS", "/v1/popular", &pre, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-api-key"));
    let (s, _, h) = call(
        &a,
        "GET",
        "/v1/popular",
        &[("origin", "https://shop.example"), ("x-api-key", "r")],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    let (s, v, h) = call(
        &a,
        "GET",
        "/v1/popular",
        &[("origin", "https://evil.example"), ("x-api-key", "r")],
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden_origin"));
    assert!(h.get("access-control-allow-origin").is_none());
}

/// The peer address a socket would have (oneshot requests have none).
fn from(ip: &str, mut req: Request<Body>) -> Request<Body> {
    let addr: std::net::SocketAddr = format!("{ip}:5555").parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    req
}

async fn status_from(a: &Arc<App>, ip: &str, key: &str) -> StatusCode {
    let req = Request::builder()
        .uri("/v1/popular")
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    router(a.clone())
        .oneshot(from(ip, req))
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn guessing_keys_is_rate_limited_per_peer() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| {
        c.read_key = Some("right".into());
        c.auth_failure_burst = 5.0;
        c.auth_failure_rate = 0.01;
    });
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(
            status_from(&a, "10.0.0.1", &format!("guess-{i}"))
                .await
                .as_u16(),
        );
    }
    assert_eq!(&codes[..5], &[401; 5], "{codes:?}");
    assert_eq!(&codes[5..], &[429; 3], "{codes:?}");
    // Even the right key is not tried from that address for now...
    assert_eq!(
        status_from(&a, "10.0.0.1", "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...while another address is unaffected.
    assert_eq!(status_from(&a, "10.0.0.2", "right").await, StatusCode::OK);
}

#[tokio::test]
async fn made_up_keys_get_no_buckets_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| {
        c.read_key = Some("right".into());
        c.rate_limit = Some(3.0);
        c.auth_failure_burst = 1000.0;
    });
    // The valid key has one bucket, whatever address it comes from.
    let mut codes = Vec::new();
    for i in 0..5 {
        codes.push(
            status_from(&a, &format!("10.0.0.{i}"), "right")
                .await
                .as_u16(),
        );
    }
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    // Invented keys are refused before any bucket: 401, never a fresh 200.
    for i in 0..20 {
        assert_eq!(
            status_from(&a, "10.0.1.1", &format!("k{i}")).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn ids_with_control_characters_and_absurd_times_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    for body in [
        r#"{"user_id":"nl\nuser","item_id":"i1","type":"view"}"#,
        r#"{"user_id":"tab\tuser","item_id":"i1","type":"view"}"#,
        r#"{"user_id":"u1","item_id":"nul\u0000","type":"view"}"#,
        r#"{"user_id":"u1","item_id":"i1","type":"view","session_id":"s\n1"}"#,
        r#"{"user_id":"u1","item_id":"i1","type":"view","timestamp":-9223372036854775808}"#,
        r#"{"user_id":"u1","item_id":"i1","type":"view","timestamp":-1}"#,
        r#"{"user_id":"u1","item_id":"i1","type":"view","timestamp":"1969-12-31T23:59:59Z"}"#,
    ] {
        let (s, v, _) = call(&a, "POST", "/v1/events", &[JSON], Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    assert_eq!(a.live.read().unwrap().events, 30);
    let (s, v, _) = call(&a, "GET", "/v1/users/a%0Ab/recommendations", &[], None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_id"), "{v}");
    let (s, v, _) = call(&a, "PUT", "/v1/items/a%09b", &[JSON], Some("{}")).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_id"), "{v}");
    let (s, v, _) = call(&a, "GET", "/v1/search?q=tea&user=a%0Ab", &[], None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_id"), "{v}");
}

#[tokio::test]
async fn every_query_parameter_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    let (s, v, _) = call(&a, "GET", "/v1/popular?window=abc", &[], None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_query"), "{v}");
}

#[tokio::test]
async fn an_unknown_parameter_is_named_with_the_ones_the_route_knows() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    for (path, known) in [
        ("/v1/users/u1/recommendations?kk=3", "exclude_purchased"),
        ("/v1/search?q=tea&rerank=1", "personal"),
        ("/v1/search/suggest?q=te&category=x", "`k`"),
    ] {
        let (s, v, _) = call(&a, "GET", path, &[], None).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_query"), "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("unknown field") && m.contains(known),
            "{path}: {m}"
        );
    }
}

#[tokio::test]
async fn a_repeated_parameter_is_refused_not_silently_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    let (s, v, _) = call(&a, "GET", "/v1/popular?k=3&k=5", &[], None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_query"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field `k`"),
        "{v}"
    );
}

#[tokio::test]
async fn a_json_body_with_an_unknown_field_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    for (method, path, body, want, field) in [
        (
            "POST",
            "/v1/sessions/recommendations",
            r#"{"items":["i1"],"kk":3}"#,
            "bad_session",
            "kk",
        ),
        (
            "POST",
            "/v1/sessions/recommendations",
            r#"{"item":["i1"]}"#,
            "bad_session",
            "item",
        ),
        (
            "PUT",
            "/v1/items/i1",
            r#"{"titel":"x"}"#,
            "bad_item",
            "titel",
        ),
        (
            "POST",
            "/v1/admin/models/promote",
            r#"{"version":"a","force":1}"#,
            "bad_request",
            "force",
        ),
        (
            "POST",
            "/v1/sessions/recommendations",
            r#"{"items":["#,
            "malformed_json",
            "",
        ),
    ] {
        let (s, v, _) = call(&a, method, path, &[JSON], Some(body)).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, want),
            "{body}: {v}"
        );
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            field.is_empty() || m.contains(&format!("`{field}`")),
            "{body}: {m}"
        );
    }
}

#[tokio::test]
async fn each_bad_value_gets_its_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    for (path, want) in [
        ("/v1/popular?k=0", "bad_k"),
        ("/v1/search/suggest?q=te&k=x", "bad_k"),
        ("/v1/items/x/similar?price_min=-1", "bad_price"),
        ("/v1/users/u1/recommendations?rerank=maybe", "bad_query"),
        ("/v1/search?q=tea&personal=2", "bad_query"),
    ] {
        let (s, v, _) = call(&a, "GET", path, &[], None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, want),
            "{path}: {v}"
        );
    }
}

#[tokio::test]
async fn a_zero_length_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aisle.db"), b"").unwrap();
    let c = ServeConfig::new(
        &dir.path().display().to_string(),
        "127.0.0.1:0".parse().unwrap(),
    );
    let err = App::open(c).err().expect("refused");
    assert!(err.to_string().contains("0 bytes"), "{err}");
    assert_eq!(
        std::fs::metadata(dir.path().join("aisle.db"))
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn a_read_only_store_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    shop(dir.path());
    // SQLite's own read-only mode (file permissions do not bind root).
    let url = format!("sqlite://file:{}/aisle.db?mode=ro", dir.path().display());
    let err = App::open(ServeConfig::new(&url, "127.0.0.1:0".parse().unwrap()))
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("readonly")
            || msg.contains("read-only")
            || msg.contains("does not accept writes"),
        "{msg}"
    );
}

/// Every byte of every file under `dir`, searched for `needle`.
fn files_mentioning(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    out.push(p.display().to_string());
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn erasure_leaves_no_trace_of_the_user_in_the_store_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let who = "erase-me-7f3a";
    // A quarantined row of the user, from an earlier ingest.
    let q = dir.path().join("quarantine");
    std::fs::create_dir_all(&q).unwrap();
    std::fs::write(
        q.join("shop-1-1.jsonl"),
        format!(
            "{{\"file\":\"events\",\"line\":3,\"reason\":\"bad_number\",\"detail\":\"price\",\"raw\":\"{who},i1,view,abc\"}}\n{{\"file\":\"events\",\"line\":4,\"reason\":\"bad_number\",\"detail\":\"price\",\"raw\":\"u5,i1,view,abc\"}}\n"
        ),
    )
    .unwrap();
    let a = app(&url, |_| {});
    for i in 0..50 {
        let body = format!(
            r#"{{"user_id":"{who}","item_id":"i{}","type":"view","session_id":"{who}-s"}}"#,
            i % 6
        );
        let (s, v, _) = call(&a, "POST", "/v1/events", &[JSON], Some(&body)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    for q in ["holder", "tea light"] {
        let (s, _, _) = call(
            &a,
            "GET",
            &format!("/v1/search?q={}&user={who}", q.replace(' ', "+")),
            &[],
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    // Another user's query stays and keeps feeding suggestions.
    call(&a, "GET", "/v1/search?q=holder+3&user=u5", &[], None).await;
    let (_, v, _) = call(&a, "GET", "/v1/search/suggest?q=tea", &[], None).await;
    assert!(v.to_string().contains("tea light"), "{v}");
    assert!(!files_mentioning(dir.path(), who).is_empty());

    let (s, v, _) = call(&a, "DELETE", &format!("/v1/users/{who}"), &[], None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], who);
    assert_eq!(v["deleted_events"], 50);
    assert_eq!(v["erased"]["events"], 50);
    assert_eq!(v["erased"]["queries"], 2);
    assert_eq!(v["erased"]["quarantine_rows"], 1);
    assert_eq!(v["erased"]["impressions"], 2, "the two searches shown");
    // Suggestions no longer offer the user's queries; others' stay.
    let (_, v, _) = call(&a, "GET", "/v1/search/suggest?q=tea", &[], None).await;
    assert!(!v.to_string().contains("\"tea light\""), "{v}");
    let (_, v, _) = call(&a, "GET", "/v1/search/suggest?q=hol", &[], None).await;
    assert!(v.to_string().contains("holder 3"), "{v}");
    assert!(!a.live.read().unwrap().users.contains_key(who));
    drop(a);
    // No file under the store (database, WAL, logs, quarantine) holds the id.
    assert_eq!(files_mentioning(dir.path(), who), Vec::<String>::new());
    // And after a restart the user is still gone.
    let a = app(&url, |_| {});
    assert!(!a.live.read().unwrap().users.contains_key(who));
    let (_, v, _) = call(&a, "GET", "/v1/search/suggest?q=tea", &[], None).await;
    assert!(!v.to_string().contains("\"tea light\""), "{v}");
}

/// A tiny promoted SASRec (3 epochs, 6 items) in `dir`'s registry.
fn promote_tiny_model(dir: &std::path::Path) -> std::path::PathBuf {
    common::promote_tiny_sasrec(dir, 6, 3, 1)
}

/// Overwrites the last `n` bytes (the end of the tensor data) with 0xFF:
/// the header stays intact and parses.
fn corrupt_tail(p: &std::path::Path, n: usize) {
    let mut b = std::fs::read(p).unwrap();
    let len = b.len();
    for x in &mut b[len - n..] {
        *x = 0xFF;
    }
    std::fs::write(p, b).unwrap();
}

#[tokio::test]
async fn corrupt_weights_are_refused_and_readiness_says_degraded() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let good = promote_tiny_model(dir.path());
    let bad = dir.path().join("models/sasrec-2.safetensors");
    std::fs::copy(&good, &bad).unwrap();
    corrupt_tail(&bad, 64);
    let a = app(&url, |_| {});
    assert_eq!(a.current().version, "sasrec-1.safetensors");
    let (_, v, _) = call(&a, "GET", "/readyz", &[], None).await;
    assert_eq!(v["status"], "ok", "{v}");
    // Promote and reload refuse it; the good model keeps serving.
    let (s, v, _) = call(
        &a,
        "POST",
        "/v1/admin/models/promote",
        &[JSON],
        Some(r#"{"version":"sasrec-2.safetensors"}"#),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_artifact"),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("checksum"),
        "{v}"
    );
    assert_eq!(a.current().version, "sasrec-1.safetensors");
    drop(a);
    // The promoted file itself rots on disk, then a restart: popularity
    // serves and readiness says why.
    corrupt_tail(&good, 64);
    let a = app(&url, |_| {});
    assert_eq!(a.current().name, "popularity");
    let (s, v, _) = call(&a, "GET", "/readyz", &[], None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "degraded", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("sasrec-1"), "{v}");
    let (s, v, _) = call(&a, "GET", "/v1/users/u1/recommendations", &[], None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["items"][0]["score"].is_number(), "{v}");
}

/// A real server on a loopback port; returns its address and a stop handle.
async fn listen(a: Arc<App>) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(aisle_serve::serve_on(a, l, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Sends `req` on a fresh connection and reads until the server closes it
/// or `wait` passes; returns what was read and whether it closed.
async fn raw(addr: std::net::SocketAddr, req: &[u8], wait: Duration) -> (String, bool) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

async fn healthz_ms(addr: std::net::SocketAddr) -> f64 {
    let t = Instant::now();
    let (resp, _) = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    t.elapsed().as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| {
        c.conn.header_timeout = Duration::from_millis(300)
    });
    let (addr, _stop) = listen(a).await;
    // Nothing at all, then part of a header: both closed within ~0.3 s.
    for req in [&b""[..], b"GET /healthz HTTP/1.1\r\nhost: 127"] {
        let t = Instant::now();
        let (_, closed) = raw(addr, req, Duration::from_secs(3)).await;
        assert!(closed, "{:?}", String::from_utf8_lossy(req));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    // A keep-alive connection idle after its response is closed too.
    let t = Instant::now();
    let (resp, closed) = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200") && closed, "{resp}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| {
        c.body_timeout = Duration::from_millis(300)
    });
    let (addr, _stop) = listen(a.clone()).await;
    let (resp, _) = raw(
        addr,
        b"POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user_id\":",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    assert_eq!(a.live.read().unwrap().events, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413_before_100_continue() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |_| {});
    let (addr, _stop) = listen(a).await;
    let (resp, _) = raw(
        addr,
        b"POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\nexpect: 100-continue\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(!resp.contains("100 Continue"), "{resp}");
    assert!(resp.contains("payload_too_large"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_cap_do_not_keep_health_checks_out() {
    let dir = tempfile::tempdir().unwrap();
    let a = app(&shop(dir.path()), |c| {
        c.conn.max_connections = 32;
        c.conn.header_timeout = Duration::from_secs(60);
    });
    let (addr, _stop) = listen(a.clone()).await;
    // 300 connections that send nothing, or half a header, and stay.
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /v1/popular HTTP/1.1\r\nho")
                .await
                .unwrap();
        }
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut times = Vec::new();
    for _ in 0..20 {
        times.push(healthz_ms(addr).await);
    }
    times.sort_by(f64::total_cmp);
    assert!(times[times.len() / 2] < 100.0, "healthz ms: {times:?}");
    assert!(a.conns.open() <= 32, "{}", a.conns.open());
    assert!(a.conns.shed().0 >= 268, "{:?}", a.conns.shed());
}
