//! The bit-plane layers as `linalg`: quantize the input (round half to even, clamp, centre),
//! shift the stored `K`-plane codes down to the plane count the call runs at (`q_k = q_K >>
//! (K − k)`, floor, the prefix property), accumulate exactly in `i32` with the named
//! `linalg.matvec` / `linalg.conv_2d_ngchw_gfchw`, and apply the f32 epilogue in the C
//! backend's order: `(alpha·scale)·acc + (beta·scale)·usum`, then `+ bias` (no contraction).

use strata_lower::{ConvGeometry, Layer, Weights};

use crate::body::{Body, Operand};
use crate::gemm;
use crate::text::{dense_f32, dense_i8, identity, map, tensor, Elem};
use crate::{Dot, MlirError};

/// The run-time plane selection of one layer: `j`, the row of its side tables (an `index`
/// value), and `sh`, how far its stored codes shift down (an `i8` value).
pub(crate) struct Selection {
    pub j: String,
    pub sh: String,
}

/// The layer's constants: its codes at its own plane count (`[rows, cols]`, printed by the
/// path that uses them), and side tables `[counts, rows]` and `[counts, 4]` (scale, zero point,
/// code range lo, hi).
struct Tables {
    /// The codes as stored (`[rows, cols]` row-major), for the product kernel's packing.
    raw: Vec<i8>,
    alpha: String,
    beta: String,
    bias: String,
    act: String,
}

