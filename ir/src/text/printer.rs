//! Graph → text. See the module documentation of [`crate::text`] for the grammar.

use std::fmt::Write as _;

use super::{fmt_f32, fmt_f64, fmt_name, LITERAL_LIMIT};
use crate::{Graph, NodeKind, Tensor, TensorData, TensorType, ValueRef};

/// Display options. The default prints everything, losslessly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Print constants with more elements than this as `<elided>`, for reading the structure
    /// of large models. Such text no longer parses.
    pub elide_constants_over: Option<usize>,
    /// Print every constant as `const <type> extern` (type only, no data): the `.strata`
    /// container stores the graph this way and keeps the tensors in its own directory, so
    /// weights are stored once, in binary. Such text parses only with
    /// [`parse_with`](super::parse_with) and a resolver that supplies the tensors.
    pub extern_constants: bool,
}

/// Prints the whole graph losslessly: `parse(&print(g)) == g`.
pub fn print(graph: &Graph) -> String {
    print_with(graph, &PrintOptions::default())
}

/// Prints the graph with display options.
pub fn print_with(graph: &Graph, options: &PrintOptions) -> String {
    let mut out = String::new();
    let value_name = |v: ValueRef| -> String {
        match graph.value(v) {
            Ok(val) => format!("%{}", fmt_name(&val.name)),
            // A dangling reference (only in malformed graphs): print something the parser
            // rejects as undefined rather than hiding it.
            Err(_) => format!("%\"<missing {:?}:{}>\"", v.node, v.output),
        }
    };
    let _ = write!(out, "graph @{}(", fmt_name(&graph.name));
    for (i, &id) in graph.inputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match graph.node(id) {
            Ok(node) => {
                let (name, ty) = match node.outputs.first() {
                    Some(v) => (v.name.as_str(), v.ty.to_string()),
                    None => (node.name.as_str(), "<no value>".to_string()),
                };
                let _ = write!(out, "%{}: {}", fmt_name(name), ty);
                node_suffix(&mut out, &node.name, name);
            }
            Err(_) => {
                let _ = write!(out, "%\"<missing input {id:?}>\"");
            }
        }
    }
    out.push_str(") {\n");
    // A graph with a cycle has no topological order; print in insertion order so the text
    // still shows everything (the parser will report the forward reference).
    let order: Vec<_> = graph
        .topo_order()
        .unwrap_or_else(|_| graph.node_ids().collect());
    for id in order {
        let Ok(node) = graph.node(id) else { continue };
        match &node.kind {
            NodeKind::Input => {}
            NodeKind::Constant(cid) => {
                let first = node.outputs.first().map(|v| v.name.as_str()).unwrap_or("");
                let _ = write!(out, "  %{} = const ", fmt_name(first));
                match graph.constant(*cid) {
                    Some(t) => write_tensor(&mut out, t, options),
                    None => out.push_str("<missing tensor>"),
                }
                node_suffix(&mut out, &node.name, first);
                out.push('\n');
            }
            NodeKind::Op(op) => {
                out.push_str("  ");
                if node.outputs.is_empty() {
                    out.push_str("()");
                }
                for (i, v) in node.outputs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "%{}", fmt_name(&v.name));
                }
                let _ = write!(out, " = {}(", op.mnemonic());
                for (i, v) in graph.node_inputs(id).into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&value_name(v));
                }
                out.push(')');
                let attrs = op.text_attrs();
                if !attrs.is_empty() {
                    out.push_str(" {");
                    for (i, (k, v)) in attrs.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(k);
                        out.push('=');
                        v.write(&mut out);
                    }
                    out.push('}');
                }
                let first = node.outputs.first().map(|v| v.name.as_str()).unwrap_or("");
                node_suffix(&mut out, &node.name, first);
                out.push_str(" :");
                for (i, v) in node.outputs.iter().enumerate() {
                    out.push_str(if i > 0 { ", " } else { " " });
                    write_type(&mut out, &v.ty);
                }
                out.push('\n');
            }
        }
    }
    out.push_str("  return");
    for (i, &v) in graph.outputs().iter().enumerate() {
        out.push_str(if i > 0 { ", " } else { " " });
        out.push_str(&value_name(v));
    }
    out.push_str("\n}\n");
    out
}

fn node_suffix(out: &mut String, node_name: &str, first_value: &str) {
    if node_name != first_value {
        let _ = write!(out, " @{}", fmt_name(node_name));
    }
}

fn write_type(out: &mut String, ty: &TensorType) {
    let _ = write!(out, "{ty}");
}

fn write_tensor(out: &mut String, t: &Tensor, options: &PrintOptions) {
    write_type(out, &t.ty());
    if options.extern_constants {
        out.push_str(" extern");
        return;
    }
    let n = t.len();
    if options.elide_constants_over.is_some_and(|limit| n > limit) {
        out.push_str(" <elided>");
        return;
    }
    if n > LITERAL_LIMIT {
        out.push_str(" hex\"");
        for b in t.data().to_le_bytes() {
            let _ = write!(out, "{b:02x}");
        }
        out.push('"');
        return;
    }
    let items: Vec<String> = match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| fmt_f32(x)).collect(),
        TensorData::F64(v) => v.iter().map(|&x| fmt_f64(x)).collect(),
        TensorData::I8(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::U8(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::I32(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::I64(v) => v.iter().map(|x| x.to_string()).collect(),
        TensorData::Bool(v) => v.iter().map(|x| x.to_string()).collect(),
    };
    let _ = write!(out, " [{}]", items.join(", "));
}
