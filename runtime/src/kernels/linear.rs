//! Matrix products: Gemm and numpy-style MatMul, on top of `matrixmultiply`'s packed GEMM.

use rayon::prelude::*;
use strata_ir::ops::Gemm;
use strata_ir::{Tensor, TensorData};

use super::elementwise::{broadcast_shape, broadcast_strides, Arith};
use super::{checked_numel, make, map_data, same_dtype, Elem};
use crate::RuntimeError;

/// Element types with a fast GEMM. `matrixmultiply` does the packing, SIMD and threading.
pub(crate) trait GemmElem: Arith + Elem {
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

macro_rules! impl_gemm_elem {
    ($($t:ident => $gemm:path),*) => {$(
        impl GemmElem for $t {
            unsafe fn raw_gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: $t,
                a: *const $t,
                rsa: isize,
                csa: isize,
                b: *const $t,
                rsb: isize,
                csb: isize,
                beta: $t,
                c: *mut $t,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
            const ONE: $t = 1.0;
            fn from_f32_lossy(v: f32) -> Self {
                v as $t
            }
        }
    )*};
}
impl_gemm_elem!(f32 => matrixmultiply::sgemm, f64 => matrixmultiply::dgemm);

/// A strided matrix view: `data[r * rs + c * cs]` for `r < rows`, `c < cols`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// The same matrix read transposed.
    pub fn t(self) -> MatRef<'a, T> {
        MatRef {
            data: self.data,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Row-major `data` with `cols` columns (leading dimension), read transposed when
    /// `transposed`: the operand views every GEMM caller needs.
    pub fn of(data: &'a [T], cols: usize, transposed: bool) -> MatRef<'a, T> {
        if transposed {
            MatRef {
                data,
                rs: 1,
                cs: cols,
            }
        } else {
            MatRef {
                data,
                rs: cols,
                cs: 1,
            }
        }
    }
}

fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// Safe GEMM: `C[m×n] = alpha·A·B + beta·C` with `C` row-major and contiguous; bounds are
/// checked (a violation is an internal error, reported rather than risking memory safety).
/// With `split`, large products run as row blocks on rayon; callers that already parallelise
/// (convolution over a batch) pass `false` and get one single-threaded call.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: GemmElem>(
    op: &'static str,
    split: bool,
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: &mut [T],
) -> Result<(), RuntimeError> {
    let ok = fits(a.data.len(), m, k, a.rs, a.cs)
        && fits(b.data.len(), k, n, b.rs, b.cs)
        && fits(c.len(), m, n, n, 1)
        && [a.rs, a.cs, b.rs, b.cs, n]
            .iter()
            .all(|&s| s <= isize::MAX as usize);
    if !ok {
        return Err(RuntimeError::shape(
            op,
            format!("internal GEMM bounds violation (m={m}, k={k}, n={n})"),
        ));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        for v in &mut c[..m * n] {
            *v = if beta == T::ZERO {
                T::ZERO
            } else {
                beta.mul(*v)
            };
        }
        return Ok(());
    }
    let p = Product {
        dims: (m, k, n),
        scale: (alpha, beta),
        a,
        b,
    };
    // Large products are split into row blocks run on rayon; inside an already-parallel
    // caller rayon's work stealing keeps the cores busy without oversubscribing them.
    let work = m.saturating_mul(k).saturating_mul(n);
    if split && work >= PAR_GEMM_WORK && m >= 2 * PAR_GEMM_MIN_ROWS {
        let blocks = (rayon::current_num_threads() * 2).max(2);
        let rows = m.div_ceil(blocks).max(PAR_GEMM_MIN_ROWS);
        return c
            .par_chunks_mut(rows * n)
            .enumerate()
            .try_for_each(|(i, cb)| {
                let r0 = i * rows;
                let data = &a.data[r0 * a.rs..];
                let a = MatRef { data, ..a };
                let dims = (rows.min(m - r0), k, n);
                block(op, Product { dims, a, ..p }, cb)
            });
    }
    block(op, p, c)
}

/// Minimum multiply-adds before a GEMM is split across threads.
const PAR_GEMM_WORK: usize = 1 << 21;
/// Minimum rows per parallel GEMM block (the micro-kernel works on 8-row panels).
const PAR_GEMM_MIN_ROWS: usize = 16;

/// One product `alpha·A·B + beta·C`: `(m, k, n)` with `A [m×k]`, `B [k×n]`, and
/// `(alpha, beta)`.
#[derive(Clone, Copy)]
struct Product<'a, T> {
    dims: (usize, usize, usize),
    scale: (T, T),
    a: MatRef<'a, T>,
    b: MatRef<'a, T>,
}

