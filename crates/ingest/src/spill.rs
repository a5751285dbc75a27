//! The whole-history rules (`consecutive_duplicate`, `bot_user`, `kcore`) and
//! the exact-duplicate count in bounded memory: candidate rows are spilled to
//! a temporary directory as they are read, and the rules run over files.
//!
//! 0. Identical rows are counted in memory (the ordinal that makes idempotency
//!    keys) until [`SEEN_CAP`] distinct rows; past it every later candidate is
//!    spilled *pending*: its `(seq, hash)` goes to one of [`PARTS`] partition
//!    files by hash, and at the end each partition is counted on its own
//!    (starting from the frozen in-memory counts), which settles the ordinal,
//!    `exact_duplicate`, and the per-row verdict that was waiting for it
//!    (`non_product`, `unknown_item`).
//! 1. While reading, every candidate is appended to `cands` (file order) and a
//!    compact key `(user, ts, seq, item, type)` goes to an in-memory buffer that
//!    is sorted and written as a run when it fills ([`RUN_BYTES`]).
//! 2. The runs are merged by `(user, ts, seq)` (the order the rules define
//!    within a user: time, then file order; users come in hash order). Within one user consecutive duplicates are
//!    dropped as the stream passes and the busiest 60-second window of the
//!    rows left is tracked; a user over the bot cap is remembered by its group
//!    number. Rows still live go to `groups` as `(seq, group, item number)`.
//! 3. A pass over `groups` marks the bots' rows; k-core then iterates over
//!    `groups` (count degrees, mark the rows under `k`) to its fixed point.
//! 4. The caller reads `cands` back in file order with the verdicts.
//!
//! Memory: the frozen counts, the run buffer, 4 bits per row for the verdicts, a bit per user
//! for bots, and for k-core one number per distinct item and a count per user
//! and item; never the rows themselves.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use aisle_core::{Event, EventType};

use crate::config::{DatasetConfig, TimeFormat};
use crate::report::Reason;

/// Key bytes (ids plus fixed overhead) held before a sorted run is written.
pub(crate) const RUN_BYTES: usize = 48 << 20;
/// Per-key overhead counted against [`RUN_BYTES`] (the struct and two boxes).
const KEY_OVERHEAD: usize = 96;
const BUF: usize = 1 << 16;
/// Distinct rows counted in memory before later rows are counted on disk
/// (about 50 MB of map).
pub(crate) const SEEN_CAP: usize = 2 << 20;
/// Partitions of the pending rows' hashes.
const PARTS: usize = 64;
/// The ordinal written for a pending row.
const PENDING: u32 = u32::MAX;

/// Spill directories are named `aisle-ingest-<pid>-<random>`.
const PREFIX: &str = "aisle-ingest-";

/// Removes the spill directories under `dir` whose ingest is gone (killed
/// before it could clean up): they hold raw rows, so erasure and the next
/// ingest call this. A directory whose process still runs is kept; where
/// that cannot be told (no `/proc`), nothing is removed. Returns how many
/// were removed.
pub fn remove_stale_spills(dir: &Path) -> io::Result<u64> {
    if !Path::new("/proc/self").exists() {
        return Ok(0);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !e.file_type()?.is_dir() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        std::fs::remove_dir_all(e.path())?;
        removed += 1;
    }
    Ok(removed)
}

/// A candidate as read back from the spill, with its verdict.
pub(crate) struct Spilled {
    pub event: Event,
    pub line: u64,
    pub raw: String,
    pub ordinal: u32,
    pub content_hash: u64,
    pub dropped: Option<Reason>,
}

struct Key {
    /// A hash of `user`, compared first so most comparisons skip the bytes
    /// (the groups' order does not matter, only that a user's rows meet).
    uhash: u64,
    user: Box<str>,
    ts: i64,
    seq: u64,
    item: Box<str>,
    et: u8,
}

impl Key {
    fn order(&self) -> (u64, &str, i64, u64) {
        (self.uhash, &self.user, self.ts, self.seq)
    }
}

/// The spill of one ingest; the directory goes when this is dropped.
pub(crate) struct History {
    dir: tempfile::TempDir,
    cands: BufWriter<File>,
    keys: Vec<Key>,
    key_bytes: usize,
    runs: Vec<PathBuf>,
    rows: u64,
    run_bytes: usize,
    /// Whether a whole-history rule is on (else no sort keys are kept).
    rules: bool,
    /// Pending rows' `(seq, hash, verdict)` by hash partition, opened on first use.
    parts: Vec<Option<BufWriter<File>>>,
    pending: u64,
}

