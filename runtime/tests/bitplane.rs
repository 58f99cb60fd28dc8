//! Bit-plane kernels: the integer path against a naive i64 reference (bitwise), integer vs
//! float path, convergence to the FP32 layer, plane-count selection and its errors.

use strata_ir::ops::{Bitplane, BitplaneKernel, Conv, PlaneSpec};
use strata_ir::quant::{midpoint_side, pack_planes, quantize_rows, row_bytes, ActBits};
use strata_ir::{Op, Tensor, TensorData};
use strata_runtime::kernels::{eval_op_with, QuantPath};
use strata_runtime::RuntimeError;
use strata_test_support::{f32t, values};

/// A quantized layer and everything the reference needs to recompute it.
struct Layer {
    op: Op,
    bits: u8,
    /// Activation bits of each plane count in `ks`.
    act_bits: Vec<u8>,
    ks: Vec<u8>,
    rows: usize,
    cols: usize,
    /// Original float weights `[R, K]` and bias `[R]`.
    w: Vec<f32>,
    /// `q_B`, row-major `[R, K]`, and per-row scales.
    codes: Vec<i32>,
    scales: Vec<f32>,
    planes: Tensor,
    alpha: Tensor,
    beta: Tensor,
    bias: Tensor,
    act: Tensor,
}

impl Layer {
    fn inputs<'a>(&'a self, x: &'a Tensor) -> [&'a Tensor; 6] {
        [
            x,
            &self.planes,
            &self.alpha,
            &self.beta,
            &self.bias,
            &self.act,
        ]
    }

    fn side(&self, t: &Tensor, k: u8) -> Vec<f32> {
        let j = self.ks.iter().position(|&c| c == k).unwrap();
        t.as_f32().unwrap()[j * self.rows..(j + 1) * self.rows].to_vec()
    }

    fn act_bits_of(&self, k: u8) -> u8 {
        self.act_bits[self.ks.iter().position(|&c| c == k).unwrap()]
    }

    fn act_of(&self, k: u8) -> (f32, f32) {
        let j = self.ks.iter().position(|&c| c == k).unwrap();
        let a = self.act.as_f32().unwrap();
        (a[2 * j], a[2 * j + 1])
    }
}

/// Builds a layer with random weights, side tables perturbed away from the midpoints (as
/// the quantizer's refinement would), random biases and activation parameters.
fn layer(
    kernel: BitplaneKernel,
    rows: usize,
    cols: usize,
    bits: u8,
    act_bits: u8,
    seed: u64,
) -> Layer {
    layer_with(kernel, rows, cols, bits, ActBits::Fixed(act_bits), seed)
}

