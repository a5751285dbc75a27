//! The online loop over HTTP: every list carries a request id and is
//! logged; clicks, carts and purchases are joined back to it; experiments
//! are created, assign users stickily, interleave, report and stop; bad
//! experiment requests and bad values are 4xx with nothing written.

mod common;

use axum::http::StatusCode;
use serde_json::{json, Value};

use aisle_serve::online::parse_request_id;
use common::*;

async fn recs(c: &Client, user: &str) -> Value {
    let (s, v) = c
        .get(&format!("/v1/users/{user}/recommendations?k=5"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn rid(v: &Value) -> u64 {
    parse_request_id(v["request_id"].as_str().expect("a request_id")).expect("16 hex digits")
}

fn impression(app: &aisle_serve::App, rid: u64) -> Option<aisle_store::online::Impression> {
    app.online.flush();
    app.online.reader.lock().unwrap().impression(rid).unwrap()
}

async fn event(c: &Client, body: Value) -> Value {
    let (s, v) = c.post("/v1/events", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn every_list_carries_a_request_id_and_is_logged_with_its_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (app, c) = open(&shop(dir.path()), |_| {});
    let v = recs(&c, "u3").await;
    let imp = impression(&app, rid(&v)).expect("logged");
    assert_eq!(imp.surface, "recommendations");
    assert_eq!(imp.user.as_deref(), Some("u3"));
    let shown: Vec<String> = imp.items.iter().map(|s| s.item.clone()).collect();
    assert_eq!(shown, ids(&v));
    assert!(imp.model.starts_with("sasrec@"), "{}", imp.model);
    for uri in [
        "/v1/popular?k=3&user=u3",
        "/v1/items/i1/similar?k=3&user=u3",
        "/v1/search?q=item&k=3&user=u3",
    ] {
        let (s, v) = c.get(uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
        let imp = impression(&app, rid(&v)).unwrap_or_else(|| panic!("{uri} not logged"));
        assert_eq!(imp.user.as_deref(), Some("u3"), "{uri}");
    }
    let (_, v) = c
        .post(
            "/v1/sessions/recommendations?session=s9",
            r#"{"items":["i1","i2"],"k":3}"#,
        )
        .await;
    let imp = impression(&app, rid(&v)).unwrap();
    assert_eq!(
        (imp.surface.as_str(), imp.session.as_deref()),
        ("session", Some("s9"))
    );
}

#[tokio::test]
async fn request_ids_grow_with_time_and_never_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, c) = open(&shop(dir.path()), |_| {});
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut last = 0u64;
    for _ in 0..50 {
        let r = rid(&recs(&c, "u3").await);
        assert!(r > last, "{r:x} after {last:x}");
        last = r;
    }
    // The top 41 bits are milliseconds since 2024-01-01.
    let ms = (last >> 22) + 1_704_067_200_000;
    assert!(ms >= before && ms < before + 60_000, "{ms} vs {before}");
}

#[tokio::test]
async fn a_click_with_its_request_id_is_joined_to_the_list_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let (app, c) = open(&shop(dir.path()), |_| {});
    let v = recs(&c, "u3").await;
    let second = ids(&v)[1].clone();
    let r = event(
        &c,
        json!({"user_id":"u3","item_id":second,"type":"click","request_id":v["request_id"]}),
    )
    .await;
    assert_eq!(
        (r["attributed"].as_u64(), r["unattributed"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    let joined = app
        .online
        .reader
        .lock()
        .unwrap()
        .outcomes_of(rid(&v))
        .unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(
        (joined[0].1.as_str(), joined[0].2),
        (second.as_str(), Some(2))
    );
}

#[tokio::test]
async fn a_purchase_without_request_id_is_credited_to_the_latest_list_that_showed_it() {
    let dir = tempfile::tempdir().unwrap();
    let (app, c) = open(&shop(dir.path()), |_| {});
    let _older = recs(&c, "u3").await;
    let newer = recs(&c, "u3").await;
    let item = ids(&newer)[0].clone();
    let r = event(
        &c,
        json!({"user_id":"u3","item_id":item,"type":"purchase","price":4.5,"quantity":2}),
    )
    .await;
    assert_eq!(r["attributed"], 1, "{r}");
    let joined = app
        .online
        .reader
        .lock()
        .unwrap()
        .outcomes_of(rid(&newer))
        .unwrap();
    assert_eq!(joined.len(), 1, "the newer list gets the credit");
    assert_eq!(joined[0].3, 9.0, "value = price x quantity");
}

#[tokio::test]
async fn an_event_whose_request_id_was_never_issued_is_kept_and_counted_unattributed() {
    let (_dir, c) = fresh();
    for bogus in ["0123456789abcdef", "not-a-request-id"] {
        let r = event(
            &c,
            json!({"user_id":"u3","item_id":"i1","type":"click","request_id":bogus}),
        )
        .await;
        assert_eq!(
            (r["inserted"].as_u64(), r["unattributed"].as_u64()),
            (Some(1), Some(1)),
            "{r}"
        );
    }
    // A purchase of an item no list showed: kept, unattributed.
    let r = event(
        &c,
        json!({"user_id":"u3","item_id":"i7","type":"purchase","value":3}),
    )
    .await;
    assert_eq!(
        (r["inserted"].as_u64(), r["unattributed"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
}

#[tokio::test]
async fn a_negative_or_non_numeric_value_is_a_400_and_nothing_of_the_batch_is_written() {
    let (_dir, c) = fresh();
    for bad in [json!(-1.0), json!("12.50"), json!(null)] {
        let body = json!({"events": [
            {"user_id":"u3","item_id":"i1","type":"click","event_id":"ok-1"},
            {"user_id":"u3","item_id":"i2","type":"purchase","value":bad,"event_id":"bad-1"}
        ]});
        let (s, v) = c.post("/v1/events", &body.to_string()).await;
        if bad.is_null() {
            // null is "absent": accepted.
            assert_eq!(s, StatusCode::OK, "{v}");
            continue;
        }
        assert_error(s, &v, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "bad_event", "{v}");
    }
    let (s, v) = c
        .post(
            "/v1/events",
            r#"{"user_id":"u3","item_id":"i1","type":"click","position":0}"#,
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_first_batch_with_a_bad_value_wrote_nothing() {
    let (_dir, c) = fresh();
    let body = json!({"events": [
        {"user_id":"u3","item_id":"i1","type":"click","event_id":"first"},
        {"user_id":"u3","item_id":"i2","type":"purchase","value":-5,"event_id":"second"}
    ]});
    let (s, _) = c.post("/v1/events", &body.to_string()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = event(
        &c,
        json!({"user_id":"u3","item_id":"i1","type":"click","event_id":"first"}),
    )
    .await;
    assert_eq!(r["inserted"], 1, "the refused batch stored nothing: {r}");
}

fn ab(name: &str, a: &str, b: &str) -> String {
    json!({"name": name, "surface": "recommendations", "mode": "ab",
           "arms": [{"name":"control","model":a,"traffic":50},{"name":"treatment","model":b,"traffic":50}]})
    .to_string()
}

async fn admin_post(c: &Client, uri: &str, body: &str) -> (StatusCode, Value) {
    c.post(uri, body).await
}

#[tokio::test]
async fn an_ab_experiment_assigns_each_user_one_arm_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let arms: Vec<(String, String)>;
    {
        let (_app, c) = open(&url, |_| {});
        let (s, v) = admin_post(
            &c,
            "/v1/admin/experiments",
            &ab("pop-vs-sasrec", "pop", "promoted"),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let mut seen = Vec::new();
        for u in 0..20 {
            let user = format!("u{u}");
            let v = recs(&c, &user).await;
            assert_eq!(v["experiment"]["name"], "pop-vs-sasrec", "{v}");
            let arm = v["experiment"]["arm"].as_str().unwrap().to_string();
            let again = recs(&c, &user).await;
            assert_eq!(
                again["experiment"]["arm"],
                arm.as_str(),
                "sticky within a process"
            );
            let source = v["items"][0]["source"].as_str().unwrap();
            match arm.as_str() {
                "control" => assert_eq!(source, "popularity", "{v}"),
                "treatment" => assert_ne!(source, "popularity", "{v}"),
                other => panic!("arm {other}"),
            }
            seen.push((user, arm));
        }
        assert!(
            seen.iter().any(|(_, a)| a == "control") && seen.iter().any(|(_, a)| a == "treatment")
        );
        arms = seen;
    }
    // A restarted server (or another replica) assigns everyone alike.
    let (_app, c) = open(&url, |_| {});
    for (user, arm) in &arms {
        let v = recs(&c, user).await;
        assert_eq!(v["experiment"]["arm"], arm.as_str(), "{user}");
    }
}

#[tokio::test]
async fn experiment_requests_that_cannot_run_are_4xx_and_store_nothing() {
    let (_dir, c) = fresh();
    let cases = [
        (
            json!({"name":"x","surface":"recommendations","mode":"ab",
                   "arms":[{"name":"a","model":"pop","traffic":60},{"name":"b","model":"promoted","traffic":30}]}),
            "bad_experiment",
        ),
        (
            json!({"name":"x","surface":"recommendations","mode":"ab",
                   "arms":[{"name":"a","model":"pop","traffic":50},{"name":"b","model":"no-such-model","traffic":50}]}),
            "unknown_arm",
        ),
        (
            json!({"name":"x","surface":"homepage","mode":"ab","arms":[]}),
            "bad_experiment",
        ),
        (
            json!({"name":"x","surface":"search","mode":"interleave",
                   "arms":[{"name":"a","model":"pop"},{"name":"b","model":"pop"},{"name":"c","model":"pop"}]}),
            "bad_experiment",
        ),
    ];
    for (body, code) in cases {
        let (s, v) = admin_post(&c, "/v1/admin/experiments", &body.to_string()).await;
        assert!(s.is_client_error(), "{body}: {s} {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
    }
    let (_, v) = c.get("/v1/admin/experiments").await;
    assert_eq!(v["experiments"].as_array().unwrap().len(), 0, "{v}");
}

#[tokio::test]
async fn a_second_experiment_on_a_busy_surface_or_a_reused_name_is_a_409() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, c) = open(&shop(dir.path()), |_| {});
    let (s, _) = admin_post(&c, "/v1/admin/experiments", &ab("one", "pop", "promoted")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = admin_post(&c, "/v1/admin/experiments", &ab("two", "pop", "promoted")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("surface_busy")),
        "{v}"
    );
    let (s, v) = c.post("/v1/admin/experiments/one/stop", "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["running"], false);
    let (s, v) = c.post("/v1/admin/experiments/one/stop", "").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("experiment_stopped"))
    );
    let (s, v) = admin_post(&c, "/v1/admin/experiments", &ab("one", "pop", "promoted")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("experiment_exists"))
    );
    let (s, v) = admin_post(&c, "/v1/admin/experiments", &ab("two", "pop", "promoted")).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the surface is free once `one` stopped: {v}"
    );
    let (s, v) = c.get("/v1/admin/experiments/nope/report").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_experiment"))
    );
}

#[tokio::test]
async fn the_report_counts_users_impressions_and_joined_clicks_per_arm() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, c) = open(&shop(dir.path()), |_| {});
    admin_post(&c, "/v1/admin/experiments", &ab("exp", "pop", "promoted")).await;
    let mut clicks = std::collections::HashMap::<String, u64>::new();
    for u in 0..30 {
        let user = format!("u{u}");
        let v = recs(&c, &user).await;
        let arm = v["experiment"]["arm"].as_str().unwrap().to_string();
        if u % 3 == 0 {
            let item = ids(&v)[0].clone();
            event(
                &c,
                json!({"user_id":user,"item_id":item,"type":"click","request_id":v["request_id"]}),
            )
            .await;
            *clicks.entry(arm).or_default() += 1;
        }
    }
    let (s, r) = c.get("/v1/admin/experiments/exp/report").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["experiment"], "exp");
    assert_eq!(r["mode"], "ab");
    let arms = r["arms"].as_array().unwrap();
    let users: u64 = arms.iter().map(|a| a["users"].as_u64().unwrap()).sum();
    assert_eq!(users, 30);
    for a in arms {
        let name = a["name"].as_str().unwrap();
        assert_eq!(a["impressions"], a["users"], "one list each: {a}");
        assert_eq!(
            a["clicks"].as_u64().unwrap(),
            clicks.get(name).copied().unwrap_or(0),
            "{a}"
        );
        for m in ["ctr", "cvr", "gmv_per_user"] {
            let e = &a[m];
            assert!(
                e["value"].is_number() && e["low"].is_number() && e["high"].is_number(),
                "{m}: {a}"
            );
        }
    }
    let cmp = &r["comparisons"][0];
    for f in [
        "arm",
        "metric",
        "lift",
        "low",
        "high",
        "p_value",
        "always_valid_p_value",
    ] {
        assert!(!cmp[f].is_null(), "{f}: {cmp}");
    }
    assert!(
        r["srm"]["p_value"].is_number() && r["srm"]["flagged"].is_boolean(),
        "{r}"
    );
    assert_eq!(r["verdict"], "keep_running", "30 users decide nothing: {r}");
}

#[tokio::test]
async fn interleaving_merges_both_arms_lists_and_credits_clicks_to_the_drafting_arm() {
    let dir = tempfile::tempdir().unwrap();
    let (app, c) = open(&shop(dir.path()), |_| {});
    let body = json!({"name":"il","surface":"recommendations","mode":"interleave",
        "arms":[{"name":"pop","model":"pop"},{"name":"model","model":"promoted"}]});
    let (s, v) = admin_post(&c, "/v1/admin/experiments", &body.to_string()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let v = recs(&c, "u3").await;
    assert_eq!(v["experiment"]["arm"], "interleaved", "{v}");
    let imp = impression(&app, rid(&v)).unwrap();
    assert!(
        imp.items.iter().all(|s| s.team.is_some()),
        "every shown item has a team"
    );
    let sources: std::collections::HashSet<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains("popularity") && sources.contains("sasrec"),
        "{v}"
    );
    // Click the model's item: the report credits the `model` arm.
    let pos = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .position(|i| i["source"] == "sasrec")
        .unwrap();
    let item = ids(&v)[pos].clone();
    event(
        &c,
        json!({"user_id":"u3","item_id":item,"type":"click","request_id":v["request_id"]}),
    )
    .await;
    let (_, r) = c.get("/v1/admin/experiments/il/report").await;
    assert_eq!(r["mode"], "interleave", "{r}");
    let team = imp.items[pos].team.unwrap();
    let wins = &r["interleaving"]["wins"];
    match team {
        aisle_experiment::Team::B => assert_eq!(wins, &json!([0, 1]), "{r}"),
        aisle_experiment::Team::A => assert_eq!(wins, &json!([1, 0]), "{r}"),
        aisle_experiment::Team::Neutral => assert_eq!(wins, &json!([0, 0]), "{r}"),
    }
}

#[tokio::test]
async fn erasing_a_user_erases_their_impressions_and_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let (app, c) = open(&shop(dir.path()), |_| {});
    let v = recs(&c, "u5").await;
    let item = ids(&v)[0].clone();
    event(
        &c,
        json!({"user_id":"u5","item_id":item,"type":"click","request_id":v["request_id"]}),
    )
    .await;
    let (s, e) = c.call("DELETE", "/v1/users/u5", None, None).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["erased"]["impressions"], 1, "{e}");
    assert!(impression(&app, rid(&v)).is_none());
    assert!(app
        .online
        .reader
        .lock()
        .unwrap()
        .outcomes_of(rid(&v))
        .unwrap()
        .is_empty());
    for f in ["online.db", "online.db-wal"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(2).any(|w| w == b"u5"),
            "a trace of u5 in {f}"
        );
    }
}

#[tokio::test]
async fn kpis_report_ctr_by_position_and_unattributed_outcomes() {
    let (_dir, c) = fresh();
    let v = recs(&c, "u3").await;
    let item = ids(&v)[1].clone();
    event(
        &c,
        json!({"user_id":"u3","item_id":item,"type":"click","request_id":v["request_id"]}),
    )
    .await;
    event(&c, json!({"user_id":"u3","item_id":"i7","type":"purchase","value":5,"request_id":"ffffffffffffffff"})).await;
    let (s, k) = c.get("/v1/admin/kpis").await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["impressions"], 1, "{k}");
    assert_eq!(k["clicks"], 1, "{k}");
    assert_eq!(k["unattributed"], 1, "{k}");
    assert_eq!(k["ctr_by_position"][1], 1.0, "{k}");
    assert_eq!(k["ctr_by_position"][0], 0.0, "{k}");
    let (s, v) = c.get("/v1/admin/kpis?from=yesterday").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST);
}
