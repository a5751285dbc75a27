//! Identity stitching: an anonymous or device id linked to a user
//! (`POST /v1/users/{id}/aliases`) makes one history with it, durably,
//! idempotently, reversibly, and erasure takes every alias with the user.

mod common;

use axum::http::StatusCode;
use common::{assert_error, open, post_ok, shop, Client};
use serde_json::Value;

/// Posts one view per item, `user` as the sender, at increasing times from `t0`.
async fn views(c: &Client, user: &str, items: &[&str], t0: i64) {
    for (k, item) in items.iter().enumerate() {
        post_ok(
            c,
            "/v1/events",
            &format!(
                r#"{{"user_id":"{user}","item_id":"{item}","type":"view","timestamp":{}}}"#,
                t0 + k as i64
            ),
        )
        .await;
    }
}

/// The list's (item, score) pairs: what must be equal between ids.
async fn list(c: &Client, user: &str) -> Vec<(String, String)> {
    let (s, v) = c
        .get(&format!("/v1/users/{user}/recommendations?k=5"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["item_id"].to_string(), i["score"].to_string()))
        .collect()
}

async fn link(c: &Client, user: &str, alias: &str) -> (StatusCode, Value) {
    c.post(
        &format!("/v1/users/{user}/aliases"),
        &format!(r#"{{"alias":"{alias}"}}"#),
    )
    .await
}

const T0: i64 = 1_750_000_000;

#[tokio::test]
async fn a_linked_alias_and_its_user_get_the_list_of_one_who_did_everything_logged_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |_| {});
    // Browsing anonymously, then logged in, then on the phone.
    views(&c, "anon-7", &["i2", "i3"], T0).await;
    views(&c, "alice", &["i4"], T0 + 10).await;
    let (s, v) = link(&c, "alice", "anon-7").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["changed"].as_bool(), v["history_items"].as_u64()),
        (Some(true), Some(3))
    );
    assert_eq!(link(&c, "alice", "phone-1").await.0, StatusCode::CREATED);
    views(&c, "phone-1", &["i5"], T0 + 20).await;
    // The same shopper, every event sent logged in.
    views(&c, "carol", &["i2", "i3", "i4", "i5"], T0).await;

    let want = list(&c, "carol").await;
    assert_eq!(want.len(), 5);
    assert_eq!(list(&c, "alice").await, want);
    assert_eq!(list(&c, "anon-7").await, want);
    assert_eq!(list(&c, "phone-1").await, want);

    // Linking again changes nothing.
    let (s, v) = link(&c, "alice", "anon-7").await;
    assert_eq!(
        (s, v["changed"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    let (_, v) = c.get("/v1/users/alice/aliases").await;
    assert_eq!(
        v["aliases"],
        serde_json::json!(["anon-7", "phone-1"]),
        "{v}"
    );

    // Durable: a server started again on the store stitches the same way.
    drop(c);
    let (_app2, c) = open(&url, |_| {});
    assert_eq!(list(&c, "anon-7").await, want);
    assert_eq!(list(&c, "alice").await, want);
}

#[tokio::test]
async fn unlinking_gives_each_id_its_own_history_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, c) = open(&shop(dir.path()), |_| {});
    views(&c, "anon", &["i6"], T0).await;
    views(&c, "bob", &["i1"], T0 + 5).await;
    views(&c, "only-i6", &["i6"], T0).await;
    views(&c, "only-i1", &["i1"], T0).await;
    link(&c, "bob", "anon").await;
    assert_ne!(list(&c, "anon").await, list(&c, "only-i6").await);
    let (s, v) = c
        .call("DELETE", "/v1/users/bob/aliases/anon", None, None)
        .await;
    assert_eq!(
        (s, v["linked"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    assert_eq!(list(&c, "anon").await, list(&c, "only-i6").await);
    assert_eq!(list(&c, "bob").await, list(&c, "only-i1").await);
    let (s, v) = c
        .call("DELETE", "/v1/users/bob/aliases/anon", None, None)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_alias");
}

#[tokio::test]
async fn erasing_the_user_erases_every_alias_and_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (_app, c) = open(&url, |_| {});
    views(&c, "anon-9", &["i2", "i3"], T0).await;
    views(&c, "dave", &["i4"], T0 + 10).await;
    link(&c, "dave", "anon-9").await;
    let (s, v) = c.call("DELETE", "/v1/users/dave", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deleted_events"].as_u64(), Some(3), "{v}");
    assert_eq!(v["erased"]["aliases"], serde_json::json!(["anon-9"]), "{v}");
    let (_, v) = c.get("/v1/users/dave/aliases").await;
    assert_eq!(v["aliases"], serde_json::json!([]));
    let (_, v) = c.get("/v1/users/anon-9/recommendations").await;
    assert_eq!(v["user_known"], false, "{v}");
    drop(c);
    let store = aisle_store::open_existing(&url).unwrap();
    assert!(store.aliases().unwrap().is_empty());
    assert!(store.user_events("anon-9", 10).unwrap().is_empty());
    assert!(store.user_events("dave", 10).unwrap().is_empty());
}

#[tokio::test]
async fn links_that_would_steal_or_chain_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, c) = open(&shop(dir.path()), |_| {});
    assert_eq!(link(&c, "erin", "tab-1").await.0, StatusCode::CREATED);
    for (user, alias, status, code) in [
        ("frank", "tab-1", StatusCode::CONFLICT, "alias_conflict"),
        ("tab-1", "x", StatusCode::CONFLICT, "alias_conflict"),
        ("frank", "erin", StatusCode::CONFLICT, "alias_conflict"),
        ("frank", "frank", StatusCode::BAD_REQUEST, "bad_alias"),
        ("frank", "", StatusCode::BAD_REQUEST, "bad_alias"),
    ] {
        let (s, v) = link(&c, user, alias).await;
        assert_error(s, &v, status);
        assert_eq!(v["error"]["code"], code, "{user} <- {alias}: {v}");
    }
    for body in [r#"{"alias":3}"#, r#"{"alias":"a","x":1}"#, "{}"] {
        let (s, v) = c.post("/v1/users/frank/aliases", body).await;
        assert_error(s, &v, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "bad_alias", "{body}: {v}");
    }
    let (s, v) = c.post("/v1/users/frank/aliases", "{").await;
    assert_error(s, &v, StatusCode::BAD_REQUEST);
}
