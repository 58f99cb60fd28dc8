//! The constant data: each bit-plane layer's weights (in the lowering's layout), side tables,
//! layer and geometry structs, and the constant operands, in step order.

use std::fmt::Write as _;

use strata_lower::{CodeBlocks, ConvGeometry, Kernel, Layer, Lowered, Operand, Weights};

use crate::text::{comment_safe, float_array, unsigned_init};

/// The C name of the constant operand of step `step`.
pub(crate) fn constant_name(step: usize) -> String {
    format!("K{step}")
}

/// The C name of constant operand `j` (0..4: l, r, a, b) of select step `step`.
pub(crate) fn select_constant_name(step: usize, j: usize) -> String {
    format!("K{step}_{j}")
}

/// The C name of the index table of step `step` (`take`).
pub(crate) fn table_name(step: usize) -> String {
    format!("I{step}")
}

/// The C names of the taps and weights of step `step` (`resize_linear`).
pub(crate) fn taps_names(step: usize) -> (String, String) {
    (format!("RT{step}"), format!("RW{step}"))
}

/// The C name of an LSTM step's constant `what` (`W`, `R`, `B`, `P`, `H` or `C` for the
/// initial states).
pub(crate) fn lstm_name(step: usize, what: char) -> String {
    format!("LSTM{step}{what}")
}

/// The C name of a GRU step's constant `what` (`W`, `R`, `B`, `H` for the initial state).
pub(crate) fn gru_name(step: usize, what: char) -> String {
    format!("GRU{step}{what}")
}

fn const_index(o: Operand) -> Option<usize> {
    match o {
        Operand::Const(k) => Some(k),
        Operand::Act(_) => None,
    }
}

/// Every layer's and constant's arrays, in the order their steps run.
pub(crate) fn print(l: &Lowered) -> String {
    let mut d = String::new();
    for (i, st) in l.steps.iter().enumerate() {
        match &st.kernel {
            Kernel::BitplaneConv { layer, .. } | Kernel::BitplaneLinear { layer, .. } => {
                print_layer(&mut d, *layer, &l.layers[*layer]);
            }
            Kernel::Binary {
                b: Operand::Const(k),
                ..
            } => {
                let _ = writeln!(d, "/* constant operand of `{}` */", comment_safe(&st.node));
                float_array(&mut d, &constant_name(i), &l.constants[*k].values);
                d.push('\n');
            }
            Kernel::MatMul { a, b, .. } => {
                for o in [a, b] {
                    if let Operand::Const(k) = o {
                        let _ =
                            writeln!(d, "/* constant operand of `{}` */", comment_safe(&st.node));
                        float_array(&mut d, &constant_name(i), &l.constants[*k].values);
                        d.push('\n');
                    }
                }
            }
            Kernel::Select { operands, .. } => {
                for (j, (o, _)) in operands.iter().enumerate() {
                    if let Operand::Const(k) = o {
                        let _ = writeln!(
                            d,
                            "/* constant operand {j} of `{}` */",
                            comment_safe(&st.node)
                        );
                        float_array(&mut d, &select_constant_name(i, j), &l.constants[*k].values);
                        d.push('\n');
                    }
                }
            }
            Kernel::Fill { constant, .. } => {
                let _ = writeln!(d, "/* constant input of `{}` */", comment_safe(&st.node));
                float_array(&mut d, &constant_name(i), &l.constants[*constant].values);
                d.push('\n');
            }
            Kernel::Take { table, .. } => {
                let _ = writeln!(d, "/* index table of `{}` */", comment_safe(&st.node));
                let idx = &l.tables[*table].indices;
                let _ = write!(
                    d,
                    "static const int32_t {}[{}] = {{",
                    table_name(i),
                    idx.len()
                );
                list(&mut d, idx.iter().map(|v| v.to_string()), 16);
                d.push('\n');
            }
            Kernel::ResizeLinear { taps, .. } => {
                let _ = writeln!(
                    d,
                    "/* interpolation taps of `{}` */",
                    comment_safe(&st.node)
                );
                let t = &l.taps[*taps];
                let (ti, tw) = taps_names(i);
                let _ = write!(d, "static const int32_t {ti}[{}] = {{", 2 * t.indices.len());
                list(
                    &mut d,
                    t.indices.iter().flatten().map(|v| v.to_string()),
                    16,
                );
                let _ = write!(d, "static const double {tw}[{}] = {{", t.weights.len());
                // Rust's shortest round-trip decimal parses back to the same double in C.
                list(&mut d, t.weights.iter().map(|w| format!("{w:?}")), 8);
                d.push('\n');
            }
            Kernel::Gru(s) => {
                let _ = writeln!(d, "/* GRU weights of `{}` (f32) */", comment_safe(&st.node));
                let consts = [
                    ('W', Some(s.w)),
                    ('R', Some(s.r)),
                    ('B', s.b),
                    ('H', s.h0.and_then(const_index)),
                ];
                for (what, k) in consts {
                    if let Some(k) = k {
                        float_array(&mut d, &gru_name(i, what), &l.constants[k].values);
                    }
                }
                d.push('\n');
            }
            Kernel::Lstm(s) => {
                let _ = writeln!(
                    d,
                    "/* LSTM weights of `{}` (f32) */",
                    comment_safe(&st.node)
                );
                let consts = [
                    ('W', Some(s.w)),
                    ('R', Some(s.r)),
                    ('B', s.b),
                    ('P', s.p),
                    ('H', s.h0.and_then(const_index)),
                    ('C', s.c0.and_then(const_index)),
                ];
                for (what, k) in consts {
                    if let Some(k) = k {
                        float_array(&mut d, &lstm_name(i, what), &l.constants[k].values);
                    }
                }
                d.push('\n');
            }
            Kernel::Binary {
                b: Operand::Act(_), ..
            }
            | Kernel::Relu { .. }
            | Kernel::Pool { .. }
            | Kernel::Reduce { .. }
            | Kernel::Unary { .. }
            | Kernel::Softmax { .. }
            | Kernel::Concat { .. }
            | Kernel::Gather { .. } => {}
        }
    }
    d
}

