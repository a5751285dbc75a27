//! The Rust encoder against sentence-transformers: reference vectors computed
//! once with sentence-transformers (CPU) for English, Chinese, accented,
//! emoji and one-letter texts (tests/fixtures/minilm-reference.json). Needs
//! the model: scripts/fetch-embedder.sh (the README's test command runs it).

use aisle_embed::{default_dir, Embedder};

fn fixture() -> (Vec<String>, Vec<Vec<f32>>) {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/minilm-reference.json")).expect("fixture");
    let sents = v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let vecs = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    (sents, vecs)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn embeddings_match_sentence_transformers() {
    let dir = match std::env::var_os("AISLE_EMBEDDER_DIR") {
        Some(_) => default_dir(),
        None => std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/all-MiniLM-L6-v2"
        )),
    };
    let e = Embedder::load(&dir).expect("run scripts/fetch-embedder.sh first");
    // Found the same way from inside the repository.
    assert!(default_dir().join("model.safetensors").exists());
    let (sents, want) = fixture();
    let refs: Vec<&str> = sents.iter().map(String::as_str).collect();
    let got = e.embed(&refs).unwrap();
    assert_eq!(got.len(), sents.len());
    let mut worst = 1.0f32;
    for ((s, g), w) in sents.iter().zip(&got).zip(&want) {
        assert_eq!(g.len(), 384);
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{s}: norm {norm}");
        let c = cosine(g, w);
        worst = worst.min(c);
        assert!(c >= 0.999, "{s:?}: cosine {c}");
    }
    eprintln!("worst cosine to sentence-transformers: {worst:.7}");
    // Alone or in a padded batch: the same vector.
    let alone = e.embed(&[refs[6]]).unwrap();
    assert!(cosine(&alone[0], &got[6]) > 0.99999);
    // One text at a time (texts of under 16 tokens take the few-rows kernel
    // with half-float weights): every sentence still matches the reference.
    let mut worst_one = 1f32;
    for ((s, g), w) in sents.iter().zip(&got).zip(&want) {
        let one = e.embed_one(s).unwrap();
        let c = cosine(&one, w);
        worst_one = worst_one.min(c);
        assert!(c >= 0.999, "{s:?} alone: cosine {c}");
        assert!(cosine(&one, g) > 0.99999, "{s:?}: alone vs batch");
    }
    eprintln!("worst cosine to sentence-transformers, one text at a time: {worst_one:.7}");
    // Related titles are closer than unrelated ones.
    assert!(cosine(&got[0], &got[1]) > cosine(&got[0], &got[3]));
}

#[test]
fn a_missing_model_is_a_clear_error() {
    let err = Embedder::load(std::path::Path::new("/nonexistent/embedder"))
        .err()
        .expect("no model there");
    assert!(err.to_string().contains("fetch-embedder"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    std::fs::write(dir.path().join("config.json"), br#"{"hidden_size":384,"num_hidden_layers":6,"num_attention_heads":12,"hidden_act":"gelu"}"#).unwrap();
    assert!(Embedder::load(dir.path()).is_err());
}
