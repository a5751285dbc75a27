//! Keyword search over a small catalog: ranking, typos, Chinese, filters,
//! facets, incremental updates, persistence and bad queries.

use aisle_core::CatalogItem;
use aisle_search::{Filters, KeywordIndex};

fn item(id: &str, title: &str, cat: &str, price: f64) -> CatalogItem {
    CatalogItem {
        id: id.into(),
        title: Some(title.into()),
        description: None,
        category: Some(cat.into()),
        price: Some(price),
        in_stock: true,
    }
}

fn catalog() -> Vec<CatalogItem> {
    vec![
        item("p1", "WHITE HANGING HEART T-LIGHT HOLDER", "Candles", 2.55),
        item("p2", "Glass tea light holder", "Candles", 1.25),
        item("p3", "Set of 12 tea lights", "Candles", 3.0),
        item("p4", "Red retrospot lunch bag", "Bags", 1.65),
        item("p5", "Jumbo bag vintage leaf", "Bags", 2.1),
        item("p6", "女士夏季连衣裙 碎花", "服装", 99.0),
        item("p7", "碎花雪纺连衣裙", "服装", 129.0),
        item("p8", "男士纯棉T恤", "服装", 59.0),
        CatalogItem {
            description: Some("a sturdy holder for candles".into()),
            ..item("p9", "Brass lantern", "Lanterns", 9.5)
        },
    ]
}

fn ids(r: &aisle_search::KeywordResults) -> Vec<&str> {
    r.candidates.iter().map(|h| h.item_id.as_str()).collect()
}

#[test]
fn bm25_with_field_boosts_stemming_and_why() {
    let k = KeywordIndex::in_ram(&catalog()).unwrap();
    assert_eq!(k.len(), 9);
    let r = k.search("holders", &Filters::default(), 10).unwrap();
    // Stemmed: "holders" finds "HOLDER"; title matches outrank p9's description.
    let top2 = ids(&r)[..2].to_vec();
    assert!(top2.contains(&"p1") && top2.contains(&"p2"), "{r:?}");
    assert_eq!(*ids(&r).last().unwrap(), "p9");
    assert_eq!(r.explain(0).unwrap().matched, ["holders"]);
    assert_eq!(r.total, 3);
    // Three words: the item with all of them first.
    let r = k
        .search("tea light holder", &Filters::default(), 10)
        .unwrap();
    assert_eq!(ids(&r)[0], "p2", "{r:?}");
    let hit = r.explain(0).unwrap();
    assert_eq!(hit.matched.len(), 3);
    assert_eq!(hit.title, "Glass tea light holder");
    // Without facets: the same ranking.
    let nf = k
        .search_no_facets("tea light holder", &Filters::default(), 10)
        .unwrap();
    assert_eq!((nf.total, ids(&nf)), (r.total, ids(&r)));
    assert!(nf.facets.is_empty() && !r.facets.is_empty());
    // Category words are searchable too.
    let r = k.search("bags", &Filters::default(), 10).unwrap();
    assert_eq!(r.total, 2);
}

#[test]
fn typos_and_prefixes() {
    let k = KeywordIndex::in_ram(&catalog()).unwrap();
    // One typo in a 7-letter word.
    let r = k.search("lanturn", &Filters::default(), 10).unwrap();
    assert_eq!(ids(&r), ["p9"], "{r:?}");
    assert_eq!(r.explain(0).unwrap().approximate, ["lanturn"]);
    // A word that matched nothing is neither matched nor approximate.
    let r = k.search("lanturn zebra", &Filters::default(), 10).unwrap();
    let h = r.explain(0).unwrap();
    assert_eq!(
        (h.matched.len(), h.approximate.clone()),
        (0, vec!["lanturn".to_string()])
    );
    // Short words must be exact: "bga" is not "bag".
    assert_eq!(k.search("bga", &Filters::default(), 10).unwrap().total, 0);
    // The last word as a prefix (typing).
    let r = k.search("vint", &Filters::default(), 10).unwrap();
    assert_eq!(ids(&r), ["p5"], "{r:?}");
    assert_eq!(
        k.suggest_titles("jumbo ba", 5).unwrap(),
        ["Jumbo bag vintage leaf"]
    );
    assert!(k.suggest_titles("", 5).unwrap().is_empty());
}

/// A correctly spelt word that is in FUZZY_MAX_TITLE_DOCS+ titles is not also
/// looked up with a typo; a rarer one is.
#[test]
fn common_words_skip_the_typo_lookup() {
    let mut items: Vec<CatalogItem> = (0..aisle_search::FUZZY_MAX_TITLE_DOCS)
        .map(|i| item(&format!("m{i}"), "Metal sign", "Signs", 1.0))
        .collect();
    items.push(item("medal", "Medal ribbon", "Awards", 2.0));
    let k = KeywordIndex::in_ram(&items).unwrap();
    let r = k.search("metal", &Filters::default(), 200).unwrap();
    assert_eq!(r.total, aisle_search::FUZZY_MAX_TITLE_DOCS as usize);
    assert!(!ids(&r).contains(&"medal"));
    // With fewer "metal" titles, "medal" is one typo away and matches.
    let k = KeywordIndex::in_ram(&items[95..]).unwrap();
    let r = k.search("metal", &Filters::default(), 200).unwrap();
    assert!(ids(&r).contains(&"medal"), "{r:?}");
}

