//! `aisle-seq`: sequential recommenders trained with burn (pure-Rust `flex`
//! CPU backend + autodiff). Kept in its own crate so the rest of the
//! workspace does not rebuild burn.
//!
//! Today: **SASRec** (item + position embeddings, causal self-attention
//! blocks, full softmax cross-entropy over all items) trained at every
//! position of each user's sequence (one sample per user per epoch, not one
//! per prefix), AdamW with gradient clipping and learning-rate warm-up,
//! early stopping on validation NDCG@10 with best-checkpoint restore and a
//! wall-time budget. Issue 4 continues with GRU4Rec/LSTM, sampled softmax and
//! gBCE, side information and safetensors checkpoints.

mod sasrec;
mod train;

pub use sasrec::{SasRec, SasRecConfig};
pub use train::{train_sasrec, EpochLog, SeqFit, UserVectors};

#[derive(Debug, thiserror::Error)]
pub enum SeqError {
    #[error("bad hyperparameter for {model}: {message}")]
    BadConfig { model: String, message: String },
    #[error("cannot train on empty data")]
    EmptyData,
    #[error("training diverged (loss {loss}) at epoch {epoch}; the last good checkpoint is kept")]
    Diverged { epoch: usize, loss: f64 },
}

pub type Result<T, E = SeqError> = std::result::Result<T, E>;
