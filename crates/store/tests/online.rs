//! The online log: attribution rules, experiment bookkeeping, the rows an
//! experiment report reads, retention and erasure.

use aisle_experiment::{ArmSpec, ExperimentSpec, Metric, Mode, Surface, Team};
use aisle_store::online::{
    pack_items, unpack_items, Attribution, ExperimentConflict, Impression, OnlineLog, Outcome,
    OutcomeKind, Shown, DAY_MS, WINDOW_LISTS,
};

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;
const WINDOW: i64 = 24 * HOUR;

/// Runs a case on each backend: SQLite (in memory), then PostgreSQL (a
/// scratch database).
fn each(case: impl Fn(OnlineLog)) {
    case(OnlineLog::open_memory().unwrap());
    let db = aisle_store::pg::ScratchDb::new();
    eprintln!("the same case over PostgreSQL");
    case(OnlineLog::open_postgres(&db.url).unwrap());
}

fn list(rid: u64, ts_ms: i64, user: &str, items: &[&str]) -> Impression {
    Impression {
        rid,
        ts_ms,
        user: Some(user.into()),
        session: None,
        surface: "recommendations".into(),
        experiment: None,
        arm: None,
        model: "sasrec@v1".into(),
        query: None,
        events_seq: None,
        items: items
            .iter()
            .map(|i| Shown {
                item: i.to_string(),
                score: 1.0,
                propensity: None,
                team: None,
            })
            .collect(),
    }
}

fn outcome(key: u64, ts_ms: i64, user: &str, item: &str, kind: OutcomeKind) -> Outcome {
    Outcome {
        key,
        ts_ms,
        user: user.into(),
        item: item.into(),
        kind,
        value: if kind == OutcomeKind::Purchase {
            10.0
        } else {
            0.0
        },
        quantity: None,
        request_id: None,
        request_id_given: false,
        position: None,
    }
}

#[test]
fn a_request_id_joins_to_its_list_and_the_items_position() {
    each(|mut log| {
        log.log_impressions(&[list(7, T0, "u", &["a", "b", "c"])])
            .unwrap();
        let mut o = outcome(1, T0 + 1000, "u", "c", OutcomeKind::Click);
        o.request_id = Some(7);
        o.request_id_given = true;
        assert_eq!(
            log.attribute(&o, WINDOW).unwrap(),
            Attribution::Request {
                rid: 7,
                position: Some(3)
            }
        );
    });
}

#[test]
fn without_a_request_id_the_latest_list_in_the_window_gets_the_credit() {
    each(|mut log| {
        log.log_impressions(&[
            list(1, T0, "u", &["a", "b"]),
            list(2, T0 + HOUR, "u", &["c", "a"]),
            list(3, T0 + 2 * HOUR, "v", &["a"]),
        ])
        .unwrap();
        let o = outcome(1, T0 + 3 * HOUR, "u", "a", OutcomeKind::Purchase);
        assert_eq!(
            log.attribute(&o, WINDOW).unwrap(),
            Attribution::Window {
                rid: 2,
                position: 2
            }
        );
    });
}

#[test]
fn a_list_older_than_the_window_gets_no_credit() {
    each(|mut log| {
        log.log_impressions(&[list(1, T0, "u", &["a"])]).unwrap();
        let late = outcome(1, T0 + WINDOW + HOUR, "u", "a", OutcomeKind::Cart);
        assert_eq!(log.attribute(&late, WINDOW).unwrap(), Attribution::None);
        // Kept all the same: counted as unattributed.
        assert_eq!(log.counts().unwrap().2, 1);
    });
}

#[test]
fn an_outcome_a_little_before_its_list_still_joins_it_clock_skew() {
    each(|mut log| {
        log.log_impressions(&[list(1, T0, "u", &["a"])]).unwrap();
        let early = outcome(1, T0 - 500, "u", "a", OutcomeKind::Click);
        assert_eq!(
            log.attribute(&early, WINDOW).unwrap(),
            Attribution::Window {
                rid: 1,
                position: 1
            }
        );
    });
}

