//! Erasing a user from the quarantine files: every quarantined row that
//! mentions the id (in its text, its hex bytes or its detail) is removed.

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

/// Whether a quarantine line (a [`QuarantinedRow`]'s JSON) mentions `id`
/// in its text, its hex bytes or its detail; a line that is not a
/// quarantined row mentions it when its text does.
pub fn line_mentions(line: &[u8], id: &str) -> bool {
    match serde_json::from_slice::<QuarantinedRow>(line) {
        Ok(row) => row_mentions(&row, id),
        Err(_) => mentions(line, id.as_bytes()),
    }
}

/// How `id` may appear in a quarantine line: as it is, JSON-escaped, or
/// as hex bytes (a cheap pre-filter before [`line_mentions`]).
pub fn needles(id: &str) -> Vec<String> {
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    let escaped = serde_json::to_string(id).unwrap_or_default();
    let escaped = escaped.trim_matches('"').to_string();
    let mut v = vec![id.to_string(), escaped, hex];
    v.sort();
    v.dedup();
    v
}

/// Removes every quarantined row that mentions `id` from the store's log
/// (a folder store's files are each rewritten beside themselves, synced,
/// then renamed over; a PostgreSQL store's rows are deleted in one
/// transaction). Returns how many rows were removed.
pub fn erase_from_quarantine(
    log: &aisle_store::IngestLog,
    id: &str,
) -> Result<u64, aisle_store::StoreError> {
    log.erase_rows(&needles(id), &|line| line_mentions(line, id))
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
        let log = aisle_store::IngestLog::in_folder(dir.path().to_path_buf());
        let q = dir.path().join(aisle_store::ingests::QUARANTINE_DIR);
        std::fs::create_dir_all(&q).unwrap();
        std::fs::rename(&p, q.join("x.jsonl")).unwrap();
        let p = q.join("x.jsonl");
        std::fs::write(q.join("notes.txt"), "erase-me").unwrap();
        assert_eq!(erase_from_quarantine(&log, "erase-me").unwrap(), 2);
        let left = std::fs::read_to_string(&p).unwrap();
        assert!(
            left.contains("keep-me") && left.contains("erase-me-not"),
            "{left}"
        );
        assert_eq!(left.lines().count(), 2);
        assert_eq!(erase_from_quarantine(&log, "erase-me").unwrap(), 0);
        assert_eq!(
            std::fs::read_to_string(q.join("notes.txt")).unwrap(),
            "erase-me",
            "a file that is not a quarantine file is left alone"
        );
        let none = aisle_store::IngestLog::in_folder(dir.path().join("none"));
        assert_eq!(erase_from_quarantine(&none, "x").unwrap(), 0);
    }
}
