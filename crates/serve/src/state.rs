//! What the server keeps in memory: the catalog, each user's recent history
//! and purchases, item popularity, and the serving model. Built from the
//! store at start; every acknowledged event updates it at once.

use aisle_features::behaviour::title_words;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aisle_core::{CatalogItem, Event, EventType};

/// Longest history kept per user in memory (the models read at most
/// `max_len` of it; the store keeps everything).
pub const HISTORY_CAP: usize = 500;

#[derive(Debug, Default)]
pub struct UserState {
    /// Item indices, oldest first (views, clicks, carts, purchases...).
    pub history: Vec<u32>,
    pub purchased: HashSet<u32>,
    /// The time (Unix seconds) of the user's latest event.
    pub last_ts: i64,
}

impl UserState {
    /// Applies one of the user's events on item `i`; false for a cancel
    /// (which does not count towards popularity).
    pub fn apply(&mut self, i: u32, t: EventType) -> bool {
        match t {
            EventType::Cancel => {
                self.purchased.remove(&i);
                return false;
            }
            EventType::Purchase => {
                self.purchased.insert(i);
            }
            _ => {}
        }
        self.history.push(i);
        if self.history.len() > HISTORY_CAP * 2 {
            self.history.drain(..HISTORY_CAP);
        }
        true
    }
}

#[derive(Debug, Default)]
pub struct Live {
    pub items: Vec<String>,
    pub index: HashMap<String, u32>,
    /// Catalog entry per item index (None: seen in events only).
    pub catalog: Vec<Option<CatalogItem>>,
    pub deleted: Vec<bool>,
    /// Interactions per item (all event types but cancel).
    /// (f32: the form top-K ranks, so a request needs no copy; exact up to 2^24.)
    pub popularity: Vec<f32>,
    /// Keyed by user; an alias's events go to its user's entry.
    pub users: HashMap<String, UserState>,
    /// Identity links: alias -> the user it belongs to (the store's, see
    /// `EventStore::link_alias`).
    pub aliases: HashMap<String, String>,
    pub events: u64,
    /// The latest event time (Unix seconds) seen.
    pub max_ts: i64,
    /// The store's latest event sequence number this view includes.
    pub last_seq: i64,
}

impl Live {
    pub fn item(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.items.len() as u32;
        self.items.push(id.to_string());
        self.index.insert(id.to_string(), i);
        self.catalog.push(None);
        self.deleted.push(false);
        self.popularity.push(0.0);
        i
    }

    pub fn upsert_item(&mut self, c: CatalogItem) -> u32 {
        let i = self.item(&c.id);
        self.catalog[i as usize] = Some(c);
        self.deleted[i as usize] = false;
        i
    }

    /// The user an id stands for: the user an alias is linked to, else the id.
    pub fn owner<'a>(&'a self, id: &'a str) -> &'a str {
        self.aliases.get(id).map_or(id, String::as_str)
    }

    /// The state of the user an id stands for (see [`Live::owner`]).
    pub fn user(&self, id: &str) -> Option<&UserState> {
        self.users.get(self.owner(id))
    }

    /// Replaces a user's state by one built from `events` (theirs and their
    /// aliases', any order): merged in time order (then store order), the
    /// latest [`HISTORY_CAP`] kept, purchases replayed with their cancels.
    pub fn restate(&mut self, user: &str, mut events: Vec<aisle_core::StoredEvent>) {
        events.sort_by_key(|e| (e.event.ts, e.seq));
        let skip = events.len().saturating_sub(HISTORY_CAP);
        let mut u = UserState::default();
        for e in &events[skip..] {
            let i = self.item(&e.event.item);
            u.last_ts = u.last_ts.max(e.event.ts);
            u.apply(i, e.event.event_type);
        }
        if events.is_empty() {
            self.users.remove(user);
        } else {
            self.users.insert(user.to_string(), u);
        }
    }

    /// Applies one event (already durable).
    pub fn apply(&mut self, e: &Event) {
        let i = self.item(&e.item);
        self.events += 1;
        self.max_ts = self.max_ts.max(e.ts);
        let key = self.owner(&e.user).to_string();
        let u = self.users.entry(key).or_default();
        u.last_ts = u.last_ts.max(e.ts);
        if u.apply(i, e.event_type) {
            self.popularity[i as usize] += 1.0;
        }
    }

    /// Takes in one user's start-up window (see
    /// `EventStore::live_windows`): the same history, purchases and latest
    /// time as applying the window's events one by one, without touching
    /// the counts, which [`Live::apply_totals`] sets from the whole history.
    pub fn apply_window(&mut self, w: aisle_store::UserWindow) {
        let mut u = UserState::default();
        for (item, t, ts) in &w.recent {
            let i = self.item(item);
            u.last_ts = u.last_ts.max(*ts);
            if *t != EventType::Cancel {
                u.history.push(i);
            }
        }
        for item in &w.purchased {
            let i = self.item(item);
            u.purchased.insert(i);
        }
        self.users.insert(w.user, u);
    }

    /// The whole history's counts that come with the windows.
    pub fn apply_totals(&mut self, t: aisle_store::WindowTotals) {
        for (item, n) in &t.interactions {
            let i = self.item(item);
            self.popularity[i as usize] = *n as f32;
        }
        self.events = t.events;
        self.max_ts = t.max_ts;
        self.last_seq = t.last_seq;
    }

