//! `aisle shops`: the shops of a deployment (see `aisle_store::shops` and
//! `aisle_serve::shops`).

use anyhow::{Context, Result};
use serde_json::json;

use crate::args::{ShopsAction, ShopsArgs};
use aisle_store::pg::redact;

fn keys_json(keys: &[(aisle_serve::Scope, String)]) -> serde_json::Value {
    keys.iter()
        .map(|(s, k)| (s.as_str().to_string(), json!(k)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn print_keys(keys: &[(aisle_serve::Scope, String)]) {
    for (scope, key) in keys {
        println!("  {:<6} key: {key}", scope.as_str());
    }
    println!("(shown once: the store keeps only their SHA-256 digests)");
}

pub fn shops(a: ShopsArgs) -> Result<()> {
    match a.action {
        ShopsAction::Create { name, store, json } => {
            aisle_store::open_existing(&store)
                .with_context(|| format!("the deployment's store {}", redact(&store)))?;
            // (The error's own words, once: not wrapped in its source's.)
            let c =
                aisle_serve::shops::create(&store, &name).map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                let out =
                    json!({"shop": c.name, "store": redact(&c.url), "keys": keys_json(&c.keys)});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("created shop {} in {}", c.name, redact(&c.url));
                print_keys(&c.keys);
                println!(
                    "load it with `aisle ingest --store {}`; a server on {} answers for it at /v1/shops/{}/…",
                    redact(&c.url),
                    redact(&store),
                    c.name
                );
            }
        }
        ShopsAction::List { store, json } => {
            aisle_store::open_existing(&store)
                .with_context(|| format!("the deployment's store {}", redact(&store)))?;
            let mut rows = Vec::new();
            for name in std::iter::once(aisle_store::shops::DEFAULT_SHOP.to_string())
                .chain(aisle_store::shops::list(&store)?)
            {
                let url = aisle_store::shops::url_of(&store, &name)?;
                let stats = aisle_store::open_existing(&url)?.stats()?;
                rows.push(json!({
                    "shop": name,
                    "store": redact(&url),
                    "events": stats.events,
                    "users": stats.users,
                    "items": stats.catalog_items,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<32} {:>12} {:>10} {:>10}  store",
                    "shop", "events", "users", "items"
                );
                for r in &rows {
                    let n = |k: &str| r[k].as_u64().unwrap_or(0);
                    println!(
                        "{:<32} {:>12} {:>10} {:>10}  {}",
                        r["shop"].as_str().unwrap_or(""),
                        n("events"),
                        n("users"),
                        n("items"),
                        r["store"].as_str().unwrap_or("")
                    );
                }
            }
        }
        ShopsAction::Delete { name, store } => {
            aisle_store::shops::delete(&store, &name)?;
            println!(
                "deleted shop {name} and everything it held (servers stop answering for it within {} s)",
                aisle_serve::shops::REFRESH.as_secs()
            );
        }
        ShopsAction::RotateKeys { name, store, json } => {
            let keys = aisle_serve::shops::rotate_keys(&store, &name)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                let out = json!({"shop": name, "keys": keys_json(&keys)});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "new keys for shop {name} (servers take them, and refuse the old ones, within {} s)",
                    aisle_serve::shops::REFRESH.as_secs()
                );
                print_keys(&keys);
            }
        }
    }
    Ok(())
}
