//! Dense linear algebra the models need: an in-place blocked Cholesky and
//! the inverse of a symmetric positive definite matrix, row-major `f32`,
//! parallel with rayon, its kernels compiled for the CPU's vector
//! instructions at run time (`simd`). Written here rather than pulled in as a crate: EASE
//! is its only user.

use rayon::prelude::*;

const BLOCK: usize = 64;

pub use aisle_core::vector::{axpy, dot, simd};

/// Cholesky factorisation `A = L Lᵀ` in place: the lower triangle of `a`
/// (n×n, row-major) becomes `L`; the strict upper triangle is left as is.
/// Returns the index of the first non-positive pivot on failure.
pub fn cholesky_in_place(a: &mut [f32], n: usize) -> Result<(), usize> {
    assert_eq!(a.len(), n * n);
    let mut panel = vec![0f32; n * BLOCK];
    for k0 in (0..n).step_by(BLOCK) {
        let k1 = (k0 + BLOCK).min(n);
        // Factor the panel (columns k0..k1, rows k0..n), left-looking within it.
        for j in k0..k1 {
            let (top, bottom) = a.split_at_mut((j + 1) * n);
            let row_j = &mut top[j * n..(j + 1) * n];
            let d = row_j[j] - dot(&row_j[k0..j], &row_j[k0..j]);
            if d <= 0.0 || !d.is_finite() {
                return Err(j);
            }
            let ljj = d.sqrt();
            row_j[j] = ljj;
            let rj = &row_j[k0..j];
            bottom.par_chunks_mut(n).for_each(|row| {
                simd(
                    #[inline(always)]
                    || row[j] = (row[j] - dot(&row[k0..j], rj)) / ljj,
                )
            });
        }
        if k1 == n {
            break;
        }
        // Trailing update: A22 -= L21 L21ᵀ (lower triangle only).
        let w = k1 - k0;
        for i in k1..n {
            panel[(i - k1) * w..(i - k1 + 1) * w].copy_from_slice(&a[i * n + k0..i * n + k1]);
        }
        let panel = &panel;
        a[k1 * n..]
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(r, row)| {
                simd(
                    #[inline(always)]
                    || {
                        let li = &panel[r * w..(r + 1) * w];
                        for c in 0..=r {
                            row[k1 + c] -= dot(li, &panel[c * w..(c + 1) * w]);
                        }
                    },
                )
            });
    }
    Ok(())
}

/// Inverse of a symmetric positive definite matrix. `a` is consumed as
/// scratch (it holds the Cholesky factor afterwards). Returns the full
/// symmetric inverse, or the failing pivot.
pub fn spd_inverse(
    a: &mut [f32],
    n: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<f32>, usize> {
    cholesky_in_place(a, n)?;
    let l: &[f32] = a;
    let mut inv = vec![0f32; n * n];
    // Solve L Lᵀ X = I for blocks of BLOCK right-hand sides; column c of the
    // inverse is row c (symmetry), so each block fills BLOCK rows of `inv`.
    let done = std::sync::atomic::AtomicU64::new(0);
    inv.par_chunks_mut(n * BLOCK)
        .enumerate()
        .for_each(|(b, out_rows)| {
            simd(
                #[inline(always)]
                || solve_block(l, n, b, out_rows),
            );
            let m = out_rows.len() / n;
            let d = done.fetch_add(m as u64, std::sync::atomic::Ordering::Relaxed) + m as u64;
            progress(d, n as u64);
        });
    Ok(inv)
}

/// Rows `b·BLOCK..` of the inverse of `L Lᵀ` (`l` the Cholesky factor).
#[inline(always)]
fn solve_block(l: &[f32], n: usize, b: usize, out_rows: &mut [f32]) {
    let c0 = b * BLOCK;
    let m = out_rows.len() / n;
    // y: n rows × m columns, row-major.
    let mut y = vec![0f32; n * m];
    for t in 0..m {
        y[(c0 + t) * m + t] = 1.0;
    }
    // Forward: L y = e (rows before c0 stay zero).
    for i in c0..n {
        let (before, rest) = y.split_at_mut(i * m);
        let yi = &mut rest[..m];
        let li = &l[i * n..i * n + i];
        for (k, &lik) in li.iter().enumerate().skip(c0) {
            if lik != 0.0 {
                axpy(yi, -lik, &before[k * m..(k + 1) * m]);
            }
        }
        let d = 1.0 / l[i * n + i];
        yi.iter_mut().for_each(|v| *v *= d);
    }
    // Backward: Lᵀ x = y, column-oriented so L is read by rows.
    for i in (0..n).rev() {
        let (before, rest) = y.split_at_mut(i * m);
        let xi = &mut rest[..m];
        let d = 1.0 / l[i * n + i];
        xi.iter_mut().for_each(|v| *v *= d);
        let li = &l[i * n..i * n + i];
        for (k, &lik) in li.iter().enumerate() {
            if lik != 0.0 {
                axpy(&mut before[k * m..(k + 1) * m], -lik, xi);
            }
        }
    }
    for t in 0..m {
        let row = &mut out_rows[t * n..(t + 1) * n];
        for (i, r) in row.iter_mut().enumerate() {
            *r = y[i * m + t];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_random_spd_matrix() {
        for n in [1, 5, 63, 64, 65, 150] {
            let mut rng = aisle_core::rng::Rng::seed(n as u64);
            // A = M Mᵀ + n I is SPD.
            let m: Vec<f32> = (0..n * n).map(|_| rng.normal() as f32).collect();
            let mut a = vec![0f32; n * n];
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] = dot(&m[i * n..(i + 1) * n], &m[j * n..(j + 1) * n])
                        + if i == j { n as f32 } else { 0.0 };
                }
            }
            let orig = a.clone();
            let inv = spd_inverse(&mut a, n, &|_, _| {}).unwrap();
            for i in 0..n {
                for j in 0..n {
                    let v: f32 = (0..n).map(|k| orig[i * n + k] * inv[k * n + j]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((v - want).abs() < 2e-3, "n={n} ({i},{j}) = {v}");
                }
            }
        }
    }

    #[test]
    fn non_positive_definite_is_reported() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky_in_place(&mut a, 2), Err(1));
    }
}
