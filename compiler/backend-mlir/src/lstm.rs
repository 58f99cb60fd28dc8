//! LSTM: the runtime's `recurrent` kernel (the C prelude's `lstm`/`lstm_step`) statement for
//! statement, one sample. Per direction an `scf.for` over the time steps carries `h`, `c`
//! and `y`; each step computes every gate row's two dot products summed in f32 in index
//! order from +0 (a `linalg.generic` whose reduction is innermost, lowered to plain loops:
//! no reassociation), `a + s`, then `+ Wb`, then `+ Rb`; then per hidden unit the peephole
//! terms, the runtime's Sigmoid (split by sign, the C library's `expf`) and
//! `strata_ir::math::tanh_f32`, each product and sum a separate rounded operation.

use strata_lower::{LstmStep, UnaryFn};

use crate::body::{Body, Operand};
use crate::elementwise::unary_elem;
use crate::text::{dense_f32, identity, map, tensor, Elem};
use crate::MlirError;

/// The step's constants and initial states, resolved by the module printer.
pub(crate) struct LstmInputs<'a> {
    /// `x`: a flat `tensor<seq·I x f32>` value.
    pub x: &'a str,
    /// `W [D, 4H, I]`, `R [D, 4H, H]`, `B [D, 8H]`, `P [D, 3H]`, as stored.
    pub w: &'a [f32],
    pub r: &'a [f32],
    pub b: Option<&'a [f32]>,
    pub p: Option<&'a [f32]>,
    /// Initial states: flat `tensor<D·H x f32>` values (zeros when absent).
    pub h0: Option<&'a str>,
    pub c0: Option<&'a str>,
}

/// The step's three results: `y [seq, D, H]`, `y_h [D, H]`, `y_c [D, H]` (flat tensors).
pub(crate) struct LstmOutputs {
    pub y: String,
    pub y_h: String,
    pub y_c: String,
}

/// One direction's weights (of a block of gate rows) as constants of the function body.
pub(crate) struct Weights {
    /// `[rows, I]` and `[rows, H]`.
    pub w: String,
    pub r: String,
    /// `Wb` and `Rb`, `[rows]` each.
    pub bias: Option<(String, String)>,
    /// `[3H]`: the LSTM's peepholes of `i`, `o`, `f`.
    pub p: Option<String>,
}

/// The LSTM step `s` of node `node` on `inputs`.
pub(crate) fn lstm(
    b: &mut Body,
    node: &str,
    s: &LstmStep,
    inputs: &LstmInputs,
) -> Result<LstmOutputs, MlirError> {
    let (seq, n_in, h, dirs) = (s.seq, s.input, s.hidden, s.backwards.len());
    check_sizes(
        "LSTM",
        node,
        &[
            ("W", Some(inputs.w.len()), dirs * 4 * h * n_in),
            ("R", Some(inputs.r.len()), dirs * 4 * h * h),
            ("B", inputs.b.map(<[f32]>::len), dirs * 8 * h),
            ("P", inputs.p.map(<[f32]>::len), dirs * 3 * h),
        ],
    )?;
    let state_ty = tensor(&[dirs * h], Elem::F32);
    let y_len = seq * dirs * h;
    let tl = TimeLoop::new(b, inputs.x, seq, n_in, h, dirs);
    let mut y = b.empty(&[y_len], Elem::F32);
    let mut y_h = b.empty(&[dirs * h], Elem::F32);
    let mut y_c = b.empty(&[dirs * h], Elem::F32);
    for (d, &back) in s.backwards.iter().enumerate() {
        let weights = direction_weights(b, inputs, d, n_in, h);
        let (hs, cs) = (tl.initial(b, inputs.h0, d), tl.initial(b, inputs.c0, d));
        let c_d = b.index(d);
        let (t_iv, h_it, c_it, y_it) = (b.fresh(), b.fresh(), b.fresh(), b.fresh());
        let res = b.fresh();
        let h_ty = tensor(&[h], Elem::F32);
        let y_ty = tensor(&[y_len], Elem::F32);
        b.line(&format!(
            "{res}:3 = scf.for {t_iv} = {} to {} step {} iter_args({h_it} = {hs}, {c_it} = {cs}, {y_it} = {y}) -> ({h_ty}, {h_ty}, {y_ty}) {{",
            tl.c0, tl.c_seq, tl.c1
        ));
        b.indent += 1;
        let (t, xt) = tl.input_at(b, back, &t_iv);
        let g = gates(b, &weights, (&xt, n_in), (&h_it, h), 4 * h, &tl.zero);
        let (hn, cn) = update(b, &g, (&h_it, &c_it), weights.p.as_deref(), h);
        let yn = tl.store_row(b, &t, &c_d, &hn, &y_it);
        b.line(&format!(
            "scf.yield {hn}, {cn}, {yn} : {h_ty}, {h_ty}, {y_ty}"
        ));
        b.indent -= 1;
        b.line("}");
        y = format!("{res}#2");
        for (acc, v) in [
            (&mut y_h, format!("{res}#0")),
            (&mut y_c, format!("{res}#1")),
        ] {
            *acc = b.bind(&format!(
                "tensor.insert_slice {v} into {acc}[{}] [{h}] [1] : {h_ty} into {state_ty}",
                d * h
            ));
        }
    }
    Ok(LstmOutputs { y, y_h, y_c })
}

