//! Promotion: a candidate replaces the serving version unless it is worse on
//! the newest hold-out.

use std::path::Path;

use aisle_features::Sequences;
use serde::{Deserialize, Serialize};

use crate::{holdout_eval, Holdout, Registry, Result, HOLDOUT_PROTOCOL};

/// What became of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Promoted,
    /// The serving version stays: the candidate was worse.
    Kept,
}

/// A promotion decision with the figures it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// The metric compared (`ndcg10`).
    pub metric: String,
    pub protocol: String,
    pub candidate: Holdout,
    /// The serving version's figures (None: nothing served, or the served
    /// version could not be evaluated).
    pub serving: Option<Holdout>,
}

impl Decision {
    /// Compares two hold-out results: the candidate wins unless worse
    /// (equal within summation noise counts as not worse).
    pub fn compare(candidate: Holdout, serving: Option<Holdout>) -> Decision {
        let promote = serving
            .as_ref()
            .is_none_or(|s| candidate.ndcg10 + 1e-9 >= s.ndcg10);
        Decision {
            action: if promote {
                Action::Promoted
            } else {
                Action::Kept
            },
            metric: "ndcg10".into(),
            protocol: HOLDOUT_PROTOCOL.into(),
            candidate,
            serving,
        }
    }
}

/// Evaluates `candidate` (an artifact in `reg`) and the promoted version on
/// `seqs`' newest hold-out and promotes the candidate unless it is worse.
pub fn promote_if_better(reg: &Registry, seqs: &Sequences, candidate: &Path) -> Result<Decision> {
    let version = reg.version_of(candidate)?;
    let cand = holdout_eval(seqs, candidate)?;
    let serving = match reg.promoted_name()? {
        Some(v) => match reg.path_of(&v).and_then(|p| holdout_eval(seqs, &p)) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(version = v, error = %e, "the promoted version cannot be evaluated; treating it as absent");
                None
            }
        },
        None => None,
    };
    let d = Decision::compare(cand, serving);
    if d.action == Action::Promoted {
        reg.promote(&version)?;
    }
    Ok(d)
}
