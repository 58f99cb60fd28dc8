//! The per-sample rule: whether an op treats the samples of the batch independently.
//!
//! The runtime runs a large batch as a sequence of small ones when every op of the graph
//! passes this rule (see `runtime/src/chunk.rs`); an op that mixed or reordered samples would
//! give different results chunked. The rule lives with the op so that a new op has to state
//! it: when in doubt, `false` (the graph then runs whole, which is always correct).

use crate::{Op, TensorType};

impl Op {
    /// True when, for these input and output types, output sample `i` depends only on input
    /// sample `i`, so the op may run on any slice of the batch. The caller guarantees that
    /// the batch symbol `N` sits on axis 0 of every type that has it, at least one input has
    /// it and every output has it.
    pub fn is_per_sample(&self, inputs: &[&TensorType], outputs: &[&TensorType]) -> bool {
        let (Some(x), Some(y)) = (inputs.first(), outputs.first()) else {
            return false;
        };
        let batched = |t: &&TensorType| t.shape.has_batch();
        // Weights and parameters must be batch-free: only the data input carries samples.
        let only_first = batched(x) && !inputs.iter().skip(1).any(batched);
        match self {
            Op::Conv(_)
            | Op::ConvTranspose(_)
            | Op::Clip(_)
            | Op::PRelu
            | Op::BatchNorm(_)
            | Op::Bitplane(_) => only_first,
            Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalPool(_)
            | Op::Unary(_)
            | Op::Resize(_)
            | Op::Identity
            | Op::Cast { .. } => true,
            Op::Softmax(s) => s.axis >= 1,
            Op::Flatten { axis } => *axis >= 1,
            Op::Reshape(r) => {
                // The batch must be carried over whole (a leading 0 or -1) and each sample
                // keep its element count.
                let first_ok = matches!(r.shape.first(), Some(-1))
                    || (r.shape.first() == Some(&0) && !r.allow_zero);
                let inner = |t: &TensorType| -> Option<usize> {
                    t.shape.dims().get(1..)?.iter().map(|d| d.known()).product()
                };
                first_ok && inner(x).is_some() && inner(x) == inner(y)
            }
            Op::Transpose { perm } => perm.first() == Some(&0),
            Op::Concat { axis } => *axis >= 1 && inputs.iter().all(batched),
            Op::Pad(p) => {
                let r = x.rank();
                p.pads.len() == 2 * r && p.pads[0] == 0 && p.pads[r] == 0
            }
            Op::Squeeze { axes } => !axes.is_empty() && !axes.contains(&0),
            Op::Unsqueeze { axes } => !axes.contains(&0),
            Op::Gather { axis } => *axis >= 1 && only_first,
            Op::Slice(s) => !s.axes.contains(&0),
            Op::Split(s) => s.axis >= 1,
            Op::ReduceMean(r) | Op::ReduceMax(r) | Op::ReduceSum(r) => !r.axes.contains(&0),
            Op::ArgMax(a) => a.axis != 0,
            // The input's batch must stay axis 0 of the output (no leading dims added).
            Op::Expand { .. } => x.rank() == y.rank() && only_first,
            // Scale and zero point are parameters: per tensor, or along a non-batch axis.
            Op::QuantizeLinear(q) | Op::DequantizeLinear(q) => {
                let per_tensor = inputs
                    .get(1)
                    .is_some_and(|s| s.shape.0.iter().all(|d| d.known() == Some(1)));
                only_first && (q.axis != 0 || per_tensor)
            }
            // A batched input of lower rank would broadcast along the output's batch axis.
            Op::Binary(_) | Op::Variadic(_) | Op::Compare(_) | Op::Where => inputs
                .iter()
                .all(|t| !t.shape.has_batch() || t.rank() == y.rank()),
            Op::Gemm(g) => only_first && !g.trans_a,
            Op::MatMul => only_first && x.rank() == y.rank() && y.rank() >= 2,
            // Its output is the batch size itself.
            Op::Shape { .. } => false,
            // The batch is axis 1 of x ([seq, batch, input]), outside this rule's premise.
            Op::Lstm(_) | Op::Gru(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::check::ty;
    use crate::ops::{BinaryOp, Reshape, Softmax};
    use crate::{Op, TensorType};

    fn per_sample(op: &Op, ins: &[&str], out: &str) -> bool {
        let ins: Vec<TensorType> = ins.iter().map(|s| ty(s)).collect();
        let out = ty(out);
        op.is_per_sample(&ins.iter().collect::<Vec<_>>(), &[&out])
    }

    #[test]
    fn rules() {
        let add = Op::Binary(BinaryOp::Add);
        assert!(per_sample(&add, &["f32[N,3]", "f32[3]"], "f32[N,3]"));
        assert!(!per_sample(&add, &["f32[N,3]", "f32[N]"], "f32[N,3]"));
        let max = Op::Variadic(crate::ops::VariadicOp::Max);
        assert!(per_sample(
            &max,
            &["f32[N,3]", "f32[3]", "f32[N,1]"],
            "f32[N,3]"
        ));
        let sm = |axis| {
            Op::Softmax(Softmax {
                axis,
                coerce_2d: false,
            })
        };
        assert!(per_sample(&sm(1), &["f32[N,10]"], "f32[N,10]"));
        assert!(!per_sample(&sm(0), &["f32[N,10]"], "f32[N,10]"));
        let rs = |shape: Vec<i64>| {
            Op::Reshape(Reshape {
                shape,
                allow_zero: false,
            })
        };
        assert!(per_sample(&rs(vec![0, -1]), &["f32[N,2,3]"], "f32[N,6]"));
        assert!(!per_sample(&rs(vec![3, -1]), &["f32[N,2,3]"], "f32[3,N]"));
        assert!(!per_sample(
            &Op::MatMul,
            &["f32[N,3]", "f32[3,N]"],
            "f32[N,N]"
        ));
        assert!(per_sample(
            &Op::MatMul,
            &["f32[N,3]", "f32[3,2]"],
            "f32[N,2]"
        ));
        assert!(!per_sample(
            &Op::Shape { start: 0, end: 2 },
            &["f32[N,3]"],
            "i64[2]"
        ));
        assert!(!per_sample(&Op::Identity, &[], "f32[N]"));
        let q = |axis| Op::QuantizeLinear(crate::ops::Qdq { axis });
        assert!(per_sample(
            &q(1),
            &["f32[N,3]", "f32[3]", "u8[3]"],
            "u8[N,3]"
        ));
        assert!(per_sample(&q(0), &["f32[N,3]", "f32[]", "u8[]"], "u8[N,3]"));
        assert!(!per_sample(&q(0), &["f32[N,3]"], "u8[N,3]"));
        let expand = Op::Expand {
            shape: vec![2, 1, 1],
        };
        assert!(!per_sample(&expand, &["f32[N,3]"], "f32[2,N,3]"));
        let expand = Op::Expand { shape: vec![1, 3] };
        assert!(per_sample(&expand, &["f32[N,1]"], "f32[N,3]"));
    }
}
