//! aisle-sim: a shop's shoppers, simulated, for driving a running engine the
//! way a storefront does and knowing the truth of what it measures.
//!
//! Each shopper has hidden tastes: one or two favourite categories. An
//! item's attraction to a shopper is high in a favourite category and low
//! elsewhere, scaled by the item's appeal (its popularity rank in the
//! catalog the engine reports). A session: the shopper views a few items of
//! a favourite category (the engine learns them as history), asks for
//! recommendations, examines the list top down with a position-based click
//! model (position p is examined with probability 1 / p^η), clicks examined
//! items with their attraction, adds some clicked items to the cart and buys
//! some of those at catalog prices, and sends every event back with the
//! list's `request_id` and the item's position.
//!
//! Because attraction and examination are known, each list's expected
//! clicks are known too: [`Truth`] sums them per arm, so the true CTR of each
//! arm (and the true lift) sits beside what the experiment report measured.

use std::collections::BTreeMap;

use aisle_core::rng::Rng;
use serde::Serialize;

/// A catalog item as the simulator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub category: Option<String>,
    pub price: f64,
}

/// Size and behaviour of the simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub users: usize,
    pub days: u32,
    pub seed: u64,
    /// Items per recommendation list.
    pub k: usize,
    /// Mean sessions per shopper per day.
    pub sessions_per_day: f64,
    /// Position bias: position p is examined with probability 1 / p^η.
    pub eta: f64,
    /// Attraction of an item in a favourite category (before its appeal).
    pub favourite_attraction: f64,
    /// Attraction of any other item.
    pub other_attraction: f64,
    /// Share of clicks that add to the cart, and of carts that are bought.
    pub cart_rate: f64,
    pub buy_rate: f64,
    /// Prefix of the simulated shoppers' ids (`PREFIX-N`).
    pub user_prefix: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            users: 1000,
            days: 7,
            seed: 1,
            k: 10,
            sessions_per_day: 0.5,
            eta: 1.0,
            favourite_attraction: 0.25,
            other_attraction: 0.02,
            cart_rate: 0.3,
            buy_rate: 0.5,
            user_prefix: "sim".into(),
        }
    }
}

/// A list the engine showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub request_id: String,
    pub items: Vec<String>,
    /// The experiment arm that served it, if any.
    pub arm: Option<String>,
}

/// An event the simulator sends back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimEvent {
    pub user_id: String,
    pub item_id: String,
    pub r#type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// The engine as a storefront uses it (over HTTP, or in process in tests).
pub trait Engine {
    fn recommend(&mut self, user: &str, k: usize) -> Result<Shown, String>;
    fn send(&mut self, events: &[SimEvent]) -> Result<(), String>;
}

/// The shoppers and the catalog with its hidden truth.
pub struct World {
    cfg: SimConfig,
    items: Vec<Item>,
    index: std::collections::HashMap<String, usize>,
    /// Category of each item (index into `categories`), if any.
    item_category: Vec<Option<usize>>,
    categories: Vec<String>,
    by_category: Vec<Vec<usize>>,
    /// In (0, 1]: the popularity rank's appeal.
    appeal: Vec<f64>,
    /// Favourite categories of each shopper.
    favourites: Vec<Vec<usize>>,
}

impl World {
    /// `items` in the engine's popularity order (most popular first).
    pub fn new(items: Vec<Item>, cfg: SimConfig) -> Result<World, String> {
        let mut categories: Vec<String> = Vec::new();
        let mut item_category = Vec::with_capacity(items.len());
        for it in &items {
            item_category.push(it.category.as_ref().map(|c| {
                categories.iter().position(|x| x == c).unwrap_or_else(|| {
                    categories.push(c.clone());
                    categories.len() - 1
                })
            }));
        }
        if categories.is_empty() {
            return Err(
                "the catalog has no categories: shoppers' tastes are over categories".into(),
            );
        }
        let mut by_category = vec![Vec::new(); categories.len()];
        for (i, c) in item_category.iter().enumerate() {
            if let Some(c) = c {
                by_category[*c].push(i);
            }
        }
        let appeal = (0..items.len())
            .map(|r| 1.0 / ((r + 1) as f64).powf(0.3))
            .collect();
        let mut rng = Rng::seed(cfg.seed ^ 0x5eed_5eed);
        let favourites = (0..cfg.users)
            .map(|_| {
                let n = 1 + rng.below(2) as usize;
                (0..n)
                    .map(|_| rng.below(categories.len() as u64) as usize)
                    .collect()
            })
            .collect();
        let index = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.id.clone(), i))
            .collect();
        Ok(World {
            cfg,
            items,
            index,
            item_category,
            categories,
            by_category,
            appeal,
            favourites,
        })
    }

    pub fn user_id(&self, u: usize) -> String {
        format!("{}-{}", self.cfg.user_prefix, u)
    }

    /// The probability shopper `u` clicks item `i` once examined.
    pub fn attraction(&self, u: usize, i: usize) -> f64 {
        let fav = self.item_category[i].is_some_and(|c| self.favourites[u].contains(&c));
        let base = if fav {
            self.cfg.favourite_attraction
        } else {
            self.cfg.other_attraction
        };
        (base * self.appeal[i]).min(1.0)
    }

    /// The probability position `p` (1-based) is examined.
    pub fn examination(&self, p: usize) -> f64 {
        1.0 / (p as f64).powf(self.cfg.eta)
    }

    /// The expected clicks on a list shown to shopper `u`.
    pub fn expected_clicks(&self, u: usize, list: &[String]) -> f64 {
        list.iter()
            .enumerate()
            .map(|(p, id)| match self.index.get(id) {
                Some(&i) => self.examination(p + 1) * self.attraction(u, i),
                None => 0.0,
            })
            .sum()
    }

    pub fn categories(&self) -> &[String] {
        &self.categories
    }
}

