//! Formats, presets and normalisation.

use aisle_core::EventType;
use aisle_ingest::{DatasetConfig, Ingestor};

use crate::{assert_balanced, cfg, ingest_bytes, r, reasons, Tmp};

#[test]
fn event_types_are_normalised_and_the_source_value_kept() {
    let data = "user,item,ts,type,qty,price\nu,a,1600000000,pv,,\nu,b,1600000001,cart,1,\nu,c,1600000002,fav,,\nu,d,1600000003,buy,2,3.5\nu,e,1600000004,hover,,\n";
    let out = ingest_bytes(cfg(""), data.as_bytes());
    let types: Vec<(EventType, &str)> = out
        .events
        .iter()
        .map(|e| (e.event_type, e.source_type.as_str()))
        .collect();
    assert_eq!(
        types,
        vec![
            (EventType::View, "pv"),
            (EventType::AddToCart, "cart"),
            (EventType::Favorite, "fav"),
            (EventType::Purchase, "buy")
        ]
    );
    assert_eq!(reasons(&out), r(&[("unknown_event_type", 1)]));
    assert_eq!(out.events[3].quantity, Some(2.0));
    assert_eq!(out.events[3].price, Some(3.5));
}

#[test]
fn custom_event_type_mapping() {
    let c = cfg("[event_types]\nhover = \"view\"\n");
    let out = ingest_bytes(c, b"user,item,ts,type,qty,price\nu,e,1600000004,hover,,\n");
    assert_eq!(out.events[0].event_type, EventType::View);
}

#[test]
fn gzip_and_plain_give_the_same_events_and_keys() {
    let body = b"user,item,ts,type,qty,price\nu1,i1,1600000000,view,,\nu1,i2,1600000050,buy,1,2\n";
    let tmp = Tmp::new();
    let a = Ingestor::new(cfg(""))
        .with_now(1_800_000_000)
        .ingest(&tmp.file("a.csv", body), None)
        .unwrap();
    let b = Ingestor::new(cfg(""))
        .with_now(1_800_000_000)
        .ingest(&tmp.gz("b.csv.gz", body), None)
        .unwrap();
    assert_eq!(a.events, b.events);
}

#[test]
fn idempotency_keys_survive_appended_rows_and_distinguish_identical_rows() {
    let base = "user,item,ts,type,qty,price\nu1,i1,1600000000,view,,\nu1,i1,1600000000,view,,\n";
    let more = format!("{base}u2,i9,1600000100,view,,\n");
    let a = ingest_bytes(cfg(""), base.as_bytes());
    let b = ingest_bytes(cfg(""), more.as_bytes());
    assert_ne!(
        a.events[0].key, a.events[1].key,
        "two identical rows are two events unless dedupe is on"
    );
    assert_eq!(a.events[0].key, b.events[0].key);
    assert_eq!(a.events[1].key, b.events[1].key);
}

#[test]
fn jsonl_with_bad_lines() {
    let text = r#"
name = "j"
format = "jsonl"
[fields]
user = "user_id"
item = "item_id"
time = "ts"
time_format = "datetime"
event_type = "type"
"#;
    let c = DatasetConfig::from_toml(text).unwrap();
    let data = b"{\"user_id\":\"u1\",\"item_id\":7,\"ts\":\"2024-01-02T03:04:05Z\",\"type\":\"view\"}\n\n{not json}\n[1,2]\n{\"user_id\":null,\"item_id\":\"x\",\"ts\":\"2024-01-02\",\"type\":\"view\"}\n";
    let out = ingest_bytes(c, data);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].item, "7");
    assert_eq!(out.events[0].ts, 1_704_164_645);
    assert_eq!(reasons(&out), r(&[("missing_user", 1), ("unparseable", 2)]));
}

#[test]
fn seqlines_rows_are_pairs_with_positions() {
    let c = DatasetConfig::preset("amazon-5core-seq").unwrap();
    let out = ingest_bytes(c, b"1 10 11 12\n2 10\n3\n");
    assert_eq!(out.report.rows_read, 5);
    assert_eq!(
        out.events.iter().map(|e| e.ts).collect::<Vec<_>>(),
        vec![0, 1, 2, 0]
    );
    assert_eq!(out.events[0].source_type, "review");
    assert_eq!(reasons(&out), r(&[("missing_item", 1)]));
}

