//! Gradients of the element-wise ops: broadcasting arithmetic, activations and Clip.

use strata_ir::ops::{BinaryOp, Clip, UnaryOp};

use super::{broadcast_map, f32s, reduce_to, Ctx, Grads};
use crate::RuntimeError;

/// Add/Sub/Mul/Div/Pow: the element-wise partials, summed back over broadcast axes.
pub(super) fn binary(b: BinaryOp, cx: &Ctx) -> Grads {
    let (op, g) = (cx.op, cx.dy);
    let (a, bt) = (cx.inputs[0], cx.inputs[1]);
    let (av, bv) = (cx.x(0)?, cx.x(1)?);
    let out = cx.output.shape();
    // Index of output element `k` in an operand; the table is only built for an operand that
    // was broadcast (residual Adds and same-shape products need none).
    let (ma, mb) = (
        operand_index(op, a.shape(), out)?,
        operand_index(op, bt.shape(), out)?,
    );
    let (ia, ib) = (|k: usize| ma.at(k), |k: usize| mb.at(k));
    let (ga, gb): (Vec<f32>, Vec<f32>) = match b {
        BinaryOp::Add => (g.to_vec(), g.to_vec()),
        BinaryOp::Sub => (g.to_vec(), g.iter().map(|v| -v).collect()),
        BinaryOp::Mul => (
            g.iter().enumerate().map(|(k, g)| g * bv[ib(k)]).collect(),
            g.iter().enumerate().map(|(k, g)| g * av[ia(k)]).collect(),
        ),
        BinaryOp::Div => (
            g.iter().enumerate().map(|(k, g)| g / bv[ib(k)]).collect(),
            g.iter()
                .enumerate()
                .map(|(k, g)| -g * av[ia(k)] / (bv[ib(k)] * bv[ib(k)]))
                .collect(),
        ),
        // d(a^b)/da = b·a^(b−1); d(a^b)/db = a^b·ln a, taken as 0 where a ≤ 0 (no real log).
        BinaryOp::Pow => {
            let y = f32s(op, cx.output, usize::MAX)?;
            (
                g.iter()
                    .enumerate()
                    .map(|(k, g)| g * bv[ib(k)] * av[ia(k)].powf(bv[ib(k)] - 1.0))
                    .collect(),
                g.iter()
                    .zip(y)
                    .enumerate()
                    .map(|(k, (g, &yk))| {
                        let x = av[ia(k)];
                        if x > 0.0 {
                            g * yk * x.ln()
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            )
        }
    };
    Ok(vec![
        Some(reduce_to(op, ga, out, a.shape())?),
        Some(reduce_to(op, gb, out, bt.shape())?),
    ])
}

/// Where each element of a broadcast result reads an operand from.
enum OperandIndex {
    /// Same shape as the result: element `k` is element `k`.
    Same,
    /// Broadcast: the table of [`broadcast_map`].
    Table(Vec<usize>),
}

impl OperandIndex {
    fn at(&self, k: usize) -> usize {
        match self {
            OperandIndex::Same => k,
            OperandIndex::Table(t) => t[k],
        }
    }
}

fn operand_index(
    op: &'static str,
    input: &[usize],
    out: &[usize],
) -> Result<OperandIndex, RuntimeError> {
    if input == out {
        Ok(OperandIndex::Same)
    } else {
        broadcast_map(op, input, out).map(OperandIndex::Table)
    }
}

/// Max/Min: the output gradient flows to the input that supplied each output element (the
/// first one on ties, like a subgradient; NaN outputs pass it to the first NaN input),
/// summed back over that input's broadcast axes.
pub(super) fn variadic(cx: &Ctx) -> Grads {
    let (op, inputs, g) = (cx.op, cx.inputs, cx.dy);
    let out = cx.output.shape();
    let y = f32s(op, cx.output, usize::MAX)?;
    let mut values = Vec::with_capacity(inputs.len());
    let mut maps = Vec::with_capacity(inputs.len());
    for (i, t) in inputs.iter().enumerate() {
        values.push(f32s(op, t, i)?);
        maps.push(operand_index(op, t.shape(), out)?);
    }
    let mut grads = vec![vec![0f32; g.len()]; inputs.len()];
    for (k, (&yk, &gk)) in y.iter().zip(g).enumerate() {
        let same = |x: f32| x == yk || (x.is_nan() && yk.is_nan());
        if let Some(i) = (0..inputs.len()).find(|&i| same(values[i][maps[i].at(k)])) {
            grads[i][k] = gk;
        }
    }
    inputs
        .iter()
        .zip(grads)
        .map(|(t, gi)| reduce_to(op, gi, out, t.shape()).map(Some))
        .collect()
}

/// Derivative of each activation at `x` (with `y = f(x)` for the ones cheaper that way).
/// At kinks the derivative of the right-hand piece is used (Relu'(0) = 1, like `y = x`).
fn derivative(u: UnaryOp, x: f32, y: f32) -> f32 {
    match u {
        UnaryOp::Relu => {
            if x < 0.0 {
                0.0
            } else {
                1.0
            }
        }
        UnaryOp::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha
            } else {
                1.0
            }
        }
        UnaryOp::Sigmoid => y * (1.0 - y),
        UnaryOp::HardSigmoid { alpha, beta } => {
            let z = alpha * x + beta;
            if z > 0.0 && z < 1.0 {
                alpha
            } else {
                0.0
            }
        }
        UnaryOp::HardSwish => {
            if x < -3.0 {
                0.0
            } else if x > 3.0 {
                1.0
            } else {
                x / 3.0 + 0.5
            }
        }
        UnaryOp::Tanh => 1.0 - y * y,
        UnaryOp::Erf => std::f32::consts::FRAC_2_SQRT_PI * (-x * x).exp(),
        UnaryOp::Exp => y,
        UnaryOp::Log => 1.0 / x,
        UnaryOp::Sqrt => 0.5 / y,
        UnaryOp::Neg => -1.0,
        UnaryOp::Abs => {
            if x < 0.0 {
                -1.0
            } else {
                1.0
            }
        }
        UnaryOp::Reciprocal => -y * y,
        // Piecewise constant: zero almost everywhere.
        UnaryOp::Floor | UnaryOp::Ceil => 0.0,
    }
}

/// Activations: `dx = f'(x) · dy`.
pub(super) fn unary(u: UnaryOp, cx: &Ctx) -> Grads {
    let (x, g) = (cx.inputs[0], cx.dy);
    let (xv, yv) = (cx.x(0)?, f32s(cx.op, cx.output, usize::MAX)?);
    if xv.len() != g.len() {
        return Err(cx.misfit("the input", x.shape()));
    }
    let dx = xv
        .iter()
        .zip(yv)
        .zip(g)
        .map(|((&x, &y), &g)| derivative(u, x, y) * g)
        .collect();
    Ok(vec![cx.entry(x.shape(), dx)?])
}

/// Clip: the gradient passes where `min ≤ x ≤ max`; below (above) the range it goes to the
/// `min` (`max`) input, which is a scalar.
pub(super) fn clip(c: &Clip, cx: &Ctx) -> Grads {
    let (op, inputs, g) = (cx.op, cx.inputs, cx.dy);
    let x = inputs[0];
    let xv = cx.x(0)?;
    if xv.len() != g.len() {
        return Err(cx.misfit("the input", x.shape()));
    }
    let scalar = |slot: usize| -> Result<f32, RuntimeError> {
        match cx.x(slot)? {
            [s] => Ok(*s),
            _ => Err(RuntimeError::shape(
                op,
                format!(
                    "bound (input {slot}) must be a scalar, got shape {:?}",
                    inputs[slot].shape()
                ),
            )),
        }
    };
    let mut slot = 1;
    let lo = if c.has_min {
        slot += 1;
        Some(scalar(1)?)
    } else {
        None
    };
    let hi = if c.has_max { Some(scalar(slot)?) } else { None };
    let (mut glo, mut ghi) = (0f32, 0f32);
    let mut dx = Vec::with_capacity(xv.len());
    for (&x, &g) in xv.iter().zip(g) {
        // ONNX Clip is min(max(x, lo), hi): hi wins when the bounds cross.
        if hi.is_some_and(|h| x > h || lo.is_some_and(|l| l > h)) {
            ghi += g;
            dx.push(0.0);
        } else if lo.is_some_and(|l| x < l) {
            glo += g;
            dx.push(0.0);
        } else {
            dx.push(g);
        }
    }
    let mut out = vec![cx.entry(x.shape(), dx)?];
    if c.has_min {
        out.push(cx.entry(inputs[1].shape(), vec![glo])?);
    }
    if c.has_max {
        out.push(cx.entry(inputs[slot].shape(), vec![ghi])?);
    }
    Ok(out)
}
