//! Ahead-of-time output: the lowered module compiled to a relocatable object (`PREFIX.o`)
//! exporting the C API. For this machine the execution engine compiles it (LLVM at `-O3`
//! for the host CPU); for another target (`--target-triple`) the LLVM dialect is translated
//! to LLVM IR and compiled by LLVM 22's own tools, `mlir-translate`, `opt -O3` and `llc`, from the
//! installation melior links (`$MLIR_SYS_220_PREFIX/bin`, default `/usr/lib/llvm-22/bin`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use melior::ExecutionEngine;

use crate::{pipeline, MlirError};

/// Where the object is compiled for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// An LLVM target triple (`aarch64-linux-gnu`); `None`: this machine.
    pub triple: Option<String>,
    /// An LLVM CPU name (`-mcpu`, e.g. `neoverse-n1`, `x86-64-v3`); with a triple only.
    pub cpu: Option<String>,
}

/// Compiles the module `text` for `target` and writes the object to `path`.
pub(crate) fn write(text: &str, path: &Path, target: &Target) -> Result<(), MlirError> {
    let context = pipeline::context();
    let mut module = pipeline::parse(&context, text)?;
    pipeline::lower(&context, &mut module)?;
    let shown = path.display().to_string();
    let Some(triple) = &target.triple else {
        if target.cpu.is_some() {
            return Err(MlirError::Target(
                "--target-cpu needs --target-triple".into(),
            ));
        }
        let engine = ExecutionEngine::new(&module, 3, &[], true, true);
        let s = path.to_str().ok_or_else(|| MlirError::Io {
            path: shown.clone(),
            source: std::io::Error::other("the path is not UTF-8"),
        })?;
        engine.dump_to_object_file(s);
        if !path.is_file() {
            return Err(MlirError::Io {
                path: shown,
                source: std::io::Error::other("the execution engine wrote no object file"),
            });
        }
        return Ok(());
    };
    let llvm_dialect = module.as_operation().to_string();
    let ir = tool(
        "mlir-translate",
        &["--mlir-to-llvmir"],
        llvm_dialect.as_bytes(),
    )?;
    // The middle end at -O3 for the target (inlining, loop and vector optimisations): `llc`
    // alone only generates code, and the product kernel then runs 1.5x slower.
    let mut opt_args = vec!["-O3".to_string(), format!("-mtriple={triple}")];
    if let Some(cpu) = &target.cpu {
        opt_args.push(format!("-mcpu={cpu}"));
    }
    let opt_args: Vec<&str> = opt_args.iter().map(String::as_str).collect();
    let ir = tool("opt", &opt_args, &ir)?;
    let mut args = vec![
        "-O3".to_string(),
        format!("-mtriple={triple}"),
        "--relocation-model=pic".into(),
        "-filetype=obj".into(),
        "-o".into(),
        shown.clone(),
    ];
    if let Some(cpu) = &target.cpu {
        args.push(format!("-mcpu={cpu}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("llc", &args, &ir)?;
    Ok(())
}

/// `$MLIR_SYS_220_PREFIX/bin/NAME` (default prefix `/usr/lib/llvm-22`).
fn tool_path(name: &str) -> PathBuf {
    let prefix = std::env::var_os("MLIR_SYS_220_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/llvm-22"));
    prefix.join("bin").join(name)
}

/// Runs LLVM tool `name` with `args` on `input`; returns its standard output.
fn tool(name: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, MlirError> {
    let path = tool_path(name);
    let err = |message: String| MlirError::Tool {
        tool: path.display().to_string(),
        message,
    };
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(e.to_string()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| err("no standard input".into()))?;
    // Written from a thread: the tool may fill its output pipe before reading all its input.
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    let written = writer
        .join()
        .map_err(|_| err("writing its input panicked".into()))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(err(msg.lines().next().unwrap_or("failed").to_string()));
    }
    written.map_err(|e| err(e.to_string()))?;
    Ok(out.stdout)
}
