//! LSTM and GRU (ONNX `LSTM`, `GRU`, layout 0, default activations), f32.
//!
//! The operation order is part of the contract: the C backend's `lstm` and `gru` kernels
//! (`prelude.c`) and the MLIR backend repeat it statement for statement so that their code is
//! bit-exact with these kernels. LSTM, per direction, sample and time step (backwards for the
//! reverse direction):
//! 1. every gate row `j` of `4H` (ONNX order `i, o, f, c`): `a = Σ_k x[k]·W[j,k]` and
//!    `s = Σ_k h[k]·R[j,k]`, each summed in f32 in index order from 0, then
//!    `g = a + s`, then `g + Wb[j]`, then `+ Rb[j]` (when B is given);
//! 2. for each hidden unit `k`: with peepholes `g_i += P_i·c`, `g_f += P_f·c`; `i = σ(g_i)`,
//!    `f = σ(g_f)`, `ĉ = tanh(g_c)`; `c' = f·c`, then `c' + i·ĉ`; with peepholes
//!    `g_o += P_o·c'`; `o = σ(g_o)`; `h' = o·tanh(c')`.
//!
//! GRU, per direction, sample and time step, with `4H` floats of scratch `g`:
//! 1. every row `j < 2H` (gates `z, r`): `a = Σ_k x[k]·W[j,k]`, `s = Σ_k h[k]·R[j,k]` (f32,
//!    index order from 0), `g[j] = a + s`, then `+ Wb[j]`, then `+ Rb[j]` (when B is given);
//! 2. the `h` gate, rows `j = 2H + k`: with `linear_before_reset`, `g[j] = a (+ Wb[j])` and
//!    `g[3H + k] = s (+ Rb[j])`; without, first `g[3H + k] = σ(g[H + k])·h[k]` for every `k`,
//!    then `s = Σ_k g[3H + k]·R[j,k]` and `g[j] = a + s`, then `+ Wb[j]`, then `+ Rb[j]`;
//! 3. for each hidden unit `k`: `z = σ(g[k])`; with `linear_before_reset`
//!    `p = g[2H + k] + σ(g[H + k])·g[3H + k]`, without `p = g[2H + k]`; `ĥ = tanh(p)`;
//!    `h' = (1 − z)·ĥ + z·h` (each product rounded, then the sum).
//!
//! σ is the runtime's Sigmoid (split by sign, `expf`) and tanh `strata_ir::math::tanh_f32`,
//! both the same bits on every ISA.

use strata_ir::math::tanh_f32;
use strata_ir::ops::elementwise::UnaryOp;
use strata_ir::ops::{Gru, Lstm};
use strata_ir::{Tensor, TensorData};

use super::elementwise::real_fn;
use super::{checked_numel, make};
use crate::RuntimeError;

const OP: &str = "lstm";
const GRU: &str = "gru";

fn f32s<'a>(op: &'static str, t: &'a Tensor, input: usize) -> Result<&'a [f32], RuntimeError> {
    t.as_f32().ok_or(RuntimeError::UnsupportedDType {
        op,
        input,
        dtype: t.dtype(),
    })
}

/// `x [T, N, I]`: its sizes and values.
fn sequence<'a>(
    op: &'static str,
    inputs: &[&'a Tensor],
) -> Result<([usize; 3], &'a [f32]), RuntimeError> {
    let xs = inputs[0].shape();
    let &[t_len, n, isz] = xs else {
        return Err(RuntimeError::Shape {
            op,
            reason: format!("x must be [seq, batch, input], got {xs:?}"),
        });
    };
    Ok(([t_len, n, isz], f32s(op, inputs[0], 0)?))
}

/// Input `i` (`what`), which must have shape `dims`.
fn shaped<'a>(
    op: &'static str,
    inputs: &[&'a Tensor],
    i: usize,
    dims: &[usize],
    what: &str,
) -> Result<&'a [f32], RuntimeError> {
    if inputs[i].shape() != dims {
        return Err(RuntimeError::Shape {
            op,
            reason: format!("{what} must be {dims:?}, got {:?}", inputs[i].shape()),
        });
    }
    f32s(op, inputs[i], i)
}

