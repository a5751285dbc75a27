//! `aisle-core`: the vocabulary every other Aisle crate speaks.
//!
//! Events, catalog items, event types, time handling and a small stable hash.
//! No I/O happens here, so everything is cheap to unit- and property-test.
//!
//! ```
//! use aisle_core::{EventType, time::parse_datetime};
//! assert_eq!(EventType::parse("add_to_cart"), Some(EventType::AddToCart));
//! assert_eq!(parse_datetime("1970-01-02 00:00:00"), Some(86_400));
//! ```

pub mod hash;
pub mod protocol;
pub mod rng;
pub mod tensors;
pub mod time;
pub mod vector;

use serde::{Deserialize, Serialize};

/// Longest user, item or session id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Earliest event time accepted anywhere: 1970-01-01T00:00:00Z.
pub const MIN_TS: i64 = 0;
/// Latest event time accepted anywhere: 2100-01-01T00:00:00Z.
pub const MAX_TS: i64 = 4_102_444_800;

/// Why `id` cannot be a user, item or session id: empty, longer than
/// [`MAX_ID_BYTES`], or holding a control character (TAB, LF, NUL... would
/// split the lines of exported sequences and logs). None when it can.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.len() > MAX_ID_BYTES {
        Some("is longer than 256 bytes")
    } else if id.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// The normalised vocabulary of behaviour events. The source value is kept
/// beside it in [`Event::source_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    Click,
    AddToCart,
    Favorite,
    Purchase,
    Cancel,
    Rating,
}

impl EventType {
    /// Every type, in code order.
    pub const ALL: [EventType; 7] = [
        EventType::View,
        EventType::Click,
        EventType::AddToCart,
        EventType::Favorite,
        EventType::Purchase,
        EventType::Cancel,
        EventType::Rating,
    ];

    /// The canonical snake_case name (also the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Click => "click",
            EventType::AddToCart => "add_to_cart",
            EventType::Favorite => "favorite",
            EventType::Purchase => "purchase",
            EventType::Cancel => "cancel",
            EventType::Rating => "rating",
        }
    }

    /// Parses a canonical name or a common synonym (case-insensitive).
    pub fn parse(s: &str) -> Option<EventType> {
        let lower = s.trim().to_ascii_lowercase();
        Some(match lower.as_str() {
            "view" | "pv" | "page_view" | "pageview" | "impression" | "detail" => EventType::View,
            "click" => EventType::Click,
            "add_to_cart" | "cart" | "addtocart" | "add-to-cart" | "basket" => EventType::AddToCart,
            "favorite" | "fav" | "favourite" | "like" | "wishlist" => EventType::Favorite,
            "purchase" | "buy" | "order" | "transaction" | "review" => EventType::Purchase,
            "cancel" | "return" | "refund" | "cancellation" => EventType::Cancel,
            "rating" | "rate" => EventType::Rating,
            _ => return None,
        })
    }

    /// A stable small integer code (stored on disk; never reorder).
    pub fn code(self) -> u8 {
        match self {
            EventType::View => 0,
            EventType::Click => 1,
            EventType::AddToCart => 2,
            EventType::Favorite => 3,
            EventType::Purchase => 4,
            EventType::Cancel => 5,
            EventType::Rating => 6,
        }
    }

    /// Inverse of [`EventType::code`].
    pub fn from_code(code: u8) -> Option<EventType> {
        EventType::ALL.get(code as usize).copied()
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the `ts` field of the events of a data set is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeKind {
    /// Unix seconds (UTC).
    #[default]
    Unix,
    /// Only an order is known (a position within the user's history).
    Order,
}

/// One behaviour event, cleaned and normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency key: equal keys are the same event (see [`hash`]).
    pub key: u64,
    pub user: String,
    pub item: String,
    /// Unix seconds, or a position when the data set has [`TimeKind::Order`].
    pub ts: i64,
    pub event_type: EventType,
    /// The value the source used for the type (e.g. `pv`, `buy`).
    pub source_type: String,
    pub quantity: Option<f64>,
    pub price: Option<f64>,
    pub session: Option<String>,
    /// A rating or other numeric value the source attached.
    pub value: Option<f64>,
}

/// An event as it comes back from a store: with its insertion sequence number,
/// which breaks ties between equal timestamps in file order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    #[serde(flatten)]
    pub event: Event,
}

/// A catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CatalogItem {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    pub in_stock: bool,
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn ids_are_non_empty_bounded_and_free_of_control_characters() {
        for ok in [
            "u1",
            "17850",
            "user@example.com",
            "商品-1",
            "a b",
            &"x".repeat(256),
        ] {
            assert_eq!(id_problem(ok), None, "{ok:?}");
        }
        for bad in [
            "",
            "nl\nuser",
            "tab\tuser",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
            &"x".repeat(257),
        ] {
            assert!(id_problem(bad).is_some(), "{bad:?}");
        }
    }
}
