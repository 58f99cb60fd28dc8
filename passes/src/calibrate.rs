//! `calibrate{method=minmax|percentile|mse, percentile=99.99, samples=N}`: the activation
//! range estimator and the calibration samples the quantizer uses.
//!
//! The pass checks the samples against the graph and fixes the *estimator* and the sample
//! count that `vl-quantize` uses afterwards: a k-plane network's activations differ from the
//! FP32 ones, so the quantizer estimates each plane count's ranges on its own partially
//! quantized network with this method. The FP32 range of every quantizable layer's input is
//! there on request ([`Calibration::fp32_ranges`]: one FP32 run over the samples, in chunks so
//! memory stays bounded); no compile pays for it. The estimators are pure functions so they
//! can be tested on values.

use std::collections::BTreeMap;

use strata_ir::ops::Slice;
/// The range calibration produces, defined with the arithmetic that uses it.
pub use strata_ir::quant::ActRange;
use strata_ir::quant::{act_params, ActQuantizer};
use strata_ir::{DType, Dim, Graph, NodeKind, Op, Tensor, ValueRef};
use strata_runtime::RunOptions;

use crate::pipeline::{PassOptions, PipelineError};
use crate::vl_quantize::quantizable_layers;
use crate::{EliminateDeadCode, Pass, PassContext, PassError};

const PASS: &str = "calibrate";

/// Samples run through the runtime at once: large enough to keep its GEMMs busy, small enough
/// that the extra outputs of a wide network stay in memory comfortably.
pub(crate) const CHUNK: usize = 256;

/// At most this many values of one tensor are kept for percentile and MSE estimation; beyond
/// it values are taken at an even stride (the exact min/max are always tracked).
pub(crate) const KEEP_VALUES: usize = 1 << 20;

/// The MSE search evaluates candidates on at most this many of the kept values.
const MSE_VALUES: usize = 1 << 18;

/// How an activation range is estimated from observed values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibrationMethod {
    /// The exact minimum and maximum: never clips, but one outlier widens every bucket.
    MinMax,
    /// The two tails cut separately: `hi` is the `percentile`-th percentile of the values and
    /// `lo` the `(100 − percentile)`-th (nearest rank), so a few outliers on either side are
    /// clipped instead of stretching the scale.
    Percentile { percentile: f64 },
    /// The clipping range (the min/max range shrunk toward zero by a common factor) that
    /// minimises the mean squared error of A-bit asymmetric quantization of the values.
    Mse,
}

impl CalibrationMethod {
    /// The range of the observed values by this method; `act_bits` matters only for MSE.
    pub fn estimate(&self, stats: &RangeStats, act_bits: u8) -> ActRange {
        let exact = ActRange {
            lo: stats.min,
            hi: stats.max,
        };
        if stats.kept.is_empty() {
            return ActRange { lo: 0.0, hi: 0.0 };
        }
        match *self {
            CalibrationMethod::MinMax => exact,
            CalibrationMethod::Percentile { percentile } => {
                percentile_range(&stats.kept, percentile).unwrap_or(exact)
            }
            CalibrationMethod::Mse => {
                let step = stats.kept.len().div_ceil(MSE_VALUES).max(1);
                let values: Vec<f32> = stats.kept.iter().step_by(step).copied().collect();
                // Candidates are shrinkings of the exact range, so the exact extremes (which
                // the stride may have skipped) are always the widest candidate.
                mse_range_within(&values, exact, act_bits).unwrap_or(exact)
            }
        }
    }

    /// The estimator family, without its parameters.
    pub fn kind(&self) -> CalibrationKind {
        match self {
            CalibrationMethod::MinMax => CalibrationKind::MinMax,
            CalibrationMethod::Percentile { .. } => CalibrationKind::Percentile,
            CalibrationMethod::Mse => CalibrationKind::Mse,
        }
    }

    /// The name used in pipeline options.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// The estimator families a pipeline can name (`calibrate{method=…}`), without parameters:
/// what a user chooses between on the command line or in a build script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CalibrationKind {
    MinMax,
    #[default]
    Percentile,
    Mse,
}

impl CalibrationKind {
    /// Every family, in help order.
    pub const ALL: [CalibrationKind; 3] = [
        CalibrationKind::MinMax,
        CalibrationKind::Percentile,
        CalibrationKind::Mse,
    ];