/// `Σ_k a[k]·b[k]` in f32, index order from +0 (one rounded product and sum per term).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

/// Weights of one direction.
struct Dir<'a> {
    w: &'a [f32],
    r: &'a [f32],
    b: Option<&'a [f32]>,
    p: Option<&'a [f32]>,
}

/// One time step of one direction for one sample: updates `h` and `c` in place; `gates`
/// (`4H`) is scratch. The C kernel `lstm_step` is this function.
fn step(x: &[f32], h: &mut [f32], c: &mut [f32], d: &Dir, gates: &mut [f32]) {
    let hn = h.len();
    let isz = x.len();
    let sigmoid = real_fn::<f32>(UnaryOp::Sigmoid);
    for (j, g) in gates.iter_mut().enumerate() {
        let a = dot(x, &d.w[j * isz..(j + 1) * isz]);
        let s = dot(h, &d.r[j * hn..(j + 1) * hn]);
        let mut v = a + s;
        if let Some(b) = d.b {
            v += b[j];
            v += b[4 * hn + j];
        }
        *g = v;
    }
    for k in 0..hn {
        let (mut gi, mut go, mut gf) = (gates[k], gates[hn + k], gates[2 * hn + k]);
        let gc = gates[3 * hn + k];
        if let Some(p) = d.p {
            gi += p[k] * c[k];
            gf += p[2 * hn + k] * c[k];
        }
        let i = sigmoid(gi);
        let f = sigmoid(gf);
        let cc = tanh_f32(gc);
        let mut cn = f * c[k];
        cn += i * cc;
        if let Some(p) = d.p {
            go += p[hn + k] * cn;
        }
        let o = sigmoid(go);
        c[k] = cn;
        h[k] = o * tanh_f32(cn);
    }
}

/// Runs the layer; returns `y [T, D, N, H]`, `y_h [D, N, H]`, `y_c [D, N, H]`.
pub fn lstm(l: &Lstm, inputs: &[&Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
    let ([t_len, n, isz], x) = sequence(OP, inputs)?;
    let (h, dn) = (l.hidden, l.direction.count());
    let at = l.inputs();
    let want = |i: usize, dims: &[usize], what: &str| shaped(OP, inputs, i, dims, what);
    let w = want(1, &[dn, 4 * h, isz], "W")?;
    let r = want(2, &[dn, 4 * h, h], "R")?;
    let b = at.bias.map(|i| want(i, &[dn, 8 * h], "B")).transpose()?;
    let h0 = at
        .initial_h
        .map(|i| want(i, &[dn, n, h], "initial_h"))
        .transpose()?;
    let c0 = at
        .initial_c
        .map(|i| want(i, &[dn, n, h], "initial_c"))
        .transpose()?;
    let p = at
        .peepholes
        .map(|i| want(i, &[dn, 3 * h], "P"))
        .transpose()?;
    let y_shape = vec![t_len, dn, n, h];
    let mut y = vec![0.0f32; checked_numel(OP, &y_shape)?];
    let state = dn * n * h;
    let mut yh = vec![0.0f32; state];
    let mut yc = vec![0.0f32; state];
    let mut gates = vec![0.0f32; 4 * h];
    for d in 0..dn {
        let dir = Dir {
            w: &w[d * 4 * h * isz..(d + 1) * 4 * h * isz],
            r: &r[d * 4 * h * h..(d + 1) * 4 * h * h],
            b: b.map(|b| &b[d * 8 * h..(d + 1) * 8 * h]),
            p: p.map(|p| &p[d * 3 * h..(d + 1) * 3 * h]),
        };
        for s in 0..n {
            let at = (d * n + s) * h;
            let hs = &mut yh[at..at + h];
            let cs = &mut yc[at..at + h];
            if let Some(h0) = h0 {
                hs.copy_from_slice(&h0[at..at + h]);
            }
            if let Some(c0) = c0 {
                cs.copy_from_slice(&c0[at..at + h]);
            }
            for i in 0..t_len {
                let t = if l.direction.backwards(d) {
                    t_len - 1 - i
                } else {
                    i
                };
                let xt = &x[(t * n + s) * isz..(t * n + s + 1) * isz];
                step(xt, hs, cs, &dir, &mut gates);
                let o = ((t * dn + d) * n + s) * h;
                y[o..o + h].copy_from_slice(hs);
            }
        }
    }
    Ok(vec![
        make(OP, y_shape, TensorData::F32(y))?,
        make(OP, vec![dn, n, h], TensorData::F32(yh))?,
        make(OP, vec![dn, n, h], TensorData::F32(yc))?,
    ])
}

/// Weights of one GRU direction.
struct GruDir<'a> {
    w: &'a [f32],
    r: &'a [f32],
    b: Option<&'a [f32]>,
    linear_before_reset: bool,
}