/// `width` (at least `rows`) is the row length of the printed side tables, zero padded.
fn tables(b: &mut Body, l: &Layer, width: usize) -> Result<Tables, MlirError> {
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
    let padded = |v: &[f32]| -> Vec<f32> {
        v.chunks(l.rows.max(1))
            .flat_map(|r| r.iter().copied().chain(std::iter::repeat(0.0)).take(width))
            .collect()
    };
    let mut constant = |text: String| b.bind(&format!("arith.constant {text}"));
    Ok(Tables {
        raw: codes,
        alpha: constant(dense_f32(&padded(&l.alpha), &[s, width])),
        beta: constant(dense_f32(&padded(&l.beta), &[s, width])),
        bias: constant(dense_f32(&padded(&l.bias), &[s, width])),
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

/// `u = clamp(round_half_even(x / scale) + zero, lo, hi) − zero` as `e` (i32, or i16 when
/// [`fits_i16`]; NaN gives 0), the comparisons of the C backend's `bp_quantize`.
fn quantize(b: &mut Body, x: &str, n: usize, a: &Act, e: Elem) -> String {
    let out = b.empty(&[n], e);
    let (fty, ity) = (tensor(&[n], Elem::F32), tensor(&[n], e));
    b.generic(
        &["parallel"],
        &[Operand::new(x, fty, identity(1))],
        Operand::new(&out, ity, identity(1)),
        e,
        &[Elem::F32],
        |r, args| quantize_value(r, &args[0], a, e),
    )
}

/// One value of [`quantize`], in a `linalg.generic` body.
fn quantize_value(r: &mut Body, v: &str, a: &Act, e: Elem) -> String {
    let (q, nan) = clamped_code(r, v, a);
    let c = r.bind(&format!("arith.subf {q}, {} : f32", a.zero));
    let t = e.name();
    let i = r.bind(&format!("arith.fptosi {c} : f32 to {t}"));
    let z = r.constant("0", t);
    r.bind(&format!("arith.select {nan}, {z}, {i} : {t}"))
}

/// `q = clamp(round_half_even(v / scale) + zero, lo, hi)` as f32, with whether the rounded
/// value is NaN (the codes then stand for `u = 0`): the C kernel's comparisons.
fn clamped_code(r: &mut Body, v: &str, a: &Act) -> (String, String) {
    let d = r.bind(&format!("arith.divf {v}, {} : f32", a.scale));
    let q = r.bind(&format!("math.roundeven {d} : f32"));
    let nan = r.bind(&format!("arith.cmpf uno, {q}, {q} : f32"));
    let q = r.bind(&format!("arith.addf {q}, {} : f32", a.zero));
    let below = r.bind(&format!("arith.cmpf olt, {q}, {} : f32", a.lo));
    let q = r.bind(&format!("arith.select {below}, {}, {q} : f32", a.lo));
    let above = r.bind(&format!("arith.cmpf ogt, {q}, {} : f32", a.hi));
    let q = r.bind(&format!("arith.select {above}, {}, {q} : f32", a.hi));
    (q, nan)
}

/// The codes shifted down by `sh` (an arithmetic shift: floor).
fn shifted_codes(b: &mut Body, t: &Tables, l: &Layer, sh: &str) -> String {
    let ty = tensor(&[l.rows, l.cols], Elem::I8);
    let codes = b.bind(&format!(
        "arith.constant {}",
        dense_i8(&t.raw, &[l.rows, l.cols])
    ));
    let out = b.empty(&[l.rows, l.cols], Elem::I8);
    b.generic(
        &["parallel", "parallel"],
        &[Operand::new(&codes, ty.clone(), identity(2))],
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
    dot: Dot,
) -> Result<String, MlirError> {
    if let Some(dot) = product_dot(l, dot) {
        return linear_product(b, l, x, (sel, relu), dot);
    }
    let (rows, cols, s) = (l.rows, l.cols, l.counts.len());
    let t = tables(b, l, rows)?;
    let a = act_row(b, &t, s, &sel.j);
    let u = quantize(b, x, cols, &a, Elem::I32);
    let usum = sum_all(b, &u, cols, Elem::I32);
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

/// The exact sum of an `e` (i32 or i16) vector as `tensor<i32>`.
fn sum_all(b: &mut Body, u: &str, n: usize, e: Elem) -> String {
    let zero = b.i32(0);
    let init = b.filled(&[], Elem::I32, &zero);
    b.generic(
        &["reduction"],
        &[Operand::new(u, tensor(&[n], e), identity(1))],
        Operand::new(&init, tensor(&[], Elem::I32), map(1, &[])),
        Elem::I32,
        &[e],
        |r, g| {
            let v = if e == Elem::I32 {
                g[0].clone()
            } else {
                r.bind(&format!("arith.extsi {} : {} to i32", g[0], e.name()))
            };
            r.bind(&format!("arith.addi {}, {v} : i32", g[1]))
        },
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
    dot: Dot,
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
    let [hp, wp] = crate::text::padded_extent(w, [ph, pw]);

    if let Some(dot) = product_dot(l, dot).filter(|_| gr == 1 && oh * ow > 0) {
        return conv_product(b, l, g, x, (sel, relu), dot);
    }
    let t = tables(b, l, m)?;
    let a = act_row(b, &t, s, &sel.j);
    let u = quantize(b, x, c * h * wd, &a, Elem::I32);
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

/// The product kernel's form for `l` ([`gemm`]), or `None` for the `i32` named ops.
/// [`Dot::Vnni`] needs every count's codes `q − lo` in `0..=255` and an integral offset
/// `zero − lo` (activations of at most 8 bits); [`Dot::Pairs`] needs the centred codes
/// `u = q − zero` in `i16` (at most 16 bits).
fn product_dot(l: &Layer, dot: Dot) -> Option<Dot> {
    let rows = || {
        l.act_limits
            .iter()
            .enumerate()
            .map(|(c, &(lo, hi))| (lo, hi, l.act.get(2 * c + 1).copied().unwrap_or(f32::NAN)))
    };
    let bytes = rows().all(|(lo, hi, zero)| {
        let o = zero - lo;
        hi - lo <= 255.0 && (0.0..=255.0).contains(&o) && o.fract() == 0.0 && lo.fract() == 0.0
    });
    let shorts = rows()
        .all(|(lo, hi, zero)| lo - zero >= f32::from(i16::MIN) && hi - zero <= f32::from(i16::MAX));
    match dot {
        Dot::Vnni if bytes => Some(Dot::Vnni),
        _ if shorts => Some(Dot::Pairs),
        _ => None,
    }
}

/// The input codes of the product kernel in its element type: [`Dot::Pairs`]: `u` as
/// `i16`; [`Dot::Vnni`]: `q − lo = u + o` as `u8` (NaN: `o`, that is `u = 0`).
fn product_code(r: &mut Body, v: &str, a: &Act, dot: Dot, o: &Offset) -> String {
    match dot {
        Dot::Pairs => quantize_value(r, v, a, Elem::I16),
        Dot::Vnni => {
            let (q, nan) = clamped_code(r, v, a);
            let c = r.bind(&format!("arith.subf {q}, {} : f32", a.lo));
            let i = r.bind(&format!("arith.fptoui {c} : f32 to i8"));
            r.bind(&format!("arith.select {nan}, {}, {i} : i8", o.byte))
        }
    }
}

/// The offset `o = zero − lo` of this call's count as the kernel's padding code (`i8`
/// bits of a `u8`: the code of `u = 0`) and as `i32`; for [`Dot::Pairs`] the padding code
/// is 0 and there is no offset.
struct Offset {
    byte: String,
    int: String,
    pad: String,
}

fn offset(b: &mut Body, a: &Act, dot: Dot) -> Offset {
    match dot {
        Dot::Pairs => Offset {
            byte: String::new(),
            int: b.i32(0),
            pad: b.constant("0", "i16"),
        },
        Dot::Vnni => {
            let o = b.bind(&format!("arith.subf {}, {} : f32", a.zero, a.lo));
            let byte = b.bind(&format!("arith.fptoui {o} : f32 to i8"));
            Offset {
                pad: byte.clone(),
                byte,
                int: b.bind(&format!("arith.fptosi {o} : f32 to i32")),
            }
        }
    }
}

/// `Σ (code − o)` over the last dimension of `x` (`dims`, codes of [`gemm::Dims::x_elem`]):
/// the sum of the centred codes `u`, padding included (its code is `o`, so it adds 0).
fn code_sum(b: &mut Body, x: &str, dims: &[usize], dot: Dot, o: &Offset) -> String {
    let e = match dot {
        Dot::Pairs => Elem::I16,
        Dot::Vnni => Elem::I8,
    };
    let rank = dims.len();
    let out_dims = &dims[..rank - 1];
    let zero = b.i32(0);
    let init = b.filled(out_dims, Elem::I32, &zero);
    let mut its = vec!["parallel"; rank - 1];
    its.push("reduction");
    let outer: Vec<String> = (0..rank - 1).map(|d| format!("d{d}")).collect();
    b.generic(
        &its,
        &[Operand::new(x, tensor(dims, e), identity(rank))],
        Operand::new(&init, tensor(out_dims, Elem::I32), map(rank, &outer)),
        Elem::I32,
        &[e],
        |r, g| {
            let v = match dot {
                Dot::Pairs => r.bind(&format!("arith.extsi {} : i16 to i32", g[0])),
                Dot::Vnni => {
                    let v = r.bind(&format!("arith.extui {} : i8 to i32", g[0]));
                    r.bind(&format!("arith.subi {v}, {} : i32", o.int))
                }
            };
            r.bind(&format!("arith.addi {}, {v} : i32", g[1]))
        },
    )
}

/// The shifted code sums of the kernel's [`Dot::Vnni`] correction, row `j` of a
/// `[counts, M_pad]` constant ([`gemm::code_sums`]).
fn code_sums_row(b: &mut Body, t: &Tables, l: &Layer, d: &gemm::Dims, j: &str) -> String {
    let s = l.counts.len();
    let sums = gemm::code_sums(&t.raw, l.rows, l.k, &l.counts, d);
    let table = b.bind(&format!(
        "arith.constant {}",
        crate::text::dense_i32(&sums, &[s, d.m])
    ));
    let c0 = b.index(0);
    b.bind(&format!(
        "tensor.extract_slice {table}[{j}, {c0}] [1, {}] [1, 1] : {} to {}",
        d.m,
        tensor(&[s, d.m], Elem::I32),
        tensor(&[d.m], Elem::I32)
    ))
}

/// The packed codes of `l` as a constant of the kernel's layout.
fn packed_codes(b: &mut Body, t: &Tables, l: &Layer, channels: usize, d: &gemm::Dims) -> String {
    let packed = gemm::pack(&t.raw, l.rows, channels, d);
    b.bind(&format!(
        "arith.constant {}",
        dense_i8(&packed, &d.w_dims())
    ))
}

/// A linear layer through the product kernel: the quantized input padded to whole groups
/// of channels, up to 4 weight vectors a tile (independent accumulators for a product that
/// reads each weight once).
fn linear_product(
    b: &mut Body,
    l: &Layer,
    x: &str,
    (sel, relu): (&Selection, bool),
    dot: Dot,
) -> Result<String, MlirError> {
    let (rows, cols, s) = (l.rows, l.cols, l.counts.len());
    let vecs = rows.div_ceil(gemm::LANES).min(4);
    let mut d = gemm::Dims::new(
        (1, cols, rows),
        0,
        gemm::Windows::linear(),
        gemm::Tile { rows: 1, vecs },
        dot,
    );
    d.x_len = d.c;
    let xe = d.x_elem();
    let t = tables(b, l, d.m)?;
    let a = act_row(b, &t, s, &sel.j);
    let o = offset(b, &a, dot);
    let full = b.filled(&[d.x_len], xe, &o.pad);
    let u_ty = tensor(&[cols], xe);
    let slice = b.bind(&format!(
        "tensor.extract_slice {full}[0] [{cols}] [1] : {} to {u_ty}",
        tensor(&[d.x_len], xe)
    ));
    let x_ty = tensor(&[cols], Elem::F32);
    let u = b.generic(
        &["parallel"],
        &[Operand::new(x, x_ty, identity(1))],
        Operand::new(&slice, u_ty.clone(), identity(1)),
        xe,
        &[Elem::F32],
        |r, v| product_code(r, &v[0], &a, dot, &o),
    );
    let u = b.bind(&format!(
        "tensor.insert_slice {u} into {full}[0] [{cols}] [1] : {u_ty} into {}",
        tensor(&[d.x_len], xe)
    ));
    let u2 = b.bind(&format!(
        "tensor.expand_shape {u} [[0, 1]] output_shape [1, {}] : {} into {}",
        d.x_len,
        tensor(&[d.x_len], xe),
        tensor(&[1, d.x_len], xe)
    ));
    let usum = code_sum(b, &u2, &[1, d.x_len], dot, &o);
    Ok(run_product(
        b,
        l,
        (&t, &a, &o),
        (&u, &usum),
        cols,
        (sel, relu),
        &d,
    ))
}

/// An ungrouped convolution through the product kernel. The input is quantized straight
/// into a padded channels-last map (channels padded to whole groups, padding holding the
/// code of `u = 0`), which the kernel reads window by window; the zero-point term `Σ u`
/// over each window is the window sum of the per-pixel channel sums.
fn conv_product(
    b: &mut Body,
    l: &Layer,
    g: ConvGeometry,
    x: &str,
    (sel, relu): (&Selection, bool),
    dot: Dot,
) -> Result<String, MlirError> {
    let w = &g.window;
    let [c, h, wd] = w.input;
    let [oh, ow] = w.output;
    let [kh, kw] = w.kernel;
    let [sh, sw] = w.strides;
    let [dh, dw] = w.dilations;
    let [ph, pw] = g.pads;
    let (m, s) = (g.out_channels, l.counts.len());
    let [hp, wp] = crate::text::padded_extent(w, [ph, pw]);
    let cg = c.div_ceil(gemm::group(dot)) * gemm::group(dot);
    let windows = gemm::Windows {
        ow,
        row_step: sh * wp * cg,
        col_step: sw * cg,
        taps: [kh, kw],
        tap_step: [dh * wp * cg, dw * cg],
    };
    // 4 positions × 32 outputs a tile (8 accumulators of 16 lanes); fewer where the layer
    // has fewer.
    let rows = if oh * ow >= 4 { 4 } else { 1 };
    let vecs = m.div_ceil(gemm::LANES).min(2);
    let d = gemm::Dims::new(
        (oh * ow, c, m),
        hp * wp * cg,
        windows,
        gemm::Tile { rows, vecs },
        dot,
    );
    let xe = d.x_elem();
    let t = tables(b, l, d.m)?;
    let a = act_row(b, &t, s, &sel.j);
    let o = offset(b, &a, dot);

    // u[h + ph, w + pw, c] = the code of x[c, h, w]; the code of u = 0 elsewhere.
    let map_ty = tensor(&[hp, wp, cg], xe);
    let full = b.filled(&[hp, wp, cg], xe, &o.pad);
    let inner_ty = tensor(&[h, wd, c], xe);
    let inner = b.bind(&format!(
        "tensor.extract_slice {full}[{ph}, {pw}, 0] [{h}, {wd}, {c}] [1, 1, 1] : {map_ty} to {inner_ty}"
    ));
    let x3_ty = tensor(&[c, h, wd], Elem::F32);
    let x3 = b.bind(&format!(
        "tensor.expand_shape {x} [[0, 1, 2]] output_shape [{c}, {h}, {wd}] : {} into {x3_ty}",
        tensor(&[c * h * wd], Elem::F32)
    ));
    let quantized = b.generic(
        &["parallel"; 3],
        &[Operand::new(
            &x3,
            x3_ty,
            map(3, &["d2".into(), "d0".into(), "d1".into()]),
        )],
        Operand::new(&inner, inner_ty.clone(), identity(3)),
        xe,
        &[Elem::F32],
        |r, v| product_code(r, &v[0], &a, dot, &o),
    );
    let u = b.bind(&format!(
        "tensor.insert_slice {quantized} into {full}[{ph}, {pw}, 0] [{h}, {wd}, {c}] [1, 1, 1] : {inner_ty} into {map_ty}"
    ));
    // Σ_c u per pixel, then per window.
    let pixel = code_sum(b, &u, &[hp, wp, cg], dot, &o);
    let pixel_ty = tensor(&[hp, wp], Elem::I32);
    let zero = b.i32(0);
    let usum_ty = tensor(&[oh, ow], Elem::I32);
    let usum0 = b.filled(&[oh, ow], Elem::I32, &zero);
    let window = b.empty(&[kh, kw], Elem::I32);
    let usum = b.generic(
        &["parallel", "parallel", "reduction", "reduction"],
        &[
            Operand::new(
                &pixel,
                pixel_ty,
                map(
                    4,
                    &[
                        format!("d0 * {sh} + d2 * {dh}"),
                        format!("d1 * {sw} + d3 * {dw}"),
                    ],
                ),
            ),
            // The window's extent (its values are never read).
            Operand::new(
                &window,
                tensor(&[kh, kw], Elem::I32),
                map(4, &["d2".into(), "d3".into()]),
            ),
        ],
        Operand::new(&usum0, usum_ty.clone(), map(4, &["d0".into(), "d1".into()])),
        Elem::I32,
        &[Elem::I32, Elem::I32],
        |r, g| r.bind(&format!("arith.addi {}, {} : i32", g[2], g[0])),
    );
    let usum = b.bind(&format!(
        "tensor.collapse_shape {usum} [[0, 1]] : {usum_ty} into {}",
        tensor(&[oh * ow], Elem::I32)
    ));
    let flat = b.bind(&format!(
        "tensor.collapse_shape {u} [[0, 1, 2]] : {map_ty} into {}",
        tensor(&[d.x_len], xe)
    ));
    Ok(run_product(
        b,
        l,
        (&t, &a, &o),
        (&flat, &usum),
        c,
        (sel, relu),
        &d,
    ))
}

/// The product kernel on the prepared input `x` (and its window sums `usum`) with the
/// layer's packed codes (`channels` per tap) and the side-table rows of this call's count;
/// returns the flat channels-first output `[M · P]`.
fn run_product(
    b: &mut Body,
    l: &Layer,
    (t, a, o): (&Tables, &Act, &Offset),
    (x, usum): (&str, &str),
    channels: usize,
    (sel, relu): (&Selection, bool),
    d: &gemm::Dims,
) -> String {
    let s = l.counts.len();
    let w = packed_codes(b, t, l, channels, d);
    let (alpha, beta, bias) = (
        row(b, &t.alpha, s, d.m, &sel.j),
        row(b, &t.beta, s, d.m, &sel.j),
        row(b, &t.bias, s, d.m, &sel.j),
    );
    let sums = (d.dot == Dot::Vnni).then(|| code_sums_row(b, t, l, d, &sel.j));
    let epi = gemm::Epilogue {
        scale: &a.scale,
        alpha: &alpha,
        beta: &beta,
        bias: &bias,
        usum,
        relu,
        offset: sums.as_deref().map(|sums| (o.int.as_str(), sums)),
    };
    let y = gemm::product(b, (x, &w, &sel.sh), &epi, d, l.rows);
    b.bind(&format!(
        "tensor.collapse_shape {y} [[0, 1]] : {} into {}",
        tensor(&[l.rows, d.p], Elem::F32),
        tensor(&[l.rows * d.p], Elem::F32)
    ))
}
