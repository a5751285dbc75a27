//! Row-level work: each row parsed (CSV/TSV, JSON lines, sequence lines),
//! validated into an [`Event`] or quarantined with a reason, counted for
//! duplicates, and handed on as a candidate (to the chunked output, or to
//! the spill when a whole-history rule is on); the running figures of the
//! report ([`Accum`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use aisle_core::hash::{hash_fields, StableHasher};
use aisle_core::{CatalogItem, Event, EventType};

use crate::config::{DatasetConfig, TimeFormat};
use crate::report::{QuarantinedRow, Reason, SourceFile};
use crate::{catalog, spill, QuarantineSink, CHUNK};

/// Logical fields, in a fixed order.
#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum F {
    User,
    Item,
    Time,
    TimeOffset,
    Type,
    Quantity,
    Price,
    Session,
    Value,
    Title,
    Description,
    Category,
}
pub(crate) const NF: usize = 12;

/// A candidate event that passed row-level validation.
pub(crate) struct Candidate {
    pub(crate) event: Event,
    pub(crate) line: u64,
    pub(crate) raw: (u64, u64),
    /// Identical rows seen before this one.
    pub(crate) ordinal: u32,
    pub(crate) content_hash: u64,
    pub(crate) dropped: Option<Reason>,
    /// An identical row was accepted before this one (see [`Accum::add`]).
    pub(crate) repeat: bool,
}

/// Running figures over accepted events.
#[derive(Default)]
pub(crate) struct Accum {
    pub(crate) events: Vec<Event>,
    pub(crate) accepted: u64,
    /// Distinct users and items, as 64-bit hashes of the ids (8 bytes each,
    /// not the ids: the report needs only the counts; a collision among
    /// ten million ids has a chance of about 3 in a million).
    pub(crate) users: aisle_core::hash::FastSet<u64>,
    pub(crate) items: aisle_core::hash::FastSet<u64>,
    /// Accepted events per type, in [`EventType::ALL`] order.
    pub(crate) by_type: [u64; EventType::ALL.len()],
    pub(crate) tmin: Option<i64>,
    pub(crate) tmax: Option<i64>,
}

impl Accum {
    /// Counts an accepted event. `repeat`: an identical row was accepted
    /// before, so its user and item are already counted (two hash lookups
    /// saved per repeated row).
    pub(crate) fn add(&mut self, e: &Event, repeat: bool) {
        self.accepted += 1;
        if !repeat {
            self.users.insert(hash_fields([e.user.as_bytes()]));
            self.items.insert(hash_fields([e.item.as_bytes()]));
        }
        self.by_type[e.event_type as usize] += 1;
        self.tmin = Some(self.tmin.map_or(e.ts, |m| m.min(e.ts)));
        self.tmax = Some(self.tmax.map_or(e.ts, |m| m.max(e.ts)));
    }

    pub(crate) fn by_type(&self) -> BTreeMap<String, u64> {
        EventType::ALL
            .iter()
            .zip(self.by_type)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| (t.as_str().to_string(), n))
            .collect()
    }
}

/// Row-level validation state.
pub(crate) struct RowState<'c, 's> {
    pub(crate) cfg: &'c DatasetConfig,
    pub(crate) known_items: Option<&'c BTreeMap<String, CatalogItem>>,
    /// Items the catalog file's rows matched to `cleaning.exclude`.
    pub(crate) excluded: std::collections::HashSet<String>,
    pub(crate) sink: Option<&'s mut dyn FnMut(Vec<Event>) -> bool>,
    /// A whole-history rule is on: candidates are held until the end.
    pub(crate) needs_history: bool,
    pub(crate) stopped: bool,
    pub(crate) acc: Accum,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) candidates: Vec<Candidate>,
    /// The spill of candidates when a whole-history rule is on.
    pub(crate) history: Option<spill::History>,
    /// The first failure writing the spill.
    pub(crate) spill_error: Option<std::io::Error>,
    pub(crate) spill_dir: Option<std::path::PathBuf>,
    pub(crate) run_bytes: usize,
    /// Distinct rows counted in memory before counting moves to the spill.
    pub(crate) seen_cap: usize,
    pub(crate) quarantine: Vec<QuarantinedRow>,
    /// With a sink, rows go there and only their counts stay here.
    pub(crate) q_sink: Option<QuarantineSink>,
    pub(crate) sunk: BTreeMap<&'static str, u64>,
    pub(crate) arena: String,
    pub(crate) rows_read: u64,
    pub(crate) seen: aisle_core::hash::FastMap<u64, u32>,
    pub(crate) catalog_agg: catalog::Aggregator,
    pub(crate) type_cache: aisle_core::hash::FastMap<String, Option<EventType>>,
}

