//! Element-wise ops: broadcasting binary arithmetic, comparisons, selection and the
//! one-input math and activation functions.

use super::check::{self, Inferred};
use crate::text::fields::attr_fields;
use crate::text::{AttrValue, Attrs, ParseError};
use crate::Op;
use crate::{DType, InferError, TensorType};

/// Binary arithmetic with numpy-style (multidirectional) broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// ONNX Pow. The frontend gives both sides the base's element type (an integer base with
    /// a float exponent is computed in float and cast back), so the IR op is homogeneous.
    Pow,
}

/// Broadcasting comparisons producing `bool` (ONNX Equal, Greater, Less, GreaterOrEqual,
/// LessOrEqual). Both sides share one element type; Equal also compares bools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Equal,
    Greater,
    Less,
    GreaterOrEqual,
    LessOrEqual,
}

/// Element-wise reductions over any number of inputs (at least one), all broadcast together
/// numpy-style: ONNX Max and Min (opset 8+). NaN propagates, as in numpy's `maximum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VariadicOp {
    Max,
    Min,
}

/// One-input element-wise functions; parameters are ONNX's attributes.
#[derive(Debug, Clone, Copy)]
pub enum UnaryOp {
    Relu,
    LeakyRelu { alpha: f32 },
    Sigmoid,
    HardSigmoid { alpha: f32, beta: f32 },
    HardSwish,
    Tanh,
    Erf,
    Exp,
    Log,
    Sqrt,
    Neg,
    Abs,
    Reciprocal,
    Floor,
    Ceil,
}

/// Clip to `[min, max]`. Inputs: `x`, then `min` if `has_min`, then `max` if `has_max`
/// (both scalars). Opset < 11 attribute bounds become constant inputs in the frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Clip {
    pub has_min: bool,
    pub has_max: bool,
}

impl BinaryOp {
    /// Same element type on both sides, numpy broadcasting of the shapes.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(inputs, (2, Some(2)))?;
        let (a, b) = (inputs[0], inputs[1]);
        check::numeric(0, a)?;
        check::same_dtype(1, b, a.dtype)?;
        let shape = check::broadcast(&a.shape, &b.shape)?;
        Ok(vec![TensorType::new(a.dtype, shape)])
    }
}

impl CompareOp {
    /// Same element type on both sides (bool only for Equal), numpy broadcasting; bool out.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(inputs, (2, Some(2)))?;
        let (a, b) = (inputs[0], inputs[1]);
        if *self != CompareOp::Equal {
            check::numeric(0, a)?;
        }
        check::same_dtype(1, b, a.dtype)?;
        let shape = check::broadcast(&a.shape, &b.shape)?;
        Ok(vec![TensorType::new(DType::Bool, shape)])
    }
}

/// ONNX Where: `cond` (bool) picks from `x` or `y` (one element type, any); all three
/// broadcast together.
pub fn infer_where(inputs: &[&TensorType]) -> Inferred {
    check::arity(inputs, (3, Some(3)))?;
    let (c, x, y) = (inputs[0], inputs[1], inputs[2]);
    check::dtype_eq(0, c, DType::Bool)?;
    check::same_dtype(2, y, x.dtype)?;
    let shape = check::broadcast(&check::broadcast(&c.shape, &x.shape)?, &y.shape)?;
    Ok(vec![TensorType::new(x.dtype, shape)])
}

impl VariadicOp {
    /// One element type for every input; the shapes broadcast together.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(inputs, (1, None))?;
        let first = inputs[0];
        check::numeric(0, first)?;
        let mut shape = first.shape.clone();
        for (i, t) in inputs.iter().enumerate().skip(1) {
            check::same_dtype(i, t, first.dtype)?;
            shape = check::broadcast(&shape, &t.shape)?;
        }
        Ok(vec![TensorType::new(first.dtype, shape)])
    }
}

impl UnaryOp {
    /// Shape-preserving. Relu, Neg and Abs also take signed integers (Abs unsigned ones too,
    /// as ONNX does); the others are transcendental or fractional and need floats.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        let signed = matches!(x.dtype, DType::I8 | DType::I32 | DType::I64);
        let int_ok = match self {
            UnaryOp::Relu | UnaryOp::Neg => signed,
            UnaryOp::Abs => signed || x.dtype == DType::U8,
            _ => false,
        };
        if !int_ok {
            check::float(0, x)?;
        }
        Ok(vec![x.clone()])
    }
}

/// PRelu: float `x`, `slope` of the same type unidirectionally broadcast to `x`.
pub fn infer_prelu(inputs: &[&TensorType]) -> Inferred {
    check::arity(inputs, (2, Some(2)))?;
    let (x, slope) = (inputs[0], inputs[1]);
    check::float(0, x)?;
    check::same_dtype(1, slope, x.dtype)?;
    check::broadcast_to(1, &slope.shape, &x.shape)?;
    Ok(vec![x.clone()])
}

