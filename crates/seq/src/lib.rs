//! `aisle-seq`: sequential recommenders trained with burn (pure-Rust `flex`
//! CPU backend + autodiff). Kept in its own crate so the rest of the
//! workspace does not rebuild burn.
//!
//! Three networks over each user's item sequence — **SASRec** (causal
//! self-attention), **GRU4Rec** and an **LSTM** variant (masked recurrent
//! state updates) — share an item table (item embedding, optionally plus
//! category and price-bucket embeddings) whose vectors also score the
//! catalog. Training predicts the next item at every position of each
//! sequence (one sample per user per epoch) with full softmax
//! cross-entropy, sampled softmax or gBCE; AdamW with warm-up and gradient
//! clipping; early stopping on validation NDCG@10 with best-checkpoint
//! restore; an epoch and a wall-time budget. [`SeqModel`] is the inference
//! side: top-K from any recent history, popularity for an empty one, and
//! safetensors save/load.

mod config;
mod model;
mod net;
pub mod params;
mod repeat;
mod softmax;
mod train;

pub use config::{Arch, LossKind, LrDecay, SeqConfig, TrainMasking, Window};
pub use model::{Recommendation, SeqModel, UserVectors};
pub use net::{SeqNet, SideInfo};
pub use repeat::REPEAT_BUCKETS;
pub use train::{step_benchmark, train, EpochLog, SeqFit, TrainData};

#[derive(Debug, thiserror::Error)]
pub enum SeqError {
    #[error("bad hyperparameter for {model}: {message}")]
    BadConfig { model: String, message: String },
    #[error("cannot train on empty data")]
    EmptyData,
    #[error("training diverged (loss {loss}) at epoch {epoch} before any checkpoint")]
    Diverged { epoch: usize, loss: f64 },
    #[error("artifact error: {0}")]
    Artifact(String),
}

pub type Result<T, E = SeqError> = std::result::Result<T, E>;
