use strata_ir::ops::GlobalPoolKind;
use strata_ir::{Op, Tensor, TensorData};
use strata_runtime::RuntimeError;
use strata_test_support::*;

/// A MaxPool (padding never counts for a max) over [`pool_attrs`].
fn max(k: &[usize], s: &[usize], p: &[usize], d: &[usize], ceil: bool) -> Op {
    Op::MaxPool(pool_attrs(k, s, p, d, ceil, false))
}

/// An AveragePool over [`pool_attrs`].
fn avg(k: &[usize], s: &[usize], p: &[usize], d: &[usize], ceil: bool, inc: bool) -> Op {
    Op::AveragePool(pool_attrs(k, s, p, d, ceil, inc))
}

fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    f32t(shape, &(1..=n).map(|v| v as f32).collect::<Vec<_>>())
}

#[test]
fn max_pool_2d_basic_and_ceil() {
    let x = ramp(&[1, 1, 4, 4]);
    #[rustfmt::skip]
    let cases = [
        (max(&[2, 2], &[2, 2], &[0; 4], &[1, 1], false), &x, &[1, 1, 2, 2][..], &[6., 8., 14., 16.][..]),
        // ONNX test_maxpool_2d_ceil: 4x4, kernel 3, stride 2, ceil → 2x2.
        (max(&[3, 3], &[2, 2], &[0; 4], &[1, 1], true), &x, &[1, 1, 2, 2], &[11., 12., 15., 16.]),
        // ONNX test_maxpool_2d_dilations: kernel 2, dilation 2 → 2x2.
        (max(&[2, 2], &[1, 1], &[0; 4], &[2, 2], false), &x, &[1, 1, 2, 2], &[11., 12., 15., 16.]),
    ];
    expect_all(0.0, &cases);
}

#[test]
fn max_pool_2x2_stride_2_matches_the_window_fold_bit_for_bit() {
    // The 2×2/2 fast path against a plain fold of each window's real taps, row by row, left
    // to right, from -inf with `v > best`: odd sizes (the last row and column dropped, or in
    // ceil mode a partial last window through the general path), NaN (never taken: every
    // comparison with it is false), ±0 ties (the first one stays), -inf and equal values.
    let (n, c, h, w) = (2usize, 3usize, 7usize, 9usize);
    let specials = [f32::NAN, -0.0, 0.0, f32::NEG_INFINITY, 1.5, 1.5, -2.0];
    let mut v: Vec<f32> = values(n * c * h * w, 71);
    for (i, x) in v.iter_mut().enumerate() {
        if i % 5 == 0 {
            *x = specials[(i / 5) % specials.len()];
        }
    }
    let x = f32t(&[n, c, h, w], &v);
    for ceil in [false, true] {
        let (oh, ow) = if ceil { (4, 5) } else { (3, 4) };
        let mut want = Vec::new();
        for plane in v.chunks(h * w) {
            for i in 0..oh {
                for j in 0..ow {
                    let mut best = f32::NEG_INFINITY;
                    for a in 2 * i..(2 * i + 2).min(h) {
                        for b in 2 * j..(2 * j + 2).min(w) {
                            let t = plane[a * w + b];
                            if t > best {
                                best = t;
                            }
                        }
                    }
                    want.push(best);
                }
            }
        }
        let got = strata_runtime::eval_op(&max(&[2, 2], &[2, 2], &[0; 4], &[1, 1], ceil), &[&x])
            .unwrap()
            .remove(0);
        assert_eq!(got.shape(), &[n, c, oh, ow]);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(got.as_f32().unwrap()), bits(&want), "ceil {ceil}");
    }
}

#[test]
fn max_pool_ignores_padding_and_drops_windows_starting_in_it() {
    // Negative values: a zero pad must not win.
    let neg = f32t(&[1, 1, 2, 2], &[-1., -2., -3., -4.]);
    let want = [-1., -1., -2., -1., -1., -2., -3., -3., -4.];
    // 2x2 input, kernel 3, stride 3, pad 1, ceil: the second window would start in the end
    // pad, so it is dropped → 1x1.
    let x = ramp(&[1, 1, 2, 2]);
    #[rustfmt::skip]
    let cases = [
        (max(&[2, 2], &[1, 1], &[1, 1, 1, 1], &[1, 1], false), &neg, &[1, 1, 3, 3][..], &want[..]),
        (max(&[3, 3], &[3, 3], &[1, 1, 1, 1], &[1, 1], true), &x, &[1, 1, 1, 1], &[4.]),
    ];
    expect_all(0.0, &cases);
}

