//! `aisle-store`: the durable event log and catalog.
//!
//! Callers see the [`EventStore`] trait only; the backend is picked by URL
//! (as gorse does): `sqlite:///path/aisle.db`, a plain directory path (the
//! store is `DIR/aisle.db`), `sqlite::memory:` for tests, or
//! `postgres://USER:PASSWORD@HOST/DB` (the [`pg`] backend, one database per
//! store).
//!
//! **Durability**: SQLite in WAL mode with `synchronous=FULL`. An append
//! returns only after its transaction is committed and the WAL is synced, so
//! an acknowledged event survives `kill -9` (and power loss).
//!
//! **Idempotency**: every event carries a 64-bit key; appending a key the
//! store already holds is a no-op, counted in [`AppendOutcome::already_present`].
//!
//! ```
//! use aisle_core::{Event, EventType};
//! let mut store = aisle_store::open("sqlite::memory:").unwrap();
//! let ev = Event { key: 1, user: "u1".into(), item: "i1".into(), ts: 10,
//!     event_type: EventType::View, source_type: "view".into(),
//!     quantity: None, price: None, session: None, value: None };
//! assert_eq!(store.append(&[ev.clone()]).unwrap().inserted, 1);
//! assert_eq!(store.append(&[ev]).unwrap().already_present, 1);
//! assert_eq!(store.stats().unwrap().events, 1);
//! ```

pub mod copy;
mod dataset;
pub mod ingests;
pub mod online;
pub mod pg;
pub mod shops;
mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aisle_core::{CatalogItem, Event, EventType, StoredEvent};
use serde::{Deserialize, Serialize};

pub use dataset::DatasetMeta;
pub use ingests::IngestLog;
pub use pg::PgStore;
pub use sqlite::SqliteStore;

/// On-disk schema version; a store written by a newer version is refused.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported store URL `{url}`: {reason}")]
    UnsupportedUrl { url: String, reason: String },
    #[error("cannot create store directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("store {path} has schema version {found}, this build reads up to {supported}")]
    SchemaTooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("store {path} does not exist (run `aisle ingest` first)")]
    Missing { path: String },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("cannot reach the store at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("corrupt value in store: {0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    BadShop(String),
    #[error("shop {0:?} exists")]
    ShopExists(String),
    #[error("no shop named {0:?}")]
    UnknownShop(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Checks a store's recorded `schema_version` (None: a new store, which
/// this build will stamp); a newer one than this build reads is refused.
pub(crate) fn check_schema_version(found: Option<&str>, path: &str) -> Result<()> {
    let Some(v) = found else { return Ok(()) };
    let found: u32 = v
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("schema_version {v:?}")))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// What one append did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub inserted: u64,
    pub already_present: u64,
}

/// Summary figures of a store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Distinct users with at least one event.
    pub users: u64,
    /// Distinct items with at least one event.
    pub items: u64,
    pub events: u64,
    pub events_by_type: BTreeMap<String, u64>,
    /// Items in the catalog (with or without events).
    pub catalog_items: u64,
    pub time_min: Option<i64>,
    pub time_max: Option<i64>,
}

