//! `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::recs::serving_model;
use super::types::{Health, Ready};
use crate::App;

pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready (200) while the server can answer; `status` is `degraded` with a
/// `reason` when the promoted model was refused and popularity serves, or
/// when the change feed is down (the replica serves its own view).
pub(super) async fn readyz(State(app): State<Arc<App>>) -> Json<Ready> {
    // (A Redis not asked yet is asked now, so that a fresh replica's
    // first readiness check says whether it answers.)
    let redis = match &app.shared {
        Some(s) => {
            if !s.redis.up() {
                s.redis.ping().await;
            }
            Some(if s.redis.up() { "connected" } else { "down" })
        }
        None => None,
    };
    let problems: Vec<String> = [
        app.degraded(),
        app.feed.problem(),
        app.shared.as_ref().and_then(|s| s.redis.problem()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let reason = (!problems.is_empty()).then(|| problems.join("; "));
    Json(Ready {
        ready: true,
        status: if reason.is_some() { "degraded" } else { "ok" },
        role: app.cfg.role,
        model: serving_model(&app),
        redis,
        reason,
    })
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let s = app.current();
    let events = app.live.read().unwrap_or_else(|e| e.into_inner()).events;
    let mut text = app.metrics.render(&s.name, &s.version, events);
    app.jobs.render_metrics(&mut text);
    {
        use std::fmt::Write;
        let (evicted, refused) = app.conns.shed();
        let _ = writeln!(text, "# TYPE aisle_connections_open gauge");
        let _ = writeln!(text, "aisle_connections_open {}", app.conns.open());
        let _ = writeln!(text, "# TYPE aisle_connections_shed_total counter");
        let _ = writeln!(
            text,
            "aisle_connections_shed_total{{reason=\"evicted_idle\"}} {evicted}"
        );
        let _ = writeln!(
            text,
            "aisle_connections_shed_total{{reason=\"refused_all_busy\"}} {refused}"
        );
        if app.feed.enabled.load(std::sync::atomic::Ordering::Relaxed) {
            let f = &app.feed;
            let get =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(text, "# TYPE aisle_feed_connected gauge");
            let _ = writeln!(
                text,
                "aisle_feed_connected {}",
                u8::from(f.connected.load(std::sync::atomic::Ordering::Relaxed))
            );
            let _ = writeln!(text, "# TYPE aisle_feed_notifications_total counter");
            let _ = writeln!(
                text,
                "aisle_feed_notifications_total {}",
                get(&f.notifications)
            );
            let _ = writeln!(text, "# TYPE aisle_feed_events_applied_total counter");
            let _ = writeln!(text, "aisle_feed_events_applied_total {}", get(&f.applied));
        }
        if let Some(s) = &app.shared {
            crate::shared::render_metrics(s, &mut text);
        }
        let _ = writeln!(text, "# TYPE aisle_ready gauge");
        let _ = writeln!(
            text,
            "aisle_ready{{status=\"{}\"}} 1",
            if app.degraded().is_some() {
                "degraded"
            } else {
                "ok"
            }
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
