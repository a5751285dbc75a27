//! The registry and the promotion decision.

use aisle_models::{fit, ModelConfig, TrainData};
use aisle_train::{Action, Artifact, Classical, Decision, Holdout, Model, Registry, TrainError};

fn pop_artifact(path: &std::path::Path) {
    let cfg = ModelConfig::default_for("pop").unwrap();
    let m = fit(
        &cfg,
        &TrainData::new(3, vec![vec![0, 1], vec![2]]),
        &|_, _| {},
    )
    .unwrap();
    let ids = vec!["a".into(), "b".into(), "c".into()];
    Artifact::new(Model::Classical(Classical::new(m, 3)), ids)
        .save(path)
        .unwrap();
}

fn holdout(ndcg10: f64) -> Holdout {
    Holdout {
        version: None,
        model: "pop".into(),
        ndcg10,
        recall10: 0.0,
        mrr10: 0.0,
        users: 10,
        items_unknown_to_model: 0,
        eval_s: 0.0,
    }
}

#[test]
fn promotions_are_logged_and_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(dir.path());
    std::fs::create_dir_all(reg.dir()).unwrap();
    for v in ["pop-1.safetensors", "pop-2.safetensors"] {
        pop_artifact(&reg.dir().join(v));
        reg.promote(v).unwrap();
    }
    assert_eq!(
        reg.promoted_name().unwrap().as_deref(),
        Some("pop-2.safetensors")
    );
    let list = reg.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].meta["items"], 3);
    assert_eq!(reg.rollback().unwrap(), "pop-1.safetensors");
    // Rolling back a rollback goes forward again.
    assert_eq!(reg.rollback().unwrap(), "pop-2.safetensors");
    let fresh = tempfile::tempdir().unwrap();
    let one = Registry::new(fresh.path());
    std::fs::create_dir_all(one.dir()).unwrap();
    pop_artifact(&one.dir().join("pop-1.safetensors"));
    one.promote("pop-1.safetensors").unwrap();
    assert!(matches!(
        one.rollback(),
        Err(TrainError::NoEarlierPromotion)
    ));
}

#[test]
fn what_does_not_load_or_lies_outside_is_not_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(dir.path());
    std::fs::create_dir_all(reg.dir()).unwrap();
    std::fs::write(reg.dir().join("bad.safetensors"), b"junk").unwrap();
    assert!(matches!(
        reg.promote("bad.safetensors"),
        Err(TrainError::NotPromotable { .. })
    ));
    assert!(matches!(
        reg.path_of("../x"),
        Err(TrainError::BadVersion(_))
    ));
    let outside = dir.path().join("elsewhere.safetensors");
    pop_artifact(&outside);
    assert!(matches!(
        reg.version_of(&outside),
        Err(TrainError::NotInRegistry { .. })
    ));
    assert_eq!(reg.promoted_name().unwrap(), None);
}

#[test]
fn a_candidate_is_promoted_unless_worse() {
    assert_eq!(
        Decision::compare(holdout(0.2), None).action,
        Action::Promoted
    );
    assert_eq!(
        Decision::compare(holdout(0.2), Some(holdout(0.2))).action,
        Action::Promoted
    );
    assert_eq!(
        Decision::compare(holdout(0.19), Some(holdout(0.2))).action,
        Action::Kept
    );
    let d = Decision::compare(holdout(0.3), Some(holdout(0.2)));
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["action"], "promoted");
    assert_eq!(v["metric"], "ndcg10");
    assert_eq!(serde_json::from_value::<Decision>(v).unwrap(), d);
}
