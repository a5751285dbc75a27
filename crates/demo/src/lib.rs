//! `aisle-demo`: a seeded, realistic synthetic shop — what a new user runs
//! first, since the real datasets are not redistributed with the project.
//!
//! The shop has a catalog (titles, descriptions, categories, prices, stock),
//! users with latent tastes over categories, browsing sessions of views,
//! add-to-carts, favourites and purchases, repeat buying of consumables, and
//! a little dirt for the cleaning loop to catch (duplicates, bad timestamps,
//! empty users, unknown items, a bot, fees that are not products, broken rows).
//! The same seed always writes the same bytes.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("aisle-demo-doc-{}", std::process::id()));
//! let s = aisle_demo::write_demo(&dir, &aisle_demo::DemoConfig { users: 50, items: 40, ..Default::default() }).unwrap();
//! assert!(s.event_rows > 0 && s.catalog_rows == 40);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use aisle_core::rng::Rng;
use aisle_core::time::format_rfc3339;

/// Size and seed of the demo shop.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub seed: u64,
    pub users: usize,
    pub items: usize,
    /// Length of the simulated period in days.
    pub days: u32,
    /// Unix time the period starts.
    pub start: i64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seed: 42,
            users: 2_000,
            items: 1_200,
            days: 90,
            // 2025-06-01T00:00:00Z
            start: 1_748_736_000,
        }
    }
}

/// What was written, including the dirt planted on purpose.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoSummary {
    pub catalog_rows: usize,
    pub event_rows: usize,
    /// Kind of planted dirt → rows.
    pub dirt: BTreeMap<&'static str, usize>,
}

struct Category {
    name: &'static str,
    nouns: &'static [&'static str],
    base_price: f64,
    consumable: bool,
}

const CATEGORIES: &[Category] = &[
    Category {
        name: "Candles & Lights",
        nouns: &[
            "Tea Light Holder",
            "Scented Candle",
            "Lantern",
            "Fairy Lights",
            "Candle Set",
        ],
        base_price: 6.0,
        consumable: true,
    },
    Category {
        name: "Kitchen",
        nouns: &[
            "Mug",
            "Teapot",
            "Cake Tin",
            "Apron",
            "Chopping Board",
            "Measuring Spoons",
        ],
        base_price: 9.0,
        consumable: false,
    },
    Category {
        name: "Tea & Coffee",
        nouns: &[
            "Green Tea",
            "Earl Grey Tea",
            "Coffee Beans",
            "Herbal Infusion",
            "Chai Blend",
        ],
        base_price: 7.5,
        consumable: true,
    },
    Category {
        name: "Garden",
        nouns: &[
            "Plant Pot",
            "Watering Can",
            "Bird Feeder",
            "Garden Gloves",
            "Seed Kit",
        ],
        base_price: 12.0,
        consumable: false,
    },
    Category {
        name: "Stationery",
        nouns: &[
            "Notebook",
            "Pencil Case",
            "Greeting Card",
            "Wrapping Paper",
            "Sticker Set",
        ],
        base_price: 3.5,
        consumable: true,
    },
    Category {
        name: "Home Decor",
        nouns: &[
            "Photo Frame",
            "Cushion Cover",
            "Wall Clock",
            "Vase",
            "Doormat",
        ],
        base_price: 15.0,
        consumable: false,
    },
    Category {
        name: "Bath & Beauty",
        nouns: &["Soap Bar", "Bath Bomb", "Hand Cream", "Lip Balm", "Shampoo"],
        base_price: 5.0,
        consumable: true,
    },
    Category {
        name: "Toys & Games",
        nouns: &[
            "Puzzle",
            "Card Game",
            "Plush Bear",
            "Building Blocks",
            "Kite",
        ],
        base_price: 11.0,
        consumable: false,
    },
    Category {
        name: "Bags",
        nouns: &[
            "Tote Bag",
            "Lunch Bag",
            "Backpack",
            "Shopping Bag",
            "Wash Bag",
        ],
        base_price: 8.0,
        consumable: false,
    },
    Category {
        name: "Party",
        nouns: &[
            "Bunting",
            "Paper Plates",
            "Balloons",
            "Party Hats",
            "Napkins",
        ],
        base_price: 4.0,
        consumable: true,
    },
];

