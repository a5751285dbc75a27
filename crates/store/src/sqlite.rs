//! The embedded SQLite backend (WAL, `synchronous=FULL`).
//!
//! Users and items are interned into integer ids so the event table and its
//! `(user, ts, seq)` index stay small; `seq` (the rowid) is the insertion
//! order and breaks timestamp ties in file order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use aisle_core::{CatalogItem, Event, EventType, StoredEvent};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{EventStore, Result, StoreError, StoreStats, SCHEMA_VERSION};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, ext TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY,
    ext TEXT NOT NULL UNIQUE,
    title TEXT, description TEXT, category TEXT, price REAL,
    in_stock INTEGER NOT NULL DEFAULT 1,
    in_catalog INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY,
    ekey INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    etype INTEGER NOT NULL,
    source_type TEXT NOT NULL,
    quantity REAL, price REAL, session TEXT, value REAL);
-- Identity links: an alias (anonymous or device id) and the user it belongs to.
CREATE TABLE IF NOT EXISTS aliases(
    alias TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    linked_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS aliases_owner ON aliases(owner, alias);
";

/// Secondary indexes of the events table. Dropped during a bulk load into an
/// empty store and rebuilt after it (sorting once beats 400k random inserts);
/// `open` recreates any that a crash left missing. The per-user index
/// covers what a user's events are read for (item and type too), so the
/// start-up windows read it alone, in order, with no lookup into the table
/// per event (at 10^7 events: 1.2 s against 13.7 s cold); it replaces the
/// narrower `events_user_ts` of earlier stores, built again at their first open.
const EVENT_INDEXES: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events(ekey);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts, seq, item_id, etype);
DROP INDEX IF EXISTS events_user_ts;
";

/// SQLite-backed [`EventStore`].
pub struct SqliteStore {
    conn: Connection,
    /// In a bulk load (the per-user index is dropped).
    bulk: bool,
    path: String,
    users: HashMap<String, i64>,
    items: HashMap<String, i64>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self> {
        // One connection per store object, never shared between threads:
        // SQLite's own mutexes are not needed.
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )?;
        Self::init(conn, path.display().to_string())
    }

    pub fn open_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, ":memory:".into())
    }

    fn init(conn: Connection, path: String) -> Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        // Deleted content is overwritten with zeros (erasure leaves no ids in
        // freed pages).
        conn.pragma_update(None, "secure_delete", "ON")?;
        // 64 MiB page cache: index inserts for random idempotency keys stay in memory.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "threads", 2)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        create_indexes(&conn)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        crate::check_schema_version(version.as_deref(), &path)?;
        if version.is_none() {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?1)",
                [SCHEMA_VERSION.to_string()],
            )?;
        }
        let (users, items) = SqliteStore::init_caches(&conn)?;
        Ok(SqliteStore {
            conn,
            bulk: false,
            path,
            users,
            items,
        })
    }

    /// Where the database lives (`:memory:` for an in-memory store).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Builds the event indexes. Should duplicate keys exist (only a bug could
/// cause them), the oldest copy is kept and the rest deleted before the
/// unique index is built.
fn create_indexes(conn: &Connection) -> Result<u64> {
    match conn.execute_batch(EVENT_INDEXES) {
        Ok(()) => Ok(0),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let n = conn.execute(
                "DELETE FROM events WHERE seq NOT IN (SELECT MIN(seq) FROM events GROUP BY ekey)",
                [],
            )?;
            tracing::info!(
                deleted = n,
                "events stored twice removed while building the indexes (the first copy kept)"
            );
            conn.execute_batch(EVENT_INDEXES)?;
            Ok(n as u64)
        }
        Err(e) => Err(e.into()),
    }
}

