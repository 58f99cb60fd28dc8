//! `strata manifest`: the footprint of every available plane count as C, and the largest
//! count that fits a flash or RAM size.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use strata_compiler::backend::c::Target;
use strata_compiler::load_model;
use strata_compiler::manifest::{self, ManifestRow};

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    /// C backend target the sizes are for.
    #[arg(long, value_enum, default_value_t = Target::Generic)]
    target: Target,
    #[command(flatten)]
    code_bits: super::CodeBitsArg,
    #[arg(long)]
    json: bool,
    /// Flash available for the weights, e.g. `200K`, `1.5M`, `512` (K = 1024).
    #[arg(long, value_parser = super::parse_size)]
    fit_flash: Option<u64>,
    /// RAM available for the arena and scratch, e.g. `64K` (K = 1024).
    #[arg(long, value_parser = super::parse_size)]
    fit_ram: Option<u64>,
}

pub fn run(args: Args) -> Result<()> {
    let shown = args.model.display().to_string();
    let loaded = load_model(&args.model)?;
    let Some(info) = &loaded.container else {
        bail!("{shown} is not a .strata model; compile it first");
    };
    let m = manifest::manifest(&loaded.graph, info, args.target, args.code_bits.code_bits)
        .with_context(|| shown.clone())?;
    let fit = (args.fit_flash.is_some() || args.fit_ram.is_some())
        .then(|| manifest::fit(&m, args.fit_flash, args.fit_ram));
    if args.json {
        super::print_json_with(&m, "fit", fit.as_ref())?;
    } else {
        outln!(
            "{:>6} {:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>8}",
            "planes",
            "act b",
            "weight B",
            "arena B",
            "scratch B",
            "RAM B",
            "MACs",
            "top-1 %"
        )?;
        let line = |label: String, r: &ManifestRow| {
            outln!(
                "{:>6} {:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>8}",
                label,
                r.act_bits,
                r.weight_bytes,
                r.arena_bytes,
                r.scratch_bytes,
                r.ram_bytes,
                r.macs,
                r.top1
                    .map(|t| format!("{:.2}", 100.0 * t))
                    .unwrap_or_else(|| "-".into())
            )
        };
        for r in &m.planes {
            line(r.planes.to_string(), r)?;
        }
        if let Some(mixed) = &m.mixed {
            line("mixed".into(), &mixed.footprint)?;
            outln!("mixed precision per layer: {:?}", mixed.layer_planes)?;
        }
        if let Some(data) = &m.top1_data {
            outln!("top-1 recorded on {data}")?;
        }
        if let Some(f) = &fit {
            for r in &f.reasons {
                outln!("{r}")?;
            }
        }
    }
    if let Some(f) = &fit {
        if f.chosen.is_none() {
            bail!("no plane count of {shown} fits (see the reasons above)");
        }
    }
    Ok(())
}
