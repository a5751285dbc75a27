//! The online log: every list shown (impressions), the clicks, carts and
//! purchases joined back to them (outcomes), and the experiments. A SQLite
//! file of its own (`STORE/online.db`) beside the event store, so that
//! logging lists never waits on the event log's lock.
//!
//! Tables:
//! - `impressions`: one row per response that showed items: request id,
//!   time (ms), user or session, surface, experiment and arm, model, query.
//! - `shown`: one row per shown item: position (1-based), item, score, the
//!   propensity when the list was randomised, the interleaving team; with
//!   the user and time repeated so that the attribution window finds "the
//!   latest list that showed this item to this user" through one index.
//! - `outcomes`: every click, cart and purchase event (by event key, so a
//!   retried event is one outcome), with the impression it was joined to or
//!   none (unattributed), and that impression's surface, experiment, arm and
//!   the shown item's team copied in (reports then read one table).
//! - `experiments`: the experiments' specs (JSON), start and stop times.

use std::collections::HashMap;
use std::path::Path;

use aisle_experiment::{Credit, ExperimentSpec, Mode, PrePeriod, Team, UserDay};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS impressions(
  rid INTEGER PRIMARY KEY,
  ts_ms INTEGER NOT NULL,
  user TEXT,
  session TEXT,
  surface TEXT NOT NULL,
  experiment TEXT,
  arm TEXT,
  model TEXT NOT NULL,
  query TEXT,
  n INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  events_seq INTEGER
);
CREATE INDEX IF NOT EXISTS impressions_ts ON impressions(ts_ms);
DROP INDEX IF EXISTS impressions_experiment;
CREATE INDEX IF NOT EXISTS impressions_by_experiment ON impressions(experiment, user, arm, ts_ms);
CREATE INDEX IF NOT EXISTS impressions_user ON impressions(user);
CREATE TABLE IF NOT EXISTS shown(
  rid INTEGER NOT NULL,
  pos INTEGER NOT NULL,
  item TEXT NOT NULL,
  score REAL,
  propensity REAL,
  team INTEGER,
  user TEXT,
  ts_ms INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(rid, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shown_user_item ON shown(user, item, ts_ms);
CREATE TABLE IF NOT EXISTS outcomes(
  ekey INTEGER PRIMARY KEY,
  ts_ms INTEGER NOT NULL,
  user TEXT NOT NULL,
  item TEXT NOT NULL,
  kind INTEGER NOT NULL,
  value REAL NOT NULL,
  quantity REAL,
  rid INTEGER,
  pos INTEGER,
  how TEXT,
  surface TEXT,
  experiment TEXT,
  arm TEXT,
  team INTEGER
);
CREATE INDEX IF NOT EXISTS outcomes_rid ON outcomes(rid);
CREATE INDEX IF NOT EXISTS outcomes_by_experiment ON outcomes(experiment, user, arm, ts_ms, kind, team, value);
CREATE INDEX IF NOT EXISTS outcomes_user_ts ON outcomes(user, ts_ms);
CREATE INDEX IF NOT EXISTS outcomes_ts ON outcomes(ts_ms);
CREATE TABLE IF NOT EXISTS experiments(
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  surface TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  stopped_ms INTEGER
);
";

/// One response that showed items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impression {
    pub rid: u64,
    pub ts_ms: i64,
    pub user: Option<String>,
    pub session: Option<String>,
    /// `recommendations`, `session`, `popular`, `similar` or `search`.
    pub surface: String,
    pub experiment: Option<String>,
    pub arm: Option<String>,
    /// `name@version` of what ranked the list.
    pub model: String,
    pub query: Option<String>,
    pub items: Vec<Shown>,
    /// The event store's last sequence number the server had applied when
    /// it answered: the events the list was computed from are those up to
    /// it (what off-policy replay rebuilds histories from).
    #[serde(default)]
    pub events_seq: Option<i64>,
}

/// One shown item (its position is its index + 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    pub item: String,
    pub score: f32,
    /// The probability this item was shown at this position, when the list
    /// was randomised (exploration); what off-policy estimates divide by.
    pub propensity: Option<f64>,
    /// The interleaving team that drafted it.
    pub team: Option<Team>,
}

/// What a click, cart or purchase was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Click = 1,
    Cart = 2,
    Purchase = 3,
}

impl OutcomeKind {
    fn of(code: i64) -> Option<OutcomeKind> {
        match code {
            1 => Some(OutcomeKind::Click),
            2 => Some(OutcomeKind::Cart),
            3 => Some(OutcomeKind::Purchase),
            _ => None,
        }
    }
}

