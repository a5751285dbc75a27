//! The training loop: every position of each user's sequence is a training
//! target (one sample per user per epoch), AdamW with warm-up and gradient
//! clipping, early stopping on validation NDCG@10 with best-checkpoint
//! restore, an epoch and a wall-time budget.

use std::time::Instant;

use aisle_core::rng::Rng;
use aisle_eval::{evaluate_loo, LooConfig, Stage};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softplus};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::Serialize;

use crate::model::{left_padded, SeqModel};
use crate::net::DropoutRng;
use crate::repeat::{self, REPEAT_BUCKETS};
use crate::softmax::RowBias;
use crate::{
    Arch, LossKind, LrDecay, Result, SeqConfig, SeqError, SeqNet, SideInfo, TrainMasking, Window,
};

/// One epoch of the training curve.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub valid_ndcg10: f64,
    pub seconds: f64,
    /// Training positions (non-padding targets) per second.
    pub positions_per_s: f64,
}

/// What training did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SeqFit {
    pub model: String,
    pub epochs: usize,
    pub best_epoch: usize,
    pub best_valid_ndcg10: f64,
    pub train_s: f64,
    pub positions_per_epoch: u64,
    pub curve: Vec<EpochLog>,
    pub stopped_by: String,
    /// The best checkpoint's repeat-bias weights: 12 recency classes, then 3
    /// count classes (`repeat.rs`; empty: off).
    pub repeat_weights: Vec<f32>,
}

/// What a training run reads: complete per-user sequences of catalog ids
/// (`0..n_items`), and optionally the items' side information.
pub struct TrainData<'a> {
    pub n_items: usize,
    pub seqs: &'a [Vec<u32>],
    pub side: Option<SideInfo>,
}

/// Scores per block of the full cross-entropy (2M floats = 8 MB).
const CE_BLOCK_FLOATS: usize = 1 << 21;

/// Seen items each position scores as extra negatives in the sampled losses
/// (with the repeat bias).
const SEEN_NEGATIVES: usize = 64;

/// The lowest share of `lr` a linear decay reaches.
const LR_FLOOR: f64 = 0.05;

/// The histories of one batch's scored positions: their seen items, the
/// repeat bias (the weights in the graph and as numbers; none without it),
/// and whether seen items other than the target are out of the loss
/// (`train_masking`).
struct Bias<'a> {
    tensor: Option<Tensor<1>>,
    weights: &'a [f32],
    seen: &'a [Vec<(u32, u8)>],
    mask: bool,
}

/// The loss of one batch: the tensor to back-propagate and the loss value
/// (for full cross-entropy they differ: the tensor is a surrogate with the
/// same gradient, see `softmax.rs`).
///
/// # Shapes
/// - `h`: `[n, hidden]` hidden states of the scored positions; `y`: their
///   next items as table ids (1-based); `table`: `[items + 1, hidden]`
fn batch_loss(
    cfg: &SeqConfig,
    h: Tensor<2>,
    y: &[i64],
    table: Tensor<2>,
    n_items: usize,
    bias: Option<Bias<'_>>,
    rng: &mut Rng,
) -> (Tensor<1>, f64) {
    match cfg.loss {
        LossKind::Ce => full_ce_loss(h, y, table, n_items, bias),
        LossKind::Sampled | LossKind::Gbce => sampled_loss(cfg, h, y, table, n_items, bias, rng),
    }
}

