//! `fold-batchnorm`: merge an inference-mode BatchNormalization into the Conv or Gemm that
//! feeds it.
//!
//! `y = (conv(x, W) + b − μ)·γ/√(σ²+ε) + β` is again a convolution with per-output-channel
//! scaled weights and a new bias. Folding before quantization matters: the quantizer must see
//! the weights the device will actually multiply by, or its per-channel scales are wrong.
//! The fold applies only when the producer's weights and every BatchNorm parameter are f32
//! constants and the producer's output feeds nothing but the BatchNorm.

use strata_ir::ops::{Conv, Gemm};
use strata_ir::{Graph, NodeId, NodeKind, Op, Tensor, Value, ValueRef};

use crate::{Pass, PassContext, PassError};

/// See the module documentation.
pub struct FoldBatchNorm;

const PASS: &str = "fold-batchnorm";

fn gerr(source: strata_ir::GraphError) -> PassError {
    PassError::Graph { pass: PASS, source }
}

/// The per-channel affine map a BatchNorm applies: `y = scale·x + shift`.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// Reads the BatchNorm parameters if all are f32 constants of length `c`.
fn batchnorm_affine(graph: &Graph, bn_inputs: &[ValueRef], epsilon: f32) -> Option<Affine> {
    let get = |i: usize| -> Option<Vec<f32>> {
        let t = graph.constant_value(*bn_inputs.get(i)?)?;
        Some(t.as_f32()?.to_vec())
    };
    let (gamma, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let c = gamma.len();
    if beta.len() != c || mean.len() != c || var.len() != c {
        return None;
    }
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Some(Affine { scale, shift })
}

fn f32_const(graph: &Graph, v: ValueRef) -> Option<(Vec<usize>, Vec<f32>)> {
    let t = graph.constant_value(v)?;
    Some((t.shape().to_vec(), t.as_f32()?.to_vec()))
}

/// A producer with the BatchNorm's scale folded into its weight: its new op, its weight
/// (shape, data) and its bias before the BatchNorm's shift.
struct Folded {
    op: Op,
    wshape: Vec<usize>,
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl Folded {
    /// The new op, weight and bias constants: channel `i`'s bias becomes
    /// `bias[i]·scale[i] + shift[i]`.
    fn finish(self, a: &Affine) -> Option<(Op, Tensor, Tensor)> {
        let n = self.bias.len();
        let bias: Vec<f32> = (0..n)
            .map(|i| self.bias[i] * a.scale[i] + a.shift[i])
            .collect();
        Some((
            self.op,
            Tensor::from_f32(self.wshape, self.w).ok()?,
            Tensor::from_f32(vec![n], bias).ok()?,
        ))
    }
}

impl Affine {
    /// Folds into a Conv: scales output channel `c` of `W` by `scale[c]`, and the bias.
    fn fold_conv(&self, graph: &Graph, conv: &Conv, inputs: &[ValueRef]) -> Option<Folded> {
        let (wshape, mut w) = f32_const(graph, inputs[1])?;
        let c = self.scale.len();
        if wshape.first() != Some(&c) || c == 0 {
            return None;
        }
        let per = w.len() / c;
        for (ch, chunk) in w.chunks_mut(per).enumerate() {
            chunk.iter_mut().for_each(|x| *x *= self.scale[ch]);
        }
        let bias = if conv.has_bias {
            let (_, b) = f32_const(graph, inputs[2])?;
            if b.len() != c {
                return None;
            }
            b
        } else {
            vec![0.0; c]
        };
        let op = Op::Conv(Conv {
            has_bias: true,
            ..conv.clone()
        });
        Some(Folded {
            op,
            wshape,
            w,
            bias,
        })
    }

    /// Folds into a Gemm `alpha·A·op(B) + beta·C`: scales column `c` of `op(B)` and rebuilds C
    /// as a `[N]` bias. C must be per-column (scalar, `[N]` or `[1, N]`).
    fn fold_gemm(&self, graph: &Graph, gemm: &Gemm, inputs: &[ValueRef]) -> Option<Folded> {
        let (wshape, mut w) = f32_const(graph, inputs[1])?;
        let n = self.scale.len();
        let [rows, cols] = wshape[..] else {
            return None;
        };
        if gemm.trans_b {
            if rows != n {
                return None;
            }
            for (r, row) in w.chunks_mut(cols).enumerate() {
                row.iter_mut().for_each(|x| *x *= self.scale[r]);
            }
        } else {
            if cols != n {
                return None;
            }
            for row in w.chunks_mut(cols) {
                row.iter_mut().zip(&self.scale).for_each(|(x, s)| *x *= s);
            }
        }
        let bias: Vec<f32> = if gemm.has_c {
            let (cshape, c) = f32_const(graph, inputs[2])?;
            let per_column = match cshape.as_slice() {
                [] | [1] | [1, 1] => vec![c[0]; n],
                [k] | [1, k] if *k == n => c,
                _ => return None,
            };
            per_column.iter().map(|x| x * gemm.beta).collect()
        } else {
            vec![0.0; n]
        };
        let op = Op::Gemm(Gemm {
            beta: 1.0,
            has_c: true,
            ..gemm.clone()
        });
        Some(Folded {
            op,
            wshape,
            w,
            bias,
        })
    }
}

impl FoldBatchNorm {
    /// Tries to fold the BatchNorm node `bn`; returns whether it did.
    fn fold_one(&self, graph: &mut Graph, bn: NodeId) -> Result<bool, PassError> {
        let node = graph.node(bn).map_err(gerr)?;
        let Some(Op::BatchNorm(params)) = node.op() else {
            return Ok(false);
        };
        let bn_out: Value = node.outputs[0].clone();
        let bn_inputs = graph.node_inputs(bn);
        let Some(&x) = bn_inputs.first() else {
            return Ok(false);
        };
        if graph.outputs().contains(&x) || graph.users(x).len() != 1 {
            return Ok(false);
        }
        let producer = graph.node(x.node).map_err(gerr)?;
        let producer_name = producer.name.clone();
        let producer_inputs = graph.node_inputs(x.node);
        let Some(affine) = batchnorm_affine(graph, &bn_inputs, params.epsilon) else {
            return Ok(false);
        };
        let folded = match &producer.kind {
            NodeKind::Op(Op::Conv(conv)) => affine.fold_conv(graph, conv, &producer_inputs),
            NodeKind::Op(Op::Gemm(gemm)) if bn_out.ty.rank() == 2 => {
                affine.fold_gemm(graph, gemm, &producer_inputs)
            }
            _ => None,
        };
        let Some((op, weight, bias)) = folded.and_then(|f| f.finish(&affine)) else {
            return Ok(false);
        };
        let wname = format!("{}.weight.bnfold", producer_name);
        let bname = format!("{}.bias.bnfold", producer_name);
        let w = graph.add_constant(wname, weight);
        let b = graph.add_constant(bname, bias);
        let data_in = producer_inputs[0];
        let id = graph
            .add_op(producer_name, op, &[data_in, w, b], vec![bn_out])
            .map_err(gerr)?;
        graph
            .replace_all_uses(ValueRef::first(bn), ValueRef::first(id))
            .map_err(gerr)?;
        graph.remove_node(bn).map_err(gerr)?;
        graph.remove_node(x.node).map_err(gerr)?;
        Ok(true)
    }
}

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, _ctx: &mut PassContext) -> Result<bool, PassError> {
        let bns: Vec<NodeId> = graph
            .node_ids()
            .filter(|&id| {
                matches!(
                    graph.node(id).ok().and_then(|n| n.op()),
                    Some(Op::BatchNorm(_))
                )
            })
            .collect();
        let mut changed = false;
        for bn in bns {
            changed |= self.fold_one(graph, bn)?;
        }
        Ok(changed)
    }
}
