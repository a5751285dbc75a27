//! Each sequence model learns a deterministic pattern on tiny data: the loss
//! falls and the validation NDCG@10 rises well above chance. Small and
//! seeded, so they run in seconds and give the same numbers every time. Also:
//! parts round trip (the file is aisle-train's), inference on unknown, empty and over-long histories,
//! bad configs and divergence.

use aisle_eval::Scorer;
use aisle_seq::{
    train, Arch, LossKind, SeqConfig, SeqError, SeqModel, SideInfo, TrainData, TrainMasking,
};

/// burn's flex backend keeps one process-wide RNG (`device.seed` replaces
/// it), so tests that seed and initialise models run one at a time: a
/// parallel test drawing from it between another's seeding and its
/// initialisation would make "same seed, same model" flaky.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// 60 users walk a cycle of 20 items (item k is always followed by k + 1),
/// each starting somewhere else: the next item is fully predictable.
fn cyclic() -> Vec<Vec<u32>> {
    (0..60u32)
        .map(|u| (0..12).map(|k| (u + k) % 20).collect())
        .collect()
}

/// Each user views each item of a cycle twice in a row: half the time the
/// latest item comes next.
fn doubled() -> Vec<Vec<u32>> {
    (0..60u32)
        .map(|u| (0..16).map(|k| (u + k / 2) % 20).collect())
        .collect()
}

fn tiny(arch: Arch) -> SeqConfig {
    SeqConfig {
        hidden: 16,
        layers: 1,
        heads: 2,
        inner: 32,
        dropout: 0.0,
        max_len: 10,
        epochs: 40,
        batch_size: 16,
        lr: 1e-2,
        warmup_steps: 5,
        patience: 40,
        negatives: 8,
        lr_decay: aisle_seq::LrDecay::Constant,
        ..SeqConfig::for_arch(arch)
    }
}

fn data(seqs: &[Vec<u32>]) -> TrainData<'_> {
    TrainData {
        n_items: 20,
        seqs,
        side: None,
    }
}

fn learns(arch: Arch, loss: LossKind) {
    let seqs = cyclic();
    // gBCE (binary, 8 of 20 items sampled) learns this toy more slowly than
    // the softmax losses; it gets a larger step.
    let lr = if loss == LossKind::Gbce { 3e-2 } else { 1e-2 };
    let cfg = SeqConfig {
        loss,
        lr,
        ..tiny(arch)
    };
    let (model, fit) = train(arch, &cfg, &data(&seqs), &|_, _| {}).unwrap();
    let first = &fit.curve[0];
    let last = fit.curve.last().unwrap();
    assert!(
        last.loss < first.loss * 0.6,
        "{arch:?}/{loss:?}: loss {} -> {}",
        first.loss,
        last.loss
    );
    // Chance level for NDCG@10 over 20 items is about 0.2; the pattern is
    // learnable.
    let floor = if loss == LossKind::Gbce { 0.6 } else { 0.8 };
    assert!(
        fit.best_valid_ndcg10 > floor,
        "{arch:?}/{loss:?}: best validation NDCG@10 {}",
        fit.best_valid_ndcg10
    );
    assert!(fit.best_epoch >= 1 && fit.best_epoch <= fit.epochs);
    // Inference from a fresh history (as long as validation's) follows the
    // cycle: after 16, ..., 19, 0, ..., 5 comes 6. (The checkpoint is the
    // first epoch at validation NDCG@10 = 1, which can leave much shorter
    // histories near a tie.)
    let rec = model.recommend(&[16, 17, 18, 19, 0, 1, 2, 3, 4, 5], 3, |_| false);
    let top = if loss == LossKind::Gbce { 3 } else { 1 };
    assert!(
        rec.items[..top].iter().any(|&(i, _)| i == 6),
        "{arch:?}/{loss:?}: {rec:?}"
    );
    assert!(!rec.fallback);
}

