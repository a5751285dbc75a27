//! Point-in-time behaviour features for a (user, item, moment) triple, and
//! the purchase-prediction samples the ranker trains on.
//!
//! Every feature is declared once in [`FEATURES`] (name, kind, window,
//! default when the value is missing, meaning); [`EventLog::features`] fills a
//! row in exactly that order, so training and serving read the same columns.
//!
//! **Point-in-time rule:** the features of `(user, item, t)` read only events
//! with `ts < t` (strictly before the moment described). Each per-user and
//! per-item event list is sorted by time, and every read is cut at `t` with a
//! binary search, so adding events at or after `t` cannot change a row
//! (tested against a log truncated at `t`).

use std::collections::HashMap;

use aisle_core::EventType;

use crate::Interaction;
use serde::Serialize;

/// Behaviour classes the features count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Views and clicks.
    View = 0,
    Cart = 1,
    Fav = 2,
    Buy = 3,
    /// Cancels and ratings: kept in the log, not counted.
    Other = 4,
}

impl Kind {
    pub fn of(t: EventType) -> Kind {
        match t {
            EventType::View | EventType::Click => Kind::View,
            EventType::AddToCart => Kind::Cart,
            EventType::Favorite => Kind::Fav,
            EventType::Purchase => Kind::Buy,
            EventType::Cancel | EventType::Rating => Kind::Other,
        }
    }
}

/// One event over dense ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogEvent {
    pub user: u32,
    pub item: u32,
    pub ts: i64,
    pub kind: Kind,
}

/// How a feature is used by a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A real number (already log-scaled where it is a count).
    Numeric,
    /// 0 or 1.
    Flag,
}

/// The declaration of one feature column.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FeatureDef {
    pub name: &'static str,
    pub kind: FeatureKind,
    /// Look-back window in seconds (`None` = all history before the moment).
    pub window_s: Option<i64>,
    /// The value used when the input is missing (documented and counted).
    pub default: f32,
    pub doc: &'static str,
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// Recencies are capped at 30 days (also their missing default), in hours.
const RECENCY_CAP_H: f32 = 720.0;

macro_rules! features {
    ($($id:ident: $name:literal, $kind:ident, $window:expr, $default:expr, $doc:literal;)*) => {
        /// Column ids, in [`FEATURES`] order.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum F { $($id,)* }
        /// Every feature column, in row order.
        pub const FEATURES: &[FeatureDef] = &[$(FeatureDef {
            name: $name,
            kind: FeatureKind::$kind,
            window_s: $window,
            default: $default,
            doc: $doc,
        },)*];
    };
}

