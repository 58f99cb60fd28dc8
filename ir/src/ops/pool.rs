//! Pooling ops: windowed max/average and global pooling.

/// Windowed pooling parameters shared by MaxPool and AveragePool. Input `x [N, C, spatial…]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    /// `[begin_0, …, end_0, …]`, resolved from `auto_pad` by the frontend.
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub ceil_mode: bool,
    /// AveragePool only: whether padded positions count in the divisor.
    pub count_include_pad: bool,
}

/// Which reduction a global pool applies over all spatial positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobalPoolKind {
    Average,
    Max,
}
