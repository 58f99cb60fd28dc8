//! Recurrent layers: LSTM and GRU (ONNX `LSTM`, `GRU`, layout 0, default activations).
//!
//! LSTM inputs, the present ones in this order: `x [T, N, I]`, `w [D, 4H, I]`,
//! `r [D, 4H, H]`, then `b [D, 8H]` (`has_bias`), `initial_h [D, N, H]`, `initial_c [D, N, H]`,
//! and `p [D, 3H]` (`has_peepholes`). Outputs: `y [T, D, N, H]`, `y_h [D, N, H]`,
//! `y_c [D, N, H]`. Gates are in ONNX order `i, o, f, c`.
//!
//! GRU inputs: `x [T, N, I]`, `w [D, 3H, I]`, `r [D, 3H, H]`, then `b [D, 6H]` (`has_bias`)
//! and `initial_h [D, N, H]`. Outputs: `y [T, D, N, H]`, `y_h [D, N, H]`. Gates are in ONNX
//! order `z, r, h`; `linear_before_reset` (what PyTorch exports) applies the reset gate after
//! the recurrent product of the `h` gate.
//!
//! `D` is 2 for bidirectional (the second direction runs backwards in time). Absent optional
//! inputs are not replaced by zero constants, so the batch dimension stays free and the
//! kernels skip the additions.

use super::check::{self, Inferred};
use crate::text::fields::{attr_enum, attr_fields};
use crate::text::{Attrs, ParseError};
use crate::{Dim, InferError, Op, Shape, TensorType};

/// Which way an LSTM runs over the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    Forward,
    Reverse,
    Bidirectional,
}

attr_enum!(Direction, "forward, reverse or bidirectional", [
    Forward => "forward",
    Reverse => "reverse",
    Bidirectional => "bidirectional",
]);

impl Direction {
    /// `D`: the number of directions.
    pub fn count(self) -> usize {
        match self {
            Direction::Forward | Direction::Reverse => 1,
            Direction::Bidirectional => 2,
        }
    }

    /// Whether direction `d` (`0..count`) runs from the last time step to the first.
    pub fn backwards(self, d: usize) -> bool {
        match self {
            Direction::Forward => false,
            Direction::Reverse => true,
            Direction::Bidirectional => d == 1,
        }
    }
}

/// An LSTM layer (see the module doc for its inputs and outputs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lstm {
    pub direction: Direction,
    /// `H`.
    pub hidden: usize,
    pub has_bias: bool,
    pub has_initial_h: bool,
    pub has_initial_c: bool,
    pub has_peepholes: bool,
}

attr_fields!(Lstm {
    direction,
    hidden,
    has_bias,
    has_initial_h,
    has_initial_c,
    has_peepholes
});

/// Input positions of the optional inputs, `None` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmInputs {
    pub bias: Option<usize>,
    pub initial_h: Option<usize>,
    pub initial_c: Option<usize>,
    pub peepholes: Option<usize>,
}

impl Lstm {
    /// The number of inputs.
    pub fn num_inputs(&self) -> usize {
        3 + self.has_bias as usize
            + self.has_initial_h as usize
            + self.has_initial_c as usize
            + self.has_peepholes as usize
    }

    /// Where each optional input sits.
    pub fn inputs(&self) -> LstmInputs {
        let mut next = 3;
        let mut take = |present: bool| {
            present.then(|| {
                next += 1;
                next - 1
            })
        };
        LstmInputs {
            bias: take(self.has_bias),
            initial_h: take(self.has_initial_h),
            initial_c: take(self.has_initial_c),
            peepholes: take(self.has_peepholes),
        }
    }

    pub(crate) fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let at = self.inputs();
        Cell {
            gates: 4,
            direction: self.direction,
            hidden: self.hidden,
            num_inputs: self.num_inputs(),
            bias: at.bias,
            states: vec![(at.initial_h, "initial_h"), (at.initial_c, "initial_c")],
            peepholes: at.peepholes,
        }
        .infer(inputs)
    }
}

/// A GRU layer (see the module doc for its inputs and outputs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gru {
    pub direction: Direction,
    /// `H`.
    pub hidden: usize,
    pub has_bias: bool,
    pub has_initial_h: bool,
    /// ONNX `linear_before_reset`: `h̃ = tanh(x·W_h + b_Wh + r ⊙ (h·R_h + b_Rh))` instead of
    /// `tanh(x·W_h + (r ⊙ h)·R_h + b_Wh + b_Rh)`.
    pub linear_before_reset: bool,
}

