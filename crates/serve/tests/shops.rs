//! Many shops in one server: `/v1/shops/{shop}/…`, each shop with its own
//! keys and its own store; the single-shop paths are the default shop's.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_serve::shops::{self, Shops};
use aisle_serve::App;
use axum::http::StatusCode;
use common::{assert_error, shop, Client};
use serde_json::Value;

const DEFAULT_ADMIN: &str = "default-admin-key-0123456789";

struct Deployment {
    _dir: tempfile::TempDir,
    base: String,
    shops: Arc<Shops>,
    c: Client,
    /// Shop name → (read, write, admin) keys.
    keys: std::collections::HashMap<String, [String; 3]>,
}

impl Deployment {
    fn key(&self, shop: &str, scope: usize) -> &str {
        &self.keys[shop][scope]
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.shops.stop();
    }
}

fn three(c: &shops::CreatedShop) -> [String; 3] {
    let k = |s: aisle_serve::Scope| c.keys.iter().find(|(x, _)| *x == s).unwrap().1.clone();
    [
        k(aisle_serve::Scope::Read),
        k(aisle_serve::Scope::Write),
        k(aisle_serve::Scope::Admin),
    ]
}

/// The test shop as the default shop (with an admin key), and shops `a`
/// and `b` beside it, served by one router.
fn deployment(refresh: Duration) -> Deployment {
    let dir = tempfile::tempdir().unwrap();
    let base = shop(dir.path());
    let mut keys = std::collections::HashMap::new();
    for name in ["a", "b"] {
        let c = shops::create(&base, name).unwrap();
        keys.insert(name.to_string(), three(&c));
    }
    let mut cfg = aisle_serve::ServeConfig::new(&base, "127.0.0.1:0".parse().unwrap());
    cfg.admin_key = Some(DEFAULT_ADMIN.into());
    cfg.shops_refresh = refresh;
    // The walk below fails many authentications from one address.
    cfg.auth_failure_burst = 1e9;
    cfg.search.no_semantic = true;
    let app = App::open(cfg).unwrap();
    let all = Shops::new(app);
    all.start();
    let c = Client {
        app: shops::router(all.clone()),
    };
    Deployment {
        _dir: dir,
        base,
        shops: all,
        c,
        keys,
    }
}

async fn call(
    c: &Client,
    method: &str,
    uri: &str,
    body: Option<&str>,
    key: &str,
) -> (StatusCode, Value) {
    c.call(method, uri, body, Some(key)).await
}

/// Every documented route and method, with its path parameters filled in.
async fn every_route(c: &Client) -> Vec<(String, String)> {
    let (s, doc) = call(c, "GET", "/openapi.json", None, DEFAULT_ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "u1").replace("{name}", "x");
            out.push((method.to_uppercase(), concrete));
        }
    }
    // The console's pages and forms, which the document does not list.
    for p in [
        "/console/overview",
        "/console/data",
        "/console/models",
        "/console/experiments",
        "/console/search",
        "/console/shopper",
    ] {
        out.push(("GET".into(), p.into()));
    }
    assert!(out.len() > 25, "{out:?}");
    out
}

