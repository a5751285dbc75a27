//! Cleaning rules that look beyond one row. They run in a fixed order and
//! each marks the rows it drops with its own [`Reason`]; a row already
//! dropped is not seen by later rules.

use std::collections::HashMap;

use crate::config::{DatasetConfig, TimeFormat};
use crate::report::Reason;
use crate::Candidate;

/// The whole-history rules (row-level and immediate rules ran already).
pub(crate) fn apply(cfg: &DatasetConfig, cands: &mut [Candidate]) {
    let c = &cfg.cleaning;
    if c.consecutive_duplicate_window_s.is_some() || c.bot_max_events_per_minute.is_some() {
        let by_user = group_by_user(cands);
        if let Some(window) = c.consecutive_duplicate_window_s {
            consecutive_duplicates(cands, &by_user, window);
        }
        if let (Some(cap), false) = (
            c.bot_max_events_per_minute,
            cfg.fields.time_format == TimeFormat::Order,
        ) {
            bots(cands, &by_user, cap);
        }
    }
    if c.kcore > 0 {
        kcore(cands, c.kcore);
    }
}

/// Indices of live candidates per user, sorted by (time, line).
fn group_by_user(cands: &[Candidate]) -> Vec<Vec<usize>> {
    let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in cands.iter().enumerate() {
        if c.dropped.is_none() {
            map.entry(c.event.user.as_str()).or_default().push(i);
        }
    }
    let mut groups: Vec<Vec<usize>> = map.into_values().collect();
    for g in &mut groups {
        g.sort_by_key(|&i| (cands[i].event.ts, cands[i].line, i));
    }
    groups.sort_by_key(|g| g[0]);
    groups
}

fn consecutive_duplicates(cands: &mut [Candidate], groups: &[Vec<usize>], window: i64) {
    for g in groups {
        let mut last: Option<usize> = None;
        for &i in g {
            if let Some(p) = last {
                let (a, b) = (&cands[p].event, &cands[i].event);
                if a.item == b.item && a.event_type == b.event_type && b.ts - a.ts <= window {
                    cands[i].dropped = Some(Reason::ConsecutiveDuplicate);
                    continue;
                }
            }
            last = Some(i);
        }
    }
}

fn bots(cands: &mut [Candidate], groups: &[Vec<usize>], cap: u32) {
    for g in groups {
        let live: Vec<usize> = g
            .iter()
            .copied()
            .filter(|&i| cands[i].dropped.is_none())
            .collect();
        let mut lo = 0;
        let mut worst = 0usize;
        for hi in 0..live.len() {
            while cands[live[hi]].event.ts - cands[live[lo]].event.ts >= 60 {
                lo += 1;
            }
            worst = worst.max(hi - lo + 1);
        }
        if worst > cap as usize {
            for &i in &live {
                cands[i].dropped = Some(Reason::BotUser);
            }
        }
    }
}

fn kcore(cands: &mut [Candidate], k: u32) {
    loop {
        let mut users: HashMap<&str, u32> = HashMap::new();
        let mut items: HashMap<&str, u32> = HashMap::new();
        for c in cands.iter().filter(|c| c.dropped.is_none()) {
            *users.entry(c.event.user.as_str()).or_insert(0) += 1;
            *items.entry(c.event.item.as_str()).or_insert(0) += 1;
        }
        let drop: Vec<usize> = cands
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.dropped.is_none()
                    && (users[c.event.user.as_str()] < k || items[c.event.item.as_str()] < k)
            })
            .map(|(i, _)| i)
            .collect();
        if drop.is_empty() {
            return;
        }
        for i in drop {
            cands[i].dropped = Some(Reason::Kcore);
        }
    }
}