impl History {
    /// A fresh spill under `parent` (the system's temporary directory when None).
    pub(crate) fn new(parent: Option<&Path>, run_bytes: usize, rules: bool) -> io::Result<History> {
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix);
        let dir = match parent {
            Some(p) => b.tempdir_in(p)?,
            None => b.tempdir()?,
        };
        let cands = BufWriter::with_capacity(BUF, File::create(dir.path().join("cands"))?);
        Ok(History {
            dir,
            cands,
            keys: Vec::new(),
            key_bytes: 0,
            runs: Vec::new(),
            rows: 0,
            run_bytes,
            rules,
            parts: (0..PARTS).map(|_| None).collect(),
            pending: 0,
        })
    }

    /// Appends one candidate (in file order). `ordinal` is None for a row
    /// counted on disk; `verdict` is then what the row-level rules decided
    /// (applied unless the row turns out to be an exact duplicate).
    pub(crate) fn push(
        &mut self,
        event: &Event,
        line: u64,
        raw: &str,
        ordinal: Option<u32>,
        content_hash: u64,
        verdict: Option<Reason>,
    ) -> io::Result<()> {
        let w = &mut self.cands;
        put_u64(w, line)?;
        put_u32(w, ordinal.unwrap_or(PENDING))?;
        put_u64(w, content_hash)?;
        put_str(w, raw)?;
        put_event(w, event)?;
        if ordinal.is_none() {
            let p = (content_hash >> 58) as usize % PARTS;
            if self.parts[p].is_none() {
                let f = File::create(self.dir.path().join(format!("part{p}")))?;
                self.parts[p] = Some(BufWriter::with_capacity(BUF / 4, f));
            }
            let w = self.parts[p].as_mut().expect("opened above");
            put_u64(w, self.rows)?;
            put_u64(w, content_hash)?;
            w.write_all(&[Marks::code(verdict)])?;
            self.pending += 1;
        }
        if !self.rules {
            self.rows += 1;
            return Ok(());
        }
        self.key_bytes += KEY_OVERHEAD + event.user.len() + event.item.len();
        self.keys.push(Key {
            uhash: aisle_core::hash::hash_fields([event.user.as_bytes()]),
            user: event.user.as_str().into(),
            ts: event.ts,
            seq: self.rows,
            item: event.item.as_str().into(),
            et: event.event_type as u8,
        });
        self.rows += 1;
        if self.key_bytes >= self.run_bytes {
            self.write_run()?;
        }
        Ok(())
    }

    fn write_run(&mut self) -> io::Result<()> {
        self.keys.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
        let path = self.dir.path().join(format!("run{}", self.runs.len()));
        let mut w = BufWriter::with_capacity(BUF, File::create(&path)?);
        for k in self.keys.drain(..) {
            put_key(&mut w, &k)?;
        }
        w.flush()?;
        self.runs.push(path);
        self.key_bytes = 0;
        Ok(())
    }

    /// Settles the pending rows against `seen` (the in-memory counts, frozen
    /// when they reached the cap), runs the rules, and returns the rows in
    /// file order with their verdicts and ordinals.
    pub(crate) fn finish(
        mut self,
        cfg: &DatasetConfig,
        seen: aisle_core::hash::FastMap<u64, u32>,
    ) -> io::Result<impl Iterator<Item = io::Result<Spilled>>> {
        self.cands.flush()?;
        let mut marks = Marks::new(self.rows);
        let t = std::time::Instant::now();
        let ordinals = self.settle_pending(cfg, &seen, &mut marks)?;
        // The counts are settled: their memory goes before the merge.
        drop(seen);
        tracing::debug!(
            pending = self.pending,
            secs = t.elapsed().as_secs_f64(),
            "spill: duplicates counted"
        );
        let t = std::time::Instant::now();
        let c = &cfg.cleaning;
        let window = c.consecutive_duplicate_window_s;
        let bot_cap = c
            .bot_max_events_per_minute
            .filter(|_| cfg.fields.time_format != TimeFormat::Order);
        let kcore = c.kcore;
        let need_groups = self.rules && (bot_cap.is_some() || kcore > 0);
        let groups_path = self.dir.path().join("groups");
        let mut groups = need_groups
            .then(|| File::create(&groups_path).map(|f| BufWriter::with_capacity(BUF, f)))
            .transpose()?;
        let mut bots: Vec<bool> = Vec::new();
        let mut items: aisle_core::hash::FastMap<Box<str>, u32> = Default::default();
        let mut ngroups = 0u32;
        {
            let mut user: Option<Box<str>> = None;
            let mut last: Option<(Box<str>, u8, i64)> = None;
            let mut win: VecDeque<i64> = VecDeque::new();
            let mut worst = 0usize;
            let finish_group = |worst: usize, bots: &mut Vec<bool>| {
                bots.push(bot_cap.is_some_and(|cap| worst > cap as usize));
            };
            self.merge(|k| {
                if marks.get(k.seq).is_some() {
                    // Settled above as an exact duplicate, a non-product or an unknown item.
                    return Ok(());
                }
                if user.as_deref() != Some(&*k.user) {
                    if user.is_some() {
                        finish_group(worst, &mut bots);
                        ngroups += 1;
                    }
                    user = Some(k.user.clone());
                    last = None;
                    win.clear();
                    worst = 0;
                }
                if let Some(w) = window {
                    if let Some((item, et, ts)) = &last {
                        if **item == *k.item && *et == k.et && k.ts - ts <= w {
                            marks.set(k.seq, Reason::ConsecutiveDuplicate);
                            return Ok(());
                        }
                    }
                    last = Some((k.item.clone(), k.et, k.ts));
                }
                if bot_cap.is_some() {
                    win.push_back(k.ts);
                    while let Some(&lo) = win.front() {
                        if k.ts - lo >= 60 {
                            win.pop_front();
                        } else {
                            break;
                        }
                    }
                    worst = worst.max(win.len());
                }
                if let Some(g) = groups.as_mut() {
                    let item = if kcore > 0 {
                        intern(&mut items, &k.item)
                    } else {
                        0
                    };
                    put_u64(g, k.seq)?;
                    put_u32(g, ngroups)?;
                    put_u32(g, item)?;
                }
                Ok(())
            })?;
            if user.is_some() {
                finish_group(worst, &mut bots);
                ngroups += 1;
            }
        }
        tracing::debug!(
            rows = self.rows,
            runs = self.runs.len(),
            users = ngroups,
            secs = t.elapsed().as_secs_f64(),
            "spill: runs merged by user"
        );
        let t = std::time::Instant::now();
        let passes = match groups.take() {
            Some(g) => {
                let nitems = items.len();
                drop(items);
                drop_bots_and_kcore(g, &groups_path, (bots, ngroups, nitems), kcore, &mut marks)?
            }
            None => 0,
        };
        tracing::debug!(
            kcore_passes = passes,
            secs = t.elapsed().as_secs_f64(),
            "spill: bots and k-core"
        );
        settled_rows(self.dir, self.rows, ordinals, marks)
    }

    /// Counts the pending rows partition by partition and marks exact
    /// duplicates and the verdicts that waited for the count. Returns the
    /// file of their non-zero ordinals in seq order, if any.
    fn settle_pending(
        &mut self,
        cfg: &DatasetConfig,
        seen: &aisle_core::hash::FastMap<u64, u32>,
        marks: &mut Marks,
    ) -> io::Result<Option<PathBuf>> {
        if self.pending == 0 {
            return Ok(None);
        }
        let dedupe = cfg.cleaning.dedupe_exact;
        let mut outs = Vec::new();
        for p in 0..PARTS {
            let Some(mut w) = self.parts[p].take() else {
                continue;
            };
            w.flush()?;
            drop(w);
            let path = self.dir.path().join(format!("part{p}"));
            let mut r = BufReader::with_capacity(BUF, File::open(&path)?);
            let out_path = self.dir.path().join(format!("ord{p}"));
            let mut out = BufWriter::with_capacity(BUF, File::create(&out_path)?);
            let mut counts: aisle_core::hash::FastMap<u64, u32> = Default::default();
            while let Some(b) = next_record::<17>(&mut r)? {
                let (seq, hash) = (le_u64(&b[..8]), le_u64(&b[8..16]));
                let c = counts
                    .entry(hash)
                    .or_insert_with(|| seen.get(&hash).copied().unwrap_or(0));
                let ordinal = *c;
                *c = c.saturating_add(1);
                if dedupe && ordinal > 0 {
                    marks.set(seq, Reason::ExactDuplicate);
                } else if let Some(v) = Marks::decode(b[16]) {
                    marks.set(seq, v);
                }
                if ordinal > 0 {
                    put_u64(&mut out, seq)?;
                    put_u32(&mut out, ordinal)?;
                }
            }
            out.flush()?;
            std::fs::remove_file(&path)?;
            outs.push(out_path);
        }
        // One file in seq order: a merge of the partitions' (each in seq order).
        let mut readers = Vec::with_capacity(outs.len());
        for p in &outs {
            readers.push(BufReader::with_capacity(BUF / 4, File::open(p)?));
        }
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some((s, o)) = read_ordinal(r)? {
                heap.push(Reverse((s, o, i)));
            }
        }
        let merged = self.dir.path().join("ordinals");
        let mut w = BufWriter::with_capacity(BUF, File::create(&merged)?);
        while let Some(Reverse((s, o, i))) = heap.pop() {
            put_u64(&mut w, s)?;
            put_u32(&mut w, o)?;
            if let Some((s, o)) = read_ordinal(&mut readers[i])? {
                heap.push(Reverse((s, o, i)));
            }
        }
        w.flush()?;
        drop(readers);
        for p in outs {
            std::fs::remove_file(p)?;
        }
        Ok(Some(merged))
    }

    /// Every key in `(user, ts, seq)` order: from memory when nothing was
    /// spilled, else a k-way merge of the runs.
    fn merge(&mut self, mut f: impl FnMut(&Key) -> io::Result<()>) -> io::Result<()> {
        if self.runs.is_empty() {
            self.keys.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
            for k in std::mem::take(&mut self.keys) {
                f(&k)?;
            }
            return Ok(());
        }
        if !self.keys.is_empty() {
            self.write_run()?;
        }
        self.keys = Vec::new();
        let mut readers = Vec::with_capacity(self.runs.len());
        for p in &self.runs {
            readers.push(BufReader::with_capacity(BUF, File::open(p)?));
        }
        struct Head(Key, usize);
        impl PartialEq for Head {
            fn eq(&self, o: &Self) -> bool {
                self.0.order() == o.0.order()
            }
        }
        impl Eq for Head {}
        impl PartialOrd for Head {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Head {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.0.order().cmp(&o.0.order())
            }
        }
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(k) = read_key(r)? {
                heap.push(Reverse(Head(k, i)));
            }
        }
        while let Some(Reverse(Head(k, i))) = heap.pop() {
            f(&k)?;
            if let Some(next) = read_key(&mut readers[i])? {
                heap.push(Reverse(Head(next, i)));
            }
        }
        Ok(())
    }
}

