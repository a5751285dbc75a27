//! `POST /v1/events`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;

use super::error::{body_as, ApiError, ApiResult, Code};
use super::types::EventsAccepted;
use super::write;
use crate::online::parse_request_id;
use crate::state::Live;
use crate::App;
use aisle_core::{Event, EventType};
use aisle_store::online::{Attribution, Outcome, OutcomeKind};

/// The outcome an event is, if any: a click (or a view that names the
/// list it came from), an add-to-cart or a purchase. A purchase's value is
/// its `value`, else price × quantity, else the catalog price × quantity.
fn outcome(
    live: &Live,
    e: &Event,
    (request_id, position): (Option<String>, Option<u32>),
) -> Option<Outcome> {
    let kind = match e.event_type {
        EventType::Click => OutcomeKind::Click,
        EventType::View if request_id.is_some() => OutcomeKind::Click,
        EventType::AddToCart => OutcomeKind::Cart,
        EventType::Purchase => OutcomeKind::Purchase,
        _ => return None,
    };
    let quantity = e.quantity.unwrap_or(1.0);
    let value = match kind {
        OutcomeKind::Purchase => e.value.unwrap_or_else(|| {
            let price = e
                .price
                .or_else(|| live.index.get(&e.item).and_then(|&i| live.price(i)));
            price.map_or(0.0, |p| p * quantity)
        }),
        _ => 0.0,
    };
    Some(Outcome {
        key: e.key,
        ts_ms: e.ts.saturating_mul(1000),
        user: e.user.clone(),
        item: e.item.clone(),
        kind,
        value,
        quantity: e.quantity,
        request_id: request_id.as_deref().and_then(parse_request_id),
        request_id_given: request_id.is_some(),
        position,
    })
}

pub(super) async fn post_events(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    // Any JSON: a single event or a batch, told apart below.
    let v: Value = body_as(body, Code::MalformedJson)?;
    let list: Vec<Value> = match v {
        Value::Object(mut o) if o.contains_key("events") => {
            if o.len() != 1 {
                return Err(ApiError::new(
                    Code::BadEvents,
                    "a batch is {\"events\": [...]} and nothing else",
                ));
            }
            match o.remove("events") {
                Some(Value::Array(a)) => a,
                _ => return Err(ApiError::new(Code::BadEvents, "`events` must be an array")),
            }
        }
        Value::Object(o) => vec![Value::Object(o)],
        _ => {
            return Err(ApiError::new(
                Code::BadEvents,
                "expected an event object or {\"events\": [...]}",
            ))
        }
    };
    if list.is_empty() {
        return Err(ApiError::new(Code::BadEvents, "no events"));
    }
    if list.len() > app.cfg.max_batch {
        return Err(ApiError::new(
            Code::BatchTooLarge,
            format!(
                "{} events; at most {} per request",
                list.len(),
                app.cfg.max_batch
            ),
        ));
    }
    let now = aisle_core::time::unix_now();
    let mut events = Vec::with_capacity(list.len());
    // Each event's list, as the client named it: (request_id, position).
    let mut origins = Vec::with_capacity(list.len());
    for (i, ev) in list.into_iter().enumerate() {
        let raw = ev.to_string();
        let parsed: aisle_ingest::api::ApiEvent = serde_json::from_value(ev)
            .map_err(|e| ApiError::new(Code::BadEvent, format!("events[{i}]: {e}")))?;
        let counter = app.counter.fetch_add(1, Ordering::Relaxed);
        origins.push((parsed.request_id.clone(), parsed.position));
        events.push(
            aisle_ingest::api::to_event(parsed, raw.as_bytes(), now, counter, app.nonce)
                .map_err(|m| ApiError::new(Code::BadEvent, format!("events[{i}]: {m}")))?,
        );
    }
    let n = events.len();
    // One durable transaction, then the in-memory view (see `write`).
    let app2 = app.clone();
    let (inserted, outcomes) = write(
        &app,
        move |store| Ok((store.append_detailed(&events)?, events)),
        move |live, (fresh, events)| {
            let mut k = 0;
            let mut outcomes = Vec::new();
            // Over a shared store `write` has applied them already, in the
            // store's order (see `feed`).
            let shared = app2.feed.enabled.load(Ordering::Relaxed);
            for ((e, f), origin) in events.iter().zip(&fresh).zip(origins) {
                if *f {
                    if let Some(o) = outcome(live, e, origin) {
                        outcomes.push(o);
                    }
                    if !shared {
                        app2.absorb(live, e);
                    }
                    k += 1;
                }
            }
            (k, outcomes)
        },
    )
    .await?;
    // Joined to their lists and committed before the answer.
    let a = app.clone();
    let joined = tokio::task::spawn_blocking(move || a.online.attribute(outcomes))
        .await
        .map_err(ApiError::task)?;
    let (mut attributed, mut unattributed) = (0, 0);
    match joined {
        Ok(how) => {
            for h in how {
                match h {
                    Attribution::Request { .. } | Attribution::Window { .. } => attributed += 1,
                    Attribution::UnknownRequest | Attribution::None => unattributed += 1,
                    Attribution::Duplicate => {}
                }
            }
        }
        // The events are stored (and live); only their join is missing.
        Err(e) => tracing::error!(error = %e, "events stored but not joined to their lists"),
    }
    app.metrics.count_events(inserted as u64);
    Ok(Json(EventsAccepted {
        accepted: n,
        inserted,
        duplicates: n - inserted,
        attributed,
        unattributed,
    })
    .into_response())
}