    /// The name used in pipeline options and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CalibrationKind::MinMax => "minmax",
            CalibrationKind::Percentile => "percentile",
            CalibrationKind::Mse => "mse",
        }
    }

    /// The family named `name`, if any.
    pub fn from_name(name: &str) -> Option<CalibrationKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The estimator of this family (`percentile` is used by [`CalibrationKind::Percentile`]).
    pub fn method(self, percentile: f64) -> CalibrationMethod {
        match self {
            CalibrationKind::MinMax => CalibrationMethod::MinMax,
            CalibrationKind::Percentile => CalibrationMethod::Percentile { percentile },
            CalibrationKind::Mse => CalibrationMethod::Mse,
        }
    }
}

impl std::fmt::Display for CalibrationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for CalibrationKind {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// The exact min/max of all values seen plus an evenly strided subset of them, fed chunk by
/// chunk so that calibrating on many samples never holds every activation at once.
#[derive(Debug, Clone)]
pub struct RangeStats {
    pub min: f32,
    pub max: f32,
    /// The values kept for percentile/MSE estimation.
    pub kept: Vec<f32>,
    stride: usize,
    seen: usize,
}

impl RangeStats {
    /// Statistics for a tensor expected to have about `total` values; keeps at most
    /// [`KEEP_VALUES`] of them.
    pub fn new(total: usize) -> RangeStats {
        RangeStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            kept: Vec::new(),
            stride: total.div_ceil(KEEP_VALUES).max(1),
            seen: 0,
        }
    }

    /// Adds values; NaN is ignored (it has no place on a number line to clip to).
    pub fn add(&mut self, values: &[f32]) {
        // Fast path (calibration feeds millions of values per layer and plane count): without
        // NaN, `seen` advances by one per value, so the kept values are a plain stride. One
        // vectorised pass over the order keys finds both extremes and any NaN (whose key lies
        // beyond ±∞).
        let (klo, khi) = key_range(values);
        let nan_free = klo >= total_key(f32::NEG_INFINITY) && khi <= total_key(f32::INFINITY);
        if nan_free {
            if !values.is_empty() {
                self.min = self.min.min(from_total_key(klo));
                self.max = self.max.max(from_total_key(khi));
            }
            let first = (self.stride - self.seen % self.stride) % self.stride;
            let room = KEEP_VALUES - self.kept.len().min(KEEP_VALUES);
            if self.stride == 1 {
                // Every value is kept (small calibration sets): a plain copy.
                self.kept
                    .extend_from_slice(&values[..room.min(values.len())]);
            } else {
                self.kept.extend(
                    values
                        .iter()
                        .skip(first)
                        .step_by(self.stride)
                        .take(room)
                        .copied(),
                );
            }
            self.seen += values.len();
            return;
        }
        for &v in values {
            if v.is_nan() {
                continue;
            }
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            if self.seen % self.stride == 0 && self.kept.len() < KEEP_VALUES {
                self.kept.push(v);
            }
            self.seen += 1;
        }
    }

    /// Values seen (NaN excluded).
    pub fn count(&self) -> usize {
        self.seen
    }
}

/// The exact range of `values` (NaN ignored); `None` when there is nothing to measure.
pub fn minmax_range(values: &[f32]) -> Option<ActRange> {
    let mut stats = RangeStats::new(values.len());
    stats.add(values);
    (stats.count() > 0).then_some(ActRange {
        lo: stats.min,
        hi: stats.max,
    })
}

/// Two-tailed nearest-rank percentile range: `hi` = the `p`-th percentile, `lo` = the
/// `(100 − p)`-th (the mirror rank), NaN ignored. `p` is clamped to `[50, 100]`.
///
/// Order statistics in `f32::total_cmp` order. The usual tails (99.99 % of a million kept
/// values leaves about a hundred per side) are found in one pass with two small heaps;
/// wide tails fall back to quickselect on a copy. Both give the same values.
pub fn percentile_range(values: &[f32], p: f64) -> Option<ActRange> {
    let n = values.iter().filter(|x| !x.is_nan()).count();
    if n == 0 {
        return None;
    }
    let p = if p.is_nan() {
        100.0
    } else {
        p.clamp(50.0, 100.0)
    };
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let hi_idx = rank.clamp(1, n) - 1;
    let lo_idx = n - 1 - hi_idx;
    // The lo_idx-th smallest is the largest of the `lo_idx + 1` smallest; likewise for hi.
    let tail = lo_idx + 1;
    if tail <= TAIL_HEAP_MAX {
        let (lo, hi) = tails(values, tail);
        return Some(ActRange { lo, hi });
    }
    let mut v: Vec<f32> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    let (_, hi, _) = v.select_nth_unstable_by(hi_idx, f32::total_cmp);
    let hi = *hi;
    let (_, lo, _) = v.select_nth_unstable_by(lo_idx, f32::total_cmp);
    Some(ActRange { lo: *lo, hi })
}

