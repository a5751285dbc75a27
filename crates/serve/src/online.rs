//! The online loop in the server: request ids, the impression log written
//! by a group-committing thread, outcomes joined back before their event is
//! acknowledged, and the running experiments with their arms resolved to
//! servable models.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aisle_experiment::{ExperimentSpec, Surface};
use aisle_store::online::{Attribution, ExperimentRecord, Impression, OnlineLog, Outcome};

use crate::state::Serving;
use crate::ServeError;

/// Online-loop settings.
#[derive(Debug, Clone)]
pub struct OnlineConfig {
    /// How long after a list a click, cart or purchase without a
    /// `request_id` is still credited to it (last touch).
    pub attribution_window: Duration,
    /// Impressions and outcomes older than this are deleted.
    pub retention: Duration,
    /// Impressions waiting for the log thread at most; beyond, new ones are
    /// counted as dropped rather than held (memory stays bounded under
    /// overload).
    pub queue: usize,
    /// Share of recommendation requests (outside experiments) whose list is
    /// the first k of a random permutation of the model's top
    /// `explore_pool` (0 to ½; 0: none). Every shown item's propensity is
    /// logged, which is what `aisle ope` needs.
    pub explore: f64,
    pub explore_pool: usize,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            attribution_window: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(90 * 86_400),
            queue: 65_536,
            explore: 0.0,
            explore_pool: 50,
        }
    }
}

enum Msg {
    Impression(Box<Impression>),
    Outcomes(Vec<Outcome>, SyncSender<Result<Vec<Attribution>, String>>),
    Erase(String, SyncSender<Result<u64, String>>),
    Flush(SyncSender<()>),
}

/// The server's side of the online log.
pub struct Online {
    cfg: OnlineConfig,
    tx: Mutex<Option<SyncSender<Msg>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    log_thread: std::thread::Thread,
    /// A connection for reads (reports, experiments), beside the writer's.
    pub reader: Mutex<OnlineLog>,
    /// Every experiment, as stored.
    experiments: RwLock<Vec<ExperimentRecord>>,
    /// Arms' models by their `model` string, loaded once.
    pub(crate) arm_models: Mutex<HashMap<String, Arc<Serving>>>,
    nonce: u64,
    /// The last request id issued.
    last_rid: AtomicU64,
    pub logged: AtomicU64,
    pub dropped: AtomicU64,
    /// Group commits that failed (their impressions are lost; their
    /// outcomes' events were answered with an error).
    pub log_errors: Arc<AtomicU64>,
    _temp: Option<tempfile::TempDir>,
}

