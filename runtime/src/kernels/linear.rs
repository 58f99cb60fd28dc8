//! Matrix products: Gemm and numpy-style MatMul, on top of `matrixmultiply`'s packed GEMM.

use rayon::prelude::*;
use strata_ir::ops::Gemm;
use strata_ir::{Tensor, TensorData};

use super::elementwise::{broadcast_shape, broadcast_strides, Arith};
use super::{checked_numel, make};
use crate::RuntimeError;

/// Element types with a fast GEMM. `matrixmultiply` does the packing, SIMD and threading.
pub(crate) trait GemmElem: Arith + Default {
    /// `C = alpha·A·B + beta·C` with explicit row/column strides.
    ///
    /// # Safety
    /// Every element addressed through the strides must lie inside the buffers.
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
    const ONE: Self;
    /// Converts an f32 attribute (alpha, beta) to the computation type.
    fn from_f32_lossy(v: f32) -> Self;
}

impl GemmElem for f32 {
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
    const ONE: f32 = 1.0;
    fn from_f32_lossy(v: f32) -> Self {
        v
    }
}

impl GemmElem for f64 {
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
    const ONE: f64 = 1.0;
    fn from_f32_lossy(v: f32) -> Self {
        v as f64
    }
}

/// A strided matrix view: `data[r * rs + c * cs]` for `r < rows`, `c < cols`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// Safe GEMM: `C[m×n] (row-major, leading dim ldc) = alpha·A·B + beta·C`; bounds are checked
/// (a violation is an internal error, reported rather than risking memory safety).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided<T: GemmElem>(
    op: &'static str,
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
) -> Result<(), RuntimeError> {
    let ok = fits(a.data.len(), m, k, a.rs, a.cs)
        && fits(b.data.len(), k, n, b.rs, b.cs)
        && fits(c.len(), m, n, ldc, 1)
        && [a.rs, a.cs, b.rs, b.cs, ldc]
            .iter()
            .all(|&s| s <= isize::MAX as usize);
    if !ok {
        return Err(RuntimeError::Shape {
            op,
            reason: format!("internal GEMM bounds violation (m={m}, k={k}, n={n})"),
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        for r in 0..m {
            for v in &mut c[r * ldc..r * ldc + n] {
                *v = if beta == T::ZERO {
                    T::ZERO
                } else {
                    beta.mul(*v)
                };
            }
        }
        return Ok(());
    }
    // Large products are split into row blocks run on rayon; inside an already-parallel
    // caller (convolution over a batch) rayon's work stealing keeps the cores busy without
    // oversubscribing them.
    let work = m.saturating_mul(k).saturating_mul(n);
    if work >= PAR_GEMM_WORK && m >= 2 * PAR_GEMM_MIN_ROWS {
        let blocks = (rayon::current_num_threads() * 2).max(2);
        let rows = m.div_ceil(blocks).max(PAR_GEMM_MIN_ROWS);
        return c
            .par_chunks_mut(rows * ldc)
            .enumerate()
            .try_for_each(|(i, cb)| {
                let r0 = i * rows;
                let mb = rows.min(m - r0);
                let ab = MatRef {
                    data: &a.data[r0 * a.rs..],
                    rs: a.rs,
                    cs: a.cs,
                };
                gemm_block(op, mb, k, n, alpha, ab, b, beta, cb, ldc)
            });
    }
    gemm_block(op, m, k, n, alpha, a, b, beta, c, ldc)
}

/// Minimum multiply-adds before a GEMM is split across threads.
const PAR_GEMM_WORK: usize = 1 << 21;
/// Minimum rows per parallel GEMM block (the micro-kernel works on 8-row panels).
const PAR_GEMM_MIN_ROWS: usize = 16;

/// One single-threaded GEMM call (for callers that already parallelise, e.g. over a batch);
/// bounds are checked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_block<T: GemmElem>(
    op: &'static str,
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
) -> Result<(), RuntimeError> {
    if !(fits(a.data.len(), m, k, a.rs, a.cs)
        && fits(b.data.len(), k, n, b.rs, b.cs)
        && fits(c.len(), m, n, ldc, 1))
    {
        return Err(RuntimeError::Shape {
            op,
            reason: format!("internal GEMM block bounds violation (m={m}, k={k}, n={n})"),
        });
    }
    // SAFETY: `fits` proved every addressed element is inside its slice, strides fit isize
    // (checked by the caller), and `c` is exclusively borrowed so it cannot alias `a` or `b`.
    unsafe {
        T::raw_gemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
    Ok(())
}

/// Plain triple loop for integer matrices (wrapping arithmetic, like numpy).
#[allow(clippy::too_many_arguments)]
fn gemm_naive<T: Arith>(
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    ldc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::ZERO;
            for p in 0..k {
                acc = acc.add(a.data[i * a.rs + p * a.cs].mul(b.data[p * b.rs + j * b.cs]));
            }
            c[i * ldc + j] = acc;
        }
    }
}