/// Tails up to this length are kept in heaps by [`percentile_range`].
const TAIL_HEAP_MAX: usize = 4096;

/// An `i32` whose order is `f32::total_cmp`'s (the standard library's own transform).
fn total_key(v: f32) -> i32 {
    let b = v.to_bits() as i32;
    b ^ (((b >> 31) as u32) >> 1) as i32
}

/// The smallest and largest [`total_key`] of `values` (`(i32::MAX, i32::MIN)` for none), in
/// one pass that vectorizes, unlike a fold of `f32::min`.
fn key_range(values: &[f32]) -> (i32, i32) {
    values.iter().fold((i32::MAX, i32::MIN), |(lo, hi), &v| {
        let k = total_key(v);
        (lo.min(k), hi.max(k))
    })
}

/// The inverse of [`total_key`] (the transform is an involution).
fn from_total_key(k: i32) -> f32 {
    f32::from_bits((k ^ (((k >> 31) as u32) >> 1) as i32) as u32)
}

/// The `tail`-th smallest and `tail`-th largest non-NaN value (1-based), in one pass.
///
/// Once a heap is full its top is cached in a plain integer, so the usual value (which
/// enters neither tail) costs two compares instead of two heap peeks; and once both are
/// full, a block of [`TAIL_BLOCK`] values whose key range lies between the two tops (almost
/// every block) is passed over after one vectorised min/max of its keys. A NaN's key lies
/// beyond ±∞ on its sign's side, so a block holding one always takes the per-value path,
/// which skips it.
fn tails(values: &[f32], tail: usize) -> (f32, f32) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut small: BinaryHeap<i32> = BinaryHeap::with_capacity(tail + 1);
    let mut large: BinaryHeap<Reverse<i32>> = BinaryHeap::with_capacity(tail + 1);
    // The largest of the `tail` smallest and the smallest of the `tail` largest so far;
    // meaningful once the heap holds `tail` keys.
    let (mut small_top, mut large_top) = (i32::MAX, i32::MIN);
    for block in values.chunks(TAIL_BLOCK) {
        if small.len() == tail && large.len() == tail {
            let (lo, hi) = key_range(block);
            if lo >= small_top && hi <= large_top {
                continue;
            }
        }
        for &v in block.iter().filter(|x| !x.is_nan()) {
            let k = total_key(v);
            if small.len() < tail {
                small.push(k);
                small_top = small.peek().copied().unwrap_or(i32::MAX);
            } else if k < small_top {
                if let Some(mut top) = small.peek_mut() {
                    *top = k;
                }
                small_top = small.peek().copied().unwrap_or(i32::MAX);
            }
            if large.len() < tail {
                large.push(Reverse(k));
                large_top = large.peek().map_or(i32::MIN, |r| r.0);
            } else if k > large_top {
                if let Some(mut top) = large.peek_mut() {
                    *top = Reverse(k);
                }
                large_top = large.peek().map_or(i32::MIN, |r| r.0);
            }
        }
    }
    let lo = small.peek().map_or(f32::NAN, |&k| from_total_key(k));
    let hi = large.peek().map_or(f32::NAN, |k| from_total_key(k.0));
    (lo, hi)
}

/// Values [`tails`] checks at once against both tails before looking at them one by one.
const TAIL_BLOCK: usize = 64;

/// The clipping range minimising the MSE of `act_bits`-bit asymmetric quantization of
/// `values`, searched over the min/max range shrunk toward zero by factors `1, 0.99, …, 0.05`;
/// `None` without values or for an unsupported `act_bits`.
pub fn mse_range(values: &[f32], act_bits: u8) -> Option<ActRange> {
    let exact = minmax_range(values)?;
    mse_range_within(values, exact, act_bits)
}

