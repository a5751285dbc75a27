//! Replicas over one shared store (PostgreSQL): each process follows what
//! the others commit.
//!
//! A thread per process `LISTEN`s on the store's change channel
//! ([`aisle_store::pg::Listener`]). A notification is only a wake-up: on
//! `events` the process reads the events after the last sequence number its
//! live view holds ([`App::catch_up`]; appends commit in sequence order, see
//! `aisle_store::pg`), on `catalog` it compares the catalog with its own, on
//! an erasure it forgets the user everywhere it keeps one, on a promotion it
//! loads the promoted version. Every second without a notification it reads
//! the events after its last one anyway, and after a lost connection it
//! catches up on all four; so a lost notification delays a change by at most
//! a second and never loses one. Its own writes come back too and change
//! nothing (every step is idempotent).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aisle_core::{CatalogItem, Event};
use aisle_store::{Change, EventStore};

use crate::state::Live;
use crate::{App, ServeError};

/// Events read per query while catching up.
const CATCH_UP_BATCH: usize = 10_000;

/// How long the listener waits for a notification before it polls.
const POLL: Duration = Duration::from_secs(1);

/// The feed's state, for `/readyz` and the metrics.
#[derive(Debug, Default)]
pub struct FeedState {
    /// Whether this process follows a shared store at all.
    pub enabled: AtomicBool,
    pub connected: AtomicBool,
    /// Why the listener is not connected (None while it is).
    pub down: Mutex<Option<String>>,
    /// Events of other processes applied to the live view.
    pub applied: AtomicU64,
    /// Notifications received.
    pub notifications: AtomicU64,
    /// The store's erasure counter as this view last reconciled it.
    pub erasures_seen: AtomicI64,
}

impl FeedState {
    /// Why the replica may be behind the store, if it may be.
    pub fn problem(&self) -> Option<String> {
        if !self.enabled.load(Ordering::Relaxed) || self.connected.load(Ordering::Relaxed) {
            return None;
        }
        let why = self
            .down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "connecting".into());
        Some(format!(
            "the change feed is down ({why}): serving this replica's own view; other replicas' events arrive when it is back"
        ))
    }
}

impl App {
    /// Applies to `live` every event committed after the last one it holds,
    /// whichever process wrote it; returns how many.
    pub(crate) fn catch_up(
        &self,
        store: &dyn EventStore,
        live: &mut Live,
    ) -> Result<u64, ServeError> {
        let mut n = 0;
        loop {
            let batch = store.events_since(live.last_seq, CATCH_UP_BATCH)?;
            for e in &batch {
                self.absorb(live, &e.event);
                live.last_seq = e.seq;
            }
            n += batch.len() as u64;
            if batch.len() < CATCH_UP_BATCH {
                return Ok(n);
            }
        }
    }

    /// Applies one durable event to the live view and the purchase model's log.
    pub(crate) fn absorb(&self, live: &mut Live, e: &Event) {
        live.apply(e);
        if let Some(p) = &self.purchase {
            let facts = live
                .catalog_item(&e.item)
                .map(aisle_features::behaviour::ItemFacts::from)
                .unwrap_or_default();
            let seq = self.counter.fetch_add(1, Ordering::Relaxed) as i64;
            p.observe(e, seq, facts);
        }
    }

