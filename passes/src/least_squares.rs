//! The weight side-table fit of `vl-quantize`: per output channel, `alpha`/`beta` by 2×2
//! least squares so that `(alpha·q_k + beta)·x̂` matches the float layer `W·x̂` on the
//! dequantized calibration inputs the frontier delivers.

use strata_ir::ops::{Conv, Gemm};
use strata_ir::quant::ActQuantizer;
use strata_ir::{Graph, Op, Tensor, ValueRef};

use crate::frontier::Frontier;
use crate::layer_codes::{quant_err, LayerCodes};
use crate::vl_quantize::{LayerKind, QuantLayer, Sequential};
use crate::PassError;

/// The least-squares fit of one layer uses at most this many output positions (rows of the
/// fit), so its cost stays a small part of a compile. They are spread over every sample *and*
/// every position ([`fit_stride`]): a 2×2 system per channel needs few rows if they are
/// representative. Measured on the Fashion-MNIST ResNet-8 (4,000 calibration images, top-1
/// on 10,000 test images): 512, 2,048, 8,192, 16,384 and 50,000 spread rows give the same
/// accuracy at every plane count within ±0.2 points, while 4,096 rows taken as *whole
/// images* (about 6 of them) lost 0.3 points at k = 3. With small calibration sets fewer
/// rows do show: on the corpus (32 calibration images, error on 4 others) 2,048 rows moved
/// the K = 8 error by −26 … +46 % per model, so the bound keeps every row of such sets.
pub const FIT_ROWS: usize = 8_192;

/// Output positions per sample from which a layer whose rows are all fitted runs as one
/// stacked Conv instead of gathered rows.
const DENSE_POSITIONS: usize = 256;

/// How many times cheaper a value the chunk's vectorised dequantization is than
/// dequantizing values one by one as they are gathered: a conservative estimate (a division,
/// a rounding and two clamps per value, in 8 lanes against one).
const WHOLE_SPEEDUP: usize = 8;

/// Multiply-adds of one patch's per-group product (`width · cols`) up to which the fit takes
/// its dot products patch by patch instead of through a GEMM over gathered patches.
const DIRECT_PRODUCT: usize = 96;

/// Rows gathered before one stacked product runs: bounds the patch buffer (floats).
const BLOCK_VALUES: usize = 1 << 21;