#[test]
fn chinese_queries_match_reordered_titles() {
    let k = KeywordIndex::in_ram(&catalog()).unwrap();
    // Segmented and OR-ed, not a phrase: the reordered title p7 matches too.
    let r = k.search("连衣裙碎花", &Filters::default(), 10).unwrap();
    let got = ids(&r);
    assert!(got.contains(&"p6") && got.contains(&"p7"), "{r:?}");
    assert!(!got.contains(&"p8"), "{r:?}");
    let r = k.search("男士T恤", &Filters::default(), 10).unwrap();
    assert_eq!(ids(&r)[0], "p8", "{r:?}");
}

#[test]
fn filters_and_facets() {
    let k = KeywordIndex::in_ram(&catalog()).unwrap();
    let r = k
        .search("holder light bag", &Filters::default(), 10)
        .unwrap();
    assert_eq!(r.facets[0], ("Candles".to_string(), 3), "{:?}", r.facets);
    assert!(r.facets.contains(&("Bags".to_string(), 2)));
    let only = |f: Filters| k.search("holder light bag", &f, 10).unwrap();
    let r = only(Filters {
        category: Some("Bags".into()),
        ..Default::default()
    });
    assert_eq!(r.total, 2);
    let r = only(Filters {
        price_min: Some(2.0),
        price_max: Some(3.0),
        ..Default::default()
    });
    let mut got = ids(&r);
    got.sort();
    assert_eq!(got, ["p1", "p3", "p5"]);
    // A filter that matches nothing: no results, no error.
    let r = only(Filters {
        category: Some("Nope".into()),
        ..Default::default()
    });
    assert_eq!((r.total, r.candidates.len()), (0, 0));
}

#[test]
fn incremental_updates_and_in_stock() {
    let k = KeywordIndex::in_ram(&catalog()).unwrap();
    let mut p2 = catalog()[1].clone();
    p2.in_stock = false;
    k.upsert(&[p2, item("p10", "Copper tea light holder", "Candles", 4.0)])
        .unwrap();
    assert_eq!(k.len(), 10);
    let f = Filters {
        in_stock_only: true,
        ..Default::default()
    };
    let r = k.search("tea light holder", &f, 10).unwrap();
    assert!(!ids(&r).contains(&"p2"), "{r:?}");
    assert_eq!(ids(&r)[0], "p10");
    k.delete("p10").unwrap();
    let r = k.search("copper", &Filters::default(), 10).unwrap();
    assert_eq!(r.total, 0);
}

#[test]
fn an_index_on_disk_is_reused_only_for_its_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("kw");
    let mut cat = catalog();
    {
        let k = KeywordIndex::open(&d, &cat).unwrap();
        k.upsert(&[item("p10", "Copper lantern", "Lanterns", 4.0)])
            .unwrap();
    }
    cat.push(item("p10", "Copper lantern", "Lanterns", 4.0));
    // Same catalog (incremental update included): reused, still searchable.
    let k = KeywordIndex::open(&d, &cat).unwrap();
    assert_eq!(k.search("copper", &Filters::default(), 5).unwrap().total, 1);
    drop(k);
    // A changed catalog: rebuilt from it.
    cat[0].title = Some("Zinc bucket".into());
    let k = KeywordIndex::open(&d, &cat).unwrap();
    assert_eq!(k.search("zinc", &Filters::default(), 5).unwrap().total, 1);
    assert_eq!(k.search("heart", &Filters::default(), 5).unwrap().total, 0);
}

#[test]
fn odd_queries_are_harmless() {
    let k = KeywordIndex::in_ram(&catalog()).unwrap();
    let none = Filters::default();
    for q in [
        "",
        "   ",
        "!!! ???",
        "🎉🎉",
        "'; DROP TABLE items; --",
        "<script>alert(1)</script>",
    ] {
        let r = k.search(q, &none, 10).unwrap();
        assert!(r.candidates.len() <= 10, "{q}");
        assert_eq!(r.hits().unwrap().len(), r.candidates.len());
    }
    let long = "holder ".repeat(1500) + &"x".repeat(5000);
    let r = k.search(&long, &none, 10).unwrap();
    assert!(ids(&r).contains(&"p2"), "{r:?}");
    let mixed = k.search("tea 连衣裙 🎉", &none, 10).unwrap();
    assert!(mixed.total >= 3);
}