#[test]
fn a_request_id_never_issued_is_unattributed_and_a_retried_event_counts_once() {
    each(|mut log| {
        let mut o = outcome(9, T0, "u", "a", OutcomeKind::Click);
        o.request_id = Some(12345);
        o.request_id_given = true;
        assert_eq!(
            log.attribute(&o, WINDOW).unwrap(),
            Attribution::UnknownRequest
        );
        assert_eq!(log.attribute(&o, WINDOW).unwrap(), Attribution::Duplicate);
        assert_eq!(log.counts().unwrap().2, 1);
    });
}

fn spec(name: &str, surface: Surface) -> ExperimentSpec {
    ExperimentSpec {
        name: name.into(),
        surface,
        mode: Mode::Ab,
        arms: vec![
            ArmSpec {
                name: "a".into(),
                model: "pop".into(),
                traffic: 50.0,
            },
            ArmSpec {
                name: "b".into(),
                model: "promoted".into(),
                traffic: 50.0,
            },
        ],
        salt: String::new(),
        primary_metric: Metric::Ctr,
        min_detectable_lift: 0.05,
    }
    .validate()
    .unwrap()
}

#[test]
fn one_running_experiment_per_surface_and_names_are_unique() {
    each(|mut log| {
        assert!(log
            .create_experiment(&spec("x", Surface::Search), T0)
            .unwrap()
            .is_ok());
        assert!(log
            .create_experiment(&spec("y", Surface::Recommendations), T0)
            .unwrap()
            .is_ok());
        assert!(matches!(
            log.create_experiment(&spec("z", Surface::Search), T0)
                .unwrap(),
            Err(ExperimentConflict::SurfaceBusy { .. })
        ));
        assert!(matches!(
            log.create_experiment(&spec("x", Surface::Similar), T0)
                .unwrap(),
            Err(ExperimentConflict::Exists(_))
        ));
        let stopped = log.stop_experiment("x", T0 + 5).unwrap().unwrap();
        assert_eq!(stopped.stopped_ms, Some(T0 + 5));
        assert!(log
            .create_experiment(&spec("z", Surface::Search), T0 + 6)
            .unwrap()
            .is_ok());
        assert_eq!(
            log.stop_experiment("nope", T0).unwrap(),
            Err(ExperimentConflict::Unknown("nope".into()))
        );
        let names: Vec<String> = log
            .experiments()
            .unwrap()
            .into_iter()
            .map(|r| r.spec.name)
            .collect();
        assert_eq!(names, ["x", "y", "z"]);
    });
}

#[test]
fn experiment_rows_are_per_user_arm_and_day_with_the_pre_period() {
    each(|mut log| {
        let rec = log
            .create_experiment(&spec("e", Surface::Recommendations), T0)
            .unwrap()
            .unwrap();
        // Before the experiment, u1 bought once (the pre-period).
        log.attribute(
            &outcome(100, T0 - DAY_MS, "u1", "z", OutcomeKind::Purchase),
            WINDOW,
        )
        .unwrap();
        let mut shown = |rid: u64, ts: i64, user: &str, arm: &str| {
            let mut l = list(rid, ts, user, &["a", "b"]);
            l.experiment = Some("e".into());
            l.arm = Some(arm.into());
            log.log_impressions(&[l]).unwrap();
        };
        shown(1, T0 + HOUR, "u1", "a");
        shown(2, T0 + 2 * HOUR, "u1", "a");
        shown(3, T0 + DAY_MS + HOUR, "u1", "a");
        shown(4, T0 + HOUR, "u2", "b");
        let mut click = outcome(1, T0 + 2 * HOUR, "u2", "b", OutcomeKind::Click);
        click.request_id = Some(4);
        click.request_id_given = true;
        log.attribute(&click, WINDOW).unwrap();
        log.attribute(
            &outcome(2, T0 + DAY_MS + 2 * HOUR, "u1", "a", OutcomeKind::Purchase),
            WINDOW,
        )
        .unwrap();
        let data = log.experiment_data(&rec).unwrap();
        let mut cells: Vec<(u32, u16, u32, u64, u64, u64)> = data
            .rows
            .iter()
            .map(|r| (r.day, r.arm, r.user, r.impressions, r.clicks, r.purchases))
            .collect();
        // (The rows' order is the log's; the report does not depend on it.)
        cells.sort();
        // Users are numbered as met: u1 = 0, u2 = 1.
        assert_eq!(
            cells,
            [(0, 0, 0, 2, 0, 0), (0, 1, 1, 1, 1, 0), (1, 0, 0, 1, 0, 1)]
        );
        assert_eq!(data.pre[0].purchases, 1.0);
        assert_eq!(data.pre[0].gmv, 10.0);
        assert_eq!(data.pre[1].purchases, 0.0);
    });
}