/// The storage interface every backend implements.
pub trait EventStore: Send {
    /// Appends events durably (one transaction); known keys are skipped.
    fn append(&mut self, events: &[Event]) -> Result<AppendOutcome> {
        let fresh = self.append_detailed(events)?;
        let inserted = fresh.iter().filter(|&&f| f).count() as u64;
        Ok(AppendOutcome {
            inserted,
            already_present: fresh.len() as u64 - inserted,
        })
    }
    /// As [`EventStore::append`], telling for each event whether it was new
    /// (false: its key was already present).
    fn append_detailed(&mut self, events: &[Event]) -> Result<Vec<bool>>;
    /// Starts a bulk load if the store holds no events yet: indexes are
    /// dropped and rebuilt by [`EventStore::end_bulk`]. Appends stay durable
    /// meanwhile; an event appended twice inside the load may be counted
    /// as inserted both times and is stored once when the load ends (see
    /// `end_bulk`). Returns whether bulk mode is on.
    fn begin_bulk(&mut self) -> Result<bool>;
    /// Ends a bulk load (rebuilds indexes); returns how many of the load's
    /// appends were of an event it already held: counted as inserted when
    /// appended, their later copies are removed now (the first kept). A
    /// no-op (0) outside one.
    fn end_bulk(&mut self) -> Result<u64>;
    /// Inserts or replaces catalog entries; returns how many were written.
    fn upsert_items(&mut self, items: &[CatalogItem]) -> Result<u64>;
    /// The catalog, ordered by item id.
    fn catalog(&self) -> Result<Vec<CatalogItem>>;
    /// A user's latest `limit` events, oldest first.
    fn user_events(&self, user: &str, limit: usize) -> Result<Vec<StoredEvent>>;
    /// Every event in insertion order.
    fn scan_events(&self, f: &mut dyn FnMut(StoredEvent)) -> Result<()>;
    /// Up to `limit` events with a sequence number above `after`, in
    /// sequence order: what a replica's live view has not seen yet.
    fn events_since(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>>;
    /// The sequence number of the latest event (0 when there is none).
    fn last_seq(&self) -> Result<i64>;
    fn stats(&self) -> Result<StoreStats>;
    /// The events with `from_ts <= ts < to_ts`, counted by type, by hour of
    /// the day (UTC) and by item: what drift is measured on.
    fn profile(&self, from_ts: i64, to_ts: i64) -> Result<Profile>;
    /// The UTC days from `from_day` to `to_day` (day numbers: Unix seconds
    /// / 86,400; both included, at most [`MAX_DAYS`]): each day's events by
    /// type, and the users and items whose first event falls on it.
    fn daily(&self, from_day: i64, to_day: i64) -> Result<Vec<DayCounts>>;
    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()>;
    /// Erases a user's events, and those of every alias linked to the user
    /// with the links themselves (an alias's own erasure removes its link);
    /// returns how many events were deleted.
    fn delete_user(&mut self, user: &str) -> Result<u64>;
    /// Links `alias` (an anonymous or device id) to `user`: from now on
    /// their events make one history (see [`Link`] for what is refused).
    /// `at`: Unix seconds, kept with the link.
    fn link_alias(&mut self, user: &str, alias: &str, at: i64) -> Result<Link>;
    /// Removes the link of `alias` to `user`; false when there was none.
    fn unlink_alias(&mut self, user: &str, alias: &str) -> Result<bool>;
    /// Every link as (alias, user), ordered by alias.
    fn aliases(&self) -> Result<Vec<(String, String)>>;
    /// The aliases linked to `user`, ordered.
    fn aliases_of(&self, user: &str) -> Result<Vec<String>>;
    /// What a serving replica starts from without reading every event:
    /// each user's latest `per_user` events (time order), the purchases they
    /// hold, and every item's interaction count. None: the backend has no
    /// such read (the caller scans every event).
    fn live_windows(
        &self,
        per_user: usize,
        f: &mut dyn FnMut(UserWindow),
    ) -> Result<Option<WindowTotals>> {
        let _ = (per_user, f);
        Ok(None)
    }
    /// Which of `users` the store knows (has not erased), in their order.
    fn users_present(&self, users: &[&str]) -> Result<Vec<bool>>;
    /// Erasures so far (a counter another process's erasure moves; 0 for a
    /// store only one process serves).
    fn erasures(&self) -> Result<i64> {
        Ok(0)
    }
    /// Tells the other processes over this store about a change (see
    /// [`Change`]); a no-op for a store only one process serves (SQLite).
    /// The store publishes its own changes (events, catalog, erasures); a
    /// caller publishes what the store cannot tell (an item deleted from
    /// the catalog, a promotion).
    fn publish(&mut self, change: &Change) -> Result<()> {
        let _ = change;
        Ok(())
    }
    /// Whether other processes may write to this store (a replica then
    /// follows their changes through [`pg::Listener`]).
    fn shared(&self) -> bool {
        false
    }
}

/// What [`EventStore::link_alias`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The link is new.
    Linked,
    /// The alias was already linked to this user (nothing changed).
    Already,
    /// Refused; nothing changed.
    Refused(LinkRefusal),
}

