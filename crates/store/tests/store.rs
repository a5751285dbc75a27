//! The store test suite. Every backend runs `suite`; backend-specific
//! behaviour (files, reopening, URLs) is tested below it.

use aisle_core::{CatalogItem, Event, EventType};
use aisle_store::{EventStore, StoreError};

fn ev(key: u64, user: &str, item: &str, ts: i64, t: EventType) -> Event {
    Event {
        key,
        user: user.into(),
        item: item.into(),
        ts,
        event_type: t,
        source_type: t.as_str().into(),
        quantity: (t == EventType::Purchase).then_some(2.0),
        price: Some(1.5),
        session: Some("s1".into()),
        value: None,
    }
}

fn suite(mut open: impl FnMut() -> Box<dyn EventStore>) {
    // Idempotent appends.
    let mut s = open();
    let batch = vec![
        ev(1, "u1", "a", 100, EventType::View),
        ev(2, "u1", "b", 50, EventType::View),
        ev(3, "u2", "a", 100, EventType::Purchase),
        ev(4, "u1", "c", 100, EventType::AddToCart),
    ];
    let o = s.append(&batch).unwrap();
    assert_eq!((o.inserted, o.already_present), (4, 0));
    let o = s.append(&batch[1..]).unwrap();
    assert_eq!((o.inserted, o.already_present), (0, 3));
    // Latest events, oldest first; equal times in insertion order.
    let u1: Vec<String> = s
        .user_events("u1", 10)
        .unwrap()
        .into_iter()
        .map(|e| e.event.item)
        .collect();
    assert_eq!(u1, ["b", "a", "c"]);
    let last2: Vec<String> = s
        .user_events("u1", 2)
        .unwrap()
        .into_iter()
        .map(|e| e.event.item)
        .collect();
    assert_eq!(last2, ["a", "c"]);
    assert!(s.user_events("nobody", 5).unwrap().is_empty());
    // Round trip of every field.
    let back = s.user_events("u2", 1).unwrap().remove(0).event;
    assert_eq!(back, batch[2]);
    // Scan in insertion order.
    let mut keys = Vec::new();
    s.scan_events(&mut |e| keys.push(e.event.key)).unwrap();
    assert_eq!(keys, [1, 2, 3, 4]);
    // Stats.
    let st = s.stats().unwrap();
    assert_eq!((st.users, st.items, st.events), (2, 3, 4));
    assert_eq!(st.events_by_type.get("view"), Some(&2));
    assert_eq!((st.time_min, st.time_max), (Some(50), Some(100)));
    // Catalog.
    let items = vec![
        CatalogItem {
            id: "a".into(),
            title: Some("Mug".into()),
            price: Some(3.0),
            in_stock: true,
            ..Default::default()
        },
        CatalogItem {
            id: "z".into(),
            title: Some("Lamp".into()),
            in_stock: false,
            ..Default::default()
        },
    ];
    assert_eq!(s.upsert_items(&items).unwrap(), 2);
    let cat = s.catalog().unwrap();
    assert_eq!(cat, items);
    assert_eq!(s.stats().unwrap().catalog_items, 2);
    // Meta.
    assert_eq!(s.meta("k").unwrap(), None);
    s.set_meta("k", "v1").unwrap();
    s.set_meta("k", "v2").unwrap();
    assert_eq!(s.meta("k").unwrap().as_deref(), Some("v2"));
    // Privacy erase.
    assert_eq!(s.delete_user("u1").unwrap(), 3);
    assert!(s.user_events("u1", 10).unwrap().is_empty());
    assert_eq!(s.stats().unwrap().events, 1);
    assert_eq!(s.delete_user("u1").unwrap(), 0);

    // Bulk mode only into an empty store; an event appended twice inside
    // it is stored once, and the count of the second copies comes with its
    // end (inside the load a backend may count them as inserted).
    let mut s = open();
    assert!(s.begin_bulk().unwrap());
    let o = s.append(&batch).unwrap();
    assert_eq!(o.inserted, 4);
    let o = s.append(&batch).unwrap();
    assert_eq!(o.inserted + o.already_present, 4);
    let twice = s.end_bulk().unwrap();
    assert_eq!(o.inserted, twice);
    assert_eq!(s.stats().unwrap().events, 4);
    let mut keys = Vec::new();
    s.scan_events(&mut |e| keys.push(e.event.key)).unwrap();
    assert_eq!(keys, [1, 2, 3, 4], "the first copies are kept");
    let o = s.append(&batch).unwrap();
    assert_eq!((o.inserted, o.already_present), (0, 4));
    assert!(!s.begin_bulk().unwrap(), "bulk mode needs an empty store");
    let u1: Vec<String> = s
        .user_events("u1", 10)
        .unwrap()
        .into_iter()
        .map(|e| e.event.item)
        .collect();
    assert_eq!(u1, ["b", "a", "c"]);
}

