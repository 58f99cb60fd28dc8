//! Data movement: concatenation, strided copies and copies through an index table
//! (`concat_part`, `gather`, `take` in the C prelude). Pure copies, so only the addressing
//! has to match.

use crate::body::{Body, Operand};
use crate::text::{dense_i32, identity, tensor, Elem};

/// For each of `outer` blocks, every part's `chunk` values in turn. Each part is copied by
/// `linalg.copy` into its slice of the result (in place after bufferization).
pub(crate) fn concat(b: &mut Body, parts: &[(String, usize)], outer: usize) -> String {
    let stride: usize = parts.iter().map(|p| p.1).sum();
    let full_ty = tensor(&[outer, stride], Elem::F32);
    let mut full = b.empty(&[outer, stride], Elem::F32);
    let mut offset = 0;
    for (x, chunk) in parts {
        let part_ty = tensor(&[outer, *chunk], Elem::F32);
        let x2 = b.bind(&format!(
            "tensor.expand_shape {x} [[0, 1]] output_shape [{outer}, {chunk}] : {} into {part_ty}",
            tensor(&[outer * chunk], Elem::F32)
        ));
        let slice = b.bind(&format!(
            "tensor.extract_slice {full}[0, {offset}] [{outer}, {chunk}] [1, 1] : {full_ty} to {part_ty}"
        ));
        let copied = b.bind(&format!(
            "linalg.copy ins({x2} : {part_ty}) outs({slice} : {part_ty}) -> {part_ty}"
        ));
        full = b.bind(&format!(
            "tensor.insert_slice {copied} into {full}[0, {offset}] [{outer}, {chunk}] [1, 1] : {part_ty} into {full_ty}"
        ));
        offset += chunk;
    }
    b.bind(&format!(
        "tensor.collapse_shape {full} [[0, 1]] : {full_ty} into {}",
        tensor(&[outer * stride], Elem::F32)
    ))
}

/// Output element `(i_0, …)` (row-major over `dims`) reads `x[base + Σ i_d · strides[d]]`
/// of the flat `x` of `x_len` values.
pub(crate) fn gather(
    b: &mut Body,
    (x, x_len): (&str, usize),
    base: usize,
    dims: &[usize],
    strides: &[isize],
) -> String {
    let rank = dims.len();
    let n: usize = dims.iter().product();
    let out_ty = tensor(dims, Elem::F32);
    let out = b.empty(dims, Elem::F32);
    let x_ty = tensor(&[x_len], Elem::F32);
    let y = b.generic(
        &vec!["parallel"; rank],
        &[],
        Operand::new(&out, out_ty.clone(), identity(rank)),
        Elem::F32,
        &[],
        |r, _| {
            let mut at = r.index(base);
            for (d, &s) in strides.iter().enumerate() {
                let i = r.bind(&format!("linalg.index {d} : index"));
                // Index arithmetic wraps like two's complement: negative strides work.
                let sv = r.constant(&s.to_string(), "index");
                let t = r.bind(&format!("arith.muli {i}, {sv} : index"));
                at = r.bind(&format!("arith.addi {at}, {t} : index"));
            }
            r.bind(&format!("tensor.extract {x}[{at}] : {x_ty}"))
        },
    );
    let all: Vec<String> = (0..rank).map(|d| d.to_string()).collect();
    b.bind(&format!(
        "tensor.collapse_shape {y} [[{}]] : {out_ty} into {}",
        all.join(", "),
        tensor(&[n], Elem::F32)
    ))
}

/// `y[i] = idx[i] < 0 ? fill : x[idx[i]]` over the table.
pub(crate) fn take(b: &mut Body, (x, x_len): (&str, usize), table: &[i32], fill: f32) -> String {
    let n = table.len();
    let t = b.bind(&format!("arith.constant {}", dense_i32(table, &[n])));
    let out = b.empty(&[n], Elem::F32);
    let x_ty = tensor(&[x_len], Elem::F32);
    let fv = b.f32(fill);
    b.generic(
        &["parallel"],
        &[Operand::new(&t, tensor(&[n], Elem::I32), identity(1))],
        Operand::new(&out, tensor(&[n], Elem::F32), identity(1)),
        Elem::F32,
        &[Elem::I32],
        |r, g| {
            let zero = r.i32(0);
            let neg = r.bind(&format!("arith.cmpi slt, {}, {zero} : i32", g[0]));
            let safe = r.bind(&format!("arith.select {neg}, {zero}, {} : i32", g[0]));
            let at = r.bind(&format!("arith.index_cast {safe} : i32 to index"));
            let v = r.bind(&format!("tensor.extract {x}[{at}] : {x_ty}"));
            r.bind(&format!("arith.select {neg}, {fv}, {v} : f32"))
        },
    )
}
