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
use crate::App;

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
    for (i, ev) in list.into_iter().enumerate() {
        let raw = ev.to_string();
        let parsed: aisle_ingest::api::ApiEvent = serde_json::from_value(ev)
            .map_err(|e| ApiError::new(Code::BadEvent, format!("events[{i}]: {e}")))?;
        let counter = app.counter.fetch_add(1, Ordering::Relaxed);
        events.push(
            aisle_ingest::api::to_event(parsed, raw.as_bytes(), now, counter, app.nonce)
                .map_err(|m| ApiError::new(Code::BadEvent, format!("events[{i}]: {m}")))?,
        );
    }
    let n = events.len();
    // One durable transaction, then the in-memory view (see `write`).
    let app2 = app.clone();
    let inserted = write(
        &app,
        move |store| Ok((store.append_detailed(&events)?, events)),
        move |live, (fresh, events)| {
            let mut k = 0;
            for (e, f) in events.iter().zip(&fresh) {
                if *f {
                    live.apply(e);
                    if let Some(p) = &app2.purchase {
                        let facts = live
                            .index
                            .get(&e.item)
                            .and_then(|&i| live.catalog[i as usize].as_ref())
                            .map(aisle_features::behaviour::ItemFacts::from)
                            .unwrap_or_default();
                        let seq = app2.counter.fetch_add(1, Ordering::Relaxed) as i64;
                        p.observe(e, seq, facts);
                    }
                    k += 1;
                }
            }
            k
        },
    )
    .await?;
    app.metrics
        .events_ingested
        .fetch_add(inserted as u64, Ordering::Relaxed);
    Ok(Json(EventsAccepted {
        accepted: n,
        inserted,
        duplicates: n - inserted,
    })
    .into_response())
}
