//! `vl-quantize{bits=8, planes=2-8, act-bits=8}`: vertically layered quantization of every
//! layer with a constant weight. `act-bits=planes` (alias `k`) is `W k A k`: plane count `k`
//! calibrates and quantizes its activations to `max(k, 2)` bits ([`ActBits`]).
//!
//! Per layer: symmetric per-output-channel `B`-bit codes and their bit-planes (once), then for
//! every plane count `k` a side table. Each `k` is calibrated **on its own quantized
//! network, layer by layer in topological order**: the layers before the current one are
//! already bit-plane ops at `k` with their fitted tables, so the current layer's activation
//! range and weight fit see the inputs the `k`-plane model will really feed it. The weight
//! scale and offset `alpha`/`beta` per channel are fitted by 2×2 least squares so that
//! `(alpha·q_k + beta)·x̂` matches the float layer `W·x̂` on the dequantized calibration
//! inputs, starting from (and falling back to) the bucket midpoint.
//! Arithmetic: docs/vertical-layering.md. The pass leaves the graph unchanged and stores its
//! [`VlQuantization`] in `ctx.results["vl-quantize"]`; `bitplane-rewrite` applies it.

use strata_ir::ops::{Conv, Gemm, WeightUse};
use strata_ir::quant::{self, ActBits, ActQuantizer};
use strata_ir::{DType, Graph, NodeId, NodeKind, Tensor, ValueRef};

use crate::bitplane_rewrite::{replace_with_bitplane, QuantizedLayer, SideTable};
use crate::calibrate::{Calibration, CalibrationData, CalibrationMethod, RangeStats};
use crate::frontier::Frontier;
pub use crate::layer_codes::LayerCodes;
pub(crate) use crate::layer_codes::{midpoint_side, plain_side, quant_err};
#[cfg(test)]
use crate::least_squares::{fit_stride, FitSums, Stacked, FIT_ROWS};
use crate::least_squares::{fit_sums, solve_2x2};
use crate::pipeline::{PassOptions, PipelineError};
use crate::{Pass, PassContext, PassError};

const PASS: &str = "vl-quantize";

/// What kind of layer a quantizable node is.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    /// A convolution (its attributes, bias excluded).
    Conv(Conv),
    /// `y[N, R] = x[N, K]·Wᵀ` (Gemm with `trans_a = false`, MatMul with a 2-D constant).
    Linear,
}

/// A layer `vl-quantize` can turn into a bit-plane op, with its weight viewed as `[R, K]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantLayer {
    pub node: NodeId,
    /// The node name: how later passes find the layer again after earlier ones were replaced.
    pub name: String,
    pub kind: LayerKind,
    /// The activation input `x`.
    pub input: ValueRef,
    pub rows: usize,
    pub cols: usize,
    /// `[R, K]` row-major (ONNX OIHW order for Conv, `op(B)ᵀ` for Gemm/MatMul).
    pub weight: Vec<f32>,
    /// Factor applied to `W·x` (Gemm `alpha`, else 1); folded into `alpha`/`beta`.
    pub gain: f32,
    /// Per-row bias (Conv bias, Gemm `beta·C`, else zeros).
    pub bias: Vec<f32>,
}

fn f32_const(graph: &Graph, v: ValueRef) -> Option<&Tensor> {
    graph
        .constant_value(v)
        .map(|t| t.as_ref())
        .filter(|t| t.dtype() == DType::F32)
}

