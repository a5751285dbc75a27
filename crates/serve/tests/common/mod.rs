//! Fixtures shared by the serve test binaries.

use std::path::{Path, PathBuf};

use aisle_seq::{Arch, SeqConfig, TrainData};

/// Trains a tiny SASRec on 40 rotating sequences of 8 over `items` items
/// (`i0`..), saves it as `models/sasrec-<version>.safetensors` in `dir` and
/// promotes it. Returns the artifact's path.
pub fn promote_tiny_sasrec(dir: &Path, items: u32, epochs: usize, version: u64) -> PathBuf {
    let seqs: Vec<Vec<u32>> = (0..40u32)
        .map(|u| (0..8).map(|k| (u + k) % items).collect())
        .collect();
    let cfg = SeqConfig {
        hidden: 16,
        layers: 1,
        inner: 32,
        dropout: 0.0,
        max_len: 8,
        epochs,
        batch_size: 8,
        lr: 1e-2,
        warmup_steps: 5,
        patience: 30,
        lr_decay: aisle_seq::LrDecay::Constant,
        // The checkpoint is the first epoch at validation NDCG@10 = 1, which
        // leaves a one-item history near a tie between two items when the
        // repeat bias joins the clipped gradient; these tests are about the
        // routes (the bias is tested in aisle-seq).
        repeat_bias: false,
        ..SeqConfig::for_arch(Arch::Sasrec)
    };
    let data = TrainData {
        n_items: items as usize,
        seqs: &seqs,
        side: None,
    };
    let (model, _) = aisle_seq::train(Arch::Sasrec, &cfg, &data, &|_, _| {}).unwrap();
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let ids: Vec<String> = (0..items).map(|i| format!("i{i}")).collect();
    let name = format!("sasrec-{version}.safetensors");
    let p = models.join(&name);
    aisle_train::Artifact::new(aisle_train::Model::Sequence(Box::new(model)), ids)
        .save(&p)
        .unwrap();
    aisle_serve::Registry::new(dir).promote(&name).unwrap();
    p
}
