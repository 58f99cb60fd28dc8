//! From module text to a verified module, and down to the LLVM dialect: one MLIR context
//! with every dialect, the module parsed and verified (diagnostics captured into the
//! error), then the pass pipeline.

use std::cell::RefCell;
use std::rc::Rc;

use melior::dialect::DialectRegistry;
use melior::ir::operation::OperationLike;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};
use melior::Context;

use crate::MlirError;

/// Tensors to buffers (the function boundaries are the C API's memrefs), buffers freed
/// after their last use, linalg to loops, and everything to the LLVM dialect with bare
/// pointers for memref arguments (`float *`, as the C header declares them).
pub const PIPELINE: &str = "builtin.module(\
one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},\
cse,\
canonicalize,\
buffer-deallocation-pipeline,\
convert-linalg-to-loops,\
expand-strided-metadata,\
lower-affine,\
convert-scf-to-cf,\
convert-vector-to-llvm,\
finalize-memref-to-llvm,\
convert-math-to-llvm,\
convert-arith-to-llvm,\
convert-index-to-llvm,\
convert-func-to-llvm{use-bare-ptr-memref-call-conv=1},\
convert-cf-to-llvm,\
reconcile-unrealized-casts)";

/// A context with every dialect and the LLVM translations registered.
pub(crate) fn context() -> Context {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    register_all_llvm_translations(&context);
    register_all_passes();
    context
}

/// Runs `f` with the context's error diagnostics collected; returns them joined.
fn with_diagnostics<T>(context: &Context, f: impl FnOnce() -> T) -> (T, String) {
    let messages = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = messages.clone();
    let id = context.attach_diagnostic_handler(move |d| {
        sink.borrow_mut().push(format!("{}: {d}", d.location()));
        true
    });
    let out = f();
    context.detach_diagnostic_handler(id);
    let text = messages.borrow().join("; ");
    (out, text)
}

/// Parses and verifies `text`.
pub(crate) fn parse<'c>(context: &'c Context, text: &str) -> Result<Module<'c>, MlirError> {
    let (module, diag) = with_diagnostics(context, || Module::parse(context, text));
    let module = module.ok_or_else(|| MlirError::Parse(with_line(&diag, text)))?;
    let (ok, diag) = with_diagnostics(context, || module.as_operation().verify());
    if !ok {
        return Err(MlirError::Verify(with_line(&diag, text)));
    }
    Ok(module)
}

/// Lowers a verified module to the LLVM dialect with [`PIPELINE`].
pub(crate) fn lower(context: &Context, module: &mut Module) -> Result<(), MlirError> {
    let pm = PassManager::new(context);
    parse_pass_pipeline(pm.as_operation_pass_manager(), PIPELINE)
        .map_err(|e| MlirError::Pass(e.to_string()))?;
    let (result, diag) = with_diagnostics(context, || pm.run(module));
    result.map_err(|e| MlirError::Pass(format!("{e}: {diag}")))
}

/// A diagnostic with the generated line it points at (`loc("-":LINE:COL)`), so an internal
/// error in the printed text can be read without dumping the module.
fn with_line(diag: &str, text: &str) -> String {
    let line = diag
        .split_once("\":")
        .and_then(|(_, rest)| rest.split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| text.lines().nth(n.saturating_sub(1)));
    match line {
        Some(l) => format!("{diag} (at `{}`)", l.trim()),
        None => diag.to_string(),
    }
}