/// An event to join back to the list it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The event's idempotency key: a retried event is one outcome.
    pub key: u64,
    pub ts_ms: i64,
    pub user: String,
    pub item: String,
    pub kind: OutcomeKind,
    /// Purchase value (GMV); 0 for clicks and carts.
    pub value: f64,
    pub quantity: Option<f64>,
    /// The `request_id` the client sent, if any (unparsable ids are
    /// "never issued": the outcome is kept, unattributed).
    pub request_id: Option<u64>,
    pub request_id_given: bool,
    /// The 1-based position the client sent.
    pub position: Option<u32>,
}

/// How an outcome was joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// By the `request_id` the event carried.
    Request { rid: u64, position: Option<u32> },
    /// The latest list that showed the item to the user within the window.
    Window { rid: u64, position: u32 },
    /// A `request_id` that was never issued (or aged out of retention).
    UnknownRequest,
    /// No list showed the item to the user within the window.
    None,
    /// The same event was joined before (a retry).
    Duplicate,
}

/// An experiment as stored: its spec and when it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    pub spec: ExperimentSpec,
    pub started_ms: i64,
    pub stopped_ms: Option<i64>,
}

impl ExperimentRecord {
    pub fn running(&self) -> bool {
        self.stopped_ms.is_none()
    }
}

/// What an experiment's report is computed from.
#[derive(Debug, Clone, Default)]
pub struct ExperimentData {
    pub rows: Vec<UserDay>,
    pub pre: Vec<PrePeriod>,
}

/// Why an experiment cannot be created or stopped.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExperimentConflict {
    #[error("an experiment named `{0}` exists")]
    Exists(String),
    #[error("experiment `{running}` is already running on surface `{surface}`: stop it first")]
    SurfaceBusy { running: String, surface: String },
    #[error("no experiment named `{0}`")]
    Unknown(String),
    #[error("experiment `{0}` is already stopped")]
    Stopped(String),
}

/// The days of behaviour before an experiment that CUPED reads.
pub const PRE_PERIOD_MS: i64 = 14 * DAY_MS;
pub const DAY_MS: i64 = 86_400_000;
/// An outcome may carry a time up to this much before its list (client
/// clocks, second-resolution timestamps).
pub const CLOCK_SKEW_MS: i64 = 60_000;

/// Shop-wide figures over a time range (`GET /v1/admin/kpis`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    pub from_ms: i64,
    pub to_ms: i64,
    pub surface: Option<String>,
    pub impressions: u64,
    /// Distinct users shown a list.
    pub users: u64,
    pub clicks: u64,
    pub carts: u64,
    pub purchases: u64,
    /// Clicks per impression (attributed clicks).
    pub ctr: Option<f64>,
    /// Value of purchases attributed to a shown list.
    pub attributed_gmv: f64,
    /// Every purchase's value in the range, attributed or not.
    pub total_gmv: f64,
    /// Outcomes not joined to any list.
    pub unattributed: u64,
    /// Search impressions that showed no item, over all search impressions.
    pub zero_result_rate: Option<f64>,
    /// CTR at positions 1, 2, ... (attributed clicks at the position over
    /// the impressions that had one).
    pub ctr_by_position: Vec<f64>,
}

pub struct OnlineLog {
    conn: Connection,
    /// The order impressions were logged in (ties of equal milliseconds go
    /// to the later list).
    next_seq: i64,
}

