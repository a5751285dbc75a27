//! Catalog building: from a catalog file, or aggregated from event rows
//! (most frequent title and category, median positive price).

use std::collections::BTreeMap;
use std::path::Path;

use aisle_core::CatalogItem;

use crate::config::{DatasetConfig, Format};
use crate::report::{CatalogReport, QuarantinedRow, Reason, SourceFile};
use crate::{input, IngestError, Result};

/// Distinct titles (and categories) tallied per item; a value first seen
/// after this many is not counted, so an item's memory stays bounded
/// whatever its rows say.
const MAX_TALLY: usize = 8;
/// Distinct prices counted exactly per item; past this the two closest
/// prices are merged (count-weighted mean) to make room, a streaming
/// histogram, so the median is then approximate.
const MAX_PRICES: usize = 64;

/// Distinct strings stored once, end to end in one buffer, each named by
/// its position (a `u32`): item ids, and the titles, descriptions and
/// categories they carry. A million short ids cost about 13 bytes each
/// (text, end offset, table slot) instead of a boxed string and a map entry.
#[derive(Default)]
struct Interner {
    table: hashbrown::HashTable<u32>,
    text: String,
    ends: Vec<usize>,
}

fn hash_str(s: &str) -> u64 {
    use std::hash::BuildHasher;
    std::hash::BuildHasherDefault::<aisle_core::hash::FxHasher>::default().hash_one(s)
}

fn slice<'a>(text: &'a str, ends: &[usize], i: u32) -> &'a str {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &text[start..ends[i]]
}

impl Interner {
    fn get(&self, i: u32) -> &str {
        slice(&self.text, &self.ends, i)
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// The string's number, and whether it was new.
    fn intern(&mut self, s: &str) -> (u32, bool) {
        let Interner { table, text, ends } = self;
        let entry = table.entry(
            hash_str(s),
            |&i| slice(text, ends, i) == s,
            |&i| hash_str(slice(text, ends, i)),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => (*e.get(), false),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let i = u32::try_from(ends.len()).expect("fewer than 2^32 distinct strings");
                text.push_str(s);
                ends.push(text.len());
                v.insert(i);
                (i, true)
            }
        }
    }
}

/// Distinct values of one field of an item with their counts: most items
/// have one, held inline; a second moves them to a list that the caller
/// keeps bounded.
#[derive(Default)]
enum Counts<T> {
    #[default]
    Empty,
    One(T, u32),
    // Boxed: keeps the enum at 16 bytes (a Vec is 24) for the million
    // items that never need the list.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<(T, u32)>>),
}

impl<T: Copy + PartialEq> Counts<T> {
    /// Counts `v`; a value the list does not hold yet goes to `insert`,
    /// which may refuse it or make room for it.
    fn add(&mut self, v: T, insert: impl FnOnce(&mut Vec<(T, u32)>, T)) {
        match self {
            Counts::Empty => *self = Counts::One(v, 1),
            Counts::One(x, n) if *x == v => *n = n.saturating_add(1),
            Counts::One(x, n) => *self = Counts::Many(Box::new(vec![(*x, *n), (v, 1)])),
            Counts::Many(list) => match list.iter_mut().find(|e| e.0 == v) {
                Some(e) => e.1 = e.1.saturating_add(1),
                None => insert(list, v),
            },
        }
    }

    #[cfg(test)]
    fn counts(&self) -> Vec<u32> {
        match self {
            Counts::Empty => Vec::new(),
            Counts::One(_, n) => vec![*n],
            Counts::Many(l) => l.iter().map(|e| e.1).collect(),
        }
    }
}

/// Titles or categories, as interned strings; a value first seen after
/// [`MAX_TALLY`] others is not counted.
type Tally = Counts<u32>;

impl Tally {
    fn bump(&mut self, s: u32) {
        self.add(s, |list, s| {
            if list.len() < MAX_TALLY {
                list.push((s, 1));
            }
        });
    }

    /// The most frequent value; ties go to the value seen first.
    fn most_frequent(&self) -> Option<u32> {
        match self {
            Counts::Empty => None,
            Counts::One(v, _) => Some(*v),
            Counts::Many(list) => {
                let mut best: Option<(u32, u32)> = None;
                for &e in list.iter() {
                    if best.is_none_or(|b| e.1 > b.1) {
                        best = Some(e);
                    }
                }
                best.map(|b| b.0)
            }
        }
    }
}

