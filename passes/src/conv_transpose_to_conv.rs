//! `conv-transpose-to-conv`: a ConvTranspose with constant weights becomes a Conv followed by a
//! pixel shuffle (Reshape, Transpose, Reshape) and a Slice.
//!
//! Why: the bit-plane kernels, the C backend and the MLIR backend all know Conv; a transposed
//! convolution rewritten this way is quantized like any other layer and runs everywhere (the
//! upsampling heads of segmentation and text-detection nets stopped at it before).
//!
//! The sub-pixel identity, per spatial axis with stride `s`, kernel `k` and dilation 1: output
//! index `u = o + pad_begin = q·s + φ` only receives taps `φ + s·m` at input `q − m`, so phase
//! `φ` is an ordinary correlation of the input with the sub-kernel `W[φ + s·(M−1−j)]`,
//! `M = ⌈k/s⌉` (zero past `k`), over an input padded by `M − 1` in front. One Conv computes
//! every phase as its own block of output channels; the shuffle interleaves the phases and the
//! Slice drops `pad_begin` and whatever lies past the output. The products are the same as the
//! transposed convolution's, summed in another order (plus zero taps).
//!
//! Left alone: dilated transposed convolutions, non-constant or non-f32 weights, inputs whose
//! spatial dims are not known (the shuffle needs them), and strides so far beyond the kernel
//! that the Conv's weight would grow past 4× the original.

use strata_ir::ops::{Conv, ConvTranspose, Reshape, Slice};
use strata_ir::{Graph, NodeId, Op, Tensor, ValueRef};

use crate::walk::{graph_err, op_nodes, Chain};
use crate::{Pass, PassContext, PassError};

/// See the module documentation.
pub struct ConvTransposeToConv;

const PASS: &str = "conv-transpose-to-conv";

/// The rewrite's geometry for one transposed convolution.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    /// Input channels, output channels, groups.
    ci: usize,
    co: usize,
    group: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    /// Taps per phase and axis: `⌈k/s⌉`.
    taps: Vec<usize>,
    /// Input spatial size, Conv output (phase grid) size, cropped output size, crop start.
    input: Vec<usize>,
    grid: Vec<usize>,
    output: Vec<usize>,
    crop: Vec<usize>,
}

impl Plan {
    /// `None` when the op is outside what the rewrite handles (see the module docs).
    fn new(ct: &ConvTranspose, x_dims: &[Option<usize>], w_shape: &[usize]) -> Option<Plan> {
        let d = ct.kernel.len();
        if d == 0 || x_dims.len() != d + 2 || w_shape.len() != d + 2 {
            return None;
        }
        if ct.dilations.iter().any(|&v| v != 1) && !ct.dilations.is_empty() {
            return None;
        }
        let input: Vec<usize> = x_dims[2..].iter().copied().collect::<Option<_>>()?;
        let group = ct.group.max(1);
        let ci = w_shape[0];
        let co = w_shape[1].checked_mul(group)?;
        if x_dims[1].is_some_and(|c| c != ci) || ci % group != 0 || w_shape[2..] != ct.kernel[..] {
            return None;
        }
        let out_pad = |j: usize| ct.output_padding.get(j).copied().unwrap_or(0);
        let (mut taps, mut grid, mut output, mut crop) = (vec![], vec![], vec![], vec![]);
        for (j, &i) in input.iter().enumerate() {
            let (k, s) = (ct.kernel[j], *ct.strides.get(j)?);
            let (pb, pe) = (*ct.pads.get(j)?, *ct.pads.get(d + j)?);
            if s == 0 || k == 0 || i == 0 {
                return None;
            }
            // ONNX: s·(i − 1) + output_padding + k − pad_begin − pad_end.
            let full = s
                .checked_mul(i - 1)?
                .checked_add(out_pad(j))?
                .checked_add(k)?;
            let len = full.checked_sub(pb.checked_add(pe)?).filter(|&l| l > 0)?;
            let q = pb.checked_add(len)?.div_ceil(s).max(i);
            taps.push(k.div_ceil(s));
            grid.push(q);
            output.push(len);
            crop.push(pb);
        }
        // A stride beyond the kernel leaves most phase taps zero: the Conv's weight would be
        // `(s/k)^d` times the original. Past 4× the op stays a ConvTranspose.
        let phases = ct
            .strides
            .iter()
            .try_fold(1usize, |a, &s| a.checked_mul(s))?;
        let sub = taps.iter().try_fold(1usize, |a, &t| a.checked_mul(t))?;
        let kprod: usize = ct.kernel.iter().product();
        if phases.checked_mul(sub)? > 4 * kprod {
            return None;
        }
        Some(Plan {
            ci,
            co,
            group,
            kernel: ct.kernel.clone(),
            strides: ct.strides.clone(),
            taps,
            input,
            grid,
            output,
            crop,
        })
    }

