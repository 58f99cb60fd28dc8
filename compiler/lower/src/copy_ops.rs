//! Data movement between bit-plane layers: Slice, Split, Expand, Pad, Gather and Resize.
//!
//! The runtime is the one source of truth for which input element each output element copies:
//! its kernel runs at lowering time on an *iota* of the input's shape (element `i` holds `i`),
//! and what comes out is the index table (Pad writes −1 where it fills). The table is then
//! emitted in the cheapest form that reproduces it: nothing (an alias, when every element stays
//! in place), a strided copy (when the index is affine in the output position: slices, split
//! pieces, broadcasts, one-index gathers), or the table itself in the constant data. Linear
//! Resize, which mixes values, is an interpolation step over the runtime's own taps.

use strata_ir::ops::{CoordMode, Pad, PadMode, Resize, ResizeMode};
use strata_ir::{NodeId, Op, Tensor, TensorData, ValueRef};
use strata_runtime::kernels::{layout, resize};

use crate::error::unsupported;
use crate::float_ops::{strides, MAX_RANK};
use crate::walk::Walk;
use crate::{AliasKind, IndexTable, Kernel, LinearTaps, Loc, LowerError};

/// The table of an input of `shape`: element `i` holds `i` (as i64, or f64 for Resize, which
/// computes on floats only; both exact for any arena index).
fn iota(shape: &[usize], float: bool) -> Option<Tensor> {
    let n: usize = shape.iter().product();
    let data = if float {
        TensorData::F64((0..n).map(|i| i as f64).collect())
    } else {
        TensorData::I64((0..n as i64).collect())
    };
    Tensor::new(shape.to_vec(), data).ok()
}

/// [`iota`], or an error naming the node.
fn iota_of(shape: &[usize], float: bool, node: &str, op: &Op) -> Result<Tensor, LowerError> {
    iota(shape, float).ok_or_else(|| unsupported(node, op, "the input shape has no index table"))
}

/// The base and per-axis strides when `table` (row-major over `dims`) is
/// `base + Σ i_d · strides[d]` with every entry an input index, else `None`.
fn affine(table: &[i64], dims: &[usize]) -> Option<(usize, Vec<isize>)> {
    let base = *table.first()?;
    if table.iter().any(|&t| t < 0) || dims.len() > MAX_RANK {
        return None;
    }
    let unit = strides(dims);
    let st: Vec<i64> = (0..dims.len())
        .map(|d| {
            if dims[d] > 1 {
                table[unit[d]] - base
            } else {
                0
            }
        })
        .collect();
    // Walk the table in row-major order as the C kernel does.
    let mut idx = vec![0usize; dims.len()];
    let mut off = base;
    for &t in table {
        if t != off {
            return None;
        }
        for d in (0..dims.len()).rev() {
            off += st[d];
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            off -= idx[d] as i64 * st[d];
            idx[d] = 0;
        }
    }
    Some((base as usize, st.into_iter().map(|s| s as isize).collect()))
}