    /// Takes in the catalog entries another process wrote: those that differ
    /// from the live view's; returns how many.
    pub(crate) fn sync_catalog(&self, store: &dyn EventStore) -> Result<usize, ServeError> {
        let catalog = store.catalog()?;
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for c in catalog {
            let same = live
                .index
                .get(&c.id)
                .and_then(|&i| live.catalog[i as usize].as_ref())
                .is_some_and(|old| same_item(old, &c));
            if !same {
                self.search.item_changed(&c, false);
                live.upsert_item(c);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Marks an item deleted (another process deleted it).
    fn item_deleted(&self, id: &str) {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&i) = live.index.get(id) {
            if !live.deleted[i as usize] {
                live.deleted[i as usize] = true;
                let c = live.catalog[i as usize].clone().unwrap_or(CatalogItem {
                    id: id.to_string(),
                    ..CatalogItem::default()
                });
                self.search.item_changed(&c, true);
            }
        }
    }
}

fn same_item(a: &CatalogItem, b: &CatalogItem) -> bool {
    a.title == b.title
        && a.description == b.description
        && a.category == b.category
        && a.price == b.price
        && a.in_stock == b.in_stock
}

/// Starts the listener thread when the store is shared (no-op otherwise).
/// The thread holds the app weakly and ends once it is dropped.
pub fn start(app: &Arc<App>) {
    let url = match aisle_store::parse_url(&app.cfg.store) {
        Ok(aisle_store::Location::Postgres(u)) => u,
        _ => return,
    };
    app.feed.enabled.store(true, Ordering::Relaxed);
    let weak = Arc::downgrade(app);
    let _ = std::thread::Builder::new()
        .name("aisle-feed".into())
        .spawn(move || run(weak, &url));
}

fn run(weak: Weak<App>, url: &str) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(app) = weak.upgrade() else { return };
        let mut listener = match aisle_store::pg::Listener::connect(url) {
            Ok(l) => l,
            Err(e) => {
                down(&app, e.to_string());
                drop(app);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // Whatever changed before this connection listened.
        let synced = sync_all(&app);
        if let Err(e) = synced {
            down(&app, e.to_string());
            drop(app);
            std::thread::sleep(backoff);
            continue;
        }
        app.feed.connected.store(true, Ordering::Relaxed);
        *app.feed.down.lock().unwrap_or_else(|e| e.into_inner()) = None;
        drop(app);
        loop {
            let changes = listener.wait(POLL);
            let Some(app) = weak.upgrade() else { return };
            let result = match changes {
                Ok(changes) => handle(&app, &changes),
                Err(e) => Err(ServeError::Store(e)),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "change feed lost; reconnecting");
                down(&app, e.to_string());
                break;
            }
        }
    }
}

fn down(app: &App, why: String) {
    app.feed.connected.store(false, Ordering::Relaxed);
    *app.feed.down.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
}

/// Reads every kind of change (after a (re)connection).
fn sync_all(app: &App) -> Result<(), ServeError> {
    erasures(app)?;
    events(app)?;
    catalog(app)?;
    promoted(app, None);
    app.online.reload_experiments()?;
    Ok(())
}

/// Acts on a wake-up (an empty list: the poll after a quiet second).
fn handle(app: &App, changes: &[Change]) -> Result<(), ServeError> {
    app.feed
        .notifications
        .fetch_add(changes.len() as u64, Ordering::Relaxed);
    // Events and catalog are read once however many notifications name them.
    if changes.is_empty() || changes.contains(&Change::Events) {
        events(app)?;
    }
    if changes.contains(&Change::Catalog) {
        catalog(app)?;
    }
    for c in changes {
        match c {
            Change::Events | Change::Catalog => {}
            Change::ItemDeleted(id) => app.item_deleted(id),
            Change::Erased(user) => {
                let store = app.store.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = app.erase_local(store.as_ref(), user) {
                    tracing::error!(error = %e, "erasing a user another replica erased");
                }
                let mut live = app.live.write().unwrap_or_else(|e| e.into_inner());
                crate::identity::reload(store.as_ref(), &mut live)?;
                let n = store.erasures()?;
                app.feed.erasures_seen.store(n, Ordering::Relaxed);
            }
            Change::Aliases(_) => {
                let store = app.store.lock().unwrap_or_else(|e| e.into_inner());
                let mut live = app.live.write().unwrap_or_else(|e| e.into_inner());
                crate::identity::reload(store.as_ref(), &mut live)?;
            }
            Change::Promoted(v) => promoted(app, Some(v)),
            Change::Experiments => app.online.reload_experiments()?,
        }
    }
    Ok(())
}

/// Erasures whose notification this process may have missed (made before
/// it listened, or while its feed was down): when the store's counter moved,
/// every user of the live view that the store no longer knows is erased here.
fn erasures(app: &App) -> Result<(), ServeError> {
    let store = app.store.lock().unwrap_or_else(|e| e.into_inner());
    let now = store.erasures()?;
    if now == app.feed.erasures_seen.load(Ordering::Relaxed) {
        return Ok(());
    }
    let users: Vec<String> = app
        .live
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .users
        .keys()
        .cloned()
        .collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let present = store.users_present(&refs)?;
    for (u, here) in users.iter().zip(present) {
        if !here {
            app.erase_local(store.as_ref(), u)?;
        }
    }
    app.feed.erasures_seen.store(now, Ordering::Relaxed);
    Ok(())
}

fn catalog(app: &App) -> Result<(), ServeError> {
    let store = app.store.lock().unwrap_or_else(|e| e.into_inner());
    app.sync_catalog(store.as_ref())?;
    Ok(())
}

fn events(app: &App) -> Result<(), ServeError> {
    let store = app.store.lock().unwrap_or_else(|e| e.into_inner());
    let mut live = app.live.write().unwrap_or_else(|e| e.into_inner());
    let n = app.catch_up(store.as_ref(), &mut live)?;
    app.feed.applied.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// Loads the promoted version unless it already serves (`version`: the one
/// a notification named; None: ask the registry).
fn promoted(app: &App, version: Option<&str>) {
    let Some(reg) = &app.registry else { return };
    let want = match version {
        Some(v) => v.to_string(),
        None => match reg.promoted_name() {
            Ok(Some(v)) => v,
            _ => return,
        },
    };
    if app.current().version == want {
        return;
    }
    if let Err(e) = app.reload_promoted() {
        tracing::error!(error = %e, version = want, "the promoted version was refused; the old model keeps serving");
    }
}
