//! Quantization trained elsewhere: a [`VlQuantization`] built from given code scales and
//! side tables instead of calibration (`strata compile --qat-tables`, docs/qat-tables.md).
//!
//! A once-QAT run outside Strata (the `strata_torch` PyTorch package) fixes every layer's
//! per-channel code scale `s_c` and its side tables per plane count; the float weights alone
//! cannot say what they are. [`from_tables`] derives the codes from the float weights and
//! those scales with the same arithmetic as `vl-quantize` (`quant::quantize_with_scales`,
//! `quant::pack_planes`) and takes the tables as given, so `bitplane-rewrite` then builds the
//! bit-plane ops exactly as after `vl-quantize` (rounding the tables to half precision, which
//! is idempotent on tables an exporter already rounded).
//!
//! Layers are matched by **the name of their weight value** (the ONNX initializer name),
//! which survives exporters and import, where node names do not. The tables' `alpha`,
//! `beta` and `bias` are used as given: a Gemm's `alpha` (gain) and `beta·C` are the
//! exporter's to fold into them, as `vl-quantize` folds them into the tables it fits.

use std::collections::{BTreeMap, BTreeSet};

use strata_ir::quant::{self, ActBits, ActQuant, ActQuantizer, QuantError};
use strata_ir::Graph;

use crate::bitplane_rewrite::{QuantizedLayer, SideTable};
use crate::vl_quantize::{check_finite, quantizable_layers, QuantLayer, VlQuantization};
use crate::PassError;

/// How errors of the graph walk name this step.
const NAME: &str = "qat-tables";

/// Every layer's code scales and side tables, keyed by weight name.
#[derive(Debug, Clone, PartialEq)]
pub struct QatTables {
    /// `B`, the code width (2..=8).
    pub bits: u8,
    /// `A`, the activation bits of the integer path (2..=8).
    pub act_bits: u8,
    /// The plane counts with tables, strictly ascending, each in `1..=bits`.
    pub planes: Vec<u8>,
    /// Per weight name (the ONNX initializer name of the layer's weight).
    pub layers: BTreeMap<String, LayerTables>,
}

/// One layer's tables.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTables {
    /// `s_c`, one per output channel: `q_B = clamp(round_half_away(W / s_c))`.
    pub scales: Vec<f32>,
    /// One per plane count, in the order of [`QatTables::planes`].
    pub tables: Vec<SideTable>,
}

/// Why tables do not fit a graph. Every variant names the layer's node and its weight (or
/// the table's weight name, when no layer has it).
#[derive(Debug, thiserror::Error)]
pub enum QatTablesError {
    /// The file's global entries are out of range.
    #[error("{entry} = {value}: {reason}")]
    Global {
        entry: &'static str,
        value: String,
        reason: String,
    },
    #[error("layer `{node}` (weight `{weight}`) has no table")]
    MissingTable { node: String, weight: String },
    #[error("the table for weight `{weight}` matches no quantizable layer of the graph")]
    UnknownWeight { weight: String },
    #[error("layer `{node}` (weight `{weight}`): {entry} has {got} entries, but the layer has {expected} output channels")]
    Rows {
        node: String,
        weight: String,
        entry: String,
        got: usize,
        expected: usize,
    },
    #[error("layer `{node}` (weight `{weight}`): tables for plane counts {got:?}, but the file declares {expected:?}")]
    Planes {
        node: String,
        weight: String,
        got: Vec<u8>,
        expected: Vec<u8>,
    },
    #[error("layer `{node}` (weight `{weight}`): {entry}[{index}] = {value} is not finite")]
    NonFinite {
        node: String,
        weight: String,
        entry: String,
        index: usize,
        value: f32,
    },
    #[error("layer `{node}` (weight `{weight}`): scale[{index}] = {value} must be positive")]
    Scale {
        node: String,
        weight: String,
        index: usize,
        value: f32,
    },
    #[error("layer `{node}` (weight `{weight}`): k{k}/act: {source}")]
    Act {
        node: String,
        weight: String,
        k: u8,
        #[source]
        source: QuantError,
    },
    #[error("layer `{node}` (weight `{weight}`): {source}")]
    Quant {
        node: String,
        weight: String,
        #[source]
        source: QuantError,
    },
    /// The graph could not be walked, or a layer's float weight or bias is not finite.
    #[error(transparent)]
    Pass(#[from] Box<PassError>),
}

impl QatTables {
    /// Checks the global entries: `bits` and `act_bits` in 2..=8, `planes` non-empty,
    /// strictly ascending, each in `1..=bits`.
    pub fn check_globals(&self) -> Result<(), QatTablesError> {
        let global = |entry, value: String, reason: String| QatTablesError::Global {
            entry,
            value,
            reason,
        };
        quant::check_bits(self.bits)
            .map_err(|e| global("strata/bits", self.bits.to_string(), e.to_string()))?;
        if !(quant::MIN_BITS..=quant::MAX_BITS).contains(&self.act_bits) {
            return Err(global(
                "strata/act_bits",
                self.act_bits.to_string(),
                format!("must be in {}..={}", quant::MIN_BITS, quant::MAX_BITS),
            ));
        }
        let planes = format!("{:?}", self.planes);
        if self.planes.is_empty() {
            return Err(global("strata/planes", planes, "is empty".into()));
        }
        if self.planes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(global(
                "strata/planes",
                planes,
                "must be strictly ascending".into(),
            ));
        }
        for &k in &self.planes {
            quant::check_plane_count(self.bits, k)
                .map_err(|e| global("strata/planes", planes.clone(), e.to_string()))?;
        }
        Ok(())
    }
}

