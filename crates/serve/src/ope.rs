//! Off-policy replay: the recommendation lists a server showed with
//! exploration on (`--explore`), and what a candidate model would have
//! shown in their place, computed by the serving code path on each
//! shopper's history as it was when the list was shown. The estimators are
//! `aisle_experiment::ope`.
//!
//! Histories are rebuilt from the event store: each list records the
//! store's latest event sequence number the server had applied when it
//! answered (`events_seq`), so the shopper's history then is their events
//! up to it, ordered as the server orders them (time, then arrival), and
//! item popularity is every event up to it.

use std::collections::HashMap;
use std::sync::Arc;

use aisle_experiment::ope::{estimate, LoggedList, OpeReport, Pick, Slot};
use aisle_store::online::OnlineLog;

use crate::http::query::ListQuery;
use crate::http::recs::recommend;
use crate::state::{Live, Serving, UserState};
use crate::{load_version, registry_version, Registry, ServeError};

/// Categories of this many of a shopper's latest history items make the
/// click model's affinity feature.
const AFFINITY_HISTORY: usize = 20;

/// What `aisle ope` reports: the candidate, the estimates, and what could
/// not be replayed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ope {
    /// The candidate's registry version (or `popularity`).
    pub candidate: String,
    /// The model(s) that served the logged lists (`name@version`, most
    /// lists first).
    pub logged_models: Vec<String>,
    /// Lists logged by a server too old to record the events they saw.
    pub unreplayable_lists: u64,
    #[serde(flatten)]
    pub report: OpeReport,
}

/// The model `candidate` names in the store's registry: `pop`, `promoted`,
/// a version, or a model kind (its newest version).
fn candidate_serving(reg: &Registry, candidate: &str) -> Result<Arc<Serving>, ServeError> {
    if matches!(candidate, "pop" | "popularity") {
        return Ok(Serving::popularity_only());
    }
    let version = match candidate {
        "promoted" | "current" => reg
            .promoted_name()?
            .ok_or_else(|| ServeError::NotFound("no model is promoted".into()))?,
        _ => registry_version(reg, candidate)?,
    };
    load_version(reg, &version)
}

/// Replays the store's explored lists against `candidate` and estimates
/// its clicks per list.
pub fn off_policy(store: &str, candidate: &str) -> Result<Ope, ServeError> {
    let log = OnlineLog::of_store(store)?.ok_or_else(|| {
        ServeError::NotFound(format!(
            "{store} has no online log: no list was ever logged in this store \
             (a store in memory keeps none)"
        ))
    })?;
    let reg = Registry::of_store(store)?
        .ok_or_else(|| ServeError::Config(format!("{store} has no model registry")))?;
    let serving = candidate_serving(&reg, candidate)?;
    let logged = log.logged_lists()?;
    if logged.is_empty() {
        return Err(ServeError::NotFound(
            "no recommendation list was logged with propensities: serve with --explore SHARE \
             (e.g. 0.1) and let shoppers use it first"
                .into(),
        ));
    }
    let events = aisle_store::open_existing(store)?;
    let mut live = Live::default();
    for c in events.catalog()? {
        live.upsert_item(c);
    }
    // Every event in store order (= the order the server applied them),
    // and each user's events as the server orders a history at start.
    let mut all = Vec::new();
    events.scan_events(&mut |e| all.push(e))?;
    drop(events);
    all.sort_by_key(|e| e.seq);
    let mut by_user: HashMap<&str, Vec<usize>> = HashMap::new();
    for (n, e) in all.iter().enumerate() {
        by_user.entry(e.event.user.as_str()).or_default().push(n);
    }
    for v in by_user.values_mut() {
        v.sort_by_key(|&n| (all[n].event.ts, all[n].seq));
    }
    // Lists in the order of the events they saw (popularity only grows
    // along it); those logged before `events_seq` existed cannot be replayed.
    let (mut logged, unplayable): (Vec<_>, Vec<_>) =
        logged.into_iter().partition(|l| l.events_seq.is_some());
    logged.sort_by_key(|l| (l.events_seq, l.ts_ms, l.rid));
    if logged.is_empty() {
        return Err(ServeError::NotFound(format!(
            "the {} lists logged with propensities were logged by a server that did not record \
             the events they saw: explore with this version first",
            unplayable.len()
        )));
    }

    let mut models: HashMap<String, u64> = HashMap::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut intern = |s: &str| {
        let n = ids.len() as u32;
        *ids.entry(s.to_string()).or_insert(n)
    };
    let mut next = 0;
    let mut lists = Vec::with_capacity(logged.len());
    for l in &logged {
        let seen = l.events_seq.unwrap_or(0);
        while next < all.len() && all[next].seq <= seen {
            let e = &all[next].event;
            let i = live.item(&e.item);
            live.events += 1;
            if e.event_type != aisle_core::EventType::Cancel {
                live.popularity[i as usize] += 1.0;
            }
            next += 1;
        }
        let mut user = UserState::default();
        for &n in by_user.get(l.user.as_str()).into_iter().flatten() {
            if all[n].seq <= seen {
                let i = live.item(&all[n].event.item);
                user.apply(i, all[n].event.event_type);
            }
        }
        let history = &user.history[..];
        let q = ListQuery::plain(l.items.len());
        let (picks, _) = recommend(
            None,
            &serving,
            &live,
            &q,
            Some(&l.user),
            history,
            Some(&user.purchased),
            true,
        );
        let recent: Vec<&str> = history
            .iter()
            .rev()
            .take(AFFINITY_HISTORY)
            .filter_map(|&i| live.category(i))
            .collect();
        let affinity = |item: &str| {
            live.index
                .get(item)
                .and_then(|&i| live.category(i))
                .is_some_and(|c| recent.contains(&c))
        };
        let shown = l
            .items
            .iter()
            .enumerate()
            .map(|(p, (item, propensity))| Slot {
                item: intern(item),
                propensity: *propensity,
                click: l.clicked.contains(&(p as u32 + 1)),
                affinity: affinity(item),
            })
            .collect();
        let candidate = picks
            .iter()
            .map(|v| Pick {
                item: intern(&v.item_id),
                affinity: affinity(&v.item_id),
            })
            .collect();
        lists.push(LoggedList { shown, candidate });
    }
    for l in &logged {
        *models.entry(l.model.clone()).or_default() += 1;
    }
    let mut logged_models: Vec<(String, u64)> = models.into_iter().collect();
    logged_models.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(Ope {
        candidate: format!("{}@{}", serving.name, serving.version),
        unreplayable_lists: unplayable.len() as u64,
        logged_models: logged_models.into_iter().map(|(m, _)| m).collect(),
        report: estimate(&lists),
    })
}