#[test]
fn max_pool_1d_3d_and_integers() {
    let x1 = f32t(&[1, 1, 5], &[1., 3., 2., 5., 4.]);
    let x3 = ramp(&[1, 2, 2, 2, 2]);
    #[rustfmt::skip]
    let cases = [
        (max(&[2], &[1], &[0, 0], &[1], false), &x1, &[1, 1, 4][..], &[3., 3., 5., 5.][..]),
        (max(&[2, 2, 2], &[1, 1, 1], &[0; 6], &[1, 1, 1], false), &x3, &[1, 2, 1, 1, 1], &[8., 16.]),
    ];
    expect_all(0.0, &cases);
    let x = tensor(&[1, 1, 4], TensorData::I8(vec![-5, -7, 3, -1]));
    let y = eval1(&max(&[2], &[2], &[0, 0], &[1], false), &[&x]);
    assert_eq!(y.data(), &TensorData::I8(vec![-5, 3]));
    let x = tensor(&[1, 1, 3], TensorData::U8(vec![200, 7, 255]));
    let y = eval1(&max(&[2], &[1], &[0, 0], &[1], false), &[&x]);
    assert_eq!(y.data(), &TensorData::U8(vec![200, 255]));
}

#[test]
fn average_pool_pads_and_count_include_pad() {
    // ONNX test_averagepool_2d_precomputed_pads (exclude pads) on a 5x5 ramp, kernel 5, pad 2.
    let x = ramp(&[1, 1, 5, 5]);
    let y = eval1(
        &avg(&[5, 5], &[1, 1], &[2; 4], &[1, 1], false, false),
        &[&x],
    );
    #[rustfmt::skip]
    let expected = [
        7., 7.5, 8., 8.5, 9.,
        9.5, 10., 10.5, 11., 11.5,
        12., 12.5, 13., 13.5, 14.,
        14.5, 15., 15.5, 16., 16.5,
        17., 17.5, 18., 18.5, 19.,
    ];
    assert_close(&y, &[1, 1, 5, 5], &expected, 1e-6);
    // Same with count_include_pad (test_averagepool_2d_precomputed_pads_count_include_pad).
    let y = eval1(&avg(&[5, 5], &[1, 1], &[2; 4], &[1, 1], false, true), &[&x]);
    #[rustfmt::skip]
    let expected = [
        2.52, 3.6, 4.8, 4.08, 3.24,
        4.56, 6.4, 8.4, 7.04, 5.52,
        7.2, 10., 13., 10.8, 8.4,
        6.96, 9.6, 12.4, 10.24, 7.92,
        6.12, 8.4, 10.8, 8.88, 6.84,
    ];
    assert_close(&y, &[1, 1, 5, 5], &expected, 1e-6);
}

#[test]
fn average_pool_ceil_edge_windows() {
    let x4 = ramp(&[1, 1, 4, 4]);
    let x = f32t(&[1, 1, 5], &[1., 2., 3., 4., 5.]);
    #[rustfmt::skip]
    let cases = [
        // ONNX test_averagepool_2d_ceil: 4x4 ramp, kernel 3, stride 2, ceil → partial windows
        // divide by the number of real elements.
        (avg(&[3, 3], &[2, 2], &[0; 4], &[1, 1], true, false), &x4, &[1, 1, 2, 2][..], &[6., 7.5, 12., 13.5][..]),
        // With count_include_pad only explicit padding counts, never the ceil-mode extension
        // past it (ONNX test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True):
        // the last window of [1,2,3,4,5] (kernel 2, stride 2) is 5 / 1 without an end pad ...
        (avg(&[2], &[2], &[0, 0], &[1], true, true), &x, &[1, 1, 3], &[1.5, 3.5, 5.]),
        // ... and (5 + 0) / 2 with an end pad of 1.
        (avg(&[2], &[2], &[0, 1], &[1], true, true), &x, &[1, 1, 3], &[1.5, 3.5, 2.5]),
        // A begin pad counts in the first window: (0 + 1) / 2.
        (avg(&[2], &[2], &[1, 1], &[1], true, true), &x, &[1, 1, 3], &[0.5, 2.5, 4.5]),
        (avg(&[2], &[2], &[0, 0], &[1], true, false), &x, &[1, 1, 3], &[1.5, 3.5, 5.]),
        // ONNX test_averagepool_2d_dilations.
        (avg(&[2, 2], &[1, 1], &[0; 4], &[2, 2], true, false), &x4, &[1, 1, 2, 2], &[6., 7., 10., 11.]),
    ];
    expect_all(1e-6, &cases);
}

