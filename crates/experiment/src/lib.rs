//! aisle-experiment: what an online experiment is and what its report
//! says, as pure functions with no I/O.
//!
//! - `spec`: an experiment (surface, mode, arms, traffic split, salt), its
//!   validation, and the deterministic assignment of a user to an arm.
//! - `interleave`: team-draft interleaving of two rankings and the credit of
//!   clicks to the ranker that drafted the item.
//! - `stats`: the estimators (delta-method ratios, lifts, z-tests, mSPRT
//!   always-valid p-values, CUPED, χ² sample-ratio test, exact binomial
//!   test, Wilson interval, sample sizes).
//! - `report`: an experiment's report from per-user, per-day outcomes.
//! - `ope`: off-policy estimates (IPS, SNIPS, doubly robust) of a candidate
//!   ranker's CTR from logged, partly randomised lists, and the exploration
//!   that makes them possible.

pub mod interleave;
pub mod ope;
pub mod report;
pub mod spec;
pub mod stats;

pub use interleave::{team_draft, Credit, Interleaved, Team};
pub use report::{report, PrePeriod, Report, ReportInput, UserDay, Verdict};
pub use spec::{ArmSpec, ExperimentSpec, Metric, Mode, Surface};

/// What an experiment request can get wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExperimentError {
    #[error("invalid experiment: {0}")]
    InvalidSpec(String),
}