const COLORS: &[&str] = &[
    "Red", "White", "Blue", "Pink", "Green", "Black", "Cream", "Gold", "Silver", "Vintage",
];
const MATERIALS: &[&str] = &[
    "Ceramic", "Glass", "Wooden", "Metal", "Cotton", "Enamel", "Bamboo", "Paper", "Linen",
    "Recycled",
];
const STYLES: &[&str] = &[
    "Heart",
    "Floral",
    "Polka Dot",
    "Scandi",
    "Retro",
    "Botanical",
    "Striped",
    "Star",
    "Rustic",
    "Modern",
];
const OCCASIONS: &[&str] = &[
    "everyday use",
    "a thoughtful gift",
    "Christmas",
    "a birthday",
    "summer evenings",
    "a cosy home",
];

struct Item {
    id: String,
    category: usize,
    price: f64,
}

/// Writes `catalog.csv` and `events.csv` into `dir` (created if needed).
/// One events.csv line and its moment (the file is written in time order).
struct Row {
    ts: i64,
    line: String,
}

pub fn write_demo(dir: &Path, cfg: &DemoConfig) -> std::io::Result<DemoSummary> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng::seed(cfg.seed);
    let mut summary = DemoSummary::default();
    let items = write_catalog(dir, cfg, &mut rng)?;
    summary.catalog_rows = items.len();
    let mut rows = behaviour(cfg, &items, &mut rng, &mut summary);
    let dirt = dirt(cfg, &items, &rows, &mut rng, &mut summary);
    rows.extend(dirt);
    // A log is written in time order; same-time rows keep their generation order.
    rows.sort_by_key(|r| r.ts);

    let mut ev_w = BufWriter::new(std::fs::File::create(dir.join("events.csv"))?);
    writeln!(
        ev_w,
        "user_id,item_id,event_type,timestamp,quantity,price,session_id"
    )?;
    for r in &rows {
        writeln!(ev_w, "{}", r.line)?;
    }
    ev_w.flush()?;
    summary.event_rows = rows.len();
    Ok(summary)
}

/// Writes catalog.csv: each item's title, description, category, price and stock.
fn write_catalog(dir: &Path, cfg: &DemoConfig, rng: &mut Rng) -> std::io::Result<Vec<Item>> {
    // Catalog.
    let mut items = Vec::with_capacity(cfg.items);
    let mut cat_w = BufWriter::new(std::fs::File::create(dir.join("catalog.csv"))?);
    writeln!(cat_w, "item_id,title,description,category,price,in_stock")?;
    for i in 0..cfg.items {
        let c = (rng.below(CATEGORIES.len() as u64)) as usize;
        let cat = &CATEGORIES[c];
        let noun = rng.pick(cat.nouns);
        let title = format!(
            "{} {} {} {}",
            rng.pick(COLORS),
            rng.pick(STYLES),
            rng.pick(MATERIALS),
            noun
        );
        let description = format!(
            "A {} {} for {}, in {} {}.",
            rng.pick(&["charming", "sturdy", "classic", "handmade", "bright", "elegant"]),
            noun.to_lowercase(),
            rng.pick(OCCASIONS),
            rng.pick(COLORS).to_lowercase(),
            rng.pick(MATERIALS).to_lowercase()
        );
        let price = ((cat.base_price * (0.45 * rng.normal()).exp()) * 100.0).round() / 100.0;
        let price = price.max(0.5);
        let in_stock = !rng.chance(0.05);
        let id = format!("P{:05}", 10_000 + i);
        writeln!(
            cat_w,
            "{id},{},\"{}\",{},{price:.2},{}",
            csv_field(&title),
            description.replace('"', "\"\""),
            csv_field(cat.name),
            in_stock
        )?;
        items.push(Item {
            id,
            category: c,
            price,
        });
    }
    cat_w.flush()?;
    Ok(items)
}

