//! The feedback loop with real training: `aisle train --promote-if-better`
//! and the server's retraining scheduler running it after new events.

use std::time::Duration;

use crate::{http, json, ok};

#[test]
fn new_events_retrain_evaluate_and_hot_swap() {
    let tmp = tempfile::tempdir().unwrap();
    let store = crate::small_demo(&tmp.path().join("shop"));
    let st = store.to_str().unwrap();
    let promoted = || std::fs::read_to_string(store.join("models/PROMOTED")).unwrap();
    let first = promoted();

    // By hand: a candidate judged against the serving version on the newest hold-out.
    let out = json(&ok(&[
        "train",
        "--store",
        st,
        "--model",
        "gru4rec",
        "--time-budget",
        "1",
        "--set",
        "max_len=20",
        "--promote-if-better",
    ]));
    let decision = &out["decision"];
    let (c, s) = (
        decision["candidate"]["ndcg10"].as_f64().unwrap(),
        decision["serving"]["ndcg10"].as_f64().unwrap(),
    );
    assert_eq!(
        decision["serving"]["version"].as_str().unwrap(),
        first.trim()
    );
    assert!(
        decision["candidate"]["users"].as_u64().unwrap() > 250,
        "{decision}"
    );
    let want = if c + 1e-9 >= s { "promoted" } else { "kept" };
    assert_eq!(decision["action"], want, "{decision}");
    let serving_now = promoted();
    assert_eq!(
        serving_now.trim() == first.trim(),
        want == "kept",
        "PROMOTED does not follow the decision"
    );

    // The scheduler: 20 new events start a low-priority run of the same command.
    let (mut server, addr) = crate::start_server(
        st,
        &[
            "--retrain-model",
            "sasrec",
            "--retrain-budget",
            "1",
            "--retrain-set",
            "max_len=20",
            "--retrain-after-events",
            "20",
        ],
        &[],
    );
    let events: Vec<String> = (0..20)
        .map(|k| {
            format!(
                r#"{{"user_id":"u{:05}","item_id":"P1{:04}","type":"view"}}"#,
                k + 1,
                k
            )
        })
        .collect();
    let (status, body) = crate::post_events(&addr, &events);
    assert_eq!(status, 200, "{body}");
    let mut job = serde_json::Value::Null;
    for _ in 0..1200 {
        std::thread::sleep(Duration::from_millis(100));
        let (_, body) = http(&addr, "GET", "/v1/admin/jobs", "").unwrap();
        let v = json(&body);
        if let Some(j) = v["jobs"]
            .as_array()
            .unwrap()
            .first()
            .filter(|j| j["status"] != "running")
        {
            job = j.clone();
            break;
        }
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        (job["trigger"].as_str(), job["new_events"].as_u64()),
        (Some("events"), Some(20))
    );
    let action = job["decision"].as_str().unwrap().to_string();
    assert!(action == "promoted" || action == "kept", "{job}");
    // The server serves whatever is promoted now.
    let (_, body) = http(&addr, "GET", "/readyz", "").unwrap();
    assert_eq!(
        json(&body)["model"]["version"].as_str().unwrap(),
        promoted().trim(),
        "{job}"
    );
    if action == "kept" {
        assert_eq!(promoted(), serving_now);
    }
    // Graceful shutdown: SIGTERM, exit 0.
    let pid = server.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
}
