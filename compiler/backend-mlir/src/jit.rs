//! Execution through MLIR's `ExecutionEngine`: the lowered module is compiled in memory and
//! `NAME_run_planes` is called through its C signature, one sample at a time.

use std::ffi::c_void;

use melior::ExecutionEngine;

use crate::{pipeline, MlirError, MlirOptions};

/// `int NAME_run_planes(I inputs, O outputs, const uint8_t *planes_per_layer)`, where `I`
/// and `O` are `const float *` and `float *` for a graph with one input and one output, and
/// arrays of such pointers otherwise (the C header's two forms). Both are one pointer, so
/// one type calls either.
type RunPlanes = unsafe extern "C" fn(*const c_void, *const c_void, *const u8) -> i32;

/// A model compiled for this machine, ready to run.
pub struct Jit {
    /// Owns the compiled code `run_planes` points into; declared before the context so it
    /// is dropped first.
    _engine: ExecutionEngine,
    run_planes: RunPlanes,
    /// Elements of one sample of each input and output, in graph order.
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    output_shapes: Vec<Vec<usize>>,
    layers: usize,
    /// Whether `run_planes` takes the pointer form (one input, one output).
    single_io: bool,
    _context: melior::Context,
}

impl Jit {
    /// Lowers `graph` at `options` and compiles it with LLVM at `-O3`.
    pub fn compile(graph: &strata_ir::Graph, options: &MlirOptions) -> Result<Jit, MlirError> {
        let lowered = crate::lower(graph, options)?;
        let stages = crate::adaptive_stages(graph, &lowered, options)?;
        let dot = options.dot.for_this_machine()?;
        let text = crate::module::print(&lowered, &options.name, dot, stages.as_ref())?;
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
        // (memref arguments lowered to bare pointers, or the arrays of the wrapper).
        let run_planes = unsafe { std::mem::transmute::<*mut (), RunPlanes>(f) };
        Ok(Jit {
            _engine: engine,
            run_planes,
            inputs: lowered.inputs.iter().map(|p| p.size()).collect(),
            outputs: lowered.outputs.iter().map(|(p, _)| p.size()).collect(),
            output_shapes: lowered
                .outputs
                .iter()
                .map(|(p, _)| p.shape.clone())
                .collect(),
            layers: lowered.layers.len(),
            single_io: lowered.single_io(),
            _context: context,
        })
    }

    /// Elements of one sample of each input, in graph order.
    pub fn input_sizes(&self) -> &[usize] {
        &self.inputs
    }

    /// Elements of one sample of each output, in graph order.
    pub fn output_sizes(&self) -> &[usize] {
        &self.outputs
    }

    /// The batch-1 shape of each output, in graph order.
    pub fn output_shapes(&self) -> &[Vec<usize>] {
        &self.output_shapes
    }

    /// The number of samples in `inputs`: each must hold a whole number of its samples, the
    /// same number for every input.
    fn batch(&self, inputs: &[&[f32]]) -> Result<usize, MlirError> {
        if inputs.len() != self.inputs.len() {
            return Err(MlirError::Inputs {
                expected: self.inputs.len(),
                got: inputs.len(),
            });
        }
        let mut batches = Vec::with_capacity(inputs.len());
        for (input, (x, &sample)) in inputs.iter().zip(&self.inputs).enumerate() {
            if sample == 0 || x.len() % sample != 0 {
                return Err(MlirError::InputSize {
                    input,
                    got: x.len(),
                    sample,
                });
            }
            batches.push(x.len() / sample);
        }
        match batches.first() {
            None => Ok(1),
            Some(&n) if batches.iter().all(|&b| b == n) => Ok(n),
            Some(_) => Err(MlirError::InputBatches { batches }),
        }
    }

    /// Runs every sample of `inputs` (one slice per graph input, each a whole number of
    /// samples, batch-major, the same number in each) with `planes_per_layer` planes in each
    /// bit-plane layer (`None`: the compiled defaults); returns each output, batch-major.
    pub fn run(
        &self,
        inputs: &[&[f32]],
        planes_per_layer: Option<&[u8]>,
    ) -> Result<Vec<Vec<f32>>, MlirError> {
        let n = self.batch(inputs)?;
        if let Some(p) = planes_per_layer {
            if p.len() != self.layers {
                return Err(MlirError::LayerPlanes {
                    expected: self.layers,
                    got: p.len(),
                });
            }
        }
        let mut ys: Vec<Vec<f32>> = self.outputs.iter().map(|&o| vec![0f32; n * o]).collect();
        // The function reads `layers` bytes; a graph without layers gets a valid dummy.
        let dummy = [0u8; 1];
        let ppl = match planes_per_layer {
            Some(p) if !p.is_empty() => p.as_ptr(),
            Some(_) => dummy.as_ptr(),
            None => std::ptr::null(),
        };
        for s in 0..n {
            let ins: Vec<*const f32> = inputs
                .iter()
                .zip(&self.inputs)
                .map(|(x, &size)| x[s * size..].as_ptr())
                .collect();
            let outs: Vec<*mut f32> = ys
                .iter_mut()
                .zip(&self.outputs)
                .map(|(y, &size)| y[s * size..].as_mut_ptr())
                .collect();
            let (a, b) = if self.single_io {
                (
                    ins[0].cast::<c_void>(),
                    outs[0].cast::<c_void>().cast_const(),
                )
            } else {
                (
                    ins.as_ptr().cast::<c_void>(),
                    outs.as_ptr().cast::<c_void>(),
                )
            };
            // SAFETY: every pointer holds exactly one sample of its port (sizes checked
            // above), the arrays hold one pointer per port in graph order, and ppl is null
            // or holds one count per layer (checked above).
            let rc = unsafe { (self.run_planes)(a, b, ppl) };
            if rc != 0 {
                return Err(MlirError::PlaneCounts {
                    counts: planes_per_layer.map(<[u8]>::to_vec).unwrap_or_default(),
                });
            }
        }
        Ok(ys)
    }
}
