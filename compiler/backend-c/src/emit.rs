//! Graph walk and C text generation for the `generic` target.

use std::fmt::Write as _;

use strata_ir::ops::bitplane::{Bitplane, BitplaneKernel, INPUT_PLANES, INPUT_X};
use strata_ir::ops::elementwise::{BinaryOp, UnaryOp};
use strata_ir::ops::pool::{GlobalPoolKind, Pool};
use strata_ir::quant::{ResolveError, ResolvedLayer};
use strata_ir::{quant, DType, Graph, NodeId, NodeKind, Op, Tensor, ValueRef};

use super::planner::{plan, Buffer};
use super::target::{Layout, Target};
use super::{EmitError, EmitOptions, EmitStats, EmittedC, LayerStats};

/// The C helpers, split into named sections so only what the graph uses is emitted (unused
/// static functions would warn under `-Wall -Werror`).
const PRELUDE: &str = include_str!("prelude.c");

/// Convolutions with fewer input channels per group than this use im2col on the code layout:
/// channel pairs would otherwise be mostly zero padding.
const COL_BELOW_CHANNELS: usize = 8;

/// Arena offsets are multiples of 4 floats (16 bytes), enough for any SIMD load a compiler
/// may choose on the generic target.
const ALIGN: usize = 4;

/// Where a value lives at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    /// The caller's input buffer (read-only).
    Input,
    /// An arena buffer (index into the planner's buffer list).
    Buf(usize),
}

/// The second operand of Add/Mul.
#[derive(Debug, Clone)]
enum Operand {
    Act(Loc),
    /// A constant emitted as a `static const float` array with this many elements.
    Const(String, usize),
}

/// One generated statement, rendered once the arena is planned.
#[derive(Debug, Clone)]
enum Step {
    Bitplane {
        node: String,
        layer: usize,
        /// The kernel call with `X`/`Y` standing for the input and output pointers and `RELU`
        /// (if present) for whether a following Relu is fused into the epilogue.
        call: String,
        relu: bool,
        x: Loc,
        y: usize,
    },
    Relu {
        node: String,
        x: Loc,
        y: usize,
        n: usize,
    },
    Pool {
        node: String,
        init: String,
        is_max: bool,
        x: Loc,
        y: usize,
    },
    GlobalAvg {
        node: String,
        x: Loc,
        y: usize,
        planes: usize,
        area: usize,
    },
    Binary {
        node: String,
        mul: bool,
        a: Loc,
        b: Operand,
        y: usize,
        n: usize,
    },
}

/// A layer's weights as emitted.
struct LayerWeights {
    /// Bytes of weight data (planes or codes, plus tap offsets).
    bytes: usize,
    /// Code layout: (16-row blocks per group, taps, channel pairs); zeros for planes.
    blocks: (usize, usize, usize),
    /// The `static const` conv geometry, for convolutions.
    geometry: Option<String>,
}

/// Per bit-plane layer facts for the header.
struct LayerInfo {
    node: String,
    counts: Vec<u8>,
}

/// Text of the prelude section `name`.
fn section(name: &str) -> &'static str {
    section_of(PRELUDE, name)
}

/// Text of section `name` of a C file split by `/*@section NAME*/` markers.
fn section_of(text: &'static str, name: &str) -> &'static str {
    let marker = format!("/*@section {name}*/\n");
    let Some(start) = text.find(&marker) else {
        return "";
    };
    let body = &text[start + marker.len()..];
    let end = body.find("/*@section ").unwrap_or(body.len());
    &body[..end]
}

/// A node name made safe inside a C comment.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect::<String>()
        .replace("*/", "*_/")
}

/// A C float literal that parses back to exactly `v` (shortest round-trip decimal).
fn c_float(v: f32) -> String {
    if v.is_nan() {
        "NAN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "INFINITY" } else { "-INFINITY" }.into()
    } else {
        format!("{v:?}f")
    }
}

fn float_array(out: &mut String, name: &str, vals: &[f32]) {
    let _ = write!(out, "static const float {name}[{}] = {{", vals.len().max(1));
    for (i, v) in vals.iter().enumerate() {
        out.push_str(if i % 8 == 0 { "\n    " } else { " " });
        out.push_str(&c_float(*v));
        out.push(',');
    }
    if vals.is_empty() {
        out.push_str("0.0f");
    }
    out.push_str("\n};\n");
}

struct Ctx<'g> {
    graph: &'g Graph,
    k: u8,
    /// Per-layer default plane counts (mixed precision), in layer order; each layer keeps
    /// only its own planes.
    layer_planes: Option<&'g [u8]>,
    /// Weight bytes of each bit-plane layer, in layer order.
    layer_bytes: Vec<LayerStats>,
    locs: std::collections::HashMap<ValueRef, Loc>,
    bufs: Vec<Buffer>,
    steps: Vec<Step>,
    layers: Vec<LayerInfo>,
    data: String,
    weight_bytes: usize,
    macs: u64,
    max_u: usize,
    max_col: usize,
    target: Target,
    /// How many ops (and graph outputs) read each value.
    uses: std::collections::HashMap<ValueRef, usize>,
    /// Scratch of the code layout (elements): quantized input (int16), padded channel-last
    /// input (int16), per-pixel and per-position sums (int32), folded scales (float).
    max_sq: usize,
    max_sx: usize,
    max_ss: usize,
    max_sus: usize,
    max_rows: usize,
    sections: std::collections::BTreeSet<&'static str>,
}

