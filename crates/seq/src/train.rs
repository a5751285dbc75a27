//! The training loop: full-softmax cross-entropy at every position, AdamW,
//! warm-up, gradient clipping, early stopping on validation NDCG@10.

use std::time::Instant;

use aisle_core::rng::Rng;
use aisle_eval::{evaluate_loo, LooConfig, Scorer, Stage};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

use crate::{Result, SasRec, SasRecConfig, SeqError};

/// One epoch of the training curve.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub valid_ndcg10: f64,
    pub seconds: f64,
    /// Training positions (non-padding targets) per second.
    pub positions_per_s: f64,
}

/// What training did.
#[derive(Debug, Clone, Serialize)]
pub struct SeqFit {
    pub epochs: usize,
    pub best_epoch: usize,
    pub best_valid_ndcg10: f64,
    pub train_s: f64,
    pub positions_per_epoch: u64,
    pub curve: Vec<EpochLog>,
    pub stopped_by: String,
}

/// Per-user vectors from a sequence model plus the item vectors: scores are
/// dot products, exactly what the model's last position would output.
pub struct UserVectors {
    pub dim: usize,
    pub users: Vec<f32>,
    pub items: Vec<f32>,
}

impl UserVectors {
    /// Vectors of `histories` (one per user, in user order) from a trained model.
    pub fn from_model(
        model: &SasRec,
        histories: &[&[u32]],
        max_len: usize,
        n_items: usize,
    ) -> UserVectors {
        user_vectors(model, histories, max_len, n_items)
    }
}

impl Scorer for UserVectors {
    fn score(&self, user: u32, _history: &[u32], out: &mut [f32]) {
        let d = self.dim;
        let u = &self.users[user as usize * d..(user as usize + 1) * d];
        for (o, it) in out.iter_mut().zip(self.items.chunks_exact(d)) {
            *o = u.iter().zip(it).map(|(a, b)| a * b).sum();
        }
    }
}

fn left_padded(seqs: &[&[u32]], len: usize, shift: u32) -> Vec<i64> {
    let mut v = vec![0i64; seqs.len() * len];
    for (r, s) in seqs.iter().enumerate() {
        let s = &s[s.len().saturating_sub(len)..];
        let off = r * len + (len - s.len());
        for (k, &i) in s.iter().enumerate() {
            v[off + k] = (i + shift) as i64;
        }
    }
    v
}

/// The model's vector for each history (its last position), batched.
pub fn user_vectors(
    model: &SasRec,
    histories: &[&[u32]],
    max_len: usize,
    n_items: usize,
) -> UserVectors {
    let device = model.item_emb.weight.val().device();
    let d = model.item_emb.weight.val().dims()[1];
    let mut users = Vec::with_capacity(histories.len() * d);
    for chunk in histories.chunks(256) {
        let len = chunk
            .iter()
            .map(|h| h.len())
            .max()
            .unwrap_or(1)
            .clamp(1, max_len);
        let ids = left_padded(chunk, len, 1);
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), len]), &device);
        let h = model
            .hidden(x)
            .narrow(1, len - 1, 1)
            .reshape([chunk.len(), d]);
        users.extend(
            h.into_data()
                .try_to_vec::<f32>()
                .expect("f32 hidden states"),
        );
    }
    let all = model
        .item_emb
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 embeddings");
    UserVectors {
        dim: d,
        users,
        items: all[d..(n_items + 1) * d].to_vec(),
    }
}