features! {
    u_views: "user_views", Numeric, None, 0.0, "ln(1 + the user's views)";
    u_carts: "user_carts", Numeric, None, 0.0, "ln(1 + the user's add-to-carts)";
    u_favs: "user_favs", Numeric, None, 0.0, "ln(1 + the user's favourites)";
    u_buys: "user_buys", Numeric, None, 0.0, "ln(1 + the user's purchases)";
    u_views_1d: "user_views_1d", Numeric, Some(DAY), 0.0, "ln(1 + the user's views in the last 24 h)";
    u_carts_1d: "user_carts_1d", Numeric, Some(DAY), 0.0, "ln(1 + the user's add-to-carts in the last 24 h)";
    u_buys_1d: "user_buys_1d", Numeric, Some(DAY), 0.0, "ln(1 + the user's purchases in the last 24 h)";
    u_recency: "user_recency_h", Numeric, None, RECENCY_CAP_H, "hours since the user's last event (cap 720; no history = 720)";
    u_buy_rate: "user_buy_rate", Numeric, None, 0.0, "purchases / (views + 1)";
    u_cat_affinity: "user_category_share", Numeric, None, 0.0, "share of the user's events in the item's category (unknown category = 0)";
    u_price_level: "user_price_level", Numeric, None, 0.0, "ln(1 + mean price of the items the user interacted with) (no priced items = 0)";
    u_new: "user_no_history", Flag, None, 1.0, "1 when the user has no event before the moment";
    i_views: "item_views", Numeric, None, 0.0, "ln(1 + the item's views)";
    i_carts: "item_carts", Numeric, None, 0.0, "ln(1 + the item's add-to-carts)";
    i_buys: "item_buys", Numeric, None, 0.0, "ln(1 + the item's purchases)";
    i_views_1d: "item_views_1d", Numeric, Some(DAY), 0.0, "ln(1 + the item's views in the last 24 h)";
    i_buys_1d: "item_buys_1d", Numeric, Some(DAY), 0.0, "ln(1 + the item's purchases in the last 24 h)";
    i_conversion: "item_conversion", Numeric, None, 0.0, "view->purchase rate (buys + 1) / (views + 20), shrunk towards a small prior";
    i_age: "item_age_h", Numeric, None, 0.0, "hours since the item's first event (cap 720; never seen = 0)";
    i_price: "item_price", Numeric, None, 0.0, "ln(1 + price) (missing = 0)";
    i_price_missing: "item_price_missing", Flag, None, 1.0, "1 when the item has no price";
    i_price_rel: "item_price_vs_user", Numeric, None, 0.0, "ln(1 + price) - user_price_level (either missing = 0)";
    i_cat_missing: "item_category_missing", Flag, None, 1.0, "1 when the item has no category";
    ui_views: "pair_views", Numeric, None, 0.0, "ln(1 + the user's views of this item)";
    ui_carted: "pair_carted", Flag, None, 0.0, "the user added this item to the cart before";
    ui_faved: "pair_faved", Flag, None, 0.0, "the user favourited this item before";
    ui_buys: "pair_buys", Numeric, None, 0.0, "ln(1 + times the user bought this item)";
    ui_recency: "pair_recency_h", Numeric, None, RECENCY_CAP_H, "hours since the user last touched this item (cap 720; never = 720)";
    ui_cat_events: "pair_category_events", Numeric, None, 0.0, "ln(1 + the user's events in the item's category)";
    ui_cat_last: "pair_category_is_last", Flag, None, 0.0, "the user's latest event was in the item's category";
    u_views_1h: "user_views_1h", Numeric, Some(HOUR), 0.0, "ln(1 + the user's views in the last hour: the session)";
    ui_views_1h: "pair_views_1h", Numeric, Some(HOUR), 0.0, "ln(1 + the user's views of this item in the last hour)";
    c_conversion: "category_conversion", Numeric, None, 0.0, "view->purchase rate of the item's category (buys + 1) / (views + 20) (unknown category = 0)";
    i_title_tokens: "item_title_tokens", Numeric, None, 0.0, "ln(1 + the number of distinct words in the item's title) (no title = 0)";
    i_title_missing: "item_title_missing", Flag, None, 1.0, "1 when the item has no title";
    ui_title_overlap: "pair_title_overlap", Numeric, None, 0.0, "share of the item's title words found in the titles of items the user touched before the moment (no title or no history = 0)";
    seq_score: "seq_score", Numeric, None, 0.0, "a sequence model's score of the item after the user's items before the moment (user vector . item vector), as a z-score over the catalog (see SequenceScorer; missing = 0)";
    seq_missing: "seq_score_missing", Flag, None, 1.0, "1 when seq_score is missing: no sequence model, a moment before the model's training cut-off, no earlier event of the user, or an item the model never trained on";
}

/// Number of feature columns.
pub const N_FEATURES: usize = FEATURES.len();

/// How often each kind of missing input was replaced by its default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MissingCounts {
    pub rows: u64,
    pub users_without_history: u64,
    pub items_without_category: u64,
    pub items_without_price: u64,
    pub items_never_seen: u64,
    pub items_without_title: u64,
    /// Rows without a sequence-model score (`seq_score_missing` = 1).
    pub no_sequence_score: u64,
}

/// A sequence model as a feature (`seq_score`): scores an item after a
/// history of items. Point-in-time correct by construction of the caller:
/// [`EventLog::sequence_scores`] passes only the user's items strictly before
/// the moment, and asks for no score at a moment before
/// [`trained_before`](SequenceScorer::trained_before) (the model's weights
/// saw only events before that cut-off).
pub trait SequenceScorer: Sync {
    /// Every event the model trained on is strictly before this moment.
    fn trained_before(&self) -> i64;
    /// For each `(h, item)` of `queries`, the score of `item` after
    /// `histories[h]` (log item ids, oldest first), as a z-score over the
    /// model's catalog, or `None` when the model cannot score it (an item it
    /// never trained on, no known item in the history). Each history is given
    /// once however many items are asked after it, so its user vector is
    /// computed once (serving asks ~50 candidates after one history).
    fn scores(&self, histories: &[&[u32]], queries: &[(usize, u32)]) -> Vec<Option<f32>>;
}

/// Samples per [`SequenceScorer::scores`] call.
const SEQ_BATCH: usize = 256;

/// A behaviour log over dense user and item ids, indexed by user and item
/// (each list in time order) for point-in-time reads.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    pub users: Vec<String>,
    pub items: Vec<String>,
    /// Sorted by (time, insertion order).
    pub events: Vec<LogEvent>,
    /// Category per item: 0 = unknown, else 1-based dense category id.
    pub item_category: Vec<u32>,
    pub n_categories: usize,
    pub item_price: Vec<Option<f32>>,
    /// Title word ids per item (sorted, distinct; empty = no title).
    pub item_words: Vec<Vec<u32>>,
    word_ids: HashMap<String, u32>,
    by_user: Vec<Vec<u32>>,
    by_item: Vec<Vec<u32>>,
    /// Events per category id (index 0, unknown, is left empty).
    by_category: Vec<Vec<u32>>,
    user_ids: HashMap<String, u32>,
    item_ids: HashMap<String, u32>,
    category_ids: HashMap<String, u32>,
}