/// Full cross-entropy over every item (see [`batch_loss`]).
fn full_ce_loss(
    h: Tensor<2>,
    y: &[i64],
    table: Tensor<2>,
    n_items: usize,
    bias: Option<Bias<'_>>,
) -> (Tensor<1>, f64) {
    let n = y.len();
    // In row blocks of at most ~8 MB of scores: the allocator then
    // reuses heap memory instead of mapping (and faulting in) fresh
    // pages for one huge score matrix at every step.
    let w = table.narrow(0, 1, n_items).transpose();
    let rows = (CE_BLOCK_FLOATS / n_items).clamp(1, n.max(1));
    let mut total: Option<Tensor<1>> = None;
    let mut value = 0f64;
    let mut grad_w = [0f64; REPEAT_BUCKETS];
    for start in (0..n).step_by(rows) {
        let m = rows.min(n - start);
        let logits = h.clone().narrow(0, start, m).matmul(w.clone());
        let targets: Vec<usize> = y[start..start + m]
            .iter()
            .map(|&i| i as usize - 1)
            .collect();
        let row_bias = bias.as_ref().map(|b| RowBias {
            weights: b.weights,
            seen: &b.seen[start..start + m],
            mask: b.mask,
        });
        let (part, ce, gw) = crate::softmax::cross_entropy_block(logits, &targets, n, row_bias);
        value += ce;
        for (a, g) in grad_w.iter_mut().zip(gw) {
            *a += g;
        }
        total = Some(match total {
            Some(t) => t + part,
            None => part,
        });
    }
    let mut total = total.expect("a batch has positions");
    if let Some(w) = bias.and_then(|b| b.tensor) {
        // The weights' gradient, handed to the graph the same way:
        // d/dw sum(w * g) = g.
        let g: Vec<f32> = grad_w.iter().map(|&x| x as f32).collect();
        let g = Tensor::<1>::from_data(TensorData::new(g, [REPEAT_BUCKETS]), &h.device());
        total = total + (w * g).sum();
    }
    (total, value / n as f64)
}