/// The layer at `node`, if it is quantizable: Conv with a constant f32 weight (any group
/// count) and constant or absent bias; Gemm with a constant 2-D B, `trans_a = false`, and a
/// constant per-column (or absent) C; MatMul of a 2-D activation with a constant 2-D weight.
/// The activation input must not itself be a constant (fold-constants handles that).
pub fn layer_at(graph: &Graph, node: NodeId) -> Option<QuantLayer> {
    let n = graph.node(node).ok()?;
    let NodeKind::Op(op) = &n.kind else {
        return None;
    };
    let inputs = graph.node_inputs(node);
    let x = *inputs.first()?;
    if graph.constant_value(x).is_some() {
        return None;
    }
    let x_ty = &graph.value(x).ok()?.ty;
    if x_ty.dtype != DType::F32 || n.outputs.len() != 1 {
        return None;
    }
    let (kind, rows, cols, weight, gain, bias) = match op.weight_use() {
        WeightUse::Conv(conv) => {
            let w = f32_const(graph, *inputs.get(1)?)?;
            let rows = *w.shape().first()?;
            if rows == 0 || w.rank() < 3 {
                return None;
            }
            let cols = w.len() / rows;
            let bias = if conv.has_bias {
                let b = f32_const(graph, *inputs.get(2)?)?;
                if b.len() != rows {
                    return None;
                }
                b.as_f32()?.to_vec()
            } else {
                vec![0.0; rows]
            };
            let attrs = Conv {
                has_bias: false,
                ..conv.clone()
            };
            (
                LayerKind::Conv(attrs),
                rows,
                cols,
                w.as_f32()?.to_vec(),
                1.0,
                bias,
            )
        }
        WeightUse::Gemm(&Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
            has_c,
        }) => {
            if trans_a {
                return None;
            }
            let b = f32_const(graph, *inputs.get(1)?)?;
            let (rows, cols, weight) = linear_view(b, trans_b)?;
            let bias = if has_c {
                let c = f32_const(graph, *inputs.get(2)?)?;
                let cv = c.as_f32()?;
                let per_row: Vec<f32> = match c.shape() {
                    [] | [1] | [1, 1] => vec![cv[0]; rows],
                    [r] | [1, r] if *r == rows => cv.to_vec(),
                    _ => return None,
                };
                per_row.iter().map(|v| v * beta).collect()
            } else {
                vec![0.0; rows]
            };
            (LayerKind::Linear, rows, cols, weight, alpha, bias)
        }
        WeightUse::MatMul => {
            if x_ty.rank() != 2 {
                return None;
            }
            let b = f32_const(graph, *inputs.get(1)?)?;
            let (rows, cols, weight) = linear_view(b, false)?;
            (LayerKind::Linear, rows, cols, weight, 1.0, vec![0.0; rows])
        }
        // No weight to layer (or, for ConvTranspose, none the bit-plane kernels run; a
        // bit-plane layer is layered already).
        WeightUse::ConvTranspose(_) | WeightUse::Bitplane(_) | WeightUse::None => return None,
    };
    if rows == 0 || cols == 0 {
        return None;
    }
    Some(QuantLayer {
        node,
        name: n.name.clone(),
        kind,
        input: x,
        rows,
        cols,
        weight,
        gain,
        bias,
    })
}

/// `[R, K]` view of a 2-D linear weight: `B [K, R]` is transposed, `trans_b` B is `[R, K]`.
fn linear_view(b: &Tensor, trans_b: bool) -> Option<(usize, usize, Vec<f32>)> {
    let [d0, d1] = *b.shape() else {
        return None;
    };
    let v = b.as_f32()?;
    if trans_b {
        return Some((d0, d1, v.to_vec()));
    }
    let (k, r) = (d0, d1);
    let mut w = vec![0.0; r * k];
    for i in 0..k {
        for j in 0..r {
            w[j * k + i] = v[i * r + j];
        }
    }
    Some((r, k, w))
}

/// Every quantizable layer, in the graph's deterministic topological order.
pub fn quantizable_layers(graph: &Graph) -> Result<Vec<QuantLayer>, PassError> {
    let order = graph
        .topo_order()
        .map_err(|source| PassError::Graph { pass: PASS, source })?;
    Ok(order
        .into_iter()
        .filter_map(|id| layer_at(graph, id))
        .collect())
}

/// The node named `name` in `graph` (its layer view), or a typed error naming it.
pub(crate) fn find_layer(
    pass: &'static str,
    graph: &Graph,
    name: &str,
) -> Result<NodeId, PassError> {
    let mut found = graph
        .node_ids()
        .filter(|&id| graph.node(id).is_ok_and(|n| n.name == name));
    match (found.next(), found.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(PassError::Rewrite {
            pass,
            node: name.to_string(),
            reason: "no node of this name (was the graph changed after quantization?)".to_string(),
        }),
        (Some(_), Some(_)) => Err(PassError::Rewrite {
            pass,
            node: name.to_string(),
            reason: "several nodes have this name".to_string(),
        }),
    }
}

