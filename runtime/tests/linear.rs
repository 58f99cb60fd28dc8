use strata_ir::ops::Gemm;
use strata_ir::{Op, TensorData};
use strata_runtime::RuntimeError;
use strata_test_support::*;

fn gemm(alpha: f32, beta: f32, ta: bool, tb: bool, c: bool) -> Op {
    Op::Gemm(Gemm {
        alpha,
        beta,
        trans_a: ta,
        trans_b: tb,
        has_c: c,
    })
}

#[test]
fn gemm_with_transposes_alpha_beta_and_broadcast_c() {
    let a = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let b = f32t(&[3, 2], &[1., 0., 0., 1., 1., 1.]);
    // A·B = [[4, 5], [10, 11]]
    let y = eval1(&gemm(1.0, 1.0, false, false, false), &[&a, &b]);
    assert_close(&y, &[2, 2], &[4., 5., 10., 11.], 0.0);
    // Row-vector C and alpha/beta.
    let c = f32t(&[2], &[100., 200.]);
    let y = eval1(&gemm(2.0, 0.5, false, false, true), &[&a, &b, &c]);
    assert_close(&y, &[2, 2], &[58., 110., 70., 122.], 0.0);
    // Column C [2,1] and scalar C.
    let ccol = f32t(&[2, 1], &[1., 2.]);
    let y = eval1(&gemm(1.0, 1.0, false, false, true), &[&a, &b, &ccol]);
    assert_close(&y, &[2, 2], &[5., 6., 12., 13.], 0.0);
    let cs = f32t(&[], &[1.]);
    let y = eval1(&gemm(1.0, 1.0, false, false, true), &[&a, &b, &cs]);
    assert_close(&y, &[2, 2], &[5., 6., 11., 12.], 0.0);
    // Transposed operands give the same product.
    let at = f32t(&[3, 2], &[1., 4., 2., 5., 3., 6.]);
    let bt = f32t(&[2, 3], &[1., 0., 1., 0., 1., 1.]);
    let y = eval1(&gemm(1.0, 1.0, true, true, false), &[&at, &bt]);
    assert_close(&y, &[2, 2], &[4., 5., 10., 11.], 0.0);
}

#[test]
fn gemm_beta_zero_still_propagates_nan_like_numpy() {
    let a = f32t(&[1, 1], &[1.]);
    let b = f32t(&[1, 1], &[1.]);
    let c = f32t(&[1, 1], &[f32::NAN]);
    let y = eval1(&gemm(1.0, 0.0, false, false, true), &[&a, &b, &c]);
    assert!(y.as_f32().unwrap()[0].is_nan());
}

#[test]
fn gemm_large_matches_naive_and_f64() {
    let (m, k, n) = (37, 300, 19);
    let a = rand_tensor(&[m, k], 1);
    let b = rand_tensor(&[n, k], 2);
    let y = eval1(&gemm(1.0, 1.0, false, true, false), &[&a, &b]);
    let (av, bv) = (a.as_f32().unwrap(), b.as_f32().unwrap());
    let mut expected = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            expected[i * n + j] = (0..k).map(|p| av[i * k + p] * bv[j * k + p]).sum();
        }
    }
    assert_close(&y, &[m, n], &expected, 1e-4);
    let a64 = f64t(&[2, 2], &[1., 2., 3., 4.]);
    let y = eval1(&gemm(1.0, 1.0, false, false, false), &[&a64, &a64]);
    assert_eq!(y.data(), &TensorData::F64(vec![7., 10., 15., 22.]));
}

#[test]
fn gemm_errors() {
    let a = f32t(&[2, 3], &[0.; 6]);
    let b = f32t(&[2, 3], &[0.; 6]);
    let e = eval_err(&gemm(1.0, 1.0, false, false, false), &[&a, &b]);
    assert!(e.to_string().contains("inner dimensions"), "{e}");
    let v = f32t(&[3], &[0.; 3]);
    assert!(matches!(
        eval_err(&gemm(1.0, 1.0, false, false, false), &[&v, &b]),
        RuntimeError::Shape { .. }
    ));
    let bt = f32t(&[3, 2], &[0.; 6]);
    let c = f32t(&[3], &[0.; 3]);
    assert!(matches!(
        eval_err(&gemm(1.0, 1.0, false, false, true), &[&a, &bt, &c]),
        RuntimeError::Shape { .. }
    ));
    let ci = i64t(&[2], &[0, 0]);
    assert!(matches!(
        eval_err(&gemm(1.0, 1.0, false, false, true), &[&a, &bt, &ci]),
        RuntimeError::DTypeMismatch { input: 2, .. }
    ));
    let ai = i64t(&[1, 1], &[1]);
    assert!(matches!(
        eval_err(&gemm(1.0, 1.0, false, false, false), &[&ai, &ai]),
        RuntimeError::UnsupportedDType { .. }
    ));
}

