//! Op kernels, one file per op family (mirroring `strata_ir::ops`), and the dispatcher that
//! maps an [`Op`] to its kernel. Kernels compute output shapes from the concrete inputs and
//! never trust declared types, which may contain the symbolic batch dimension.

pub mod bitplane;
pub mod cast;
pub mod conv;
pub mod elementwise;
pub(crate) mod index;
pub mod layout;
pub mod linear;
pub mod normalization;
pub mod pool;
pub mod qdq;
pub mod recurrent;
pub mod reduce;
pub mod resize;
pub mod select;
pub mod variadic;
mod window;

use rayon::prelude::*;
use strata_ir::{Op, Tensor, TensorData};

use crate::RuntimeError;
pub use bitplane::QuantPath;

/// Largest element count a kernel will allocate ([`strata_ir::limits`]). Bigger requests
/// come from corrupt or malicious shapes, and failing cleanly beats an out-of-memory abort.
pub const MAX_ELEMENTS: usize = strata_ir::limits::MAX_TENSOR_ELEMENTS as usize;

/// Evaluates one op on concrete tensors. Used by [`crate::run`] and by constant folding.
/// Bit-plane layers run at their default plane count on the integer path.
pub fn eval_op(op: &Op, inputs: &[&Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
    eval_op_with(op, inputs, None, QuantPath::Integer)
}

/// [`eval_op`] with the bit-plane choices: the plane count (`None`: the layer's default) and
/// the path. Other ops ignore them, so the interpreter can pass them to every node.
pub fn eval_op_with(
    op: &Op,
    inputs: &[&Tensor],
    planes: Option<u8>,
    path: QuantPath,
) -> Result<Vec<Tensor>, RuntimeError> {
    eval_op_cached(op, inputs, planes, path, None)
}

/// [`eval_op_with`] where a bit-plane layer takes its prepared codes from `cache` under the
/// node's id (the caller has checked that its weights are graph constants).
pub(crate) fn eval_op_cached(
    op: &Op,
    inputs: &[&Tensor],
    planes: Option<u8>,
    path: QuantPath,
    cache: Option<(&bitplane::PreparedCache, strata_ir::NodeId)>,
) -> Result<Vec<Tensor>, RuntimeError> {
    check_arity(op, inputs.len())?;
    let one = |t: Tensor| vec![t];
    // Exhaustive on purpose: an IR op without a kernel fails the build here instead of
    // failing a user's model at run time.
    Ok(match op {
        Op::Conv(c) => one(conv::conv(c, inputs)?),
        Op::ConvTranspose(c) => one(conv::conv_transpose(c, inputs)?),
        Op::Gemm(g) => one(linear::gemm(g, inputs)?),
        Op::MatMul => one(linear::matmul(inputs[0], inputs[1])?),
        Op::Binary(b) => one(elementwise::binary(*b, inputs[0], inputs[1])?),
        Op::Variadic(v) => one(variadic::variadic(*v, inputs)?),
        Op::Unary(u) => one(elementwise::unary(*u, inputs[0])?),
        Op::Compare(c) => one(select::compare(*c, inputs[0], inputs[1])?),
        Op::Where => one(select::where_(inputs[0], inputs[1], inputs[2])?),
        Op::PRelu => one(elementwise::prelu(inputs[0], inputs[1])?),
        Op::Clip(c) => one(elementwise::clip(c, inputs)?),
        Op::BatchNorm(b) => one(normalization::batch_norm(b, inputs)?),
        Op::Softmax(s) => one(normalization::softmax(s, inputs[0])?),
        Op::MaxPool(p) => one(pool::max_pool(p, inputs[0])?),
        Op::AveragePool(p) => one(pool::average_pool(p, inputs[0])?),
        Op::GlobalPool(k) => one(pool::global_pool(*k, inputs[0])?),
        Op::Flatten { axis } => one(layout::flatten(*axis, inputs[0].clone())?),
        Op::Reshape(r) => one(layout::reshape(r, inputs[0].clone())?),
        Op::Transpose { perm } => one(layout::transpose(perm, inputs[0])?),
        Op::Concat { axis } => one(layout::concat(*axis, inputs)?),
        Op::Pad(p) => one(layout::pad(p, inputs[0])?),
        Op::Squeeze { axes } => one(layout::squeeze(axes, inputs[0].clone())?),
        Op::Unsqueeze { axes } => one(layout::unsqueeze(axes, inputs[0].clone())?),
        Op::Identity => one(inputs[0].clone()),
        Op::Shape { start, end } => one(layout::shape(*start, *end, inputs[0])?),
        Op::Gather { axis } => one(layout::gather(*axis, inputs[0], inputs[1])?),
        Op::Slice(s) => one(layout::slice(s, inputs[0])?),
        Op::Split(s) => layout::split(s, inputs[0])?,
        Op::ReduceMean(r) => one(reduce::reduce_mean(r, inputs[0])?),
        Op::ReduceMax(r) => one(reduce::reduce_max(r, inputs[0])?),
        Op::ReduceSum(r) => one(reduce::reduce_sum(r, inputs[0])?),
        Op::ArgMax(a) => one(reduce::arg_max(a, inputs[0])?),
        Op::Expand { shape } => one(layout::expand(shape, inputs[0])?),
        Op::Resize(r) => one(resize::resize(r, inputs[0])?),
        Op::QuantizeLinear(q) => one(qdq::quantize(q, inputs[0], inputs[1], inputs[2])?),
        Op::DequantizeLinear(q) => one(qdq::dequantize(q, inputs[0], inputs[1], inputs[2])?),
        Op::Cast { to } => one(cast::cast(inputs[0], *to)),
        Op::Lstm(l) => recurrent::lstm(l, inputs)?,
        Op::Gru(g) => recurrent::gru(g, inputs)?,
        Op::Bitplane(b) => one(bitplane::bitplane_cached(b, inputs, planes, path, cache)?),
    })
}

/// Like [`eval_op`] but takes ownership of the first input, so that ops which only relabel
/// the shape (or work in place) avoid copying large activations. [`crate::run`] uses it when
/// the first input is an intermediate value at its last use.
pub fn eval_op_owned(
    op: &Op,
    first: Tensor,
    rest: &[&Tensor],
) -> Result<Vec<Tensor>, RuntimeError> {
    check_arity(op, rest.len() + 1)?;
    match owning_kernel(op) {
        Some(kernel) => Ok(vec![kernel(first)?]),
        None => {
            let mut all: Vec<&Tensor> = Vec::with_capacity(rest.len() + 1);
            all.push(&first);
            all.extend_from_slice(rest);
            eval_op(op, &all)
        }
    }
}

/// True for ops that [`eval_op_owned`] can execute without copying their first input.
pub fn benefits_from_ownership(op: &Op) -> bool {
    owning_kernel(op).is_some()
}

type OwningKernel<'a> = Box<dyn FnOnce(Tensor) -> Result<Tensor, RuntimeError> + 'a>;

/// The kernel that consumes the op's (only) input, for ops that relabel the shape or work in
/// place; `None` for ops that read their inputs. Exhaustive, so a new op decides.
fn owning_kernel(op: &Op) -> Option<OwningKernel<'_>> {
    Some(match op {
        Op::Flatten { axis } => Box::new(move |t| layout::flatten(*axis, t)),
        Op::Reshape(r) => Box::new(move |t| layout::reshape(r, t)),
        Op::Squeeze { axes } => Box::new(move |t| layout::squeeze(axes, t)),
        Op::Unsqueeze { axes } => Box::new(move |t| layout::unsqueeze(axes, t)),
        Op::Identity => Box::new(Ok),
        Op::Unary(u) => Box::new(move |t| elementwise::unary_owned(*u, t)),
        Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Gemm(_)
        | Op::MatMul
        | Op::Binary(_)
        | Op::Variadic(_)
        | Op::PRelu
        | Op::Clip(_)
        | Op::BatchNorm(_)
        | Op::Softmax(_)
        | Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalPool(_)
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Pad(_)
        | Op::Shape { .. }
        | Op::Gather { .. }
        | Op::Slice(_)
        | Op::Split(_)
        | Op::ReduceMean(_)
        | Op::ReduceMax(_)
        | Op::ReduceSum(_)
        | Op::ArgMax(_)
        | Op::Compare(_)
        | Op::Where
        | Op::Expand { .. }
        | Op::Resize(_)
        | Op::QuantizeLinear(_)
        | Op::DequantizeLinear(_)
        | Op::Cast { .. }
        | Op::Lstm(_)
        | Op::Gru(_)
        | Op::Bitplane(_) => return None,
    })
}