/// The name of the value a layer's weight comes from (input 1 of its Conv, Gemm or MatMul).
pub fn weight_name(graph: &Graph, layer: &QuantLayer) -> Option<String> {
    let w = *graph.node_inputs(layer.node).get(1)?;
    Some(graph.value(w).ok()?.name.clone())
}

/// The quantization the tables give `graph`: for every quantizable layer (in topological
/// order), the codes of its float weight under the table's scales, packed into planes, and
/// the table's side tables. Fails, naming the layer, if a layer has no table, a table no
/// layer, or a table does not fit its layer.
pub fn from_tables(graph: &Graph, t: &QatTables) -> Result<VlQuantization, QatTablesError> {
    t.check_globals()?;
    let layers = quantizable_layers(graph).map_err(Box::new)?;
    check_finite(NAME, &layers).map_err(Box::new)?;
    let mut used = BTreeSet::new();
    let mut out = Vec::with_capacity(layers.len());
    for layer in &layers {
        let weight = weight_name(graph, layer).unwrap_or_default();
        let Some(table) = t.layers.get(&weight) else {
            return Err(QatTablesError::MissingTable {
                node: layer.name.clone(),
                weight,
            });
        };
        out.push(quantize_layer(layer, &weight, table, t)?);
        used.insert(weight);
    }
    if let Some(weight) = t.layers.keys().find(|w| !used.contains(*w)) {
        return Err(QatTablesError::UnknownWeight {
            weight: weight.clone(),
        });
    }
    Ok(VlQuantization {
        bits: t.bits,
        act_bits: ActBits::Fixed(t.act_bits),
        plane_counts: t.planes.clone(),
        method: None,
        layers: out,
    })
}

/// One layer's codes and tables, after checking every table against it.
fn quantize_layer(
    layer: &QuantLayer,
    weight: &str,
    table: &LayerTables,
    t: &QatTables,
) -> Result<QuantizedLayer, QatTablesError> {
    let node = || layer.name.clone();
    let rows = |entry: String, got: usize| {
        if got == layer.rows {
            Ok(())
        } else {
            Err(QatTablesError::Rows {
                node: node(),
                weight: weight.to_string(),
                entry,
                got,
                expected: layer.rows,
            })
        }
    };
    let finite = |entry: &str, values: &[f32]| match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(QatTablesError::NonFinite {
            node: node(),
            weight: weight.to_string(),
            entry: entry.to_string(),
            index,
            value: values[index],
        }),
    };
    let ks: Vec<u8> = table.tables.iter().map(|s| s.k).collect();
    if ks != t.planes {
        return Err(QatTablesError::Planes {
            node: node(),
            weight: weight.to_string(),
            got: ks,
            expected: t.planes.clone(),
        });
    }
    rows("scale".into(), table.scales.len())?;
    finite("scale", &table.scales)?;
    if let Some(index) = table.scales.iter().position(|&s| s <= 0.0) {
        return Err(QatTablesError::Scale {
            node: node(),
            weight: weight.to_string(),
            index,
            value: table.scales[index],
        });
    }
    for s in &table.tables {
        for (what, values) in [("alpha", &s.alpha), ("beta", &s.beta), ("bias", &s.bias)] {
            let entry = format!("k{}/{what}", s.k);
            rows(entry.clone(), values.len())?;
            finite(&entry, values)?;
        }
        let q = ActQuant {
            scale: s.act_scale,
            zero: s.act_zero,
        };
        ActQuantizer::new(q, t.act_bits).map_err(|source| QatTablesError::Act {
            node: node(),
            weight: weight.to_string(),
            k: s.k,
            source,
        })?;
    }
    let quant_err = |source| QatTablesError::Quant {
        node: node(),
        weight: weight.to_string(),
        source,
    };
    let codes = quant::quantize_with_scales(&layer.weight, &table.scales, layer.cols, t.bits)
        .map_err(quant_err)?;
    let planes = quant::pack_planes(&codes, layer.rows, layer.cols, t.bits).map_err(quant_err)?;
    Ok(QuantizedLayer {
        name: layer.name.clone(),
        bits: t.bits,
        act_bits: ActBits::Fixed(t.act_bits),
        rows: layer.rows,
        cols: layer.cols,
        planes,
        scales: table.scales.clone(),
        tables: table.tables.clone(),
    })
}
