//! The one dot product every scorer uses (models, sequence heads, the
//! vector index, the server's sequence feature), and the `axpy` the
//! training kernels share.

/// Dot product over the shorter of the two slices, with eight independent
/// accumulators so the compiler keeps them in one SIMD register (a plain
/// `sum()` is sequential and does not vectorise).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += alpha * x` (over the shorter of the two slices).
#[inline(always)]
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `out[i] = dot(q, row i of rows)` for every row (rows of `q.len()`
/// values): a user's scores over a catalog. Compiled for the widest vector
/// instructions the CPU has, chosen at run time (pulp: AVX2 on an
/// x86-64-v3 CPU, SSE2 on any x86-64), so that the portable binary scores
/// as fast as one built for the machine; every level adds in the same
/// order, so the scores are the same bits on every CPU.
pub fn dot_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    let d = q.len();
    if d == 0 {
        out.fill(0.0);
        return;
    }
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for (o, r) in out.iter_mut().zip(rows.chunks_exact(d)) {
                *o = dot(q, r);
            }
        },
    )
}

/// Runs `f` compiled for the widest vector instructions the CPU has
/// (pulp's run-time dispatch, as [`dot_rows`]): the training kernels of a
/// portable build run as one built for the machine would. Mark the closure
/// `#[inline(always)]`, so that its body, and what it inlines (`dot`, an
/// `axpy`), is compiled for that level. Rust never fuses a multiply and an
/// add, so every level computes the same bits.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

#[cfg(test)]
mod tests {
    use super::{dot, dot_rows};

    #[test]
    fn dot_rows_is_dot_per_row() {
        let q: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).sin()).collect();
        let rows: Vec<f32> = (0..37 * 5).map(|i| (i as f32 * 0.07).cos()).collect();
        let mut out = [0f32; 5];
        dot_rows(&q, &rows, &mut out);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.to_bits(), dot(&q, &rows[i * 37..(i + 1) * 37]).to_bits());
        }
        let mut none = [1f32; 2];
        dot_rows(&[], &[], &mut none);
        assert_eq!(none, [0.0, 0.0]);
    }

    #[test]
    fn dot_matches_the_plain_sum_at_every_length() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-5, "n={n}");
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0);
    }
}
