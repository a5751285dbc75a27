//! Reading the events file: the format's reader over the guarded input
//! (line limit, compression-bomb check), each row to [`RowState`], and the
//! helpers the catalog reader shares (header checks, long-line rows).

use std::path::Path;

use crate::config::{DatasetConfig, Format};
use crate::report::{QuarantinedRow, Reason, SourceFile};
use crate::rows::{RowState, NF};
use crate::{input, IngestError, Result};

pub(crate) type Progress = Option<Box<dyn FnMut(u64, u64)>>;

pub(crate) fn read_events(
    cfg: &DatasetConfig,
    mut progress: Progress,
    path: &Path,
    st: &mut RowState<'_, '_>,
) -> Result<()> {
    let input = input::open_with(path, limits_of(cfg))?;
    let long_lines = input.long_lines.clone();
    let record_start = input.record_start.clone();
    let size = input.file_size;
    let consumed = input.consumed.clone();
    let mut tick = 0u64;
    let mut report_progress = |force: bool| {
        tick += 1;
        if force || tick.is_multiple_of(16_384) {
            if let Some(p) = progress.as_mut() {
                p(consumed.load(std::sync::atomic::Ordering::Relaxed), size);
            }
        }
    };
    let path_s = path.display().to_string();
    match cfg.format {
        Format::Csv | Format::Tsv => {
            let delim = if cfg.format == Format::Tsv {
                b'\t'
            } else {
                cfg.delimiter.as_bytes()[0]
            };
            let mut rdr = csv::ReaderBuilder::new()
                .delimiter(delim)
                .has_headers(false)
                .flexible(true)
                .quoting(cfg.format == Format::Csv)
                .buffer_capacity(256 * 1024)
                .from_reader(input.reader);
            let mut rec = csv::ByteRecord::new();
            let header: Vec<String> = if cfg.header {
                record_start.store(0, std::sync::atomic::Ordering::Relaxed);
                match rdr.read_byte_record(&mut rec) {
                    Ok(true) => rec
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let s = String::from_utf8_lossy(f).trim().to_string();
                            if i == 0 {
                                s.trim_start_matches('\u{feff}').to_string()
                            } else {
                                s
                            }
                        })
                        .collect(),
                    Ok(false) => {
                        return Err(IngestError::EmptyInput { path: path_s });
                    }
                    Err(e) => return Err(read_err(&path_s, 1, e)),
                }
            } else {
                cfg.columns.clone()
            };
            if cfg.header {
                header_fits(&long_lines, &path_s, cfg.cleaning.max_line_bytes)?;
            }
            let idx = column_indices(cfg, &header, &path_s)?;
            let ncols = header.len();
            loop {
                if !next_record(&mut rdr, &mut rec, &record_start, &path_s)? {
                    break;
                }
                let line = rec.position().map(|p| p.line()).unwrap_or(0);
                st.csv_row(&rec, line, ncols, &idx, delim);
                report_progress(false);
            }
        }
        Format::Jsonl => for_each_line(input.reader, &path_s, |text, line| {
            st.json_row(text, line);
            report_progress(false);
        })?,
        Format::Seqlines => for_each_line(input.reader, &path_s, |text, line| {
            st.seq_line(text, line);
            report_progress(false);
        })?,
    }
    report_progress(true);
    for row in long_line_rows(&long_lines, SourceFile::Events) {
        st.rows_read += 1;
        st.push_q(row);
    }
    Ok(())
}

/// An error when the guard dropped line 1, the header (the line after it
/// would be read as the header otherwise).
pub(crate) fn header_fits(
    long: &std::sync::Mutex<Vec<input::LongLine>>,
    path: &str,
    limit: usize,
) -> Result<()> {
    let long = long.lock().unwrap_or_else(|e| e.into_inner());
    match long.iter().find(|l| l.line == 1) {
        Some(l) => Err(read_err(
            path,
            1,
            format!(
                "the header line is {} bytes long, over the {limit}-byte line limit (cleaning.max_line_bytes)",
                l.bytes
            ),
        )),
        None => Ok(()),
    }
}

