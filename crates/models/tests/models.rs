//! Every model on small deterministic data: it trains, ranks what the data
//! says it should, survives a round trip through its tensors, and rejects bad input.

use aisle_eval::Scorer;
use aisle_models::{fit, from_parts, ModelConfig, ModelError, TrainData, MODEL_NAMES};

/// Two clusters of items: users 0..20 buy from {0,1,2,3}, users 20..40 from
/// {4,5,6,7}; item 8 is bought by everyone (popular); item 9 by nobody.
fn clustered() -> TrainData {
    let mut seqs = Vec::new();
    for u in 0..40u32 {
        let base = if u < 20 { 0 } else { 4 };
        let mut s = vec![8];
        for k in 0..3 {
            s.push(base + (u + k) % 4);
        }
        seqs.push(s);
    }
    TrainData::new(10, seqs)
}

fn scores(m: &dyn Scorer, user: u32, hist: &[u32]) -> Vec<f32> {
    let mut out = vec![0f32; 10];
    m.score(user, hist, &mut out);
    out
}

fn cfg(name: &str, sets: &[(&str, &str)]) -> ModelConfig {
    let o: Vec<(String, String)> = sets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ModelConfig::default_for(name)
        .unwrap()
        .with_overrides(&o)
        .unwrap()
}

#[test]
fn personalised_models_prefer_the_users_cluster() {
    let data = clustered();
    for (name, sets) in [
        ("itemknn", vec![]),
        ("ease", vec![("lambda", "1.0")]),
        (
            "als",
            vec![("factors", "3"), ("iterations", "10"), ("reg", "1.0")],
        ),
        ("bpr", vec![("factors", "8"), ("epochs", "200")]),
        (
            "lightgcn",
            vec![
                ("factors", "8"),
                ("epochs", "100"),
                ("batch_size", "64"),
                ("lr", "0.02"),
            ],
        ),
    ] {
        let m = fit(&cfg(name, &sets), &data, &|_, _| {}).unwrap();
        // User 0 (cluster A) with history {8, 0, 1}: an unseen cluster-A item (3)
        // must outscore every cluster-B item.
        let s = scores(m.as_ref(), 0, &[8, 0, 1]);
        let best_b = (4..8).map(|i| s[i]).fold(f32::MIN, f32::max);
        assert!(s[3] > best_b, "{name}: {s:?}");
        let s = scores(m.as_ref(), 25, &[8, 5, 6]);
        let best_a = (0..4).map(|i| s[i]).fold(f32::MIN, f32::max);
        assert!((4..8).any(|i| s[i] > best_a), "{name}: {s:?}");
    }
}

#[test]
fn pop_and_repeat() {
    let data = clustered();
    let m = fit(&cfg("pop", &[]), &data, &|_, _| {}).unwrap();
    let s = scores(m.as_ref(), 0, &[]);
    assert_eq!(s[8], 40.0);
    assert_eq!(s[9], 0.0);
    let m = fit(&cfg("repeat", &[]), &data, &|_, _| {}).unwrap();
    assert!(!m.default_masking());
    let s = scores(m.as_ref(), 0, &[2, 3, 3]);
    // Recent and repeated items first, then popularity.
    assert!(s[3] > s[2] && s[2] > s[8] && s[8] > s[9]);
}

#[test]
fn ease_matches_the_closed_form_on_a_tiny_matrix() {
    // X (3 users x 3 items): rows {0,1}, {1,2}, {0,1,2}; lambda = 1.
    let data = TrainData::new(3, vec![vec![0, 1], vec![1, 2], vec![0, 1, 2]]);
    let m = fit(&cfg("ease", &[("lambda", "1.0")]), &data, &|_, _| {}).unwrap();
    // G = XᵀX + I = [[3,2,1],[2,4,2],[1,2,3]]; P = G⁻¹; B = -P/diag(P), diag 0.
    let g = [[3.0f64, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 3.0]];
    let det = g[0][0] * (g[1][1] * g[2][2] - g[1][2] * g[2][1])
        - g[0][1] * (g[1][0] * g[2][2] - g[1][2] * g[2][0])
        + g[0][2] * (g[1][0] * g[2][1] - g[1][1] * g[2][0]);
    let cof = |i: usize, j: usize| {
        let r: Vec<usize> = (0..3).filter(|&x| x != i).collect();
        let c: Vec<usize> = (0..3).filter(|&x| x != j).collect();
        let m = g[r[0]][c[0]] * g[r[1]][c[1]] - g[r[0]][c[1]] * g[r[1]][c[0]];
        if (i + j).is_multiple_of(2) {
            m
        } else {
            -m
        }
    };
    let p = |i: usize, j: usize| cof(j, i) / det;
    let mut out = vec![0f32; 3];
    m.score(0, &[0], &mut out);
    for (j, &got) in out.iter().enumerate() {
        let want = if j == 0 { 0.0 } else { -p(0, j) / p(j, j) };
        assert!(
            (got as f64 - want).abs() < 1e-4,
            "B[0][{j}] = {got} want {want}"
        );
    }
}

