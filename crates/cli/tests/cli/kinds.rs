//! Every model kind `aisle train` accepts (the tables of
//! config/models.toml) is promoted with `--promote`, hot-swapped into a
//! running `aisle serve` by `/v1/admin/models/reload`, reported by
//! `/v1/admin/models` and answers recommendations and similar items.

use crate::{http, json, ok};

/// Settings that keep each fit to about a second on the small demo shop.
fn quick(model: &str) -> &'static [&'static str] {
    match model {
        "bpr" => &["epochs=2", "factors=8"],
        "als" => &["iterations=2", "factors=8"],
        "lightgcn" => &["epochs=1", "factors=8"],
        "gat" => &["epochs=2", "factors=8", "negatives=16"],
        "sasrec" | "gru4rec" | "lstm" => &["epochs=1", "hidden=8", "max_len=10", "inner=16"],
        _ => &[],
    }
}

fn promote_and_serve(model: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    ok(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--users",
        "120",
        "--items",
        "80",
        "--train-seconds",
        "0",
        "--no-serve",
    ]);
    let store = dir.join("store");
    let st = store.to_str().unwrap();
    let (mut server, addr) = crate::start_server(st, &[], &[]);
    let get = |path: &str| {
        let (status, body) = http(&addr, "GET", path, "").unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        json(&body)
    };
    assert_eq!(get("/v1/admin/models")["serving"]["name"], "popularity");

    let mut args = vec!["train", "--store", st, "--model", model, "--promote"];
    for s in quick(model) {
        args.extend(["--set", s]);
    }
    let report = json(&ok(&args));
    assert_eq!(report["model"], model);
    let (status, body) = http(&addr, "POST", "/v1/admin/models/reload", "").unwrap();
    assert_eq!(status, 200, "reload {model}: {body}");

    let models = get("/v1/admin/models");
    assert_eq!(models["serving"]["name"], model, "{models}");
    let versions = models["versions"].as_array().unwrap();
    let promoted: Vec<_> = versions.iter().filter(|v| v["promoted"] == true).collect();
    assert_eq!(promoted.len(), 1, "{models}");
    assert_eq!(promoted[0]["model"], model);
    assert_eq!(promoted[0]["version"], models["serving"]["version"]);

    // A shopper with a history gets the model's list.
    let recs = get("/v1/users/u00001/recommendations?k=5");
    let items = recs["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{recs}");
    assert_eq!(items[0]["source"], model, "{recs}");
    // GAT names the history item its attention weighed most.
    if model == "gat" {
        let reason = items[0]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("shoppers who bought ") && reason.contains("% of the attention"),
            "{recs}"
        );
    }
    // And an item's neighbours come from the model too.
    let item = items[0]["item_id"].as_str().unwrap();
    let similar = get(&format!("/v1/items/{item}/similar?k=3"));
    let near = similar["items"].as_array().unwrap();
    assert_eq!(near.len(), 3, "{similar}");
    assert!(near.iter().all(|v| v["item_id"] != item), "{similar}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The model names config/models.toml documents, read from the file, so a
/// kind added there without a test below fails this one.
#[test]
fn every_documented_kind_has_a_serving_test() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/models.toml"),
    )
    .unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
        .collect();
    let tested = [
        "pop", "itemknn", "ease", "bpr", "als", "lightgcn", "gat", "repeat", "sasrec", "gru4rec",
        "lstm",
    ];
    assert_eq!(kinds, tested);
}

macro_rules! kind_tests {
    ($($name:ident: $kind:literal,)*) => {
        $(
            #[test]
            fn $name() {
                promote_and_serve($kind);
            }
        )*
    };
}

kind_tests! {
    pop_is_promoted_and_served: "pop",
    itemknn_is_promoted_and_served: "itemknn",
    ease_is_promoted_and_served: "ease",
    bpr_is_promoted_and_served: "bpr",
    als_is_promoted_and_served: "als",
    lightgcn_is_promoted_and_served: "lightgcn",
    gat_is_promoted_and_served: "gat",
    repeat_is_promoted_and_served: "repeat",
    sasrec_is_promoted_and_served: "sasrec",
    gru4rec_is_promoted_and_served: "gru4rec",
    lstm_is_promoted_and_served: "lstm",
}