fn mse_range_within(values: &[f32], exact: ActRange, act_bits: u8) -> Option<ActRange> {
    if values.is_empty() {
        return None;
    }
    let mut best = (f64::INFINITY, exact);
    for step in 0..=95 {
        let t = 1.0 - step as f32 * 0.01;
        let cand = ActRange {
            lo: exact.lo * t,
            hi: exact.hi * t,
        };
        let q = ActQuantizer::new(act_params(cand, act_bits).ok()?, act_bits).ok()?;
        let err: f64 = values
            .iter()
            .filter(|v| !v.is_nan())
            .map(|&v| {
                let d = (q.fake_quant(v) - v) as f64;
                d * d
            })
            .sum();
        // Strictly better only, so ties keep the wider (earlier) range.
        if err < best.0 {
            best = (err, cand);
        }
    }
    Some(best.1)
}

/// What `calibrate` leaves in `ctx.results["calibrate"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub method: CalibrationMethod,
    /// How many calibration samples the quantizer should use (the first `samples`).
    pub samples: usize,
}

impl Calibration {
    /// The calibration result of an earlier `calibrate` pass, if any.
    pub fn from_context(ctx: &PassContext) -> Option<&Calibration> {
        ctx.results.get(PASS)?.downcast_ref::<Calibration>()
    }

    /// The FP32 range of each quantizable layer's input, keyed by the layer's node name, with
    /// this method over the first `samples` of `calibration` (one FP32 run of `graph`).
    pub fn fp32_ranges(
        &self,
        graph: &Graph,
        calibration: &[Tensor],
    ) -> Result<BTreeMap<String, ActRange>, PassError> {
        let data = CalibrationData::new(PASS, graph, Some(calibration), Some(self.samples))?;
        let layers = quantizable_layers(graph)?;
        let values: Vec<ValueRef> = layers.iter().map(|l| l.input).collect();
        let mut stats: Vec<Option<RangeStats>> = vec![None; values.len()];
        for_each_chunk(
            PASS,
            graph,
            &values,
            &data,
            &RunOptions::default(),
            |_, outs| {
                for (i, t) in outs.iter().enumerate() {
                    let s = stats[i].get_or_insert_with(|| RangeStats::new(data.total_of(t)));
                    s.add(t.as_f32().unwrap_or(&[]));
                }
                Ok(())
            },
        )?;
        Ok(layers
            .iter()
            .zip(stats)
            .map(|(l, s)| {
                let s = s.unwrap_or_else(|| RangeStats::new(0));
                (l.name.clone(), self.method.estimate(&s, 8))
            })
            .collect())
    }
}

/// See the module documentation.
pub struct Calibrate {
    method: CalibrationMethod,
    samples: Option<usize>,
}

impl Calibrate {
    /// A calibrate pass with this estimator using the first `samples` samples (all if `None`).
    pub fn new(method: CalibrationMethod, samples: Option<usize>) -> Calibrate {
        Calibrate { method, samples }
    }

    pub(crate) fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PipelineError> {
        let method_name: String = options.get("method", "minmax".to_string())?;
        let percentile: f64 = options.get("percentile", 99.99)?;
        if !(percentile > 50.0 && percentile <= 100.0) {
            return Err(options.invalid("percentile", "must be in (50, 100]"));
        }
        let Some(kind) = CalibrationKind::from_name(&method_name) else {
            return Err(options.invalid("method", "expected minmax, percentile or mse"));
        };
        let method = kind.method(percentile);
        let samples = match options.raw("samples") {
            None => None,
            Some(_) => {
                let n: usize = options.get("samples", 0)?;
                if n == 0 {
                    return Err(options.invalid("samples", "must be at least 1"));
                }
                Some(n)
            }
        };
        Ok(Box::new(Calibrate { method, samples }))
    }
}

impl Pass for Calibrate {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, ctx: &mut PassContext) -> Result<bool, PassError> {
        let data = CalibrationData::new(PASS, graph, ctx.calibration.as_deref(), self.samples)?;
        ctx.results.insert(
            PASS,
            Box::new(Calibration {
                method: self.method,
                samples: data.samples,
            }),
        );
        Ok(false)
    }
}

/// Calibration samples checked against the graph's inputs.
pub(crate) struct CalibrationData<'a> {
    pub inputs: &'a [Tensor],
    /// Samples used (≤ the samples supplied).
    pub samples: usize,
    /// Samples per runtime call.
    pub chunk: usize,
}