impl OnlineLog {
    pub fn open(path: &Path) -> Result<OnlineLog> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Self::init(conn)
    }

    pub fn open_memory() -> Result<OnlineLog> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<OnlineLog> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Impressions are a log of what was shown, written in group
        // commits: NORMAL keeps them across a process crash (the WAL is
        // synced at checkpoints); outcomes wait for their commit before the
        // event is acknowledged.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "cache_size", -32_768)?;
        // Reports scan the log: reading it through a memory map saves a
        // copy per page (1M impressions: see BENCHMARKS.md §10).
        conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        // Logs written before `events_seq` existed gain the column.
        let has: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('impressions') WHERE name = 'events_seq'")?
            .exists([])?;
        if !has {
            conn.execute_batch("ALTER TABLE impressions ADD COLUMN events_seq INTEGER")?;
        }
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM impressions", [], |r| {
                r.get(0)
            })?;
        Ok(OnlineLog {
            conn,
            next_seq: last + 1,
        })
    }

    /// The log thread's connection: a small page cache. SQLite scans the
    /// whole page-cache hash table at the end of every write transaction
    /// that grew the file (`pcache1TruncateUnsafe`); with the readers' 32 MB
    /// cache that scan was 19% of a server's CPU at 700 lists/s. Its reads
    /// (last-touch attribution) go through the memory map anyway.
    pub fn open_writer(path: &Path) -> Result<OnlineLog> {
        let log = OnlineLog::open(path)?;
        log.conn.pragma_update(None, "cache_size", -2_000)?;
        Ok(log)
    }

    /// Runs `f` in one transaction (a group commit). Every write transaction
    /// here is IMMEDIATE: it takes the write lock when it begins (waiting for
    /// it), so a read-then-write never fails on a snapshot another
    /// connection has moved past.
    pub fn batch<T>(&mut self, f: impl FnOnce(&mut Batch<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut seq = self.next_seq;
        let out = f(&mut Batch {
            tx: &tx,
            seq: &mut seq,
        })?;
        tx.commit()?;
        self.next_seq = seq;
        Ok(out)
    }

    pub fn log_impressions(&mut self, imps: &[Impression]) -> Result<()> {
        self.batch(|b| {
            for i in imps {
                b.log_impression(i)?;
            }
            Ok(())
        })
    }

    pub fn attribute(&mut self, o: &Outcome, window_ms: i64) -> Result<Attribution> {
        self.batch(|b| b.attribute(o, window_ms))
    }

    /// Stores a validated experiment, refusing a second one of the same
    /// name or a second running one on the same surface.
    pub fn create_experiment(
        &mut self,
        spec: &ExperimentSpec,
        now_ms: i64,
    ) -> Result<std::result::Result<ExperimentRecord, ExperimentConflict>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM experiments WHERE name = ?1",
                [&spec.name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Ok(Err(ExperimentConflict::Exists(spec.name.clone())));
        }
        let running: Option<String> = tx
            .query_row(
                "SELECT name FROM experiments WHERE surface = ?1 AND stopped_ms IS NULL",
                [spec.surface.name()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(running) = running {
            return Ok(Err(ExperimentConflict::SurfaceBusy {
                running,
                surface: spec.surface.name().into(),
            }));
        }
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO experiments(name, spec, surface, started_ms) VALUES(?1, ?2, ?3, ?4)",
            params![spec.name, json, spec.surface.name(), now_ms],
        )?;
        tx.commit()?;
        Ok(Ok(ExperimentRecord {
            spec: spec.clone(),
            started_ms: now_ms,
            stopped_ms: None,
        }))
    }

    pub fn stop_experiment(
        &mut self,
        name: &str,
        now_ms: i64,
    ) -> Result<std::result::Result<ExperimentRecord, ExperimentConflict>> {
        let Some(mut rec) = self.experiment(name)? else {
            return Ok(Err(ExperimentConflict::Unknown(name.into())));
        };
        if !rec.running() {
            return Ok(Err(ExperimentConflict::Stopped(name.into())));
        }
        self.conn.execute(
            "UPDATE experiments SET stopped_ms = ?2 WHERE name = ?1",
            params![name, now_ms],
        )?;
        rec.stopped_ms = Some(now_ms);
        Ok(Ok(rec))
    }

    pub fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        self.conn
            .query_row(
                "SELECT spec, started_ms, stopped_ms FROM experiments WHERE name = ?1",
                [name],
                record,
            )
            .optional()?
            .transpose()
    }

    /// Every experiment, oldest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let mut st = self.conn.prepare(
            "SELECT spec, started_ms, stopped_ms FROM experiments ORDER BY started_ms, name",
        )?;
        let rows = st.query_map([], record)?;
        rows.map(|r| r?).collect()
    }

    /// The per-user, per-day outcomes of an experiment and its users'
    /// pre-period behaviour (the 14 days before it started).
    pub fn experiment_data(&self, rec: &ExperimentRecord) -> Result<ExperimentData> {
        let name = &rec.spec.name;
        let start = rec.started_ms;
        let mut users: HashMap<String, u32> = HashMap::new();
        let index = |u: String, users: &mut HashMap<String, u32>| -> u32 {
            let n = users.len() as u32;
            *users.entry(u).or_insert(n)
        };
        let arm_of =
            |a: Option<&str>| -> u16 { a.and_then(|a| rec.spec.arm_index(a)).unwrap_or(0) as u16 };
        let interleave = rec.spec.mode == Mode::Interleave;
        // Cells keyed by (user, arm, day) packed into a u64. The covering
        // index hands impressions over grouped by user (text order), then
        // arm, then time, and users get their index as they first appear,
        // so equal keys are consecutive and keys only grow: one pass makes
        // the cells in key order, with no sort and one user lookup per
        // user. (Sorting packed keys took 1.2 s at 1M impressions; an SQL
        // GROUP BY or a hash map of cells 3-6x longer.)
        let pack = |day: u32, user: u32, arm: u16| -> u64 {
            (u64::from(user) << 32) | (u64::from(arm) << 16) | u64::from(day.min(0xffff))
        };
        let mut cells: Vec<(u64, UserDay)> = Vec::new();
        {
            let mut st = self.conn.prepare_cached(
                "SELECT user, arm, ts_ms FROM impressions
                 WHERE experiment = ?1 AND user IS NOT NULL
                 ORDER BY user, arm, ts_ms",
            )?;
            let mut rows = st.query(params![name])?;
            let mut last_user: Vec<u8> = Vec::new();
            let mut u = u32::MAX;
            let mut last_arm: Option<(Vec<u8>, u16)> = None;
            while let Some(r) = rows.next()? {
                let Ok(user) = r.get_ref(0)?.as_bytes() else {
                    continue;
                };
                if u == u32::MAX || user != last_user.as_slice() {
                    let Ok(text) = std::str::from_utf8(user) else {
                        continue;
                    };
                    u = index(text.to_string(), &mut users);
                    last_user.clear();
                    last_user.extend_from_slice(user);
                }
                let arm = if interleave {
                    0
                } else {
                    let a = r
                        .get_ref(1)?
                        .as_bytes_or_null()
                        .ok()
                        .flatten()
                        .unwrap_or(b"");
                    match &last_arm {
                        Some((name, i)) if name.as_slice() == a => *i,
                        _ => {
                            let i = arm_of(std::str::from_utf8(a).ok());
                            last_arm = Some((a.to_vec(), i));
                            i
                        }
                    }
                };
                let day = ((r.get::<_, i64>(2)? - start) / DAY_MS).max(0) as u32;
                let k = pack(day, u, arm);
                match cells.last_mut() {
                    Some((last, c)) if *last == k => c.impressions += 1,
                    _ => cells.push((
                        k,
                        UserDay {
                            user: u,
                            arm,
                            day,
                            impressions: 1,
                            ..UserDay::default()
                        },
                    )),
                }
            }
        }
        // Keys grow along the scan; were they not to (another collation),
        // sort and merge.
        if !cells.windows(2).all(|w| w[0].0 < w[1].0) {
            cells = merge_cells(cells, Vec::new());
        }
        // Outcomes of cells with no impression (a request id from another
        // user's list, or a list shown on an earlier day).
        let mut extra: Vec<(u64, UserDay)> = Vec::new();
        let mut extra_at: HashMap<u64, usize> = HashMap::new();
        {
            // One pass in the covering index's order (a GROUP BY sorted
            // them in a temporary B-tree: 0.16 s at 60,000 outcomes).
            let mut st = self.conn.prepare_cached(
                "SELECT user, arm, ts_ms, kind, team, value
                 FROM outcomes WHERE experiment = ?1
                 ORDER BY user, arm, ts_ms",
            )?;
            let mut rows = st.query(params![name])?;
            let mut last_user: Option<(String, u32)> = None;
            while let Some(r) = rows.next()? {
                let name: String = r.get(0)?;
                let user = match &last_user {
                    Some((u, i)) if *u == name => *i,
                    _ => {
                        let i = index(name.clone(), &mut users);
                        last_user = Some((name, i));
                        i
                    }
                };
                let arm = if interleave {
                    0
                } else {
                    arm_of(r.get_ref(1)?.as_str_or_null().ok().flatten())
                };
                let day = ((r.get::<_, i64>(2)? - start) / DAY_MS).max(0) as u32;
                let kind = OutcomeKind::of(r.get(3)?);
                let team: Option<i64> = r.get(4)?;
                let n = 1u64;
                let value: f64 = r.get::<_, Option<f64>>(5)?.unwrap_or(0.0);
                let k = pack(day, user, arm);
                let c = match cells.binary_search_by_key(&k, |c| c.0) {
                    Ok(i) => &mut cells[i].1,
                    Err(_) => {
                        let i = *extra_at.entry(k).or_insert_with(|| {
                            extra.push((
                                k,
                                UserDay {
                                    user,
                                    arm,
                                    day,
                                    ..UserDay::default()
                                },
                            ));
                            extra.len() - 1
                        });
                        &mut extra[i].1
                    }
                };
                match kind {
                    Some(OutcomeKind::Click) => {
                        c.clicks += n;
                        if interleave {
                            let mut credit = Credit::default();
                            for _ in 0..n {
                                credit.add(team_of(team));
                            }
                            c.credit.a += credit.a;
                            c.credit.b += credit.b;
                        }
                    }
                    Some(OutcomeKind::Cart) => c.carts += n,
                    Some(OutcomeKind::Purchase) => {
                        c.purchases += n;
                        c.gmv += value;
                    }
                    None => {}
                }
            }
        }
        let mut pre = vec![PrePeriod::default(); users.len()];
        {
            let mut st = self.conn.prepare_cached(
                "SELECT user, kind, COUNT(*), SUM(value) FROM outcomes
                 WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY user, kind",
            )?;
            let mut rows = st.query(params![start - PRE_PERIOD_MS, start])?;
            while let Some(r) = rows.next()? {
                let user: String = r.get(0)?;
                let Some(&u) = users.get(&user) else { continue };
                let n = r.get::<_, i64>(2)? as f64;
                let p = &mut pre[u as usize];
                match OutcomeKind::of(r.get(1)?) {
                    Some(OutcomeKind::Click) => p.clicks += n,
                    Some(OutcomeKind::Cart) => p.carts += n,
                    Some(OutcomeKind::Purchase) => {
                        p.purchases += n;
                        p.gmv += r.get::<_, Option<f64>>(3)?.unwrap_or(0.0);
                    }
                    None => {}
                }
            }
        }
        let rows = merge_cells(cells, extra).into_iter().map(|c| c.1).collect();
        Ok(ExperimentData { rows, pre })
    }

    /// Shop-wide figures between two times, optionally of one surface.
    pub fn kpis(&self, from_ms: i64, to_ms: i64, surface: Option<&str>) -> Result<Kpis> {
        let mut k = Kpis {
            from_ms,
            to_ms,
            surface: surface.map(str::to_string),
            ..Kpis::default()
        };
        let s = surface.unwrap_or("");
        let (imps, users, empty_search, searches): (i64, i64, i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT user),
                    COALESCE(SUM(surface = 'search' AND n = 0), 0),
                    COALESCE(SUM(surface = 'search'), 0)
             FROM impressions WHERE ts_ms >= ?1 AND ts_ms < ?2 AND (?3 = '' OR surface = ?3)",
            params![from_ms, to_ms, s],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        k.impressions = imps as u64;
        k.users = users as u64;
        if searches > 0 {
            k.zero_result_rate = Some(empty_search as f64 / searches as f64);
        }
        let mut st = self.conn.prepare_cached(
            "SELECT kind, COUNT(*), COALESCE(SUM(value), 0) FROM outcomes
             WHERE ts_ms >= ?1 AND ts_ms < ?2 AND rid IS NOT NULL AND (?3 = '' OR surface = ?3)
             GROUP BY kind",
        )?;
        let mut rows = st.query(params![from_ms, to_ms, s])?;
        while let Some(r) = rows.next()? {
            let n = r.get::<_, i64>(1)? as u64;
            match OutcomeKind::of(r.get(0)?) {
                Some(OutcomeKind::Click) => k.clicks = n,
                Some(OutcomeKind::Cart) => k.carts = n,
                Some(OutcomeKind::Purchase) => {
                    k.purchases = n;
                    k.attributed_gmv = r.get(2)?;
                }
                None => {}
            }
        }
        let (unattributed, total_gmv): (i64, f64) = self.conn.query_row(
            "SELECT COALESCE(SUM(rid IS NULL), 0), COALESCE(SUM(CASE WHEN kind = 3 THEN value END), 0)
             FROM outcomes WHERE ts_ms >= ?1 AND ts_ms < ?2",
            params![from_ms, to_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        k.unattributed = unattributed as u64;
        k.total_gmv = total_gmv;
        if imps > 0 {
            k.ctr = Some(k.clicks as f64 / imps as f64);
        }
        // CTR by position: clicks at p over the impressions that showed a p-th item.
        let mut shown_at: Vec<i64> = Vec::new();
        let mut st = self.conn.prepare_cached(
            "SELECT n, COUNT(*) FROM impressions
             WHERE ts_ms >= ?1 AND ts_ms < ?2 AND (?3 = '' OR surface = ?3) GROUP BY n",
        )?;
        let mut rows = st.query(params![from_ms, to_ms, s])?;
        while let Some(r) = rows.next()? {
            let (n, c): (i64, i64) = (r.get(0)?, r.get(1)?);
            let n = (n.max(0) as usize).min(MAX_POSITIONS);
            if shown_at.len() < n {
                shown_at.resize(n, 0);
            }
            for x in &mut shown_at[..n] {
                *x += c;
            }
        }
        let mut clicks_at = vec![0i64; shown_at.len()];
        let mut st = self.conn.prepare_cached(
            "SELECT pos, COUNT(*) FROM outcomes
             WHERE kind = 1 AND pos IS NOT NULL AND rid IS NOT NULL AND ts_ms >= ?1 AND ts_ms < ?2
               AND (?3 = '' OR surface = ?3)
             GROUP BY pos",
        )?;
        let mut rows = st.query(params![from_ms, to_ms, s])?;
        while let Some(r) = rows.next()? {
            let (p, c): (i64, i64) = (r.get(0)?, r.get(1)?);
            if p >= 1 && (p as usize) <= clicks_at.len() {
                clicks_at[p as usize - 1] += c;
            }
        }
        k.ctr_by_position = clicks_at
            .iter()
            .zip(&shown_at)
            .map(|(&c, &n)| if n > 0 { c as f64 / n as f64 } else { 0.0 })
            .collect();
        Ok(k)
    }

    /// Removes everything logged about a user: their impressions, shown
    /// rows and outcomes. Returns the impressions removed.
    pub fn erase_user(&mut self, user: &str) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM shown WHERE user = ?1", [user])?;
        let n = tx.execute("DELETE FROM impressions WHERE user = ?1", [user])?;
        tx.execute("DELETE FROM outcomes WHERE user = ?1", [user])?;
        tx.commit()?;
        // The WAL still holds the pages as they were: copy the zeroed pages
        // into the database and empty it.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(n as u64)
    }

    /// Drops impressions, shown rows and outcomes older than `before_ms`
    /// (the retention setting). Returns the impressions removed.
    pub fn prune(&mut self, before_ms: i64) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM shown WHERE ts_ms < ?1", [before_ms])?;
        let n = tx.execute("DELETE FROM impressions WHERE ts_ms < ?1", [before_ms])?;
        tx.execute("DELETE FROM outcomes WHERE ts_ms < ?1", [before_ms])?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// One impression and its items (for tests and off-policy estimates).
    pub fn impression(&self, rid: u64) -> Result<Option<Impression>> {
        let head = self
            .conn
            .query_row(
                "SELECT ts_ms, user, session, surface, experiment, arm, model, query, events_seq
                 FROM impressions WHERE rid = ?1",
                [rid as i64],
                |r| {
                    Ok(Impression {
                        rid,
                        ts_ms: r.get(0)?,
                        user: r.get(1)?,
                        session: r.get(2)?,
                        surface: r.get(3)?,
                        experiment: r.get(4)?,
                        arm: r.get(5)?,
                        model: r.get(6)?,
                        query: r.get(7)?,
                        items: Vec::new(),
                        events_seq: r.get(8)?,
                    })
                },
            )
            .optional()?;
        let Some(mut imp) = head else { return Ok(None) };
        let mut st = self.conn.prepare_cached(
            "SELECT item, score, propensity, team FROM shown WHERE rid = ?1 ORDER BY pos",
        )?;
        let rows = st.query_map([rid as i64], |r| {
            Ok(Shown {
                item: r.get(0)?,
                score: r.get::<_, Option<f64>>(1)?.unwrap_or(0.0) as f32,
                propensity: r.get(2)?,
                team: r.get::<_, Option<i64>>(3)?.map(|t| team_of(Some(t))),
            })
        })?;
        for s in rows {
            imp.items.push(s?);
        }
        Ok(Some(imp))
    }

    /// The outcomes joined to a request (for tests): kind, item, position, value.
    pub fn outcomes_of(&self, rid: u64) -> Result<Vec<JoinedOutcome>> {
        let mut st = self.conn.prepare_cached(
            "SELECT kind, item, pos, value FROM outcomes WHERE rid = ?1 ORDER BY ts_ms, ekey",
        )?;
        let rows = st.query_map([rid as i64], |r| {
            Ok((
                OutcomeKind::of(r.get(0)?).unwrap_or(OutcomeKind::Click),
                r.get(1)?,
                r.get::<_, Option<i64>>(2)?.map(|p| p as u32),
                r.get(3)?,
            ))
        })?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    /// Recommendation lists shown outside experiments with every item's
    /// propensity logged (exploration was on), oldest first, each with its
    /// clicked positions: what off-policy estimates read.
    pub fn logged_lists(&self) -> Result<Vec<LoggedImpression>> {
        let mut st = self.conn.prepare(
            "SELECT i.rid, i.ts_ms, i.user, i.n, s.pos, s.item, s.propensity, i.model, i.events_seq
             FROM impressions i JOIN shown s ON s.rid = i.rid
             WHERE i.surface = 'recommendations' AND i.experiment IS NULL
               AND i.user IS NOT NULL AND s.propensity IS NOT NULL
             ORDER BY i.ts_ms, i.rid, s.pos",
        )?;
        let mut out: Vec<LoggedImpression> = Vec::new();
        let mut expected = Vec::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let rid = r.get::<_, i64>(0)? as u64;
            if out.last().is_none_or(|l| l.rid != rid) {
                out.push(LoggedImpression {
                    rid,
                    ts_ms: r.get(1)?,
                    user: r.get(2)?,
                    model: r.get(7)?,
                    events_seq: r.get(8)?,
                    items: Vec::new(),
                    clicked: Vec::new(),
                });
                expected.push(r.get::<_, i64>(3)? as usize);
            }
            let l = out.last_mut().expect("pushed");
            l.items.push((r.get(5)?, r.get(6)?));
        }
        // A list is usable only whole (every position logged with its propensity).
        let mut keep = expected.iter();
        out.retain(|l| keep.next() == Some(&l.items.len()));
        let index: HashMap<u64, usize> = out.iter().enumerate().map(|(i, l)| (l.rid, i)).collect();
        let mut st = self.conn.prepare(
            "SELECT rid, pos FROM outcomes WHERE kind = ?1 AND rid IS NOT NULL AND pos IS NOT NULL",
        )?;
        let mut rows = st.query([OutcomeKind::Click as i64])?;
        while let Some(r) = rows.next()? {
            if let Some(&i) = index.get(&(r.get::<_, i64>(0)? as u64)) {
                let pos = r.get::<_, i64>(1)? as u32;
                if !out[i].clicked.contains(&pos) {
                    out[i].clicked.push(pos);
                }
            }
        }
        Ok(out)
    }

    /// Rows in each table (impressions, shown, outcomes).
    pub fn counts(&self) -> Result<(u64, u64, u64)> {
        let c = |t: &str| -> Result<u64> {
            Ok(self
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
                    r.get::<_, i64>(0)
                })? as u64)
        };
        Ok((c("impressions")?, c("shown")?, c("outcomes")?))
    }
}

