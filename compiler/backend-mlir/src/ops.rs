//! The float kernels between the bit-plane layers, each the runtime's formula in the C
//! backend's operation order (`compiler/backend-c/src/prelude.c`), as `linalg.generic` over
//! flat `tensor<N x f32>` values.

use strata_lower::PoolGeometry;

use crate::body::{Body, Operand};
use crate::text::{identity, map, tensor, Elem};

/// `y = x < 0 ? 0 : x` (NaN and −0 pass, as `relu()` in C).
pub(crate) fn relu(b: &mut Body, x: &str, n: usize) -> String {
    let ty = tensor(&[n], Elem::F32);
    let out = b.empty(&[n], Elem::F32);
    b.generic(
        &["parallel"],
        &[Operand::new(x, ty.clone(), identity(1))],
        Operand::new(&out, ty, identity(1)),
        Elem::F32,
        &[Elem::F32],
        |r, g| {
            let zero = r.f32(0.0);
            let neg = r.bind(&format!("arith.cmpf olt, {}, {zero} : f32", g[0]));
            r.bind(&format!("arith.select {neg}, {zero}, {} : f32", g[0]))
        },
    )
}

/// 2-D max or average pooling of the flat `[C, H, W]` input. The window visits its taps
/// row by row as `pool2d_run` does. Padding taps are skipped there; here they read −∞ (max:
/// `v > m` never takes it) or +0 (average: `acc + 0` is `acc`, since a sum started at +0
/// is never −0), and the average divides by the C kernel's count, computed here.
pub(crate) fn pool(b: &mut Body, x: &str, g: &PoolGeometry, max: bool) -> String {
    let w = &g.window;
    let [c, h, wd] = w.input;
    let [oh, ow] = w.output;
    let [kh, kw] = w.kernel;
    let [sh, sw] = w.strides;
    let [dh, dw] = w.dilations;
    let [ph, pw, ..] = g.pads;
    let [hp, wp] = crate::text::padded_extent(w, [ph, pw]);
    let fill = if max { f32::NEG_INFINITY } else { 0.0 };
    if tiles_exactly(g) {
        return pool_tiles(b, x, g, max);
    }
    let x3_ty = tensor(&[c, h, wd], Elem::F32);
    let x3 = b.bind(&format!(
        "tensor.expand_shape {x} [[0, 1, 2]] output_shape [{c}, {h}, {wd}] : {} into {x3_ty}",
        tensor(&[c * h * wd], Elem::F32)
    ));
    let fv = b.f32(fill);
    let padded_ty = tensor(&[c, hp, wp], Elem::F32);
    // Unpadded windows (2×2/2 and the like) read the input in place.
    let padded = if [hp, wp, ph, pw] == [h, wd, 0, 0] {
        x3
    } else {
        b.pad(&x3, [c, h, wd], [hp, wp], [ph, pw], Elem::F32, &fv)
    };
    let out_ty = tensor(&[c, oh, ow], Elem::F32);
    let init = b.filled(&[c, oh, ow], Elem::F32, &fv);
    // Loops (kh, kw, c, oh, ow): each output still folds its taps in (kh, kw) order, and
    // the innermost loop walks a row of outputs (vectorisable) instead of a 2-tap window.
    let window = map(
        5,
        &[
            "d2".into(),
            format!("d3 * {sh} + d0 * {dh}"),
            format!("d4 * {sw} + d1 * {dw}"),
        ],
    );
    // The window's extent (loop bounds of the taps; its values are never read).
    let extent = b.empty(&[kh, kw], Elem::F32);
    let acc = b.generic(
        &["reduction", "reduction", "parallel", "parallel", "parallel"],
        &[
            Operand::new(&padded, padded_ty, window),
            Operand::new(
                &extent,
                tensor(&[kh, kw], Elem::F32),
                map(5, &["d0".into(), "d1".into()]),
            ),
        ],
        Operand::new(
            &init,
            out_ty.clone(),
            map(5, &["d2".into(), "d3".into(), "d4".into()]),
        ),
        Elem::F32,
        &[Elem::F32, Elem::F32],
        |r, g| {
            let (v, m) = (&g[0], &g[2]);
            if max {
                let gt = r.bind(&format!("arith.cmpf ogt, {v}, {m} : f32"));
                r.bind(&format!("arith.select {gt}, {v}, {m} : f32"))
            } else {
                r.bind(&format!("arith.addf {m}, {v} : f32"))
            }
        },
    );
    let y = if max {
        acc
    } else {
        let counts = average_counts(g);
        let cnt_ty = tensor(&[oh, ow], Elem::F32);
        let cnt = b.bind(&format!(
            "arith.constant {}",
            crate::text::dense_f32(&counts, &[oh, ow])
        ));
        let out = b.empty(&[c, oh, ow], Elem::F32);
        b.generic(
            &["parallel", "parallel", "parallel"],
            &[
                Operand::new(&acc, out_ty.clone(), identity(3)),
                Operand::new(&cnt, cnt_ty, map(3, &["d1".into(), "d2".into()])),
            ],
            Operand::new(&out, out_ty.clone(), identity(3)),
            Elem::F32,
            &[Elem::F32, Elem::F32],
            |r, g| r.bind(&format!("arith.divf {}, {} : f32", g[0], g[1])),
        )
    };
    b.bind(&format!(
        "tensor.collapse_shape {y} [[0, 1, 2]] : {out_ty} into {}",
        tensor(&[c * oh * ow], Elem::F32)
    ))
}

