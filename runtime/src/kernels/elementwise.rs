//! Element-wise kernels: numpy-broadcasting arithmetic, activations, PRelu and Clip.

use rayon::prelude::*;
use strata_ir::ops::{BinaryOp, Clip, UnaryOp};
use strata_ir::{Tensor, TensorData};

use super::{checked_numel, for_each_chunk, make, map_data, same_dtype, strides_of, Elem};
use crate::RuntimeError;

/// Below this many elements, spawning rayon tasks costs more than it saves.
const PAR_THRESHOLD: usize = 1 << 15;

/// Arithmetic shared by every numeric element type. Integers wrap on overflow (as numpy and
/// the ONNX reference do) and divide truncating toward zero; callers rule out a zero divisor.
pub(crate) trait Arith: Copy + Send + Sync + PartialOrd + 'static {
    const ZERO: Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// `self` to the power `o` (for integers: see [`int_pow`]).
    fn pow(self, o: Self) -> Self;
    fn is_int() -> bool;
}

macro_rules! impl_arith_float {
    ($($t:ty => $pow:expr),*) => {$(
        impl Arith for $t {
            const ZERO: Self = 0.0;
            fn add(self, o: Self) -> Self { self + o }
            fn sub(self, o: Self) -> Self { self - o }
            fn mul(self, o: Self) -> Self { self * o }
            fn div(self, o: Self) -> Self { self / o }
            fn pow(self, o: Self) -> Self { $pow(self, o) }
            fn is_int() -> bool { false }
        }
    )*};
}
macro_rules! impl_arith_int {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            const ZERO: Self = 0;
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            fn div(self, o: Self) -> Self { if o == 0 { 0 } else { self.wrapping_div(o) } }
            fn pow(self, o: Self) -> Self { int_pow(self as i64, o as i64) as $t }
            fn is_int() -> bool { true }
        }
    )*};
}
impl_arith_float!(f32 => pow_f32, f64 => f64::powf);

/// ONNX Pow on f32, as every backend computes it (the C prelude's `pow_f32` and the MLIR
/// backend repeat these branches). The exponents models use most have an exact sequence of
/// IEEE operations, so they give the same bits on every target and under every compiler:
/// a C compiler folds `powf(x, 2.0f)` into `x * x` when the exponent is a literal, while the
/// C library's `powf` (glibc's, which Rust's `f32::powf` calls) is not correctly rounded and
/// can be 1 ULP away from `x * x`. Each branch keeps `powf`'s special cases:
/// - `1`: `x`; `2`: `x·x`; `3`: `(x·x)·x`; `−1`: `1 / x`;
/// - `0.5`: `√x`, except `±0 → +0` and `−∞ → +∞` (where `sqrt` gives `−0` and NaN);
/// - any other exponent: the C library's `powf` (called with a run-time exponent, so no
///   compiler folds it).
pub fn pow_f32(x: f32, e: f32) -> f32 {
    if e == 1.0 {
        x
    } else if e == 2.0 {
        x * x
    } else if e == 3.0 {
        x * x * x
    } else if e == -1.0 {
        1.0 / x
    } else if e == 0.5 {
        if x == 0.0 {
            0.0
        } else if x == f32::NEG_INFINITY {
            f32::INFINITY
        } else {
            x.sqrt()
        }
    } else {
        x.powf(e)
    }
}

/// Integer power, wrapping like numpy's (computed in i64 and truncated: the low bits of a
/// product depend only on the low bits of its factors). numpy refuses a negative exponent;
/// here it gives the truncated reciprocal `1 / base^|e|`: 1 for base 1, ±1 for base −1 by
/// the exponent's parity, else 0 — a total function, so no input can make the kernel fail.
fn int_pow(base: i64, exp: i64) -> i64 {
    if exp >= 0 {
        // Exponents beyond u32 only matter for bases 0, ±1, where the parity is kept.
        let e = if exp > u32::MAX as i64 {
            u32::MAX - 1 + (exp % 2) as u32
        } else {
            exp as u32
        };
        return base.wrapping_pow(e);
    }
    match base {
        1 => 1,
        -1 if exp % 2 == 0 => 1,
        -1 => -1,
        _ => 0,
    }
}
impl_arith_int!(i8, u8, i16, i32, i64);