fn unsupported(node: &str, op: &Op, reason: impl Into<String>) -> EmitError {
    EmitError::Unsupported {
        node: node.to_string(),
        op: op.mnemonic(),
        reason: reason.into(),
    }
}

impl<'g> Ctx<'g> {
    /// The activation location of `v`, extending its buffer's lifetime to `step`.
    fn act(&mut self, v: ValueRef, step: usize, node: &str, op: &Op) -> Result<Loc, EmitError> {
        let loc = *self.locs.get(&v).ok_or_else(|| {
            unsupported(
                node,
                op,
                "an activation input is a constant (fold it first)",
            )
        })?;
        if let Loc::Buf(b) = loc {
            self.bufs[b].last = self.bufs[b].last.max(step);
        }
        Ok(loc)
    }

    fn constant(
        &self,
        v: ValueRef,
        node: &str,
        op: &Op,
        what: &str,
    ) -> Result<&'g Tensor, EmitError> {
        self.graph
            .constant_value(v)
            .map(|t| t.as_ref())
            .ok_or_else(|| unsupported(node, op, format!("{what} must be a constant")))
    }

    fn f32s(&self, v: ValueRef, node: &str, op: &Op, what: &str) -> Result<&'g [f32], EmitError> {
        self.constant(v, node, op, what)?
            .as_f32()
            .ok_or_else(|| unsupported(node, op, format!("{what} must be f32")))
    }

    fn new_buf(&mut self, size: usize, step: usize) -> usize {
        self.bufs.push(Buffer {
            size,
            first: step,
            last: step,
        });
        self.bufs.len() - 1
    }

    fn bitplane(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        b: &Bitplane,
        step: usize,
    ) -> Result<(), EmitError> {
        let ins = self.graph.node_inputs(id);
        if ins.len() != strata_ir::ops::bitplane::NUM_INPUTS {
            return Err(unsupported(node, op, "wrong number of inputs"));
        }
        let spec = &b.spec;
        let l = self.layers.len();
        let k = match self.layer_planes {
            Some(per_layer) => {
                let kl = *per_layer.get(l).ok_or(EmitError::LayerPlanes {
                    expected: l + 1,
                    got: per_layer.len(),
                })?;
                if kl == 0 || kl > self.k {
                    return Err(EmitError::Planes {
                        node: node.to_string(),
                        planes: kl,
                        reason: format!("the per-layer count is outside 1..={}", self.k),
                    });
                }
                kl
            }
            None => self.k,
        };
        let names = ["planes", "alpha", "beta", "bias", "act"];
        let weights = ins[INPUT_PLANES..]
            .iter()
            .zip(names)
            .map(|(&v, what)| self.constant(v, node, op, what))
            .collect::<Result<Vec<_>, _>>()?;
        let resolve_err = |e: ResolveError| match e {
            ResolveError::NoSideTable { k, .. }
            | ResolveError::PlanesUnavailable { k, .. }
            | ResolveError::Activation { k, .. } => EmitError::Planes {
                node: node.to_string(),
                planes: k,
                reason: e.to_string(),
            },
            e => unsupported(node, op, e.to_string()),
        };
        let layer = b.resolve(&weights, k).map_err(resolve_err)?;
        // Each plane's partial sum Σ bit·u is kept in int32: |u| < 384 for 8-bit activations.
        if spec.cols > (i32::MAX as usize) / 384 {
            return Err(unsupported(
                node,
                op,
                format!("{} columns overflow int32 sums", spec.cols),
            ));
        }
        let (r, words) = (spec.rows, quant::row_bytes(spec.cols) / 8);
        // The side tables of every plane count up to `k`, each validated.
        let tables = spec
            .plane_counts
            .iter()
            .filter(|&&c| c <= k)
            .map(|&c| b.resolve(&weights, c).map_err(resolve_err))
            .collect::<Result<Vec<_>, _>>()?;
        let counts: Vec<u8> = tables.iter().map(|t| t.k).collect();
        let rows_of = |f: &dyn Fn(&ResolvedLayer) -> Vec<f32>| -> Vec<f32> {
            tables.iter().flat_map(f).collect()
        };
        let x = self.act(ins[INPUT_X], step, node, op)?;
        let xty = &self.graph.value(ins[INPUT_X])?.ty;
        let xs = xty.shape.resolve(1);
        let out_ty = &self.graph.node(id)?.outputs[0].ty;
        let ys = out_ty.shape.resolve(1);
        let out_n: usize = ys.iter().product();
        let in_n: usize = xs.iter().product();
        // Conv geometry: [c, h, w, m, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, group].
        let geom = match &b.kernel {
            BitplaneKernel::Linear => {
                self.macs += (r * spec.cols) as u64;
                None
            }
            BitplaneKernel::Conv(c) => {
                if xs.len() != 4 || ys.len() != 4 || c.kernel.len() != 2 || c.pads.len() != 4 {
                    return Err(unsupported(
                        node,
                        op,
                        "only 2-D convolutions ([1, C, H, W])",
                    ));
                }
                let v = [
                    xs[1],
                    xs[2],
                    xs[3],
                    ys[1],
                    ys[2],
                    ys[3],
                    c.kernel[0],
                    c.kernel[1],
                    c.strides[0],
                    c.strides[1],
                    c.pads[0],
                    c.pads[1],
                    c.dilations[0],
                    c.dilations[1],
                    c.group,
                ];
                if v.iter().any(|&d| d > u32::MAX as usize / 64) {
                    return Err(unsupported(
                        node,
                        op,
                        "a dimension exceeds the C unsigned range",
                    ));
                }
                self.macs += (ys[1] * ys[2] * ys[3] * spec.cols) as u64;
                Some(v)
            }
        };
        let mut d = String::new();
        let _ = writeln!(
            d,
            "/* layer {l}: `{}` ({}) */",
            comment_safe(node),
            op.mnemonic()
        );
        let layout = self.target.spec().layout;
        let weights = match layout {
            Layout::Planes => self.planes_weights(&mut d, l, layer.planes, geom, in_n, spec.cols),
            Layout::Codes => {
                // The codes' exact dot products are kept in int32: |q| <= 128, |u| <= 384.
                if spec.cols > (i32::MAX as usize) / (128 * 384) {
                    return Err(unsupported(
                        node,
                        op,
                        format!("{} columns overflow int32 sums", spec.cols),
                    ));
                }
                let codes = layer
                    .codes()
                    .map_err(|e| unsupported(node, op, format!("planes: {e}")))?;
                self.codes_weights(&mut d, l, &codes, r, spec.cols, geom)
            }
        };
        float_array(&mut d, &format!("AL{l}"), &rows_of(&|t| t.alpha.to_vec()));
        float_array(&mut d, &format!("BE{l}"), &rows_of(&|t| t.beta.to_vec()));
        float_array(&mut d, &format!("BI{l}"), &rows_of(&|t| t.bias.to_vec()));
        let act = |t: &ResolvedLayer| {
            let q = t.act.params();
            vec![q.scale, q.zero]
        };
        float_array(&mut d, &format!("AC{l}"), &rows_of(&act));
        let cs: Vec<String> = counts.iter().map(|c| format!("{c}u")).collect();
        let _ = writeln!(
            d,
            "static const uint8_t CN{l}[{}] = {{{}}};",
            cs.len(),
            cs.join(", ")
        );
        let (lo, hi) = layer.act.limits();
        match layout {
            Layout::Planes => {
                let _ = writeln!(
                    d,
                    "static const bp_layer L{l} = {{P{l}, AL{l}, BE{l}, BI{l}, AC{l}, CN{l}, {}u, {r}u, {}u, {words}u, {}, {}}};",
                    counts.len(),
                    spec.cols,
                    c_float(lo),
                    c_float(hi)
                );
            }
            Layout::Codes => {
                let (mb, taps, cpairs) = weights.blocks;
                let _ = writeln!(
                    d,
                    "static const bq_layer L{l} = {{W{l}, AL{l}, BE{l}, BI{l}, AC{l}, CN{l}, T{l}, {}u, {r}u, {k}u, {mb}u, {taps}u, {cpairs}u, {}u, {}, {}}};",
                    counts.len(),
                    spec.cols,
                    c_float(lo),
                    c_float(hi)
                );
            }
        }
        if let Some(g) = &weights.geometry {
            d.push_str(g);
        }
        d.push('\n');
        self.data.push_str(&d);
        let layer_bytes = weights.bytes + 4 * (3 * r + 2) * tables.len() + counts.len();
        self.weight_bytes += layer_bytes;
        self.layer_bytes.push(LayerStats {
            node: node.to_string(),
            planes: k,
            weight_bytes: layer_bytes as u64,
        });
        self.sections.insert("side");
        let call = match (layout, geom.is_some()) {
            (Layout::Planes, true) => {
                self.sections.extend([
                    "quant",
                    "bp_common",
                    "bp_common2",
                    "bp_conv_t",
                    "bp_conv2d",
                ]);
                format!("bp_conv2d(X, Y, &L{l}, &G{l}, k, (unsigned)j, SU, SC)")
            }
            (Layout::Planes, false) => {
                self.sections
                    .extend(["quant", "bp_common", "bp_common2", "bp_linear"]);
                format!("bp_linear(X, Y, &L{l}, k, (unsigned)j, SU)")
            }
            (Layout::Codes, true) => {
                self.sections
                    .extend(["quant", "bq_common", "bq_run", "bq_conv2d"]);
                format!("bq_conv2d(X, Y, &L{l}, &G{l}, k, (unsigned)j, RELU)")
            }
            (Layout::Codes, false) => {
                self.sections
                    .extend(["quant", "bq_common", "bq_run", "bq_linear"]);
                format!("bq_linear(X, Y, &L{l}, k, (unsigned)j, RELU)")
            }
        };
        let y = self.new_buf(out_n, step);
        self.locs.insert(ValueRef::first(id), Loc::Buf(y));
        self.steps.push(Step::Bitplane {
            node: node.to_string(),
            layer: l,
            call,
            relu: false,
            x,
            y,
        });
        self.layers.push(LayerInfo {
            node: node.to_string(),
            counts,
        });
        Ok(())
    }

    /// Packed planes 0..K-1 (`kept`: exactly their bytes) as `P{l}`, and the conv geometry.
    fn planes_weights(
        &mut self,
        d: &mut String,
        l: usize,
        kept: &[u8],
        geom: Option<[usize; 15]>,
        in_n: usize,
        cols: usize,
    ) -> LayerWeights {
        let _ = write!(d, "static const uint64_t P{l}[{}] = {{", kept.len() / 8);
        for (i, w) in kept.chunks_exact(8).enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            d.push_str(if i % 4 == 0 { "\n    " } else { " " });
            let _ = write!(d, "0x{:016x}u,", u64::from_le_bytes(a));
        }
        d.push_str("\n};\n");
        let g = geom.map(|v| {
            self.max_u = self.max_u.max(in_n);
            self.max_col = self.max_col.max(cols);
            let fields: Vec<String> = v.iter().map(|d| format!("{d}u")).collect();
            format!("static const bp_conv G{l} = {{{}}};\n", fields.join(", "))
        });
        if geom.is_none() {
            self.max_u = self.max_u.max(cols);
        }
        LayerWeights {
            bytes: kept.len(),
            blocks: (0, 0, 0),
            geometry: g,
        }
    }

    /// The `K`-plane codes `[rows, cols]` (ONNX `OIHW` columns) as `W{l}` in the blocked
    /// layout of `bq_layer`, the tap offsets `T{l}` and the conv geometry `G{l}`.
    fn codes_weights(
        &mut self,
        d: &mut String,
        l: usize,
        codes: &[i32],
        rows: usize,
        cols: usize,
        geom: Option<[usize; 15]>,
    ) -> LayerWeights {
        // [c, h, w, m, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, group]. Layers with few
        // channels per group use im2col (one "tap" holding C/group·kh·kw channels).
        let col = geom.is_some_and(|v| v[0] / v[14] < COL_BELOW_CHANNELS);
        let (group, taps) = match geom {
            Some(v) if !col => (v[14], v[6] * v[7]),
            Some(v) => (v[14], 1),
            None => (1, 1),
        };
        let mg = rows / group;
        let cg = cols / taps;
        let mb = mg.div_ceil(16);
        let cpairs = cg.div_ceil(2);
        let mut w = vec![0i8; group * mb * taps * cpairs * 32];
        for gi in 0..group {
            for m in 0..mg {
                let (b, rr) = (m / 16, m % 16);
                let row = &codes[(gi * mg + m) * cols..(gi * mg + m + 1) * cols];
                for ci in 0..cg {
                    for t in 0..taps {
                        let at =
                            ((((gi * mb + b) * taps + t) * cpairs + ci / 2) * 16 + rr) * 2 + ci % 2;
                        // |q_K| <= 128 and q_K >= -128: the codes are int8.
                        w[at] = row[ci * taps + t] as i8;
                    }
                }
            }
        }
        let _ = write!(d, "static const int8_t W{l}[{}] = {{", w.len());
        for (i, v) in w.iter().enumerate() {
            d.push_str(if i % 32 == 0 { "\n    " } else { " " });
            let _ = write!(d, "{v},");
        }
        d.push_str("\n};\n");
        let cb = 2 * cpairs;
        let (toff, g) = match geom {
            Some(v) => {
                let [c, h, wd, m, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, group] = v;
                let hp = (h + ph).max((oh.max(1) - 1) * sh + (kh - 1) * dh + 1);
                let wp = (wd + pw).max((ow.max(1) - 1) * sw + (kw - 1) * dw + 1);
                let toff: Vec<usize> = if col {
                    vec![0]
                } else {
                    (0..kh)
                        .flat_map(|a| (0..kw).map(move |bb| a * dh * wp + bb * dw))
                        .collect()
                };
                self.max_sq = self.max_sq.max(c * h * wd);
                if col {
                    self.max_sx = self.max_sx.max(oh * ow * cb);
                } else {
                    self.max_sx = self.max_sx.max(hp * wp * cb * group);
                    self.max_ss = self.max_ss.max(hp * wp);
                }
                self.max_sus = self.max_sus.max(oh * ow);
                let f = [
                    c,
                    h,
                    wd,
                    m,
                    oh,
                    ow,
                    kh,
                    kw,
                    sh,
                    sw,
                    ph,
                    pw,
                    dh,
                    dw,
                    hp,
                    wp,
                    group,
                    col as usize,
                ];
                let fields: Vec<String> = f.iter().map(|d| format!("{d}u")).collect();
                (
                    toff,
                    Some(format!(
                        "static const bq_conv G{l} = {{{}}};\n",
                        fields.join(", ")
                    )),
                )
            }
            None => {
                self.max_sx = self.max_sx.max(cb);
                (vec![0], None)
            }
        };
        self.max_rows = self.max_rows.max(rows);
        let ts: Vec<String> = toff.iter().map(|t| format!("{t}u")).collect();
        let _ = writeln!(
            d,
            "static const uint32_t T{l}[{}] = {{{}}};",
            ts.len(),
            ts.join(", ")
        );
        LayerWeights {
            bytes: w.len() + 4 * toff.len(),
            blocks: (mb, taps, cpairs),
            geometry: g,
        }
    }

    fn pool(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        p: &Pool,
        is_max: bool,
        step: usize,
    ) -> Result<(), EmitError> {
        let ins = self.graph.node_inputs(id);
        let xin = *ins
            .first()
            .ok_or_else(|| unsupported(node, op, "no input"))?;
        let xs = self.graph.value(xin)?.ty.shape.resolve(1);
        let ys = self.graph.node(id)?.outputs[0].ty.shape.resolve(1);
        if xs.len() != 4 || ys.len() != 4 || p.kernel.len() != 2 || p.pads.len() != 4 {
            return Err(unsupported(node, op, "only 2-D pooling ([1, C, H, W])"));
        }
        if self.graph.value(xin)?.ty.dtype != DType::F32 {
            return Err(unsupported(node, op, "only f32 pooling"));
        }
        let v = [
            xs[1],
            xs[2],
            xs[3],
            ys[2],
            ys[3],
            p.kernel[0],
            p.kernel[1],
            p.strides[0],
            p.strides[1],
            p.pads[0],
            p.pads[1],
            p.pads[2],
            p.pads[3],
            p.dilations[0],
            p.dilations[1],
            p.count_include_pad as usize,
        ];
        if v.iter().any(|&d| d > u32::MAX as usize / 4) {
            return Err(unsupported(
                node,
                op,
                "a dimension exceeds the C unsigned range",
            ));
        }
        let x = self.act(xin, step, node, op)?;
        let fields: Vec<String> = v.iter().map(|d| format!("{d}u")).collect();
        let y = self.new_buf(ys.iter().product(), step);
        self.locs.insert(ValueRef::first(id), Loc::Buf(y));
        self.sections.extend(["pool2d_t", "pool2d"]);
        self.steps.push(Step::Pool {
            node: node.to_string(),
            init: format!("{{{}}}", fields.join(", ")),
            is_max,
            x,
            y,
        });
        Ok(())
    }

    fn op(&mut self, id: NodeId, node: &str, op: &Op, step: usize) -> Result<(), EmitError> {
        let ins = self.graph.node_inputs(id);
        let outs = &self.graph.node(id)?.outputs;
        let (out_ty, out_n) = match outs.as_slice() {
            [v] => (
                v.ty.clone(),
                v.ty.shape.resolve(1).iter().product::<usize>(),
            ),
            _ => {
                return Err(EmitError::UnsupportedOp {
                    node: node.to_string(),
                    op: op.mnemonic(),
                })
            }
        };
        if out_ty.dtype != DType::F32 {
            return Err(unsupported(
                node,
                op,
                format!("output is {}, not f32", out_ty.dtype),
            ));
        }
        match op {
            Op::Bitplane(b) => self.bitplane(id, node, op, b, step),
            Op::Unary(UnaryOp::Relu) => {
                let x = self.act(ins[0], step, node, op)?;
                // A Relu that is the only reader of a code-layout layer's output is applied
                // in that layer's epilogue (the same comparison, one pass fewer). It must read
                // the layer's own output value: an alias (Identity, Reshape, Flatten) shares
                // the storage, and the layer's value may have other readers that need it
                // before the Relu.
                let direct = matches!(
                    self.graph.node(ins[0].node)?.kind,
                    NodeKind::Op(Op::Bitplane(_))
                );
                if let (Loc::Buf(b), Some(Step::Bitplane { y, relu, call, .. })) =
                    (x, self.steps.last_mut())
                {
                    if direct
                        && *y == b
                        && !*relu
                        && call.contains("RELU")
                        && self.uses.get(&ins[0]) == Some(&1)
                    {
                        *relu = true;
                        self.locs.insert(ValueRef::first(id), x);
                        return Ok(());
                    }
                }
                let y = self.new_buf(out_n, step);
                self.locs.insert(ValueRef::first(id), Loc::Buf(y));
                self.sections.insert("relu");
                self.steps.push(Step::Relu {
                    node: node.into(),
                    x,
                    y,
                    n: out_n,
                });
                Ok(())
            }
            Op::MaxPool(p) => self.pool(id, node, op, p, true, step),
            Op::AveragePool(p) => self.pool(id, node, op, p, false, step),
            Op::GlobalPool(GlobalPoolKind::Average) => {
                let xs = self.graph.value(ins[0])?.ty.shape.resolve(1);
                if xs.len() < 3 {
                    return Err(unsupported(node, op, "input must be [1, C, spatial…]"));
                }
                let x = self.act(ins[0], step, node, op)?;
                let y = self.new_buf(out_n, step);
                self.locs.insert(ValueRef::first(id), Loc::Buf(y));
                self.sections.insert("global_avg");
                self.steps.push(Step::GlobalAvg {
                    node: node.into(),
                    x,
                    y,
                    planes: xs[0] * xs[1],
                    area: xs[2..].iter().product(),
                });
                Ok(())
            }
            Op::Flatten { .. } | Op::Reshape(_) | Op::Identity => {
                // Same elements in the same order: the output aliases the input's storage.
                let x = self.act(ins[0], step, node, op)?;
                self.locs.insert(ValueRef::first(id), x);
                Ok(())
            }
            Op::Binary(bop @ (BinaryOp::Add | BinaryOp::Mul)) => {
                if ins.len() != 2 {
                    return Err(unsupported(node, op, "needs two inputs"));
                }
                // The activation operand first; the other may be a constant.
                let (ai, bi) = if self.locs.contains_key(&ins[0]) {
                    (ins[0], ins[1])
                } else {
                    (ins[1], ins[0])
                };
                let a_n: usize = self.graph.value(ai)?.ty.shape.resolve(1).iter().product();
                if a_n != out_n {
                    return Err(unsupported(
                        node,
                        op,
                        "broadcasting that grows an activation",
                    ));
                }
                let a = self.act(ai, step, node, op)?;
                let b = if self.locs.contains_key(&bi) {
                    let b_n: usize = self.graph.value(bi)?.ty.shape.resolve(1).iter().product();
                    if b_n != out_n {
                        return Err(unsupported(node, op, "activations of different shapes"));
                    }
                    Operand::Act(self.act(bi, step, node, op)?)
                } else {
                    let c = self.f32s(bi, node, op, "the second operand")?;
                    if c.len() != out_n && c.len() != 1 {
                        return Err(unsupported(
                            node,
                            op,
                            "a constant operand must have one element or the output's shape",
                        ));
                    }
                    let name = format!("K{}", self.steps.len());
                    let _ = writeln!(
                        self.data,
                        "/* constant operand of `{}` */",
                        comment_safe(node)
                    );
                    float_array(&mut self.data, &name, c);
                    self.data.push('\n');
                    self.weight_bytes += 4 * c.len();
                    Operand::Const(name, c.len())
                };
                let y = self.new_buf(out_n, step);
                self.locs.insert(ValueRef::first(id), Loc::Buf(y));
                self.sections.insert("binary");
                self.steps.push(Step::Binary {
                    node: node.into(),
                    mul: matches!(bop, BinaryOp::Mul),
                    a,
                    b,
                    y,
                    n: out_n,
                });
                Ok(())
            }
            _ => Err(EmitError::UnsupportedOp {
                node: node.to_string(),
                op: op.mnemonic(),
            }),
        }
    }
}

