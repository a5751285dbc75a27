//! Full softmax cross-entropy with its gradient computed by us, not by the
//! autodiff graph.
//!
//! burn-flex evaluates `exp` one element at a time through libm (a quarter
//! of a 40k-item training step, BENCHMARKS §3.2) and `log_softmax`'s
//! backward computes the softmax again. Here the logits are read once,
//! `softmax − one_hot` is computed in place with a vectorisable `exp`, and
//! handed back to burn as a constant `G`: the graph then holds the linear
//! surrogate `sum(logits ⊙ G)`, whose gradient with respect to the logits is
//! exactly `G`, i.e. the cross-entropy's. Its value is not the loss; the loss
//! (logsumexp − target logit, averaged) is returned beside it.

use burn::tensor::{Tensor, TensorData};

use crate::repeat::{self, REPEAT_BUCKETS};

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 · 2^23: adding it rounds a float to an integer held in the low
/// mantissa bits.
const ROUND: f32 = 12_582_912.0;

/// `exp(x)` for `x <= 0` (Cephes' single-precision polynomial after
/// reduction by powers of two; relative error ~2e-7, 0 below -87). Only
/// float and wrapping integer arithmetic, no calls, branches or saturating
/// casts, so loops over it vectorise.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    // n = round(x / ln 2), read from the mantissa of x·log2(e) + ROUND.
    let t = x * LOG2E + ROUND;
    let nf = t - ROUND;
    let r = x - nf * LN2_HI - nf * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n: n sits in the low bits of t's representation; shifting it into
    // the exponent field drops ROUND's bits (wrapping), then add the bias.
    let two_n = f32::from_bits(t.to_bits().wrapping_shl(23).wrapping_add(127 << 23));
    e * two_n
}

/// One row of logits in place: becomes `(softmax(row) − one_hot(target)) ·
/// scale`. Returns the row's cross-entropy, `logsumexp(row) − row[target]`.
#[inline(always)]
fn row_gradient(row: &mut [f32], target: usize, scale: f32) -> f64 {
    let mut mx = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for k in 0..16 {
            mx[k] = if c[k] > mx[k] { c[k] } else { mx[k] };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&mx)
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let zt = row[target];
    let mut acc = [0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for k in 0..16 {
            c[k] = exp_nonpositive(c[k] - max);
            acc[k] += c[k];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - max);
        sum += *x;
    }
    let inv = scale / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
    row[target] -= scale;
    (max as f64 + (sum as f64).ln()) - zt as f64
}

/// What a block's rows know of their histories: each row's seen items with
/// their buckets (`repeat.rs`), the repeat bias's weights (empty: no bias),
/// and whether the seen items other than the target are left out of the
/// softmax (`train_masking`).
#[derive(Clone, Copy)]
pub(crate) struct RowBias<'a> {
    pub weights: &'a [f32],
    pub seen: &'a [Vec<(u32, u8)>],
    pub mask: bool,
}

/// A block's summed cross-entropy and the gradient of the mean loss with
/// respect to each repeat-bias weight.
type BlockOut = (f64, [f64; REPEAT_BUCKETS]);

/// Rows through [`row_gradient`], compiled for the widest vector
/// instructions the CPU has (pulp's run-time dispatch). With a bias, each
/// row's seen items get their bucket's weight added first, and the
/// weights' gradient is the sum of those items' entries of `G`.
struct Rows<'a> {
    g: &'a mut [f32],
    items: usize,
    targets: &'a [usize],
    scale: f32,
    bias: Option<RowBias<'a>>,
}

impl pulp::WithSimd for Rows<'_> {
    type Output = BlockOut;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> BlockOut {
        let mut loss = 0f64;
        let mut gw = [0f64; REPEAT_BUCKETS];
        for (r, (row, &t)) in self
            .g
            .chunks_exact_mut(self.items)
            .zip(self.targets)
            .enumerate()
        {
            let Some(b) = self.bias else {
                loss += row_gradient(row, t, self.scale);
                continue;
            };
            let seen = &b.seen[r];
            if !b.weights.is_empty() {
                repeat::apply(b.weights, seen, row);
            }
            if b.mask {
                // Out of the softmax: exp(-inf - max) is 0 (to 1e-38).
                for &(i, _) in seen {
                    if i as usize != t {
                        row[i as usize] = f32::NEG_INFINITY;
                    }
                }
            }
            loss += row_gradient(row, t, self.scale);
            for &(i, bucket) in seen {
                let g = &mut row[i as usize];
                if b.mask && i as usize != t {
                    *g = 0.0;
                } else if !b.weights.is_empty() {
                    let (r, c) = repeat::weight_indices(bucket);
                    gw[r] += *g as f64;
                    if let Some(c) = c {
                        gw[c] += *g as f64;
                    }
                }
            }
        }
        (loss, gw)
    }
}

