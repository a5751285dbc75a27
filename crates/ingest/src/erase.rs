//! Erasing a user from the quarantine files: every quarantined row that
//! mentions the id (in its text, its hex bytes or its detail) is removed.

use std::io::Write;
use std::path::Path;

use crate::report::QuarantinedRow;

/// Whether `text` contains `id` as a whole token: not preceded or followed
/// by a letter, digit, `_` or `-` (so `u1` is in `u1,P9,view` but not in
/// `u10,P9,view`).
pub fn mentions(text: &[u8], id: &[u8]) -> bool {
    if id.is_empty() || text.len() < id.len() {
        return false;
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut from = 0;
    while from + id.len() <= text.len() {
        let Some(i) = text[from..]
            .windows(id.len())
            .position(|w| w == id)
            .map(|i| i + from)
        else {
            return false;
        };
        let before = i.checked_sub(1).map(|j| text[j]);
        let after = text.get(i + id.len()).copied();
        let edge_ok = |b: Option<u8>, inner: u8| match b {
            None => true,
            // A boundary only matters where the id itself ends in a word byte.
            Some(b) => !(word(b) && word(inner)),
        };
        if edge_ok(before, id[0]) && edge_ok(after, id[id.len() - 1]) {
            return true;
        }
        from = i + 1;
    }
    false
}

fn row_mentions(row: &QuarantinedRow, id: &str) -> bool {
    let id_b = id.as_bytes();
    mentions(row.raw.as_bytes(), id_b)
        || mentions(row.detail.as_bytes(), id_b)
        || row.raw_hex.as_deref().is_some_and(|h| {
            let bytes: Vec<u8> = (0..h.len() / 2)
                .filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            mentions(&bytes, id_b)
        })
}

/// Removes the rows that mention `id` from every `*.jsonl` file in `dir`
/// (each file rewritten beside itself, synced, then renamed over it; a line
/// that is not a quarantined row is removed when its text mentions the id).
/// Returns how many rows were removed; a missing folder removes none.
pub fn erase_from_quarantine(dir: &Path, id: &str) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let text = std::fs::read(&path)?;
        if !mentions_escaped(&text, id) {
            continue;
        }
        let mut kept = Vec::with_capacity(text.len());
        let mut n = 0;
        for line in text.split_inclusive(|&b| b == b'\n') {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let drop = match serde_json::from_slice::<QuarantinedRow>(body) {
                Ok(row) => row_mentions(&row, id),
                Err(_) => mentions(body, id.as_bytes()),
            };
            if drop {
                n += 1;
            } else {
                kept.extend_from_slice(line);
            }
        }
        if n > 0 {
            let tmp = path.with_extension("jsonl.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&kept)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            removed += n;
        }
    }
    Ok(removed)
}

/// A cheap pre-check: could a file mention the id at all (as raw text, as
/// JSON-escaped text, or as hex)?
fn mentions_escaped(text: &[u8], id: &str) -> bool {
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    let escaped = serde_json::to_string(id).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    [id, escaped, hex.as_str()].iter().any(|needle| {
        !needle.is_empty() && text.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Reason, SourceFile};

    #[test]
    fn an_id_is_found_as_a_whole_token_only() {
        assert!(mentions(b"u1,P9,view", b"u1"));
        assert!(mentions(b"P9,u1", b"u1"));
        assert!(mentions(b"{\"user_id\":\"u1\"}", b"u1"));
        assert!(!mentions(b"u10,P9,view", b"u1"));
        assert!(!mentions(b"xu1,P9", b"u1"));
        assert!(mentions(b"u10,u1", b"u1"));
        // Ids that end in punctuation match at any boundary.
        assert!(mentions(b"a@b.c,P1", b"a@b.c"));
        assert!(!mentions(b"", b"u1"));
    }

    fn row(raw: &str, hex: Option<&str>) -> QuarantinedRow {
        QuarantinedRow {
            file: SourceFile::Events,
            line: 1,
            reason: Reason::BadNumber,
            detail: "price \"x\" is not a number".into(),
            raw: raw.into(),
            raw_hex: hex.map(str::to_string),
        }
    }

    #[test]
    fn quarantine_files_lose_exactly_the_rows_that_mention_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        let rows = [
            row("erase-me,P1,view,x", None),
            row("keep-me,P1,view,x", None),
            row("erase-me-not,P1,view,x", None),
            // Invalid UTF-8: the id is in the hex bytes.
            row(
                "\u{fffd},P1",
                Some("6572617365 2d6d65ff2c5031".replace(' ', "").as_str()),
            ),
        ];
        let text: String = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&p, text).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "erase-me").unwrap();
        assert_eq!(erase_from_quarantine(dir.path(), "erase-me").unwrap(), 2);
        let left = std::fs::read_to_string(&p).unwrap();
        assert!(
            left.contains("keep-me") && left.contains("erase-me-not"),
            "{left}"
        );
        assert_eq!(left.lines().count(), 2);
        assert_eq!(erase_from_quarantine(dir.path(), "erase-me").unwrap(), 0);
        assert_eq!(
            erase_from_quarantine(&dir.path().join("none"), "x").unwrap(),
            0
        );
    }
}
