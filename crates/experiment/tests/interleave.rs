//! Team-draft interleaving: the merged list and who gets the credit.

use aisle_core::rng::Rng;
use aisle_experiment::{team_draft, Credit, Team};

#[test]
fn the_common_prefix_is_shown_first_and_credited_to_neither() {
    let a = [1, 2, 3, 4, 5];
    let b = [1, 2, 9, 8, 7];
    let m = team_draft(&a, &b, 6, &mut Rng::seed(1));
    assert_eq!(&m.items[..2], &[1, 2]);
    assert_eq!(&m.teams[..2], &[Team::Neutral, Team::Neutral]);
    assert!(m.teams[2..].iter().all(|t| *t != Team::Neutral));
}

#[test]
fn no_item_is_shown_twice_and_k_is_kept() {
    let a: Vec<u32> = (0..20).collect();
    let b: Vec<u32> = (0..20).rev().collect();
    for seed in 0..50 {
        let m = team_draft(&a, &b, 10, &mut Rng::seed(seed));
        assert_eq!(m.items.len(), 10);
        let mut sorted = m.items.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
    }
}

#[test]
fn each_team_picks_in_its_own_order_and_the_teams_stay_even() {
    let a: Vec<u32> = (0..30).collect();
    let b: Vec<u32> = (0..30).map(|i| (i * 7) % 30).collect();
    for seed in 0..50 {
        let m = team_draft(&a, &b, 12, &mut Rng::seed(seed));
        for (team, list) in [(Team::A, &a), (Team::B, &b)] {
            let ranks: Vec<usize> = m
                .items
                .iter()
                .zip(&m.teams)
                .filter(|(_, t)| **t == team)
                .map(|(x, _)| list.iter().position(|y| y == x).unwrap())
                .collect();
            assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
        }
        let na = m.teams.iter().filter(|t| **t == Team::A).count() as i64;
        let nb = m.teams.iter().filter(|t| **t == Team::B).count() as i64;
        assert!((na - nb).abs() <= 1);
    }
}

#[test]
fn the_coin_gives_each_team_the_first_pick_about_half_the_time() {
    let a = [1, 2, 3];
    let b = [4, 5, 6];
    let mut rng = Rng::seed(3);
    let a_first = (0..10_000)
        .filter(|_| team_draft(&a, &b, 2, &mut rng).teams[0] == Team::A)
        .count();
    assert!((4_800..5_200).contains(&a_first), "{a_first}");
}

#[test]
fn a_spent_list_leaves_the_picks_to_the_other_team() {
    let m = team_draft(&[1], &[2, 3, 4, 5], 4, &mut Rng::seed(0));
    assert_eq!(m.items.len(), 4);
    assert_eq!(m.teams.iter().filter(|t| **t == Team::A).count(), 1);
    let both_short = team_draft(&[1], &[2], 5, &mut Rng::seed(0));
    assert_eq!(both_short.items.len(), 2);
}

#[test]
fn more_credited_clicks_is_a_preference_and_a_tie_is_none() {
    let mut c = Credit::default();
    c.add(Team::A);
    c.add(Team::Neutral);
    assert_eq!(c.preference(), Some(Team::A));
    c.add(Team::B);
    assert_eq!(c.preference(), None);
    c.add(Team::B);
    assert_eq!(c.preference(), Some(Team::B));
}
