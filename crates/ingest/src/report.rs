//! The data-quality report: where every input row went.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Why a row was quarantined. Each row gets exactly one reason: the first rule
/// (in the order of this enum) that it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The row could not be parsed at all (bad JSON, broken structure).
    Unparseable,
    /// The row has a different number of fields than the header.
    WrongColumnCount,
    /// The row is not valid UTF-8.
    InvalidUtf8,
    /// A field is larger than `cleaning.max_field_bytes`.
    FieldTooLarge,
    /// A line is longer than `cleaning.max_line_bytes` (kept as an excerpt).
    LineTooLong,
    MissingUser,
    MissingItem,
    /// A user, item or session id longer than 256 bytes or holding a
    /// control character (TAB, LF, NUL...).
    BadId,
    UnknownEventType,
    /// Missing or unparseable time, or outside the plausible range.
    BadTimestamp,
    /// A quantity, price or value that is not a number.
    BadNumber,
    /// Quantity <= 0 on an event that is not a cancellation.
    NonPositiveQuantity,
    NegativePrice,
    /// The 2nd or later copy of an identical row.
    ExactDuplicate,
    /// A fee, postage or adjustment code, not a product.
    NonProduct,
    /// The item is not in the catalog.
    UnknownItem,
    /// The item matches `cleaning.exclude` (a catalog attribute).
    ExcludedItem,
    /// Same user, item and type as the user's previous accepted event, within the window.
    ConsecutiveDuplicate,
    /// The user exceeded the events-per-minute cap (all their events).
    BotUser,
    /// The user or item fell below the k-core threshold.
    Kcore,
    /// Catalog file: a second row for the same item id (the last one wins).
    DuplicateId,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unparseable => "unparseable",
            Reason::WrongColumnCount => "wrong_column_count",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::FieldTooLarge => "field_too_large",
            Reason::LineTooLong => "line_too_long",
            Reason::MissingUser => "missing_user",
            Reason::MissingItem => "missing_item",
            Reason::BadId => "bad_id",
            Reason::UnknownEventType => "unknown_event_type",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::BadNumber => "bad_number",
            Reason::NonPositiveQuantity => "non_positive_quantity",
            Reason::NegativePrice => "negative_price",
            Reason::ExactDuplicate => "exact_duplicate",
            Reason::NonProduct => "non_product",
            Reason::UnknownItem => "unknown_item",
            Reason::ExcludedItem => "excluded_item",
            Reason::ConsecutiveDuplicate => "consecutive_duplicate",
            Reason::BotUser => "bot_user",
            Reason::Kcore => "kcore",
            Reason::DuplicateId => "duplicate_id",
        }
    }
}

/// Which input a quarantined row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFile {
    Events,
    Catalog,
}

/// A row that did not make it into the store, with everything needed to
/// repair and re-ingest it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuarantinedRow {
    pub file: SourceFile,
    /// 1-based line where the row starts.
    pub line: u64,
    pub reason: Reason,
    pub detail: std::borrow::Cow<'static, str>,
    /// The row's text (lossy UTF-8).
    pub raw: String,
    /// The exact bytes in hex, when the row is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub raw_hex: Option<String>,
}

/// Counts for a catalog file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CatalogReport {
    pub input: String,
    pub rows_read: u64,
    pub accepted: u64,
    pub quarantined: u64,
    pub by_reason: BTreeMap<String, u64>,
}

/// What the store did with the accepted events (filled in by the caller).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StoreOutcome {
    /// Events new to the store.
    pub inserted: u64,
    /// Accepted events the store already held (re-ingesting is idempotent).
    pub already_present: u64,
    pub catalog_upserted: u64,
    pub quarantine_file: Option<String>,
}

/// The data-quality report of one ingest. `rows_read == accepted + quarantined`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QualityReport {
    pub dataset: String,
    pub input: String,
    pub rows_read: u64,
    pub accepted: u64,
    pub quarantined: u64,
    /// Quarantine reason → rows.
    pub by_reason: BTreeMap<String, u64>,
    /// Accepted rows that were changed on the way in (e.g. `cancellation` for
    /// a cancelled line kept as a `cancel` event with a positive quantity).
    pub transformed: BTreeMap<String, u64>,
    pub accepted_by_type: BTreeMap<String, u64>,
    pub users: u64,
    pub items: u64,
    pub time_kind: String,
    pub time_min: Option<i64>,
    pub time_max: Option<i64>,
    pub catalog_items: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub catalog: Option<CatalogReport>,
    /// The cleaning rules in force.
    pub cleaning: serde_json::Value,
    pub elapsed_s: f64,
    pub rows_per_s: f64,
    /// Seconds per stage (`read_validate`, `store`, ...).
    #[serde(default)]
    pub timings: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub store: Option<StoreOutcome>,
}

