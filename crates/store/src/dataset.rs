//! Facts about the data set a store holds (its name, time kind and
//! evaluation protocol), kept in the store's meta table by `aisle ingest`
//! and read by everything that trains or evaluates on it.

use aisle_core::protocol::Protocol;
use aisle_core::TimeKind;
use serde::{Deserialize, Serialize};

use crate::{EventStore, Result, StoreError};

/// The meta-table key.
const KEY: &str = "dataset";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetMeta {
    pub name: String,
    pub time_kind: TimeKind,
    pub protocol: Protocol,
}

impl DatasetMeta {
    /// The store's data set, if one was ingested.
    pub fn read(store: &dyn EventStore) -> Result<Option<DatasetMeta>> {
        match store.meta(KEY)? {
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("dataset meta: {e}"))),
            None => Ok(None),
        }
    }

    /// Records this data set as the store's (replacing an earlier one).
    pub fn write(&self, store: &mut dyn EventStore) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store.set_meta(KEY, &text)
    }
}