/// One single-threaded GEMM call into contiguous `c`; bounds are checked again, since a row
/// block is addressed on its own.
fn block<T: GemmElem>(
    op: &'static str,
    p: Product<'_, T>,
    c: &mut [T],
) -> Result<(), RuntimeError> {
    let Product {
        dims: (m, k, n),
        scale: (alpha, beta),
        a,
        b,
    } = p;
    if !(fits(a.data.len(), m, k, a.rs, a.cs)
        && fits(b.data.len(), k, n, b.rs, b.cs)
        && fits(c.len(), m, n, n, 1))
    {
        return Err(RuntimeError::shape(
            op,
            format!("internal GEMM block bounds violation (m={m}, k={k}, n={n})"),
        ));
    }
    // SAFETY: `fits` proved every addressed element is inside its slice, strides fit isize
    // (checked by `gemm_into`), and `c` is exclusively borrowed so it cannot alias `a` or `b`.
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
            n as isize,
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
        same_dtype(OP, a, i, t)?;
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
        c: Option<&Tensor>,
        m: usize,
        k: usize,
        n: usize,
        total: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        let mut out = vec![T::ZERO; total];
        if let Some((cv, cs)) = c.and_then(|c| Some((T::slice(c.data())?, c.shape()))) {
            let st = broadcast_strides(cs, &[m, n]);
            let beta = T::from_f32_lossy(g.beta);
            for i in 0..m {
                for j in 0..n {
                    out[i * n + j] = beta.mul(cv[i * st[0] + j * st[1]]);
                }
            }
        }
        let am = MatRef::of(av, a.shape()[1], g.trans_a);
        let bm = MatRef::of(bv, if g.trans_b { k } else { n }, g.trans_b);
        let beta = if c.is_some() { T::ONE } else { T::ZERO };
        let alpha = T::from_f32_lossy(g.alpha);
        gemm_into("gemm", true, m, k, n, alpha, am, bm, beta, &mut out)?;
        Ok(out)
    }
    let data = map_data!(OP, (a, b), [F32, F64], |av, bv| {
        go(g, a, av, bv, c, m, k, n, total)?
    })?;
    make(OP, out_shape, data)
}

/// numpy `matmul`: 1-D operands are promoted (and the added axis removed afterwards), leading
/// batch dimensions broadcast. Floats use GEMM; i32/i64 use a wrapping triple loop.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "matmul";
    same_dtype(OP, a, 1, b)?;
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
    let bt = Batches {
        dims: (m, k, n),
        count: nbatch,
        offsets: &offsets,
    };
    let data = match (a.data(), b.data()) {
        (TensorData::I32(x), TensorData::I32(y)) => TensorData::I32(bt.naive(x, y, total)?),
        (TensorData::I64(x), TensorData::I64(y)) => TensorData::I64(bt.naive(x, y, total)?),
        _ => map_data!(OP, (a, b), [F32, F64], |x, y| bt.gemm(x, y, total, fold)?)?,
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

/// The products of a numpy matmul: `count` of them, each `[m×k]·[k×n]` with `dims =
/// (m, k, n)`; `offsets(i)` gives product `i`'s element offsets into A and B (broadcast
/// batches share one).
struct Batches<'a> {
    dims: (usize, usize, usize),
    count: usize,
    offsets: &'a dyn Fn(usize) -> (usize, usize),
}

impl Batches<'_> {
    /// Runs `f(A_i, B_i, C_i)` for every product, `C_i` being the `i`-th `[m×n]` block of
    /// `out`.
    fn each<'d, T>(
        &self,
        (av, bv): (&'d [T], &'d [T]),
        out: &mut [T],
        mut f: impl FnMut(MatRef<'d, T>, MatRef<'d, T>, &mut [T]) -> Result<(), RuntimeError>,
    ) -> Result<(), RuntimeError> {
        let (m, k, n) = self.dims;
        for (i, c) in out.chunks_mut((m * n).max(1)).enumerate().take(self.count) {
            let (oa, ob) = (self.offsets)(i);
            let am = MatRef::of(&av[oa.min(av.len())..], k, false);
            let bm = MatRef::of(&bv[ob.min(bv.len())..], n, false);
            f(am, bm, c)?;
        }
        Ok(())
    }

    /// Floats: GEMM per product, or one GEMM over all of them when `fold` (B shared by every
    /// product and A's products contiguous).
    fn gemm<T: GemmElem>(
        &self,
        av: &[T],
        bv: &[T],
        total: usize,
        fold: bool,
    ) -> Result<Vec<T>, RuntimeError> {
        let (m, k, n) = self.dims;
        let mut out = vec![T::ZERO; total];
        let run = |mm: usize, am, bm, c: &mut [T]| {
            gemm_into("matmul", true, mm, k, n, T::ONE, am, bm, T::ZERO, c)
        };
        if fold {
            let (am, bm) = (MatRef::of(av, k, false), MatRef::of(bv, n, false));
            run(m * self.count, am, bm, &mut out)?;
        } else {
            self.each((av, bv), &mut out, |am, bm, c| run(m, am, bm, c))?;
        }
        Ok(out)
    }

    /// Integers: the wrapping triple loop per product.
    fn naive<T: Arith + Default>(
        &self,
        av: &[T],
        bv: &[T],
        total: usize,
    ) -> Result<Vec<T>, RuntimeError> {
        let (m, k, n) = self.dims;
        let mut out = vec![T::ZERO; total];
        self.each((av, bv), &mut out, |am, bm, c| {
            gemm_naive(m, k, n, am, bm, c, n);
            Ok(())
        })?;
        Ok(out)
    }
}