/// With the repeat bias and no train masking: for each position, up to
/// SEEN_NEGATIVES of the items it has seen (the most recent first, never its
/// target), scored as negatives beside the uniform samples.
fn seen_negatives(bias: Option<&Bias<'_>>, y: &[i64]) -> Vec<Vec<(u32, u8)>> {
    bias.filter(|b| b.tensor.is_some() && !b.mask)
        .map(|b| {
            b.seen
                .iter()
                .zip(y)
                .map(|(s, &t)| {
                    let mut e: Vec<(u32, u8)> = s
                        .iter()
                        .copied()
                        .filter(|&(i, _)| i as i64 + 1 != t)
                        .collect();
                    // The most recent first (stable: older first seen
                    // first among equals).
                    e.sort_by_key(|&(_, b)| b as usize % repeat::RECENCY_CLASSES);
                    e.truncate(SEEN_NEGATIVES);
                    e
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The sampled objective from the target's score `pos` `[n, 1]`, the
/// uniform negatives' `neg` `[n, k]` and the seen negatives' `seen` `[n, c]`.
fn sampled_objective(
    cfg: &SeqConfig,
    n_items: usize,
    (pos, neg, seen_scores): (Tensor<2>, Tensor<2>, Option<Tensor<2>>),
    masked_bias: bool,
) -> Tensor<1> {
    let k = cfg.negatives;
    // Each uniform negative stands for (items - 1) / k items, each seen
    // one for itself: with seen negatives in the mix (or a masked
    // bias), the uniform ones are weighted up accordingly (the log-Q
    // correction of sampled softmax; for gBCE, the seen terms
    // weighted down).
    let share = (n_items.max(2) - 1) as f64 / k as f64;
    if cfg.loss == LossKind::Sampled {
        let log_q = seen_scores.is_some() || masked_bias;
        let mut parts = vec![
            pos,
            if log_q {
                neg.add_scalar(share.ln())
            } else {
                neg
            },
        ];
        parts.extend(seen_scores);
        -log_softmax(Tensor::cat(parts, 1), 1).narrow(1, 0, 1).mean()
    } else {
        let alpha = (k as f64 / (n_items.max(2) - 1) as f64).min(1.0);
        let beta = alpha * (cfg.gbce_t * (1.0 - 1.0 / alpha) + 1.0 / alpha);
        let mut per_row = softplus(-pos, 1.0).mul_scalar(beta) + softplus(neg, 1.0).sum_dim(1);
        if let Some(s) = seen_scores {
            per_row = per_row + softplus(s, 1.0).sum_dim(1).div_scalar(share.max(1.0));
        }
        per_row.mean()
    }
}

/// Sampled softmax or gBCE over `cfg.negatives` uniform negatives (see [`batch_loss`]).
fn sampled_loss(
    cfg: &SeqConfig,
    h: Tensor<2>,
    y: &[i64],
    table: Tensor<2>,
    n_items: usize,
    bias: Option<Bias<'_>>,
    rng: &mut Rng,
) -> (Tensor<1>, f64) {
    let n = y.len();
    let device = h.device();
    let k = cfg.negatives;
    let negs: Vec<i64> = (0..k)
        .map(|_| rng.below(n_items as u64) as i64 + 1)
        .collect();
    // With the repeat bias, each position also scores up to
    // SEEN_NEGATIVES of the items it has seen (the most recent, not
    // its target) as negatives: uniform samples almost never hit a
    // history, and the bias would then only ever be pushed up. With
    // train masking, seen items are no negatives at all.
    let seen_maps: Vec<std::collections::HashMap<u32, u8>> = bias
        .as_ref()
        .map(|b| b.seen.iter().map(|s| s.iter().copied().collect()).collect())
        .unwrap_or_default();
    let extra = seen_negatives(bias.as_ref(), y);
    // A sampled item that is the position's own target is not a
    // negative; nor is one the position has seen (masked, or the most
    // recent of those are scored among its seen items instead, not
    // twice).
    let hit: Vec<bool> = y
        .iter()
        .enumerate()
        .flat_map(|(r, &t)| {
            let seen = seen_maps.get(r);
            negs.iter()
                .map(move |&g| g == t || seen.is_some_and(|m| m.contains_key(&(g as u32 - 1))))
        })
        .collect();
    let hit = Tensor::<2, Bool>::from_data(TensorData::new(hit, [n, k]), &device);
    let y_t = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [n]), &device);
    let g_t = Tensor::<1, Int>::from_data(TensorData::new(negs, [k]), &device);
    let mut pos = (h.clone() * table.clone().select(0, y_t)).sum_dim(1); // [n, 1]
    let neg = h
        .clone()
        .matmul(table.clone().select(0, g_t).transpose())
        .mask_fill(hit, -1e4); // [n, k]

    // A seen target with its bias competes, under train masking, with
    // every unseen item: the uniform negatives then stand for them all.
    let masked_bias = bias.as_ref().is_some_and(|b| b.mask && b.tensor.is_some());
    // The seen items' scores, [n, c] (c = 0 without the bias).
    let mut seen_scores: Option<Tensor<2>> = None;
    if let Some(tensor) = bias.and_then(|b| b.tensor) {
        // A bucket's two weights (recency, count), each the extra zero
        // weight where it has none: a target the position has not
        // seen (seen negatives are masked above), or seen once.
        let none = REPEAT_BUCKETS as i64;
        let w = Tensor::cat(vec![tensor, Tensor::<1>::zeros([1], &device)], 0);
        let both = |b: Option<u8>| match b.map(repeat::weight_indices) {
            Some((r, c)) => (r as i64, c.map_or(none, |c| c as i64)),
            None => (none, none),
        };
        let select2 = |(r, c): (Vec<i64>, Vec<i64>), shape: [usize; 2]| {
            let len = r.len();
            let r = Tensor::<1, Int>::from_data(TensorData::new(r, [len]), &device);
            let c = Tensor::<1, Int>::from_data(TensorData::new(c, [len]), &device);
            (w.clone().select(0, r) + w.clone().select(0, c)).reshape(shape)
        };
        let pos_b: (Vec<i64>, Vec<i64>) = seen_maps
            .iter()
            .zip(y)
            .map(|(m, &t)| both(m.get(&(t as u32 - 1)).copied()))
            .unzip();
        pos = pos + select2(pos_b, [n, 1]);
        let c = extra.iter().map(Vec::len).max().unwrap_or(0);
        if c > 0 {
            let d = h.dims()[1];
            let mut ids = vec![0i64; n * c];
            let mut buckets = (vec![none; n * c], vec![none; n * c]);
            let mut pad = vec![true; n * c];
            for (r, e) in extra.iter().enumerate() {
                for (j, &(i, b)) in e.iter().enumerate() {
                    ids[r * c + j] = i as i64 + 1;
                    (buckets.0[r * c + j], buckets.1[r * c + j]) = both(Some(b));
                    pad[r * c + j] = false;
                }
            }
            let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [n * c]), &device);
            let pad = Tensor::<2, Bool>::from_data(TensorData::new(pad, [n, c]), &device);
            let e = table.select(0, ids).reshape([n, c, d]);
            let scores =
                (e * h.unsqueeze_dim::<3>(1)).sum_dim(2).reshape([n, c]) + select2(buckets, [n, c]);
            seen_scores = Some(scores.mask_fill(pad, -1e4));
        }
    }
    let loss = sampled_objective(cfg, n_items, (pos, neg, seen_scores), masked_bias);
    let value = loss.clone().into_scalar::<f32>() as f64;
    (loss, value)
}

/// One optimisation step at a time: the code shared by training and the
/// step benchmark.
struct Stepper<'c> {
    cfg: &'c SeqConfig,
    n_items: usize,
    device: Device,
    optim: ModuleOptimizer,
    rng: Rng,
    step: usize,
    /// Share of training done, in [0, 1] (for `LrDecay::Linear`).
    progress: f64,
}