/// [`layer`] with an activation-width rule (`ActBits::Planes`: W k A k).
fn layer_with(
    kernel: BitplaneKernel,
    rows: usize,
    cols: usize,
    bits: u8,
    rule: ActBits,
    seed: u64,
) -> Layer {
    let ks: Vec<u8> = (1..=bits).collect();
    let act_bits = rule.per_count(&ks);
    let s = ks.len();
    let w = values(rows * cols, seed);
    let (codes, scales) = quantize_rows(&w, rows, cols, bits).unwrap();
    let planes = Tensor::new(
        vec![bits as usize, rows, row_bytes(cols)],
        TensorData::U8(pack_planes(&codes, rows, cols, bits).unwrap()),
    )
    .unwrap();
    let jitter = values(4 * s * rows, seed + 1);
    let mut alpha = Vec::new();
    let mut beta = Vec::new();
    for (j, &k) in ks.iter().enumerate() {
        for r in 0..rows {
            let (a, b) = midpoint_side(scales[r], bits, k).unwrap();
            alpha.push(a * (1.0 + 0.1 * jitter[j * rows + r]));
            beta.push(b + 0.1 * scales[r] * jitter[s * rows + j * rows + r]);
        }
    }
    let bias = values(s * rows, seed + 2);
    let zs = values(s, seed + 3);
    let mut act = Vec::new();
    for (z, &act_bits) in zs.iter().zip(&act_bits) {
        // Inputs are in [-1, 1); scales around 2/2^A, zero points in ±2^(A-2).
        let scale = 2.0 / (1 << act_bits) as f32 * (1.0 + 0.2 * z);
        let zero = (z * (1 << (act_bits - 2)) as f32).round();
        act.extend([scale, zero]);
    }
    let spec = PlaneSpec::with_act_bits(bits, ks.clone(), act_bits.clone(), rows, cols);
    Layer {
        op: Op::Bitplane(Bitplane { kernel, spec }),
        bits,
        act_bits,
        ks,
        rows,
        cols,
        w,
        codes,
        scales,
        planes,
        alpha: f32t(&[s, rows], &alpha),
        beta: f32t(&[s, rows], &beta),
        bias: f32t(&[s, rows], &bias),
        act: f32t(&[s, 2], &act),
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_layer(
    c: usize,
    m: usize,
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dilations: &[usize],
    group: usize,
    seed: u64,
) -> Layer {
    let cols = c / group * kernel.iter().product::<usize>();
    let cv = Conv {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dilations.to_vec(),
        group,
        has_bias: false,
    };
    layer(BitplaneKernel::Conv(cv), m, cols, 8, 8, seed)
}

/// `u = x_q - zero` exactly as the note specifies, written independently of the runtime.
fn quantize_u(x: &[f32], scale: f32, zero: f32, act_bits: u8) -> Vec<i64> {
    let lo = -(1i64 << (act_bits - 1));
    let hi = (1i64 << (act_bits - 1)) - 1;
    x.iter()
        .map(|&v| {
            let r = (v / scale).round_ties_even() as i64;
            (r + zero as i64).clamp(lo, hi) - zero as i64
        })
        .collect()
}

/// Naive direct evaluation with i64 sums; `q_k = q_B >> (B - k)` from the codes, not the planes.
fn reference(l: &Layer, x: &Tensor, k: u8) -> Vec<f32> {
    let (scale, zero) = l.act_of(k);
    let u = quantize_u(x.as_f32().unwrap(), scale, zero, l.act_bits_of(k));
    let q: Vec<i64> = l
        .codes
        .iter()
        .map(|&v| (v >> (l.bits - k)) as i64)
        .collect();
    let (alpha, beta, bias) = (l.side(&l.alpha, k), l.side(&l.beta, k), l.side(&l.bias, k));
    let epi = |ch: usize, acc: i64, usum: i64| {
        (alpha[ch] * scale) * acc as f32 + (beta[ch] * scale) * usum as f32 + bias[ch]
    };
    let Op::Bitplane(b) = &l.op else {
        unreachable!()
    };
    match &b.kernel {
        BitplaneKernel::Linear => {
            let n = x.shape()[0];
            let mut out = Vec::new();
            for i in 0..n {
                let un = &u[i * l.cols..(i + 1) * l.cols];
                let usum: i64 = un.iter().sum();
                for ch in 0..l.rows {
                    let acc: i64 = (0..l.cols).map(|j| q[ch * l.cols + j] * un[j]).sum();
                    out.push(epi(ch, acc, usum));
                }
            }
            out
        }
        BitplaneKernel::Conv(cv) => {
            let xs = x.shape();
            let d = xs.len() - 2;
            let (n, c) = (xs[0], xs[1]);
            let in_sp = &xs[2..];
            let out_sp: Vec<usize> = (0..d)
                .map(|j| {
                    let span = (cv.kernel[j] - 1) * cv.dilations[j] + 1;
                    (in_sp[j] + cv.pads[j] + cv.pads[d + j] - span) / cv.strides[j] + 1
                })
                .collect();
            let (cg, mg) = (c / cv.group, l.rows / cv.group);
            let kprod: usize = cv.kernel.iter().product();
            let p_in: usize = in_sp.iter().product();
            let p_out: usize = out_sp.iter().product();
            let unravel = |mut i: usize, dims: &[usize]| {
                let mut v = vec![0usize; dims.len()];
                for j in (0..dims.len()).rev() {
                    v[j] = i % dims[j];
                    i /= dims[j];
                }
                v
            };
            let mut out = Vec::new();
            for i in 0..n {
                for ch in 0..l.rows {
                    let gi = ch / mg;
                    for p in 0..p_out {
                        let o = unravel(p, &out_sp);
                        let (mut acc, mut usum) = (0i64, 0i64);
                        for ci in 0..cg {
                            for kk in 0..kprod {
                                let kv = unravel(kk, &cv.kernel);
                                let mut flat = 0usize;
                                let mut inside = true;
                                for j in 0..d {
                                    let pos = (o[j] * cv.strides[j] + kv[j] * cv.dilations[j])
                                        as isize
                                        - cv.pads[j] as isize;
                                    if pos < 0 || pos as usize >= in_sp[j] {
                                        inside = false;
                                    } else {
                                        flat = flat * in_sp[j] + pos as usize;
                                    }
                                }
                                let uv = if inside {
                                    u[(i * c + gi * cg + ci) * p_in + flat]
                                } else {
                                    0
                                };
                                acc += q[ch * l.cols + ci * kprod + kk] * uv;
                                usum += uv;
                            }
                        }
                        out.push(epi(ch, acc, usum));
                    }
                }
            }
            out
        }
    }
}

fn run(l: &Layer, x: &Tensor, k: Option<u8>, path: QuantPath) -> Result<Tensor, RuntimeError> {
    eval_op_with(&l.op, &l.inputs(x), k, path).map(|mut v| v.remove(0))
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, &x| m.max(x.abs()))
}

/// For every plane count: integer path bitwise equal to the reference, float path within
/// float rounding of it (relative to the output magnitude).
fn check_layer(l: &Layer, x: &Tensor) {
    for &k in &l.ks {
        let int = run(l, x, Some(k), QuantPath::Integer).unwrap();
        let want = reference(l, x, k);
        let got = int.as_f32().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "k={k} element {i}: {a} vs {b}");
        }
        let flt = run(l, x, Some(k), QuantPath::Float).unwrap();
        assert_eq!(flt.shape(), int.shape());
        let mag = max_abs(got).max(1e-3);
        let diff = got
            .iter()
            .zip(flt.as_f32().unwrap())
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 1e-4 * mag,
            "k={k}: float path differs by {diff} (magnitude {mag})"
        );
    }
}

