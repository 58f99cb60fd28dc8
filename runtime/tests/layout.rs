use strata_ir::ops::{Pad, PadMode, Reshape, Slice, Split};
use strata_ir::{Op, TensorData};
use strata_runtime::{eval_op, RuntimeError};
use strata_test_support::*;

#[test]
fn flatten_reshape_squeeze_unsqueeze_relabel() {
    let x = tensor(&[2, 3, 4], TensorData::I8((0..24).collect()));
    let y = eval1(&Op::Flatten { axis: 1 }, &[&x]);
    assert_eq!(y.shape(), &[2, 12]);
    assert_eq!(y.data(), x.data());
    assert_eq!(eval1(&Op::Flatten { axis: 0 }, &[&x]).shape(), &[1, 24]);
    assert_eq!(eval1(&Op::Flatten { axis: 3 }, &[&x]).shape(), &[24, 1]);
    let r = |shape: &[i64], allow_zero| {
        Op::Reshape(Reshape {
            shape: shape.to_vec(),
            allow_zero,
        })
    };
    assert_eq!(eval1(&r(&[0, -1], false), &[&x]).shape(), &[2, 12]);
    assert_eq!(eval1(&r(&[4, 0, 2], false), &[&x]).shape(), &[4, 3, 2]);
    assert_eq!(eval1(&r(&[-1], false), &[&x]).shape(), &[24]);
    let empty = f32t(&[0, 3], &[]);
    assert_eq!(eval1(&r(&[3, 0], true), &[&empty]).shape(), &[3, 0]);
    let s = tensor(&[1, 3, 1], TensorData::Bool(vec![true, false, true]));
    assert_eq!(
        eval1(&Op::Squeeze { axes: vec![0, 2] }, &[&s]).shape(),
        &[3]
    );
    assert_eq!(eval1(&Op::Squeeze { axes: vec![] }, &[&s]).shape(), &[3]);
    let u = eval1(&Op::Unsqueeze { axes: vec![0, 3] }, &[&x]);
    assert_eq!(u.shape(), &[1, 2, 3, 1, 4]);
    assert_eq!(eval1(&Op::Identity, &[&x]), x);
}

#[test]
fn relabel_errors() {
    let x = f32t(&[2, 3], &[0.; 6]);
    let r = |shape: &[i64], allow_zero| {
        Op::Reshape(Reshape {
            shape: shape.to_vec(),
            allow_zero,
        })
    };
    assert!(matches!(
        eval_err(&r(&[-1, -1], false), &[&x]),
        RuntimeError::Attribute { attr: "shape", .. }
    ));
    assert!(matches!(
        eval_err(&r(&[4, -1], false), &[&x]),
        RuntimeError::Shape { .. }
    ));
    assert!(matches!(
        eval_err(&r(&[5], false), &[&x]),
        RuntimeError::Shape { .. }
    ));
    assert!(matches!(
        eval_err(&r(&[-2, 3], false), &[&x]),
        RuntimeError::Attribute { .. }
    ));
    assert!(matches!(
        eval_err(&r(&[0, 0, 0], false), &[&x]),
        RuntimeError::Attribute { .. }
    ));
    assert!(matches!(
        eval_err(&r(&[0, -1], true), &[&x]),
        RuntimeError::Attribute { .. }
    ));
    assert!(matches!(
        eval_err(&Op::Flatten { axis: 3 }, &[&x]),
        RuntimeError::Attribute { attr: "axis", .. }
    ));
    let e = eval_err(&Op::Squeeze { axes: vec![1] }, &[&x]);
    assert!(e.to_string().contains("axis 1"), "{e}");
    assert!(matches!(
        eval_err(&Op::Unsqueeze { axes: vec![3] }, &[&x]),
        RuntimeError::Attribute { .. }
    ));
    assert!(matches!(
        eval_err(&Op::Unsqueeze { axes: vec![1, 1] }, &[&x]),
        RuntimeError::Attribute { .. }
    ));
}

