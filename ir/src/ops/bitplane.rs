//! Bit-plane operators: Conv and Linear layers whose weights are vertically layered.
//!
//! The weights are stored as nested two's-complement bit-planes (most significant first) plus
//! one small side table per supported plane count `k`; running the layer at `k` reads only
//! planes `0..k`. The exact arithmetic is fixed in `docs/vertical-layering.md`.
//!
//! Inputs, in order:
//! 0. `x` — f32 activations (`[N, C, …]` for Conv, `[N, K]` for Linear);
//! 1. `planes` — u8 `[P, R, 8·ceil(K/64)]`: plane `i`'s bit matrix, rows of little-endian u64
//!    words. `P ≤ bits`: a model loaded from a truncated container carries fewer planes;
//! 2. `alpha`, 3. `beta`, 4. `bias` — f32 `[S, R]`, row `j` for plane count `plane_counts[j]`;
//! 5. `act` — f32 `[S, 2]`: the input activation scale and zero point for each plane count.

use super::check::{self, Inferred};
use super::Conv;
use crate::quant::{row_bytes, MAX_BITS, MIN_BITS};
use crate::text::fields::attr_fields;
use crate::text::{AttrValue, Attrs, ParseError};
use crate::{DType, Dim, InferError, Op, Shape, TensorType};

/// What a bit-plane op computes once its weight is dequantized.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BitplaneKernel {
    /// A convolution with these attributes (`has_bias` is false: the bias is in the side table).
    Conv(Conv),
    /// `y[N, R] = x[N, K] · W_kᵀ + bias` (Gemm and MatMul with a constant weight).
    Linear,
}

/// Shape of the layered weight and which plane counts have side tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlaneSpec {
    /// `B`: the precision the codes were quantized to (planes stored in a full model).
    pub bits: u8,
    /// The plane counts `k` with a side table, strictly ascending, each in `1..=bits`.
    pub plane_counts: Vec<u8>,
    /// `A`: activation bits of the integer path; with `act_bits_k`, the widest of them.
    pub act_bits: u8,
    /// `R`: output channels.
    pub rows: usize,
    /// `K`: reduction length (Conv: `C/group · prod(kernel)`).
    pub cols: usize,
    /// Activation bits per plane count, parallel to `plane_counts` (`W k A k` has
    /// `max(k, 2)`); empty when every count uses `act_bits`, which is how text written before
    /// this field reads. Read it through [`PlaneSpec::act_bits_at`], never directly.
    pub act_bits_k: Vec<u8>,
}

/// A Conv or Linear layer with vertically layered weights.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bitplane {
    /// The float layer this op stands for (shape semantics and the float path).
    pub kernel: BitplaneKernel,
    /// Layout of the planes and which plane counts can run.
    pub spec: PlaneSpec,
}

/// Input slots, named so kernels and passes do not hard-code positions.
pub const INPUT_X: usize = 0;
pub const INPUT_PLANES: usize = 1;
pub const INPUT_ALPHA: usize = 2;
pub const INPUT_BETA: usize = 3;
pub const INPUT_BIAS: usize = 4;
pub const INPUT_ACT: usize = 5;
/// Number of inputs of every bit-plane op.
pub const NUM_INPUTS: usize = 6;