#[test]
fn matmul_numpy_semantics() {
    let a = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let v = f32t(&[3], &[1., 0., -1.]);
    // Matrix · vector → [2]
    assert_close(&eval1(&Op::MatMul, &[&a, &v]), &[2], &[-2., -2.], 0.0);
    // vector · matrix → [2]
    let at = f32t(&[3, 2], &[1., 4., 2., 5., 3., 6.]);
    assert_close(&eval1(&Op::MatMul, &[&v, &at]), &[2], &[-2., -2.], 0.0);
    // vector · vector → scalar
    assert_close(&eval1(&Op::MatMul, &[&v, &v]), &[], &[2.], 0.0);
    // Batched with broadcasting: [2,1,2,3] x [3,3,2] → [2,3,2,2]
    let x = rand_tensor(&[2, 1, 2, 3], 1);
    let y = rand_tensor(&[3, 3, 2], 2);
    let out = eval1(&Op::MatMul, &[&x, &y]);
    let (xv, yv) = (x.as_f32().unwrap(), y.as_f32().unwrap());
    let mut expected = Vec::new();
    for b0 in 0..2 {
        for b1 in 0..3 {
            for i in 0..2 {
                for j in 0..2 {
                    expected.push(
                        (0..3)
                            .map(|p| xv[b0 * 6 + i * 3 + p] * yv[b1 * 6 + p * 2 + j])
                            .sum(),
                    );
                }
            }
        }
    }
    assert_close(&out, &[2, 3, 2, 2], &expected, 1e-6);
    // Batched A with a shared 2-D B folds into one GEMM.
    let x = rand_tensor(&[4, 5, 3], 3);
    let w = rand_tensor(&[3, 2], 4);
    let out = eval1(&Op::MatMul, &[&x, &w]);
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let expected: Vec<f32> = (0..20)
        .flat_map(|r| (0..2).map(move |j| (r, j)))
        .map(|(r, j)| (0..3).map(|p| xv[r * 3 + p] * wv[p * 2 + j]).sum())
        .collect();
    assert_close(&out, &[4, 5, 2], &expected, 1e-6);
}

#[test]
fn matmul_integers_wrap() {
    let a = tensor(&[1, 2], TensorData::I32(vec![i32::MAX, 1]));
    let b = tensor(&[2, 1], TensorData::I32(vec![1, 1]));
    assert_eq!(
        eval1(&Op::MatMul, &[&a, &b]).data(),
        &TensorData::I32(vec![i32::MIN])
    );
    let a = i64t(&[2, 2], &[1, 2, 3, 4]);
    assert_eq!(
        eval1(&Op::MatMul, &[&a, &a]).data(),
        &TensorData::I64(vec![7, 10, 15, 22])
    );
}

#[test]
fn matmul_errors() {
    let a = f32t(&[2, 3], &[0.; 6]);
    let b = f32t(&[2, 3], &[0.; 6]);
    assert!(matches!(
        eval_err(&Op::MatMul, &[&a, &b]),
        RuntimeError::Shape { op: "matmul", .. }
    ));
    let s = f32t(&[], &[1.]);
    assert!(matches!(
        eval_err(&Op::MatMul, &[&s, &b]),
        RuntimeError::Shape { .. }
    ));
    let x = f32t(&[2, 2, 3], &[0.; 12]);
    let y = f32t(&[3, 3, 1], &[0.; 9]);
    assert!(matches!(
        eval_err(&Op::MatMul, &[&x, &y]),
        RuntimeError::Shape { .. }
    ));
    let u = tensor(&[1, 1], TensorData::U8(vec![1]));
    assert!(matches!(
        eval_err(&Op::MatMul, &[&u, &u]),
        RuntimeError::UnsupportedDType { .. }
    ));
}

/// MatMul sums each output from +0 over the reduction index in order, one rounded multiply
/// and one rounded add per term (the order the C and MLIR backends repeat), with numpy
/// batch broadcasting.
#[test]
fn matmul_accumulates_in_index_order_from_zero() {
    // 1e8 + 1 − 1e8 in order loses the 1 in f32; any other order or a fused multiply-add
    // would keep it.
    let a = f32t(&[1, 3], &[1.0e8, 1.0, -1.0e8]);
    let b = f32t(&[3, 1], &[1.0, 1.0, 1.0]);
    let y = eval1(&Op::MatMul, &[&a, &b]);
    assert_eq!(y.as_f32().unwrap(), [0.0]);
    // A product of −0 terms sums to +0 (started from +0).
    let a = f32t(&[1, 1], &[-0.0]);
    let b = f32t(&[1, 1], &[1.0]);
    let y = eval1(&Op::MatMul, &[&a, &b]);
    assert_eq!(y.as_f32().unwrap()[0].to_bits(), 0.0f32.to_bits());
    // [2, 1, 2, 3] × [3, 3, 2] → [2, 3, 2, 2], against a reference loop per element.
    let av: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    let bv: Vec<f32> = (0..18).map(|i| (i as f32 * 0.53).cos()).collect();
    let y = eval1(
        &Op::MatMul,
        &[&f32t(&[2, 1, 2, 3], &av), &f32t(&[3, 3, 2], &bv)],
    );
    assert_eq!(y.shape(), [2, 3, 2, 2]);
    let mut want = Vec::new();
    for s in 0..2 {
        for h in 0..3 {
            for i in 0..2 {
                for j in 0..2 {
                    let mut acc = 0.0f32;
                    for p in 0..3 {
                        acc += av[s * 6 + i * 3 + p] * bv[h * 6 + p * 2 + j];
                    }
                    want.push(acc);
                }
            }
        }
    }
    assert_eq!(y.as_f32().unwrap(), want.as_slice());
}
