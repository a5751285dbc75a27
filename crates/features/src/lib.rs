//! `aisle-features`: from an event log to the inputs models train on.
//!
//! For now: per-user chronological interaction sequences built by a
//! [`Protocol`], the leave-one-out and global temporal splits, and the
//! canonical TSV export (`user<TAB>item<TAB>item...`). Pure functions over
//! in-memory data: no I/O beyond writing to a caller's `Write`.
//!
//! ```
//! use aisle_core::protocol::Protocol;
//! use aisle_features::{build_sequences, Interaction};
//! let log = [
//!     Interaction { user: "2", item: "b", ts: 5, seq: 1, event_type: aisle_core::EventType::View },
//!     Interaction { user: "10", item: "a", ts: 1, seq: 2, event_type: aisle_core::EventType::View },
//!     Interaction { user: "2", item: "a", ts: 3, seq: 3, event_type: aisle_core::EventType::View },
//! ];
//! let s = build_sequences(log.iter().cloned(), &Protocol::default());
//! assert_eq!(s.to_tsv(), "2\ta\tb\n10\ta\n");
//! ```

pub mod behaviour;

use std::collections::HashMap;
use std::io::Write;

use aisle_core::protocol::{Protocol, TieOrder, UserOrder};
use aisle_core::EventType;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("a temporal split needs real timestamps; this data set has order only")]
    OrderOnlyTime,
    #[error("test fraction must be in (0, 1), got {0}")]
    BadFraction(f64),
    #[error("no interactions to split")]
    Empty,
}

pub type Result<T, E = FeatureError> = std::result::Result<T, E>;

/// One event as the sequence builder and [`behaviour::EventLog`] need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction<'a> {
    pub user: &'a str,
    pub item: &'a str,
    pub ts: i64,
    /// Insertion order (breaks timestamp ties in file order).
    pub seq: i64,
    pub event_type: EventType,
}

impl<'a> Interaction<'a> {
    /// An event with its store sequence number.
    pub fn of(e: &'a aisle_core::Event, seq: i64) -> Self {
        Interaction {
            user: &e.user,
            item: &e.item,
            ts: e.ts,
            seq,
            event_type: e.event_type,
        }
    }
}

impl<'a> From<&'a aisle_core::StoredEvent> for Interaction<'a> {
    fn from(e: &'a aisle_core::StoredEvent) -> Self {
        Interaction::of(&e.event, e.seq)
    }
}

/// Per-user sequences over a dense item vocabulary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequences {
    /// User ids, in the protocol's user order.
    pub users: Vec<String>,
    /// Item ids; index = dense id (numbered by first appearance in `seqs`).
    pub items: Vec<String>,
    /// Each user's items (dense ids), oldest first.
    pub seqs: Vec<Vec<u32>>,
    /// Each user's interaction times, aligned with `seqs`.
    pub times: Vec<Vec<i64>>,
}

impl Sequences {
    pub fn interactions(&self) -> usize {
        self.seqs.iter().map(Vec::len).sum()
    }

    /// Writes the canonical TSV: `user<TAB>item<TAB>item...\n` per user.
    pub fn write_tsv(&self, w: &mut dyn Write) -> std::io::Result<()> {
        for (u, s) in self.users.iter().zip(&self.seqs) {
            w.write_all(u.as_bytes())?;
            for &i in s {
                w.write_all(b"\t")?;
                w.write_all(self.items[i as usize].as_bytes())?;
            }
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn to_tsv(&self) -> String {
        let mut v = Vec::new();
        self.write_tsv(&mut v)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(v).expect("ids are UTF-8")
    }
}

/// Orders user ids: numeric ids ascending, then the rest lexicographically.
fn user_key(order: UserOrder, u: &str) -> (u8, u128, &str) {
    match order {
        UserOrder::Numeric => match u.parse::<u128>() {
            Ok(n) => (0, n, u),
            Err(_) => (1, 0, u),
        },
        UserOrder::Lexicographic => (0, 0, u),
    }
}

/// Builds per-user sequences: keep the protocol's interaction types, sort
/// each user's events by time, equal times in insertion order (or by item
/// id first with `tie_order = "item"`), collapse consecutive repeats
/// if asked, and drop users shorter than `min_sequence_len`.
pub fn build_sequences<'a>(
    log: impl IntoIterator<Item = Interaction<'a>>,
    p: &Protocol,
) -> Sequences {
    let mut per_user: HashMap<&'a str, Vec<(i64, i64, &'a str)>> = HashMap::new();
    for ev in log {
        if !p.interaction_types.is_empty() && !p.interaction_types.contains(&ev.event_type) {
            continue;
        }
        per_user
            .entry(ev.user)
            .or_default()
            .push((ev.ts, ev.seq, ev.item));
    }
    let mut users: Vec<&'a str> = per_user.keys().copied().collect();
    users.sort_by(|a, b| user_key(p.user_order, a).cmp(&user_key(p.user_order, b)));