#[test]
fn linear_matches_reference_at_every_k() {
    for (i, &cols) in [1usize, 63, 64, 65, 200].iter().enumerate() {
        let l = layer(BitplaneKernel::Linear, 7, cols, 8, 8, 10 + i as u64);
        let x = f32t(&[3, cols], &values(3 * cols, 99 + i as u64));
        check_layer(&l, &x);
    }
    // Narrower codes and activations.
    let l = layer(BitplaneKernel::Linear, 5, 70, 4, 6, 7);
    let x = f32t(&[2, 70], &values(140, 8));
    check_layer(&l, &x);
}

/// W k A k: every plane count quantizes its input to its own width, bit-exactly as the
/// reference with `max(k, 2)`-bit codes, on the integer and the float path.
#[test]
fn wkak_layers_match_reference_at_every_k() {
    let l = layer_with(BitplaneKernel::Linear, 6, 70, 8, ActBits::Planes, 71);
    check_layer(&l, &f32t(&[3, 70], &values(210, 72)));
    let cv = Conv {
        kernel: vec![3, 3],
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        group: 1,
        has_bias: false,
    };
    let l = layer_with(BitplaneKernel::Conv(cv), 5, 27, 8, ActBits::Planes, 73);
    check_layer(&l, &f32t(&[2, 3, 5, 5], &values(150, 74)));
}

