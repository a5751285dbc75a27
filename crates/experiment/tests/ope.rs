//! Off-policy estimates by simulation: a shop whose click model is known
//! (position-based: examination 1/p times the item's attraction to the
//! shopper), a logging ranker that explores, and a candidate ranker whose
//! true clicks per list are computed exactly. The estimators must find
//! the truth on average and their intervals must cover it.

use aisle_core::rng::Rng;
use aisle_experiment::ope::{estimate, explore, LoggedList, OpeReport, Pick, Slot};

const ITEMS: usize = 200;
const CATEGORIES: usize = 5;
const USERS: usize = 500;
const K: usize = 10;
const POOL: usize = 50;

struct Shop {
    category: Vec<usize>,
    appeal: Vec<f64>,
    favourite: Vec<usize>,
    /// Each shopper's logging ranking (best first) and candidate ranking.
    logging: Vec<Vec<usize>>,
    candidate: Vec<Vec<usize>>,
}

fn examination(p: usize) -> f64 {
    1.0 / (p + 1) as f64
}

impl Shop {
    fn new(candidate_outside_pool: bool) -> Shop {
        let mut rng = Rng::seed(11);
        let category: Vec<usize> = (0..ITEMS).map(|i| i % CATEGORIES).collect();
        let appeal: Vec<f64> = (0..ITEMS)
            .map(|r| 1.0 / ((r + 1) as f64).powf(0.3))
            .collect();
        let favourite: Vec<usize> = (0..USERS)
            .map(|_| rng.below(CATEGORIES as u64) as usize)
            .collect();
        let rank = |score: &dyn Fn(usize) -> f64| {
            let mut order: Vec<usize> = (0..ITEMS).collect();
            order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
            order
        };
        let mut logging = Vec::new();
        let mut candidate = Vec::new();
        for &fav in &favourite {
            // The logging ranker knows the favourite only weakly and is noisy.
            let noise: Vec<f64> = (0..ITEMS).map(|_| rng.f64() * 0.6).collect();
            let log = rank(&|i| appeal[i] + 0.4 * (category[i] == fav) as u8 as f64 + noise[i]);
            let cand = if candidate_outside_pool {
                // Items the logging ranker never puts in its pool.
                log[POOL..POOL + K].to_vec()
            } else {
                // The candidate ranks the favourite category by appeal.
                rank(&|i| appeal[i] + (category[i] == fav) as u8 as f64)
            };
            logging.push(log);
            candidate.push(cand);
        }
        Shop {
            category,
            appeal,
            favourite,
            logging,
            candidate,
        }
    }

    fn attraction(&self, u: usize, i: usize) -> f64 {
        let fav = self.category[i] == self.favourite[u];
        (if fav { 0.3 } else { 0.03 }) * self.appeal[i]
    }

    /// The candidate's true clicks per list over the shoppers.
    fn truth(&self) -> f64 {
        (0..USERS)
            .map(|u| {
                self.candidate[u][..K]
                    .iter()
                    .enumerate()
                    .map(|(p, &i)| examination(p) * self.attraction(u, i))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / USERS as f64
    }

    fn logged(&self, lists: usize, share: f64, rng: &mut Rng) -> Vec<LoggedList> {
        (0..lists)
            .map(|_| {
                let u = rng.below(USERS as u64) as usize;
                let pool = &self.logging[u][..POOL];
                let (order, props) = explore(POOL, K, share, rng);
                let affinity = |i: usize| self.category[i] == self.favourite[u];
                let shown = order
                    .iter()
                    .zip(props)
                    .enumerate()
                    .map(|(p, (&o, propensity))| {
                        let i = pool[o];
                        Slot {
                            item: i as u32,
                            propensity,
                            click: rng.chance(examination(p) * self.attraction(u, i)),
                            affinity: affinity(i),
                        }
                    })
                    .collect();
                let candidate = self.candidate[u][..K]
                    .iter()
                    .map(|&i| Pick {
                        item: i as u32,
                        affinity: affinity(i),
                    })
                    .collect();
                LoggedList { shown, candidate }
            })
            .collect()
    }
}

fn runs(shop: &Shop, reps: usize, lists: usize, share: f64) -> Vec<OpeReport> {
    let mut rng = Rng::seed(2026);
    (0..reps)
        .map(|_| estimate(&shop.logged(lists, share, &mut rng)))
        .collect()
}

#[test]
fn ips_and_dr_find_the_candidates_true_ctr_and_cover_it() {
    let shop = Shop::new(false);
    let truth = shop.truth();
    let reports = runs(&shop, 200, 10_000, 0.2);
    let mean =
        |f: &dyn Fn(&OpeReport) -> f64| reports.iter().map(f).sum::<f64>() / reports.len() as f64;
    let logged = mean(&|r| r.logged_ctr.value);
    // The candidate is much better than what was logged: the estimate is
    // not the logged CTR in disguise.
    assert!(truth > 1.3 * logged, "truth {truth} logged {logged}");
    for (name, get) in [
        ("ips", &(|r: &OpeReport| r.ips) as &dyn Fn(&OpeReport) -> _),
        ("snips", &|r: &OpeReport| r.snips),
        ("dr", &|r: &OpeReport| r.dr),
    ] {
        let m = mean(&|r| get(r).value);
        let coverage =
            reports.iter().filter(|r| get(r).covers(truth)).count() as f64 / reports.len() as f64;
        eprintln!("{name}: mean {m:.4} truth {truth:.4} coverage {coverage:.3}");
        assert!(
            (m / truth - 1.0).abs() < 0.03,
            "{name}: mean {m} truth {truth}"
        );
        assert!(
            (0.91..=0.99).contains(&coverage),
            "{name}: coverage {coverage}"
        );
    }
    // DR's model takes variance out: its interval is narrower than IPS's.
    let width = |f: &dyn Fn(&OpeReport) -> (f64, f64)| mean(&|r| f(r).1 - f(r).0);
    let (w_ips, w_dr) = (
        width(&|r| (r.ips.low, r.ips.high)),
        width(&|r| (r.dr.low, r.dr.high)),
    );
    assert!(w_dr < w_ips, "dr width {w_dr} ips width {w_ips}");
    assert!(
        mean(&|r| r.support) > 0.9,
        "support {}",
        mean(&|r| r.support)
    );
}

#[test]
fn position_bias_is_read_from_explored_lists() {
    let shop = Shop::new(false);
    let r = &runs(&shop, 1, 50_000, 0.2)[0];
    assert_eq!(r.position_bias[0], 1.0);
    for (p, &t) in r.position_bias.iter().enumerate() {
        assert!(
            (t - examination(p)).abs() < 0.08,
            "position {}: {t} vs {}",
            p + 1,
            examination(p)
        );
    }
}

#[test]
fn a_candidate_outside_the_logged_pool_shows_as_missing_support() {
    let shop = Shop::new(true);
    let r = &runs(&shop, 1, 5000, 0.2)[0];
    assert_eq!(r.matched_slots, 0);
    assert_eq!(r.support, 0.0);
    assert_eq!(r.ips.value, 0.0);
}