impl<'c> Stepper<'c> {
    fn new(cfg: &'c SeqConfig, n_items: usize, device: Device) -> Self {
        let optim = AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay as f32)
            .with_grad_clipping(
                (cfg.clip_norm > 0.0).then_some(GradientClippingConfig::Norm(cfg.clip_norm as f32)),
            )
            .init();
        Stepper {
            cfg,
            n_items,
            device,
            optim,
            rng: Rng::seed(cfg.seed ^ 0x5eed),
            step: 0,
            progress: 0.0,
        }
    }

    /// One step on a batch of histories: each trains on the window of its
    /// last `max_len + 1` items (item `k + 1` predicted from items `..=k`);
    /// earlier items only count as seen for the repeat bias. Returns the
    /// updated network and the batch loss (not finite = diverged, the
    /// network is then not updated).
    fn step(&mut self, net: SeqNet, contexts: &[&[u32]]) -> (SeqNet, f64) {
        let cfg = self.cfg;
        let device = &self.device;
        let seqs: Vec<&[u32]> = contexts.iter().map(|c| window(c, cfg)).collect();
        let len = seqs
            .iter()
            .map(|s| s.len() - 1)
            .max()
            .unwrap_or(1)
            .min(cfg.max_len);
        let inputs: Vec<&[u32]> = seqs.iter().map(|s| &s[..s.len() - 1]).collect();
        let targets: Vec<&[u32]> = seqs.iter().map(|s| &s[1..]).collect();
        let ids = left_padded(&inputs, len, 1);
        // Only positions with a real next item are scored: the scores over
        // the catalog are the expensive part, so padding rows are dropped
        // before the output projection.
        let y_all = left_padded(&targets, len, 1);
        let real: Vec<i64> = (0..y_all.len() as i64)
            .filter(|&p| y_all[p as usize] != 0)
            .collect();
        let y_real: Vec<i64> = real.iter().map(|&p| y_all[p as usize]).collect();
        let n_real = real.len();
        // The seen items of every scored position, in the same (row-major)
        // order: row r scores its last min(inputs, len) input positions.
        let w = net.repeat_bias();
        let mask = cfg.train_masking == TrainMasking::On;
        let repeat = (w.is_some() || mask).then(|| {
            let seen: Vec<Vec<(u32, u8)>> = contexts
                .iter()
                .zip(&inputs)
                .flat_map(|(c, i)| {
                    let scored = i.len().min(len);
                    // The inputs are all of the context but its last item.
                    repeat::seen_after_each(&c[..c.len() - 1], c.len() - 1 - scored)
                })
                .collect();
            debug_assert_eq!(seen.len(), n_real);
            let weights = w
                .as_ref()
                .map(|w| w.clone().into_data().try_to_vec::<f32>().expect("f32"))
                .unwrap_or_default();
            (weights, seen)
        });
        let idx = Tensor::<1, Int>::from_data(TensorData::new(real, [n_real]), device);
        let table = net.items.table();
        let drop = DropoutRng {
            p: cfg.dropout,
            rng: &mut self.rng,
        };
        let h = net
            .hidden(&ids, [seqs.len(), len], &table, Some(drop))
            .reshape([seqs.len() * len, cfg.hidden])
            .select(0, idx);
        let bias = repeat.as_ref().map(|(weights, seen)| Bias {
            tensor: w,
            weights,
            seen,
            mask,
        });
        let (loss, value) = batch_loss(cfg, h, &y_real, table, self.n_items, bias, &mut self.rng);
        if !value.is_finite() {
            return (net, value);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        self.step += 1;
        let warm = (self.step as f64 / cfg.warmup_steps.max(1) as f64).min(1.0);
        let decay = match cfg.lr_decay {
            LrDecay::Constant => 1.0,
            LrDecay::Linear => (1.0 - self.progress).max(LR_FLOOR),
        };
        let lr = cfg.lr * warm * decay;
        (self.optim.step(lr, net, grads), value)
    }
}

