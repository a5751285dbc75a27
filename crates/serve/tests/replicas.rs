//! Replicas over one PostgreSQL store: what one process commits reaches the
//! others' live views through the change feed (events, catalog, deletions,
//! erasures, promotions), idempotency keys hold across processes, and the
//! worker lock lets one worker lead. Needs the server
//! `scripts/start-postgres.sh` starts (see `aisle_store::pg::ScratchDb`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aisle_serve::{App, Registry, Role};
use aisle_store::pg::ScratchDb;
use axum::http::StatusCode;
use common::{open, post_ok, Client};
use serde_json::Value;

/// The test shop copied into a scratch PostgreSQL database, with two tiny
/// SASRec versions in its registry (`sasrec-100` promoted).
fn pg_shop() -> (ScratchDb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let local = common::shop(dir.path());
    let db = ScratchDb::new();
    let from = aisle_store::open_existing(&local).unwrap();
    let mut to = aisle_store::open(&db.url).unwrap();
    aisle_store::copy::copy(from.as_ref(), to.as_mut(), &mut |_| {}).unwrap();
    let other = tempfile::tempdir().unwrap();
    common::promote_tiny_sasrec(other.path(), common::ITEMS, 2, 200);
    let reg = Registry::of_store(&db.url).unwrap().unwrap();
    std::fs::create_dir_all(reg.dir()).unwrap();
    for (from, name) in [
        (dir.path(), "sasrec-100.safetensors"),
        (other.path(), "sasrec-200.safetensors"),
    ] {
        let to = reg.dir().join(name);
        std::fs::copy(from.join("models").join(name), &to).unwrap();
        reg.publish(&to).unwrap();
    }
    reg.promote("sasrec-100.safetensors").unwrap();
    (db, dir)
}

fn replica(url: &str) -> (Arc<App>, Client) {
    open(url, |c| c.role = Role::Api)
}

