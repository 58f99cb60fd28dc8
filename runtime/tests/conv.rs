use strata_ir::ops::{Conv, ConvTranspose};
use strata_ir::{Op, Tensor};
use strata_runtime::RuntimeError;
use strata_test_support::*;

/// A shape or attribute list in a case table.
type Axes = &'static [usize];

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for j in (0..shape.len()).rev() {
        idx[j] = i % shape[j];
        i /= shape[j];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// The position `o·stride + k·dilation − pad_begin` on every spatial axis, or `None` where it
/// falls into the padding (outside `0..sizes`): the window arithmetic of both references.
fn tap(
    o: &[usize],
    k: &[usize],
    [strides, dilations, pads]: [&[usize]; 3],
    sizes: &[usize],
) -> Option<Vec<usize>> {
    (0..sizes.len())
        .map(|j| {
            let ix = (o[j] * strides[j] + k[j] * dilations[j]).checked_sub(pads[j])?;
            (ix < sizes[j]).then_some(ix)
        })
        .collect()
}

/// What both references start from: the f32 data of `x` and `w`, the kernel size (product of
/// `w`'s spatial axes), the plane size of `out_sp` and a zeroed output of `planes` planes.
fn frame<'a>(
    x: &'a Tensor,
    w: &'a Tensor,
    planes: usize,
    out_sp: &[usize],
) -> (&'a [f32], &'a [f32], usize, usize, Vec<f32>) {
    let kprod = w.shape()[2..].iter().product();
    let pout: usize = out_sp.iter().product();
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    (xv, wv, kprod, pout, vec![0.0; planes * pout])
}

/// Direct N-d convolution, written from the ONNX definition.
fn naive_conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, c: &Conv) -> (Vec<usize>, Vec<f32>) {
    let (xs, ws) = (x.shape(), w.shape());
    let d = xs.len() - 2;
    let (n, ch, m) = (xs[0], xs[1], ws[0]);
    let cg = ch / c.group;
    let mg = m / c.group;
    let out_sp: Vec<usize> = (0..d)
        .map(|j| {
            (xs[2 + j] + c.pads[j] + c.pads[d + j] - ((ws[2 + j] - 1) * c.dilations[j] + 1))
                / c.strides[j]
                + 1
        })
        .collect();
    let ksp = &ws[2..];
    let (xv, wv, kprod, pout, mut out) = frame(x, w, n * m, &out_sp);
    for ni in 0..n {
        for mi in 0..m {
            let g = mi / mg;
            for p in 0..pout {
                let o = unravel(p, &out_sp);
                let mut acc = b.map(|b| b.as_f32().unwrap()[mi]).unwrap_or(0.0);
                for ci in 0..cg {
                    for kk in 0..kprod {
                        let k = unravel(kk, ksp);
                        let axes = [&c.strides[..], &c.dilations, &c.pads];
                        let Some(pos) = tap(&o, &k, axes, &xs[2..]) else {
                            continue;
                        };
                        let xi = (ni * ch + g * cg + ci) * xs[2..].iter().product::<usize>()
                            + ravel(&pos, &xs[2..]);
                        let wi = (mi * cg + ci) * kprod + kk;
                        acc += xv[xi] * wv[wi];
                    }
                }
                out[(ni * m + mi) * pout + p] = acc;
            }
        }
    }
    let mut shape = vec![n, m];
    shape.extend(out_sp);
    (shape, out)
}

