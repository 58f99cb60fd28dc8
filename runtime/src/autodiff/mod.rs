//! Reverse-mode gradients for the forward ops of CNN/MLP classifiers, so that
//! quantization-aware training can run on the same kernels (im2col + GEMM, rayon) as
//! inference instead of in a separate framework whose numerics would drift from ours.
//!
//! [`backward_op`] is the per-op vector-Jacobian product; [`forward_with_tape`] and
//! [`Tape::backward`] chain it over a whole graph. Losses live in [`loss`], fake quantization
//! (straight-through estimators) in [`fake_quant`]. Gradients are f32 only: training in f64
//! is not a use case, and one code path is easier to keep right.

mod conv;
mod elementwise;
pub mod fake_quant;
mod layout;
mod linear;
pub mod loss;
mod normalization;
mod pool;

use std::collections::{BTreeMap, HashMap};

use strata_ir::{DType, Graph, Node, NodeId, NodeKind, Op, Tensor, ValueRef};

use crate::interpret::{interpret, missing, Slot, Visit};
use crate::kernels::{eval_op, make};
use crate::RuntimeError;

/// Gradients of the op's inputs given the gradient of its (single) output.
///
/// `inputs` and `output` are the forward values (`output` saves recomputation for ops whose
/// derivative is best written in terms of it, e.g. Sigmoid or Softmax). The result has one
/// entry per input: `None` for inputs that carry no gradient (integer inputs). Ops outside
/// the training set (or multi-output ops) return [`RuntimeError::NoGradient`].
pub fn backward_op(
    op: &Op,
    inputs: &[&Tensor],
    output: &Tensor,
    grad_output: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    let name = op.mnemonic();
    crate::kernels::check_arity(op, inputs.len())?;
    same_shape(
        name,
        "output gradient shape",
        grad_output,
        "the output shape",
        output,
    )?;
    let cx = Ctx {
        op: name,
        inputs,
        output,
        grad: grad_output,
        dy: f32s(name, grad_output, usize::MAX)?,
    };
    match op {
        Op::Conv(c) => conv::conv(c, &cx),
        Op::Gemm(g) => linear::gemm(g, &cx),
        Op::MatMul => linear::matmul(&cx),
        Op::Binary(b) => elementwise::binary(*b, &cx),
        Op::Variadic(_) => elementwise::variadic(&cx),
        Op::Unary(u) => elementwise::unary(*u, &cx),
        Op::Clip(c) => elementwise::clip(c, &cx),
        Op::Softmax(s) => normalization::softmax(s, &cx),
        Op::MaxPool(p) => pool::max_pool(p, &cx),
        Op::AveragePool(p) => pool::average_pool(p, &cx),
        Op::GlobalPool(k) => pool::global_pool(*k, &cx),
        Op::Flatten { .. }
        | Op::Reshape(_)
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Identity => layout::relabel(&cx),
        Op::Transpose { perm } => layout::transpose(perm, &cx),
        Op::Concat { axis } => layout::concat(*axis, &cx),
        // Not differentiated (yet): inference-only layouts, integer shape arithmetic, and
        // layers the trainers replace with their own straight-through versions.
        Op::ConvTranspose(_)
        | Op::PRelu
        | Op::BatchNorm(_)
        | Op::Pad(_)
        | Op::Shape { .. }
        | Op::Gather { .. }
        | Op::Slice(_)
        | Op::Split(_)
        | Op::ReduceMean(_)
        | Op::Cast { .. }
        | Op::Bitplane(_)
        // Inference-only data movement and reductions (Expand/Resize in detector heads,
        // ReduceMax/ReduceSum/ArgMax in post-processing), bool-valued comparisons and
        // selection, and the QDQ ops of pre-quantized models (whose rounding has no
        // gradient; the trainers fake-quantize with their own straight-through estimator).
        | Op::Compare(_)
        | Op::Where
        | Op::ReduceMax(_)
        | Op::ReduceSum(_)
        | Op::ArgMax(_)
        | Op::Expand { .. }
        | Op::Resize(_)
        | Op::QuantizeLinear(_)
        | Op::DequantizeLinear(_)
        // Recurrent layers are inference-only here (no backpropagation through time).
        | Op::Lstm(_)
        | Op::Gru(_) => Err(RuntimeError::NoGradient { op: name }),
    }
}

