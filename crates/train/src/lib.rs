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
mod data;
mod decision;
mod fit;
mod holdout;
mod registry;
mod servable;

pub use artifact::{Artifact, DataRange, Header, Model, Parts, ARTIFACT_VERSION, LEGACY_VERSIONS};
pub use data::{side_info, StoreData};
pub use decision::{promote_if_better, Action, Decision};
pub use fit::{
    fit_sequence, train_classical, train_sequence, Progress, TrainReport, REPORT_VERSION,
};
pub use holdout::{holdout_eval, Holdout, MappedModel, HOLDOUT_PROTOCOL};
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
    #[error(transparent)]
    Model(#[from] aisle_models::ModelError),
    #[error(transparent)]
    Seq(#[from] aisle_seq::SeqError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Every model name `aisle train --model` accepts that a server can serve:
/// the classical models, then the sequence models.
pub fn model_names() -> Vec<&'static str> {
    let mut v = aisle_models::MODEL_NAMES.to_vec();
    v.extend(aisle_seq::Arch::ALL.iter().map(|a| a.name()));
    v
}