/// Parses a plane-count list: `2-8`, `2,3,4`, or a mix (`2,4-6`); sorted, deduplicated.
pub fn parse_plane_list(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err("empty entry".to_string());
        }
        let parse = |s: &str| {
            s.trim()
                .parse::<u8>()
                .map_err(|e| format!("`{}`: {e}", s.trim()))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(format!("range `{part}` is empty"));
                }
                out.extend(a..=b);
            }
            None => out.push(parse(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// How a sequential calibration run sets each layer's weight side table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TableRule {
    /// Least squares on the calibration data from the midpoint init (vl-quantize).
    LeastSquares,
    /// `alpha = gain·s_c·2^(B−k)`, `beta = 0` (plain PTQ, the baselines).
    Plain,
}

/// Settings of one sequential calibration run.
pub(crate) struct Sequential<'a> {
    pub pass: &'static str,
    pub k: u8,
    pub act_bits: u8,
    pub method: CalibrationMethod,
    pub rule: TableRule,
    pub data: &'a CalibrationData<'a>,
}

/// Quantizes `layers` of `graph` at plane count `k` one after the other: each layer's input is
/// measured on the network whose earlier layers are already bit-plane ops at `k`. Returns one
/// side table per layer (in `layers` order) and the fully quantized network at `k`.
///
/// One forward pass in all: a [`Frontier`] carries every calibration chunk from one layer's
/// input to the next, so no layer re-runs the network before it.
pub(crate) fn calibrate_sequentially(
    graph: &Graph,
    layers: &[QuantLayer],
    codes: &[LayerCodes],
    seq: &Sequential<'_>,
) -> Result<(Vec<SideTable>, Graph), PassError> {
    let mut work = graph.clone();
    let mut tables = Vec::with_capacity(layers.len());
    let mut frontier = Frontier::new(seq.pass, seq.data);
    for (layer, code) in layers.iter().zip(codes) {
        let id = find_layer(seq.pass, &work, &layer.name)?;
        let x = *work
            .node_inputs(id)
            .first()
            .ok_or_else(|| PassError::Rewrite {
                pass: seq.pass,
                node: layer.name.clone(),
                reason: "layer lost its input".to_string(),
            })?;
        frontier.advance(&work, x)?;
        let mut stats: Option<RangeStats> = None;
        frontier.visit(&work, x, |_, t| {
            let values = t.as_f32().ok_or_else(|| PassError::BadCalibration {
                pass: seq.pass,
                reason: format!(
                    "the input of `{}` is {} where f32 was expected",
                    layer.name,
                    t.dtype()
                ),
            })?;
            let s = stats.get_or_insert_with(|| RangeStats::new(seq.data.total_of(t)));
            s.add(values);
            Ok(())
        })?;
        let stats = stats.unwrap_or_else(|| RangeStats::new(0));
        let act = quant::act_params(seq.method.estimate(&stats, seq.act_bits), seq.act_bits)
            .and_then(|q| ActQuantizer::new(q, seq.act_bits))
            .map_err(quant_err(seq.pass, layer))?;
        let (alpha, beta) = match seq.rule {
            TableRule::Plain => {
                plain_side(layer, code, seq.k).map_err(quant_err(seq.pass, layer))?
            }
            TableRule::LeastSquares => {
                let sums = fit_sums(&mut frontier, &work, x, layer, code, act, seq)?;
                let mid = midpoint_side(layer, code, seq.k).map_err(quant_err(seq.pass, layer))?;
                sums.iter()
                    .zip(mid.0.iter().zip(&mid.1))
                    .map(|(s, (&a0, &b0))| solve_2x2(s).unwrap_or((a0, b0)))
                    .unzip()
            }
        };
        let table = SideTable {
            k: seq.k,
            alpha,
            beta,
            bias: layer.bias.clone(),
            act_scale: act.params().scale,
            act_zero: act.params().zero,
        };
        let q = QuantizedLayer {
            name: layer.name.clone(),
            bits: code.bits,
            act_bits: ActBits::Fixed(seq.act_bits),
            rows: layer.rows,
            cols: layer.cols,
            planes: code.planes.clone(),
            scales: code.scales.clone(),
            tables: vec![table.clone()],
        };
        replace_with_bitplane(seq.pass, &mut work, &q)?;
        tables.push(table);
    }
    Ok((tables, work))
}

