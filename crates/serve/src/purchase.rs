//! The purchase-probability model in serving: the store's behaviour log
//! kept in memory (every acknowledged event is appended), and the ranker
//! that re-ranks a user's recommendation candidates by the probability that
//! they buy each one, from the same declared features training used
//! (`aisle_features::behaviour::FEATURES`), read at the moment of the request.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aisle_core::{CatalogItem, Event, StoredEvent};
use aisle_features::behaviour::{
    set_sequence_score, CatalogFacts, EventLog, ItemFacts, MissingCounts, Sample, SequenceScorer,
    FEATURES, N_FEATURES,
};
use aisle_features::Interaction;
use aisle_rank::{Dataset, Ranker};
use aisle_store::EventStore;

use crate::seqfeature::SeqFeature;
use crate::ServeError;

/// Ranker metadata key naming its sequence-feature model (a file beside it).
pub const META_SEQ_FEATURE: &str = "seq_feature";

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
        .map(|c| (c.id.as_str(), ItemFacts::from(c)))
        .collect();
    EventLog::build(events.iter().map(Interaction::from), &facts)
}

/// Feature rows of samples, with each item's category id for the
/// category embedding (training and serving build rows here alike); `seq`
/// fills `seq_score` (without it the column is missing on every row).
pub fn dataset(
    log: &EventLog,
    samples: &[Sample],
    seq: Option<&dyn SequenceScorer>,
    missing: &mut MissingCounts,
) -> Dataset {
    let mut d = Dataset::new(N_FEATURES);
    let mut row = vec![0f32; N_FEATURES];
    let scores = match seq {
        Some(s) => log.sequence_scores(samples, s),
        None => vec![None; samples.len()],
    };
    for (s, score) in samples.iter().zip(scores) {
        log.features(s.user, s.item, s.t, &mut row, missing);
        set_sequence_score(&mut row, score, missing);
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
    /// The sequence model behind `seq_score`, when the ranker was trained with one.
    pub seq: Option<SeqFeature>,
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
        let seq = match meta.get(META_SEQ_FEATURE) {
            Some(file) => {
                let p = path.parent().unwrap_or(Path::new("")).join(file);
                Some(SeqFeature::load(&p, &log)?)
            }
            None => None,
        };
        Ok(Purchase {
            model,
            path: path.to_path_buf(),
            log: RwLock::new(log),
            seq,
        })
    }

    /// Appends an acknowledged event to the live log.
    pub fn observe(&self, e: &Event, seq: i64, facts: ItemFacts<'_>) {
        let raw = Interaction::of(e, seq);
        self.log
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(&raw, facts);
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
        let seq = self.seq.as_ref().map(|s| s as &dyn SequenceScorer);
        let d = dataset(&log, &samples, seq, &mut missing);
        drop(log);
        (self.model.predict(&d), missing)
    }
}
