//! One module per command: its `#[derive(Args)]` and the function that runs it. Library
//! logic lives in `strata-compiler`; these modules parse, call and print.

pub mod adapt;
pub mod bench;
pub mod build;
pub mod compile;
pub mod emit_c;
pub mod eval;
pub mod inspect;
pub mod manifest;
pub mod mlir;
pub mod opt;
pub mod run;
pub mod strip;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::builder::TypedValueParser as _;
use indicatif::{ProgressBar, ProgressStyle};
use strata_compiler::backend::c::CodeBits;
use strata_compiler::onnx::{parse_named_input_shape, InputShape, OnnxError};
use strata_compiler::LoadOptions;
use strata_ir::files::{Existing, FileError};
use strata_passes::ProgressFn;

/// `--code-bits`, for the commands that emit C.
#[derive(clap::Args)]
pub struct CodeBitsArg {
    /// Bits a stored code takes on generic, x86-64-v3 and aarch64 (C backend): `fast` (the
    /// fewest of 2, 4 and 8 bits that hold K planes: the fastest kernels with the weights in
    /// cache), `exact` (K bits a weight, so the weights shrink with every plane dropped; 3, 5,
    /// 6 and 7 bits are decoded from 4-, 2- and 1-bit parts, which costs time) or `stream`
    /// (for weights read from memory on every call, a model larger than the caches:
    /// fully connected layers at K = 5 and 6 store K bits, which x86-64-v3 streams faster
    /// than 8; everything else as `fast`). armv7m always stores packed planes.
    #[arg(
        long,
        default_value = "fast",
        value_parser = clap::builder::PossibleValuesParser::new(CodeBits::NAMES)
            .map(|s| s.parse::<CodeBits>().expect("PossibleValuesParser admits only the names"))
    )]
    pub code_bits: CodeBits,
}

/// `--input-shape NAME=SHAPE`, for commands that import an ONNX model.
#[derive(clap::Args, Default)]
pub struct InputShapes {
    /// Static shape for an ONNX graph input whose dimensions are dynamic (symbolic or -1),
    /// e.g. `input=Nx3x224x224` (`N` keeps the batch free; `1x3x224x224` fixes it).
    /// Repeatable, one per input.
    #[arg(long = "input-shape", value_name = "NAME=SHAPE", value_parser = parse_input_shape)]
    shapes: Vec<(String, InputShape)>,
}

impl InputShapes {
    /// Loads `model` with these input shapes; a dynamic input dimension left unpinned, or a
    /// shape that cannot stay symbolic in the batch size, gets a hint naming the flag.
    pub fn load(&self, model: &Path) -> Result<strata_compiler::model::Model> {
        match strata_compiler::load_model_with(model, &self.load_options()?) {
            Ok(m) => Ok(m),
            Err(e @ strata_compiler::LoadError::Onnx(OnnxError::SymbolicDim { .. })) => {
                Err(anyhow::Error::new(e).context(format!(
                    "{}: give the input a static shape with --input-shape",
                    model.display()
                )))
            }
            Err(e) if self.shapes.is_empty() => {
                // Where the free batch is the trouble, the error says which pins compile.
                let strata_compiler::LoadError::Onnx(onnx) = &e else {
                    return Err(e.into());
                };
                let why = match onnx {
                    OnnxError::NonConstantInput { .. } | OnnxError::BatchDependent { .. } => {
                        "if this shape is computed from the batch size (Strata keeps the \
                         batch free only through the shape arithmetic it can follow), compile \
                         for batch 1"
                    }
                    OnnxError::Shape {
                        source: strata_ir::InferError::Batch(_),
                        ..
                    } => {
                        "Strata keeps a symbolic first input dimension free as the batch, and \
                         this op cannot take the batch there (a recurrent layer's sequence, an \
                         axis it reduces, …); pin the input's shape, e.g. with a first \
                         dimension of 1"
                    }
                    _ => return Err(e.into()),
                };
                let pins = strata_compiler::onnx::batch_one_shapes(model);
                if pins.is_empty() {
                    return Err(e.into());
                }
                let flags: Vec<String> =
                    pins.iter().map(|p| format!("--input-shape {p}")).collect();
                Err(anyhow::Error::new(e).context(format!(
                    "{}: {why}: {}",
                    model.display(),
                    flags.join(" ")
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The load options these flags stand for.
    pub fn load_options(&self) -> Result<LoadOptions> {
        let mut options = LoadOptions::default();
        for (name, shape) in &self.shapes {
            if options
                .input_shapes
                .insert(name.clone(), shape.clone())
                .is_some()
            {
                anyhow::bail!("--input-shape: input `{name}` is given twice");
            }
        }
        Ok(options)
    }
}

fn parse_input_shape(text: &str) -> Result<(String, InputShape), String> {
    parse_named_input_shape(text).map_err(|e| e.to_string())
}

/// `--write-in-place`, set once by `main` before any command runs.
static WRITE_IN_PLACE: AtomicBool = AtomicBool::new(false);

/// Records `--write-in-place` for [`write_file`].
pub fn set_write_in_place(on: bool) {
    WRITE_IN_PLACE.store(on, Ordering::Relaxed);
}

/// Writes `bytes` to `path` atomically, naming the file on failure. An existing path that is
/// not a regular file is refused unless `--write-in-place` was given.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let existing = if WRITE_IN_PLACE.load(Ordering::Relaxed) {
        Existing::WriteInPlace
    } else {
        Existing::Refuse
    };
    strata_ir::files::write_atomic(path, bytes, existing).map_err(|e| {
        if matches!(FileError::of(&e), Some(FileError::OutputNotRegular { .. })) {
            anyhow::anyhow!(
                "writing {}: {e}; pass --write-in-place to write into it",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("writing {}", path.display()))
        }
    })
}

/// clap parser for sizes such as `200K` (K = 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    strata_compiler::manifest::parse_size(text).map_err(|e| e.to_string())
}

/// Prints `value` as pretty JSON, with `extra` (when there is one) added under `key`: the
/// `--json` output of a report that may carry a second section.
pub fn print_json_with(
    value: &impl serde::Serialize,
    key: &str,
    extra: Option<&impl serde::Serialize>,
) -> Result<()> {
    let mut value = serde_json::to_value(value)?;
    if let (Some(extra), Some(obj)) = (extra, value.as_object_mut()) {
        obj.insert(key.into(), serde_json::to_value(extra)?);
    }
    outln!("{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

/// A terminal progress bar for long passes (calibration, training), drawn on stderr only when it is a
/// terminal, so logs and CI output stay clean.
pub fn progress_bar() -> ProgressFn {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:48} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Box::new(move |stage: &str, done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(stage.to_string());
        if done >= total {
            bar.finish_and_clear();
        }
    })
}