/// Floating-point element types, for the transcendental activations.
pub(crate) trait Real: Arith {
    fn from_f32(v: f32) -> Self;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn abs(self) -> Self;
    fn max_of(self, o: Self) -> Self;
    fn min_of(self, o: Self) -> Self;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    const ONE: Self;
    const NEG_INF: Self;
}

macro_rules! impl_real {
    ($($t:ident => $tanh:path, $erf:path),*) => {$(
        impl Real for $t {
            fn from_f32(v: f32) -> Self { v as $t }
            fn exp(self) -> Self { $t::exp(self) }
            fn tanh(self) -> Self { $tanh(self) }
            fn erf(self) -> Self { $erf(self) }
            fn ln(self) -> Self { $t::ln(self) }
            fn sqrt(self) -> Self { $t::sqrt(self) }
            fn floor(self) -> Self { $t::floor(self) }
            fn ceil(self) -> Self { $t::ceil(self) }
            fn abs(self) -> Self { $t::abs(self) }
            fn max_of(self, o: Self) -> Self { $t::max(self, o) }
            fn min_of(self, o: Self) -> Self { $t::min(self, o) }
            fn to_f64(self) -> f64 { self as f64 }
            fn from_f64(v: f64) -> Self { v as $t }
            const ONE: Self = 1.0;
            const NEG_INF: Self = $t::NEG_INFINITY;
        }
    )*};
}
// f32 tanh and erf are strata_ir::math's deterministic ones, which the C and MLIR backends
// repeat bit for bit on every ISA; f64 (never lowered to C) uses the library functions.
impl_real!(f32 => strata_ir::math::tanh_f32, strata_ir::math::erf_f32, f64 => f64::tanh, libm::erf);

/// The numpy broadcast of two shapes (right-aligned; each pair equal or one of them 1).
pub fn broadcast_shape(
    op: &'static str,
    a: &[usize],
    b: &[usize],
) -> Result<Vec<usize>, RuntimeError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(RuntimeError::Shape {
                    op,
                    reason: format!("shapes {a:?} and {b:?} cannot be broadcast together"),
                })
            }
        };
    }
    Ok(out)
}

/// Strides of `shape` as seen from a broadcast result of rank `rank` (0 on broadcast axes).
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let own = strides_of(shape);
    (0..rank)
        .map(|i| {
            if i + shape.len() < rank {
                0
            } else {
                let j = i + shape.len() - rank;
                if shape[j] == 1 && out[i] != 1 {
                    0
                } else {
                    own[j]
                }
            }
        })
        .collect()
}

