//! What an op costs: multiply-accumulates per sample.
//!
//! `strata inspect`, the once-QAT trainer's FLOP count and the C header's `_MACS` all report
//! this number; computing it here, once per op, keeps them from drifting apart. The count is
//! per sample: the batch axis (axis 0 of the output, whether the symbol `N` or a fixed size)
//! counts as one, any other `N` is taken as 1.

use super::check;
use super::{Bitplane, Conv, ConvTranspose, Gemm};
use crate::{Graph, GraphError, InferError, NodeId, Op, TensorType};

impl Graph {
    /// Multiply-accumulates per sample of op node `id` ([`Op::macs`] on its value types; 0
    /// for an input or a constant). Every report of a graph's cost (inspect, the lowering's
    /// `_MACS`) goes through here.
    pub fn node_macs(&self, id: NodeId) -> Result<u64, GraphError> {
        let node = self.node(id)?;
        let Some(op) = node.op() else { return Ok(0) };
        let inputs = self
            .node_inputs(id)
            .into_iter()
            .map(|v| self.value(v).map(|val| &val.ty))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs: Vec<_> = node.outputs.iter().map(|v| &v.ty).collect();
        op.macs(&inputs, &outputs)
            .map_err(|source| GraphError::Infer {
                node: node.name.clone(),
                op: op.mnemonic(),
                source,
            })
    }
}

impl Op {
    /// Multiply-accumulates per sample, from the op's input and output types. Ops that do no
    /// multiply-accumulate (element-wise, pooling, data movement) count 0. Arithmetic is
    /// checked: absurd shapes give [`InferError::Overflow`] instead of a wrapped count.
    pub fn macs(&self, inputs: &[&TensorType], outputs: &[&TensorType]) -> Result<u64, InferError> {
        let out = || {
            outputs.first().copied().ok_or_else(|| InferError::Arity {
                expected: "one output type".into(),
                got: 0,
            })
        };
        let input = |i: usize| -> Result<&TensorType, InferError> {
            check::arity(inputs, (i + 1, None))?;
            Ok(inputs[i])
        };
        match self.weight_use() {
            // w is [M, C/group, k…]: each output element reads C/group·prod(k) inputs.
            WeightUse::Conv(_) => mul(per_sample(out()?)?, tail(input(1)?)?),
            // w is [C, M/group, k…]: each input element is scattered into M/group·prod(k)
            // outputs.
            WeightUse::ConvTranspose(_) => mul(per_sample(input(0)?)?, tail(input(1)?)?),
            WeightUse::Gemm(&Gemm { trans_a, .. }) => {
                let a = input(0)?;
                check::rank_eq(0, a, 2)?;
                let k = a.shape.dims()[if trans_a { 0 } else { 1 }].resolve(1) as u64;
                mul(per_sample(out()?)?, k)
            }
            WeightUse::MatMul => {
                let (a, y) = (input(0)?, out()?);
                let k = a.shape.dims().last().map_or(1, |d| d.resolve(1)) as u64;
                // A 1-D `a` against a matrix has no batch axis: every output element counts.
                let elems = if a.rank() >= 2 || y.rank() >= 2 {
                    per_sample(y)?
                } else {
                    elems(y, 0)?
                };
                mul(elems, k)
            }
            // Each output element reads K = cols (quantized) weights, whatever the plane count.
            WeightUse::Bitplane(b) => mul(per_sample(out()?)?, b.spec.cols as u64),
            WeightUse::None => Ok(0),
        }
    }

    /// Weights and biases the op stands for, given the element counts of its float constant
    /// inputs: their sum, except for a bit-plane layer, whose planes and side tables stand
    /// for one `R × K` weight and `R` biases (as the float layer had), whatever the planes.
    pub fn params(&self, float_constant_elems: impl IntoIterator<Item = u64>) -> u64 {
        match self.weight_use() {
            WeightUse::Bitplane(b) => (b.spec.rows as u64).saturating_mul(b.spec.cols as u64 + 1),
            WeightUse::Conv(_)
            | WeightUse::ConvTranspose(_)
            | WeightUse::Gemm(_)
            | WeightUse::MatMul
            | WeightUse::None => float_constant_elems.into_iter().sum(),
        }
    }

