//! `aisle serve` keys as an operator gives them: files, the environment,
//! flags; an empty key file refuses to start.

use crate::{empty_store, http_with, start_server};

#[test]
fn an_empty_key_file_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let st = empty_store(tmp.path());
    let key = tmp.path().join("admin.key");
    std::fs::write(&key, "\n").unwrap();
    let (code, _, err) = crate::run(&[
        "serve",
        "--store",
        &st,
        "--addr",
        "0.0.0.0:0",
        "--admin-key-file",
        key.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("refusing to start"), "{err}");
}

#[test]
fn key_files_and_the_environment_give_scoped_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let st = empty_store(tmp.path());
    let read = tmp.path().join("read.key");
    std::fs::write(&read, "r-0123456789\n").unwrap();
    let (mut server, addr) = start_server(
        &st,
        &["--read-key-file", read.to_str().unwrap()],
        &[("AISLE_ADMIN_KEY", "a-0123456789")],
    );
    let get = |key: Option<&str>, method: &str, path: &str| {
        let h: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        http_with(&addr, method, path, "", &h).unwrap().0
    };
    assert_eq!(get(None, "GET", "/v1/popular"), 401);
    assert_eq!(get(Some("r-0123456789"), "GET", "/v1/popular"), 200);
    assert_eq!(get(Some("r-0123456789"), "DELETE", "/v1/users/seed"), 403);
    assert_eq!(get(Some("a-0123456789"), "GET", "/v1/admin/models"), 200);
    assert_eq!(get(None, "GET", "/healthz"), 200);
    server.kill().unwrap();
    server.wait().unwrap();
}