#[test]
fn interleaved_clicks_carry_the_team_of_the_clicked_position() {
    each(|mut log| {
        let mut s = spec("il", Surface::Recommendations);
        s.mode = Mode::Interleave;
        let rec = log
            .create_experiment(&s.validate().unwrap(), T0)
            .unwrap()
            .unwrap();
        let mut l = list(1, T0 + 1, "u", &["a", "b", "c"]);
        l.experiment = Some("il".into());
        l.arm = Some("interleaved".into());
        for (shown, team) in l.items.iter_mut().zip([Team::Neutral, Team::B, Team::A]) {
            shown.team = Some(team);
        }
        log.log_impressions(&[l]).unwrap();
        for (key, item) in [(1, "b"), (2, "a")] {
            let mut o = outcome(key, T0 + 2, "u", item, OutcomeKind::Click);
            o.request_id = Some(1);
            o.request_id_given = true;
            log.attribute(&o, WINDOW).unwrap();
        }
        let data = log.experiment_data(&rec).unwrap();
        assert_eq!(data.rows.len(), 1);
        assert_eq!((data.rows[0].credit.a, data.rows[0].credit.b), (0, 1));
    });
}

#[test]
fn retention_drops_old_lists_and_their_outcomes() {
    each(|mut log| {
        log.log_impressions(&[
            list(1, T0, "u", &["a"]),
            list(2, T0 + 10 * DAY_MS, "u", &["b"]),
        ])
        .unwrap();
        log.attribute(&outcome(1, T0 + 1, "u", "a", OutcomeKind::Click), WINDOW)
            .unwrap();
        assert_eq!(log.prune(T0 + DAY_MS).unwrap(), 1);
        assert_eq!(log.counts().unwrap(), (1, 1, 0));
        assert!(log.impression(1).unwrap().is_none());
        assert!(log.impression(2).unwrap().is_some());
    });
}

#[test]
fn erasure_removes_a_users_lists_and_outcomes_only() {
    each(|mut log| {
        log.log_impressions(&[list(1, T0, "u", &["a"]), list(2, T0, "v", &["a"])])
            .unwrap();
        log.attribute(&outcome(1, T0 + 1, "u", "a", OutcomeKind::Click), WINDOW)
            .unwrap();
        assert_eq!(log.erase_user("u").unwrap(), 1);
        assert_eq!(log.counts().unwrap(), (1, 1, 0));
        assert!(log.impression(2).unwrap().is_some());
    });
}