#[test]
fn parts_round_trip_and_a_missing_tensor_is_refused() {
    let data = clustered();
    for name in trained_here() {
        let c = match *name {
            "bpr" => cfg(name, &[("epochs", "3"), ("factors", "4")]),
            "als" => cfg(name, &[("iterations", "2"), ("factors", "4")]),
            "lightgcn" => cfg(name, &[("epochs", "2"), ("factors", "4")]),
            _ => cfg(name, &[]),
        };
        let m = fit(&c, &data, &|_, _| {}).unwrap();
        let parts = || -> std::collections::HashMap<_, _> {
            m.tensors()
                .into_iter()
                .map(|(n, s, v)| (n, (s, v)))
                .collect()
        };
        let back = from_parts(m.config(), parts()).unwrap();
        assert_eq!(back.kind(), *name);
        assert_eq!(back.config(), c);
        for (u, h) in [(0u32, vec![8u32, 0, 1]), (25, vec![5, 6]), (999, vec![0])] {
            assert_eq!(
                scores(m.as_ref(), u, &h),
                scores(back.as_ref(), u, &h),
                "{name} user {u}"
            );
        }
        let mut short = parts();
        let first = short.keys().next().unwrap().clone();
        short.remove(&first);
        assert!(matches!(
            from_parts(m.config(), short),
            Err(ModelError::Artifact(_))
        ));
    }
}

/// The kinds this crate trains (GAT is trained with burn by aisle-graph;
/// its parts round trip in aisle-train's artifact tests).
fn trained_here() -> impl Iterator<Item = &'static &'static str> {
    MODEL_NAMES.iter().filter(|n| **n != "gat")
}

#[test]
fn gat_is_named_here_and_trained_elsewhere() {
    let c = cfg("gat", &[("heads", "4")]);
    assert_eq!(c.name(), "gat");
    assert!(matches!(
        fit(&c, &clustered(), &|_, _| {}),
        Err(ModelError::BadConfig { message, .. }) if message.contains("aisle-graph")
    ));
    assert!(matches!(
        ModelConfig::default_for("gat")
            .unwrap()
            .with_overrides(&[("heads".into(), "5".into())]),
        Err(ModelError::BadConfig { .. })
    ));
}

#[test]
fn bad_hyperparameters_and_names() {
    assert!(matches!(
        ModelConfig::default_for("gpt"),
        Err(ModelError::UnknownModel(_))
    ));
    let als = ModelConfig::default_for("als").unwrap();
    let err = als
        .with_overrides(&[("factorz".into(), "8".into())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("factorz") && err.contains("factors"), "{err}");
    let err = als
        .with_overrides(&[("factors".into(), "many".into())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("als"), "{err}");
    assert!(als
        .with_overrides(&[("factors".into(), "0".into())])
        .is_err());
    assert!(als.with_overrides(&[("reg".into(), "-1".into())]).is_err());
    let ok = als
        .with_overrides(&[
            ("factors".into(), "16".into()),
            ("alpha".into(), "2.5".into()),
        ])
        .unwrap();
    assert_eq!(ok.keys().len(), als.keys().len());
    assert!(ModelConfig::default_for("repeat")
        .unwrap()
        .with_overrides(&[("decay".into(), "1.5".into())])
        .is_err());
}

#[test]
fn empty_data_and_users_without_training_events() {
    assert!(matches!(
        fit(&cfg("pop", &[]), &TrainData::new(0, vec![]), &|_, _| {}),
        Err(ModelError::EmptyData)
    ));
    assert!(matches!(
        fit(&cfg("pop", &[]), &TrainData::new(5, vec![]), &|_, _| {}),
        Err(ModelError::EmptyData)
    ));
    // Users with empty training sequences still get scores (finite, and for
    // factor models from their random initial vector or the history fold-in).
    let data = TrainData::new(4, vec![vec![], vec![0, 1], vec![1, 2], vec![]]);
    for name in trained_here() {
        let c = match *name {
            "bpr" => cfg(name, &[("epochs", "2")]),
            _ => cfg(name, &[]),
        };
        let m = fit(&c, &data, &|_, _| {}).unwrap();
        let mut out = vec![0f32; 4];
        m.score(0, &[], &mut out);
        assert!(out.iter().all(|x| x.is_finite()), "{name}: {out:?}");
    }
}

#[test]
fn ease_refuses_catalogs_above_its_limit() {
    let data = TrainData::new(50, vec![vec![0, 1]]);
    let err = fit(&cfg("ease", &[("max_items", "10")]), &data, &|_, _| {})
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::TooLarge { .. }), "{err}");
}