impl QualityReport {
    /// Whether the counts add up (every row in exactly one place).
    pub fn balanced(&self) -> bool {
        self.rows_read == self.accepted + self.quarantined
            && self.by_reason.values().sum::<u64>() == self.quarantined
    }

    /// A readable multi-line summary for the terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let pct = |n: u64| {
            if self.rows_read == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.rows_read as f64
            }
        };
        let _ = writeln!(s, "Data-quality report: {} ({})", self.input, self.dataset);
        let _ = writeln!(s, "  rows read     {:>10}", self.rows_read);
        let _ = writeln!(
            s,
            "  accepted      {:>10}  ({:.1}%)",
            self.accepted,
            pct(self.accepted)
        );
        let _ = writeln!(
            s,
            "  quarantined   {:>10}  ({:.1}%)",
            self.quarantined,
            pct(self.quarantined)
        );
        let mut reasons: Vec<_> = self.by_reason.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (r, n) in reasons {
            let _ = writeln!(s, "    {:<24}{:>10}  ({:.2}%)", r, n, pct(*n));
        }
        for (t, n) in &self.transformed {
            let _ = writeln!(s, "  transformed: {t:<15}{n:>10}");
        }
        let types: Vec<String> = self
            .accepted_by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let _ = writeln!(s, "  accepted by type: {}", types.join(", "));
        let _ = writeln!(
            s,
            "  users {}  items {}  catalog items {}",
            self.users, self.items, self.catalog_items
        );
        if let (Some(a), Some(b)) = (self.time_min, self.time_max) {
            if self.time_kind == "unix" {
                let _ = writeln!(
                    s,
                    "  time span {} .. {}",
                    aisle_core::time::format_rfc3339(a),
                    aisle_core::time::format_rfc3339(b)
                );
            } else {
                let _ = writeln!(s, "  order only: positions {a} .. {b}");
            }
        }
        if let Some(c) = &self.catalog {
            let _ = writeln!(
                s,
                "  catalog file: {} rows, {} accepted, {} quarantined {:?}",
                c.rows_read, c.accepted, c.quarantined, c.by_reason
            );
        }
        if let Some(st) = &self.store {
            let _ = writeln!(
                s,
                "  store: {} new events, {} already present, {} catalog items upserted",
                st.inserted, st.already_present, st.catalog_upserted
            );
            if let Some(q) = &st.quarantine_file {
                let _ = writeln!(s, "  quarantined rows: {q}");
            }
        }
        let _ = writeln!(
            s,
            "  {:.2} s, {:.0} rows/s",
            self.elapsed_s, self.rows_per_s
        );
        let _ = write!(
            s,
            "  {}",
            if self.balanced() {
                "every row accounted for (read = accepted + quarantined)"
            } else {
                "COUNTS DO NOT ADD UP"
            }
        );
        s
    }
}

/// A report kept with a store (the store's `IngestLog` keeps its JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct SavedReport {
    /// Its name: `ingest-<unix seconds>-<pid or number>.json`.
    pub file: String,
    /// When the ingest finished (Unix seconds).
    pub at: i64,
    pub report: QualityReport,
}

impl SavedReport {
    /// A kept report read back; None when its JSON is not a report.
    pub fn parse(file: String, at: i64, json: &str) -> Option<SavedReport> {
        Some(SavedReport {
            report: serde_json::from_str(json).ok()?,
            file,
            at,
        })
    }
}

#[cfg(test)]
mod saved_tests {
    use super::*;

    #[test]
    fn a_kept_report_reads_back_and_anything_else_is_skipped() {
        let r = QualityReport {
            dataset: "demo".into(),
            rows_read: 10,
            accepted: 9,
            quarantined: 1,
            by_reason: [("bad_timestamp".to_string(), 1)].into(),
            ..Default::default()
        };
        let json = serde_json::to_string_pretty(&r).unwrap();
        let got = SavedReport::parse("ingest-5-1.json".into(), 5, &json).unwrap();
        assert_eq!(
            (got.file.as_str(), got.at, &got.report),
            ("ingest-5-1.json", 5, &r)
        );
        assert!(got.report.balanced());
        assert_eq!(SavedReport::parse("x".into(), 1, "{not json"), None);
    }
}
