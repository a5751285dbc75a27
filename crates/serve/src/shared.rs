//! Redis (`--redis redis://HOST`) for what replicas must count together:
//! the request rate limits and the failed-authentication limits, so that
//! a client's budget is one budget however many replicas it reaches.
//!
//! Each bucket is a GCRA ("generic cell rate algorithm", the token bucket
//! as one timestamp per client) in a Lua script that reads Redis's own
//! clock, so replicas' clocks never disagree about a bucket. Keys are
//! `aisle:{shop}:{what}:{client}` and expire when the bucket is full again.
//!
//! Redis is optional and never on the path to an answer: a call waits at
//! most [`TIMEOUT`], a lost connection is tried again at most once a second,
//! and meanwhile each replica counts with its own buckets (as without
//! Redis) and `/readyz` says so.
//!
//! Histories and popularity are not kept in Redis: the change feed
//! (PostgreSQL LISTEN/NOTIFY, see `feed`) already brings every
//! acknowledged event into every replica's view within milliseconds
//! (BENCHMARKS.md §13), and a second copy would be a second truth to
//! reconcile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

/// Longest wait for one Redis call (or a connection) before the replica
/// counts on its own.
pub const TIMEOUT: Duration = Duration::from_millis(250);

/// Least time between two attempts to connect.
const RETRY: Duration = Duration::from_secs(1);

const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
if ARGV[3] == '1' then
  local new = tat + interval
  redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000) + 1)
end
return 0
"#;

/// A Redis server shared by the replicas (one connection per process and
/// URL, multiplexed).
pub struct Redis {
    client: redis::Client,
    shown: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    last_attempt: Mutex<Option<Instant>>,
    connecting: AtomicBool,
    script: redis::Script,
    up: AtomicBool,
    error: Mutex<Option<String>>,
    /// Calls answered, and calls that failed or timed out.
    pub calls: AtomicU64,
    pub failures: AtomicU64,
}

/// `redis://user:secret@host` with the password hidden.
fn redact(url: &str) -> String {
    aisle_store::pg::redact(url)
}

impl Redis {
    /// The process's handle on the Redis at `url` (the same one for every
    /// shop); not connected yet. An unparseable URL is an error.
    pub fn get(url: &str) -> Result<Arc<Redis>, String> {
        static ALL: crate::ProcessShared<String, Redis> = crate::ProcessShared::new();
        ALL.get_or(url.to_string(), || Redis::new(url))
    }