/// ONNX Gemm: `alpha·op(A)·op(B) + beta·C`, C unidirectionally broadcast to `[M, N]`.
/// `beta·C` is formed explicitly so that `beta = 0` with a NaN in C behaves like numpy.
pub fn gemm(g: &Gemm, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "gemm";
    let (a, b) = (inputs[0], inputs[1]);
    for (i, t) in inputs.iter().enumerate() {
        if t.dtype() != a.dtype() {
            return Err(RuntimeError::DTypeMismatch {
                op: OP,
                input: i,
                expected: a.dtype(),
                got: t.dtype(),
            });
        }
    }
    if a.rank() != 2 || b.rank() != 2 {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "A and B must be 2-D, got shapes {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        });
    }
    let (m, ka) = if g.trans_a {
        (a.shape()[1], a.shape()[0])
    } else {
        (a.shape()[0], a.shape()[1])
    };
    let (kb, n) = if g.trans_b {
        (b.shape()[1], b.shape()[0])
    } else {
        (b.shape()[0], b.shape()[1])
    };
    if ka != kb {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "inner dimensions differ: op(A) is [{m}, {ka}], op(B) is [{kb}, {n}] (A {:?}, B {:?}, trans_a={}, trans_b={})",
                a.shape(), b.shape(), g.trans_a, g.trans_b
            ),
        });
    }
    let k = ka;
    let out_shape = vec![m, n];
    let total = checked_numel(OP, &out_shape)?;
    let c = if g.has_c {
        inputs.get(2).copied()
    } else {
        None
    };
    if let Some(c) = c {
        let bs = broadcast_shape(OP, c.shape(), &out_shape)?;
        if bs != out_shape {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!(
                    "C of shape {:?} does not broadcast to the result [{m}, {n}]",
                    c.shape()
                ),
            });
        }
    }
    #[allow(clippy::too_many_arguments)]
    fn go<T: GemmElem>(
        g: &Gemm,
        a: &Tensor,
        av: &[T],
        bv: &[T],
        cv: Option<(&[T], &[usize])>,
        m: usize,
        k: usize,
        n: usize,
        total: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        let mut out = vec![T::ZERO; total];
        if let Some((cv, cs)) = cv {
            let st = broadcast_strides(cs, &[m, n]);
            let beta = T::from_f32_lossy(g.beta);
            for i in 0..m {
                for j in 0..n {
                    out[i * n + j] = beta.mul(cv[i * st[0] + j * st[1]]);
                }
            }
        }
        let lda = a.shape()[1];
        let am = if g.trans_a {
            MatRef {
                data: av,
                rs: 1,
                cs: lda,
            }
        } else {
            MatRef {
                data: av,
                rs: lda,
                cs: 1,
            }
        };
        let ldb = if g.trans_b { k } else { n };
        let bm = if g.trans_b {
            MatRef {
                data: bv,
                rs: 1,
                cs: ldb,
            }
        } else {
            MatRef {
                data: bv,
                rs: ldb,
                cs: 1,
            }
        };
        let beta = if cv.is_some() { T::ONE } else { T::ZERO };
        gemm_strided(
            "gemm",
            m,
            k,
            n,
            T::from_f32_lossy(g.alpha),
            am,
            bm,
            beta,
            &mut out,
            n,
        )?;
        Ok(out)
    }
    let data = match (a.data(), b.data()) {
        (TensorData::F32(av), TensorData::F32(bv)) => {
            let cv = match c.map(|c| (c.data(), c.shape())) {
                Some((TensorData::F32(v), s)) => Some((v.as_slice(), s)),
                _ => None,
            };
            TensorData::F32(go(g, a, av, bv, cv, m, k, n, total)?)
        }
        (TensorData::F64(av), TensorData::F64(bv)) => {
            let cv = match c.map(|c| (c.data(), c.shape())) {
                Some((TensorData::F64(v), s)) => Some((v.as_slice(), s)),
                _ => None,
            };
            TensorData::F64(go(g, a, av, bv, cv, m, k, n, total)?)
        }
        _ => {
            return Err(RuntimeError::UnsupportedDType {
                op: OP,
                input: 0,
                dtype: a.dtype(),
            })
        }
    };
    make(OP, out_shape, data)
}