/// The mean cross-entropy of `logits` (`[m, items]`, in the graph) against
/// `targets` (0-based), over `n` rows in all (this block may be part of a
/// batch), with the repeat bias added to the logits when given: returns the
/// surrogate to add into the loss that is back-propagated, this block's
/// summed cross-entropy, and the repeat weights' gradient (of the mean).
pub(crate) fn cross_entropy_block(
    logits: Tensor<2>,
    targets: &[usize],
    n: usize,
    bias: Option<RowBias<'_>>,
) -> (Tensor<1>, f64, [f64; REPEAT_BUCKETS]) {
    let [m, items] = logits.dims();
    debug_assert_eq!(m, targets.len());
    debug_assert!(bias.is_none_or(|b| b.seen.len() == m));
    let mut g: Vec<f32> = logits
        .clone()
        .detach()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 logits");
    let scale = 1.0 / n as f32;
    // Rows in parallel, a few at a time per task.
    const ROWS_PER_TASK: usize = 16;
    use rayon::prelude::*;
    // Collected in order and summed sequentially, so the weights' gradient
    // (and training) does not depend on how rayon split the work.
    let parts: Vec<BlockOut> = g
        .par_chunks_mut(items * ROWS_PER_TASK)
        .zip(targets.par_chunks(ROWS_PER_TASK))
        .enumerate()
        .map(|(k, (g, targets))| {
            let bias = bias.map(|b| RowBias {
                seen: &b.seen[k * ROWS_PER_TASK..k * ROWS_PER_TASK + targets.len()],
                ..b
            });
            pulp::Arch::new().dispatch(Rows {
                g,
                items,
                targets,
                scale,
                bias,
            })
        })
        .collect();
    let mut loss = 0f64;
    let mut gw = [0f64; REPEAT_BUCKETS];
    for (l, g) in parts {
        loss += l;
        for (x, y) in gw.iter_mut().zip(g) {
            *x += y;
        }
    }
    let g = Tensor::<2>::from_data(TensorData::new(g, [m, items]), &logits.device());
    ((logits * g).sum(), loss, gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_on_the_range_softmax_uses() {
        let mut worst = 0f32;
        let mut x = -90.0f32;
        while x <= 0.0 {
            let (a, b) = (exp_nonpositive(x), x.exp());
            if b > 1e-30 {
                worst = worst.max(((a - b) / b).abs());
            }
            x += 0.001_3;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1e9), exp_nonpositive(-87.0));
    }

    #[test]
    fn row_gradient_is_softmax_minus_one_hot() {
        let logits = [0.3f32, -1.2, 2.5, 0.0, 7.0, -3.3, 1.1, 0.9, -0.4, 2.2, 5.5];
        let target = 2;
        let mut row = logits.to_vec();
        let ce = row_gradient(&mut row, target, 0.5);
        let max = logits.iter().copied().fold(f32::MIN, f32::max) as f64;
        let sum: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
        let want_ce = max + sum.ln() - logits[target] as f64;
        assert!((ce - want_ce).abs() < 1e-5, "{ce} {want_ce}");
        for (k, (&g, &z)) in row.iter().zip(&logits).enumerate() {
            let p = (z as f64 - max).exp() / sum;
            let want = 0.5 * (p - f64::from(k == target));
            assert!((g as f64 - want).abs() < 1e-6, "{k}: {g} {want}");
        }
    }
}

