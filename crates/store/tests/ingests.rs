//! What ingests leave with the store (reports, quarantined rows): the same
//! cases over a folder store's files and a PostgreSQL store's tables, and a
//! copy from one to the other.

use aisle_store::pg::ScratchDb;
use aisle_store::IngestLog;

/// Runs a case on each backend: a folder's files, then a scratch
/// PostgreSQL database.
fn each(case: impl Fn(IngestLog)) {
    let dir = tempfile::tempdir().unwrap();
    case(IngestLog::in_folder(dir.path().to_path_buf()));
    let db = ScratchDb::new();
    eprintln!("the same case over PostgreSQL");
    case(IngestLog::open(&db.url).unwrap().unwrap());
}

fn row(line: u64, user: &str, reason: &str) -> String {
    serde_json::json!({
        "file": "events", "line": line, "reason": reason,
        "detail": "x", "raw": format!("{user},P1,view,bad"),
    })
    .to_string()
}

/// Writes a batch of rows (user, reason) and returns where they went.
fn quarantine(log: &IngestLog, input: &str, at: i64, rows: &[(&str, &str)]) -> Option<String> {
    let mut w = log.quarantine(input, at);
    for (i, (user, reason)) in rows.iter().enumerate() {
        w.write(reason, &row(i as u64 + 2, user, reason));
    }
    w.finish().unwrap()
}

#[test]
fn reports_read_back_newest_first() {
    each(|log| {
        for (at, body) in [
            (1_000, "{\"a\":1}"),
            (3_000, "{\"a\":3}"),
            (2_000, "{\"a\":2}"),
        ] {
            log.save_report(at, body).unwrap();
        }
        let got = log.recent_reports(2).unwrap();
        assert_eq!(
            got.iter()
                .map(|r| (r.at, r.json.as_str()))
                .collect::<Vec<_>>(),
            [(3_000, "{\"a\":3}"), (2_000, "{\"a\":2}")]
        );
        assert!(got[0].name.starts_with("ingest-3000-"), "{:?}", got[0]);
    });
}

#[test]
fn a_batch_counts_its_rows_by_reason_and_keeps_its_first_rows_in_order() {
    each(|log| {
        let rows = [
            ("u1", "bad_number"),
            ("u2", "unknown_event_type"),
            ("u3", "bad_number"),
        ];
        let at = quarantine(&log, "shop", 1_700_000_000, &rows);
        assert!(at.is_some_and(|a| a.contains("shop-1700000000-")));
        let b = log.quarantine_batches(10, 2).unwrap();
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].rows, 3);
        assert_eq!(b[0].at, 1_700_000_000);
        assert_eq!(
            b[0].by_reason,
            [
                ("bad_number".to_string(), 2),
                ("unknown_event_type".to_string(), 1)
            ]
        );
        assert_eq!(
            b[0].samples,
            [
                row(2, "u1", "bad_number"),
                row(3, "u2", "unknown_event_type")
            ]
        );
    });
}

#[test]
fn an_ingest_without_bad_rows_leaves_no_batch() {
    each(|log| {
        assert_eq!(quarantine(&log, "clean", 5, &[]), None);
        assert!(log.quarantine_batches(10, 5).unwrap().is_empty());
    });
}

#[test]
fn batches_are_listed_newest_first() {
    each(|log| {
        quarantine(&log, "old", 1_000, &[("u1", "r")]);
        quarantine(&log, "new", 2_000, &[("u1", "r")]);
        let names: Vec<String> = log
            .quarantine_batches(10, 0)
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert!(
            names.len() == 2 && names[0].starts_with("new-") && names[1].starts_with("old-"),
            "{names:?}"
        );
    });
}