impl<'c, 's> RowState<'c, 's> {
    pub(crate) fn new(
        cfg: &'c DatasetConfig,
        now: i64,
        known_items: Option<&'c BTreeMap<String, CatalogItem>>,
        sink: Option<&'s mut dyn FnMut(Vec<Event>) -> bool>,
    ) -> Self {
        let c = &cfg.cleaning;
        let needs_history = c.consecutive_duplicate_window_s.is_some()
            || (c.bot_max_events_per_minute.is_some()
                && cfg.fields.time_format != TimeFormat::Order)
            || c.kcore > 0;
        RowState {
            cfg,
            known_items,
            excluded: Default::default(),
            sink,
            needs_history,
            stopped: false,
            acc: Accum::default(),
            min_ts: aisle_core::time::parse_datetime(&cfg.cleaning.min_time)
                .unwrap_or(i64::MIN)
                .max(aisle_core::MIN_TS),
            max_ts: now
                .saturating_add(cfg.cleaning.future_slack_s)
                .min(aisle_core::MAX_TS),
            candidates: Vec::new(),
            history: None,
            spill_error: None,
            spill_dir: None,
            run_bytes: spill::RUN_BYTES,
            seen_cap: spill::SEEN_CAP,
            quarantine: Vec::new(),
            q_sink: None,
            sunk: BTreeMap::new(),
            arena: String::new(),
            rows_read: 0,
            seen: Default::default(),
            catalog_agg: catalog::Aggregator::default(),
            type_cache: Default::default(),
        }
    }

    /// Quarantines a row: to the sink when there is one, else kept.
    pub(crate) fn push_q(&mut self, row: QuarantinedRow) {
        match self.q_sink.as_mut() {
            Some(sink) => {
                sink(&row);
                *self.sunk.entry(row.reason.as_str()).or_insert(0) += 1;
            }
            None => self.quarantine.push(row),
        }
    }

    /// Moves finished candidates out: dropped ones to the quarantine, the
    /// rest (with their idempotency keys) to the sink or the output.
    pub(crate) fn flush(&mut self) {
        let mut chunk = Vec::with_capacity(self.candidates.len());
        let mut candidates = std::mem::take(&mut self.candidates);
        for c in candidates.drain(..) {
            match c.dropped {
                Some(reason) => {
                    let row = QuarantinedRow {
                        file: SourceFile::Events,
                        line: c.line,
                        reason,
                        detail: rule_detail(reason, &c.event).into(),
                        raw: self.arena[c.raw.0 as usize..c.raw.1 as usize].to_string(),
                        raw_hex: None,
                    };
                    self.push_q(row);
                }
                None => {
                    let mut ev = c.event;
                    ev.key = hash_fields([
                        c.content_hash.to_le_bytes().as_slice(),
                        c.ordinal.to_le_bytes().as_slice(),
                    ]);
                    self.acc.add(&ev, c.repeat);
                    chunk.push(ev);
                }
            }
        }
        self.arena.clear();
        // Keep the allocation for the next chunk.
        self.candidates = candidates;
        if chunk.is_empty() {
            return;
        }
        match self.sink.as_mut() {
            Some(sink) => {
                if !self.stopped && !sink(chunk) {
                    self.stopped = true;
                }
            }
            None => self.acc.events.extend(chunk),
        }
    }

