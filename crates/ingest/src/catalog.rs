//! Catalog building: from a catalog file, or aggregated from event rows
//! (most frequent title and category, median positive price).

use std::collections::BTreeMap;
use std::path::Path;

use aisle_core::CatalogItem;

use crate::config::{DatasetConfig, Format};
use crate::report::{CatalogReport, QuarantinedRow, Reason, SourceFile};
use crate::{input, IngestError, Result};

#[derive(Default)]
struct Agg {
    order: u32,
    titles: Vec<(String, u32)>,
    description: Option<String>,
    categories: Vec<(String, u32)>,
    prices: Vec<f64>,
}

fn bump(v: &mut Vec<(String, u32)>, s: &str) {
    if let Some(e) = v.iter_mut().find(|(t, _)| t == s) {
        e.1 += 1;
    } else {
        v.push((s.to_string(), 1));
    }
}

fn most_frequent(v: &[(String, u32)]) -> Option<String> {
    // Ties go to the value seen first.
    let mut best: Option<&(String, u32)> = None;
    for e in v {
        if best.is_none_or(|b| e.1 > b.1) {
            best = Some(e);
        }
    }
    best.map(|b| b.0.clone())
}

/// Aggregates catalog facts from event rows.
#[derive(Default)]
pub(crate) struct Aggregator {
    items: aisle_core::hash::FastMap<String, Agg>,
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
        let n = self.items.len() as u32;
        let agg = match self.items.get_mut(item) {
            Some(a) => a,
            None => self.items.entry(item.to_string()).or_insert_with(|| Agg {
                order: n,
                ..Agg::default()
            }),
        };
        if let Some(t) = title {
            bump(&mut agg.titles, t);
        }
        if let (Some(d), None) = (description, &agg.description) {
            agg.description = Some(d.to_string());
        }
        if let Some(c) = category {
            bump(&mut agg.categories, c);
        }
        if let Some(p) = price.filter(|p| *p > 0.0 && p.is_finite()) {
            agg.prices.push(p);
        }
    }

    pub(crate) fn finish(self) -> Vec<CatalogItem> {
        let mut v: Vec<(String, Agg)> = self.items.into_iter().collect();
        v.sort_by_key(|(_, a)| a.order);
        v.into_iter()
            .map(|(id, mut a)| {
                a.prices.sort_by(|x, y| x.total_cmp(y));
                let price = (!a.prices.is_empty()).then(|| a.prices[a.prices.len() / 2]);
                CatalogItem {
                    id,
                    title: most_frequent(&a.titles),
                    description: a.description,
                    category: most_frequent(&a.categories),
                    price,
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