/// Times `steps` training steps of `arch` on random full-length sequences
/// (`batch_size` x `max_len`) over `n_items` items, after one warm-up step:
/// the framework micro-benchmark (`cargo run --release -p aisle-seq
/// --example step`). Returns the seconds of each step.
pub fn step_benchmark(
    arch: Arch,
    cfg: &SeqConfig,
    n_items: usize,
    steps: usize,
) -> Result<Vec<f64>> {
    cfg.check(arch).map_err(|message| SeqError::BadConfig {
        model: arch.name().into(),
        message,
    })?;
    let device = Device::default().autodiff();
    device.seed(cfg.seed);
    let mut net = cfg.init(arch, n_items, None, &device);
    let mut stepper = Stepper::new(cfg, n_items, device);
    let mut rng = Rng::seed(cfg.seed);
    let mut times = Vec::with_capacity(steps);
    for s in 0..=steps {
        let seqs: Vec<Vec<u32>> = (0..cfg.batch_size)
            .map(|_| {
                (0..=cfg.max_len)
                    .map(|_| rng.below(n_items as u64) as u32)
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let t = Instant::now();
        net = stepper.step(net, &refs).0;
        if s > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

/// Trains `arch` on `data`: training uses each sequence without its last two
/// items, validation NDCG@10 (no masking, as for sequential models, unless
/// `valid_masking`) on the
/// second-to-last picks the epoch. Returns the best model and the record.
/// Each user's training part (the sequence without its last two items),
/// the users with at least two training items, and training popularity
/// (the fallback for empty histories); refuses a bad config or data.
#[allow(clippy::type_complexity)]
fn training_part<'a>(
    arch: Arch,
    cfg: &SeqConfig,
    data: &TrainData<'a>,
) -> Result<(Vec<&'a [u32]>, Vec<usize>, Vec<f32>)> {
    cfg.check(arch).map_err(|message| SeqError::BadConfig {
        model: arch.name().into(),
        message,
    })?;
    let (n_items, seqs) = (data.n_items, data.seqs);
    let train: Vec<&[u32]> = seqs
        .iter()
        .map(|s| &s[..s.len().saturating_sub(2)])
        .collect();
    let trainable: Vec<usize> = (0..train.len()).filter(|&u| train[u].len() >= 2).collect();
    if trainable.is_empty() || n_items == 0 {
        return Err(SeqError::EmptyData);
    }
    if seqs.iter().flatten().any(|&i| i as usize >= n_items) {
        return Err(SeqError::BadConfig {
            model: arch.name().into(),
            message: format!("an item id is outside the catalog of {n_items} items"),
        });
    }
    let mut popularity = vec![0f32; n_items];
    for s in &train {
        for &i in s.iter() {
            popularity[i as usize] += 1.0;
        }
    }
    Ok((train, trainable, popularity))
}

/// Validation NDCG@10: history = training part, target = second-to-last item.
fn valid_ndcg10(model: &SeqModel, train: &[&[u32]], seqs: &[Vec<u32>], cfg: &SeqConfig) -> f64 {
    evaluate_loo(
        &model.user_vectors(train),
        seqs,
        model.n_items,
        &[],
        &LooConfig {
            stage: Stage::Valid,
            masking: cfg.valid_masking,
            ks: vec![10],
            list_k: 0,
        },
    )
    .ndcg(10)
}

pub fn train(
    arch: Arch,
    cfg: &SeqConfig,
    data: &TrainData<'_>,
    progress: &dyn Fn(u64, u64),
) -> Result<(SeqModel, SeqFit)> {
    let (n_items, seqs) = (data.n_items, data.seqs);
    let (train, trainable, popularity) = training_part(arch, cfg, data)?;
    let device = Device::default().autodiff();
    device.seed(cfg.seed);
    let mut net: SeqNet = cfg.init(arch, n_items, data.side.clone(), &device);
    let mut stepper = Stepper::new(cfg, n_items, device);
    let positions: u64 = trainable
        .iter()
        .map(|&u| (train[u].len() - 1).min(cfg.max_len) as u64)
        .sum();
    let mut rng = Rng::seed(cfg.seed);
    let mut order = trainable.clone();
    let start = Instant::now();
    let mut best: Option<(SeqModel, f64, usize)> = None;
    let mut curve = Vec::new();
    let mut stale = 0;
    let mut stopped_by = "epochs".to_string();
    let batches = order.len().div_ceil(cfg.batch_size) as u64;
    let finish = |net: SeqNet| SeqModel::new(arch, cfg.clone(), n_items, net, popularity.clone());
    let mut budget = Budget::new(cfg.time_budget_s, start);
    if budget.is_set() {
        // What validating costs, from a sample of users, before the first epoch.
        let k = seqs.len().min(128);
        let t = Instant::now();
        valid_ndcg10(&finish(net.valid()), &train[..k], &seqs[..k], cfg);
        budget.eval_s = t.elapsed().as_secs_f64() * seqs.len() as f64 / k.max(1) as f64;
    }
    for epoch in 1..=cfg.epochs {
        let t_epoch = Instant::now();
        // Fisher-Yates shuffle with the seeded generator.
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let batch: Vec<&[u32]> = chunk
                .iter()
                .map(|&u| context(train[u], cfg, &mut rng))
                .collect();
            let by_epochs = (epoch - 1) as f64 / cfg.epochs as f64
                + b as f64 / (batches as f64 * cfg.epochs as f64);
            let by_time = if cfg.time_budget_s > 0.0 {
                start.elapsed().as_secs_f64() / cfg.time_budget_s
            } else {
                0.0
            };
            stepper.progress = by_epochs.max(by_time).min(1.0);
            // Stop inside the epoch when one more step and the validation
            // after it would overrun the budget (after at least one step).
            if (best.is_some() || loss_n > 0) && budget.no_room_for_a_step() {
                budget.ran_out = true;
                break;
            }
            let t_step = Instant::now();
            let (next, value) = stepper.step(net, &batch);
            budget.record_step(t_step.elapsed().as_secs_f64());
            net = next;
            if !value.is_finite() {
                tracing::error!(
                    model = arch.name(),
                    epoch,
                    loss = value,
                    "training diverged"
                );
                return match best {
                    Some((m, v, e)) => {
                        let fit =
                            fit_record(&m, epoch, e, v, start, positions, curve, "diverged".into());
                        Ok((m, fit))
                    }
                    None => Err(SeqError::Diverged { epoch, loss: value }),
                };
            }
            loss_sum += value;
            loss_n += 1;
            progress(b as u64 + 1, batches);
        }
        if budget.ran_out && loss_n == 0 {
            // Out of time before this epoch's first step: nothing new to validate.
            stopped_by = "time_budget".into();
            break;
        }
        let t_valid = Instant::now();
        let inference = finish(net.valid());
        let ndcg = valid_ndcg10(&inference, &train, seqs, cfg);
        budget.eval_s = t_valid.elapsed().as_secs_f64();
        let secs = t_epoch.elapsed().as_secs_f64();
        let mean_loss = loss_sum / loss_n.max(1) as f64;
        tracing::info!(
            model = arch.name(),
            epoch,
            loss = mean_loss,
            valid_ndcg10 = ndcg,
            secs,
            "epoch"
        );
        curve.push(EpochLog {
            epoch,
            loss: mean_loss,
            valid_ndcg10: ndcg,
            seconds: secs,
            positions_per_s: positions as f64 / secs.max(1e-9),
        });
        if best.as_ref().is_none_or(|(_, v, _)| ndcg > *v) {
            // The validated model is the checkpoint: no second copy.
            best = Some((inference, ndcg, epoch));
            stale = 0;
        } else {
            stale += 1;
            if stale >= cfg.patience {
                stopped_by = "early_stopping".into();
                break;
            }
        }
        if budget.ran_out || budget.spent() {
            stopped_by = "time_budget".into();
            break;
        }
    }
    let epochs = curve.len();
    let (m, v, e) = best.ok_or(SeqError::EmptyData)?;
    let fit = fit_record(&m, epochs, e, v, start, positions, curve, stopped_by);
    Ok((m, fit))
}

/// A training run's wall-time budget (`time_budget_s`, 0 = none). Training
/// stops before a step when the mean step so far plus the last validation's
/// time would carry the run past the budget, inside an epoch if need be:
/// the run then validates what it has and keeps the best epoch, ending
/// within a step's time variation of the budget.
struct Budget {
    limit_s: f64,
    start: Instant,
    steps: u64,
    step_s_sum: f64,
    /// The latest validation's seconds (before the first: an estimate).
    eval_s: f64,
    ran_out: bool,
}

impl Budget {
    fn new(limit_s: f64, start: Instant) -> Budget {
        Budget {
            limit_s,
            start,
            steps: 0,
            step_s_sum: 0.0,
            eval_s: 0.0,
            ran_out: false,
        }
    }

    fn is_set(&self) -> bool {
        self.limit_s > 0.0
    }

    fn record_step(&mut self, secs: f64) {
        self.steps += 1;
        self.step_s_sum += secs;
    }

    fn no_room_for_a_step(&self) -> bool {
        let mean_step = self.step_s_sum / self.steps.max(1) as f64;
        self.is_set() && self.start.elapsed().as_secs_f64() + mean_step + self.eval_s > self.limit_s
    }

    fn spent(&self) -> bool {
        self.is_set() && self.start.elapsed().as_secs_f64() >= self.limit_s
    }
}

/// What one step reads of a training sequence: the history up to the end of
/// its window (the step trains on its last `max_len + 1` items; the earlier
/// ones only count as seen for the repeat bias). The end is the sequence's
/// own with `Window::Last` or a sequence that fits in `max_len + 1` items,
/// else, with `Window::Random`, uniformly drawn so that a window of
/// `max_len + 1` fits before it.
fn context<'s>(s: &'s [u32], cfg: &SeqConfig, rng: &mut Rng) -> &'s [u32] {
    let w = cfg.max_len + 1;
    if s.len() <= w {
        return s;
    }
    let end = match cfg.window {
        Window::Last => s.len(),
        Window::Random => w + rng.below((s.len() - w + 1) as u64) as usize,
    };
    &s[..end]
}

