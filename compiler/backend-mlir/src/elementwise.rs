//! Element-wise functions, broadcasting binaries, reductions and softmax: the runtime's
//! formulas in the C backend's operation order (`prelude.c`: `unary`, `binary`, `reduce`,
//! `softmax`), one MLIR operation per C statement, so nothing is contracted or reassociated.

use strata_lower::{BinaryFn, Broadcast, CompareOp, ReduceFn, UnaryFn};

use crate::body::{Body, Operand};
use crate::text::{identity, map, tensor, Elem};

/// `a ? b : c` on f32.
fn select(r: &mut Body, cond: &str, b: &str, c: &str) -> String {
    r.bind(&format!("arith.select {cond}, {b}, {c} : f32"))
}

fn cmp(r: &mut Body, pred: &str, a: &str, b: &str) -> String {
    r.bind(&format!("arith.cmpf {pred}, {a}, {b} : f32"))
}

fn op(r: &mut Body, name: &str, a: &str, b: &str) -> String {
    r.bind(&format!("arith.{name} {a}, {b} : f32"))
}

/// `a != a ? b : (b > a ? b : a)`: the runtime's `f32::max` (`max_of` in C).
fn max_of(r: &mut Body, a: &str, b: &str) -> String {
    let nan = cmp(r, "uno", a, a);
    let gt = cmp(r, "ogt", b, a);
    let m = select(r, &gt, b, a);
    select(r, &nan, b, &m)
}

/// `a != a ? b : (b < a ? b : a)`: `f32::min` (`min_of`).
fn min_of(r: &mut Body, a: &str, b: &str) -> String {
    let nan = cmp(r, "uno", a, a);
    let lt = cmp(r, "olt", b, a);
    let m = select(r, &lt, b, a);
    select(r, &nan, b, &m)
}

/// `p > q || p != p ? p : q` (`max_pq`), or with `<` (`min_pq`).
fn pick_pq(r: &mut Body, pred: &str, p: &str, q: &str) -> String {
    let wins = cmp(r, pred, p, q);
    let nan = cmp(r, "uno", p, p);
    let either = r.bind(&format!("arith.ori {wins}, {nan} : i1"));
    select(r, &either, p, q)
}

/// `pow_f32(x, e)` of the C prelude (the runtime's formula): the exact sequences for the
/// exponents 1, 2, 3, −1 and 0.5 and `powf` otherwise, all computed and one selected.
fn pow_elem(r: &mut Body, x: &str, e: &str) -> String {
    let (zero, one) = (r.f32(0.0), r.f32(1.0));
    let (two, three, m1, half) = (r.f32(2.0), r.f32(3.0), r.f32(-1.0), r.f32(0.5));
    let (inf, ninf) = (r.f32(f32::INFINITY), r.f32(f32::NEG_INFINITY));
    let general = r.bind(&format!("math.powf {x}, {e} : f32"));
    let root = r.bind(&format!("math.sqrt {x} : f32"));
    let is_ninf = cmp(r, "oeq", x, &ninf);
    let root = select(r, &is_ninf, &inf, &root);
    let is_zero = cmp(r, "oeq", x, &zero);
    let root = select(r, &is_zero, &zero, &root);
    let sq = op(r, "mulf", x, x);
    let cube = op(r, "mulf", &sq, x);
    let recip = op(r, "divf", &one, x);
    let mut y = general;
    // Innermost first, so the first matching exponent of the C `if` chain wins.
    for (c, v) in [(&half, &root), (&m1, &recip), (&three, &cube), (&two, &sq)] {
        let hit = cmp(r, "oeq", e, c);
        y = select(r, &hit, v, &y);
    }
    let hit = cmp(r, "oeq", e, &one);
    select(r, &hit, x, &y)
}