/// Per arm (`-` without an experiment): lists, expected and observed clicks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArmTruth {
    pub lists: u64,
    /// The sum of each list's expected clicks: the truth.
    pub expected_clicks: f64,
    pub clicks: u64,
    pub carts: u64,
    pub purchases: u64,
    pub gmv: f64,
    pub users: u64,
}

impl ArmTruth {
    /// The true CTR: expected clicks per list.
    pub fn true_ctr(&self) -> f64 {
        self.expected_clicks / self.lists.max(1) as f64
    }
}

/// What the simulation knows: per arm truth and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Truth {
    pub arms: BTreeMap<String, ArmTruth>,
    pub sessions: u64,
    pub events_sent: u64,
}

impl Truth {
    /// The true relative CTR lift of `arm` over `control`.
    pub fn true_lift(&self, arm: &str, control: &str) -> Option<f64> {
        let (a, c) = (self.arms.get(arm)?, self.arms.get(control)?);
        let c = c.true_ctr();
        (c > 0.0).then(|| a.true_ctr() / c - 1.0)
    }
}

/// Runs the shoppers' sessions against the engine.
pub fn run(
    world: &World,
    engine: &mut dyn Engine,
    progress: &dyn Fn(u32),
) -> Result<Truth, String> {
    let cfg = &world.cfg;
    let mut rng = Rng::seed(cfg.seed);
    let mut truth = Truth::default();
    let mut seen_users: BTreeMap<String, std::collections::HashSet<usize>> = BTreeMap::new();
    for day in 0..cfg.days {
        for u in 0..cfg.users {
            let sessions = rng.poisson(cfg.sessions_per_day);
            for _ in 0..sessions {
                session(world, engine, u, &mut rng, &mut truth, &mut seen_users)?;
            }
        }
        progress(day + 1);
    }
    for (arm, users) in seen_users {
        if let Some(t) = truth.arms.get_mut(&arm) {
            t.users = users.len() as u64;
        }
    }
    Ok(truth)
}

fn session(
    world: &World,
    engine: &mut dyn Engine,
    u: usize,
    rng: &mut Rng,
    truth: &mut Truth,
    seen_users: &mut BTreeMap<String, std::collections::HashSet<usize>>,
) -> Result<(), String> {
    let cfg = &world.cfg;
    let user = world.user_id(u);
    truth.sessions += 1;
    // Browse: a few views in one favourite category, the appealing items more often.
    let favs = &world.favourites[u];
    let cat = favs[rng.below(favs.len() as u64) as usize];
    let pool = &world.by_category[cat];
    let mut events = Vec::new();
    if !pool.is_empty() {
        for _ in 0..1 + rng.below(3) {
            let i = pool[(rng.f64() * rng.f64() * pool.len() as f64) as usize];
            events.push(SimEvent {
                user_id: user.clone(),
                item_id: world.items[i].id.clone(),
                r#type: "view",
                request_id: None,
                position: None,
                value: None,
            });
        }
        engine.send(&events)?;
        truth.events_sent += events.len() as u64;
        events.clear();
    }
    let list = engine.recommend(&user, cfg.k)?;
    let arm = list.arm.clone().unwrap_or_else(|| "-".into());
    let t = truth.arms.entry(arm.clone()).or_default();
    seen_users.entry(arm).or_default().insert(u);
    t.lists += 1;
    t.expected_clicks += world.expected_clicks(u, &list.items);
    for (p, id) in list.items.iter().enumerate() {
        let Some(&i) = world.index.get(id) else {
            continue;
        };
        if !rng.chance(world.examination(p + 1) * world.attraction(u, i)) {
            continue;
        }
        t.clicks += 1;
        let from = |kind: &'static str, value: Option<f64>| SimEvent {
            user_id: user.clone(),
            item_id: id.clone(),
            r#type: kind,
            request_id: Some(list.request_id.clone()),
            position: Some(p as u32 + 1),
            value,
        };
        events.push(from("click", None));
        if rng.chance(cfg.cart_rate) {
            t.carts += 1;
            events.push(from("add_to_cart", None));
            if rng.chance(cfg.buy_rate) {
                let price = world.items[i].price;
                t.purchases += 1;
                t.gmv += price;
                events.push(from("purchase", Some(price)));
            }
        }
    }
    if !events.is_empty() {
        engine.send(&events)?;
        truth.events_sent += events.len() as u64;
    }
    Ok(())
}