#[test]
fn kpis_add_up_over_surfaces_and_positions() {
    each(|mut log| {
        let mut search = list(3, T0, "u", &[]);
        search.surface = "search".into();
        log.log_impressions(&[
            list(1, T0, "u", &["a", "b"]),
            list(2, T0, "v", &["b", "c"]),
            search,
        ])
        .unwrap();
        for (key, user, item) in [(1, "u", "b"), (2, "v", "b")] {
            log.attribute(
                &outcome(key, T0 + 1, user, item, OutcomeKind::Click),
                WINDOW,
            )
            .unwrap();
        }
        log.attribute(&outcome(3, T0 + 2, "v", "b", OutcomeKind::Purchase), WINDOW)
            .unwrap();
        log.attribute(&outcome(4, T0 + 2, "w", "q", OutcomeKind::Purchase), WINDOW)
            .unwrap();
        let k = log.kpis(T0 - 1, T0 + HOUR, None).unwrap();
        assert_eq!(
            (k.impressions, k.users, k.clicks, k.purchases),
            (3, 2, 2, 1)
        );
        assert_eq!(k.ctr_by_position, [0.5, 0.5]);
        assert_eq!(
            (k.attributed_gmv, k.total_gmv, k.unattributed),
            (10.0, 20.0, 1)
        );
        assert_eq!(k.zero_result_rate, Some(1.0));
        let recs = log
            .kpis(T0 - 1, T0 + HOUR, Some("recommendations"))
            .unwrap();
        assert_eq!((recs.impressions, recs.zero_result_rate), (2, None));
        // The search surface (read through its own index) counts its one empty list.
        let searches = log.kpis(T0 - 1, T0 + HOUR, Some("search")).unwrap();
        assert_eq!(
            (
                searches.impressions,
                searches.users,
                searches.zero_result_rate
            ),
            (1, 1, Some(1.0))
        );
        assert!(searches.ctr_by_position.is_empty());
    });
}

#[test]
fn experiments_change_through_one_connection_while_another_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.db");
    two_connections(
        OnlineLog::open(&path).unwrap(),
        OnlineLog::open(&path).unwrap(),
    );
    let db = aisle_store::pg::ScratchDb::new();
    two_connections(
        OnlineLog::open_postgres(&db.url).unwrap(),
        OnlineLog::open_postgres(&db.url).unwrap(),
    );
}

fn two_connections(mut writer: OnlineLog, mut admin: OnlineLog) {
    writer.log_impressions(&[list(1, T0, "u", &["a"])]).unwrap();
    admin
        .create_experiment(&spec("one", Surface::Recommendations), T0)
        .unwrap()
        .unwrap();
    assert!(admin
        .create_experiment(&spec("two", Surface::Recommendations), T0)
        .unwrap()
        .is_err());
    writer.log_impressions(&[list(2, T0, "u", &["a"])]).unwrap();
    admin.stop_experiment("one", T0 + 1).unwrap().unwrap();
    assert!(admin
        .create_experiment(&spec("one", Surface::Recommendations), T0)
        .unwrap()
        .is_err());
    writer.log_impressions(&[list(3, T0, "u", &["a"])]).unwrap();
    admin
        .create_experiment(&spec("two", Surface::Recommendations), T0 + 2)
        .unwrap()
        .unwrap();
}

#[test]
fn of_two_lists_in_the_same_millisecond_the_later_one_gets_the_credit() {
    each(|mut log| {
        for (u, order) in [("u", [5u64, 9]), ("v", [19, 15])] {
            log.log_impressions(&[list(order[0], T0, u, &["a"])])
                .unwrap();
            log.log_impressions(&[list(order[1], T0, u, &["a"])])
                .unwrap();
            let o = outcome(order[0], T0 + 10, u, "a", OutcomeKind::Click);
            assert_eq!(
                log.attribute(&o, WINDOW).unwrap(),
                Attribution::Window {
                    rid: order[1],
                    position: 1
                }
            );
        }
    });
}

#[test]
fn a_lists_items_pack_and_unpack_whole_with_propensities_and_teams() {
    let long = "x".repeat(300);
    let items = vec![
        Shown {
            item: "a".into(),
            score: 0.5,
            propensity: Some(0.96),
            team: Some(Team::A),
        },
        Shown {
            item: "chaussure-été".into(),
            score: -1.25,
            propensity: None,
            team: Some(Team::Neutral),
        },
        Shown {
            item: long,
            score: 3.0,
            propensity: Some(0.0008),
            team: None,
        },
        Shown {
            item: String::new(),
            score: 0.0,
            propensity: None,
            team: Some(Team::B),
        },
    ];
    let packed = pack_items(&items);
    assert_eq!(unpack_items(&packed), items);
    // A damaged blob gives its whole items and stops.
    assert_eq!(unpack_items(&packed[..packed.len() - 1]), items[..3]);
    assert!(unpack_items(&[]).is_empty());
}