    pub(crate) fn quarantine_raw(
        &mut self,
        line: u64,
        reason: Reason,
        detail: impl Into<Cow<'static, str>>,
        raw: &[u8],
    ) {
        let detail = detail.into();
        let (raw_s, raw_hex) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(raw).into_owned(),
                Some(raw.iter().map(|b| format!("{b:02x}")).collect()),
            ),
        };
        self.push_q(QuarantinedRow {
            file: SourceFile::Events,
            line,
            reason,
            detail,
            raw: raw_s,
            raw_hex,
        });
    }

    /// How many identical rows came before this one, while the count fits
    /// in memory; None once it would pass the cap (the row is then counted
    /// on disk, see [`RowState::spill`]).
    pub(crate) fn occurrence(&mut self, h: u64) -> Option<u32> {
        if let Some(e) = self.seen.get_mut(&h) {
            let o = *e;
            *e = e.saturating_add(1);
            return Some(o);
        }
        if self.seen.len() < self.seen_cap {
            self.seen.insert(h, 1);
            return Some(0);
        }
        None
    }

    /// Appends a candidate to the spill (opened here on first use when no
    /// whole-history rule is on) and drops its raw text from the arena. The
    /// first failure is kept for [`Ingestor::run`] to report; later rows are
    /// not written.
    pub(crate) fn spill(
        &mut self,
        event: &Event,
        line: u64,
        raw: (u64, u64),
        ordinal: Option<u32>,
        content_hash: u64,
        verdict: Option<Reason>,
    ) {
        if self.history.is_none() && self.spill_error.is_none() {
            match spill::History::new(self.spill_dir.as_deref(), self.run_bytes, false) {
                Ok(h) => self.history = Some(h),
                Err(e) => self.spill_error = Some(e),
            }
        }
        if let (Some(h), None) = (self.history.as_mut(), &self.spill_error) {
            let text = &self.arena[raw.0 as usize..raw.1 as usize];
            if let Err(e) = h.push(event, line, text, ordinal, content_hash, verdict) {
                self.spill_error = Some(e);
            }
        }
        self.arena.truncate(raw.0 as usize);
    }

    pub(crate) fn csv_row(
        &mut self,
        rec: &csv::ByteRecord,
        line: u64,
        ncols: usize,
        idx: &[Option<usize>; NF],
        delim: u8,
    ) {
        self.rows_read += 1;
        let raw_join = || {
            let mut v = Vec::with_capacity(rec.as_slice().len() + rec.len());
            for (i, f) in rec.iter().enumerate() {
                if i > 0 {
                    v.push(delim);
                }
                v.extend_from_slice(f);
            }
            v
        };
        let mut h = StableHasher::new();
        for f in rec.iter() {
            h.field(f);
        }
        let content_hash = h.finish();
        if rec.len() != ncols {
            let raw = raw_join();
            self.quarantine_raw(
                line,
                Reason::WrongColumnCount,
                format!("{} fields, header has {ncols}", rec.len()),
                &raw,
            );
            return;
        }
        if let Some((i, f)) = rec
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() > self.cfg.cleaning.max_field_bytes)
        {
            let raw = raw_join();
            self.quarantine_raw(
                line,
                Reason::FieldTooLarge,
                format!(
                    "field {} has {} bytes (max {})",
                    i + 1,
                    f.len(),
                    self.cfg.cleaning.max_field_bytes
                ),
                &raw,
            );
            return;
        }
        // Validate UTF-8 once for the whole record; fields are then sliced out
        // of it by their byte ranges (which end at ASCII delimiters).
        let Ok(whole) = std::str::from_utf8(rec.as_slice()) else {
            let raw = raw_join();
            self.quarantine_raw(line, Reason::InvalidUtf8, "row is not valid UTF-8", &raw);
            return;
        };
        let field =
            |i: usize| -> &str { rec.range(i).and_then(|r| whole.get(r)).unwrap_or_default() };
        let mut fields: [Option<&str>; NF] = [None; NF];
        for (k, slot) in idx.iter().enumerate() {
            if let Some(i) = slot {
                let s = field(*i).trim();
                fields[k] = if s.is_empty() { None } else { Some(s) };
            }
        }
        let raw_start = self.arena.len() as u64;
        for i in 0..rec.len() {
            if i > 0 {
                self.arena.push(delim as char);
            }
            self.arena.push_str(field(i));
        }
        let raw = (raw_start, self.arena.len() as u64);
        self.validate(line, fields, raw, content_hash);
    }

    pub(crate) fn json_row(&mut self, text: &[u8], line: u64) {
        self.rows_read += 1;
        let content_hash = hash_fields([text]);
        if text.len() > self.cfg.cleaning.max_field_bytes * 4 {
            self.quarantine_raw(
                line,
                Reason::FieldTooLarge,
                format!("line has {} bytes", text.len()),
                text,
            );
            return;
        }
        let Ok(s) = std::str::from_utf8(text) else {
            self.quarantine_raw(line, Reason::InvalidUtf8, "line is not valid UTF-8", text);
            return;
        };
        let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(s) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => {
                self.quarantine_raw(line, Reason::Unparseable, "not a JSON object", text);
                return;
            }
            Err(e) => {
                self.quarantine_raw(line, Reason::Unparseable, format!("bad JSON: {e}"), text);
                return;
            }
        };
        let f = &self.cfg.fields;
        let names = [
            &f.user,
            &f.item,
            &f.time,
            &f.time_offset_ms,
            &f.event_type,
            &f.quantity,
            &f.price,
            &f.session,
            &f.value,
            &f.title,
            &f.description,
            &f.category,
        ];
        let values: Vec<Option<String>> = names
            .iter()
            .map(|n| {
                n.as_ref().and_then(|k| match obj.get(k.as_str()) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
                    Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                        Some(v.to_string())
                    }
                    Some(other) => Some(other.to_string()),
                })
            })
            .collect();
        if let Some((i, _)) = values.iter().enumerate().find(|(_, v)| {
            v.as_ref()
                .is_some_and(|v| v.len() > self.cfg.cleaning.max_field_bytes)
        }) {
            self.quarantine_raw(
                line,
                Reason::FieldTooLarge,
                format!("field {} too large", i + 1),
                text,
            );
            return;
        }
        let mut fields: [Option<&str>; NF] = [None; NF];
        for (k, v) in values.iter().enumerate() {
            fields[k] = v.as_deref().filter(|s| !s.is_empty());
        }
        let raw_start = self.arena.len() as u64;
        self.arena.push_str(s);
        let raw = (raw_start, self.arena.len() as u64);
        self.validate(line, fields, raw, content_hash);
    }

    pub(crate) fn seq_line(&mut self, text: &[u8], line: u64) {
        let Ok(s) = std::str::from_utf8(text) else {
            self.rows_read += 1;
            self.quarantine_raw(line, Reason::InvalidUtf8, "line is not valid UTF-8", text);
            return;
        };
        let mut toks = s.split_ascii_whitespace();
        let user = toks.next().unwrap_or_default();
        let mut any = false;
        for (pos, item) in toks.enumerate() {
            any = true;
            self.rows_read += 1;
            let pos_s = pos.to_string();
            let content_hash = hash_fields([user.as_bytes(), item.as_bytes(), pos_s.as_bytes()]);
            if item.len() > self.cfg.cleaning.max_field_bytes
                || user.len() > self.cfg.cleaning.max_field_bytes
            {
                self.quarantine_raw(
                    line,
                    Reason::FieldTooLarge,
                    "field too large",
                    item.as_bytes(),
                );
                continue;
            }
            let mut fields: [Option<&str>; NF] = [None; NF];
            fields[F::User as usize] = Some(user);
            fields[F::Item as usize] = Some(item);
            fields[F::Time as usize] = Some(&pos_s);
            let raw_start = self.arena.len() as u64;
            self.arena.push_str(user);
            self.arena.push('\t');
            self.arena.push_str(item);
            self.arena.push('\t');
            self.arena.push_str(&pos_s);
            let raw = (raw_start, self.arena.len() as u64);
            self.validate(line, fields, raw, content_hash);
        }
        if !any {
            self.rows_read += 1;
            self.quarantine_raw(line, Reason::MissingItem, "a user with no items", text);
        }
    }

    pub(crate) fn event_type(&mut self, src: &str) -> Option<EventType> {
        if let Some(t) = self.type_cache.get(src) {
            return *t;
        }
        let t = self
            .cfg
            .event_types
            .get(src)
            .copied()
            .or_else(|| EventType::parse(src));
        self.type_cache.insert(src.to_string(), t);
        t
    }

    /// The event a row describes, or why it is refused (every check that
    /// reads only the row: ids, type, time, numbers).
    fn parse_event(
        &mut self,
        f: &[Option<&str>; NF],
    ) -> Result<Event, (Reason, Cow<'static, str>)> {
        let Some(user) = f[F::User as usize] else {
            return Err((Reason::MissingUser, "user id is empty".into()));
        };
        let Some(item) = f[F::Item as usize] else {
            return Err((Reason::MissingItem, "item id is empty".into()));
        };
        for (what, id) in [
            ("user id", Some(user)),
            ("item id", Some(item)),
            ("session id", f[F::Session as usize]),
        ] {
            if let Some(why) = id.and_then(aisle_core::id_problem) {
                return Err((Reason::BadId, format!("{what} {why}").into()));
            }
        }
        let (event_type, source_type) = match f[F::Type as usize] {
            Some(src) => match self.event_type(src) {
                Some(t) => (t, src.to_string()),
                None => {
                    return Err((
                        Reason::UnknownEventType,
                        format!("event type {src:?} is not known").into(),
                    ));
                }
            },
            None => match self.cfg.default_event_type {
                Some(t) => (
                    t,
                    self.cfg
                        .source_type
                        .clone()
                        .unwrap_or_else(|| t.as_str().to_string()),
                ),
                None => return Err((Reason::UnknownEventType, "event type is empty".into())),
            },
        };
        let ts = match parse_time(self.cfg, f[F::Time as usize], f[F::TimeOffset as usize]) {
            Ok(ts) => ts,
            Err(d) => return Err((Reason::BadTimestamp, d.into())),
        };
        if self.cfg.fields.time_format != TimeFormat::Order
            && (ts < self.min_ts || ts > self.max_ts)
        {
            return Err((
                Reason::BadTimestamp,
                format!(
                    "{} is outside the plausible range",
                    aisle_core::time::format_rfc3339(ts)
                )
                .into(),
            ));
        }
        let num = |s: Option<&str>, what: &str| -> Result<Option<f64>, String> {
            match s {
                None => Ok(None),
                Some(s) => match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(Some(v)),
                    _ => Err(format!("{what} {s:?} is not a number")),
                },
            }
        };
        let (mut quantity, price, value) = match (
            num(f[F::Quantity as usize], "quantity"),
            num(f[F::Price as usize], "price"),
            num(f[F::Value as usize], "value"),
        ) {
            (Ok(q), Ok(p), Ok(v)) => (q, p, v),
            (Err(d), _, _) | (_, Err(d), _) | (_, _, Err(d)) => {
                return Err((Reason::BadNumber, d.into()))
            }
        };
        if let Some(q) = quantity {
            if event_type == EventType::Cancel {
                if q < 0.0 {
                    quantity = Some(-q);
                }
            } else if q <= 0.0 {
                return Err((
                    Reason::NonPositiveQuantity,
                    format!("quantity {q} on a {event_type} event").into(),
                ));
            }
        }
        if let Some(p) = price {
            if p < 0.0 {
                return Err((Reason::NegativePrice, format!("price {p}").into()));
            }
        }
        Ok(Event {
            key: 0,
            user: user.to_string(),
            item: item.to_string(),
            ts,
            event_type,
            source_type,
            quantity,
            price,
            session: f[F::Session as usize].map(str::to_string),
            value,
        })
    }

    /// Whether the row's own catalog fields match `cleaning.exclude`
    /// (catalogs built from events; a catalog file's exclusions are in
    /// `excluded`).
    fn excluded_by_row(&self, f: &[Option<&str>; NF]) -> bool {
        let ex = &self.cfg.cleaning.exclude;
        if ex.is_empty() || !self.cfg.catalog.from_events {
            return false;
        }
        [("category", F::Category), ("title", F::Title)]
            .iter()
            .any(|(key, field)| {
                ex.get(*key).is_some_and(|vals| {
                    f[*field as usize].is_some_and(|v| vals.iter().any(|x| x == v.trim()))
                })
            })
    }

    pub(crate) fn validate(
        &mut self,
        line: u64,
        f: [Option<&str>; NF],
        raw: (u64, u64),
        content_hash: u64,
    ) {
        let fail = |st: &mut Self, reason: Reason, detail: Cow<'static, str>| {
            let text = st.arena[raw.0 as usize..raw.1 as usize].to_string();
            st.arena.truncate(raw.0 as usize);
            st.push_q(QuarantinedRow {
                file: SourceFile::Events,
                line,
                reason,
                detail,
                raw: text,
                raw_hex: None,
            });
        };
        let excluded_here = self.excluded_by_row(&f);
        // The catalog learns from every row that names an item (not one excluded).
        if self.cfg.catalog.from_events && !excluded_here {
            if let Some(item) = f[F::Item as usize] {
                let price = f[F::Price as usize].and_then(|p| p.parse::<f64>().ok());
                self.catalog_agg.observe(
                    item,
                    f[F::Title as usize],
                    f[F::Description as usize],
                    f[F::Category as usize],
                    price,
                );
            }
        }
        let event = match self.parse_event(&f) {
            Ok(e) => e,
            Err((reason, detail)) => return fail(self, reason, detail),
        };
        // Identical rows are identical up to here (every check so far reads
        // only the row), so counting them at this point gives the same
        // ordinal as counting every row read.
        let ordinal = self.occurrence(content_hash);
        let c = &self.cfg.cleaning;
        let row_rule = if c.drop_non_products && self.cfg.is_non_product(&event.item) {
            Some(Reason::NonProduct)
        } else if excluded_here || self.excluded.contains(&event.item) {
            Some(Reason::ExcludedItem)
        } else if self
            .known_items
            .is_some_and(|k| !k.contains_key(&event.item))
        {
            Some(Reason::UnknownItem)
        } else {
            None
        };
        let Some(ordinal) = ordinal else {
            // Past the in-memory count: the spill settles this row at the end.
            return self.spill(&event, line, raw, None, content_hash, row_rule);
        };
        let immediate = if c.dedupe_exact && ordinal > 0 {
            Some(Reason::ExactDuplicate)
        } else {
            row_rule
        };
        if let Some(reason) = immediate {
            return fail(self, reason, rule_detail(reason, &event).into());
        }
        if self.history.is_some() {
            return self.spill(&event, line, raw, Some(ordinal), content_hash, None);
        }
        // Without a whole-history rule or a spill, an earlier identical row
        // passed the same row-level checks and was accepted.
        self.candidates.push(Candidate {
            event,
            line,
            raw,
            ordinal,
            content_hash,
            dropped: None,
            repeat: ordinal > 0,
        });
        if self.candidates.len() >= CHUNK {
            self.flush();
        }
    }
}