/// One element of `unary()`.
pub(crate) fn unary_elem(r: &mut Body, v: &str, f: UnaryFn) -> String {
    match f {
        UnaryFn::Sigmoid => {
            let zero = r.f32(0.0);
            let one = r.f32(1.0);
            let pos = cmp(r, "oge", v, &zero);
            // v >= 0: 1 / (1 + exp(0 - v)); else exp(v) / (1 + exp(v)).
            let nv = op(r, "subf", &zero, v);
            let arg = select(r, &pos, &nv, v);
            let t = r.bind(&format!("math.exp {arg} : f32"));
            let d = op(r, "addf", &one, &t);
            let num = select(r, &pos, &one, &t);
            op(r, "divf", &num, &d)
        }
        UnaryFn::LeakyRelu { alpha } => {
            let zero = r.f32(0.0);
            let a = r.f32(alpha);
            let neg = cmp(r, "olt", v, &zero);
            let s = op(r, "mulf", &a, v);
            select(r, &neg, &s, v)
        }
        UnaryFn::HardSigmoid { alpha, beta } => {
            let (a, b) = (r.f32(alpha), r.f32(beta));
            let (zero, one) = (r.f32(0.0), r.f32(1.0));
            let t = op(r, "mulf", &a, v);
            let t = op(r, "addf", &t, &b);
            let m = min_of(r, &one, &t);
            max_of(r, &zero, &m)
        }
        UnaryFn::HardSwish => {
            let sixth = r.f32((1.0f64 / 6.0) as f32);
            let (half, zero, one) = (r.f32(0.5), r.f32(0.0), r.f32(1.0));
            let t = op(r, "mulf", &sixth, v);
            let t = op(r, "addf", &t, &half);
            let m = min_of(r, &one, &t);
            let m = max_of(r, &zero, &m);
            op(r, "mulf", v, &m)
        }
        UnaryFn::Clip { lo, hi } => {
            let mut x = v.to_string();
            if let Some(lo) = lo {
                let l = r.f32(lo);
                let below = cmp(r, "olt", &x, &l);
                x = select(r, &below, &l, &x);
            }
            if let Some(hi) = hi {
                let h = r.f32(hi);
                let above = cmp(r, "ogt", &x, &h);
                x = select(r, &above, &h, &x);
            }
            x
        }
        UnaryFn::Neg => {
            let zero = r.f32(0.0);
            op(r, "subf", &zero, v)
        }
        UnaryFn::Reciprocal => {
            let one = r.f32(1.0);
            op(r, "divf", &one, v)
        }
        UnaryFn::Abs => r.bind(&format!("math.absf {v} : f32")),
        UnaryFn::Floor => r.bind(&format!("math.floor {v} : f32")),
        UnaryFn::Ceil => r.bind(&format!("math.ceil {v} : f32")),
        UnaryFn::Sqrt => r.bind(&format!("math.sqrt {v} : f32")),
        // LLVM lowers these to calls of the C library's expf and logf, which Rust's
        // f32::exp and f32::ln call too.
        UnaryFn::Exp => r.bind(&format!("math.exp {v} : f32")),
        UnaryFn::Log => r.bind(&format!("math.log {v} : f32")),
        UnaryFn::Tanh => det_math(r, v, false),
        UnaryFn::Erf => det_math(r, v, true),
    }
}

/// An f64 constant by its bits.
fn f64c(r: &mut Body, v: f64) -> String {
    r.constant(&format!("0x{:016X}", v.to_bits()), "f64")
}

fn op64(r: &mut Body, name: &str, a: &str, b: &str) -> String {
    r.bind(&format!("arith.{name} {a}, {b} : f64"))
}

/// `strata_ir::math::exp_split(y)` followed by the scale factor: `(expm1(r), k as f64, 2^k)`.
fn exp_split(r: &mut Body, y: &str) -> (String, String, String) {
    use strata_ir::math::{EXPM1_TAYLOR, INV_LN2, LN2_HI, LN2_LO};
    let (inv, half) = (f64c(r, INV_LN2), f64c(r, 0.5));
    let m = op64(r, "mulf", y, &inv);
    let m = op64(r, "addf", &m, &half);
    let kf = r.bind(&format!("math.floor {m} : f64"));
    let hi = f64c(r, LN2_HI);
    let h = op64(r, "mulf", &kf, &hi);
    let x = op64(r, "subf", y, &h);
    let lo = f64c(r, LN2_LO);
    let l = op64(r, "mulf", &kf, &lo);
    let x = op64(r, "subf", &x, &l);
    let mut q = f64c(r, EXPM1_TAYLOR[12]);
    for &c in EXPM1_TAYLOR[..12].iter().rev() {
        q = op64(r, "mulf", &q, &x);
        let c = f64c(r, c);
        q = op64(r, "addf", &q, &c);
    }
    let p = op64(r, "mulf", &x, &q);
    let ki = r.bind(&format!("arith.fptosi {kf} : f64 to i64"));
    let bias = r.constant("1023", "i64");
    let e = r.bind(&format!("arith.addi {ki}, {bias} : i64"));
    let sh = r.constant("52", "i64");
    let e = r.bind(&format!("arith.shli {e}, {sh} : i64"));
    let s = r.bind(&format!("arith.bitcast {e} : i64 to f64"));
    (p, kf, s)
}

