//! The C helpers of `prelude.c`, split into typed sections that declare what they need, so
//! that exactly the sections the program's steps use are emitted (an unused static function
//! would warn under `-Wall -Werror`), in an order where typedefs precede their users.

use std::collections::BTreeSet;

use strata_lower::{Kernel, Lowered, WeightLayout};

/// The C helpers, split by `/*@section NAME*/` markers.
const PRELUDE: &str = include_str!("prelude.c");

/// A prelude section. The declaration order is the print order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Section {
    Side,
    BpCommon,
    BpConvT,
    Pool2dT,
    BqCommon,
    Quant,
    BpCommon2,
    BpLinear,
    BpConv2d,
    Relu,
    Pool2d,
    Reduce,
    Binary,
    Select,
    MatMul,
    /// `strata_ir::math::C_SOURCE`: deterministic tanh and erf, not in `prelude.c` so the C
    /// text has one source beside the Rust it must agree with.
    DetMath,
    Unary,
    RnnDot,
    Lstm,
    Gru,
    Softmax,
    Concat,
    Gather,
    Take,
    ResizeLinear,
    /// The code-layout drivers: printed after the scratch arrays and the target's kernels,
    /// which they use.
    BqRun,
    BqLinear,
    BqConv2d,
}

impl Section {
    /// The marker name in `prelude.c`.
    fn name(self) -> &'static str {
        match self {
            Section::Side => "side",
            Section::BpCommon => "bp_common",
            Section::BpConvT => "bp_conv_t",
            Section::Pool2dT => "pool2d_t",
            Section::BqCommon => "bq_common",
            Section::Quant => "quant",
            Section::BpCommon2 => "bp_common2",
            Section::BpLinear => "bp_linear",
            Section::BpConv2d => "bp_conv2d",
            Section::Relu => "relu",
            Section::Pool2d => "pool2d",
            Section::Reduce => "reduce",
            Section::Binary => "binary",
            Section::Select => "select",
            Section::MatMul => "matmul",
            Section::DetMath => "det_math",
            Section::Unary => "unary",
            Section::RnnDot => "rnn_dot",
            Section::Lstm => "lstm",
            Section::Gru => "gru",
            Section::Softmax => "softmax",
            Section::Concat => "concat",
            Section::Gather => "gather",
            Section::Take => "take",
            Section::ResizeLinear => "resize_linear",
            Section::BqRun => "bq_run",
            Section::BqLinear => "bq_linear",
            Section::BqConv2d => "bq_conv2d",
        }
    }

    /// The sections this one's C text uses.
    fn needs(self) -> &'static [Section] {
        use Section::*;
        match self {
            BpCommon2 => &[BpCommon, Quant],
            BpLinear => &[BpCommon2],
            BpConv2d => &[BpCommon2, BpConvT],
            Pool2d => &[Pool2dT],
            BqRun => &[BqCommon, Quant],
            BqLinear | BqConv2d => &[BqRun],
            Unary => &[DetMath],
            Lstm | Gru => &[Unary, RnnDot],
            Side | BpCommon | BpConvT | Pool2dT | BqCommon | Quant | Relu | Reduce | Binary
            | Select | MatMul | DetMath | Softmax | Concat | Gather | Take | ResizeLinear
            | RnnDot => &[],
        }
    }

    /// Whether it comes after the scratch arrays.
    pub(crate) fn late(self) -> bool {
        matches!(self, Section::BqRun | Section::BqLinear | Section::BqConv2d)
    }

    /// Its C text.
    pub(crate) fn text(self) -> &'static str {
        if self == Section::DetMath {
            return strata_ir::math::C_SOURCE;
        }
        section_of(PRELUDE, self.name())
    }
}

