//! One bit-plane layer at one plane count, validated once: the plane count has a side table
//! and its planes are present, the planes match the layout the op claims, the side tables
//! match the plane counts, and the activation parameters are usable. The runtime and every
//! backend consume this view instead of re-checking the raw tensors (as naga's validator
//! hands its `ModuleInfo` to each backend).

use super::{check_layout, planes_len, prefix_codes, ActQuant, ActQuantizer, QuantError};
use crate::ops::bitplane::{
    Bitplane, INPUT_ACT, INPUT_ALPHA, INPUT_BETA, INPUT_BIAS, INPUT_PLANES, NUM_INPUTS,
};
use crate::{DType, InferError, Tensor, TensorData};

/// Why a bit-plane layer cannot run at a plane count. Inputs are numbered as the op's
/// (`INPUT_PLANES` = 1, …).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// The op's attributes are inconsistent.
    #[error("{0}")]
    Spec(#[from] InferError),
    #[error("{got} weight inputs, expected {expected} (planes, alpha, beta, bias, act)")]
    Arity { got: usize, expected: usize },
    #[error("plane count {k} has no side table (plane counts {plane_counts:?})")]
    NoSideTable { k: u8, plane_counts: Vec<u8> },
    #[error("plane count {k} needs {k} planes, only {available} are present")]
    PlanesUnavailable { k: u8, available: usize },
    #[error("input {input} ({what}) is {got}, expected {expected}")]
    DType {
        input: usize,
        what: &'static str,
        got: DType,
        expected: DType,
    },
    #[error("input {input} ({what}) has {got} elements, expected {expected} (side tables do not match the plane counts)")]
    SideTable {
        input: usize,
        what: &'static str,
        got: usize,
        expected: usize,
    },
    /// The planes do not hold the layout the op claims.
    #[error("planes: {0}")]
    Layout(QuantError),
    /// The activation scale or zero point of plane count `k` is unusable.
    #[error("plane count {k}: {source}")]
    Activation { k: u8, source: QuantError },
}

/// A bit-plane layer's weights at plane count `k`, checked (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLayer<'a> {
    /// The plane count.
    pub k: u8,
    /// Its side-table row.
    pub side: usize,
    /// Planes present in the weights (`≥ k`).
    pub present: usize,
    /// Exactly the bytes of planes `0..k`: what a `k`-plane model keeps.
    pub planes: &'a [u8],
    /// `R`, output channels.
    pub rows: usize,
    /// `K`, the reduction length.
    pub cols: usize,
    /// The input quantizer of this plane count.
    pub act: ActQuantizer,
    /// Row `side` of `alpha`, `beta` and `bias` (`rows` values each).
    pub alpha: &'a [f32],
    pub beta: &'a [f32],
    pub bias: &'a [f32],
}

impl ResolvedLayer<'_> {
    /// The `k`-plane codes `q_k`, row-major `[rows, cols]`, rebuilt from the kept planes.
    pub fn codes(&self) -> Result<Vec<i32>, QuantError> {
        prefix_codes(self.planes, self.rows, self.cols, self.k)
    }
}

const WHAT: [&str; NUM_INPUTS] = ["x", "planes", "alpha", "beta", "bias", "act"];

impl Bitplane {
    /// Validates the op's weight inputs (`weights` = its inputs `INPUT_PLANES..`, i.e.
    /// planes, alpha, beta, bias, act; activations are not needed) for running at `k`
    /// planes, and returns the view of that plane count.
    pub fn resolve<'a>(
        &self,
        weights: &[&'a Tensor],
        k: u8,
    ) -> Result<ResolvedLayer<'a>, ResolveError> {
        let spec = &self.spec;
        spec.check()?;
        let expected = NUM_INPUTS - INPUT_PLANES;
        if weights.len() != expected {
            return Err(ResolveError::Arity {
                got: weights.len(),
                expected,
            });
        }
        let input = |i: usize| weights[i - INPUT_PLANES];
        let side = spec
            .side_index(k)
            .ok_or_else(|| ResolveError::NoSideTable {
                k,
                plane_counts: spec.plane_counts.clone(),
            })?;
        let planes = input(INPUT_PLANES);
        let present = planes.shape().first().copied().unwrap_or(0);
        if k as usize > present {
            return Err(ResolveError::PlanesUnavailable {
                k,
                available: present,
            });
        }
        let TensorData::U8(bytes) = planes.data() else {
            return Err(dtype_error(INPUT_PLANES, planes, DType::U8));
        };
        let (rows, cols) = (spec.rows, spec.cols);
        check_layout(bytes.len(), present, rows, cols, spec.bits).map_err(ResolveError::Layout)?;
        // `k ≤ present` and the layout holds, so the prefix length cannot overflow.
        let kept = planes_len(k as usize, rows, cols)
            .ok_or(ResolveError::Layout(QuantError::Overflow { rows, cols }))?;
        let counts = spec.plane_counts.len();
        let table = |i: usize, width: usize| -> Result<&'a [f32], ResolveError> {
            let t = input(i);
            let v = t.as_f32().ok_or_else(|| dtype_error(i, t, DType::F32))?;
            if v.len() != counts * width {
                return Err(ResolveError::SideTable {
                    input: i,
                    what: WHAT[i],
                    got: v.len(),
                    expected: counts * width,
                });
            }
            Ok(&v[side * width..(side + 1) * width])
        };
        let (alpha, beta, bias) = (
            table(INPUT_ALPHA, rows)?,
            table(INPUT_BETA, rows)?,
            table(INPUT_BIAS, rows)?,
        );
        let act = table(INPUT_ACT, 2)?;
        let act = ActQuantizer::new(
            ActQuant {
                scale: act[0],
                zero: act[1],
            },
            spec.act_bits_at(side),
        )
        .map_err(|source| ResolveError::Activation { k, source })?;
        Ok(ResolvedLayer {
            k,
            side,
            present,
            planes: &bytes[..kept],
            rows,
            cols,
            act,
            alpha,
            beta,
            bias,
        })
    }
}

fn dtype_error(input: usize, t: &Tensor, expected: DType) -> ResolveError {
    ResolveError::DType {
        input,
        what: WHAT[input],
        got: t.dtype(),
        expected,
    }
}
