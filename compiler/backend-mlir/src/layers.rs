//! The bit-plane layers as `linalg`: quantize the input (round half to even, clamp, centre),
//! shift the stored `K`-plane codes down to the plane count the call runs at (`q_k = q_K >>
//! (K − k)`, floor, the prefix property), accumulate exactly in `i32` with the named
//! `linalg.matvec` / `linalg.conv_2d_ngchw_gfchw`, and apply the f32 epilogue in the C
//! backend's order: `(alpha·scale)·acc + (beta·scale)·usum`, then `+ bias` (no contraction).

use strata_lower::{Layer, Weights};

use crate::body::{Body, Operand};
use crate::text::{dense_f32, dense_i8, identity, map, tensor, Elem};
use crate::MlirError;

/// The run-time plane selection of one layer: `j`, the row of its side tables (an `index`
/// value), and `sh`, how far its stored codes shift down (an `i8` value).
pub(crate) struct Selection {
    pub j: String,
    pub sh: String,
}

/// The layer's constants as values of the function: codes `[rows, cols]` i8 at the layer's
/// own plane count, and side tables `[counts, rows]` and `[counts, 4]` (scale, zero point,
/// code range lo, hi).
struct Tables {
    codes: String,
    alpha: String,
    beta: String,
    bias: String,
    act: String,
}

fn tables(b: &mut Body, l: &Layer) -> Result<Tables, MlirError> {
    let Weights::Planes { bytes, .. } = &l.weights else {
        return Err(MlirError::Layout {
            node: l.node.clone(),
        });
    };
    let codes = strata_ir::quant::prefix_codes(bytes, l.rows, l.cols, l.k).map_err(|e| {
        MlirError::Planes {
            node: l.node.clone(),
            reason: e.to_string(),
        }
    })?;
    // k ≤ 8 planes: every code is in [-128, 127].
    let codes: Vec<i8> = codes.iter().map(|&q| q as i8).collect();
    let s = l.counts.len();
    let mut act = Vec::with_capacity(4 * s);
    for (c, limits) in l.act_limits.iter().enumerate() {
        act.extend_from_slice(&[l.act[2 * c], l.act[2 * c + 1], limits.0, limits.1]);
    }
    let mut constant = |text: String| b.bind(&format!("arith.constant {text}"));
    Ok(Tables {
        codes: constant(dense_i8(&codes, &[l.rows, l.cols])),
        alpha: constant(dense_f32(&l.alpha, &[s, l.rows])),
        beta: constant(dense_f32(&l.beta, &[s, l.rows])),
        bias: constant(dense_f32(&l.bias, &[s, l.rows])),
        act: constant(dense_f32(&act, &[s, 4])),
    })
}

/// Scalars of the side-table row `j`: scale, zero point, code range.
struct Act {
    scale: String,
    zero: String,
    lo: String,
    hi: String,
}

fn act_row(b: &mut Body, t: &Tables, counts: usize, j: &str) -> Act {
    let ty = tensor(&[counts, 4], Elem::F32);
    let mut get = |c: usize| {
        let i = b.index(c);
        b.bind(&format!("tensor.extract {}[{j}, {i}] : {ty}", t.act))
    };
    Act {
        scale: get(0),
        zero: get(1),
        lo: get(2),
        hi: get(3),
    }
}

/// `u = clamp(round_half_even(x / scale) + zero, lo, hi) − zero` as i32 (NaN gives 0), the
/// comparisons of the C backend's `bp_quantize`.
fn quantize(b: &mut Body, x: &str, n: usize, a: &Act) -> String {
    let out = b.empty(&[n], Elem::I32);
    let (fty, ity) = (tensor(&[n], Elem::F32), tensor(&[n], Elem::I32));
    b.generic(
        &["parallel"],
        &[Operand::new(x, fty, identity(1))],
        Operand::new(&out, ity, identity(1)),
        Elem::I32,
        &[Elem::F32],
        |r, args| {
            let v = &args[0];
            let d = r.bind(&format!("arith.divf {v}, {} : f32", a.scale));
            let q = r.bind(&format!("math.roundeven {d} : f32"));
            let nan = r.bind(&format!("arith.cmpf uno, {q}, {q} : f32"));
            let q = r.bind(&format!("arith.addf {q}, {} : f32", a.zero));
            let below = r.bind(&format!("arith.cmpf olt, {q}, {} : f32", a.lo));
            let q = r.bind(&format!("arith.select {below}, {}, {q} : f32", a.lo));
            let above = r.bind(&format!("arith.cmpf ogt, {q}, {} : f32", a.hi));
            let q = r.bind(&format!("arith.select {above}, {}, {q} : f32", a.hi));
            let c = r.bind(&format!("arith.subf {q}, {} : f32", a.zero));
            let i = r.bind(&format!("arith.fptosi {c} : f32 to i32"));
            let z = r.i32(0);
            r.bind(&format!("arith.select {nan}, {z}, {i} : i32"))
        },
    )
}