/// A logged list with propensities (see [`OnlineLog::logged_lists`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedImpression {
    pub rid: u64,
    pub ts_ms: i64,
    pub user: String,
    /// `name@version` of the model that ranked it.
    pub model: String,
    /// See [`Impression::events_seq`].
    pub events_seq: Option<i64>,
    /// Shown items in order, each with its propensity.
    pub items: Vec<(String, f64)>,
    /// Clicked positions (1-based).
    pub clicked: Vec<u32>,
}

/// Cells in key order, equal keys' impressions summed; `a` is usually
/// sorted already and `b` small (outcomes' cells without impressions, whose
/// keys are not in `a`).
fn merge_cells(mut a: Vec<(u64, UserDay)>, mut b: Vec<(u64, UserDay)>) -> Vec<(u64, UserDay)> {
    if b.is_empty() && a.windows(2).all(|w| w[0].0 < w[1].0) {
        return a;
    }
    a.append(&mut b);
    a.sort_by_key(|c| c.0);
    let mut out: Vec<(u64, UserDay)> = Vec::with_capacity(a.len());
    for (k, c) in a {
        match out.last_mut() {
            Some((last, o)) if *last == k => {
                o.impressions += c.impressions;
                o.clicks += c.clicks;
                o.carts += c.carts;
                o.purchases += c.purchases;
                o.gmv += c.gmv;
                o.credit.a += c.credit.a;
                o.credit.b += c.credit.b;
            }
            _ => out.push((k, c)),
        }
    }
    out
}