/// The path of `route` in shop `shop`.
fn in_shop(shop: &str, route: &str) -> String {
    let rest = route.strip_prefix("/v1").unwrap_or(route);
    format!("/v1/shops/{shop}{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_one_shop_reaches_nothing_of_another_shop_on_any_route() {
    let d = deployment(shops::REFRESH);
    let routes = every_route(&d.c).await;
    let body = Some(r#"{"user_id":"u1","item_id":"i1","type":"view"}"#);
    let mut checked = 0;
    for (method, route) in &routes {
        let open = route == "/healthz" || route == "/readyz";
        for scope in 0..3 {
            let key = d.key("a", scope);
            // Shop b's route, shop a's key.
            let (s, v) = call(&d.c, method, &in_shop("b", route), body, key).await;
            if open {
                assert!(s.is_success(), "{method} {route}: {s} {v}");
            } else {
                assert_error(s, &v, StatusCode::UNAUTHORIZED);
            }
            // The default shop's route (both spellings), shop a's key.
            for uri in [route.clone(), in_shop("default", route)] {
                let (s, v) = call(&d.c, method, &uri, body, key).await;
                if open {
                    assert!(s.is_success(), "{method} {uri}: {s} {v}");
                } else if route.starts_with("/console/") && uri == *route {
                    // A console page without a session: the login form.
                    assert_eq!(s, StatusCode::SEE_OTHER, "{method} {uri}: {v}");
                } else {
                    assert_error(s, &v, StatusCode::UNAUTHORIZED);
                }
            }
            checked += 1;
        }
        // Shop a's route, the default shop's admin key.
        let (s, v) = call(&d.c, method, &in_shop("a", route), body, DEFAULT_ADMIN).await;
        if !open {
            assert_error(s, &v, StatusCode::UNAUTHORIZED);
        }
        // Shop b's route, its own admin key: past the key check.
        let (s, v) = call(&d.c, method, &in_shop("b", route), body, d.key("b", 2)).await;
        assert!(
            s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
            "{method} {route}: {s} {v}"
        );
    }
    assert!(checked >= 3 * 25);
    // A route no shop has: unauthorized too (a stranger learns nothing).
    let (s, v) = call(&d.c, "GET", "/v1/shops/b/nowhere", None, d.key("a", 2)).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shop_keeps_its_own_events_catalog_and_recommendations() {
    let d = deployment(shops::REFRESH);
    let (aw, aa) = (d.key("a", 1).to_string(), d.key("a", 2).to_string());
    // Shop a gets a catalog and events; b and the default shop do not.
    for i in 0..3 {
        let (s, v) = call(
            &d.c,
            "PUT",
            &format!("/v1/shops/a/items/a-item-{i}"),
            Some(r#"{"title":"Shop A thing","price":2.0}"#),
            &aw,
        )
        .await;
        assert!(s.is_success(), "{s} {v}");
    }
    let (s, v) = call(
        &d.c,
        "POST",
        "/v1/shops/a/events",
        Some(r#"{"events":[{"user_id":"alice","item_id":"a-item-1","type":"purchase"},{"user_id":"alice","item_id":"a-item-2","type":"view"}]}"#),
        &aw,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    let (_, pop) = call(&d.c, "GET", "/v1/shops/a/popular?k=5", None, d.key("a", 0)).await;
    let ids = common::ids(&pop);
    assert_eq!(ids[0], "a-item-1", "{pop}");
    assert!(ids.iter().all(|i| i.starts_with("a-item-")), "{pop}");
    // Shop b: nothing of a's.
    let (s, v) = call(
        &d.c,
        "GET",
        "/v1/shops/b/items/a-item-1",
        None,
        d.key("b", 0),
    )
    .await;
    assert_error(s, &v, StatusCode::NOT_FOUND);
    let (_, pop) = call(&d.c, "GET", "/v1/shops/b/popular?k=5", None, d.key("b", 0)).await;
    assert!(common::ids(&pop).is_empty(), "{pop}");
    let (_, user) = call(
        &d.c,
        "GET",
        "/v1/shops/b/admin/users/alice",
        None,
        d.key("b", 2),
    )
    .await;
    assert_ne!(user["events"], 2, "{user}");
    // The default shop: its own catalog, no a-items, no alice.
    let (s, v) = call(&d.c, "GET", "/v1/items/a-item-1", None, DEFAULT_ADMIN).await;
    assert_error(s, &v, StatusCode::NOT_FOUND);
    let (_, pop) = call(&d.c, "GET", "/v1/popular?k=5", None, DEFAULT_ADMIN).await;
    let ids = common::ids(&pop);
    assert!(
        !ids.is_empty() && ids.iter().all(|i| !i.starts_with("a-item-")),
        "{pop}"
    );
    // Each shop's events are in its own store.
    let a_url = aisle_store::shops::url_of(&d.base, "a").unwrap();
    let b_url = aisle_store::shops::url_of(&d.base, "b").unwrap();
    let stats = |u: &str| aisle_store::open_existing(u).unwrap().stats().unwrap();
    assert_eq!(stats(&a_url).events, 2);
    assert_eq!(stats(&b_url).events, 0);
    // Erasing alice in a is a's affair alone.
    let (s, v) = call(&d.c, "DELETE", "/v1/shops/a/users/alice", None, &aa).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(stats(&a_url).events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_or_unknown_shop_name_is_a_json_4xx() {
    let d = deployment(shops::REFRESH);
    let key = d.key("a", 2);
    for bad in ["Acme", "a.b", "%2e%2e", "-x", &"x".repeat(40)] {
        let (s, v) = call(&d.c, "GET", &format!("/v1/shops/{bad}/popular"), None, key).await;
        assert_error(s, &v, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "bad_shop", "{v}");
    }
    let (s, v) = call(&d.c, "GET", "/v1/shops/nope/popular", None, key).await;
    assert_error(s, &v, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_shop", "{v}");
    // The default shop by name is the single-shop paths' shop.
    let (s, by_name) = call(
        &d.c,
        "GET",
        "/v1/shops/default/popular?k=3",
        None,
        DEFAULT_ADMIN,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, plain) = call(&d.c, "GET", "/v1/popular?k=3", None, DEFAULT_ADMIN).await;
    assert_eq!(common::ids(&by_name), common::ids(&plain));
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shops_created_deleted_or_rekeyed_while_serving_are_seen_at_the_next_look() {
    let d = deployment(Duration::from_millis(100));
    let c = shops::create(&d.base, "late").unwrap();
    let [_, _, admin] = three(&c);
    until("the new shop is served", async || {
        call(&d.c, "GET", "/v1/shops/late/popular", None, &admin)
            .await
            .0
            == StatusCode::OK
    })
    .await;
    // New keys: the old ones stop working.
    let new = shops::rotate_keys(&d.base, "late").unwrap();
    let new_admin = new
        .iter()
        .find(|(s, _)| *s == aisle_serve::Scope::Admin)
        .unwrap()
        .1
        .clone();
    until("the old key is refused", async || {
        call(&d.c, "GET", "/v1/shops/late/popular", None, &admin)
            .await
            .0
            == StatusCode::UNAUTHORIZED
    })
    .await;
    let (s, _) = call(&d.c, "GET", "/v1/shops/late/popular", None, &new_admin).await;
    assert_eq!(s, StatusCode::OK);
    aisle_store::shops::delete(&d.base, "late").unwrap();
    until("the deleted shop is gone", async || {
        let (s, v) = call(&d.c, "GET", "/v1/shops/late/popular", None, &new_admin).await;
        s == StatusCode::NOT_FOUND && v["error"]["code"] == "unknown_shop"
    })
    .await;
    assert_eq!(d.shops.names(), ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_shop_lives_in_a_database_of_its_own() {
    // (The PostgreSQL client blocks: set-up and checks off the runtime.)
    let (db, r, w, all) = tokio::task::spawn_blocking(|| {
        let db = aisle_store::pg::ScratchDb::new();
        aisle_store::open(&db.url).unwrap();
        let created = shops::create(&db.url, "pgshop").unwrap();
        let [r, w, _] = three(&created);
        let mut cfg = aisle_serve::ServeConfig::new(&db.url, "127.0.0.1:0".parse().unwrap());
        cfg.admin_key = Some(DEFAULT_ADMIN.into());
        cfg.search.no_semantic = true;
        let all = Shops::new(App::open(cfg).unwrap());
        all.start();
        (db, r, w, all)
    })
    .await
    .unwrap();
    let c = Client {
        app: shops::router(all.clone()),
    };
    let (s, v) = call(
        &c,
        "POST",
        "/v1/shops/pgshop/events",
        Some(r#"{"user_id":"p1","item_id":"x1","type":"purchase"}"#),
        &w,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, pop) = call(&c, "GET", "/v1/shops/pgshop/popular", None, &r).await;
    assert_eq!(common::ids(&pop), ["x1"]);
    tokio::task::spawn_blocking(move || {
        let shop_url = aisle_store::shops::url_of(&db.url, "pgshop").unwrap();
        assert!(
            shop_url.contains(&format!("/{}__pgshop", db.name())),
            "{shop_url}"
        );
        let events = |u: &str| {
            aisle_store::open_existing(u)
                .unwrap()
                .stats()
                .unwrap()
                .events
        };
        assert_eq!(events(&shop_url), 1);
        assert_eq!(events(&db.url), 0);
        all.stop();
    })
    .await
    .unwrap();
}
