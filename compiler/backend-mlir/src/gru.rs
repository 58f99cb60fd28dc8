//! GRU: the runtime's `recurrent::gru` kernel (the C prelude's `gru`/`gru_step`) statement for
//! statement, one sample. Per direction an `scf.for` over the time steps carries `h` and `y`;
//! each step computes the `z, r` rows as `a + s`, then `+ Wb`, then `+ Rb` (the LSTM's gate
//! block, `lstm::gates`), and the `h` gate with the reset gate applied after its recurrent
//! product (`linear_before_reset`) or to `h` before it; then per hidden unit
//! `h' = (1 − z)·tanh(p) + z·h`, each product and sum a separate rounded operation.

use strata_lower::{GruStep, UnaryFn};

use crate::body::{Body, Operand};
use crate::elementwise::unary_elem;
use crate::lstm::{check_sizes, dot_rows, gates, part, TimeLoop, Weights};
use crate::text::{dense_f32, identity, tensor, Elem};
use crate::MlirError;

/// The step's constants and initial state, resolved by the module printer.
pub(crate) struct GruInputs<'a> {
    /// `x`: a flat `tensor<seq·I x f32>` value.
    pub x: &'a str,
    /// `W [D, 3H, I]`, `R [D, 3H, H]`, `B [D, 6H]`, as stored.
    pub w: &'a [f32],
    pub r: &'a [f32],
    pub b: Option<&'a [f32]>,
    /// The initial state: a flat `tensor<D·H x f32>` value (zeros when absent).
    pub h0: Option<&'a str>,
}

/// The step's two results: `y [seq, D, H]`, `y_h [D, H]` (flat tensors).
pub(crate) struct GruOutputs {
    pub y: String,
    pub y_h: String,
}

/// One direction's weights: the `z, r` block (`2H` rows) and the `h` block (`H` rows).
struct DirWeights {
    zr: Weights,
    h: Weights,
}

/// The GRU step `s` of node `node` on `inputs`.
pub(crate) fn gru(
    b: &mut Body,
    node: &str,
    s: &GruStep,
    inputs: &GruInputs,
) -> Result<GruOutputs, MlirError> {
    let (seq, n_in, h, dirs) = (s.seq, s.input, s.hidden, s.backwards.len());
    check_sizes(
        "GRU",
        node,
        &[
            ("W", Some(inputs.w.len()), dirs * 3 * h * n_in),
            ("R", Some(inputs.r.len()), dirs * 3 * h * h),
            ("B", inputs.b.map(<[f32]>::len), dirs * 6 * h),
        ],
    )?;
    let state_ty = tensor(&[dirs * h], Elem::F32);
    let y_len = seq * dirs * h;
    let tl = TimeLoop::new(b, inputs.x, seq, n_in, h, dirs);
    let zero = tl.zero.clone();
    let mut y = b.empty(&[y_len], Elem::F32);
    let mut y_h = b.empty(&[dirs * h], Elem::F32);
    for (d, &back) in s.backwards.iter().enumerate() {
        let wt = direction_weights(b, inputs, d, n_in, h);
        let hs = tl.initial(b, inputs.h0, d);
        let c_d = b.index(d);
        let (t_iv, h_it, y_it) = (b.fresh(), b.fresh(), b.fresh());
        let res = b.fresh();
        let h_ty = tensor(&[h], Elem::F32);
        let y_ty = tensor(&[y_len], Elem::F32);
        b.line(&format!(
            "{res}:2 = scf.for {t_iv} = {} to {} step {} iter_args({h_it} = {hs}, {y_it} = {y}) -> ({h_ty}, {y_ty}) {{",
            tl.c0, tl.c_seq, tl.c1
        ));
        b.indent += 1;
        let (t, xt) = tl.input_at(b, back, &t_iv);
        let zr = gates(b, &wt.zr, (&xt, n_in), (&h_it, h), 2 * h, &zero);
        let hn = if s.linear_before_reset {
            let a = dot_rows(b, &wt.h.w, (&xt, n_in), h, &zero);
            let r = dot_rows(b, &wt.h.r, (&h_it, h), h, &zero);
            update_after(b, &zr, (&a, &r), wt.h.bias.as_ref(), &h_it, h)
        } else {
            let rh = reset_state(b, &zr, &h_it, h);
            let g = gates(b, &wt.h, (&xt, n_in), (&rh, h), h, &zero);
            update_before(b, &zr, &g, &h_it, h)
        };
        let yn = tl.store_row(b, &t, &c_d, &hn, &y_it);
        b.line(&format!("scf.yield {hn}, {yn} : {h_ty}, {y_ty}"));
        b.indent -= 1;
        b.line("}");
        y = format!("{res}#1");
        y_h = b.bind(&format!(
            "tensor.insert_slice {res}#0 into {y_h}[{}] [{h}] [1] : {h_ty} into {state_ty}",
            d * h
        ));
    }
    Ok(GruOutputs { y, y_h })
}