impl<'a> CalibrationData<'a> {
    /// Checks that calibration data is present and fits the graph: one tensor per graph input,
    /// f32 where the input is f32, a shared leading sample axis. An input with a fixed leading
    /// dimension `d` (no batch symbol) is fed `d` samples at a time.
    pub fn new(
        pass: &'static str,
        graph: &Graph,
        samples: Option<&'a [Tensor]>,
        limit: Option<usize>,
    ) -> Result<CalibrationData<'a>, PassError> {
        let inputs = samples.ok_or(PassError::MissingCalibration { pass })?;
        let bad = |reason: String| PassError::BadCalibration { pass, reason };
        if inputs.len() != graph.inputs().len() {
            return Err(bad(format!(
                "{} tensors given but the graph has {} inputs",
                inputs.len(),
                graph.inputs().len()
            )));
        }
        let mut n: Option<usize> = None;
        let mut fixed: Option<usize> = None;
        for (&id, t) in graph.inputs().iter().zip(inputs) {
            let node = graph
                .node(id)
                .map_err(|source| PassError::Graph { pass, source })?;
            let Some(value) = node.outputs.first() else {
                return Err(bad(format!("graph input `{}` has no value", node.name)));
            };
            if !matches!(node.kind, NodeKind::Input) {
                return Err(bad(format!("`{}` is not a graph input", node.name)));
            }
            if t.dtype() != value.ty.dtype {
                return Err(bad(format!(
                    "input `{}`: samples are {} but the input is {}",
                    value.name,
                    t.dtype(),
                    value.ty
                )));
            }
            if t.rank() != value.ty.rank() || t.rank() == 0 {
                return Err(bad(format!(
                    "input `{}`: samples have shape {:?} but the input is {} (samples are \
                     stacked along the leading axis)",
                    value.name,
                    t.shape(),
                    value.ty
                )));
            }
            let count = t.shape()[0];
            match n {
                Some(m) if m != count => {
                    return Err(bad(format!(
                        "input `{}` has {count} samples but an earlier input has {m}",
                        value.name
                    )))
                }
                _ => n = Some(count),
            }
            if let Some(Dim::Known(d)) = value.ty.shape.dims().first() {
                match fixed {
                    Some(f) if f != *d => {
                        return Err(bad(format!(
                            "inputs have different fixed leading dimensions ({f} and {d})"
                        )))
                    }
                    _ => fixed = Some(*d),
                }
            }
        }
        let total = n.unwrap_or(0);
        let samples = limit.map_or(total, |l| l.min(total));
        if samples == 0 {
            return Err(bad("no samples".to_string()));
        }
        let chunk = match fixed {
            None => CHUNK,
            Some(0) => return Err(bad("a graph input has leading dimension 0".to_string())),
            Some(d) => {
                if samples % d != 0 {
                    return Err(bad(format!(
                        "{samples} samples do not split into runs of the inputs' fixed leading \
                         dimension {d}"
                    )));
                }
                d
            }
        };
        Ok(CalibrationData {
            inputs,
            samples,
            chunk,
        })
    }

    /// Expected value count of a tensor over all used samples, from one chunk's output.
    pub fn total_of(&self, chunk_output: &Tensor) -> usize {
        let per = chunk_output.shape().iter().skip(1).product::<usize>();
        per.saturating_mul(self.samples)
    }

    /// Rows `start..start+len` (every `step`-th) of every input.
    pub fn rows(
        &self,
        pass: &'static str,
        start: usize,
        end: usize,
        step: usize,
    ) -> Result<Vec<Tensor>, PassError> {
        let op = Op::Slice(Slice {
            starts: vec![start as i64],
            ends: vec![end as i64],
            axes: vec![0],
            steps: vec![step.max(1) as i64],
        });
        self.inputs
            .iter()
            .map(|t| {
                strata_runtime::eval_op(&op, &[t])
                    .map_err(|source| PassError::Runtime {
                        pass,
                        node: "<calibration samples>".to_string(),
                        source: Box::new(source),
                    })
                    .and_then(|mut v| {
                        v.pop().ok_or_else(|| PassError::BadCalibration {
                            pass,
                            reason: "slicing the samples produced no tensor".to_string(),
                        })
                    })
            })
            .collect()
    }
}