/// numpy `matmul`: 1-D operands are promoted (and the added axis removed afterwards), leading
/// batch dimensions broadcast. Floats use GEMM; i32/i64 use a wrapping triple loop.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "matmul";
    if a.dtype() != b.dtype() {
        return Err(RuntimeError::DTypeMismatch {
            op: OP,
            input: 1,
            expected: a.dtype(),
            got: b.dtype(),
        });
    }
    if a.rank() == 0 || b.rank() == 0 {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "operands must have rank >= 1, got shapes {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        });
    }
    let mut ash = a.shape().to_vec();
    let mut bsh = b.shape().to_vec();
    let a_vec = ash.len() == 1;
    let b_vec = bsh.len() == 1;
    if a_vec {
        ash.insert(0, 1);
    }
    if b_vec {
        bsh.push(1);
    }
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (kb, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    if k != kb {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!("inner dimensions differ: {:?} x {:?}", a.shape(), b.shape()),
        });
    }
    let abatch = &ash[..ash.len() - 2];
    let bbatch = &bsh[..bsh.len() - 2];
    let batch = broadcast_shape(OP, abatch, bbatch)?;
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let total = checked_numel(OP, &out_shape)?;
    let nbatch: usize = batch.iter().product();
    let sa = broadcast_strides(abatch, &batch);
    let sb = broadcast_strides(bbatch, &batch);
    let offsets = |idx: usize| {
        let (mut oa, mut ob, mut rem) = (0, 0, idx);
        for d in (0..batch.len()).rev() {
            let i = rem % batch[d];
            rem /= batch[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        (oa * m * k, ob * k * n)
    };
    // One big GEMM when B is shared by every batch and A's batches are contiguous.
    let fold = bbatch.iter().product::<usize>() == 1 && abatch == batch.as_slice();
    #[allow(clippy::too_many_arguments)]
    fn go<T: GemmElem>(
        av: &[T],
        bv: &[T],
        m: usize,
        k: usize,
        n: usize,
        nbatch: usize,
        total: usize,
        fold: bool,
        offsets: &dyn Fn(usize) -> (usize, usize),
    ) -> Result<Vec<T>, RuntimeError> {
        let mut out = vec![T::ZERO; total];
        let run = |mm: usize, a: &[T], b: &[T], c: &mut [T]| -> Result<(), RuntimeError> {
            let am = MatRef {
                data: a,
                rs: k,
                cs: 1,
            };
            let bm = MatRef {
                data: b,
                rs: n,
                cs: 1,
            };
            gemm_strided("matmul", mm, k, n, T::ONE, am, bm, T::ZERO, c, n)
        };
        if fold {
            run(m * nbatch, av, bv, &mut out)?;
        } else {
            for (i, c) in out.chunks_mut((m * n).max(1)).enumerate().take(nbatch) {
                let (oa, ob) = offsets(i);
                run(m, &av[oa.min(av.len())..], &bv[ob.min(bv.len())..], c)?;
            }
        }
        Ok(out)
    }
    let data = match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            TensorData::F32(go(x, y, m, k, n, nbatch, total, fold, &offsets)?)
        }
        (TensorData::F64(x), TensorData::F64(y)) => {
            TensorData::F64(go(x, y, m, k, n, nbatch, total, fold, &offsets)?)
        }
        (TensorData::I32(x), TensorData::I32(y)) => {
            TensorData::I32(go_int(x, y, m, k, n, nbatch, total, &offsets))
        }
        (TensorData::I64(x), TensorData::I64(y)) => {
            TensorData::I64(go_int(x, y, m, k, n, nbatch, total, &offsets))
        }
        _ => {
            return Err(RuntimeError::UnsupportedDType {
                op: OP,
                input: 0,
                dtype: a.dtype(),
            })
        }
    };
    if a_vec {
        let r = out_shape.len();
        out_shape.remove(r - 2);
    }
    if b_vec {
        out_shape.pop();
    }
    make(OP, out_shape, data)
}

#[allow(clippy::too_many_arguments)]
fn go_int<T: Arith + Default>(
    av: &[T],
    bv: &[T],
    m: usize,
    k: usize,
    n: usize,
    nbatch: usize,
    total: usize,
    offsets: &dyn Fn(usize) -> (usize, usize),
) -> Vec<T> {
    let mut out = vec![T::ZERO; total];
    for (i, c) in out.chunks_mut((m * n).max(1)).enumerate().take(nbatch) {
        let (oa, ob) = offsets(i);
        let am = MatRef {
            data: &av[oa.min(av.len())..],
            rs: k,
            cs: 1,
        };
        let bm = MatRef {
            data: &bv[ob.min(bv.len())..],
            rs: n,
            cs: 1,
        };
        gemm_naive(m, k, n, am, bm, c, n);
    }
    out
}