    fn phases(&self) -> usize {
        self.strides.iter().product()
    }

    /// The Conv: `group` blocks of `phases · co/group` output channels (phase-major), each
    /// reading the group's `ci/group` input channels; the input is padded by `taps − 1` in
    /// front and up to the phase grid behind.
    fn conv(&self, has_bias: bool) -> Conv {
        let d = self.kernel.len();
        let mut pads: Vec<usize> = self.taps.iter().map(|t| t - 1).collect();
        pads.extend((0..d).map(|j| self.grid[j] - self.input[j]));
        Conv {
            kernel: self.taps.clone(),
            strides: vec![1; d],
            pads,
            dilations: vec![1; d],
            group: self.group,
            has_bias,
        }
    }

    /// The Conv's weight `[group·phases·cog, ci/group, taps…]` from the ConvTranspose's
    /// `[ci, cog, k…]`.
    fn weight(&self, w: &[f32]) -> Vec<f32> {
        let d = self.kernel.len();
        let (cig, cog, phases) = (self.ci / self.group, self.co / self.group, self.phases());
        let sub: usize = self.taps.iter().product();
        let kprod: usize = self.kernel.iter().product();
        let mut out = vec![0f32; self.group * phases * cog * cig * sub];
        let mut phase = vec![0usize; d];
        let mut tap = vec![0usize; d];
        for g in 0..self.group {
            for ph in 0..phases {
                unflatten(ph, &self.strides, &mut phase);
                for j in 0..cog {
                    for c in 0..cig {
                        let dst = (((g * phases + ph) * cog + j) * cig + c) * sub;
                        let src = ((g * cig + c) * cog + j) * kprod;
                        for t in 0..sub {
                            unflatten(t, &self.taps, &mut tap);
                            // Tap `t` of the correlation is kernel index φ + s·(M − 1 − t).
                            let mut at = 0;
                            let mut inside = true;
                            for a in 0..d {
                                let kk = phase[a] + self.strides[a] * (self.taps[a] - 1 - tap[a]);
                                inside &= kk < self.kernel[a];
                                at = at * self.kernel[a] + kk;
                            }
                            if inside {
                                out[dst + t] = w[src + at];
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The Conv's bias: each phase block repeats its group's bias.
    fn bias(&self, b: &[f32]) -> Vec<f32> {
        let cog = self.co / self.group;
        (0..self.group)
            .flat_map(|g| {
                (0..self.phases()).flat_map(move |_| b[g * cog..(g + 1) * cog].iter().copied())
            })
            .collect()
    }

    /// `[N, group, s…, cog, q…]`, then the permutation to `[N, group, cog, q_0, s_0, q_1, s_1, …]`.
    fn shuffle(&self) -> (Vec<i64>, Vec<usize>, Vec<i64>) {
        let d = self.kernel.len();
        let mut split = vec![0i64, self.group as i64];
        split.extend(self.strides.iter().map(|&s| s as i64));
        split.push((self.co / self.group) as i64);
        split.extend(self.grid.iter().map(|&q| q as i64));
        let mut perm = vec![0, 1, 2 + d];
        for j in 0..d {
            perm.extend([3 + d + j, 2 + j]);
        }
        let mut merged = vec![0i64, self.co as i64];
        merged.extend((0..d).map(|j| (self.grid[j] * self.strides[j]) as i64));
        (split, perm, merged)
    }
}

/// Index `i` of a row-major box with sides `dims`, per axis.
fn unflatten(mut i: usize, dims: &[usize], out: &mut [usize]) {
    for a in (0..dims.len()).rev() {
        out[a] = i % dims[a];
        i /= dims[a];
    }
}

impl ConvTransposeToConv {
    /// Rewrites the ConvTranspose node `id` if it qualifies; returns whether it did.
    fn rewrite(&self, graph: &mut Graph, id: NodeId) -> Result<bool, PassError> {
        let node = graph.node(id).map_err(graph_err(PASS))?;
        let Some(Op::ConvTranspose(ct)) = node.op() else {
            return Ok(false);
        };
        let ct = ct.clone();
        let name = node.name.clone();
        let Some(out_name) = node.outputs.first().map(|v| v.name.clone()) else {
            return Ok(false);
        };
        let inputs = graph.node_inputs(id);
        let (Some(&x), Some(&wv)) = (inputs.first(), inputs.get(1)) else {
            return Ok(false);
        };
        let Some(w) = graph.constant_value(wv).cloned() else {
            return Ok(false);
        };
        let Some(wdata) = w.as_f32() else {
            return Ok(false);
        };
        let bias = match inputs.get(2) {
            Some(&b) if ct.has_bias => match graph.constant_value(b).and_then(|t| t.as_f32()) {
                Some(b) => Some(b.to_vec()),
                None => return Ok(false),
            },
            _ => None,
        };
        let x_dims: Vec<Option<usize>> = graph
            .value(x)
            .map_err(graph_err(PASS))?
            .ty
            .shape
            .dims()
            .iter()
            .map(|d| d.known())
            .collect();
        let Some(plan) = Plan::new(&ct, &x_dims, w.shape()) else {
            return Ok(false);
        };
        if bias.as_ref().is_some_and(|b| b.len() != plan.co) {
            return Ok(false);
        }
        let bad = |reason: String| PassError::Rewrite {
            pass: PASS,
            node: name.clone(),
            reason,
        };
        let mut wshape = vec![plan.group * plan.phases() * (plan.co / plan.group)];
        wshape.push(plan.ci / plan.group);
        wshape.extend(&plan.taps);
        let weight =
            Tensor::from_f32(wshape, plan.weight(wdata)).map_err(|e| bad(e.to_string()))?;
        let mut conv_inputs = vec![
            x,
            graph.add_constant(format!("{name}.subpixel_weight"), weight),
        ];
        if let Some(b) = &bias {
            let b = Tensor::from_f32(
                vec![plan.group * plan.phases() * (plan.co / plan.group)],
                plan.bias(b),
            )
            .map_err(|e| bad(e.to_string()))?;
            conv_inputs.push(graph.add_constant(format!("{name}.subpixel_bias"), b));
        }
        let (split, perm, merged) = plan.shuffle();
        let d = plan.kernel.len();
        let chain = Chain {
            pass: PASS,
            node: &name,
            output: &out_name,
        };
        let conv = chain.step(
            graph,
            "subpixel",
            Op::Conv(plan.conv(bias.is_some())),
            &conv_inputs,
        )?;
        let reshape = |shape: Vec<i64>| {
            Op::Reshape(Reshape {
                shape,
                allow_zero: false,
            })
        };
        let split = chain.step(graph, "phases", reshape(split), &[conv])?;
        let moved = chain.step(graph, "interleave", Op::Transpose { perm }, &[split])?;
        let merged = chain.step(graph, "shuffle", reshape(merged), &[moved])?;
        let slice = Op::Slice(Slice {
            starts: plan.crop.iter().map(|&c| c as i64).collect(),
            ends: (0..d)
                .map(|j| (plan.crop[j] + plan.output[j]) as i64)
                .collect(),
            axes: (2..2 + d).collect(),
            steps: vec![1; d],
        });
        let out = chain.step(graph, "crop", slice, &[merged])?;
        let want = graph
            .value(ValueRef::first(id))
            .map_err(graph_err(PASS))?
            .ty
            .clone();
        let got = graph.value(out).map_err(graph_err(PASS))?.ty.clone();
        if want.shape.dims().len() != got.shape.dims().len()
            || want
                .shape
                .dims()
                .iter()
                .zip(got.shape.dims())
                .skip(1)
                .any(|(a, b)| a.known() != b.known())
        {
            return Err(bad(format!(
                "the rewrite gives {got:?} where the transposed convolution gives {want:?}"
            )));
        }
        chain.finish(graph, id, out)?;
        Ok(true)
    }
}

impl Pass for ConvTransposeToConv {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, _ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut changed = false;
        for (id, _, op) in op_nodes(graph, PASS)? {
            if matches!(op, Op::ConvTranspose(_)) {
                changed |= self.rewrite(graph, id)?;
            }
        }
        Ok(changed)
    }
}