/// Identity links: made once, refused when they would chain or steal,
/// listed, removed, and erased with their user.
fn alias_suite(mut s: Box<dyn EventStore>) {
    use aisle_store::{Link, LinkRefusal};
    s.append(&[
        ev(1, "anon1", "a", 10, EventType::View),
        ev(2, "phone", "b", 20, EventType::View),
        ev(3, "alice", "c", 30, EventType::Purchase),
        ev(4, "bob", "d", 40, EventType::View),
    ])
    .unwrap();
    assert_eq!(s.link_alias("alice", "anon1", 5).unwrap(), Link::Linked);
    assert_eq!(s.link_alias("alice", "anon1", 6).unwrap(), Link::Already);
    assert_eq!(s.link_alias("alice", "phone", 7).unwrap(), Link::Linked);
    // An alias has one user; links are one level deep.
    assert_eq!(
        s.link_alias("bob", "anon1", 8).unwrap(),
        Link::Refused(LinkRefusal::AliasTaken {
            user: "alice".into()
        })
    );
    assert_eq!(
        s.link_alias("anon1", "x", 8).unwrap(),
        Link::Refused(LinkRefusal::UserIsAlias {
            user: "alice".into()
        })
    );
    assert_eq!(
        s.link_alias("bob", "alice", 8).unwrap(),
        Link::Refused(LinkRefusal::AliasHasAliases)
    );
    assert_eq!(
        s.link_alias("bob", "bob", 8).unwrap(),
        Link::Refused(LinkRefusal::SameId)
    );
    assert_eq!(
        s.aliases().unwrap(),
        [
            ("anon1".to_string(), "alice".to_string()),
            ("phone".to_string(), "alice".to_string())
        ]
    );
    assert_eq!(s.aliases_of("alice").unwrap(), ["anon1", "phone"]);
    assert!(s.aliases_of("bob").unwrap().is_empty());
    // Unlinking is exact: the wrong user removes nothing.
    assert!(!s.unlink_alias("bob", "phone").unwrap());
    assert!(s.unlink_alias("alice", "phone").unwrap());
    assert!(!s.unlink_alias("alice", "phone").unwrap());
    assert_eq!(s.link_alias("bob", "phone", 9).unwrap(), Link::Linked);
    // Erasing alice erases her alias's events and the link; bob keeps his.
    assert_eq!(s.delete_user("alice").unwrap(), 2);
    assert!(s.user_events("anon1", 10).unwrap().is_empty());
    assert_eq!(
        s.aliases().unwrap(),
        [("phone".to_string(), "bob".to_string())]
    );
    assert_eq!(s.user_events("phone", 10).unwrap().len(), 1);
    // Erasing an alias on its own removes its link too.
    assert_eq!(s.delete_user("phone").unwrap(), 1);
    assert!(s.aliases().unwrap().is_empty());
    assert_eq!(s.stats().unwrap().events, 1);
}

/// Start-up windows: each user's latest events in time order, the items
/// whose latest purchase-or-cancel is a purchase, and every item's count.
fn windows_suite(mut s: Box<dyn EventStore>) {
    s.append(&[
        ev(1, "u1", "a", 10, EventType::View),
        ev(2, "u1", "b", 20, EventType::Purchase),
        ev(3, "u1", "c", 30, EventType::Purchase),
        ev(4, "u1", "c", 40, EventType::Cancel),
        ev(5, "u2", "a", 5, EventType::Purchase),
        ev(6, "u1", "a", 40, EventType::View),
    ])
    .unwrap();
    let mut windows = Vec::new();
    let totals = s
        .live_windows(3, &mut |w| windows.push(w))
        .unwrap()
        .expect("a windowed read");
    windows.sort_by(|a, b| a.user.cmp(&b.user));
    assert_eq!(windows.len(), 2);
    let recent: Vec<(&str, i64)> = windows[0]
        .recent
        .iter()
        .map(|(i, _, ts)| (i.as_str(), *ts))
        .collect();
    // The latest 3, oldest first; equal times in insertion order.
    assert_eq!(recent, [("c", 30), ("c", 40), ("a", 40)]);
    assert_eq!(windows[0].purchased, ["b"]);
    assert_eq!(windows[1].purchased, ["a"]);
    assert_eq!((totals.events, totals.max_ts, totals.last_seq), (6, 40, 6));
    let mut counts = totals.interactions;
    counts.sort();
    assert_eq!(
        counts,
        [
            ("a".to_string(), 3),
            ("b".to_string(), 1),
            ("c".to_string(), 1)
        ]
    );
}

