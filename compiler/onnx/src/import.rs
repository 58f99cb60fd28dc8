//! Graph-level import: initializers, inputs, node ordering, value bookkeeping, constant
//! folding and the final checks of the declared outputs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use strata_ir::{Dim, Graph, GraphError, Op, Shape, Tensor, TensorType, Value, ValueRef};

use super::attrs::NodeCtx;
use super::ops::{self, Ins, Optional};
use super::sym::{self, SymTensor};
use super::tensor::{dtype_from_onnx, tensor_from_proto, MAX_ELEMENTS};
use super::{ImportOptions, InputDim, InputShape, OnnxError};

/// Constant-input ops whose outputs have at most this many elements are evaluated at import
/// time; bigger ones are left to the `fold-constants` pass.
const FOLD_LIMIT: usize = 1 << 22;

/// Import state: the graph being built and what each ONNX value name maps to.
pub struct Importer {
    pub graph: Graph,
    values: HashMap<String, ValueRef>,
    /// Symbolic contents of non-constant values (shape vectors mentioning the batch size).
    sym: HashMap<ValueRef, SymTensor>,
    /// Every value name in use (ONNX value names and generated names).
    names: HashSet<String>,
    /// Every node name in use.
    node_names: HashSet<String>,
    /// ONNX values left out of the graph: float zeros of shape `[D, N, H]` from a
    /// ConstantOfShape or Expand ([`ops::batch_zero_state`]), and Slices and Transposes of
    /// them; each with the node that made them, named in the error of a reader other than
    /// an LSTM's or GRU's initial state.
    batch_zeros: HashMap<String, LeftOut>,
}

/// The node a left-out zero state comes from.
#[derive(Debug, Clone)]
struct LeftOut {
    node: String,
    op_type: String,
    /// Its shape input (the one computed from the batch size).
    input: String,
}

impl LeftOut {
    /// The error of a reader that needs the tensor itself.
    fn error(&self) -> OnnxError {
        OnnxError::BatchDependent {
            node: self.node.clone(),
            op_type: self.op_type.clone(),
            input: self.input.clone(),
            reason: "this shape must be a compile-time constant (zeros of a shape computed \
                     from the batch size serve only as an LSTM's or GRU's initial state)"
                .into(),
        }
    }
}