/// An outcome joined to a list: kind, item, position, value.
pub type JoinedOutcome = (OutcomeKind, String, Option<u32>, f64);

/// Positions CTR-by-position reports at most.
const MAX_POSITIONS: usize = 100;

fn team_of(code: Option<i64>) -> Team {
    match code {
        Some(0) => Team::A,
        Some(1) => Team::B,
        _ => Team::Neutral,
    }
}

fn team_code(t: Team) -> i64 {
    match t {
        Team::A => 0,
        Team::B => 1,
        Team::Neutral => 2,
    }
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ExperimentRecord>> {
    let json: String = r.get(0)?;
    let started_ms: i64 = r.get(1)?;
    let stopped_ms: Option<i64> = r.get(2)?;
    Ok(serde_json::from_str::<ExperimentSpec>(&json)
        .map_err(|e| StoreError::Corrupt(format!("experiment spec: {e}")))
        .map(|spec| ExperimentRecord {
            spec,
            started_ms,
            stopped_ms,
        }))
}

/// Writes inside one transaction of [`OnlineLog::batch`].
pub struct Batch<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    seq: &'t mut i64,
}

impl Batch<'_> {
    pub fn log_impression(&mut self, i: &Impression) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO impressions(rid, ts_ms, user, session, surface, experiment, arm, model, query, n, seq, events_seq)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                i.rid as i64,
                i.ts_ms,
                i.user,
                i.session,
                i.surface,
                i.experiment,
                i.arm,
                i.model,
                i.query,
                i.items.len() as i64,
                *self.seq,
                i.events_seq
            ])?;
        let mut st = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO shown(rid, pos, item, score, propensity, team, user, ts_ms, seq)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (p, s) in i.items.iter().enumerate() {
            st.execute(params![
                i.rid as i64,
                p as i64 + 1,
                s.item,
                s.score as f64,
                s.propensity,
                s.team.map(team_code),
                i.user,
                i.ts_ms,
                *self.seq
            ])?;
        }
        *self.seq += 1;
        Ok(())
    }

    /// Joins an outcome to its list and records it (once per event key).
    pub fn attribute(&mut self, o: &Outcome, window_ms: i64) -> Result<Attribution> {
        let seen: bool = self
            .tx
            .prepare_cached("SELECT 1 FROM outcomes WHERE ekey = ?1")?
            .query_row([o.key as i64], |_| Ok(()))
            .optional()?
            .is_some();
        if seen {
            return Ok(Attribution::Duplicate);
        }
        // The impression joined, and the shown item's team.
        let mut joined: Option<(Joined, Option<i64>)> = None;
        let how = if o.request_id_given {
            match o
                .request_id
                .map(|rid| self.joined(rid))
                .transpose()?
                .flatten()
            {
                Some(j) => {
                    let listed: Option<(i64, Option<i64>)> = self
                        .tx
                        .prepare_cached(
                            "SELECT pos, team FROM shown WHERE rid = ?1 AND item = ?2 ORDER BY pos LIMIT 1",
                        )?
                        .query_row(params![j.rid as i64, o.item], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    let rid = j.rid;
                    joined = Some((j, listed.and_then(|l| l.1)));
                    Attribution::Request {
                        rid,
                        position: listed.map(|l| l.0 as u32).or(o.position),
                    }
                }
                None => Attribution::UnknownRequest,
            }
        } else {
            let hit: Option<(i64, i64, Option<i64>)> = self
                .tx
                .prepare_cached(
                    "SELECT rid, pos, team FROM shown WHERE user = ?1 AND item = ?2
                       AND ts_ms >= ?3 AND ts_ms <= ?4
                     ORDER BY ts_ms DESC, seq DESC LIMIT 1",
                )?
                .query_row(
                    params![o.user, o.item, o.ts_ms - window_ms, o.ts_ms + CLOCK_SKEW_MS],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            match hit {
                Some((rid, pos, team)) => {
                    if let Some(j) = self.joined(rid as u64)? {
                        joined = Some((j, team));
                    }
                    Attribution::Window {
                        rid: rid as u64,
                        position: pos as u32,
                    }
                }
                None => Attribution::None,
            }
        };
        let (rid, pos, label) = match how {
            Attribution::Request { rid, position } => (
                Some(rid as i64),
                position.map(i64::from),
                Some("request_id"),
            ),
            Attribution::Window { rid, position } => {
                (Some(rid as i64), Some(position as i64), Some("window"))
            }
            _ => (None, None, None),
        };
        let (surface, experiment, arm, team) = match joined {
            Some((j, team)) => (Some(j.surface), j.experiment, j.arm, team),
            None => (None, None, None, None),
        };
        self.tx
            .prepare_cached(
                "INSERT INTO outcomes(ekey, ts_ms, user, item, kind, value, quantity, rid, pos, how,
                                      surface, experiment, arm, team)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                o.key as i64,
                o.ts_ms,
                o.user,
                o.item,
                o.kind as i64,
                o.value,
                o.quantity,
                rid,
                pos,
                label,
                surface,
                experiment,
                arm,
                team
            ])?;
        Ok(how)
    }

    /// The impression a request id names, if it was issued (and kept).
    fn joined(&self, rid: u64) -> Result<Option<Joined>> {
        Ok(self
            .tx
            .prepare_cached("SELECT surface, experiment, arm FROM impressions WHERE rid = ?1")?
            .query_row([rid as i64], |r| {
                Ok(Joined {
                    rid,
                    surface: r.get(0)?,
                    experiment: r.get(1)?,
                    arm: r.get(2)?,
                })
            })
            .optional()?)
    }
}

/// What an outcome copies from the impression it is joined to.
struct Joined {
    rid: u64,
    surface: String,
    experiment: Option<String>,
    arm: Option<String>,
}

/// An experiment's report from the log as it stands (a stopped experiment
/// that found nothing reads "no detectable difference").
pub fn experiment_report(
    log: &OnlineLog,
    rec: &ExperimentRecord,
) -> Result<aisle_experiment::Report> {
    let data = log.experiment_data(rec)?;
    Ok(aisle_experiment::report(&aisle_experiment::ReportInput {
        spec: &rec.spec,
        rows: &data.rows,
        pre: &data.pre,
        stopped: !rec.running(),
    }))
}