/// `strata_ir::math::tanh_f32` (`erf` false) or `erf_f32`, statement for statement; the
/// branches become selects, and the argument is first replaced by 0 where the result is a
/// constant (saturated, NaN) so no out-of-range conversion is ever computed.
fn det_math(r: &mut Body, v: &str, erf: bool) -> String {
    use strata_ir::math::{ERF_SATURATE, ERF_SERIES, TANH_SATURATE, TWO_OVER_SQRT_PI};
    let a = r.bind(&format!("math.absf {v} : f32"));
    let sat = r.f32(if erf { ERF_SATURATE } else { TANH_SATURATE });
    let ok = cmp(r, "olt", &a, &sat);
    let zero = r.f32(0.0);
    let ac = select(r, &ok, &a, &zero);
    let ad = r.bind(&format!("arith.extf {ac} : f32 to f64"));
    let one = f64c(r, 1.0);
    let t = if erf {
        let z = op64(r, "mulf", &ad, &ad);
        let w = op64(r, "addf", &z, &z);
        let mut s = f64c(r, ERF_SERIES[47]);
        for &c in ERF_SERIES[..47].iter().rev() {
            s = op64(r, "mulf", &s, &w);
            let c = f64c(r, c);
            s = op64(r, "addf", &s, &c);
        }
        let zero64 = f64c(r, 0.0);
        let nz = op64(r, "subf", &zero64, &z);
        let (p, _, sc) = exp_split(r, &nz);
        let e = op64(r, "addf", &p, &one);
        let e = op64(r, "mulf", &e, &sc);
        let c = f64c(r, TWO_OVER_SQRT_PI);
        let t = op64(r, "mulf", &c, &ad);
        let t = op64(r, "mulf", &t, &e);
        op64(r, "mulf", &t, &s)
    } else {
        let y = op64(r, "addf", &ad, &ad);
        let (p, kf, sc) = exp_split(r, &y);
        let e = op64(r, "addf", &p, &one);
        let e = op64(r, "mulf", &e, &sc);
        let em = op64(r, "subf", &e, &one);
        let zero64 = f64c(r, 0.0);
        let k0 = r.bind(&format!("arith.cmpf oeq, {kf}, {zero64} : f64"));
        let e = r.bind(&format!("arith.select {k0}, {p}, {em} : f64"));
        let two = f64c(r, 2.0);
        let d = op64(r, "addf", &e, &two);
        op64(r, "divf", &e, &d)
    };
    let tf = r.bind(&format!("arith.truncf {t} : f64 to f32"));
    let one32 = r.f32(1.0);
    let t1 = select(r, &ok, &tf, &one32);
    let signed = r.bind(&format!("math.copysign {t1}, {v} : f32"));
    let nan = cmp(r, "uno", v, v);
    select(r, &nan, v, &signed)
}

/// `y = f(x)` over `n` elements.
pub(crate) fn unary(b: &mut Body, x: &str, n: usize, f: UnaryFn) -> String {
    let ty = tensor(&[n], Elem::F32);
    let out = b.empty(&[n], Elem::F32);
    b.generic(
        &["parallel"],
        &[Operand::new(x, ty.clone(), identity(1))],
        Operand::new(&out, ty, identity(1)),
        Elem::F32,
        &[Elem::F32],
        |r, g| unary_elem(r, &g[0], f),
    )
}