/// A recurrent step's weights against the sizes its shapes give (`Internal` if not).
pub(crate) fn check_sizes(
    kind: &str,
    node: &str,
    sizes: &[(&str, Option<usize>, usize)],
) -> Result<(), MlirError> {
    for &(what, got, want) in sizes {
        if got.is_some_and(|g| g != want) {
            return Err(MlirError::Internal(format!(
                "{kind} `{node}`: {what} holds {} values, expected {want}",
                got.unwrap_or(0)
            )));
        }
    }
    Ok(())
}

/// What an LSTM's and a GRU's time loops share: the flat input `x [seq, I]`, the sizes, and
/// every index constant the loops use, defined before them (a constant first defined inside
/// a loop would be cached and reused outside it).
pub(crate) struct TimeLoop {
    x: String,
    seq: usize,
    n_in: usize,
    h: usize,
    dirs: usize,
    pub zero: String,
    pub c0: String,
    pub c1: String,
    pub c_seq: String,
    c_last: String,
    c_in: String,
    c_dirs: String,
    c_h: String,
}

impl TimeLoop {
    pub(crate) fn new(
        b: &mut Body,
        x: &str,
        seq: usize,
        n_in: usize,
        h: usize,
        dirs: usize,
    ) -> Self {
        TimeLoop {
            x: x.to_string(),
            seq,
            n_in,
            h,
            dirs,
            zero: b.f32(0.0),
            c0: b.index(0),
            c1: b.index(1),
            c_seq: b.index(seq),
            c_last: b.index(seq.saturating_sub(1)),
            c_in: b.index(n_in),
            c_dirs: b.index(dirs),
            c_h: b.index(h),
        }
    }

    /// Direction `d`'s initial state: its slice of the flat `[D·H]` value `v`, or zeros.
    pub(crate) fn initial(&self, b: &mut Body, v: Option<&str>, d: usize) -> String {
        let h = self.h;
        match v {
            Some(v) => b.bind(&format!(
                "tensor.extract_slice {v}[{}] [{h}] [1] : {} to {}",
                d * h,
                tensor(&[self.dirs * h], Elem::F32),
                tensor(&[h], Elem::F32)
            )),
            None => b.filled(&[h], Elem::F32, &self.zero),
        }
    }

    /// Inside the loop over `t_iv`: the time step `t` it reads and writes (from the end when
    /// the direction runs `back`), and `x[t]`.
    pub(crate) fn input_at(&self, b: &mut Body, back: bool, t_iv: &str) -> (String, String) {
        let t = if back {
            b.bind(&format!("arith.subi {}, {t_iv} : index", self.c_last))
        } else {
            t_iv.to_string()
        };
        let at = b.bind(&format!("arith.muli {t}, {} : index", self.c_in));
        let xt = b.bind(&format!(
            "tensor.extract_slice {}[{at}] [{}] [1] : {} to {}",
            self.x,
            self.n_in,
            tensor(&[self.seq * self.n_in], Elem::F32),
            tensor(&[self.n_in], Elem::F32)
        ));
        (t, xt)
    }

