//! Team-draft interleaving (Radlinski, Kurup & Joachims 2008): two rankers'
//! lists merged into one, each shown item credited to the ranker that
//! drafted it, so one list compares both rankers on the same user at the
//! same moment.

use aisle_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// Who an interleaved item is credited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Team {
    A,
    B,
    /// In the lists' common prefix: both rankers put it at that position,
    /// so a click on it tells them apart in nothing.
    Neutral,
}

/// The merged list and each position's team.
#[derive(Debug, Clone, PartialEq)]
pub struct Interleaved<T> {
    pub items: Vec<T>,
    pub teams: Vec<Team>,
}

/// Merges rankings `a` and `b` into at most `k` items. The common prefix
/// goes first, credited to neither; then, round after round, the team with
/// fewer picks (a coin flip on a tie) adds its highest-ranked item not yet
/// shown. A team whose list is spent leaves the picks to the other.
pub fn team_draft<T: PartialEq + Clone>(
    a: &[T],
    b: &[T],
    k: usize,
    rng: &mut Rng,
) -> Interleaved<T> {
    let mut out = Interleaved {
        items: Vec::with_capacity(k),
        teams: Vec::with_capacity(k),
    };
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count().min(k);
    for x in &a[..prefix] {
        out.items.push(x.clone());
        out.teams.push(Team::Neutral);
    }
    let (mut ia, mut ib) = (prefix, prefix);
    let (mut na, mut nb) = (0usize, 0usize);
    while out.items.len() < k {
        while ia < a.len() && out.items.contains(&a[ia]) {
            ia += 1;
        }
        while ib < b.len() && out.items.contains(&b[ib]) {
            ib += 1;
        }
        let (a_left, b_left) = (ia < a.len(), ib < b.len());
        let a_turn = match (a_left, b_left) {
            (false, false) => break,
            (true, false) => true,
            (false, true) => false,
            (true, true) => na < nb || (na == nb && rng.chance(0.5)),
        };
        if a_turn {
            out.items.push(a[ia].clone());
            out.teams.push(Team::A);
            na += 1;
        } else {
            out.items.push(b[ib].clone());
            out.teams.push(Team::B);
            nb += 1;
        }
    }
    out
}

/// The clicks of one user (or one list) credited to each team.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub a: u64,
    pub b: u64,
}

impl Credit {
    pub fn add(&mut self, team: Team) {
        match team {
            Team::A => self.a += 1,
            Team::B => self.b += 1,
            Team::Neutral => {}
        }
    }

    /// Which ranker this user preferred: more credited clicks wins.
    pub fn preference(&self) -> Option<Team> {
        match self.a.cmp(&self.b) {
            std::cmp::Ordering::Greater => Some(Team::A),
            std::cmp::Ordering::Less => Some(Team::B),
            std::cmp::Ordering::Equal => None,
        }
    }
}
