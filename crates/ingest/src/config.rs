//! The dataset config: how to read a file (format, columns), how to clean it,
//! and the sequence protocol its benchmark uses. Presets are the same TOML,
//! embedded in the binary (`aisle presets show NAME` prints one to start from).

use serde::{Deserialize, Serialize};

use crate::{IngestError, Result};

/// File formats the readers understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Delimited text (RFC 4180 quoting); `delimiter` picks the separator.
    Csv,
    /// Tab-separated (no quoting).
    Tsv,
    /// One JSON object per line; field names are keys.
    Jsonl,
    /// One user per line: `user item item ...` (whitespace-separated), in order.
    Seqlines,
}

/// How the time column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Integer Unix seconds.
    #[default]
    Unix,
    /// Integer Unix milliseconds.
    UnixMs,
    /// `YYYY-MM-DD HH:MM[:SS]` or RFC 3339.
    Datetime,
    /// `YYYY-MM-DD`.
    Date,
    /// An integer position: only the order is known.
    Order,
}

/// Which source column holds each logical field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    pub user: Option<String>,
    pub item: Option<String>,
    pub time: Option<String>,
    #[serde(default)]
    pub time_format: TimeFormat,
    /// Milliseconds added to `time` (e.g. an offset within a session).
    pub time_offset_ms: Option<String>,
    pub event_type: Option<String>,
    pub quantity: Option<String>,
    pub price: Option<String>,
    pub session: Option<String>,
    pub value: Option<String>,
    /// Catalog fields carried on event rows (used when `catalog.from_events`).
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
}

/// How to obtain the catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Build catalog entries from the event rows (title, category, median price).
    #[serde(default)]
    pub from_events: bool,
    /// Format of a separate catalog file given with `--catalog`.
    #[serde(default = "default_catalog_format")]
    pub format: Format,
    #[serde(default = "default_comma")]
    pub delimiter: String,
    #[serde(default = "default_id")]
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub price: Option<String>,
    pub in_stock: Option<String>,
}

fn default_catalog_format() -> Format {
    Format::Csv
}
fn default_comma() -> String {
    ",".into()
}
fn default_id() -> String {
    "item_id".into()
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            from_events: false,
            format: Format::Csv,
            delimiter: ",".into(),
            id: "item_id".into(),
            title: Some("title".into()),
            description: Some("description".into()),
            category: Some("category".into()),
            price: Some("price".into()),
            in_stock: Some("in_stock".into()),
        }
    }
}

/// Cleaning rules. Row-level validation (parse errors, missing ids, bad
/// timestamps, non-positive quantities) always runs; the rules here are the
/// optional ones, each counted under its own reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cleaning {
    /// Fields larger than this many bytes quarantine the row (`field_too_large`).
    #[serde(default = "default_max_field")]
    pub max_field_bytes: usize,
    /// Lines longer than this many bytes are quarantined (`line_too_long`)
    /// with a 256-byte excerpt, without ever being held whole in memory.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// A gzip input that expands more than this many times (checked after
    /// its first 64 MiB) is refused as a compression bomb; 0 turns the check
    /// off. Real data expands 2 to 10 times.
    #[serde(default = "default_max_ratio")]
    pub max_decompression_ratio: u64,
    /// Quarantine the 2nd and later copies of an identical row (`exact_duplicate`).
    #[serde(default)]
    pub dedupe_exact: bool,
    /// Quarantine an event equal (user, item, type) to the same user's previous
    /// accepted event within this many seconds (`consecutive_duplicate`).
    #[serde(default)]
    pub consecutive_duplicate_window_s: Option<i64>,
    /// Item codes that are not products (fees, postage, adjustments).
    #[serde(default)]
    pub non_product_codes: Vec<String>,
    /// Item code prefixes that are not products.
    #[serde(default)]
    pub non_product_prefixes: Vec<String>,
    /// Quarantine events on non-product codes (`non_product`).
    #[serde(default)]
    pub drop_non_products: bool,
    /// Quarantine every event of a user who exceeds this many events in any
    /// 60-second window (`bot_user`). Refused for order-only data.
    #[serde(default)]
    pub bot_max_events_per_minute: Option<u32>,
    /// Quarantine events whose item is not in the catalog (`unknown_item`),
    /// when a catalog file is given.
    #[serde(default)]
    pub require_catalog_item: bool,
    /// Keep only users and items with at least this many accepted events,
    /// iterated to a fixed point (`kcore`). 0 = off.
    #[serde(default)]
    pub kcore: u32,
    /// Items to drop by a catalog attribute: column name -> values, e.g.
    /// `exclude = { department = ["FUEL"] }`. With a catalog file the names
    /// are its columns (the matching catalog rows and every event on their
    /// items are quarantined `excluded_item`); without one, with
    /// `catalog.from_events`, `category` and `title` match the event rows'
    /// own fields. Values match exactly (after trimming).
    #[serde(default)]
    pub exclude: std::collections::BTreeMap<String, Vec<String>>,
    /// Earliest plausible time (`bad_timestamp` before it); RFC 3339 or date.
    #[serde(default = "default_min_time")]
    pub min_time: String,
    /// How far past the ingest time an event may lie (`bad_timestamp` after it).
    #[serde(default = "default_future_slack")]
    pub future_slack_s: i64,
}