/// Per output position, the divisor of average pooling exactly as `pool2d_run` counts it:
/// the window's taps inside the input plus the end padding (`count_include_pad`), else the
/// taps inside the input.
fn average_counts(g: &PoolGeometry) -> Vec<f32> {
    let w = &g.window;
    let [_, h, wd] = w.input;
    let [oh, ow] = w.output;
    let [ph, pw, eh, ew] = g.pads;
    // Taps of one axis: (inside the input, before the end of the end padding).
    let axis = |o: usize, k: usize, s: usize, d: usize, p: usize, n: usize, e: usize| {
        let (mut inside, mut padded) = (0usize, 0usize);
        for a in 0..k {
            let i = (o * s + a * d) as i64 - p as i64;
            if i < (n + e) as i64 {
                padded += 1;
            }
            if i >= 0 && i < n as i64 {
                inside += 1;
            }
        }
        (inside, padded)
    };
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        let (nh, padh) = axis(y, w.kernel[0], w.strides[0], w.dilations[0], ph, h, eh);
        for x in 0..ow {
            let (nw, padw) = axis(x, w.kernel[1], w.strides[1], w.dilations[1], pw, wd, ew);
            let cnt = if g.count_include_pad {
                padh * padw
            } else {
                nh * nw
            };
            out.push(cnt as f32);
        }
    }
    out
}

/// Lanes (outputs) per vector of [`pool_tiles`].
const POOL_LANES: usize = 8;

/// Whether the windows tile the input exactly: kernel = stride, no dilation, no padding,
/// every input pixel in one window (2×2/2 and the like), at most [`POOL_LANES`] wide.
fn tiles_exactly(g: &PoolGeometry) -> bool {
    let w = &g.window;
    let [_, h, wd] = w.input;
    let [oh, ow] = w.output;
    w.kernel == w.strides
        && w.dilations == [1, 1]
        && g.pads == [0; 4]
        && h == oh * w.strides[0]
        && wd == ow * w.strides[1]
        && (1..=POOL_LANES).contains(&w.kernel[1])
        && oh * ow > 0
}