/// What every gradient rule receives: the op's name (for errors), the forward inputs and
/// output, and the output gradient, already checked to be f32 and shaped like the output.
pub(crate) struct Ctx<'a> {
    pub(crate) op: &'static str,
    pub(crate) inputs: &'a [&'a Tensor],
    pub(crate) output: &'a Tensor,
    pub(crate) grad: &'a Tensor,
    /// The output gradient's elements.
    pub(crate) dy: &'a [f32],
}

/// A gradient rule's result: one entry per input, `None` for inputs without a gradient.
pub(crate) type Grads = Result<Vec<Option<Tensor>>, RuntimeError>;

impl Ctx<'_> {
    /// The f32 elements of input `i`.
    pub(crate) fn x(&self, i: usize) -> Result<&[f32], RuntimeError> {
        f32s(self.op, self.inputs[i], i)
    }

    /// The gradient entry for an input of `shape` holding `data`.
    pub(crate) fn entry(
        &self,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<Option<Tensor>, RuntimeError> {
        f32_tensor(self.op, shape, data).map(Some)
    }

    /// The error for an output gradient that does not fit `what` (of shape `want`).
    pub(crate) fn misfit(&self, what: &str, want: &[usize]) -> RuntimeError {
        RuntimeError::mismatch(self.op, "output gradient", self.grad.shape(), what, want)
    }

    /// Refuses an output gradient whose shape is not `want` (the shape of `what`).
    pub(crate) fn grad_fits(&self, what: &str, want: &[usize]) -> Result<(), RuntimeError> {
        if self.grad.shape() == want {
            return Ok(());
        }
        Err(self.misfit(what, want))
    }
}

/// `t` (called `what` in the error) must have the shape of `other` (called `of`).
pub(crate) fn same_shape(
    op: &'static str,
    what: &str,
    t: &Tensor,
    of: &str,
    other: &Tensor,
) -> Result<(), RuntimeError> {
    if t.shape() == other.shape() {
        return Ok(());
    }
    Err(RuntimeError::mismatch(
        op,
        what,
        t.shape(),
        of,
        other.shape(),
    ))
}

/// The f32 elements of a tensor, or a typed error naming the op and input (`usize::MAX`
/// stands for the output gradient).
pub(crate) fn f32s<'a>(
    op: &'static str,
    t: &'a Tensor,
    input: usize,
) -> Result<&'a [f32], RuntimeError> {
    t.as_f32()
        .ok_or(RuntimeError::unsupported(op, input, t.dtype()))
}

/// Wraps f32 data of a shape the caller computed (the length always matches).
pub(crate) fn f32_tensor(
    op: &'static str,
    shape: &[usize],
    data: Vec<f32>,
) -> Result<Tensor, RuntimeError> {
    make(op, shape.to_vec(), strata_ir::TensorData::F32(data))
}

/// For every element of `out` (row-major), the flat index of the element of `input` that
/// numpy broadcasting reads there. `input` must broadcast to `out`.
pub(crate) fn broadcast_map(
    op: &'static str,
    input: &[usize],
    out: &[usize],
) -> Result<Vec<usize>, RuntimeError> {
    if input.len() > out.len() {
        return Err(RuntimeError::Shape {
            op,
            reason: format!("input shape {input:?} does not broadcast to {out:?}"),
        });
    }
    let lead = out.len() - input.len();
    let mut strides = vec![0usize; out.len()];
    let mut acc = 1usize;
    for j in (0..input.len()).rev() {
        let (d, o) = (input[j], out[lead + j]);
        if d != o && d != 1 {
            return Err(RuntimeError::Shape {
                op,
                reason: format!("input shape {input:?} does not broadcast to {out:?}"),
            });
        }
        strides[lead + j] = if d == 1 { 0 } else { acc };
        acc *= d;
    }
    let total: usize = out.iter().product();
    let mut map = Vec::with_capacity(total);
    let mut idx = vec![0usize; out.len()];
    let mut flat = 0usize;
    for _ in 0..total {
        map.push(flat);
        for j in (0..out.len()).rev() {
            idx[j] += 1;
            flat += strides[j];
            if idx[j] < out[j] {
                break;
            }
            flat -= strides[j] * out[j];
            idx[j] = 0;
        }
    }
    Ok(map)
}

/// Sums a gradient of the broadcast shape `out` back onto `input`'s shape (the adjoint of
/// broadcasting). When nothing was broadcast (residual Adds, same-shape products) the
/// gradient is the input's as it is: no index table, no copy.
pub(crate) fn reduce_to(
    op: &'static str,
    grad: Vec<f32>,
    out: &[usize],
    input: &[usize],
) -> Result<Tensor, RuntimeError> {
    if input == out {
        return f32_tensor(op, input, grad);
    }
    let map = broadcast_map(op, input, out)?;
    let mut acc = vec![0f32; input.iter().product()];
    for (g, &i) in grad.iter().zip(&map) {
        acc[i] += g;
    }
    f32_tensor(op, input, acc)
}

