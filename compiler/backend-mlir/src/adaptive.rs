//! `PREFIX_run_adaptive`: the adaptive-precision cascade over `PREFIX_impl`, the C backend's
//! (`strata_backend_c::AdaptiveStages`, declared by its header): stage 0 runs, then each
//! next stage while the output's margin (largest minus second-largest element, folded as
//! `strata_ir::adaptive::margin` folds it) is below the stage's threshold; the last stage
//! always answers. `stats` (may be NULL) receives the answering stage, the stages run and the
//! answering stage's plane count per layer, at the C struct's offsets.

use strata_backend_c::AdaptiveStages;
use strata_lower::Lowered;

use crate::body::Body;
use crate::text::{f32_lit, memref, Elem};
use crate::MlirError;

/// The functions `PREFIX_margin` and `PREFIX_run_adaptive` (one input, one output).
pub(crate) fn functions(
    l: &Lowered,
    name: &str,
    stages: &AdaptiveStages,
) -> Result<String, MlirError> {
    if !l.single_io() || stages.planes.is_empty() {
        return Err(MlirError::Adaptive(format!(
            "PREFIX_run_adaptive needs one input, one output and a stage ({} inputs, {} \
             outputs, {} stages)",
            l.inputs.len(),
            l.outputs.len(),
            stages.planes.len()
        )));
    }
    // Each stage's (side-table row, code shift) per layer.
    let mut selections = Vec::with_capacity(stages.planes.len());
    for (s, counts) in stages.planes.iter().enumerate() {
        let mut sel = Vec::with_capacity(l.layers.len());
        for (layer, &k) in l.layers.iter().zip(counts) {
            let j = layer
                .counts
                .iter()
                .position(|&c| c == k)
                .filter(|_| k <= layer.k);
            let Some(j) = j else {
                return Err(MlirError::Adaptive(format!(
                    "stage {s} runs layer `{}` at {k} planes, which it has no side table for",
                    layer.node
                )));
            };
            sel.push((j, layer.k - k));
        }
        selections.push(sel);
    }
    let (n_in, n_out) = (l.inputs[0].size(), l.outputs[0].0.size());
    let (in_ty, out_ty) = (memref(n_in, Elem::F32), memref(n_out, Elem::F32));
    let layers = l.layers.len();
    let stats_ty = memref(8 + layers.max(1), Elem::I8);
    let mut b = Body::new(2);
    // Every constant, defined before the branches (a constant cached inside one would be
    // reused outside it).
    let args: Vec<Vec<String>> = selections
        .iter()
        .map(|sel| {
            let mut a = vec!["%in0".to_string(), "%out0".to_string()];
            for &(j, sh) in sel {
                a.push(b.index(j));
                a.push(b.constant(&sh.to_string(), "i8"));
            }
            a
        })
        .collect();
    let stage_ids: Vec<String> = (0..selections.len())
        .map(|s| b.constant(&s.to_string(), "i32"))
        .collect();
    let thresholds: Vec<String> = stages
        .margins
        .iter()
        .map(|&m| b.constant(&f32_lit(m), "f32"))
        .collect();
    let mut call_tys = vec![in_ty.clone(), out_ty.clone()];
    for _ in 0..layers {
        call_tys.push("index".into());
        call_tys.push("i8".into());
    }
    let cx = Cascade {
        name,
        call_tys: call_tys.join(", "),
        out_ty: &out_ty,
        args: &args,
        stage_ids: &stage_ids,
        thresholds: &thresholds,
    };
    let answer = cx.stage(&mut b, 0);

    // stats: int stage; int stages_run; uint8_t planes_per_layer[max(1, layers)].
    let planes: Vec<i8> = stages
        .planes
        .iter()
        .flat_map(|p| {
            let mut row: Vec<i8> = p.iter().map(|&k| k as i8).collect();
            row.resize(layers.max(1), 0);
            row
        })
        .collect();
    let table = b.bind(&format!(
        "arith.constant {}",
        crate::text::dense_i8(&planes, &[selections.len(), layers.max(1)])
    ));
    let table_ty = crate::text::tensor(&[selections.len(), layers.max(1)], Elem::I8);
    let offsets: Vec<String> = (0..8 + layers).map(|i| b.index(i)).collect();
    let one = b.constant("1", "i32");
    let c0 = b.index(0);
    let ptr = b.bind(&format!(
        "memref.extract_aligned_pointer_as_index %stats : {stats_ty} -> index"
    ));
    let null = b.bind(&format!("arith.cmpi eq, {ptr}, {c0} : index"));
    b.line(&format!("scf.if {null} {{"));
    b.line("} else {");
    b.indent += 1;
    let run = b.bind(&format!("arith.addi {answer}, {one} : i32"));
    for (v, at) in [(&answer, &offsets[0]), (&run, &offsets[4])] {
        let w = b.bind(&format!("vector.broadcast {v} : i32 to vector<1xi32>"));
        let bytes = b.bind(&format!(
            "vector.bitcast {w} : vector<1xi32> to vector<4xi8>"
        ));
        b.line(&format!(
            "vector.store {bytes}, %stats[{at}] : {stats_ty}, vector<4xi8>"
        ));
    }
    let row = b.bind(&format!("arith.index_cast {answer} : i32 to index"));
    for i in 0..layers {
        let k = b.bind(&format!(
            "tensor.extract {table}[{row}, {}] : {table_ty}",
            offsets[i]
        ));
        b.line(&format!(
            "memref.store {k}, %stats[{}] : {stats_ty}",
            offsets[8 + i]
        ));
    }
    b.indent -= 1;
    b.line("}");
    let zero = b.constant("0", "i32");
    b.line(&format!("return {zero} : i32"));
    Ok(format!(
        "{}  func.func @{name}_run_adaptive(%in0: {in_ty}, %out0: {out_ty}, %stats: {stats_ty}) -> i32 {{\n{}  }}\n",
        margin(name, n_out, &out_ty),
        b.text
    ))
}