/// `graph` with `outputs` as its outputs and everything they do not depend on removed, so
/// that asking for an early layer's input does not run the rest of the network.
pub(crate) fn pruned(graph: &Graph, outputs: &[ValueRef]) -> Result<Graph, PassError> {
    let mut g = graph.clone();
    g.set_outputs(outputs.to_vec());
    EliminateDeadCode.run(&mut g, &mut PassContext::default())?;
    Ok(g)
}

/// Runs `graph` (pruned to `outputs`) over the calibration samples chunk by chunk and hands
/// each chunk's outputs to `f` with the chunk's first sample index.
pub(crate) fn for_each_chunk(
    pass: &'static str,
    graph: &Graph,
    outputs: &[ValueRef],
    data: &CalibrationData<'_>,
    options: &RunOptions,
    mut f: impl FnMut(usize, &[Tensor]) -> Result<(), PassError>,
) -> Result<(), PassError> {
    if outputs.is_empty() {
        return Ok(());
    }
    let g = pruned(graph, outputs)?;
    let mut start = 0;
    while start < data.samples {
        let end = (start + data.chunk).min(data.samples);
        let inputs = data.rows(pass, start, end, 1)?;
        let outs = run_checked(pass, &g, &inputs, options)?;
        f(start, &outs)?;
        start = end;
    }
    Ok(())
}

