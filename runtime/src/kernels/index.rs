//! Multi-index arithmetic shared by the strided kernels (and the gradients): stepping through
//! a shape in row-major order, splitting a flat index, and bounds-checked offsets. Integer
//! bookkeeping only, so sharing it cannot change any float result.

/// Advances the row-major multi-index `idx` over `shape` by one position (the last axis
/// fastest); past the last position it wraps to all zeros.
pub(crate) fn next_index(idx: &mut [usize], shape: &[usize]) {
    for j in (0..idx.len()).rev() {
        idx[j] += 1;
        if idx[j] < shape[j] {
            return;
        }
        idx[j] = 0;
    }
}

/// Writes the row-major multi-index of `flat` over `shape` into `idx`.
pub(crate) fn unravel(flat: usize, shape: &[usize], idx: &mut [usize]) {
    let mut rem = flat;
    for j in (0..shape.len()).rev() {
        idx[j] = rem % shape[j];
        rem /= shape[j];
    }
}

/// `Σ pos(j) · strides[j]` over the axes of `shape`, or `None` when some `pos(j)` falls
/// outside `0..shape[j]` (a tap in the padding, a position cropped away).
pub(crate) fn offset_inside(
    shape: &[usize],
    strides: &[usize],
    pos: impl Fn(usize) -> isize,
) -> Option<usize> {
    let mut off = 0usize;
    for (j, (&n, &s)) in shape.iter().zip(strides).enumerate() {
        let p = pos(j);
        if p < 0 || p as usize >= n {
            return None;
        }
        off += p as usize * s;
    }
    Some(off)
}