/// Pooling whose windows tile the input, vectorised along output rows: for 8 outputs of
/// one row, each kernel row is one load of `8·KW` inputs, split into its `KW` taps by
/// shuffles, and folded tap by tap in `(kh, kw)` order — the generic loop nest's order,
/// so the results are the same bits. (LLVM, given that nest, unrolls the short row loop
/// and vectorises across channels with gathers.) A row's last, partial vector reads and
/// writes under a mask.
fn pool_tiles(b: &mut Body, x: &str, g: &PoolGeometry, max: bool) -> String {
    let w = &g.window;
    let [c, h, wd] = w.input;
    let [oh, ow] = w.output;
    let [kh, kw] = w.kernel;
    let (n_in, n_out) = (c * h * wd, c * oh * ow);
    let (in_mem, out_mem) = (
        format!("memref<{n_in}xf32>"),
        format!("memref<{n_out}xf32>"),
    );
    let xm = b.bind(&format!(
        "bufferization.to_buffer {x} read_only : {} to {in_mem}",
        tensor(&[n_in], Elem::F32)
    ));
    let out = b.bind(&format!(
        "memref.alloc() {{alignment = 64 : i64}} : {out_mem}"
    ));
    let lanes = POOL_LANES;
    let (vo, vi) = (
        format!("vector<{lanes}xf32>"),
        format!("vector<{}xf32>", lanes * kw),
    );
    let fill = if max { f32::NEG_INFINITY } else { 0.0 };
    let fv = b.f32(fill);
    let init = b.bind(&format!("vector.broadcast {fv} : f32 to {vo}"));
    let pass = b.bind(&format!("vector.broadcast {fv} : f32 to {vi}"));
    let count = b.f32((kh * kw) as f32);
    let divisor = b.bind(&format!("vector.broadcast {count} : f32 to {vo}"));
    let (c0, c1) = (b.index(0), b.index(1));
    let rows = b.index(c * oh);
    let (row_in, row_out) = (b.index(kh * wd), b.index(ow));
    let taps_rows: Vec<String> = (0..kh).map(|i| b.index(i * wd)).collect();
    let full = ow / lanes;
    let tail = ow % lanes;
    let chunk_starts: Vec<(String, String)> = (0..full + usize::from(tail > 0))
        .map(|j| (b.index(j * lanes * kw), b.index(j * lanes)))
        .collect();
    let masks = (tail > 0).then(|| {
        (
            b.bind(&format!(
                "vector.constant_mask [{}] : vector<{}xi1>",
                tail * kw,
                lanes * kw
            )),
            b.bind(&format!(
                "vector.constant_mask [{tail}] : vector<{lanes}xi1>"
            )),
        )
    });
    let r = b.fresh();
    b.line(&format!("scf.for {r} = {c0} to {rows} step {c1} {{"));
    b.indent += 1;
    let base_in = b.bind(&format!("arith.muli {r}, {row_in} : index"));
    let base_out = b.bind(&format!("arith.muli {r}, {row_out} : index"));
    for (j, (in_off, out_off)) in chunk_starts.iter().enumerate() {
        let masked = j == full;
        let at_in = b.bind(&format!("arith.addi {base_in}, {in_off} : index"));
        let mut m = init.clone();
        for tap_row in &taps_rows {
            let at = b.bind(&format!("arith.addi {at_in}, {tap_row} : index"));
            let v = match (&masks, masked) {
                (Some((mi, _)), true) => b.bind(&format!(
                    "vector.maskedload {xm}[{at}], {mi}, {pass} : {in_mem}, vector<{}xi1>, {vi} into {vi}",
                    lanes * kw
                )),
                _ => b.bind(&format!("vector.load {xm}[{at}] : {in_mem}, {vi}")),
            };
            for t in 0..kw {
                let idx: Vec<String> = (0..lanes).map(|i| (i * kw + t).to_string()).collect();
                let tap = b.bind(&format!(
                    "vector.shuffle {v}, {v} [{}] : {vi}, {vi}",
                    idx.join(", ")
                ));
                m = if max {
                    let gt = b.bind(&format!("arith.cmpf ogt, {tap}, {m} : {vo}"));
                    b.bind(&format!(
                        "arith.select {gt}, {tap}, {m} : vector<{lanes}xi1>, {vo}"
                    ))
                } else {
                    b.bind(&format!("arith.addf {m}, {tap} : {vo}"))
                };
            }
        }
        if !max {
            m = b.bind(&format!("arith.divf {m}, {divisor} : {vo}"));
        }
        let at_out = b.bind(&format!("arith.addi {base_out}, {out_off} : index"));
        match (&masks, masked) {
            (Some((_, mo)), true) => b.line(&format!(
                "vector.maskedstore {out}[{at_out}], {mo}, {m} : {out_mem}, vector<{lanes}xi1>, {vo}"
            )),
            _ => b.line(&format!("vector.store {m}, {out}[{at_out}] : {out_mem}, {vo}")),
        }
    }
    b.indent -= 1;
    b.line("}");
    b.bind(&format!(
        "bufferization.to_tensor {out} restrict writable : {out_mem} to {}",
        tensor(&[n_out], Elem::F32)
    ))
}
