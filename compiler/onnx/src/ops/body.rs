//! A builder for ops imported as their function bodies (Elu, Softplus,
//! InstanceNormalization, ReduceL2, DepthToSpace, …): the ONNX spec defines each as a
//! composition of ops the IR already has, so importing the composition gives every backend
//! the op with kernels it already runs bit for bit, and no new IR op to keep in step.

use strata_ir::ops::{BinaryOp, UnaryOp};
use strata_ir::{DType, Op, Tensor, TensorData, ValueRef};

use super::{helper, single, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::OnnxError;

/// The steps of one node's body: each a helper node `{node}_{suffix}`, scalar constants in
/// the input's float type, the last step bound to the node's own output by [`Body::finish`].
pub(super) struct Body<'i, 'c, 'p> {
    pub imp: &'i mut Importer,
    ctx: &'c NodeCtx<'p>,
    dtype: DType,
}

impl<'i, 'c, 'p> Body<'i, 'c, 'p> {
    /// A body over the float value `x` (f32 or f64); other element types are refused, naming
    /// the node, since the bodies use float functions.
    pub fn float(
        imp: &'i mut Importer,
        ctx: &'c NodeCtx<'p>,
        x: ValueRef,
    ) -> Result<Self, OnnxError> {
        let dtype = imp.ty(x)?.dtype;
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(ctx.unsupported(format!(
                "input of element type {dtype} (`{}` is imported as float arithmetic)",
                ctx.op_type
            )));
        }
        Ok(Body { imp, ctx, dtype })
    }

    pub fn ctx(&self) -> &NodeCtx<'p> {
        self.ctx
    }

    /// One step of the body.
    pub fn step(&mut self, suffix: &str, op: Op, args: &[ValueRef]) -> Result<ValueRef, OnnxError> {
        helper(self.imp, self.ctx, suffix, op, args)
    }

    pub fn unary(&mut self, suffix: &str, u: UnaryOp, x: ValueRef) -> Result<ValueRef, OnnxError> {
        self.step(suffix, Op::Unary(u), &[x])
    }

    pub fn binary(
        &mut self,
        suffix: &str,
        b: BinaryOp,
        x: ValueRef,
        y: ValueRef,
    ) -> Result<ValueRef, OnnxError> {
        self.step(suffix, Op::Binary(b), &[x, y])
    }

    /// A rank-0 constant `v` in the body's element type (rounded once to f32 there).
    pub fn scalar(&mut self, suffix: &str, v: f64) -> ValueRef {
        let t = match self.dtype {
            DType::F64 => Tensor::new(vec![], TensorData::F64(vec![v]))
                .expect("one element fills a rank-0 shape"),
            _ => Tensor::scalar_f32(v as f32),
        };
        self.imp
            .add_constant(&format!("{}_{suffix}", self.ctx.name), t)
    }

    /// The smallest positive value of the body's element type (a subnormal).
    pub fn tiny(&mut self, suffix: &str) -> ValueRef {
        let t = match self.dtype {
            DType::F64 => Tensor::new(vec![], TensorData::F64(vec![f64::from_bits(1)]))
                .expect("one element fills a rank-0 shape"),
            _ => Tensor::scalar_f32(f32::from_bits(1)),
        };
        self.imp
            .add_constant(&format!("{}_{suffix}", self.ctx.name), t)
    }

    /// `x · c` for a scalar `c` (skipped when `c` is 1, so a default attribute adds no step).
    pub fn scale(&mut self, suffix: &str, x: ValueRef, c: f64) -> Result<ValueRef, OnnxError> {
        if c == 1.0 {
            return Ok(x);
        }
        let k = self.scalar(&format!("{suffix}_value"), c);
        self.binary(suffix, BinaryOp::Mul, x, k)
    }

    /// The last step, named after the node's output.
    pub fn finish(self, op: Op, args: &[ValueRef]) -> Outs {
        single(self.imp, self.ctx, op, args)
    }
}
