//! Matrix products: Gemm and numpy-style MatMul, on top of `matrixmultiply`'s packed GEMM.

use rayon::prelude::*;
use strata_ir::ops::Gemm;
use strata_ir::Tensor;

use super::elementwise::{broadcast_shape, broadcast_strides, Arith};
use super::{checked_numel, for_each_chunk, make, map_data, same_dtype, Elem};
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
/// batch dimensions broadcast. Every element type runs the plain loop of [`Batches::rows`]
/// (integers wrapping): a MatMul left in a quantized graph multiplies two activations
/// (vl-quantize turns the ones with constant weights into bit-plane layers), and the C and
/// MLIR backends must repeat its float accumulation order exactly, which a blocked, FMA-using
/// GEMM does not let them do. Gemm keeps the fast GEMM.
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
    let bt = Batches {
        dims: (m, k, n),
        count: nbatch,
        offsets: &offsets,
    };
    let data = map_data!(OP, (a, b), [F32, F64, I32, I64], |x, y| bt
        .rows(x, y, total)?)?;
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
    offsets: &'a (dyn Fn(usize) -> (usize, usize) + Sync),
}

impl Batches<'_> {
    /// Every product, row by row: output row `i` of product `t` starts at zero and adds
    /// `A[i, p] · B[p, :]` for `p = 0, 1, …, k − 1` in that order, one rounded multiply and
    /// one rounded add per term, so `y[i, j] = (…((0 + a_i0·b_0j) + a_i1·b_1j) + …)`. This is
    /// the order the C backend's `matmul` and the MLIR backend repeat. Rows run on rayon for
    /// large products (each row is computed whole by one thread, so the bits do not change).
    fn rows<T: Arith>(&self, av: &[T], bv: &[T], total: usize) -> Result<Vec<T>, RuntimeError> {
        let (m, k, n) = self.dims;
        let mut out = vec![T::ZERO; total];
        if total == 0 {
            return Ok(out);
        }
        for t in 0..self.count {
            let (oa, ob) = (self.offsets)(t);
            if oa + m * k > av.len() || ob + k * n > bv.len() {
                return Err(RuntimeError::shape(
                    "matmul",
                    format!("internal bounds violation (m={m}, k={k}, n={n}, product {t})"),
                ));
            }
        }
        let par = total.saturating_mul(k) >= PAR_GEMM_WORK;
        for_each_chunk(&mut out, n, par, |r, row| {
            let (oa, ob) = (self.offsets)(r / m);
            let a = &av[oa + (r % m) * k..][..k];
            for (p, &ap) in a.iter().enumerate() {
                let b = &bv[ob + p * n..][..n];
                for (y, &bj) in row.iter_mut().zip(b) {
                    *y = y.add(ap.mul(bj));
                }
            }
        });
        Ok(out)
    }
}