fn intern(
    tx: &rusqlite::Transaction<'_>,
    cache: &mut HashMap<String, i64>,
    table: &str,
    ext: &str,
) -> Result<i64> {
    if let Some(id) = cache.get(ext) {
        return Ok(*id);
    }
    let mut ins = tx.prepare_cached(&format!("INSERT INTO {table}(ext) VALUES(?1)"))?;
    ins.execute([ext])?;
    let id = tx.last_insert_rowid();
    cache.insert(ext.to_string(), id);
    Ok(id)
}

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let code: u8 = r.get(5)?;
    Ok(StoredEvent {
        seq: r.get(0)?,
        event: Event {
            key: r.get::<_, i64>(1)? as u64,
            user: r.get(2)?,
            item: r.get(3)?,
            ts: r.get(4)?,
            event_type: EventType::from_code(code).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    5,
                    rusqlite::types::Type::Integer,
                    format!("unknown event type code {code}").into(),
                )
            })?,
            source_type: r.get(6)?,
            quantity: r.get(7)?,
            price: r.get(8)?,
            session: r.get(9)?,
            value: r.get(10)?,
        },
    })
}

const EVENT_COLUMNS: &str = "e.seq, e.ekey, u.ext, i.ext, e.ts, e.etype, e.source_type, e.quantity, e.price, e.session, e.value
     FROM events e JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id";

/// An event from a row of `seq, ekey, _, _, ts, etype, source_type,
/// quantity, price, session, value` (columns 2 and 3, the user and the item,
/// are the caller's to name).
fn event_row(r: &rusqlite::Row<'_>, user: String, item: String) -> Result<StoredEvent> {
    let code: u8 = r.get(5)?;
    Ok(StoredEvent {
        seq: r.get(0)?,
        event: Event {
            key: r.get::<_, i64>(1)? as u64,
            user,
            item,
            ts: r.get(4)?,
            event_type: EventType::from_code(code)
                .ok_or_else(|| StoreError::Corrupt(format!("event type code {code}")))?,
            source_type: r.get(6)?,
            quantity: r.get(7)?,
            price: r.get(8)?,
            session: r.get(9)?,
            value: r.get(10)?,
        },
    })
}