/// The items of an array initializer after its `{`, `per_line` a line, and the closing `};`.
fn list(d: &mut String, items: impl Iterator<Item = String>, per_line: usize) {
    for (n, v) in items.enumerate() {
        d.push_str(if n % per_line == 0 { "\n    " } else { " " });
        d.push_str(&v);
        d.push(',');
    }
    d.push_str("\n};\n");
}

/// Layer `i`: weights `P`/`W` (+ tap offsets `T` and code row sums `WS`), side tables
/// `AL BE BI AC` (`AC`: scale, zero point and code range per count), counts `CN`, the layer
/// struct `L` and the convolution struct `G`.
fn print_layer(d: &mut String, i: usize, layer: &Layer) {
    let _ = writeln!(
        d,
        "/* layer {i}: `{}` ({}) */",
        comment_safe(&layer.node),
        layer.op
    );
    match &layer.weights {
        Weights::Planes { bytes, .. } => planes(d, i, bytes),
        Weights::Codes(b) => codes(d, i, b),
    }
    float_array(d, &format!("AL{i}"), &layer.alpha);
    float_array(d, &format!("BE{i}"), &layer.beta);
    float_array(d, &format!("BI{i}"), &layer.bias);
    // Per count: scale, zero point, then that count's activation code range.
    let act: Vec<f32> = layer
        .act
        .chunks_exact(2)
        .zip(&layer.act_limits)
        .flat_map(|(sz, &(lo, hi))| [sz[0], sz[1], lo, hi])
        .collect();
    float_array(d, &format!("AC{i}"), &act);
    let cs: Vec<String> = layer.counts.iter().map(|c| format!("{c}u")).collect();
    let _ = writeln!(
        d,
        "static const uint8_t CN{i}[{}] = {{{}}};",
        cs.len(),
        cs.join(", ")
    );
    let (n, r, cols) = (layer.counts.len(), layer.rows, layer.cols);
    match &layer.weights {
        Weights::Planes { words_per_row, .. } => {
            let _ = writeln!(
                d,
                "static const bp_layer L{i} = {{P{i}, AL{i}, BE{i}, BI{i}, AC{i}, CN{i}, {n}u, {r}u, {cols}u, {words_per_row}u}};"
            );
        }
        Weights::Codes(b) => {
            let (mb, taps, cpairs, k, bits) =
                (b.row_blocks, b.taps, b.channel_pairs, layer.k, b.bits);
            let _ = writeln!(
                d,
                "static const bq_layer L{i} = {{W{i}, AL{i}, BE{i}, BI{i}, AC{i}, CN{i}, T{i}, WS{i}, {n}u, {r}u, {k}u, {mb}u, {taps}u, {cpairs}u, {cols}u, {bits}u}};"
            );
        }
    }
    if let Some(g) = &layer.conv {
        geometry(d, i, g, &layer.weights);
    }
    d.push('\n');
}

/// The kept planes as `uint64_t P{i}[]`, four words a line.
fn planes(d: &mut String, i: usize, bytes: &[u8]) {
    let _ = write!(d, "static const uint64_t P{i}[{}] = {{", bytes.len() / 8);
    for (n, w) in bytes.chunks_exact(8).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        d.push_str(if n % 4 == 0 { "\n    " } else { " " });
        let _ = write!(d, "0x{:016x}u,", u64::from_le_bytes(a));
    }
    d.push_str("\n};\n");
}

/// The blocked codes as `int8_t W{i}[]` (32 a line), the tap offsets `T{i}` and the row sums
/// of the codes at each count `WS{i}`.
fn codes(d: &mut String, i: usize, b: &CodeBlocks) {
    let _ = write!(d, "static const int8_t W{i}[{}] = {{", b.codes.len());
    for (n, v) in b.codes.iter().enumerate() {
        d.push_str(if n % 32 == 0 { "\n    " } else { " " });
        let _ = write!(d, "{v},");
    }
    d.push_str("\n};\n");
    let ts: Vec<String> = b.tap_offsets.iter().map(|t| format!("{t}u")).collect();
    let _ = writeln!(
        d,
        "static const uint32_t T{i}[{}] = {{{}}};",
        ts.len(),
        ts.join(", ")
    );
    let _ = write!(d, "static const int32_t WS{i}[{}] = {{", b.row_sums.len());
    list(d, b.row_sums.iter().map(|v| v.to_string()), 16);
}

/// `bp_conv G{i}` (packed planes) or `bq_conv G{i}` (codes, with the padded input a
/// code-layout convolution always has), in the field order of the prelude's structs.
fn geometry(d: &mut String, i: usize, g: &ConvGeometry, weights: &Weights) {
    let v = g.values();
    let (ty, f) = match weights {
        // `bq_conv` adds the padded input's size before the group and im2col after it.
        Weights::Codes(CodeBlocks {
            padded: Some(p), ..
        }) => {
            let (head, group) = v.split_at(v.len() - 1);
            let f = [head, &[p.height, p.width], group, &[p.im2col as usize]].concat();
            ("bq_conv", f)
        }
        Weights::Codes(CodeBlocks { padded: None, .. }) | Weights::Planes { .. } => {
            ("bp_conv", v.to_vec())
        }
    };
    let _ = writeln!(d, "static const {ty} G{i} = {};", unsigned_init(&f));
}