impl Walk<'_> {
    /// Slice, Split, Expand and Pad: the runtime's kernel on an iota gives each output's table.
    pub(crate) fn copy(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        let xs = self.shape(ins[0])?;
        let t = iota_of(&xs, false, node, op)?;
        let run = |e: strata_runtime::RuntimeError| unsupported(node, op, e.to_string());
        let (outs, fill) = match op {
            Op::Slice(s) => (vec![layout::slice(s, &t).map_err(run)?], 0.0),
            Op::Split(s) => (layout::split(s, &t).map_err(run)?, 0.0),
            Op::Expand { shape } => (vec![layout::expand(shape, &t).map_err(run)?], 0.0),
            Op::Pad(p) => {
                // −1 marks the filled border (constant mode); input indices are ≥ 0.
                let marked = Pad {
                    value: -1.0,
                    ..p.clone()
                };
                let fill = match p.mode {
                    PadMode::Constant => p.value as f32,
                    PadMode::Edge | PadMode::Reflect | PadMode::Wrap => 0.0,
                };
                (vec![layout::pad(&marked, &t).map_err(run)?], fill)
            }
            _ => return Err(unsupported(node, op, "not a copying op")),
        };
        let x = self.act(ins[0], step, node, op)?;
        for (i, out) in outs.iter().enumerate() {
            let v = ValueRef {
                node: id,
                output: i,
            };
            self.place(v, node, op, x, &xs, out, fill, step)?;
        }
        Ok(())
    }

    /// Gather with constant indices.
    pub(crate) fn gather(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        let (&Op::Gather { axis }, &[xi, ii]) = (op, ins) else {
            return Err(unsupported(node, op, "needs data and indices"));
        };
        let xs = self.shape(xi)?;
        let indices = self.constant(ii, node, op, "the indices")?;
        let out = layout::gather(axis, &iota_of(&xs, false, node, op)?, indices)
            .map_err(|e| unsupported(node, op, e.to_string()))?;
        let x = self.act(xi, step, node, op)?;
        self.place(ValueRef::first(id), node, op, x, &xs, &out, 0.0, step)
    }

    /// Resize: nearest copies (an index table from the runtime's kernel); linear interpolates
    /// with the runtime's taps.
    pub(crate) fn resize(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        r: &Resize,
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        let xs = self.shape(ins[0])?;
        let ys = self.shape(ValueRef::first(id))?;
        if r.mode == ResizeMode::Nearest {
            let out = resize::resize(r, &iota_of(&xs, true, node, op)?)
                .map_err(|e| unsupported(node, op, e.to_string()))?;
            let table = out.to_f64_vec().into_iter().map(|v| v as i64).collect();
            let out = Tensor::from_i64(out.shape().to_vec(), table)
                .map_err(|e| unsupported(node, op, e.to_string()))?;
            let x = self.act(ins[0], step, node, op)?;
            return self.place(ValueRef::first(id), node, op, x, &xs, &out, 0.0, step);
        }
        let rank = xs.len();
        if rank == 0 || rank > MAX_RANK || r.scales.len() != rank || ys.len() != rank {
            return Err(unsupported(
                node,
                op,
                format!("rank must be 1..={MAX_RANK}"),
            ));
        }
        if ys.contains(&0) || xs.contains(&0) {
            return Err(unsupported(node, op, "an empty axis"));
        }
        let mut indices = Vec::new();
        let mut weights = Vec::new();
        for axis in 0..rank {
            // The runtime leaves a scale-1 axis alone (it is the identity), except under
            // tf_half_pixel_for_nn; the same taps: each index reads itself.
            if r.scales[axis] == 1.0 && r.coord != CoordMode::TfHalfPixelForNn {
                if ys[axis] != xs[axis] {
                    return Err(unsupported(node, op, "a scale-1 axis changes size"));
                }
                indices.extend((0..ys[axis]).map(|o| [o as i32, o as i32]));
                weights.extend(std::iter::repeat_n(0.0, ys[axis]));
                continue;
            }
            for (i0, i1, w) in resize::taps(r, axis, xs[axis], ys[axis]) {
                indices.push([i0 as i32, i1 as i32]);
                weights.push(w);
            }
        }
        if xs.iter().product::<usize>() > i32::MAX as usize {
            return Err(unsupported(node, op, "the input exceeds the index range"));
        }
        self.taps.push(LinearTaps {
            node: node.to_string(),
            indices,
            weights,
        });
        let x = self.act(ins[0], step, node, op)?;
        let kernel = Kernel::ResizeLinear {
            x,
            dims: ys.clone(),
            strides: strides(&xs),
            taps: self.taps.len() - 1,
        };
        self.emit(id, node, kernel, ys.iter().product(), step);
        Ok(())
    }

    /// Value `v` copies `x` (of shape `xs`) as `out` (the runtime's result on an iota) says:
    /// an alias, a strided copy or an index table; `fill` where the table holds −1.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        v: ValueRef,
        node: &str,
        op: &Op,
        x: Loc,
        xs: &[usize],
        out: &Tensor,
        fill: f32,
        step: usize,
    ) -> Result<(), LowerError> {
        let ys = self.shape(v)?;
        if out.shape() != ys.as_slice() {
            let reason = format!(
                "the runtime gives shape {:?} where the graph says {ys:?}",
                out.shape()
            );
            return Err(unsupported(node, op, reason));
        }
        let table = out
            .as_i64()
            .ok_or_else(|| unsupported(node, op, "the index table is not integer"))?;
        let n_in: usize = xs.iter().product();
        let identity = table.len() == n_in && table.iter().zip(0..).all(|(&t, i)| t == i);
        if identity {
            self.alias_at(v, node, x, AliasKind::View);
            return Ok(());
        }
        let n = table.len();
        if n == 0 {
            return Err(unsupported(node, op, "an empty output"));
        }
        // A scalar output is a one-element copy of rank 1.
        let dims = if ys.is_empty() { vec![1] } else { ys };
        let kernel = match affine(table, &dims) {
            Some((base, strides)) => Kernel::Gather {
                x,
                base,
                dims,
                strides,
            },
            None => {
                if n_in > i32::MAX as usize {
                    return Err(unsupported(node, op, "the input exceeds the index range"));
                }
                self.tables.push(IndexTable {
                    node: node.to_string(),
                    indices: table.iter().map(|&t| t.max(-1) as i32).collect(),
                });
                Kernel::Take {
                    x,
                    table: self.tables.len() - 1,
                    fill,
                }
            }
        };
        let y = self.output_at(v, n, step);
        self.push(node, kernel, y);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_tables_become_strides() {
        // A reversed slice of rows 2, 1 of a [3, 4] input, every other column from 1.
        assert_eq!(affine(&[9, 11, 5, 7], &[2, 2]), Some((9, vec![-4, 2])));
        // A broadcast of a [3] vector to [2, 3]: stride 0 on the repeated axis.
        assert_eq!(affine(&[0, 1, 2, 0, 1, 2], &[2, 3]), Some((0, vec![0, 1])));
        // Unit axes get stride 0 whatever follows.
        assert_eq!(affine(&[4], &[1]), Some((4, vec![0])));
        // A padded row (−1: the fill) and a permuted gather are not affine.
        assert_eq!(affine(&[-1, 0, 1, -1], &[4]), None);
        assert_eq!(affine(&[2, 0, 1], &[3]), None);
        assert_eq!(affine(&[], &[0]), None);
    }

    #[test]
    fn iota_counts_the_elements() {
        assert_eq!(
            iota(&[2, 2], false).unwrap().as_i64().unwrap(),
            &[0, 1, 2, 3]
        );
        assert_eq!(iota(&[3], true).unwrap().to_f64_vec(), vec![0.0, 1.0, 2.0]);
    }
}