#[test]
fn transpose_permutes_every_dtype() {
    let x = i64t(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let y = eval1(&Op::Transpose { perm: vec![1, 0] }, &[&x]);
    assert_eq!(y.shape(), &[3, 2]);
    assert_eq!(y.data(), &TensorData::I64(vec![1, 4, 2, 5, 3, 6]));
    let x = f32t(&[2, 3, 4], &(0..24).map(|v| v as f32).collect::<Vec<_>>());
    let y = eval1(
        &Op::Transpose {
            perm: vec![2, 0, 1],
        },
        &[&x],
    );
    assert_eq!(y.shape(), &[4, 2, 3]);
    let v = y.as_f32().unwrap();
    // y[k, i, j] = x[i, j, k]
    assert_eq!(v[(3 * 2 + 1) * 3 + 2], (12 + 2 * 4 + 3) as f32);
    // Empty perm reverses the axes.
    assert_eq!(
        eval1(&Op::Transpose { perm: vec![] }, &[&x]).shape(),
        &[4, 3, 2]
    );
    let e = eval_err(
        &Op::Transpose {
            perm: vec![0, 0, 1],
        },
        &[&x],
    );
    assert!(matches!(e, RuntimeError::Attribute { attr: "perm", .. }));
    assert!(matches!(
        eval_err(&Op::Transpose { perm: vec![0, 1] }, &[&x]),
        RuntimeError::Attribute { .. }
    ));
}

#[test]
fn concat_along_middle_axis() {
    let a = f32t(&[2, 1, 2], &[1., 2., 3., 4.]);
    let b = f32t(&[2, 2, 2], &[5., 6., 7., 8., 9., 10., 11., 12.]);
    let y = eval1(&Op::Concat { axis: 1 }, &[&a, &b]);
    assert_close(
        &y,
        &[2, 3, 2],
        &[1., 2., 5., 6., 7., 8., 3., 4., 9., 10., 11., 12.],
        0.0,
    );
    let u = tensor(&[1], TensorData::U8(vec![1]));
    let v = tensor(&[2], TensorData::U8(vec![2, 3]));
    assert_eq!(
        eval1(&Op::Concat { axis: 0 }, &[&u, &v, &u]).data(),
        &TensorData::U8(vec![1, 2, 3, 1])
    );
    assert!(matches!(
        eval_err(&Op::Concat { axis: 0 }, &[&a, &b]),
        RuntimeError::Shape { .. }
    ));
    assert!(matches!(
        eval_err(&Op::Concat { axis: 3 }, &[&a, &a]),
        RuntimeError::Attribute { .. }
    ));
    let i = i64t(&[2, 1, 2], &[0; 4]);
    assert!(matches!(
        eval_err(&Op::Concat { axis: 1 }, &[&a, &i]),
        RuntimeError::DTypeMismatch { input: 1, .. }
    ));
    assert!(matches!(
        eval_err(&Op::Concat { axis: 0 }, &[]),
        RuntimeError::Arity { .. }
    ));
}

#[test]
fn pad_constant_with_negative_pads() {
    let x = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let p = Op::Pad(Pad {
        pads: vec![1, 0, 0, 1],
        value: 9.0,
        mode: PadMode::Constant,
    });
    let y = eval1(&p, &[&x]);
    assert_close(
        &y,
        &[3, 4],
        &[9., 9., 9., 9., 1., 2., 3., 9., 4., 5., 6., 9.],
        0.0,
    );
    // Negative pads crop: drop the first row and last column, add a column in front.
    let p = Op::Pad(Pad {
        pads: vec![-1, 1, 0, -1],
        value: 0.0,
        mode: PadMode::Constant,
    });
    let y = eval1(&p, &[&x]);
    assert_close(&y, &[1, 3], &[0., 4., 5.], 0.0);
    let xi = tensor(&[2], TensorData::I32(vec![7, 8]));
    let y = eval1(
        &Op::Pad(Pad {
            pads: vec![2, 1],
            value: -1.7,
            mode: PadMode::Constant,
        }),
        &[&xi],
    );
    assert_eq!(y.data(), &TensorData::I32(vec![-1, -1, 7, 8, -1]));
    let e = eval_err(
        &Op::Pad(Pad {
            pads: vec![-3, 0, 0, 0],
            value: 0.0,
            mode: PadMode::Constant,
        }),
        &[&x],
    );
    assert!(matches!(e, RuntimeError::Attribute { attr: "pads", .. }));
    assert!(matches!(
        eval_err(
            &Op::Pad(Pad {
                pads: vec![1, 1],
                value: 0.0,
                mode: PadMode::Constant,
            }),
            &[&x]
        ),
        RuntimeError::Attribute { .. }
    ));
    let huge = Op::Pad(Pad {
        pads: vec![i64::MAX, 0, i64::MAX, 0],
        value: 0.0,
        mode: PadMode::Constant,
    });
    assert!(eval_op(&huge, &[&x]).is_err());
}

#[test]
fn shape_op() {
    let x = f32t(&[2, 3, 4], &[0.; 24]);
    assert_eq!(
        eval1(&Op::Shape { start: 0, end: 3 }, &[&x]).data(),
        &TensorData::I64(vec![2, 3, 4])
    );
    assert_eq!(
        eval1(&Op::Shape { start: 1, end: 2 }, &[&x]).data(),
        &TensorData::I64(vec![3])
    );
    assert!(matches!(
        eval_err(&Op::Shape { start: 0, end: 4 }, &[&x]),
        RuntimeError::Attribute { .. }
    ));
}

#[test]
fn gather_with_negative_indices() {
    let data = f32t(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
    let idx = i64t(&[2, 2], &[0, -1, 1, 2]);
    let y = eval1(&Op::Gather { axis: 0 }, &[&data, &idx]);
    assert_close(&y, &[2, 2, 2], &[1., 2., 5., 6., 3., 4., 5., 6.], 0.0);
    let idx = tensor(&[1], TensorData::I32(vec![1]));
    let y = eval1(&Op::Gather { axis: 1 }, &[&data, &idx]);
    assert_close(&y, &[3, 1], &[2., 4., 6.], 0.0);
    // Scalar index removes the axis.
    let idx = i64t(&[], &[-2]);
    assert_close(
        &eval1(&Op::Gather { axis: 0 }, &[&data, &idx]),
        &[2],
        &[3., 4.],
        0.0,
    );
    let bad = i64t(&[2], &[0, 3]);
    assert_eq!(
        eval_err(&Op::Gather { axis: 0 }, &[&data, &bad]),
        RuntimeError::IndexOutOfRange {
            op: "gather",
            index: 3,
            position: 1,
            axis: 0,
            size: 3
        }
    );
    let bad = i64t(&[1], &[-4]);
    assert!(matches!(
        eval_err(&Op::Gather { axis: 0 }, &[&data, &bad]),
        RuntimeError::IndexOutOfRange { .. }
    ));
    let fidx = f32t(&[1], &[0.]);
    assert!(matches!(
        eval_err(&Op::Gather { axis: 0 }, &[&data, &fidx]),
        RuntimeError::UnsupportedDType { input: 1, .. }
    ));
    let ok = i64t(&[1], &[0]);
    assert!(matches!(
        eval_err(&Op::Gather { axis: 2 }, &[&data, &ok]),
        RuntimeError::Attribute { .. }
    ));
}

fn slice(starts: &[i64], ends: &[i64], axes: &[usize], steps: &[i64]) -> Op {
    Op::Slice(Slice {
        starts: starts.to_vec(),
        ends: ends.to_vec(),
        axes: axes.to_vec(),
        steps: steps.to_vec(),
    })
}

#[test]
fn slice_clamps_and_steps_backwards() {
    let x = f32t(&[2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    // ONNX example 1: starts [1,0], ends [2,3], steps [1,2] → [[5,7]]
    assert_close(
        &eval1(&slice(&[1, 0], &[2, 3], &[0, 1], &[1, 2]), &[&x]),
        &[1, 2],
        &[5., 7.],
        0.0,
    );
    // ONNX example 2: starts [0,1], ends [-1,1000] → [[2,3,4]]
    assert_close(
        &eval1(&slice(&[0, 1], &[-1, 1000], &[0, 1], &[1, 1]), &[&x]),
        &[1, 3],
        &[2., 3., 4.],
        0.0,
    );
    // Negative step reverses; end clamps to "before the start".
    let v = i64t(&[5], &[0, 1, 2, 3, 4]);
    let y = eval1(&slice(&[-1], &[i64::MIN], &[0], &[-1]), &[&v]);
    assert_eq!(y.data(), &TensorData::I64(vec![4, 3, 2, 1, 0]));
    let y = eval1(&slice(&[i64::MAX], &[0], &[0], &[-2]), &[&v]);
    assert_eq!(y.data(), &TensorData::I64(vec![4, 2]));
    // Empty results.
    assert_eq!(eval1(&slice(&[3], &[1], &[0], &[1]), &[&v]).shape(), &[0]);
    assert_eq!(eval1(&slice(&[10], &[20], &[0], &[1]), &[&v]).shape(), &[0]);
    assert!(matches!(
        eval_err(&slice(&[0], &[1], &[0], &[0]), &[&v]),
        RuntimeError::Attribute { attr: "steps", .. }
    ));
    assert!(matches!(
        eval_err(&slice(&[0], &[1], &[1], &[1]), &[&v]),
        RuntimeError::Attribute { attr: "axes", .. }
    ));
    assert!(matches!(
        eval_err(&slice(&[0, 0], &[1], &[0], &[1]), &[&v]),
        RuntimeError::Attribute { .. }
    ));
}

/// The block-copy fast path (whole trailing axes, a step-1 axis before them) against a
/// per-element reference over many slices of a 3-D tensor: every combination of start, end
/// and step (negative too) on every subset of axes.
#[test]
fn slice_matches_an_element_by_element_reference() {
    let dims = [3usize, 4, 5];
    let x = i64t(&dims, &(0..60).collect::<Vec<i64>>());
    let picks: [(i64, i64, i64); 7] = [
        (0, i64::MAX, 1),
        (1, 3, 1),
        (0, 5, 2),
        (-1, i64::MIN, -1),
        (3, 0, -2),
        (2, 2, 1),
        (-2, 100, 1),
    ];
    let mut cases = 0;
    for mask in 0u32..8 {
        let axes: Vec<usize> = (0..3).filter(|a| mask & (1 << a) != 0).collect();
        let combos = picks.len().pow(axes.len() as u32);
        for c in 0..combos {
            let mut rest = c;
            let chosen: Vec<(i64, i64, i64)> = axes
                .iter()
                .map(|_| {
                    let p = picks[rest % picks.len()];
                    rest /= picks.len();
                    p
                })
                .collect();
            // Reference: per axis, the ONNX index list; then the Cartesian product.
            let mut idx: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
            for (&a, &(b, e, st)) in axes.iter().zip(&chosen) {
                let d = dims[a] as i64;
                let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                let (mut b, mut e) = (fix(b), fix(e));
                let mut list = Vec::new();
                if st > 0 {
                    b = b.clamp(0, d);
                    e = e.clamp(0, d);
                    let mut i = b;
                    while i < e {
                        list.push(i as usize);
                        i += st;
                    }
                } else {
                    b = b.clamp(0, d - 1);
                    e = e.clamp(-1, d - 1);
                    let mut i = b;
                    while i > e {
                        list.push(i as usize);
                        i += st;
                    }
                }
                idx[a] = list;
            }
            let mut want = Vec::new();
            for &i in &idx[0] {
                for &j in &idx[1] {
                    for &k in &idx[2] {
                        want.push((i * 20 + j * 5 + k) as i64);
                    }
                }
            }
            let op = slice(
                &chosen.iter().map(|p| p.0).collect::<Vec<_>>(),
                &chosen.iter().map(|p| p.1).collect::<Vec<_>>(),
                &axes,
                &chosen.iter().map(|p| p.2).collect::<Vec<_>>(),
            );
            let y = eval1(&op, &[&x]);
            let shape: Vec<usize> = idx.iter().map(Vec::len).collect();
            assert_eq!(y.shape(), &shape[..], "{axes:?} {chosen:?}");
            assert_eq!(y.data(), &TensorData::I64(want), "{axes:?} {chosen:?}");
            cases += 1;
        }
    }
    assert_eq!(cases, 1 + 3 * 7 + 3 * 49 + 343);
}

#[test]
fn split_into_pieces() {
    let x = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let out = eval_op(
        &Op::Split(Split {
            axis: 1,
            sizes: vec![1, 2],
        }),
        &[&x],
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    assert_close(&out[0], &[2, 1], &[1., 4.], 0.0);
    assert_close(&out[1], &[2, 2], &[2., 3., 5., 6.], 0.0);
    let e = eval_err(
        &Op::Split(Split {
            axis: 1,
            sizes: vec![1, 1],
        }),
        &[&x],
    );
    assert!(matches!(e, RuntimeError::Attribute { attr: "sizes", .. }));
    assert!(matches!(
        eval_err(
            &Op::Split(Split {
                axis: 2,
                sizes: vec![1]
            }),
            &[&x]
        ),
        RuntimeError::Attribute { .. }
    ));
    let e = eval_err(
        &Op::Split(Split {
            axis: 0,
            sizes: vec![usize::MAX, 3],
        }),
        &[&x],
    );
    assert!(matches!(e, RuntimeError::Attribute { attr: "sizes", .. }));
}

#[test]
fn pad_with_cancelling_huge_pads_is_rejected() {
    let x = f32t(&[2], &[1., 2.]);
    let e = eval_err(
        &Op::Pad(Pad {
            pads: vec![i64::MAX, -i64::MAX],
            value: 0.0,
            mode: PadMode::Constant,
        }),
        &[&x],
    );
    assert!(
        matches!(e, RuntimeError::Attribute { attr: "pads", .. }),
        "{e}"
    );
}