/// Whether ONNX input `i` of an `op_type` node is an initial state (absent means zeros).
fn is_initial_state(op_type: &str, i: usize) -> bool {
    matches!((op_type, i), ("LSTM", 5 | 6) | ("GRU", 5))
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

/// The name a node is known by: its ONNX name, else its first output, else op type + index.
fn display_name(n: &NodeProto, index: usize) -> String {
    if !n.name.is_empty() {
        return n.name.clone();
    }
    match n.output.iter().find(|o| !o.is_empty()) {
        Some(o) => o.clone(),
        None => format!("{}_{index}", n.op_type),
    }
}

/// A declared dimension: its static size, or its symbol (`?` when unnamed, `-1`, or absent).
fn declared_dim(d: &onnx_protobuf::tensor_shape_proto::Dimension) -> Result<usize, String> {
    match &d.value {
        Some(DimValue::DimValue(v)) if *v >= 0 => Ok(*v as usize),
        Some(DimValue::DimValue(-1)) => Err("-1".to_string()),
        Some(DimValue::DimValue(v)) => Err(format!("invalid:{v}")),
        Some(DimValue::DimParam(p)) if !p.is_empty() => Err(p.clone()),
        _ => Err("?".to_string()),
    }
}

/// The `NAME=1x…` shapes that pin every graph input whose axis 0 is dynamic to batch 1 (its
/// other dims as declared; inputs with another dynamic dim are left out). What to suggest
/// when a shape computed from the batch size stops the import: Strata keeps the batch free
/// only through the shape arithmetic it can follow symbolically (`sym`).
pub fn batch_one_shapes(model: &ModelProto) -> Vec<String> {
    let Some(g) = model.graph.as_ref() else {
        return Vec::new();
    };
    let mut shapes = Vec::new();
    for vi in &g.input {
        if g.initializer.iter().any(|t| t.name == vi.name) {
            continue;
        }
        let Some(TypeValue::TensorType(tt)) = vi.type_.as_ref().and_then(|t| t.value.as_ref())
        else {
            continue;
        };
        let Some(shape) = tt.shape.as_ref() else {
            continue;
        };
        let dims: Vec<Result<usize, String>> = shape.dim.iter().map(declared_dim).collect();
        match dims.split_first() {
            Some((Err(_), rest)) if rest.iter().all(Result::is_ok) => {
                let dims: Vec<String> = std::iter::once("1".to_string())
                    .chain(rest.iter().flatten().map(|d| d.to_string()))
                    .collect();
                shapes.push(format!("{}={}", vi.name, dims.join("x")));
            }
            _ => {}
        }
    }
    shapes
}

/// The static type declared for a graph input or output; an input's dynamic dimensions are
/// taken from `pinned` when the user gave its shape.
fn value_type(
    vi: &ValueInfoProto,
    is_input: bool,
    pinned: Option<&InputShape>,
) -> Result<TensorType, OnnxError> {
    let name = vi.name.as_str();
    let unsupported = |reason: &str| OnnxError::UnsupportedType {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let tp = vi
        .type_
        .as_ref()
        .ok_or_else(|| unsupported("no type is declared"))?;
    let Some(TypeValue::TensorType(tt)) = &tp.value else {
        return Err(unsupported("only tensor types are supported"));
    };
    let dtype = dtype_from_onnx(tt.elem_type, name)?;
    let shape = tt
        .shape
        .as_ref()
        .ok_or_else(|| unsupported("no shape is declared (Strata needs static ranks)"))?;
    let declared: Vec<Result<usize, String>> = shape.dim.iter().map(declared_dim).collect();
    let shown = |d: &Result<usize, String>| match d {
        Ok(v) => v.to_string(),
        Err(_) => "?".to_string(),
    };
    let declared_text = || {
        let dims: Vec<String> = declared.iter().map(shown).collect();
        format!("[{}]", dims.join(","))
    };
    if let Some(pinned) = pinned {
        let mismatch = |reason: String| OnnxError::InputShape {
            input: name.to_string(),
            pinned: pinned.to_string(),
            declared: declared_text(),
            reason,
        };
        if pinned.0.len() != declared.len() {
            return Err(mismatch(format!(
                "rank {} instead of {}",
                pinned.0.len(),
                declared.len()
            )));
        }
        for (axis, (d, p)) in declared.iter().zip(&pinned.0).enumerate() {
            match (d, p) {
                (Ok(v), InputDim::Size(s)) if v != s => {
                    return Err(mismatch(format!("axis {axis} is {v}, not {s}")))
                }
                (Ok(v), InputDim::Batch) => {
                    return Err(mismatch(format!("axis {axis} is {v}, not a free batch")))
                }
                (Err(sym), _) if sym.starts_with("invalid:") => {
                    return Err(OnnxError::InvalidDim {
                        name: name.to_string(),
                        axis,
                        dim: sym["invalid:".len()..].parse().unwrap_or(i64::MIN),
                    })
                }
                _ => {}
            }
        }
    }
    let mut dims = Vec::with_capacity(declared.len().min(64));
    for (axis, d) in declared.iter().enumerate() {
        let pin = pinned.and_then(|p| p.0.get(axis).copied());
        let symbol = match (d, pin) {
            (_, Some(InputDim::Size(v))) | (&Ok(v), _) => {
                if v as u64 > MAX_ELEMENTS {
                    return Err(OnnxError::InvalidDim {
                        name: name.to_string(),
                        axis,
                        dim: v as i64,
                    });
                }
                dims.push(Dim::Known(v));
                continue;
            }
            (Err(sym), _) if sym.starts_with("invalid:") => {
                return Err(OnnxError::InvalidDim {
                    name: name.to_string(),
                    axis,
                    dim: sym["invalid:".len()..].parse().unwrap_or(i64::MIN),
                })
            }
            (Err(sym), _) => sym.clone(),
        };
        if axis == 0 {
            dims.push(Dim::Batch);
        } else if is_input {
            let suggestion: Vec<String> = declared
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Err(_) if i == 0 => "N".to_string(),
                    d => shown(d),
                })
                .collect();
            return Err(OnnxError::SymbolicDim {
                input: name.to_string(),
                axis,
                symbol,
                suggestion: suggestion.join("x"),
            });
        } else {
            // A declared output dimension that is symbolic is simply not checked.
            dims.push(Dim::Batch);
        }
    }
    let ty = TensorType::new(dtype, Shape(dims));
    if let Err(e) = strata_ir::limits::check_type(&ty, 1) {
        return Err(OnnxError::TensorTooLarge {
            name: name.to_string(),
            dims: ty
                .shape
                .dims()
                .iter()
                .map(|d| d.known().map_or(-1, |n| n as i64))
                .collect(),
            reason: format!("per batch item, {e}"),
        });
    }
    Ok(ty)
}

