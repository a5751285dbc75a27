//! Experiments: what is refused, and how users are assigned to arms.

use aisle_experiment::spec::bucket;
use aisle_experiment::{ArmSpec, ExperimentError, ExperimentSpec, Metric, Mode, Surface};

fn arm(name: &str, traffic: f64) -> ArmSpec {
    ArmSpec {
        name: name.into(),
        model: "pop".into(),
        traffic,
    }
}

fn spec(mode: Mode, arms: Vec<ArmSpec>) -> ExperimentSpec {
    ExperimentSpec {
        name: "exp-1".into(),
        surface: Surface::Recommendations,
        mode,
        arms,
        salt: String::new(),
        primary_metric: Metric::Ctr,
        min_detectable_lift: 0.05,
    }
}

fn refusal(s: ExperimentSpec) -> String {
    match s.validate() {
        Err(ExperimentError::InvalidSpec(why)) => why,
        Ok(s) => panic!("accepted {s:?}"),
    }
}

#[test]
fn a_split_that_does_not_sum_to_100_is_refused() {
    let why = refusal(spec(Mode::Ab, vec![arm("a", 50.0), arm("b", 40.0)]));
    assert!(why.contains("sums to 90"), "{why}");
}

#[test]
fn a_negative_or_non_numeric_share_is_refused() {
    assert!(refusal(spec(Mode::Ab, vec![arm("a", 120.0), arm("b", -20.0)])).contains("negative"));
    assert!(refusal(spec(Mode::Ab, vec![arm("a", f64::NAN), arm("b", 50.0)])).contains("negative"));
}

#[test]
fn one_arm_or_duplicate_arm_names_are_refused() {
    assert!(refusal(spec(Mode::Ab, vec![arm("a", 100.0)])).contains("two arms"));
    assert!(
        refusal(spec(Mode::Ab, vec![arm("a", 50.0), arm("a", 50.0)]))
            .contains("two arms are named")
    );
}

#[test]
fn interleaving_takes_exactly_two_arms_and_reads_preference() {
    let three = vec![arm("a", 0.0), arm("b", 0.0), arm("c", 0.0)];
    assert!(refusal(spec(Mode::Interleave, three)).contains("exactly two"));
    let ok = spec(Mode::Interleave, vec![arm("a", 0.0), arm("b", 0.0)])
        .validate()
        .unwrap();
    assert_eq!(ok.primary_metric, Metric::Preference);
}

#[test]
fn a_name_that_cannot_be_a_path_segment_is_refused() {
    let mut s = spec(Mode::Ab, vec![arm("a", 50.0), arm("b", 50.0)]);
    s.name = "../x".into();
    assert!(refusal(s).contains("name"));
}

#[test]
fn the_salt_defaults_to_the_name() {
    let s = spec(Mode::Ab, vec![arm("a", 50.0), arm("b", 50.0)])
        .validate()
        .unwrap();
    assert_eq!(s.salt, "exp-1");
}

#[test]
fn unknown_fields_in_a_request_are_refused() {
    let body = r#"{"name":"x","surface":"search","mode":"ab","arms":[],"colour":"red"}"#;
    assert!(serde_json::from_str::<ExperimentSpec>(body).is_err());
    let body = r#"{"name":"x","surface":"homepage","mode":"ab","arms":[]}"#;
    assert!(serde_json::from_str::<ExperimentSpec>(body).is_err());
}

#[test]
fn the_assignment_hash_never_changes() {
    // Assignments must survive restarts, upgrades and replicas: these
    // buckets are what every running experiment has already shown.
    assert_eq!(
        [
            bucket("exp-1", "u00001"),
            bucket("exp-1", "u00002"),
            bucket("salt", "u00001")
        ],
        [5107, 1595, 6042]
    );
}

#[test]
fn two_replicas_assign_every_user_alike() {
    let a = spec(Mode::Ab, vec![arm("a", 30.0), arm("b", 70.0)])
        .validate()
        .unwrap();
    let b = a.clone();
    assert!((0..10_000)
        .map(|u| format!("user-{u}"))
        .all(|u| a.assign(&u) == b.assign(&u)));
}

#[test]
fn users_split_as_the_traffic_says() {
    let s = spec(
        Mode::Ab,
        vec![arm("a", 20.0), arm("b", 30.0), arm("c", 50.0)],
    )
    .validate()
    .unwrap();
    let mut counts = [0u32; 3];
    for u in 0..100_000 {
        counts[s.assign(&format!("user-{u}"))] += 1;
    }
    for (c, share) in counts.iter().zip([0.2, 0.3, 0.5]) {
        let got = *c as f64 / 100_000.0;
        assert!((got - share).abs() < 0.006, "{counts:?}");
    }
}

#[test]
fn a_new_salt_reshuffles_users() {
    let a = spec(Mode::Ab, vec![arm("a", 50.0), arm("b", 50.0)])
        .validate()
        .unwrap();
    let mut b = a.clone();
    b.salt = "another".into();
    let same = (0..10_000)
        .map(|u| format!("user-{u}"))
        .filter(|u| a.assign(u) == b.assign(u))
        .count();
    assert!((4_700..5_300).contains(&same), "{same}");
}