/// A 1×1 linear layer's output is an affine function of its single input code, so the number
/// of distinct outputs over inputs that overrun the range is the number of activation codes:
/// exactly `2^max(k, 2)` under W k A k (not 256).
#[test]
fn wkak_integer_path_uses_k_bit_codes() {
    let l = layer_with(BitplaneKernel::Linear, 1, 1, 8, ActBits::Planes, 81);
    let n = 2000;
    let xs: Vec<f32> = (0..n).map(|i| -4.0 + 8.0 * i as f32 / n as f32).collect();
    let x = f32t(&[n, 1], &xs);
    for &k in &l.ks {
        let y = run(&l, &x, Some(k), QuantPath::Integer).unwrap();
        let mut distinct: Vec<u32> = y.as_f32().unwrap().iter().map(|v| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let a = k.max(2);
        assert_eq!(
            distinct.len(),
            1 << a,
            "k={k}: {} distinct outputs",
            distinct.len()
        );
    }
}

#[test]
fn conv_matches_reference_at_every_k() {
    // 2-D grouped, strided, dilated, asymmetric pads.
    let l = conv_layer(4, 6, &[3, 2], &[2, 1], &[1, 0, 0, 1], &[1, 2], 2, 1);
    check_layer(&l, &f32t(&[2, 4, 7, 6], &values(2 * 4 * 7 * 6, 2)));
    // 1-D with a stride larger than the overlap.
    let l = conv_layer(3, 5, &[4], &[3], &[2, 1], &[1], 1, 3);
    check_layer(&l, &f32t(&[3, 3, 11], &values(99, 4)));
    // Depthwise with channel multiplier 2, padded.
    let l = conv_layer(4, 8, &[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 4, 5);
    check_layer(&l, &f32t(&[1, 4, 5, 5], &values(100, 6)));
    // 3-D.
    let l = conv_layer(
        2,
        3,
        &[2, 2, 2],
        &[1, 1, 2],
        &[0, 1, 0, 0, 0, 1],
        &[1, 1, 1],
        1,
        7,
    );
    check_layer(&l, &f32t(&[1, 2, 4, 4, 3], &values(96, 8)));
    // K = 16·3·3 = 144 spans three words per plane row.
    let l = conv_layer(16, 4, &[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, 9);
    check_layer(&l, &f32t(&[2, 16, 4, 4], &values(512, 10)));
    // Pointwise (1×1, stride 1, unpadded: no im2col), an odd channel count, and grouped.
    let l = conv_layer(5, 4, &[1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, 11);
    check_layer(&l, &f32t(&[2, 5, 3, 4], &values(120, 12)));
    let l = conv_layer(6, 4, &[1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 2, 13);
    check_layer(&l, &f32t(&[1, 6, 5, 3], &values(90, 14)));
}

/// A reduction longer than the overflow-safe i32 chunk (43,690 products for 8-plane codes
/// and 8-bit activations): 4,901 channels × 3 × 3 = 44,109 products, summed per chunk into
/// i64, with an odd channel count and padding.
#[test]
fn conv_reductions_past_the_i32_chunk_are_exact() {
    let l = conv_layer(4901, 2, &[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, 13);
    check_layer(&l, &f32t(&[1, 4901, 3, 3], &values(4901 * 9, 14)));
    // The byte panel's chunk is 10,950 quads of four channels' taps: 7,401 channels × 9
    // taps = 16,659 quads, the last one three channels short.
    let l = conv_layer(7401, 2, &[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, 15);
    check_layer(&l, &f32t(&[1, 7401, 3, 3], &values(7401 * 9, 16)));
}

/// Layers with at most 8 output positions per image run on packed 2/4/8-bit codes (the
/// same integers): a strided padded convolution with 2×2 outputs, a depthwise one, a 1-D one
/// with 3 outputs, one with a single output whose reduction (4,901·9) spans two i32 chunks
/// of the packed kernel, and positions past one sweep of four.
#[test]
fn few_position_convs_on_packed_codes_match_reference() {
    let l = conv_layer(16, 6, &[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], 1, 21);
    check_layer(&l, &f32t(&[2, 16, 4, 4], &values(512, 22)));
    let l = conv_layer(4, 8, &[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], 4, 23);
    check_layer(&l, &f32t(&[1, 4, 3, 3], &values(36, 24)));
    let l = conv_layer(3, 5, &[4], &[3], &[2, 1], &[1], 1, 25);
    check_layer(&l, &f32t(&[1, 3, 7], &values(21, 26)));
    let l = conv_layer(4901, 2, &[3, 3], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, 27);
    check_layer(&l, &f32t(&[1, 4901, 3, 3], &values(4901 * 9, 28)));
    let l = conv_layer(5, 3, &[2, 2], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, 29);
    check_layer(&l, &f32t(&[1, 5, 3, 4], &values(60, 30)));
}

/// A zero point outside `i8` (allowed up to `±2^A`) cannot be the code of Conv padding in
/// the packed kernels: such layers keep the int16 kernels, with the same integers.
#[test]
fn zero_points_past_i8_use_the_int16_kernels() {
    for zero in [-256.0f32, -129.0, -128.0, 127.0, 128.0, 256.0] {
        let with_zero = |mut l: Layer| {
            let mut a = l.act.as_f32().unwrap().to_vec();
            a.iter_mut().skip(1).step_by(2).for_each(|z| *z = zero);
            l.act = f32t(&[l.ks.len(), 2], &a);
            l
        };
        let l = with_zero(layer(BitplaneKernel::Linear, 7, 130, 8, 8, 31));
        check_layer(&l, &f32t(&[2, 130], &values(260, 32)));
        let l = with_zero(conv_layer(
            6,
            4,
            &[3, 3],
            &[2, 2],
            &[1, 1, 1, 1],
            &[1, 1],
            1,
            33,
        ));
        check_layer(&l, &f32t(&[1, 6, 4, 4], &values(96, 34)));
    }
}

#[test]
fn full_precision_approaches_fp32() {
    // k = B, alpha = s, beta = 0, and inputs on the activation grid: the only error left is
    // weight rounding, at most s_c/2 per weight.
    let (rows, cols, n) = (6, 50, 4);
    let mut l = layer(BitplaneKernel::Linear, rows, cols, 8, 8, 21);
    let scale = 1.0 / 64.0;
    let ks = l.ks.len();
    let mut alpha = vec![0.0; ks * rows];
    alpha[(ks - 1) * rows..].copy_from_slice(&l.scales);
    l.alpha = f32t(&[ks, rows], &alpha);
    l.beta = f32t(&[ks, rows], &vec![0.0; ks * rows]);
    let mut act = l.act.as_f32().unwrap().to_vec();
    act[2 * (ks - 1)] = scale;
    act[2 * (ks - 1) + 1] = 0.0;
    l.act = f32t(&[ks, 2], &act);
    let x: Vec<f32> = values(n * cols, 22)
        .iter()
        .map(|v| (v * 100.0).round() * scale)
        .collect();
    let xt = f32t(&[n, cols], &x);
    let y = run(&l, &xt, Some(8), QuantPath::Integer).unwrap();
    let bias = l.side(&l.bias, 8);
    let (mut worst, mut mag) = (0.0f32, 0.0f32);
    for i in 0..n {
        #[allow(clippy::needless_range_loop)]
        for r in 0..rows {
            let xr = &x[i * cols..(i + 1) * cols];
            let fp: f32 = (0..cols).map(|j| l.w[r * cols + j] * xr[j]).sum::<f32>() + bias[r];
            let bound: f32 = xr.iter().map(|v| v.abs()).sum::<f32>() * l.scales[r] / 2.0 + 1e-5;
            let err = (y.as_f32().unwrap()[i * rows + r] - fp).abs();
            assert!(err <= bound, "[{i},{r}]: {err} > {bound}");
            worst = worst.max(err);
            mag = mag.max(fp.abs());
        }
    }
    assert!(
        worst < 0.01 * mag,
        "error {worst} vs output magnitude {mag}"
    );
}

#[test]
fn default_plane_count_and_truncated_planes() {
    let mut l = layer(BitplaneKernel::Linear, 4, 30, 8, 8, 31);
    // Side tables for k = 2, 4, 8 only.
    let keep = [1usize, 3, 7];
    let pick = |t: &Tensor, width: usize| {
        let v = t.as_f32().unwrap();
        let rows: Vec<f32> = keep
            .iter()
            .flat_map(|&j| v[j * width..(j + 1) * width].to_vec())
            .collect();
        f32t(&[3, width], &rows)
    };
    l.alpha = pick(&l.alpha, 4);
    l.beta = pick(&l.beta, 4);
    l.bias = pick(&l.bias, 4);
    l.act = pick(&l.act, 2);
    l.ks = vec![2, 4, 8];
    if let Op::Bitplane(b) = &mut l.op {
        b.spec.plane_counts = vec![2, 4, 8];
    }
    let x = f32t(&[2, 30], &values(60, 32));
    let full8 = run(&l, &x, Some(8), QuantPath::Integer).unwrap();
    let full4 = run(&l, &x, Some(4), QuantPath::Integer).unwrap();
    assert_eq!(run(&l, &x, None, QuantPath::Integer).unwrap(), full8);

    // Keep only the first 5 planes: the default becomes 4 and the result is unchanged (the
    // prefix property at the op level), while asking for 8 fails.
    let bytes = match l.planes.data() {
        TensorData::U8(b) => b[..5 * 4 * 8].to_vec(),
        _ => unreachable!(),
    };
    l.planes = Tensor::new(vec![5, 4, 8], TensorData::U8(bytes)).unwrap();
    assert_eq!(run(&l, &x, None, QuantPath::Integer).unwrap(), full4);
    assert_eq!(run(&l, &x, Some(4), QuantPath::Integer).unwrap(), full4);
    assert_eq!(
        run(&l, &x, Some(8), QuantPath::Integer).unwrap_err(),
        RuntimeError::PlanesUnavailable { k: 8, available: 5 }
    );
    assert_eq!(
        run(&l, &x, Some(3), QuantPath::Float).unwrap_err(),
        RuntimeError::NoSideTable {
            k: 3,
            plane_counts: vec![2, 4, 8]
        }
    );
    assert_eq!(
        run(&l, &x, Some(0), QuantPath::Integer).unwrap_err(),
        RuntimeError::NoSideTable {
            k: 0,
            plane_counts: vec![2, 4, 8]
        }
    );
    // One plane: nothing can run by default.
    let bytes = match l.planes.data() {
        TensorData::U8(b) => b[..32].to_vec(),
        _ => unreachable!(),
    };
    l.planes = Tensor::new(vec![1, 4, 8], TensorData::U8(bytes)).unwrap();
    assert_eq!(
        run(&l, &x, None, QuantPath::Integer).unwrap_err(),
        RuntimeError::NoRunnablePlanes {
            available: 1,
            plane_counts: vec![2, 4, 8]
        }
    );
}

#[test]
fn bad_side_tables_and_inputs_are_typed_errors() {
    let l = layer(BitplaneKernel::Linear, 3, 10, 8, 8, 41);
    let x = f32t(&[1, 10], &values(10, 42));
    let with_act = |scale: f32, zero: f32| {
        let mut a = l.act.as_f32().unwrap().to_vec();
        a[2 * 7] = scale;
        a[2 * 7 + 1] = zero;
        let act = f32t(&[8, 2], &a);
        let mut ins = l.inputs(&x);
        ins[5] = &act;
        eval_op_with(&l.op, &ins, Some(8), QuantPath::Integer).unwrap_err()
    };
    for (scale, zero) in [
        (0.0, 0.0),
        (-1.0, 0.0),
        (f32::NAN, 0.0),
        (f32::INFINITY, 0.0),
        (0.1, 0.5),
        (0.1, 257.0),
        (0.1, f32::NAN),
    ] {
        assert!(
            matches!(with_act(scale, zero), RuntimeError::SideTable { k: 8, .. }),
            "scale {scale} zero {zero}"
        );
    }
    // Wrong input shape, wrong planes element type, wrong arity.
    let bad_x = f32t(&[1, 11], &values(11, 43));
    assert!(matches!(
        run(&l, &bad_x, None, QuantPath::Integer).unwrap_err(),
        RuntimeError::Shape {
            op: "bitplane_linear",
            ..
        }
    ));
    let f_planes = f32t(&[8, 3, 8], &vec![0.0; 192]);
    let mut ins = l.inputs(&x);
    ins[1] = &f_planes;
    assert!(matches!(
        eval_op_with(&l.op, &ins, None, QuantPath::Integer).unwrap_err(),
        RuntimeError::Shape { .. }
    ));
    assert!(matches!(
        eval_op_with(&l.op, &ins[..5], None, QuantPath::Integer).unwrap_err(),
        RuntimeError::Arity { got: 5, .. }
    ));
}

#[test]
fn integer_path_is_deterministic_across_batches() {
    // Each sample's output does not depend on the batch it runs in (parallel over the batch).
    let l = conv_layer(3, 4, &[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, 51);
    let x = values(5 * 3 * 6 * 6, 52);
    let all = run(&l, &f32t(&[5, 3, 6, 6], &x), Some(5), QuantPath::Integer).unwrap();
    let per = 4 * 36;
    for i in 0..5 {
        let one = run(
            &l,
            &f32t(&[1, 3, 6, 6], &x[i * 108..(i + 1) * 108]),
            Some(5),
            QuantPath::Integer,
        )
        .unwrap();
        assert_eq!(
            one.as_f32().unwrap(),
            &all.as_f32().unwrap()[i * per..(i + 1) * per]
        );
    }
}

mod graphs {
    use super::*;
    use std::collections::BTreeMap;
    use strata_ir::{DType, Dim, Graph, Shape, TensorType, ValueRef};
    use strata_runtime::{run, run_with, RunOptions, Session};

    /// `x → fc1 (bit-plane) → relu → fc2 (bit-plane)`, with the layers kept for reference.
    fn mlp() -> (Graph, Layer, Layer) {
        let l1 = layer(BitplaneKernel::Linear, 12, 20, 8, 8, 61);
        let l2 = layer(BitplaneKernel::Linear, 5, 12, 8, 8, 62);
        let mut g = Graph::new("mlp");
        let x = g.add_input(
            "x",
            TensorType::new(DType::F32, Shape(vec![Dim::Batch, Dim::Known(20)])),
        );
        let add = |g: &mut Graph, name: &str, l: &Layer, input: ValueRef| {
            let mut ins = vec![input];
            for (i, t) in [&l.planes, &l.alpha, &l.beta, &l.bias, &l.act]
                .iter()
                .enumerate()
            {
                ins.push(g.add_constant(format!("{name}.{i}"), (*t).clone()));
            }
            strata_test_support::op(g, name, l.op.clone(), &ins)
        };
        let h = add(&mut g, "fc1", &l1, x);
        let relu = Op::Unary(strata_ir::ops::UnaryOp::Relu);
        let r = strata_test_support::op(&mut g, "relu", relu, &[h]);
        let y = add(&mut g, "fc2", &l2, r);
        g.set_outputs(vec![y]);
        (g, l1, l2)
    }

    /// The same network evaluated op by op at the given plane counts.
    fn manual(l1: &Layer, l2: &Layer, x: &Tensor, k1: u8, k2: u8, path: QuantPath) -> Tensor {
        let h = super::run(l1, x, Some(k1), path).unwrap();
        let r = f32t(
            h.shape(),
            &h.as_f32()
                .unwrap()
                .iter()
                .map(|v| v.max(0.0))
                .collect::<Vec<_>>(),
        );
        super::run(l2, &r, Some(k2), path).unwrap()
    }

    #[test]
    fn uniform_and_per_layer_plane_counts() {
        let (g, l1, l2) = mlp();
        let x = f32t(&[3, 20], &values(60, 63));
        // Default: the largest plane count, integer path.
        assert_eq!(
            run(&g, std::slice::from_ref(&x)).unwrap()[0],
            manual(&l1, &l2, &x, 8, 8, QuantPath::Integer)
        );
        for path in [QuantPath::Integer, QuantPath::Float] {
            let uniform = RunOptions {
                planes: Some(3),
                path,
                ..Default::default()
            };
            assert_eq!(
                run_with(&g, std::slice::from_ref(&x), &uniform).unwrap()[0],
                manual(&l1, &l2, &x, 3, 3, path)
            );
            // Per-layer entries override the uniform count, layer by layer.
            let mixed = RunOptions {
                planes: Some(3),
                per_layer: BTreeMap::from([("fc2".to_string(), 7)]),
                path,
            };
            let got = run_with(&g, std::slice::from_ref(&x), &mixed).unwrap();
            assert_eq!(got[0], manual(&l1, &l2, &x, 3, 7, path));
            assert_ne!(got[0], manual(&l1, &l2, &x, 3, 3, path));
        }
        let per_layer = RunOptions {
            per_layer: BTreeMap::from([("fc1".to_string(), 2), ("fc2".to_string(), 6)]),
            ..Default::default()
        };
        assert_eq!(
            run_with(&g, std::slice::from_ref(&x), &per_layer).unwrap()[0],
            manual(&l1, &l2, &x, 2, 6, QuantPath::Integer)
        );
    }

    #[test]
    fn a_session_prepares_each_layer_and_count_once() {
        // Repeated runs through one session give the layer-by-layer outputs bit for bit, and
        // rebuild each (layer, plane count)'s codes once: the float path and later rounds
        // reuse them, a new per-layer count adds one entry.
        let (g, l1, l2) = mlp();
        let x = f32t(&[3, 20], &values(60, 66));
        let session = Session::new(&g);
        assert!(session.prepared().is_empty());
        for round in 0..2 {
            for (k, path) in [
                (8u8, QuantPath::Integer),
                (3, QuantPath::Integer),
                (3, QuantPath::Float),
            ] {
                let opts = RunOptions {
                    planes: Some(k),
                    path,
                    ..Default::default()
                };
                let got = session.run_with(std::slice::from_ref(&x), &opts).unwrap();
                assert_eq!(
                    got[0],
                    manual(&l1, &l2, &x, k, k, path),
                    "round {round} k {k}"
                );
            }
            assert_eq!(session.prepared().len(), 4, "round {round}");
        }
        let mixed = RunOptions {
            per_layer: BTreeMap::from([("fc1".to_string(), 2)]),
            ..Default::default()
        };
        let got = session.run_with(std::slice::from_ref(&x), &mixed).unwrap();
        assert_eq!(got[0], manual(&l1, &l2, &x, 2, 8, QuantPath::Integer));
        assert_eq!(session.prepared().len(), 5);
    }

    /// One bit-plane layer over input `x`; its planes are a second graph input when
    /// `planes_input`, else a constant.
    fn one_layer(l: &Layer, x: TensorType, planes_input: bool) -> Graph {
        let mut g = Graph::new("one");
        let xi = g.add_input("x", x);
        let p = if planes_input {
            let ty = TensorType::known(DType::U8, l.planes.shape());
            g.add_input("planes", ty)
        } else {
            g.add_constant("planes", l.planes.clone())
        };
        let mut ins = vec![xi, p];
        for (i, t) in [&l.alpha, &l.beta, &l.bias, &l.act].iter().enumerate() {
            ins.push(g.add_constant(format!("side{i}"), (*t).clone()));
        }
        let y = strata_test_support::op(&mut g, "layer", l.op.clone(), &ins);
        g.set_outputs(vec![y]);
        g
    }

    #[test]
    fn a_session_keeps_conv_panels_and_never_caches_input_planes() {
        let l = conv_layer(5, 6, &[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, 67);
        let ty = || {
            TensorType::new(
                DType::F32,
                Shape(vec![
                    Dim::Batch,
                    Dim::Known(5),
                    Dim::Known(7),
                    Dim::Known(7),
                ]),
            )
        };
        let x = f32t(&[2, 5, 7, 7], &values(2 * 5 * 49, 68));
        let g = one_layer(&l, ty(), false);
        let session = Session::new(&g);
        for k in [8u8, 4, 8, 4] {
            let opts = RunOptions {
                planes: Some(k),
                ..Default::default()
            };
            let got = session.run_with(std::slice::from_ref(&x), &opts).unwrap();
            assert_eq!(
                got[0],
                super::run(&l, &x, Some(k), QuantPath::Integer).unwrap()
            );
        }
        assert_eq!(session.prepared().len(), 2);
        // Planes fed as an input may differ from call to call: computed every time, never kept.
        let other = conv_layer(5, 6, &[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, 69);
        let g = one_layer(&l, ty(), true);
        let session = Session::new(&g);
        let opts = RunOptions {
            planes: Some(6),
            ..Default::default()
        };
        for planes in [&l.planes, &other.planes, &l.planes] {
            let inputs = [x.clone(), planes.clone()];
            let got = session.run_with(&inputs, &opts).unwrap();
            assert_eq!(got[0], run_with(&g, &inputs, &opts).unwrap()[0]);
        }
        let with = |p: &Tensor| session.run_with(&[x.clone(), p.clone()], &opts).unwrap();
        assert_ne!(with(&l.planes), with(&other.planes));
        assert!(session.prepared().is_empty());
    }

    #[test]
    fn large_batches_match_per_sample_runs() {
        // Big enough for the interpreter to split the batch into chunks.
        let (g, l1, l2) = mlp();
        let n = 300;
        let x = f32t(&[n, 20], &values(n * 20, 64));
        let opts = RunOptions {
            planes: Some(5),
            ..Default::default()
        };
        let got = run_with(&g, std::slice::from_ref(&x), &opts).unwrap();
        assert_eq!(got[0], manual(&l1, &l2, &x, 5, 5, QuantPath::Integer));
    }

    #[test]
    fn errors_name_the_node_and_plane_count() {
        let (g, _, _) = mlp();
        let x = f32t(&[1, 20], &values(20, 65));
        let bad = RunOptions {
            per_layer: BTreeMap::from([("fc2".to_string(), 9)]),
            ..Default::default()
        };
        let err = run_with(&g, std::slice::from_ref(&x), &bad).unwrap_err();
        match &err {
            RuntimeError::Node { node, op, source } => {
                assert_eq!((node.as_str(), *op), ("fc2", "bitplane_linear"));
                assert!(matches!(**source, RuntimeError::NoSideTable { k: 9, .. }));
            }
            other => panic!("{other}"),
        }
        assert!(
            err.to_string().contains("fc2") && err.to_string().contains('9'),
            "{err}"
        );
        for name in ["relu", "nope"] {
            let bad = RunOptions {
                per_layer: BTreeMap::from([(name.to_string(), 2)]),
                ..Default::default()
            };
            assert_eq!(
                run_with(&g, std::slice::from_ref(&x), &bad).unwrap_err(),
                RuntimeError::UnknownLayer { node: name.into() }
            );
        }
    }
}

/// Every other test of this file again, in child processes whose kernels are capped
/// (`STRATA_ISA`) at AVX2 and at portable code: one machine then checks each dispatch path
/// against the reference at layer level (on a VNNI CPU the uncapped run takes the VNNI tiles
/// only; capped at AVX2 it takes the `vpmaddubsw` byte tile for k ≤ 7 and the `vpmaddwd`
/// panel at 8).
#[test]
fn layer_tests_pass_under_every_isa_cap() {
    let exe = std::env::current_exe().unwrap();
    for cap in ["avx2", "portable"] {
        let out = std::process::Command::new(&exe)
            .env(strata_runtime::isa::ISA_ENV, cap)
            .args([
                "--skip",
                "layer_tests_pass_under_every_isa_cap",
                "--test-threads",
                "2",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}={cap}:\n{stdout}\n{}",
            strata_runtime::isa::ISA_ENV,
            String::from_utf8_lossy(&out.stderr)
        );
        // The child ran the tests (a filter that matched nothing would pass too).
        assert!(
            stdout.contains(" passed;") && !stdout.contains(" 0 passed;"),
            "{stdout}"
        );
    }
}