/// `y[i] = f(a[i], b[(i / inner) % len])` over `n` elements; `b` holds `b_len` values.
pub(crate) fn binary(
    b: &mut Body,
    a: &str,
    (bv, b_len): (&str, usize),
    n: usize,
    bcast: Broadcast,
    f: BinaryFn,
) -> String {
    let ty = tensor(&[n], Elem::F32);
    let out = b.empty(&[n], Elem::F32);
    let b_ty = tensor(&[b_len], Elem::F32);
    let (inner, len) = (b.index(bcast.inner.max(1)), b.index(bcast.len.max(1)));
    b.generic(
        &["parallel"],
        &[Operand::new(a, ty.clone(), identity(1))],
        Operand::new(&out, ty, identity(1)),
        Elem::F32,
        &[Elem::F32],
        |r, g| {
            let i = r.bind("linalg.index 0 : index");
            let q = r.bind(&format!("arith.divui {i}, {inner} : index"));
            let at = r.bind(&format!("arith.remui {q}, {len} : index"));
            let rv = r.bind(&format!("tensor.extract {bv}[{at}] : {b_ty}"));
            let x = g[0].clone();
            match f {
                BinaryFn::Add => op(r, "addf", &x, &rv),
                BinaryFn::Mul => op(r, "mulf", &x, &rv),
                BinaryFn::Sub => op(r, "subf", &x, &rv),
                BinaryFn::SubFrom => op(r, "subf", &rv, &x),
                BinaryFn::Div => op(r, "divf", &x, &rv),
                BinaryFn::DivInto => op(r, "divf", &rv, &x),
                BinaryFn::Max => pick_pq(r, "ogt", &x, &rv),
                BinaryFn::MaxRev => pick_pq(r, "ogt", &rv, &x),
                BinaryFn::Min => pick_pq(r, "olt", &x, &rv),
                BinaryFn::MinRev => pick_pq(r, "olt", &rv, &x),
                BinaryFn::Pow => pow_elem(r, &x, &rv),
                BinaryFn::PowFrom => pow_elem(r, &rv, &x),
                BinaryFn::PRelu => {
                    let zero = r.f32(0.0);
                    let neg = cmp(r, "olt", &x, &zero);
                    let s = op(r, "mulf", &rv, &x);
                    select(r, &neg, &s, &x)
                }
            }
        },
    )
}

/// A Where on a comparison: `y[i] = cmp(l, r) ? a : b`, each of `ops` (`l, r, a, b`: value,
/// length, broadcast) read at `(i / inner) % len`; ordered predicates (false with a NaN, as
/// the runtime's and C's comparisons).
pub(crate) fn select_where(
    b: &mut Body,
    ops: &[(String, usize, Broadcast)],
    n: usize,
    cmp_op: CompareOp,
) -> String {
    let ty = tensor(&[n], Elem::F32);
    let out = b.empty(&[n], Elem::F32);
    let idx: Vec<(String, String)> = ops
        .iter()
        .map(|(_, _, bc)| (b.index(bc.inner.max(1)), b.index(bc.len.max(1))))
        .collect();
    let pred = match cmp_op {
        CompareOp::Equal => "oeq",
        CompareOp::Greater => "ogt",
        CompareOp::Less => "olt",
        CompareOp::GreaterOrEqual => "oge",
        CompareOp::LessOrEqual => "ole",
    };
    b.generic(
        &["parallel"],
        &[],
        Operand::new(&out, ty, identity(1)),
        Elem::F32,
        &[],
        |r, _| {
            let i = r.bind("linalg.index 0 : index");
            let v: Vec<String> = ops
                .iter()
                .zip(&idx)
                .map(|((val, len, _), (inner, blen))| {
                    let q = r.bind(&format!("arith.divui {i}, {inner} : index"));
                    let at = r.bind(&format!("arith.remui {q}, {blen} : index"));
                    let t = tensor(&[*len], Elem::F32);
                    r.bind(&format!("tensor.extract {val}[{at}] : {t}"))
                })
                .collect();
            let c = cmp(r, pred, &v[0], &v[1]);
            select(r, &c, &v[2], &v[3])
        },
    )
}

/// `x` (flat) viewed as `[outer, len, inner]`.
fn blocks(b: &mut Body, x: &str, [outer, len, inner]: [usize; 3]) -> String {
    b.bind(&format!(
        "tensor.expand_shape {x} [[0, 1, 2]] output_shape [{outer}, {len}, {inner}] : {} into {}",
        tensor(&[outer * len * inner], Elem::F32),
        tensor(&[outer, len, inner], Elem::F32)
    ))
}

/// Loops `(o, i, j)` over `[outer, inner]` outputs reducing `j` over `len`, `j` innermost
/// and in increasing order (the C loops' order): `step(acc, v)` from `init`.
fn reduce_in_order(
    b: &mut Body,
    x3: &str,
    [outer, len, inner]: [usize; 3],
    acc: Elem,
    init: &str,
    step: impl FnOnce(&mut Body, &str, &str) -> String,
) -> String {
    let init = b.filled(&[outer, inner], acc, init);
    b.generic(
        &["parallel", "parallel", "reduction"],
        &[Operand::new(
            x3,
            tensor(&[outer, len, inner], Elem::F32),
            map(3, &["d0".into(), "d2".into(), "d1".into()]),
        )],
        Operand::new(
            &init,
            tensor(&[outer, inner], acc),
            map(3, &["d0".into(), "d1".into()]),
        ),
        acc,
        &[Elem::F32],
        |r, g| step(r, &g[1], &g[0]),
    )
}

