use strata_ir::ops::{Conv, ConvTranspose};
use strata_ir::{Op, Tensor};
use strata_runtime::RuntimeError;
use strata_test_support::*;

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
    let kprod: usize = ksp.iter().product();
    let pout: usize = out_sp.iter().product();
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let mut out = vec![0.0f32; n * m * pout];
    for ni in 0..n {
        for mi in 0..m {
            let g = mi / mg;
            for p in 0..pout {
                let o = unravel(p, &out_sp);
                let mut acc = b.map(|b| b.as_f32().unwrap()[mi]).unwrap_or(0.0);
                for ci in 0..cg {
                    for kk in 0..kprod {
                        let k = unravel(kk, ksp);
                        let mut pos = Vec::new();
                        let mut ok = true;
                        for j in 0..d {
                            let ix = (o[j] * c.strides[j] + k[j] * c.dilations[j]) as isize
                                - c.pads[j] as isize;
                            if ix < 0 || ix as usize >= xs[2 + j] {
                                ok = false;
                            }
                            pos.push(ix.max(0) as usize);
                        }
                        if !ok {
                            continue;
                        }
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
    let pout: usize = out_sp.iter().product();
    let kprod: usize = ksp.iter().product();
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let mut out = vec![0.0f32; n * m * pout];
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
                        let mut pos = Vec::new();
                        let mut ok = true;
                        for j in 0..d {
                            let o = (i[j] * c.strides[j] + k[j] * c.dilations[j]) as isize
                                - c.pads[j] as isize;
                            if o < 0 || o as usize >= out_sp[j] {
                                ok = false;
                            }
                            pos.push(o.max(0) as usize);
                        }
                        if ok {
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

fn conv_op(
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dil: &[usize],
    group: usize,
    bias: bool,
) -> Conv {
    Conv {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dil.to_vec(),
        group,
        has_bias: bias,
    }
}

#[test]
fn conv_2d_hand_computed() {
    // ONNX test_basic_conv_with_padding: 5x5 ramp, 3x3 ones kernel, pad 1.
    let x = f32t(
        &[1, 1, 5, 5],
        &(0..25).map(|v| v as f32).collect::<Vec<_>>(),
    );
    let w = f32t(&[1, 1, 3, 3], &[1.0; 9]);
    let c = conv_op(&[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, false);
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
    let c = conv_op(&[3, 3], &[2, 2], &[0, 0, 0, 0], &[1, 1], 1, false);
    let y = eval1(&Op::Conv(c), &[&x, &w]);
    assert_close(&y, &[1, 1, 3, 2], &[54., 72., 144., 162., 234., 252.], 0.0);
}

#[test]
fn conv_matches_naive_across_configurations() {
    // (input shape, weight shape, strides, pads, dilations, group, bias)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        usize,
        bool,
    )> = vec![
        (
            vec![2, 3, 9],
            vec![4, 3, 3],
            vec![2],
            vec![1, 2],
            vec![1],
            1,
            true,
        ),
        (
            vec![3, 4, 8, 7],
            vec![6, 2, 3, 2],
            vec![1, 2],
            vec![1, 0, 2, 1],
            vec![2, 1],
            2,
            true,
        ),
        (
            vec![2, 6, 7, 7],
            vec![6, 1, 3, 3],
            vec![2, 2],
            vec![1, 1, 1, 1],
            vec![1, 1],
            6,
            false,
        ),
        (
            vec![1, 2, 5, 6, 4],
            vec![3, 2, 2, 3, 2],
            vec![1, 2, 1],
            vec![0, 1, 1, 1, 0, 0],
            vec![1, 1, 2],
            1,
            true,
        ),
        (
            vec![2, 4, 6, 6],
            vec![8, 4, 1, 1],
            vec![1, 1],
            vec![0, 0, 0, 0],
            vec![1, 1],
            1,
            true,
        ),
        (
            vec![2, 4, 6, 6],
            vec![4, 4, 1, 1],
            vec![2, 2],
            vec![1, 1, 1, 1],
            vec![1, 1],
            1,
            false,
        ),
        (
            vec![1, 1, 4, 4],
            vec![1, 1, 3, 3],
            vec![1, 1],
            vec![3, 3, 3, 3],
            vec![1, 1],
            1,
            false,
        ),
    ];
    for (i, (xs, ws, s, p, d, g, bias)) in cases.into_iter().enumerate() {
        let x = rand_tensor(&xs, 10 + i as u64);
        let w = rand_tensor(&ws, 20 + i as u64);
        let b = rand_tensor(&[ws[0]], 30 + i as u64);
        let c = conv_op(&ws[2..], &s, &p, &d, g, bias);
        let mut inputs = vec![&x, &w];
        if bias {
            inputs.push(&b);
        }
        let y = eval1(&Op::Conv(c.clone()), &inputs);
        let (shape, expected) = naive_conv(&x, &w, bias.then_some(&b), &c);
        assert_close(&y, &shape, &expected, 1e-5);
    }
}

#[test]
fn conv_f64_matches_f32() {
    let x = rand_tensor(&[2, 2, 5, 5], 1);
    let w = rand_tensor(&[3, 2, 3, 3], 2);
    let c = Op::Conv(conv_op(&[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, false));
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
    let c = conv_op(&[3, 3], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
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
    assert!(matches!(
        eval_err(&Op::Conv(bad), &[&x3, &w]),
        RuntimeError::Attribute {
            attr: "strides",
            ..
        }
    ));
    let mut bad = c.clone();
    bad.strides = vec![0, 1];
    assert!(matches!(
        eval_err(&Op::Conv(bad), &[&x3, &w]),
        RuntimeError::Attribute {
            attr: "strides",
            ..
        }
    ));
    let mut bad = c.clone();
    bad.kernel = vec![2, 2];
    assert!(matches!(
        eval_err(&Op::Conv(bad), &[&x3, &w]),
        RuntimeError::Attribute { attr: "kernel", .. }
    ));
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
    let c1 = conv_op(&[1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
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
    assert!(matches!(
        eval_err(&Op::Conv(huge), &[&x3, &w]),
        RuntimeError::Attribute { attr: "pads", .. }
    ));
}

fn convt_op(
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dil: &[usize],
    out_pad: &[usize],
    group: usize,
    bias: bool,
) -> ConvTranspose {
    ConvTranspose {
        kernel: kernel.to_vec(),
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dil.to_vec(),
        output_padding: out_pad.to_vec(),
        group,
        has_bias: bias,
    }
}

#[test]
fn conv_transpose_hand_computed() {
    // ONNX test_convtranspose_1d: x [1,1,3] = [0,1,2], w [1,2,3] of ones.
    let x = f32t(&[1, 1, 3], &[0., 1., 2.]);
    let w = f32t(&[1, 2, 3], &[1.0; 6]);
    let c = convt_op(&[3], &[1], &[0, 0], &[1], &[0], 1, false);
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
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        usize,
        bool,
    )> = vec![
        (
            vec![2, 2, 3, 3],
            vec![2, 3, 3, 3],
            vec![3, 2],
            vec![0, 0, 0, 0],
            vec![1, 1],
            vec![1, 1],
            1,
            true,
        ),
        (
            vec![1, 4, 4, 5],
            vec![4, 1, 2, 3],
            vec![2, 1],
            vec![1, 0, 0, 1],
            vec![1, 2],
            vec![1, 0],
            2,
            false,
        ),
        (
            vec![2, 3, 6],
            vec![3, 2, 4],
            vec![2],
            vec![1, 2],
            vec![2],
            vec![1],
            1,
            true,
        ),
        (
            vec![1, 2, 2, 3, 2],
            vec![2, 1, 2, 2, 2],
            vec![1, 2, 2],
            vec![0, 0, 0, 0, 1, 0],
            vec![1, 1, 1],
            vec![0, 1, 0],
            1,
            true,
        ),
        (
            vec![1, 3, 4, 4],
            vec![3, 1, 3, 3],
            vec![1, 1],
            vec![1, 1, 1, 1],
            vec![1, 1],
            vec![0, 0],
            3,
            false,
        ),
    ];
    for (i, (xs, ws, s, p, d, op_, g, bias)) in cases.into_iter().enumerate() {
        let x = rand_tensor(&xs, 40 + i as u64);
        let w = rand_tensor(&ws, 50 + i as u64);
        let b = rand_tensor(&[ws[1] * g], 60 + i as u64);
        let c = convt_op(&ws[2..], &s, &p, &d, &op_, g, bias);
        let mut inputs = vec![&x, &w];
        if bias {
            inputs.push(&b);
        }
        let y = eval1(&Op::ConvTranspose(c.clone()), &inputs);
        let (shape, expected) = naive_conv_transpose(&x, &w, bias.then_some(&b), &c);
        assert_close(&y, &shape, &expected, 1e-5);
    }
}

#[test]
fn conv_transpose_errors() {
    let x = rand_tensor(&[1, 2, 3, 3], 1);
    let w = rand_tensor(&[3, 1, 3, 3], 2);
    let c = convt_op(&[3, 3], &[1, 1], &[0, 0, 0, 0], &[1, 1], &[0, 0], 1, false);
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
    assert!(matches!(
        eval_err(&Op::ConvTranspose(bad), &[&x, &w]),
        RuntimeError::Attribute {
            attr: "output_padding",
            ..
        }
    ));
}

#[test]
fn absurd_attributes_are_rejected_without_overflow() {
    let x = rand_tensor(&[1, 1, 3, 3], 1);
    let w = rand_tensor(&[1, 1, 1, 1], 2);
    let mut c = conv_op(&[1, 1], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
    c.pads = vec![usize::MAX, 0, 0, 0];
    assert!(matches!(
        eval_err(&Op::Conv(c.clone()), &[&x, &w]),
        RuntimeError::Attribute { attr: "pads", .. }
    ));
    c.pads = vec![0; 4];
    c.group = usize::MAX;
    assert!(matches!(
        eval_err(&Op::Conv(c.clone()), &[&x, &w]),
        RuntimeError::Attribute { attr: "group", .. }
    ));
    c.group = 1;
    c.dilations = vec![usize::MAX, 1];
    assert!(matches!(
        eval_err(&Op::Conv(c), &[&x, &w]),
        RuntimeError::Attribute {
            attr: "dilations",
            ..
        }
    ));
    // A weight with an empty kernel axis is a shape error, not an underflow.
    let w0 = f32t(&[1, 1, 0, 1], &[]);
    let c0 = conv_op(&[], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
    assert!(matches!(
        eval_err(&Op::Conv(c0), &[&x, &w0]),
        RuntimeError::Shape { .. }
    ));
    let ct = convt_op(
        &[1, 1],
        &[1, 1],
        &[0; 4],
        &[1, 1],
        &[0, 0],
        usize::MAX,
        false,
    );
    assert!(matches!(
        eval_err(&Op::ConvTranspose(ct), &[&x, &w]),
        RuntimeError::Attribute { attr: "group", .. }
    ));
}