#[cfg(test)]
mod autodiff_tests {
    use super::*;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Device, Int};

    /// The reference: the mean of `-log_softmax(z)` at the targets, through
    /// burn's autodiff.
    fn log_softmax_loss(z: Tensor<2>, targets: &[usize]) -> Tensor<1> {
        let t = Tensor::<2, Int>::from_data(
            TensorData::new(
                targets.iter().map(|&t| t as i64).collect::<Vec<_>>(),
                [targets.len(), 1],
            ),
            &z.device(),
        );
        -log_softmax(z, 1).gather(1, t).sum() / targets.len() as f64
    }

    /// The surrogate back-propagates exactly what log_softmax + gather does,
    /// and reports the same loss.
    #[test]
    fn surrogate_gradient_equals_log_softmax_gradient() {
        let device = Device::default().autodiff();
        let (m, items) = (6, 37);
        let vals: Vec<f32> = (0..m * items)
            .map(|k| ((k * 7919) % 1000) as f32 / 90.0 - 5.0)
            .collect();
        let targets = [0usize, 5, 36, 12, 7, 5];
        let leaf = || {
            Tensor::<2>::from_data(TensorData::new(vals.clone(), [m, items]), &device)
                .require_grad()
        };
        // Two blocks of one batch of n = m rows, as batch_loss splits them.
        let x1 = leaf();
        let (a, ce_a, _) = cross_entropy_block(x1.clone().narrow(0, 0, 4), &targets[..4], m, None);
        let (b, ce_b, _) = cross_entropy_block(x1.clone().narrow(0, 4, 2), &targets[4..], m, None);
        let g1 = (a + b).backward();
        let grad1: Vec<f32> = x1.grad(&g1).unwrap().into_data().try_to_vec().unwrap();
        let x2 = leaf();
        let l2 = log_softmax_loss(x2.clone(), &targets);
        let want = l2.clone().into_scalar::<f32>() as f64;
        let g2 = l2.backward();
        let grad2: Vec<f32> = x2.grad(&g2).unwrap().into_data().try_to_vec().unwrap();
        assert!(
            ((ce_a + ce_b) / m as f64 - want).abs() < 1e-5,
            "{} {want}",
            (ce_a + ce_b) / m as f64
        );
        for (k, (p, q)) in grad1.iter().zip(&grad2).enumerate() {
            assert!((p - q).abs() < 1e-6, "{k}: {p} {q}");
        }
    }

    /// With the repeat bias (and with train masking), the logits' and the
    /// weights' gradients equal autodiff's through log_softmax of the
    /// biased (and masked) logits.
    #[test]
    fn bias_and_mask_gradients_equal_log_softmax_gradients() {
        let device = Device::default().autodiff();
        let (m, items) = (5, 23);
        let vals: Vec<f32> = (0..m * items)
            .map(|k| ((k * 7919) % 1000) as f32 / 120.0 - 4.0)
            .collect();
        let targets = [3usize, 0, 22, 9, 9];
        // Row 0 has seen its target (bucket 2), row 3 has not, row 4 has
        // (bucket 0), row 1 has seen its target twice (bucket 12 + 2); row 2
        // has seen nothing.
        let seen: Vec<Vec<(u32, u8)>> = vec![
            vec![(1, 1), (3, 2), (7, 0)],
            vec![(5, 0), (0, 12 + 2)],
            vec![],
            vec![(2, 3), (4, 1), (11, 47), (6, 24 + 5)],
            vec![(9, 0), (1, 2)],
        ];
        let weights: Vec<f32> = (0..REPEAT_BUCKETS).map(|b| b as f32 * 0.7 - 2.5).collect();
        for mask in [false, true] {
            let x1 = Tensor::<2>::from_data(TensorData::new(vals.clone(), [m, items]), &device)
                .require_grad();
            let bias = RowBias {
                weights: &weights,
                seen: &seen,
                mask,
            };
            let (surrogate, ce, gw) = cross_entropy_block(x1.clone(), &targets, m, Some(bias));
            let g1 = surrogate.backward();
            let grad1: Vec<f32> = x1.grad(&g1).unwrap().into_data().try_to_vec().unwrap();

            // The same through burn: a bucket-selection matrix puts the
            // weights onto the logits, a mask fill removes the masked ones.
            let x2 = Tensor::<2>::from_data(TensorData::new(vals.clone(), [m, items]), &device)
                .require_grad();
            let w2 =
                Tensor::<1>::from_data(TensorData::new(weights.clone(), [REPEAT_BUCKETS]), &device)
                    .require_grad();
            let mut onehot = vec![0f32; m * items * REPEAT_BUCKETS];
            let mut masked = vec![false; m * items];
            for (r, s) in seen.iter().enumerate() {
                for &(i, b) in s {
                    let (rc, cc) = repeat::weight_indices(b);
                    onehot[(r * items + i as usize) * REPEAT_BUCKETS + rc] = 1.0;
                    if let Some(cc) = cc {
                        onehot[(r * items + i as usize) * REPEAT_BUCKETS + cc] = 1.0;
                    }
                    masked[r * items + i as usize] = mask && i as usize != targets[r];
                }
            }
            let onehot = Tensor::<2>::from_data(
                TensorData::new(onehot, [m * items, REPEAT_BUCKETS]),
                &device,
            );
            let added = onehot
                .matmul(w2.clone().reshape([REPEAT_BUCKETS, 1]))
                .reshape([m, items]);
            let masked = Tensor::<2, burn::tensor::Bool>::from_data(
                TensorData::new(masked, [m, items]),
                &device,
            );
            let z = (x2.clone() + added).mask_fill(masked, -1e9);
            let l2 = log_softmax_loss(z, &targets);
            let want = l2.clone().into_scalar::<f32>() as f64;
            let g2 = l2.backward();
            let grad2: Vec<f32> = x2.grad(&g2).unwrap().into_data().try_to_vec().unwrap();
            let gw2: Vec<f32> = w2.grad(&g2).unwrap().into_data().try_to_vec().unwrap();
            assert!(
                (ce / m as f64 - want).abs() < 1e-5,
                "mask {mask}: {} {want}",
                ce / m as f64
            );
            for (k, (p, q)) in grad1.iter().zip(&grad2).enumerate() {
                assert!((p - q).abs() < 1e-6, "mask {mask}, logit {k}: {p} {q}");
            }
            for (b, (p, q)) in gw.iter().zip(&gw2).enumerate() {
                assert!(
                    (*p as f32 - q).abs() < 1e-6,
                    "mask {mask}, bucket {b}: {p} {q}"
                );
            }
            // Masking changes the loss: the other seen items compete no more.
            if mask {
                assert!(
                    gw2.iter().all(|&g| g <= 1e-7),
                    "only seen targets move the bias"
                );
            }
        }
    }
}