#[test]
fn sqlite_memory_runs_the_suite() {
    windows_suite(aisle_store::open("sqlite::memory:").unwrap());
    suite(|| aisle_store::open("sqlite::memory:").unwrap());
    alias_suite(aisle_store::open("sqlite::memory:").unwrap());
}

#[test]
fn sqlite_file_runs_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    suite(|| {
        n += 1;
        aisle_store::open(dir.path().join(format!("s{n}")).to_str().unwrap()).unwrap()
    });
    alias_suite(aisle_store::open(dir.path().join("aliases").to_str().unwrap()).unwrap());
}

#[test]
fn data_survives_reopening_and_an_interrupted_bulk_load() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    {
        let mut s = aisle_store::open(&url).unwrap();
        assert!(s.begin_bulk().unwrap());
        s.append(&[
            ev(1, "u", "a", 1, EventType::View),
            ev(2, "u", "b", 2, EventType::View),
        ])
        .unwrap();
        // Dropped without end_bulk, as if the process died: indexes are missing on disk.
    }
    let mut s = aisle_store::open_existing(&url).unwrap();
    assert_eq!(s.stats().unwrap().events, 2);
    // The unique key index was rebuilt on open: re-appending adds nothing.
    let o = s.append(&[ev(1, "u", "a", 1, EventType::View)]).unwrap();
    assert_eq!(o.already_present, 1);
    assert_eq!(s.user_events("u", 5).unwrap().len(), 2);
}

