//! `aisle link`: identity links from a file, each line linked, already
//! linked, refused or malformed with its reason; training then reads an
//! alias's events as its user's.

use crate::{json, ok, run};
use aisle_core::{Event, EventType};

fn view(key: u64, user: &str, item: &str, ts: i64) -> Event {
    Event {
        key,
        user: user.into(),
        item: item.into(),
        ts,
        event_type: EventType::View,
        source_type: "view".into(),
        quantity: None,
        price: None,
        session: None,
        value: None,
    }
}

#[test]
fn a_links_file_is_linked_line_by_line_and_training_sees_one_history() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("store");
    let st = st.to_str().unwrap();
    let mut store = aisle_store::open(st).unwrap();
    store
        .append(&[
            view(1, "anon-1", "a", 10),
            view(2, "alice", "b", 20),
            view(3, "phone-9", "c", 30),
            view(4, "bob", "d", 5),
        ])
        .unwrap();
    drop(store);
    let links = tmp.path().join("links.csv");
    std::fs::write(
        &links,
        "user_id,alias\nalice,anon-1\nalice,phone-9\nbob,anon-1\nbob,bob\nonly-one-field\n",
    )
    .unwrap();
    let input = links.to_str().unwrap();
    let link = || json(&ok(&["link", "--store", st, "--input", input, "--json"]));
    let r = link();
    assert_eq!(
        (&r["lines"], &r["linked"], &r["refused"], &r["malformed"]),
        (&5.into(), &2.into(), &2.into(), &1.into()),
        "{r}"
    );
    assert_eq!(
        r["reasons"]["refused: alias linked to another user"], 1,
        "{r}"
    );
    assert_eq!(r["reasons"]["refused: alias is the user"], 1, "{r}");
    assert_eq!(r["examples"][0][0], 4, "{r}");
    // Again: nothing new.
    let r = link();
    assert_eq!(
        (&r["linked"], &r["already_linked"]),
        (&0.into(), &2.into()),
        "{r}"
    );
    // Training reads the three ids as one shopper, in time order.
    let data = aisle_train::StoreData::load(st).unwrap();
    let alice = data.seqs.users.iter().position(|u| u == "alice").unwrap();
    let items: Vec<&str> = data.seqs.seqs[alice]
        .iter()
        .map(|&i| data.seqs.items[i as usize].as_str())
        .collect();
    assert_eq!(items, ["a", "b", "c"]);
    assert_eq!(data.seqs.users.len(), 2, "{:?}", data.seqs.users);
    // A missing file is an error that names it.
    let (code, _, err) = run(&["link", "--store", st, "--input", "/nonexistent/links.csv"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/links.csv"), "{err}");
}