/// The dense id of `name` in `names`/`ids`; a new name gets the next id and
/// an empty event list in `lists`. The flag says whether it was new.
fn intern(
    name: &str,
    names: &mut Vec<String>,
    ids: &mut HashMap<String, u32>,
    lists: &mut Vec<Vec<u32>>,
) -> (u32, bool) {
    if let Some(&id) = ids.get(name) {
        return (id, false);
    }
    let id = names.len() as u32;
    names.push(name.to_string());
    ids.insert(name.to_string(), id);
    lists.push(Vec::new());
    (id, true)
}

/// What the catalog says of an item (all optional).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ItemFacts<'a> {
    pub category: Option<&'a str>,
    pub price: Option<f64>,
    pub title: Option<&'a str>,
}

impl<'a> From<&'a aisle_core::CatalogItem> for ItemFacts<'a> {
    fn from(c: &'a aisle_core::CatalogItem) -> Self {
        ItemFacts {
            category: c.category.as_deref(),
            price: c.price,
            title: c.title.as_deref(),
        }
    }
}

/// Catalog facts for [`EventLog::build`]: item id -> facts.
pub type CatalogFacts<'a> = HashMap<&'a str, ItemFacts<'a>>;

/// The words of a title the features compare: lower-cased runs of letters
/// and digits, 3+ characters long.
pub fn title_words(title: &str) -> impl Iterator<Item = String> + '_ {
    title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
}