    /// Users with an event in the `secs` before the latest event.
    pub fn active_users(&self, secs: i64) -> usize {
        let since = self.max_ts - secs;
        self.users.values().filter(|u| u.last_ts > since).count()
    }

    /// Whether item `i` may be recommended at all: known, not deleted, and
    /// not out of stock.
    pub fn recommendable(&self, i: u32) -> bool {
        !self.deleted[i as usize] && self.in_stock(i)
    }

    /// Whether item `i` may be shown under a category and price range:
    /// recommendable, in `category` if given, priced within the bounds if any
    /// is given (an item without a price fails a price filter).
    pub fn passes(
        &self,
        i: u32,
        category: Option<&str>,
        price_min: Option<f64>,
        price_max: Option<f64>,
    ) -> bool {
        self.recommendable(i) && self.matches(i, category, price_min, price_max)
    }

    /// Whether item `i` is in stock (an item without a catalog entry is).
    pub fn in_stock(&self, i: u32) -> bool {
        self.catalog[i as usize].as_ref().is_none_or(|c| c.in_stock)
    }

    /// [`Live::passes`] whatever the stock: not deleted, in `category`,
    /// priced within the bounds.
    pub fn matches(
        &self,
        i: u32,
        category: Option<&str>,
        price_min: Option<f64>,
        price_max: Option<f64>,
    ) -> bool {
        if self.deleted[i as usize] {
            return false;
        }
        if category.is_some() && self.category(i) != category {
            return false;
        }
        if price_min.is_some() || price_max.is_some() {
            let Some(p) = self.price(i) else { return false };
            if price_min.is_some_and(|m| p < m) || price_max.is_some_and(|m| p > m) {
                return false;
            }
        }
        true
    }

    /// The catalog entry of an item id (None for an unknown item or one
    /// seen in events only).
    pub fn catalog_item(&self, id: &str) -> Option<&CatalogItem> {
        self.index
            .get(id)
            .and_then(|&i| self.catalog[i as usize].as_ref())
    }

    pub fn title(&self, i: u32) -> String {
        self.catalog[i as usize]
            .as_ref()
            .and_then(|c| c.title.clone())
            .unwrap_or_else(|| self.items[i as usize].clone())
    }

    pub fn category(&self, i: u32) -> Option<&str> {
        self.catalog[i as usize]
            .as_ref()
            .and_then(|c| c.category.as_deref())
    }

    /// Content similarity to item `of` for every item: shared title words
    /// (Jaccard over lower-cased words of 3+ letters) plus 0.5 for the same
    /// category, plus popularity / (1000 x max) to break ties. Used for items
    /// the model has not seen yet.
    pub fn content_scores(&self, of: u32) -> Vec<f32> {
        let words = |i: usize| -> Vec<String> {
            let mut w: Vec<String> = title_words(
                self.catalog[i]
                    .as_ref()
                    .and_then(|c| c.title.as_deref())
                    .unwrap_or(""),
            )
            .collect();
            w.sort_unstable();
            w.dedup();
            w
        };
        let mine = words(of as usize);
        let cat = self.category(of);
        let max_pop = self.popularity.iter().copied().fold(1.0f32, f32::max);
        (0..self.items.len())
            .map(|j| {
                let theirs = words(j);
                let common = theirs
                    .iter()
                    .filter(|w| mine.binary_search(w).is_ok())
                    .count();
                let union = mine.len() + theirs.len() - common;
                let jaccard = if union == 0 {
                    0.0
                } else {
                    common as f32 / union as f32
                };
                let same = cat.is_some() && self.category(j as u32) == cat;
                jaccard + if same { 0.5 } else { 0.0 } + self.popularity[j] / (1000.0 * max_pop)
            })
            .collect()
    }

    /// Title words two items share (for explanations), in `a`'s order.
    pub fn shared_words(&self, a: u32, b: u32) -> Vec<String> {
        let tb = self.title(b);
        let theirs: HashSet<String> = title_words(&tb).collect();
        let mut out: Vec<String> = Vec::new();
        for w in title_words(&self.title(a)) {
            if theirs.contains(&w) && !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }

    pub fn price(&self, i: u32) -> Option<f64> {
        self.catalog[i as usize].as_ref().and_then(|c| c.price)
    }
}

/// The model being served (swapped atomically as a whole).
pub struct Serving {
    pub name: String,
    pub version: String,
    pub model: Option<aisle_train::Model>,
    /// The model's item ids, in its index order.
    pub model_items: Vec<String>,
    pub model_index: HashMap<String, u32>,
}

impl Serving {
    /// A history of live item indices in the model's numbering; items the
    /// model does not know are left out.
    pub fn known_history(&self, live: &Live, history: &[u32]) -> Vec<u32> {
        history
            .iter()
            .filter_map(|&i| self.model_index.get(&live.items[i as usize]).copied())
            .collect()
    }

    pub fn popularity_only() -> Arc<Serving> {
        Arc::new(Serving {
            name: "popularity".into(),
            version: "live".into(),
            model: None,
            model_items: Vec::new(),
            model_index: HashMap::new(),
        })
    }
}