#[test]
fn sasrec_learns_a_cycle_with_each_loss() {
    let _serial = serial();
    for loss in [LossKind::Ce, LossKind::Sampled, LossKind::Gbce] {
        learns(Arch::Sasrec, loss);
    }
}

#[test]
fn gru4rec_learns_a_cycle() {
    let _serial = serial();
    learns(Arch::Gru4rec, LossKind::Ce);
}

#[test]
fn lstm_learns_a_cycle() {
    let _serial = serial();
    learns(Arch::Lstm, LossKind::Sampled);
}

#[test]
fn training_is_reproducible() {
    let _serial = serial();
    let seqs = cyclic();
    let cfg = SeqConfig {
        epochs: 3,
        ..tiny(Arch::Gru4rec)
    };
    let a = train(Arch::Gru4rec, &cfg, &data(&seqs), &|_, _| {})
        .unwrap()
        .1;
    let b = train(Arch::Gru4rec, &cfg, &data(&seqs), &|_, _| {})
        .unwrap()
        .1;
    let losses = |f: &aisle_seq::SeqFit| f.curve.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
}

#[test]
fn inference_handles_unknown_empty_and_long_histories() {
    let _serial = serial();
    let seqs = cyclic();
    let cfg = SeqConfig {
        epochs: 30,
        ..tiny(Arch::Sasrec)
    };
    let (model, _) = train(Arch::Sasrec, &cfg, &data(&seqs), &|_, _| {}).unwrap();
    // Unknown ids (>= n_items) are ignored and counted.
    let rec = model.recommend(&[3, 999, 4, 5, 20], 5, |_| false);
    assert_eq!(rec.unknown, 2);
    assert_eq!(rec.items[0].0, 6);
    // Empty or all-unknown: popularity.
    let empty = model.recommend(&[], 5, |_| false);
    assert!(empty.fallback);
    assert_eq!(empty.items.len(), 5);
    assert!(model.recommend(&[77, 78], 5, |_| false).fallback);
    // Longer than max_len (10): the last 10 are read, the rest counted.
    let long: Vec<u32> = (0..35).map(|k| k % 20).collect();
    let rec = model.recommend(&long, 3, |_| false);
    assert_eq!(rec.truncated, 25);
    assert_eq!(rec.items[0].0, 15);
    // Filters are applied to the ranking.
    let rec = model.recommend(&[3, 4, 5], 3, |i| i == 6);
    assert!(rec.items.iter().all(|&(i, _)| i != 6));
    // One history alone scores exactly as in a padded batch.
    let uv = model.user_vectors(&[&[3, 4, 5], &(0..10).collect::<Vec<u32>>()]);
    let mut a = vec![0f32; 20];
    let mut b = vec![0f32; 20];
    uv.score(0, &[3, 4, 5], &mut a);
    model.score(0, &[3, 4, 5], &mut b);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
    }
}

#[test]
fn parts_round_trip_and_refuse_missing_tensors() {
    let _serial = serial();
    let seqs = cyclic();
    let side = SideInfo {
        category: (0..20).map(|i| i % 4 + 1).collect(),
        n_categories: 4,
        price_bucket: (0..20).map(|i| i % 3).collect(),
        n_buckets: 3,
    };
    for arch in Arch::ALL {
        let cfg = SeqConfig {
            epochs: 2,
            side_info: true,
            ..tiny(arch)
        };
        let data = TrainData {
            side: Some(side.clone()),
            ..data(&seqs)
        };
        let (model, _) = train(arch, &cfg, &data, &|_, _| {}).unwrap();
        let tensors = model
            .tensors()
            .into_iter()
            .map(|(n, s, v)| (n, (s, v)))
            .collect();
        let back = SeqModel::from_parts(
            arch,
            cfg.clone(),
            model.n_items,
            model.side_info().cloned(),
            tensors,
        )
        .unwrap();
        assert_eq!(back.arch, arch);
        assert_eq!(back.config, cfg);
        let h = [1u32, 2, 3];
        assert_eq!(
            model.recommend(&h, 5, |_| false),
            back.recommend(&h, 5, |_| false),
            "{arch:?}"
        );
        // A tensor missing is refused with an error, not a panic.
        let mut short: aisle_seq::params::Tensors = model
            .tensors()
            .into_iter()
            .map(|(n, s, v)| (n, (s, v)))
            .collect();
        short.remove("popularity");
        assert!(matches!(
            SeqModel::from_parts(arch, cfg.clone(), model.n_items, None, short),
            Err(SeqError::Artifact(_))
        ));
    }
}