/// The op's own input-count rule as a runtime error.
pub(crate) fn check_arity(op: &Op, got: usize) -> Result<(), RuntimeError> {
    op.check_input_count(got)
        .map_err(|expected| RuntimeError::Arity {
            op: op.mnemonic(),
            expected,
            got,
        })
}

/// Element count of a shape, refusing overflow and absurd sizes before anything is allocated.
pub(crate) fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize, RuntimeError> {
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    n.ok_or_else(|| RuntimeError::TooLarge {
        op,
        shape: shape.iter().map(|&d| d as u128).collect(),
    })
}

/// Input `input` (`t`) must have the element type of `first` (input 0): kernels compute in
/// one type.
pub(crate) fn same_dtype(
    op: &'static str,
    first: &Tensor,
    input: usize,
    t: &Tensor,
) -> Result<(), RuntimeError> {
    if t.dtype() == first.dtype() {
        return Ok(());
    }
    Err(RuntimeError::DTypeMismatch {
        op,
        input,
        expected: first.dtype(),
        got: t.dtype(),
    })
}

/// Evaluates `$body` with `$v` bound to the elements of `$t` for each listed element type and
/// wraps the result in the same variant (`Ok(TensorData)`); any other type is
/// [`RuntimeError::UnsupportedDType`] for input 0. The second form binds two operands that
/// must hold the same type. One arm per type is what every typed kernel needs, written once.
macro_rules! map_data {
    ($op:expr, $t:expr, [$($var:ident),+], |$v:ident| $body:expr) => {
        match $t.data() {
            $(strata_ir::TensorData::$var($v) => Ok(strata_ir::TensorData::$var($body)),)+
            _ => Err($crate::RuntimeError::unsupported($op, 0, $t.dtype())),
        }
    };
    ($op:expr, ($a:expr, $b:expr), [$($var:ident),+], |$x:ident, $y:ident| $body:expr) => {
        match ($a.data(), $b.data()) {
            $((strata_ir::TensorData::$var($x), strata_ir::TensorData::$var($y)) => {
                Ok(strata_ir::TensorData::$var($body))
            })+
            _ => Err($crate::RuntimeError::unsupported($op, 0, $a.dtype())),
        }
    };
}
pub(crate) use map_data;