#[test]
fn urls_and_missing_stores() {
    // A PostgreSQL server that is not there: the error names the URL, not
    // its password.
    let err = aisle_store::open("postgres://aisle:s3cret@127.0.0.1:1/aisle")
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("postgres://aisle:***@127.0.0.1:1/aisle"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    let err = aisle_store::open("redis://x").err().unwrap();
    assert!(err.to_string().contains("redis"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = aisle_store::open_existing(dir.path().join("none").to_str().unwrap())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Missing { .. }), "{err}");
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    {
        let mut s = aisle_store::open(path.to_str().unwrap()).unwrap();
        s.set_meta("schema_version", "999").unwrap();
    }
    let err = aisle_store::open(path.to_str().unwrap()).err().unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
}

#[test]
fn a_zero_length_database_is_refused_by_every_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aisle.db"), b"").unwrap();
    let url = dir.path().display().to_string();
    for r in [aisle_store::open(&url), aisle_store::open_existing(&url)] {
        let err = r.err().expect("refused");
        assert!(err.to_string().contains("0 bytes"), "{err}");
    }
    // Nothing was written into it.
    assert_eq!(
        std::fs::metadata(dir.path().join("aisle.db"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_profile_counts_a_time_ranges_events_by_type_hour_and_item() {
    let db = PgDb::new();
    for url in ["sqlite::memory:", &db.url] {
        profile_counts(aisle_store::open(url).unwrap());
    }
}

fn profile_counts(mut s: Box<dyn EventStore>) {
    let day = 1_700_006_400; // a midnight, UTC
    s.append(&[
        ev(1, "u", "a", day + 3_600, EventType::View), // 01:00
        ev(2, "u", "a", day + 3_700, EventType::Purchase), // 01:01
        ev(3, "v", "b", day + 7_300, EventType::View), // 02:01
        ev(4, "v", "b", day - 10, EventType::View),    // before the range
        ev(5, "v", "c", day + 86_400, EventType::View), // at its end (excluded)
    ])
    .unwrap();
    let p = s.profile(day, day + 86_400).unwrap();
    assert_eq!(p.events(), 3);
    assert_eq!(p.by_type[EventType::View.code() as usize], 2);
    assert_eq!(p.by_type[EventType::Purchase.code() as usize], 1);
    assert_eq!((p.by_hour[1], p.by_hour[2], p.by_hour[23]), (2, 1, 0));
    let mut items = p.by_item.clone();
    items.sort();
    assert_eq!(items, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
}

#[test]
fn daily_counts_each_days_events_by_type_and_first_seen_users_and_items() {
    let db = PgDb::new();
    for url in ["sqlite::memory:", &db.url] {
        daily_counts(aisle_store::open(url).unwrap());
    }
}

fn daily_counts(mut s: Box<dyn EventStore>) {
    let d = 19_675; // a day number
    let t = |day: i64, sec: i64| day * 86_400 + sec;
    s.append(&[
        ev(1, "old", "a", t(d - 3, 10), EventType::View), // before the range
        ev(2, "old", "a", t(d, 5), EventType::View),
        ev(3, "u", "b", t(d, 86_399), EventType::Purchase), // the day's last second
        ev(4, "u", "c", t(d + 2, 0), EventType::View),
        ev(5, "w", "a", t(d + 2, 7), EventType::AddToCart),
        ev(6, "x", "z", t(d + 3, 0), EventType::View), // after the range
    ])
    .unwrap();
    let days = s.daily(d, d + 2).unwrap();
    assert_eq!(
        days.iter().map(|x| x.day).collect::<Vec<_>>(),
        vec![d, d + 1, d + 2]
    );
    assert_eq!(days[0].events(), 2);
    assert_eq!(days[0].by_type[EventType::Purchase.code() as usize], 1);
    assert_eq!((days[0].new_users, days[0].new_items), (1, 1)); // u; b
    assert_eq!(
        days[1],
        aisle_store::DayCounts {
            day: d + 1,
            ..Default::default()
        }
    );
    assert_eq!(days[2].by_type[EventType::AddToCart.code() as usize], 1);
    assert_eq!((days[2].new_users, days[2].new_items), (1, 1)); // w; c
                                                                // An inverted range is empty; a long one is cut to MAX_DAYS.
    assert!(s.daily(d, d - 1).unwrap().is_empty());
    assert_eq!(
        s.daily(0, 100_000).unwrap().len() as i64,
        aisle_store::MAX_DAYS
    );
}

use aisle_store::pg::ScratchDb as PgDb;

#[test]
fn postgres_runs_the_suite() {
    let mut dbs = Vec::new();
    suite(|| {
        dbs.push(PgDb::new());
        aisle_store::open(&dbs.last().unwrap().url).unwrap()
    });
    let db = PgDb::new();
    alias_suite(aisle_store::open(&db.url).unwrap());
    let db = PgDb::new();
    windows_suite(aisle_store::open(&db.url).unwrap());
}

#[test]
fn postgres_events_are_partitioned_by_year_and_counted_across_them() {
    let db = PgDb::new();
    let mut s = aisle_store::open(&db.url).unwrap();
    let y2010 = 1_291_191_960; // 2010-12-01
    let y2011 = 1_323_388_800; // 2011-12-09
    s.append(&[
        ev(1, "u", "a", y2010, EventType::View),
        ev(2, "u", "b", y2011, EventType::Purchase),
        ev(3, "v", "a", 5, EventType::View), // an order-only position: 1970
    ])
    .unwrap();
    let mut parts: Vec<String> = db
        .client()
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    parts.sort();
    assert_eq!(parts, ["events_y1970", "events_y2010", "events_y2011"]);
    let st = s.stats().unwrap();
    assert_eq!(
        (st.events, st.time_min, st.time_max),
        (3, Some(5), Some(y2011))
    );
    let u: Vec<i64> = s
        .user_events("u", 5)
        .unwrap()
        .iter()
        .map(|e| e.event.ts)
        .collect();
    assert_eq!(u, [y2010, y2011]);
}

#[test]
fn postgres_idempotency_holds_across_two_connections_as_across_replicas() {
    let db = PgDb::new();
    let mut a = aisle_store::open(&db.url).unwrap();
    let mut b = aisle_store::open(&db.url).unwrap();
    let batch = [
        ev(1, "u", "a", 100, EventType::View),
        ev(2, "w", "z", 101, EventType::View),
    ];
    assert_eq!(a.append(&batch).unwrap().inserted, 2);
    // The other connection knows neither the keys nor the new user and item.
    let o = b
        .append(&[batch[1].clone(), ev(3, "w", "a", 102, EventType::Click)])
        .unwrap();
    assert_eq!((o.inserted, o.already_present), (1, 1));
    let items: Vec<String> = a
        .user_events("w", 5)
        .unwrap()
        .into_iter()
        .map(|e| e.event.item)
        .collect();
    assert_eq!(items, ["z", "a"]);
    assert_eq!(b.stats().unwrap().events, 3);
    // A batch that repeats a key inside itself stores it once.
    let o = a
        .append(&[
            ev(4, "u", "q", 103, EventType::View),
            ev(4, "u", "q", 103, EventType::View),
        ])
        .unwrap();
    assert_eq!((o.inserted, o.already_present), (1, 1));
}

#[test]
fn postgres_open_existing_refuses_a_database_without_a_store() {
    let db = PgDb::new();
    let err = aisle_store::open_existing(&db.url).err().expect("refused");
    assert!(matches!(err, StoreError::Missing { .. }), "{err}");
    aisle_store::open(&db.url).unwrap();
    aisle_store::open_existing(&db.url).unwrap();
}

#[test]
fn postgres_erasure_removes_a_users_events_and_keys() {
    let db = PgDb::new();
    let mut s = aisle_store::open(&db.url).unwrap();
    s.append(&[
        ev(1, "gone", "a", 100, EventType::View),
        ev(2, "kept", "a", 100, EventType::View),
    ])
    .unwrap();
    assert_eq!(s.delete_user("gone").unwrap(), 1);
    let mut c = db.client();
    let n: i64 = c
        .query_one("SELECT COUNT(*) FROM users WHERE ext = 'gone'", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let keys: i64 = c
        .query_one("SELECT COUNT(*) FROM event_keys", &[])
        .unwrap()
        .get(0);
    assert_eq!(keys, 1);
    // The same event sent again is new again (its key went with it).
    assert_eq!(
        s.append(&[ev(1, "gone", "a", 100, EventType::View)])
            .unwrap()
            .inserted,
        1
    );
}

#[test]
fn postgres_a_bulk_load_killed_before_its_end_gets_its_indexes_back_at_open() {
    let db = PgDb::new();
    {
        let mut s = aisle_store::open(&db.url).unwrap();
        assert!(s.begin_bulk().unwrap());
        s.append(&[ev(1, "u", "a", 1, EventType::View)]).unwrap();
        // Dropped without end_bulk, as if the process died.
    }
    let indexes = |db: &PgDb| -> Vec<String> {
        let mut v: Vec<String> = db
            .client()
            .query(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'events' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        v.sort();
        v
    };
    assert!(indexes(&db).is_empty());
    let mut s = aisle_store::open_existing(&db.url).unwrap();
    assert_eq!(indexes(&db), ["events_by_seq", "events_user_ts"]);
    assert_eq!(
        s.append(&[ev(1, "u", "a", 1, EventType::View)])
            .unwrap()
            .already_present,
        1
    );
    assert_eq!(s.user_events("u", 5).unwrap().len(), 1);
}

#[test]
fn a_copy_from_sqlite_into_postgres_loses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src_url = dir.path().join("src").display().to_string();
    let mut src = aisle_store::open(&src_url).unwrap();
    let events: Vec<_> = (0..120_000u64)
        .map(|k| {
            let t = [EventType::View, EventType::AddToCart, EventType::Purchase][(k % 3) as usize];
            ev(
                k + 1,
                &format!("u{}", k % 997),
                &format!("i{}", k % 211),
                1_300_000_000 + k as i64 * 600,
                t,
            )
        })
        .collect();
    src.append(&events).unwrap();
    src.upsert_items(&[CatalogItem {
        id: "i1".into(),
        title: Some("Mug".into()),
        price: Some(3.5),
        in_stock: true,
        ..Default::default()
    }])
    .unwrap();
    let db = PgDb::new();
    let mut dst = aisle_store::open(&db.url).unwrap();
    let mut seen = 0;
    let r = aisle_store::copy::copy(src.as_ref(), dst.as_mut(), &mut |n| seen = n).unwrap();
    assert_eq!(
        (r.events_read, r.inserted, r.already_present),
        (120_000, 120_000, 0)
    );
    assert_eq!(seen, 120_000);
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.target.events, 120_000);
    assert_eq!(r.target.catalog_items, 1);
    // Insertion order and every field survive.
    let a: Vec<_> = src
        .user_events("u5", 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    let b: Vec<_> = dst
        .user_events("u5", 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(a, b);
    // Again: nothing new, still complete.
    let r = aisle_store::copy::copy(src.as_ref(), dst.as_mut(), &mut |_| {}).unwrap();
    assert_eq!((r.inserted, r.already_present), (0, 120_000));
    assert!(r.complete());
    // One event missing from the target shows in the digest.
    dst.delete_user("u7").unwrap();
    assert_ne!(aisle_store::copy::digest(dst.as_ref()).unwrap(), r.source);
}
