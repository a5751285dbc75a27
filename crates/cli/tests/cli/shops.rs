//! `aisle shops create|list|delete|rotate-keys`, and a server answering
//! for the shops at /v1/shops/{shop}/….

use crate::{empty_store, http_with, json, ok, run, start_server};

#[test]
fn shops_are_created_served_listed_and_deleted_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let st = empty_store(tmp.path());
    let created = json(&ok(&["shops", "create", "acme", "--store", &st, "--json"]));
    assert_eq!(created["shop"], "acme");
    let key = |scope: &str| created["keys"][scope].as_str().unwrap().to_string();
    let (read, write) = (key("read"), key("write"));
    assert!(
        read.starts_with("aisle_acme_read_") && read.len() > 60,
        "{created}"
    );
    // The store keeps digests, never the keys.
    let db = std::fs::read(tmp.path().join("s/shops/acme/aisle.db")).unwrap();
    assert!(!db.windows(read.len()).any(|w| w == read.as_bytes()));
    // A second shop of the same name, an unsafe name: refused.
    let (code, _, err) = run(&["shops", "create", "acme", "--store", &st]);
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "{err}");
    let (code, _, err) = run(&["shops", "create", "../up", "--store", &st]);
    assert_ne!(code, 0);
    assert!(err.contains("not a shop name"), "{err}");

    let (mut server, addr) = start_server(&st, &[], &[]);
    let call = |method: &str, path: &str, body: &str, k: &str| {
        http_with(&addr, method, path, body, &[("x-api-key", k)]).unwrap()
    };
    let (s, b) = call(
        "POST",
        "/v1/shops/acme/events",
        r#"{"user_id":"u1","item_id":"rocket","type":"purchase"}"#,
        &write,
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = call("GET", "/v1/shops/acme/popular", "", &read);
    assert_eq!(s, 200, "{b}");
    assert_eq!(json(&b)["items"][0]["item_id"], "rocket", "{b}");
    // The default shop (keyless here) does not have it.
    let (_, b) = call("GET", "/v1/popular", "", "");
    assert!(!b.contains("rocket"), "{b}");
    // A key of the shop is not a key of the write scope elsewhere.
    let (s, _) = call("POST", "/v1/shops/acme/events", "{}", &read);
    assert_eq!(s, 403);

    let listed = json(&ok(&["shops", "list", "--store", &st, "--json"]));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shop"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "acme"]);
    assert_eq!(listed[1]["events"], 1, "{listed}");

    ok(&["shops", "delete", "acme", "--store", &st]);
    assert!(!tmp.path().join("s/shops/acme").exists());
    let gone = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (s, b) = call("GET", "/v1/shops/acme/popular", "", &read);
        s == 404 && b.contains("unknown_shop")
    });
    assert!(gone, "the deleted shop is still served");
    let (code, _, err) = run(&["shops", "delete", "acme", "--store", &st]);
    assert_ne!(code, 0);
    assert!(err.contains("no shop named"), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();
}