impl EventStore for SqliteStore {
    fn append_detailed(&mut self, events: &[Event]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(events.len());
        // Roll back the interning caches if the transaction fails.
        let (users_before, items_before) = (self.users.len(), self.items.len());
        let res: Result<()> = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR IGNORE INTO events(ekey, user_id, item_id, ts, etype, source_type, quantity, price, session, value)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for e in events {
                    let u = intern(&tx, &mut self.users, "users", &e.user)?;
                    let i = intern(&tx, &mut self.items, "items", &e.item)?;
                    let n = ins.execute(params![
                        e.key as i64,
                        u,
                        i,
                        e.ts,
                        e.event_type.code(),
                        e.source_type,
                        e.quantity,
                        e.price,
                        e.session,
                        e.value
                    ])?;
                    out.push(n == 1);
                }
            }
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = res {
            if self.users.len() != users_before || self.items.len() != items_before {
                // Reload the caches from disk: ids minted in the failed transaction are gone.
                let fresh = SqliteStore::init_caches(&self.conn)?;
                self.users = fresh.0;
                self.items = fresh.1;
            }
            return Err(e);
        }
        Ok(out)
    }

    fn begin_bulk(&mut self) -> Result<bool> {
        if self.bulk {
            return Ok(true);
        }
        let empty: bool =
            self.conn
                .query_row("SELECT NOT EXISTS(SELECT 1 FROM events)", [], |r| r.get(0))?;
        if !empty {
            return Ok(false);
        }
        // Bulk mode: both event indexes rebuilt by sorting once at the end.
        // The unique key index on random 64-bit keys would otherwise take
        // its inserts on random pages once it outgrows the page cache (the
        // super-linear term of a 10^7-event load, BENCHMARKS.md §16.1); a
        // key appended twice meanwhile is removed when the index is built.
        // WAL checkpoints go on as usual: a WAL the size of the table makes
        // every page lookup slower.
        self.conn
            .execute_batch("DROP INDEX IF EXISTS events_user; DROP INDEX IF EXISTS events_key;")?;
        self.bulk = true;
        Ok(true)
    }

    fn end_bulk(&mut self) -> Result<u64> {
        let mut twice = 0;
        if std::mem::take(&mut self.bulk) {
            let t = std::time::Instant::now();
            twice = create_indexes(&self.conn)?;
            tracing::debug!(secs = t.elapsed().as_secs_f64(), twice, "indexes rebuilt");
            let t = std::time::Instant::now();
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            tracing::debug!(secs = t.elapsed().as_secs_f64(), "checkpointed");
        }
        Ok(twice)
    }

    fn upsert_items(&mut self, items: &[CatalogItem]) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO items(ext, title, description, category, price, in_stock, in_catalog)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1)
                 ON CONFLICT(ext) DO UPDATE SET title=excluded.title, description=excluded.description,
                   category=excluded.category, price=excluded.price, in_stock=excluded.in_stock, in_catalog=1",
            )?;
            for it in items {
                n += st.execute(params![
                    it.id,
                    it.title,
                    it.description,
                    it.category,
                    it.price,
                    it.in_stock
                ])? as u64;
            }
        }
        tx.commit()?;
        let (_, items) = SqliteStore::init_caches(&self.conn)?;
        self.items = items;
        Ok(n)
    }

    fn catalog(&self) -> Result<Vec<CatalogItem>> {
        let mut st = self.conn.prepare(
            "SELECT ext, title, description, category, price, in_stock FROM items WHERE in_catalog = 1 ORDER BY ext",
        )?;
        let rows = st.query_map([], |r| {
            Ok(CatalogItem {
                id: r.get(0)?,
                title: r.get(1)?,
                description: r.get(2)?,
                category: r.get(3)?,
                price: r.get(4)?,
                in_stock: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn user_events(&self, user: &str, limit: usize) -> Result<Vec<StoredEvent>> {
        let Some(uid) = self.users.get(user) else {
            return Ok(Vec::new());
        };
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} WHERE e.user_id = ?1 ORDER BY e.ts DESC, e.seq DESC LIMIT ?2"
        ))?;
        let mut v: Vec<StoredEvent> = st
            .query_map(params![uid, limit as i64], row_to_event)?
            .collect::<rusqlite::Result<_>>()?;
        v.reverse();
        Ok(v)
    }

    fn last_seq(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    fn users_present(&self, users: &[&str]) -> Result<Vec<bool>> {
        Ok(users.iter().map(|u| self.users.contains_key(*u)).collect())
    }

    /// One pass over the per-user index (read backwards: newest first per
    /// user, no sort), holding one user's events at a time.
    fn live_windows(
        &self,
        per_user: usize,
        f: &mut dyn FnMut(crate::UserWindow),
    ) -> Result<Option<crate::WindowTotals>> {
        let names = |m: &HashMap<String, i64>| -> HashMap<i64, String> {
            m.iter().map(|(k, v)| (*v, k.clone())).collect()
        };
        let (users, items) = (names(&self.users), names(&self.items));
        let name = |m: &HashMap<i64, String>, id: i64| -> Result<String> {
            m.get(&id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("event with unknown id {id}")))
        };
        let mut st = self.conn.prepare(
            "SELECT user_id, item_id, ts, etype, seq FROM events INDEXED BY events_user
             ORDER BY user_id DESC, ts DESC, seq DESC",
        )?;
        let mut rows = st.query([])?;
        let mut totals = crate::WindowTotals::default();
        let mut counts: HashMap<i64, u64> = HashMap::new();
        // The current user: id, latest events (newest first), and per item
        // whether its latest purchase-or-cancel was a purchase.
        type Recent = Vec<(String, EventType, i64)>;
        let mut current: Option<(i64, Recent, HashMap<i64, bool>)> = None;
        let mut emit = |uid: i64, mut recent: Recent, decided: HashMap<i64, bool>| -> Result<()> {
            recent.reverse();
            let mut purchased = Vec::new();
            for (item, bought) in decided {
                if bought {
                    purchased.push(name(&items, item)?);
                }
            }
            purchased.sort();
            f(crate::UserWindow {
                user: name(&users, uid)?,
                recent,
                purchased,
            });
            Ok(())
        };
        while let Some(r) = rows.next()? {
            let (uid, iid, ts, code, seq): (i64, i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let t = EventType::from_code(code as u8)
                .ok_or_else(|| StoreError::Corrupt(format!("event type code {code}")))?;
            totals.events += 1;
            totals.max_ts = totals.max_ts.max(ts);
            totals.last_seq = totals.last_seq.max(seq);
            if t != EventType::Cancel {
                *counts.entry(iid).or_default() += 1;
            }
            if current.as_ref().is_none_or(|c| c.0 != uid) {
                if let Some((u, recent, decided)) = current.take() {
                    emit(u, recent, decided)?;
                }
                current = Some((uid, Vec::new(), HashMap::new()));
            }
            let (_, recent, decided) = current.as_mut().expect("set above");
            if recent.len() < per_user {
                recent.push((name(&items, iid)?, t, ts));
            }
            if matches!(t, EventType::Purchase | EventType::Cancel) {
                decided.entry(iid).or_insert(t == EventType::Purchase);
            }
        }
        if let Some((u, recent, decided)) = current.take() {
            emit(u, recent, decided)?;
        }
        let mut interactions = Vec::with_capacity(counts.len());
        for (iid, n) in counts {
            interactions.push((name(&items, iid)?, n));
        }
        interactions.sort();
        totals.interactions = interactions;
        Ok(Some(totals))
    }

    fn link_alias(&mut self, user: &str, alias: &str, at: i64) -> Result<crate::Link> {
        let tx = self.conn.transaction()?;
        let facts = tx.query_row(crate::LINK_FACTS_SQL, [user, alias], |r| {
            Ok(crate::LinkFacts {
                user_owner: r.get(0)?,
                alias_owner: r.get(1)?,
                alias_has_aliases: r.get(2)?,
            })
        })?;
        if let Some(done) = crate::link_outcome(user, alias, facts) {
            return Ok(done);
        }
        tx.execute(
            "INSERT INTO aliases(alias, owner, linked_at) VALUES(?1, ?2, ?3)",
            rusqlite::params![alias, user, at],
        )?;
        tx.commit()?;
        Ok(crate::Link::Linked)
    }

    fn unlink_alias(&mut self, user: &str, alias: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM aliases WHERE alias = ?1 AND owner = ?2",
            [alias, user],
        )? > 0)
    }

    fn aliases(&self) -> Result<Vec<(String, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT alias, owner FROM aliases ORDER BY alias")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn aliases_of(&self, user: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT alias FROM aliases WHERE owner = ?1 ORDER BY alias")?;
        let rows = st.query_map([user], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn events_since(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut st = self.conn.prepare_cached(
            "SELECT e.seq, e.ekey, u.ext, i.ext, e.ts, e.etype, e.source_type, e.quantity, e.price, e.session, e.value
             FROM events e JOIN users u ON u.id = e.user_id JOIN items i ON i.id = e.item_id
             WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
        )?;
        let mut rows = st.query(rusqlite::params![after, limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(event_row(r, r.get(2)?, r.get(3)?)?);
        }
        Ok(out)
    }

    fn scan_events(&self, f: &mut dyn FnMut(StoredEvent)) -> Result<()> {
        let users: HashMap<i64, &str> = self.users.iter().map(|(k, v)| (*v, k.as_str())).collect();
        let items: HashMap<i64, &str> = self.items.iter().map(|(k, v)| (*v, k.as_str())).collect();
        let mut st = self.conn.prepare(
            "SELECT seq, ekey, user_id, item_id, ts, etype, source_type, quantity, price, session, value FROM events ORDER BY seq",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let uid: i64 = r.get(2)?;
            let iid: i64 = r.get(3)?;
            let user = users
                .get(&uid)
                .ok_or_else(|| StoreError::Corrupt(format!("event with unknown user id {uid}")))?;
            let item = items
                .get(&iid)
                .ok_or_else(|| StoreError::Corrupt(format!("event with unknown item id {iid}")))?;
            f(event_row(r, user.to_string(), item.to_string())?);
        }
        Ok(())
    }

    fn profile(&self, from_ts: i64, to_ts: i64) -> Result<crate::Profile> {
        let mut out = crate::Profile::default();
        let mut st = self.conn.prepare_cached(
            "SELECT etype, (ts % 86400) / 3600, COUNT(*) FROM events
             WHERE ts >= ?1 AND ts < ?2 GROUP BY 1, 2",
        )?;
        let mut rows = st.query(params![from_ts, to_ts])?;
        while let Some(r) = rows.next()? {
            let (t, h, n): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if let Some(x) = out.by_type.get_mut(t as usize) {
                *x += n as u64;
            }
            out.by_hour[h.rem_euclid(24) as usize] += n as u64;
        }
        let items: HashMap<i64, &str> = self.items.iter().map(|(k, v)| (*v, k.as_str())).collect();
        let mut st = self.conn.prepare_cached(
            "SELECT item_id, COUNT(*) FROM events WHERE ts >= ?1 AND ts < ?2 GROUP BY 1",
        )?;
        let mut rows = st.query(params![from_ts, to_ts])?;
        while let Some(r) = rows.next()? {
            let (i, n): (i64, i64) = (r.get(0)?, r.get(1)?);
            if let Some(id) = items.get(&i) {
                out.by_item.push((id.to_string(), n as u64));
            }
        }
        Ok(out)
    }

    fn daily(&self, from_day: i64, to_day: i64) -> Result<Vec<crate::DayCounts>> {
        let mut days = crate::Days::new(from_day, to_day);
        let Some((from_ts, to_ts)) = days.ts_range() else {
            return Ok(days.into_vec());
        };
        let mut st = self.conn.prepare_cached(
            "SELECT ts / 86400, etype, COUNT(*) FROM events
             WHERE ts >= ?1 AND ts < ?2 GROUP BY 1, 2",
        )?;
        let mut rows = st.query(params![from_ts, to_ts])?;
        while let Some(r) = rows.next()? {
            days.add_events(r.get(0)?, r.get(1)?, r.get(2)?);
        }
        // First events: users through their (user, ts) index; items by a scan.
        for (col, users) in [("user_id", true), ("item_id", false)] {
            let mut st = self.conn.prepare_cached(&format!(
                "SELECT f / 86400, COUNT(*) FROM
                   (SELECT MIN(ts) AS f FROM events GROUP BY {col})
                 WHERE f >= ?1 AND f < ?2 GROUP BY 1"
            ))?;
            let mut rows = st.query(params![from_ts, to_ts])?;
            while let Some(r) = rows.next()? {
                days.set_first_seen(r.get(0)?, users, r.get(1)?);
            }
        }
        Ok(days.into_vec())
    }

    fn stats(&self) -> Result<StoreStats> {
        let c = &self.conn;
        let (events, users, items, tmin, tmax): (u64, u64, u64, Option<i64>, Option<i64>) = c.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT item_id), MIN(ts), MAX(ts) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let catalog_items: u64 =
            c.query_row("SELECT COUNT(*) FROM items WHERE in_catalog = 1", [], |r| {
                r.get(0)
            })?;
        let mut by_type = BTreeMap::new();
        let mut st = c.prepare("SELECT etype, COUNT(*) FROM events GROUP BY etype")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, u8>(0)?, r.get::<_, u64>(1)?)))?;
        for row in rows {
            let (code, n) = row?;
            let name = EventType::from_code(code)
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| format!("code_{code}"));
            by_type.insert(name, n);
        }
        Ok(StoreStats {
            users,
            items,
            events,
            events_by_type: by_type,
            catalog_items,
            time_min: tmin,
            time_max: tmax,
        })
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    fn delete_user(&mut self, user: &str) -> Result<u64> {
        let mut ids = self.aliases_of(user)?;
        ids.push(user.to_string());
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for id in &ids {
            if let Some(&uid) = self.users.get(id) {
                n += tx.execute("DELETE FROM events WHERE user_id = ?1", [uid])? as u64;
                tx.execute("DELETE FROM users WHERE id = ?1", [uid])?;
            }
        }
        tx.execute("DELETE FROM aliases WHERE owner = ?1 OR alias = ?1", [user])?;
        tx.commit()?;
        for id in &ids {
            self.users.remove(id);
        }
        // The WAL still holds the pages as they were before the delete:
        // copy the zeroed pages into the database and empty the WAL.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(n)
    }
}

type Caches = (HashMap<String, i64>, HashMap<String, i64>);

impl SqliteStore {
    fn init_caches(conn: &Connection) -> Result<Caches> {
        let mut out = (HashMap::new(), HashMap::new());
        for (table, map) in [("users", &mut out.0), ("items", &mut out.1)] {
            let mut st = conn.prepare(&format!("SELECT ext, id FROM {table}"))?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (e, i) = row?;
                map.insert(e, i);
            }
        }
        Ok(out)
    }
}