/// Trains SASRec on `seqs` (complete per-user sequences): training uses each
/// sequence without its last two items, validation NDCG@10 (no masking, as
/// for sequential models) picks the epoch. Returns the best model (inference
/// mode) and the training record.
pub fn train_sasrec(
    cfg: &SasRecConfig,
    n_items: usize,
    seqs: &[Vec<u32>],
    progress: &dyn Fn(u64, u64),
) -> Result<(SasRec, SeqFit)> {
    let bad = |m: &str| SeqError::BadConfig {
        model: "sasrec".into(),
        message: m.into(),
    };
    if cfg.hidden == 0 || cfg.heads == 0 || !cfg.hidden.is_multiple_of(cfg.heads) {
        return Err(bad("hidden must be a positive multiple of heads"));
    }
    if cfg.max_len < 2 || cfg.batch_size == 0 || cfg.layers == 0 {
        return Err(bad(
            "max_len >= 2, batch_size > 0 and layers > 0 are required",
        ));
    }
    if !(0.0..1.0).contains(&cfg.dropout) || cfg.lr <= 0.0 {
        return Err(bad("dropout must be in [0, 1) and lr positive"));
    }
    let train: Vec<&[u32]> = seqs
        .iter()
        .map(|s| &s[..s.len().saturating_sub(2)])
        .collect();
    let trainable: Vec<usize> = (0..train.len()).filter(|&u| train[u].len() >= 2).collect();
    if trainable.is_empty() || n_items == 0 {
        return Err(SeqError::EmptyData);
    }
    let device = Device::default().autodiff();
    device.seed(cfg.seed);
    let mut model = cfg.init(n_items, &device);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .with_grad_clipping(
            (cfg.clip_norm > 0.0).then_some(GradientClippingConfig::Norm(cfg.clip_norm as f32)),
        )
        .init();
    let loss_fn = CrossEntropyLossConfig::new()
        .with_pad_tokens(Some(vec![0]))
        .init(&device);
    let positions: u64 = trainable
        .iter()
        .map(|&u| (train[u].len() - 1).min(cfg.max_len) as u64)
        .sum();
    let mut rng = Rng::seed(cfg.seed);
    let mut order = trainable.clone();
    let start = Instant::now();
    let mut step = 0usize;
    let mut best: Option<(SasRec, f64, usize)> = None;
    let mut curve = Vec::new();
    let mut stale = 0;
    let mut stopped_by = "epochs".to_string();
    let batches = order.len().div_ceil(cfg.batch_size) as u64;
    for epoch in 1..=cfg.epochs {
        let t_epoch = Instant::now();
        // Fisher-Yates shuffle with the seeded generator.
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let len = chunk
                .iter()
                .map(|&u| train[u].len() - 1)
                .max()
                .unwrap_or(1)
                .min(cfg.max_len);
            let inputs: Vec<&[u32]> = chunk
                .iter()
                .map(|&u| &train[u][..train[u].len() - 1])
                .collect();
            let targets: Vec<&[u32]> = chunk.iter().map(|&u| &train[u][1..]).collect();
            let x = Tensor::<2, Int>::from_data(
                TensorData::new(left_padded(&inputs, len, 1), [chunk.len(), len]),
                &device,
            );
            // Only positions with a real next item are scored: the logits
            // over the whole catalog are the expensive part, so padding rows
            // are dropped before the output projection.
            let y_all = left_padded(&targets, len, 1);
            let real: Vec<i64> = (0..y_all.len() as i64)
                .filter(|&p| y_all[p as usize] != 0)
                .collect();
            let y_real: Vec<i64> = real.iter().map(|&p| y_all[p as usize]).collect();
            let n_real = real.len();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(real, [n_real]), &device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(y_real, [n_real]), &device);
            let h = model
                .hidden(x)
                .reshape([chunk.len() * len, cfg.hidden])
                .select(0, idx);
            let loss = loss_fn.forward(model.logits(h), y);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return match best {
                    Some((m, v, e)) => {
                        tracing::error!(
                            epoch,
                            loss = value,
                            "training diverged; keeping the best checkpoint"
                        );
                        Ok((
                            m,
                            fit_record(epoch, e, v, start, positions, curve, "diverged".into()),
                        ))
                    }
                    None => Err(SeqError::Diverged { epoch, loss: value }),
                };
            }
            loss_sum += value;
            loss_n += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            step += 1;
            let lr = cfg.lr * (step as f64 / cfg.warmup_steps.max(1) as f64).min(1.0);
            model = optim.step(lr, model, grads);
            progress(b as u64 + 1, batches);
        }
        // Validation: history = training part, target = second-to-last item.
        let inference = model.valid();
        let hist: Vec<&[u32]> = train.clone();
        let uv = user_vectors(&inference, &hist, cfg.max_len, n_items);
        let valid = evaluate_loo(
            &uv,
            seqs,
            n_items,
            &[],
            &LooConfig {
                stage: Stage::Valid,
                masking: false,
                ks: vec![10],
                list_k: 0,
            },
        );
        let ndcg = valid.ndcg(10);
        let secs = t_epoch.elapsed().as_secs_f64();
        tracing::info!(
            epoch,
            loss = loss_sum / loss_n.max(1) as f64,
            valid_ndcg10 = ndcg,
            secs,
            "sasrec epoch"
        );
        curve.push(EpochLog {
            epoch,
            loss: loss_sum / loss_n.max(1) as f64,
            valid_ndcg10: ndcg,
            seconds: secs,
            positions_per_s: positions as f64 / secs.max(1e-9),
        });
        if best.as_ref().is_none_or(|(_, v, _)| ndcg > *v) {
            best = Some((inference, ndcg, epoch));
            stale = 0;
        } else {
            stale += 1;
            if stale >= cfg.patience {
                stopped_by = "early_stopping".into();
                break;
            }
        }
        if cfg.time_budget_s > 0.0 && start.elapsed().as_secs_f64() >= cfg.time_budget_s {
            stopped_by = "time_budget".into();
            break;
        }
    }
    let epochs = curve.len();
    let (m, v, e) = best.expect("at least one epoch ran");
    Ok((
        m,
        fit_record(epochs, e, v, start, positions, curve, stopped_by),
    ))
}

fn fit_record(
    epochs: usize,
    best_epoch: usize,
    best: f64,
    start: Instant,
    positions: u64,
    curve: Vec<EpochLog>,
    stopped_by: String,
) -> SeqFit {
    SeqFit {
        epochs,
        best_epoch,
        best_valid_ndcg10: best,
        train_s: start.elapsed().as_secs_f64(),
        positions_per_epoch: positions,
        curve,
        stopped_by,
    }
}
