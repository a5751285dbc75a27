//! The HTTP API end to end on a small shop: every route, the feedback loop
//! (an event changes the next recommendation), catalog rules, the registry's
//! hot swap, keys, and bad input (always a 4xx with a JSON error, never a 5xx).

mod common;

use std::sync::Arc;

use aisle_serve::{App, ServeConfig};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::*;

#[tokio::test]
async fn health_and_readiness_name_the_promoted_model() {
    let (_dir, c) = fresh();
    assert_eq!(c.get("/healthz").await.0, StatusCode::OK);
    let (s, v) = c.get("/readyz").await;
    assert_eq!(
        (s, v["model"]["name"].as_str()),
        (StatusCode::OK, Some("sasrec"))
    );
}

#[tokio::test]
async fn a_known_user_gets_the_models_next_items_with_source_and_reason() {
    let (_dir, c) = fresh();
    let (s, v) = c.get("/v1/users/u3/recommendations?k=5").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"]["name"], "sasrec");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for it in items {
        assert!(it["score"].is_number() && it["reason"].is_string(), "{it}");
        assert_eq!(it["source"], "sasrec");
    }
    // u3 saw i3..i10: the cycle continues with i11.
    assert_eq!(ids(&v)[0], "i11", "{v}");
}

#[tokio::test]
async fn an_unknown_user_is_a_cold_start_on_popularity() {
    let (_dir, c) = fresh();
    let (s, v) = c.get("/v1/users/nobody/recommendations").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"][0]["source"], "popularity");
    assert_eq!(v["user_known"], false);
}

#[tokio::test]
async fn one_event_changes_the_very_next_recommendation() {
    let (_dir, c) = fresh();
    let v = post_ok(
        &c,
        "/v1/events",
        r#"{"user_id":"nobody","item_id":"i4","type":"view","event_id":"e1"}"#,
    )
    .await;
    assert_eq!(v["inserted"].as_u64(), Some(1), "{v}");
    let (_, v) = c.get("/v1/users/nobody/recommendations?k=3").await;
    assert_eq!(v["items"][0]["source"], "sasrec", "{v}");
    assert_eq!(ids(&v)[0], "i5", "{v}");
}

