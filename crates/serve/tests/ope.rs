//! Exploration and off-policy replay: exploring lists are random draws of
//! the model's pool with their propensities logged, and replaying the logs
//! with the model that served them rebuilds every list exactly (histories
//! as they were when each list was shown).

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

fn logged(app: &aisle_serve::App, v: &Value) -> aisle_store::online::Impression {
    let rid = parse_request_id(v["request_id"].as_str().unwrap()).unwrap();
    app.online.flush();
    app.online
        .reader
        .lock()
        .unwrap()
        .impression(rid)
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn exploring_lists_are_draws_from_the_model_pool_with_their_propensities() {
    let dir = tempfile::tempdir().unwrap();
    let (app, c) = open(&shop(dir.path()), |cfg| {
        cfg.online.explore = 0.5;
        cfg.online.explore_pool = ITEMS as usize;
    });
    let (own, other) = (0.5 + 0.5 / ITEMS as f64, 0.5 / ITEMS as f64);
    let mut explored = 0;
    let n = 200;
    for r in 0..n {
        let v = recs(&c, &format!("u{}", r % 40)).await;
        let imp = logged(&app, &v);
        assert_eq!(imp.items.len(), 5);
        let props: Vec<f64> = imp.items.iter().map(|s| s.propensity.unwrap()).collect();
        assert!(props.iter().all(|&p| p == own || p == other), "{props:?}");
        explored += props.contains(&other) as u32;
        // Shown items are distinct.
        let mut ids: Vec<&str> = imp.items.iter().map(|s| s.item.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 5);
    }
    // Half the requests explore (a draw that happens to keep the ranking
    // in place is rare with a pool of 12).
    assert!((70..=130).contains(&explored), "{explored} of {n}");
}

#[tokio::test]
async fn replaying_the_logs_with_the_serving_model_rebuilds_every_list() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    // Exploration so rare that no list is randomised: every list must come
    // back from the replay exactly as it was shown.
    let (app, c) = open(&url, |cfg| cfg.online.explore = 1e-9);
    let mut lists = 0;
    for round in 0..3u32 {
        for u in 0..40u32 {
            let user = format!("u{u}");
            let v = recs(&c, &user).await;
            lists += 1;
            // Histories move between lists: a view, and a click on the
            // list's first item for a third of the users.
            let mut events = vec![
                json!({"user_id": user, "item_id": format!("i{}", (u + 5 * round) % ITEMS), "type": "view"}),
            ];
            if u % 3 == 0 {
                events.push(json!({
                    "user_id": user, "item_id": v["items"][0]["item_id"], "type": "click",
                    "request_id": v["request_id"], "position": 1
                }));
            }
            post_ok(&c, "/v1/events", &json!({ "events": events }).to_string()).await;
        }
    }
    app.online.flush();
    let ope = aisle_serve::ope::off_policy(&url, "promoted").unwrap();
    let r = &ope.report;
    assert_eq!(r.lists, lists);
    assert_eq!(
        r.matched_slots,
        lists * 5,
        "every shown item replayed in place"
    );
    assert!((r.support - 1.0).abs() < 1e-6, "{}", r.support);
    assert!(r.logged_ctr.value > 0.0);
    assert!((r.ips.value - r.logged_ctr.value).abs() < 1e-6, "{r:?}");
    assert_eq!(ope.unreplayable_lists, 0);
    assert!(ope.candidate.starts_with("sasrec@"), "{}", ope.candidate);
}

#[tokio::test]
async fn an_estimate_without_explored_lists_says_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let url = shop(dir.path());
    let (app, c) = open(&url, |_| {});
    recs(&c, "u1").await;
    app.online.flush();
    let e = aisle_serve::ope::off_policy(&url, "promoted").unwrap_err();
    assert!(e.to_string().contains("--explore"), "{e}");
    let e = aisle_serve::ope::off_policy(&url, "no-such-model").unwrap_err();
    assert!(e.to_string().contains("unknown model"), "{e}");
}

#[test]
fn an_exploration_share_above_one_half_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = aisle_serve::ServeConfig::new(&shop(dir.path()), "127.0.0.1:0".parse().unwrap());
    cfg.online.explore = 0.7;
    let e = aisle_serve::App::open(cfg).err().expect("refused");
    assert!(e.to_string().contains("0.5"), "{e}");
}