impl EventLog {
    /// Builds the log: dense ids in order of first appearance, events sorted
    /// by (time, insertion order). Items absent from `catalog` have no
    /// category, price or title.
    pub fn build<'a>(
        events: impl IntoIterator<Item = Interaction<'a>>,
        catalog: &CatalogFacts<'a>,
    ) -> EventLog {
        let mut raw: Vec<Interaction<'a>> = events.into_iter().collect();
        raw.sort_by_key(|e| (e.ts, e.seq));
        let mut log = EventLog::default();
        log.events.reserve(raw.len());
        for e in &raw {
            log.push(e, catalog.get(e.item).copied().unwrap_or_default());
        }
        log
    }

    /// The dense id of a user, if the log has seen them.
    pub fn user_index(&self, user: &str) -> Option<u32> {
        self.user_ids.get(user).copied()
    }

    /// The dense id of an item, if the log has seen it.
    pub fn item_index(&self, item: &str) -> Option<u32> {
        self.item_ids.get(item).copied()
    }

    /// Appends a live event (serving: every acknowledged event). New users
    /// and items get the next ids; a new item takes the catalog's `facts`.
    /// An event older than others of its user or item is placed in time
    /// order in their lists, so point-in-time reads stay correct.
    pub fn push(&mut self, e: &Interaction<'_>, facts: ItemFacts<'_>) {
        let ItemFacts {
            category,
            price,
            title,
        } = facts;
        let (u, _) = intern(
            e.user,
            &mut self.users,
            &mut self.user_ids,
            &mut self.by_user,
        );
        let (i, new_item) = intern(
            e.item,
            &mut self.items,
            &mut self.item_ids,
            &mut self.by_item,
        );
        if new_item {
            let cat = match category.filter(|c| !c.is_empty()) {
                Some(c) => {
                    let next = self.category_ids.len() as u32 + 1;
                    let id = *self.category_ids.entry(c.to_string()).or_insert(next);
                    self.n_categories = self.n_categories.max(id as usize);
                    id
                }
                None => 0,
            };
            self.item_category.push(cat);
            self.item_price.push(
                price
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .map(|p| p as f32),
            );
            let mut words: Vec<u32> = title
                .map(|t| {
                    title_words(t)
                        .map(|w| {
                            let next = self.word_ids.len() as u32;
                            *self.word_ids.entry(w).or_insert(next)
                        })
                        .collect()
                })
                .unwrap_or_default();
            words.sort_unstable();
            words.dedup();
            self.item_words.push(words);
        }
        let k = self.events.len() as u32;
        self.events.push(LogEvent {
            user: u,
            item: i,
            ts: e.ts,
            kind: Kind::of(e.event_type),
        });
        let c = self.item_category[i as usize] as usize;
        if self.by_category.len() <= c {
            self.by_category.resize(c + 1, Vec::new());
        }
        let events = &self.events;
        let mut lists = vec![&mut self.by_user[u as usize], &mut self.by_item[i as usize]];
        if c != 0 {
            lists.push(&mut self.by_category[c]);
        }
        for list in lists {
            let at = list.partition_point(|&x| events[x as usize].ts <= e.ts);
            list.insert(at, k);
        }
    }

    /// The indices (into `events`) of `list` strictly before `t`.
    fn before<'s>(&self, list: &'s [u32], t: i64) -> &'s [u32] {
        let n = list.partition_point(|&k| self.events[k as usize].ts < t);
        &list[..n]
    }

    /// The user's events strictly before `t`.
    pub fn user_before(&self, user: u32, t: i64) -> impl Iterator<Item = &LogEvent> {
        self.before(&self.by_user[user as usize], t)
            .iter()
            .map(|&k| &self.events[k as usize])
    }

    /// Fills `out` (length [`N_FEATURES`]) with the features of `(user,
    /// item, t)` from events strictly before `t`, counting defaults in `missing`.
    pub fn features(
        &self,
        user: u32,
        item: u32,
        t: i64,
        out: &mut [f32],
        missing: &mut MissingCounts,
    ) {
        assert_eq!(out.len(), N_FEATURES, "one value per declared feature");
        for (o, d) in out.iter_mut().zip(FEATURES) {
            *o = d.default;
        }
        missing.rows += 1;
        let ln = |x: f32| x.ln_1p();
        let hours = |dt: i64| (dt as f32 / 3600.0).clamp(0.0, RECENCY_CAP_H);
        let cat = self.item_category.get(item as usize).copied().unwrap_or(0);
        let mut set = |f: F, v: f32| out[f as usize] = v;

        // User side.
        let u_events = self.before(self.by_user.get(user as usize).map_or(&[], |v| v), t);
        let (mut c, mut c1d) = ([0f32; 5], [0f32; 5]);
        let (mut cat_n, mut price_sum, mut price_n) = (0f32, 0f64, 0f32);
        let (mut pair, mut pair_last) = ([0f32; 5], None::<i64>);
        let (mut views_1h, mut pair_views_1h) = (0f32, 0f32);
        for &k in u_events {
            let e = &self.events[k as usize];
            c[e.kind as usize] += 1.0;
            if e.ts >= t - DAY {
                c1d[e.kind as usize] += 1.0;
            }
            if e.ts >= t - HOUR && e.kind == Kind::View {
                views_1h += 1.0;
                if e.item == item {
                    pair_views_1h += 1.0;
                }
            }
            if cat != 0 && self.item_category[e.item as usize] == cat {
                cat_n += 1.0;
            }
            if let Some(p) = self.item_price[e.item as usize] {
                price_sum += p as f64;
                price_n += 1.0;
            }
            if e.item == item {
                pair[e.kind as usize] += 1.0;
                pair_last = Some(e.ts);
            }
        }
        let price_level = (price_n > 0.0).then(|| ln((price_sum / price_n as f64) as f32));
        let words: &[u32] = self.item_words.get(item as usize).map_or(&[], |v| v);
        if words.is_empty() {
            missing.items_without_title += 1;
        } else {
            set(F::i_title_tokens, ln(words.len() as f32));
            set(F::i_title_missing, 0.0);
            if !u_events.is_empty() {
                let mut found = vec![false; words.len()];
                for &k in u_events {
                    let theirs = &self.item_words[self.events[k as usize].item as usize];
                    for (f, w) in found.iter_mut().zip(words) {
                        *f |= theirs.binary_search(w).is_ok();
                    }
                }
                let n = found.iter().filter(|f| **f).count();
                set(F::ui_title_overlap, n as f32 / words.len() as f32);
            }
        }
        if let Some(&last) = u_events.last() {
            let last = &self.events[last as usize];
            set(F::u_views, ln(c[0]));
            set(F::u_carts, ln(c[1]));
            set(F::u_favs, ln(c[2]));
            set(F::u_buys, ln(c[3]));
            set(F::u_views_1d, ln(c1d[0]));
            set(F::u_carts_1d, ln(c1d[1]));
            set(F::u_buys_1d, ln(c1d[3]));
            set(F::u_recency, hours(t - last.ts));
            set(F::u_buy_rate, c[3] / (c[0] + 1.0));
            set(F::u_cat_affinity, cat_n / u_events.len() as f32);
            set(F::u_price_level, price_level.unwrap_or(0.0));
            set(F::u_new, 0.0);
            set(F::ui_views, ln(pair[0]));
            set(F::ui_carted, f32::from(pair[1] > 0.0));
            set(F::ui_faved, f32::from(pair[2] > 0.0));
            set(F::ui_buys, ln(pair[3]));
            if let Some(ts) = pair_last {
                set(F::ui_recency, hours(t - ts));
            }
            set(F::ui_cat_events, ln(cat_n));
            set(F::u_views_1h, ln(views_1h));
            set(F::ui_views_1h, ln(pair_views_1h));
            set(
                F::ui_cat_last,
                f32::from(cat != 0 && self.item_category[last.item as usize] == cat),
            );
        } else {
            missing.users_without_history += 1;
        }

        self.item_side(item, t, price_level, out, missing);
    }

    /// The item's own columns (counts, conversion, age, price, its
    /// category's conversion) from events before `t`; `price_level` is the
    /// user's, for the relative price.
    fn item_side(
        &self,
        item: u32,
        t: i64,
        price_level: Option<f32>,
        out: &mut [f32],
        missing: &mut MissingCounts,
    ) {
        let ln = |x: f32| x.ln_1p();
        let hours = |dt: i64| (dt as f32 / 3600.0).clamp(0.0, RECENCY_CAP_H);
        let cat = self.item_category.get(item as usize).copied().unwrap_or(0);
        let price = self.item_price.get(item as usize).copied().flatten();
        let mut set = |f: F, v: f32| out[f as usize] = v;
        let i_events = self.before(self.by_item.get(item as usize).map_or(&[], |v| v), t);
        let (mut ic, mut ic1d) = ([0f32; 5], [0f32; 5]);
        for &k in i_events {
            let e = &self.events[k as usize];
            ic[e.kind as usize] += 1.0;
            if e.ts >= t - DAY {
                ic1d[e.kind as usize] += 1.0;
            }
        }
        set(F::i_views, ln(ic[0]));
        set(F::i_carts, ln(ic[1]));
        set(F::i_buys, ln(ic[3]));
        set(F::i_views_1d, ln(ic1d[0]));
        set(F::i_buys_1d, ln(ic1d[3]));
        set(F::i_conversion, (ic[3] + 1.0) / (ic[0] + 20.0));
        match i_events.first() {
            Some(&k) => set(F::i_age, hours(t - self.events[k as usize].ts)),
            None => missing.items_never_seen += 1,
        }
        match price {
            Some(p) => {
                set(F::i_price, ln(p));
                set(F::i_price_missing, 0.0);
                if let Some(level) = price_level {
                    set(F::i_price_rel, ln(p) - level);
                }
            }
            None => missing.items_without_price += 1,
        }
        if cat != 0 {
            set(F::i_cat_missing, 0.0);
            let list = self.by_category.get(cat as usize).map_or(&[][..], |v| v);
            let (mut v, mut b) = (0f32, 0f32);
            for &k in self.before(list, t) {
                match self.events[k as usize].kind {
                    Kind::View => v += 1.0,
                    Kind::Buy => b += 1.0,
                    _ => {}
                }
            }
            set(F::c_conversion, (b + 1.0) / (v + 20.0));
        } else {
            missing.items_without_category += 1;
        }
    }
}

