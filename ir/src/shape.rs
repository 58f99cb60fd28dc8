//! Static shapes with one free batch dimension.
//!
//! Strata compiles ahead of time, so every dimension is known except the batch size, which a
//! deployed model must accept at any value. Keeping that one symbol (and no other) lets shape
//! inference stay exact while `strata run` still takes any batch.

use std::fmt;

use crate::DType;

/// One dimension of a tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A dimension whose size is known at compile time.
    Known(usize),
    /// The free batch dimension (printed `N`); its size is chosen when the model runs.
    Batch,
}

impl Dim {
    /// The size if it is known at compile time.
    pub fn known(self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(n),
            Dim::Batch => None,
        }
    }

    /// The concrete size for a given batch size.
    pub fn resolve(self, batch: usize) -> usize {
        match self {
            Dim::Known(n) => n,
            Dim::Batch => batch,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Batch => f.write_str("N"),
        }
    }
}

/// The shape of a tensor type: a list of dimensions, at most one of which is usually `Batch`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A fully known shape.
    pub fn known(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Known(d)).collect())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// True when some dimension is the batch symbol.
    pub fn has_batch(&self) -> bool {
        self.0.contains(&Dim::Batch)
    }

    /// The concrete dimensions if every dimension is known.
    pub fn as_known(&self) -> Option<Vec<usize>> {
        self.0.iter().map(|d| d.known()).collect()
    }

    /// Concrete dimensions for a given batch size.
    pub fn resolve(&self, batch: usize) -> Vec<usize> {
        self.0.iter().map(|d| d.resolve(batch)).collect()
    }

    /// Product of the known dimensions (the batch dimension counts as 1).
    pub fn known_product(&self) -> usize {
        self.0.iter().filter_map(|d| d.known()).product()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The static type of a value: element type and shape. Printed `f32[N,1,28,28]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> Self {
        TensorType { dtype, shape }
    }

    pub fn known(dtype: DType, dims: &[usize]) -> Self {
        TensorType {
            dtype,
            shape: Shape::known(dims),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}