    /// How the op applies a weight: what its cost depends on and what `vl-quantize` can
    /// layer. Exhaustive on purpose: a new op says here whether it carries a weight, and a
    /// new kind of weighted op fails the build wherever weights are handled.
    pub fn weight_use(&self) -> WeightUse<'_> {
        match self {
            Op::Conv(c) => WeightUse::Conv(c),
            Op::ConvTranspose(c) => WeightUse::ConvTranspose(c),
            Op::Gemm(g) => WeightUse::Gemm(g),
            Op::MatMul => WeightUse::MatMul,
            Op::Bitplane(b) => WeightUse::Bitplane(b),
            // No weight, no multiply-accumulates: element-wise, normalization, pooling, data
            // movement.
            // LSTM, GRU: float weights that stay float (not a bit-plane layer); their
            // recurrent multiply-accumulates are not counted.
            Op::Lstm(_)
            | Op::Gru(_)
            | Op::Binary(_)
            | Op::Variadic(_)
            | Op::Unary(_)
            | Op::Compare(_)
            | Op::Where
            | Op::ReduceMax(_)
            | Op::ReduceSum(_)
            | Op::ArgMax(_)
            | Op::Expand { .. }
            | Op::Resize(_)
            | Op::QuantizeLinear(_)
            | Op::DequantizeLinear(_)
            | Op::PRelu
            | Op::Clip(_)
            | Op::BatchNorm(_)
            | Op::Softmax(_)
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalPool(_)
            | Op::Flatten { .. }
            | Op::Reshape(_)
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Pad(_)
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Identity
            | Op::Shape { .. }
            | Op::Gather { .. }
            | Op::Slice(_)
            | Op::Split(_)
            | Op::ReduceMean(_)
            | Op::Cast { .. } => WeightUse::None,
        }
    }
}

