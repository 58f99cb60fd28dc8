//! Model summaries for `strata inspect`: interface, op histogram, parameters and MACs.
//!
//! Deployment engineers size a model against a device before anything else; these are the
//! numbers they ask for. Counts are per sample (the batch dimension taken as 1).

use std::collections::BTreeMap;

use serde::Serialize;
use strata_ir::{Graph, GraphError, NodeKind};

/// One graph input or output.
#[derive(Debug, Clone, Serialize)]
pub struct Port {
    pub name: String,
    /// Text-form type, e.g. `f32[N,1,28,28]`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// One op node with its cost.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub name: String,
    pub op: &'static str,
    pub output: String,
    /// Multiply-accumulates per sample.
    pub macs: u64,
    /// Elements of the constant weights this layer reads (not counting other layers' tensors).
    pub params: u64,
}

/// Everything `strata inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub op_counts: BTreeMap<&'static str, usize>,
    /// Weights and biases read by the layers (bit-plane weights count one per element).
    pub parameters: u64,
    /// Bytes of all constants as stored.
    pub constant_bytes: u64,
    pub layers: Vec<Layer>,
    pub total_macs: u64,
}

/// Why a graph could not be summarized.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The graph's sizes are within the limits but a count derived from them is not.
    #[error("{what} overflows 64 bits")]
    Overflow { what: String },
}

/// Builds the summary of a graph.
pub fn summarize(graph: &Graph) -> Result<Summary, InspectError> {
    let overflow = |what: String| InspectError::Overflow { what };
    let port = |v: strata_ir::ValueRef| -> Result<Port, GraphError> {
        let val = graph.value(v)?;
        Ok(Port {
            name: val.name.clone(),
            ty: val.ty.to_string(),
        })
    };
    let inputs = graph
        .inputs()
        .iter()
        .map(|&n| port(strata_ir::ValueRef::first(n)))
        .collect::<Result<_, _>>()?;
    let outputs = graph
        .outputs()
        .iter()
        .map(|&v| port(v))
        .collect::<Result<_, _>>()?;
    let mut op_counts = BTreeMap::new();
    let mut layers = Vec::new();
    for id in graph.topo_order()? {
        let node = graph.node(id)?;
        let NodeKind::Op(op) = &node.kind else {
            continue;
        };
        *op_counts.entry(op.mnemonic()).or_insert(0) += 1;
        let params = op.params(
            graph
                .node_inputs(id)
                .iter()
                .filter_map(|&v| graph.constant_value(v))
                .filter(|t| t.dtype().is_float())
                .map(|t| t.len() as u64),
        );
        layers.push(Layer {
            name: node.name.clone(),
            op: op.mnemonic(),
            output: node
                .outputs
                .first()
                .map(|v| v.ty.to_string())
                .unwrap_or_default(),
            macs: graph.node_macs(id)?,
            params,
        });
    }
    let mut constant_bytes = 0u64;
    for (_, t) in graph.constants() {
        constant_bytes += (t.len() * t.dtype().size_bytes()) as u64;
    }
    let parameters = layers
        .iter()
        .try_fold(0u64, |a, l| a.checked_add(l.params))
        .ok_or_else(|| overflow("the parameter count".into()))?;
    let total_macs = layers
        .iter()
        .try_fold(0u64, |a, l| a.checked_add(l.macs))
        .ok_or_else(|| overflow("the total MAC count".into()))?;
    Ok(Summary {
        name: graph.name.clone(),
        inputs,
        outputs,
        op_counts,
        parameters,
        constant_bytes,
        layers,
        total_macs,
    })
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "model: {}", self.name)?;
        writeln!(f, "inputs:")?;
        for p in &self.inputs {
            writeln!(f, "  {}: {}", p.name, p.ty)?;
        }
        writeln!(f, "outputs:")?;
        for p in &self.outputs {
            writeln!(f, "  {}: {}", p.name, p.ty)?;
        }
        writeln!(f, "ops:")?;
        for (op, n) in &self.op_counts {
            writeln!(f, "  {op:<22} {n}")?;
        }
        writeln!(
            f,
            "parameters: {} ({} bytes of constants)",
            self.parameters, self.constant_bytes
        )?;
        writeln!(f, "layers (per sample):")?;
        writeln!(
            f,
            "  {:<24} {:<16} {:<20} {:>12} {:>10}",
            "name", "op", "output", "MACs", "params"
        )?;
        for l in self.layers.iter().filter(|l| l.macs > 0 || l.params > 0) {
            writeln!(
                f,
                "  {:<24} {:<16} {:<20} {:>12} {:>10}",
                l.name, l.op, l.output, l.macs, l.params
            )?;
        }
        write!(f, "total MACs per sample: {}", self.total_macs)
    }
}
