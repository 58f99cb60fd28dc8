//! The weight side-table fit of `vl-quantize`: per output channel, `alpha`/`beta` by 2×2
//! least squares so that `(alpha·q_k + beta)·x̂` matches the float layer `W·x̂` on the
//! dequantized calibration inputs the frontier delivers.

use strata_ir::ops::Gemm;
use strata_ir::quant::ActQuantizer;
use strata_ir::{Graph, Op, Tensor, ValueRef};

use crate::frontier::Frontier;
use crate::layer_codes::{quant_err, LayerCodes};
use crate::vl_quantize::{find_layer, LayerKind, QuantLayer, Sequential};
use crate::PassError;

/// The least-squares fit of one layer uses at most about this many output positions (rows of
/// the fit) so calibration cost stays bounded on large sets; samples are taken at an even
/// stride.
pub const FIT_ROWS: usize = 50_000;

/// Solves the per-channel 2×2 least squares `min Σ (alpha·a + beta·b − t)²` from its
/// accumulated normal-equation sums; `None` when the system is (numerically) singular.
pub fn solve_2x2(sums: &FitSums) -> Option<(f32, f32)> {
    let FitSums {
        aa, ab, bb, at, bt, ..
    } = *sums;
    let det = aa * bb - ab * ab;
    if !(det.is_finite() && det > 1e-9 * aa * bb && aa > 0.0 && bb > 0.0) {
        return None;
    }
    let alpha = (at * bb - bt * ab) / det;
    let beta = (aa * bt - ab * at) / det;
    (alpha.is_finite() && beta.is_finite()).then_some((alpha as f32, beta as f32))
}

/// Normal-equation sums of one channel's fit, in f64 (millions of terms).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FitSums {
    pub aa: f64,
    pub ab: f64,
    pub bb: f64,
    pub at: f64,
    pub bt: f64,
    pub rows: usize,
}

impl FitSums {
    /// Adds one row: `a = Σ q_k·x̂`, `b = Σ x̂`, `t` = the float layer's output.
    pub fn add(&mut self, a: f32, b: f32, t: f32) {
        let (a, b, t) = (a as f64, b as f64, t as f64);
        self.aa += a * a;
        self.ab += a * b;
        self.bb += b * b;
        self.at += a * t;
        self.bt += b * t;
        self.rows += 1;
    }
}

/// Accumulates the per-channel least-squares sums for `layer` whose input `x` the frontier
/// has reached, over an evenly strided subset of the calibration samples (≈ [`FIT_ROWS`]
/// positions), taken in runs of one calibration chunk.
pub(crate) fn fit_sums(
    frontier: &mut Frontier<'_>,
    work: &Graph,
    x: ValueRef,
    layer: &QuantLayer,
    code: &LayerCodes,
    act: ActQuantizer,
    seq: &Sequential<'_>,
) -> Result<Vec<FitSums>, PassError> {
    let pass = seq.pass;
    let rt = |source| PassError::Runtime {
        pass,
        node: layer.name.clone(),
        source: Box::new(source),
    };
    let qk = code
        .prefix_f32(layer, seq.k)
        .map_err(quant_err(pass, layer))?;
    let target_w: Vec<f32> = layer.weight.iter().map(|w| w * layer.gain).collect();
    // Positions (rows of the fit) per sample: 1 for Linear, the output's spatial size for Conv.
    let id = find_layer(pass, work, &layer.name)?;
    let out_ty = &work
        .value(ValueRef::first(id))
        .map_err(|source| PassError::Graph { pass, source })?
        .ty;
    let per_sample: usize = out_ty
        .shape
        .dims()
        .iter()
        .skip(2)
        .filter_map(|d| d.known())
        .product::<usize>()
        .max(1);
    let wanted = FIT_ROWS.div_ceil(per_sample).max(1);
    let step = seq.data.samples.div_ceil(wanted).max(1);
    // With a fixed leading input dimension the sample count per run is fixed: no striding.
    let step = if seq.data.chunk != crate::calibrate::CHUNK {
        1
    } else {
        step
    };

    let mut sums = vec![FitSums::default(); layer.rows];
    let mut run: Vec<Tensor> = Vec::new();
    let mut run_rows = 0;
    let mut fit = |xt: &Tensor| -> Result<(), PassError> {
        let xv = xt.as_f32().unwrap_or(&[]);
        let xhat: Vec<f32> = xv.iter().map(|&v| act.fake_quant(v)).collect();
        let xhat =
            Tensor::from_f32(xt.shape().to_vec(), xhat).map_err(|e| PassError::BadCalibration {
                pass,
                reason: e.to_string(),
            })?;
        let (y, stacked) = layer_products(layer, &xhat, &qk, &target_w).map_err(rt)?;
        accumulate(&mut sums, &y, stacked);
        Ok(())
    };
    let fit_run =
        |run: &mut Vec<Tensor>, fit: &mut dyn FnMut(&Tensor) -> Result<(), PassError>| match run
            .len()
        {
            0 => Ok(()),
            1 => fit(&run.remove(0)),
            _ => {
                let refs: Vec<&Tensor> = run.iter().collect();
                let t = strata_runtime::kernels::layout::concat(0, &refs).map_err(rt)?;
                run.clear();
                fit(&t)
            }
        };
    // Samples `i` with `i % step == 0`, in runs of `chunk` of them, whatever chunk they sit in.
    frontier.visit(work, x, |start, t| {
        let n = t.shape().first().copied().unwrap_or(0);
        if step == 1 && run.is_empty() && n == seq.data.chunk {
            // A whole chunk is a whole run: no copy.
            return fit(t);
        }
        let mut at = (step - start % step) % step;
        while at < n {
            let room = seq.data.chunk - run_rows;
            let end = n.min(at + room * step);
            let piece = strata_runtime::kernels::layout::slice(
                &strata_ir::ops::Slice {
                    starts: vec![at as i64],
                    ends: vec![end as i64],
                    axes: vec![0],
                    steps: vec![step as i64],
                },
                t,
            )
            .map_err(rt)?;
            let rows = piece.shape().first().copied().unwrap_or(0);
            run.push(piece);
            run_rows += rows;
            at += rows.max(1) * step;
            if run_rows == seq.data.chunk {
                fit_run(&mut run, &mut fit)?;
                run_rows = 0;
            }
        }
        Ok(())
    })?;
    fit_run(&mut run, &mut fit)?;
    Ok(sums)
}