/// Why a link was refused: links are one level deep (an alias is never a
/// user with aliases of its own) and an alias belongs to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The alias is the user's own id (or empty).
    SameId,
    /// The alias is linked to another user.
    AliasTaken { user: String },
    /// The alias has aliases of its own (link those to the user instead).
    AliasHasAliases,
    /// The user is itself an alias of `user` (link to that user instead).
    UserIsAlias { user: String },
}

/// What a backend reads of its links before linking `alias` to `user`
/// (one query: [`LINK_FACTS_SQL`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkFacts {
    /// The user `user` is itself an alias of.
    pub user_owner: Option<String>,
    /// The user `alias` is already linked to.
    pub alias_owner: Option<String>,
    /// Whether `alias` has aliases of its own.
    pub alias_has_aliases: bool,
}

/// [`LinkFacts`] of (user, alias) in one row; `$1`/`$2` as PostgreSQL
/// writes parameters (SQLite reads them too).
pub(crate) const LINK_FACTS_SQL: &str = "SELECT (SELECT owner FROM aliases WHERE alias = $1),
        (SELECT owner FROM aliases WHERE alias = $2),
        EXISTS(SELECT 1 FROM aliases WHERE owner = $2)";

/// The rule of [`EventStore::link_alias`], the same for every backend: what
/// the call answers without writing, or None when the link is to be made.
pub(crate) fn link_outcome(user: &str, alias: &str, facts: LinkFacts) -> Option<Link> {
    if user == alias || alias.is_empty() {
        return Some(Link::Refused(LinkRefusal::SameId));
    }
    if let Some(owner) = facts.user_owner {
        return Some(Link::Refused(LinkRefusal::UserIsAlias { user: owner }));
    }
    match facts.alias_owner {
        Some(owner) if owner == user => return Some(Link::Already),
        Some(owner) => return Some(Link::Refused(LinkRefusal::AliasTaken { user: owner })),
        None => {}
    }
    facts
        .alias_has_aliases
        .then_some(Link::Refused(LinkRefusal::AliasHasAliases))
}

impl LinkRefusal {
    /// A sentence for the caller.
    pub fn message(&self, user: &str, alias: &str) -> String {
        match self {
            LinkRefusal::SameId => format!("`{alias}` cannot be an alias of itself"),
            LinkRefusal::AliasTaken { user: other } => {
                format!("`{alias}` is already an alias of `{other}`; unlink it there first")
            }
            LinkRefusal::AliasHasAliases => format!(
                "`{alias}` has aliases of its own; link them to `{user}` one by one, or erase `{alias}`"
            ),
            LinkRefusal::UserIsAlias { user: owner } => {
                format!("`{user}` is an alias of `{owner}`; link `{alias}` to `{owner}`")
            }
        }
    }
}

/// One user's start-up window (see [`EventStore::live_windows`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserWindow {
    pub user: String,
    /// The latest events' (item, type, time), oldest first.
    pub recent: Vec<(String, EventType, i64)>,
    /// Items whose latest purchase was not cancelled after it.
    pub purchased: Vec<String>,
}

/// The whole history's figures that come with the windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowTotals {
    pub events: u64,
    pub max_ts: i64,
    /// The latest sequence number the windows include.
    pub last_seq: i64,
    /// Events per item, cancellations not counted.
    pub interactions: Vec<(String, u64)>,
}