#[test]
fn large_pool_runs_in_parallel_and_matches_small() {
    let x = rand_tensor(&[8, 16, 20, 20], 3);
    let p = max_pool(2);
    let y = eval1(&p, &[&x]);
    let xv = x.as_f32().unwrap();
    let yv = y.as_f32().unwrap();
    for plane in [0usize, 57, 127] {
        for oh in 0..10 {
            for ow in 0..10 {
                let at = |h: usize, w: usize| xv[plane * 400 + h * 20 + w];
                let m = at(2 * oh, 2 * ow)
                    .max(at(2 * oh, 2 * ow + 1))
                    .max(at(2 * oh + 1, 2 * ow))
                    .max(at(2 * oh + 1, 2 * ow + 1));
                assert_eq!(yv[plane * 100 + oh * 10 + ow], m);
            }
        }
    }
}

#[test]
fn global_pools() {
    let x = f32t(&[1, 2, 2, 2], &[1., 2., 3., 4., -1., -2., -3., -4.]);
    let y = eval1(&Op::GlobalPool(GlobalPoolKind::Average), &[&x]);
    assert_close(&y, &[1, 2, 1, 1], &[2.5, -2.5], 0.0);
    let y = eval1(&Op::GlobalPool(GlobalPoolKind::Max), &[&x]);
    assert_close(&y, &[1, 2, 1, 1], &[4., -1.], 0.0);
    let x1 = f32t(&[1, 1, 3], &[1., 5., 3.]);
    assert_close(
        &eval1(&Op::GlobalPool(GlobalPoolKind::Max), &[&x1]),
        &[1, 1, 1],
        &[5.],
        0.0,
    );
}

#[test]
fn pool_errors() {
    let x = ramp(&[1, 1, 4, 4]);
    let e = eval_err(&max(&[5, 5], &[1, 1], &[0; 4], &[1, 1], false), &[&x]);
    assert!(
        e.to_string().contains("smaller than the dilated kernel"),
        "{e}"
    );
    #[rustfmt::skip]
    let bad = [
        (max(&[2, 2], &[0, 1], &[0; 4], &[1, 1], false), "strides"),
        (max(&[2], &[1], &[0; 2], &[1], false), "kernel"),
        (max(&[0, 2], &[1, 1], &[0; 4], &[1, 1], false), "kernel"),
    ];
    for (op, attr) in bad {
        assert_eq!(bad_attr(&op, &[&x]), attr);
    }
    let flat = f32t(&[4, 4], &[0.; 16]);
    let e = eval_err(&max(&[2], &[1], &[0; 2], &[1], false), &[&flat]);
    assert!(matches!(e, RuntimeError::Shape { .. }), "{e}");
    let xi = i64t(&[1, 1, 2], &[1, 2]);
    let e = eval_err(&avg(&[2], &[1], &[0; 2], &[1], false, false), &[&xi]);
    assert!(
        matches!(
            e,
            RuntimeError::UnsupportedDType {
                op: "average_pool",
                ..
            }
        ),
        "{e}"
    );
    let e = eval_err(
        &Op::GlobalPool(GlobalPoolKind::Max),
        &[&f32t(&[3], &[0.; 3])],
    );
    assert!(matches!(e, RuntimeError::Shape { .. }), "{e}");
    let huge = max(&[1, 1], &[1, 1], &[1 << 30, 1 << 30, 0, 0], &[1, 1], false);
    assert!(matches!(
        eval_err(&huge, &[&x]),
        RuntimeError::TooLarge { .. }
    ));
}

#[test]
fn absurd_pool_attributes_are_rejected() {
    let x = ramp(&[1, 1, 4, 4]);
    let p = max(&[2, 2], &[usize::MAX, 1], &[0; 4], &[1, 1], false);
    assert_eq!(bad_attr(&p, &[&x]), "strides");
    let p = avg(
        &[2, 2],
        &[1, 1],
        &[usize::MAX, 0, 0, 0],
        &[1, 1],
        true,
        false,
    );
    assert_eq!(bad_attr(&p, &[&x]), "pads");
}
