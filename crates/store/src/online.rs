//! The online log: every list shown (impressions), the clicks, carts and
//! purchases joined back to them (outcomes), and the experiments. A SQLite
//! file of its own (`STORE/online.db`) beside the event store, so that
//! logging lists never waits on the event log's lock; over PostgreSQL, the
//! same tables in the store's database (`pg`), shared by every replica.
//! Both backends write through one [`Batch`] (one attribution rule) and
//! feed one report builder (`Cells`).
//!
//! Tables:
//! - `impressions`: one row per response that showed items: request id,
//!   time (ms), user or session, surface, experiment and arm, model, query,
//!   and its items packed in one blob (item, score, the propensity when the
//!   list was randomised, the interleaving team; position = order). The
//!   attribution window finds "the latest list that showed this item to
//!   this user" by reading the user's lists in the window, latest first.
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

mod pg;

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
  events_seq INTEGER,
  items BLOB
);
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

/// The impressions' indexes, made after older logs are brought up to date.
/// A list is one row, its items packed (see [`pack_items`]): with request
/// ids that grow with time, logging it touches the table's last page, the
/// time index's last page and one page of the user index (a row per shown
/// item and four more indexes made a group commit of 20 lists take 2.4x as
/// long; BENCHMARKS.md §10.6). Lists outside experiments have no entry in
/// the experiment index.
const IMPRESSION_INDEXES: &str = "
DROP INDEX IF EXISTS impressions_experiment;
DROP INDEX IF EXISTS impressions_by_experiment;
DROP INDEX IF EXISTS impressions_user;
CREATE INDEX IF NOT EXISTS impressions_ts ON impressions(ts_ms);
CREATE INDEX IF NOT EXISTS impressions_in_experiment ON impressions(experiment, user, arm, ts_ms)
  WHERE experiment IS NOT NULL;
CREATE INDEX IF NOT EXISTS impressions_user_ts ON impressions(user, ts_ms, seq);
CREATE INDEX IF NOT EXISTS impressions_search ON impressions(ts_ms) WHERE surface = 'search';
";

/// Lists a user was shown that last-touch attribution looks through at
/// most (the latest first, within the window): a client that fetches
/// lists without end cannot make one event's join scan without end.
pub const WINDOW_LISTS: i64 = 1_000;

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

/// The online log in its store: a SQLite file beside the event store or
/// the store's own PostgreSQL database (tables of the same names), so that
/// every replica over one database joins outcomes to lists any replica
/// showed, and every replica runs the same experiments.
pub struct OnlineLog(Db);

enum Db {
    Lite(Lite),
    Pg(Box<pg::PgLog>),
}

/// Calls the same method on either backend.
macro_rules! each {
    ($self:expr, $l:ident => $e:expr) => {
        match $self {
            Db::Lite($l) => $e,
            Db::Pg($l) => $e,
        }
    };
}

/// The SQLite log.
struct Lite {
    conn: Connection,
    /// The order impressions were logged in (ties of equal milliseconds go
    /// to the later list).
    next_seq: i64,
}

