//! The accept loop: HTTP/1.1 connections with a header timeout (which also
//! bounds the idle wait between keep-alive requests), a connection cap, and
//! eviction of the idlest connection when the cap is reached, so idle or
//! slow clients cannot keep a health check out.
//!
//! (Body and request timeouts are in the API middleware, which reads a body
//! with a deadline before any handler runs.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// Connection limits.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Longest wait for a request's headers, from the connection's start or
    /// the end of the previous response (the idle timeout of keep-alive).
    pub header_timeout: Duration,
    /// Most open connections; at the cap, the idlest connection is closed to
    /// make room (or, when every one is busy, the new one is refused).
    pub max_connections: usize,
    /// After shutdown is asked, how long in-flight requests may take.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Half of the process's open-file limit (the store, the search index and
/// the logs need the rest), at most 10,000 and at least 64.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1024);
    (soft / 2).clamp(64, 10_000)
}

struct Slot {
    /// Requests in flight on this connection.
    busy: usize,
    /// When it last started or finished a request (or was accepted).
    last: Instant,
    close: Arc<Notify>,
}

/// The open connections.
#[derive(Default)]
pub struct Conns {
    slots: Mutex<HashMap<u64, Slot>>,
    next: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open(&self) -> usize {
        self.lock().len()
    }

    /// Connections closed to make room, and refused because all were busy.
    pub fn shed(&self) -> (u64, u64) {
        (
            self.evicted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    fn register(&self) -> (u64, Arc<Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        self.lock().insert(
            id,
            Slot {
                busy: 0,
                last: Instant::now(),
                close: close.clone(),
            },
        );
        (id, close)
    }

    fn begin(&self, id: u64) {
        if let Some(s) = self.lock().get_mut(&id) {
            s.busy += 1;
            s.last = Instant::now();
        }
    }

    fn end(&self, id: u64) {
        if let Some(s) = self.lock().get_mut(&id) {
            s.busy = s.busy.saturating_sub(1);
            s.last = Instant::now();
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Asks the connection idle for longest to close; false when every
    /// connection has a request in flight.
    fn evict_idlest(&self) -> bool {
        let mut slots = self.lock();
        let victim = slots
            .iter()
            .filter(|(_, s)| s.busy == 0)
            .min_by_key(|(_, s)| s.last)
            .map(|(&id, _)| id);
        match victim.and_then(|id| slots.remove(&id)) {
            Some(s) => {
                s.close.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets in-flight requests finish (up to the grace period) and
/// returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnLimits,
    conns: Arc<Conns>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors (or a transient error): make room and
                    // back off briefly instead of spinning.
                    tracing::warn!(error = %e, open = conns.open(), "accept failed");
                    conns.evict_idlest();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if conns.open() >= limits.max_connections && !conns.evict_idlest() {
            conns.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (id, close) = conns.register();
        let router = router.clone();
        let conns2 = conns.clone();
        let mut stop = stop_rx.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let c = conns2.clone();
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                c.begin(id);
                let c = c.clone();
                let fut = router.clone().oneshot(req.map(axum::body::Body::new));
                async move {
                    let r = fut.await;
                    c.end(id);
                    r
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            // Evicted: closed at once unless a response is being written (a
            // connection part-way through its headers would otherwise wait
            // for the header timeout).
            let mut evicted_at: Option<tokio::time::Instant> = None;
            let mut stopping = false;
            loop {
                let cutoff = evicted_at.map(|t| t + Duration::from_millis(500));
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, %peer, "connection ended");
                        }
                        break;
                    }
                    _ = close.notified(), if evicted_at.is_none() => {
                        evicted_at = Some(tokio::time::Instant::now());
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = async { tokio::time::sleep_until(cutoff.expect("set")).await }, if cutoff.is_some() => {
                        break;
                    }
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            conns2.remove(id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + limits.shutdown_grace;
    while conns.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
