//! Simulated shoppers (aisle-sim) through the router, end to end: every
//! list they were shown and every click, cart and purchase they made comes
//! back in the experiment report arm by arm, the report's interval covers
//! the true lift the simulator knows, and an A/A finds no difference.

mod common;

use axum::http::StatusCode;
use serde_json::{json, Value};

use aisle_sim::{Engine, Item, Shown, SimConfig, SimEvent, Truth, World};
use common::*;

/// The server as a storefront calls it, in process.
struct Storefront<'a> {
    rt: &'a tokio::runtime::Runtime,
    c: &'a Client,
}

impl Engine for Storefront<'_> {
    fn recommend(&mut self, user: &str, k: usize) -> Result<Shown, String> {
        let (s, v) = self.rt.block_on(
            self.c
                .get(&format!("/v1/users/{user}/recommendations?k={k}")),
        );
        if s != StatusCode::OK {
            return Err(v.to_string());
        }
        Ok(Shown {
            request_id: v["request_id"].as_str().unwrap().to_string(),
            items: ids(&v),
            arm: v["experiment"]["arm"].as_str().map(str::to_string),
        })
    }

    fn send(&mut self, events: &[SimEvent]) -> Result<(), String> {
        let body = json!({ "events": events }).to_string();
        let (s, v) = self.rt.block_on(self.c.post("/v1/events", &body));
        match s {
            StatusCode::OK => Ok(()),
            _ => Err(v.to_string()),
        }
    }
}

/// Runs an experiment of arms `a` and `b` with simulated shoppers; returns
/// the truth and the report.
fn experiment(a: &str, b: &str, users: usize, seed: u64) -> (Truth, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (_app, c) = open(&shop(dir.path()), |_| {});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = json!({
        "name": "sim", "surface": "recommendations", "mode": "ab",
        "arms": [{"name": "a", "model": a, "traffic": 50}, {"name": "b", "model": b, "traffic": 50}]
    });
    let (s, v) = rt.block_on(c.post("/v1/admin/experiments", &spec.to_string()));
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The catalog in the server's popularity order.
    let (_, pop) = rt.block_on(c.get(&format!("/v1/popular?k={ITEMS}")));
    let items = ids(&pop)
        .into_iter()
        .map(|id| {
            let i: u32 = id[1..].parse().unwrap();
            Item {
                id,
                category: Some(if i.is_multiple_of(2) { "even" } else { "odd" }.into()),
                price: i as f64 + 1.0,
            }
        })
        .collect();
    let cfg = SimConfig {
        users,
        days: 4,
        seed,
        k: 5,
        ..SimConfig::default()
    };
    let world = World::new(items, cfg).unwrap();
    let truth = aisle_sim::run(&world, &mut Storefront { rt: &rt, c: &c }, &|_| {}).unwrap();
    let (s, report) = rt.block_on(c.get("/v1/admin/experiments/sim/report"));
    assert_eq!(s, StatusCode::OK, "{report}");
    (truth, report)
}

/// The report's CTR comparison of arm b against arm a.
fn ctr_comparison(r: &Value) -> &Value {
    r["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "ctr")
        .unwrap()
}

#[test]
fn every_simulated_list_and_outcome_is_in_the_report_and_the_true_lift_in_its_interval() {
    let (truth, r) = experiment("pop", "promoted", 400, 5);
    for arm in r["arms"].as_array().unwrap() {
        let name = arm["name"].as_str().unwrap();
        let t = &truth.arms[name];
        assert_eq!(arm["impressions"], t.lists, "{name}");
        assert_eq!(arm["clicks"], t.clicks, "{name}");
        assert_eq!(arm["carts"], t.carts, "{name}");
        assert_eq!(arm["purchases"], t.purchases, "{name}");
        assert_eq!(arm["users"], t.users, "{name}");
        assert!(
            (arm["gmv"].as_f64().unwrap() - t.gmv).abs() < 1e-6,
            "{name}"
        );
    }
    let ctr = ctr_comparison(&r);
    let true_lift = truth.true_lift("b", "a").unwrap();
    let (low, high) = (ctr["low"].as_f64().unwrap(), ctr["high"].as_f64().unwrap());
    eprintln!("true CTR lift {true_lift:+.3}; measured [{low:+.3}, {high:+.3}]");
    assert!(
        low <= true_lift && true_lift <= high,
        "true lift {true_lift} outside [{low}, {high}]"
    );
}

#[test]
fn an_aa_test_of_simulated_shoppers_finds_no_difference() {
    let (truth, r) = experiment("promoted", "promoted", 400, 6);
    assert!(truth.true_lift("b", "a").unwrap().abs() < 0.1);
    let ctr = ctr_comparison(&r);
    assert!(
        ctr["always_valid_p_value"].as_f64().unwrap() > 0.05,
        "{ctr}"
    );
    assert_ne!(r["verdict"], "winner", "{r}");
    assert!(!r["srm"]["flagged"].as_bool().unwrap(), "{r}");
}