fn default_max_field() -> usize {
    64 * 1024
}
fn default_max_line() -> usize {
    1 << 20
}
fn default_max_ratio() -> u64 {
    100
}
fn default_min_time() -> String {
    "1990-01-01".into()
}
fn default_future_slack() -> i64 {
    86_400
}

impl Default for Cleaning {
    fn default() -> Self {
        Cleaning {
            max_field_bytes: default_max_field(),
            max_line_bytes: default_max_line(),
            max_decompression_ratio: default_max_ratio(),
            dedupe_exact: false,
            consecutive_duplicate_window_s: None,
            non_product_codes: Vec::new(),
            non_product_prefixes: Vec::new(),
            drop_non_products: false,
            bot_max_events_per_minute: None,
            require_catalog_item: false,
            kcore: 0,
            exclude: Default::default(),
            min_time: default_min_time(),
            future_slack_s: default_future_slack(),
        }
    }
}

pub use aisle_core::protocol::{Protocol, TieOrder, UserOrder};

/// A whole dataset config (a preset or a user's TOML file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub format: Format,
    /// Field separator for `csv` (one byte).
    #[serde(default = "default_comma")]
    pub delimiter: String,
    /// Whether the first row names the columns.
    #[serde(default = "yes")]
    pub header: bool,
    /// Column names when there is no header.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Type of every event when there is no type column (or the cell is empty).
    pub default_event_type: Option<aisle_core::EventType>,
    /// Source type recorded when there is no type column.
    pub source_type: Option<String>,
    #[serde(default)]
    pub fields: Fields,
    /// Extra source value → normalised type mappings (beyond the built-in synonyms).
    #[serde(default)]
    pub event_types: std::collections::BTreeMap<String, aisle_core::EventType>,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub cleaning: Cleaning,
    #[serde(default)]
    pub protocol: Protocol,
}

fn yes() -> bool {
    true
}

const PRESETS: &[(&str, &str)] = &[
    (
        "online-retail",
        include_str!("../presets/online-retail.toml"),
    ),
    (
        "taobao-userbehavior-head",
        include_str!("../presets/taobao-userbehavior-head.toml"),
    ),
    (
        "amazon-5core-seq",
        include_str!("../presets/amazon-5core-seq.toml"),
    ),
    ("ml-1m", include_str!("../presets/ml-1m.toml")),
    ("ml-100k", include_str!("../presets/ml-100k.toml")),
    (
        "diginetica-sample",
        include_str!("../presets/diginetica-sample.toml"),
    ),
    ("demo", include_str!("../presets/demo.toml")),
];

/// Every key of a dataset config with its type, allowed values and
/// default, as an annotated TOML that is itself a valid config.
pub const REFERENCE: &str = include_str!("../presets/REFERENCE.toml");

/// Names of the built-in presets.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// The TOML text of a preset.
pub fn preset_toml(name: &str) -> Result<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| IngestError::UnknownPreset {
            name: name.to_string(),
            known: preset_names().join(", "),
        })
}

impl DatasetConfig {
    /// A built-in preset.
    pub fn preset(name: &str) -> Result<DatasetConfig> {
        DatasetConfig::from_toml(preset_toml(name)?)
    }