impl Lite {
    fn open(path: &Path) -> Result<Lite> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Self::init(conn)
    }

    fn open_memory() -> Result<Lite> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Lite> {
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
        migrate(&conn)?;
        conn.execute_batch(IMPRESSION_INDEXES)?;
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM impressions", [], |r| {
                r.get(0)
            })?;
        Ok(Lite {
            conn,
            next_seq: last + 1,
        })
    }

    /// The log thread's connection: a small page cache. SQLite scans the
    /// whole page-cache hash table at the end of every write transaction
    /// that grew the file (`pcache1TruncateUnsafe`); with the readers' 32 MB
    /// cache that scan was 19% of a server's CPU at 700 lists/s. Its reads
    /// (last-touch attribution) go through the memory map anyway.
    fn open_writer(path: &Path) -> Result<Lite> {
        let log = Lite::open(path)?;
        log.conn.pragma_update(None, "cache_size", -2_000)?;
        Ok(log)
    }

    /// Runs `f` in one transaction (a group commit). Every write transaction
    /// here is IMMEDIATE: it takes the write lock when it begins (waiting for
    /// it), so a read-then-write never fails on a snapshot another
    /// connection has moved past.
    fn batch<T>(&mut self, f: impl FnOnce(&mut Batch<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut seq = self.next_seq;
        let out = f(&mut Batch(Tx::Lite {
            tx: &tx,
            seq: &mut seq,
        }))?;
        tx.commit()?;
        self.next_seq = seq;
        Ok(out)
    }

    /// Stores a validated experiment, refusing a second one of the same
    /// name or a second running one on the same surface.
    fn create_experiment(
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

    /// Stops a running experiment; false when none of that name runs.
    fn mark_stopped(&mut self, name: &str, now_ms: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE experiments SET stopped_ms = ?2 WHERE name = ?1 AND stopped_ms IS NULL",
            params![name, now_ms],
        )? == 1)
    }

    fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
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
    fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let mut st = self.conn.prepare(
            "SELECT spec, started_ms, stopped_ms FROM experiments ORDER BY started_ms, name",
        )?;
        let rows = st.query_map([], record)?;
        rows.map(|r| r?).collect()
    }

    /// The rows of [`OnlineLog::experiment_data`], read in the covering
    /// indexes' order (see [`Cells`]).
    fn experiment_data(&self, rec: &ExperimentRecord) -> Result<ExperimentData> {
        let name = &rec.spec.name;
        let mut cells = Cells::new(rec);
        {
            let mut st = self.conn.prepare_cached(
                "SELECT user, arm, ts_ms FROM impressions
                 WHERE experiment = ?1 AND user IS NOT NULL
                 ORDER BY user, arm, ts_ms",
            )?;
            let mut rows = st.query(params![name])?;
            while let Some(r) = rows.next()? {
                let Ok(user) = r.get_ref(0)?.as_bytes() else {
                    continue;
                };
                let arm = r.get_ref(1)?.as_bytes_or_null().ok().flatten();
                cells.impression(user, arm, r.get(2)?);
            }
        }
        cells.impressions_done();
        {
            // One pass in the covering index's order (a GROUP BY sorted
            // them in a temporary B-tree: 0.16 s at 60,000 outcomes).
            let mut st = self.conn.prepare_cached(
                "SELECT user, arm, ts_ms, kind, team, value
                 FROM outcomes WHERE experiment = ?1
                 ORDER BY user, arm, ts_ms",
            )?;
            let mut rows = st.query(params![name])?;
            while let Some(r) = rows.next()? {
                let user: String = r.get(0)?;
                cells.outcome(
                    &user,
                    r.get_ref(1)?.as_str_or_null().ok().flatten(),
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
                );
            }
        }
        {
            let mut st = self.conn.prepare_cached(
                "SELECT user, kind, COUNT(*), SUM(value) FROM outcomes
                 WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY user, kind",
            )?;
            let start = rec.started_ms;
            let mut rows = st.query(params![start - PRE_PERIOD_MS, start])?;
            while let Some(r) = rows.next()? {
                let user: String = r.get(0)?;
                cells.pre(
                    &user,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                );
            }
        }
        Ok(cells.finish())
    }

    /// Shop-wide figures between two times, optionally of one surface.
    fn kpis(&self, from_ms: i64, to_ms: i64, surface: Option<&str>) -> Result<KpiRows> {
        let mut k = KpiRows::default();
        let s = surface.unwrap_or("");
        // The search surface named literally: the planner then reads the
        // search impressions' own index, not every list of the range.
        let on = if s == "search" {
            "surface = 'search' AND ?3 = 'search'"
        } else {
            "(?3 = '' OR surface = ?3)"
        };
        k.lists = self.conn.query_row(
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT user),
                    COALESCE(SUM(surface = 'search' AND n = 0), 0),
                    COALESCE(SUM(surface = 'search'), 0)
             FROM impressions WHERE ts_ms >= ?1 AND ts_ms < ?2 AND {on}"
            ),
            params![from_ms, to_ms, s],
            |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
        )?;
        let mut st = self.conn.prepare_cached(
            "SELECT kind, COUNT(*), COALESCE(SUM(value), 0) FROM outcomes
             WHERE ts_ms >= ?1 AND ts_ms < ?2 AND rid IS NOT NULL AND (?3 = '' OR surface = ?3)
             GROUP BY kind",
        )?;
        let mut rows = st.query(params![from_ms, to_ms, s])?;
        while let Some(r) = rows.next()? {
            k.by_kind.push((r.get(0)?, r.get(1)?, r.get(2)?));
        }
        k.unattributed = self.conn.query_row(
            "SELECT COALESCE(SUM(rid IS NULL), 0), COALESCE(SUM(CASE WHEN kind = 3 THEN value END), 0)
             FROM outcomes WHERE ts_ms >= ?1 AND ts_ms < ?2",
            params![from_ms, to_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        // CTR by position: clicks at p over the impressions that showed a p-th item.
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT n, COUNT(*) FROM impressions
             WHERE ts_ms >= ?1 AND ts_ms < ?2 AND {on} GROUP BY n"
        ))?;
        let mut rows = st.query(params![from_ms, to_ms, s])?;
        while let Some(r) = rows.next()? {
            k.shown.push((r.get(0)?, r.get(1)?));
        }
        let mut st = self.conn.prepare_cached(
            "SELECT pos, COUNT(*) FROM outcomes
             WHERE kind = 1 AND pos IS NOT NULL AND rid IS NOT NULL AND ts_ms >= ?1 AND ts_ms < ?2
               AND (?3 = '' OR surface = ?3)
             GROUP BY pos",
        )?;
        let mut rows = st.query(params![from_ms, to_ms, s])?;
        while let Some(r) = rows.next()? {
            k.clicks.push((r.get(0)?, r.get(1)?));
        }
        Ok(k)
    }

    /// The searches between two times by query text (as typed, trimmed and
    /// lower-cased): the most frequent, and the most frequent that showed
    /// nothing, each with its clicks (joined outcomes).
    fn search_queries(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<QueryStats> {
        let mut tally = QueryTally::default();
        let mut st = self.conn.prepare_cached(
            "SELECT lower(trim(COALESCE(i.query, ''))), i.n,
                    (SELECT COUNT(*) FROM outcomes o WHERE o.rid = i.rid AND o.kind = 1)
             FROM impressions i
             WHERE i.surface = 'search' AND i.ts_ms >= ?1 AND i.ts_ms < ?2",
        )?;
        let mut rows = st.query(params![from_ms, to_ms])?;
        while let Some(r) = rows.next()? {
            tally.add(r.get(0)?, r.get(1)?, r.get(2)?);
        }
        Ok(tally.finish(from_ms, to_ms, limit))
    }

    /// Removes everything logged about a user: their impressions (with the
    /// items shown) and outcomes. Returns the impressions removed.
    fn erase_user(&mut self, user: &str) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM impressions WHERE user = ?1", [user])?;
        tx.execute("DELETE FROM outcomes WHERE user = ?1", [user])?;
        tx.commit()?;
        // The WAL still holds the pages as they were: copy the zeroed pages
        // into the database and empty it.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(n as u64)
    }

    /// Drops impressions and outcomes older than `before_ms`
    /// (the retention setting). Returns the impressions removed.
    fn prune(&mut self, before_ms: i64) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM impressions WHERE ts_ms < ?1", [before_ms])?;
        tx.execute("DELETE FROM outcomes WHERE ts_ms < ?1", [before_ms])?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// One impression and its items (for tests and off-policy estimates).
    fn impression(&self, rid: u64) -> Result<Option<Impression>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE rid = ?1"),
                [rid as i64],
                impression_row,
            )
            .optional()?
            .map(|(_, i)| i))
    }

    /// The outcomes joined to a request (for tests): kind, item, position, value.
    fn outcomes_of(&self, rid: u64) -> Result<Vec<JoinedOutcome>> {
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
    fn logged_lists(&self) -> Result<Vec<LoggedImpression>> {
        let mut st = self.conn.prepare(
            "SELECT rid, ts_ms, user, n, items, model, events_seq FROM impressions
             WHERE surface = 'recommendations' AND experiment IS NULL AND user IS NOT NULL
             ORDER BY ts_ms, seq",
        )?;
        let mut out: Vec<LoggedImpression> = Vec::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let items = r
                .get_ref(4)?
                .as_bytes_or_null()
                .ok()
                .flatten()
                .unwrap_or(&[]);
            out.extend(LoggedImpression::of_row(
                r.get::<_, i64>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                items,
                r.get(5)?,
                r.get(6)?,
            ));
        }
        let mut st = self.conn.prepare(
            "SELECT rid, pos FROM outcomes WHERE kind = ?1 AND rid IS NOT NULL AND pos IS NOT NULL",
        )?;
        let mut clicks = Vec::new();
        let mut rows = st.query([OutcomeKind::Click as i64])?;
        while let Some(r) = rows.next()? {
            clicks.push((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
        }
        LoggedImpression::add_clicks(&mut out, &clicks);
        Ok(out)
    }

    /// Impressions, the items they showed, outcomes.
    fn impressions_after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, Impression)>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = st.query_map(params![seq, limit as i64], impression_row)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    fn outcomes_after(&self, key: Option<i64>, limit: usize) -> Result<Vec<StoredOutcome>> {
        let mut st = self.conn.prepare_cached(
            "SELECT ekey, ts_ms, user, item, kind, value, quantity, rid, pos, how, surface,
                    experiment, arm, team
             FROM outcomes WHERE ?1 IS NULL OR ekey > ?1 ORDER BY ekey LIMIT ?2",
        )?;
        let rows = st.query_map(params![key, limit as i64], |r| {
            Ok(StoredOutcome {
                key: r.get::<_, i64>(0)? as u64,
                ts_ms: r.get(1)?,
                user: r.get(2)?,
                item: r.get(3)?,
                kind: r.get(4)?,
                value: r.get(5)?,
                quantity: r.get(6)?,
                rid: r.get(7)?,
                pos: r.get(8)?,
                how: r.get(9)?,
                surface: r.get(10)?,
                experiment: r.get(11)?,
                arm: r.get(12)?,
                team: r.get(13)?,
            })
        })?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    fn counts(&self) -> Result<(u64, u64, u64)> {
        let c = |q: &str| -> Result<u64> {
            Ok(self.conn.query_row(q, [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok((
            c("SELECT COUNT(*) FROM impressions")?,
            c("SELECT COALESCE(SUM(n), 0) FROM impressions")?,
            c("SELECT COUNT(*) FROM outcomes")?,
        ))
    }
}

impl OnlineLog {
    /// Opens (or creates) a SQLite log file.
    pub fn open(path: &Path) -> Result<OnlineLog> {
        Ok(OnlineLog(Db::Lite(Lite::open(path)?)))
    }

    /// A SQLite log in memory (tests).
    pub fn open_memory() -> Result<OnlineLog> {
        Ok(OnlineLog(Db::Lite(Lite::open_memory()?)))
    }

    /// The log thread's connection (see [`OnlineLog::open`]; a SQLite
    /// writer keeps a small page cache).
    pub fn open_writer(path: &Path) -> Result<OnlineLog> {
        Ok(OnlineLog(Db::Lite(Lite::open_writer(path)?)))
    }

    /// The log in a PostgreSQL store's database (tables `impressions`,
    /// `outcomes`, `experiments`, made with the store's schema).
    pub fn open_postgres(url: &str) -> Result<OnlineLog> {
        Ok(OnlineLog(Db::Pg(Box::new(pg::PgLog::open(url)?))))
    }

    /// The log of a store: its database for a `postgres://` URL,
    /// `DIR/online.db` for a folder (None until a server wrote it), None
    /// for a store in memory.
    pub fn of_store(store: &str) -> Result<Option<OnlineLog>> {
        match crate::parse_url(store)? {
            crate::Location::Postgres(url) => Ok(Some(Self::open_postgres(&url)?)),
            loc => match loc.dir().map(|d| d.join("online.db")) {
                Some(p) if p.exists() => Ok(Some(Self::open(&p)?)),
                _ => Ok(None),
            },
        }
    }

    /// Whether every process over the store shares this log (PostgreSQL).
    pub fn shared(&self) -> bool {
        matches!(self.0, Db::Pg(_))
    }

    /// A number for a process that writes this log, distinct from every
    /// other process's in its last 10 bits until 1,024 more have started
    /// (PostgreSQL: a sequence of the database); None for SQLite, whose
    /// log one process writes.
    pub fn writer_number(&self) -> Result<Option<u64>> {
        match &self.0 {
            Db::Lite(_) => Ok(None),
            Db::Pg(l) => l.writer_number().map(Some),
        }
    }

    /// Runs `f` in one transaction (a group commit): nothing of it is
    /// stored unless all of it is.
    pub fn batch<T>(&mut self, f: impl FnOnce(&mut Batch<'_>) -> Result<T>) -> Result<T> {
        each!(&mut self.0, l => l.batch(f))
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
        each!(&mut self.0, l => l.create_experiment(spec, now_ms))
    }

    pub fn stop_experiment(
        &mut self,
        name: &str,
        now_ms: i64,
    ) -> Result<std::result::Result<ExperimentRecord, ExperimentConflict>> {
        let Some(mut rec) = self.experiment(name)? else {
            return Ok(Err(ExperimentConflict::Unknown(name.into())));
        };
        if !each!(&mut self.0, l => l.mark_stopped(name, now_ms))? {
            return Ok(Err(ExperimentConflict::Stopped(name.into())));
        }
        rec.stopped_ms = Some(now_ms);
        Ok(Ok(rec))
    }

    pub fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        each!(&self.0, l => l.experiment(name))
    }

    /// Every experiment, oldest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        each!(&self.0, l => l.experiments())
    }

    /// The per-user, per-day outcomes of an experiment and its users'
    /// pre-period behaviour (the 14 days before it started).
    pub fn experiment_data(&self, rec: &ExperimentRecord) -> Result<ExperimentData> {
        each!(&self.0, l => l.experiment_data(rec))
    }

    /// Shop-wide figures between two times, optionally of one surface.
    pub fn kpis(&self, from_ms: i64, to_ms: i64, surface: Option<&str>) -> Result<Kpis> {
        let rows = each!(&self.0, l => l.kpis(from_ms, to_ms, surface))?;
        Ok(rows.kpis(from_ms, to_ms, surface))
    }

    /// The searches between two times by query text (as typed, trimmed and
    /// lower-cased): the most frequent, and the most frequent that showed
    /// nothing, each with its clicks (joined outcomes).
    pub fn search_queries(&self, from_ms: i64, to_ms: i64, limit: usize) -> Result<QueryStats> {
        each!(&self.0, l => l.search_queries(from_ms, to_ms, limit))
    }

    /// Removes everything logged about a user: their impressions (with the
    /// items shown) and outcomes. Returns the impressions removed.
    pub fn erase_user(&mut self, user: &str) -> Result<u64> {
        each!(&mut self.0, l => l.erase_user(user))
    }

    /// Drops impressions and outcomes older than `before_ms`
    /// (the retention setting). Returns the impressions removed.
    pub fn prune(&mut self, before_ms: i64) -> Result<u64> {
        each!(&mut self.0, l => l.prune(before_ms))
    }

    /// One impression and its items (for tests and off-policy estimates).
    pub fn impression(&self, rid: u64) -> Result<Option<Impression>> {
        each!(&self.0, l => l.impression(rid))
    }

    /// The outcomes joined to a request (for tests): kind, item, position, value.
    pub fn outcomes_of(&self, rid: u64) -> Result<Vec<JoinedOutcome>> {
        each!(&self.0, l => l.outcomes_of(rid))
    }

    /// Recommendation lists shown outside experiments with every item's
    /// propensity logged (exploration was on), oldest first, each with its
    /// clicked positions: what off-policy estimates read.
    pub fn logged_lists(&self) -> Result<Vec<LoggedImpression>> {
        each!(&self.0, l => l.logged_lists())
    }

    /// Impressions, the items they showed, outcomes.
    pub fn counts(&self) -> Result<(u64, u64, u64)> {
        each!(&self.0, l => l.counts())
    }

    /// The impressions logged after the one at `seq` (0: from the first), in
    /// logging order, at most `limit`, each with its position in that order.
    pub fn impressions_after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, Impression)>> {
        each!(&self.0, l => l.impressions_after(seq, limit))
    }

    /// The outcomes by event key after `key` (None: from the first), at most `limit`.
    pub fn outcomes_after(&self, key: Option<i64>, limit: usize) -> Result<Vec<StoredOutcome>> {
        each!(&self.0, l => l.outcomes_after(key, limit))
    }

    /// The log of a store, made when it has none yet: the database's for a
    /// `postgres://` URL, `DIR/online.db` for a folder; None in memory.
    pub fn create_for_store(store: &str) -> Result<Option<OnlineLog>> {
        match crate::parse_url(store)? {
            crate::Location::Postgres(url) => Ok(Some(Self::open_postgres(&url)?)),
            loc => loc
                .dir()
                .map(|d| Self::open(&d.join("online.db")))
                .transpose(),
        }
    }
}

/// What [`copy_log`] read, and both logs' counts after it: impressions,
/// the items they showed, outcomes, experiments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogCopy {
    pub impressions_read: u64,
    pub outcomes_read: u64,
    pub experiments_read: u64,
    pub source: [u64; 4],
    pub target: [u64; 4],
}

impl LogCopy {
    /// Whether the target holds what the source does, no more, no less.
    pub fn complete(&self) -> bool {
        self.source == self.target
    }
}

/// Rows per page and per group commit of [`copy_log`].
const COPY_PAGE: usize = 10_000;

/// Copies a log into another (`aisle store copy`): the experiments, every
/// impression in logging order, every outcome as it was joined. Idempotent:
/// what the target holds (by request id, event key, experiment name) is
/// kept as it is.
pub fn copy_log(from: &OnlineLog, to: &mut OnlineLog) -> Result<LogCopy> {
    let experiments = from.experiments()?;
    to.batch(|b| {
        for e in &experiments {
            b.put_experiment(e)?;
        }
        Ok(())
    })?;
    let (mut impressions_read, mut outcomes_read) = (0u64, 0u64);
    let mut seq = 0;
    loop {
        let page = from.impressions_after(seq, COPY_PAGE)?;
        let Some(last) = page.last() else { break };
        seq = last.0;
        impressions_read += page.len() as u64;
        to.batch(|b| {
            for (_, i) in &page {
                b.log_impression(i)?;
            }
            Ok(())
        })?;
    }
    let mut key = None;
    loop {
        let page = from.outcomes_after(key, COPY_PAGE)?;
        let Some(last) = page.last() else { break };
        key = Some(last.key as i64);
        outcomes_read += page.len() as u64;
        to.batch(|b| {
            for o in &page {
                b.put_outcome(o)?;
            }
            Ok(())
        })?;
    }
    let counts = |log: &OnlineLog| -> Result<[u64; 4]> {
        let (i, n, o) = log.counts()?;
        Ok([i, n, o, log.experiments()?.len() as u64])
    };
    Ok(LogCopy {
        impressions_read,
        outcomes_read,
        experiments_read: experiments.len() as u64,
        source: counts(from)?,
        target: counts(to)?,
    })
}

/// The rows [`Kpis`] are computed from, as either backend reads them.
#[derive(Default)]
struct KpiRows {
    /// Impressions, distinct users, empty searches, searches.
    lists: [i64; 4],
    /// Attributed outcomes: kind, count, value.
    by_kind: Vec<(i64, i64, f64)>,
    /// Unattributed outcomes, every purchase's value.
    unattributed: (i64, f64),
    /// Impressions by their length.
    shown: Vec<(i64, i64)>,
    /// Attributed clicks by position.
    clicks: Vec<(i64, i64)>,
}

impl KpiRows {
    fn kpis(self, from_ms: i64, to_ms: i64, surface: Option<&str>) -> Kpis {
        let [imps, users, empty_search, searches] = self.lists;
        let mut k = Kpis {
            from_ms,
            to_ms,
            surface: surface.map(str::to_string),
            impressions: imps as u64,
            users: users as u64,
            unattributed: self.unattributed.0 as u64,
            total_gmv: self.unattributed.1,
            ..Kpis::default()
        };
        if searches > 0 {
            k.zero_result_rate = Some(empty_search as f64 / searches as f64);
        }
        for (kind, n, value) in self.by_kind {
            let n = n as u64;
            match OutcomeKind::of(kind) {
                Some(OutcomeKind::Click) => k.clicks = n,
                Some(OutcomeKind::Cart) => k.carts = n,
                Some(OutcomeKind::Purchase) => {
                    k.purchases = n;
                    k.attributed_gmv = value;
                }
                None => {}
            }
        }
        if imps > 0 {
            k.ctr = Some(k.clicks as f64 / imps as f64);
        }
        // CTR by position: clicks at p over the impressions that showed a p-th item.
        let mut shown_at: Vec<i64> = Vec::new();
        for &(n, c) in &self.shown {
            let n = (n.max(0) as usize).min(MAX_POSITIONS);
            if shown_at.len() < n {
                shown_at.resize(n, 0);
            }
            for x in &mut shown_at[..n] {
                *x += c;
            }
        }
        let mut clicks_at = vec![0i64; shown_at.len()];
        for &(p, c) in &self.clicks {
            if p >= 1 && (p as usize) <= clicks_at.len() {
                clicks_at[p as usize - 1] += c;
            }
        }
        k.ctr_by_position = clicks_at
            .iter()
            .zip(&shown_at)
            .map(|(&c, &n)| if n > 0 { c as f64 / n as f64 } else { 0.0 })
            .collect();
        k
    }
}

/// Search impressions counted by query (see [`OnlineLog::search_queries`]).
#[derive(Default)]
struct QueryTally {
    searches: u64,
    zero_result_searches: u64,
    by_query: HashMap<String, QueryCount>,
}

impl QueryTally {
    /// One search: its normalised query, the items it showed, its clicks.
    fn add(&mut self, q: String, n: i64, clicks: i64) {
        self.searches += 1;
        let e = self
            .by_query
            .entry(q.clone())
            .or_insert_with(|| QueryCount {
                query: q,
                ..QueryCount::default()
            });
        e.searches += 1;
        e.clicks += clicks as u64;
        if n == 0 {
            self.zero_result_searches += 1;
            e.zero_results += 1;
        }
    }

    fn finish(self, from_ms: i64, to_ms: i64, limit: usize) -> QueryStats {
        let mut all: Vec<QueryCount> = self.by_query.into_values().collect();
        all.sort_by(|a, b| b.searches.cmp(&a.searches).then(a.query.cmp(&b.query)));
        let zero_result = all
            .iter()
            .filter(|q| q.zero_results > 0)
            .take(limit)
            .cloned()
            .collect();
        let distinct_queries = all.len() as u64;
        all.truncate(limit);
        QueryStats {
            from_ms,
            to_ms,
            searches: self.searches,
            zero_result_searches: self.zero_result_searches,
            distinct_queries,
            top: all,
            zero_result,
        }
    }
}

impl LoggedImpression {
    /// A recommendation list as logged, if it is usable whole (every
    /// position logged with its propensity).
    #[allow(clippy::too_many_arguments)]
    fn of_row(
        rid: i64,
        ts_ms: i64,
        user: String,
        n: i64,
        items: &[u8],
        model: String,
        events_seq: Option<i64>,
    ) -> Option<LoggedImpression> {
        let items = unpack_items(items);
        if items.is_empty()
            || items.len() != n as usize
            || items.iter().any(|s| s.propensity.is_none())
        {
            return None;
        }
        Some(LoggedImpression {
            rid: rid as u64,
            ts_ms,
            user,
            model,
            events_seq,
            items: items
                .into_iter()
                .map(|s| (s.item, s.propensity.unwrap_or(1.0)))
                .collect(),
            clicked: Vec::new(),
        })
    }

    /// Adds clicked positions (request id, position) to their lists.
    fn add_clicks(lists: &mut [LoggedImpression], clicks: &[(i64, i64)]) {
        let index: HashMap<u64, usize> =
            lists.iter().enumerate().map(|(i, l)| (l.rid, i)).collect();
        for &(rid, pos) in clicks {
            if let Some(&i) = index.get(&(rid as u64)) {
                let pos = pos as u32;
                if !lists[i].clicked.contains(&pos) {
                    lists[i].clicked.push(pos);
                }
            }
        }
    }
}

/// An experiment's cells by (user, arm, day), built from the log's rows:
/// impressions, then outcomes, then the pre-period's counts.
///
/// Cells are keyed by (user, arm, day) packed into a u64. The covering
/// index hands impressions over grouped by user (byte order), then arm,
/// then time, and users get their index as they first appear, so equal
/// keys are consecutive and keys only grow: one pass makes the cells in
/// key order, with no sort and one user lookup per user. (Sorting packed
/// keys took 1.2 s at 1M impressions; an SQL GROUP BY or a hash map of
/// cells 3-6x longer.)
struct Cells<'r> {
    rec: &'r ExperimentRecord,
    interleave: bool,
    users: HashMap<String, u32>,
    cells: Vec<(u64, UserDay)>,
    /// Outcomes of cells with no impression (a request id from another
    /// user's list, or a list shown on an earlier day).
    extra: Vec<(u64, UserDay)>,
    extra_at: HashMap<u64, usize>,
    pre: Vec<PrePeriod>,
    last_user: Vec<u8>,
    user: u32,
    last_arm: Option<(Vec<u8>, u16)>,
    last_outcome_user: Option<(String, u32)>,
}

impl<'r> Cells<'r> {
    fn new(rec: &'r ExperimentRecord) -> Cells<'r> {
        Cells {
            rec,
            interleave: rec.spec.mode == Mode::Interleave,
            users: HashMap::new(),
            cells: Vec::new(),
            extra: Vec::new(),
            extra_at: HashMap::new(),
            pre: Vec::new(),
            last_user: Vec::new(),
            user: u32::MAX,
            last_arm: None,
            last_outcome_user: None,
        }
    }

    fn index(&mut self, u: &str) -> u32 {
        if let Some(&i) = self.users.get(u) {
            return i;
        }
        let n = self.users.len() as u32;
        self.users.insert(u.to_string(), n);
        n
    }

    fn arm_of(&self, a: Option<&str>) -> u16 {
        a.and_then(|a| self.rec.spec.arm_index(a)).unwrap_or(0) as u16
    }

    fn day(&self, ts_ms: i64) -> u32 {
        ((ts_ms - self.rec.started_ms) / DAY_MS).max(0) as u32
    }

    fn pack(day: u32, user: u32, arm: u16) -> u64 {
        (u64::from(user) << 32) | (u64::from(arm) << 16) | u64::from(day.min(0xffff))
    }

    /// One impression of the experiment (users in byte order, then arms,
    /// then times).
    fn impression(&mut self, user: &[u8], arm: Option<&[u8]>, ts_ms: i64) {
        if self.user == u32::MAX || user != self.last_user.as_slice() {
            let Ok(text) = std::str::from_utf8(user) else {
                return;
            };
            self.user = self.index(text);
            self.last_user.clear();
            self.last_user.extend_from_slice(user);
        }
        let arm = if self.interleave {
            0
        } else {
            let a = arm.unwrap_or(b"");
            match &self.last_arm {
                Some((name, i)) if name.as_slice() == a => *i,
                _ => {
                    let i = self.arm_of(std::str::from_utf8(a).ok());
                    self.last_arm = Some((a.to_vec(), i));
                    i
                }
            }
        };
        let day = self.day(ts_ms);
        let k = Self::pack(day, self.user, arm);
        match self.cells.last_mut() {
            Some((last, c)) if *last == k => c.impressions += 1,
            _ => self.cells.push((
                k,
                UserDay {
                    user: self.user,
                    arm,
                    day,
                    impressions: 1,
                    ..UserDay::default()
                },
            )),
        }
    }

    /// After the impressions: keys grow along the scan; were they not to
    /// (another collation), sort and merge.
    fn impressions_done(&mut self) {
        if !self.cells.windows(2).all(|w| w[0].0 < w[1].0) {
            self.cells = merge_cells(std::mem::take(&mut self.cells), Vec::new());
        }
    }

    /// One outcome joined to a list of the experiment.
    fn outcome(
        &mut self,
        user: &str,
        arm: Option<&str>,
        ts_ms: i64,
        kind: i64,
        team: Option<i64>,
        value: f64,
    ) {
        let u = match &self.last_outcome_user {
            Some((name, i)) if name == user => *i,
            _ => {
                let i = self.index(user);
                self.last_outcome_user = Some((user.to_string(), i));
                i
            }
        };
        let arm = if self.interleave { 0 } else { self.arm_of(arm) };
        let day = self.day(ts_ms);
        let k = Self::pack(day, u, arm);
        let c = match self.cells.binary_search_by_key(&k, |c| c.0) {
            Ok(i) => &mut self.cells[i].1,
            Err(_) => {
                let extra = &mut self.extra;
                let i = *self.extra_at.entry(k).or_insert_with(|| {
                    extra.push((
                        k,
                        UserDay {
                            user: u,
                            arm,
                            day,
                            ..UserDay::default()
                        },
                    ));
                    extra.len() - 1
                });
                &mut self.extra[i].1
            }
        };
        match OutcomeKind::of(kind) {
            Some(OutcomeKind::Click) => {
                c.clicks += 1;
                if self.interleave {
                    let mut credit = Credit::default();
                    credit.add(team_of(team));
                    c.credit.a += credit.a;
                    c.credit.b += credit.b;
                }
            }
            Some(OutcomeKind::Cart) => c.carts += 1,
            Some(OutcomeKind::Purchase) => {
                c.purchases += 1;
                c.gmv += value;
            }
            None => {}
        }
    }

    /// A user's outcomes of one kind in the pre-period (users never shown
    /// a list of the experiment are not read).
    fn pre(&mut self, user: &str, kind: i64, n: i64, value: f64) {
        let Some(&u) = self.users.get(user) else {
            return;
        };
        if self.pre.len() < self.users.len() {
            self.pre.resize(self.users.len(), PrePeriod::default());
        }
        let n = n as f64;
        let p = &mut self.pre[u as usize];
        match OutcomeKind::of(kind) {
            Some(OutcomeKind::Click) => p.clicks += n,
            Some(OutcomeKind::Cart) => p.carts += n,
            Some(OutcomeKind::Purchase) => {
                p.purchases += n;
                p.gmv += value;
            }
            None => {}
        }
    }

    fn finish(mut self) -> ExperimentData {
        self.pre.resize(self.users.len(), PrePeriod::default());
        let rows = merge_cells(self.cells, self.extra)
            .into_iter()
            .map(|c| c.1)
            .collect();
        ExperimentData {
            rows,
            pre: self.pre,
        }
    }
}

/// Searches by query (`GET /v1/admin/search/queries`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryStats {
    pub from_ms: i64,
    pub to_ms: i64,
    pub searches: u64,
    pub zero_result_searches: u64,
    pub distinct_queries: u64,
    /// The most frequent queries, most searched first.
    pub top: Vec<QueryCount>,
    /// The most frequent queries that showed nothing at least once.
    pub zero_result: Vec<QueryCount>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryCount {
    pub query: String,
    pub searches: u64,
    /// Searches of it that showed no item.
    pub zero_results: u64,
    /// Clicks joined to its result lists.
    pub clicks: u64,
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

/// A list's items as one blob: per item a flags byte (bit 0: a propensity
/// follows; bits 1-2: the team code, 3 for none), the item id's length
/// (LEB128) and bytes, the score (f32 LE), the propensity (f64 LE) if any.
pub fn pack_items(items: &[Shown]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|s| s.item.len() + 14).sum());
    for s in items {
        let team = s.team.map_or(3, team_code) as u8;
        out.push(u8::from(s.propensity.is_some()) | (team << 1));
        let mut n = s.item.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(s.item.as_bytes());
        out.extend_from_slice(&s.score.to_le_bytes());
        if let Some(p) = s.propensity {
            out.extend_from_slice(&p.to_le_bytes());
        }
    }
    out
}

/// One packed item, borrowed; None past the end or at a damaged entry.
struct PackedItem<'a> {
    item: &'a [u8],
    score: f32,
    propensity: Option<f64>,
    team: Option<i64>,
}