/// One GRU time step of one direction for one sample: updates `h` in place; `g` (`4H`) is
/// scratch. The C kernel `gru_step` is this function.
fn gru_step(x: &[f32], h: &mut [f32], d: &GruDir, g: &mut [f32]) {
    let hn = h.len();
    let isz = x.len();
    let sigmoid = real_fn::<f32>(UnaryOp::Sigmoid);
    let w_row = |j: usize| &d.w[j * isz..(j + 1) * isz];
    let r_row = |j: usize| &d.r[j * hn..(j + 1) * hn];
    for j in 0..2 * hn {
        let a = dot(x, w_row(j));
        let s = dot(h, r_row(j));
        let mut v = a + s;
        if let Some(b) = d.b {
            v += b[j];
            v += b[3 * hn + j];
        }
        g[j] = v;
    }
    if d.linear_before_reset {
        for j in 2 * hn..3 * hn {
            let mut a = dot(x, w_row(j));
            let mut s = dot(h, r_row(j));
            if let Some(b) = d.b {
                a += b[j];
                s += b[3 * hn + j];
            }
            g[j] = a;
            g[hn + j] = s;
        }
    } else {
        for k in 0..hn {
            g[3 * hn + k] = sigmoid(g[hn + k]) * h[k];
        }
        for j in 2 * hn..3 * hn {
            let a = dot(x, w_row(j));
            let s = dot(&g[3 * hn..4 * hn], r_row(j));
            let mut v = a + s;
            if let Some(b) = d.b {
                v += b[j];
                v += b[3 * hn + j];
            }
            g[j] = v;
        }
    }
    for k in 0..hn {
        let z = sigmoid(g[k]);
        let p = if d.linear_before_reset {
            let r = sigmoid(g[hn + k]);
            g[2 * hn + k] + r * g[3 * hn + k]
        } else {
            g[2 * hn + k]
        };
        let hh = tanh_f32(p);
        let keep = (1.0 - z) * hh;
        h[k] = keep + z * h[k];
    }
}