/// Request ids count milliseconds from 2024-01-01T00:00:00Z.
const RID_EPOCH_MS: i64 = 1_704_067_200_000;
/// Outcome batches and erasures wait this long for the log thread at most.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Impressions written per transaction at most.
const GROUP: usize = 4096;
/// How long the log thread waits for more lists before committing the
/// ones it has (when no outcome, flush or erasure is waiting on it).
const LINGER: Duration = Duration::from_millis(20);
/// How often the log thread deletes what is past retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Online {
    /// Opens (or creates) the store's online log: its PostgreSQL database
    /// (shared by every replica over it) or `DIR/online.db`; a store in
    /// memory keeps its log in a temporary folder that goes with the server.
    pub fn open(store: &str, cfg: OnlineConfig, nonce: u64) -> Result<Online, ServeError> {
        if !(0.0..=0.5).contains(&cfg.explore) || cfg.explore_pool == 0 {
            return Err(ServeError::Config(format!(
                "exploration share {} must be from 0 to 0.5 (and its pool at least 1 item)",
                cfg.explore
            )));
        }
        let mut temp = None;
        let (writer_log, reader) = match aisle_store::parse_url(store)? {
            aisle_store::Location::Postgres(url) => (
                OnlineLog::open_postgres(&url)?,
                OnlineLog::open_postgres(&url)?,
            ),
            loc => {
                let dir = match loc.dir() {
                    Some(d) => d,
                    None => temp.insert(tempfile::tempdir()?).path().to_path_buf(),
                };
                let path = dir.join("online.db");
                (OnlineLog::open_writer(&path)?, OnlineLog::open(&path)?)
            }
        };
        // Over a shared log, the request ids' 10 writer bits come from the
        // database, so that two replicas never issue the same id.
        let nonce = reader.writer_number()?.unwrap_or(nonce);
        let experiments = reader.experiments()?;
        let (tx, rx) = sync_channel(cfg.queue);
        let window_ms = cfg.attribution_window.as_millis() as i64;
        let retention_ms = cfg.retention.as_millis() as i64;
        let log_errors = Arc::new(AtomicU64::new(0));
        let errors = log_errors.clone();
        let writer = std::thread::Builder::new()
            .name("aisle-online-log".into())
            .spawn(move || {
                background_priority();
                write_loop(writer_log, rx, window_ms, retention_ms, &errors)
            })?;
        Ok(Online {
            cfg,
            tx: Mutex::new(Some(tx)),
            log_thread: writer.thread().clone(),
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(reader),
            experiments: RwLock::new(experiments),
            arm_models: Mutex::new(HashMap::new()),
            nonce,
            last_rid: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            log_errors,
            _temp: temp,
        })
    }

    pub fn config(&self) -> &OnlineConfig {
        &self.cfg
    }

    /// A new request id, growing with time: milliseconds since 2024 (41
    /// bits, until 2093), then 10 bits of this process's nonce (over
    /// PostgreSQL, its number among the log's writers), then a
    /// 12-bit count within the millisecond; never below the last one issued
    /// plus one. 63 bits, so that it is a positive SQLite integer. Ids that
    /// grow keep the log's inserts at the end of its table (random ids
    /// took 2x as long per group commit; BENCHMARKS.md §10.6); the nonce
    /// keeps two processes apart within one millisecond (over PostgreSQL
    /// always, until 1,024 more replicas have started).
    pub fn request_id(&self) -> u64 {
        let ms = (aisle_core::time::unix_now_ms() - RID_EPOCH_MS).max(0) as u64;
        let floor = ((ms & ((1 << 41) - 1)) << 22) | ((self.nonce & 0x3ff) << 12);
        let prev = self
            .last_rid
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(floor.max(last + 1))
            })
            .unwrap_or_else(|last| last);
        floor.max(prev + 1)
    }

    fn sender(&self) -> Option<SyncSender<Msg>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queues an impression for the log; never blocks (a full queue drops
    /// it and counts the drop).
    pub fn log(&self, imp: Impression) {
        let Some(tx) = self.sender() else { return };
        match tx.try_send(Msg::Impression(Box::new(imp))) {
            Ok(()) => {
                self.logged.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Joins outcomes to their lists; returns once they are committed.
    pub fn attribute(&self, outcomes: Vec<Outcome>) -> Result<Vec<Attribution>, String> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = sync_channel(1);
        self.call(Msg::Outcomes(outcomes, reply), rx)?
    }

    /// Deletes a user's impressions and outcomes (those still queued too).
    pub fn erase_user(&self, user: &str) -> Result<u64, String> {
        let (reply, rx) = sync_channel(1);
        self.call(Msg::Erase(user.to_string(), reply), rx)?
    }

    /// Waits until everything queued so far is committed.
    pub fn flush(&self) {
        let (reply, rx) = sync_channel(1);
        let _ = self.call(Msg::Flush(reply), rx);
    }

    fn call<T>(&self, m: Msg, rx: Receiver<T>) -> Result<T, String> {
        let tx = self.sender().ok_or("the online log is closed")?;
        tx.send(m)
            .map_err(|_| "the online log thread stopped".to_string())?;
        // The log thread may be lingering over lists: this one waits.
        self.log_thread.unpark();
        rx.recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| "the online log did not answer in time".to_string())
    }

    /// Stops the log thread after it has written what is queued.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.log_thread.unpark();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    /// Every experiment, oldest first.
    pub fn experiments(&self) -> Vec<ExperimentRecord> {
        self.experiments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The experiment running on a surface, if any.
    pub fn running(&self, surface: Surface) -> Option<ExperimentSpec> {
        self.experiments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.running() && r.spec.surface == surface)
            .map(|r| r.spec.clone())
    }

    /// Re-reads the experiments from the log (after a change).
    pub fn reload_experiments(&self) -> Result<(), ServeError> {
        let all = self
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .experiments()?;
        *self.experiments.write().unwrap_or_else(|e| e.into_inner()) = all;
        Ok(())
    }
}

impl Drop for Online {
    fn drop(&mut self) {
        self.close();
    }
}

/// Lowers the calling thread's scheduling priority (nice 10), so that on a
/// busy machine the request workers run first and the log catches up in
/// between (its queue is bounded; see `OnlineConfig::queue`). Nice 19 was
/// no better measurably (BENCHMARKS.md §10.6) and would leave the log too
/// little CPU to keep up under overload, where lists are then dropped.
fn background_priority() {
    #[cfg(target_os = "linux")]
    {
        // PRIO_PROCESS with a thread id changes only that thread's nice value.
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), 10) {
            tracing::debug!(error = %e, "online log: could not lower the log thread's priority");
        }
    }
}

