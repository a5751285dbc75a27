//! The one artifact: every kind saves and loads back with the same scores
//! and header; corrupt, foreign and too-old files are refused with an error
//! that says why; every kind serves through the same trait.

use std::collections::HashMap;
use std::path::Path;

use aisle_models::{ModelConfig, TrainData};
use aisle_seq::{Arch, SeqConfig};
use aisle_train::{fit_recommender, Artifact, Classical, DataRange, Model, Servable, TrainError};

/// 40 users over 12 items in two clusters (0..6 and 6..12), walking their cluster.
fn seqs() -> Vec<Vec<u32>> {
    (0..40u32)
        .map(|u| {
            let base = if u % 2 == 0 { 0 } else { 6 };
            (0..8).map(|k| base + (u + k) % 6).collect()
        })
        .collect()
}

fn ids() -> Vec<String> {
    (0..12).map(|i| format!("item{i}")).collect()
}

fn classical(name: &str) -> Model {
    let overrides: Vec<(String, String)> = match name {
        "bpr" | "lightgcn" => vec![
            ("epochs".into(), "2".into()),
            ("factors".into(), "4".into()),
        ],
        "als" => vec![
            ("iterations".into(), "2".into()),
            ("factors".into(), "4".into()),
        ],
        "gat" => vec![
            ("epochs".into(), "2".into()),
            ("factors".into(), "4".into()),
            ("negatives".into(), "4".into()),
        ],
        _ => vec![],
    };
    let cfg = ModelConfig::default_for(name)
        .unwrap()
        .with_overrides(&overrides)
        .unwrap();
    let m = fit_recommender(&cfg, &TrainData::new(12, seqs()), None, &|_, _| {}).unwrap();
    Model::Classical(Classical::new(m, 12))
}

fn sequence(arch: Arch) -> Model {
    let cfg = SeqConfig {
        hidden: 8,
        inner: 16,
        max_len: 8,
        epochs: 1,
        ..SeqConfig::for_arch(arch)
    };
    let s = seqs();
    let data = aisle_seq::TrainData {
        n_items: 12,
        seqs: &s,
        side: None,
    };
    Model::Sequence(Box::new(
        aisle_seq::train(arch, &cfg, &data, &|_, _| {}).unwrap().0,
    ))
}

fn every_kind() -> Vec<Model> {
    let mut v: Vec<Model> = aisle_models::MODEL_NAMES
        .iter()
        .map(|n| classical(n))
        .collect();
    v.extend(Arch::ALL.into_iter().map(sequence));
    v
}

fn scores(m: &dyn Servable, history: &[u32]) -> Vec<f32> {
    let mut out = vec![0f32; m.n_items()];
    m.score_history(history, &mut out);
    out
}

#[test]
fn every_kind_round_trips_with_its_header() {
    let dir = tempfile::tempdir().unwrap();
    for model in every_kind() {
        let kind = model.kind();
        let before = scores(&model, &[1, 2, 3]);
        let mut a = Artifact::new(model, ids());
        a.header.data = Some(DataRange { from: 10, to: 20 });
        a.header.extra.insert("dataset".into(), "clusters".into());
        let path = dir.path().join(format!("{kind}.safetensors"));
        a.save(&path).unwrap();
        let back = Artifact::load(&path).unwrap();
        assert_eq!(back.model.kind(), kind);
        assert_eq!(back.header, a.header, "{kind}");
        assert_eq!(scores(&back.model, &[1, 2, 3]), before, "{kind}");
        // The header alone reads the same, without the weights.
        assert_eq!(Artifact::read_header(&path).unwrap(), a.header);
    }
}

#[test]
fn every_kind_scores_a_history_and_finds_neighbours_in_its_cluster() {
    for model in every_kind() {
        let kind = model.kind();
        assert_eq!(model.n_items(), 12);
        assert!(model.width() >= 1);
        let s = scores(&model, &[0, 1, 2]);
        assert!(s.iter().all(|x| x.is_finite()), "{kind}: {s:?}");
        let mut near = vec![0f32; 12];
        model.similar(3, &mut near);
        assert!(near.iter().all(|x| x.is_finite()), "{kind}: {near:?}");
        // Unknown numbers in a history are ignored, not a panic.
        scores(&model, &[0, 99, u32::MAX]);
    }
}

#[test]
fn corrupt_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    Artifact::new(classical("pop"), ids()).save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Artifact::load(&path),
        Err(TrainError::Artifact { .. })
    ));
    std::fs::write(&path, b"not a model").unwrap();
    assert!(matches!(
        Artifact::load(&path),
        Err(TrainError::Artifact { .. })
    ));
    assert!(Artifact::load(&dir.path().join("missing.safetensors")).is_err());
}

/// Writes `tensors` with `meta` as a raw safetensors file.
fn raw(path: &Path, meta: &[(&str, &str)]) {
    let tensors = vec![("scores".to_string(), vec![12], vec![1.0f32; 12])];
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    aisle_core::tensors::write(path, &tensors, meta).unwrap();
}

#[test]
fn older_layouts_load_and_unknown_versions_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.safetensors");
    let ids = serde_json::to_string(&ids()).unwrap();
    let cfg = serde_json::to_string(&ModelConfig::default_for("pop").unwrap()).unwrap();
    // A classical artifact of layout 1 (before the shared artifact) loads.
    let meta = [
        ("aisle_artifact_version", "1"),
        ("model", "pop"),
        ("config", cfg.as_str()),
        ("item_ids", ids.as_str()),
    ];
    raw(&path, &meta);
    let a = Artifact::load(&path).unwrap();
    assert_eq!((a.header.version, a.model.kind()), (1, "pop"));
    // Version 2 never existed for any kind; 9 is from the future.
    for v in ["2", "9"] {
        let mut m = meta;
        m[0].1 = v;
        raw(&path, &m);
        let e = Artifact::load(&path).unwrap_err().to_string();
        assert!(e.contains("retrain it with `aisle train`"), "{e}");
    }
    // Item ids that do not match the weights.
    let short = serde_json::to_string(&["a", "b"]).unwrap();
    let mut m = meta;
    m[3].1 = short.as_str();
    raw(&path, &m);
    let e = Artifact::load(&path).unwrap_err().to_string();
    assert!(e.contains("2 item ids for a model of 12 items"), "{e}");
    // A kind nobody trains.
    let mut m = meta;
    m[1].1 = "word2vec";
    raw(&path, &m);
    let e = Artifact::load(&path).unwrap_err().to_string();
    assert!(e.contains("unknown model kind"), "{e}");
}