/// Applies `f` over the numpy broadcast of `a` and `b`; returns the output shape and data.
pub(crate) fn broadcast_apply<A, B, O, F>(
    op: &'static str,
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    f: F,
) -> Result<(Vec<usize>, Vec<O>), RuntimeError>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Copy + Send + Sync + Default,
    F: Fn(A, B) -> O + Sync + Send,
{
    let out_shape = broadcast_shape(op, a_shape, b_shape)?;
    let n = checked_numel(op, &out_shape)?;
    let par = n >= PAR_THRESHOLD;
    if a_shape == b_shape {
        let data = if par {
            a.par_iter()
                .zip(b.par_iter())
                .map(|(&x, &y)| f(x, y))
                .collect()
        } else {
            a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
        };
        return Ok((out_shape, data));
    }
    // One operand a scalar: a plain map over the other (parallel on the same size rule).
    if b.len() == 1 && n == a.len() {
        let y = b[0];
        return Ok((out_shape, map_vec(a, |x| f(x, y))));
    }
    if a.len() == 1 && n == b.len() {
        let x = a[0];
        return Ok((out_shape, map_vec(b, |y| f(x, y))));
    }
    let mut out = vec![O::default(); n];
    if n == 0 {
        return Ok((out_shape, out));
    }
    let rank = out_shape.len();
    let sa = broadcast_strides(a_shape, &out_shape);
    let sb = broadcast_strides(b_shape, &out_shape);
    let inner = out_shape[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let outer_shape = &out_shape[..rank - 1];
    let row = |r: usize, dst: &mut [O]| {
        let (mut oa, mut ob, mut rem) = (0usize, 0usize, r);
        for d in (0..outer_shape.len()).rev() {
            let i = rem % outer_shape[d];
            rem /= outer_shape[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        for (k, o) in dst.iter_mut().enumerate() {
            *o = f(a[oa + k * ia], b[ob + k * ib]);
        }
    };
    for_each_chunk(&mut out, inner, par, row);
    Ok((out_shape, out))
}

fn binary_typed<T: Arith + Default>(
    op: BinaryOp,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
) -> Result<(Vec<usize>, Vec<T>), RuntimeError> {
    let name = op_name(op);
    match op {
        BinaryOp::Add => broadcast_apply(name, a, a_shape, b, b_shape, T::add),
        BinaryOp::Sub => broadcast_apply(name, a, a_shape, b, b_shape, T::sub),
        BinaryOp::Mul => broadcast_apply(name, a, a_shape, b, b_shape, T::mul),
        BinaryOp::Pow => broadcast_apply(name, a, a_shape, b, b_shape, T::pow),
        BinaryOp::Div => {
            if T::is_int() {
                // Validate shapes first so a shape error is reported as such.
                let out_shape = broadcast_shape(name, a_shape, b_shape)?;
                if out_shape.iter().product::<usize>() > 0 {
                    if let Some(position) = b.iter().position(|&y| y == T::ZERO) {
                        return Err(RuntimeError::DivisionByZero { op: name, position });
                    }
                }
            }
            broadcast_apply(name, a, a_shape, b, b_shape, T::div)
        }
    }
}

fn op_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Pow => "pow",
    }
}

/// Add/Sub/Mul/Div with numpy broadcasting. Both inputs must share the element type.
/// Integer division truncates toward zero (ONNX reference: true division cast back).
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, RuntimeError> {
    let name = op_name(op);
    same_dtype(name, a, 1, b)?;
    let (sa, sb) = (a.shape(), b.shape());
    let data = map_data!(name, (a, b), [F32, F64, I8, U8, I32, I64], |x, y| {
        binary_typed(op, x, sa, y, sb)?.1
    })?;
    make(name, broadcast_shape(name, sa, sb)?, data)
}

fn unary_name(u: UnaryOp) -> &'static str {
    match u {
        UnaryOp::Relu => "relu",
        UnaryOp::LeakyRelu { .. } => "leaky_relu",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::HardSigmoid { .. } => "hard_sigmoid",
        UnaryOp::HardSwish => "hard_swish",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Erf => "erf",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Neg => "neg",
        UnaryOp::Abs => "abs",
        UnaryOp::Reciprocal => "reciprocal",
        UnaryOp::Floor => "floor",
        UnaryOp::Ceil => "ceil",
    }
}