/// A reduction over `len` elements `inner` apart (`reduce()`): sums and means in f64 in
/// index order, rounded once; maxima from −∞.
pub(crate) fn reduce(
    b: &mut Body,
    x: &str,
    [outer, len, inner]: [usize; 3],
    f: ReduceFn,
) -> String {
    let x3 = blocks(b, x, [outer, len, inner]);
    let y = match f {
        ReduceFn::Mean | ReduceFn::Sum => {
            let zero = b.constant("0.0", "f64");
            let s = reduce_in_order(
                b,
                &x3,
                [outer, len, inner],
                Elem::F64,
                &zero,
                |r, acc, v| {
                    let d = r.bind(&format!("arith.extf {v} : f32 to f64"));
                    r.bind(&format!("arith.addf {acc}, {d} : f64"))
                },
            );
            let count = b.constant(&format!("{len}.0"), "f64");
            let out = b.empty(&[outer, inner], Elem::F32);
            let ty = tensor(&[outer, inner], Elem::F64);
            b.generic(
                &["parallel", "parallel"],
                &[Operand::new(&s, ty, identity(2))],
                Operand::new(&out, tensor(&[outer, inner], Elem::F32), identity(2)),
                Elem::F32,
                &[Elem::F64],
                |r, g| {
                    let v = if f == ReduceFn::Mean {
                        r.bind(&format!("arith.divf {}, {count} : f64", g[0]))
                    } else {
                        g[0].clone()
                    };
                    r.bind(&format!("arith.truncf {v} : f64 to f32"))
                },
            )
        }
        ReduceFn::Max | ReduceFn::MaxNumber => {
            let ninf = b.f32(f32::NEG_INFINITY);
            let nan_wins = f == ReduceFn::Max;
            reduce_in_order(b, &x3, [outer, len, inner], Elem::F32, &ninf, |r, m, v| {
                let gt = cmp(r, "ogt", v, m);
                let take = if nan_wins {
                    let nan = cmp(r, "uno", v, v);
                    r.bind(&format!("arith.ori {gt}, {nan} : i1"))
                } else {
                    gt
                };
                select(r, &take, v, m)
            })
        }
    };
    b.bind(&format!(
        "tensor.collapse_shape {y} [[0, 1]] : {} into {}",
        tensor(&[outer, inner], Elem::F32),
        tensor(&[outer * inner], Elem::F32)
    ))
}

/// Softmax over `len` elements `inner` apart (`softmax()`): the maximum, `exp(x − max)`
/// summed in index order in f32, then each divided by the sum.
pub(crate) fn softmax(b: &mut Body, x: &str, [outer, len, inner]: [usize; 3]) -> String {
    let dims = [outer, len, inner];
    let x3 = blocks(b, x, dims);
    let ninf = b.f32(f32::NEG_INFINITY);
    let mx = reduce_in_order(b, &x3, dims, Elem::F32, &ninf, |r, m, v| {
        let gt = cmp(r, "ogt", v, m);
        select(r, &gt, v, m)
    });
    let ty3 = tensor(&dims, Elem::F32);
    let ty2 = tensor(&[outer, inner], Elem::F32);
    let per_row = map(3, &["d0".into(), "d2".into()]);
    let out = b.empty(&dims, Elem::F32);
    let e = b.generic(
        &["parallel", "parallel", "parallel"],
        &[
            Operand::new(&x3, ty3.clone(), identity(3)),
            Operand::new(&mx, ty2.clone(), per_row.clone()),
        ],
        Operand::new(&out, ty3.clone(), identity(3)),
        Elem::F32,
        &[Elem::F32, Elem::F32],
        |r, g| {
            let d = op(r, "subf", &g[0], &g[1]);
            r.bind(&format!("math.exp {d} : f32"))
        },
    );
    let zero = b.f32(0.0);
    let sum = reduce_in_order(b, &e, dims, Elem::F32, &zero, |r, s, v| op(r, "addf", s, v));
    let out = b.empty(&dims, Elem::F32);
    let y = b.generic(
        &["parallel", "parallel", "parallel"],
        &[
            Operand::new(&e, ty3.clone(), identity(3)),
            Operand::new(&sum, ty2, per_row),
        ],
        Operand::new(&out, ty3.clone(), identity(3)),
        Elem::F32,
        &[Elem::F32, Elem::F32],
        |r, g| op(r, "divf", &g[0], &g[1]),
    );
    b.bind(&format!(
        "tensor.collapse_shape {y} [[0, 1, 2]] : {ty3} into {}",
        tensor(&[outer * len * inner], Elem::F32)
    ))
}
