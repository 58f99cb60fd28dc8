//! Float ops on the activations between bit-plane layers: element-wise functions, broadcasting
//! arithmetic, Max/Min, BatchNorm, Softmax, reductions, Concat and Transpose. Each becomes one step whose C kernel
//! repeats the runtime kernel's arithmetic in the same order, so the generated code stays
//! bit-exact with `strata run` on the integer path.

use strata_ir::ops::elementwise::{BinaryOp, CompareOp, UnaryOp, VariadicOp};
use strata_ir::ops::{BatchNorm, Clip, Reduce, Softmax};
use strata_ir::{DType, NodeId, Op, ValueRef};
use strata_runtime::kernels::normalization::batch_norm_affine;

use crate::error::unsupported;
use crate::walk::Walk;
use crate::{
    AliasKind, BinaryFn, Broadcast, Constant, Kernel, Loc, LowerError, Operand, ReduceFn, UnaryFn,
};

/// The highest rank of a strided copy or a linear Resize (the C kernels' index arrays).
pub(crate) const MAX_RANK: usize = 8;

/// How an operand of shape `b` repeats over the output shape `out` (numpy broadcasting), when
/// its non-broadcast axes form one contiguous run: then element `i` of the output reads
/// `b[(i / inner) % len]`. `None` for shapes that do not broadcast or repeat in a pattern
/// that is not one run (e.g. `[C, 1, W]` against `[C, H, W]`).
pub(crate) fn broadcast(out: &[usize], b: &[usize]) -> Option<Broadcast> {
    if b.len() > out.len() {
        return None;
    }
    let off = out.len() - b.len();
    let dim = |i: usize| if i < off { 1 } else { b[i - off] };
    // Axes where the output is longer than one: kept (b has the extent) or repeated (b has 1).
    let mut kept = Vec::new();
    for (i, &o) in out.iter().enumerate() {
        let d = dim(i);
        if d != o && d != 1 {
            return None;
        }
        if o > 1 && d == o {
            kept.push(i);
        }
    }
    let (Some(&first), Some(&last)) = (kept.first(), kept.last()) else {
        return Some(Broadcast { len: 1, inner: 1 });
    };
    if (first..=last).any(|i| out[i] > 1 && dim(i) == 1) {
        return None;
    }
    Some(Broadcast {
        len: out[first..=last].iter().product(),
        inner: out[last + 1..].iter().product(),
    })
}

/// The numpy broadcast of two shapes, or `None` when they do not broadcast.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

