//! Checks and extents shared by the sliding-window kernels (convolutions and pools), so that
//! both accept the same inputs and attributes and report them in the same words.

use strata_ir::Tensor;

use crate::RuntimeError;

/// Largest stride, dilation, pad, kernel or group accepted; real models are many orders below
/// it, and the bound keeps all index arithmetic far from overflow.
pub(crate) const ATTR_LIMIT: usize = 1 << 31;

/// The number of spatial axes of an `[N, C, spatial...]` input (at least one).
pub(crate) fn spatial_axes(op: &'static str, x: &Tensor) -> Result<usize, RuntimeError> {
    spatial_axes_of(op, x.shape())
}

/// [`spatial_axes`] of a shape.
pub(crate) fn spatial_axes_of(op: &'static str, x: &[usize]) -> Result<usize, RuntimeError> {
    if x.len() < 3 {
        return Err(RuntimeError::shape(
            op,
            format!("input must be [N, C, spatial...] with at least one spatial axis, got {x:?}"),
        ));
    }
    Ok(x.len() - 2)
}

/// A per-axis attribute must have `want` values, none above [`ATTR_LIMIT`], and (when
/// `positive`) none zero.
pub(crate) fn check_attr(
    op: &'static str,
    attr: &'static str,
    v: &[usize],
    want: usize,
    positive: bool,
) -> Result<(), RuntimeError> {
    let reason = if v.len() != want {
        format!("has {} values, expected {want}", v.len())
    } else if v.iter().any(|&x| x > ATTR_LIMIT) {
        format!("{v:?} exceeds {ATTR_LIMIT}")
    } else if positive && v.contains(&0) {
        "must be positive".to_string()
    } else {
        return Ok(());
    };
    Err(RuntimeError::Attribute { op, attr, reason })
}

/// How far a dilated window can slide along spatial axis `j` of the padded input
/// (`padded − span`), or an error when the window does not fit even once.
pub(crate) fn window_slack(
    op: &'static str,
    j: usize,
    input: usize,
    kernel: usize,
    dilation: usize,
    pads: (usize, usize),
) -> Result<usize, RuntimeError> {
    let span = kernel
        .saturating_sub(1)
        .saturating_mul(dilation)
        .saturating_add(1);
    let padded = input.saturating_add(pads.0).saturating_add(pads.1);
    if kernel == 0 || padded < span {
        return Err(RuntimeError::shape(
            op,
            format!("spatial axis {j}: padded input size {padded} is smaller than the dilated kernel {span}"),
        ));
    }
    Ok(padded - span)
}

/// The window steps `t < cap` for which `off + t·step` lies in `0..n`, as `[lo, hi)`
/// (`lo ≤ hi`): the taps of a window inside the input, or the outputs a tap reaches.
pub(crate) fn valid_range(off: isize, step: usize, n: usize, cap: usize) -> (usize, usize) {
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(step)
    };
    let hi = if (n as isize) <= off {
        0
    } else {
        ((n as isize - off) as usize).div_ceil(step).min(cap)
    };
    (lo.min(hi), hi)
}