#[test]
fn erasing_removes_exactly_the_rows_the_rule_picks_among_those_that_contain_a_needle() {
    each(|log| {
        quarantine(&log, "a", 1, &[("erase-me", "r"), ("keep-me", "r")]);
        quarantine(&log, "b", 2, &[("keep-too", "r"), ("erase-me", "s")]);
        let picks = |line: &[u8]| String::from_utf8_lossy(line).contains("\"erase-me,");
        let n = log.erase_rows(&["erase-me".to_string()], &picks).unwrap();
        assert_eq!(n, 2);
        let left: Vec<String> = log
            .quarantine_batches(10, 10)
            .unwrap()
            .into_iter()
            .flat_map(|b| b.samples)
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|l| !l.contains("erase-me")), "{left:?}");
        // Nothing left to erase; an empty needle reads nothing.
        assert_eq!(log.erase_rows(&["erase-me".into()], &picks).unwrap(), 0);
        assert_eq!(log.erase_rows(&[String::new()], &|_| true).unwrap(), 0);
    });
}

#[test]
fn a_copy_from_files_to_postgres_and_back_keeps_every_report_and_row_and_adds_nothing_when_repeated(
) {
    let (src, back) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files = IngestLog::in_folder(src.path().to_path_buf());
    files.save_report(100, "{\"r\":1}").unwrap();
    files.save_report(200, "{\"r\":2}").unwrap();
    quarantine(&files, "x", 100, &[("u1", "a"), ("u2", "b")]);
    quarantine(&files, "y", 200, &[("u3", "a")]);
    let db = ScratchDb::new();
    let pg = IngestLog::open(&db.url).unwrap().unwrap();
    let c = files.copy_to(&pg).unwrap();
    assert_eq!(
        (
            c.reports,
            c.reports_added,
            c.quarantined_rows,
            c.quarantined_added
        ),
        (2, 2, 3, 3)
    );
    assert_eq!(pg.counts().unwrap(), (2, 3));
    let again = files.copy_to(&pg).unwrap();
    assert_eq!((again.reports_added, again.quarantined_added), (0, 0));
    assert_eq!(pg.counts().unwrap(), (2, 3));
    let back_log = IngestLog::in_folder(back.path().to_path_buf());
    pg.copy_to(&back_log).unwrap();
    assert_eq!(back_log.counts().unwrap(), (2, 3));
    // Same names, times, counts and rows on every side.
    let seen = |l: &IngestLog| {
        let b = l.quarantine_batches(10, 10).unwrap();
        let r: Vec<_> = l
            .recent_reports(10)
            .unwrap()
            .into_iter()
            .map(|r| (r.name, r.at, r.json))
            .collect();
        (b, r)
    };
    assert_eq!(seen(&files), seen(&pg));
    assert_eq!(seen(&pg), seen(&back_log));
}

#[test]
fn a_large_batch_counts_and_erases_across_its_chunks() {
    each(|log| {
        let users: Vec<String> = (0..4_500).map(|i| format!("u{i}")).collect();
        let rows: Vec<(&str, &str)> = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), if i % 3 == 0 { "a" } else { "b" }))
            .collect();
        quarantine(&log, "big", 7, &rows);
        let b = &log.quarantine_batches(1, 3).unwrap()[0];
        assert_eq!(b.rows, 4_500);
        assert_eq!(
            b.by_reason,
            [("b".to_string(), 3_000), ("a".to_string(), 1_500)]
        );
        assert_eq!(b.samples.len(), 3);
        assert!(b.samples[0].contains("\"u0,"), "{:?}", b.samples);
        // A row far into the batch, and one in its first chunk.
        let picks = |id: &'static str| {
            move |line: &[u8]| String::from_utf8_lossy(line).contains(&format!("\"{id},"))
        };
        assert_eq!(
            log.erase_rows(&["u4321".into()], &picks("u4321")).unwrap(),
            1
        );
        assert_eq!(log.erase_rows(&["u0".into()], &picks("u0")).unwrap(), 1);
        let b = &log.quarantine_batches(1, 1).unwrap()[0];
        assert_eq!(b.rows, 4_498);
        // (u4321's reason was b, u0's a.)
        assert_eq!(
            b.by_reason,
            [("b".to_string(), 2_999), ("a".to_string(), 1_499)]
        );
        assert!(b.samples[0].contains("\"u1,"), "{:?}", b.samples);
        assert_eq!(log.counts().unwrap(), (0, 4_498));
    });
}
