//! The graph walk: every op node in topological order becomes one or more steps over arena
//! buffers (one per output of a Split), an alias of an existing value, or an error naming the
//! node and the reason. Relu fusion, aliasing and buffer
//! lifetimes are decided here; the planner then places the buffers.

use std::collections::HashMap;

use strata_ir::ops::bitplane::{Bitplane, BitplaneKernel, INPUT_PLANES, INPUT_X, NUM_INPUTS};
use strata_ir::ops::elementwise::{CompareOp, UnaryOp};
use strata_ir::ops::pool::{GlobalPoolKind, Pool};
use strata_ir::{quant, DType, Graph, NodeId, NodeKind, Op, Tensor, ValueRef};

use crate::error::unsupported;
use crate::layer::lower_layer;
use crate::planner::{plan, Buffer};
use crate::{
    Alias, AliasKind, Constant, IndexTable, Kernel, Layer, LinearTaps, Loc, LowerError,
    LowerOptions, Lowered, PoolGeometry, Port, ReduceFn, Scratch, Step,
};

/// Arena offsets are multiples of 4 floats (16 bytes), enough for any SIMD load a compiler
/// may choose.
const ALIGN: usize = 4;

/// Lowers `graph` (batch 1) with `options`; see the crate doc.
pub fn lower(graph: &Graph, options: &LowerOptions) -> Result<Lowered, LowerError> {
    if !(1..=quant::MAX_BITS).contains(&options.planes) {
        return Err(LowerError::BadPlanes {
            planes: options.planes,
        });
    }
    if graph.inputs().is_empty() || graph.outputs().is_empty() {
        return Err(LowerError::Interface(format!(
            "got {} inputs and {} outputs; at least one of each is needed",
            graph.inputs().len(),
            graph.outputs().len()
        )));
    }
    let mut locs = HashMap::new();
    let mut inputs = Vec::with_capacity(graph.inputs().len());
    for (i, &id) in graph.inputs().iter().enumerate() {
        let node = graph.node(id)?;
        let ty = &node.outputs[0].ty;
        if ty.dtype != DType::F32 {
            return Err(LowerError::Interface(format!(
                "input `{}` is {}, not f32",
                node.name, ty.dtype
            )));
        }
        inputs.push(Port {
            name: node.name.clone(),
            shape: ty.shape.resolve(1),
        });
        locs.insert(ValueRef::first(id), Loc::Input(i));
    }
    for &v in graph.outputs() {
        let ty = &graph.value(v)?.ty;
        if ty.dtype != DType::F32 {
            return Err(LowerError::Interface(format!(
                "output `{}` is {}, not f32",
                graph.value(v)?.name,
                ty.dtype
            )));
        }
    }
    let order = graph.topo_order()?;
    let mut w = Walk {
        graph,
        options,
        locs,
        uses: HashMap::new(),
        layers: Vec::new(),
        constants: Vec::new(),
        tables: Vec::new(),
        taps: Vec::new(),
        steps: Vec::new(),
        buffers: Vec::new(),
        aliases: Vec::new(),
        scratch: Scratch::default(),
        macs: 0,
        conditions: HashMap::new(),
    };
    for &id in &order {
        for v in graph.node_inputs(id) {
            *w.uses.entry(v).or_default() += 1;
        }
    }
    for &v in graph.outputs() {
        *w.uses.entry(v).or_default() += 1;
    }
    for (step, &id) in order.iter().enumerate() {
        let node = graph.node(id)?;
        if let NodeKind::Op(op) = &node.kind {
            w.op(id, &node.name, op, step)?;
        }
    }
    if let Some(per_layer) = &options.layer_planes {
        if per_layer.len() != w.layers.len() {
            return Err(LowerError::LayerPlanes {
                expected: w.layers.len(),
                got: per_layer.len(),
            });
        }
    }
    let mut outputs = Vec::with_capacity(graph.outputs().len());
    for &v in graph.outputs() {
        let name = graph.value(v)?.name.clone();
        let loc = *w.locs.get(&v).ok_or_else(|| {
            LowerError::Interface(format!(
                "output `{name}` is a constant (nothing to compute)"
            ))
        })?;
        // An output buffer survives every step: it is copied out after the last one.
        if let Loc::Buf(b) = loc {
            w.buffers[b].last = order.len();
        }
        let shape = graph.value(v)?.ty.shape.resolve(1);
        outputs.push((Port { name, shape }, loc));
    }
    let arena = plan(&w.buffers, ALIGN)
        .ok_or_else(|| LowerError::Interface("the arena size overflows".into()))?;
    Ok(Lowered {
        graph: graph.name.clone(),
        planes: options.planes,
        layer_planes: options.layer_planes.clone(),
        layout: options.layout,
        code_bits: options.code_bits,
        inputs,
        outputs,
        layers: w.layers,
        constants: w.constants,
        tables: w.tables,
        taps: w.taps,
        steps: w.steps,
        buffers: w.buffers,
        arena,
        aliases: w.aliases,
        scratch: w.scratch,
        macs: w.macs,
    })
}