/// The section a step's kernel calls, in the program's weight layout.
fn kernel_section(kernel: &Kernel, layout: WeightLayout) -> Option<Section> {
    Some(match (kernel, layout) {
        (Kernel::BitplaneConv { .. }, WeightLayout::Planes) => Section::BpConv2d,
        (Kernel::BitplaneLinear { .. }, WeightLayout::Planes) => Section::BpLinear,
        (Kernel::BitplaneConv { .. }, WeightLayout::Codes) => Section::BqConv2d,
        (Kernel::BitplaneLinear { .. }, WeightLayout::Codes) => Section::BqLinear,
        (Kernel::Relu { .. }, _) => Section::Relu,
        (Kernel::Pool { .. }, _) => Section::Pool2d,
        (Kernel::Reduce { .. }, _) => Section::Reduce,
        (Kernel::Binary { .. }, _) => Section::Binary,
        (Kernel::Select { .. }, _) => Section::Select,
        (Kernel::MatMul { .. }, _) => Section::MatMul,
        (Kernel::Unary { .. }, _) => Section::Unary,
        (Kernel::Softmax { .. }, _) => Section::Softmax,
        (Kernel::Concat { .. }, _) => Section::Concat,
        (Kernel::Gather { .. }, _) => Section::Gather,
        (Kernel::Take { .. }, _) => Section::Take,
        (Kernel::ResizeLinear { .. }, _) => Section::ResizeLinear,
        (Kernel::Lstm(_), _) => Section::Lstm,
        (Kernel::Gru(_), _) => Section::Gru,
        // A plain memcpy.
        (Kernel::Fill { .. }, _) => return None,
    })
}

/// Every section the program's steps need, with their dependencies. Every bit-plane step
/// also selects its side-table row (`side`).
pub(crate) fn used(l: &Lowered) -> BTreeSet<Section> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<Section> = Vec::new();
    for step in &l.steps {
        todo.extend(kernel_section(&step.kernel, l.layout));
        if step.kernel.layer().is_some() {
            todo.push(Section::Side);
        }
    }
    while let Some(s) = todo.pop() {
        if out.insert(s) {
            todo.extend_from_slice(s.needs());
        }
    }
    out
}

/// The prelude text before the first section (the shared comment).
pub(crate) fn preamble() -> &'static str {
    PRELUDE.split("/*@section ").next().unwrap_or("")
}

/// Text of section `name` of a C file split by `/*@section NAME*/` markers.
pub(crate) fn section_of(text: &'static str, name: &str) -> &'static str {
    let marker = format!("/*@section {name}*/\n");
    let Some(start) = text.find(&marker) else {
        return "";
    };
    let body = &text[start + marker.len()..];
    let end = body.find("/*@section ").unwrap_or(body.len());
    &body[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Section; 27] = [
        Section::Side,
        Section::BpCommon,
        Section::BpConvT,
        Section::Pool2dT,
        Section::BqCommon,
        Section::Quant,
        Section::BpCommon2,
        Section::BpLinear,
        Section::BpConv2d,
        Section::Relu,
        Section::Pool2d,
        Section::Reduce,
        Section::Binary,
        Section::MatMul,
        Section::DetMath,
        Section::Unary,
        Section::RnnDot,
        Section::Lstm,
        Section::Gru,
        Section::Softmax,
        Section::Concat,
        Section::Gather,
        Section::Take,
        Section::ResizeLinear,
        Section::BqRun,
        Section::BqLinear,
        Section::BqConv2d,
    ];

    #[test]
    fn every_section_exists_and_follows_what_it_needs() {
        for s in ALL {
            assert!(!s.text().is_empty(), "{s:?} has no text in prelude.c");
            for &d in s.needs() {
                // Printed before its users (the late ones after every early one).
                assert!(d < s, "{s:?} needs {d:?}, which is printed later");
                assert!(!d.late() || s.late(), "{s:?} needs late {d:?}");
            }
        }
        assert_eq!(
            section_of("/*@section a*/\nx\n/*@section b*/\ny\n", "b"),
            "y\n"
        );
        assert_eq!(section_of("no markers", "a"), "");
    }
}