/// Users' sessions: views within favourite categories (Zipf-like popularity
/// within each), favourites, carts, purchases, repeat buys of consumables.
fn behaviour(
    cfg: &DemoConfig,
    items: &[Item],
    rng: &mut Rng,
    summary: &mut DemoSummary,
) -> Vec<Row> {
    // Popularity within each category: Zipf-like over a random order.
    let mut by_cat: Vec<Vec<usize>> = vec![Vec::new(); CATEGORIES.len()];
    for (i, it) in items.iter().enumerate() {
        by_cat[it.category].push(i);
    }
    let cum: Vec<Vec<f64>> = by_cat
        .iter()
        .map(|v| {
            let mut acc = 0.0;
            (0..v.len())
                .map(|r| {
                    acc += 1.0 / ((r + 1) as f64).powf(0.9);
                    acc
                })
                .collect()
        })
        .collect();

    let mut rows: Vec<Row> = Vec::new();
    let period = cfg.days as i64 * 86_400;
    let mut session_no = 0u64;
    for u in 0..cfg.users {
        let user = format!("u{:05}", u + 1);
        // Latent taste: 1-3 favourite categories.
        let nfav = 1 + rng.below(3) as usize;
        let favs: Vec<usize> = (0..nfav)
            .map(|_| rng.below(CATEGORIES.len() as u64) as usize)
            .collect();
        let sessions = (1.0 + rng.exp(5.0)).min(40.0) as usize;
        let mut bought: Vec<usize> = Vec::new();
        let mut times: Vec<i64> = (0..sessions)
            .map(|_| cfg.start + rng.below(period as u64) as i64)
            .collect();
        times.sort_unstable();
        for start in times {
            session_no += 1;
            let session = format!("s{session_no:06}");
            let ctx = Session {
                user: &user,
                session: &session,
                favs: &favs,
            };
            shop_session(
                &ctx,
                start,
                (items, &by_cat, &cum),
                &mut bought,
                rng,
                &mut rows,
                summary,
            );
        }
    }
    rows
}

/// Who shops in a session.
struct Session<'a> {
    user: &'a str,
    session: &'a str,
    favs: &'a [usize],
}

/// One session from `start`: maybe a repeat buy, views mostly in one
/// favourite category, favourites, carts and, often, a purchase of the cart.
fn shop_session(
    ctx: &Session<'_>,
    start: i64,
    (items, by_cat, cum): (&[Item], &[Vec<usize>], &[Vec<f64>]),
    bought: &mut Vec<usize>,
    rng: &mut Rng,
    rows: &mut Vec<Row>,
    summary: &mut DemoSummary,
) {
    let (user, session, favs) = (ctx.user, ctx.session, ctx.favs);
    let mut t = start;
    let mut cart: Vec<usize> = Vec::new();
    let push = |rows: &mut Vec<Row>, t: i64, item: &str, ty: &str, qty: &str, price: &str| {
        rows.push(Row {
            ts: t,
            line: format!(
                "{user},{item},{ty},{},{qty},{price},{session}",
                format_rfc3339(t)
            ),
        });
    };
    // Repeat purchase of a consumable bought before.
    if !bought.is_empty() && rng.chance(0.25) {
        let &i = rng.pick(bought);
        if CATEGORIES[items[i].category].consumable {
            push(rows, t, &items[i].id, "view", "", "");
            t += rng.range(10, 90);
            cart.push(i);
            push(rows, t, &items[i].id, "add_to_cart", "1", "");
            t += rng.range(10, 90);
        }
    }
    let c = if rng.chance(0.8) {
        *rng.pick(favs)
    } else {
        rng.below(CATEGORIES.len() as u64) as usize
    };
    let views = 1 + rng.below(10) as usize;
    for _ in 0..views {
        let cc = if rng.chance(0.85) {
            c
        } else {
            rng.below(CATEGORIES.len() as u64) as usize
        };
        if by_cat[cc].is_empty() {
            continue;
        }
        let i = by_cat[cc][rng.weighted(&cum[cc])];
        push(rows, t, &items[i].id, "view", "", "");
        if rng.chance(0.01) {
            // A double click: the same view again within a second.
            push(rows, t + 1, &items[i].id, "view", "", "");
            *summary
                .dirt
                .entry("consecutive_duplicate_view")
                .or_insert(0) += 1;
        }
        t += rng.range(15, 150);
        if rng.chance(0.03) {
            push(rows, t, &items[i].id, "favorite", "", "");
            t += rng.range(5, 30);
        }
        if rng.chance(0.18) {
            cart.push(i);
            push(rows, t, &items[i].id, "add_to_cart", "1", "");
            t += rng.range(10, 60);
        }
    }
    if !cart.is_empty() && rng.chance(0.55) {
        for &i in &cart {
            let qty = 1 + (rng.exp(0.6) as u32).min(5);
            let price = if rng.chance(0.1) {
                items[i].price * 0.8
            } else {
                items[i].price
            };
            push(
                rows,
                t,
                &items[i].id,
                "purchase",
                &qty.to_string(),
                &format!("{price:.2}"),
            );
            bought.push(i);
        }
        if rng.chance(0.02) {
            push(rows, t, "GIFTWRAP", "purchase", "1", "1.50");
            *summary.dirt.entry("non_product_fee").or_insert(0) += 1;
        }
    }
}

