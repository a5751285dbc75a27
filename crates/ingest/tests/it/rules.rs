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

/// A file with repeats, dirt and heavy users, for the spill tests.
fn messy_rows(n: u64) -> String {
    let mut s = String::from(H);
    let mut x = 7u64;
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = x >> 33;
        let user = if r.is_multiple_of(5) { r % 3 } else { r % 60 };
        let item = if r.is_multiple_of(11) {
            "GIFT".to_string()
        } else {
            format!("i{}", r % 40)
        };
        let ts = 1_600_000_000 + (i / 3) as i64 + (r % 7) as i64;
        let ty = ["view", "cart", "buy"][(r % 3) as usize];
        // Every fourth row repeats an earlier one exactly.
        if i % 4 == 3 {
            let prev = s
                .lines()
                .nth(1 + (r % i) as usize)
                .unwrap_or_default()
                .to_string();
            s.push_str(&prev);
            s.push('\n');
            continue;
        }
        s.push_str(&format!("u{user},{item},{ts},{ty},1,{}\n", r % 50));
    }
    s
}

fn ingest_with(
    cfg: aisle_ingest::DatasetConfig,
    path: &std::path::Path,
    tweak: impl FnOnce(aisle_ingest::Ingestor) -> aisle_ingest::Ingestor,
) -> aisle_ingest::IngestOutput {
    let out = tweak(aisle_ingest::Ingestor::new(cfg).with_now(1_800_000_000))
        .ingest(path, None)
        .unwrap();
    crate::assert_balanced(&out);
    out
}

fn same_outcome(a: &aisle_ingest::IngestOutput, b: &aisle_ingest::IngestOutput) {
    assert_eq!(a.events, b.events, "same events, keys and order");
    let q = |o: &aisle_ingest::IngestOutput| {
        let mut v: Vec<_> = o
            .quarantine
            .iter()
            .map(|q| (q.line, q.reason, q.raw.clone()))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0).then(x.2.cmp(&y.2)));
        v
    };
    assert_eq!(q(a), q(b), "same rows quarantined for the same reasons");
    assert_eq!(a.report.by_reason, b.report.by_reason);
}

#[test]
fn counting_duplicates_on_disk_past_the_cap_changes_nothing() {
    let tmp = crate::Tmp::new();
    let p = tmp.file("e.csv", messy_rows(6_000).as_bytes());
    for extra in [
        "dedupe_exact = true\nnon_product_codes = [\"GIFT\"]\ndrop_non_products = true",
        "dedupe_exact = false",
    ] {
        let c = cfg(extra);
        let base = ingest_with(c.clone(), &p, |i| i);
        assert!(base.report.accepted > 1_000);
        for cap in [0, 1, 500, 3_000] {
            let spilled = ingest_with(c.clone(), &p, |i| i.with_seen_cap(cap));
            same_outcome(&base, &spilled);
        }
    }
}

#[test]
fn whole_history_rules_give_the_same_verdicts_with_many_sorted_runs_and_a_small_count() {
    let tmp = crate::Tmp::new();
    let p = tmp.file("e.csv", messy_rows(6_000).as_bytes());
    let c = cfg("dedupe_exact = true\nconsecutive_duplicate_window_s = 30\n\
         bot_max_events_per_minute = 20\nkcore = 3\n\
         non_product_codes = [\"GIFT\"]\ndrop_non_products = true");
    let base = ingest_with(c.clone(), &p, |i| i);
    for reason in [
        "consecutive_duplicate",
        "bot_user",
        "exact_duplicate",
        "non_product",
    ] {
        assert!(
            base.report.by_reason.get(reason).copied().unwrap_or(0) > 0,
            "{reason} fires"
        );
    }
    let runs = ingest_with(c.clone(), &p, |i| i.with_run_bytes(2_000));
    same_outcome(&base, &runs);
    let both = ingest_with(c, &p, |i| i.with_run_bytes(2_000).with_seen_cap(100));
    same_outcome(&base, &both);
}