#[test]
fn last_touch_looks_through_at_most_the_latest_window_lists() {
    each(|mut log| {
        let mut lists = vec![list(1, T0, "u", &["a"])];
        for i in 0..WINDOW_LISTS as u64 {
            lists.push(list(2 + i, T0 + 1 + i as i64, "u", &["b"]));
        }
        log.log_impressions(&lists).unwrap();
        let late = T0 + WINDOW_LISTS + 10;
        assert_eq!(
            log.attribute(&outcome(1, late, "u", "a", OutcomeKind::Click), WINDOW)
                .unwrap(),
            Attribution::None,
            "the list that showed `a` is older than the latest {WINDOW_LISTS}"
        );
        assert_eq!(
            log.attribute(&outcome(2, late, "u", "b", OutcomeKind::Click), WINDOW)
                .unwrap(),
            Attribution::Window {
                rid: 1 + WINDOW_LISTS as u64,
                position: 1
            }
        );
    });
}

#[test]
fn a_log_with_a_row_per_shown_item_is_moved_into_packed_lists_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.db");
    {
        // The layout before packed items.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE impressions(rid INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, user TEXT,
               session TEXT, surface TEXT NOT NULL, experiment TEXT, arm TEXT, model TEXT NOT NULL,
               query TEXT, n INTEGER NOT NULL, seq INTEGER NOT NULL);
             CREATE INDEX impressions_user ON impressions(user);
             CREATE TABLE shown(rid INTEGER NOT NULL, pos INTEGER NOT NULL, item TEXT NOT NULL,
               score REAL, propensity REAL, team INTEGER, user TEXT, ts_ms INTEGER NOT NULL,
               seq INTEGER NOT NULL, PRIMARY KEY(rid, pos)) WITHOUT ROWID;
             INSERT INTO impressions VALUES(7, 1800000000000, 'u', NULL, 'recommendations',
               NULL, NULL, 'm@v', NULL, 2, 1);
             INSERT INTO shown VALUES(7, 2, 'b', 0.5, 0.25, NULL, 'u', 1800000000000, 1);
             INSERT INTO shown VALUES(7, 1, 'a', 0.75, 0.5, 1, 'u', 1800000000000, 1);",
        )
        .unwrap();
    }
    let mut log = OnlineLog::open(&path).unwrap();
    let imp = log.impression(7).unwrap().expect("kept");
    assert_eq!(
        imp.items,
        vec![
            Shown {
                item: "a".into(),
                score: 0.75,
                propensity: Some(0.5),
                team: Some(Team::B),
            },
            Shown {
                item: "b".into(),
                score: 0.5,
                propensity: Some(0.25),
                team: None,
            },
        ]
    );
    assert_eq!(
        log.attribute(&outcome(1, T0 + 5, "u", "b", OutcomeKind::Click), WINDOW)
            .unwrap(),
        Attribution::Window {
            rid: 7,
            position: 2
        }
    );
    let c = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'shown'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the per-item table is gone");
}

#[test]
fn over_postgres_two_processes_share_one_log() {
    let db = aisle_store::pg::ScratchDb::new();
    let mut a = OnlineLog::open_postgres(&db.url).unwrap();
    let mut b = OnlineLog::open_postgres(&db.url).unwrap();
    assert!(a.shared());
    // A list shown by one process is joined by the other.
    a.log_impressions(&[list(7, T0, "u", &["x", "y"])]).unwrap();
    let mut o = outcome(1, T0 + 5, "u", "y", OutcomeKind::Click);
    o.request_id = Some(7);
    o.request_id_given = true;
    assert_eq!(
        b.attribute(&o, WINDOW).unwrap(),
        Attribution::Request {
            rid: 7,
            position: Some(2)
        }
    );
    // The same event retried through the first process is one outcome.
    assert_eq!(a.attribute(&o, WINDOW).unwrap(), Attribution::Duplicate);
    assert_eq!(a.counts().unwrap(), (1, 2, 1));
    assert_eq!(b.outcomes_of(7).unwrap().len(), 1);
}