#[test]
fn headerless_tsv_and_time_offsets() {
    let c = DatasetConfig::preset("ml-100k").unwrap();
    let out = ingest_bytes(c, b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n");
    assert_eq!(out.events[0].value, Some(3.0));
    assert_eq!(out.events[0].event_type, EventType::Rating);
    let c = DatasetConfig::preset("diginetica-sample").unwrap();
    let out = ingest_bytes(
        c,
        b"session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n1;NA;31331;1031018;2016-05-09\n",
    );
    assert_eq!(out.events[0].ts, 1_462_752_000 + 526);
    assert_eq!(out.events[1].ts, 1_462_752_000 + 1031);
    assert_eq!(out.events[0].session.as_deref(), Some("1"));
}

#[test]
fn catalog_from_events_takes_most_frequent_title_and_median_price() {
    let c = DatasetConfig::preset("online-retail").unwrap();
    let data = "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country,event_type\n\
1,A,RED MUG,1,2011-01-01 10:00:00,2.00,1,UK,purchase\n\
2,A,red mug,1,2011-01-02 10:00:00,3.00,2,UK,purchase\n\
3,A,RED MUG,1,2011-01-03 10:00:00,9.00,,UK,purchase\n\
C4,A,RED MUG,-1,2011-01-04 10:00:00,2.00,1,UK,cancel\n";
    let out = ingest_bytes(c, data.as_bytes());
    assert_eq!(out.catalog.len(), 1);
    assert_eq!(out.catalog[0].title.as_deref(), Some("RED MUG"));
    assert_eq!(out.catalog[0].price, Some(3.0));
    // The cancellation is kept as its own type with a positive quantity.
    let cancel = out
        .events
        .iter()
        .find(|e| e.event_type == EventType::Cancel)
        .unwrap();
    assert_eq!(cancel.quantity, Some(1.0));
    assert_eq!(out.report.transformed.get("cancellation"), Some(&1));
    assert_eq!(reasons(&out), r(&[("missing_user", 1)]));
}

#[test]
fn catalog_file_rows_are_validated() {
    let c = DatasetConfig::preset("demo").unwrap();
    let tmp = Tmp::new();
    let cat = tmp.file(
        "catalog.csv",
        b"item_id,title,description,category,price,in_stock\nP1,Mug,,Kitchen,3.5,true\nP2,Pot,,Garden,-1,true\n,NoId,,x,1,true\nP1,Mug v2,,Kitchen,4.0,no\nP3,Lamp,,Home,2,maybe\n",
    );
    let ev = tmp.file(
        "events.csv",
        b"user_id,item_id,event_type,timestamp,quantity,price,session_id\nu1,P1,view,2025-06-01T00:00:00Z,,,s1\nu1,P9,view,2025-06-01T00:01:00Z,,,s1\n",
    );
    let out = Ingestor::new(c)
        .with_now(1_800_000_000)
        .ingest(&ev, Some(&cat))
        .unwrap();
    assert_balanced(&out);
    let rep = out.report.catalog.as_ref().unwrap();
    assert_eq!(rep.rows_read, 5);
    assert_eq!(rep.accepted + rep.quarantined, 5);
    assert_eq!(out.catalog.len(), 1);
    assert_eq!(out.catalog[0].title.as_deref(), Some("Mug v2"));
    assert!(!out.catalog[0].in_stock);
    assert_eq!(reasons(&out), r(&[("unknown_item", 1)]));
}

/// Demo rows naming `items`, with a price each, and a catalog file for P1
/// whose price differs from the events'.
fn catalog_fixture(tmp: &Tmp, items: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let cat = tmp.file(
        "catalog.csv",
        b"item_id,title,description,category,price,in_stock\nP1,Mug,,Kitchen,3.5,true\n",
    );
    let mut ev = String::from("user_id,item_id,event_type,timestamp,quantity,price,session_id\n");
    for i in 1..=items {
        ev.push_str(&format!("u{i},P{i},view,2025-06-01T00:00:00Z,,9.0,s1\n"));
    }
    (tmp.file("events.csv", ev.as_bytes()), cat)
}

fn catalog_cfg() -> DatasetConfig {
    let mut c = DatasetConfig::preset("demo").unwrap();
    c.catalog.from_events = true;
    c.cleaning.require_catalog_item = false;
    c
}

#[test]
fn a_catalog_file_wins_over_the_events_and_the_catalog_comes_in_id_order() {
    let tmp = Tmp::new();
    let (ev, cat) = catalog_fixture(&tmp, 3);
    let out = Ingestor::new(catalog_cfg())
        .with_now(1_800_000_000)
        .ingest(&ev, Some(&cat))
        .unwrap();
    let ids: Vec<&str> = out.catalog.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["P1", "P2", "P3"]);
    assert_eq!(out.catalog[0].price, Some(3.5));
    assert_eq!(out.catalog[0].title.as_deref(), Some("Mug"));
    assert_eq!(out.catalog[1].price, Some(9.0));
    assert_eq!(out.report.catalog_items, 3);
}

#[test]
fn a_catalog_sink_gets_every_item_in_bounded_chunks_and_the_output_keeps_none() {
    let tmp = Tmp::new();
    let (ev, cat) = catalog_fixture(&tmp, 25_000);
    let whole = Ingestor::new(catalog_cfg())
        .with_now(1_800_000_000)
        .ingest(&ev, Some(&cat))
        .unwrap();
    let chunks = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let c2 = chunks.clone();
    let out = Ingestor::new(catalog_cfg())
        .with_now(1_800_000_000)
        .with_catalog_sink(move |chunk| c2.borrow_mut().push(chunk))
        .ingest(&ev, Some(&cat))
        .unwrap();
    assert!(out.catalog.is_empty());
    assert_eq!(out.report.catalog_items, 25_000);
    let chunks = chunks.take();
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 10_000));
    let mut got: Vec<aisle_core::CatalogItem> = chunks.into_iter().flatten().collect();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, whole.catalog);
}

#[test]
fn repeated_rows_count_their_user_and_item_once() {
    let mut c = DatasetConfig::preset("demo").unwrap();
    c.cleaning.dedupe_exact = false;
    c.cleaning.consecutive_duplicate_window_s = None;
    c.cleaning.bot_max_events_per_minute = None;
    let row = "u1,P1,view,2025-06-01T00:00:00Z,,,s1\n";
    let data = format!(
        "user_id,item_id,event_type,timestamp,quantity,price,session_id\n{row}{row}{row}u2,P1,view,2025-06-01T00:00:00Z,,,s1\nu1,P2,purchase,2025-06-01T00:00:00Z,1,,s1\n{row}"
    );
    let out = ingest_bytes(c, data.as_bytes());
    assert_eq!(out.report.accepted, 6);
    assert_eq!((out.report.users, out.report.items), (2, 2));
    assert_eq!(out.report.accepted_by_type.get("view"), Some(&5));
    assert_eq!(out.report.accepted_by_type.get("purchase"), Some(&1));
}