/// Rejects layers whose weight, bias or gain is NaN or infinite: their scales and side tables
/// would be NaN, a model that silently outputs garbage.
pub(crate) fn check_finite(pass: &'static str, layers: &[QuantLayer]) -> Result<(), PassError> {
    for l in layers {
        let bad = l
            .weight
            .iter()
            .chain(&l.bias)
            .chain(std::iter::once(&l.gain))
            .position(|v| !v.is_finite());
        if let Some(i) = bad {
            let what = if i < l.weight.len() {
                format!(
                    "weight element {i} (row {}, column {})",
                    i / l.cols,
                    i % l.cols
                )
            } else if i < l.weight.len() + l.bias.len() {
                format!("bias element {}", i - l.weight.len())
            } else {
                "Gemm alpha".to_string()
            };
            return Err(PassError::Rewrite {
                pass,
                node: l.name.clone(),
                reason: format!("{what} is not finite; cannot quantize"),
            });
        }
    }
    Ok(())
}

/// Per-layer result of `vl-quantize`.
#[derive(Debug, Clone, PartialEq)]
pub struct VlQuantization {
    /// `B` of every layer's codes.
    pub bits: u8,
    /// Activation bits the tables were fitted for, per plane count.
    pub act_bits: ActBits,
    /// The plane counts with side tables.
    pub plane_counts: Vec<u8>,
    /// The activation range estimator used at every `k` (`None`: the tables were loaded,
    /// see [`crate::qat_tables`], and nothing was calibrated).
    pub method: Option<CalibrationMethod>,
    /// Quantized layers in topological order.
    pub layers: Vec<QuantizedLayer>,
}

impl VlQuantization {
    /// The result of an earlier `vl-quantize` pass, if any.
    pub fn from_context(ctx: &PassContext) -> Option<&VlQuantization> {
        ctx.results.get(PASS)?.downcast_ref::<VlQuantization>()
    }

    /// Stores `self` where a later `bitplane-rewrite` (or `once-qat`) looks for the result of
    /// `vl-quantize`: how quantization made elsewhere ([`crate::qat_tables`]) enters a
    /// pipeline.
    pub fn insert_into(self, ctx: &mut PassContext) {
        ctx.results.insert(PASS, Box::new(self));
    }
}

/// See the module documentation.
pub struct VlQuantize {
    /// `B`: code width, i.e. planes in the complete model.
    pub bits: u8,
    /// Plane counts that get a side table (ascending).
    pub plane_counts: Vec<u8>,
    /// Activation bits of the integer path the tables are fitted for, per plane count.
    pub act_bits: ActBits,
}

impl VlQuantize {
    pub(crate) fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PipelineError> {
        let bits: u8 = options.get("bits", 8)?;
        let supported = strata_ir::quant::MIN_BITS..=strata_ir::quant::MAX_BITS;
        if !supported.contains(&bits) {
            return Err(options.invalid("bits", format!("must be in {supported:?}")));
        }
        let act_bits = match options.raw("act-bits") {
            None => ActBits::default(),
            Some(text) => text
                .parse::<ActBits>()
                .map_err(|reason| options.invalid("act-bits", reason))?,
        };
        let default = format!("2-{bits}");
        let planes_text = options.raw("planes").unwrap_or(&default).to_string();
        let plane_counts =
            parse_plane_list(&planes_text).map_err(|reason| options.invalid("planes", reason))?;
        if plane_counts.is_empty() || plane_counts.iter().any(|&k| k == 0 || k > bits) {
            return Err(
                options.invalid("planes", format!("every plane count must be in 1..={bits}"))
            );
        }
        Ok(Box::new(VlQuantize {
            bits,
            plane_counts,
            act_bits,
        }))
    }
}

impl Pass for VlQuantize {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, ctx: &mut PassContext) -> Result<bool, PassError> {
        let calib = Calibration::from_context(ctx);
        let method = calib.map_or(CalibrationMethod::MinMax, |c| c.method);
        let limit = calib.map(|c| c.samples);
        let data = CalibrationData::new(PASS, graph, ctx.calibration.as_deref(), limit)?;
        let mut report = |stage: &str, done: u64, total: u64| {
            if let Some(p) = ctx.progress.as_mut() {
                p(stage, done, total);
            }
        };
        let result = quantize_graph(
            graph,
            &data,
            self.bits,
            &self.plane_counts,
            self.act_bits,
            method,
            &mut report,
        )?;
        ctx.results.insert(PASS, Box::new(result));
        Ok(false)
    }
}