attr_fields!(Gru {
    direction,
    hidden,
    has_bias,
    has_initial_h,
    linear_before_reset
});

/// Input positions of a GRU's optional inputs, `None` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GruInputs {
    pub bias: Option<usize>,
    pub initial_h: Option<usize>,
}

impl Gru {
    /// The number of inputs.
    pub fn num_inputs(&self) -> usize {
        3 + self.has_bias as usize + self.has_initial_h as usize
    }

    /// Where each optional input sits.
    pub fn inputs(&self) -> GruInputs {
        GruInputs {
            bias: self.has_bias.then_some(3),
            initial_h: self.has_initial_h.then_some(3 + self.has_bias as usize),
        }
    }

    pub(crate) fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let at = self.inputs();
        let cell = Cell {
            gates: 3,
            direction: self.direction,
            hidden: self.hidden,
            num_inputs: self.num_inputs(),
            bias: at.bias,
            states: vec![(at.initial_h, "initial_h")],
            peepholes: None,
        };
        let mut out = cell.infer(inputs)?;
        out.truncate(2);
        Ok(out)
    }
}

/// What LSTM and GRU shapes have in common: `gates` gate blocks of `H` rows in `W` and `R`,
/// a bias of `2·gates·H`, initial states `[D, N, H]`. Infers `y, y_h, y_h` (the LSTM's third
/// output is its cell state, shaped like `y_h`).
struct Cell {
    gates: usize,
    direction: Direction,
    hidden: usize,
    num_inputs: usize,
    bias: Option<usize>,
    states: Vec<(Option<usize>, &'static str)>,
    peepholes: Option<usize>,
}

impl Cell {
    fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let n_in = self.num_inputs;
        check::arity(inputs, (n_in, Some(n_in)))?;
        for (i, t) in inputs.iter().enumerate() {
            check::float(i, t)?;
            if t.dtype != inputs[0].dtype {
                return Err(InferError::DType {
                    input: i,
                    got: t.dtype,
                    expected: format!("{} like the input", inputs[0].dtype),
                });
            }
        }
        let (h, d, gates) = (self.hidden, self.direction.count(), self.gates);
        let x = inputs[0];
        let xd = x.shape.dims();
        if xd.len() != 3 {
            return Err(InferError::Rank {
                input: 0,
                got: xd.len(),
                expected: "3 ([seq, batch, input])".into(),
            });
        }
        let known = |input: usize, dim: Dim, what: &str| {
            dim.known().ok_or_else(|| {
                InferError::Batch(format!("input {input}: the {what} must be static"))
            })
        };
        let seq = known(0, xd[0], "sequence length")?;
        let size = known(0, xd[2], "input size")?;
        let batch = xd[1];
        if h == 0 || seq == 0 {
            return Err(InferError::Attribute {
                attr: "hidden",
                reason: "the hidden size and the sequence length must be at least 1".into(),
            });
        }
        // `2·gates·hidden` (the bias length) must be a size, not an overflow.
        if h.checked_mul(2 * gates)
            .is_none_or(|v| v > isize::MAX as usize)
        {
            return Err(InferError::Attribute {
                attr: "hidden",
                reason: format!("{h} is too large"),
            });
        }
        let expect = |input: usize, want: Vec<Dim>, what: &str| {
            let got = &inputs[input].shape;
            if got.dims() != want.as_slice() {
                return Err(InferError::ShapeMismatch {
                    input,
                    shape: got.clone(),
                    reason: format!("{what} must be {}", Shape(want)),
                });
            }
            Ok(())
        };
        let k = |v: usize| Dim::Known(v);
        expect(1, vec![k(d), k(gates * h), k(size)], "W")?;
        expect(2, vec![k(d), k(gates * h), k(h)], "R")?;
        if let Some(i) = self.bias {
            expect(i, vec![k(d), k(2 * gates * h)], "B")?;
        }
        for &(i, what) in &self.states {
            if let Some(i) = i {
                expect(i, vec![k(d), batch, k(h)], what)?;
            }
        }
        if let Some(i) = self.peepholes {
            expect(i, vec![k(d), k(3 * h)], "P")?;
        }
        let state = TensorType::new(x.dtype, Shape(vec![k(d), batch, k(h)]));
        Ok(vec![
            TensorType::new(x.dtype, Shape(vec![k(seq), k(d), batch, k(h)])),
            state.clone(),
            state,
        ])
    }
}

