//! MatMul between activations (`matmul` in the C prelude): one `linalg.generic` whose
//! reduction over `p` is the innermost loop, so every output element starts at +0 and adds
//! `a[i, p] · b[p, j]` for `p = 0, 1, …` in order — the runtime's accumulation, one `mulf`
//! and one `addf` per term (nothing contracted).

use crate::body::{Body, Operand};
use crate::text::{map, tensor, Elem};

/// The shapes of one MatMul step: the output's batch dims, each operand's batch dims (1
/// where broadcast), and `(m, k, n)`.
pub(crate) struct Dims<'a> {
    pub batch: &'a [usize],
    pub a_batch: &'a [usize],
    pub b_batch: &'a [usize],
    pub mkn: (usize, usize, usize),
}

/// A flat `x` viewed as `dims`.
fn expand(b: &mut Body, x: &str, dims: &[usize]) -> String {
    let n: usize = dims.iter().product();
    let all: Vec<String> = (0..dims.len()).map(|d| d.to_string()).collect();
    let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    b.bind(&format!(
        "tensor.expand_shape {x} [[{}]] output_shape [{}] : {} into {}",
        all.join(", "),
        shape.join(", "),
        tensor(&[n], Elem::F32),
        tensor(dims, Elem::F32)
    ))
}

/// `y = a · b` over flat `a` and `b`; returns the flat result.
pub(crate) fn matmul(b: &mut Body, a: &str, bv: &str, d: &Dims) -> String {
    let (m, k, n) = d.mkn;
    let r = d.batch.len();
    let with = |batch: &[usize], x: usize, y: usize| {
        let mut v = batch.to_vec();
        v.extend([x, y]);
        v
    };
    let (sa, sb, sy) = (
        with(d.a_batch, m, k),
        with(d.b_batch, k, n),
        with(d.batch, m, n),
    );
    let a3 = expand(b, a, &sa);
    let b3 = expand(b, bv, &sb);
    // Loops: the batch dims d0..d(r-1), then i, j and the reduction p innermost.
    let (i, j, p) = (
        format!("d{r}"),
        format!("d{}", r + 1),
        format!("d{}", r + 2),
    );
    let batch_map = |own: &[usize]| -> Vec<String> {
        own.iter()
            .enumerate()
            .map(|(x, &len)| {
                if len == 1 {
                    "0".into()
                } else {
                    format!("d{x}")
                }
            })
            .collect()
    };
    let mut am = batch_map(d.a_batch);
    am.extend([i.clone(), p.clone()]);
    let mut bm = batch_map(d.b_batch);
    bm.extend([p, j.clone()]);
    let mut ym: Vec<String> = (0..r).map(|x| format!("d{x}")).collect();
    ym.extend([i, j]);
    let dims = r + 3;
    let zero = b.f32(0.0);
    let init = b.filled(&sy, Elem::F32, &zero);
    let mut its = vec!["parallel"; r + 2];
    its.push("reduction");
    let y_ty = tensor(&sy, Elem::F32);
    let y = b.generic(
        &its,
        &[
            Operand::new(&a3, tensor(&sa, Elem::F32), map(dims, &am)),
            Operand::new(&b3, tensor(&sb, Elem::F32), map(dims, &bm)),
        ],
        Operand::new(&init, y_ty.clone(), map(dims, &ym)),
        Elem::F32,
        &[Elem::F32, Elem::F32],
        |r, g| {
            let prod = r.bind(&format!("arith.mulf {}, {} : f32", g[0], g[1]));
            r.bind(&format!("arith.addf {}, {prod} : f32", g[2]))
        },
    );
    let all: Vec<String> = (0..sy.len()).map(|d| d.to_string()).collect();
    b.bind(&format!(
        "tensor.collapse_shape {y} [[{}]] : {y_ty} into {}",
        all.join(", "),
        tensor(&[sy.iter().product()], Elem::F32)
    ))
}
