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
    let hp = (h + ph).max((oh.max(1) - 1) * sh + (kh - 1) * dh + 1);
    let wp = (wd + pw).max((ow.max(1) - 1) * sw + (kw - 1) * dw + 1);
    let fill = if max { f32::NEG_INFINITY } else { 0.0 };
    let x3_ty = tensor(&[c, h, wd], Elem::F32);
    let x3 = b.bind(&format!(
        "tensor.expand_shape {x} [[0, 1, 2]] output_shape [{c}, {h}, {wd}] : {} into {x3_ty}",
        tensor(&[c * h * wd], Elem::F32)
    ));
    let fv = b.f32(fill);
    let padded_ty = tensor(&[c, hp, wp], Elem::F32);
    let padded = b.pad(&x3, [c, h, wd], [hp, wp], [ph, pw], Elem::F32, &fv);
    let out_ty = tensor(&[c, oh, ow], Elem::F32);
    let init = b.filled(&[c, oh, ow], Elem::F32, &fv);
    let window = map(
        5,
        &[
            "d0".into(),
            format!("d1 * {sh} + d3 * {dh}"),
            format!("d2 * {sw} + d4 * {dw}"),
        ],
    );
    // The window's extent (loop bounds of the taps; its values are never read).
    let extent = b.empty(&[kh, kw], Elem::F32);
    let acc = b.generic(
        &["parallel", "parallel", "parallel", "reduction", "reduction"],
        &[
            Operand::new(&padded, padded_ty, window),
            Operand::new(
                &extent,
                tensor(&[kh, kw], Elem::F32),
                map(5, &["d3".into(), "d4".into()]),
            ),
        ],
        Operand::new(
            &init,
            out_ty.clone(),
            map(5, &["d0".into(), "d1".into(), "d2".into()]),
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
