//! Sequence protocols: how per-user interaction sequences are built from the
//! event log (see shared/baselines/PROTOCOL.md for the benchmark ones).

use serde::{Deserialize, Serialize};

/// How users are ordered in exported sequence files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserOrder {
    /// Numeric ids ascending (non-numeric ids after them, lexicographically).
    #[default]
    Numeric,
    Lexicographic,
}

/// How a user's events with equal times are ordered in their sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TieOrder {
    /// In the order they were ingested (file order, then later appends).
    #[default]
    File,
    /// By item id (byte order), then file order: the same sequences
    /// whatever order the rows of one moment came in (e.g. a basket).
    Item,
}

/// How per-user sequences are built for splits (see shared/baselines/PROTOCOL.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Event types that count as interactions; empty = all.
    #[serde(default)]
    pub interaction_types: Vec<crate::EventType>,
    /// Drop an item equal to the user's previous kept item.
    #[serde(default)]
    pub collapse_consecutive: bool,
    /// Drop users with fewer items than this (after collapsing).
    #[serde(default = "one")]
    pub min_sequence_len: usize,
    #[serde(default)]
    pub user_order: UserOrder,
    /// Order of one user's events with equal times.
    #[serde(default)]
    pub tie_order: TieOrder,
}

fn one() -> usize {
    1
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            interaction_types: Vec::new(),
            collapse_consecutive: false,
            min_sequence_len: 1,
            user_order: UserOrder::Numeric,
            tie_order: TieOrder::File,
        }
    }
}