impl EventLog {
    /// The `seq_score` of each sample from `scorer` (`None` = missing): the
    /// history is the user's items of every event strictly before the
    /// sample's moment, and a moment before the scorer's training cut-off
    /// gets no score.
    pub fn sequence_scores(
        &self,
        samples: &[Sample],
        scorer: &dyn SequenceScorer,
    ) -> Vec<Option<f32>> {
        let cut = scorer.trained_before();
        let mut out = vec![None; samples.len()];
        let eligible: Vec<usize> = (0..samples.len())
            .filter(|&k| samples[k].t >= cut)
            .collect();
        for chunk in eligible.chunks(SEQ_BATCH) {
            // One history per distinct (user, moment) of the chunk.
            let mut slot: HashMap<(u32, i64), usize> = HashMap::new();
            let mut histories: Vec<Vec<u32>> = Vec::new();
            let mut queries: Vec<(usize, u32)> = Vec::new();
            let mut asked: Vec<usize> = Vec::new();
            for &k in chunk {
                let s = &samples[k];
                let h = *slot.entry((s.user, s.t)).or_insert_with(|| {
                    let list = self.by_user.get(s.user as usize).map_or(&[][..], |v| v);
                    let items = self.before(list, s.t).iter();
                    histories.push(items.map(|&e| self.events[e as usize].item).collect());
                    histories.len() - 1
                });
                if !histories[h].is_empty() {
                    queries.push((h, s.item));
                    asked.push(k);
                }
            }
            let refs: Vec<&[u32]> = histories.iter().map(Vec::as_slice).collect();
            for (k, score) in asked.into_iter().zip(scorer.scores(&refs, &queries)) {
                out[k] = score;
            }
        }
        out
    }
}

/// Writes a sequence score into a feature row (after [`EventLog::features`]
/// filled it), counting a missing one.
pub fn set_sequence_score(row: &mut [f32], score: Option<f32>, missing: &mut MissingCounts) {
    match score.filter(|v| v.is_finite()) {
        Some(v) => {
            row[F::seq_score as usize] = v;
            row[F::seq_missing as usize] = 0.0;
        }
        None => {
            row[F::seq_score as usize] = FEATURES[F::seq_score as usize].default;
            row[F::seq_missing as usize] = FEATURES[F::seq_missing as usize].default;
            missing.no_sequence_score += 1;
        }
    }
}

/// One labelled (user, item, moment) of the purchase model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub user: u32,
    pub item: u32,
    pub t: i64,
    pub label: bool,
}