/// The whole of `vl-quantize` as a function (for tests and the baselines' comparisons).
pub(crate) fn quantize_graph(
    graph: &Graph,
    data: &CalibrationData<'_>,
    bits: u8,
    plane_counts: &[u8],
    act_bits: ActBits,
    method: CalibrationMethod,
    report: &mut dyn FnMut(&str, u64, u64),
) -> Result<VlQuantization, PassError> {
    let layers = quantizable_layers(graph)?;
    check_finite(PASS, &layers)?;
    let total = plane_counts.len() as u64;
    let stage = |k: u8| format!("{PASS}: calibrating the {k}-plane network");
    report(
        &stage(plane_counts.first().copied().unwrap_or(bits)),
        0,
        total,
    );
    let codes = LayerCodes::quantize_all(PASS, &layers, bits)?;
    let mut per_layer: Vec<Vec<SideTable>> = vec![Vec::new(); layers.len()];
    for (done, &k) in plane_counts.iter().enumerate() {
        let seq = Sequential {
            pass: PASS,
            k,
            act_bits: act_bits.of(k),
            method,
            rule: TableRule::LeastSquares,
            data,
        };
        let (tables, _) = calibrate_sequentially(graph, &layers, &codes, &seq)?;
        for (acc, t) in per_layer.iter_mut().zip(tables) {
            acc.push(t);
        }
        let next = plane_counts.get(done + 1).copied().unwrap_or(k);
        report(&stage(next), done as u64 + 1, total);
    }
    let layers = layers
        .into_iter()
        .zip(codes)
        .zip(per_layer)
        .map(|((l, c), tables)| QuantizedLayer {
            name: l.name,
            bits,
            act_bits,
            rows: l.rows,
            cols: l.cols,
            planes: c.planes,
            scales: c.scales,
            tables,
        })
        .collect();
    Ok(VlQuantization {
        bits,
        act_bits,
        plane_counts: plane_counts.to_vec(),
        method: Some(method),
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::assert_invalid_options;
    use strata_ir::{Op, Shape, TensorType};

    #[test]
    fn plane_lists_parse() {
        assert_eq!(parse_plane_list("2-8").unwrap(), vec![2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(parse_plane_list("4, 2,3").unwrap(), vec![2, 3, 4]);
        assert_eq!(parse_plane_list("2,4-5,4").unwrap(), vec![2, 4, 5]);
        assert!(parse_plane_list("5-2").is_err());
        assert!(parse_plane_list("2,,3").is_err());
        assert!(parse_plane_list("x").is_err());
        assert!(parse_plane_list("300").is_err());
    }

    #[test]
    fn options_are_validated() {
        let o = PassOptions::new(PASS, &[("planes", "2,4"), ("bits", "6")]);
        assert!(VlQuantize::create(&o).is_ok());
        let bad = [
            ("bits", "1"),
            ("bits", "9"),
            ("act-bits", "20"),
            ("act-bits", "1"),
            ("act-bits", "planez"),
            ("planes", "0-3"),
            ("planes", "2-9"),
            ("planes", "a"),
        ];
        assert_invalid_options(PASS, VlQuantize::create, &bad);
    }

    #[test]
    fn least_squares_recovers_exact_alpha_beta() {
        // Two channels in two groups (so each has its own `b`), t = alpha·a + beta·b exactly,
        // over 12 rows, laid out as each group's stacked product comes out of the GEMM.
        let (alpha, beta) = ([0.25f32, -1.5], [0.125f32, 2.0]);
        let stacked = Stacked {
            groups: 2,
            per_group: 1,
        };
        let rows = 12;
        let mut sums = [FitSums::default(); 2];
        for (c, group) in sums.chunks_mut(1).enumerate() {
            let (ia, it, ib) = stacked.of(0);
            let mut y = vec![0.0f32; rows * stacked.width()];
            for (i, row) in y.chunks_exact_mut(stacked.width()).enumerate() {
                let av = ((i * 7 + c * 3) % 11) as f32 - 5.0;
                let bv = ((i * 5 + c) % 7) as f32 - 2.0;
                (row[ia], row[ib], row[it]) = (av, bv, alpha[c] * av + beta[c] * bv);
            }
            stacked.accumulate(group, &y);
        }
        assert_eq!(sums[0].rows, rows);
        for c in 0..2 {
            let (fa, fb) = solve_2x2(&sums[c]).unwrap();
            assert!((fa - alpha[c]).abs() < 1e-5, "{fa} vs {}", alpha[c]);
            assert!((fb - beta[c]).abs() < 1e-5, "{fb} vs {}", beta[c]);
        }
    }

    #[test]
    fn fit_rows_are_bounded_and_spread_over_positions() {
        assert_eq!(fit_stride(FIT_ROWS, 1024), 1);
        for (total, per_sample) in [
            (512 * 1024, 1024),
            (4000 * 784, 784),
            (10 * FIT_ROWS, 1),
            (3 * FIT_ROWS + 1, 36),
        ] {
            let s = fit_stride(total, per_sample);
            assert!(total.div_ceil(s) <= FIT_ROWS, "{total} rows at stride {s}");
            // Consecutive samples start at different positions: every position is reached.
            let reached: std::collections::HashSet<usize> =
                (0..total).step_by(s).map(|r| r % per_sample).collect();
            assert_eq!(
                reached.len(),
                per_sample.min(total.div_ceil(s)),
                "stride {s}"
            );
        }
    }

    #[test]
    fn singular_systems_are_refused() {
        // b proportional to a: alpha and beta are not separable.
        let mut s = FitSums::default();
        for v in [1.0f32, 2.0, 3.0] {
            s.add(v, 2.0 * v, v);
        }
        assert_eq!(solve_2x2(&s), None);
        // No data at all.
        assert_eq!(solve_2x2(&FitSums::default()), None);
        // b ≡ 0.
        let mut s = FitSums::default();
        s.add(1.0, 0.0, 1.0);
        s.add(2.0, 0.0, 2.0);
        assert_eq!(solve_2x2(&s), None);
    }

    fn f32_ty(dims: &[usize]) -> TensorType {
        TensorType::new(DType::F32, Shape::known(dims))
    }

    #[test]
    fn layers_are_discovered_with_weight_views() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32_ty(&[2, 3]));
        // MatMul weight B [3, 2] → W = Bᵀ [2, 3].
        let b = g.add_constant(
            "b",
            Tensor::from_f32(vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
        );
        let mm = g
            .add_op_inferred("mm", Op::MatMul, &[x, b], vec!["y".into()])
            .unwrap();
        // Gemm alpha 2, beta 3, trans_b, scalar C.
        let w2 = g.add_constant("w2", Tensor::from_f32(vec![1, 2], vec![1.0, -1.0]).unwrap());
        let c = g.add_constant("c", Tensor::scalar_f32(0.5));
        let gemm = Op::Gemm(Gemm {
            alpha: 2.0,
            beta: 3.0,
            trans_a: false,
            trans_b: true,
            has_c: true,
        });
        let gm = g
            .add_op_inferred("fc", gemm, &[ValueRef::first(mm), w2, c], vec!["z".into()])
            .unwrap();
        // A MatMul with a non-constant weight is not a layer.
        let w_in = g.add_input("w_in", f32_ty(&[3, 2]));
        let dynamic = g
            .add_op_inferred("dyn", Op::MatMul, &[x, w_in], vec!["d".into()])
            .unwrap();
        g.set_outputs(vec![ValueRef::first(gm), ValueRef::first(dynamic)]);
        let layers = quantizable_layers(&g).unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].name, "mm");
        assert_eq!((layers[0].rows, layers[0].cols), (2, 3));
        assert_eq!(layers[0].weight, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        assert_eq!(layers[0].bias, vec![0.0, 0.0]);
        assert_eq!(layers[1].name, "fc");
        assert_eq!(layers[1].gain, 2.0);
        assert_eq!(layers[1].bias, vec![1.5]);
        assert_eq!(layers[1].input, ValueRef::first(mm));
    }
}
