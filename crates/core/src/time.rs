//! Time parsing without a calendar library: the formats shops actually send.
//!
//! All functions return Unix seconds (UTC; a wall-clock time without a zone
//! is read as UTC) or `None` when the text is not a valid time.

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`). Returns `None` for an invalid month/day.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Inverse of [`days_from_civil`]: (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&b[0..4])? as i64;
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    Some(days_from_civil(y, m, d)? * 86_400)
}

/// Parses `YYYY-MM-DD HH:MM[:SS][.fff]` or RFC 3339 (`T` separator, `Z` or a
/// `±HH:MM` offset). A time without a zone is taken as UTC.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() == 10 {
        return parse_date(s);
    }
    if b.len() < 16 || (b[10] != b' ' && b[10] != b'T' && b[10] != b't') {
        return None;
    }
    let day = parse_date(&s[..10])?;
    if b[13] != b':' {
        return None;
    }
    let hh = digits(&b[11..13])?;
    let mm = digits(&b[14..16])?;
    let mut rest = &b[16..];
    let mut ss = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        ss = digits(&rest[1..3])?;
        rest = &rest[3..];
    }
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])? as i64;
            let m = digits(&[*m1, *m2])? as i64;
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(day + (hh as i64) * 3600 + (mm as i64) * 60 + ss as i64 - offset)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for z in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), Some(z));
        }
    }

    #[test]
    fn known_datetimes() {
        assert_eq!(parse_datetime("2010-12-01 08:26:00"), Some(1_291_191_960));
        assert_eq!(parse_datetime("2010-12-01T08:26:00Z"), Some(1_291_191_960));
        assert_eq!(
            parse_datetime("2010-12-01T09:26:00+01:00"),
            Some(1_291_191_960)
        );
        assert_eq!(parse_datetime("2010-12-01 08:26"), Some(1_291_191_960));
        assert_eq!(
            parse_datetime("2010-12-01 08:26:00.123"),
            Some(1_291_191_960)
        );
        assert_eq!(parse_date("2016-05-09"), Some(1_462_752_000));
        assert_eq!(format_rfc3339(1_291_191_960), "2010-12-01T08:26:00Z");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "yesterday",
            "2010-13-01 00:00:00",
            "2011-02-29 00:00:00",
            "2010-12-01 25:00:00",
            "2010-12-01 08:61:00",
            "2010-12-01X08:26:00",
            "2010-12-01 08:26:00+5",
            "２０１０-12-01",
        ] {
            assert_eq!(parse_datetime(s), None, "{s}");
        }
    }
}
