//! Linear Resize (`resize_linear` in the C prelude): per output element, the input corners
//! of its interpolated axes combined lowest axis first in f64, `(1 − w)·a + w·b` as
//! `a = 1 − w; b = w·c_hi; a = a·c_lo; a + b`, rounded to f32 once. An axis whose weight is 0
//! at an output index is not interpolated there (the C loop skips it): the combination is
//! computed and discarded by a select, so `−0` and infinities pass exactly. Axes with every
//! weight 0 (scale 1) read their first tap only.

use strata_lower::LinearTaps;

use crate::body::{Body, Operand};
use crate::text::{dense_f64, dense_i32, identity, tensor, Elem};

/// Output `dims` (row-major) from the flat `x` with input `strides`.
pub(crate) fn resize_linear(
    b: &mut Body,
    (x, x_len): (&str, usize),
    dims: &[usize],
    strides: &[usize],
    taps: &LinearTaps,
) -> String {
    let rank = dims.len();
    let total = taps.indices.len();
    let flat: Vec<i32> = taps.indices.iter().flatten().copied().collect();
    let idx = b.bind(&format!("arith.constant {}", dense_i32(&flat, &[total, 2])));
    let w = b.bind(&format!(
        "arith.constant {}",
        dense_f64(&taps.weights, &[total])
    ));
    // Each axis's first row in the tables, and whether any weight on it is nonzero.
    let mut first = Vec::with_capacity(rank);
    let mut at = 0;
    for &d in dims {
        first.push(at);
        at += d;
    }
    let active: Vec<usize> = (0..rank)
        .filter(|&d| {
            taps.weights
                .get(first[d]..first[d] + dims[d])
                .is_some_and(|ws| ws.iter().any(|&w| w != 0.0))
        })
        .collect();
    let (idx_ty, w_ty, x_ty) = (
        tensor(&[total, 2], Elem::I32),
        tensor(&[total], Elem::F64),
        tensor(&[x_len], Elem::F32),
    );
    let out_ty = tensor(dims, Elem::F32);
    let out = b.empty(dims, Elem::F32);
    let y = b.generic(
        &vec!["parallel"; rank],
        &[],
        Operand::new(&out, out_ty.clone(), identity(rank)),
        Elem::F32,
        &[],
        |r, _| {
            let (c0, c1) = (r.index(0), r.index(1));
            let mut base = r.index(0);
            // Per active axis: its weight and the offset of its second tap.
            let mut axes = Vec::new();
            for d in 0..rank {
                let o = r.bind(&format!("linalg.index {d} : index"));
                let f = r.index(first[d]);
                let row = r.bind(&format!("arith.addi {f}, {o} : index"));
                let t0 = r.bind(&format!("tensor.extract {idx}[{row}, {c0}] : {idx_ty}"));
                let t0 = r.bind(&format!("arith.index_cast {t0} : i32 to index"));
                let s = r.index(strides[d]);
                let off = r.bind(&format!("arith.muli {t0}, {s} : index"));
                base = r.bind(&format!("arith.addi {base}, {off} : index"));
                if active.contains(&d) {
                    let t1 = r.bind(&format!("tensor.extract {idx}[{row}, {c1}] : {idx_ty}"));
                    let t1 = r.bind(&format!("arith.index_cast {t1} : i32 to index"));
                    let off1 = r.bind(&format!("arith.muli {t1}, {s} : index"));
                    let step = r.bind(&format!("arith.subi {off1}, {off} : index"));
                    let wd = r.bind(&format!("tensor.extract {w}[{row}] : {w_ty}"));
                    axes.push((step, wd));
                }
            }
            let m = axes.len();
            let mut c: Vec<String> = (0..1usize << m)
                .map(|mask| {
                    let mut off = base.clone();
                    for (j, (step, _)) in axes.iter().enumerate() {
                        if (mask >> j) & 1 == 1 {
                            off = r.bind(&format!("arith.addi {off}, {step} : index"));
                        }
                    }
                    let v = r.bind(&format!("tensor.extract {x}[{off}] : {x_ty}"));
                    r.bind(&format!("arith.extf {v} : f32 to f64"))
                })
                .collect();
            let one = r.constant("1.0", "f64");
            let zero = r.constant("0.0", "f64");
            for (j, (_, wj)) in axes.iter().enumerate() {
                let bit = 1usize << j;
                let skip = r.bind(&format!("arith.cmpf oeq, {wj}, {zero} : f64"));
                for mask in (0..1usize << m).step_by(2 * bit) {
                    let a = r.bind(&format!("arith.subf {one}, {wj} : f64"));
                    let bb = r.bind(&format!("arith.mulf {wj}, {} : f64", c[mask + bit]));
                    let a = r.bind(&format!("arith.mulf {a}, {} : f64", c[mask]));
                    let s = r.bind(&format!("arith.addf {a}, {bb} : f64"));
                    c[mask] = r.bind(&format!("arith.select {skip}, {}, {s} : f64", c[mask]));
                }
            }
            r.bind(&format!("arith.truncf {} : f64 to f32", c[0]))
        },
    );
    let all: Vec<String> = (0..rank).map(|d| d.to_string()).collect();
    b.bind(&format!(
        "tensor.collapse_shape {y} [[{}]] : {out_ty} into {}",
        all.join(", "),
        tensor(&[dims.iter().product()], Elem::F32)
    ))
}