/// The forward values of one execution, kept so that [`Tape::backward`] can compute the
/// gradients of every constant and graph input.
#[derive(Debug, Clone)]
pub struct Tape {
    values: HashMap<ValueRef, Tensor>,
    order: Vec<NodeId>,
}

/// Runs `graph` like [`crate::run`] (without batch chunking) and keeps every intermediate
/// value; returns the graph outputs and the tape.
pub fn forward_with_tape(
    graph: &Graph,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, Tape), RuntimeError> {
    forward_with_tape_by(graph, inputs, |_, node, op, refs| {
        eval_op(op, refs).map_err(|e| e.in_node(&node.name, op.mnemonic()))
    })
}

/// [`forward_with_tape`] with the caller's rule for evaluating each op node (given the node
/// and its input values, its outputs). The once-QAT trainer runs its fake-quantized layers
/// this way; one loop records every taped pass, so the tape's invariants hold for all.
pub fn forward_with_tape_by<E: From<RuntimeError>>(
    graph: &Graph,
    inputs: &[Tensor],
    eval: impl FnMut(NodeId, &Node, &Op, &[&Tensor]) -> Result<Vec<Tensor>, E>,
) -> Result<(Vec<Tensor>, Tape), E> {
    let order = graph.topo_order().map_err(RuntimeError::from)?;
    let batch = crate::check_inputs(graph, inputs)?.unwrap_or(1);
    let slots = interpret(graph, inputs, batch, &mut TapeVisit { eval })?;
    let outputs = crate::interpret::outputs(graph, &slots)?;
    // The tape owns what was computed and fed in; constants stay in the graph.
    let values = slots
        .into_iter()
        .filter(|(v, _)| graph.constant_value(*v).is_none())
        .map(|(v, slot)| match slot {
            Slot::Owned(t) => (v, t),
            Slot::Borrowed(t) => (v, t.clone()),
        })
        .collect();
    Ok((outputs, Tape { values, order }))
}

/// A taped pass: every value is kept, each op evaluated by the caller's rule.
struct TapeVisit<F> {
    eval: F,
}

impl<E, F> Visit for TapeVisit<F>
where
    E: From<RuntimeError>,
    F: FnMut(NodeId, &Node, &Op, &[&Tensor]) -> Result<Vec<Tensor>, E>,
{
    type Error = E;
    const RETAIN: bool = true;

    fn eval(
        &mut self,
        id: NodeId,
        node: &Node,
        op: &Op,
        // Never given: a retaining visit keeps every input.
        _owned_first: Option<Tensor>,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, E> {
        (self.eval)(id, node, op, inputs)
    }
}

/// The values of node `id`'s inputs: computed or fed in (`values`) or constants.
fn input_values<'a>(
    graph: &'a Graph,
    values: &'a HashMap<ValueRef, Tensor>,
    id: NodeId,
    name: &str,
) -> Result<Vec<&'a Tensor>, RuntimeError> {
    let args = graph.node_inputs(id);
    let mut refs = Vec::with_capacity(args.len());
    for (slot, v) in args.iter().enumerate() {
        refs.push(lookup(graph, values, *v).ok_or_else(|| missing(graph, name, slot, *v))?);
    }
    Ok(refs)
}

fn lookup<'a>(
    graph: &'a Graph,
    values: &'a HashMap<ValueRef, Tensor>,
    v: ValueRef,
) -> Option<&'a Tensor> {
    values
        .get(&v)
        .or_else(|| graph.constant_value(v).map(|t| t.as_ref()))
}

/// Adds `g` into the gradient slot of `v` (fan-out sums the contributions of every use).
fn accumulate(
    grads: &mut HashMap<ValueRef, Tensor>,
    v: ValueRef,
    g: Tensor,
) -> Result<(), RuntimeError> {
    match grads.get_mut(&v) {
        None => {
            grads.insert(v, g);
        }
        Some(acc) => {
            if acc.shape() != g.shape() {
                return Err(RuntimeError::Shape {
                    op: "backward",
                    reason: format!(
                        "gradient contributions of shapes {:?} and {:?} for one value",
                        acc.shape(),
                        g.shape()
                    ),
                });
            }
            if let (strata_ir::TensorData::F32(a), Some(b)) = (acc.data_mut(), g.as_f32()) {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            }
        }
    }
    Ok(())
}