/// Where one layer's fit products sit among the output channels of the single stacked
/// Conv/Gemm that computes them all: per group, its `per_group` rows of `a = q_k·x̂`, then
/// the same rows of `t = gain·W·x̂`, then one row of `b = Σ x̂` (the same for every channel
/// of a group). One stacked layer reads the input once: one im2col and one packed GEMM
/// instead of three.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stacked {
    pub groups: usize,
    pub per_group: usize,
}

impl Stacked {
    /// Output channels of the stacked layer.
    pub fn channels(&self) -> usize {
        self.groups * (2 * self.per_group + 1)
    }

    /// Stacked channels of `a`, `t` and `b` for the layer's output channel `c`.
    pub fn of(&self, c: usize) -> (usize, usize, usize) {
        let (g, j) = (c / self.per_group, c % self.per_group);
        let base = g * (2 * self.per_group + 1);
        (
            base + j,
            base + self.per_group + j,
            base + 2 * self.per_group,
        )
    }

    /// The stacked weight rows (`cols` values each) in channel order.
    fn weight(&self, qk: &[f32], target: &[f32], cols: usize) -> Vec<f32> {
        let block = self.per_group * cols;
        let mut w = Vec::with_capacity(self.channels() * cols);
        for g in 0..self.groups {
            w.extend_from_slice(&qk[g * block..(g + 1) * block]);
            w.extend_from_slice(&target[g * block..(g + 1) * block]);
            w.extend(std::iter::repeat_n(1.0f32, cols));
        }
        w
    }
}

/// The stacked products of `layer` on `x̂` (see [`Stacked`]), computed by the runtime's own
/// Conv/Gemm kernels so padding, strides and groups match the layer exactly.
fn layer_products(
    layer: &QuantLayer,
    xhat: &Tensor,
    qk: &[f32],
    target_w: &[f32],
) -> Result<(Tensor, Stacked), strata_runtime::RuntimeError> {
    let bad = |e: strata_ir::TensorSizeMismatch| strata_runtime::RuntimeError::Attribute {
        op: "vl-quantize",
        attr: "weight",
        reason: e.to_string(),
    };
    let (op, stacked, mut shape) = match &layer.kind {
        LayerKind::Conv(conv) => {
            let groups = conv.group.max(1);
            let per_group_c = layer.cols / conv.kernel.iter().product::<usize>().max(1);
            let stacked = Stacked {
                groups,
                per_group: layer.rows / groups,
            };
            let mut shape = vec![0, per_group_c];
            shape.extend(&conv.kernel);
            (Op::Conv(conv.clone()), stacked, shape)
        }
        LayerKind::Linear => {
            let op = Op::Gemm(Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
                has_c: false,
            });
            let stacked = Stacked {
                groups: 1,
                per_group: layer.rows,
            };
            (op, stacked, vec![0, layer.cols])
        }
    };
    shape[0] = stacked.channels();
    let w = stacked.weight(qk, target_w, layer.cols);
    let w = Tensor::from_f32(shape, w).map_err(bad)?;
    let mut out = strata_runtime::eval_op(&op, &[xhat, &w])?;
    let y = out.pop().ok_or(strata_runtime::RuntimeError::OutputCount {
        node: layer.name.clone(),
        op: op.mnemonic(),
        declared: 1,
        produced: 0,
    })?;
    Ok((y, stacked))
}

/// Adds every output position of a chunk to its channel's sums; `y` is the stacked layer's
/// output `[n, channels, …]`.
pub(crate) fn accumulate(sums: &mut [FitSums], y: &Tensor, stacked: Stacked) {
    let Some(yv) = y.as_f32() else {
        return;
    };
    let shape = y.shape();
    if shape.len() < 2
        || shape[1] != stacked.channels()
        || sums.len() != stacked.groups * stacked.per_group
    {
        return;
    }
    let (n, channels) = (shape[0], shape[1]);
    let spatial: usize = shape[2..].iter().product();
    for i in 0..n {
        for (c, s) in sums.iter_mut().enumerate() {
            let (a, t, b) = stacked.of(c);
            let at =
                |ch: usize| &yv[(i * channels + ch) * spatial..(i * channels + ch + 1) * spatial];
            for ((&av, &tv), &bv) in at(a).iter().zip(at(t)).zip(at(b)) {
                s.add(av, bv, tv);
            }
        }
    }
}
