//! Reductions.

/// Mean over `axes` (non-negative, sorted, deduplicated; never empty — the frontend turns
/// "reduce everything" into the full axis list and `noop_with_empty_axes` into Identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReduceMean {
    pub axes: Vec<usize>,
    pub keep_dims: bool,
}
