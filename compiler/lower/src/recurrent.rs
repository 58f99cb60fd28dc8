//! LSTM and GRU as one step each: the runtime's `recurrent` kernels over batch 1, with their
//! weights stored as float constants (recurrent layers are not quantized: their weights stay
//! f32, as the runtime runs them) and their outputs in buffers the step writes together.

use strata_ir::ops::{Gru, Lstm};
use strata_ir::{NodeId, Op, ValueRef};

use crate::error::unsupported;
use crate::walk::Walk;
use crate::{Kernel, LowerError, Operand};

/// The operands and sizes of a [`Kernel::Lstm`] step.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmStep {
    /// `x [T, 1, I]`.
    pub x: crate::Loc,
    /// Constants `W [D, 4H, I]`, `R [D, 4H, H]`, `B [D, 8H]`, `P [D, 3H]`.
    pub w: usize,
    pub r: usize,
    pub b: Option<usize>,
    pub p: Option<usize>,
    /// Initial states `[D, 1, H]` (zeros when absent).
    pub h0: Option<Operand>,
    pub c0: Option<Operand>,
    pub seq: usize,
    pub input: usize,
    pub hidden: usize,
    /// Whether direction `d` runs backwards, for each of the `D` directions.
    pub backwards: Vec<bool>,
    /// Buffers of `y_h` and `y_c` (`[D, 1, H]`; they hold the running state), and of the
    /// `4H` gate pre-activations (scratch within the step).
    pub y_h: usize,
    pub y_c: usize,
    pub gates: usize,
}

/// The operands and sizes of a [`Kernel::Gru`] step.
#[derive(Debug, Clone, PartialEq)]
pub struct GruStep {
    /// `x [T, 1, I]`.
    pub x: crate::Loc,
    /// Constants `W [D, 3H, I]`, `R [D, 3H, H]`, `B [D, 6H]`.
    pub w: usize,
    pub r: usize,
    pub b: Option<usize>,
    /// Initial state `[D, 1, H]` (zeros when absent).
    pub h0: Option<Operand>,
    pub seq: usize,
    pub input: usize,
    pub hidden: usize,
    pub linear_before_reset: bool,
    /// Whether direction `d` runs backwards, for each of the `D` directions.
    pub backwards: Vec<bool>,
    /// Buffers of `y_h` (`[D, 1, H]`, the running state) and of the `4H` floats of scratch
    /// the step uses.
    pub y_h: usize,
    pub gates: usize,
}

impl Walk<'_> {
    /// `x [seq, 1, input]` of a recurrent layer, or why the generated code cannot run it.
    fn sequence(&self, x: ValueRef, node: &str, op: &Op) -> Result<(usize, usize), LowerError> {
        let &[seq, batch, input] = self.shape(x)?.as_slice() else {
            return Err(unsupported(node, op, "x must be [seq, batch, input]"));
        };
        if batch != 1 {
            return Err(unsupported(
                node,
                op,
                format!("x has {batch} samples per run; the generated code runs one"),
            ));
        }
        Ok((seq, input))
    }

    /// `W`, `R` (inputs 1 and 2) and the bias at `bias`, stored as constants.
    fn weights(
        &mut self,
        ins: &[ValueRef],
        bias: Option<usize>,
        node: &str,
        op: &Op,
    ) -> Result<(usize, usize, Option<usize>), LowerError> {
        let w = self.store(ins[1], node, op, "W")?;
        let r = self.store(ins[2], node, op, "R")?;
        let b = bias
            .map(|i| self.store(ins[i], node, op, "B"))
            .transpose()?;
        Ok((w, r, b))
    }

    pub(crate) fn gru(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        l: &Gru,
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        if ins.len() != l.num_inputs() {
            return Err(unsupported(node, op, "wrong number of inputs"));
        }
        let (seq, input) = self.sequence(ins[0], node, op)?;
        let at = l.inputs();
        let (w, r, b) = self.weights(ins, at.bias, node, op)?;
        let h0 = self.state(at.initial_h.map(|i| ins[i]), node, op, step)?;
        let x = self.act(ins[0], step, node, op)?;
        let (h, d) = (l.hidden, l.direction.count());
        let out = |output| ValueRef { node: id, output };
        let y = self.output_at(out(0), seq * d * h, step);
        let y_h = self.output_at(out(1), d * h, step);
        let gates = self.fresh(4 * h, step);
        let s = GruStep {
            x,
            w,
            r,
            b,
            h0,
            seq,
            input,
            hidden: h,
            linear_before_reset: l.linear_before_reset,
            backwards: (0..d).map(|i| l.direction.backwards(i)).collect(),
            y_h,
            gates,
        };
        self.macs = self
            .macs
            .saturating_add((seq * d * 3 * h * (input + h)) as u64);
        self.push(node, Kernel::Gru(Box::new(s)), y);
        Ok(())
    }

    /// An initial state: an activation, a stored constant, or absent.
    fn state(
        &mut self,
        v: Option<ValueRef>,
        node: &str,
        op: &Op,
        step: usize,
    ) -> Result<Option<Operand>, LowerError> {
        let Some(v) = v else { return Ok(None) };
        Ok(Some(if self.locs.contains_key(&v) {
            Operand::Act(self.act(v, step, node, op)?)
        } else {
            Operand::Const(self.store(v, node, op, "an initial state")?)
        }))
    }

    pub(crate) fn lstm(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        l: &Lstm,
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        if ins.len() != l.num_inputs() {
            return Err(unsupported(node, op, "wrong number of inputs"));
        }
        let (seq, input) = self.sequence(ins[0], node, op)?;
        let at = l.inputs();
        let (w, r, b) = self.weights(ins, at.bias, node, op)?;
        let p = at
            .peepholes
            .map(|i| self.store(ins[i], node, op, "P"))
            .transpose()?;
        let h0 = self.state(at.initial_h.map(|i| ins[i]), node, op, step)?;
        let c0 = self.state(at.initial_c.map(|i| ins[i]), node, op, step)?;
        let x = self.act(ins[0], step, node, op)?;
        let (h, d) = (l.hidden, l.direction.count());
        let out = |output| ValueRef { node: id, output };
        let y = self.output_at(out(0), seq * d * h, step);
        let y_h = self.output_at(out(1), d * h, step);
        let y_c = self.output_at(out(2), d * h, step);
        let gates = self.fresh(4 * h, step);
        let s = LstmStep {
            x,
            w,
            r,
            b,
            p,
            h0,
            c0,
            seq,
            input,
            hidden: h,
            backwards: (0..d).map(|i| l.direction.backwards(i)).collect(),
            y_h,
            y_c,
            gates,
        };
        self.macs = self
            .macs
            .saturating_add((seq * d * 4 * h * (input + h)) as u64);
        self.push(node, Kernel::Lstm(Box::new(s)), y);
        Ok(())
    }
}