impl Tape {
    /// The forward value of `v` if it was computed or fed in (constants live in the graph).
    pub fn value(&self, v: ValueRef) -> Option<&Tensor> {
        self.values.get(&v)
    }

    /// Back-propagates `seeds` (one per graph output, shaped like it: the gradient of the
    /// loss with respect to that output) and returns the gradient of every f32 constant and
    /// graph input, zero where no path leads. `graph` must be the graph the tape was
    /// recorded on.
    pub fn backward(
        &self,
        graph: &Graph,
        seeds: &[Tensor],
    ) -> Result<BTreeMap<ValueRef, Tensor>, RuntimeError> {
        let mut grads = self.backward_by(graph, seeds, |_, node, op, refs, output, g| {
            backward_op(op, refs, output, &g).map_err(|e| e.in_node(&node.name, op.mnemonic()))
        })?;
        let mut result = BTreeMap::new();
        for id in graph.node_ids() {
            let node = graph.node(id)?;
            if !matches!(node.kind, NodeKind::Input | NodeKind::Constant(_)) {
                continue;
            }
            let v = ValueRef::first(id);
            let Some(value) = lookup(graph, &self.values, v) else {
                continue;
            };
            if value.dtype() != DType::F32 {
                continue;
            }
            let g = match grads.remove(&v) {
                Some(g) => g,
                None => Tensor::zeros(DType::F32, value.shape().to_vec()),
            };
            result.insert(v, g);
        }
        Ok(result)
    }

    /// The reverse pass of [`Tape::backward`] with the caller's rule for each op node reached
    /// by a gradient: given the node, its input values, its output and the output's gradient,
    /// the gradient of each input (`None`: none flows there). Returns the gradients left on
    /// constants and graph inputs. The once-QAT trainer differentiates its fake-quantized
    /// layers this way.
    pub fn backward_by<E: From<RuntimeError>>(
        &self,
        graph: &Graph,
        seeds: &[Tensor],
        mut rule: impl FnMut(
            NodeId,
            &Node,
            &Op,
            &[&Tensor],
            &Tensor,
            Tensor,
        ) -> Result<Vec<Option<Tensor>>, E>,
    ) -> Result<HashMap<ValueRef, Tensor>, E> {
        if seeds.len() != graph.outputs().len() {
            return Err(RuntimeError::Arity {
                op: "backward",
                expected: format!("{} seeds (one per graph output)", graph.outputs().len()),
                got: seeds.len(),
            }
            .into());
        }
        let mut grads: HashMap<ValueRef, Tensor> = HashMap::new();
        for (slot, (&v, seed)) in graph.outputs().iter().zip(seeds).enumerate() {
            let out = lookup(graph, &self.values, v)
                .ok_or_else(|| missing(graph, "<graph outputs>", slot, v))?;
            if seed.shape() != out.shape() || seed.dtype() != DType::F32 {
                return Err(RuntimeError::Shape {
                    op: "backward",
                    reason: format!(
                        "seed {slot} is {} {:?} but graph output {slot} is {} {:?}",
                        seed.dtype(),
                        seed.shape(),
                        out.dtype(),
                        out.shape()
                    ),
                }
                .into());
            }
            accumulate(&mut grads, v, seed.clone())?;
        }
        for &id in self.order.iter().rev() {
            let node = graph.node(id).map_err(RuntimeError::from)?;
            let NodeKind::Op(op) = &node.kind else {
                continue;
            };
            let outs: Vec<ValueRef> = (0..node.outputs.len())
                .map(|i| ValueRef {
                    node: id,
                    output: i,
                })
                .collect();
            if !outs.iter().any(|v| grads.contains_key(v)) {
                continue;
            }
            if outs.len() != 1 {
                return Err(RuntimeError::NoGradient { op: op.mnemonic() }
                    .in_node(&node.name, op.mnemonic())
                    .into());
            }
            let Some(g) = grads.remove(&outs[0]) else {
                continue;
            };
            let refs = input_values(graph, &self.values, id, &node.name)?;
            let output = self
                .values
                .get(&outs[0])
                .ok_or_else(|| missing(graph, &node.name, 0, outs[0]))?;
            let in_grads = rule(id, node, op, &refs, output, g)?;
            for (v, ig) in graph.node_inputs(id).into_iter().zip(in_grads) {
                if let Some(ig) = ig {
                    accumulate(&mut grads, v, ig)?;
                }
            }
        }
        Ok(grads)
    }
}
