//! `test emit-c [target=T] [planes=K] [name=NAME]`: the C header the backend emits for the
//! graph after the `// pipeline:` (with `// calibration:`), e.g. vl-quantize and
//! bitplane-rewrite on a float graph. The header states the sizes and MACs.

use strata_backend_c::{emit, EmitOptions, Target};

use crate::{parse_ir, run_pipeline, ModeResult, TestFile};

pub(crate) fn run(file: &TestFile) -> ModeResult {
    let mut options = EmitOptions::default();
    for arg in file.args.split_whitespace() {
        let bad = || (format!("bad emit-c argument `{arg}`"), Some(1));
        match arg.split_once('=').ok_or_else(bad)? {
            ("target", t) => {
                options.target = t.parse::<Target>().map_err(|e| (e.to_string(), Some(1)))?
            }
            ("planes", k) => options.planes = k.parse().map_err(|_| bad())?,
            ("name", n) => options.name = n.to_string(),
            _ => return Err(bad()),
        }
    }
    let mut graph = parse_ir(file)?;
    if let Some(pipeline) = file.option("pipeline").map_err(|e| (e, None))? {
        run_pipeline(file, pipeline, &mut graph).map_err(|e| (e, None))?;
    }
    let c = emit(&graph, &options).map_err(|e| (e.to_string(), None))?;
    Ok(c.header)
}