/// Runs `f(i, chunk_i)` on the consecutive `chunk`-element pieces of `out`, on rayon when
/// `par` (the caller decides what is large enough to be worth the tasks).
pub(crate) fn for_each_chunk<T: Send>(
    out: &mut [T],
    chunk: usize,
    par: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if par {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Row-major strides of a shape.
pub(crate) fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Builds a tensor whose data length is known to match the shape (kernel-internal use).
pub(crate) fn make(
    op: &'static str,
    shape: Vec<usize>,
    data: TensorData,
) -> Result<Tensor, RuntimeError> {
    Tensor::new(shape, data).map_err(|e| RuntimeError::Shape {
        op,
        reason: format!("internal size mismatch: {e}"),
    })
}

/// Any element type, for the data-movement kernels that work on every dtype.
pub(crate) trait Elem: Copy + Send + Sync + Default + 'static {
    /// The elements if `data` holds this type.
    fn slice(data: &TensorData) -> Option<&[Self]>;
    /// Wraps a vector of this type.
    fn wrap(v: Vec<Self>) -> TensorData;
    /// Converts a scalar attribute (such as a pad value) the way a C cast would.
    fn from_f64(v: f64) -> Self;
}

macro_rules! impl_elem {
    ($($t:ty => $var:ident),*) => {$(
        impl Elem for $t {
            fn slice(data: &TensorData) -> Option<&[Self]> {
                match data {
                    TensorData::$var(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$var(v)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    )*};
}
impl_elem!(f32 => F32, f64 => F64, i8 => I8, u8 => U8, i32 => I32, i64 => I64);

impl Elem for bool {
    fn slice(data: &TensorData) -> Option<&[Self]> {
        match data {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<Self>) -> TensorData {
        TensorData::Bool(v)
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
}

/// Calls a generic function for the element type `$dtype`: `$f::<T>(args…)` with `T` bound to
/// the Rust type of the dtype.
macro_rules! with_elem {
    ($dtype:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $dtype {
            strata_ir::DType::F32 => $f::<f32>($($arg),*),
            strata_ir::DType::F64 => $f::<f64>($($arg),*),
            strata_ir::DType::I8 => $f::<i8>($($arg),*),
            strata_ir::DType::U8 => $f::<u8>($($arg),*),
            strata_ir::DType::I32 => $f::<i32>($($arg),*),
            strata_ir::DType::I64 => $f::<i64>($($arg),*),
            strata_ir::DType::Bool => $f::<bool>($($arg),*),
        }
    };
}
pub(crate) use with_elem;