/// Checks a declared output/value_info type against the inferred one where both are known.
fn check_declared(vi: &ValueInfoProto, inferred: &TensorType) -> Result<(), OnnxError> {
    let Some(tp) = vi.type_.as_ref() else {
        return Ok(());
    };
    let Some(TypeValue::TensorType(tt)) = &tp.value else {
        return Ok(());
    };
    let mismatch = |declared: String| OnnxError::TypeMismatch {
        name: vi.name.clone(),
        declared,
        inferred: inferred.to_string(),
    };
    if tt.elem_type != 0 {
        let dtype = dtype_from_onnx(tt.elem_type, &vi.name)?;
        if dtype != inferred.dtype {
            return Err(mismatch(format!("element type {dtype}")));
        }
    }
    if let Some(shape) = tt.shape.as_ref() {
        let declared: Vec<String> = shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(DimValue::DimValue(v)) => v.to_string(),
                Some(DimValue::DimParam(p)) => p.clone(),
                _ => "?".to_string(),
            })
            .collect();
        let text = || format!("shape [{}]", declared.join(","));
        // A declared shape with a symbolic dimension was written for dynamic dimensions the
        // import has pinned (`--input-shape`); exporters often get such declarations wrong
        // (ddddocr's CRNN declares `[1, seqlen]` for a `[16, 1, 8210]` output, which
        // onnxruntime only warns about), so only fully numeric shapes are checked.
        if shape
            .dim
            .iter()
            .any(|d| matches!(d.value, Some(DimValue::DimParam(_))))
        {
            return Ok(());
        }
        if shape.dim.len() != inferred.rank() {
            return Err(mismatch(text()));
        }
        for (d, inf) in shape.dim.iter().zip(inferred.shape.dims()) {
            if let (Some(DimValue::DimValue(v)), Dim::Known(k)) = (&d.value, inf) {
                if *v != *k as i64 {
                    return Err(mismatch(text()));
                }
            }
        }
    }
    Ok(())
}

/// Whether a bound tensor fits the declared input type (batch matches any size).
fn fits(ty: &TensorType, t: &Tensor) -> bool {
    ty.dtype == t.dtype()
        && ty.rank() == t.rank()
        && ty
            .shape
            .dims()
            .iter()
            .zip(t.shape())
            .all(|(d, &n)| d.known().is_none_or(|k| k == n))
}

