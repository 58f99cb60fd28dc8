//! Ahead-of-time output: the lowered module compiled for this machine by the execution
//! engine and written as a relocatable object (`PREFIX.o`) exporting the C API.

use std::path::Path;

use melior::ExecutionEngine;

use crate::{pipeline, MlirError};

/// Compiles the module `text` at `-O3` (position-independent) and writes it to `path`.
pub(crate) fn write(text: &str, path: &Path) -> Result<(), MlirError> {
    let context = pipeline::context();
    let mut module = pipeline::parse(&context, text)?;
    pipeline::lower(&context, &mut module)?;
    let engine = ExecutionEngine::new(&module, 3, &[], true, true);
    let shown = path.display().to_string();
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
    Ok(())
}
