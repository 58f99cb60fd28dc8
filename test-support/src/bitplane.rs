//! A bit-plane layer's constants from a fixed weight pattern, for the tests of the IR and of
//! the lowering that need a real, valid layer without running the compiler.

use strata_ir::ops::PlaneSpec;
use strata_ir::quant::{midpoint_side, pack_planes, quantize_rows, row_bytes};
use strata_ir::{Graph, Tensor, TensorData, ValueRef};

/// The plane counts with side tables: [`plane_spec`] declares them, [`layer_consts`] fits
/// them.
pub const PLANE_COUNTS: [u8; 3] = [2, 4, 8];

/// An 8-bit, 8-bit-activation spec of a `[rows, cols]` layer with [`PLANE_COUNTS`].
pub fn plane_spec(rows: usize, cols: usize) -> PlaneSpec {
    PlaneSpec {
        bits: 8,
        plane_counts: PLANE_COUNTS.to_vec(),
        act_bits: 8,
        rows,
        cols,
        act_bits_k: vec![],
    }
}

/// Constants `planes, alpha, beta, bias, act` (named `{name}.planes`, …) of a `[rows, cols]`
/// layer with side tables for [`PLANE_COUNTS`].
pub fn layer_consts(g: &mut Graph, name: &str, rows: usize, cols: usize) -> Vec<ValueRef> {
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let (q, s) = quantize_rows(&w, rows, cols, 8).expect("valid rows");
    let planes = Tensor::new(
        vec![8, rows, row_bytes(cols)],
        TensorData::U8(pack_planes(&q, rows, cols, 8).expect("8-bit codes")),
    )
    .expect("planes fill their shape");
    let table = |f: &dyn Fn(usize, usize) -> f32| {
        Tensor::from_f32(
            vec![PLANE_COUNTS.len(), rows],
            (0..PLANE_COUNTS.len() * rows)
                .map(|i| f(i / rows, i % rows))
                .collect(),
        )
        .expect("one row per plane count")
    };
    let side = |j: usize, r: usize| midpoint_side(s[r], 8, PLANE_COUNTS[j]).expect("valid scale");
    let alpha = table(&|j, r| side(j, r).0);
    let beta = table(&|j, r| side(j, r).1);
    let bias = table(&|j, r| 0.01 * (j * rows + r) as f32);
    let act = Tensor::from_f32(vec![3, 2], vec![0.02, 0.0, 0.03, -3.0, 0.05, 1.0])
        .expect("scale and zero per plane count");
    [
        ("planes", planes),
        ("alpha", alpha),
        ("beta", beta),
        ("bias", bias),
        ("act", act),
    ]
    .into_iter()
    .map(|(what, t)| g.add_constant(format!("{name}.{what}"), t))
    .collect()
}