/// The stride between fitted rows among `total` output positions, `per_sample` to a sample:
/// every row when they are at most [`FIT_ROWS`], else the smallest stride that keeps them
/// under it and shares no factor with `per_sample`, so consecutive samples contribute
/// different positions (a stride dividing a 32×32 map would fit one column of every image).
pub(crate) fn fit_stride(total: usize, per_sample: usize) -> usize {
    if total <= FIT_ROWS {
        return 1;
    }
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut stride = total.div_ceil(FIT_ROWS);
    while gcd(stride, per_sample.max(1)) != 1 {
        stride += 1;
    }
    stride
}
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
/// has reached, over the rows [`fit_stride`] picks from every calibration chunk: their
/// receptive fields are gathered ([`conv_patches`](strata_runtime::kernels::conv::conv_patches)
/// for a Conv, the input row for a Linear), dequantized, and multiplied by the stacked weight
/// in blocks, so the cost follows the rows fitted, not the rows computed.
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
    let stacked = Stacked::of_layer(layer);
    let weights = stacked.weights(&qk, &target_w, layer.cols).map_err(rt)?;
    // A Conv's stacked weight as one Conv weight (`[groups·width, cg, kernel…]`): what the
    // dense path convolves with, and the geometry of the sampled path's receptive fields.
    let conv = match &layer.kind {
        LayerKind::Conv(conv) => {
            let mut shape = vec![
                weights.len() * stacked.width(),
                layer.cols / conv.kernel.iter().product::<usize>().max(1),
            ];
            shape.extend(&conv.kernel);
            let data: Vec<f32> = weights
                .iter()
                .flat_map(|w| w.as_f32().unwrap_or(&[]).iter().copied())
                .collect();
            let w = Tensor::from_f32(shape, data).map_err(|e| {
                rt(strata_runtime::RuntimeError::Attribute {
                    op: "vl-quantize",
                    attr: "weight",
                    reason: e.to_string(),
                })
            })?;
            Some((conv, w))
        }
        LayerKind::Linear => None,
    };
    let dequantize = |t: &Tensor| {
        let xhat: Vec<f32> = t
            .as_f32()
            .unwrap_or(&[])
            .iter()
            .map(|&v| act.fake_quant(v))
            .collect();
        Tensor::from_f32(t.shape().to_vec(), xhat).map_err(|e| PassError::BadCalibration {
            pass,
            reason: e.to_string(),
        })
    };
    let block = (BLOCK_VALUES / layer.cols.max(1)).max(1);
    let direct = stacked.width() * layer.cols <= DIRECT_PRODUCT;
    let mut sums = vec![FitSums::default(); layer.rows];
    let mut patches = vec![Vec::new(); stacked.groups];
    let mut buffered = 0;
    let mut stride = 0;
    let mut seen = 0usize;
    frontier.visit(work, x, |_, t| {
        let samples = t.shape().first().copied().unwrap_or(0);
        let rows = match &conv {
            Some((c, w)) => {
                strata_runtime::kernels::conv::conv_output_positions(c, t, w).map_err(rt)?
            }
            None => match t.shape() {
                [n, cols] if *cols == layer.cols => *n,
                shape => {
                    return Err(PassError::BadCalibration {
                        pass,
                        reason: format!(
                            "the input of `{}` has shape {shape:?} where [N, {}] was expected",
                            layer.name, layer.cols
                        ),
                    })
                }
            },
        };
        let per_sample = rows / samples.max(1);
        if stride == 0 {
            stride = fit_stride(seq.data.samples.saturating_mul(per_sample), per_sample);
        }
        if let (1, true, Some((c, w))) = (stride, per_sample >= DENSE_POSITIONS, &conv) {
            // Every row of large maps is fitted: one stacked Conv over the dequantized chunk
            // (im2col and GEMM per image) computes them more cheaply than gathering each. On
            // small maps a GEMM per image is mostly packing; gathered rows of many images
            // share one.
            let y = strata_runtime::eval_op(&Op::Conv((*c).clone()), &[&dequantize(t)?, w])
                .map_err(rt)?;
            if let Some(y) = y.first() {
                stacked.accumulate_maps(&mut sums, y);
            }
            seen += rows;
            return Ok(());
        }
        let first = seen.next_multiple_of(stride) - seen;
        seen += rows;
        let picked: Vec<usize> = (first..rows).step_by(stride).collect();
        // Dequantizing the whole chunk once (a vectorised pass, [`WHOLE_SPEEDUP`] times
        // cheaper a value than one by one as gathered) pays unless the patches hold far fewer
        // values than the chunk (a few rows of large maps); the gather is then a plain copy.
        // Both give the same values.
        let whole = conv.is_some()
            && picked
                .len()
                .saturating_mul(layer.cols)
                .saturating_mul(WHOLE_SPEEDUP)
                >= t.len();
        let xhat = if whole { Some(dequantize(t)?) } else { None };
        if let (true, Some((c, w))) = (direct, &conv) {
            // Small per-group products: a few dot products per patch as it is gathered
            // beat packing a patch matrix for a GEMM (depthwise convs: 3 dots of 9).
            match &xhat {
                Some(xhat) => stacked.fit_each(&mut sums, &weights, c, xhat, w, &picked, |v| v),
                None => {
                    stacked.fit_each(&mut sums, &weights, c, t, w, &picked, |v| act.fake_quant(v))
                }
            }
            .map_err(rt)?;
            return Ok(());
        }
        for piece in picked.chunks(block) {
            match (&conv, &xhat) {
                (Some((c, w)), Some(xhat)) => strata_runtime::kernels::conv::conv_patches(
                    c,
                    xhat,
                    w,
                    piece,
                    |v| v,
                    &mut patches,
                )
                .map_err(rt)?,
                (Some((c, w)), None) => strata_runtime::kernels::conv::conv_patches(
                    c,
                    t,
                    w,
                    piece,
                    |v| act.fake_quant(v),
                    &mut patches,
                )
                .map_err(rt)?,
                (None, _) => {
                    let xv = t.as_f32().ok_or_else(|| PassError::BadCalibration {
                        pass,
                        reason: format!("the input of `{}` is not f32", layer.name),
                    })?;
                    for &r in piece {
                        let row = &xv[r * layer.cols..(r + 1) * layer.cols];
                        patches[0].extend(row.iter().map(|&v| act.fake_quant(v)));
                    }
                }
            }
            buffered += piece.len();
            if buffered >= block {
                stacked
                    .fit_block(&mut sums, &mut patches, &weights)
                    .map_err(rt)?;
                buffered = 0;
            }
        }
        Ok(())
    })?;
    stacked
        .fit_block(&mut sums, &mut patches, &weights)
        .map_err(rt)?;
    Ok(sums)
}

/// How one layer's fit products are laid out: per group, one product of the gathered rows
/// with a stacked weight of `2·per_group + 1` rows — the group's `per_group` rows of
/// `a = q_k·x̂`, then the same rows of `t = gain·W·x̂`, then one row of `b = Σ x̂` (the same
/// for every channel of a group). One product reads each patch once for all three.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stacked {
    pub groups: usize,
    pub per_group: usize,
}