#[test]
fn over_postgres_an_outcome_joins_a_list_of_its_own_group_commit() {
    let db = aisle_store::pg::ScratchDb::new();
    let mut log = OnlineLog::open_postgres(&db.url).unwrap();
    let how = log
        .batch(|t| {
            t.log_impression(&list(8, T0, "w", &["z"]))?;
            t.attribute(&outcome(2, T0 + 1, "w", "z", OutcomeKind::Click), WINDOW)
        })
        .unwrap();
    assert_eq!(
        how,
        Attribution::Window {
            rid: 8,
            position: 1
        }
    );
    // A failed group commit stores none of it.
    let failed = log.batch(|t| {
        t.log_impression(&list(9, T0, "w", &["z"]))?;
        Err::<(), _>(aisle_store::StoreError::Corrupt("stop".into()))
    });
    assert!(failed.is_err());
    assert!(log.impression(9).unwrap().is_none());
    assert_eq!(log.counts().unwrap(), (1, 1, 1));
}

#[test]
fn a_log_copies_into_postgres_and_back_with_nothing_lost_and_again_adds_nothing() {
    let mut lite = OnlineLog::open_memory().unwrap();
    let rec = lite
        .create_experiment(&spec("e", Surface::Recommendations), T0)
        .unwrap()
        .unwrap();
    let mut shown = list(1, T0 + HOUR, "u1", &["a", "b"]);
    shown.experiment = Some("e".into());
    shown.arm = Some("a".into());
    shown.items[1].propensity = Some(0.25);
    shown.items[1].team = Some(Team::B);
    let mut other = list(2, T0 + 2 * HOUR, "u2", &["c"]);
    other.query = Some("tea".into());
    other.surface = "search".into();
    other.events_seq = Some(41);
    lite.log_impressions(&[shown.clone(), other.clone()])
        .unwrap();
    let mut click = outcome(u64::MAX - 3, T0 + 2 * HOUR, "u1", "b", OutcomeKind::Click);
    click.request_id = Some(1);
    click.request_id_given = true;
    lite.attribute(&click, WINDOW).unwrap();
    lite.attribute(
        &outcome(7, T0 + 3 * HOUR, "u2", "c", OutcomeKind::Purchase),
        WINDOW,
    )
    .unwrap();
    lite.attribute(
        &outcome(8, T0 + 3 * HOUR, "u3", "x", OutcomeKind::Cart),
        WINDOW,
    )
    .unwrap();
    let db = aisle_store::pg::ScratchDb::new();
    let mut pg = OnlineLog::open_postgres(&db.url).unwrap();
    let r = aisle_store::online::copy_log(&lite, &mut pg).unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(r.source, [2, 3, 3, 1]);
    // Row for row: the lists, the joins, the experiment and its report.
    for l in [&shown, &other] {
        assert_eq!(pg.impression(l.rid).unwrap().as_ref(), Some(l));
    }
    assert_eq!(pg.outcomes_of(1).unwrap(), lite.outcomes_of(1).unwrap());
    assert_eq!(pg.outcomes_of(2).unwrap(), lite.outcomes_of(2).unwrap());
    assert_eq!(pg.experiments().unwrap(), lite.experiments().unwrap());
    let (a, b) = (
        lite.experiment_data(&rec).unwrap(),
        pg.experiment_data(&rec).unwrap(),
    );
    assert_eq!((a.rows, a.pre), (b.rows, b.pre));
    assert_eq!(
        lite.kpis(T0, T0 + DAY_MS, None).unwrap(),
        pg.kpis(T0, T0 + DAY_MS, None).unwrap()
    );
    // Again: nothing added.
    let again = aisle_store::online::copy_log(&lite, &mut pg).unwrap();
    assert!(again.complete(), "{again:?}");
    // And back into an empty SQLite log.
    let mut back = OnlineLog::open_memory().unwrap();
    let r = aisle_store::online::copy_log(&pg, &mut back).unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(back.impression(1).unwrap().as_ref(), Some(&shown));
}