    /// `y[t, d, :] = hn` in the flat `[seq·D·H]` value `y`; returns the new `y`.
    pub(crate) fn store_row(&self, b: &mut Body, t: &str, c_d: &str, hn: &str, y: &str) -> String {
        let row = b.bind(&format!("arith.muli {t}, {} : index", self.c_dirs));
        let row = b.bind(&format!("arith.addi {row}, {c_d} : index"));
        let off = b.bind(&format!("arith.muli {row}, {} : index", self.c_h));
        b.bind(&format!(
            "tensor.insert_slice {hn} into {y}[{off}] [{}] [1] : {} into {}",
            self.h,
            tensor(&[self.h], Elem::F32),
            tensor(&[self.seq * self.dirs * self.h], Elem::F32)
        ))
    }
}

/// Direction `d`'s slices of the stored weights, printed as constants.
fn direction_weights(
    b: &mut Body,
    inputs: &LstmInputs,
    d: usize,
    n_in: usize,
    h: usize,
) -> Weights {
    let mut constant = |values: &[f32], dims: &[usize]| {
        b.bind(&format!("arith.constant {}", dense_f32(values, dims)))
    };
    let slice_of = |v: &[f32], len: usize, i: usize| v[i * len..(i + 1) * len].to_vec();
    let w = constant(&slice_of(inputs.w, 4 * h * n_in, d), &[4 * h, n_in]);
    let r = constant(&slice_of(inputs.r, 4 * h * h, d), &[4 * h, h]);
    let bias = inputs.b.map(|bv| {
        let both = slice_of(bv, 8 * h, d);
        (
            constant(&both[..4 * h], &[4 * h]),
            constant(&both[4 * h..], &[4 * h]),
        )
    });
    let p = inputs
        .p
        .map(|pv| constant(&slice_of(pv, 3 * h, d), &[3 * h]));
    Weights { w, r, bias, p }
}

/// `Σ_k v[k]·m[j, k]` for every row `j` of the `[rows, len]` constant `m`, each from +0 in
/// index order (one rounded multiply and add per term, as `a += x·w` in the C and Rust).
pub(crate) fn dot_rows(
    b: &mut Body,
    m: &str,
    (v, len): (&str, usize),
    rows: usize,
    zero: &str,
) -> String {
    let init = b.filled(&[rows], Elem::F32, zero);
    b.generic(
        &["parallel", "reduction"],
        &[
            Operand::new(v, tensor(&[len], Elem::F32), map(2, &["d1".into()])),
            Operand::new(m, tensor(&[rows, len], Elem::F32), identity(2)),
        ],
        Operand::new(&init, tensor(&[rows], Elem::F32), map(2, &["d0".into()])),
        Elem::F32,
        &[Elem::F32, Elem::F32],
        |r, g| {
            let p = r.bind(&format!("arith.mulf {}, {} : f32", g[0], g[1]));
            r.bind(&format!("arith.addf {}, {p} : f32", g[2]))
        },
    )
}

/// The `rows` gate pre-activations: `a = Σ x·W`, `s = Σ h·R`, `a + s`, then `+ Wb`, `+ Rb`.
pub(crate) fn gates(
    b: &mut Body,
    wt: &Weights,
    x: (&str, usize),
    h_prev: (&str, usize),
    rows: usize,
    zero: &str,
) -> String {
    let a = dot_rows(b, &wt.w, x, rows, zero);
    let s = dot_rows(b, &wt.r, h_prev, rows, zero);
    let ty = tensor(&[rows], Elem::F32);
    let mut ins = vec![
        Operand::new(&a, ty.clone(), identity(1)),
        Operand::new(&s, ty.clone(), identity(1)),
    ];
    if let Some((wb, rb)) = &wt.bias {
        ins.push(Operand::new(wb, ty.clone(), identity(1)));
        ins.push(Operand::new(rb, ty.clone(), identity(1)));
    }
    let elems = vec![Elem::F32; ins.len()];
    let out = b.empty(&[rows], Elem::F32);
    b.generic(
        &["parallel"],
        &ins,
        Operand::new(&out, ty, identity(1)),
        Elem::F32,
        &elems,
        |r, g| {
            let mut v = r.bind(&format!("arith.addf {}, {} : f32", g[0], g[1]));
            if g.len() == 5 {
                v = r.bind(&format!("arith.addf {v}, {} : f32", g[2]));
                v = r.bind(&format!("arith.addf {v}, {} : f32", g[3]));
            }
            v
        },
    )
}