fn for_each_group_row(path: &Path, mut f: impl FnMut(u64, u32, u32)) -> io::Result<()> {
    let mut r = BufReader::with_capacity(BUF, File::open(path)?);
    while let Some(b) = next_record::<16>(&mut r)? {
        f(le_u64(&b[..8]), le_u32(&b[8..12]), le_u32(&b[12..]));
    }
    Ok(())
}

/// The next fixed-size record of a spill file, or None at its end.
fn next_record<const N: usize>(r: &mut impl Read) -> io::Result<Option<[u8; N]>> {
    let mut b = [0u8; N];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// A verdict per row, four bits each (none, or one of the reasons decided
/// after the row was spilled).
struct Marks(Vec<u8>);

impl Marks {
    const REASONS: [Reason; 7] = [
        Reason::ConsecutiveDuplicate,
        Reason::BotUser,
        Reason::Kcore,
        Reason::ExactDuplicate,
        Reason::NonProduct,
        Reason::UnknownItem,
        Reason::ExcludedItem,
    ];

    fn new(rows: u64) -> Marks {
        Marks(vec![0; rows.div_ceil(2) as usize])
    }

    fn code(r: Option<Reason>) -> u8 {
        r.map_or(0, |r| {
            Self::REASONS
                .iter()
                .position(|&x| x == r)
                .expect("a reason decided after spilling") as u8
                + 1
        })
    }

    fn decode(v: u8) -> Option<Reason> {
        (v > 0).then(|| Self::REASONS[v as usize - 1])
    }

    fn get(&self, seq: u64) -> Option<Reason> {
        Self::decode((self.0[(seq / 2) as usize] >> ((seq % 2) * 4)) & 15)
    }

    fn set(&mut self, seq: u64, r: Reason) {
        let v = Self::code(Some(r));
        let b = &mut self.0[(seq / 2) as usize];
        let shift = (seq % 2) * 4;
        *b = (*b & !(15 << shift)) | (v << shift);
    }
}

fn put_u64(w: &mut impl Write, v: u64) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn put_u32(w: &mut impl Write, v: u32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    put_u32(w, s.len() as u32)?;
    w.write_all(s.as_bytes())
}

fn put_opt_f64(w: &mut impl Write, v: Option<f64>) -> io::Result<()> {
    match v {
        Some(x) => {
            w.write_all(&[1])?;
            w.write_all(&x.to_le_bytes())
        }
        None => w.write_all(&[0]),
    }
}

fn put_event(w: &mut impl Write, e: &Event) -> io::Result<()> {
    put_str(w, &e.user)?;
    put_str(w, &e.item)?;
    put_u64(w, e.ts as u64)?;
    w.write_all(&[e.event_type as u8])?;
    put_str(w, &e.source_type)?;
    put_opt_f64(w, e.quantity)?;
    put_opt_f64(w, e.price)?;
    match &e.session {
        Some(s) => {
            w.write_all(&[1])?;
            put_str(w, s)?;
        }
        None => w.write_all(&[0])?,
    }
    put_opt_f64(w, e.value)
}

fn put_key(w: &mut impl Write, k: &Key) -> io::Result<()> {
    put_str(w, &k.user)?;
    put_u64(w, k.uhash)?;
    put_u64(w, k.ts as u64)?;
    put_u64(w, k.seq)?;
    put_str(w, &k.item)?;
    w.write_all(&[k.et])
}

fn get_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn get_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn get_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn get_string(r: &mut impl Read) -> io::Result<String> {
    let n = get_u32(r)? as usize;
    get_bytes_as_string(r, n)
}

fn get_bytes_as_string(r: &mut impl Read, n: usize) -> io::Result<String> {
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn get_opt_f64(r: &mut impl Read) -> io::Result<Option<f64>> {
    Ok(match get_u8(r)? {
        0 => None,
        _ => Some(f64::from_le_bytes(get_u64(r)?.to_le_bytes())),
    })
}

fn get_type(r: &mut impl Read) -> io::Result<EventType> {
    let b = get_u8(r)?;
    EventType::ALL
        .get(b as usize)
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad event type in spill"))
}

type Cand = (u64, u32, u64, String, Event);

fn read_cand(r: &mut impl Read) -> io::Result<Cand> {
    let line = get_u64(r)?;
    let ordinal = get_u32(r)?;
    let content_hash = get_u64(r)?;
    let raw = get_string(r)?;
    let user = get_string(r)?;
    let item = get_string(r)?;
    let ts = get_u64(r)? as i64;
    let event_type = get_type(r)?;
    let source_type = get_string(r)?;
    let quantity = get_opt_f64(r)?;
    let price = get_opt_f64(r)?;
    let session = match get_u8(r)? {
        0 => None,
        _ => Some(get_string(r)?),
    };
    let value = get_opt_f64(r)?;
    let event = Event {
        key: 0,
        user,
        item,
        ts,
        event_type,
        source_type,
        quantity,
        price,
        session,
        value,
    };
    Ok((line, ordinal, content_hash, raw, event))
}

fn read_ordinal(r: &mut impl Read) -> io::Result<Option<(u64, u32)>> {
    Ok(next_record::<12>(r)?.map(|b| (le_u64(&b[..8]), le_u32(&b[8..]))))
}

/// The next key of a run, or None at its end.
fn read_key(r: &mut impl Read) -> io::Result<Option<Key>> {
    let Some(n) = next_record::<4>(r)? else {
        return Ok(None);
    };
    let user = get_bytes_as_string(r, le_u32(&n) as usize)?.into_boxed_str();
    let uhash = get_u64(r)?;
    let ts = get_u64(r)? as i64;
    let seq = get_u64(r)?;
    let item = get_string(r)?.into_boxed_str();
    let et = get_u8(r)?;
    Ok(Some(Key {
        uhash,
        user,
        ts,
        seq,
        item,
        et,
    }))
}

/// The dense id of `item`, given on first sight.
fn intern(items: &mut aisle_core::hash::FastMap<Box<str>, u32>, item: &str) -> u32 {
    if let Some(&i) = items.get(item) {
        return i;
    }
    let next = items.len() as u32;
    items.insert(item.into(), next);
    next
}

/// Marks the rows of bot users (more than the cap of events in a minute)
/// and, with `kcore`, drops users and items below K events until none is
/// left (k-core passes over the groups file; returns their count).
fn drop_bots_and_kcore(
    mut g: BufWriter<File>,
    groups_path: &std::path::Path,
    (bots, ngroups, nitems): (Vec<bool>, u32, usize),
    kcore: u32,
    marks: &mut Marks,
) -> io::Result<u32> {
    let mut passes = 0u32;
    g.flush()?;
    drop(g);
    if bots.iter().any(|&b| b) {
        for_each_group_row(groups_path, |seq, g, _| {
            if bots[g as usize] && marks.get(seq).is_none() {
                marks.set(seq, Reason::BotUser);
            }
        })?;
    }
    drop(bots);
    if kcore > 0 {
        loop {
            let mut users = vec![0u32; ngroups as usize];
            let mut degree = vec![0u32; nitems];
            for_each_group_row(groups_path, |seq, g, it| {
                if marks.get(seq).is_none() {
                    users[g as usize] += 1;
                    degree[it as usize] += 1;
                }
            })?;
            let mut dropped = false;
            for_each_group_row(groups_path, |seq, g, it| {
                if marks.get(seq).is_none()
                    && (users[g as usize] < kcore || degree[it as usize] < kcore)
                {
                    marks.set(seq, Reason::Kcore);
                    dropped = true;
                }
            })?;
            passes += 1;
            if !dropped {
                break;
            }
        }
    }
    Ok(passes)
}

/// The spilled rows in seq order, each with its settled ordinal and verdict
/// (the spill folder `dir` lives as long as the iterator).
fn settled_rows(
    dir: tempfile::TempDir,
    rows: u64,
    ordinals: Option<std::path::PathBuf>,
    marks: Marks,
) -> io::Result<impl Iterator<Item = io::Result<Spilled>>> {
    let mut r = BufReader::with_capacity(BUF, File::open(dir.path().join("cands"))?);
    let mut ords = ordinals
        .map(|p| File::open(p).map(|f| BufReader::with_capacity(BUF, f)))
        .transpose()?;
    let mut next_ord: Option<(u64, u32)> = None;
    let mut seq = 0u64;
    Ok(std::iter::from_fn(move || {
        let _keep = &dir;
        if seq == rows {
            return None;
        }
        let mut row = || -> io::Result<Spilled> {
            let (line, ordinal, content_hash, raw, event) = read_cand(&mut r)?;
            let ordinal = if ordinal != PENDING {
                ordinal
            } else {
                // The settled ordinals (non-zero only) come in seq order.
                if next_ord.is_none_or(|(s, _)| s < seq) {
                    next_ord = match ords.as_mut() {
                        Some(o) => read_ordinal(o)?,
                        None => None,
                    };
                }
                match next_ord {
                    Some((s, o)) if s == seq => o,
                    _ => 0,
                }
            };
            Ok(Spilled {
                event,
                line,
                raw,
                ordinal,
                content_hash,
                dropped: marks.get(seq),
            })
        };
        let out = row();
        seq += 1;
        Some(out)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_hold_each_reason_per_row() {
        let mut m = Marks::new(9);
        m.set(0, Reason::Kcore);
        m.set(5, Reason::BotUser);
        m.set(8, Reason::ConsecutiveDuplicate);
        m.set(5, Reason::Kcore);
        let got: Vec<_> = (0..9).map(|i| m.get(i)).collect();
        assert_eq!(got[0], Some(Reason::Kcore));
        assert_eq!(got[5], Some(Reason::Kcore));
        assert_eq!(got[8], Some(Reason::ConsecutiveDuplicate));
        assert_eq!(got.iter().filter(|r| r.is_some()).count(), 3);
    }
}

/// The spill against the in-memory rules of `rules.rs` (kept as the oracle):
/// the same verdict for every row, with one sorted run and with many.
#[cfg(test)]
mod oracle {
    use super::*;
    use crate::Candidate;

    fn events(n: usize, seed: u64) -> Vec<Event> {
        let mut s = seed;
        let mut next = move |m: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) % m
        };
        (0..n)
            .map(|_| {
                let user = next(40);
                Event {
                    key: 0,
                    // A few heavy users so the bot rule fires.
                    user: format!("u{}", if user < 30 { user } else { user % 3 }),
                    item: format!("i{}", next(25)),
                    ts: 1_600_000_000 + next(4_000) as i64,
                    event_type: EventType::ALL[next(3) as usize],
                    source_type: "x".into(),
                    quantity: None,
                    price: Some(next(100) as f64),
                    session: (next(2) == 0).then(|| "s".to_string()),
                    value: None,
                }
            })
            .collect()
    }

    fn cfg(window: Option<i64>, bots: Option<u32>, kcore: u32) -> DatasetConfig {
        let mut c = DatasetConfig::preset("demo").expect("demo preset");
        c.cleaning.consecutive_duplicate_window_s = window;
        c.cleaning.bot_max_events_per_minute = bots;
        c.cleaning.kcore = kcore;
        c
    }

    fn via_spill(cfg: &DatasetConfig, evs: &[Event], run_bytes: usize) -> Vec<Option<Reason>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = History::new(Some(dir.path()), run_bytes, true).expect("spill");
        for (i, e) in evs.iter().enumerate() {
            h.push(e, i as u64 + 2, "raw", Some(0), i as u64, None)
                .expect("push");
        }
        let rows: Vec<Spilled> = h
            .finish(cfg, Default::default())
            .expect("finish")
            .collect::<io::Result<_>>()
            .expect("read back");
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.event, evs[i], "row {i} comes back as written");
            assert_eq!(r.line, i as u64 + 2);
            assert_eq!(r.content_hash, i as u64);
        }
        rows.into_iter().map(|r| r.dropped).collect()
    }

    fn via_memory(cfg: &DatasetConfig, evs: &[Event]) -> Vec<Option<Reason>> {
        let mut cands: Vec<Candidate> = evs
            .iter()
            .enumerate()
            .map(|(i, e)| Candidate {
                event: e.clone(),
                line: i as u64 + 2,
                raw: (0, 0),
                ordinal: 0,
                content_hash: 0,
                dropped: None,
                repeat: false,
            })
            .collect();
        crate::rules::apply(cfg, &mut cands);
        cands.into_iter().map(|c| c.dropped).collect()
    }

    #[test]
    fn every_rule_combination_matches_the_in_memory_rules() {
        let combos = [
            (Some(5), None, 0),
            (Some(300), None, 0),
            (None, Some(6), 0),
            (None, None, 75),
            (Some(30), Some(8), 3),
            (Some(5), Some(30), 5),
        ];
        for (seed, (w, b, k)) in combos.into_iter().enumerate() {
            let c = cfg(w, b, k);
            let evs = events(3_000, seed as u64 + 1);
            let want = via_memory(&c, &evs);
            let dropped = want.iter().filter(|r| r.is_some()).count();
            assert!(
                dropped > 0,
                "combo {seed} drops something ({w:?} {b:?} {k})"
            );
            assert!(dropped < evs.len(), "combo {seed} keeps something");
            assert_eq!(
                via_spill(&c, &evs, usize::MAX),
                want,
                "one run, combo {seed}"
            );
            assert_eq!(via_spill(&c, &evs, 4_000), want, "many runs, combo {seed}");
        }
    }

    #[test]
    fn stale_spills_of_dead_ingests_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = History::new(Some(dir.path()), 100, false).expect("spill");
        // No process has pid 4194305 (above Linux's pid_max limit).
        let dead = dir.path().join(format!("{PREFIX}4194305-abc"));
        std::fs::create_dir(&dead).expect("mkdir");
        std::fs::write(dead.join("cands"), "u1,i1").expect("write");
        let other = dir.path().join("quarantine");
        std::fs::create_dir(&other).expect("mkdir");
        assert_eq!(remove_stale_spills(dir.path()).expect("clean"), 1);
        assert!(!dead.exists());
        assert!(other.exists());
        assert!(live.dir.path().exists());
        assert_eq!(
            remove_stale_spills(&dir.path().join("none")).expect("clean"),
            0
        );
    }

    #[test]
    fn the_spill_directory_is_removed_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(Some(5), Some(6), 2);
        let mut h = History::new(Some(dir.path()), 100, true).expect("spill");
        for (i, e) in events(500, 9).iter().enumerate() {
            let ordinal = (i % 2 == 0).then_some(0);
            h.push(e, i as u64, "r", ordinal, i as u64 % 7, None)
                .expect("push");
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        let n = h.finish(&c, Default::default()).expect("finish").count();
        assert_eq!(n, 500);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