/// Distinct positive prices, a streaming histogram past [`MAX_PRICES`].
type Prices = Counts<f64>;

impl Prices {
    fn add_price(&mut self, p: f64) {
        self.add(p, insert_price);
    }

    fn median(self) -> Option<f64> {
        match self {
            Counts::Empty => None,
            Counts::One(p, _) => Some(p),
            Counts::Many(list) => median_price(*list),
        }
    }
}

/// What is known about one item; about 48 bytes.
#[derive(Default)]
struct Agg {
    titles: Tally,
    categories: Tally,
    prices: Prices,
    /// The first description (an interned string).
    description: Option<u32>,
}

/// The median of counted prices: the value at position n/2 of the sorted
/// list of all of them (the upper median for an even count).
fn median_price(mut v: Vec<(f64, u32)>) -> Option<f64> {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n: u64 = v.iter().map(|e| e.1 as u64).sum();
    let mut seen = 0u64;
    for (p, c) in v {
        seen += c as u64;
        if seen > n / 2 {
            return Some(p);
        }
    }
    None
}

/// Makes room for a price the list does not hold: pushed while under
/// [`MAX_PRICES`], else the two closest prices are merged (count-weighted
/// mean) after it is pushed.
fn insert_price(v: &mut Vec<(f64, u32)>, p: f64) {
    v.push((p, 1));
    if v.len() > MAX_PRICES {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let i = (0..v.len() - 1)
            .min_by(|&i, &j| (v[i + 1].0 - v[i].0).total_cmp(&(v[j + 1].0 - v[j].0)))
            .expect("at least two prices");
        let (a, b) = (v[i], v.remove(i + 1));
        let n = a.1 as f64 + b.1 as f64;
        v[i] = (
            (a.0 * a.1 as f64 + b.0 * b.1 as f64) / n,
            a.1.saturating_add(b.1),
        );
    }
}

/// Catalog items handed out this many at a time by [`Aggregator::drain`].
pub(crate) const CATALOG_CHUNK: usize = 10_000;

/// Aggregates catalog facts from event rows: item ids and the strings they
/// carry interned, one compact [`Agg`] per item (a million items take
/// under 150 MB).
#[derive(Default)]
pub(crate) struct Aggregator {
    ids: Interner,
    values: Interner,
    items: Vec<Agg>,
}