    fn new(url: &str) -> Result<Redis, String> {
        let shown = redact(url);
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err(format!(
                "--redis {shown}: not a Redis URL (redis://HOST[:PORT][/DB])"
            ));
        }
        let client = redis::Client::open(url).map_err(|e| format!("--redis {shown}: {e}"))?;
        Ok(Redis {
            client,
            shown,
            conn: Mutex::new(None),
            last_attempt: Mutex::new(None),
            connecting: AtomicBool::new(false),
            script: redis::Script::new(GCRA),
            up: AtomicBool::new(false),
            error: Mutex::new(Some("not connected yet".into())),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// Whether the last call reached Redis.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Why Redis is not in use now (None while it is).
    pub fn problem(&self) -> Option<String> {
        if self.up() {
            return None;
        }
        let why = self
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "unreachable".into());
        Some(format!(
            "Redis at {} is not answering ({why}): rate limits count per replica until it returns",
            self.shown
        ))
    }

    fn failed(&self, why: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(url = %self.shown, error = %why, "Redis lost: counting rate limits per replica");
        }
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The connection, connecting when there is none (at most once per
    /// [`RETRY`]; None meanwhile).
    async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(c) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(c);
        }
        {
            let mut last = self.last_attempt.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < RETRY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        if self.connecting.swap(true, Ordering::AcqRel) {
            return None;
        }
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let made = tokio::time::timeout(
            TIMEOUT * 2,
            self.client
                .get_multiplexed_async_connection_with_config(&cfg),
        )
        .await;
        self.connecting.store(false, Ordering::Release);
        match made {
            Ok(Ok(c)) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(url = %self.shown, "Redis connected: rate limits are global");
                }
                *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                self.failed(e.to_string());
                None
            }
            Err(_) => {
                self.failed(format!(
                    "no connection within {} ms",
                    TIMEOUT.as_millis() * 2
                ));
                None
            }
        }
    }

    /// Asks Redis whether it answers (a PING), connecting if needed.
    pub async fn ping(&self) {
        let Some(mut c) = self.connection().await else {
            return;
        };
        let r =
            tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<String>(&mut c)).await;
        match r {
            Ok(Ok(_)) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.up.store(true, Ordering::Relaxed);
            }
            Ok(Err(e)) => self.failed(e.to_string()),
            Err(_) => self.failed(format!("no answer within {} ms", TIMEOUT.as_millis())),
        }
    }

    /// One GCRA bucket of `rate` per second and `burst`: `Some(Ok)` when
    /// `key` has a token (taken when `take`), `Some(Err(seconds))` until it
    /// will; None when Redis cannot say now.
    pub async fn bucket(
        &self,
        key: &str,
        rate: f64,
        burst: f64,
        take: bool,
    ) -> Option<Result<(), f64>> {
        let mut c = self.connection().await?;
        let interval = (1e6 / rate).round().max(1.0) as i64;
        let tolerance = ((burst.max(1.0) - 1.0) * 1e6 / rate).round() as i64;
        let mut call = self.script.prepare_invoke();
        call.key(key)
            .arg(interval)
            .arg(tolerance)
            .arg(if take { "1" } else { "0" });
        let r = tokio::time::timeout(TIMEOUT, call.invoke_async::<i64>(&mut c)).await;
        match r {
            Ok(Ok(wait_us)) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.up.store(true, Ordering::Relaxed);
                Some(if wait_us > 0 {
                    Err(wait_us as f64 / 1e6)
                } else {
                    Ok(())
                })
            }
            Ok(Err(e)) => {
                self.failed(e.to_string());
                None
            }
            Err(_) => {
                self.failed(format!("no answer within {} ms", TIMEOUT.as_millis()));
                None
            }
        }
    }
}

/// A shop's view of the shared Redis: its keys under `aisle:{shop}:`.
pub struct Shared {
    pub redis: Arc<Redis>,
    prefix: String,
}

impl Shared {
    pub fn new(url: &str, shop: &str) -> Result<Shared, String> {
        Ok(Shared {
            redis: Redis::get(url)?,
            prefix: format!("aisle:{shop}:"),
        })
    }

    /// The key of `client`'s bucket of kind `what`.
    pub fn key(&self, what: &str, client: &str) -> String {
        format!("{}{what}:{client}", self.prefix)
    }
}

/// A limit counted in Redis when it answers, else by this replica.
pub async fn limit(
    shared: Option<&Shared>,
    what: &str,
    local: &crate::RateLimiter,
    client: &str,
    take: bool,
) -> Result<(), f64> {
    if let Some(s) = shared {
        let (rate, burst) = local.settings();
        if let Some(r) = s
            .redis
            .bucket(&s.key(what, client), rate, burst, take)
            .await
        {
            return r;
        }
    }
    if take {
        local.check(client)
    } else {
        local.peek(client)
    }
}

/// The Redis gauges and counters of `/metrics`.
pub fn render_metrics(shared: &Shared, text: &mut String) {
    use std::fmt::Write;
    let r = &shared.redis;
    let _ = writeln!(text, "# TYPE aisle_redis_up gauge");
    let _ = writeln!(text, "aisle_redis_up {}", u8::from(r.up()));
    let _ = writeln!(text, "# TYPE aisle_redis_calls_total counter");
    let _ = writeln!(
        text,
        "aisle_redis_calls_total{{outcome=\"ok\"}} {}",
        r.calls.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        text,
        "aisle_redis_calls_total{{outcome=\"failed\"}} {}",
        r.failures.load(Ordering::Relaxed)
    );
}
