//! Training data assembled from a store: each user's sequence under the
//! data set's protocol, the items' side information, the time range.

use std::collections::HashMap;

use aisle_features::{build_sequences, Interaction, Sequences};
use aisle_store::DatasetMeta;

use crate::{DataRange, Result};

/// A store's sequences with the data set they came from.
pub struct StoreData {
    pub seqs: Sequences,
    pub protocol: aisle_core::protocol::Protocol,
    /// The data set's name (`unknown` for a store nothing was ingested into
    /// by `aisle ingest`).
    pub dataset: String,
    pub meta: Option<DatasetMeta>,
}

/// Strings numbered in order of first appearance.
#[derive(Default)]
struct Names {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
}

/// The data set name of an optional meta record (`unknown` without one).
fn dataset_name(meta: Option<&DatasetMeta>) -> String {
    meta.map_or_else(|| "unknown".to_string(), |m| m.name.clone())
}

impl StoreData {
    /// The name of the data set in the store at `url`, without reading its
    /// events (what [`StoreData::load`] puts in `dataset`).
    pub fn dataset_of(url: &str) -> Result<String> {
        let store = aisle_store::open_existing(url)?;
        Ok(dataset_name(DatasetMeta::read(store.as_ref())?.as_ref()))
    }

    /// Reads every event of the store at `url` into per-user sequences.
    pub fn load(url: &str) -> Result<StoreData> {
        let store = aisle_store::open_existing(url)?;
        let meta = DatasetMeta::read(store.as_ref())?;
        let protocol = meta
            .as_ref()
            .map(|m| m.protocol.clone())
            .unwrap_or_default();
        // An alias's events are its user's (identity links).
        let owners: HashMap<String, String> = store.aliases()?.into_iter().collect();
        // Each event as 32 bytes (ids interned), not as the store's row
        // with its strings (~340 bytes at 10^7 events, BENCHMARKS.md §16).
        let (mut users, mut items) = (Names::default(), Names::default());
        let mut rows: Vec<(u32, u32, i64, i64, aisle_core::EventType)> = Vec::new();
        store.scan_events(&mut |e| {
            let user = owners.get(&e.event.user).unwrap_or(&e.event.user);
            rows.push((
                users.id(user),
                items.id(&e.event.item),
                e.event.ts,
                e.seq,
                e.event.event_type,
            ));
        })?;
        let seqs = build_sequences(
            rows.iter().map(|&(u, i, ts, seq, event_type)| Interaction {
                user: &users.names[u as usize],
                item: &items.names[i as usize],
                ts,
                seq,
                event_type,
            }),
            &protocol,
        );
        Ok(StoreData {
            seqs,
            protocol,
            dataset: dataset_name(meta.as_ref()),
            meta,
        })
    }

    /// The first and last event time of the sequences.
    pub fn time_range(&self) -> DataRange {
        let mut r = (i64::MAX, i64::MIN);
        for &t in self.seqs.times.iter().flatten() {
            r = (r.0.min(t), r.1.max(t));
        }
        if r.0 > r.1 {
            DataRange { from: 0, to: 0 }
        } else {
            DataRange { from: r.0, to: r.1 }
        }
    }
}

/// Category and price bucket of each item of `seqs` from the store's catalog
/// (categories numbered 1.. in sorted order, prices in 10 quantile buckets
/// 1..=10; 0 = unknown), or None when the catalog has neither.
pub fn side_info(url: &str, seqs: &Sequences) -> Result<Option<aisle_seq::SideInfo>> {
    let s = aisle_store::open_existing(url)?;
    let catalog: std::collections::HashMap<String, aisle_core::CatalogItem> = s
        .catalog()?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let mut cats: Vec<&str> = catalog
        .values()
        .filter_map(|c| c.category.as_deref())
        .collect();
    cats.sort_unstable();
    cats.dedup();
    let mut prices: Vec<f64> = catalog
        .values()
        .filter_map(|c| c.price)
        .filter(|p| p.is_finite() && *p > 0.0)
        .collect();
    prices.sort_by(f64::total_cmp);
    if cats.is_empty() && prices.is_empty() {
        return Ok(None);
    }
    let n_buckets = if prices.is_empty() { 0 } else { 10 };
    let bucket = |p: f64| -> u32 {
        let rank = prices.partition_point(|&x| x < p);
        (rank * n_buckets / prices.len()).min(n_buckets - 1) as u32 + 1
    };
    let (mut category, mut price_bucket) = (Vec::new(), Vec::new());
    for id in &seqs.items {
        let item = catalog.get(id);
        category.push(
            item.and_then(|c| c.category.as_deref())
                .and_then(|c| cats.binary_search(&c).ok())
                .map_or(0, |i| i as u32 + 1),
        );
        price_bucket.push(
            item.and_then(|c| c.price)
                .filter(|p| p.is_finite() && *p > 0.0)
                .map_or(0, bucket),
        );
    }
    Ok(Some(aisle_seq::SideInfo {
        category,
        n_categories: cats.len(),
        price_bucket,
        n_buckets,
    }))
}
