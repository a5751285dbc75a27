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

/// Counts of an item's distinct values of one field (titles, categories):
/// most items have one, held inline; a second moves them to a list.
#[derive(Default)]
enum Tally {
    #[default]
    Empty,
    One(Box<str>, u32),
    Many(Vec<(Box<str>, u32)>),
}

impl Tally {
    fn bump(&mut self, s: &str) {
        match self {
            Tally::Empty => *self = Tally::One(s.into(), 1),
            Tally::One(v, n) if &**v == s => *n = n.saturating_add(1),
            Tally::One(v, n) => {
                let first = (std::mem::take(v), *n);
                *self = Tally::Many(vec![first, (s.into(), 1)]);
            }
            Tally::Many(list) => {
                if let Some(e) = list.iter_mut().find(|(t, _)| &**t == s) {
                    e.1 = e.1.saturating_add(1);
                } else if list.len() < MAX_TALLY {
                    list.push((s.into(), 1));
                }
            }
        }
    }

    /// The most frequent value; ties go to the value seen first.
    fn most_frequent(self) -> Option<String> {
        match self {
            Tally::Empty => None,
            Tally::One(v, _) => Some(v.into()),
            Tally::Many(list) => {
                let mut best: Option<(Box<str>, u32)> = None;
                for e in list {
                    if best.as_ref().is_none_or(|b| e.1 > b.1) {
                        best = Some(e);
                    }
                }
                best.map(|b| b.0.into())
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Tally::Empty => 0,
            Tally::One(..) => 1,
            Tally::Many(l) => l.len(),
        }
    }
}

#[derive(Default)]
struct Agg {
    titles: Tally,
    description: Option<Box<str>>,
    categories: Tally,
    /// Distinct positive prices with their counts.
    prices: Vec<(f64, u32)>,
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

fn add_price(v: &mut Vec<(f64, u32)>, p: f64) {
    if let Some(e) = v.iter_mut().find(|(x, _)| *x == p) {
        e.1 = e.1.saturating_add(1);
    } else if v.len() < MAX_PRICES {
        if v.is_empty() {
            // Most items have one price: no spare capacity for them.
            v.reserve_exact(1);
        }
        v.push((p, 1));
    } else {
        v.push((p, 1));
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

/// Aggregates catalog facts from event rows. The map holds only an index
/// into a dense vector (its buckets, sized to a power of two, stay small).
#[derive(Default)]
pub(crate) struct Aggregator {
    index: aisle_core::hash::FastMap<Box<str>, u32>,
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
        let i = match self.index.get(item) {
            Some(&i) => i as usize,
            None => {
                let i = self.items.len();
                self.index.insert(item.into(), i as u32);
                self.items.push(Agg::default());
                i
            }
        };
        let agg = &mut self.items[i];
        if let Some(t) = title {
            agg.titles.bump(t);
        }
        if let (Some(d), None) = (description, &agg.description) {
            agg.description = Some(d.into());
        }
        if let Some(c) = category {
            agg.categories.bump(c);
        }
        if let Some(p) = price.filter(|p| *p > 0.0 && p.is_finite()) {
            add_price(&mut agg.prices, p);
        }
    }

    /// The items, in no particular order.
    pub(crate) fn finish(self) -> Vec<CatalogItem> {
        let mut aggs = self.items;
        self.index
            .into_iter()
            .map(|(id, i)| {
                let a = std::mem::take(&mut aggs[i as usize]);
                CatalogItem {
                    id: id.into(),
                    title: a.titles.most_frequent(),
                    description: a.description.map(Into::into),
                    category: a.categories.most_frequent(),
                    price: median_price(a.prices),
                    in_stock: true,
                }
            })
            .collect()
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "t" => Some(true),
        "0" | "false" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// Reads a catalog file (CSV/TSV with a header). Bad rows are quarantined.
pub(crate) fn read_catalog_file(
    cfg: &DatasetConfig,
    path: &Path,
) -> Result<(Vec<CatalogItem>, CatalogReport, Vec<QuarantinedRow>)> {
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
        record_start.store(rdr.position().byte(), std::sync::atomic::Ordering::Relaxed);
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(IngestError::Read {
                    path: path_s,
                    line: e.position().map(|p| p.line()).unwrap_or(0),
                    message: e.to_string(),
                })
            }
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
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_counted_prices_is_the_sorted_lists_middle() {
        let mut v = Vec::new();
        for p in [5.0, 1.0, 5.0, 3.0, 9.0, 5.0] {
            add_price(&mut v, p);
        }
        // Sorted: 1 3 5 5 5 9; position 3 is 5.
        assert_eq!(median_price(v), Some(5.0));
        let mut v = Vec::new();
        for p in [2.0, 4.0] {
            add_price(&mut v, p);
        }
        assert_eq!(median_price(v), Some(4.0));
        assert_eq!(median_price(Vec::new()), None);
    }

    #[test]
    fn an_item_with_endless_distinct_values_keeps_a_bounded_tally() {
        let mut a = Aggregator::default();
        for i in 0..10_000 {
            let t = format!("title {i}");
            a.observe("x", Some(&t), None, Some(&t), Some(1.0 + i as f64));
        }
        let agg = &a.items[a.index["x"] as usize];
        assert_eq!(agg.titles.len(), MAX_TALLY);
        assert_eq!(agg.categories.len(), MAX_TALLY);
        assert_eq!(agg.prices.len(), MAX_PRICES);
        assert_eq!(agg.prices.iter().map(|e| e.1 as u64).sum::<u64>(), 10_000);
        let item = a.finish().remove(0);
        assert_eq!(item.id, "x");
        assert_eq!(item.title.as_deref(), Some("title 0"));
        // The true median is 5001; the histogram keeps it within 5%.
        let p = item.price.unwrap();
        assert!((p - 5001.0).abs() < 250.0, "{p}");
    }
}