/// Dirt: each kind planted at a small, counted rate.
fn dirt(
    cfg: &DemoConfig,
    items: &[Item],
    rows: &[Row],
    rng: &mut Rng,
    summary: &mut DemoSummary,
) -> Vec<Row> {
    let period = cfg.days as i64 * 86_400;
    let clean = rows.len();
    let mut dirt: Vec<Row> = Vec::new();
    let mut plant = |kind: &'static str, ts: i64, line: String, dirt: &mut Vec<Row>| {
        *summary.dirt.entry(kind).or_insert(0) += 1;
        dirt.push(Row { ts, line });
    };
    for _ in 0..(clean / 200).max(1) {
        let r = &rows[rng.below(clean as u64) as usize];
        plant("exact_duplicate", r.ts, r.line.clone(), &mut dirt);
    }
    for _ in 0..(clean / 500).max(1) {
        let r = &rows[rng.below(clean as u64) as usize];
        let line = r
            .line
            .split_once(',')
            .map(|(_, rest)| format!(",{rest}"))
            .unwrap_or_default();
        plant("missing_user", r.ts, line, &mut dirt);
    }
    for k in 0..(clean / 500).max(2) {
        let r = &rows[rng.below(clean as u64) as usize];
        let mut parts: Vec<&str> = r.line.split(',').collect();
        let bad = if k % 2 == 0 {
            "not-a-date".to_string()
        } else {
            "2199-01-01T00:00:00Z".to_string()
        };
        parts[3] = &bad;
        let line = parts.join(",");
        plant("bad_timestamp", r.ts, line, &mut dirt);
    }
    for _ in 0..(clean / 1000).max(1) {
        let r = &rows[rng.below(clean as u64) as usize];
        let mut parts: Vec<String> = r.line.split(',').map(str::to_string).collect();
        parts[2] = "purchase".into();
        parts[4] = "-2".into();
        plant("negative_quantity", r.ts, parts.join(","), &mut dirt);
    }
    for k in 0..(clean / 500).max(1) {
        let r = &rows[rng.below(clean as u64) as usize];
        let mut parts: Vec<String> = r.line.split(',').map(str::to_string).collect();
        parts[1] = format!("X{:05}", 90_000 + k);
        plant("unknown_item", r.ts, parts.join(","), &mut dirt);
    }
    for _ in 0..(clean / 1000).max(1) {
        let r = &rows[rng.below(clean as u64) as usize];
        let mut parts: Vec<String> = r.line.split(',').map(str::to_string).collect();
        parts[2] = "hover".into();
        plant("unknown_event_type", r.ts, parts.join(","), &mut dirt);
    }
    for _ in 0..(clean / 2000).max(1) {
        let r = &rows[rng.below(clean as u64) as usize];
        plant(
            "wrong_column_count",
            r.ts,
            format!("{},EXTRA,FIELDS", r.line),
            &mut dirt,
        );
    }
    // A scraping bot: hundreds of views within minutes.
    let bot_start = cfg.start + period / 2;
    for k in 0..400 {
        let it = &items[rng.below(items.len() as u64) as usize];
        let ts = bot_start + k / 2;
        plant(
            "bot_user_event",
            ts,
            format!("bot-crawler,{},view,{},,,sbot", it.id, format_rfc3339(ts)),
            &mut dirt,
        );
    }
    dirt
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let base = std::env::temp_dir().join(format!("aisle-demo-test-{}", std::process::id()));
        let cfg = DemoConfig {
            users: 120,
            items: 80,
            ..DemoConfig::default()
        };
        let a = write_demo(&base.join("a"), &cfg).unwrap();
        let b = write_demo(&base.join("b"), &cfg).unwrap();
        assert_eq!(a, b);
        for f in ["events.csv", "catalog.csv"] {
            assert_eq!(
                std::fs::read(base.join("a").join(f)).unwrap(),
                std::fs::read(base.join("b").join(f)).unwrap()
            );
        }
        let events = std::fs::read_to_string(base.join("a/events.csv")).unwrap();
        for ty in ["view", "add_to_cart", "purchase"] {
            assert!(events.contains(&format!(",{ty},")), "no {ty} events");
        }
        assert!(a.dirt["exact_duplicate"] > 0 && a.dirt["bot_user_event"] == 400);
        std::fs::remove_dir_all(&base).ok();
    }
}
