//! The MLIR backend's commands: `strata emit-mlir`, `strata build --backend mlir` and the
//! JIT of `strata run --backend mlir`. Without the `mlir` cargo feature each is one error
//! line saying how to enable it ([`MLIR_DISABLED`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
#[cfg(not(feature = "mlir"))]
use strata_compiler::backend::MLIR_DISABLED;

/// How far `emit-mlir` takes the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// The verified func/linalg/arith/tensor module.
    High,
    /// After the pass pipeline: the LLVM dialect.
    Llvm,
}

#[derive(clap::Args)]
pub struct EmitArgs {
    model: PathBuf,
    /// Planes stored in the weights (`NAME_run` runs at this count). Default: the stored
    /// mixed-precision choice, else every plane present.
    #[arg(long)]
    planes: Option<u8>,
    #[arg(long, value_enum, default_value_t = Stage::High)]
    stage: Stage,
    /// Prefix of the exported functions (a C identifier).
    #[arg(long, default_value = "model")]
    name: String,
    #[command(flatten)]
    shapes: super::InputShapes,
}

/// `strata emit-mlir`: prints the verified module.
pub fn emit(args: EmitArgs) -> Result<()> {
    #[cfg(not(feature = "mlir"))]
    {
        let _ = (args.model, args.planes, args.stage, args.name, args.shapes);
        anyhow::bail!(MLIR_DISABLED)
    }
    #[cfg(feature = "mlir")]
    {
        use anyhow::Context;
        use strata_compiler::backend::mlir;
        let (graph, options) = enabled::options(&args.shapes, &args.model, args.planes, args.name)?;
        let stage = match args.stage {
            Stage::High => mlir::Stage::High,
            Stage::Llvm => mlir::Stage::Llvm,
        };
        let text = mlir::emit(&graph, &options, stage)
            .with_context(|| args.model.display().to_string())?;
        outln!("{text}")?;
        Ok(())
    }
}

/// `strata build --backend mlir`: writes `DIR/NAME.o` and `DIR/NAME.h`; returns the paths.
pub fn build(
    shapes: &super::InputShapes,
    model: &Path,
    planes: Option<u8>,
    name: String,
    (triple, cpu): (Option<String>, Option<String>),
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    #[cfg(not(feature = "mlir"))]
    {
        let _ = (shapes, model, planes, name, triple, cpu, dir);
        anyhow::bail!(MLIR_DISABLED)
    }
    #[cfg(feature = "mlir")]
    {
        use anyhow::Context;
        let (graph, options) = enabled::options(shapes, model, planes, name)?;
        let target = strata_compiler::backend::mlir::Target { triple, cpu };
        strata_compiler::backend::mlir::write_object(&graph, &options, &target, dir)
            .with_context(|| model.display().to_string())
    }
}

/// Fails with [`MLIR_DISABLED`] in a build without the `mlir` feature: for commands that
/// would do other work before their first MLIR call.
pub fn ensure_enabled() -> Result<()> {
    #[cfg(not(feature = "mlir"))]
    {
        anyhow::bail!(MLIR_DISABLED)
    }
    #[cfg(feature = "mlir")]
    {
        Ok(())
    }
}

/// `strata run --backend mlir`: runs every sample of the inputs (one tensor per graph input,
/// the same batch in each) through the JIT at `planes` (default: the stored choice, else
/// every plane) with `per_layer` overrides by node name; returns every output batch-major
/// with its shape, in graph order.
pub fn run(
    graph: strata_ir::Graph,
    info: Option<&strata_compiler::model::ContainerInfo>,
    model: &Path,
    planes: Option<u8>,
    per_layer: &std::collections::BTreeMap<String, u8>,
    inputs: &[strata_ir::Tensor],
) -> Result<Vec<strata_ir::Tensor>> {
    #[cfg(not(feature = "mlir"))]
    {
        let _ = (graph, info, model, planes, per_layer, inputs);
        anyhow::bail!(MLIR_DISABLED)
    }
    #[cfg(feature = "mlir")]
    {
        enabled::run(graph, info, model, planes, per_layer, inputs)
    }
}

#[cfg(feature = "mlir")]
mod enabled {
    use std::collections::BTreeMap;
    use std::path::Path;

    use anyhow::{bail, Context, Result};
    use strata_compiler::backend::c::Target;
    use strata_compiler::backend::mlir::{Dot, Jit, MlirOptions};
    use strata_compiler::build::emit_options;
    use strata_compiler::model::ContainerInfo;
    use strata_ir::{Graph, Tensor};

    /// The MLIR options for a `.strata` model: the plane counts `emit-c` would use.
    fn options_of(
        graph: &Graph,
        info: Option<&ContainerInfo>,
        model: &Path,
        planes: Option<u8>,
        name: String,
    ) -> Result<MlirOptions> {
        let shown = model.display().to_string();
        let Some(info) = info else {
            bail!(
                "{shown}: the MLIR backend compiles `.strata` models (run `strata compile` first)"
            );
        };
        let c = emit_options(graph, info, planes, Target::Generic, name, &shown)?;
        Ok(MlirOptions {
            planes: c.planes,
            layer_planes: c.layer_planes,
            name: c.name,
            // This machine's fastest kernels (the JIT and the host object run here;
            // `--target-triple` objects keep the portable ones).
            dot: Dot::host(),
            adaptive: c.adaptive,
        })
    }

    pub(super) fn options(
        shapes: &super::super::InputShapes,
        model: &Path,
        planes: Option<u8>,
        name: String,
    ) -> Result<(Graph, MlirOptions)> {
        let loaded = shapes.load(model)?;
        let options = options_of(
            &loaded.graph,
            loaded.container.as_ref(),
            model,
            planes,
            name,
        )?;
        Ok((loaded.graph, options))
    }

    pub(super) fn run(
        graph: Graph,
        info: Option<&ContainerInfo>,
        model: &Path,
        planes: Option<u8>,
        per_layer: &BTreeMap<String, u8>,
        inputs: &[Tensor],
    ) -> Result<Vec<Tensor>> {
        let shown = model.display().to_string();
        let options = options_of(&graph, info, model, planes, "strata".into())?;
        let data = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f32()
                    .with_context(|| format!("--input {i}: {shown}: the input must be float32"))
            })
            .collect::<Result<Vec<&[f32]>>>()?;
        let jit = Jit::compile(&graph, &options).with_context(|| shown.clone())?;
        let names = strata_compiler::backend::lower::layer_names(&graph)?;
        let ppl: Option<Vec<u8>> = (!per_layer.is_empty()).then(|| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    per_layer.get(n).copied().unwrap_or_else(|| {
                        options
                            .layer_planes
                            .as_ref()
                            .and_then(|v| v.get(i).copied())
                            .unwrap_or(options.planes)
                    })
                })
                .collect()
        });
        if let Some(unknown) = per_layer.keys().find(|n| !names.contains(n)) {
            bail!("--layer-planes: `{unknown}` is not a bit-plane layer of {shown}");
        }
        let ys = jit
            .run(&data, ppl.as_deref())
            .with_context(|| shown.clone())?;
        ys.into_iter()
            .zip(jit.output_shapes().iter().zip(jit.output_sizes()))
            .map(|(y, (shape, &size))| {
                let batch = y.len() / size.max(1);
                // The batch-1 output shape with the batch put back.
                let mut shape = shape.clone();
                match shape.first_mut() {
                    Some(d) => *d = batch,
                    None => shape = vec![batch],
                }
                Ok(Tensor::from_f32(shape, y)?)
            })
            .collect()
    }
}