/// The repeat bias is learned from the data: where nobody comes back to an
/// item (the cycle) every bucket turns negative; where each item is viewed
/// twice in a row the latest item's weight ends far above the cycle's (half
/// the time the latest item comes next, half the time it does not) and a
/// history ending in a first view ranks that item again first. With the
/// full softmax and with sampled softmax (which scores seen items as extra
/// negatives).
#[test]
fn repeat_bias_learns_the_data_sign() {
    let _serial = serial();
    for loss in [LossKind::Ce, LossKind::Sampled] {
        let cfg = SeqConfig {
            loss,
            epochs: 30,
            ..tiny(Arch::Sasrec)
        };
        let (cyc, _) = train(Arch::Sasrec, &cfg, &data(&cyclic()), &|_, _| {}).unwrap();
        let wc = cyc.repeat_weights();
        assert_eq!(wc.len(), aisle_seq::REPEAT_BUCKETS);
        assert!(wc[..4].iter().all(|&x| x < -0.05), "{loss:?} cycle: {wc:?}");
        let (dbl, _) = train(Arch::Sasrec, &cfg, &data(&doubled()), &|_, _| {}).unwrap();
        let wd = dbl.repeat_weights();
        assert!(
            wd[0] > wc[0] + 0.3,
            "{loss:?} doubled: {wd:?}, cycle {wc:?}"
        );
        // 3, 3, 4: the second view of 4 comes next.
        let rec = dbl.recommend(&[2, 2, 3, 3, 4], 1, |_| false);
        assert_eq!(rec.items[0].0, 4, "{loss:?}: {rec:?}");
    }
    // Off: no weights, and scores are the network's dot products alone.
    let off = SeqConfig {
        repeat_bias: false,
        epochs: 1,
        ..tiny(Arch::Gru4rec)
    };
    let (m, _) = train(Arch::Gru4rec, &off, &data(&cyclic()), &|_, _| {}).unwrap();
    assert!(m.repeat_weights().is_empty());
}

/// With train masking a position's seen items are out of its loss: where no
/// target is ever a seen item nothing moves the repeat bias (it stays 0,
/// where unmasked training learns a penalty), where targets repeat it still
/// learns the bonus; and the network learns the sequence either way.
#[test]
fn train_masking_leaves_seen_items_out_of_the_loss() {
    let _serial = serial();
    // Sequences of 12 distinct items: no target was seen before.
    for loss in [LossKind::Ce, LossKind::Sampled] {
        let cfg = SeqConfig {
            loss,
            epochs: 30,
            train_masking: TrainMasking::On,
            ..tiny(Arch::Sasrec)
        };
        let (cyc, fit) = train(Arch::Sasrec, &cfg, &data(&cyclic()), &|_, _| {}).unwrap();
        assert_eq!(
            cyc.repeat_weights(),
            vec![0.0; aisle_seq::REPEAT_BUCKETS],
            "{loss:?}"
        );
        assert!(
            fit.curve.last().unwrap().loss < fit.curve[0].loss * 0.7,
            "{loss:?}: {:?}",
            fit.curve
        );
        // A model trained so is served with the history masked too: it never
        // learned to score seen items below unseen ones.
        let history = [3, 4, 5, 6];
        let rec = cyc.recommend(&history, 1, |i| history.contains(&i));
        assert_eq!(rec.items[0].0, 7, "{loss:?}: {rec:?}");
        let (dbl, _) = train(Arch::Sasrec, &cfg, &data(&doubled()), &|_, _| {}).unwrap();
        let wd = dbl.repeat_weights();
        assert!(wd[0] > 0.3, "{loss:?} doubled: {wd:?}");
        // Without the bias, masking alone trains too.
        let plain = SeqConfig {
            repeat_bias: false,
            ..cfg.clone()
        };
        let (m, fit) = train(Arch::Sasrec, &plain, &data(&cyclic()), &|_, _| {}).unwrap();
        assert!(m.repeat_weights().is_empty());
        assert!(
            fit.curve.last().unwrap().loss < fit.curve[0].loss * 0.7,
            "{loss:?}"
        );
    }
}