    let mut out = Sequences::default();
    let mut vocab: HashMap<&'a str, u32> = HashMap::new();
    for u in users {
        let evs = per_user.get_mut(u).expect("user key");
        match p.tie_order {
            TieOrder::File => evs.sort_by_key(|&(ts, seq, _)| (ts, seq)),
            TieOrder::Item => evs.sort_by_key(|&(ts, seq, it)| (ts, it, seq)),
        }
        let mut items: Vec<&'a str> = Vec::with_capacity(evs.len());
        let mut times = Vec::with_capacity(evs.len());
        for &(ts, _, it) in evs.iter() {
            if p.collapse_consecutive && items.last() == Some(&it) {
                continue;
            }
            items.push(it);
            times.push(ts);
        }
        if items.len() < p.min_sequence_len.max(1) {
            continue;
        }
        let ids = items
            .iter()
            .map(|it| {
                let next = vocab.len() as u32;
                *vocab.entry(it).or_insert_with(|| {
                    out.items.push(it.to_string());
                    next
                })
            })
            .collect();
        out.users.push(u.to_string());
        out.seqs.push(ids);
        out.times.push(times);
    }
    out
}

/// Leave-one-out split of one user: the last item is the test target, the
/// second-to-last the validation target, everything before is training.
/// A user with one item has only a test target; with two, no training items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LooUser<'s> {
    pub train: &'s [u32],
    pub valid: Option<u32>,
    pub test: Option<u32>,
}

pub fn leave_one_out(seq: &[u32]) -> LooUser<'_> {
    match seq.len() {
        0 => LooUser {
            train: &[],
            valid: None,
            test: None,
        },
        1 => LooUser {
            train: &[],
            valid: None,
            test: Some(seq[0]),
        },
        n => LooUser {
            train: &seq[..n - 2],
            valid: Some(seq[n - 2]),
            test: Some(seq[n - 1]),
        },
    }
}

/// A global temporal split: every interaction at or after `cutoff` is test.
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalSplit {
    pub cutoff: i64,
    pub train: Sequences,
    pub test: Sequences,
}

