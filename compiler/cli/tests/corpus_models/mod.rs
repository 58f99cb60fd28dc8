//! The real-model corpus (`tests/fixtures/corpus/`) as the tests that run it share it: the
//! models, their fixtures, the stages `corpus` runs and the failures it expects, and the
//! compile step (`corpus` checks the C backend on it, `mlir_corpus` the MLIR backend).

// Each test crate uses only its part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use strata_compiler::compile::{compile_to_container, CompileOptions};
use strata_compiler::npy::read_npy;
use strata_compiler::onnx::{import_file, ImportOptions};
use strata_ir::container::read_container;
use strata_ir::{Graph, Tensor};
use strata_test_support::repo_root;

/// Every corpus model: `ARCH.EXPORTER` and its number of graph outputs. An exporter that
/// could not export an architecture has no file and no entry.
pub const MODELS: &[(&str, usize)] = &[
    ("resnet18.ts", 1),
    ("resnet18.dynamo", 1),
    ("mobilenet_v2.ts", 1),
    ("mobilenet_v2.dynamo", 1),
    ("mobilenet_v3_small.ts", 1),
    ("mobilenet_v3_small.dynamo", 1),
    ("efficientnet_b0.ts", 1),
    ("efficientnet_b0.dynamo", 1),
    ("squeezenet1_1.ts", 1),
    ("squeezenet1_1.dynamo", 1),
    ("shufflenet_v2_x0_5.ts", 1),
    ("shufflenet_v2_x0_5.dynamo", 1),
    ("mnasnet0_5.ts", 1),
    ("mnasnet0_5.dynamo", 1),
    ("regnet_x_400mf.ts", 1),
    ("regnet_x_400mf.dynamo", 1),
    ("densenet121.ts", 1),
    ("densenet121.dynamo", 1),
    ("googlenet.ts", 1),
    ("googlenet.dynamo", 1),
    ("tf_nhwc.ts", 1),
    ("tf_nhwc.dynamo", 1),
    ("yolo_head.ts", 2),
    ("yolo_head.dynamo", 2),
    ("kws_crnn.ts", 1),
    ("kws_crnn.dynamo", 1),
    ("norm_act_zoo.ts", 1),
    ("norm_act_zoo.dynamo", 1),
    ("gpt_block.ts", 1),
    ("gpt_block.dynamo", 1),
];

/// The stages, in the order they run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    Import,
    Compile,
    K8,
    K4,
    EmitC8,
    EmitC2,
}

pub const STAGES: [Stage; 6] = [
    Stage::Import,
    Stage::Compile,
    Stage::K8,
    Stage::K4,
    Stage::EmitC8,
    Stage::EmitC2,
];

impl Stage {
    pub fn title(self) -> &'static str {
        match self {
            Stage::Import => "import (err vs ORT)",
            Stage::Compile => "compile",
            Stage::K8 => "K=8 rel. RMS",
            Stage::K4 => "K=4 rel. RMS",
            Stage::EmitC8 => "emit-c K=8",
            Stage::EmitC2 => "emit-c K=2",
        }
    }
}

/// (model, stage, a part of the error it fails with today). Each entry is asserted: the
/// stage must fail with this text. Remove an entry when support lands (the test says so).
pub const EXPECTED_FAILURES: &[(&str, Stage, &str)] = &[
    // None: ShuffleNetV2's Slice (TorchScript) and Split (dynamo), DenseNet's unfolded
    // pre-activation BatchNorm and the YOLO head's nearest Resize lower to C since issue 12,
    // item 4.
];

/// `tests/fixtures/corpus/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/corpus").join(name)
}

pub fn npy(name: &str) -> Result<Tensor, String> {
    read_npy(&fixture(name)).map_err(|e| e.to_string())
}

pub fn f32s(t: &Tensor) -> Result<&[f32], String> {
    t.as_f32()
        .ok_or_else(|| format!("{:?} output, not f32", t.dtype()))
}

/// The architecture part of `ARCH.EXPORTER` (whose inputs and calibration set it shares).
pub fn arch(model: &str) -> &str {
    model.split('.').next().unwrap_or(model)
}

/// Whether the C backend handles `model`: no stage of it is listed in [`EXPECTED_FAILURES`]
/// (the emit-c stages run last, so an earlier failure means the C was never built).
pub fn c_backend_handles(model: &str) -> bool {
    !EXPECTED_FAILURES.iter().any(|(m, _, _)| *m == model)
}

/// `MODEL.onnx` imported with the default options.
pub fn import_model(model: &str) -> Result<Graph, String> {
    import_file(
        &fixture(&format!("{model}.onnx")),
        &ImportOptions::default(),
    )
    .map_err(|e| e.to_string())
}

/// `strata compile` of `g` (the default PTQ, plane counts 2..8) on `calib`, through the
/// `.strata` container: the quantized graph.
pub fn compile(g: Graph, calib: Tensor) -> Result<Graph, String> {
    let bytes = compile_to_container(
        g,
        vec![calib],
        &CompileOptions::default(),
        Default::default(),
        |_| {},
    )
    .map_err(|e| e.to_string())?;
    Ok(read_container(&bytes).map_err(|e| e.to_string())?.graph)
}