/// Direction `d`'s slices of the stored weights, printed as constants, split into the `z, r`
/// rows and the `h` rows.
fn direction_weights(
    b: &mut Body,
    inputs: &GruInputs,
    d: usize,
    n_in: usize,
    h: usize,
) -> DirWeights {
    let mut constant = |values: &[f32], dims: &[usize]| {
        b.bind(&format!("arith.constant {}", dense_f32(values, dims)))
    };
    let w = &inputs.w[d * 3 * h * n_in..(d + 1) * 3 * h * n_in];
    let r = &inputs.r[d * 3 * h * h..(d + 1) * 3 * h * h];
    let bias = inputs.b.map(|bv| &bv[d * 6 * h..(d + 1) * 6 * h]);
    let zr = Weights {
        w: constant(&w[..2 * h * n_in], &[2 * h, n_in]),
        r: constant(&r[..2 * h * h], &[2 * h, h]),
        bias: bias.map(|bv| {
            (
                constant(&bv[..2 * h], &[2 * h]),
                constant(&bv[3 * h..5 * h], &[2 * h]),
            )
        }),
        p: None,
    };
    let hw = Weights {
        w: constant(&w[2 * h * n_in..], &[h, n_in]),
        r: constant(&r[2 * h * h..], &[h, h]),
        bias: bias.map(|bv| {
            (
                constant(&bv[2 * h..3 * h], &[h]),
                constant(&bv[5 * h..], &[h]),
            )
        }),
        p: None,
    };
    DirWeights { zr, h: hw }
}

/// `σ(g_r)·h` per hidden unit: the state the `h` gate's recurrent product reads without
/// `linear_before_reset`.
fn reset_state(b: &mut Body, zr: &str, h_prev: &str, h: usize) -> String {
    let ty = tensor(&[h], Elem::F32);
    let ins = [
        part(b, zr, 2, h, 1),
        Operand::new(h_prev, ty.clone(), identity(1)),
    ];
    let out = b.empty(&[h], Elem::F32);
    b.generic(
        &["parallel"],
        &ins,
        Operand::new(&out, ty, identity(1)),
        Elem::F32,
        &[Elem::F32, Elem::F32],
        |r, a| {
            let rg = unary_elem(r, &a[0], UnaryFn::Sigmoid);
            r.bind(&format!("arith.mulf {rg}, {} : f32", a[1]))
        },
    )
}

/// `h' = (1 − z)·tanh(p) + z·h`, written over `h_prev` (the loop's carried value, read for
/// the last time here, so the loop bufferizes in place as the C updates `h`).
fn blend(r: &mut Body, z_pre: &str, p: &str, h: &str) -> String {
    let one = r.f32(1.0);
    let z = unary_elem(r, z_pre, UnaryFn::Sigmoid);
    let u = r.bind(&format!("arith.subf {one}, {z} : f32"));
    let hh = unary_elem(r, p, UnaryFn::Tanh);
    let u = r.bind(&format!("arith.mulf {u}, {hh} : f32"));
    let t = r.bind(&format!("arith.mulf {z}, {h} : f32"));
    r.bind(&format!("arith.addf {u}, {t} : f32"))
}

/// The update with `linear_before_reset`: `a = Σ x·W_h (+ Wb_h)`, `s = Σ h·R_h (+ Rb_h)`,
/// `p = a + σ(g_r)·s`.
fn update_after(
    b: &mut Body,
    zr: &str,
    (a, s): (&str, &str),
    bias: Option<&(String, String)>,
    h_prev: &str,
    h: usize,
) -> String {
    let ty = tensor(&[h], Elem::F32);
    let mut ins = vec![
        part(b, zr, 2, h, 0),
        part(b, zr, 2, h, 1),
        Operand::new(a, ty.clone(), identity(1)),
        Operand::new(s, ty.clone(), identity(1)),
        Operand::new(h_prev, ty.clone(), identity(1)),
    ];
    if let Some((wb, rb)) = bias {
        ins.push(Operand::new(wb, ty.clone(), identity(1)));
        ins.push(Operand::new(rb, ty.clone(), identity(1)));
    }
    let elems = vec![Elem::F32; ins.len()];
    b.generic(
        &["parallel"],
        &ins,
        Operand::new(h_prev, ty, identity(1)),
        Elem::F32,
        &elems,
        |r, g| {
            let (mut a, mut s) = (g[2].clone(), g[3].clone());
            if g.len() == 8 {
                a = r.bind(&format!("arith.addf {a}, {} : f32", g[5]));
                s = r.bind(&format!("arith.addf {s}, {} : f32", g[6]));
            }
            let rg = unary_elem(r, &g[1], UnaryFn::Sigmoid);
            let t = r.bind(&format!("arith.mulf {rg}, {s} : f32"));
            let p = r.bind(&format!("arith.addf {a}, {t} : f32"));
            blend(r, &g[0], &p, &g[4])
        },
    )
}

/// The update without `linear_before_reset`: `p` is the `h` gate's pre-activation `g`.
fn update_before(b: &mut Body, zr: &str, g: &str, h_prev: &str, h: usize) -> String {
    let ty = tensor(&[h], Elem::F32);
    let ins = [
        part(b, zr, 2, h, 0),
        Operand::new(g, ty.clone(), identity(1)),
        Operand::new(h_prev, ty.clone(), identity(1)),
    ];
    b.generic(
        &["parallel"],
        &ins,
        Operand::new(h_prev, ty, identity(1)),
        Elem::F32,
        &[Elem::F32; 3],
        |r, a| blend(r, &a[0], &a[1], &a[2]),
    )
}