impl Clip {
    /// Shape-preserving; the bounds are single-element tensors of x's element type (scalars,
    /// or `[1]`-shaped as some exporters write them).
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let n = 1 + self.has_min as usize + self.has_max as usize;
        check::arity(inputs, (n, Some(n)))?;
        let x = inputs[0];
        check::numeric(0, x)?;
        for (i, bound) in inputs.iter().enumerate().skip(1) {
            check::same_dtype(i, bound, x.dtype)?;
            if bound.shape.0.iter().any(|&d| d != crate::Dim::Known(1)) {
                return Err(InferError::ShapeMismatch {
                    input: i,
                    shape: bound.shape.clone(),
                    reason: "a clip bound must be a single element".into(),
                });
            }
        }
        Ok(vec![x.clone()])
    }
}

/// Text-form attributes of the element-wise ops, in field order.
impl UnaryOp {
    /// Text-form attributes, in field order.
    pub(crate) fn text_attrs(&self) -> Vec<(&'static str, AttrValue)> {
        match self {
            UnaryOp::LeakyRelu { alpha } => vec![("alpha", AttrValue::f32(*alpha))],
            UnaryOp::HardSigmoid { alpha, beta } => vec![
                ("alpha", AttrValue::f32(*alpha)),
                ("beta", AttrValue::f32(*beta)),
            ],
            UnaryOp::Relu
            | UnaryOp::Sigmoid
            | UnaryOp::HardSwish
            | UnaryOp::Tanh
            | UnaryOp::Erf
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Reciprocal
            | UnaryOp::Floor
            | UnaryOp::Ceil => vec![],
        }
    }
}

// Text form of Clip: its attributes are its fields, in field order.
attr_fields!(Clip { has_min, has_max });

/// Rebuilds an element-wise op from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    let unary = |u| Some(Ok(Op::Unary(u)));
    match mnemonic {
        "add" => Some(Ok(Op::Binary(BinaryOp::Add))),
        "sub" => Some(Ok(Op::Binary(BinaryOp::Sub))),
        "mul" => Some(Ok(Op::Binary(BinaryOp::Mul))),
        "div" => Some(Ok(Op::Binary(BinaryOp::Div))),
        "pow" => Some(Ok(Op::Binary(BinaryOp::Pow))),
        "equal" => Some(Ok(Op::Compare(CompareOp::Equal))),
        "greater" => Some(Ok(Op::Compare(CompareOp::Greater))),
        "less" => Some(Ok(Op::Compare(CompareOp::Less))),
        "greater_equal" => Some(Ok(Op::Compare(CompareOp::GreaterOrEqual))),
        "less_equal" => Some(Ok(Op::Compare(CompareOp::LessOrEqual))),
        "where" => Some(Ok(Op::Where)),
        "max" => Some(Ok(Op::Variadic(VariadicOp::Max))),
        "min" => Some(Ok(Op::Variadic(VariadicOp::Min))),
        "relu" => unary(UnaryOp::Relu),
        "sigmoid" => unary(UnaryOp::Sigmoid),
        "hard_swish" => unary(UnaryOp::HardSwish),
        "tanh" => unary(UnaryOp::Tanh),
        "erf" => unary(UnaryOp::Erf),
        "exp" => unary(UnaryOp::Exp),
        "log" => unary(UnaryOp::Log),
        "sqrt" => unary(UnaryOp::Sqrt),
        "neg" => unary(UnaryOp::Neg),
        "abs" => unary(UnaryOp::Abs),
        "reciprocal" => unary(UnaryOp::Reciprocal),
        "floor" => unary(UnaryOp::Floor),
        "ceil" => unary(UnaryOp::Ceil),
        "leaky_relu" => Some(
            a.f32("alpha")
                .map(|alpha| Op::Unary(UnaryOp::LeakyRelu { alpha })),
        ),
        "hard_sigmoid" => Some((|| {
            Ok(Op::Unary(UnaryOp::HardSigmoid {
                alpha: a.f32("alpha")?,
                beta: a.f32("beta")?,
            }))
        })()),
        "prelu" => Some(Ok(Op::PRelu)),
        "clip" => Some(Clip::from_attrs(a).map(Op::Clip)),
        _ => None,
    }
}

