//! Crash safety: an acknowledged event survives kill -9.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use crate::{aisle, json, ok};

#[test]
fn acknowledged_events_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let mut child = aisle()
        .args([
            "append",
            "--store",
            store.to_str().unwrap(),
            "--batch",
            "50",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut acks = BufReader::new(child.stdout.take().unwrap());
    let mut acked = 0u64;
    let mut sent = 0u64;
    let mut line = String::new();
    // Send batches and read their acks, then kill in the middle of a batch.
    for batch in 0..40 {
        for k in 0..50 {
            let n = batch * 50 + k;
            writeln!(stdin, r#"{{"user_id":"u{}","item_id":"i{}","type":"view","timestamp":1700000000,"event_id":"e{n}"}}"#, n % 7, n % 13).unwrap();
            sent += 1;
        }
        stdin.flush().unwrap();
        line.clear();
        acks.read_line(&mut line).unwrap();
        acked = line.trim().strip_prefix("ack ").unwrap().parse().unwrap();
    }
    // Half a batch that was never acknowledged.
    for k in 0..25 {
        writeln!(
            stdin,
            r#"{{"user_id":"x","item_id":"y","type":"view","event_id":"late{k}"}}"#
        )
        .unwrap();
    }
    stdin.flush().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(acked, 2_000);
    assert_eq!(sent, 2_000);
    let stats = json(&ok(&[
        "stats",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        stats["events"].as_u64().unwrap(),
        acked,
        "acknowledged events were lost"
    );

    // Replaying the same ids is idempotent; bad lines are rejected, not stored.
    let mut child = aisle()
        .args(["append", "--store", store.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, r#"{{"user_id":"u1","item_id":"i1","type":"view","timestamp":1700000000,"event_id":"e1"}}"#).unwrap();
        writeln!(
            stdin,
            r#"{{"user_id":"u1","item_id":"i1","type":"teleport"}}"#
        )
        .unwrap();
        writeln!(
            stdin,
            r#"{{"user_id":"u1","item_id":"i1","type":"view","timestamp":4102444800}}"#
        )
        .unwrap();
        writeln!(stdin, "not json").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rejected 3 lines"), "{err}");
    assert!(err.contains("unknown event type"), "{err}");
    let stats = json(&ok(&[
        "stats",
        "--store",
        store.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(stats["events"].as_u64().unwrap(), 2_000);
}

#[test]
fn events_acknowledged_by_the_server_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::empty_store(tmp.path());
    let st = store.as_str();
    let (mut server, addr) = crate::start_server(st, &[], &[]);
    let mut acked = 0;
    for b in 0..20 {
        let events: Vec<String> = (0..25)
            .map(|k| {
                format!(
                    r#"{{"user_id":"u{k}","item_id":"i{b}","type":"view","event_id":"s{b}-{k}"}}"#
                )
            })
            .collect();
        let (status, body) = crate::post_events(&addr, &events);
        assert_eq!(status, 200, "{body}");
        acked += json(&body)["inserted"].as_u64().unwrap();
    }
    server.kill().unwrap(); // SIGKILL right after the last acknowledgement
    server.wait().unwrap();
    let stats = json(&ok(&["stats", "--store", st, "--json"]));
    assert_eq!(acked, 500);
    assert_eq!(
        stats["events"].as_u64().unwrap(),
        acked,
        "acknowledged events were lost"
    );
}