impl PlaneSpec {
    /// Checks the attributes alone (widths, plane counts, sizes), before any input is seen.
    pub fn check(&self) -> Result<(), InferError> {
        let attr = |attr, reason: String| Err(InferError::Attribute { attr, reason });
        if !(MIN_BITS..=MAX_BITS).contains(&self.bits) {
            return attr(
                "bits",
                format!("{} is outside {MIN_BITS}..={MAX_BITS}", self.bits),
            );
        }
        if !(MIN_BITS..=MAX_BITS).contains(&self.act_bits) {
            return attr(
                "act_bits",
                format!("{} is outside {MIN_BITS}..={MAX_BITS}", self.act_bits),
            );
        }
        if self.plane_counts.is_empty() {
            return attr("plane_counts", "is empty: no plane count can run".into());
        }
        if !self.act_bits_k.is_empty() {
            let (n, s) = (self.act_bits_k.len(), self.plane_counts.len());
            if n != s {
                return attr(
                    "act_bits_k",
                    format!(
                        "has {n} entries for {s} plane counts {:?}",
                        self.plane_counts
                    ),
                );
            }
            if let Some(a) = self
                .act_bits_k
                .iter()
                .find(|a| !(MIN_BITS..=MAX_BITS).contains(*a))
            {
                return attr(
                    "act_bits_k",
                    format!("{a} is outside {MIN_BITS}..={MAX_BITS}"),
                );
            }
            let widest = self.act_bits_k.iter().copied().max().unwrap_or(0);
            if widest != self.act_bits {
                return attr(
                    "act_bits",
                    format!(
                        "{} is not the widest of act_bits_k {:?} ({widest})",
                        self.act_bits, self.act_bits_k
                    ),
                );
            }
        }
        for (i, &k) in self.plane_counts.iter().enumerate() {
            if k == 0 || k > self.bits {
                return attr("plane_counts", format!("{k} is outside 1..={}", self.bits));
            }
            if i > 0 && self.plane_counts[i - 1] >= k {
                return attr(
                    "plane_counts",
                    format!("{:?} is not strictly ascending", self.plane_counts),
                );
            }
        }
        if self.rows == 0 || self.cols == 0 {
            return attr(
                if self.rows == 0 { "rows" } else { "cols" },
                "must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// A spec whose plane count `plane_counts[j]` quantizes its activations to
    /// `act_bits[j]` bits: `act_bits` is the widest, `act_bits_k` is left empty when all are
    /// equal (so a `W k A8` model prints and stores exactly as before per-count widths).
    pub fn with_act_bits(
        bits: u8,
        plane_counts: Vec<u8>,
        act_bits: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> PlaneSpec {
        let widest = act_bits.iter().copied().max().unwrap_or(0);
        let uniform = act_bits.iter().all(|&a| a == widest);
        PlaneSpec {
            bits,
            plane_counts,
            act_bits: widest,
            rows,
            cols,
            act_bits_k: if uniform { Vec::new() } else { act_bits },
        }
    }

    /// The activation bits of side-table row `side` (the plane count `plane_counts[side]`):
    /// the one accessor every consumer (resolve, kernels, backends) reads them through.
    pub fn act_bits_at(&self, side: usize) -> u8 {
        self.act_bits_k.get(side).copied().unwrap_or(self.act_bits)
    }

    /// The activation bits of plane count `k`, if `k` has a side table.
    pub fn act_bits_of(&self, k: u8) -> Option<u8> {
        self.side_index(k).map(|j| self.act_bits_at(j))
    }

    /// The side-table row for plane count `k`, if `k` has one.
    pub fn side_index(&self, k: u8) -> Option<usize> {
        self.plane_counts.iter().position(|&c| c == k)
    }

    /// The plane count a model with `present` planes runs at by default: the largest one that
    /// has a side table and whose planes are all present.
    pub fn default_planes(&self, present: usize) -> Option<u8> {
        self.plane_counts
            .iter()
            .rev()
            .copied()
            .find(|&k| k as usize <= present)
    }
}

impl BitplaneKernel {
    /// The equivalent float weight's shape `[R, C/group, kernel…]` (Conv) or `[R, K]` (Linear),
    /// i.e. how `cols` unflattens. Used by shape inference and the float path.
    pub fn weight_shape(&self, spec: &PlaneSpec) -> Result<Vec<usize>, InferError> {
        match self {
            BitplaneKernel::Linear => Ok(vec![spec.rows, spec.cols]),
            BitplaneKernel::Conv(c) => {
                let window = c
                    .kernel
                    .iter()
                    .try_fold(1usize, |a, &k| a.checked_mul(k))
                    .filter(|&p| p > 0)
                    .ok_or_else(|| InferError::Attribute {
                        attr: "kernel",
                        reason: format!("{:?} has no positive size", c.kernel),
                    })?;
                if spec.cols % window != 0 {
                    return Err(InferError::Attribute {
                        attr: "cols",
                        reason: format!(
                            "{} is not a multiple of the kernel window {window}",
                            spec.cols
                        ),
                    });
                }
                let mut shape = vec![spec.rows, spec.cols / window];
                shape.extend_from_slice(&c.kernel);
                Ok(shape)
            }
        }
    }
}

/// Fails unless input `input` is `dtype` with exactly the known shape `dims`.
fn exact(input: usize, ty: &TensorType, dtype: DType, dims: &[usize]) -> Result<(), InferError> {
    check::dtype_eq(input, ty, dtype)?;
    if ty.shape != Shape::known(dims) {
        return Err(InferError::ShapeMismatch {
            input,
            shape: ty.shape.clone(),
            reason: format!("expected {}", Shape::known(dims)),
        });
    }
    Ok(())
}

impl Bitplane {
    /// Conv: the float Conv's output for the unflattened weight `[R, K/prod(kernel), kernel…]`;
    /// Linear: `[N, K] → [N, R]`. The planes may number fewer than `bits` (a truncated model)
    /// but at least one; side tables are `[S, R]` and `act` is `[S, 2]`, `S` the plane counts.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(inputs, (NUM_INPUTS, Some(NUM_INPUTS)))?;
        let spec = &self.spec;
        spec.check()?;
        let x = inputs[INPUT_X];
        check::dtype_eq(INPUT_X, x, DType::F32)?;
        let planes = inputs[INPUT_PLANES];
        check::dtype_eq(INPUT_PLANES, planes, DType::U8)?;
        check::rank_eq(INPUT_PLANES, planes, 3)?;
        let p = check::known(planes.shape.0[0], "the plane count of input 1")?;
        let want = [spec.rows, row_bytes(spec.cols)];
        if !(1..=spec.bits as usize).contains(&p)
            || planes.shape.0[1..] != Shape::known(&want).0[..]
        {
            return Err(InferError::ShapeMismatch {
                input: INPUT_PLANES,
                shape: planes.shape.clone(),
                reason: format!(
                    "expected [P, {}, {}] with 1 ≤ P ≤ {} (bits)",
                    want[0], want[1], spec.bits
                ),
            });
        }
        let s = spec.plane_counts.len();
        for input in [INPUT_ALPHA, INPUT_BETA, INPUT_BIAS] {
            exact(input, inputs[input], DType::F32, &[s, spec.rows])?;
        }
        exact(INPUT_ACT, inputs[INPUT_ACT], DType::F32, &[s, 2])?;
        match &self.kernel {
            BitplaneKernel::Conv(c) => {
                if c.has_bias {
                    return Err(InferError::Attribute {
                        attr: "has_bias",
                        reason: "must be false: the bias lives in the side table".into(),
                    });
                }
                let w = TensorType::new(DType::F32, Shape::known(&self.kernel.weight_shape(spec)?));
                c.infer(&[x, &w])
            }
            BitplaneKernel::Linear => {
                check::rank_eq(INPUT_X, x, 2)?;
                if x.shape.0[1] != Dim::Known(spec.cols) {
                    return Err(InferError::ShapeMismatch {
                        input: INPUT_X,
                        shape: x.shape.clone(),
                        reason: format!("expected [N, {}] (cols)", spec.cols),
                    });
                }
                Ok(vec![TensorType::new(
                    DType::F32,
                    Shape(vec![x.shape.0[0], Dim::Known(spec.rows)]),
                )])
            }
        }
    }
}

// The plane spec's text attributes are its fields, in field order.
// `act_bits_k` came later: printed only when non-empty, absent in older text.
attr_fields!(PlaneSpec {
    bits,
    plane_counts,
    act_bits,
    rows,
    cols
} optional {
    act_bits_k
});

/// Text-form attributes: the Conv window attributes (no `has_bias`, always false) then the
/// plane spec, in field order.
pub(crate) fn text_attrs(b: &Bitplane) -> Vec<(&'static str, AttrValue)> {
    let mut out = Vec::new();
    if let BitplaneKernel::Conv(c) = &b.kernel {
        out.extend(
            c.text_attrs()
                .into_iter()
                .filter(|(name, _)| *name != "has_bias"),
        );
    }
    out.extend(b.spec.text_attrs());
    out
}

/// Rebuilds `bitplane_conv` / `bitplane_linear` from their attributes.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    let spec = PlaneSpec::from_attrs;
    let conv = |a: &mut Attrs| -> Result<Op, ParseError> {
        let c = Conv {
            kernel: a.usizes("kernel")?,
            strides: a.usizes("strides")?,
            pads: a.usizes("pads")?,
            dilations: a.usizes("dilations")?,
            group: a.usize("group")?,
            has_bias: false,
        };
        Ok(Op::Bitplane(Bitplane {
            kernel: BitplaneKernel::Conv(c),
            spec: spec(a)?,
        }))
    };
    match mnemonic {
        "bitplane_conv" => Some(conv(a)),
        "bitplane_linear" => Some(spec(a).map(|spec| {
            Op::Bitplane(Bitplane {
                kernel: BitplaneKernel::Linear,
                spec,
            })
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::{assert_rejects, run};

    fn spec(rows: usize, cols: usize) -> PlaneSpec {
        PlaneSpec {
            bits: 8,
            plane_counts: vec![2, 4, 8],
            act_bits: 8,
            rows,
            cols,
            act_bits_k: vec![],
        }
    }

    /// The window every conv test uses: 3×3, stride 2, pad 1.
    fn window(group: usize) -> Conv {
        Conv {
            kernel: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group,
            has_bias: false,
        }
    }

    fn conv_op(group: usize, rows: usize, cols: usize) -> Op {
        conv_with(window(group), rows, cols)
    }

    fn conv_with(conv: Conv, rows: usize, cols: usize) -> Op {
        Op::Bitplane(Bitplane {
            kernel: BitplaneKernel::Conv(conv),
            spec: spec(rows, cols),
        })
    }

    fn linear_op(rows: usize, cols: usize) -> Op {
        Op::Bitplane(Bitplane {
            kernel: BitplaneKernel::Linear,
            spec: spec(rows, cols),
        })
    }

    /// The six input types of a layer with `rows` outputs and three plane counts: `x`,
    /// `planes`, the `[3, rows]` alpha, beta and bias tables and the `[3, 2]` act table.
    fn inputs(x: &str, planes: &str, rows: usize) -> Vec<String> {
        let side = format!("f32[3,{rows}]");
        let tables = [side.clone(), side.clone(), side, "f32[3,2]".into()];
        [x.into(), planes.into()]
            .into_iter()
            .chain(tables)
            .collect()
    }

    #[test]
    fn conv_infers_like_float_conv() {
        // 4 input channels, group 2 → K = 2·3·3 = 18, one word per row.
        let op = conv_op(2, 6, 18);
        let full = inputs("f32[N,4,9,9]", "u8[8,6,8]", 6);
        assert_eq!(run(&op, &full).unwrap(), ["f32[N,6,5,5]"]);
        // A truncated model with 3 planes types the same.
        let truncated = inputs("f32[1,4,9,9]", "u8[3,6,8]", 6);
        assert_eq!(run(&op, &truncated).unwrap(), ["f32[1,6,5,5]"]);
    }

    #[test]
    fn linear_infers() {
        let tys = inputs("f32[N,130]", "u8[8,10,24]", 10);
        assert_eq!(run(&linear_op(10, 130), &tys).unwrap(), ["f32[N,10]"]);
    }

    #[test]
    fn input_errors() {
        let op = linear_op(10, 130);
        let ok = inputs("f32[N,130]", "u8[8,10,24]", 10);
        let with = |i: usize, t: &str| {
            let mut v = ok.clone();
            v[i] = t.into();
            v
        };
        assert_rejects!(&op, {
            &ok[..5] => InferError::Arity { got: 5, .. },
            with(0, "f64[N,130]") => InferError::DType { input: 0, .. },
            with(0, "f32[N,129]") => InferError::ShapeMismatch { input: 0, .. },
            with(0, "f32[N,1,130]") => InferError::Rank { input: 0, .. },
            with(1, "i8[8,10,24]") => InferError::DType { input: 1, .. },
            with(1, "u8[9,10,24]") => InferError::ShapeMismatch { input: 1, .. },
            with(1, "u8[0,10,24]") => InferError::ShapeMismatch { input: 1, .. },
            with(1, "u8[8,10,16]") => InferError::ShapeMismatch { input: 1, .. },
            with(1, "u8[N,10,24]") => InferError::Batch(_),
            with(3, "f32[2,10]") => InferError::ShapeMismatch { input: 3, .. },
            with(4, "f64[3,10]") => InferError::DType { input: 4, .. },
            with(5, "f32[3,1]") => InferError::ShapeMismatch { input: 5, .. },
        });
        // Conv: channels must match C/group = K / prod(kernel).
        assert_rejects!(&conv_op(2, 6, 18), {
            inputs("f32[N,6,9,9]", "u8[8,6,8]", 6) => InferError::ShapeMismatch { input: 1, .. },
        });
    }

    /// The attribute an inference error names; panics on any other error.
    fn attr_of(r: Result<Vec<String>, InferError>) -> &'static str {
        match r {
            Err(InferError::Attribute { attr, .. }) => attr,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn attribute_errors() {
        type Breaks = fn(&mut PlaneSpec);
        let cases: [(Breaks, &str); 15] = [
            (|s| s.bits = 1, "bits"),
            (|s| s.act_bits_k = vec![2, 4], "act_bits_k"),
            (|s| s.act_bits_k = vec![2, 4, 8, 8], "act_bits_k"),
            (|s| s.act_bits_k = vec![1, 4, 8], "act_bits_k"),
            (|s| s.act_bits_k = vec![2, 4, 9], "act_bits_k"),
            (|s| s.act_bits_k = vec![2, 4, 6], "act_bits"),
            (|s| s.bits = 9, "bits"),
            (|s| s.act_bits = 16, "act_bits"),
            (|s| s.plane_counts = vec![], "plane_counts"),
            (|s| s.plane_counts = vec![0, 2, 8], "plane_counts"),
            (|s| s.plane_counts = vec![2, 4, 9], "plane_counts"),
            (|s| s.plane_counts = vec![4, 2, 8], "plane_counts"),
            (|s| s.plane_counts = vec![2, 2, 8], "plane_counts"),
            (|s| s.rows = 0, "rows"),
            (|s| s.cols = 0, "cols"),
        ];
        let tys = inputs("f32[N,8]", "u8[8,2,8]", 2);
        for (break_spec, attr) in cases {
            let mut spec = spec(2, 8);
            break_spec(&mut spec);
            let kernel = BitplaneKernel::Linear;
            let op = Op::Bitplane(Bitplane { kernel, spec });
            assert_eq!(attr_of(run(&op, &tys)), attr, "{op:?}");
        }
        // Conv: cols must unflatten over the kernel window; no separate bias input.
        let c = inputs("f32[N,2,9,9]", "u8[8,6,8]", 6);
        assert_eq!(attr_of(run(&conv_op(1, 6, 17), &c)), "cols");
        let biased = Conv {
            has_bias: true,
            ..window(1)
        };
        assert_eq!(attr_of(run(&conv_with(biased, 6, 18), &c)), "has_bias");
        let zero = Conv {
            kernel: vec![0, 3],
            ..window(1)
        };
        assert_eq!(attr_of(run(&conv_with(zero, 6, 18), &c)), "kernel");
    }

    #[test]
    fn plane_count_selection() {
        let s = spec(1, 1);
        assert_eq!(s.default_planes(8), Some(8));
        assert_eq!(s.default_planes(7), Some(4));
        assert_eq!(s.default_planes(2), Some(2));
        assert_eq!(s.default_planes(1), None);
        assert_eq!(s.side_index(4), Some(1));
        assert_eq!(s.side_index(3), None);
    }

    #[test]
    fn per_count_activation_bits() {
        let s = PlaneSpec::with_act_bits(8, vec![2, 4, 8], vec![2, 4, 8], 1, 1);
        assert_eq!((s.act_bits, s.act_bits_k.clone()), (8, vec![2, 4, 8]));
        s.check().unwrap();
        assert_eq!(s.act_bits_of(2), Some(2));
        assert_eq!(s.act_bits_of(4), Some(4));
        assert_eq!(s.act_bits_of(8), Some(8));
        assert_eq!(s.act_bits_of(3), None);
        assert_eq!(s.act_bits_at(1), 4);
        // Uniform widths collapse to the single `act_bits` (the pre-existing form).
        let u = PlaneSpec::with_act_bits(8, vec![2, 4], vec![6, 6], 1, 1);
        assert_eq!((u.act_bits, u.act_bits_k.is_empty()), (6, true));
        assert_eq!(u.act_bits_of(2), Some(6));
        assert_eq!(spec(1, 1).act_bits_of(4), Some(8));
    }

    #[test]
    fn text_attrs_round_trip() {
        let mut wkak = linear_op(10, 130);
        if let Op::Bitplane(b) = &mut wkak {
            b.spec.act_bits_k = vec![2, 4, 8];
        }
        for op in [conv_op(2, 6, 18), linear_op(10, 130), wkak] {
            let attrs = op.text_attrs();
            let entries = attrs
                .into_iter()
                .map(|(n, v)| (n.to_string(), v, crate::text::Pos::default()))
                .collect();
            let mut a = Attrs::new(op.mnemonic(), crate::text::Pos::default(), entries);
            let back = Op::from_text(op.mnemonic(), &mut a).unwrap().unwrap();
            a.finish().unwrap();
            assert_eq!(back, op);
        }
    }
}