/// The requests run on a runtime; the apps, their PostgreSQL clients and
/// the database live outside it (the blocking client refuses to run or
/// close inside one).
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `check` every 5 ms for up to 5 s; the time it took to hold.
async fn within(mut check: impl AsyncFnMut() -> bool) -> Duration {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if check().await {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not reflected within 5 s");
}

async fn interactions(c: &Client, item: &str) -> f64 {
    let (s, v) = c.get(&format!("/v1/items/{item}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["interactions"].as_f64().unwrap()
}

#[test]
fn an_event_acknowledged_by_one_replica_reaches_the_other() {
    let (db, _dir) = pg_shop();
    let (_a, ca) = replica(&db.url);
    let (b, cb) = replica(&db.url);
    rt().block_on(async {
        // B listens (its /readyz is `ok` from then on), so the event comes
        // through a notification rather than the catch-up at connection.
        within(async || b.feed.connected.load(std::sync::atomic::Ordering::Relaxed)).await;
        assert_eq!(cb.get("/readyz").await.1["status"], "ok");
        let before = interactions(&cb, "i5").await;
        post_ok(
            &ca,
            "/v1/events",
            r#"{"user_id":"newcomer","item_id":"i5","event_type":"view"}"#,
        )
        .await;
        within(async || interactions(&cb, "i5").await == before + 1.0).await;
        // B's metrics count the event its feed took in.
        let (s, m) = cb.get("/metrics").await;
        assert_eq!(s, StatusCode::OK);
        let m = m.as_str().unwrap().to_string();
        assert!(m.contains("aisle_feed_connected 1"), "{m}");
        assert!(m.contains("aisle_feed_events_applied_total 1"), "{m}");
        assert!(!m.contains("aisle_feed_notifications_total 0\n"), "{m}");
        // B knows the new user from the event A took.
        let (s, v) = cb.get("/v1/users/newcomer/recommendations?k=3").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["user_known"], true, "{v}");
    });
}

#[test]
fn one_event_id_is_stored_once_whichever_replicas_take_it() {
    let (db, _dir) = pg_shop();
    let (_a, ca) = replica(&db.url);
    let (_b, cb) = replica(&db.url);
    let ev = r#"{"event_id":"order-77","user_id":"u1","item_id":"i3","event_type":"purchase"}"#;
    let (first, again) = rt().block_on(async {
        (
            post_ok(&ca, "/v1/events", ev).await,
            post_ok(&cb, "/v1/events", ev).await,
        )
    });
    assert_eq!(
        (first["inserted"].as_u64(), again["inserted"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(again["duplicates"], 1);
    let n: i64 = db
        .client()
        .query_one("SELECT count(*) FROM events", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 40 * 8 + 1);
}

#[test]
fn catalog_writes_and_deletions_reach_the_other_replica() {
    let (db, _dir) = pg_shop();
    let (_a, ca) = replica(&db.url);
    let (b, cb) = replica(&db.url);
    rt().block_on(async {
        // (A deletion is not a stored state: only a listening replica hears of it.)
        within(async || b.feed.connected.load(std::sync::atomic::Ordering::Relaxed)).await;
        let (s, v) = ca
            .call(
                "PUT",
                "/v1/items/lamp",
                Some(r#"{"title":"Desk lamp","price":30}"#),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        within(async || cb.get("/v1/items/lamp").await.1["title"] == "Desk lamp").await;
        let (s, v) = ca.call("DELETE", "/v1/items/i4", None, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        within(async || cb.get("/v1/items/i4").await.0 == StatusCode::NOT_FOUND).await;
    });
}

#[test]
fn an_erasure_on_one_replica_empties_the_others_view() {
    let (db, _dir) = pg_shop();
    let (_a, ca) = replica(&db.url);
    let (b, cb) = replica(&db.url);
    let has = |app: &App| app.live.read().unwrap().users.contains_key("u7");
    assert!(has(&b));
    rt().block_on(async {
        let (s, v) = ca.call("DELETE", "/v1/users/u7", None, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["deleted_events"], 8, "{v}");
        within(async || !has(&b)).await;
        // B's next event of the same id lands under a new user number (its
        // id cache was reloaded), not the erased one's.
        post_ok(
            &cb,
            "/v1/events",
            r#"{"user_id":"u7","item_id":"i1","event_type":"view"}"#,
        )
        .await;
    });
    let n: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM events e JOIN users u ON u.id = e.user_id WHERE u.ext = 'u7'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the new event is filed under u7");
    let orphans: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e.user_id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
}

/// A link made through one replica stitches the other's view; erasing the
/// user through the other takes the alias with it everywhere.
#[test]
fn an_alias_linked_on_one_replica_is_one_history_on_the_other() {
    let (db, _dir) = pg_shop();
    let (_a, ca) = replica(&db.url);
    let (b, cb) = replica(&db.url);
    let history = |app: &App, id: &str| {
        let live = app.live.read().unwrap();
        live.user(id).map(|u| u.history.len())
    };
    rt().block_on(async {
        post_ok(
            &ca,
            "/v1/events",
            r#"{"user_id":"anon-3","item_id":"i1","type":"view","timestamp":1700000100}"#,
        )
        .await;
        let (s, v) = ca
            .post("/v1/users/u5/aliases", r#"{"alias":"anon-3"}"#)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        // u5 has 8 events of the shop; with anon-3's, 9, on B too.
        within(async || history(&b, "anon-3") == Some(9)).await;
        assert_eq!(history(&b, "u5"), Some(9));
        let (s, v) = cb.call("DELETE", "/v1/users/u5", None, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["deleted_events"], 9, "{v}");
        within(async || history(&b, "anon-3").is_none()).await;
    });
    let store = aisle_store::open_existing(&db.url).unwrap();
    assert!(store.aliases().unwrap().is_empty());
    assert!(store.user_events("anon-3", 5).unwrap().is_empty());
}

#[test]
fn a_promotion_on_one_replica_is_served_by_the_other() {
    let (db, _dir) = pg_shop();
    let (_a, ca) = replica(&db.url);
    let (b, _cb) = replica(&db.url);
    assert_eq!(b.current().version, "sasrec-100.safetensors");
    rt().block_on(async {
        post_ok(
            &ca,
            "/v1/admin/models/promote",
            r#"{"version":"sasrec-200.safetensors"}"#,
        )
        .await;
        within(async || b.current().version == "sasrec-200.safetensors").await;
    });
}

#[test]
fn one_worker_leads_and_a_standby_takes_over_when_it_is_gone() {
    let db = ScratchDb::new();
    aisle_store::open(&db.url).unwrap();
    let mut first = aisle_store::pg::Leadership::new(&db.url);
    let mut second = aisle_store::pg::Leadership::new(&db.url);
    assert!(first.try_lead().unwrap());
    assert!(!second.try_lead().unwrap());
    assert!(first.try_lead().unwrap(), "the leader keeps the lead");
    drop(first);
    // The server frees the lock once the leader's session has ended.
    let t = Instant::now();
    while !second.try_lead().unwrap() {
        assert!(t.elapsed() < Duration::from_secs(5), "no takeover");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_api_replica_refuses_to_retrain() {
    let db = ScratchDb::new();
    let mut cfg = aisle_serve::ServeConfig::new(&db.url, "127.0.0.1:0".parse().unwrap());
    cfg.role = Role::Api;
    cfg.retrain = Some(aisle_serve::RetrainConfig {
        model: "pop".into(),
        command: vec!["true".into()],
        interval: Some(Duration::from_secs(60)),
        min_new_events: None,
        low_priority: false,
    });
    let err = App::open(cfg).err().expect("refused");
    assert!(err.to_string().contains("--role worker or all"), "{err}");
}

#[test]
fn a_job_asked_of_an_api_replica_names_the_worker() {
    let db = ScratchDb::new();
    let (_a, ca) = replica(&db.url);
    let (s, v) = rt().block_on(ca.post("/v1/admin/jobs", ""));
    common::assert_error(s, &v, StatusCode::CONFLICT);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--role worker"),
        "{v}"
    );
}

#[test]
fn a_lost_database_connection_fails_writes_with_503_keeps_reads_and_recovers() {
    let (db, _dir) = pg_shop();
    let (a, ca) = replica(&db.url);
    // Every session of the store's database ends (as when the server restarts).
    let cut = || {
        let mut admin = aisle_store::pg::ScratchDb::admin_client();
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db.name()],
            )
            .unwrap();
    };
    cut();
    let mut acked = Vec::new();
    rt().block_on(async {
        // Reads answer from memory meanwhile.
        let (s, v) = ca.get("/v1/users/u1/recommendations?k=3").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mut refused = 0;
        for i in 0..20 {
            let body = format!(
                r#"{{"event_id":"cut-{i}","user_id":"u2","item_id":"i{}","event_type":"view"}}"#,
                i % 12
            );
            let (s, v) = ca.post("/v1/events", &body).await;
            match s {
                StatusCode::OK => acked.push(format!("cut-{i}")),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
                    refused += 1;
                }
                other => panic!("{other}: {v}"),
            }
        }
        // The connection is made again at the next call after the failed one.
        assert!(refused <= 1, "{refused} writes refused after one cut");
        assert!(acked.len() >= 19);
        // So is the online log's: its first commit after the cut may fail
        // (counted), the next list and the click that names it are joined.
        a.online.flush();
        let (s, v) = ca.get("/v1/users/u3/recommendations?k=3").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        a.online.flush();
        let click = serde_json::json!({"user_id":"u3","item_id":v["items"][0]["item_id"],
                                       "type":"click","request_id":v["request_id"]});
        let r = post_ok(&ca, "/v1/events", &click.to_string()).await;
        assert_eq!(r["attributed"], 1, "{r}");
        let errors = a
            .online
            .log_errors
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(errors <= 1, "{errors} group commits failed after one cut");
    });
    // Each acknowledged event is stored once (the refused one maybe, never twice).
    let n: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM events e JOIN users u ON u.id = e.user_id WHERE u.ext = 'u2'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(n >= 8 + acked.len() as i64 && n <= 8 + 20, "{n}");
}

#[test]
fn a_replica_starts_from_windows_with_the_view_a_full_read_builds() {
    let (db, dir) = pg_shop();
    let local = dir.path().display().to_string();
    // Purchases undone and redone, so that the windows' purchases are tested.
    let ev =
        |key: u64, user: &str, item: &str, ts: i64, t: aisle_core::EventType| aisle_core::Event {
            key,
            user: user.into(),
            item: item.into(),
            ts,
            event_type: t,
            source_type: "test".into(),
            quantity: None,
            price: None,
            session: None,
            value: None,
        };
    use aisle_core::EventType::{Cancel, Purchase};
    let extra = [
        ev(9_001, "u3", "i10", 1_700_000_100, Cancel),
        ev(9_002, "u4", "i0", 1_700_000_100, Purchase),
        ev(9_003, "u4", "i0", 1_700_000_101, Cancel),
        ev(9_004, "u4", "i0", 1_700_000_102, Purchase),
    ];
    for url in [&local, &db.url] {
        aisle_store::open(url).unwrap().append(&extra).unwrap();
    }
    let (windows, _) = replica(&db.url);
    let (full, _) = open(&local, |_| {});
    let (w, f) = (windows.live.read().unwrap(), full.live.read().unwrap());
    assert_eq!(
        (w.events, w.max_ts, w.last_seq),
        (f.events, f.max_ts, f.last_seq)
    );
    let named = |l: &aisle_serve::Live, i: &u32| l.items[*i as usize].clone();
    assert_eq!(w.users.len(), f.users.len());
    for (user, fu) in &f.users {
        let wu = &w.users[user];
        let hist = |l, u: &aisle_serve::UserState| -> Vec<String> {
            u.history.iter().map(|i| named(l, i)).collect()
        };
        let bought = |l, u: &aisle_serve::UserState| -> std::collections::BTreeSet<String> {
            u.purchased.iter().map(|i| named(l, i)).collect()
        };
        assert_eq!(hist(&w, wu), hist(&f, fu), "{user}");
        assert_eq!(bought(&w, wu), bought(&f, fu), "{user}");
        assert_eq!(wu.last_ts, fu.last_ts, "{user}");
    }
    assert!(!w.users["u3"]
        .purchased
        .iter()
        .any(|i| named(&w, i) == "i10"));
    assert!(w.users["u4"].purchased.iter().any(|i| named(&w, i) == "i0"));
    for (i, id) in f.items.iter().enumerate() {
        let wi = w.index[id] as usize;
        assert_eq!(w.popularity[wi], f.popularity[i], "{id}");
    }
}

#[test]
fn a_list_one_replica_showed_is_credited_through_the_other_and_experiments_reach_both() {
    let (db, _dir) = pg_shop();
    let (a, ca) = replica(&db.url);
    let (b, cb) = replica(&db.url);
    rt().block_on(async {
        within(async || b.feed.connected.load(std::sync::atomic::Ordering::Relaxed)).await;
        // A shows a list; B takes the click that names it, and joins it.
        let (s, v) = ca.get("/v1/users/u3/recommendations?k=5").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let second = v["items"][1]["item_id"].as_str().unwrap().to_string();
        a.online.flush();
        let click = serde_json::json!({"user_id":"u3","item_id":second,"type":"click",
                                       "request_id":v["request_id"]});
        let r = post_ok(&cb, "/v1/events", &click.to_string()).await;
        assert_eq!(
            (r["attributed"].as_u64(), r["unattributed"].as_u64()),
            (Some(1), Some(0)),
            "{r}"
        );
        // One log: B's figures count A's list and B's click.
        let (s, k) = cb.get("/v1/admin/kpis").await;
        assert_eq!(s, StatusCode::OK, "{k}");
        assert_eq!(
            (k["impressions"].as_u64(), k["clicks"].as_u64()),
            (Some(1), Some(1)),
            "{k}"
        );
        // An experiment started through A runs on B.
        let spec = serde_json::json!({"name": "x", "surface": "recommendations", "mode": "ab",
            "arms": [{"name":"control","model":"pop","traffic":50},
                     {"name":"treatment","model":"promoted","traffic":50}]});
        let (s, v) = ca.post("/v1/admin/experiments", &spec.to_string()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        within(async || {
            let (_, v) = cb.get("/v1/users/u4/recommendations?k=3").await;
            v["experiment"]["name"] == "x"
        })
        .await;
        // A second one on the same surface through B is refused: it is running.
        let spec = spec.to_string().replace("\"x\"", "\"y\"");
        let (s, v) = cb.post("/v1/admin/experiments", &spec).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("surface_busy")),
            "{v}"
        );
        // Stopped through B, it stops on A.
        let (s, v) = cb.post("/v1/admin/experiments/x/stop", "").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        within(async || {
            let (_, v) = ca.get("/v1/users/u4/recommendations?k=3").await;
            v["experiment"].is_null()
        })
        .await;
    });
}

#[test]
fn off_policy_estimates_read_the_lists_every_replica_logged() {
    let (db, _dir) = pg_shop();
    let (a, ca) = open(&db.url, |c| {
        c.role = Role::Api;
        c.online.explore = 1e-9;
    });
    let (b, cb) = open(&db.url, |c| {
        c.role = Role::Api;
        c.online.explore = 1e-9;
    });
    rt().block_on(async {
        for u in 0..10 {
            let c = if u % 2 == 0 { &ca } else { &cb };
            let (s, v) = c.get(&format!("/v1/users/u{u}/recommendations?k=5")).await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    });
    a.online.flush();
    b.online.flush();
    let ope = aisle_serve::ope::off_policy(&db.url, "promoted").unwrap();
    assert_eq!(ope.report.lists, 10);
    assert_eq!(
        ope.report.matched_slots, 50,
        "every shown item replayed in place"
    );
}

/// A `--role worker` over `url` whose retraining run is `sh -c script`.
fn worker(url: &str, script: &str) -> (Arc<App>, Client) {
    let (app, c) = open(url, |c| {
        c.role = Role::Worker;
        c.retrain = Some(aisle_serve::RetrainConfig {
            model: "sasrec".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            interval: None,
            min_new_events: None,
            low_priority: false,
        });
    });
    aisle_serve::jobs::start(&app);
    (app, c)
}

/// Asks `c` for a job until its worker leads, then waits for the job's end.
async fn job_on(c: &Client) -> Value {
    let t = Instant::now();
    let id = loop {
        let (s, v) = c.post("/v1/admin/jobs", "").await;
        if s == StatusCode::ACCEPTED {
            break v["job_id"].as_u64().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never led: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    loop {
        let (_, v) = c.get("/v1/admin/jobs").await;
        let done = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id && j["status"] != "running")
            .cloned();
        if let Some(j) = done {
            return j;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "job {id} did not end: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn every_replica_shows_the_jobs_and_a_worker_that_takes_over_numbers_on() {
    let db = ScratchDb::new();
    let (_a, ca) = replica(&db.url);
    let (w1, c1) = worker(&db.url, "exit 3");
    rt().block_on(within(async || {
        c1.get("/v1/admin/jobs").await.1["scheduler"]["leader"] == true
    }));
    // A standby that read the history before the leader's first job.
    let (w2, c2) = worker(&db.url, "exit 4");
    let first = rt().block_on(job_on(&c1));
    assert_eq!(
        (first["id"].as_u64(), first["status"].as_str()),
        (Some(1), Some("failed"))
    );
    w1.jobs.stop();
    drop((w1, c1));
    let second = rt().block_on(job_on(&c2));
    assert_eq!(second["id"].as_u64(), Some(2), "{second}");
    w2.jobs.stop();
    // The API replica ran none, and shows both, newest first.
    let (s, v) = rt().block_on(ca.get("/v1/admin/jobs"));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(common::job_ids(&v), [2, 1], "{v}");
}

#[test]
fn an_erasure_through_one_replica_removes_the_users_quarantined_rows_for_every_replica() {
    let db = ScratchDb::new();
    let who = "erase-me-pg";
    // An ingest on some machine quarantined two rows into the database.
    let log = aisle_store::IngestLog::open(&db.url).unwrap().unwrap();
    let mut w = log.quarantine("shop", 1_700_000_000);
    for (line, user) in [(3, who), (4, "u5")] {
        let row = format!(
            "{{\"file\":\"events\",\"line\":{line},\"reason\":\"bad_number\",\"detail\":\"price\",\"raw\":\"{user},i1,view,abc\"}}"
        );
        w.write("bad_number", &row);
    }
    w.finish().unwrap();
    let (_a, ca) = replica(&db.url);
    let (_b, cb) = replica(&db.url);
    let (s, v) = rt().block_on(ca.call("DELETE", &format!("/v1/users/{who}"), None, None));
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["erased"]["quarantine_rows"], 1, "{v}");
    // The other replica's data page shows the batch without the user's row.
    let (s, d) = rt().block_on(cb.get("/v1/admin/data"));
    assert_eq!(s, StatusCode::OK, "{d}");
    let q = &d["quarantine"][0];
    assert_eq!(q["rows"], 1, "{d}");
    let samples = q["samples"].to_string();
    assert!(
        !samples.contains(who) && samples.contains("u5"),
        "{samples}"
    );
}

#[test]
fn two_replicas_number_their_request_ids_apart() {
    let db = ScratchDb::new();
    let (_a, ca) = replica(&db.url);
    let (_b, cb) = replica(&db.url);
    let writer = |c: &Client| -> u64 {
        let (s, v) = rt().block_on(c.get("/v1/popular?k=1"));
        assert_eq!(s, StatusCode::OK, "{v}");
        let rid = aisle_serve::online::parse_request_id(v["request_id"].as_str().unwrap()).unwrap();
        (rid >> 12) & 0x3ff
    };
    // Their 10 writer bits come from one sequence of the database.
    let (a, b) = (writer(&ca), writer(&cb));
    assert_eq!((b + 1024 - a) % 1024, 1, "{a} then {b}");
}
