//! End-to-end tests of the `aisle` binary: one test binary, a module per area.
//! The dataset tests read ../shared/data (AISLE_DATA_DIR overrides).

mod architecture;
mod bad_input;
mod bench;
mod config;
mod datasets;
mod demo;
mod durability;
mod keys;
mod kinds;
mod links;
mod postgres;
mod ranking;
mod retrain;
mod shop_data;
mod shops;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub fn aisle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aisle"))
}

/// Starts `aisle serve --store STORE --addr ADDR EXTRA...` (output discarded)
/// on a port the system has just handed out (a port derived from the
/// process id let two tests meet on one port and one test talk to the
/// other's server), with `env` set, and waits up to 30 s for /healthz from
/// this child. Returns the child (kill it) and the address.
pub fn start_server(store: &str, extra: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = aisle();
    cmd.args(["serve", "--store", store, "--addr", &addr])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let up = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        // A child that exited (the port taken after all) is not up.
        child.try_wait().unwrap().is_none()
            && http(&addr, "GET", "/healthz", "").is_some_and(|r| r.0 == 200)
    });
    assert!(up, "server did not come up on {addr} (args {extra:?})");
    (child, addr)
}

/// An empty store (created by `aisle append` with no input) in `dir/s`;
/// returns its path.
pub fn empty_store(dir: &std::path::Path) -> String {
    let st = dir.join("s").display().to_string();
    let mut child = aisle()
        .args(["append", "--store", &st])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    child.wait().unwrap();
    st
}

/// Runs aisle with args; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = aisle().args(args).output().expect("run aisle");
    let (out, err) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(!err.contains("panicked"), "aisle panicked: {err}");
    (status.code().unwrap_or(-1), out, err)
}

/// Runs aisle and requires success.
pub fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "aisle {args:?} failed:\n{err}");
    out
}

pub fn data_dir() -> PathBuf {
    match std::env::var_os("AISLE_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

pub fn baselines_dir() -> PathBuf {
    data_dir().join("../baselines")
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// One raw HTTP/1.1 request; returns (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    http_with(addr, method, path, body, &[])
}

/// [`http`] with extra request headers.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    Some((status, body))
}

/// A small demo shop (300 users, 200 items, SASRec trained 2 s and
/// promoted) in `dir`; returns its store folder.
pub fn small_demo(dir: &std::path::Path) -> PathBuf {
    ok(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--users",
        "300",
        "--items",
        "200",
        "--train-seconds",
        "2",
        "--no-serve",
    ]);
    dir.join("store")
}

/// POSTs `events` (JSON objects) as one batch to /v1/events; (status, body).
pub fn post_events(addr: &str, events: &[String]) -> (u16, String) {
    http(
        addr,
        "POST",
        "/v1/events",
        &format!(r#"{{"events":[{}]}}"#, events.join(",")),
    )
    .expect("the server answers")
}
