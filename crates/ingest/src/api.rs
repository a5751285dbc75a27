//! Events as clients send them (`aisle append` lines, `POST /v1/events`):
//! one JSON object per event, validated into an [`Event`].

use aisle_core::hash::hash_fields;
use aisle_core::{time, Event, EventType};
use serde::Deserialize;

/// One event from a client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiEvent {
    pub user_id: serde_json::Value,
    pub item_id: serde_json::Value,
    #[serde(alias = "event_type")]
    pub r#type: String,
    /// Unix seconds or an RFC 3339 string; server time when absent.
    pub timestamp: Option<serde_json::Value>,
    /// Client id for idempotency; without it every accepted event is new.
    pub event_id: Option<String>,
    pub quantity: Option<f64>,
    pub price: Option<f64>,
    pub session_id: Option<String>,
    /// The `request_id` of the list the event came from (a click, cart or
    /// purchase is joined to it).
    pub request_id: Option<String>,
    /// The item's 1-based position in that list.
    pub position: Option<u32>,
    /// A purchase's value (its GMV); price × quantity when absent.
    pub value: Option<f64>,
}

/// A non-empty string (trimmed) or a number, as an id: at most 256 bytes,
/// no control characters (see [`aisle_core::id_problem`]).
pub fn id_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if aisle_core::id_problem(s.trim()).is_none() => {
            Some(s.trim().to_string())
        }
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Validates a client event. `raw`, `counter` and `nonce` make the key of an
/// event without `event_id` unique (no idempotency for those).
pub fn to_event(
    l: ApiEvent,
    raw: &[u8],
    now: i64,
    counter: u64,
    nonce: u64,
) -> Result<Event, String> {
    let user = id_string(&l.user_id).ok_or(
        "user_id must be a non-empty string (at most 256 bytes, no control characters) or a number",
    )?;
    let item = id_string(&l.item_id).ok_or(
        "item_id must be a non-empty string (at most 256 bytes, no control characters) or a number",
    )?;
    if let Some(why) = l.session_id.as_deref().and_then(aisle_core::id_problem) {
        return Err(format!("session_id {why}"));
    }
    if let Some(why) = l.event_id.as_deref().and_then(aisle_core::id_problem) {
        return Err(format!("event_id {why}"));
    }
    let event_type =
        EventType::parse(&l.r#type).ok_or_else(|| format!("unknown event type {:?}", l.r#type))?;
    let ts = match &l.timestamp {
        None | Some(serde_json::Value::Null) => now,
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().ok_or("timestamp must be whole Unix seconds")?
        }
        Some(serde_json::Value::String(s)) => {
            time::parse_datetime(s).ok_or_else(|| format!("timestamp {s:?} is not RFC 3339"))?
        }
        Some(_) => return Err("timestamp must be Unix seconds or an RFC 3339 string".into()),
    };
    if ts > now + 86_400 {
        return Err("timestamp is more than a day in the future".into());
    }
    if !(aisle_core::MIN_TS..=aisle_core::MAX_TS).contains(&ts) {
        return Err("timestamp must be between 1970-01-01 and 2100-01-01".into());
    }
    if l.quantity.is_some_and(|q| !q.is_finite() || q <= 0.0) {
        return Err("quantity must be positive".into());
    }
    if l.price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err("price must be a non-negative number".into());
    }
    if l.value.is_some_and(|v| !v.is_finite() || v < 0.0) {
        return Err("value must be a non-negative number".into());
    }
    if l.position == Some(0) {
        return Err("position is 1-based: the first item of a list is 1".into());
    }
    if let Some(why) = l.request_id.as_deref().and_then(aisle_core::id_problem) {
        return Err(format!("request_id {why}"));
    }
    let key = match &l.event_id {
        Some(id) => hash_fields([b"event_id".as_slice(), id.as_bytes()]),
        None => hash_fields([
            b"anon".as_slice(),
            raw,
            &now.to_le_bytes(),
            &counter.to_le_bytes(),
            &nonce.to_le_bytes(),
        ]),
    };
    Ok(Event {
        key,
        user,
        item,
        ts,
        event_type,
        source_type: l.r#type,
        quantity: l.quantity,
        price: l.price,
        session: l.session_id,
        value: l.value,
    })
}