fn next_packed<'a>(b: &mut &'a [u8]) -> Option<PackedItem<'a>> {
    let (&flags, rest) = b.split_first()?;
    let mut rest = rest;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let (&x, r) = rest.split_first()?;
        rest = r;
        len |= usize::from(x & 0x7f).checked_shl(shift)?;
        if x & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    let item = rest.get(..len)?;
    rest = &rest[len..];
    let score = f32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let propensity = if flags & 1 == 1 {
        let p = f64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        rest = &rest[8..];
        Some(p)
    } else {
        None
    };
    let team = match (flags >> 1) & 3 {
        3 => None,
        t => Some(i64::from(t)),
    };
    *b = rest;
    Some(PackedItem {
        item,
        score,
        propensity,
        team,
    })
}

/// A packed list's items (as many as are whole).
pub fn unpack_items(mut b: &[u8]) -> Vec<Shown> {
    let mut out = Vec::new();
    while let Some(p) = next_packed(&mut b) {
        out.push(Shown {
            item: String::from_utf8_lossy(p.item).into_owned(),
            score: p.score,
            propensity: p.propensity,
            team: p.team.map(|t| team_of(Some(t))),
        });
    }
    out
}

/// Where a packed list first showed `item` (1-based) and its team code.
fn find_item(mut b: &[u8], item: &str) -> Option<(u32, Option<i64>)> {
    let mut pos = 0u32;
    while let Some(p) = next_packed(&mut b) {
        pos += 1;
        if p.item == item.as_bytes() {
            return Some((pos, p.team));
        }
    }
    None
}