/// The codes shifted down by `sh` (an arithmetic shift: floor).
fn shifted_codes(b: &mut Body, t: &Tables, l: &Layer, sh: &str) -> String {
    let ty = tensor(&[l.rows, l.cols], Elem::I8);
    let out = b.empty(&[l.rows, l.cols], Elem::I8);
    b.generic(
        &["parallel", "parallel"],
        &[Operand::new(&t.codes, ty.clone(), identity(2))],
        Operand::new(&out, ty, identity(2)),
        Elem::I8,
        &[Elem::I8],
        |r, args| r.bind(&format!("arith.shrsi {}, {sh} : i8", args[0])),
    )
}

/// Row `j` of a `[counts, rows]` side table as `tensor<rows x f32>`.
fn row(b: &mut Body, table: &str, counts: usize, rows: usize, j: &str) -> String {
    let c0 = b.index(0);
    b.bind(&format!(
        "tensor.extract_slice {table}[{j}, {c0}] [1, {rows}] [1, 1] : {} to {}",
        tensor(&[counts, rows], Elem::F32),
        tensor(&[rows], Elem::F32)
    ))
}

/// The epilogue of one output: `t = (alpha·scale)·acc; v = (beta·scale)·usum; t = t + v;
/// t + bias`, then the fused Relu's comparison.
fn epilogue(
    r: &mut Body,
    scale: &str,
    [alpha, beta, bias, acc, usum]: [&str; 5],
    relu: bool,
) -> String {
    let fa = r.bind(&format!("arith.mulf {alpha}, {scale} : f32"));
    let fb = r.bind(&format!("arith.mulf {beta}, {scale} : f32"));
    let a = r.bind(&format!("arith.sitofp {acc} : i32 to f32"));
    let t = r.bind(&format!("arith.mulf {fa}, {a} : f32"));
    let u = r.bind(&format!("arith.sitofp {usum} : i32 to f32"));
    let v = r.bind(&format!("arith.mulf {fb}, {u} : f32"));
    let t = r.bind(&format!("arith.addf {t}, {v} : f32"));
    let y = r.bind(&format!("arith.addf {t}, {bias} : f32"));
    if !relu {
        return y;
    }
    let zero = r.f32(0.0);
    let neg = r.bind(&format!("arith.cmpf olt, {y}, {zero} : f32"));
    r.bind(&format!("arith.select {neg}, {zero}, {y} : f32"))
}

/// A linear bit-plane layer on the flat input `x`; returns `tensor<rows x f32>`.
pub(crate) fn linear(
    b: &mut Body,
    l: &Layer,
    x: &str,
    sel: &Selection,
    relu: bool,
) -> Result<String, MlirError> {
    let (rows, cols, s) = (l.rows, l.cols, l.counts.len());
    let t = tables(b, l)?;
    let a = act_row(b, &t, s, &sel.j);
    let u = quantize(b, x, cols, &a);
    let usum = sum_all(b, &u, cols);
    let w = shifted_codes(b, &t, l, &sel.sh);
    let zero = b.i32(0);
    let acc0 = b.filled(&[rows], Elem::I32, &zero);
    let acc_ty = tensor(&[rows], Elem::I32);
    let acc = b.bind(&format!(
        "linalg.matvec ins({w}, {u} : {}, {}) outs({acc0} : {acc_ty}) -> {acc_ty}",
        tensor(&[rows, cols], Elem::I8),
        tensor(&[cols], Elem::I32)
    ));
    let rows_of = |b: &mut Body, table: &str| row(b, table, s, rows, &sel.j);
    let (alpha, beta, bias) = (
        rows_of(b, &t.alpha),
        rows_of(b, &t.beta),
        rows_of(b, &t.bias),
    );
    let out = b.empty(&[rows], Elem::F32);
    let fty = tensor(&[rows], Elem::F32);
    let one = identity(1);
    let scalar = map(1, &[]);
    Ok(b.generic(
        &["parallel"],
        &[
            Operand::new(&alpha, fty.clone(), one.clone()),
            Operand::new(&beta, fty.clone(), one.clone()),
            Operand::new(&bias, fty.clone(), one.clone()),
            Operand::new(&acc, acc_ty, one.clone()),
            Operand::new(&usum, tensor(&[], Elem::I32), scalar),
        ],
        Operand::new(&out, fty, one),
        Elem::F32,
        &[Elem::F32, Elem::F32, Elem::F32, Elem::I32, Elem::I32],
        |r, g| epilogue(r, &a.scale, [&g[0], &g[1], &g[2], &g[3], &g[4]], relu),
    ))
}

