//! The simulator against engines whose lists are known: observed clicks
//! match the truth it keeps, and a list of the shopper's tastes beats
//! popularity by the margin the click model implies.

use std::collections::HashMap;

use aisle_sim::{run, Engine, Item, Shown, SimConfig, SimEvent, World};

fn catalog() -> Vec<Item> {
    (0..200)
        .map(|i| Item {
            id: format!("i{i}"),
            category: Some(format!("c{}", i % 8)),
            price: 5.0 + (i % 7) as f64,
        })
        .collect()
}

/// Arm `pop` shows the 10 most popular items; arm `taste` the most popular
/// items of the category the user viewed last.
struct Fake {
    last_view: HashMap<String, usize>,
    next: u64,
    events: Vec<SimEvent>,
}

impl Engine for Fake {
    fn recommend(&mut self, user: &str, k: usize) -> Result<Shown, String> {
        self.next += 1;
        let n: u32 = user.rsplit('-').next().unwrap().parse().unwrap();
        let (arm, items) = if n.is_multiple_of(2) {
            ("pop", (0..k).map(|i| format!("i{i}")).collect())
        } else {
            let c = self.last_view.get(user).copied().unwrap_or(0) % 8;
            ("taste", (0..k).map(|j| format!("i{}", c + 8 * j)).collect())
        };
        Ok(Shown {
            request_id: format!("{:016x}", self.next),
            items,
            arm: Some(arm.into()),
        })
    }

    fn send(&mut self, events: &[SimEvent]) -> Result<(), String> {
        for e in events {
            if e.r#type == "view" {
                let i: usize = e.item_id[1..].parse().unwrap();
                self.last_view.insert(e.user_id.clone(), i);
            }
        }
        self.events.extend_from_slice(events);
        Ok(())
    }
}

fn simulate(users: usize) -> (aisle_sim::Truth, Fake) {
    let cfg = SimConfig {
        users,
        days: 5,
        seed: 3,
        ..SimConfig::default()
    };
    let world = World::new(catalog(), cfg).unwrap();
    let mut engine = Fake {
        last_view: HashMap::new(),
        next: 0,
        events: Vec::new(),
    };
    let truth = run(&world, &mut engine, &|_| {}).unwrap();
    (truth, engine)
}

#[test]
fn observed_clicks_match_the_expected_clicks_of_the_lists_shown() {
    let (truth, _) = simulate(2000);
    for (arm, t) in &truth.arms {
        let sd = t.expected_clicks.sqrt();
        let gap = (t.clicks as f64 - t.expected_clicks).abs();
        assert!(
            gap < 4.0 * sd,
            "{arm}: {} clicks, {:.1} expected",
            t.clicks,
            t.expected_clicks
        );
        assert!(t.lists > 1000, "{arm}: {t:?}");
    }
}

#[test]
fn a_list_of_the_shoppers_tastes_beats_popularity_in_truth_and_in_clicks() {
    let (truth, _) = simulate(2000);
    let lift = truth.true_lift("taste", "pop").unwrap();
    assert!(lift > 0.5, "true lift {lift}");
    let (t, p) = (&truth.arms["taste"], &truth.arms["pop"]);
    assert!(t.clicks as f64 / t.lists as f64 > p.clicks as f64 / p.lists as f64);
}

#[test]
fn every_click_cart_and_purchase_names_its_list_and_position() {
    let (truth, engine) = simulate(300);
    let outcomes: Vec<&SimEvent> = engine
        .events
        .iter()
        .filter(|e| e.r#type != "view")
        .collect();
    assert!(!outcomes.is_empty());
    for e in &outcomes {
        assert!(
            e.request_id.is_some() && e.position.is_some_and(|p| (1..=10).contains(&p)),
            "{e:?}"
        );
    }
    let purchases: Vec<&&SimEvent> = outcomes.iter().filter(|e| e.r#type == "purchase").collect();
    let gmv: f64 = purchases.iter().map(|e| e.value.unwrap()).sum();
    let truth_gmv: f64 = truth.arms.values().map(|a| a.gmv).sum();
    assert!((gmv - truth_gmv).abs() < 1e-9);
    assert_eq!(truth.events_sent as usize, engine.events.len());
}

#[test]
fn the_same_seed_replays_the_same_shoppers() {
    let (a, ea) = simulate(200);
    let (b, eb) = simulate(200);
    assert_eq!(a, b);
    assert_eq!(ea.events, eb.events);
}