pub(crate) fn parse_time(
    cfg: &DatasetConfig,
    t: Option<&str>,
    offset_ms: Option<&str>,
) -> Result<i64, String> {
    let Some(t) = t else {
        return Err("time is empty".into());
    };
    let int = |s: &str| -> Option<i64> {
        s.parse::<i64>().ok().or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && v.abs() < 9.0e15)
                .map(|v| v.floor() as i64)
        })
    };
    let base = match cfg.fields.time_format {
        TimeFormat::Unix | TimeFormat::Order => int(t),
        TimeFormat::UnixMs => int(t).map(|v| v.div_euclid(1000)),
        TimeFormat::Datetime => aisle_core::time::parse_datetime(t),
        TimeFormat::Date => aisle_core::time::parse_date(t),
    }
    .ok_or_else(|| format!("time {t:?} is not {:?}", cfg.fields.time_format))?;
    match offset_ms {
        None => Ok(base),
        Some(o) => int(o)
            .map(|ms| base + ms.div_euclid(1000))
            .ok_or_else(|| format!("time offset {o:?} is not a number")),
    }
}

pub(crate) fn rule_detail(reason: Reason, ev: &Event) -> String {
    match reason {
        Reason::ExactDuplicate => "identical to an earlier row".into(),
        Reason::NonProduct => format!("{} is a non-product code", ev.item),
        Reason::UnknownItem => format!("item {} is not in the catalog", ev.item),
        Reason::ExcludedItem => format!("item {} matches cleaning.exclude", ev.item),
        Reason::ConsecutiveDuplicate => format!(
            "repeats the user's previous {} of {}",
            ev.event_type, ev.item
        ),
        Reason::BotUser => format!("user {} exceeds the events-per-minute cap", ev.user),
        Reason::Kcore => format!(
            "user {} or item {} below the k-core threshold",
            ev.user, ev.item
        ),
        other => other.as_str().to_string(),
    }
}