pub(crate) struct Walk<'g> {
    pub(crate) graph: &'g Graph,
    pub(crate) options: &'g LowerOptions,
    pub(crate) locs: HashMap<ValueRef, Loc>,
    /// How many ops (and graph outputs) read each value.
    pub(crate) uses: HashMap<ValueRef, usize>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) constants: Vec<Constant>,
    pub(crate) tables: Vec<IndexTable>,
    pub(crate) taps: Vec<LinearTaps>,
    pub(crate) steps: Vec<Step>,
    pub(crate) buffers: Vec<Buffer>,
    pub(crate) aliases: Vec<Alias>,
    pub(crate) scratch: Scratch,
    pub(crate) macs: u64,
    /// Bool values computed by a comparison of f32 values, not stored: a Where reading one
    /// as its condition becomes a [`Kernel::Select`] that compares as it selects.
    pub(crate) conditions: HashMap<ValueRef, (CompareOp, ValueRef, ValueRef)>,
}

impl<'g> Walk<'g> {
    /// The activation location of `v`, extending its buffer's lifetime to `step`.
    pub(crate) fn act(
        &mut self,
        v: ValueRef,
        step: usize,
        node: &str,
        op: &Op,
    ) -> Result<Loc, LowerError> {
        let loc = match self.locs.get(&v) {
            Some(&loc) => loc,
            None => self.fill(v, step, node, op)?,
        };
        if let Loc::Buf(b) = loc {
            self.buffers[b].last = self.buffers[b].last.max(step);
        }
        Ok(loc)
    }

    /// A constant read as an activation, copied into a buffer by a [`Kernel::Fill`] step of
    /// the reading node (its values stored once; later readers share the buffer).
    fn fill(&mut self, v: ValueRef, step: usize, node: &str, op: &Op) -> Result<Loc, LowerError> {
        let values = self
            .graph
            .constant_value(v)
            .and_then(|t| t.as_f32())
            .ok_or_else(|| unsupported(node, op, "an activation input is not f32"))?
            .to_vec();
        let n = values.len();
        let constant = self.store_values(node, values);
        let y = self.output_at(v, n, step);
        self.push(node, Kernel::Fill { constant, n }, y);
        Ok(Loc::Buf(y))
    }