impl Aggregator {
    pub(crate) fn observe(
        &mut self,
        item: &str,
        title: Option<&str>,
        description: Option<&str>,
        category: Option<&str>,
        price: Option<f64>,
    ) {
        let (i, new) = self.ids.intern(item);
        if new {
            self.items.push(Agg::default());
        }
        let i = i as usize;
        if let Some(t) = title {
            let t = self.values.intern(t).0;
            self.items[i].titles.bump(t);
        }
        if let (Some(d), None) = (description, self.items[i].description) {
            self.items[i].description = Some(self.values.intern(d).0);
        }
        if let Some(c) = category {
            let c = self.values.intern(c).0;
            self.items[i].categories.bump(c);
        }
        if let Some(p) = price.filter(|p| *p > 0.0 && p.is_finite()) {
            self.items[i].prices.add_price(p);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Hands the items to `out` in id order, [`CATALOG_CHUNK`] at a time, so
    /// that only one chunk of finished items exists at once.
    pub(crate) fn drain(mut self, out: &mut dyn FnMut(Vec<CatalogItem>)) {
        let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.ids.get(a).cmp(self.ids.get(b)));
        self.ids.table = Default::default();
        self.values.table = Default::default();
        for part in order.chunks(CATALOG_CHUNK) {
            let chunk = part
                .iter()
                .map(|&i| {
                    let a = std::mem::take(&mut self.items[i as usize]);
                    let text = |s: Option<u32>| s.map(|s| self.values.get(s).to_string());
                    CatalogItem {
                        id: self.ids.get(i).to_string(),
                        title: text(a.titles.most_frequent()),
                        description: text(a.description),
                        category: text(a.categories.most_frequent()),
                        price: a.prices.median(),
                        in_stock: true,
                    }
                })
                .collect();
            out(chunk);
        }
    }

    /// All the items, in id order.
    #[cfg(test)]
    fn finish(self) -> Vec<CatalogItem> {
        let mut all = Vec::with_capacity(self.len());
        self.drain(&mut |chunk| all.extend(chunk));
        all
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "t" => Some(true),
        "0" | "false" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// A catalog file read: its items, report, quarantined rows and the ids
/// that `cleaning.exclude` matched.
pub(crate) type CatalogRead = (
    Vec<CatalogItem>,
    CatalogReport,
    Vec<QuarantinedRow>,
    std::collections::HashSet<String>,
);

/// Reads a catalog file (CSV/TSV with a header). Bad rows are quarantined.
pub(crate) fn read_catalog_file(cfg: &DatasetConfig, path: &Path) -> Result<CatalogRead> {
    let c = &cfg.catalog;
    let path_s = path.display().to_string();
    if !matches!(c.format, Format::Csv | Format::Tsv) {
        return Err(IngestError::Config(
            "catalog.format must be csv or tsv".into(),
        ));
    }
    let delim = if c.format == Format::Tsv {
        b'\t'
    } else {
        *c.delimiter.as_bytes().first().unwrap_or(&b',')
    };
    let inp = input::open_with(path, crate::limits_of(cfg))?;
    let long_lines = inp.long_lines.clone();
    let record_start = inp.record_start.clone();
    record_start.store(0, std::sync::atomic::Ordering::Relaxed);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(false)
        .flexible(true)
        .quoting(c.format == Format::Csv)
        .from_reader(inp.reader);
    let mut rec = csv::ByteRecord::new();
    let header: Vec<String> = match rdr.read_byte_record(&mut rec) {
        Ok(true) => rec
            .iter()
            .map(|f| {
                String::from_utf8_lossy(f)
                    .trim()
                    .trim_start_matches('\u{feff}')
                    .to_string()
            })
            .collect(),
        Ok(false) => return Err(IngestError::EmptyInput { path: path_s }),
        Err(e) => {
            return Err(IngestError::Read {
                path: path_s,
                line: 1,
                message: e.to_string(),
            })
        }
    };
    crate::header_fits(&long_lines, &path_s, cfg.cleaning.max_line_bytes)?;
    let col = |field: &str, name: &Option<String>| -> Result<Option<usize>> {
        match name {
            None => Ok(None),
            Some(n) => header.iter().position(|h| h == n).map(Some).ok_or_else(|| {
                IngestError::MissingColumn {
                    path: path_s.clone(),
                    field: format!("catalog.{field}"),
                    column: n.clone(),
                    header: header.join(", "),
                }
            }),
        }
    };
    let id_i = col("id", &Some(c.id.clone()))?.unwrap_or(0);
    let title_i = col("title", &c.title)?;
    let desc_i = col("description", &c.description)?;
    let cat_i = col("category", &c.category)?;
    let price_i = col("price", &c.price)?;
    let stock_i = col("in_stock", &c.in_stock)?;
    let mut exclude_cols = Vec::new();
    for (name, values) in &cfg.cleaning.exclude {
        let i = col(&format!("exclude.{name}"), &Some(name.clone()))?.expect("named");
        exclude_cols.push((i, values));
    }
    let mut excluded = std::collections::HashSet::new();

    let mut report = CatalogReport {
        input: path_s.clone(),
        ..CatalogReport::default()
    };
    let mut items: BTreeMap<String, (u64, String, CatalogItem)> = BTreeMap::new();
    let mut quarantine = Vec::new();
    let mut q =
        |line: u64, reason: Reason, detail: String, raw: String, report: &mut CatalogReport| {
            *report.by_reason.entry(reason.as_str().into()).or_insert(0) += 1;
            report.quarantined += 1;
            quarantine.push(QuarantinedRow {
                file: SourceFile::Catalog,
                line,
                reason,
                detail: detail.into(),
                raw,
                raw_hex: None,
            });
        };
    loop {
        if !crate::read::next_record(&mut rdr, &mut rec, &record_start, &path_s)? {
            break;
        }
        report.rows_read += 1;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let raw = rec
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect::<Vec<_>>()
            .join(&(delim as char).to_string());
        if rec.len() != header.len() {
            q(
                line,
                Reason::WrongColumnCount,
                format!("{} fields, header has {}", rec.len(), header.len()),
                raw,
                &mut report,
            );
            continue;
        }
        if std::str::from_utf8(rec.as_slice()).is_err() {
            q(
                line,
                Reason::InvalidUtf8,
                "row is not valid UTF-8".into(),
                raw,
                &mut report,
            );
            continue;
        }
        if rec.iter().any(|f| f.len() > cfg.cleaning.max_field_bytes) {
            q(
                line,
                Reason::FieldTooLarge,
                "a field is too large".into(),
                raw,
                &mut report,
            );
            continue;
        }
        let get = |i: Option<usize>| -> Option<String> {
            i.and_then(|i| {
                let s = std::str::from_utf8(&rec[i]).unwrap_or_default().trim();
                (!s.is_empty()).then(|| s.to_string())
            })
        };
        let Some(id) = get(Some(id_i)) else {
            q(
                line,
                Reason::MissingItem,
                "item id is empty".into(),
                raw,
                &mut report,
            );
            continue;
        };
        let price = match get(price_i).map(|p| p.parse::<f64>()) {
            None => None,
            Some(Ok(p)) if p.is_finite() && p >= 0.0 => Some(p),
            Some(_) => {
                q(
                    line,
                    Reason::BadNumber,
                    "price is not a non-negative number".into(),
                    raw,
                    &mut report,
                );
                continue;
            }
        };
        let in_stock = match get(stock_i) {
            None => true,
            Some(s) => match parse_bool(&s) {
                Some(b) => b,
                None => {
                    q(
                        line,
                        Reason::BadNumber,
                        format!("in_stock {s:?} is not a boolean"),
                        raw,
                        &mut report,
                    );
                    continue;
                }
            },
        };
        let matches = exclude_cols
            .iter()
            .any(|(i, values)| get(Some(*i)).is_some_and(|v| values.contains(&v)));
        if matches || excluded.contains(&id) {
            excluded.insert(id.clone());
            // An earlier row of the same item goes too.
            if let Some((prev_line, prev_raw, _)) = items.remove(&id) {
                q(
                    prev_line,
                    Reason::ExcludedItem,
                    format!("item {id} matches cleaning.exclude at line {line}"),
                    prev_raw,
                    &mut report,
                );
            }
            q(
                line,
                Reason::ExcludedItem,
                format!("item {id} matches cleaning.exclude"),
                raw,
                &mut report,
            );
            continue;
        }
        let item = CatalogItem {
            id: id.clone(),
            title: get(title_i),
            description: get(desc_i),
            category: get(cat_i),
            price,
            in_stock,
        };
        if let Some((prev_line, prev_raw, _)) = items.insert(id.clone(), (line, raw, item)) {
            // The later row wins; the earlier one is accounted for as a duplicate.
            q(
                prev_line,
                Reason::DuplicateId,
                format!("item {id} appears again at line {line}"),
                prev_raw,
                &mut report,
            );
        }
    }
    for row in crate::long_line_rows(&long_lines, SourceFile::Catalog) {
        report.rows_read += 1;
        report.quarantined += 1;
        *report
            .by_reason
            .entry(row.reason.as_str().into())
            .or_insert(0) += 1;
        quarantine.push(row);
    }
    report.accepted = items.len() as u64;
    Ok((
        items.into_values().map(|(_, _, i)| i).collect(),
        report,
        quarantine,
        excluded,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_counted_prices_is_the_sorted_lists_middle() {
        let mut v = Prices::default();
        for p in [5.0, 1.0, 5.0, 3.0, 9.0, 5.0] {
            v.add_price(p);
        }
        // Sorted: 1 3 5 5 5 9; position 3 is 5.
        assert_eq!(v.median(), Some(5.0));
        let mut v = Prices::default();
        for p in [2.0, 4.0] {
            v.add_price(p);
        }
        assert_eq!(v.median(), Some(4.0));
        assert_eq!(median_price(Vec::new()), None);
    }

    #[test]
    fn an_item_with_endless_distinct_values_keeps_a_bounded_tally() {
        let mut a = Aggregator::default();
        for i in 0..10_000 {
            let t = format!("title {i}");
            a.observe("x", Some(&t), None, Some(&t), Some(1.0 + i as f64));
        }
        let agg = &a.items[0];
        assert_eq!(agg.titles.counts().len(), MAX_TALLY);
        assert_eq!(agg.categories.counts().len(), MAX_TALLY);
        let counts = agg.prices.counts();
        assert_eq!(counts.len(), MAX_PRICES);
        assert_eq!(counts.iter().map(|&c| c as u64).sum::<u64>(), 10_000);
        let item = a.finish().remove(0);
        assert_eq!(item.id, "x");
        assert_eq!(item.title.as_deref(), Some("title 0"));
        // The true median is 5001; the histogram keeps it within 5%.
        let p = item.price.unwrap();
        assert!((p - 5001.0).abs() < 250.0, "{p}");
    }
}