/// Transposed convolution by scattering every input element through the kernel.
fn naive_conv_transpose(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    c: &ConvTranspose,
) -> (Vec<usize>, Vec<f32>) {
    let (xs, ws) = (x.shape(), w.shape());
    let d = xs.len() - 2;
    let (n, ch) = (xs[0], xs[1]);
    let mg = ws[1];
    let m = mg * c.group;
    let cg = ch / c.group;
    let ksp = &ws[2..];
    let out_sp: Vec<usize> = (0..d)
        .map(|j| {
            c.strides[j] * (xs[2 + j] - 1) + c.output_padding[j] + (ksp[j] - 1) * c.dilations[j] + 1
                - c.pads[j]
                - c.pads[d + j]
        })
        .collect();
    let pin: usize = xs[2..].iter().product();
    let (xv, wv, kprod, pout, mut out) = frame(x, w, n * m, &out_sp);
    for ni in 0..n {
        for mi in 0..m {
            let bias = b.map(|b| b.as_f32().unwrap()[mi]).unwrap_or(0.0);
            for p in 0..pout {
                out[(ni * m + mi) * pout + p] = bias;
            }
        }
        for ci in 0..ch {
            let g = ci / cg;
            for p in 0..pin {
                let i = unravel(p, &xs[2..]);
                let xval = xv[(ni * ch + ci) * pin + p];
                for mo in 0..mg {
                    for kk in 0..kprod {
                        let k = unravel(kk, ksp);
                        let axes = [&c.strides[..], &c.dilations, &c.pads];
                        if let Some(pos) = tap(&i, &k, axes, &out_sp) {
                            let oc = g * mg + mo;
                            out[(ni * m + oc) * pout + ravel(&pos, &out_sp)] +=
                                xval * wv[(ci * mg + mo) * kprod + kk];
                        }
                    }
                }
            }
        }
    }
    let mut shape = vec![n, m];
    shape.extend(out_sp);
    (shape, out)
}

/// Seeded `x` and `w` of `shapes` (seeds `seed`, `seed + 10`) and, with `bias_len`, a bias
/// (seed `seed + 20`): `op` on them must match the `naive` reference.
fn matches_naive(
    op: &Op,
    shapes: [&[usize]; 2],
    bias_len: Option<usize>,
    seed: u64,
    naive: impl Fn(&Tensor, &Tensor, Option<&Tensor>) -> (Vec<usize>, Vec<f32>),
) {
    let x = rand_tensor(shapes[0], seed);
    let w = rand_tensor(shapes[1], seed + 10);
    let b = bias_len.map(|n| rand_tensor(&[n], seed + 20));
    let mut inputs = vec![&x, &w];
    inputs.extend(&b);
    let y = eval1(op, &inputs);
    let (shape, expected) = naive(&x, &w, b.as_ref());
    assert_close(&y, &shape, &expected, 1e-5);
}