/// The scalar function of a float activation.
pub(crate) fn real_fn<T: Real>(u: UnaryOp) -> impl Fn(T) -> T + Sync + Send {
    move |x: T| match u {
        // `x < 0` keeps NaN as NaN, like numpy's maximum.
        UnaryOp::Relu => {
            if x < T::ZERO {
                T::ZERO
            } else {
                x
            }
        }
        UnaryOp::LeakyRelu { alpha } => {
            if x < T::ZERO {
                T::from_f32(alpha).mul(x)
            } else {
                x
            }
        }
        // Split by sign so exp never overflows.
        UnaryOp::Sigmoid => {
            if x >= T::ZERO {
                T::ONE.div(T::ONE.add(T::ZERO.sub(x).exp()))
            } else {
                let e = x.exp();
                e.div(T::ONE.add(e))
            }
        }
        UnaryOp::HardSigmoid { alpha, beta } => {
            let y = T::from_f32(alpha).mul(x).add(T::from_f32(beta));
            T::ZERO.max_of(T::ONE.min_of(y))
        }
        UnaryOp::HardSwish => {
            let y = T::from_f64(1.0 / 6.0).mul(x).add(T::from_f64(0.5));
            x.mul(T::ZERO.max_of(T::ONE.min_of(y)))
        }
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Erf => x.erf(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Neg => T::ZERO.sub(x),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Reciprocal => T::ONE.div(x),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
    }
}

/// Applies a float activation in place. Relu gets its own branch-free loop (the common
/// case on large activations), which the compiler vectorises.
fn apply_real<T: Real>(u: UnaryOp, v: &mut [T]) {
    match u {
        UnaryOp::Relu => map_in_place(v, |x| if x < T::ZERO { T::ZERO } else { x }),
        other => map_in_place(v, real_fn::<T>(other)),
    }
}

fn map_vec<T, O, F>(v: &[T], f: F) -> Vec<O>
where
    T: Copy + Sync,
    O: Send,
    F: Fn(T) -> O + Sync + Send,
{
    if v.len() >= PAR_THRESHOLD {
        v.par_iter().map(|&x| f(x)).collect()
    } else {
        v.iter().map(|&x| f(x)).collect()
    }
}

fn map_in_place<T: Copy + Send + Sync, F: Fn(T) -> T + Sync + Send>(v: &mut [T], f: F) {
    if v.len() >= PAR_THRESHOLD {
        // Contiguous blocks keep the inner loop simple enough to vectorise.
        v.par_chunks_mut(PAR_THRESHOLD / 4)
            .for_each(|c| c.iter_mut().for_each(|x| *x = f(*x)));
    } else {
        v.iter_mut().for_each(|x| *x = f(*x));
    }
}

fn relu_int<T: Arith>(x: T) -> T {
    if x < T::ZERO {
        T::ZERO
    } else {
        x
    }
}

/// Neg and Abs on integers wrap (`-(-128)` is −128 in i8), as numpy does.
fn neg_int<T: Arith>(x: T) -> T {
    T::ZERO.sub(x)
}

fn abs_int<T: Arith>(x: T) -> T {
    if x < T::ZERO {
        T::ZERO.sub(x)
    } else {
        x
    }
}

/// Applies the integer form of Relu, Neg or Abs; false for the float-only functions.
fn apply_int<T: Arith>(u: UnaryOp, v: &mut [T]) -> bool {
    match u {
        UnaryOp::Relu => map_in_place(v, relu_int::<T>),
        UnaryOp::Neg => map_in_place(v, neg_int::<T>),
        UnaryOp::Abs => map_in_place(v, abs_int::<T>),
        _ => return false,
    }
    true
}

/// One-input functions. Floats support every function; signed integers support Relu (as
/// ONNX Relu-14 does), Neg and Abs; unsigned ones Relu and Abs (both the identity).
pub fn unary(u: UnaryOp, x: &Tensor) -> Result<Tensor, RuntimeError> {
    unary_owned(u, x.clone())
}

/// [`unary`] computing in place in the input's buffer (used when the input is dead after this op).
pub fn unary_owned(u: UnaryOp, x: Tensor) -> Result<Tensor, RuntimeError> {
    let name = unary_name(u);
    let shape = x.shape().to_vec();
    let dtype = x.dtype();
    let mut data = x.into_data();
    let ok = match &mut data {
        TensorData::F32(v) => {
            apply_real(u, v);
            true
        }
        TensorData::F64(v) => {
            apply_real(u, v);
            true
        }
        TensorData::I8(v) => apply_int(u, v),
        TensorData::U8(_) => matches!(u, UnaryOp::Relu | UnaryOp::Abs),
        TensorData::I32(v) => apply_int(u, v),
        TensorData::I64(v) => apply_int(u, v),
        TensorData::Bool(_) => false,
    };
    if !ok {
        return Err(RuntimeError::unsupported(name, 0, dtype));
    }
    make(name, shape, data)
}

/// PRelu: `x < 0 ? slope * x : x`, with `slope` unidirectionally broadcast to `x`'s shape.
pub fn prelu(x: &Tensor, slope: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "prelu";
    same_dtype(OP, x, 1, slope)?;
    let out = broadcast_shape(OP, x.shape(), slope.shape())?;
    if out != x.shape() {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "slope shape {:?} does not broadcast to the input shape {:?}",
                slope.shape(),
                x.shape()
            ),
        });
    }
    fn go<T: Arith + Default>(
        x: &[T],
        xs: &[usize],
        s: &[T],
        ss: &[usize],
    ) -> Result<Vec<T>, RuntimeError> {
        broadcast_apply(
            OP,
            x,
            xs,
            s,
            ss,
            |x, a| if x < T::ZERO { a.mul(x) } else { x },
        )
        .map(|r| r.1)
    }
    let (xs, ss) = (x.shape(), slope.shape());
    let data = map_data!(OP, (x, slope), [F32, F64, I8, I32, I64], |a, b| {
        go(a, xs, b, ss)?
    })?;
    make(OP, x.shape().to_vec(), data)
}