/// Imports a decoded model.
pub fn import_model(
    model: &ModelProto,
    base_dir: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Graph, OnnxError> {
    let g = model.graph.as_ref().ok_or(OnnxError::MissingGraph)?;
    let mut default_opset = None;
    let mut domains: HashMap<&str, i64> = HashMap::new();
    for o in &model.opset_import {
        if is_default_domain(&o.domain) {
            default_opset = Some(o.version);
        } else {
            domains.insert(o.domain.as_str(), o.version);
        }
    }
    let mut imp = Importer {
        graph: Graph::new(g.name.clone()),
        values: HashMap::new(),
        sym: HashMap::new(),
        names: HashSet::new(),
        node_names: HashSet::new(),
        batch_zeros: HashMap::new(),
    };
    imp.define_values(g, opts, base_dir)?;
    let order = topo_sort(g, &imp.values)?;
    for i in order {
        let n = &g.node[i];
        let name = imp.unique(&display_name(n, i));
        if !is_default_domain(&n.domain) {
            return Err(OnnxError::UnsupportedDomain {
                node: name,
                op_type: n.op_type.clone(),
                domain: n.domain.clone(),
                opset: domains.get(n.domain.as_str()).copied(),
            });
        }
        let opset = default_opset.ok_or_else(|| OnnxError::MissingOpset {
            node: name.clone(),
            op_type: n.op_type.clone(),
        })?;
        let ctx = NodeCtx {
            name,
            op_type: &n.op_type,
            proto: n,
            opset,
        };
        // A Slice or Transpose of a left-out zero state is one too.
        let carries_zeros = matches!(n.op_type.as_str(), "Slice" | "Transpose")
            && n.output.len() == 1
            && n.input
                .first()
                .is_some_and(|x| imp.batch_zeros.contains_key(x));
        if carries_zeros {
            let from = imp.batch_zeros[&n.input[0]].clone();
            imp.batch_zeros.insert(n.output[0].clone(), from);
            continue;
        }
        let ins = n
            .input
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.is_empty() {
                    return Ok(None);
                }
                if let Some(from) = imp.batch_zeros.get(s) {
                    return match is_initial_state(&n.op_type, i) {
                        true => Ok(None),
                        false => Err(from.error()),
                    };
                }
                imp.values
                    .get(s)
                    .copied()
                    .map(Some)
                    .ok_or_else(|| OnnxError::UndefinedInput {
                        node: ctx.name.clone(),
                        op_type: n.op_type.clone(),
                        input: s.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if matches!(n.op_type.as_str(), "ConstantOfShape" | "Expand") && n.output.len() == 1 {
            if let Some(input) = ops::batch_zero_state(&imp, &ctx, &ins) {
                let from = LeftOut {
                    node: ctx.name.clone(),
                    op_type: n.op_type.clone(),
                    input,
                };
                imp.batch_zeros.insert(n.output[0].clone(), from);
                continue;
            }
        }
        let outs = ops::import_node(&mut imp, &ctx, &ins)?;
        for (i, out) in n.output.iter().enumerate() {
            if out.is_empty() {
                continue;
            }
            match outs.get(i) {
                Some(&v) => {
                    imp.values.insert(out.clone(), v);
                }
                None => {
                    return Err(ctx.unsupported(format!("output #{i} (`{out}`) is not supported")))
                }
            }
        }
    }
    let mut outputs = Vec::with_capacity(g.output.len());
    for vi in &g.output {
        if let Some(from) = imp.batch_zeros.get(&vi.name) {
            return Err(from.error());
        }
        let v = *imp
            .values
            .get(&vi.name)
            .ok_or_else(|| OnnxError::UndefinedOutput {
                name: vi.name.clone(),
            })?;
        check_declared(vi, &imp.graph.value(v)?.ty)?;
        outputs.push(v);
    }
    for vi in &g.value_info {
        if let Some(&v) = imp.values.get(&vi.name) {
            check_declared(vi, &imp.graph.value(v)?.ty)?;
        }
    }
    imp.graph.set_outputs(outputs);
    imp.prune()?;
    Ok(imp.graph)
}

/// Orders nodes so producers come first (ties keep file order); detects undefined inputs,
/// duplicate definitions and cycles.
fn topo_sort(g: &GraphProto, defined: &HashMap<String, ValueRef>) -> Result<Vec<usize>, OnnxError> {
    let desc = |i: usize| format!("node `{}`", display_name(&g.node[i], i));
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if defined.contains_key(o) {
                return Err(OnnxError::DuplicateValue {
                    name: o.clone(),
                    first: "an initializer or graph input".to_string(),
                    second: desc(i),
                });
            }
            if let Some(&j) = producer.get(o.as_str()) {
                return Err(OnnxError::DuplicateValue {
                    name: o.clone(),
                    first: desc(j),
                    second: desc(i),
                });
            }
            producer.insert(o, i);
        }
    }
    let mut indeg = vec![0usize; g.node.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    for (i, n) in g.node.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&j) = producer.get(inp.as_str()) {
                indeg[i] += 1;
                users[j].push(i);
            } else if !defined.contains_key(inp) {
                return Err(OnnxError::UndefinedInput {
                    node: display_name(n, i),
                    op_type: n.op_type.clone(),
                    input: inp.clone(),
                });
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..g.node.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(g.node.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if let Some(i) = (0..g.node.len()).find(|&i| indeg[i] > 0) {
        return Err(OnnxError::Cycle {
            node: display_name(&g.node[i], i),
            op_type: g.node[i].op_type.clone(),
        });
    }
    Ok(order)
}

impl Importer {
    /// Initializers become constants, graph inputs become inputs (or constants when they
    /// have an initializer or a binding).
    fn define_values(
        &mut self,
        g: &GraphProto,
        opts: &ImportOptions,
        base_dir: Option<&Path>,
    ) -> Result<(), OnnxError> {
        for vi in &g.value_info {
            self.names.insert(vi.name.clone());
        }
        for n in &g.node {
            self.names.extend(n.output.iter().cloned());
        }
        let input_names: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
        // A shape for a name that is not an input is a typo: say so before anything else.
        let free: Vec<&str> = g
            .input
            .iter()
            .map(|v| v.name.as_str())
            .filter(|n| !g.initializer.iter().any(|t| t.name == *n))
            .collect();
        if let Some(name) = opts
            .input_shapes
            .keys()
            .find(|k| !free.contains(&k.as_str()))
        {
            return Err(OnnxError::UnknownInputShape {
                name: name.clone(),
                inputs: free.join(", "),
            });
        }
        if let Some(s) = g.sparse_initializer.first() {
            return Err(OnnxError::UnsupportedType {
                name: s.values.name.clone(),
                reason: "sparse initializers are not supported".to_string(),
            });
        }
        for t in &g.initializer {
            if self.values.contains_key(&t.name) {
                return Err(OnnxError::DuplicateValue {
                    name: t.name.clone(),
                    first: "an initializer".to_string(),
                    second: "another initializer".to_string(),
                });
            }
            if opts.bind.contains_key(&t.name) && input_names.contains(t.name.as_str()) {
                continue; // the binding overrides the initializer's default value
            }
            let tensor = tensor_from_proto(t, base_dir)?;
            self.names.insert(t.name.clone());
            self.node_names.insert(t.name.clone());
            let v = self.graph.add_constant(t.name.clone(), tensor);
            self.values.insert(t.name.clone(), v);
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut bound: HashSet<&str> = HashSet::new();
        for vi in &g.input {
            if !seen.insert(vi.name.as_str()) {
                return Err(OnnxError::DuplicateValue {
                    name: vi.name.clone(),
                    first: "a graph input".to_string(),
                    second: "another graph input".to_string(),
                });
            }
            if self.values.contains_key(&vi.name) {
                continue; // has an initializer: a constant (ONNX IR ≥ 4)
            }
            let ty = value_type(vi, true, opts.input_shapes.get(&vi.name))?;
            self.names.insert(vi.name.clone());
            self.node_names.insert(vi.name.clone());
            let v = match opts.bind.get(&vi.name) {
                Some(t) => {
                    if !fits(&ty, t) {
                        return Err(OnnxError::BindingMismatch {
                            name: vi.name.clone(),
                            declared: ty.to_string(),
                            got: t.ty().to_string(),
                        });
                    }
                    bound.insert(vi.name.as_str());
                    self.graph.add_constant(vi.name.clone(), t.clone())
                }
                None => self.graph.add_input(vi.name.clone(), ty),
            };
            self.values.insert(vi.name.clone(), v);
        }
        if let Some(name) = opts.bind.keys().find(|k| !bound.contains(k.as_str())) {
            return Err(OnnxError::UnknownBinding { name: name.clone() });
        }
        Ok(())
    }

    /// A node name not used yet (`base`, else `base_1`, `base_2`, …). Only node names count:
    /// a node may share the name of its own output value.
    pub fn unique(&mut self, base: &str) -> String {
        claim_free(&mut self.node_names, base)
    }

    /// A fresh value name for something the frontend adds (e.g. Clip bounds from attributes).
    pub fn fresh(&mut self, base: &str) -> String {
        claim_free(&mut self.names, base)
    }

    /// The IR name of ONNX output `i` of the node (generated when the file leaves it empty).
    pub fn out_name(&mut self, ctx: &NodeCtx, i: usize) -> String {
        match ctx.proto.output.get(i) {
            Some(s) if !s.is_empty() => s.clone(),
            _ => self.fresh(&format!("{}_out{i}", ctx.name)),
        }
    }

    /// Adds a constant under a fresh name derived from `base`.
    pub fn add_constant(&mut self, base: &str, t: Tensor) -> ValueRef {
        let name = self.fresh(base);
        self.node_names.insert(name.clone());
        self.graph.add_constant(name, t)
    }

    pub fn ty(&self, v: ValueRef) -> Result<TensorType, OnnxError> {
        Ok(self.graph.value(v)?.ty.clone())
    }

    pub fn constant(&self, v: ValueRef) -> Option<Arc<Tensor>> {
        self.graph.constant_value(v).cloned()
    }

    fn sym_of(&self, v: ValueRef) -> Option<SymTensor> {
        self.sym.get(&v).cloned().or_else(|| {
            self.graph
                .constant_value(v)
                .and_then(|t| SymTensor::from_tensor(t))
        })
    }

    /// Symbolic content of input `i` (for Reshape targets); `None` if absent.
    pub fn sym_input(&self, ctx: &NodeCtx, ins: &Ins, i: usize) -> Optional<SymTensor> {
        let Some(v) = ins.get(i).copied().flatten() else {
            return Ok(None);
        };
        match self.sym_of(v) {
            Some(s) => Ok(Some(s)),
            None => match self.graph.constant_value(v) {
                Some(t) if t.dtype().is_integer() => Ok(Some(SymTensor {
                    dtype: t.dtype(),
                    shape: t.shape().to_vec(),
                    elems: t
                        .to_i64_vec()
                        .unwrap_or_default()
                        .into_iter()
                        .map(sym::SymInt::Known)
                        .collect(),
                })),
                _ => Err(ctx.non_constant(&input_name(ctx, i))),
            },
        }
    }

    /// The integer contents of input `i`, which must be a constant (or absent → `None`).
    pub fn const_ints(&self, ctx: &NodeCtx, ins: &Ins, i: usize) -> Optional<Vec<i64>> {
        let Some(s) = self.sym_input(ctx, ins, i)? else {
            return Ok(None);
        };
        match s.known() {
            Some(v) => Ok(Some(v)),
            None => Err(OnnxError::BatchDependent {
                node: ctx.name.clone(),
                op_type: ctx.op_type.to_string(),
                input: input_name(ctx, i),
                reason: "this parameter must be a compile-time constant".to_string(),
            }),
        }
    }

    /// The single value of a constant scalar (or one-element) input, as f64.
    pub fn const_scalar(&self, ctx: &NodeCtx, ins: &Ins, i: usize) -> Optional<f64> {
        let Some(v) = ins.get(i).copied().flatten() else {
            return Ok(None);
        };
        let t = self
            .graph
            .constant_value(v)
            .ok_or_else(|| ctx.non_constant(&input_name(ctx, i)))?;
        match t.to_f64_vec().as_slice() {
            [x] => Ok(Some(*x)),
            other => Err(ctx.input_count(format!(
                "input `{}` must hold one value, it holds {}",
                input_name(ctx, i),
                other.len()
            ))),
        }
    }

    /// Input `i`, which must be present.
    pub fn req(&self, ctx: &NodeCtx, ins: &Ins, i: usize) -> Result<ValueRef, OnnxError> {
        ins.get(i)
            .copied()
            .flatten()
            .ok_or_else(|| ctx.input_count(format!("required input #{i} is missing")))
    }

    /// Adds one op for an ONNX node: infers output types, then either evaluates it at import
    /// time (constant or symbolically known inputs) or adds an op node.
    pub fn emit(
        &mut self,
        ctx: &NodeCtx,
        op: Op,
        inputs: &[ValueRef],
        out_names: Vec<String>,
    ) -> Result<Vec<ValueRef>, OnnxError> {
        let types = inputs
            .iter()
            .map(|&v| self.ty(v))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&TensorType> = types.iter().collect();
        let out_types = op.infer(&refs).map_err(|source| OnnxError::Shape {
            node: ctx.name.clone(),
            op_type: ctx.op_type.to_string(),
            source,
        })?;
        if out_types.len() != out_names.len() {
            return Err(GraphError::OutputCount {
                node: ctx.name.clone(),
                op: op.mnemonic(),
                declared: out_names.len(),
                produced: out_types.len(),
            }
            .into());
        }
        let symbolic = match (&op, out_types.as_slice()) {
            (Op::Shape { start, end }, [_]) => sym::shape_of(types[0].shape.dims(), *start, *end),
            (_, [out]) => inputs
                .iter()
                .map(|&v| self.sym_of(v))
                .collect::<Option<Vec<_>>>()
                .and_then(|s| sym::eval(&op, &s, out.dtype)),
            _ => None,
        };
        if let Some(t) = symbolic.as_ref().and_then(|s| s.to_tensor()) {
            if t.ty() == out_types[0] {
                let name = out_names.into_iter().next().unwrap_or_default();
                return Ok(vec![self.graph.add_constant(name, t)]);
            }
        }
        if let Some(folded) = self.fold(&op, inputs, &out_types) {
            return Ok(out_names
                .into_iter()
                .zip(folded)
                .map(|(name, t)| self.graph.add_constant(name, t))
                .collect());
        }
        let n = out_types.len();
        let outputs = out_names
            .into_iter()
            .zip(out_types)
            .map(|(name, ty)| Value { name, ty })
            .collect();
        let id = self.graph.add_op(ctx.name.clone(), op, inputs, outputs)?;
        let vals: Vec<ValueRef> = (0..n).map(|output| ValueRef { node: id, output }).collect();
        if let (Some(s), [v]) = (symbolic, vals.as_slice()) {
            self.sym.insert(*v, s);
        }
        Ok(vals)
    }

    /// Evaluates an op whose inputs are all constants, when its outputs are small.
    fn fold(&self, op: &Op, inputs: &[ValueRef], out_types: &[TensorType]) -> Option<Vec<Tensor>> {
        let consts = inputs
            .iter()
            .map(|&v| self.graph.constant_value(v).cloned())
            .collect::<Option<Vec<_>>>()?;
        let small = out_types.iter().all(|t| {
            t.shape.as_known().is_some_and(|d| {
                d.iter()
                    .try_fold(1usize, |a, &x| a.checked_mul(x))
                    .is_some_and(|n| n <= FOLD_LIMIT)
            })
        });
        if !small {
            return None;
        }
        let refs: Vec<&Tensor> = consts.iter().map(|t| t.as_ref()).collect();
        // A runtime failure here is not the model's fault: keep the op and let run time report it.
        let outs = strata_runtime::eval_op(op, &refs).ok()?;
        (outs.len() == out_types.len() && outs.iter().zip(out_types).all(|(t, ty)| t.ty() == *ty))
            .then_some(outs)
    }

    /// Removes nodes that no graph output depends on (e.g. the Shape ops of a folded
    /// reshape target). Graph inputs stay.
    fn prune(&mut self) -> Result<(), OnnxError> {
        let mut live: HashSet<_> = HashSet::new();
        let mut stack: Vec<_> = self.graph.outputs().iter().map(|v| v.node).collect();
        stack.extend(self.graph.inputs().iter().copied());
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(self.graph.node_inputs(id).into_iter().map(|v| v.node));
            }
        }
        let dead: Vec<_> = self
            .graph
            .node_ids()
            .filter(|id| !live.contains(id))
            .collect();
        for id in dead {
            self.graph.remove_node(id)?;
        }
        Ok(())
    }
}

/// The ONNX name of input `i` of a node, for messages.
pub fn input_name(ctx: &NodeCtx, i: usize) -> String {
    match ctx.proto.input.get(i) {
        Some(s) if !s.is_empty() => s.clone(),
        _ => format!("#{i}"),
    }
}

/// Takes the first of `base`, `base_1`, `base_2`, … that is not in `taken` (and adds it).
fn claim_free(taken: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut k = 1;
    while taken.contains(&name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    taken.insert(name.clone());
    name
}