#[test]
fn conv_2d_hand_computed() {
    // ONNX test_basic_conv_with_padding: 5x5 ramp, 3x3 ones kernel, pad 1.
    let x = f32t(
        &[1, 1, 5, 5],
        &(0..25).map(|v| v as f32).collect::<Vec<_>>(),
    );
    let w = f32t(&[1, 1, 3, 3], &[1.0; 9]);
    let c = conv_attrs(&[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, false);
    let y = eval1(&Op::Conv(c.clone()), &[&x, &w]);
    #[rustfmt::skip]
    let expected = [
        12., 21., 27., 33., 24.,
        33., 54., 63., 72., 51.,
        63., 99., 108., 117., 81.,
        93., 144., 153., 162., 111.,
        72., 111., 117., 123., 84.,
    ];
    assert_close(&y, &[1, 1, 5, 5], &expected, 0.0);
    // Without padding, strided: test_conv_with_strides_no_padding.
    let x = f32t(
        &[1, 1, 7, 5],
        &(0..35).map(|v| v as f32).collect::<Vec<_>>(),
    );
    let c = conv_attrs(&[3, 3], &[2, 2], &[0, 0, 0, 0], &[1, 1], 1, false);
    let y = eval1(&Op::Conv(c), &[&x, &w]);
    assert_close(&y, &[1, 1, 3, 2], &[54., 72., 144., 162., 234., 252.], 0.0);
}

#[test]
fn conv_matches_naive_across_configurations() {
    // (input shape, weight shape, strides, pads, dilations, group, bias)
    type Case = (Axes, Axes, Axes, Axes, Axes, usize, bool);
    #[rustfmt::skip]
    let cases: [Case; 7] = [
        (&[2, 3, 9], &[4, 3, 3], &[2], &[1, 2], &[1], 1, true),
        (&[3, 4, 8, 7], &[6, 2, 3, 2], &[1, 2], &[1, 0, 2, 1], &[2, 1], 2, true),
        (&[2, 6, 7, 7], &[6, 1, 3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], 6, false),
        (&[1, 2, 5, 6, 4], &[3, 2, 2, 3, 2], &[1, 2, 1], &[0, 1, 1, 1, 0, 0], &[1, 1, 2], 1, true),
        (&[2, 4, 6, 6], &[8, 4, 1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, true),
        (&[2, 4, 6, 6], &[4, 4, 1, 1], &[2, 2], &[1, 1, 1, 1], &[1, 1], 1, false),
        (&[1, 1, 4, 4], &[1, 1, 3, 3], &[1, 1], &[3, 3, 3, 3], &[1, 1], 1, false),
    ];
    for (i, (xs, ws, s, p, d, g, bias)) in cases.into_iter().enumerate() {
        let c = conv_attrs(&ws[2..], s, p, d, g, bias);
        let bias_len = bias.then_some(ws[0]);
        let naive = |x: &_, w: &_, b: Option<&_>| naive_conv(x, w, b, &c);
        matches_naive(
            &Op::Conv(c.clone()),
            [xs, ws],
            bias_len,
            10 + i as u64,
            naive,
        );
    }
}

/// `conv_patches` is im2col for chosen output positions: each gathered patch, dotted with a
/// weight row of its group, gives the Conv's output at that position (of the mapped input),
/// on the same configurations as the naive reference (1-, 2-, 3-D, groups, depthwise,
/// strides, dilations, asymmetric pads, windows wholly in the padding).
#[test]
fn conv_patches_are_the_receptive_fields_of_the_chosen_positions() {
    type Case = (Axes, Axes, Axes, Axes, Axes, usize);
    #[rustfmt::skip]
    let cases: [Case; 7] = [
        (&[2, 3, 9], &[4, 3, 3], &[2], &[1, 2], &[1], 1),
        (&[3, 4, 8, 7], &[6, 2, 3, 2], &[1, 2], &[1, 0, 2, 1], &[2, 1], 2),
        (&[2, 6, 7, 7], &[6, 1, 3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], 6),
        (&[1, 2, 5, 6, 4], &[3, 2, 2, 3, 2], &[1, 2, 1], &[0, 1, 1, 1, 0, 0], &[1, 1, 2], 1),
        (&[2, 4, 6, 6], &[8, 4, 1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1),
        (&[2, 4, 6, 6], &[4, 4, 1, 1], &[2, 2], &[1, 1, 1, 1], &[1, 1], 1),
        (&[1, 1, 4, 4], &[1, 1, 3, 3], &[1, 1], &[3, 3, 3, 3], &[1, 1], 1),
    ];
    let map = |v: f32| 2.0 * v - 0.5;
    for (i, (xs, ws, s, p, d, g)) in cases.into_iter().enumerate() {
        let c = conv_attrs(&ws[2..], s, p, d, g, false);
        let x = rand_tensor(xs, 40 + i as u64);
        let w = rand_tensor(ws, 60 + i as u64);
        let mapped = f32t(
            xs,
            &x.as_f32()
                .unwrap()
                .iter()
                .map(|&v| map(v))
                .collect::<Vec<_>>(),
        );
        let y = eval1(&Op::Conv(c.clone()), &[&mapped, &w]);
        let (m, p_out) = (ws[0], y.shape()[2..].iter().product::<usize>());
        let positions = xs[0] * p_out;
        assert_eq!(
            strata_runtime::kernels::conv::conv_output_positions(&c, &x, &w).unwrap(),
            positions
        );
        // Every third position, in two calls appending to the same buffers; every position
        // but the first (each call starting or ending inside an image); the first image's
        // positions twice (repeated rows).
        let every_third: Vec<usize> = (0..positions).step_by(3).collect();
        let all_but_first: Vec<usize> = (1..positions).collect();
        let twice: Vec<usize> = (0..p_out).chain(0..p_out).collect();
        for rows in [every_third, all_but_first, twice] {
            let (first, second) = rows.split_at(rows.len() / 2);
            let mut out = vec![Vec::new(); g];
            for part in [first, second] {
                strata_runtime::kernels::conv::conv_patches(&c, &x, &w, part, map, &mut out)
                    .unwrap();
            }
            let cols: usize = ws[1..].iter().product();
            let (mg, wv, yv) = (m / g, w.as_f32().unwrap(), y.as_f32().unwrap());
            for (gi, patches) in out.iter().enumerate() {
                assert_eq!(patches.len(), rows.len() * cols, "case {i} group {gi}");
                for (patch, &r) in patches.chunks_exact(cols).zip(&rows) {
                    let (n, o) = (r / p_out, r % p_out);
                    for oc in gi * mg..(gi + 1) * mg {
                        let dot: f32 = patch
                            .iter()
                            .zip(&wv[oc * cols..(oc + 1) * cols])
                            .map(|(a, b)| a * b)
                            .sum();
                        let want = yv[(n * m + oc) * p_out + o];
                        assert!(
                            (dot - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "case {i} row {r} channel {oc}: {dot} vs {want}"
                        );
                    }
                }
            }
        }
        // A row past the output is an error, not a panic.
        let mut out = vec![Vec::new(); g];
        assert!(strata_runtime::kernels::conv::conv_patches(
            &c,
            &x,
            &w,
            &[positions],
            map,
            &mut out
        )
        .is_err());
    }
}

#[test]
fn conv_f64_matches_f32() {
    let x = rand_tensor(&[2, 2, 5, 5], 1);
    let w = rand_tensor(&[3, 2, 3, 3], 2);
    let c = conv_attrs(&[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, false);
    let c = Op::Conv(c);
    let y32 = eval1(&c, &[&x, &w]);
    let to64 = |t: &Tensor| {
        f64t(
            t.shape(),
            &t.as_f32()
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
        )
    };
    let y64 = eval1(&c, &[&to64(&x), &to64(&w)]);
    let v64: Vec<f32> = y64.to_f64_vec().iter().map(|&v| v as f32).collect();
    assert_close(&y32, &[2, 3, 5, 5], &v64, 1e-5);
}

#[test]
fn conv_errors() {
    let x = rand_tensor(&[1, 4, 5, 5], 1);
    let w = rand_tensor(&[2, 3, 3, 3], 2);
    let c = conv_attrs(&[3, 3], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
    // Channel mismatch.
    assert!(matches!(
        eval_err(&Op::Conv(c.clone()), &[&x, &w]),
        RuntimeError::Shape { op: "conv", .. }
    ));
    // Kernel larger than the padded input.
    let small = rand_tensor(&[1, 3, 2, 2], 3);
    let e = eval_err(&Op::Conv(c.clone()), &[&small, &w]);
    assert!(
        e.to_string().contains("smaller than the dilated kernel"),
        "{e}"
    );
    // Attribute lengths and zero strides.
    let x3 = rand_tensor(&[1, 3, 5, 5], 4);
    let mut bad = c.clone();
    bad.strides = vec![1];
    assert_eq!(bad_attr(&Op::Conv(bad), &[&x3, &w]), "strides");
    let mut bad = c.clone();
    bad.strides = vec![0, 1];
    assert_eq!(bad_attr(&Op::Conv(bad), &[&x3, &w]), "strides");
    let mut bad = c.clone();
    bad.kernel = vec![2, 2];
    assert_eq!(bad_attr(&Op::Conv(bad), &[&x3, &w]), "kernel");
    // Bias shape.
    let mut wb = c.clone();
    wb.has_bias = true;
    let b = rand_tensor(&[3], 5);
    assert!(matches!(
        eval_err(&Op::Conv(wb), &[&x3, &w, &b]),
        RuntimeError::Shape { .. }
    ));
    // Rank and dtype.
    let flat = rand_tensor(&[3, 5], 6);
    assert!(matches!(
        eval_err(&Op::Conv(c.clone()), &[&flat, &w]),
        RuntimeError::Shape { .. }
    ));
    let xi = i64t(&[1, 3, 1, 1], &[1, 2, 3]);
    let wi = i64t(&[1, 3, 1, 1], &[1, 2, 3]);
    let c1 = conv_attrs(&[1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
    assert!(matches!(
        eval_err(&Op::Conv(c1), &[&xi, &wi]),
        RuntimeError::UnsupportedDType { .. }
    ));
    // Huge padding cannot trigger a huge allocation.
    let mut huge = c;
    huge.pads = vec![1 << 20, 1 << 20, 1 << 20, 1 << 20];
    assert!(matches!(
        eval_err(&Op::Conv(huge.clone()), &[&x3, &w]),
        RuntimeError::TooLarge { .. }
    ));
    huge.pads = vec![1 << 40, 1 << 40, 1 << 40, 1 << 40];
    assert_eq!(bad_attr(&Op::Conv(huge), &[&x3, &w]), "pads");
}

#[test]
fn conv_transpose_hand_computed() {
    // ONNX test_convtranspose_1d: x [1,1,3] = [0,1,2], w [1,2,3] of ones.
    let x = f32t(&[1, 1, 3], &[0., 1., 2.]);
    let w = f32t(&[1, 2, 3], &[1.0; 6]);
    let c = conv_transpose_attrs(&[3], &[1], &[0, 0], &[1], &[0], 1, false);
    let y = eval1(&Op::ConvTranspose(c), &[&x, &w]);
    assert_close(
        &y,
        &[1, 2, 5],
        &[0., 1., 3., 3., 2., 0., 1., 3., 3., 2.],
        0.0,
    );
}

#[test]
fn conv_transpose_matches_naive_scatter() {
    // (input shape, weight shape, strides, pads, dilations, output padding, group, bias)
    type Case = (Axes, Axes, Axes, Axes, Axes, Axes, usize, bool);
    #[rustfmt::skip]
    let cases: [Case; 5] = [
        (&[2, 2, 3, 3], &[2, 3, 3, 3], &[3, 2], &[0, 0, 0, 0], &[1, 1], &[1, 1], 1, true),
        (&[1, 4, 4, 5], &[4, 1, 2, 3], &[2, 1], &[1, 0, 0, 1], &[1, 2], &[1, 0], 2, false),
        (&[2, 3, 6], &[3, 2, 4], &[2], &[1, 2], &[2], &[1], 1, true),
        (&[1, 2, 2, 3, 2], &[2, 1, 2, 2, 2], &[1, 2, 2], &[0, 0, 0, 0, 1, 0], &[1, 1, 1], &[0, 1, 0], 1, true),
        (&[1, 3, 4, 4], &[3, 1, 3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], &[0, 0], 3, false),
    ];
    for (i, (xs, ws, s, p, d, op_, g, bias)) in cases.into_iter().enumerate() {
        let c = conv_transpose_attrs(&ws[2..], s, p, d, op_, g, bias);
        let bias_len = bias.then_some(ws[1] * g);
        let naive = |x: &_, w: &_, b: Option<&_>| naive_conv_transpose(x, w, b, &c);
        let op = Op::ConvTranspose(c.clone());
        matches_naive(&op, [xs, ws], bias_len, 40 + i as u64, naive);
    }
}

#[test]
fn conv_transpose_errors() {
    let x = rand_tensor(&[1, 2, 3, 3], 1);
    let w = rand_tensor(&[3, 1, 3, 3], 2);
    let c = conv_transpose_attrs(&[3, 3], &[1, 1], &[0, 0, 0, 0], &[1, 1], &[0, 0], 1, false);
    assert!(matches!(
        eval_err(&Op::ConvTranspose(c.clone()), &[&x, &w]),
        RuntimeError::Shape { .. }
    ));
    let w = rand_tensor(&[2, 1, 3, 3], 2);
    let mut bad = c.clone();
    bad.pads = vec![4, 4, 4, 4];
    let e = eval_err(&Op::ConvTranspose(bad), &[&x, &w]);
    assert!(e.to_string().contains("negative or empty"), "{e}");
    let mut bad = c;
    bad.output_padding = vec![1];
    assert_eq!(
        bad_attr(&Op::ConvTranspose(bad), &[&x, &w]),
        "output_padding"
    );
}

#[test]
fn absurd_attributes_are_rejected_without_overflow() {
    let x = rand_tensor(&[1, 1, 3, 3], 1);
    let w = rand_tensor(&[1, 1, 1, 1], 2);
    let mut c = conv_attrs(&[1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
    c.pads = vec![usize::MAX, 0, 0, 0];
    assert_eq!(bad_attr(&Op::Conv(c.clone()), &[&x, &w]), "pads");
    c.pads = vec![0; 4];
    c.group = usize::MAX;
    assert_eq!(bad_attr(&Op::Conv(c.clone()), &[&x, &w]), "group");
    c.group = 1;
    c.dilations = vec![usize::MAX, 1];
    assert_eq!(bad_attr(&Op::Conv(c), &[&x, &w]), "dilations");
    // A weight with an empty kernel axis is a shape error, not an underflow.
    let w0 = f32t(&[1, 1, 0, 1], &[]);
    let c0 = conv_attrs(&[], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
    assert!(matches!(
        eval_err(&Op::Conv(c0), &[&x, &w0]),
        RuntimeError::Shape { .. }
    ));
    let ct = conv_transpose_attrs(
        &[1, 1],
        &[1, 1],
        &[0; 4],
        &[1, 1],
        &[0, 0],
        usize::MAX,
        false,
    );
    assert_eq!(bad_attr(&Op::ConvTranspose(ct), &[&x, &w]), "group");
}
