//! `PREFIX_run_adaptive`: the adaptive-precision cascade (`strata_ir::adaptive`) over
//! `run_impl`. Each stage runs the whole network at its per-layer counts; the output is kept
//! when its margin (largest minus second-largest element, computed as
//! `strata_ir::adaptive::margin` computes it) reaches the stage's threshold, printed by its
//! bits, so the generated code decides exactly as the runtime does.

use std::fmt::Write as _;

use strata_ir::adaptive::AdaptivePolicy;
use strata_lower::Lowered;

use crate::text::c_float;
use crate::EmitError;

/// The cascade in layer order: each stage's count per layer and its threshold. Public so
/// the MLIR backend's `PREFIX_run_adaptive` runs exactly the C backend's stages.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveStages {
    /// Per stage, the plane count of every bit-plane layer (in `layer_names` order).
    pub planes: Vec<Vec<u8>>,
    /// Per stage, the margin that stops the cascade there (the last one is never read).
    pub margins: Vec<f32>,
}

/// The stages of `policy` as the layers of `l` can run them (counts lowered to what each
/// layer keeps; a layer a stage does not name runs at its default).
pub fn stages(
    graph: &strata_ir::Graph,
    l: &Lowered,
    policy: &AdaptivePolicy,
) -> Result<AdaptiveStages, EmitError> {
    let bad = |reason: String| EmitError::Adaptive { reason };
    if !l.single_io() {
        return Err(bad(format!(
            "PREFIX_run_adaptive needs one input and one output ({} inputs, {} outputs)",
            l.inputs.len(),
            l.outputs.len()
        )));
    }
    let keep = |node: &str| {
        l.layers
            .iter()
            .find(|layer| layer.node == node)
            .map_or(0, |layer| layer.k)
    };
    let policy = policy
        .effective_within(graph, keep)
        .map_err(|e| bad(e.to_string()))?;
    let planes = policy
        .stages
        .iter()
        .map(|s| {
            l.layers
                .iter()
                .map(|layer| s.layer_planes.get(&layer.node).copied().unwrap_or(layer.k))
                .collect()
        })
        .collect();
    Ok(AdaptiveStages {
        planes,
        margins: policy.stages.iter().map(|s| s.min_margin).collect(),
    })
}

/// The header's declarations for `stages`.
pub(crate) fn declarations(name: &str, stages: &AdaptiveStages) -> String {
    let up = name.to_ascii_uppercase();
    let mut h = String::new();
    let _ = writeln!(
        h,
        "\n/* Adaptive precision (`strata adapt`): {n} stages, cheapest first. */\n#define {up}_ADAPTIVE_STAGES {n}",
        n = stages.planes.len()
    );
    let _ = writeln!(
        h,
        "typedef struct {{\n    /* The stage that answered (0 = the cheapest) and how many stages ran. */\n    int stage;\n    int stages_run;\n    /* The plane count each layer used in that stage ({up}_LAYERS entries). */\n    uint8_t planes_per_layer[{}];\n}} {name}_adaptive_stats;",
        stages.planes.first().map_or(1, |p| p.len().max(1))
    );
    let _ = writeln!(
        h,
        "/* Runs stage 0, then each next stage while the output's margin (largest minus\n * second-largest element) is below the stage's threshold; the last stage always\n * answers. stats may be NULL. Returns 0 on success. */"
    );
    let _ = writeln!(
        h,
        "int {name}_run_adaptive(const float *input, float *output, {name}_adaptive_stats *stats);"
    );
    h
}

/// The source of `PREFIX_run_adaptive` (after `run_impl`).
pub(crate) fn definitions(l: &Lowered, name: &str, stages: &AdaptiveStages) -> String {
    let n_stages = stages.planes.len();
    let n_layers = l.layers.len();
    let out_size = l.outputs.first().map_or(0, |(port, _)| port.size());
    let mut c = String::new();
    let rows: Vec<String> = stages
        .planes
        .iter()
        .map(|p| {
            let ks: Vec<String> = p.iter().map(|k| format!("{k}u")).collect();
            format!(
                "    {{{}}}",
                if ks.is_empty() {
                    "0u".into()
                } else {
                    ks.join(", ")
                }
            )
        })
        .collect();
    let _ = writeln!(
        c,
        "\n/* The adaptive stages' plane counts per layer and margin thresholds. */\nstatic const uint8_t ADAPTIVE_PLANES[{n_stages}][{}] = {{\n{}\n}};",
        n_layers.max(1),
        rows.join(",\n")
    );
    let margins: Vec<String> = stages.margins.iter().map(|&m| c_float(m)).collect();
    let _ = writeln!(
        c,
        "static const float ADAPTIVE_MARGIN[{n_stages}] = {{{}}};",
        margins.join(", ")
    );
    // strata_ir::adaptive::margin, line for line.
    let _ = writeln!(
        c,
        "\nstatic float adaptive_margin(const float *y, size_t n)\n{{\n    float best = -INFINITY, second = -INFINITY;\n    size_t i;\n    if (n < 2) {{\n        return INFINITY;\n    }}\n    for (i = 0; i < n; ++i) {{\n        if (y[i] > best) {{\n            second = best;\n            best = y[i];\n        }} else if (y[i] > second) {{\n            second = y[i];\n        }}\n    }}\n    return best - second;\n}}"
    );
    let _ = writeln!(
        c,
        "\nint {name}_run_adaptive(const float *input, float *output, {name}_adaptive_stats *stats)\n{{\n    int s;\n    for (s = 0; s < {n_stages}; ++s) {{\n        int rc = run_impl(&input, &output, ADAPTIVE_PLANES[s]);\n        if (rc != 0) {{\n            return rc;\n        }}\n        if (s + 1 == {n_stages} || adaptive_margin(output, {out_size}u) >= ADAPTIVE_MARGIN[s]) {{\n            break;\n        }}\n    }}\n    if (stats) {{\n        stats->stage = s;\n        stats->stages_run = s + 1;\n        memcpy(stats->planes_per_layer, ADAPTIVE_PLANES[s], sizeof ADAPTIVE_PLANES[s]);\n    }}\n    return 0;\n}}"
    );
    c
}