/// Part `off` (elements `off·H .. (off + 1)·H`) of a `[n·H]` vector, as a `linalg.generic`
/// operand over the hidden units.
pub(crate) fn part(b: &mut Body, v: &str, n: usize, h: usize, off: usize) -> Operand {
    let ty = tensor(&[h], Elem::F32);
    let slice = b.bind(&format!(
        "tensor.extract_slice {v}[{}] [{h}] [1] : {} to {ty}",
        off * h,
        tensor(&[n * h], Elem::F32)
    ));
    Operand::new(&slice, ty, identity(1))
}

/// Per hidden unit: the new cell `c' = σ(g_f + P_f·c)·c + σ(g_i + P_i·c)·tanh(g_c)` and
/// state `h' = σ(g_o + P_o·c')·tanh(c')`, in `lstm_step`'s order; returns `(h', c')`.
/// They are written over `c` and `h_prev` (the loop's carried values, read for the last
/// time here), so the loop yields values equivalent to its arguments and bufferizes in
/// place, as the C updates `h` and `c`.
fn update(
    b: &mut Body,
    g: &str,
    (h_prev, c): (&str, &str),
    p: Option<&str>,
    h: usize,
) -> (String, String) {
    let ty = tensor(&[h], Elem::F32);
    let mut ins = vec![
        part(b, g, 4, h, 0),
        part(b, g, 4, h, 2),
        part(b, g, 4, h, 3),
        Operand::new(c, ty.clone(), identity(1)),
    ];
    if let Some(p) = p {
        ins.push(part(b, p, 3, h, 0));
        ins.push(part(b, p, 3, h, 2));
    }
    let elems = vec![Elem::F32; ins.len()];
    let cn = b.generic(
        &["parallel"],
        &ins,
        Operand::new(c, ty.clone(), identity(1)),
        Elem::F32,
        &elems,
        |r, a| {
            let (mut gi, mut gf, gc, c) = (a[0].clone(), a[1].clone(), &a[2], &a[3]);
            if a.len() == 7 {
                let t = r.bind(&format!("arith.mulf {}, {c} : f32", a[4]));
                gi = r.bind(&format!("arith.addf {gi}, {t} : f32"));
                let t = r.bind(&format!("arith.mulf {}, {c} : f32", a[5]));
                gf = r.bind(&format!("arith.addf {gf}, {t} : f32"));
            }
            let ig = unary_elem(r, &gi, UnaryFn::Sigmoid);
            let fg = unary_elem(r, &gf, UnaryFn::Sigmoid);
            let cc = unary_elem(r, gc, UnaryFn::Tanh);
            let cn = r.bind(&format!("arith.mulf {fg}, {c} : f32"));
            let t = r.bind(&format!("arith.mulf {ig}, {cc} : f32"));
            r.bind(&format!("arith.addf {cn}, {t} : f32"))
        },
    );
    let mut ins = vec![
        part(b, g, 4, h, 1),
        Operand::new(&cn, ty.clone(), identity(1)),
    ];
    if let Some(p) = p {
        ins.push(part(b, p, 3, h, 1));
    }
    let elems = vec![Elem::F32; ins.len()];
    let hn = b.generic(
        &["parallel"],
        &ins,
        Operand::new(h_prev, ty, identity(1)),
        Elem::F32,
        &elems,
        |r, a| {
            let (mut go, cn) = (a[0].clone(), &a[1]);
            if a.len() == 4 {
                let t = r.bind(&format!("arith.mulf {}, {cn} : f32", a[2]));
                go = r.bind(&format!("arith.addf {go}, {t} : f32"));
            }
            let og = unary_elem(r, &go, UnaryFn::Sigmoid);
            let t = unary_elem(r, cn, UnaryFn::Tanh);
            r.bind(&format!("arith.mulf {og}, {t} : f32"))
        },
    );
    (hn, cn)
}