#[test]
fn the_spill_goes_where_it_is_told_and_is_removed() {
    let tmp = crate::Tmp::new();
    let p = tmp.file("e.csv", messy_rows(500).as_bytes());
    let spill = tempfile::tempdir().unwrap();
    let c = cfg("consecutive_duplicate_window_s = 30");
    ingest_with(c, &p, |i| i.with_spill_dir(spill.path()).with_seen_cap(10));
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
    let missing = spill.path().join("not-there");
    let err = aisle_ingest::Ingestor::new(cfg("kcore = 2"))
        .with_spill_dir(&missing)
        .ingest(&p, None)
        .unwrap_err();
    assert!(err.to_string().contains("cannot spill"), "{err}");
}

/// The catalog for the exclusion tests: `department` is not a mapped field.
const EXCLUDE_CATALOG: &str =
    "item_id,title,department\ni1,Milk,DAIRY\ni2,Diesel,FUEL\ni3,Bread,BAKERY\n";

fn ingest_with_catalog(
    cfg: aisle_ingest::DatasetConfig,
    events: &str,
    catalog: &str,
) -> aisle_ingest::IngestOutput {
    let tmp = crate::Tmp::new();
    let (e, c) = (
        tmp.file("events.csv", events.as_bytes()),
        tmp.file("catalog.csv", catalog.as_bytes()),
    );
    let out = aisle_ingest::Ingestor::new(cfg)
        .with_now(1_800_000_000)
        .ingest(&e, Some(&c))
        .unwrap();
    crate::assert_balanced(&out);
    out
}

#[test]
fn items_are_excluded_by_a_catalog_column() {
    // The catalog file has no description, price or stock columns.
    let mut cfg = cfg("exclude = { department = [\"FUEL\"] }");
    let events = format!("{H}u1,i1,1600000000,buy,1,\nu1,i2,1600000001,buy,1,\nu2,i2,1600000002,view,,\nu2,i3,1600000003,buy,1,\n");
    cfg.catalog.price = None;
    cfg.catalog.in_stock = None;
    cfg.catalog.description = None;
    cfg.catalog.category = None;
    let out = ingest_with_catalog(cfg, &events, EXCLUDE_CATALOG);
    assert_eq!(reasons(&out), r(&[("excluded_item", 2)]));
    assert!(out.events.iter().all(|e| e.item != "i2"));
    let cat = out.report.catalog.as_ref().unwrap();
    assert_eq!((cat.accepted, cat.by_reason["excluded_item"]), (2, 1));
    assert!(out.catalog.iter().all(|i| i.id != "i2"));
}

#[test]
fn items_are_excluded_by_the_event_rows_category_under_a_whole_history_rule() {
    // A catalog built from events; kcore = 1 sends rows through the spill.
    let text = format!(
        "{}category = \"cat\"\n[catalog]\nfrom_events = true\n[cleaning]\nkcore = 1\nexclude = {{ category = [\"FUEL\"] }}\n",
        crate::CSV_CFG
    );
    let cfg = aisle_ingest::DatasetConfig::from_toml(&text).unwrap();
    let out = ingest_bytes(
        cfg,
        b"user,item,ts,type,qty,price,cat\nu1,i1,1600000000,buy,1,,DAIRY\nu1,i2,1600000001,buy,1,,FUEL\nu2,i3,1600000002,buy,1,,BAKERY\n",
    );
    assert_eq!(reasons(&out), r(&[("excluded_item", 1)]));
    assert!(
        out.catalog.iter().all(|i| i.id != "i2"),
        "{:?}",
        out.catalog
    );
}

#[test]
fn an_exclusion_that_cannot_act_is_refused() {
    let tmp = crate::Tmp::new();
    let e = tmp.file(
        "events.csv",
        format!("{H}u1,i1,1600000000,buy,1,\n").as_bytes(),
    );
    let err = aisle_ingest::Ingestor::new(cfg("exclude = { department = [\"FUEL\"] }"))
        .ingest(&e, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cleaning.exclude.department"), "{err}");
}
