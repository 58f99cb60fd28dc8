//! `matmul-to-conv`: a MatMul of an activation of rank 3 or 4 with a constant 2-D f32 weight
//! (a transformer's Linear layers on `[N, T, C]`, a channels-last net's on `[N, H, W, C]`)
//! becomes Transpose → Conv with a kernel of ones → Transpose.
//!
//! Why: `vl-quantize` layers Conv, Gemm and MatMul of 2-D inputs. A Linear over the last axis
//! of a 3-D input is a 1-wide convolution over the other axis once the channels come second,
//! and a Conv keeps the leading axis free (the batch), where flattening `[N, T]` into rows
//! cannot (the IR has no `N·T` dimension). So the layer is quantized, emitted as C and lowered
//! to MLIR like any convolution, with the same products summed in the same order (`k` runs
//! over the input channels), at the price of two transposes.
//!
//! Left alone: a MatMul whose weight is not a constant 2-D f32 tensor, whose activation has
//! another rank, an unknown last dimension or a leading axis other than the free batch or 1
//! (`[T, N, C]` with the sequence first, a batch pinned above 1), or which reads a constant on
//! both sides (`fold-constants` computes that one).

use strata_ir::ops::Conv;
use strata_ir::{Dim, Graph, NodeId, Op, Tensor, ValueRef};

use crate::walk::{graph_err, op_nodes, Chain};
use crate::{Pass, PassContext, PassError};

/// See the module documentation.
pub struct MatMulToConv;

const PASS: &str = "matmul-to-conv";

impl MatMulToConv {
    /// Rewrites the MatMul node `id` if it qualifies; returns whether it did.
    fn rewrite(&self, graph: &mut Graph, id: NodeId) -> Result<bool, PassError> {
        let node = graph.node(id).map_err(graph_err(PASS))?;
        if !matches!(node.op(), Some(Op::MatMul)) || node.outputs.len() != 1 {
            return Ok(false);
        }
        let name = node.name.clone();
        let out_name = node.outputs[0].name.clone();
        let inputs = graph.node_inputs(id);
        let (Some(&x), Some(&wv)) = (inputs.first(), inputs.get(1)) else {
            return Ok(false);
        };
        if graph.constant_value(x).is_some() {
            return Ok(false);
        }
        let Some(w) = graph.constant_value(wv) else {
            return Ok(false);
        };
        let (Some(wdata), &[k, r]) = (w.as_f32(), w.shape()) else {
            return Ok(false);
        };
        let x_ty = graph.value(x).map_err(graph_err(PASS))?.ty.clone();
        let rank = x_ty.rank();
        if !(3..=4).contains(&rank) || x_ty.shape.dims().last() != Some(&Dim::Known(k)) {
            return Ok(false);
        }
        // The Conv's images are the leading axis: the free batch, or one. A longer leading
        // axis (the sequence of `[T, N, C]`, a batch pinned above 1) would make a convolution
        // over many images, which the backends' one-image kernels do not lower.
        if !matches!(x_ty.shape.dims().first(), Some(Dim::Batch | Dim::Known(1))) {
            return Ok(false);
        }
        if k == 0 || r == 0 {
            return Ok(false);
        }
        // The Conv's weight `[R, K, 1, …]`: `W[k, r]` transposed.
        let mut wshape = vec![r, k];
        wshape.extend(std::iter::repeat_n(1, rank - 2));
        let weight: Vec<f32> = (0..r)
            .flat_map(|ri| (0..k).map(move |ki| wdata[ki * r + ri]))
            .collect();
        let bad = |reason: String| PassError::Rewrite {
            pass: PASS,
            node: name.clone(),
            reason,
        };
        let weight = Tensor::from_f32(wshape, weight).map_err(|e| bad(e.to_string()))?;
        let weight = graph.add_constant(format!("{name}.conv_weight"), weight);
        let spatial = rank - 2;
        let conv = Op::Conv(Conv {
            kernel: vec![1; spatial],
            strides: vec![1; spatial],
            pads: vec![0; 2 * spatial],
            dilations: vec![1; spatial],
            group: 1,
            has_bias: false,
        });
        // Channels from last to second, and back.
        let mut to_channels = vec![0, rank - 1];
        to_channels.extend(1..rank - 1);
        let mut to_last = vec![0];
        to_last.extend(2..rank);
        to_last.push(1);
        let chain = Chain {
            pass: PASS,
            node: &name,
            output: &out_name,
        };
        let moved = chain.step(graph, "channels", Op::Transpose { perm: to_channels }, &[x])?;
        let conv = chain.step(graph, "conv", conv, &[moved, weight])?;
        let out = chain.step(graph, "back", Op::Transpose { perm: to_last }, &[conv])?;
        let want = graph
            .value(ValueRef::first(id))
            .map_err(graph_err(PASS))?
            .ty
            .clone();
        let got = graph.value(out).map_err(graph_err(PASS))?.ty.clone();
        if want != got {
            return Err(bad(format!(
                "the rewrite gives {got:?} where the MatMul gives {want:?}"
            )));
        }
        chain.finish(graph, id, out)?;
        Ok(true)
    }
}

impl Pass for MatMulToConv {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, _ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for (id, _, op) in op_nodes(graph, PASS)? {
            if matches!(op, Op::MatMul) {
                changed |= self.rewrite(graph, id)?;
            }
        }
        Ok(changed)
    }
}
