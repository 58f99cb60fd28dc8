//! The graph walk: every op node in topological order becomes a step over arena buffers, an
//! alias of an existing value, or an error naming the node. Relu fusion, aliasing and buffer
//! lifetimes are decided here; the planner then places the buffers.

use std::collections::HashMap;

use strata_ir::ops::bitplane::{Bitplane, BitplaneKernel, INPUT_PLANES, INPUT_X, NUM_INPUTS};
use strata_ir::ops::elementwise::UnaryOp;
use strata_ir::ops::pool::{GlobalPoolKind, Pool};
use strata_ir::{quant, DType, Graph, NodeId, NodeKind, Op, Tensor, ValueRef};

use crate::error::unsupported;
use crate::layer::lower_layer;
use crate::planner::{plan, Buffer};
use crate::{
    Alias, AliasKind, Constant, Kernel, Layer, Loc, LowerError, LowerOptions, Lowered,
    PoolGeometry, Port, Scratch, Step,
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
        steps: Vec::new(),
        buffers: Vec::new(),
        aliases: Vec::new(),
        scratch: Scratch::default(),
        macs: 0,
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
        inputs,
        outputs,
        layers: w.layers,
        constants: w.constants,
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
    pub(crate) steps: Vec<Step>,
    pub(crate) buffers: Vec<Buffer>,
    pub(crate) aliases: Vec<Alias>,
    pub(crate) scratch: Scratch,
    pub(crate) macs: u64,
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
        let loc = *self.locs.get(&v).ok_or_else(|| {
            unsupported(
                node,
                op,
                "an activation input is a constant (fold it first)",
            )
        })?;
        if let Loc::Buf(b) = loc {
            self.buffers[b].last = self.buffers[b].last.max(step);
        }
        Ok(loc)
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
        self.buffers.push(Buffer {
            size,
            first: step,
            last: step,
        });
        let y = self.buffers.len() - 1;
        self.locs.insert(ValueRef::first(id), Loc::Buf(y));
        y
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
        self.locs.insert(ValueRef::first(id), of);
        self.aliases.push(Alias {
            node: node.to_string(),
            of,
            kind,
        });
    }

    fn op(&mut self, id: NodeId, node: &str, op: &Op, step: usize) -> Result<(), LowerError> {
        let ins = self.graph.node_inputs(id);
        let out_ty = match self.graph.node(id)?.outputs.as_slice() {
            [v] => v.ty.clone(),
            _ => {
                return Err(LowerError::UnsupportedOp {
                    node: node.to_string(),
                    op: op.mnemonic(),
                })
            }
        };
        let out_n: usize = out_ty.shape.resolve(1).iter().product();
        if out_ty.dtype != DType::F32 {
            return Err(unsupported(
                node,
                op,
                format!("output is {}, not f32", out_ty.dtype),
            ));
        }
        match op {
            Op::Bitplane(b) => self.bitplane(id, node, op, b, step),
            Op::Unary(UnaryOp::Relu) => self.relu(id, node, op, &ins, out_n, step),
            Op::MaxPool(p) => self.pool(id, node, op, p, true, step),
            Op::AveragePool(p) => self.pool(id, node, op, p, false, step),
            Op::GlobalPool(GlobalPoolKind::Average) => {
                let xs = self.shape(ins[0])?;
                if xs.len() < 3 {
                    return Err(unsupported(node, op, "input must be [1, C, spatial…]"));
                }
                let x = self.act(ins[0], step, node, op)?;
                let y = self.output(id, out_n, step);
                let kernel = Kernel::Mean {
                    x,
                    outer: xs[0] * xs[1],
                    len: xs[2..].iter().product(),
                    inner: 1,
                };
                self.push(node, kernel, y);
                Ok(())
            }
            Op::Flatten { .. } | Op::Reshape(_) | Op::Identity => {
                // Same elements in the same order: the output aliases the input's storage.
                let x = self.act(ins[0], step, node, op)?;
                self.alias(id, node, x, AliasKind::View);
                Ok(())
            }
            Op::Binary(bop) => self.binary(id, node, op, *bop, &ins, out_n, step),
            Op::PRelu => self.prelu(id, node, op, &ins, out_n, step),
            Op::Unary(u @ (UnaryOp::LeakyRelu { .. }
            | UnaryOp::Sigmoid
            | UnaryOp::HardSigmoid { .. }
            | UnaryOp::HardSwish)) => self.unary(id, node, op, *u, &ins, out_n, step),
            Op::Clip(c) => self.clip(id, node, op, c, &ins, out_n, step),
            Op::Softmax(s) => self.softmax(id, node, op, s, &ins, out_n, step),
            Op::ReduceMean(r) => self.reduce_mean(id, node, op, r, &ins, out_n, step),
            Op::Concat { axis } => self.concat(id, node, op, *axis, &ins, out_n, step),
            Op::Transpose { perm } => self.transpose(id, node, op, perm, &ins, step),
            // No kernel yet: listed one by one, so that a new op must be placed here or above.
            Op::Conv(_)
            | Op::ConvTranspose(_)
            | Op::Gemm(_)
            | Op::MatMul
            // Erf: the runtime's is the `libm` crate's (musl's), not the C library's. Tanh:
            // glibc's tanhf rounds differently on aarch64 and riscv64 than on x86-64.
            | Op::Unary(
                UnaryOp::Erf
                | UnaryOp::Tanh
                | UnaryOp::Exp
                | UnaryOp::Log
                | UnaryOp::Sqrt
                | UnaryOp::Neg
                | UnaryOp::Abs
                | UnaryOp::Reciprocal
                | UnaryOp::Floor
                | UnaryOp::Ceil,
            )
            | Op::Compare(_)
            | Op::Where
            | Op::ReduceMax(_)
            | Op::ReduceSum(_)
            | Op::ArgMax(_)
            | Op::Expand { .. }
            | Op::Resize(_)
            | Op::QuantizeLinear(_)
            | Op::DequantizeLinear(_)
            | Op::BatchNorm(_)
            | Op::GlobalPool(GlobalPoolKind::Max)
            | Op::Pad(_)
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Shape { .. }
            | Op::Gather { .. }
            | Op::Slice(_)
            | Op::Split(_)
            | Op::Variadic(_)
            | Op::Cast { .. } => Err(LowerError::UnsupportedOp {
                node: node.to_string(),
                op: op.mnemonic(),
            }),
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
        let lowered = lower_layer(b, node, op, &weights, k, &xs, &ys, self.options.layout)?;
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
    fn relu(
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
