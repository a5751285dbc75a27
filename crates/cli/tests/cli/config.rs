//! `aisle serve --config FILE`: the layers (defaults < file < environment <
//! flags), the reference file, and bad files.

use crate::{empty_store, http_with, run, start_server};

#[test]
fn the_reference_file_lists_every_setting_of_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/SERVE.toml");
    let kept = std::fs::read_to_string(path).unwrap();
    let (code, printed, err) = run(&["serve", "--print-config"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        kept, printed,
        "crates/cli/SERVE.toml differs from the code: aisle serve --print-config > crates/cli/SERVE.toml"
    );
    // Every key in it is a setting a file may hold (commented out at its default).
    assert!(
        printed.contains("# (no default) rate-limit = PER_SECOND"),
        "{printed}"
    );
    assert!(printed.contains("# max-body-bytes = 1048576"), "{printed}");
    assert!(printed.contains("# role = \"all\""), "{printed}");
}

#[test]
fn the_environment_beats_the_file_and_a_flag_beats_both() {
    let tmp = tempfile::tempdir().unwrap();
    let st = empty_store(tmp.path());
    let file = tmp.path().join("aisle.toml");
    std::fs::write(
        &file,
        "read-key = \"file-read-0123\"\nadmin-key = \"file-admin-0123\"\nmax-body-bytes = 100\n",
    )
    .unwrap();
    let (mut server, addr) = start_server(
        &st,
        &[
            "--config",
            file.to_str().unwrap(),
            "--admin-key",
            "flag-admin-0123",
        ],
        &[("AISLE_READ_KEY", "env-read-0123")],
    );
    let call = |key: &str, method: &str, path: &str, body: &str| {
        http_with(&addr, method, path, body, &[("x-api-key", key)])
            .unwrap()
            .0
    };
    // The read key: the environment's, not the file's.
    assert_eq!(call("file-read-0123", "GET", "/v1/popular", ""), 401);
    assert_eq!(call("env-read-0123", "GET", "/v1/popular", ""), 200);
    // The admin key: the flag's, not the file's.
    assert_eq!(call("file-admin-0123", "GET", "/v1/admin/models", ""), 401);
    assert_eq!(call("flag-admin-0123", "GET", "/v1/admin/models", ""), 200);
    // The file's body limit holds where nothing overrides it.
    let big = format!(
        r#"{{"user_id":"u","item_id":"{}","type":"view"}}"#,
        "x".repeat(150)
    );
    assert_eq!(call("flag-admin-0123", "POST", "/v1/events", &big), 413);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_file_with_an_unknown_key_or_a_wrong_value_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let st = empty_store(tmp.path());
    for (text, want) in [
        ("rate-limt = 5\n", "unknown key `rate-limt`"),
        ("addr = [1, 2]\n", "takes one value"),
        ("role = \"boss\"\n", "invalid value 'boss'"),
        ("[table\n", "not valid TOML"),
    ] {
        let file = tmp.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = run(&["serve", "--store", &st, "--config", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
    let (code, _, err) = run(&["serve", "--store", &st, "--config", "/nonexistent.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the config file"), "{err}");
}