/// The input limits a config sets.
pub(crate) fn limits_of(cfg: &DatasetConfig) -> input::Limits {
    input::Limits {
        max_line_bytes: cfg.cleaning.max_line_bytes.max(1),
        max_ratio: cfg.cleaning.max_decompression_ratio,
    }
}

/// Quarantine rows for the lines a [`input::LineGuard`] dropped (an
/// over-long header was already refused by [`header_fits`]).
pub(crate) fn long_line_rows(
    long: &std::sync::Mutex<Vec<input::LongLine>>,
    file: SourceFile,
) -> Vec<QuarantinedRow> {
    let long = std::mem::take(&mut *long.lock().unwrap_or_else(|e| e.into_inner()));
    let mut out = Vec::with_capacity(long.len());
    for l in long {
        let text = String::from_utf8_lossy(&l.excerpt).into_owned();
        let hex = std::str::from_utf8(&l.excerpt)
            .is_err()
            .then(|| l.excerpt.iter().map(|b| format!("{b:02x}")).collect());
        out.push(QuarantinedRow {
            file,
            line: l.line,
            reason: Reason::LineTooLong,
            detail: format!(
                "the line is {} bytes long; only its first {} are kept",
                l.bytes,
                l.excerpt.len()
            )
            .into(),
            raw: text,
            raw_hex: hex,
        });
    }
    out
}

/// Calls `f(text, line_number)` for every non-blank line (newline stripped).
pub(crate) fn for_each_line(
    mut reader: impl std::io::BufRead,
    path: &str,
    mut f: impl FnMut(&[u8], u64),
) -> Result<()> {
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_err(path, line_no + 1, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let text = trim_newline(&buf);
        if !text.iter().all(|b| b.is_ascii_whitespace()) {
            f(text, line_no);
        }
    }
}

pub(crate) fn trim_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Reads the next CSV record, first telling the line guard where it starts
/// (the guard refuses a record, a quoted field spanning lines, that runs
/// past the line limit). `Ok(false)` at the end of the file.
pub(crate) fn next_record<R: std::io::Read>(
    rdr: &mut csv::Reader<R>,
    rec: &mut csv::ByteRecord,
    record_start: &std::sync::atomic::AtomicU64,
    path: &str,
) -> Result<bool> {
    record_start.store(rdr.position().byte(), std::sync::atomic::Ordering::Relaxed);
    rdr.read_byte_record(rec).map_err(|e| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        read_err(path, line, e)
    })
}

pub(crate) fn read_err(path: &str, line: u64, e: impl std::fmt::Display) -> IngestError {
    let msg = e.to_string();
    let message =
        if msg.contains("invalid gzip") || msg.contains("corrupt") || msg.contains("deflate") {
            format!("the gzip stream is corrupt or truncated ({msg})")
        } else {
            msg
        };
    IngestError::Read {
        path: path.to_string(),
        line,
        message,
    }
}

pub(crate) fn column_indices(
    cfg: &DatasetConfig,
    header: &[String],
    path: &str,
) -> Result<[Option<usize>; NF]> {
    let f = &cfg.fields;
    let wanted: [(&str, &Option<String>); NF] = [
        ("user", &f.user),
        ("item", &f.item),
        ("time", &f.time),
        ("time_offset_ms", &f.time_offset_ms),
        ("event_type", &f.event_type),
        ("quantity", &f.quantity),
        ("price", &f.price),
        ("session", &f.session),
        ("value", &f.value),
        ("title", &f.title),
        ("description", &f.description),
        ("category", &f.category),
    ];
    let mut out = [None; NF];
    for (i, (field, col)) in wanted.iter().enumerate() {
        if let Some(col) = col {
            match header.iter().position(|h| h == col) {
                Some(p) => out[i] = Some(p),
                None => {
                    return Err(IngestError::MissingColumn {
                        path: path.to_string(),
                        field: field.to_string(),
                        column: col.clone(),
                        header: header.join(", "),
                    })
                }
            }
        }
    }
    Ok(out)
}