impl Stacked {
    /// The layout for `layer`: its Conv groups, or one group for a Linear.
    pub fn of_layer(layer: &QuantLayer) -> Stacked {
        let groups = match &layer.kind {
            LayerKind::Conv(conv) => conv.group.max(1),
            LayerKind::Linear => 1,
        };
        Stacked {
            groups,
            per_group: layer.rows / groups,
        }
    }

    /// Columns of one group's product: `a` rows, `t` rows, the `b` row.
    pub fn width(&self) -> usize {
        2 * self.per_group + 1
    }

    /// Columns of `a`, `t` and `b` within its group's product for the group's channel `j`.
    pub fn of(&self, j: usize) -> (usize, usize, usize) {
        (j, self.per_group + j, 2 * self.per_group)
    }

    /// The stacked weight of every group, `[width, cols]` each.
    fn weights(
        &self,
        qk: &[f32],
        target: &[f32],
        cols: usize,
    ) -> Result<Vec<Tensor>, strata_runtime::RuntimeError> {
        let block = self.per_group * cols;
        (0..self.groups)
            .map(|g| {
                let mut w = Vec::with_capacity(self.width() * cols);
                w.extend_from_slice(&qk[g * block..(g + 1) * block]);
                w.extend_from_slice(&target[g * block..(g + 1) * block]);
                w.extend(std::iter::repeat_n(1.0f32, cols));
                Tensor::from_f32(vec![self.width(), cols], w).map_err(|e| {
                    strata_runtime::RuntimeError::Attribute {
                        op: "vl-quantize",
                        attr: "weight",
                        reason: e.to_string(),
                    }
                })
            })
            .collect()
    }