/// A change one process tells the others over a shared store (PostgreSQL's
/// `NOTIFY` on the channel [`pg::CHANNEL`]). A notification is a wake-up,
/// never the data: a replica reads what changed from the store, so a lost
/// notification delays a change, never loses one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Events were committed (read them with [`EventStore::events_since`]).
    Events,
    /// Catalog entries were written.
    Catalog,
    /// An item was deleted from the catalog (kept in the store as out of stock).
    ItemDeleted(String),
    /// A user was erased.
    Erased(String),
    /// A user's aliases changed (a link made or removed): their history is read again.
    Aliases(String),
    /// A model version was promoted.
    Promoted(String),
    /// An experiment was created or stopped (read them again).
    Experiments,
}

impl Change {
    /// The notification payload.
    pub fn encode(&self) -> String {
        match self {
            Change::Events => "events".into(),
            Change::Catalog => "catalog".into(),
            Change::ItemDeleted(id) => format!("deleted {id}"),
            Change::Erased(u) => format!("erased {u}"),
            Change::Aliases(u) => format!("aliases {u}"),
            Change::Promoted(v) => format!("promoted {v}"),
            Change::Experiments => "experiments".into(),
        }
    }

    /// The change a payload names (None: unknown, from a newer version).
    pub fn decode(s: &str) -> Option<Change> {
        let (head, rest) = s.split_once(' ').unwrap_or((s, ""));
        Some(match head {
            "events" => Change::Events,
            "catalog" => Change::Catalog,
            "deleted" => Change::ItemDeleted(rest.to_string()),
            "erased" => Change::Erased(rest.to_string()),
            "aliases" => Change::Aliases(rest.to_string()),
            "promoted" => Change::Promoted(rest.to_string()),
            "experiments" => Change::Experiments,
            _ => return None,
        })
    }
}

/// Events of a time range counted three ways (see [`EventStore::profile`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// By [`EventType`] code.
    pub by_type: [u64; 7],
    /// By hour of the day, UTC.
    pub by_hour: [u64; 24],
    /// By item id.
    pub by_item: Vec<(String, u64)>,
}

impl Profile {
    pub fn events(&self) -> u64 {
        self.by_type.iter().sum()
    }
}

/// The most days [`EventStore::daily`] answers.
pub const MAX_DAYS: i64 = 366;

/// One UTC day of events (see [`EventStore::daily`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayCounts {
    /// Unix seconds / 86,400.
    pub day: i64,
    /// By [`EventType`] code.
    pub by_type: [u64; 7],
    /// Users whose first event is on this day.
    pub new_users: u64,
    /// Items whose first event is on this day.
    pub new_items: u64,
}

impl DayCounts {
    pub fn events(&self) -> u64 {
        self.by_type.iter().sum()
    }
}

/// What a backend's [`EventStore::daily`] fills: the days asked for (at
/// most [`MAX_DAYS`]), each with empty counts.
pub(crate) struct Days {
    from: i64,
    days: Vec<DayCounts>,
}