    /// Parses and validates a TOML config (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<DatasetConfig> {
        let cfg: DatasetConfig =
            toml::from_str(text).map_err(|e| IngestError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(IngestError::Config(m));
        if self.format == Format::Csv && self.delimiter.len() != 1 {
            return bad(format!(
                "delimiter must be a single byte, got {:?}",
                self.delimiter
            ));
        }
        if self.format != Format::Seqlines {
            if self.fields.user.is_none() || self.fields.item.is_none() {
                return bad("fields.user and fields.item are required".into());
            }
            if self.fields.time.is_none() {
                return bad("fields.time is required (every row needs a time; with only an order, name the position column and set time_format = \"order\")".into());
            }
            if !self.header && self.columns.is_empty() && self.format != Format::Jsonl {
                return bad("header = false needs `columns` (the column names)".into());
            }
        }
        if self.fields.event_type.is_none() && self.default_event_type.is_none() {
            return bad("set fields.event_type or default_event_type".into());
        }
        let order = self.fields.time_format == TimeFormat::Order;
        if order && self.fields.time_offset_ms.is_some() {
            return bad("fields.time_offset_ms cannot act with time_format = \"order\" (a position has no milliseconds): remove one".into());
        }
        if order && self.cleaning.bot_max_events_per_minute.is_some() {
            return bad("cleaning.bot_max_events_per_minute needs real time; time_format = \"order\" has only positions".into());
        }
        if !self.catalog.from_events {
            let f = &self.fields;
            for (key, set) in [
                ("title", &f.title),
                ("description", &f.description),
                ("category", &f.category),
            ] {
                if set.is_some() {
                    return bad(format!("fields.{key} is read only with catalog.from_events = true: set it, or map the column under [catalog] for a catalog file"));
                }
            }
        }
        if let Some((k, _)) = self.cleaning.exclude.iter().find(|(_, v)| v.is_empty()) {
            return bad(format!("cleaning.exclude.{k} lists no values"));
        }
        if aisle_core::time::parse_datetime(&self.cleaning.min_time).is_none() {
            return bad(format!(
                "cleaning.min_time {:?} is not a date",
                self.cleaning.min_time
            ));
        }
        Ok(())
    }

    /// The time kind events of this data set carry.
    pub fn time_kind(&self) -> aisle_core::TimeKind {
        match self.fields.time_format {
            TimeFormat::Order => aisle_core::TimeKind::Order,
            _ => aisle_core::TimeKind::Unix,
        }
    }