/// Runs the graph and checks every output is f32 (layer inputs are).
pub(crate) fn run_checked(
    pass: &'static str,
    graph: &Graph,
    inputs: &[Tensor],
    options: &RunOptions,
) -> Result<Vec<Tensor>, PassError> {
    let outs =
        strata_runtime::run_with(graph, inputs, options).map_err(|source| PassError::Runtime {
            pass,
            node: graph.name.clone(),
            source: Box::new(source),
        })?;
    for (t, v) in outs.iter().zip(graph.outputs()) {
        if t.dtype() != DType::F32 {
            let name = graph.value(*v).map(|v| v.name.clone()).unwrap_or_default();
            return Err(PassError::BadCalibration {
                pass,
                reason: format!("value `{name}` is {} where f32 was expected", t.dtype()),
            });
        }
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::assert_invalid_options;

    #[test]
    fn range_stats_keep_the_same_values_whichever_path_adds_them() {
        let values: Vec<f32> = (0..5000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
            .collect();
        // Reference: one value at a time through the NaN-aware loop.
        let mut one = RangeStats::new(5000);
        one.stride = 7;
        for v in &values {
            one.add(&[*v, f32::NAN]);
        }
        // Uneven NaN-free chunks take the strided fast path.
        let mut fast = RangeStats::new(5000);
        fast.stride = 7;
        for chunk in values.chunks(333) {
            fast.add(chunk);
        }
        assert_eq!(
            (fast.min, fast.max, fast.seen),
            (one.min, one.max, one.seen)
        );
        assert_eq!(fast.kept, one.kept);
        assert_eq!(fast.kept.len(), 5000usize.div_ceil(7));
    }

    #[test]
    fn minmax_ignores_nan_and_handles_empty() {
        assert_eq!(
            minmax_range(&[1.0, f32::NAN, -3.0, 2.5]),
            Some(ActRange { lo: -3.0, hi: 2.5 })
        );
        assert_eq!(minmax_range(&[]), None);
        assert_eq!(minmax_range(&[f32::NAN]), None);
        assert_eq!(
            minmax_range(&[-f32::NAN, 0.5, f32::NEG_INFINITY, -0.25]),
            Some(ActRange {
                lo: f32::NEG_INFINITY,
                hi: 0.5
            })
        );
        assert_eq!(
            minmax_range(&[f32::INFINITY, 0.5]),
            Some(ActRange {
                lo: 0.5,
                hi: f32::INFINITY
            })
        );
    }

    #[test]
    fn percentile_cuts_both_tails_by_nearest_rank() {
        let v: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        // rank ceil(0.99·10000) = 9900 → index 9899; the mirror index is 100.
        assert_eq!(
            percentile_range(&v, 99.0),
            Some(ActRange {
                lo: 100.0,
                hi: 9899.0
            })
        );
        assert_eq!(
            percentile_range(&v, 100.0),
            Some(ActRange {
                lo: 0.0,
                hi: 9999.0
            })
        );
        // One huge outlier among 10 000 values is clipped at 99.99.
        let mut w: Vec<f32> = (0..9_999).map(|i| (i % 10) as f32).collect();
        w.push(1e6);
        let r = percentile_range(&w, 99.99).unwrap();
        assert_eq!(r, ActRange { lo: 0.0, hi: 9.0 });
        assert_eq!(percentile_range(&[], 99.0), None);
    }

    /// The heap tails and the quickselect fallback against a full sort, on values with
    /// duplicates, ±0, ±inf and NaN, at percentiles whose tails are small and large.
    #[test]
    fn percentile_tails_match_a_full_sort() {
        let mut s = 0x9e3779b97f4a7c15u64;
        // Dense specials (every 97 values), then rare ones among many values, so that most
        // blocks are passed over whole and a NaN of either sign sits in such a block.
        let cases = [
            (1usize, 97),
            (2, 97),
            (7, 97),
            (100, 97),
            (5000, 97),
            (20000, 97),
        ];
        for (n, period) in cases.into_iter().chain([(100_000, 4099), (70_001, 65_537)]) {
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    match i % period {
                        0 => -0.0,
                        1 => 0.0,
                        2 => f32::NAN,
                        3 => f32::INFINITY,
                        4 => f32::NEG_INFINITY,
                        5 => -f32::NAN,
                        _ => ((s >> 40) % 2001) as f32 / 100.0 - 10.0,
                    }
                })
                .collect();
            let mut sorted: Vec<f32> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            sorted.sort_by(f32::total_cmp);
            for p in [50.0, 60.0, 99.0, 99.9, 99.99, 100.0] {
                let m = sorted.len();
                let Some(r) = percentile_range(&v, p) else {
                    assert_eq!(m, 0);
                    continue;
                };
                let hi_idx = (((p / 100.0) * m as f64).ceil() as usize).clamp(1, m) - 1;
                let (lo, hi) = (sorted[m - 1 - hi_idx], sorted[hi_idx]);
                assert_eq!(r.lo.to_bits(), lo.to_bits(), "n={n} p={p}");
                assert_eq!(r.hi.to_bits(), hi.to_bits(), "n={n} p={p}");
            }
        }
    }

    #[test]
    fn mse_clips_outliers_but_not_a_uniform_spread() {
        // Uniform values: clipping only hurts, the full range wins.
        let uniform: Vec<f32> = (0..1000).map(|i| i as f32 / 999.0).collect();
        let r = mse_range(&uniform, 8).unwrap();
        assert_eq!(r, ActRange { lo: 0.0, hi: 1.0 });
        // Many small values and one far outlier: a 2-bit grid is better spent on the bulk.
        let mut v: Vec<f32> = (0..1000).map(|i| (i % 100) as f32 / 100.0).collect();
        v.push(10.0);
        let r = mse_range(&v, 2).unwrap();
        assert!(r.hi < 10.0 && r.hi > 0.5, "{r:?}");
        assert_eq!(r.lo, 0.0);
        assert_eq!(mse_range(&[], 8), None);
        assert_eq!(mse_range(&[1.0], 1), None);
    }

    #[test]
    fn stats_keep_a_strided_subset_and_exact_extremes() {
        let mut s = RangeStats::new(3 * KEEP_VALUES);
        let v: Vec<f32> = (0..3 * KEEP_VALUES).map(|i| i as f32).collect();
        s.add(&v[..10]);
        s.add(&v[10..]);
        assert_eq!(s.kept.len(), KEEP_VALUES);
        assert_eq!(s.kept[1], 3.0);
        assert_eq!(s.min, 0.0);
        assert_eq!(s.max, (3 * KEEP_VALUES - 1) as f32);
        let m = CalibrationMethod::MinMax.estimate(&s, 8);
        assert_eq!(m.hi, s.max);
    }

    #[test]
    fn options_are_validated() {
        let ok = PassOptions::new(PASS, &[("method", "percentile"), ("percentile", "99.9")]);
        assert!(Calibrate::create(&ok).is_ok());
        ok.finish().unwrap();
        let bad = [
            ("method", "median"),
            ("percentile", "40"),
            ("percentile", "abc"),
            ("samples", "0"),
        ];
        assert_invalid_options(PASS, Calibrate::create, &bad);
    }
}