/// The log thread: group commits of whatever is queued, control messages
/// (erase, flush) in their place in the queue.
fn write_loop(
    mut log: OnlineLog,
    rx: Receiver<Msg>,
    window_ms: i64,
    retention_ms: i64,
    errors: &AtomicU64,
) {
    let mut last_prune: Option<Instant> = None;
    loop {
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            let before = aisle_core::time::unix_now() * 1000 - retention_ms;
            match log.prune(before) {
                Ok(n) if n > 0 => {
                    tracing::info!(impressions = n, "online log: pruned past retention")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "online log: prune failed"),
            }
            last_prune = Some(Instant::now());
        }
        let first = match rx.recv_timeout(PRUNE_EVERY) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A group commit: what is queued, and while only impressions wait
        // (nobody is blocked on them) whatever arrives within LINGER. One
        // commit per list cost a 700 lists/s server 12-19% of its CPU in
        // SQLite's end-of-transaction page-cache scan. The thread sleeps
        // through LINGER parked, not in `recv`: a list sent meanwhile wakes
        // nobody (waking it per list was a futex call on the request path
        // and a context switch each), while whoever sends an outcome, a
        // flush or an erasure unparks it (`Online::call`).
        let mut batch = vec![first];
        if matches!(batch[0], Msg::Impression(_)) {
            std::thread::park_timeout(LINGER);
        }
        while batch.len() < GROUP {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut pending: Vec<Msg> = Vec::new();
        for m in batch {
            match m {
                Msg::Erase(..) | Msg::Flush(_) => {
                    commit(&mut log, std::mem::take(&mut pending), window_ms, errors);
                    match m {
                        Msg::Erase(user, reply) => {
                            let _ = reply.send(log.erase_user(&user).map_err(|e| e.to_string()));
                        }
                        Msg::Flush(reply) => {
                            let _ = reply.send(());
                        }
                        _ => unreachable!(),
                    }
                }
                other => pending.push(other),
            }
        }
        commit(&mut log, pending, window_ms, errors);
    }
}

/// Writes impressions and outcomes in one transaction, then answers the
/// outcome batches (after the commit: an acknowledged outcome is durable).
fn commit(log: &mut OnlineLog, msgs: Vec<Msg>, window_ms: i64, errors: &AtomicU64) {
    if msgs.is_empty() {
        return;
    }
    let mut replies = Vec::new();
    let result = log.batch(|b| {
        for m in &msgs {
            match m {
                Msg::Impression(i) => b.log_impression(i)?,
                Msg::Outcomes(os, _) => {
                    let mut out = Vec::with_capacity(os.len());
                    for o in os {
                        out.push(b.attribute(o, window_ms)?);
                    }
                    replies.push(out);
                }
                _ => {}
            }
        }
        Ok(())
    });
    let mut answers = replies.into_iter();
    for m in msgs {
        if let Msg::Outcomes(_, reply) = m {
            let r = match &result {
                Ok(()) => Ok(answers.next().unwrap_or_default()),
                Err(e) => Err(e.to_string()),
            };
            let _ = reply.send(r);
        }
    }
    if let Err(e) = result {
        errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "online log: a batch was not written");
    }
}

/// A request id as the API shows it: 16 hex digits.
pub fn format_request_id(rid: u64) -> String {
    format!("{rid:016x}")
}

/// The request id of an API string; None for anything this server cannot
/// have issued.
pub fn parse_request_id(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|r| r >> 63 == 0)
}