    /// Whether an item code is a non-product code.
    pub fn is_non_product(&self, item: &str) -> bool {
        self.cleaning.non_product_codes.iter().any(|c| c == item)
            || self
                .cleaning
                .non_product_prefixes
                .iter()
                .any(|p| item.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses() {
        for name in preset_names() {
            let cfg = DatasetConfig::preset(name).unwrap();
            assert_eq!(cfg.name, name);
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = format!("{}\nspeling = 1\n", preset_toml("ml-1m").unwrap());
        let err = DatasetConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("speling"), "{err}");
        let text = preset_toml("ml-1m").unwrap().replace(
            "user_order = \"numeric\"",
            "user_order = \"numeric\"\nbogus = true",
        );
        let err = DatasetConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    /// Every key path of a TOML value (tables recursed, except the maps
    /// whose keys are data: event_types and cleaning.exclude).
    fn key_paths(v: &toml::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = format!("{prefix}{k}");
                out.insert(path.clone());
                if !matches!(path.as_str(), "event_types" | "cleaning.exclude") {
                    key_paths(v, &format!("{path}."), out);
                }
            }
        }
    }

    /// A config with every field set: listing each field by name (no
    /// `..Default::default()`) makes a new field fail to compile here until
    /// it is added, and then the reference test below until it is documented.
    fn every_key_set() -> DatasetConfig {
        let s = |x: &str| Some(x.to_string());
        DatasetConfig {
            name: "x".into(),
            description: "x".into(),
            format: Format::Csv,
            delimiter: ",".into(),
            header: true,
            columns: vec!["a".into()],
            default_event_type: Some(aisle_core::EventType::View),
            source_type: s("x"),
            fields: Fields {
                user: s("u"),
                item: s("i"),
                time: s("t"),
                time_format: TimeFormat::Unix,
                time_offset_ms: s("o"),
                event_type: s("e"),
                quantity: s("q"),
                price: s("p"),
                session: s("s"),
                value: s("v"),
                title: s("t"),
                description: s("d"),
                category: s("c"),
            },
            event_types: [("x".to_string(), aisle_core::EventType::View)].into(),
            catalog: CatalogConfig {
                from_events: true,
                format: Format::Csv,
                delimiter: ",".into(),
                id: "id".into(),
                title: s("t"),
                description: s("d"),
                category: s("c"),
                price: s("p"),
                in_stock: s("s"),
            },
            cleaning: Cleaning {
                max_field_bytes: 1,
                max_line_bytes: 1,
                max_decompression_ratio: 1,
                dedupe_exact: true,
                consecutive_duplicate_window_s: Some(1),
                non_product_codes: vec!["x".into()],
                non_product_prefixes: vec!["x".into()],
                drop_non_products: true,
                bot_max_events_per_minute: Some(1),
                require_catalog_item: true,
                kcore: 1,
                exclude: [("c".to_string(), vec!["x".to_string()])].into(),
                min_time: "1990-01-01".into(),
                future_slack_s: 1,
            },
            protocol: Protocol {
                interaction_types: vec![aisle_core::EventType::View],
                collapse_consecutive: true,
                min_sequence_len: 1,
                user_order: UserOrder::Numeric,
                tie_order: TieOrder::Item,
            },
        }
    }

    #[test]
    fn the_reference_is_a_valid_config_that_names_every_key() {
        DatasetConfig::from_toml(REFERENCE).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        key_paths(&toml::from_str(REFERENCE).unwrap(), "", &mut documented);
        let mut all = std::collections::BTreeSet::new();
        let every = toml::Value::try_from(every_key_set()).unwrap();
        key_paths(&every, "", &mut all);
        let missing: Vec<_> = all.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "keys missing from REFERENCE.toml: {missing:?}"
        );
        // Each key carries a comment: the first line above its run of
        // key lines is a comment (one comment may describe a group).
        let lines: Vec<&str> = REFERENCE.lines().collect();
        let is_key = |l: &str| !l.starts_with('#') && l.contains(" = ");
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| is_key(l)) {
            assert!(!line.starts_with(' '), "{line}");
            let above = lines[..i].iter().rev().find(|l| !is_key(l));
            assert!(
                above.is_some_and(|l| l.starts_with('#')),
                "no comment above {line}"
            );
        }
    }

    fn with(preset: &str, from: &str, to: &str) -> String {
        let text = preset_toml(preset).unwrap();
        assert!(text.contains(from), "{from}");
        text.replace(from, to)
    }

    #[test]
    fn a_time_offset_on_order_only_data_is_refused() {
        let text = with(
            "ml-1m",
            "time_format = \"order\"",
            "time_format = \"order\"\ntime_offset_ms = \"x\"",
        );
        let err = DatasetConfig::from_toml(&text).unwrap_err().to_string();
        assert!(
            err.contains("time_offset_ms") && err.contains("order"),
            "{err}"
        );
    }

    #[test]
    fn a_bot_cap_on_order_only_data_is_refused() {
        let text = format!(
            "{}\n[cleaning]\nbot_max_events_per_minute = 10\n",
            preset_toml("ml-1m").unwrap()
        );
        let err = DatasetConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("bot_max_events_per_minute"), "{err}");
    }

    #[test]
    fn event_row_catalog_fields_without_from_events_are_refused() {
        let text = with("online-retail", "from_events = true", "from_events = false");
        let err = DatasetConfig::from_toml(&text).unwrap_err().to_string();
        assert!(
            err.contains("fields.title") && err.contains("from_events"),
            "{err}"
        );
    }

    #[test]
    fn a_config_without_a_time_column_is_refused() {
        let text = with("ml-100k", "time = \"timestamp\"", "");
        let err = DatasetConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("fields.time"), "{err}");
    }

    #[test]
    fn unknown_preset_lists_known_ones() {
        let err = DatasetConfig::preset("nope").unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("online-retail"),
            "{err}"
        );
    }
}