#[test]
fn bad_configs_and_empty_data_are_errors() {
    let _serial = serial();
    let bad = SeqConfig {
        hidden: 15,
        heads: 2,
        ..tiny(Arch::Sasrec)
    };
    assert!(matches!(
        train(Arch::Sasrec, &bad, &data(&cyclic()), &|_, _| {}),
        Err(SeqError::BadConfig { .. })
    ));
    // Every user too short to train on (fewer than 2 items before the hold-out).
    let short: Vec<Vec<u32>> = (0..5).map(|u| vec![u, u + 1, u + 2]).collect();
    assert!(matches!(
        train(
            Arch::Gru4rec,
            &tiny(Arch::Gru4rec),
            &data(&short),
            &|_, _| {}
        ),
        Err(SeqError::EmptyData)
    ));
    // Item ids outside the catalog.
    let outside = vec![vec![1, 2, 3, 40, 5]];
    assert!(matches!(
        train(Arch::Lstm, &tiny(Arch::Lstm), &data(&outside), &|_, _| {}),
        Err(SeqError::BadConfig { .. })
    ));
}

#[test]
fn divergence_is_a_clear_error() {
    let _serial = serial();
    // An absurd learning rate without clipping blows the weights up to
    // inf/NaN in the first epoch, before any checkpoint exists.
    let cfg = SeqConfig {
        lr: 1e30,
        clip_norm: 0.0,
        warmup_steps: 1,
        ..tiny(Arch::Sasrec)
    };
    match train(Arch::Sasrec, &cfg, &data(&cyclic()), &|_, _| {}) {
        Err(SeqError::Diverged { .. }) => {}
        Ok((_, fit)) => assert_eq!(fit.stopped_by, "diverged", "{:?}", fit.curve),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// A budget shorter than one epoch stops inside it: the run validates what
/// it trained and ends near the budget, not at the end of the epoch (which
/// takes several times longer here: 300 users of 200 items over 4,000
/// items, full softmax; validating them is well inside the budget).
#[test]
fn a_time_budget_stops_inside_a_long_epoch() {
    let _g = serial();
    let seqs: Vec<Vec<u32>> = (0..300u32)
        .map(|u| (0..200).map(|k| (u * 7 + k * 13) % 4000).collect())
        .collect();
    let cfg = SeqConfig {
        hidden: 64,
        max_len: 200,
        epochs: 3,
        batch_size: 16,
        time_budget_s: 4.0,
        ..SeqConfig::for_arch(Arch::Sasrec)
    };
    let data = TrainData {
        n_items: 4000,
        seqs: &seqs,
        side: None,
    };
    let (_, fit) = train(Arch::Sasrec, &cfg, &data, &|_, _| {}).unwrap();
    assert_eq!(fit.stopped_by, "time_budget", "{:?}", fit.curve);
    assert_eq!(fit.epochs, 1, "{:?}", fit.curve);
    // 5% over the budget is the target; the margin here is for a shared,
    // noisy machine (before stopping inside epochs this run took the whole
    // epoch, several times the budget).
    assert!(
        fit.train_s < 4.0 * 1.3,
        "{} s for a 4 s budget",
        fit.train_s
    );
}
