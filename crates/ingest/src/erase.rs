//! Which quarantined rows mention a user (in their text, their hex bytes or
//! their detail): the rule an erasure applies to the store's quarantined
//! rows (`aisle_store::IngestLog::erase_rows` with [`needles`] and
//! [`line_mentions`]).

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
    fn a_quarantine_line_mentions_the_id_in_its_text_its_hex_bytes_or_its_detail() {
        let line = |r: QuarantinedRow| serde_json::to_string(&r).unwrap();
        // Invalid UTF-8: the id is only in the hex bytes.
        let hex = "6572617365 2d6d65ff2c5031".replace(' ', "");
        let cases = [
            (line(row("erase-me,P1,view,x", None)), true),
            (line(row("keep-me,P1,view,x", None)), false),
            (line(row("erase-me-not,P1,view,x", None)), false),
            (line(row("\u{fffd},P1", Some(&hex))), true),
            // Not a quarantined row: its text decides.
            ("torn {\"raw\":\"erase-me,P".to_string(), true),
        ];
        for (l, want) in cases {
            assert_eq!(line_mentions(l.as_bytes(), "erase-me"), want, "{l}");
            // The pre-filter lets every mentioning line through.
            if want {
                assert!(
                    needles("erase-me").iter().any(|n| l.contains(n.as_str())),
                    "{l}"
                );
            }
        }
    }

    #[test]
    fn needles_cover_the_escaped_and_hex_forms() {
        assert_eq!(needles("a\"b"), ["612262", "a\"b", "a\\\"b"]);
    }
}