/// Whether `name` can prefix C identifiers and name files.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Generates the header and source for `graph` at `options.planes` planes (batch 1).
pub fn emit(graph: &Graph, options: &EmitOptions) -> Result<EmittedC, EmitError> {
    if !valid_name(&options.name) {
        return Err(EmitError::BadName {
            name: options.name.clone(),
        });
    }
    if !(1..=quant::MAX_BITS).contains(&options.planes) {
        return Err(EmitError::BadPlanes {
            planes: options.planes,
        });
    }
    let (input, output) = match (graph.inputs(), graph.outputs()) {
        ([i], [o]) => (*i, *o),
        (i, o) => {
            return Err(EmitError::Interface(format!(
                "got {} inputs and {} outputs",
                i.len(),
                o.len()
            )))
        }
    };
    let in_ty = graph.node(input)?.outputs[0].ty.clone();
    let out_ty = graph.value(output)?.ty.clone();
    if in_ty.dtype != DType::F32 || out_ty.dtype != DType::F32 {
        return Err(EmitError::Interface(format!(
            "got {} input and {} output",
            in_ty.dtype, out_ty.dtype
        )));
    }
    let mut cx = Ctx {
        graph,
        k: options.planes,
        layer_planes: options.layer_planes.as_deref(),
        layer_bytes: Vec::new(),
        locs: Default::default(),
        bufs: Vec::new(),
        steps: Vec::new(),
        layers: Vec::new(),
        data: String::new(),
        weight_bytes: 0,
        macs: 0,
        max_u: 0,
        max_col: 0,
        target: options.target,
        uses: Default::default(),
        max_sq: 0,
        max_sx: 0,
        max_ss: 0,
        max_sus: 0,
        max_rows: 0,
        sections: Default::default(),
    };
    cx.locs.insert(ValueRef::first(input), Loc::Input);
    let order = graph.topo_order()?;
    for &id in &order {
        for v in graph.node_inputs(id) {
            *cx.uses.entry(v).or_default() += 1;
        }
    }
    *cx.uses.entry(output).or_default() += 1;
    for (step, &id) in order.iter().enumerate() {
        let node = graph.node(id)?;
        if let NodeKind::Op(op) = &node.kind {
            cx.op(id, &node.name, op, step)?;
        }
    }
    if let Some(per_layer) = &options.layer_planes {
        if per_layer.len() != cx.layers.len() {
            return Err(EmitError::LayerPlanes {
                expected: cx.layers.len(),
                got: per_layer.len(),
            });
        }
    }
    let end = order.len();
    let out_loc = *cx.locs.get(&output).ok_or_else(|| {
        EmitError::Interface("the output is a constant (nothing to compute)".into())
    })?;
    if let Loc::Buf(b) = out_loc {
        cx.bufs[b].last = end;
    }
    let out_n: usize = out_ty.shape.resolve(1).iter().product();
    let in_n: usize = in_ty.shape.resolve(1).iter().product();
    let arena = plan(&cx.bufs, ALIGN)
        .ok_or_else(|| EmitError::Interface("the arena size overflows".into()))?;
    let at = |l: Loc| match l {
        Loc::Input => "input".to_string(),
        Loc::Buf(b) => format!("(A + {})", arena.offsets[b]),
    };
    let out_ptr = |b: usize| format!("(A + {})", arena.offsets[b]);

    let name = &options.name;
    let up = name.to_ascii_uppercase();
    let k = options.planes;
    let scratch_bytes = 2 * (cx.max_u + cx.max_col + cx.max_sq + cx.max_sx)
        + 4 * (cx.max_ss + cx.max_sus + 2 * cx.max_rows);
    let tname = options.target.name();
    let spec = options.target.spec();

    // Header.
    let mut h = String::new();
    let dims = |s: &[usize]| {
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let in_s = in_ty.shape.resolve(1);
    let out_s = out_ty.shape.resolve(1);
    let _ = writeln!(
        h,
        "/* {name}.h: generated by `strata emit-c` (target {tname}, {k} planes) from graph `{}`. */",
        comment_safe(&graph.name)
    );
    let _ = writeln!(h, "#ifndef {up}_H\n#define {up}_H\n");
    h.push_str("#include <stddef.h>\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    let _ = writeln!(
        h,
        "/* Planes stored in the weights; the plane count {name}_run uses. */"
    );
    let _ = writeln!(h, "#define {up}_PLANES {k}");
    let _ = writeln!(h, "/* Batch 1; tensors are dense row-major float32. */");
    let _ = writeln!(h, "#define {up}_INPUT_RANK {}", in_s.len());
    let _ = writeln!(h, "#define {up}_INPUT_SHAPE {{{}}}", dims(&in_s));
    let _ = writeln!(h, "#define {up}_INPUT_SIZE {in_n}");
    let _ = writeln!(h, "#define {up}_OUTPUT_RANK {}", out_s.len());
    let _ = writeln!(h, "#define {up}_OUTPUT_SHAPE {{{}}}", dims(&out_s));
    let _ = writeln!(h, "#define {up}_OUTPUT_SIZE {out_n}");
    let _ = writeln!(
        h,
        "/* Static activation arena (liveness-planned, buffers reused). */"
    );
    let _ = writeln!(h, "#define {up}_ARENA_BYTES {}", 4 * arena.total);
    let _ = writeln!(
        h,
        "/* Static integer scratch for quantized activations and receptive fields. */"
    );
    let _ = writeln!(h, "#define {up}_SCRATCH_BYTES {scratch_bytes}");
    let _ = writeln!(
        h,
        "/* Constant data: {} 0..{}, side tables for plane counts <= {k}, constants. */",
        match spec.layout {
            Layout::Planes => "planes",
            Layout::Codes => "int8 codes rebuilt from planes",
        },
        k - 1
    );
    let _ = writeln!(h, "#define {up}_WEIGHT_BYTES {}", cx.weight_bytes);
    let _ = writeln!(
        h,
        "/* Multiply-accumulates of the bit-plane layers per inference. */"
    );
    let _ = writeln!(h, "#define {up}_MACS {}", cx.macs);
    let _ = writeln!(
        h,
        "/* Bit-plane layers, in planes_per_layer order (index: node, runnable plane counts): */"
    );
    let _ = writeln!(h, "#define {up}_NUM_LAYERS {}", cx.layers.len());
    if let Some(per_layer) = &options.layer_planes {
        let ks: Vec<String> = per_layer.iter().map(|k| k.to_string()).collect();
        let _ = writeln!(
            h,
            "/* Mixed precision: default plane count of each layer (layer i keeps only planes 0..k_i-1). */"
        );
        let _ = writeln!(h, "#define {up}_LAYER_PLANES {{{}}}", ks.join(", "));
    }
    for (i, l) in cx.layers.iter().enumerate() {
        let cs: Vec<String> = l.counts.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            h,
            "/*   {i}: `{}` ({}) */",
            comment_safe(&l.node),
            cs.join(", ")
        );
    }
    let default_planes = if options.layer_planes.is_some() {
        format!("{up}_LAYER_PLANES")
    } else {
        format!("{up}_PLANES")
    };
    let _ = writeln!(
        h,
        "\n/* Runs the model at {default_planes} planes. Returns 0 on success. */"
    );
    let _ = writeln!(h, "int {name}_run(const float *input, float *output);");
    let _ = writeln!(
        h,
        "/* Runs with planes_per_layer[i] planes in layer i (NULL: {default_planes}{}).",
        if options.layer_planes.is_some() {
            ""
        } else {
            " everywhere"
        }
    );
    let _ = writeln!(
        h,
        " * Returns 0 on success, 1 when a count is above {up}_PLANES or has no side table. */"
    );
    let _ = writeln!(h, "int {name}_run_planes(const float *input, float *output, const uint8_t *planes_per_layer);");
    let _ = writeln!(h, "\n#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {up}_H */");

    // Source.
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* {name}.c: generated by `strata emit-c` (target {tname}, {k} planes). */"
    );
    let _ = writeln!(c, "#include \"{name}.h\"\n\n#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <string.h>");
    for inc in spec.includes {
        let _ = writeln!(c, "#include <{inc}>");
    }
    c.push_str("\n/* The float epilogues must not be contracted into fused multiply-adds. */\n#if defined(__clang__)\n#pragma STDC FP_CONTRACT OFF\n#endif\n\n");
    c.push_str(PRELUDE.split("/*@section ").next().unwrap_or(""));
    let uses_codes = cx.sections.contains("bq_run");
    // Sections in prelude order (typedefs before the functions that use them).
    for s in [
        "side",
        "bp_common",
        "bp_conv_t",
        "pool2d_t",
        "bq_common",
        "quant",
        "bp_common2",
        "bp_linear",
        "bp_conv2d",
        "relu",
        "pool2d",
        "global_avg",
        "binary",
    ] {
        if cx.sections.contains(s) {
            c.push_str(section(s));
        }
    }
    let _ = writeln!(c, "static float A[{}];", arena.total.max(1));
    if cx.max_u > 0 || cx.max_col > 0 {
        let _ = writeln!(c, "static int16_t SU[{}];", cx.max_u.max(1));
    }
    if cx.max_col > 0 {
        let _ = writeln!(c, "static int16_t SC[{}];", cx.max_col);
    }
    if uses_codes {
        let _ = writeln!(
            c,
            "static int16_t SQ[{}];\nstatic int16_t SX[{}];\nstatic int32_t SS[{}];\nstatic int32_t SUS[{}];\nstatic float SFA[{}];\nstatic float SFB[{}];",
            cx.max_sq.max(1),
            cx.max_sx.max(1),
            cx.max_ss.max(1),
            cx.max_sus.max(1),
            cx.max_rows.max(1),
            cx.max_rows.max(1)
        );
        let has_conv = cx.sections.contains("bq_conv2d");
        let has_linear = cx.sections.contains("bq_linear");
        c.push_str(section_of(spec.kernels, "kcommon"));
        if has_conv {
            c.push_str(section_of(spec.kernels, "ktile"));
        }
        if has_linear {
            c.push_str(section_of(spec.kernels, "ktile1"));
        }
        c.push_str(section("bq_run"));
        if has_linear {
            c.push_str(section("bq_linear"));
        }
        if has_conv {
            c.push_str(section("bq_conv2d"));
        }
    }
    c.push('\n');
    c.push_str(&cx.data);
    if let Some(per_layer) = &options.layer_planes {
        let ks: Vec<String> = per_layer.iter().map(|k| format!("{k}u")).collect();
        let _ = writeln!(
            c,
            "/* Default plane count of each layer (mixed precision). */\nstatic const uint8_t DEFAULT_PLANES[{}] = {{{}}};\n",
            ks.len().max(1),
            ks.join(", ")
        );
    }
    c.push_str("static int run_impl(const float *input, float *output, const uint8_t *ppl)\n{\n");
    c.push_str("    float *const A_ = A;\n    (void)A_;\n");
    if cx.layers.is_empty() {
        c.push_str("    (void)ppl;\n");
    } else {
        c.push_str("    unsigned k;\n    int j;\n");
    }
    for st in &cx.steps {
        match st {
            Step::Bitplane {
                node,
                layer,
                call,
                relu,
                x,
                y,
            } => {
                let _ = writeln!(c, "    /* `{}` */", comment_safe(node));
                if options.layer_planes.is_some() {
                    let _ = writeln!(c, "    k = ppl ? ppl[{layer}] : DEFAULT_PLANES[{layer}];");
                } else {
                    let _ = writeln!(c, "    k = ppl ? ppl[{layer}] : {up}_PLANES;");
                }
                let _ = writeln!(c, "    if (k > {up}_PLANES || (j = side_index(CN{layer}, L{layer}.n_counts, k)) < 0) {{\n        return 1;\n    }}");
                let call = call
                    .replacen("X", &at(*x), 1)
                    .replacen("Y", &out_ptr(*y), 1)
                    .replacen("RELU", if *relu { "1" } else { "0" }, 1);
                let _ = writeln!(c, "    {call};");
            }
            Step::Relu { node, x, y, n } => {
                let _ = writeln!(
                    c,
                    "    /* `{}` */\n    relu({}, {}, {n}u);",
                    comment_safe(node),
                    at(*x),
                    out_ptr(*y)
                );
            }
            Step::Pool {
                node,
                init,
                is_max,
                x,
                y,
            } => {
                let _ = writeln!(c, "    /* `{}` */\n    {{\n        static const pool2d p = {init};\n        pool2d_run({}, {}, &p, {});\n    }}", comment_safe(node), at(*x), out_ptr(*y), *is_max as u8);
            }
            Step::GlobalAvg {
                node,
                x,
                y,
                planes,
                area,
            } => {
                let _ = writeln!(
                    c,
                    "    /* `{}` */\n    global_avg({}, {}, {planes}u, {area}u);",
                    comment_safe(node),
                    at(*x),
                    out_ptr(*y)
                );
            }
            Step::Binary {
                node,
                mul,
                a,
                b,
                y,
                n,
            } => {
                let (bp, bn) = match b {
                    Operand::Act(l) => (at(*l), *n),
                    Operand::Const(name, len) => (name.clone(), *len),
                };
                let _ = writeln!(
                    c,
                    "    /* `{}` */\n    binary({}, {bp}, {}, {n}u, {bn}u, {});",
                    comment_safe(node),
                    at(*a),
                    out_ptr(*y),
                    *mul as u8
                );
            }
        }
    }
    let _ = writeln!(
        c,
        "    memcpy(output, {}, {out_n}u * sizeof(float));\n    return 0;\n}}\n",
        at(out_loc)
    );
    let _ = writeln!(c, "int {name}_run(const float *input, float *output)\n{{\n    return run_impl(input, output, NULL);\n}}\n");
    let _ = writeln!(c, "int {name}_run_planes(const float *input, float *output, const uint8_t *planes_per_layer)\n{{\n    return run_impl(input, output, planes_per_layer);\n}}");
    let stats = EmitStats {
        weight_bytes: cx.weight_bytes as u64,
        arena_bytes: 4 * arena.total as u64,
        scratch_bytes: scratch_bytes as u64,
        macs: cx.macs,
        layers: cx.layer_bytes,
    };
    Ok(EmittedC {
        header: h,
        source: c,
        stats,
    })
}