/// Brings a log written by an older version up to date: the `events_seq`
/// column, and items moved from the `shown` table (a row per item) into
/// their impression's blob.
fn migrate(conn: &Connection) -> Result<()> {
    let has_column = |c: &str| -> Result<bool> {
        Ok(conn
            .prepare("SELECT 1 FROM pragma_table_info('impressions') WHERE name = ?1")?
            .exists([c])?)
    };
    if !has_column("events_seq")? {
        conn.execute_batch("ALTER TABLE impressions ADD COLUMN events_seq INTEGER")?;
    }
    if !has_column("items")? {
        conn.execute_batch("ALTER TABLE impressions ADD COLUMN items BLOB")?;
    }
    let has_shown = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shown'")?
        .exists([])?;
    if !has_shown {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    {
        let mut read =
            tx.prepare("SELECT rid, item, score, propensity, team FROM shown ORDER BY rid, pos")?;
        let mut write = tx.prepare("UPDATE impressions SET items = ?2 WHERE rid = ?1")?;
        let mut rows = read.query([])?;
        let mut current: Option<(i64, Vec<Shown>)> = None;
        while let Some(r) = rows.next()? {
            let rid: i64 = r.get(0)?;
            if current.as_ref().is_some_and(|c| c.0 != rid) {
                let (id, items) = current.take().expect("checked");
                write.execute(params![id, pack_items(&items)])?;
            }
            current
                .get_or_insert_with(|| (rid, Vec::new()))
                .1
                .push(Shown {
                    item: r.get(1)?,
                    score: r.get::<_, Option<f64>>(2)?.unwrap_or(0.0) as f32,
                    propensity: r.get(3)?,
                    team: r.get::<_, Option<i64>>(4)?.map(|t| team_of(Some(t))),
                });
        }
        if let Some((id, items)) = current {
            write.execute(params![id, pack_items(&items)])?;
        }
    }
    tx.execute_batch("DROP TABLE shown")?;
    tx.commit()?;
    Ok(())
}

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

/// An impression's columns, in the order the row readers take them
/// (PostgreSQL's list names the user column `user_id`: `pg::IMPRESSION_COLUMNS`).
const IMPRESSION_COLUMNS: &str =
    "seq, rid, ts_ms, user, session, surface, experiment, arm, model, query, events_seq, items";

/// A row of [`IMPRESSION_COLUMNS`] from SQLite: its `seq` and the impression.
fn impression_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Impression)> {
    Ok((
        r.get(0)?,
        Impression {
            rid: r.get::<_, i64>(1)? as u64,
            ts_ms: r.get(2)?,
            user: r.get(3)?,
            session: r.get(4)?,
            surface: r.get(5)?,
            experiment: r.get(6)?,
            arm: r.get(7)?,
            model: r.get(8)?,
            query: r.get(9)?,
            events_seq: r.get(10)?,
            items: unpack_items(
                r.get_ref(11)?
                    .as_bytes_or_null()
                    .ok()
                    .flatten()
                    .unwrap_or(&[]),
            ),
        },
    ))
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ExperimentRecord>> {
    Ok(record_of(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
}

/// An experiment from its stored spec (JSON) and times.
fn record_of(json: &str, started_ms: i64, stopped_ms: Option<i64>) -> Result<ExperimentRecord> {
    serde_json::from_str::<ExperimentSpec>(json)
        .map_err(|e| StoreError::Corrupt(format!("experiment spec: {e}")))
        .map(|spec| ExperimentRecord {
            spec,
            started_ms,
            stopped_ms,
        })
}

/// Writes inside one transaction of [`OnlineLog::batch`].
pub struct Batch<'t>(Tx<'t>);

enum Tx<'t> {
    Lite {
        tx: &'t rusqlite::Transaction<'t>,
        seq: &'t mut i64,
    },
    Pg(Box<pg::PgBatch<'t>>),
}

/// An outcome as stored: the event and the list it was joined to (what
/// `aisle store copy` carries from one log to another).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOutcome {
    pub key: u64,
    pub ts_ms: i64,
    pub user: String,
    pub item: String,
    /// [`OutcomeKind`]'s code.
    pub kind: i64,
    pub value: f64,
    pub quantity: Option<f64>,
    pub rid: Option<i64>,
    pub pos: Option<i64>,
    /// `request_id` or `window`.
    pub how: Option<String>,
    pub surface: Option<String>,
    pub experiment: Option<String>,
    pub arm: Option<String>,
    pub team: Option<i64>,
}

impl Batch<'_> {
    pub fn log_impression(&mut self, i: &Impression) -> Result<()> {
        let (tx, seq) = match &mut self.0 {
            Tx::Pg(b) => {
                b.push(i);
                return Ok(());
            }
            Tx::Lite { tx, seq } => (tx, seq),
        };
        tx.prepare_cached(
            "INSERT OR IGNORE INTO impressions(rid, ts_ms, user, session, surface, experiment, arm, model, query, n, seq, events_seq, items)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
            **seq,
            i.events_seq,
            pack_items(&i.items)
        ])?;
        **seq += 1;
        Ok(())
    }

    /// Joins an outcome to its list and records it (once per event key).
    pub fn attribute(&mut self, o: &Outcome, window_ms: i64) -> Result<Attribution> {
        if self.seen(o.key)? {
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
                    let listed = find_item(&j.items, &o.item);
                    let rid = j.rid;
                    joined = Some((j, listed.and_then(|l| l.1)));
                    Attribution::Request {
                        rid,
                        position: listed.map(|l| l.0).or(o.position),
                    }
                }
                None => Attribution::UnknownRequest,
            }
        } else {
            match self.latest_showing(o, window_ms)? {
                Some((j, pos, team)) => {
                    let rid = j.rid;
                    joined = Some((j, team));
                    Attribution::Window { rid, position: pos }
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
        let row = StoredOutcome {
            key: o.key,
            ts_ms: o.ts_ms,
            user: o.user.clone(),
            item: o.item.clone(),
            kind: o.kind as i64,
            value: o.value,
            quantity: o.quantity,
            rid,
            pos,
            how: label.map(str::to_string),
            surface,
            experiment,
            arm,
            team,
        };
        // (Another process joined the same event meanwhile: a retry sent
        // to a second replica.)
        Ok(if self.insert_outcome(&row)? {
            how
        } else {
            Attribution::Duplicate
        })
    }

    /// Stores an outcome as it is (a copy); false when one of its event key
    /// is there already.
    pub fn put_outcome(&mut self, row: &StoredOutcome) -> Result<bool> {
        if self.seen(row.key)? {
            return Ok(false);
        }
        self.insert_outcome(row)
    }

    /// Stores an experiment as it is (a copy), unless one of its name is there.
    pub fn put_experiment(&mut self, rec: &ExperimentRecord) -> Result<()> {
        let json =
            serde_json::to_string(&rec.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let surface = rec.spec.surface.name();
        match &mut self.0 {
            Tx::Pg(b) => b.put_experiment(&rec.spec.name, &json, surface, rec),
            Tx::Lite { tx, .. } => {
                tx.execute(
                    "INSERT OR IGNORE INTO experiments(name, spec, surface, started_ms, stopped_ms)
                     VALUES(?1, ?2, ?3, ?4, ?5)",
                    params![rec.spec.name, json, surface, rec.started_ms, rec.stopped_ms],
                )?;
                Ok(())
            }
        }
    }

    /// Inserts an outcome; false when one of its key was there (PostgreSQL:
    /// another process inserted it since [`Batch::seen`] looked).
    fn insert_outcome(&mut self, row: &StoredOutcome) -> Result<bool> {
        match &mut self.0 {
            Tx::Pg(b) => b.insert_outcome(row),
            Tx::Lite { tx, .. } => {
                tx.prepare_cached(
                    "INSERT INTO outcomes(ekey, ts_ms, user, item, kind, value, quantity, rid, pos, how,
                                          surface, experiment, arm, team)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )?
                .execute(params![
                    row.key as i64,
                    row.ts_ms,
                    row.user,
                    row.item,
                    row.kind,
                    row.value,
                    row.quantity,
                    row.rid,
                    row.pos,
                    row.how,
                    row.surface,
                    row.experiment,
                    row.arm,
                    row.team
                ])?;
                Ok(true)
            }
        }
    }

    /// Whether an outcome of this event key is stored.
    fn seen(&mut self, key: u64) -> Result<bool> {
        match &mut self.0 {
            Tx::Pg(b) => b.seen(key),
            Tx::Lite { tx, .. } => Ok(tx
                .prepare_cached("SELECT 1 FROM outcomes WHERE ekey = ?1")?
                .query_row([key as i64], |_| Ok(()))
                .optional()?
                .is_some()),
        }
    }

    /// The impression a request id names, if it was issued (and kept).
    fn joined(&mut self, rid: u64) -> Result<Option<Joined>> {
        match &mut self.0 {
            Tx::Pg(b) => b.joined(rid),
            Tx::Lite { tx, .. } => Ok(tx
                .prepare_cached(
                    "SELECT surface, experiment, arm, items FROM impressions WHERE rid = ?1",
                )?
                .query_row([rid as i64], |r| {
                    Ok(Joined {
                        rid,
                        surface: r.get(0)?,
                        experiment: r.get(1)?,
                        arm: r.get(2)?,
                        items: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                    })
                })
                .optional()?),
        }
    }

    /// The user's lists in the window, latest first, until one showed the
    /// item: that list, the item's position and team.
    fn latest_showing(&mut self, o: &Outcome, window_ms: i64) -> Result<Option<Shower>> {
        let tx = match &mut self.0 {
            Tx::Pg(b) => return b.latest_showing(o, window_ms),
            Tx::Lite { tx, .. } => tx,
        };
        let mut st = tx.prepare_cached(
            "SELECT rid, items, surface, experiment, arm FROM impressions
             WHERE user = ?1 AND ts_ms >= ?2 AND ts_ms <= ?3
             ORDER BY ts_ms DESC, seq DESC LIMIT ?4",
        )?;
        let mut rows = st.query(params![
            o.user,
            o.ts_ms - window_ms,
            o.ts_ms + CLOCK_SKEW_MS,
            WINDOW_LISTS
        ])?;
        while let Some(r) = rows.next()? {
            let items = r
                .get_ref(1)?
                .as_bytes_or_null()
                .ok()
                .flatten()
                .unwrap_or(&[]);
            if let Some((pos, team)) = find_item(items, &o.item) {
                let j = Joined {
                    rid: r.get::<_, i64>(0)? as u64,
                    surface: r.get(2)?,
                    experiment: r.get(3)?,
                    arm: r.get(4)?,
                    items: Vec::new(),
                };
                return Ok(Some((j, pos, team)));
            }
        }
        Ok(None)
    }
}

/// A list that showed an item: the list, the item's position and team.
type Shower = (Joined, u32, Option<i64>);

/// What an outcome copies from the impression it is joined to.
pub(crate) struct Joined {
    pub rid: u64,
    pub surface: String,
    pub experiment: Option<String>,
    pub arm: Option<String>,
    /// The list's packed items (read when joined by request id).
    pub items: Vec<u8>,
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