/// The cascade's pieces, by stage.
struct Cascade<'a> {
    name: &'a str,
    call_tys: String,
    out_ty: &'a str,
    args: &'a [Vec<String>],
    stage_ids: &'a [String],
    thresholds: &'a [String],
}

impl Cascade<'_> {
    /// Runs stage `s`; returns the `i32` value of the stage that answers from here on.
    fn stage(&self, b: &mut Body, s: usize) -> String {
        b.line(&format!(
            "func.call @{}_impl({}) : ({}) -> ()",
            self.name,
            self.args[s].join(", "),
            self.call_tys
        ));
        if s + 1 == self.args.len() {
            return self.stage_ids[s].clone();
        }
        let m = b.bind(&format!(
            "func.call @{}_margin(%out0) : ({}) -> f32",
            self.name, self.out_ty
        ));
        let enough = b.bind(&format!(
            "arith.cmpf oge, {m}, {} : f32",
            self.thresholds[s]
        ));
        let r = b.fresh();
        b.line(&format!("{r} = scf.if {enough} -> (i32) {{"));
        b.line(&format!("  scf.yield {} : i32", self.stage_ids[s]));
        b.line("} else {");
        b.indent += 1;
        let inner = self.stage(b, s + 1);
        b.line(&format!("scf.yield {inner} : i32"));
        b.indent -= 1;
        b.line("}");
        r
    }
}

/// `PREFIX_margin(y)`: the largest minus the second-largest of the `n` outputs, folded in
/// index order (`y > best`, else `y > second`: NaN never wins); `+inf` for fewer than two.
fn margin(name: &str, n: usize, ty: &str) -> String {
    let mut b = Body::new(2);
    if n < 2 {
        let inf = b.constant(&f32_lit(f32::INFINITY), "f32");
        b.line(&format!("return {inf} : f32"));
    } else {
        let (c0, c1, end) = (b.index(0), b.index(1), b.index(n));
        let ninf = b.constant(&f32_lit(f32::NEG_INFINITY), "f32");
        let (i, best, second, r) = (b.fresh(), b.fresh(), b.fresh(), b.fresh());
        b.line(&format!(
            "{r}:2 = scf.for {i} = {c0} to {end} step {c1} iter_args({best} = {ninf}, {second} = {ninf}) -> (f32, f32) {{"
        ));
        b.indent += 1;
        let y = b.bind(&format!("memref.load %y[{i}] : {ty}"));
        let over_best = b.bind(&format!("arith.cmpf ogt, {y}, {best} : f32"));
        let over_second = b.bind(&format!("arith.cmpf ogt, {y}, {second} : f32"));
        let nb = b.bind(&format!("arith.select {over_best}, {y}, {best} : f32"));
        let kept = b.bind(&format!("arith.select {over_second}, {y}, {second} : f32"));
        let ns = b.bind(&format!("arith.select {over_best}, {best}, {kept} : f32"));
        b.line(&format!("scf.yield {nb}, {ns} : f32, f32"));
        b.indent -= 1;
        b.line("}");
        let d = b.bind(&format!("arith.subf {r}#0, {r}#1 : f32"));
        b.line(&format!("return {d} : f32"));
    }
    format!(
        "  func.func private @{name}_margin(%y: {ty}) -> f32 {{\n{}  }}\n",
        b.text
    )
}