    /// Multiplies each group's gathered rows (`patches[g]`, `[rows, cols]`, emptied) by its
    /// stacked weight with the runtime's GEMM and adds the products to the sums.
    fn fit_block(
        &self,
        sums: &mut [FitSums],
        patches: &mut [Vec<f32>],
        weights: &[Tensor],
    ) -> Result<(), strata_runtime::RuntimeError> {
        let gemm = Op::Gemm(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
            has_c: false,
        });
        for (g, (rows, w)) in patches.iter_mut().zip(weights).enumerate() {
            let cols = w.shape()[1];
            if rows.is_empty() || cols == 0 {
                continue;
            }
            let x = Tensor::from_f32(vec![rows.len() / cols, cols], std::mem::take(rows)).map_err(
                |e| strata_runtime::RuntimeError::Shape {
                    op: "vl-quantize",
                    reason: e.to_string(),
                },
            )?;
            let y = strata_runtime::eval_op(&gemm, &[&x, w])?;
            if let Some(y) = y.first().and_then(Tensor::as_f32) {
                let group = &mut sums[g * self.per_group..(g + 1) * self.per_group];
                self.accumulate(group, y);
            }
        }
        Ok(())
    }

    /// The sums of the Conv rows `rows` of `x` (`map` applied to each value read), each
    /// patch's products taken as it is gathered ([`conv_patches_each`]).
    ///
    /// [`conv_patches_each`]: strata_runtime::kernels::conv::conv_patches_each
    #[allow(clippy::too_many_arguments)]
    fn fit_each(
        &self,
        sums: &mut [FitSums],
        weights: &[Tensor],
        c: &Conv,
        x: &Tensor,
        w: &Tensor,
        rows: &[usize],
        map: impl Fn(f32) -> f32,
    ) -> Result<(), strata_runtime::RuntimeError> {
        // Each group's products of a piece of rows, added to the sums piece by piece.
        const PIECE: usize = 256;
        let mut ys = vec![Vec::new(); self.groups];
        for piece in rows.chunks(PIECE) {
            strata_runtime::kernels::conv::conv_patches_each(c, x, w, piece, &map, |g, p| {
                let wg = weights[g].as_f32().unwrap_or(&[]);
                ys[g].extend(
                    wg.chunks_exact(p.len())
                        .map(|wj| wj.iter().zip(p).map(|(a, b)| a * b).sum::<f32>()),
                );
            })?;
            for (g, y) in ys.iter_mut().enumerate() {
                self.accumulate(&mut sums[g * self.per_group..(g + 1) * self.per_group], y);
                y.clear();
            }
        }
        Ok(())
    }

    /// Adds every output position of the stacked Conv's output `y` (`[n, groups·width, …]`,
    /// group by group the layout of [`Self::accumulate`]'s rows, position-major) to the sums.
    pub(crate) fn accumulate_maps(&self, sums: &mut [FitSums], y: &Tensor) {
        let (Some(yv), [n, channels, spatial @ ..]) = (y.as_f32(), y.shape()) else {
            return;
        };
        if *channels != self.groups * self.width() || sums.len() != self.groups * self.per_group {
            return;
        }
        let positions: usize = spatial.iter().product();
        let map = |i: usize, ch: usize| &yv[(i * channels + ch) * positions..][..positions];
        for i in 0..*n {
            for (c, s) in sums.iter_mut().enumerate() {
                let base = (c / self.per_group) * self.width();
                let (a, t, b) = self.of(c % self.per_group);
                for ((&av, &tv), &bv) in map(i, base + a)
                    .iter()
                    .zip(map(i, base + t))
                    .zip(map(i, base + b))
                {
                    s.add(av, bv, tv);
                }
            }
        }
    }

    /// Adds every row of one group's product `y` (`[rows, width]`) to its channels' sums.
    pub(crate) fn accumulate(&self, group: &mut [FitSums], y: &[f32]) {
        let n = self.per_group;
        // Channel-major partial sums (one array per sum) so the loop over a row's channels
        // vectorizes; each channel still adds its rows in order.
        let (mut aa, mut ab, mut bb, mut at, mut bt) = (
            vec![0.0; n],
            vec![0.0; n],
            0.0f64,
            vec![0.0; n],
            vec![0.0; n],
        );
        let mut rows = 0;
        let (a0, t0, bi) = self.of(0);
        for row in y.chunks_exact(self.width()) {
            let (a_row, t_row, b) = (&row[a0..a0 + n], &row[t0..t0 + n], row[bi] as f64);
            bb += b * b;
            for j in 0..n {
                let (a, t) = (a_row[j] as f64, t_row[j] as f64);
                aa[j] += a * a;
                ab[j] += a * b;
                at[j] += a * t;
                bt[j] += b * t;
            }
            rows += 1;
        }
        for (j, s) in group.iter_mut().enumerate().take(n) {
            s.aa += aa[j];
            s.ab += ab[j];
            s.bb += bb;
            s.at += at[j];
            s.bt += bt[j];
            s.rows += rows;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_test_support::rand_tensor;

    /// The per-patch dot products give the sums of the gathered-patch GEMM (to rounding), for
    /// a depthwise conv with a channel multiplier and padding, a grouped 3×3 and a plain conv.
    #[test]
    fn per_patch_products_match_the_patch_gemm() {
        // (x shape, weight shape, groups, pads)
        let cases: [(&[usize], &[usize], usize, usize); 3] = [
            (&[3, 4, 7, 6], &[8, 1, 3, 3], 4, 1),
            (&[2, 6, 5, 5], &[6, 2, 3, 3], 3, 0),
            (&[2, 3, 6, 6], &[5, 3, 2, 2], 1, 1),
        ];
        for (i, (xs, ws, group, pad)) in cases.into_iter().enumerate() {
            let c = Conv {
                kernel: ws[2..].to_vec(),
                strides: vec![1, 1],
                pads: vec![pad; 4],
                dilations: vec![1, 1],
                group,
                has_bias: false,
            };
            let stacked = Stacked {
                groups: group,
                per_group: ws[0] / group,
            };
            let cols: usize = ws[1..].iter().product();
            let weights: Vec<Tensor> = (0..group)
                .map(|g| rand_tensor(&[stacked.width(), cols], 10 * i as u64 + g as u64))
                .collect();
            let x = rand_tensor(xs, 100 + i as u64);
            let wshape: Vec<usize> = [group * stacked.width(), ws[1]]
                .into_iter()
                .chain(ws[2..].iter().copied())
                .collect();
            let w = rand_tensor(&wshape, 200 + i as u64);
            let positions =
                strata_runtime::kernels::conv::conv_output_positions(&c, &x, &w).unwrap();
            let rows: Vec<usize> = (0..positions).filter(|r| r % 3 != 1).collect();
            let map = |v: f32| 0.5 * v + 0.25;
            let mut each = vec![FitSums::default(); ws[0]];
            stacked
                .fit_each(&mut each, &weights, &c, &x, &w, &rows, map)
                .unwrap();
            let mut patches = vec![Vec::new(); group];
            strata_runtime::kernels::conv::conv_patches(&c, &x, &w, &rows, map, &mut patches)
                .unwrap();
            let mut gemm = vec![FitSums::default(); ws[0]];
            stacked
                .fit_block(&mut gemm, &mut patches, &weights)
                .unwrap();
            for (ch, (e, g)) in each.iter().zip(&gemm).enumerate() {
                assert_eq!(e.rows, rows.len(), "case {i} channel {ch}");
                assert_eq!(e.rows, g.rows, "case {i} channel {ch}");
                for (name, a, b) in [
                    ("aa", e.aa, g.aa),
                    ("ab", e.ab, g.ab),
                    ("bb", e.bb, g.bb),
                    ("at", e.at, g.at),
                    ("bt", e.bt, g.bt),
                ] {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "case {i} channel {ch} {name}: {a} vs {b}"
                    );
                }
                assert!(e.aa > 0.0 && e.bb > 0.0, "case {i} channel {ch}");
            }
        }
    }
}
