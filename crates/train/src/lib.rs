//! `aisle-train`: the model lifecycle beneath `aisle serve` and the CLI.
//!
//! One [`Artifact`] type holds every model kind (classical or sequence) with
//! its item ids, config, training data range and hold-out figures, saved and
//! loaded in one place; every kind is [`Servable`]. The [`Registry`] keeps
//! a store's artifacts and the one promoted to serve. Training data comes
//! from a store ([`StoreData`]); [`train_classical`] and [`train_sequence`]
//! fit and publish; [`promote_if_better`] judges a candidate against the
//! serving version on the newest hold-out and returns a typed [`Decision`].

mod artifact;
pub mod bench;
mod data;
mod decision;
mod fit;
mod holdout;
pub mod hyper;
mod kind;
pub mod leaderboard;
pub mod purchase;
mod registry;
pub mod seqfeature;
mod servable;
pub mod twostage;
pub mod usage;

pub use artifact::{Artifact, DataRange, Header, Model, Parts, ARTIFACT_VERSION, LEGACY_VERSIONS};
pub use data::{side_info, StoreData};
pub use decision::{promote_if_better, Action, Decision};
pub use fit::{
    curve_json, fit_recommender, fit_sequence, gat_categories, stepped, train_classical,
    train_sequence, Monitor, Progress, Quiet, TrainReport, CURVE, REPORT_VERSION,
};
pub use holdout::{holdout_eval, Holdout, MappedModel, HOLDOUT_PROTOCOL};
pub use kind::{names_where, Kind, PurchaseModel};
pub use registry::{Entry, Registry};
pub use servable::{Classical, Servable};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {message}", path.display())]
    Artifact { path: PathBuf, message: String },
    #[error("bad version {0:?}: a version is a file name in the registry")]
    BadVersion(String),
    #[error("cannot promote {version}: {reason}")]
    NotPromotable { version: String, reason: String },
    #[error("no earlier promotion to roll back to")]
    NoEarlierPromotion,
    #[error("{path} is not in the registry {dir}: only artifacts there can be promoted")]
    NotInRegistry { path: PathBuf, dir: PathBuf },
    #[error(transparent)]
    Store(#[from] aisle_store::StoreError),
    /// (An unknown name becomes [`TrainError::UnknownModel`], which lists
    /// every kind, not only the classical ones.)
    #[error(transparent)]
    Model(aisle_models::ModelError),
    #[error(transparent)]
    Seq(#[from] aisle_seq::SeqError),
    #[error(transparent)]
    Rank(#[from] aisle_rank::RankError),
    #[error("{0}")]
    BadConfig(String),
    #[error("unknown model `{0}`; known models: {known}", known = names_where(|_| true))]
    UnknownModel(String),
    #[error("{0}")]
    NoData(String),
    #[error("{}: {message}", path.display())]
    Samples { path: PathBuf, message: String },
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl From<aisle_models::ModelError> for TrainError {
    fn from(e: aisle_models::ModelError) -> TrainError {
        match e {
            aisle_models::ModelError::UnknownModel(name) => TrainError::UnknownModel(name),
            e => TrainError::Model(e),
        }
    }
}

/// Every model name `aisle train --model` accepts that a server can serve:
/// the classical models, then the sequence models.
pub fn model_names() -> Vec<&'static str> {
    kind::names(Kind::served)
}