impl Days {
    pub(crate) fn new(from_day: i64, to_day: i64) -> Days {
        let to_day = to_day.min(from_day + MAX_DAYS - 1);
        Days {
            from: from_day,
            days: (from_day..=to_day)
                .map(|day| DayCounts {
                    day,
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// The Unix-seconds range `[from, to)` the days cover; None for none.
    pub(crate) fn ts_range(&self) -> Option<(i64, i64)> {
        let last = self.days.last()?.day;
        Some((self.from * 86_400, (last + 1) * 86_400))
    }

    fn day(&mut self, day: i64) -> Option<&mut DayCounts> {
        self.days.get_mut(usize::try_from(day - self.from).ok()?)
    }

    /// Adds `n` events of type code `etype` on `day`.
    pub(crate) fn add_events(&mut self, day: i64, etype: i64, n: i64) {
        if let Some(x) = self
            .day(day)
            .and_then(|d| d.by_type.get_mut(etype as usize))
        {
            *x += n as u64;
        }
    }

    /// Sets the users (or items) first seen on `day`.
    pub(crate) fn set_first_seen(&mut self, day: i64, users: bool, n: i64) {
        if let Some(d) = self.day(day) {
            if users {
                d.new_users = n as u64;
            } else {
                d.new_items = n as u64;
            }
        }
    }

    pub(crate) fn into_vec(self) -> Vec<DayCounts> {
        self.days
    }
}

/// Where a store URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    SqliteFile(PathBuf),
    SqliteMemory,
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Location {
    /// The folder that holds the store's files beside the database
    /// (quarantine, models, search, spills): the database file's folder;
    /// None for an in-memory store.
    pub fn dir(&self) -> Option<PathBuf> {
        match self {
            Location::SqliteFile(p) => Some(match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            }),
            Location::SqliteMemory | Location::Postgres(_) => None,
        }
    }
}

/// The folder of a store URL's files (see [`Location::dir`]); None for an
/// in-memory store or an unparseable URL.
pub fn data_dir(url: &str) -> Option<PathBuf> {
    parse_url(url).ok()?.dir()
}

/// Where a store's files live on this machine (ingest reports, quarantined
/// rows, an ingest's spill, evaluations): its folder; for a PostgreSQL store
/// a folder of the system's temporary directory named after the URL
/// (password hidden), so that two databases — two shops — never share one;
/// None for a store in memory.
pub fn files_dir(url: &str) -> Option<PathBuf> {
    match parse_url(url).ok()? {
        Location::Postgres(u) => {
            let tag = aisle_core::hash::hash_fields([pg::redact(&u).as_bytes()]);
            Some(std::env::temp_dir().join(format!("aisle-pg-{tag:016x}")))
        }
        loc => loc.dir(),
    }
}

/// The database file inside a store directory.
pub const DB_FILE: &str = "aisle.db";

/// Parses a store URL or path.
pub fn parse_url(url: &str) -> Result<Location> {
    if url == "sqlite::memory:" || url == ":memory:" {
        return Ok(Location::SqliteMemory);
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        return Ok(Location::SqliteFile(PathBuf::from(rest)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres(url.to_string()));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(StoreError::UnsupportedUrl {
            url: pg::redact(url),
            reason: format!(
                "unknown scheme `{scheme}` (known: sqlite://, postgres://, a directory path)"
            ),
        });
    }
    Ok(Location::SqliteFile(Path::new(url).join(DB_FILE)))
}

/// Opens (creating if needed) the store at a URL or directory path.
pub fn open(url: &str) -> Result<Box<dyn EventStore>> {
    if let Location::Postgres(u) = parse_url(url)? {
        return Ok(Box::new(PgStore::open(&u)?));
    }
    Ok(Box::new(open_sqlite(url, true)?))
}

/// Opens an existing store; a missing one is an error rather than created.
pub fn open_existing(url: &str) -> Result<Box<dyn EventStore>> {
    if let Location::Postgres(u) = parse_url(url)? {
        return Ok(Box::new(PgStore::open_existing(&u)?));
    }
    Ok(Box::new(open_sqlite(url, false)?))
}

fn open_sqlite(url: &str, create: bool) -> Result<SqliteStore> {
    match parse_url(url)? {
        Location::Postgres(_) => Err(StoreError::UnsupportedUrl {
            url: pg::redact(url),
            reason: "not an SQLite store".into(),
        }),
        Location::SqliteMemory => SqliteStore::open_memory(),
        // An SQLite URI (`sqlite://file:PATH?mode=ro`): SQLite resolves it.
        Location::SqliteFile(path) if path.to_str().is_some_and(|p| p.starts_with("file:")) => {
            SqliteStore::open(&path)
        }
        Location::SqliteFile(path) => {
            if !create && !path.exists() {
                return Err(StoreError::Missing {
                    path: path.display().to_string(),
                });
            }
            // SQLite would take a zero-length file for a new, empty database;
            // an existing store is never empty (it has its schema), so opening
            // one (to read or to write) is refused rather than silently reset.
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
                return Err(StoreError::Corrupt(format!(
                    "{} is empty (0 bytes): not an Aisle store (a failed copy?); restore it or remove it to start afresh",
                    path.display()
                )));
            }
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
            }
            SqliteStore::open(&path)
        }
    }
}