    pub(crate) fn constant(
        &self,
        v: ValueRef,
        node: &str,
        op: &Op,
        what: &str,
    ) -> Result<&'g Tensor, LowerError> {
        self.graph
            .constant_value(v)
            .map(|t| t.as_ref())
            .ok_or_else(|| unsupported(node, op, format!("{what} must be a constant")))
    }

    /// Batch-1 shape of value `v`.
    pub(crate) fn shape(&self, v: ValueRef) -> Result<Vec<usize>, LowerError> {
        Ok(self.graph.value(v)?.ty.shape.resolve(1))
    }

    /// A fresh buffer of `size` floats written by `step`, holding node `id`'s output.
    pub(crate) fn output(&mut self, id: NodeId, size: usize, step: usize) -> usize {
        self.output_at(ValueRef::first(id), size, step)
    }

    /// A fresh buffer of `size` floats written by `step`, holding value `v` (one output of a
    /// node with several).
    pub(crate) fn output_at(&mut self, v: ValueRef, size: usize, step: usize) -> usize {
        let y = self.fresh(size, step);
        self.locs.insert(v, Loc::Buf(y));
        y
    }

    /// A fresh buffer of `size` floats written and read within `step` (an intermediate of a
    /// node lowered as several steps).
    pub(crate) fn fresh(&mut self, size: usize, step: usize) -> usize {
        self.buffers.push(Buffer {
            size,
            first: step,
            last: step,
        });
        self.buffers.len() - 1
    }

    pub(crate) fn push(&mut self, node: &str, kernel: Kernel, y: usize) {
        self.steps.push(Step {
            node: node.to_string(),
            kernel,
            y,
        });
    }

    /// `id`'s output shares `of`'s storage.
    pub(crate) fn alias(&mut self, id: NodeId, node: &str, of: Loc, kind: AliasKind) {
        self.alias_at(ValueRef::first(id), node, of, kind);
    }

    /// Value `v` shares `of`'s storage.
    pub(crate) fn alias_at(&mut self, v: ValueRef, node: &str, of: Loc, kind: AliasKind) {
        self.locs.insert(v, of);
        self.aliases.push(Alias {
            node: node.to_string(),
            of,
            kind,
        });
    }

    fn op(&mut self, id: NodeId, node: &str, op: &Op, step: usize) -> Result<(), LowerError> {
        let ins = self.graph.node_inputs(id);
        let outputs = &self.graph.node(id)?.outputs;
        if outputs.len() != 1 && !matches!(op, Op::Split(_) | Op::Lstm(_) | Op::Gru(_)) {
            let reason = format!(
                "{} outputs (only Split, LSTM and GRU have several)",
                outputs.len()
            );
            return Err(unsupported(node, op, reason));
        }
        if let Op::Compare(c) = op {
            return self.condition(id, node, op, *c, &ins);
        }
        for v in outputs {
            if v.ty.dtype != DType::F32 {
                let reason = format!(
                    "output `{}` is {}, not f32: only f32 activations are computed",
                    v.name, v.ty.dtype
                );
                return Err(unsupported(node, op, reason));
            }
        }
        let Some(first) = outputs.first() else {
            return Err(unsupported(node, op, "no outputs"));
        };
        let out_n: usize = first.ty.shape.resolve(1).iter().product();
        match op {
            Op::Bitplane(b) => self.bitplane(id, node, op, b, step),
            Op::Unary(UnaryOp::Relu) => self.relu(id, node, op, &ins, out_n, step),
            Op::MaxPool(p) => self.pool(id, node, op, p, true, step),
            Op::AveragePool(p) => self.pool(id, node, op, p, false, step),
            Op::GlobalPool(kind) => {
                let xs = self.shape(ins[0])?;
                if xs.len() < 3 {
                    return Err(unsupported(node, op, "input must be [1, C, spatial…]"));
                }
                let x = self.act(ins[0], step, node, op)?;
                let y = self.output(id, out_n, step);
                let kernel = Kernel::Reduce {
                    x,
                    outer: xs[0] * xs[1],
                    len: xs[2..].iter().product(),
                    inner: 1,
                    f: match kind {
                        GlobalPoolKind::Average => ReduceFn::Mean,
                        GlobalPoolKind::Max => ReduceFn::MaxNumber,
                    },
                };
                self.push(node, kernel, y);
                Ok(())
            }
            Op::Flatten { .. }
            | Op::Reshape(_)
            | Op::Identity
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. } => {
                // Same elements in the same order: the output aliases the input's storage.
                let x = self.act(ins[0], step, node, op)?;
                self.alias(id, node, x, AliasKind::View);
                Ok(())
            }
            Op::Binary(bop) => self.binary(id, node, op, *bop, &ins, out_n, step),
            Op::Variadic(v) => self.variadic(id, node, op, *v, &ins, step),
            Op::PRelu => self.prelu(id, node, op, &ins, out_n, step),
            Op::Unary(u) => self.unary(id, node, op, *u, &ins, out_n, step),
            Op::Clip(c) => self.clip(id, node, op, c, &ins, out_n, step),
            Op::BatchNorm(b) => self.batch_norm(id, node, op, b, &ins, out_n, step),
            Op::Softmax(s) => self.softmax(id, node, op, s, &ins, out_n, step),
            Op::ReduceMean(r) => self.reduce(id, node, op, r, ReduceFn::Mean, &ins, out_n, step),
            Op::ReduceSum(r) => self.reduce(id, node, op, r, ReduceFn::Sum, &ins, out_n, step),
            Op::ReduceMax(r) => self.reduce(id, node, op, r, ReduceFn::Max, &ins, out_n, step),
            Op::Concat { axis } => self.concat(id, node, op, *axis, &ins, out_n, step),
            Op::Transpose { perm } => self.transpose(id, node, op, perm, &ins, step),
            Op::Slice(_) | Op::Split(_) | Op::Expand { .. } | Op::Pad(_) => {
                self.copy(id, node, op, &ins, step)
            }
            Op::Gather { .. } => self.gather(id, node, op, &ins, step),
            Op::Resize(r) => self.resize(id, node, op, r, &ins, step),
            Op::MatMul => self.matmul(id, node, op, &ins, step),
            Op::Lstm(l) => self.lstm(id, node, op, l, &ins, step),
            Op::Gru(g) => self.gru(id, node, op, g, &ins, step),
            Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_) => Err(unsupported(
                node,
                op,
                "a float layer with float weights: quantize the graph first \
                 (`strata compile`, the vl-quantize and bitplane-rewrite passes) so that it \
                 becomes a bit-plane layer",
            )),
            // A comparison lowers with the Where that reads it (`Walk::condition`).
            Op::Where => self.select(id, node, op, &ins, out_n, step),
            // These never compute f32 activations in an inference graph; a float output here
            // (a DequantizeLinear, a Cast to f32) is not lowered.
            Op::Compare(_) | Op::ArgMax(_) | Op::Shape { .. } => Err(unsupported(
                node,
                op,
                "produces booleans or indices, not f32 activations",
            )),
            Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => Err(unsupported(
                node,
                op,
                "a float fake-quantization (QuantizeLinear → DequantizeLinear on an \
                 activation) is not lowered: export the float model and let Strata quantize \
                 it",
            )),
            Op::Cast { .. } => Err(unsupported(
                node,
                op,
                "element-type casts only occur on shapes and indices, not f32 activations",
            )),
        }
    }

    /// The plane count layer `l` keeps: its per-layer count, else `K`.
    fn layer_k(&self, l: usize, node: &str) -> Result<u8, LowerError> {
        let k = self.options.planes;
        let Some(per_layer) = &self.options.layer_planes else {
            return Ok(k);
        };
        let kl = *per_layer.get(l).ok_or(LowerError::LayerPlanes {
            expected: l + 1,
            got: per_layer.len(),
        })?;
        if kl == 0 || kl > k {
            return Err(LowerError::Planes {
                node: node.to_string(),
                planes: kl,
                reason: format!("the per-layer count is outside 1..={k}"),
            });
        }
        Ok(kl)
    }

    fn bitplane(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        b: &Bitplane,
        step: usize,
    ) -> Result<(), LowerError> {
        let ins = self.graph.node_inputs(id);
        if ins.len() != NUM_INPUTS {
            return Err(unsupported(node, op, "wrong number of inputs"));
        }
        let l = self.layers.len();
        let k = self.layer_k(l, node)?;
        let names = ["planes", "alpha", "beta", "bias", "act"];
        let weights = ins[INPUT_PLANES..]
            .iter()
            .zip(names)
            .map(|(&v, what)| self.constant(v, node, op, what))
            .collect::<Result<Vec<_>, _>>()?;
        let xs = self.shape(ins[INPUT_X])?;
        let ys = self.graph.node(id)?.outputs[0].ty.shape.resolve(1);
        let lowered = lower_layer(
            b,
            node,
            op,
            &weights,
            k,
            &xs,
            &ys,
            self.options.layout,
            self.options.code_bits,
        )?;
        let x = self.act(ins[INPUT_X], step, node, op)?;
        self.scratch = self.scratch.max(lowered.scratch);
        self.macs = self.macs.saturating_add(self.graph.node_macs(id)?);
        self.layers.push(lowered.layer);
        let y = self.output(id, ys.iter().product(), step);
        let kernel = match &b.kernel {
            BitplaneKernel::Conv(_) => Kernel::BitplaneConv {
                layer: l,
                x,
                relu: false,
            },
            BitplaneKernel::Linear => Kernel::BitplaneLinear {
                layer: l,
                x,
                relu: false,
            },
        };
        self.push(node, kernel, y);
        Ok(())
    }

    /// A Relu that is the only reader of a layer's output is applied in that layer's
    /// epilogue when the layout's kernels can (the same comparison, one pass fewer). It must
    /// read the layer's own output value: an alias (Identity, Reshape, Flatten) shares the
    /// storage, and the layer's value may have other readers that need it before the Relu.
    pub(crate) fn relu(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        ins: &[ValueRef],
        n: usize,
        step: usize,
    ) -> Result<(), LowerError> {
        let x = self.act(ins[0], step, node, op)?;
        let direct = matches!(
            self.graph.node(ins[0].node)?.kind,
            NodeKind::Op(Op::Bitplane(_))
        );
        let sole_reader = self.uses.get(&ins[0]) == Some(&1);
        let fusable = self.options.layout.fuses_relu() && direct && sole_reader;
        let last = self.steps.len().wrapping_sub(1);
        if let (true, Loc::Buf(b), Some(prev)) = (fusable, x, self.steps.last_mut()) {
            if let Kernel::BitplaneConv { relu, .. } | Kernel::BitplaneLinear { relu, .. } =
                &mut prev.kernel
            {
                if prev.y == b && !*relu {
                    *relu = true;
                    self.alias(id, node, x, AliasKind::FusedRelu { step: last });
                    return Ok(());
                }
            }
        }
        let y = self.output(id, n, step);
        self.push(node, Kernel::Relu { x, n }, y);
        Ok(())
    }

    fn pool(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        p: &Pool,
        max: bool,
        step: usize,
    ) -> Result<(), LowerError> {
        let ins = self.graph.node_inputs(id);
        let xin = *ins
            .first()
            .ok_or_else(|| unsupported(node, op, "no input"))?;
        let xs = self.shape(xin)?;
        let ys = self.graph.node(id)?.outputs[0].ty.shape.resolve(1);
        let geometry = PoolGeometry::new(p, &xs, &ys).map_err(|r| unsupported(node, op, r))?;
        if self.graph.value(xin)?.ty.dtype != DType::F32 {
            return Err(unsupported(node, op, "only f32 pooling"));
        }
        let x = self.act(xin, step, node, op)?;
        let y = self.output(id, ys.iter().product(), step);
        self.push(node, Kernel::Pool { x, geometry, max }, y);
        Ok(())
    }
}