/// Runs a GRU; returns `y [T, D, N, H]`, `y_h [D, N, H]`.
pub fn gru(l: &Gru, inputs: &[&Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
    let ([t_len, n, isz], x) = sequence(GRU, inputs)?;
    let (h, dn) = (l.hidden, l.direction.count());
    let at = l.inputs();
    let want = |i: usize, dims: &[usize], what: &str| shaped(GRU, inputs, i, dims, what);
    let w = want(1, &[dn, 3 * h, isz], "W")?;
    let r = want(2, &[dn, 3 * h, h], "R")?;
    let b = at.bias.map(|i| want(i, &[dn, 6 * h], "B")).transpose()?;
    let h0 = at
        .initial_h
        .map(|i| want(i, &[dn, n, h], "initial_h"))
        .transpose()?;
    let y_shape = vec![t_len, dn, n, h];
    let mut y = vec![0.0f32; checked_numel(GRU, &y_shape)?];
    let mut yh = vec![0.0f32; dn * n * h];
    let mut g = vec![0.0f32; 4 * h];
    for d in 0..dn {
        let dir = GruDir {
            w: &w[d * 3 * h * isz..(d + 1) * 3 * h * isz],
            r: &r[d * 3 * h * h..(d + 1) * 3 * h * h],
            b: b.map(|b| &b[d * 6 * h..(d + 1) * 6 * h]),
            linear_before_reset: l.linear_before_reset,
        };
        for s in 0..n {
            let at = (d * n + s) * h;
            let hs = &mut yh[at..at + h];
            if let Some(h0) = h0 {
                hs.copy_from_slice(&h0[at..at + h]);
            }
            for i in 0..t_len {
                let t = if l.direction.backwards(d) {
                    t_len - 1 - i
                } else {
                    i
                };
                let xt = &x[(t * n + s) * isz..(t * n + s + 1) * isz];
                gru_step(xt, hs, &dir, &mut g);
                let o = ((t * dn + d) * n + s) * h;
                y[o..o + h].copy_from_slice(hs);
            }
        }
    }
    Ok(vec![
        make(GRU, y_shape, TensorData::F32(y))?,
        make(GRU, vec![dn, n, h], TensorData::F32(yh))?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_ir::ops::Direction;

    fn t(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        // Small deterministic values in [-1, 1).
        let v = (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                (h % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::from_f32(shape.to_vec(), v).unwrap()
    }

    fn op(direction: Direction, has_bias: bool) -> Lstm {
        Lstm {
            direction,
            hidden: 3,
            has_bias,
            has_initial_h: false,
            has_initial_c: false,
            has_peepholes: false,
        }
    }

    fn f(t: &Tensor) -> &[f32] {
        t.as_f32().unwrap()
    }

    /// One step by hand: x = [1], h = c = 0, W rows i, o, f, c = 1, 2, 3, 4, no bias.
    #[test]
    fn one_step_by_hand() {
        let x = Tensor::from_f32(vec![1, 1, 1], vec![1.0]).unwrap();
        let w = Tensor::from_f32(vec![1, 4, 1], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let r = Tensor::from_f32(vec![1, 4, 1], vec![0.0; 4]).unwrap();
        let mut l = op(Direction::Forward, false);
        l.hidden = 1;
        let out = lstm(&l, &[&x, &w, &r]).unwrap();
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let c = sig(1.0) * 4f64.tanh();
        let h = sig(2.0) * c.tanh();
        assert!((f(&out[2])[0] as f64 - c).abs() < 1e-6);
        assert!((f(&out[0])[0] as f64 - h).abs() < 1e-6);
        assert_eq!(f(&out[1]), f(&out[0]));
    }

    /// Reverse on x is forward on x reversed in time (y reversed back), and bidirectional is
    /// the two side by side — bit for bit.
    #[test]
    fn reverse_and_bidirectional_compose_from_forward() {
        let (seq, n, i) = (4, 2, 3);
        let x = t(&[seq, n, i], 1);
        let mut xr = Vec::new();
        for s in (0..seq).rev() {
            xr.extend_from_slice(&f(&x)[s * n * i..(s + 1) * n * i]);
        }
        let xr = Tensor::from_f32(vec![seq, n, i], xr).unwrap();
        let (w2, r2, b2) = (t(&[2, 12, i], 2), t(&[2, 12, 3], 3), t(&[2, 24], 4));
        let half = |t: &Tensor, d: usize| {
            let s = t.shape();
            let per: usize = s[1..].iter().product();
            let mut dims = s.to_vec();
            dims[0] = 1;
            Tensor::from_f32(dims, f(t)[d * per..(d + 1) * per].to_vec()).unwrap()
        };
        let (wf, rf, bf) = (half(&w2, 0), half(&r2, 0), half(&b2, 0));
        let (wb, rb, bb) = (half(&w2, 1), half(&r2, 1), half(&b2, 1));
        let fwd = lstm(&op(Direction::Forward, true), &[&x, &wf, &rf, &bf]).unwrap();
        let rev = lstm(&op(Direction::Reverse, true), &[&x, &wb, &rb, &bb]).unwrap();
        let rev_by_fwd = lstm(&op(Direction::Forward, true), &[&xr, &wb, &rb, &bb]).unwrap();
        let step = n * 3;
        for s in 0..seq {
            assert_eq!(
                f(&rev[0])[s * step..(s + 1) * step],
                f(&rev_by_fwd[0])[(seq - 1 - s) * step..(seq - s) * step]
            );
        }
        assert_eq!(f(&rev[1]), f(&rev_by_fwd[1]));
        assert_eq!(f(&rev[2]), f(&rev_by_fwd[2]));
        let bi = lstm(&op(Direction::Bidirectional, true), &[&x, &w2, &r2, &b2]).unwrap();
        assert_eq!(bi[0].shape(), [seq, 2, n, 3]);
        for s in 0..seq {
            let at = s * 2 * step;
            assert_eq!(
                f(&bi[0])[at..at + step],
                f(&fwd[0])[s * step..(s + 1) * step]
            );
            assert_eq!(
                f(&bi[0])[at + step..at + 2 * step],
                f(&rev[0])[s * step..(s + 1) * step]
            );
        }
        assert_eq!(f(&bi[1])[..step], *f(&fwd[1]));
        assert_eq!(f(&bi[2])[step..], *f(&rev[2]));
        // A W of the wrong shape is a typed error, not a panic.
        assert!(matches!(
            lstm(&op(Direction::Bidirectional, true), &[&x, &wf, &r2, &b2]),
            Err(RuntimeError::Shape { .. })
        ));
    }

    /// The ONNX GRU equations in f64, straight from the operator spec: `z, r, h` gates,
    /// `H_t = (1 − z)·h̃ + z·H_{t−1}`.
    fn gru_reference(
        l: &Gru,
        x: &Tensor,
        w: &Tensor,
        r: &Tensor,
        b: &Tensor,
        h0: &Tensor,
    ) -> (Vec<f64>, Vec<f64>) {
        let (seq, n, isz) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (h, dn) = (l.hidden, l.direction.count());
        let (x, w, r, b, h0) = (f(x), f(w), f(r), f(b), f(h0));
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut y = vec![0.0; seq * dn * n * h];
        let mut yh = vec![0.0; dn * n * h];
        for d in 0..dn {
            let w = |j: usize, k: usize| w[(d * 3 * h + j) * isz + k] as f64;
            let r = |j: usize, k: usize| r[(d * 3 * h + j) * h + k] as f64;
            let bw = |j: usize| b[d * 6 * h + j] as f64;
            let br = |j: usize| b[d * 6 * h + 3 * h + j] as f64;
            for s in 0..n {
                let mut hs: Vec<f64> = (0..h).map(|k| h0[(d * n + s) * h + k] as f64).collect();
                for i in 0..seq {
                    let t = if l.direction.backwards(d) {
                        seq - 1 - i
                    } else {
                        i
                    };
                    let xt = &x[(t * n + s) * isz..(t * n + s + 1) * isz];
                    let xw = |j: usize| (0..isz).map(|k| xt[k] as f64 * w(j, k)).sum::<f64>();
                    let hr = |j: usize, v: &[f64]| (0..h).map(|k| v[k] * r(j, k)).sum::<f64>();
                    let z: Vec<f64> = (0..h)
                        .map(|k| sig(xw(k) + hr(k, &hs) + bw(k) + br(k)))
                        .collect();
                    let rg: Vec<f64> = (0..h)
                        .map(|k| sig(xw(h + k) + hr(h + k, &hs) + bw(h + k) + br(h + k)))
                        .collect();
                    let rh: Vec<f64> = (0..h).map(|k| rg[k] * hs[k]).collect();
                    let next: Vec<f64> = (0..h)
                        .map(|k| {
                            let j = 2 * h + k;
                            let pre = if l.linear_before_reset {
                                xw(j) + bw(j) + rg[k] * (hr(j, &hs) + br(j))
                            } else {
                                xw(j) + hr(j, &rh) + bw(j) + br(j)
                            };
                            (1.0 - z[k]) * pre.tanh() + z[k] * hs[k]
                        })
                        .collect();
                    hs = next;
                    let o = ((t * dn + d) * n + s) * h;
                    y[o..o + h].copy_from_slice(&hs);
                }
                yh[(d * n + s) * h..(d * n + s + 1) * h].copy_from_slice(&hs);
            }
        }
        (y, yh)
    }

    /// The kernel against the spec's equations in f64, both reset modes, bidirectional, with
    /// bias and initial state; and without the optional inputs it is the zero bias and state.
    #[test]
    fn gru_matches_the_onnx_equations() {
        let (seq, n, i, h) = (5, 2, 3, 4);
        let x = t(&[seq, n, i], 11);
        let (w, r, b, h0) = (
            t(&[2, 3 * h, i], 12),
            t(&[2, 3 * h, h], 13),
            t(&[2, 6 * h], 14),
            t(&[2, n, h], 15),
        );
        for lbr in [false, true] {
            let l = Gru {
                direction: Direction::Bidirectional,
                hidden: h,
                has_bias: true,
                has_initial_h: true,
                linear_before_reset: lbr,
            };
            let out = gru(&l, &[&x, &w, &r, &b, &h0]).unwrap();
            assert_eq!(out[0].shape(), [seq, 2, n, h]);
            assert_eq!(out[1].shape(), [2, n, h]);
            let (y, yh) = gru_reference(&l, &x, &w, &r, &b, &h0);
            for (got, want) in f(&out[0]).iter().zip(&y).chain(f(&out[1]).iter().zip(&yh)) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "lbr {lbr}: {got} vs {want}"
                );
            }
            // The two modes differ (the reset gate is applied at a different place).
            let bare = Gru {
                has_bias: false,
                has_initial_h: false,
                ..l.clone()
            };
            let zeros =
                |s: &[usize]| Tensor::from_f32(s.to_vec(), vec![0.0; s.iter().product()]).unwrap();
            let with_zeros =
                gru(&l, &[&x, &w, &r, &zeros(&[2, 6 * h]), &zeros(&[2, n, h])]).unwrap();
            let without = gru(&bare, &[&x, &w, &r]).unwrap();
            assert_eq!(f(&with_zeros[0]), f(&without[0]));
            assert_eq!(f(&with_zeros[1]), f(&without[1]));
        }
        let one = |lbr| Gru {
            direction: Direction::Forward,
            hidden: h,
            has_bias: true,
            has_initial_h: true,
            linear_before_reset: lbr,
        };
        let half = |v: &Tensor| {
            let s = v.shape();
            let per: usize = s[1..].iter().product();
            let mut dims = s.to_vec();
            dims[0] = 1;
            Tensor::from_f32(dims, f(v)[..per].to_vec()).unwrap()
        };
        let (w1, r1, b1, h01) = (half(&w), half(&r), half(&b), half(&h0));
        let a = gru(&one(false), &[&x, &w1, &r1, &b1, &h01]).unwrap();
        let c = gru(&one(true), &[&x, &w1, &r1, &b1, &h01]).unwrap();
        assert_ne!(f(&a[0]), f(&c[0]));
        // Wrong shapes are typed errors, not panics.
        assert!(matches!(
            gru(&one(true), &[&x, &w, &r1, &b1, &h01]),
            Err(RuntimeError::Shape { op: "gru", .. })
        ));
    }
}