#[tokio::test]
async fn a_repeated_event_id_is_a_duplicate_within_one_batch_append() {
    let (_dir, c) = fresh();
    post_ok(
        &c,
        "/v1/events",
        r#"{"user_id":"nobody","item_id":"i4","type":"view","event_id":"e1"}"#,
    )
    .await;
    let v = post_ok(&c, "/v1/events", r#"{"events":[{"user_id":"nobody","item_id":"i4","type":"view","event_id":"e1"},{"user_id":"nobody","item_id":"i5","type":"purchase","timestamp":"2024-01-01T00:00:00Z"}]}"#).await;
    assert_eq!(
        (v["inserted"].as_u64(), v["duplicates"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
}

#[tokio::test]
async fn exclude_purchased_drops_what_the_user_bought() {
    let (_dir, c) = fresh();
    post_ok(&c, "/v1/events", r#"{"events":[{"user_id":"nobody","item_id":"i4","type":"view"},{"user_id":"nobody","item_id":"i5","type":"purchase"}]}"#).await;
    let (_, v) = c.get("/v1/users/nobody/recommendations?k=12").await;
    assert!(ids(&v).contains(&"i5".to_string()), "{v}");
    let (_, v) = c
        .get("/v1/users/nobody/recommendations?k=12&exclude_purchased=true")
        .await;
    assert!(!ids(&v).contains(&"i5".to_string()), "{v}");
}

#[tokio::test]
async fn category_and_price_filters_hold() {
    let (_dir, c) = fresh();
    let (_, v) = c
        .get("/v1/users/u3/recommendations?k=12&category=odd&price_min=2&price_max=8")
        .await;
    assert!(!ids(&v).is_empty(), "{v}");
    for id in ids(&v) {
        let n: u32 = id[1..].parse().unwrap();
        assert!(n % 2 == 1 && (1..=7).contains(&n), "{id} in {v}");
    }
}

#[tokio::test]
async fn an_out_of_stock_item_is_never_recommended() {
    let (_dir, c) = fresh();
    let (s, _) = c
        .call(
            "PUT",
            "/v1/items/i11",
            Some(r#"{"title":"Item 11","category":"odd","price":12,"in_stock":false}"#),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = c.get("/v1/users/u3/recommendations?k=12").await;
    assert!(!ids(&v).contains(&"i11".to_string()), "{v}");
    let (s, v) = c.get("/v1/items/i11").await;
    assert_eq!((s, v["in_stock"].as_bool()), (StatusCode::OK, Some(false)));
    let (_, v) = c.get("/v1/popular?k=12").await;
    assert!(!ids(&v).iter().any(|i| i == "i11"), "{v}");
}

#[tokio::test]
async fn a_deleted_item_is_gone_from_the_catalog_and_every_list() {
    let (_dir, c) = fresh();
    assert_eq!(
        c.call("DELETE", "/v1/items/i0", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(c.get("/v1/items/i0").await.0, StatusCode::NOT_FOUND);
    let (_, v) = c.get("/v1/popular?k=12").await;
    assert!(!ids(&v).iter().any(|i| i == "i0"), "{v}");
    let (_, v) = c.get("/v1/users/u4/recommendations?k=12").await;
    assert!(!ids(&v).iter().any(|i| i == "i0"), "{v}");
}

#[tokio::test]
async fn a_new_item_is_similar_by_title_words_then_by_category() {
    let (_dir, c) = fresh();
    for (id, body) in [
        (
            "new1",
            r#"{"title":"Copper lantern","category":"even","price":3}"#,
        ),
        (
            "new2",
            r#"{"title":"Large copper lantern","category":"odd","price":3}"#,
        ),
    ] {
        let (s, v) = c
            .call("PUT", &format!("/v1/items/{id}"), Some(body), None)
            .await;
        assert!(s.is_success(), "{v}");
    }
    let (s, v) = c.get("/v1/items/new1/similar?k=3").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["source"], "content");
    assert_eq!(v["items"][0]["item_id"], "new2", "{v}");
    assert!(
        v["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("copper lantern"),
        "{v}"
    );
    // Then the same category ("even").
    let second = v["items"][1]["item_id"].as_str().unwrap();
    assert!(
        second.starts_with('i') && second[1..].parse::<u32>().unwrap() % 2 == 0,
        "{v}"
    );
    assert_eq!(v["items"][1]["reason"], "same category as Copper lantern");
}

#[tokio::test]
async fn a_known_items_neighbours_come_from_the_model() {
    let (_dir, c) = fresh();
    let (s, v) = c.get("/v1/items/i2/similar?k=3").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"][0]["source"], "sasrec");
    assert!(!ids(&v).contains(&"i2".to_string()));
}

#[tokio::test]
async fn an_anonymous_session_is_recommended_from_its_items() {
    let (_dir, c) = fresh();
    let v = post_ok(
        &c,
        "/v1/sessions/recommendations",
        r#"{"items":["i6","i7","zzz"],"k":2}"#,
    )
    .await;
    assert_eq!(ids(&v)[0], "i8");
    assert_eq!(v["unknown_items"], 1);
}

#[tokio::test]
async fn deleting_a_user_erases_their_history() {
    let (_dir, c) = fresh();
    let (s, v) = c.call("DELETE", "/v1/users/u3", None, None).await;
    assert_eq!((s, v["deleted_events"].as_u64()), (StatusCode::OK, Some(8)));
    let (_, v) = c.get("/v1/users/u3/recommendations").await;
    assert_eq!(v["user_known"], false);
}

#[tokio::test]
async fn metrics_name_routes_and_count_events() {
    let (_dir, c) = fresh();
    c.get("/v1/users/u3/recommendations").await;
    post_ok(&c, "/v1/events", r#"{"events":[{"user_id":"a","item_id":"i1","type":"view"},{"user_id":"a","item_id":"i2","type":"view"}]}"#).await;
    let (s, v) = c.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap();
    assert!(
        text.contains("route=\"/v1/users/{id}/recommendations\""),
        "{text}"
    );
    assert!(text.contains("aisle_events_ingested_total 2"), "{text}");
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_json_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |c| c.max_body_bytes = 4096);
    let cases: Vec<(&str, &str, Option<String>, StatusCode)> = vec![
        (
            "POST",
            "/v1/events",
            Some("{not json".into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some("[1,2]".into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some(r#"{"events":[]}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some(r#"{"user_id":5.5e400,"item_id":"i1","type":"view"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some(r#"{"user_id":"u","item_id":["x"],"type":"view"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some(r#"{"user_id":"u","item_id":"i1","type":"teleport"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some(r#"{"user_id":"u","item_id":"i1","type":"view","timestamp":99999999999}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some(r#"{"user_id":"u","item_id":"i1","type":"view","extra":1}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/events",
            Some(format!(
                r#"{{"user_id":"{}","item_id":"i1","type":"view"}}"#,
                "x".repeat(5000)
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "GET",
            "/v1/users/u1/recommendations?k=0",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/users/u1/recommendations?k=-3",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/users/u1/recommendations?k=100000000",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/users/u1/recommendations?k=abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/users/u1/recommendations?price_min=-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/v1/users/u1/recommendations?colour=red",
            None,
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/v1/items/nope/similar", None, StatusCode::NOT_FOUND),
        ("GET", "/v1/items/nope", None, StatusCode::NOT_FOUND),
        ("DELETE", "/v1/items/nope", None, StatusCode::NOT_FOUND),
        (
            "PUT",
            "/v1/items/i1",
            Some(r#"{"price":"cheap"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/v1/items/i1",
            Some(r#"{"price":-4}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/sessions/recommendations",
            Some(r#"{"items":"i1"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/sessions/recommendations",
            Some(r#"{"items":[],"k":0}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/v1/nothing-here", None, StatusCode::NOT_FOUND),
        (
            "DELETE",
            "/v1/popular",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "POST",
            "/v1/admin/models/promote",
            Some(r#"{"version":"../../etc/passwd"}"#.into()),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (m, uri, body, want) in cases {
        let (s, v) = c.call(m, uri, body.as_deref(), None).await;
        assert_error(s, &v, want);
    }
}

#[tokio::test]
async fn a_batch_with_one_bad_event_leaves_no_trace() {
    let (_dir, c) = fresh();
    let (s, _) = c
        .post("/v1/events", r#"{"events":[{"user_id":"fresh","item_id":"i1","type":"view"},{"user_id":"fresh","item_id":"i1","type":"nope"}]}"#)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, v) = c.get("/v1/users/fresh/recommendations").await;
    assert_eq!(v["user_known"], false);
}

#[tokio::test]
async fn random_bodies_to_every_route_never_give_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |c| c.max_body_bytes = 4096);
    let routes = [
        ("POST", "/v1/events"),
        ("POST", "/v1/sessions/recommendations"),
        ("PUT", "/v1/items/fz"),
        ("POST", "/v1/admin/models/promote"),
        ("GET", "/v1/users/fz/recommendations"),
        ("GET", "/v1/popular"),
        ("POST", "/v1/admin/jobs"),
        ("DELETE", "/v1/items/fz"),
        ("GET", "/v1/search?q=fz"),
        ("GET", "/v1/search/suggest?q=fz"),
        ("GET", "/v1/items/fz/similar"),
        ("GET", "/v1/items/i1"),
        ("DELETE", "/v1/users/fz"),
        ("GET", "/v1/admin/models"),
        ("POST", "/v1/admin/models/reload"),
        ("GET", "/v1/admin/jobs"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    ];
    let mut rng = aisle_core::rng::Rng::seed(7);
    let alphabet = br#"{}[]":,0123456789abcdefghijklmnopqrstuvwxyz_-. \\u00e9"#;
    for n in 0..300 {
        let len = rng.below(200) as usize;
        let body: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize] as char)
            .collect();
        let (m, uri) = routes[n % routes.len()];
        let (s, v) = c.call(m, uri, Some(&body), None).await;
        assert!(!s.is_server_error(), "{m} {uri} {body:?}: {s} {v}");
    }
}

/// A fresh shop served with a write key `read` and an admin key `admin`.
fn keyed() -> (tempfile::TempDir, Arc<App>, Client) {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (app, c) = open(&url, |c| {
        c.api_key = Some("read".into());
        c.admin_key = Some("admin".into());
    });
    (dir, app, c)
}

async fn promote(c: &Client, version: &str) -> (StatusCode, Value) {
    let body = format!(r#"{{"version":"{version}"}}"#);
    c.call(
        "POST",
        "/v1/admin/models/promote",
        Some(&body),
        Some("admin"),
    )
    .await
}

#[tokio::test]
async fn a_missing_key_is_401_and_the_api_key_cannot_reach_admin_routes() {
    let (_dir, _app, c) = keyed();
    let (s, v) = c.get("/v1/popular").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.call("GET", "/v1/popular", None, Some("read")).await.0,
        StatusCode::OK
    );
    let (s, v) = c.call("GET", "/v1/admin/models", None, Some("read")).await;
    assert_error(s, &v, StatusCode::FORBIDDEN);
    let (s, v) = c.call("GET", "/v1/admin/models", None, Some("admin")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["versions"][0]["promoted"], true, "{v}");
    assert_eq!(c.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_corrupt_artifact_is_refused_and_the_old_model_keeps_serving() {
    let (dir, app, c) = keyed();
    let models = dir.path().join("models");
    std::fs::write(models.join("sasrec-200.safetensors"), b"garbage").unwrap();
    let (s, v) = promote(&c, "sasrec-200.safetensors").await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.current().version, "sasrec-100.safetensors");
    let (s, _) = c
        .call("GET", "/v1/users/u1/recommendations", None, Some("read"))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_promoted_artifact_serves_the_next_request() {
    let (dir, _app, c) = keyed();
    let models = dir.path().join("models");
    std::fs::copy(
        models.join("sasrec-100.safetensors"),
        models.join("sasrec-300.safetensors"),
    )
    .unwrap();
    let (s, v) = promote(&c, "sasrec-300.safetensors").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .call("GET", "/v1/users/u1/recommendations", None, Some("read"))
        .await;
    assert_eq!(
        (s, v["model"]["version"].as_str()),
        (StatusCode::OK, Some("sasrec-300.safetensors"))
    );
}

#[tokio::test]
async fn a_rollback_and_reload_serve_the_previous_promotion() {
    let (dir, app, c) = keyed();
    let models = dir.path().join("models");
    std::fs::copy(
        models.join("sasrec-100.safetensors"),
        models.join("sasrec-300.safetensors"),
    )
    .unwrap();
    assert_eq!(
        promote(&c, "sasrec-300.safetensors").await.0,
        StatusCode::OK
    );
    assert_eq!(app.current().version, "sasrec-300.safetensors");
    let reg = aisle_serve::Registry::new(dir.path());
    assert_eq!(reg.rollback().unwrap(), "sasrec-100.safetensors");
    let (s, _) = c
        .call("POST", "/v1/admin/models/reload", None, Some("admin"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.current().version, "sasrec-100.safetensors");
}

#[tokio::test]
async fn an_open_server_refuses_to_bind_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let app = App::open(ServeConfig::new(&url, "0.0.0.0:0".parse().unwrap())).unwrap();
    let err = aisle_serve::serve(app, async {}).await.unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    let _ = json!(null);
}

/// The document the server generates and serves at `/openapi.json`.
async fn served_document(c: &Client) -> Value {
    let (s, doc) = c.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    doc
}

/// `/openapi.json` documents exactly the routes the router serves.
#[tokio::test]
async fn the_served_openapi_document_matches_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |_| {});
    let doc = served_document(&c).await;
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 29);
    for (path, ops) in paths {
        for method in ["get", "put", "post", "delete"] {
            let concrete = path.replace("{id}", "i1");
            let (s, v) = c
                .call(&method.to_uppercase(), &concrete, Some("{}"), None)
                .await;
            if ops.get(method).is_some() {
                assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {v}");
                assert!(
                    v["error"]["message"] != "no such route",
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    s,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is routed but not documented"
                );
            }
        }
    }
}

/// Checks `v` against `schema` (the subset of JSON Schema utoipa writes:
/// $ref, type (or a list of types), properties/required, items, oneOf,
/// anyOf, allOf, enum, additionalProperties). A property the schema does not
/// name is an error too: the document must say everything a response holds.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema[key].as_array() {
            let ok = alts
                .iter()
                .filter(|s| conforms(doc, s, v, at).is_ok())
                .count();
            return if ok >= 1 {
                Ok(())
            } else {
                Err(format!("{at}: matches no {key} alternative: {v}"))
            };
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            conforms(doc, s, v, at)?;
        }
        return Ok(());
    }
    if let Some(e) = schema["enum"].as_array() {
        if !e.contains(v) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let fits = |t: &str| match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    };
    if !types.iter().any(|t| fits(t)) {
        return Err(format!("{at}: {v} is not {types:?}"));
    }
    if let Some(items) = v.as_array() {
        for (i, x) in items.iter().enumerate() {
            conforms(doc, &schema["items"], x, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema["properties"].as_object();
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                return Err(format!("{at}: required field {r} missing in {v}"));
            }
        }
        let open_map = schema.get("additionalProperties").is_some() || props.is_none();
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => conforms(doc, ps, x, &format!("{at}.{k}"))?,
                None if open_map => {}
                None => return Err(format!("{at}: field {k} is not documented")),
            }
        }
    }
    Ok(())
}

/// The documented schema of `method path`'s response with `status`
/// (falling back to `default`).
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let responses = &doc["paths"][path][method]["responses"];
    let r = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| panic!("{method} {path}: status {status} not documented"));
    &r["content"]["application/json"]["schema"]
}

/// Every route, asked the way a client would, answers what the served
/// document says: each 2xx body and each error body conforms to its schema.
#[tokio::test]
async fn every_route_answers_what_the_document_says() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    // Retraining configured (never started here): POST /v1/admin/jobs queues.
    let (_app, c) = open(&url, |c| c.retrain = Some(retrain("true", None)));
    // A second version, so that a rollback has somewhere to go.
    let models = dir.path().join("models");
    std::fs::copy(
        models.join("sasrec-100.safetensors"),
        models.join("sasrec-300.safetensors"),
    )
    .unwrap();
    // An evaluation report, as `aisle evaluate` leaves it in the store.
    std::fs::create_dir_all(dir.path().join("evaluation")).unwrap();
    std::fs::write(
        dir.path().join("evaluation/bench.json"),
        r#"{"dataset":"shop","results":[],"best_by_validation":null}"#,
    )
    .unwrap();
    let doc = served_document(&c).await;
    // (method, documented path, concrete URI, body)
    let calls: &[(&str, &str, &str, Option<&str>)] = &[
        ("get", "/healthz", "/healthz", None),
        ("get", "/readyz", "/readyz", None),
        (
            "post",
            "/v1/events",
            "/v1/events",
            Some(r#"{"user_id":"u1","item_id":"i2","type":"view"}"#),
        ),
        (
            "post",
            "/v1/events",
            "/v1/events",
            Some(r#"{"events":[{"user_id":"u2","item_id":"i3","type":"cart","price":2.5}]}"#),
        ),
        ("post", "/v1/events", "/v1/events", Some(r#"{"events":[]}"#)),
        (
            "get",
            "/v1/users/{id}/recommendations",
            "/v1/users/u1/recommendations?k=3&category=odd",
            None,
        ),
        (
            "get",
            "/v1/users/{id}/recommendations",
            "/v1/users/nobody/recommendations",
            None,
        ),
        (
            "get",
            "/v1/users/{id}/recommendations",
            "/v1/users/u1/recommendations?k=zero",
            None,
        ),
        (
            "get",
            "/v1/items/{id}/similar",
            "/v1/items/i1/similar?k=2",
            None,
        ),
        (
            "get",
            "/v1/items/{id}/similar",
            "/v1/items/nope/similar",
            None,
        ),
        ("get", "/v1/items/{id}", "/v1/items/i1", None),
        (
            "put",
            "/v1/items/{id}",
            "/v1/items/new1",
            Some(r#"{"title":"New","price":3.0}"#),
        ),
        (
            "put",
            "/v1/items/{id}",
            "/v1/items/new1",
            Some(r#"{"colour":"red"}"#),
        ),
        ("delete", "/v1/items/{id}", "/v1/items/new1", None),
        (
            "post",
            "/v1/sessions/recommendations",
            "/v1/sessions/recommendations",
            Some(r#"{"items":["i1","i2"],"k":2}"#),
        ),
        ("get", "/v1/popular", "/v1/popular?k=2&price_max=5", None),
        (
            "get",
            "/v1/search",
            "/v1/search?q=item&mode=keyword&user=u1",
            None,
        ),
        ("get", "/v1/search", "/v1/search?q=", None),
        ("get", "/v1/search/suggest", "/v1/search/suggest?q=it", None),
        ("get", "/v1/admin/models", "/v1/admin/models", None),
        (
            "post",
            "/v1/admin/models/reload",
            "/v1/admin/models/reload",
            None,
        ),
        (
            "post",
            "/v1/admin/models/promote",
            "/v1/admin/models/promote",
            Some(r#"{"version":"sasrec-100.safetensors"}"#),
        ),
        (
            "post",
            "/v1/admin/models/promote",
            "/v1/admin/models/promote",
            Some(r#"{"version":"none.safetensors"}"#),
        ),
        (
            "post",
            "/v1/admin/models/promote",
            "/v1/admin/models/promote",
            Some(r#"{"version":"sasrec-300.safetensors"}"#),
        ),
        (
            "post",
            "/v1/admin/models/rollback",
            "/v1/admin/models/rollback",
            None,
        ),
        (
            "post",
            "/v1/admin/models/rollback",
            "/v1/admin/models/rollback",
            None,
        ),
        ("get", "/v1/admin/overview", "/v1/admin/overview", None),
        ("get", "/v1/admin/data", "/v1/admin/data", None),
        ("get", "/v1/admin/evaluation", "/v1/admin/evaluation", None),
        (
            "get",
            "/v1/admin/search/queries",
            "/v1/admin/search/queries?limit=5",
            None,
        ),
        (
            "get",
            "/v1/admin/search/queries",
            "/v1/admin/search/queries?limit=0",
            None,
        ),
        ("get", "/v1/admin/users/{id}", "/v1/admin/users/u1", None),
        ("get", "/v1/admin/jobs", "/v1/admin/jobs", None),
        ("post", "/v1/admin/jobs", "/v1/admin/jobs", None),
        (
            "post",
            "/v1/users/{id}/aliases",
            "/v1/users/u4/aliases",
            Some(r#"{"alias":"anon-x"}"#),
        ),
        (
            "get",
            "/v1/users/{id}/aliases",
            "/v1/users/u4/aliases",
            None,
        ),
        (
            "delete",
            "/v1/users/{id}/aliases/{alias}",
            "/v1/users/u4/aliases/anon-x",
            None,
        ),
        ("delete", "/v1/users/{id}", "/v1/users/u3", None),
        (
            "post",
            "/v1/admin/experiments",
            "/v1/admin/experiments",
            Some(
                r#"{"name":"e1","surface":"recommendations","mode":"ab","arms":[{"name":"a","model":"pop","traffic":50},{"name":"b","model":"promoted","traffic":50}]}"#,
            ),
        ),
        (
            "get",
            "/v1/users/{id}/recommendations",
            "/v1/users/u4/recommendations",
            None,
        ),
        (
            "get",
            "/v1/admin/experiments",
            "/v1/admin/experiments",
            None,
        ),
        (
            "get",
            "/v1/admin/experiments/{name}/report",
            "/v1/admin/experiments/e1/report",
            None,
        ),
        ("get", "/v1/admin/kpis", "/v1/admin/kpis", None),
        (
            "post",
            "/v1/admin/experiments/{name}/stop",
            "/v1/admin/experiments/e1/stop",
            None,
        ),
    ];
    let mut covered = std::collections::BTreeSet::new();
    for &(method, path, uri, body) in calls {
        let (s, v) = c.call(&method.to_uppercase(), uri, body, None).await;
        assert!(!s.is_server_error(), "{method} {uri}: {s} {v}");
        let schema = response_schema(&doc, method, path, s.as_u16());
        if let Err(e) = conforms(&doc, schema, &v, "body") {
            panic!("{method} {uri} answered {s} outside the document: {e}");
        }
        if s.is_success() {
            covered.insert((method, path));
        }
    }
    // /metrics is text; /openapi.json is the document itself.
    let (s, _) = c.call("GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    covered.insert(("get", "/metrics"));
    covered.insert(("get", "/openapi.json"));
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| o.as_object().unwrap().len())
        .sum();
    assert_eq!(
        covered.len(),
        documented,
        "a documented operation never answered 2xx: {covered:?}"
    );
}

async fn wait_for_job(c: &Client, id: u64) -> Value {
    for _ in 0..600 {
        let (s, v) = c.get("/v1/admin/jobs").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if let Some(j) = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id && j["status"] != "running")
        {
            return j.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

/// A train report (what `aisle train` prints) with a decision, as JSON
/// that a shell can echo.
fn report(action: aisle_train::Action, ndcg10: f64) -> String {
    let holdout = aisle_train::Holdout {
        version: Some("sasrec-500.safetensors".into()),
        model: "sasrec".into(),
        ndcg10,
        recall10: 0.0,
        mrr10: 0.0,
        users: 40,
        items_unknown_to_model: 0,
        eval_s: 0.0,
    };
    let r = aisle_train::TrainReport {
        report_version: aisle_train::REPORT_VERSION,
        model: "sasrec".into(),
        dataset: "test".into(),
        artifact: "models/sasrec-500.safetensors".into(),
        users: 40,
        items: 12,
        interactions: 320,
        fit_s: 0.1,
        epochs: None,
        best_epoch: None,
        best_valid_ndcg10: None,
        stopped_by: None,
        config: Value::Null,
        decision: Some(aisle_train::Decision {
            action,
            metric: "ndcg10".into(),
            protocol: "test".into(),
            candidate: holdout,
            serving: None,
        }),
    };
    serde_json::to_string(&r).unwrap()
}

fn retrain(script: &str, min_new_events: Option<u64>) -> aisle_serve::RetrainConfig {
    aisle_serve::RetrainConfig {
        model: "sasrec".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        interval: None,
        min_new_events,
        low_priority: true,
    }
}

/// A fresh shop whose registry also holds version 500 (a copy of 100),
/// for stand-in retraining runs to promote. The runs here are scripts; the
/// CLI's tests run the real `aisle train --promote-if-better`.
fn with_candidate() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let models = dir.path().join("models");
    std::fs::copy(
        models.join("sasrec-100.safetensors"),
        models.join("sasrec-500.safetensors"),
    )
    .unwrap();
    (dir, url)
}

/// Queues a run now and waits for its record.
async fn run_job(c: &Client) -> Value {
    let (s, v) = c.post("/v1/admin/jobs", "").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    wait_for_job(c, v["job_id"].as_u64().unwrap()).await
}

#[tokio::test]
async fn without_retraining_configured_a_trigger_is_409() {
    let (_dir, url) = with_candidate();
    let (_app, c) = open(&url, |_| {});
    let (s, v) = c.post("/v1/admin/jobs", "").await;
    assert_error(s, &v, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "retraining_not_configured");
    assert_eq!(
        c.get("/v1/admin/jobs").await.1["scheduler"]["enabled"],
        false
    );
}

#[tokio::test]
async fn a_run_that_promotes_is_recorded_and_hot_swapped() {
    let (dir, url) = with_candidate();
    // What `aisle train --promote-if-better` does when the candidate wins.
    let promote = format!(
        "echo sasrec-500.safetensors > '{}/PROMOTED' && echo 'promoting' >&2 && echo '{}'",
        dir.path().join("models").display(),
        report(aisle_train::Action::Promoted, 0.5)
    );
    let (app, c) = open(&url, |c| c.retrain = Some(retrain(&promote, None)));
    aisle_serve::jobs::start(&app);
    assert_eq!(app.current().version, "sasrec-100.safetensors");
    let job = run_job(&c).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["trigger"], "manual");
    assert_eq!(job["decision"], "promoted");
    assert_eq!(job["result"]["decision"]["candidate"]["ndcg10"], 0.5);
    assert!(job["duration_s"].as_f64().unwrap() > 0.0);
    let log = std::fs::read_to_string(job["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("promoting"), "{log}");
    // The server swapped to the promoted version without a restart.
    assert_eq!(app.current().version, "sasrec-500.safetensors");
    let (_, v) = c.get("/v1/users/u1/recommendations").await;
    assert_eq!(v["model"]["version"], "sasrec-500.safetensors");
    app.jobs.stop();
}

#[tokio::test]
async fn enough_new_events_trigger_a_run_on_their_own() {
    let (_dir, url) = with_candidate();
    let kept = format!("echo '{}'", report(aisle_train::Action::Kept, 0.1));
    let (app, c) = open(&url, |c| c.retrain = Some(retrain(&kept, Some(3))));
    aisle_serve::jobs::start(&app);
    let (s, _) = c
        .post(
            "/v1/events",
            r#"{"events":[{"user_id":"a","item_id":"i1","type":"view"},{"user_id":"a","item_id":"i2","type":"view"},{"user_id":"b","item_id":"i3","type":"view"}]}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let job = wait_for_job(&c, 1).await;
    assert_eq!(
        (job["trigger"].as_str(), job["new_events"].as_u64()),
        (Some("events"), Some(3)),
        "{job}"
    );
    let (_, m) = c.call("GET", "/metrics", None, None).await;
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("aisle_retrain_jobs_total{status=\"succeeded\"} 1"),
        "{m}"
    );
    app.jobs.stop();
}

#[tokio::test]
async fn a_run_that_keeps_or_fails_leaves_serving_alone() {
    let (_dir, url) = with_candidate();
    let kept = format!("echo '{}'", report(aisle_train::Action::Kept, 0.1));
    for (script, status, decision) in [
        (kept.as_str(), "succeeded", Value::from("kept")),
        ("echo broken >&2; exit 3", "failed", Value::Null),
        ("echo not json", "failed", Value::Null),
        // JSON that is not a train report.
        (
            r#"echo '{"decision":{"action":"kept"}}'"#,
            "failed",
            Value::Null,
        ),
    ] {
        let (app, c) = open(&url, |c| c.retrain = Some(retrain(script, None)));
        aisle_serve::jobs::start(&app);
        let before = app.current().version.clone();
        let job = run_job(&c).await;
        assert_eq!(
            (job["status"].as_str(), &job["decision"]),
            (Some(status), &decision),
            "{script}: {job}"
        );
        if status == "failed" {
            assert!(job["error"].is_string(), "{job}");
        }
        assert_eq!(app.current().version, before);
        app.jobs.stop();
    }
}

#[tokio::test]
async fn the_job_log_survives_a_restart_newest_first() {
    let (_dir, url) = with_candidate();
    let kept = format!("echo '{}'", report(aisle_train::Action::Kept, 0.1));
    for _ in 0..2 {
        let (app, c) = open(&url, |c| c.retrain = Some(retrain(&kept, None)));
        aisle_serve::jobs::start(&app);
        run_job(&c).await;
        app.jobs.stop();
    }
    let (_app, c) = open(&url, |_| {});
    let (_, v) = c.get("/v1/admin/jobs").await;
    assert_eq!(common::job_ids(&v), [2, 1], "{v}");
}

#[tokio::test]
async fn a_second_trigger_while_one_is_queued_is_a_409() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (app, c) = open(&url, |c| {
        c.retrain = Some(retrain("sleep 2; echo '{}'", None))
    });
    // The scheduler is not started: the first stays queued.
    let (s, _) = c.post("/v1/admin/jobs", "").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, v) = c.post("/v1/admin/jobs", "").await;
    assert_error(s, &v, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "job_running");
    assert_eq!(c.get("/v1/admin/jobs").await.1["scheduler"]["queued"], true);
    app.jobs.stop();
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |c| c.rate_limit = Some(5.0));
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(c.get("/v1/popular").await.0.as_u16());
    }
    // A burst of 5, then refused (the refill in these few ms is < 1 token).
    assert_eq!(&codes[..5], &[200; 5]);
    assert!(codes[5..].contains(&429), "{codes:?}");
    let req = Request::builder()
        .uri("/v1/popular")
        .body(Body::empty())
        .unwrap();
    let resp = c.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    // Health checks are never limited.
    assert_eq!(c.get("/healthz").await.0, StatusCode::OK);
}

/// Search: keyword results with reasons, filters, the personal re-ranking,
/// catalog changes reaching the index at once, suggestions, the query log
/// and bad queries.
/// A fresh shop with keyword search only (the semantic test below runs the encoder).
fn keyword_only() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |c| c.search.no_semantic = true);
    (dir, c)
}

fn result_ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["item_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_answers_hits_with_titles_scores_and_matched_words() {
    let (_dir, c) = keyword_only();
    let (s, v) = c.get("/v1/search?q=items&k=3").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["took_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["total"], 12);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    for x in r {
        assert!(
            x["item_id"].is_string() && x["title"].is_string() && x["score"].is_number(),
            "{x}"
        );
        assert_eq!(x["why"]["matched"][0], "items", "{x}");
    }
}

#[tokio::test]
async fn search_filters_by_category_and_price_with_facets() {
    let (_dir, c) = keyword_only();
    let (_, v) = c
        .get("/v1/search?q=item&k=20&category=even&price_min=3&price_max=7")
        .await;
    let mut got = result_ids(&v);
    got.sort();
    assert_eq!(got, ["i2", "i4", "i6"], "{v}");
    assert_eq!(v["facets"]["category"][0]["value"], "even", "{v}");
    let (_, v) = c.get("/v1/search?q=item&category=nothing").await;
    assert_eq!(v["results"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn search_for_a_known_user_puts_the_models_next_item_first() {
    let (_dir, c) = keyword_only();
    // u3 saw i3..i10; the model's next item i11 comes first.
    let (_, v) = c.get("/v1/search?q=item&k=3&user=u3").await;
    assert_eq!(v["results"][0]["item_id"], "i11", "{v}");
    assert_eq!(v["results"][0]["why"]["personal"]["rank"], 1, "{v}");
    let (_, v) = c.get("/v1/search?q=item&k=3&user=u3&personal=false").await;
    assert!(v["results"][0]["why"]["personal"].is_null(), "{v}");
}

#[tokio::test]
async fn an_unknown_user_searches_without_personalization() {
    let (_dir, c) = keyword_only();
    let (s, v) = c.get("/v1/search?q=item&user=nobody").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["query"]["personal"]
            .as_str()
            .unwrap()
            .contains("unknown user"),
        "{v}"
    );
}

#[tokio::test]
async fn a_new_item_is_found_at_once_even_with_a_typo() {
    let (_dir, c) = keyword_only();
    let (s, _) = c
        .call(
            "PUT",
            "/v1/items/lamp1",
            Some(r#"{"title":"Copper lantern","category":"odd"}"#),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = c.get("/v1/search?q=lantern").await;
    assert_eq!(v["results"][0]["item_id"], "lamp1", "{v}");
    let (_, v) = c.get("/v1/search?q=lantrn").await; // a typo in a 7-letter word
    assert_eq!(v["results"][0]["item_id"], "lamp1", "{v}");
}

#[tokio::test]
async fn out_of_stock_and_deleted_items_never_show_in_search() {
    let (_dir, c) = keyword_only();
    let put = |body: &'static str| c.call("PUT", "/v1/items/lamp1", Some(body), None);
    assert_eq!(put(r#"{"title":"Copper lantern"}"#).await.0, StatusCode::OK);
    put(r#"{"title":"Copper lantern","in_stock":false}"#).await;
    assert!(result_ids(&c.get("/v1/search?q=lantern").await.1).is_empty());
    put(r#"{"title":"Copper lantern"}"#).await;
    assert_eq!(
        result_ids(&c.get("/v1/search?q=lantern").await.1),
        ["lamp1"]
    );
    assert_eq!(
        c.call("DELETE", "/v1/items/lamp1", None, None).await.0,
        StatusCode::OK
    );
    assert!(result_ids(&c.get("/v1/search?q=lantern").await.1).is_empty());
}

/// Puts catalog entries (id, JSON body) through the API.
async fn put_items(c: &Client, items: &[(&str, &str)]) {
    for (id, body) in items {
        let (s, v) = c
            .call("PUT", &format!("/v1/items/{id}"), Some(body), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}

#[tokio::test]
async fn a_sentence_searches_its_content_words_and_says_which_it_left_out() {
    let (_dir, c) = keyword_only();
    put_items(
        &c,
        &[
            ("lamp1", r#"{"title":"Copper lantern"}"#),
            ("wb", r#"{"title":"WHEELBARROW FOR CHILDREN"}"#),
        ],
    )
    .await;
    let (s, v) = c.get("/v1/search?q=a%20lantern%20for%20the%20garden").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // "for" matches nothing on its own.
    assert_eq!(result_ids(&v), ["lamp1"], "{v}");
    let why = &v["results"][0]["why"];
    assert_eq!(why["intent"]["class"], "sentence", "{v}");
    assert_eq!(why["intent"]["keyword_query"], "lantern garden", "{v}");
    assert_eq!(why["intent"]["ignored"], json!(["a", "for", "the"]), "{v}");
    let w = &why["weights"];
    assert!(
        w["keyword"].as_f64().unwrap() > 0.0 && w["semantic"].is_number(),
        "{v}"
    );
}

#[tokio::test]
async fn a_price_limit_in_the_query_filters_the_results() {
    let (_dir, c) = keyword_only();
    put_items(
        &c,
        &[
            ("cheap", r#"{"title":"Copper lantern","price":3.5}"#),
            ("dear", r#"{"title":"Brass lantern","price":12}"#),
        ],
    )
    .await;
    let (_, v) = c.get("/v1/search?q=lantern%20under%205%20pounds").await;
    assert_eq!(result_ids(&v), ["cheap"], "{v}");
    assert_eq!(v["results"][0]["why"]["intent"]["price_max"], 5.0, "{v}");
    // A price filter in the request wins over the query's.
    let (_, v) = c
        .get("/v1/search?q=lantern%20under%205%20pounds&price_min=10")
        .await;
    assert_eq!(result_ids(&v), ["dear"], "{v}");
}

#[tokio::test]
async fn a_category_named_in_the_query_is_an_intent_and_its_products_come_first() {
    let (_dir, c) = keyword_only();
    put_items(
        &c,
        &[
            ("m1", r#"{"title":"Copper lantern","category":"Garden"}"#),
            (
                "m2",
                r#"{"title":"Copper lantern lantern","category":"Kitchen"}"#,
            ),
        ],
    )
    .await;
    let (_, v) = c.get("/v1/search?q=lantern%20for%20the%20garden").await;
    assert_eq!(result_ids(&v)[0], "m1", "{v}");
    assert_eq!(
        v["results"][0]["why"]["intent"]["categories"],
        json!(["Garden"]),
        "{v}"
    );
}

#[tokio::test]
async fn a_misspelt_word_is_corrected_from_the_catalogs_words() {
    let (_dir, c) = keyword_only();
    put_items(&c, &[("lamp1", r#"{"title":"Copper lantern"}"#)]).await;
    let (_, v) = c.get("/v1/search?q=copper%20lanturn").await;
    assert_eq!(result_ids(&v)[0], "lamp1", "{v}");
    let i = &v["results"][0]["why"]["intent"];
    assert_eq!(i["corrected"], json!([["lanturn", "lantern"]]), "{v}");
    assert_eq!(i["class"], "corrected", "{v}");
}

#[tokio::test]
async fn near_duplicate_titles_show_once_with_the_others_listed() {
    let (_dir, c) = keyword_only();
    put_items(
        &c,
        &[
            ("a", r#"{"title":"TEA TIME TABLE CLOTH"}"#),
            ("b", r#"{"title":"Tea time  table-cloth."}"#),
            ("c", r#"{"title":"TEA TIME MUG"}"#),
        ],
    )
    .await;
    let (_, v) = c.get("/v1/search?q=tea%20time&k=2").await;
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{v}");
    let ids = result_ids(&v);
    assert!(ids.contains(&"c".to_string()), "{v}");
    let cloth = r.iter().find(|x| x["item_id"] != "c").unwrap();
    assert_eq!(cloth["also"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        r.iter().find(|x| x["item_id"] == "c").unwrap()["also"].is_null(),
        "{v}"
    );
}

#[tokio::test]
async fn out_of_stock_items_come_last_when_configured_to_be_demoted() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |c| {
        c.search.no_semantic = true;
        c.search.demote_out_of_stock = true;
    });
    put_items(
        &c,
        &[
            (
                "gone",
                r#"{"title":"Copper lantern lantern","in_stock":false}"#,
            ),
            ("here", r#"{"title":"Brass lantern"}"#),
        ],
    )
    .await;
    // The better keyword match is out of stock: shown, after the other.
    let (_, v) = c.get("/v1/search?q=lantern").await;
    assert_eq!(result_ids(&v), ["here", "gone"], "{v}");
}

#[tokio::test]
async fn suggestions_offer_past_queries_first_then_titles() {
    let (_dir, c) = keyword_only();
    c.get("/v1/search?q=item").await;
    let (s, v) = c.get("/v1/search/suggest?q=it").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sug = v["suggestions"].as_array().unwrap();
    assert_eq!(sug[0]["text"], "item", "{v}");
    assert_eq!(sug[0]["source"], "query");
    assert!(sug.iter().any(|x| x["source"] == "title"), "{v}");
}

#[tokio::test]
async fn every_search_is_written_to_the_query_log() {
    let (dir, c) = keyword_only();
    for q in ["item", "lantrn", "items"] {
        c.get(&format!("/v1/search?q={q}")).await;
    }
    let log = std::fs::read_to_string(dir.path().join("search/queries.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.contains(r#""q":"lantrn""#), "{log}");
}

#[tokio::test]
async fn odd_but_valid_queries_answer_200() {
    let (_dir, c) = keyword_only();
    for q in [
        "%21%21%21",
        "%F0%9F%8E%89",
        "%27%3B%20DROP%20TABLE%20items%3B%20--",
        "%3Cscript%3Eitem%3C%2Fscript%3E",
        "item%20%E8%BF%9E%E8%A1%A3%E8%A3%99",
    ] {
        let (s, v) = c.get(&format!("/v1/search?q={q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert!(v["results"].is_array(), "{q}: {v}");
    }
}

#[tokio::test]
async fn bad_search_queries_are_400_with_a_json_reason() {
    let (_dir, c) = keyword_only();
    let long = "a".repeat(10_001);
    for uri in [
        "/v1/search".to_string(),
        "/v1/search?q=".to_string(),
        "/v1/search?q=%20%20".to_string(),
        format!("/v1/search?q={long}"),
        "/v1/search?q=item&k=0".to_string(),
        "/v1/search?q=item&k=abc".to_string(),
        "/v1/search?q=item&price_min=-1".to_string(),
        "/v1/search?q=item&personal=maybe".to_string(),
        "/v1/search?q=item&color=red".to_string(),
        "/v1/search/suggest".to_string(),
    ] {
        let (s, v) = c.get(&uri).await;
        assert_error(s, &v, StatusCode::BAD_REQUEST);
    }
}

/// A fresh shop searched with the real encoder (scripts/fetch-embedder.sh
/// installs it; the README's test command runs that first), with a lantern
/// and a mug added to the catalog.
async fn with_encoder() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let embedder = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/all-MiniLM-L6-v2"
    ));
    assert!(
        embedder.join("model.safetensors").exists(),
        "run scripts/fetch-embedder.sh"
    );
    let (_app, c) = open(&url, |c| c.search.embedder_dir = Some(embedder.clone()));
    for (id, body) in [
        (
            "lamp1",
            r#"{"title":"Brass garden lantern","category":"odd"}"#,
        ),
        (
            "mug1",
            r#"{"title":"Stoneware coffee mug","category":"even"}"#,
        ),
    ] {
        let (s, v) = c
            .call("PUT", &format!("/v1/items/{id}"), Some(body), None)
            .await;
        assert!(s.is_success(), "{v}");
    }
    (dir, c)
}

fn has(v: &Value, id: &str) -> bool {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["item_id"] == id)
}

const PATIO: &str = "/v1/search?q=outdoor%20light%20for%20the%20patio&mode=semantic&k=3";

#[tokio::test]
async fn semantic_search_finds_an_item_by_meaning_alone() {
    let (_dir, c) = with_encoder().await;
    // No shared word with the title: only the meaning connects them.
    let (s, v) = c.get(PATIO).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["item_id"], "lamp1", "{v}");
    let cos = v["results"][0]["why"]["semantic"]["cosine"]
        .as_f64()
        .unwrap();
    assert!(cos > 0.2 && cos <= 1.0, "{v}");
    assert!(v["results"][0]["why"]["keyword_rank"].is_null());
}

#[tokio::test]
async fn hybrid_is_the_default_and_counts_both_matches() {
    let (_dir, c) = with_encoder().await;
    let (_, v) = c.get("/v1/search?q=cup%20of%20coffee&k=3").await;
    assert_eq!(v["query"]["mode"], "hybrid", "{v}");
    assert_eq!(v["results"][0]["item_id"], "mug1", "{v}");
    assert!(v["results"][0]["why"]["keyword_rank"].is_number(), "{v}");
    assert!(
        v["results"][0]["why"]["semantic"]["rank"].is_number(),
        "{v}"
    );
}

#[tokio::test]
async fn filters_apply_to_the_semantic_list() {
    let (_dir, c) = with_encoder().await;
    let (_, v) = c
        .get("/v1/search?q=outdoor%20light&mode=semantic&category=even&k=20")
        .await;
    assert!(!has(&v, "lamp1"), "{v}");
}

#[tokio::test]
async fn a_deleted_item_leaves_the_vector_index() {
    let (dir, c) = with_encoder().await;
    assert!(has(&c.get(PATIO).await.1, "lamp1"));
    c.call("DELETE", "/v1/items/lamp1", None, None).await;
    assert!(!has(&c.get(PATIO).await.1, "lamp1"));
    // Vectors are stored with the index and reused.
    assert!(dir.path().join("search/vectors.bin").exists());
}

/// A hybrid search's results with a server configured with `rerank`.
async fn reranked_by(rerank: Option<aisle_search::rerank::Ranker>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let embedder = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/all-MiniLM-L6-v2"
    ));
    let (_app, c) = open(&url, |c| {
        c.search.embedder_dir = Some(embedder.clone());
        c.search.rerank = rerank.clone();
    });
    put_items(
        &c,
        &[
            ("short", r#"{"title":"Garden lantern"}"#),
            (
                "long",
                r#"{"title":"Old brass garden lantern with a long carrying handle"}"#,
            ),
        ],
    )
    .await;
    c.get("/v1/search?q=garden%20lantern&k=2").await.1
}

#[tokio::test]
async fn a_configured_reranking_stage_reorders_the_fused_top_and_says_from_where() {
    use aisle_search::rerank::{Ranker, FEATURES};
    // Off (the default): the fused order, no fused_rank.
    let v = reranked_by(None).await;
    assert_eq!(result_ids(&v), ["short", "long"], "{v}");
    assert!(v["results"][0]["why"].get("fused_rank").is_none(), "{v}");
    // A ranker that prefers long titles over everything else.
    let mut r = Ranker::fused_only();
    r.weights[FEATURES.iter().position(|f| *f == "title_words").unwrap()] = 100.0;
    let v = reranked_by(Some(r)).await;
    assert_eq!(result_ids(&v), ["long", "short"], "{v}");
    assert_eq!(v["results"][0]["why"]["fused_rank"], 2, "{v}");
    assert_eq!(v["results"][1]["why"]["fused_rank"], 1, "{v}");
    // Scores stay by place: the first result keeps the best fused score.
    assert!(
        v["results"][0]["score"].as_f64() >= v["results"][1]["score"].as_f64(),
        "{v}"
    );
}

#[tokio::test]
async fn a_word_the_encoder_knows_is_not_corrected_to_a_catalog_word() {
    let item = [("pan", r#"{"title":"Frying pan"}"#)];
    let corrected = |v: &Value| v["results"][0]["why"]["intent"]["corrected"].clone();
    // Without the encoder, "drying" (in no title) reads as "frying" misspelt.
    let (_dir, c) = keyword_only();
    put_items(&c, &item).await;
    let (_, v) = c.get("/v1/search?q=pan%20drying").await;
    assert_eq!(corrected(&v), json!([["drying", "frying"]]), "{v}");
    // With it, "drying" is a word of the language and stays.
    let (_dir, c) = with_encoder().await;
    put_items(&c, &item).await;
    let (_, v) = c.get("/v1/search?q=pan%20drying").await;
    assert_eq!(corrected(&v), json!([]), "{v}");
    assert_eq!(
        v["results"][0]["why"]["intent"]["keyword_query"], "pan drying",
        "{v}"
    );
}

#[tokio::test]
async fn an_unknown_search_mode_is_400() {
    let (_dir, c) = with_encoder().await;
    let (s, v) = c.get("/v1/search?q=x&mode=bogus").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_the_encoder_semantic_is_409_and_keyword_works() {
    let (_dir, c) = keyword_only();
    let (s, v) = c.get("/v1/search?q=item&mode=semantic").await;
    assert_error(s, &v, StatusCode::CONFLICT);
    let (s, v) = c.get("/v1/search?q=item").await;
    assert_eq!(
        (s, v["query"]["mode"].as_str()),
        (StatusCode::OK, Some("keyword")),
        "{v}"
    );
}

/// Before `aisle evaluate` ran on the store there is no evaluation to show.
#[tokio::test]
async fn the_evaluation_of_a_store_never_evaluated_is_a_404_that_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |_| {});
    let (s, v) = c.get("/v1/admin/evaluation").await;
    assert_error(s, &v, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "no_evaluation");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("aisle evaluate"));
}