/// How an op applies a weight (see [`Op::weight_use`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightUse<'a> {
    /// `w` `[M, C/group, k…]`, input 1.
    Conv(&'a Conv),
    /// `w` `[C, M/group, k…]`, input 1.
    ConvTranspose(&'a ConvTranspose),
    /// `b`, input 1.
    Gemm(&'a Gemm),
    /// The second operand.
    MatMul,
    /// Already layered: planes and side tables.
    Bitplane(&'a Bitplane),
    /// No weight.
    None,
}

fn overflow() -> InferError {
    InferError::Overflow("the multiply-accumulate count".into())
}

fn mul(a: u64, b: u64) -> Result<u64, InferError> {
    a.checked_mul(b).ok_or_else(overflow)
}

/// Product of the dimensions from `skip` on (`N` taken as 1).
fn elems(ty: &TensorType, skip: usize) -> Result<u64, InferError> {
    ty.shape
        .dims()
        .iter()
        .skip(skip)
        .try_fold(1u64, |acc, d| mul(acc, d.resolve(1) as u64))
}

/// Elements of one sample: every axis but the batch axis 0.
fn per_sample(ty: &TensorType) -> Result<u64, InferError> {
    elems(ty, 1)
}

/// Elements of a weight per output (or input) channel: every axis but 0.
fn tail(w: &TensorType) -> Result<u64, InferError> {
    elems(w, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::ty;
    use crate::ops::{BinaryOp, Conv, ConvTranspose, Gemm};

    fn macs(op: &Op, ins: &[&str], outs: &[&str]) -> Result<u64, InferError> {
        let ins: Vec<TensorType> = ins.iter().map(|s| ty(s)).collect();
        let outs: Vec<TensorType> = outs.iter().map(|s| ty(s)).collect();
        op.macs(
            &ins.iter().collect::<Vec<_>>(),
            &outs.iter().collect::<Vec<_>>(),
        )
    }

    fn conv() -> Conv {
        Conv {
            kernel: vec![3, 3],
            strides: vec![1, 1],
            pads: vec![1; 4],
            dilations: vec![1, 1],
            group: 2,
            has_bias: false,
        }
    }

    #[test]
    fn node_macs_reads_the_graph_types_and_skips_inputs_and_constants() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", ty("f32[N,4,6,6]"));
        let w = crate::Tensor::from_f32(vec![8, 2, 3, 3], vec![0.0; 144]).unwrap();
        let w = g.add_constant("w", w);
        let y = g
            .add_op_inferred("c", Op::Conv(conv()), &[x, w], vec!["y".into()])
            .unwrap();
        // Per sample: 8·6·6 outputs, each reading C/group·3·3 = 18 inputs.
        assert_eq!(g.node_macs(y), Ok(8 * 36 * 18));
        assert_eq!(g.node_macs(x.node), Ok(0));
        assert_eq!(g.node_macs(w.node), Ok(0));
    }

    #[test]
    fn weight_use_names_the_weighted_ops() {
        assert_eq!(Op::Conv(conv()).weight_use(), WeightUse::Conv(&conv()));
        assert_eq!(Op::MatMul.weight_use(), WeightUse::MatMul);
        assert_eq!(Op::Binary(BinaryOp::Add).weight_use(), WeightUse::None);
        assert_eq!(Op::Identity.weight_use(), WeightUse::None);
    }

    #[test]
    fn per_sample_counts() {
        // 8 outputs · 6·6 positions, each reading 4/2·9 = 18 weights; batch 5 counts once.
        let c = Op::Conv(conv());
        let n = 8 * 36 * 18;
        assert_eq!(
            macs(&c, &["f32[N,4,6,6]", "f32[8,2,3,3]"], &["f32[N,8,6,6]"]),
            Ok(n)
        );
        assert_eq!(
            macs(&c, &["f32[5,4,6,6]", "f32[8,2,3,3]"], &["f32[5,8,6,6]"]),
            Ok(n)
        );
        let ct = Op::ConvTranspose(ConvTranspose {
            kernel: vec![2, 2],
            strides: vec![2, 2],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            output_padding: vec![0, 0],
            group: 1,
            has_bias: false,
        });
        assert_eq!(
            macs(&ct, &["f32[N,3,4,4]", "f32[3,5,2,2]"], &["f32[N,5,8,8]"]),
            Ok(3 * 16 * 20)
        );
        let g = |trans_a| {
            Op::Gemm(Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a,
                trans_b: false,
                has_c: false,
            })
        };
        assert_eq!(
            macs(&g(false), &["f32[N,7]", "f32[7,3]"], &["f32[N,3]"]),
            Ok(21)
        );
        assert_eq!(
            macs(&g(true), &["f32[7,4]", "f32[7,3]"], &["f32[4,3]"]),
            Ok(21)
        );
        assert_eq!(
            macs(&Op::MatMul, &["f32[N,2,7]", "f32[7,3]"], &["f32[N,2,3]"]),
            Ok(42)
        );
        assert_eq!(
            macs(&Op::MatMul, &["f32[7]", "f32[7,3]"], &["f32[3]"]),
            Ok(21)
        );
        assert_eq!(
            macs(
                &Op::Binary(BinaryOp::Add),
                &["f32[N,3]", "f32[3]"],
                &["f32[N,3]"]
            ),
            Ok(0)
        );
    }

    #[test]
    fn params_count_the_float_layer() {
        assert_eq!(Op::Conv(conv()).params([144, 8]), 152);
        let spec = crate::ops::PlaneSpec {
            bits: 8,
            plane_counts: vec![2, 8],
            act_bits: 8,
            rows: 10,
            cols: 16,
            act_bits_k: vec![],
        };
        let b = Op::Bitplane(crate::ops::Bitplane {
            kernel: crate::ops::BitplaneKernel::Linear,
            spec,
        });
        // Planes and side tables stand for the 10×16 weight and 10 biases.
        assert_eq!(b.params([999, 1]), 170);
    }

    #[test]
    fn bad_types_are_errors() {
        let huge = format!("f32[N,{0},{0},{0}]", u32::MAX);
        assert_eq!(
            macs(&Op::Conv(conv()), &["f32[N,4,6,6]", &huge], &[&huge]),
            Err(overflow())
        );
        assert!(matches!(
            macs(&Op::Conv(conv()), &["f32[N,4,6,6]"], &["f32[N,8,6,6]"]),
            Err(InferError::Arity { .. })
        ));
        assert!(matches!(
            macs(&Op::Conv(conv()), &["f32[N,4,6,6]", "f32[8,2,3,3]"], &[]),
            Err(InferError::Arity { .. })
        ));
    }
}
