//! The purchase-probability model in serving: the store's behaviour log
//! kept in memory (every acknowledged event is appended), and the ranker
//! that re-ranks a user's recommendation candidates by the probability that
//! they buy each one, from the same declared features training used
//! (`aisle_features::behaviour::FEATURES`), read at the moment of the request.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aisle_core::{CatalogItem, Event, StoredEvent};
use aisle_features::behaviour::{
    CatalogFacts, EventLog, MissingCounts, Sample, FEATURES, N_FEATURES,
};
use aisle_features::Interaction;
use aisle_rank::{Dataset, Ranker};
use aisle_store::EventStore;

use crate::ServeError;

/// The whole behaviour log of a store, with catalog categories and prices.
pub fn event_log(store: &dyn EventStore) -> Result<EventLog, ServeError> {
    let mut events = Vec::new();
    store.scan_events(&mut |e| events.push(e))?;
    Ok(log_of(&events, &store.catalog()?))
}

/// The behaviour log of events already read from a store (no second scan).
pub fn log_of(events: &[StoredEvent], catalog: &[CatalogItem]) -> EventLog {
    let facts: CatalogFacts = catalog
        .iter()
        .map(|c| (c.id.as_str(), (c.category.as_deref(), c.price)))
        .collect();
    EventLog::build(events.iter().map(Interaction::from), &facts)
}

/// Feature rows of samples, with each item's category id for the
/// category embedding (training and serving build rows here alike).
pub fn dataset(log: &EventLog, samples: &[Sample], missing: &mut MissingCounts) -> Dataset {
    let mut d = Dataset::new(N_FEATURES);
    let mut row = vec![0f32; N_FEATURES];
    for s in samples {
        log.features(s.user, s.item, s.t, &mut row, missing);
        let cat = log.item_category.get(s.item as usize).copied().unwrap_or(0);
        d.push(&row, cat, s.label);
    }
    d
}

/// A loaded ranker and the live behaviour log it reads.
pub struct Purchase {
    pub model: Ranker,
    pub path: PathBuf,
    pub log: RwLock<EventLog>,
}

impl Purchase {
    /// Loads a ranker artifact (`aisle train --model ranker`); refuses one
    /// whose feature columns are not this build's.
    /// `log` is the store's behaviour log ([`event_log`] or [`log_of`]).
    pub fn open(path: &Path, log: EventLog) -> Result<Purchase, ServeError> {
        let bad = |m: String| ServeError::Config(format!("ranker {}: {m}", path.display()));
        let (model, meta) = Ranker::load(path).map_err(|e| bad(e.to_string()))?;
        let names: Vec<String> = meta
            .get("feature_names")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("no feature_names in the artifact".into()))?;
        let ours: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        if model.n_features != N_FEATURES || names != ours {
            return Err(bad(format!(
                "trained on other feature columns ({} vs this build's {}); retrain it",
                names.len(),
                N_FEATURES
            )));
        }
        Ok(Purchase {
            model,
            path: path.to_path_buf(),
            log: RwLock::new(log),
        })
    }

    /// Appends an acknowledged event to the live log.
    pub fn observe(&self, e: &Event, seq: i64, category: Option<&str>, price: Option<f64>) {
        let raw = Interaction::of(e, seq);
        self.log
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(&raw, category, price);
    }

    /// Purchase probabilities of `items` for `user` at `now` (features from
    /// events strictly before `now`); unknown users and items read as new.
    pub fn probabilities(&self, user: &str, items: &[&str], now: i64) -> (Vec<f64>, MissingCounts) {
        let log = self.log.read().unwrap_or_else(|p| p.into_inner());
        // Unknown users and items get ids past the log's: no history.
        let user = log.user_index(user).unwrap_or(u32::MAX);
        let samples: Vec<Sample> = items
            .iter()
            .map(|it| Sample {
                user,
                item: log.item_index(it).unwrap_or(u32::MAX),
                t: now,
                label: false,
            })
            .collect();
        let mut missing = MissingCounts::default();
        let d = dataset(&log, &samples, &mut missing);
        drop(log);
        (self.model.predict(&d), missing)
    }
}