impl Walk<'_> {
    /// Pushes a step `kernel` writing a fresh `n`-element buffer for node `id`.
    pub(crate) fn emit(&mut self, id: NodeId, node: &str, kernel: Kernel, n: usize, step: usize) {
        let y = self.output(id, n, step);
        self.push(node, kernel, y);
    }

    /// A constant operand, stored with the weights; its index.
    pub(crate) fn store(
        &mut self,
        v: ValueRef,
        node: &str,
        op: &Op,
        what: &str,
    ) -> Result<usize, LowerError> {
        let c = self
            .constant(v, node, op, what)?
            .as_f32()
            .ok_or_else(|| unsupported(node, op, format!("{what} must be f32")))?;
        Ok(self.store_values(node, c.to_vec()))
    }

    /// Constant values computed by the lowering, stored with the weights; their index.
    pub(crate) fn store_values(&mut self, node: &str, values: Vec<f32>) -> usize {
        self.constants.push(Constant {
            node: node.to_string(),
            values,
        });
        self.constants.len() - 1
    }

    /// The second operand of a binary step: an activation or a stored constant, broadcast
    /// over the output shape.
    fn operand(
        &mut self,
        v: ValueRef,
        out: &[usize],
        node: &str,
        op: &Op,
        step: usize,
    ) -> Result<(Operand, Broadcast), LowerError> {
        if !self.locs.contains_key(&v) {
            // The graph outlives the walk, so the constant is not borrowed from `self`.
            let graph = self.graph;
            let t = graph
                .constant_value(v)
                .ok_or_else(|| unsupported(node, op, "the constant operand must be a constant"))?;
            return self.constant_operand(t, out, node, op);
        }
        let bcast = broadcast(out, &self.shape(v)?).ok_or_else(|| {
            unsupported(
                node,
                op,
                "an operand repeats over axes that are not one contiguous run",
            )
        })?;
        Ok((Operand::Act(self.act(v, step, node, op)?), bcast))
    }

    /// A constant f32 operand, stored, broadcast over the output shape; one that repeats
    /// over separate runs of axes (Swin's attention mask over windows and heads) is stored
    /// expanded to the output's shape.
    fn constant_operand(
        &mut self,
        t: &strata_ir::Tensor,
        out: &[usize],
        node: &str,
        op: &Op,
    ) -> Result<(Operand, Broadcast), LowerError> {
        let f32s = |t: &strata_ir::Tensor| {
            t.as_f32()
                .map(<[f32]>::to_vec)
                .ok_or_else(|| unsupported(node, op, "the constant operand must be f32"))
        };
        if let Some(bcast) = broadcast(out, t.shape()) {
            let values = f32s(t)?;
            return Ok((Operand::Const(self.store_values(node, values)), bcast));
        }
        let full = strata_runtime::kernels::layout::expand(out, t).map_err(|_| {
            unsupported(
                node,
                op,
                "the constant operand does not expand to the output",
            )
        })?;
        let full = f32s(&full)?;
        let len = full.len();
        Ok((
            Operand::Const(self.store_values(node, full)),
            Broadcast { len, inner: 1 },
        ))
    }

    /// Add, Sub, Mul, Div with numpy broadcasting of one operand over the other (which must
    /// be an activation of the output's size).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn binary(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        bop: BinaryOp,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let &[a0, b0] = ins else {
            return Err(unsupported(node, op, "needs two inputs"));
        };
        let out = self.shape(ValueRef::first(id))?;
        let full = |w: &Self, v: ValueRef| -> Result<bool, LowerError> {
            Ok(w.locs.contains_key(&v) && w.shape(v)?.iter().product::<usize>() == n)
        };
        // The full-size activation is `a`; the other operand broadcasts.
        let swap = !full(self, a0)?;
        if swap && !full(self, b0)? {
            return Err(unsupported(
                node,
                op,
                "broadcasting that grows an activation",
            ));
        }
        let (ai, bi) = if swap { (b0, a0) } else { (a0, b0) };
        let f = match (bop, swap) {
            (BinaryOp::Add, _) => BinaryFn::Add,
            (BinaryOp::Mul, _) => BinaryFn::Mul,
            (BinaryOp::Sub, false) => BinaryFn::Sub,
            (BinaryOp::Sub, true) => BinaryFn::SubFrom,
            (BinaryOp::Div, false) => BinaryFn::Div,
            (BinaryOp::Div, true) => BinaryFn::DivInto,
            (BinaryOp::Pow, false) => BinaryFn::Pow,
            (BinaryOp::Pow, true) => BinaryFn::PowFrom,
        };
        let a = self.act(ai, step, node, op)?;
        let (b, bcast) = self.operand(bi, &out, node, op, step)?;
        self.emit(id, node, Kernel::Binary { a, b, n, bcast, f }, n, step);
        Ok(())
    }

    /// A comparison of two f32 values: remembered for the Where that reads it (its bool
    /// result is never stored).
    pub(crate) fn condition(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        cmp: CompareOp,
        ins: &[ValueRef],
    ) -> Result<(), LowerError> {
        let &[l, r] = ins else {
            return Err(unsupported(node, op, "needs two inputs"));
        };
        for v in [l, r] {
            let dtype = self.graph.value(v)?.ty.dtype;
            if dtype != DType::F32 {
                let reason = format!("compares {dtype} values: only f32 comparisons select");
                return Err(unsupported(node, op, reason));
            }
        }
        self.conditions.insert(ValueRef::first(id), (cmp, l, r));
        Ok(())
    }

    /// Where over f32 values whose condition is a comparison of f32 values or a constant
    /// mask: one [`Kernel::Select`] reading the comparison's operands (or the mask as 1.0 and
    /// 0.0 against one half) and both branches, each broadcast to the output.
    pub(crate) fn select(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let &[c, a, b] = ins else {
            return Err(unsupported(node, op, "needs three inputs"));
        };
        let out = self.shape(ValueRef::first(id))?;
        if ![a, b].into_iter().any(|v| self.locs.contains_key(&v)) {
            return Err(unsupported(node, op, "both branches are constants"));
        }
        let (cmp, l, r) = match self.conditions.get(&c) {
            Some(&(cmp, l, r)) => (
                cmp,
                self.operand(l, &out, node, op, step)?,
                self.operand(r, &out, node, op, step)?,
            ),
            None => {
                // A constant mask (a causal mask, `masked_fill`): its elements as 1.0 and 0.0,
                // selected where above one half.
                let mask = self
                    .graph
                    .constant_value(c)
                    .and_then(|t| match t.data() {
                        strata_ir::TensorData::Bool(m) => Some((t.shape().to_vec(), m.clone())),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        unsupported(
                            node,
                            op,
                            "the condition is neither a comparison of f32 values (Greater, \
                             Less, Equal, … computed in the graph) nor a constant",
                        )
                    })?;
                let ones = mask.1.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
                let ones = strata_ir::Tensor::from_f32(mask.0, ones)
                    .map_err(|e| unsupported(node, op, e.to_string()))?;
                let half = strata_ir::Tensor::scalar_f32(0.5);
                (
                    CompareOp::Greater,
                    self.constant_operand(&ones, &out, node, op)?,
                    self.constant_operand(&half, &out, node, op)?,
                )
            }
        };
        let operands = [
            l,
            r,
            self.operand(a, &out, node, op, step)?,
            self.operand(b, &out, node, op, step)?,
        ];
        self.emit(id, node, Kernel::Select { n, cmp, operands }, n, step);
        Ok(())
    }

    /// PRelu: the slope (usually a per-channel constant) broadcasts over the input.
    pub(crate) fn prelu(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let &[xi, si] = ins else {
            return Err(unsupported(node, op, "needs two inputs"));
        };
        let out = self.shape(ValueRef::first(id))?;
        let a = self.act(xi, step, node, op)?;
        let (b, bcast) = self.operand(si, &out, node, op, step)?;
        let f = BinaryFn::PRelu;
        self.emit(id, node, Kernel::Binary { a, b, n, bcast, f }, n, step);
        Ok(())
    }

    /// One-input functions whose C form is bit-exact with the runtime on every target: IEEE
    /// operations (negation, absolute value, floor, ceil, square root, reciprocal), `expf` and
    /// `logf` (glibc's give the same bits on every ISA of the exactness matrix, which checks
    /// them), the activations built from them, and `strata_ir::math`'s deterministic Tanh and
    /// Erf.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn unary(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        u: UnaryOp,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let f = match u {
            UnaryOp::Relu => return self.relu(id, node, op, ins, n, step),
            UnaryOp::Sigmoid => UnaryFn::Sigmoid,
            UnaryOp::LeakyRelu { alpha } => UnaryFn::LeakyRelu { alpha },
            UnaryOp::HardSigmoid { alpha, beta } => UnaryFn::HardSigmoid { alpha, beta },
            UnaryOp::HardSwish => UnaryFn::HardSwish,
            UnaryOp::Neg => UnaryFn::Neg,
            UnaryOp::Abs => UnaryFn::Abs,
            UnaryOp::Floor => UnaryFn::Floor,
            UnaryOp::Ceil => UnaryFn::Ceil,
            UnaryOp::Sqrt => UnaryFn::Sqrt,
            UnaryOp::Reciprocal => UnaryFn::Reciprocal,
            // Not the C library's (glibc's tanhf differs between ISAs): the runtime and the
            // backends share strata_ir::math's IEEE-only definitions.
            UnaryOp::Tanh => UnaryFn::Tanh,
            UnaryOp::Erf => UnaryFn::Erf,
            UnaryOp::Exp => UnaryFn::Exp,
            UnaryOp::Log => UnaryFn::Log,
        };
        let x = self.act(ins[0], step, node, op)?;
        self.emit(id, node, Kernel::Unary { x, n, f }, n, step);
        Ok(())
    }

    /// Clip with constant scalar bounds (ReLU6 is `Clip(0, 6)`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn clip(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        c: &Clip,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let mut next = 1;
        let mut bound = |w: &Self, present: bool, what: &str| -> Result<_, LowerError> {
            if !present {
                return Ok(None);
            }
            let v = *ins
                .get(next)
                .ok_or_else(|| unsupported(node, op, format!("the {what} input is missing")))?;
            next += 1;
            match w.constant(v, node, op, what)?.as_f32() {
                Some([b]) => Ok(Some(*b)),
                _ => Err(unsupported(node, op, format!("the {what} must be one f32"))),
            }
        };
        let lo = bound(self, c.has_min, "minimum")?;
        let hi = bound(self, c.has_max, "maximum")?;
        let x = self.act(ins[0], step, node, op)?;
        let f = UnaryFn::Clip { lo, hi };
        self.emit(id, node, Kernel::Unary { x, n, f }, n, step);
        Ok(())
    }

    /// Softmax along `axis` (or over the flattened `dims[axis..]` before opset 13), as the
    /// runtime's `softmax_blocks` splits the shape.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn softmax(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        s: &Softmax,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let xs = self.shape(ins[0])?;
        let rank = xs.len();
        if s.axis >= rank.max(1) {
            return Err(unsupported(node, op, "the axis is out of range"));
        }
        let outer: usize = xs[..s.axis.min(rank)].iter().product();
        let (len, inner) = if s.coerce_2d || rank == 0 {
            (xs[s.axis.min(rank)..].iter().product(), 1)
        } else {
            (xs[s.axis], xs[s.axis + 1..].iter().product())
        };
        let x = self.act(ins[0], step, node, op)?;
        let kernel = Kernel::Softmax {
            x,
            outer,
            len,
            inner,
        };
        self.emit(id, node, kernel, n, step);
        Ok(())
    }

    /// ReduceMean, ReduceSum or ReduceMax over one contiguous run of axes (ReduceMean over H,
    /// W with keepdims is the dynamo exporter's global average pool).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reduce(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        r: &Reduce,
        f: ReduceFn,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let xs = self.shape(ins[0])?;
        let mut axes = r.axes.clone();
        axes.sort_unstable();
        axes.dedup();
        if axes.iter().any(|&a| a >= xs.len()) {
            return Err(unsupported(node, op, "an axis is out of range"));
        }
        let (lo, hi) = match (axes.first(), axes.last()) {
            (Some(&lo), Some(&hi)) => (lo, hi + 1),
            _ => (xs.len(), xs.len()),
        };
        if hi - lo != axes.len() {
            return Err(unsupported(
                node,
                op,
                "the reduced axes are not one contiguous run",
            ));
        }
        let x = self.act(ins[0], step, node, op)?;
        let kernel = Kernel::Reduce {
            x,
            outer: xs[..lo].iter().product(),
            len: xs[lo..hi].iter().product(),
            inner: xs[hi..].iter().product(),
            f,
        };
        self.emit(id, node, kernel, n, step);
        Ok(())
    }

    /// Max or Min of any number of inputs, folded left to right as the runtime does: a chain
    /// of binary steps, each broadcasting one operand over an activation of its result's
    /// shape (the operands keep their graph order, which decides ties and signed zeros).
    pub(crate) fn variadic(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        v: VariadicOp,
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        let Some((&first, rest)) = ins.split_first() else {
            return Err(unsupported(node, op, "no inputs"));
        };
        // The running result: an activation (or, before the first step, a constant input).
        let mut acc = match self.locs.contains_key(&first) {
            true => Some(self.act(first, step, node, op)?),
            false => None,
        };
        let mut acc_shape = self.shape(first)?;
        let Some(last) = rest.len().checked_sub(1) else {
            // One input: the runtime returns it unchanged.
            let x = acc.ok_or_else(|| unsupported(node, op, "the only input is a constant"))?;
            self.alias(id, node, x, AliasKind::View);
            return Ok(());
        };
        for (i, &next) in rest.iter().enumerate() {
            let next_shape = self.shape(next)?;
            let out = broadcast_shape(&acc_shape, &next_shape)
                .ok_or_else(|| unsupported(node, op, "the inputs do not broadcast"))?;
            let n: usize = out.iter().product();
            let full = |s: &[usize]| s.iter().product::<usize>() == n;
            let next_act = self.locs.contains_key(&next);
            let (a, b, b_shape, rev) = match acc {
                Some(a) if full(&acc_shape) => {
                    let b = if next_act {
                        Operand::Act(self.act(next, step, node, op)?)
                    } else {
                        Operand::Const(self.store(next, node, op, "a constant input")?)
                    };
                    (a, b, next_shape, false)
                }
                _ if next_act && full(&next_shape) => {
                    let a = self.act(next, step, node, op)?;
                    let b = match acc {
                        Some(loc) => Operand::Act(loc),
                        None => Operand::Const(self.store(first, node, op, "a constant input")?),
                    };
                    (a, b, acc_shape.clone(), true)
                }
                _ => {
                    return Err(unsupported(
                        node,
                        op,
                        "broadcasting that grows an activation",
                    ))
                }
            };
            let bcast = broadcast(&out, &b_shape).ok_or_else(|| {
                unsupported(
                    node,
                    op,
                    "an operand repeats over axes that are not one contiguous run",
                )
            })?;
            let f = match (v, rev) {
                (VariadicOp::Max, false) => BinaryFn::Max,
                (VariadicOp::Max, true) => BinaryFn::MaxRev,
                (VariadicOp::Min, false) => BinaryFn::Min,
                (VariadicOp::Min, true) => BinaryFn::MinRev,
            };
            let y = if i == last {
                self.output(id, n, step)
            } else {
                self.fresh(n, step)
            };
            self.push(node, Kernel::Binary { a, b, n, bcast, f }, y);
            acc = Some(Loc::Buf(y));
            acc_shape = out;
        }
        Ok(())
    }

    /// Inference BatchNormalization: the runtime's per-channel `x·a + s` (coefficients in
    /// f64, applied in f32 as a multiply, then an add) as two broadcasting steps.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batch_norm(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        b: &BatchNorm,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let &[xi, ref params @ ..] = ins else {
            return Err(unsupported(node, op, "no input"));
        };
        let xs = self.shape(xi)?;
        if xs.len() < 2 || params.len() != 4 {
            return Err(unsupported(
                node,
                op,
                "needs x [1, C, …] and four parameters",
            ));
        }
        let names = ["scale", "bias", "mean", "var"];
        let mut p = Vec::with_capacity(4);
        for (&v, what) in params.iter().zip(names) {
            let t = self.constant(v, node, op, what)?;
            if t.shape() != [xs[1]] || t.as_f32().is_none() {
                let reason = format!("`{what}` must be f32 [{}], got {:?}", xs[1], t.shape());
                return Err(unsupported(node, op, reason));
            }
            p.push(t);
        }
        let (a, s) = batch_norm_affine(b, [p[0], p[1], p[2], p[3]]);
        let bcast = Broadcast {
            len: xs[1],
            inner: xs[2..].iter().product(),
        };
        let x = self.act(xi, step, node, op)?;
        let ka = self.store_values(node, a.iter().map(|&v| v as f32).collect());
        let ks = self.store_values(node, s.iter().map(|&v| v as f32).collect());
        let t = self.fresh(n, step);
        let (b, f) = (Operand::Const(ka), BinaryFn::Mul);
        self.push(
            node,
            Kernel::Binary {
                a: x,
                b,
                n,
                bcast,
                f,
            },
            t,
        );
        let (b, f) = (Operand::Const(ks), BinaryFn::Add);
        let kernel = Kernel::Binary {
            a: Loc::Buf(t),
            b,
            n,
            bcast,
            f,
        };
        self.emit(id, node, kernel, n, step);
        Ok(())
    }

    /// Concat along any axis: per block of the axes before it, each input's slab in turn.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn concat(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        axis: usize,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let out = self.shape(ValueRef::first(id))?;
        if axis >= out.len() {
            return Err(unsupported(node, op, "the axis is out of range"));
        }
        let mut parts = Vec::with_capacity(ins.len());
        for &v in ins {
            let chunk = self.shape(v)?[axis..].iter().product();
            parts.push((self.act(v, step, node, op)?, chunk));
        }
        let outer = out[..axis].iter().product();
        self.emit(id, node, Kernel::Concat { parts, outer }, n, step);
        Ok(())
    }

    /// Transpose with a constant permutation: a view when the axes longer than one keep their
    /// order (the same elements in the same order), else a strided copy.
    pub(crate) fn transpose(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        perm: &[usize],
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        let xs = self.shape(ins[0])?;
        let mut seen = vec![false; xs.len()];
        if perm.len() != xs.len()
            || perm
                .iter()
                .any(|&p| p >= xs.len() || std::mem::replace(&mut seen[p], true))
        {
            return Err(unsupported(
                node,
                op,
                "the permutation is not one of the axes",
            ));
        }
        if xs.len() > MAX_RANK {
            return Err(unsupported(node, op, format!("rank above {MAX_RANK}")));
        }
        let x = self.act(ins[0], step, node, op)?;
        let moved: Vec<usize> = perm.iter().copied().filter(|&p| xs[p] > 1).collect();
        if moved.windows(2).all(|w| w[0] < w[1]) {
            self.alias(id, node, x, AliasKind::View);
            return Ok(());
        }
        let st = strides(&xs);
        let dims: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
        let strides = perm.iter().map(|&p| st[p] as isize).collect();
        let n = dims.iter().product();
        let kernel = Kernel::Gather {
            x,
            base: 0,
            dims,
            strides,
        };
        self.emit(id, node, kernel, n, step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_are_one_run_of_axes() {
        let b = |len, inner| Some(Broadcast { len, inner });
        assert_eq!(broadcast(&[1, 4, 3, 3], &[]), b(1, 1));
        assert_eq!(broadcast(&[1, 4, 3, 3], &[1]), b(1, 1));
        assert_eq!(broadcast(&[1, 4, 3, 3], &[4, 1, 1]), b(4, 9));
        assert_eq!(broadcast(&[1, 4, 3, 3], &[1, 4, 1, 1]), b(4, 9));
        assert_eq!(broadcast(&[1, 4, 3, 3], &[3]), b(3, 1));
        assert_eq!(broadcast(&[1, 4, 3, 3], &[3, 3]), b(9, 1));
        assert_eq!(broadcast(&[1, 4, 3, 3], &[1, 4, 3, 3]), b(36, 1));
        // Unit axes of the output inside the run do not break it.
        assert_eq!(broadcast(&[4, 1, 3], &[4, 1, 3]), b(12, 1));
        assert_eq!(broadcast(&[1, 4, 3, 3], &[4, 1, 3]), None);
        assert_eq!(broadcast(&[1, 4, 3, 3], &[2, 1, 1]), None);
        assert_eq!(broadcast(&[4], &[1, 4]), None);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), [12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
    }
}
