//! Identity stitching: an anonymous or device id linked to a user
//! (`POST /v1/users/{id}/aliases`) makes one history with it. The links live
//! in the store (`EventStore::link_alias`), durable and shared by every
//! replica; the events keep the id they were sent with. The live view keys
//! the user's state by the user and sends an alias's events there
//! (`Live::owner`); a link or an unlink reads the ids' events again and
//! rebuilds their states in time order, so the user's history is what it
//! would be had every event been sent under the user's id.

use std::collections::{BTreeSet, HashMap};

use aisle_store::{EventStore, Link};

use crate::state::{Live, HISTORY_CAP};
use crate::{App, ServeError};

/// What `POST /v1/users/{id}/aliases` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub link: Link,
    /// Items in the user's history now (with every alias's events).
    pub history_items: usize,
}

/// The events of `user` and of its aliases (their latest [`HISTORY_CAP`] each).
fn events_of(
    store: &dyn EventStore,
    user: &str,
    aliases: &[&str],
) -> Result<Vec<aisle_core::StoredEvent>, ServeError> {
    let mut all = store.user_events(user, HISTORY_CAP)?;
    for a in aliases {
        all.extend(store.user_events(a, HISTORY_CAP)?);
    }
    Ok(all)
}

/// Reads the links again and rebuilds the state of every id whose link
/// changed (the user it now belongs to, and an id no longer linked on its
/// own). With an empty live map (start-up) every linked user is rebuilt.
pub(crate) fn reload(store: &dyn EventStore, live: &mut Live) -> Result<(), ServeError> {
    let now: HashMap<String, String> = store.aliases()?.into_iter().collect();
    let mut owners = BTreeSet::new();
    let mut freed = BTreeSet::new();
    for (alias, owner) in &live.aliases {
        if now.get(alias) != Some(owner) {
            owners.insert(owner.clone());
            freed.insert(alias.clone());
        }
    }
    for (alias, owner) in &now {
        if live.aliases.get(alias) != Some(owner) {
            owners.insert(owner.clone());
            freed.remove(alias);
        }
    }
    let mut by_owner: HashMap<&str, Vec<&str>> = HashMap::new();
    for (alias, owner) in &now {
        by_owner.entry(owner).or_default().push(alias);
    }
    for owner in &owners {
        let aliases = by_owner.get(owner.as_str()).cloned().unwrap_or_default();
        for a in &aliases {
            live.users.remove(*a);
        }
        let events = events_of(store, owner, &aliases)?;
        live.restate(owner, events);
    }
    for id in &freed {
        let events = events_of(store, id, &[])?;
        live.restate(id, events);
    }
    live.aliases = now;
    Ok(())
}

impl App {
    /// Links `alias` to `user` (see [`EventStore::link_alias`]); on a new
    /// link the user's history takes in the alias's events at once.
    pub fn link_alias(&self, user: &str, alias: &str) -> Result<Linked, ServeError> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let link = store.link_alias(user, alias, aisle_core::time::unix_now())?;
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        if link == Link::Linked {
            reload(store.as_ref(), &mut live)?;
            tracing::info!(user, alias, "alias linked");
        }
        let history_items = live.user(user).map_or(0, |u| u.history.len());
        Ok(Linked {
            link,
            history_items,
        })
    }

    /// Removes the link of `alias` to `user`; each id keeps its own events.
    pub fn unlink_alias(&self, user: &str, alias: &str) -> Result<bool, ServeError> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let removed = store.unlink_alias(user, alias)?;
        if removed {
            let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
            reload(store.as_ref(), &mut live)?;
            tracing::info!(user, alias, "alias unlinked");
        }
        Ok(removed)
    }

    /// The aliases linked to `user`.
    pub fn aliases_of(&self, user: &str) -> Result<Vec<String>, ServeError> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        Ok(store.aliases_of(user)?)
    }
}