/// Bitwise on the float parameters (see [`crate::ops::Gemm`]'s `PartialEq`).
impl PartialEq for UnaryOp {
    fn eq(&self, o: &Self) -> bool {
        use UnaryOp::*;
        match (self, o) {
            (LeakyRelu { alpha: a }, LeakyRelu { alpha: b }) => a.to_bits() == b.to_bits(),
            (HardSigmoid { alpha: a, beta: b }, HardSigmoid { alpha: c, beta: d }) => {
                a.to_bits() == c.to_bits() && b.to_bits() == d.to_bits()
            }
            (Relu, Relu)
            | (Sigmoid, Sigmoid)
            | (HardSwish, HardSwish)
            | (Tanh, Tanh)
            | (Erf, Erf)
            | (Exp, Exp)
            | (Log, Log)
            | (Sqrt, Sqrt)
            | (Neg, Neg)
            | (Abs, Abs)
            | (Reciprocal, Reciprocal)
            | (Floor, Floor)
            | (Ceil, Ceil) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::{assert_infers, assert_rejects};
    use crate::Op;

    #[test]
    fn binary_broadcasting() {
        let add = Op::Binary(BinaryOp::Add);
        assert_infers(&[
            (&add, &["f32[N,3,4]", "f32[4]"], &["f32[N,3,4]"]),
            (&add, &["i64[2,1]", "i64[1,3]"], &["i64[2,3]"]),
            (&add, &["f32[N,1]", "f32[1,5]"], &["f32[N,5]"]),
        ]);
        assert_rejects!(&add, {
            ["f32[2]", "f32[3]"] => InferError::Broadcast { .. },
            ["f32[N]", "f32[3]"] => InferError::Batch(_),
            ["f32[2]", "i32[2]"] => InferError::DType { input: 1, .. },
            ["bool[2]", "bool[2]"] => InferError::DType { input: 0, .. },
            ["f32[2]"] => InferError::Arity { .. },
        });
    }

    #[test]
    fn variadic_broadcasting() {
        let max = Op::Variadic(VariadicOp::Max);
        assert_infers(&[
            (&max, &["f32[N,3]"], &["f32[N,3]"]),
            (&max, &["f32[N,1,4]", "f32[3,1]", "f32[4]"], &["f32[N,3,4]"]),
            (&max, &["i8[2]", "i8[1]"], &["i8[2]"]),
        ]);
        assert_rejects!(&max, {
            [] as [&str; 0] => InferError::Arity { .. },
            ["f32[2]", "f32[2]", "f64[2]"] => InferError::DType { input: 2, .. },
            ["bool[2]"] => InferError::DType { input: 0, .. },
            ["f32[2]", "f32[3]"] => InferError::Broadcast { .. },
        });
    }

    #[test]
    fn unary_and_prelu() {
        let relu = Op::Unary(UnaryOp::Relu);
        let sig = Op::Unary(UnaryOp::Sigmoid);
        assert_infers(&[
            (&relu, &["i32[N,3]"], &["i32[N,3]"]),
            (&sig, &["f64[2]"], &["f64[2]"]),
            (
                &Op::PRelu,
                &["f32[N,3,4,4]", "f32[3,1,1]"],
                &["f32[N,3,4,4]"],
            ),
        ]);
        assert_rejects!(&sig, { ["i32[2]"] => InferError::DType { .. } });
        assert_rejects!(&Op::PRelu, {
            ["f32[2,3]", "f32[2,3,1]"] => InferError::ShapeMismatch { input: 1, .. },
        });
    }

    #[test]
    fn math_compare_where() {
        let neg = Op::Unary(UnaryOp::Neg);
        let abs = Op::Unary(UnaryOp::Abs);
        let exp = Op::Unary(UnaryOp::Exp);
        let gt = Op::Compare(CompareOp::Greater);
        let eq = Op::Compare(CompareOp::Equal);
        assert_infers(&[
            (&neg, &["i32[3]"], &["i32[3]"]),
            (&abs, &["u8[3]"], &["u8[3]"]),
            (&exp, &["f32[N,3]"], &["f32[N,3]"]),
            (&gt, &["f32[N,3]", "f32[1]"], &["bool[N,3]"]),
            (&eq, &["bool[2]", "bool[2]"], &["bool[2]"]),
            (
                &Op::Where,
                &["bool[3,1]", "f32[N,1,2]", "f32[2]"],
                &["f32[N,3,2]"],
            ),
            (
                &Op::Binary(BinaryOp::Pow),
                &["f32[2,3]", "f32[3]"],
                &["f32[2,3]"],
            ),
        ]);
        assert_rejects!(&neg, { ["u8[3]"] => InferError::DType { input: 0, .. } });
        assert_rejects!(&exp, { ["i64[3]"] => InferError::DType { input: 0, .. } });
        assert_rejects!(&gt, {
            ["bool[2]", "bool[2]"] => InferError::DType { input: 0, .. },
            ["f32[2]", "i32[2]"] => InferError::DType { input: 1, .. },
            ["f32[2]", "f32[3]"] => InferError::Broadcast { .. },
        });
        assert_rejects!(&Op::Where, {
            ["f32[2]", "f32[2]", "f32[2]"] => InferError::DType { input: 0, .. },
            ["bool[2]", "f32[2]", "i64[2]"] => InferError::DType { input: 2, .. },
            ["bool[2]", "f32[2]"] => InferError::Arity { .. },
        });
    }

    #[test]
    fn clip_bounds() {
        let clip = |has_min, has_max| Op::Clip(Clip { has_min, has_max });
        let both = clip(true, true);
        assert_infers(&[(&both, &["f32[N,3]", "f32[]", "f32[1]"], &["f32[N,3]"])]);
        assert_rejects!(&both, {
            ["f32[N,3]", "f32[2]", "f32[]"] => InferError::ShapeMismatch { input: 1, .. },
            ["f32[3]", "f32[]"] => InferError::Arity { .. },
        });
        assert_rejects!(&clip(false, true), {
            ["f32[3]", "i8[]"] => InferError::DType { input: 1, .. },
        });
    }
}
