//! `aisle simulate`: simulated shoppers (aisle-sim) driving a running server
//! over HTTP like a storefront, and the truth they know printed beside what
//! the server's experiment report measured.

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::args::SimulateArgs;
use aisle_sim::{Engine, Item, Shown, SimConfig, SimEvent, World};

/// A blocking HTTP/1.1 client of the server (hyper on a current-thread runtime).
struct Http {
    rt: tokio::runtime::Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    key: Option<String>,
}

impl Http {
    fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, Value)> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(k) = &self.key {
            req = req.header("x-api-key", k);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.rt.block_on(async {
            let resp = self
                .client
                .request(req)
                .await
                .with_context(|| format!("{method} {}{path}", self.base))?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok((status, v))
        })
    }

    fn get(&self, path: &str) -> Result<Value> {
        let (s, v) = self.call("GET", path, None)?;
        if !(200..300).contains(&s) {
            bail!("GET {path}: {s} {v}");
        }
        Ok(v)
    }
}

impl Engine for Http {
    fn recommend(&mut self, user: &str, k: usize) -> Result<Shown, String> {
        let v = self
            .get(&format!("/v1/users/{user}/recommendations?k={k}"))
            .map_err(|e| e.to_string())?;
        let items = v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["item_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Shown {
            request_id: v["request_id"].as_str().unwrap_or_default().to_string(),
            items,
            arm: v["experiment"]["arm"].as_str().map(str::to_string),
        })
    }

    fn send(&mut self, events: &[SimEvent]) -> Result<(), String> {
        let body = serde_json::json!({ "events": events }).to_string();
        match self.call("POST", "/v1/events", Some(body)) {
            Ok((s, _)) if (200..300).contains(&s) => Ok(()),
            Ok((s, v)) => Err(format!("POST /v1/events: {s} {v}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The catalog the server reports: its popular items (most popular first)
/// with category and price.
fn catalog(http: &Http) -> Result<Vec<Item>> {
    let pop = http.get("/v1/popular?k=1000")?;
    let mut items = Vec::new();
    for it in pop["items"].as_array().into_iter().flatten() {
        let Some(id) = it["item_id"].as_str() else {
            continue;
        };
        let v = http.get(&format!("/v1/items/{id}"))?;
        items.push(Item {
            id: id.to_string(),
            category: v["category"].as_str().map(str::to_string),
            price: v["price"].as_f64().unwrap_or(0.0),
        });
    }
    if items.is_empty() {
        bail!("the server reports no popular items: nothing to show shoppers");
    }
    Ok(items)
}

pub fn simulate(a: SimulateArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut http = Http {
        rt,
        client,
        base: a.url.trim_end_matches('/').to_string(),
        key: a.admin_key.clone().or(a.api_key.clone()),
    };
    let items = catalog(&http)?;
    let cfg = SimConfig {
        users: a.users,
        days: a.days,
        seed: a.seed,
        k: a.k,
        user_prefix: format!("sim{}", a.seed),
        ..SimConfig::default()
    };
    let world = World::new(items, cfg).map_err(anyhow::Error::msg)?;
    let pb = super::bar(a.days as u64, "days");
    let truth = aisle_sim::run(&world, &mut http, &|d| pb.set_position(d as u64))
        .map_err(anyhow::Error::msg)?;
    pb.finish_and_clear();
    let report = match &a.experiment {
        Some(name) => Some(http.get(&format!("/v1/admin/experiments/{name}/report"))?),
        None => None,
    };
    if a.json {
        let out = serde_json::json!({ "truth": truth, "report": report });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} shoppers x {} days: {} sessions, {} events sent",
        a.users, a.days, truth.sessions, truth.events_sent
    );
    println!(
        "  {:<14} {:>7} {:>9} {:>9} {:>7} {:>9} {:>10}",
        "arm", "lists", "true CTR", "seen CTR", "clicks", "purchases", "GMV"
    );
    for (arm, t) in &truth.arms {
        println!(
            "  {:<14} {:>7} {:>8.3}% {:>8.3}% {:>7} {:>9} {:>10.2}",
            arm,
            t.lists,
            t.true_ctr() * 100.0,
            t.clicks as f64 / t.lists.max(1) as f64 * 100.0,
            t.clicks,
            t.purchases,
            t.gmv
        );
    }
    if let Some(r) = report {
        let control = r["arms"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for c in r["comparisons"].as_array().into_iter().flatten() {
            if c["metric"] != "ctr" {
                continue;
            }
            let arm = c["arm"].as_str().unwrap_or_default();
            let pct = |k: &str| c[k].as_f64().unwrap_or(f64::NAN) * 100.0;
            let truth_lift = truth
                .true_lift(arm, &control)
                .map_or("-".to_string(), |l| format!("{:+.1}%", l * 100.0));
            println!(
                "  CTR lift of {arm} over {control}: true {truth_lift}; measured {:+.1}% [{:+.1}, {:+.1}], p {:.4}, always-valid p {:.4}",
                pct("lift"),
                pct("low"),
                pct("high"),
                c["p_value"].as_f64().unwrap_or(f64::NAN),
                c["always_valid_p_value"].as_f64().unwrap_or(f64::NAN)
            );
        }
        println!(
            "  report verdict: {}{}",
            r["verdict"].as_str().unwrap_or("-"),
            r["winner"]
                .as_str()
                .map_or(String::new(), |w| format!(" ({w})"))
        );
    }
    Ok(())
}
