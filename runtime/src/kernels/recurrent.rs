//! LSTM (ONNX `LSTM`, layout 0, default activations Sigmoid/Tanh/Tanh), f32.
//!
//! The operation order is part of the contract: the C backend's `lstm` kernel (`prelude.c`)
//! repeats it statement for statement so that emitted C is bit-exact with this kernel. Per
//! direction, sample and time step (backwards for the reverse direction):
//! 1. every gate row `j` of `4H` (ONNX order `i, o, f, c`): `a = Σ_k x[k]·W[j,k]` and
//!    `s = Σ_k h[k]·R[j,k]`, each summed in f32 in index order from 0, then
//!    `g = a + s`, then `g + Wb[j]`, then `+ Rb[j]` (when B is given);
//! 2. for each hidden unit `k`: with peepholes `g_i += P_i·c`, `g_f += P_f·c`; `i = σ(g_i)`,
//!    `f = σ(g_f)`, `ĉ = tanh(g_c)`; `c' = f·c`, then `c' + i·ĉ`; with peepholes
//!    `g_o += P_o·c'`; `o = σ(g_o)`; `h' = o·tanh(c')`.
//!
//! σ is the runtime's Sigmoid (split by sign, `expf`) and tanh `strata_ir::math::tanh_f32`,
//! both the same bits on every ISA.

use strata_ir::math::tanh_f32;
use strata_ir::ops::elementwise::UnaryOp;
use strata_ir::ops::Lstm;
use strata_ir::{Tensor, TensorData};

use super::elementwise::real_fn;
use super::{checked_numel, make};
use crate::RuntimeError;

const OP: &str = "lstm";

fn f32s(t: &Tensor, input: usize) -> Result<&[f32], RuntimeError> {
    t.as_f32().ok_or(RuntimeError::UnsupportedDType {
        op: OP,
        input,
        dtype: t.dtype(),
    })
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
        let mut a = 0.0f32;
        for (xk, wk) in x.iter().zip(&d.w[j * isz..(j + 1) * isz]) {
            a += xk * wk;
        }
        let mut s = 0.0f32;
        for (hk, rk) in h.iter().zip(&d.r[j * hn..(j + 1) * hn]) {
            s += hk * rk;
        }
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
    let bad = |reason: String| RuntimeError::Shape { op: OP, reason };
    let xs = inputs[0].shape();
    let &[t_len, n, isz] = xs else {
        return Err(bad(format!("x must be [seq, batch, input], got {xs:?}")));
    };
    let (h, dn) = (l.hidden, l.direction.count());
    let at = l.inputs();
    let want = |i: usize, dims: &[usize], what: &str| {
        if inputs[i].shape() != dims {
            return Err(bad(format!(
                "{what} must be {dims:?}, got {:?}",
                inputs[i].shape()
            )));
        }
        f32s(inputs[i], i)
    };
    let x = f32s(inputs[0], 0)?;
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
}