/// The purchase-prediction task on a temporal split.
#[derive(Debug, Clone, Serialize)]
pub struct PurchaseTask {
    pub train: Vec<Sample>,
    pub test: Vec<Sample>,
    /// Samples at or after this moment are test samples.
    pub test_from: i64,
    /// Test samples are before this moment (their label window then closes
    /// before the log ends).
    pub test_to: i64,
    pub horizon_s: i64,
}

/// Samples of "does this view turn into a purchase": every view of `(user,
/// item)` at `t` is one sample, labelled 1 when the user buys the item in
/// `[t, t + horizon_s)`. These are real impressions: the negatives are views
/// that were not bought. The last `test_s` seconds whose label window still
/// fits in the log are the test period; a training sample's label window must
/// close before the test period begins (training happens then), so training
/// samples have `t < test_from - horizon_s` (with `test_s = 0`: every view
/// whose label window closed, `t < end - horizon_s`). Events outside the main window
/// (a few stray early timestamps) are kept as history, never as samples
/// before the first day.
pub fn purchase_samples(log: &EventLog, horizon_s: i64, test_s: i64) -> PurchaseTask {
    let end = log.events.last().map_or(0, |e| e.ts);
    let test_to = end - horizon_s;
    let test_from = test_to - test_s;
    // Buy times per (user, item).
    let mut buys: HashMap<(u32, u32), Vec<i64>> = HashMap::new();
    for e in log.events.iter().filter(|e| e.kind == Kind::Buy) {
        buys.entry((e.user, e.item)).or_default().push(e.ts);
    }
    // Without a test period every sample whose label window closed trains.
    let train_to = if test_s > 0 {
        test_from - horizon_s
    } else {
        test_to
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for e in log.events.iter().filter(|e| e.kind == Kind::View) {
        let label = buys
            .get(&(e.user, e.item))
            .is_some_and(|ts| ts.iter().any(|&b| b >= e.ts && b < e.ts + horizon_s));
        let s = Sample {
            user: e.user,
            item: e.item,
            t: e.ts,
            label,
        };
        if e.ts >= test_from && e.ts < test_to {
            test.push(s);
        } else if e.ts < train_to {
            train.push(s);
        }
    }
    PurchaseTask {
        train,
        test,
        test_from,
        test_to,
        horizon_s,
    }
}

/// Reads a label: `1`/`0`/`true`/`false` (any case, surrounding spaces
/// ignored). Anything else (2, -1, 0.5, "yes", empty) is `None`, to be
/// counted and quarantined by the caller.
pub fn parse_label(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" => Some(true),
        "0" | "0.0" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(
        user: &'static str,
        item: &'static str,
        ts: i64,
        seq: i64,
        t: EventType,
    ) -> Interaction<'static> {
        Interaction {
            user,
            item,
            ts,
            seq,
            event_type: t,
        }
    }

    fn shop() -> Vec<Interaction<'static>> {
        use EventType::*;
        vec![
            raw("u1", "a", 100, 1, View),
            raw("u1", "a", 200, 2, AddToCart),
            raw("u2", "a", 250, 3, View),
            raw("u1", "b", 300, 4, View),
            raw("u1", "a", 400, 5, Purchase),
            raw("u2", "b", 400, 6, View),
            raw("u1", "c", 500, 7, View),
            raw("u2", "a", 90_000, 8, Purchase),
            raw("u3", "c", 90_100, 9, View),
        ]
    }

    fn catalog() -> CatalogFacts<'static> {
        let mut c = CatalogFacts::new();
        let f = |category, price, title| ItemFacts {
            category,
            price,
            title,
        };
        c.insert("a", f(Some("shoes"), Some(40.0), Some("Red running shoe")));
        c.insert(
            "b",
            f(Some("shoes"), None, Some("Blue walking shoe, red laces")),
        );
        c.insert("c", f(None, Some(10.0), None));
        c
    }

    /// The shop's log as it was before `t`: the events at or after `t` are
    /// moved far into the future (so users and items keep their ids).
    fn log_without_events_from(t: i64) -> EventLog {
        let moved = shop().into_iter().map(|e| Interaction {
            ts: if e.ts >= t { 10_000_000 + e.seq } else { e.ts },
            ..e
        });
        EventLog::build(moved, &catalog())
    }

    fn row(log: &EventLog, user: &str, item: &str, t: i64) -> (Vec<f32>, MissingCounts) {
        let u = log.users.iter().position(|x| x == user).unwrap() as u32;
        let i = log.items.iter().position(|x| x == item).unwrap() as u32;
        let mut out = vec![0f32; N_FEATURES];
        let mut m = MissingCounts::default();
        log.features(u, i, t, &mut out, &mut m);
        (out, m)
    }

    #[test]
    fn features_are_declared_once_with_unique_names() {
        let mut names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), N_FEATURES);
        assert_eq!(F::seq_missing as usize, N_FEATURES - 1);
    }

    /// No feature of (user, item, t) may read an event at or after t: the
    /// row from the full log equals the row from the log cut at t, for every
    /// pair and every moment, and events added after t change nothing.
    #[test]
    fn point_in_time_rows_ignore_events_at_or_after_the_moment() {
        let full = EventLog::build(shop(), &catalog());
        for &t in &[0, 100, 101, 250, 400, 401, 1000, 90_000, 90_101] {
            let truncated = log_without_events_from(t);
            for u in ["u1", "u2", "u3"] {
                for i in ["a", "b", "c"] {
                    let (a, _) = row(&full, u, i, t);
                    let (b, _) = row(&truncated, u, i, t);
                    assert_eq!(a, b, "{u} {i} at {t}");
                }
            }
        }
    }

    /// Scores an item by what it was given: the history's length and last
    /// item, so the test can see exactly which events reached the model.
    struct Echo {
        cut: i64,
        /// Histories handed over so far.
        histories: std::sync::atomic::AtomicUsize,
    }

    impl SequenceScorer for Echo {
        fn trained_before(&self) -> i64 {
            self.cut
        }
        fn scores(&self, histories: &[&[u32]], queries: &[(usize, u32)]) -> Vec<Option<f32>> {
            self.histories
                .fetch_add(histories.len(), std::sync::atomic::Ordering::Relaxed);
            queries
                .iter()
                .map(|&(h, item)| {
                    let h = histories[h];
                    (item != 2).then(|| h.len() as f32 * 100.0 + *h.last().unwrap() as f32)
                })
                .collect()
        }
    }

    /// The sequence score of (user, item, t) sees only the user's events
    /// before t, none before the model's cut-off, and equals the score from a
    /// log without the later events.
    #[test]
    fn sequence_scores_are_point_in_time() {
        let cat = catalog();
        let full = EventLog::build(shop(), &cat);
        let scorer = Echo {
            cut: 250,
            histories: Default::default(),
        };
        let ids = |log: &EventLog, u: &str, i: &str| {
            (log.user_index(u).unwrap(), log.item_index(i).unwrap())
        };
        for &t in &[0, 100, 249, 250, 301, 400, 401, 90_000, 90_101] {
            let truncated = log_without_events_from(t);
            for u in ["u1", "u2", "u3"] {
                for i in ["a", "b", "c"] {
                    let (uu, ii) = ids(&full, u, i);
                    let s = [Sample {
                        user: uu,
                        item: ii,
                        t,
                        label: false,
                    }];
                    let got = full.sequence_scores(&s, &scorer)[0];
                    let (tu, ti) = ids(&truncated, u, i);
                    let s2 = [Sample {
                        user: tu,
                        item: ti,
                        t,
                        label: false,
                    }];
                    assert_eq!(
                        got,
                        truncated.sequence_scores(&s2, &scorer)[0],
                        "{u} {i} {t}"
                    );
                    let before: Vec<u32> = full.user_before(uu, t).map(|e| e.item).collect();
                    let want = if t < 250 || before.is_empty() || ii == 2 {
                        None
                    } else {
                        Some(before.len() as f32 * 100.0 + *before.last().unwrap() as f32)
                    };
                    assert_eq!(got, want, "{u} {i} {t}");
                }
            }
        }
        // Several items asked at one (user, moment): one history, scored alike.
        let (u1, _) = ids(&full, "u1", "a");
        let many: Vec<Sample> = ["a", "b", "c"]
            .iter()
            .map(|i| Sample {
                user: u1,
                item: full.item_index(i).unwrap(),
                t: 450,
                label: false,
            })
            .collect();
        let before = scorer.histories.load(std::sync::atomic::Ordering::Relaxed);
        let got = full.sequence_scores(&many, &scorer);
        let after = scorer.histories.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(after - before, 1);
        assert_eq!(got[0], full.sequence_scores(&many[..1], &scorer)[0]);
        assert_eq!(got[0], got[1]);
        assert_eq!(got[2], None, "item c (id 2) is the scorer's unscorable one");
        // Into a row: a score clears the missing flag; none is counted.
        let mut row = vec![0f32; N_FEATURES];
        let mut m = MissingCounts::default();
        full.features(0, 0, 500, &mut row, &mut m);
        assert_eq!(row[F::seq_missing as usize], 1.0);
        set_sequence_score(&mut row, Some(1.5), &mut m);
        assert_eq!(
            (row[F::seq_score as usize], row[F::seq_missing as usize]),
            (1.5, 0.0)
        );
        set_sequence_score(&mut row, Some(f32::NAN), &mut m);
        assert_eq!(
            (row[F::seq_score as usize], row[F::seq_missing as usize]),
            (0.0, 1.0)
        );
        assert_eq!(m.no_sequence_score, 1);
    }

    #[test]
    fn values_and_missing_defaults() {
        let log = EventLog::build(shop(), &catalog());
        // u1 / a at 450: viewed once, carted, bought once; last touched at 400.
        let (r, m) = row(&log, "u1", "a", 450);
        assert_eq!(r[F::ui_carted as usize], 1.0);
        assert_eq!(r[F::ui_buys as usize], 1f32.ln_1p());
        assert_eq!(r[F::ui_views as usize], 1f32.ln_1p());
        assert!((r[F::ui_recency as usize] - 50.0 / 3600.0).abs() < 1e-6);
        assert_eq!(r[F::u_views as usize], 2f32.ln_1p());
        // 4 of u1's 4 events before 450 are in "shoes" (a, a, b, a).
        assert_eq!(r[F::u_cat_affinity as usize], 1.0);
        assert_eq!(r[F::i_price as usize], 40f32.ln_1p());
        assert_eq!(m.users_without_history, 0);
        // Title words: u2 had only viewed a ("red running shoe") before 300;
        // b's five words ("blue walking shoe red laces") share two with it.
        let (r, m) = row(&log, "u2", "b", 300);
        assert_eq!(r[F::i_title_tokens as usize], 5f32.ln_1p());
        assert_eq!(r[F::i_title_missing as usize], 0.0);
        assert!((r[F::ui_title_overlap as usize] - 0.4).abs() < 1e-6);
        assert_eq!(m.items_without_title, 0);
        // Before any event of u2: no overlap; c has no title.
        assert_eq!(
            row(&log, "u2", "b", 250).0[F::ui_title_overlap as usize],
            0.0
        );
        let (r, m) = row(&log, "u1", "c", 600);
        assert_eq!(r[F::i_title_missing as usize], 1.0);
        assert_eq!(m.items_without_title, 1);
        // u3 before its first event: no history, everything at its default.
        let (r, m) = row(&log, "u3", "c", 90_100);
        assert_eq!(r[F::u_new as usize], 1.0);
        assert_eq!(r[F::u_recency as usize], RECENCY_CAP_H);
        assert_eq!(r[F::i_cat_missing as usize], 1.0);
        assert_eq!(m.users_without_history, 1);
        assert_eq!(m.items_without_category, 1);
        // b has no price.
        let (r, m) = row(&log, "u2", "b", 500);
        assert_eq!(r[F::i_price_missing as usize], 1.0);
        assert_eq!(m.items_without_price, 1);
        // An item nobody saw before the moment.
        let (_, m) = row(&log, "u1", "c", 10);
        assert_eq!(m.items_never_seen, 1);
    }

    #[test]
    fn samples_are_views_labelled_by_a_later_purchase_within_the_horizon() {
        let mut ev = shop();
        ev.push(raw("u9", "z", 300_000, 10, EventType::View));
        let log = EventLog::build(ev, &catalog());
        let task = purchase_samples(&log, 100_000, 50_000);
        assert_eq!(task.test_to, 200_000);
        assert_eq!(task.test_from, 150_000);
        // Train: views before 50,000. u1/a at 100 was bought at 400 -> 1;
        // u2/a at 250 bought at 90,000 (outside 100,000? no: inside) -> 1.
        let label = |u: &str, i: &str| {
            task.train
                .iter()
                .find(|s| log.users[s.user as usize] == u && log.items[s.item as usize] == i)
                .map(|s| s.label)
        };
        assert_eq!(label("u1", "a"), Some(true));
        assert_eq!(label("u2", "a"), Some(true));
        assert_eq!(label("u1", "b"), Some(false));
        assert_eq!(task.train.len(), 5);
        // u3/c at 90,100 is in neither: its label window would overlap the test period.
        assert!(task.test.is_empty());
    }

    /// Live events pushed one by one (one out of order) give the same rows
    /// as a log built from all of them.
    #[test]
    fn pushed_events_read_like_a_built_log() {
        let all = shop();
        let (first, rest) = all.split_at(4);
        let mut live = EventLog::build(first.to_vec(), &catalog());
        let mut rest = rest.to_vec();
        rest.swap(0, 2); // one late arrival
        for e in &rest {
            live.push(e, catalog().get(e.item).copied().unwrap_or_default());
        }
        let built = EventLog::build(shop(), &catalog());
        for t in [0, 300, 401, 450, 90_050, 100_000] {
            for u in ["u1", "u2", "u3"] {
                for i in ["a", "b", "c"] {
                    assert_eq!(row(&live, u, i, t).0, row(&built, u, i, t).0, "{u} {i} {t}");
                }
            }
        }
        assert_eq!(live.user_index("u3"), built.user_index("u3").map(|_| 2));
    }

    #[test]
    fn labels_other_than_zero_or_one_are_refused() {
        assert_eq!(parse_label(" 1 "), Some(true));
        assert_eq!(parse_label("FALSE"), Some(false));
        for bad in ["2", "-1", "0.5", "yes", "", "nan"] {
            assert_eq!(parse_label(bad), None, "{bad:?}");
        }
    }
}
