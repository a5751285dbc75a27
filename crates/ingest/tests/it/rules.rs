//! Each cleaning rule, counted under its own reason.

use crate::{cfg, ingest_bytes, r, reasons};

const H: &str = "user,item,ts,type,qty,price\n";

#[test]
fn row_level_rules() {
    let data = format!(
        "{H}u1,i1,1600000000,view,,\n\
         ,i1,1600000000,view,,\n\
         u1,,1600000000,view,,\n\
         u1,i1,yesterday,view,,\n\
         u1,i1,1000,view,,\n\
         u1,i1,4102444800,view,,\n\
         u1,i1,1600000000,buy,0,\n\
         u1,i1,1600000000,buy,-3,\n\
         u1,i1,1600000000,buy,two,\n\
         u1,i1,1600000000,buy,1,-5\n\
         u1,i1,1600000000,cancel,-2,\n"
    );
    let out = ingest_bytes(cfg(""), data.as_bytes());
    assert_eq!(
        reasons(&out),
        r(&[
            ("missing_user", 1),
            ("missing_item", 1),
            ("bad_timestamp", 3),
            ("non_positive_quantity", 2),
            ("bad_number", 1),
            ("negative_price", 1),
        ])
    );
    assert_eq!(out.report.accepted, 2);
    assert_eq!(out.report.transformed.get("cancellation"), Some(&1));
}

#[test]
fn exact_duplicates_only_when_enabled() {
    let data =
        format!("{H}u1,i1,1600000000,view,,\nu1,i1,1600000000,view,,\nu1,i1,1600000000,view,,\n");
    assert_eq!(ingest_bytes(cfg(""), data.as_bytes()).report.accepted, 3);
    let out = ingest_bytes(cfg("dedupe_exact = true"), data.as_bytes());
    assert_eq!(reasons(&out), r(&[("exact_duplicate", 2)]));
    assert_eq!(
        out.quarantine.iter().map(|q| q.line).collect::<Vec<_>>(),
        vec![3, 4]
    );
}

#[test]
fn consecutive_duplicates_within_the_window() {
    // u1 views i1 twice in 3 s (dup), then again after 100 s (kept); u2 is separate.
    let data = format!(
        "{H}u1,i1,1600000000,view,,\nu2,i1,1600000001,view,,\nu1,i1,1600000003,view,,\nu1,i1,1600000103,view,,\nu1,i1,1600000104,add_to_cart,1,\n"
    );
    let out = ingest_bytes(cfg("consecutive_duplicate_window_s = 5"), data.as_bytes());
    assert_eq!(reasons(&out), r(&[("consecutive_duplicate", 1)]));
    assert_eq!(out.quarantine[0].line, 4);
}

#[test]
fn non_products_only_when_enabled() {
    let data = format!("{H}u1,POST,1600000000,buy,1,\nu1,gift_0001_10,1600000001,buy,1,\nu1,85123A,1600000002,buy,1,\n");
    let c = "non_product_codes = [\"POST\"]\nnon_product_prefixes = [\"gift_\"]";
    assert_eq!(ingest_bytes(cfg(c), data.as_bytes()).report.accepted, 3);
    let out = ingest_bytes(
        cfg(&format!("{c}\ndrop_non_products = true")),
        data.as_bytes(),
    );
    assert_eq!(reasons(&out), r(&[("non_product", 2)]));
    assert_eq!(out.events[0].item, "85123A");
}

#[test]
fn bots_exceed_the_events_per_minute_cap() {
    let mut data = H.to_string();
    for k in 0..40 {
        data.push_str(&format!("bot,i{k},{},view,,\n", 1_600_000_000 + k)); // 40 in 40 s
    }
    for k in 0..40 {
        data.push_str(&format!("human,i{k},{},view,,\n", 1_600_000_000 + 30 * k));
        // 2 a minute
    }
    let out = ingest_bytes(cfg("bot_max_events_per_minute = 30"), data.as_bytes());
    assert_eq!(reasons(&out), r(&[("bot_user", 40)]));
    assert!(out.events.iter().all(|e| e.user == "human"));
}

#[test]
fn kcore_iterates_to_a_fixed_point() {
    // With k = 2: round 1 drops u2-i3 (i3 has one event); round 2 drops u2-i2
    // (u2 is down to one); round 3 drops u1-i2 (i2 is down to one).
    // u1-i1, u3-i1, u1-i4 and u3-i4 survive.
    let data = format!(
        "{H}u1,i1,1600000000,view,,\nu3,i1,1600000001,view,,\nu1,i4,1600000002,view,,\nu3,i4,1600000003,view,,\nu2,i3,1600000004,view,,\nu2,i2,1600000005,view,,\nu1,i2,1600000006,view,,\n"
    );
    let out = ingest_bytes(cfg("kcore = 2"), data.as_bytes());
    assert_eq!(reasons(&out), r(&[("kcore", 3)]));
    assert_eq!(out.report.users, 2);
    assert_eq!(out.report.items, 2);
}

#[test]
fn unknown_items_need_a_catalog() {
    // Without a catalog file the rule has nothing to check against.
    let out = ingest_bytes(
        cfg("require_catalog_item = true"),
        format!("{H}u1,i1,1600000000,view,,\n").as_bytes(),
    );
    assert_eq!(out.report.accepted, 1);
}