/// The last `max_len + 1` items of a context: the window a step trains on.
fn window<'s>(context: &'s [u32], cfg: &SeqConfig) -> &'s [u32] {
    &context[context.len().saturating_sub(cfg.max_len + 1)..]
}

/// The record of a run whose best checkpoint is `m` (its repeat bias is
/// logged and kept in the record).
#[allow(clippy::too_many_arguments)]
fn fit_record(
    m: &SeqModel,
    epochs: usize,
    best_epoch: usize,
    best: f64,
    start: Instant,
    positions: u64,
    curve: Vec<EpochLog>,
    stopped_by: String,
) -> SeqFit {
    let repeat_weights = m.repeat_weights().to_vec();
    if !repeat_weights.is_empty() {
        tracing::info!(model = m.arch.name(), weights = ?repeat_weights, "repeat bias: 12 weights by recency, 3 by count (seen 2-3, 4-7, 8+ times)");
    }
    SeqFit {
        model: m.arch.name().into(),
        epochs,
        best_epoch,
        best_valid_ndcg10: best,
        train_s: start.elapsed().as_secs_f64(),
        positions_per_epoch: positions,
        curve,
        stopped_by,
        repeat_weights,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_windows() {
        let s: Vec<u32> = (1..=10).collect();
        let mut rng = Rng::seed(1);
        let last = SeqConfig {
            max_len: 3,
            window: Window::Last,
            ..SeqConfig::default()
        };
        // A history that fits is read whole; a longer one keeps its end.
        let mut read = |s: &[u32], cfg: &SeqConfig| {
            let c = context(s, cfg, &mut rng).to_vec();
            // The context is a prefix, the window its last max_len + 1.
            assert_eq!(&s[..c.len()], &c[..]);
            window(&c, cfg).to_vec()
        };
        assert_eq!(read(&s[..4], &last), &s[..4]);
        assert_eq!(read(&s, &last), &[7, 8, 9, 10]);
        let random = SeqConfig {
            window: Window::Random,
            ..last
        };
        assert_eq!(read(&s[..4], &random), &s[..4]);
        // Random windows: always max_len + 1 consecutive items, and every
        // end position (4..=10) comes up.
        let mut ends = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let w = read(&s, &random);
            assert_eq!(w.len(), 4);
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1));
            ends.insert(*w.last().unwrap());
        }
        assert_eq!(
            ends.into_iter().collect::<Vec<_>>(),
            (4..=10).collect::<Vec<_>>()
        );
    }
}
