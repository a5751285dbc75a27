//! The purchase-probability model in serving: the store's behaviour log
//! kept in memory (every acknowledged event is appended), and the ranker
//! that re-ranks a user's recommendation candidates by the probability that
//! they buy each one, from the same declared features training used
//! (`aisle_features::behaviour::FEATURES`), read at the moment of the request.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use aisle_core::Event;
use aisle_features::behaviour::{
    EventLog, ItemFacts, MissingCounts, Sample, SequenceScorer, FEATURES, N_FEATURES,
};
use aisle_features::Interaction;
use aisle_rank::Ranker;
use aisle_train::purchase::{dataset, META_SEQ_FEATURE};
use aisle_train::seqfeature::SeqFeature;

use crate::ServeError;

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
    /// `log` is the store's behaviour log (`aisle_train::purchase::event_log` or `log_of`).
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