/// Clip to optional scalar bounds: `min(max(x, lo), hi)`, so `lo > hi` yields `hi` as in
/// numpy, and NaN passes through unchanged.
pub fn clip(c: &Clip, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "clip";
    let x = inputs[0];
    let mut next = 1;
    let mut bound = |present: bool| -> Result<Option<&Tensor>, RuntimeError> {
        if !present {
            return Ok(None);
        }
        let t = inputs[next];
        same_dtype(OP, x, next, t)?;
        if t.len() != 1 {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!(
                    "bound (input {next}) must be a scalar, got shape {:?}",
                    t.shape()
                ),
            });
        }
        next += 1;
        Ok(Some(t))
    };
    let lo = bound(c.has_min)?;
    let hi = bound(c.has_max)?;
    fn go<T: Arith>(v: &[T], lo: Option<&[T]>, hi: Option<&[T]>) -> Vec<T> {
        let lo = lo.map(|s| s[0]);
        let hi = hi.map(|s| s[0]);
        map_vec(v, |x| {
            let y = match lo {
                Some(l) if x < l => l,
                _ => x,
            };
            match hi {
                Some(h) if y > h => h,
                _ => y,
            }
        })
    }
    fn typed<T: Arith + Elem>(x: &[T], lo: Option<&Tensor>, hi: Option<&Tensor>) -> TensorData {
        fn get<T: Elem>(t: Option<&Tensor>) -> Option<&[T]> {
            t.and_then(|t| T::slice(t.data()))
        }
        T::wrap(go(x, get::<T>(lo), get::<T>(hi)))
    }
    let data = match x.data() {
        TensorData::F32(v) => typed(v, lo, hi),
        TensorData::F64(v) => typed(v, lo, hi),
        TensorData::I8(v) => typed(v, lo, hi),
        TensorData::U8(v) => typed(v, lo, hi),
        TensorData::I32(v) => typed(v, lo, hi),
        TensorData::I64(v) => typed(v, lo, hi),
        TensorData::Bool(_) => return Err(RuntimeError::unsupported(OP, 0, x.dtype())),
    };
    make(OP, x.shape().to_vec(), data)
}