/// Splits at the time below which `1 - test_fraction` of interactions fall.
pub fn temporal_split(
    s: &Sequences,
    test_fraction: f64,
    order_only: bool,
) -> Result<TemporalSplit> {
    if order_only {
        return Err(FeatureError::OrderOnlyTime);
    }
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(FeatureError::BadFraction(test_fraction));
    }
    let mut all: Vec<i64> = s.times.iter().flatten().copied().collect();
    if all.is_empty() {
        return Err(FeatureError::Empty);
    }
    all.sort_unstable();
    let idx = (((1.0 - test_fraction) * all.len() as f64) as usize).min(all.len() - 1);
    let cutoff = all[idx];
    let part = |keep: &dyn Fn(i64) -> bool| {
        let mut out = Sequences {
            items: s.items.clone(),
            ..Sequences::default()
        };
        for ((u, seq), times) in s.users.iter().zip(&s.seqs).zip(&s.times) {
            let (items, ts): (Vec<u32>, Vec<i64>) = seq
                .iter()
                .zip(times)
                .filter(|(_, &t)| keep(t))
                .map(|(&i, &t)| (i, t))
                .unzip();
            if !items.is_empty() {
                out.users.push(u.clone());
                out.seqs.push(items);
                out.times.push(ts);
            }
        }
        out
    };
    Ok(TemporalSplit {
        cutoff,
        train: part(&|t| t < cutoff),
        test: part(&|t| t >= cutoff),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ia<'a>(user: &'a str, item: &'a str, ts: i64, seq: i64) -> Interaction<'a> {
        Interaction {
            user,
            item,
            ts,
            seq,
            event_type: EventType::Purchase,
        }
    }

    #[test]
    fn ties_break_by_insertion_order_and_collapse_is_consecutive_only() {
        let log = vec![
            ia("1", "b", 5, 2),
            ia("1", "a", 5, 1),
            ia("1", "a", 6, 3),
            ia("1", "c", 7, 4),
            ia("1", "a", 8, 5),
            ia("1", "c", 7, 6),
        ];
        let p = Protocol {
            collapse_consecutive: true,
            ..Protocol::default()
        };
        assert_eq!(
            build_sequences(log.clone(), &p).to_tsv(),
            "1\ta\tb\ta\tc\ta\n"
        );
        let p = Protocol::default();
        assert_eq!(build_sequences(log, &p).to_tsv(), "1\ta\tb\ta\tc\tc\ta\n");
    }

    #[test]
    fn equal_times_keep_file_order_or_go_by_item() {
        // Two moments of two items each, the rows of each in reverse item order.
        let log = vec![
            ia("1", "b", 5, 1),
            ia("1", "a", 5, 2),
            ia("1", "d", 6, 3),
            ia("1", "c", 6, 4),
        ];
        let file = build_sequences(log.clone(), &Protocol::default());
        assert_eq!(file.to_tsv(), "1\tb\ta\td\tc\n");
        let p = Protocol {
            tie_order: TieOrder::Item,
            ..Protocol::default()
        };
        assert_eq!(build_sequences(log, &p).to_tsv(), "1\ta\tb\tc\td\n");
    }

    #[test]
    fn min_len_types_and_user_order() {
        let mut log = vec![
            ia("10", "x", 1, 1),
            ia("9", "x", 1, 2),
            ia("9", "y", 2, 3),
            ia("abc", "z", 1, 4),
        ];
        log.push(Interaction {
            event_type: EventType::View,
            ..ia("9", "v", 3, 5)
        });
        let p = Protocol {
            interaction_types: vec![EventType::Purchase],
            ..Protocol::default()
        };
        assert_eq!(
            build_sequences(log.clone(), &p).to_tsv(),
            "9\tx\ty\n10\tx\nabc\tz\n"
        );
        let p = Protocol {
            min_sequence_len: 2,
            user_order: UserOrder::Lexicographic,
            ..Protocol::default()
        };
        assert_eq!(build_sequences(log, &p).to_tsv(), "9\tx\ty\tv\n");
    }

    #[test]
    fn loo_edges() {
        assert_eq!(leave_one_out(&[1, 2, 3]).train, &[1]);
        assert_eq!(leave_one_out(&[1, 2, 3]).valid, Some(2));
        assert_eq!(leave_one_out(&[1, 2, 3]).test, Some(3));
        assert_eq!(leave_one_out(&[7]).test, Some(7));
        assert_eq!(leave_one_out(&[7]).valid, None);
        assert_eq!(leave_one_out(&[]).test, None);
    }

    #[test]
    fn temporal_split_partitions_every_interaction() {
        let log: Vec<_> = (0..100)
            .map(|i| ia(if i % 2 == 0 { "1" } else { "2" }, "x", i, i))
            .collect();
        let s = build_sequences(log, &Protocol::default());
        let t = temporal_split(&s, 0.2, false).unwrap();
        assert_eq!(t.cutoff, 80);
        assert_eq!(t.train.interactions() + t.test.interactions(), 100);
        assert_eq!(t.test.interactions(), 20);
        assert!(temporal_split(&s, 0.0, false).is_err());
        assert!(matches!(
            temporal_split(&s, 0.2, true),
            Err(FeatureError::OrderOnlyTime)
        ));
    }
}
