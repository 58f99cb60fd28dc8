//! Execution through MLIR's `ExecutionEngine`: the lowered module is compiled in memory and
//! `NAME_run_planes` is called through its C signature, one sample at a time.

use melior::ExecutionEngine;

use crate::{pipeline, MlirError, MlirOptions};

/// `int NAME_run_planes(const float *input, float *output, const uint8_t *planes_per_layer)`.
type RunPlanes = unsafe extern "C" fn(*const f32, *mut f32, *const u8) -> i32;

/// A model compiled for this machine, ready to run.
pub struct Jit {
    /// Owns the compiled code `run_planes` points into; declared before the context so it
    /// is dropped first.
    _engine: ExecutionEngine,
    run_planes: RunPlanes,
    input: usize,
    output: usize,
    output_shape: Vec<usize>,
    layers: usize,
    _context: melior::Context,
}

impl Jit {
    /// Lowers `graph` at `options` and compiles it with LLVM at `-O3`.
    pub fn compile(graph: &strata_ir::Graph, options: &MlirOptions) -> Result<Jit, MlirError> {
        let lowered = crate::lower(graph, options)?;
        let text = crate::module::print(&lowered, &options.name, options.dot)?;
        let context = pipeline::context();
        let engine = {
            let mut module = pipeline::parse(&context, &text)?;
            pipeline::lower(&context, &mut module)?;
            ExecutionEngine::new(&module, 3, &[], false, false)
        };
        let symbol = format!("{}_run_planes", options.name);
        let f = engine.lookup(&symbol);
        if f.is_null() {
            return Err(MlirError::Symbol(symbol));
        }
        // SAFETY: the symbol is the function `module::print` defines with this C signature
        // (memref arguments lowered to bare pointers).
        let run_planes = unsafe { std::mem::transmute::<*mut (), RunPlanes>(f) };
        Ok(Jit {
            _engine: engine,
            run_planes,
            input: lowered.inputs[0].size(),
            output: lowered.outputs[0].0.size(),
            output_shape: lowered.outputs[0].0.shape.clone(),
            layers: lowered.layers.len(),
            _context: context,
        })
    }

    /// Elements of one input sample and one output sample.
    pub fn sizes(&self) -> (usize, usize) {
        (self.input, self.output)
    }

    /// The batch-1 shape of the output.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// Runs every sample of `x` (a whole number of input samples, batch-major) with
    /// `planes_per_layer` planes in each bit-plane layer (`None`: the compiled defaults);
    /// returns the outputs, batch-major.
    pub fn run(&self, x: &[f32], planes_per_layer: Option<&[u8]>) -> Result<Vec<f32>, MlirError> {
        if self.input == 0 || x.len() % self.input != 0 {
            return Err(MlirError::InputSize {
                got: x.len(),
                sample: self.input,
            });
        }
        if let Some(p) = planes_per_layer {
            if p.len() != self.layers {
                return Err(MlirError::LayerPlanes {
                    expected: self.layers,
                    got: p.len(),
                });
            }
        }
        let n = x.len() / self.input;
        let mut y = vec![0f32; n * self.output];
        // The function reads `layers` bytes; a graph without layers gets a valid dummy.
        let dummy = [0u8; 1];
        let ppl = match planes_per_layer {
            Some(p) if !p.is_empty() => p.as_ptr(),
            Some(_) => dummy.as_ptr(),
            None => std::ptr::null(),
        };
        for (xs, ys) in x.chunks(self.input).zip(y.chunks_mut(self.output)) {
            // SAFETY: xs and ys hold exactly one input and one output sample, ppl is null
            // or holds one count per layer (checked above).
            let rc = unsafe { (self.run_planes)(xs.as_ptr(), ys.as_mut_ptr(), ppl) };
            if rc != 0 {
                return Err(MlirError::PlaneCounts {
                    counts: planes_per_layer.map(<[u8]>::to_vec).unwrap_or_default(),
                });
            }
        }
        Ok(y)
    }
}