/// The exact sum of an i32 vector as `tensor<i32>`.
fn sum_all(b: &mut Body, u: &str, n: usize) -> String {
    let zero = b.i32(0);
    let init = b.filled(&[], Elem::I32, &zero);
    b.generic(
        &["reduction"],
        &[Operand::new(u, tensor(&[n], Elem::I32), identity(1))],
        Operand::new(&init, tensor(&[], Elem::I32), map(1, &[])),
        Elem::I32,
        &[Elem::I32],
        |r, g| r.bind(&format!("arith.addi {}, {} : i32", g[1], g[0])),
    )
}

/// A 2-D convolution bit-plane layer on the flat `[C, H, W]` input `x`; returns the flat
/// `[M, OH, OW]` output. Padding taps read `u = 0`, as in the C kernels.
pub(crate) fn conv(
    b: &mut Body,
    l: &Layer,
    x: &str,
    sel: &Selection,
    relu: bool,
) -> Result<String, MlirError> {
    let Some(g) = l.conv else {
        return Err(MlirError::Internal(format!(
            "layer `{}` runs as a convolution without its geometry",
            l.node
        )));
    };
    let w = &g.window;
    let [c, h, wd] = w.input;
    let [oh, ow] = w.output;
    let [kh, kw] = w.kernel;
    let [sh, sw] = w.strides;
    let [dh, dw] = w.dilations;
    let [ph, pw] = g.pads;
    let (gr, m, s) = (g.group, g.out_channels, l.counts.len());
    let (cg, mg) = (c / gr, m / gr);
    // The padded input must hold every tap the output positions read.
    let hp = (h + ph).max((oh.max(1) - 1) * sh + (kh - 1) * dh + 1);
    let wp = (wd + pw).max((ow.max(1) - 1) * sw + (kw - 1) * dw + 1);

    let t = tables(b, l)?;
    let a = act_row(b, &t, s, &sel.j);
    let u = quantize(b, x, c * h * wd, &a);
    let u3 = b.bind(&format!(
        "tensor.expand_shape {u} [[0, 1, 2]] output_shape [{c}, {h}, {wd}] : {} into {}",
        tensor(&[c * h * wd], Elem::I32),
        tensor(&[c, h, wd], Elem::I32)
    ));
    let zero = b.i32(0);
    let padded_ty = tensor(&[c, hp, wp], Elem::I32);
    let padded = b.pad(&u3, [c, h, wd], [hp, wp], [ph, pw], Elem::I32, &zero);
    let in4_ty = tensor(&[gr, cg, hp, wp], Elem::I32);
    let in4 = b.bind(&format!(
        "tensor.expand_shape {padded} [[0, 1], [2], [3]] output_shape [{gr}, {cg}, {hp}, {wp}] : {padded_ty} into {in4_ty}"
    ));
    let in5_ty = tensor(&[1, gr, cg, hp, wp], Elem::I32);
    let in5 = b.bind(&format!(
        "tensor.expand_shape {in4} [[0, 1], [2], [3], [4]] output_shape [1, {gr}, {cg}, {hp}, {wp}] : {in4_ty} into {in5_ty}"
    ));
    let ws = shifted_codes(b, &t, l, &sel.sh);
    let w5_ty = tensor(&[gr, mg, cg, kh, kw], Elem::I8);
    let w5 = b.bind(&format!(
        "tensor.expand_shape {ws} [[0, 1], [2, 3, 4]] output_shape [{gr}, {mg}, {cg}, {kh}, {kw}] : {} into {w5_ty}",
        tensor(&[m, cg * kh * kw], Elem::I8)
    ));
    let acc_ty = tensor(&[1, gr, mg, oh, ow], Elem::I32);
    let acc0 = b.filled(&[1, gr, mg, oh, ow], Elem::I32, &zero);
    let acc = b.bind(&format!(
        "linalg.conv_2d_ngchw_gfchw {{dilations = dense<[{dh}, {dw}]> : tensor<2xi64>, strides = dense<[{sh}, {sw}]> : tensor<2xi64>}} ins({in5}, {w5} : {in5_ty}, {w5_ty}) outs({acc0} : {acc_ty}) -> {acc_ty}"
    ));
    let acc4_ty = tensor(&[gr, mg, oh, ow], Elem::I32);
    let acc4 = b.bind(&format!(
        "tensor.collapse_shape {acc} [[0, 1], [2], [3], [4]] : {acc_ty} into {acc4_ty}"
    ));
    // usum[g, oh, ow]: the receptive field's sum over (c, kh, kw), padding included as 0.
    let usum_ty = tensor(&[gr, oh, ow], Elem::I32);
    let usum0 = b.filled(&[gr, oh, ow], Elem::I32, &zero);
    let field = map(
        6,
        &[
            "d0".into(),
            "d3".into(),
            format!("d1 * {sh} + d4 * {dh}"),
            format!("d2 * {sw} + d5 * {dw}"),
        ],
    );
    // The window's extent, as the pooling named ops give it: the loop bounds of kh and kw
    // are read from this operand's shape (its values are never read).
    let window = b.empty(&[kh, kw], Elem::I32);
    let usum = b.generic(
        &[
            "parallel",
            "parallel",
            "parallel",
            "reduction",
            "reduction",
            "reduction",
        ],
        &[
            Operand::new(&in4, in4_ty, field),
            Operand::new(
                &window,
                tensor(&[kh, kw], Elem::I32),
                map(6, &["d4".into(), "d5".into()]),
            ),
        ],
        Operand::new(
            &usum0,
            usum_ty.clone(),
            map(6, &["d0".into(), "d1".into(), "d2".into()]),
        ),
        Elem::I32,
        &[Elem::I32, Elem::I32],
        |r, g| r.bind(&format!("arith.addi {}, {} : i32", g[2], g[0])),
    );
    let grouped = |b: &mut Body, table: &str| {
        let flat = row(b, table, s, m, &sel.j);
        b.bind(&format!(
            "tensor.expand_shape {flat} [[0, 1]] output_shape [{gr}, {mg}] : {} into {}",
            tensor(&[m], Elem::F32),
            tensor(&[gr, mg], Elem::F32)
        ))
    };
    let (alpha, beta, bias) = (
        grouped(b, &t.alpha),
        grouped(b, &t.beta),
        grouped(b, &t.bias),
    );
    let rows_ty = tensor(&[gr, mg], Elem::F32);
    let per_row = map(4, &["d0".into(), "d1".into()]);
    let out_ty = tensor(&[gr, mg, oh, ow], Elem::F32);
    let out = b.empty(&[gr, mg, oh, ow], Elem::F32);
    let y = b.generic(
        &["parallel", "parallel", "parallel", "parallel"],
        &[
            Operand::new(&alpha, rows_ty.clone(), per_row.clone()),
            Operand::new(&beta, rows_ty.clone(), per_row.clone()),
            Operand::new(&bias, rows_ty, per_row),
            Operand::new(&acc4, acc4_ty, identity(4)),
            Operand::new(
                &usum,
                usum_ty,
                map(4, &["d0".into(), "d2".into(), "d3".into()]),
            ),
        ],
        Operand::new(&out, out_ty.clone(), identity(4)),
        Elem::F32,
        &[Elem::F32, Elem::F32, Elem::F32, Elem::I32, Elem::I32],
        |r, g| epilogue(r, &a.scale, [&g[0], &g[1], &g[2], &g[3], &g[4]], relu),
    );
    Ok(b.bind(&format!(
        "tensor.collapse_shape {y} [[0, 1, 2, 3]] : {out_ty} into {}",
        tensor(&[m * oh * ow], Elem::F32)
    )))
}