/// Rebuilds a recurrent op from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    match mnemonic {
        "lstm" => Some(Lstm::from_attrs(a).map(Op::Lstm)),
        "gru" => Some(Gru::from_attrs(a).map(Op::Gru)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn ty(dims: &[Dim]) -> TensorType {
        TensorType::new(DType::F32, Shape(dims.to_vec()))
    }

    #[test]
    fn infers_sequence_and_state_shapes() {
        let k = Dim::Known;
        let l = Lstm {
            direction: Direction::Bidirectional,
            hidden: 3,
            has_bias: true,
            has_initial_h: true,
            has_initial_c: false,
            has_peepholes: false,
        };
        assert_eq!(l.num_inputs(), 5);
        assert_eq!(l.inputs().initial_h, Some(4));
        assert_eq!(l.inputs().initial_c, None);
        let x = ty(&[k(5), Dim::Batch, k(2)]);
        let w = ty(&[k(2), k(12), k(2)]);
        let r = ty(&[k(2), k(12), k(3)]);
        let b = ty(&[k(2), k(24)]);
        let h0 = ty(&[k(2), Dim::Batch, k(3)]);
        let out = l.infer(&[&x, &w, &r, &b, &h0]).unwrap();
        assert_eq!(out[0], ty(&[k(5), k(2), Dim::Batch, k(3)]));
        assert_eq!(out[1], ty(&[k(2), Dim::Batch, k(3)]));
        assert_eq!(out[2], out[1]);
        // A W for one direction is rejected, naming the input.
        let w1 = ty(&[k(1), k(12), k(2)]);
        match l.infer(&[&x, &w1, &r, &b, &h0]) {
            Err(InferError::ShapeMismatch { input: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            l.infer(&[&x, &w, &r, &b]),
            Err(InferError::Arity { .. })
        ));
        // A hidden size from a malformed file whose gate sizes overflow is a typed error.
        let huge = Lstm {
            hidden: usize::MAX / 4,
            ..l
        };
        assert!(matches!(
            huge.infer(&[&x, &w, &r, &b, &h0]),
            Err(InferError::Attribute { attr: "hidden", .. })
        ));
    }

    #[test]
    fn gru_infers_sequence_and_state_shapes() {
        let k = Dim::Known;
        let g = Gru {
            direction: Direction::Reverse,
            hidden: 4,
            has_bias: false,
            has_initial_h: true,
            linear_before_reset: true,
        };
        assert_eq!(g.num_inputs(), 4);
        assert_eq!(g.inputs().bias, None);
        assert_eq!(g.inputs().initial_h, Some(3));
        let x = ty(&[k(6), Dim::Batch, k(2)]);
        let w = ty(&[k(1), k(12), k(2)]);
        let r = ty(&[k(1), k(12), k(4)]);
        let h0 = ty(&[k(1), Dim::Batch, k(4)]);
        let out = g.infer(&[&x, &w, &r, &h0]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], ty(&[k(6), k(1), Dim::Batch, k(4)]));
        assert_eq!(out[1], ty(&[k(1), Dim::Batch, k(4)]));
        // An LSTM's 4H rows are not a GRU's 3H.
        let w4 = ty(&[k(1), k(16), k(2)]);
        match g.infer(&[&x, &w4, &r, &h0]) {
            Err(InferError::ShapeMismatch { input: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        // The bias is 6H.
        let gb = Gru {
            has_bias: true,
            ..g.clone()
        };
        let b = ty(&[k(1), k(24)]);
        assert!(gb.infer(&[&x, &w, &r, &b, &h0]).is_ok());
        let b8 = ty(&[k(1), k(32)]);
        match gb.infer(&[&x, &w, &r, &b8, &h0]) {
            Err(InferError::ShapeMismatch { input: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        // The text form round-trips.
        let mut graph = crate::Graph::new("g");
        let ins: Vec<_> = [("x", &x), ("w", &w), ("r", &r), ("b", &b), ("h0", &h0)]
            .into_iter()
            .map(|(n, t)| graph.add_input(n, (*t).clone()))
            .collect();
        let id = graph
            .add_op_inferred("gru", Op::Gru(gb), &ins, vec!["y".into(), "yh".into()])
            .unwrap();
        graph.set_outputs(vec![crate::ValueRef::first(id)]);
        let text = crate::text::print(&graph);
        assert!(text.contains("gru"), "{text}");
        let back = crate::text::parse(&text).unwrap();
        assert_eq!(crate::text::print(&back), text);
    }
}
