//! The integer product behind convolutions and linear layers, tiled and vectorised here
//! rather than left to LLVM's loop vectoriser (which cannot keep a `linalg` reduction's
//! accumulator in a register when it cannot prove the buffers apart):
//!
//! `acc[p, m] = Σ_tap Σ_c x[base(p) + off(tap) + c] · (w[m, tap, c] >> sh)`
//!
//! `x` is the layer's input as centred `i16` activation codes, channels last and zero
//! padded (a convolution's padded `[H, W, C]` map, a linear layer's vector); `base(p)` is
//! where output position `p`'s window starts and `off(tap)` where each kernel tap sits in
//! it, so the convolution reads its windows in place (no patch matrix). `w` holds the
//! stored `i8` codes packed `[M/16][taps · C/2][16][2]`: for 16 outputs, each pair of
//! channels side by side. One step multiplies a broadcast pair `(x[c], x[c+1])` with 16
//! such weight pairs in `i32` and adds the even and odd products — the `pmaddwd` pattern,
//! which LLVM selects as `vpmaddwd` (AVX2), `vpdpwssd` (AVX-512 VNNI) or widening
//! multiply-adds elsewhere. Every product and sum is exact in `i32` (codes of at most 8
//! planes, activation codes centred into `i16`), so the result equals the runtime's
//! accumulator bit for bit, in any order.
//!
//! Each tile keeps `rows × vecs` accumulators of 16 lanes in registers across the whole
//! reduction and loads each packed weight vector once for its `rows` positions.

use crate::body::Body;
use crate::text::{tensor, Elem};

/// Outputs per weight vector.
pub(crate) const LANES: usize = 16;

/// The register tile: output positions × weight vectors of [`LANES`] outputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tile {
    pub rows: usize,
    pub vecs: usize,
}

/// Where the windows are: output positions `oh · OW + ow` start at `(oh · sh · W + ow · sw)
/// · C` in the padded map and tap `(kh, kw)` sits at `(kh · dh · W + kw · dw) · C`
/// further (`C` the padded channel count). A linear layer is one position with one tap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// Output positions per row (`OW`) and their strides in elements: `sh · W · C`,
    /// `sw · C`.
    pub ow: usize,
    pub row_step: usize,
    pub col_step: usize,
    /// Kernel taps `[KH, KW]` and their strides in elements: `dh · W · C`, `dw · C`.
    pub taps: [usize; 2],
    pub tap_step: [usize; 2],
}

impl Windows {
    /// One vector read whole: a linear layer.
    pub(crate) fn linear() -> Windows {
        Windows {
            ow: 1,
            row_step: 0,
            col_step: 0,
            taps: [1, 1],
            tap_step: [0, 0],
        }
    }
}

/// A product's extents. Outputs are padded to whole tiles of weight vectors (zero codes,
/// never stored), channels to pairs (zero activations and codes); positions are not (the
/// last tile is moved back, [`product`]), so a tile of `rows` needs `P ≥ rows`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    /// Output positions.
    pub p: usize,
    /// Channels per tap, padded to pairs.
    pub c: usize,
    /// Outputs, padded to whole tiles.
    pub m: usize,
    /// Elements of the input map (`x`'s length).
    pub x_len: usize,
    pub windows: Windows,
    pub tile: Tile,
}

impl Dims {
    pub(crate) fn new(
        (p, c, m): (usize, usize, usize),
        x_len: usize,
        windows: Windows,
        tile: Tile,
    ) -> Dims {
        let round = |x: usize, to: usize| x.max(1).div_ceil(to) * to;
        Dims {
            p: p.max(1),
            c: round(c, 2),
            m: round(m, LANES * tile.vecs),
            x_len,
            windows,
            tile,
        }
    }

    /// The packed codes' shape: `[M/16, taps · C/2, 32]`.
    pub(crate) fn w_dims(&self) -> [usize; 3] {
        let [kh, kw] = self.windows.taps;
        [self.m / LANES, kh * kw * self.c / 2, 2 * LANES]
    }
}

/// `codes` (`[m, c, kh, kw]` row-major, as stored) in the kernel's layout
/// `[M/16][(kh · KW + kw) · C/2 + c/2][16][2]`, zero padded.
pub(crate) fn pack(codes: &[i8], m: usize, c: usize, d: &Dims) -> Vec<i8> {
    let [kh, kw] = d.windows.taps;
    let taps = kh * kw;
    let steps = taps * d.c / 2;
    let mut out = vec![0i8; d.m * taps * d.c];
    for r in 0..m {
        let (blk, lane) = (r / LANES, r % LANES);
        for ch in 0..c {
            for t in 0..taps {
                let step = t * d.c / 2 + ch / 2;
                out[(blk * steps + step) * 2 * LANES + 2 * lane + ch % 2] =
                    codes[(r * c + ch) * taps + t];
            }
        }
    }
    out
}

/// The f32 epilogue the kernel applies to its accumulators, in the C backend's order:
/// `(alpha·scale)·acc + (beta·scale)·usum`, then `+ bias`, then the fused Relu's
/// comparison (separate multiplies and adds: nothing is contracted).
pub(crate) struct Epilogue<'a> {
    /// The activation scale (an `f32` value).
    pub scale: &'a str,
    /// `tensor<M_pad x f32>` values (padding outputs: zeros).
    pub alpha: &'a str,
    pub beta: &'a str,
    pub bias: &'a str,
    /// `Σ u` of each position's window: a `tensor<P x i32>` value.
    pub usum: &'a str,
    pub relu: bool,
}

/// Emits the layer: the product of `x` (a `tensor<x_len x i16>` value) and the packed
/// codes `w` (a value of [`Dims::w_dims`] `i8`) shifted down by `sh` (an `i8` value), and
/// the epilogue. Returns `tensor<M x P x f32>` — channels first, as the layer's output —
/// written tile by tile: a tile's 4 positions of 16 outputs are transposed in registers
/// and stored as 16 runs of 4. The last tile of positions is moved back to end at `P`
/// (recomputing a few positions) so that no position is padding.
pub(crate) fn product(
    b: &mut Body,
    (x, w, sh): (&str, &str, &str),
    e: &Epilogue,
    d: &Dims,
    m_real: usize,
) -> String {
    let Tile { rows, vecs } = d.tile;
    let wd = d.w_dims();
    let win = d.windows;
    let (x_mem, w_mem) = (
        format!("memref<{}xi16>", d.x_len),
        format!("memref<{}x{}x{}xi8>", wd[0], wd[1], wd[2]),
    );
    let (row_mem, usum_mem, out_mem) = (
        format!("memref<{}xf32>", d.m),
        format!("memref<{}xi32>", d.p),
        format!("memref<{m_real}x{}xf32>", d.p),
    );
    let buffer = |b: &mut Body, v: &str, t: String, m: &str| {
        b.bind(&format!(
            "bufferization.to_buffer {v} read_only : {t} to {m}"
        ))
    };
    let xm = buffer(b, x, tensor(&[d.x_len], Elem::I16), &x_mem);
    let wm = buffer(b, w, tensor(&wd, Elem::I8), &w_mem);
    let row_ty = tensor(&[d.m], Elem::F32);
    let [alpha, beta, bias] =
        [e.alpha, e.beta, e.bias].map(|v| buffer(b, v, row_ty.clone(), &row_mem));
    let usum = buffer(b, e.usum, tensor(&[d.p], Elem::I32), &usum_mem);
    let out = b.bind(&format!(
        "memref.alloc() {{alignment = 64 : i64}} : {out_mem}"
    ));
    let w_vec = "vector<32xi8>";
    let (v16, v32) = ("vector<32xi16>", "vector<32xi32>");
    let (acc_vec, f_vec) = ("vector<16xi32>", "vector<16xf32>");
    let sh16 = b.bind(&format!("arith.extsi {sh} : i8 to i16"));
    let shv = b.bind(&format!("vector.broadcast {sh16} : i16 to {v16}"));
    let zero = b.bind(&format!("arith.constant dense<0> : {acc_vec}"));
    let fzero = b.bind(&format!("arith.constant dense<0.000000e+00> : {f_vec}"));
    let scale = b.bind(&format!("vector.broadcast {} : f32 to {f_vec}", e.scale));
    // Every index constant the loops use, defined here: a constant first defined inside
    // a loop would be cached and reused outside it.
    let lane_ix: Vec<String> = (0..LANES.max(rows)).map(|i| b.index(i)).collect();
    let (c0, c1, two, lanes) = (b.index(0), b.index(1), b.index(2), b.index(LANES));
    let (m_step, p_step) = (b.index(vecs), b.index(rows));
    let (m_end, p_end, p_last) = (
        b.index(d.m / LANES),
        b.index(d.p),
        b.index(d.p.saturating_sub(rows)),
    );
    let m_lim = b.index(m_real);
    let (ow, row_step, col_step) = (
        b.index(win.ow),
        b.index(win.row_step),
        b.index(win.col_step),
    );
    let (kh_end, kw_end) = (b.index(win.taps[0]), b.index(win.taps[1]));
    let (kh_step, kw_step) = (b.index(win.tap_step[0]), b.index(win.tap_step[1]));
    let (kw_steps, c_end) = (b.index(win.taps[1] * d.c / 2), b.index(d.c / 2));

    let n = rows * vecs;
    let tys = vec![acc_vec; n].join(", ");
    let (mb, pt) = (b.fresh(), b.fresh());
    b.line(&format!("scf.for {mb} = {c0} to {m_end} step {m_step} {{"));
    b.indent += 1;
    b.line(&format!("scf.for {pt} = {c0} to {p_end} step {p_step} {{"));
    b.indent += 1;
    let p0 = b.bind(&format!("arith.minui {pt}, {p_last} : index"));
    // Each row's window start.
    let mut positions = Vec::with_capacity(rows);
    let mut bases = Vec::with_capacity(rows);
    for off in &lane_ix[..rows] {
        let p = b.bind(&format!("arith.addi {p0}, {off} : index"));
        let (oy, ox) = (
            b.bind(&format!("arith.divui {p}, {ow} : index")),
            b.bind(&format!("arith.remui {p}, {ow} : index")),
        );
        let y = b.bind(&format!("arith.muli {oy}, {row_step} : index"));
        let xo = b.bind(&format!("arith.muli {ox}, {col_step} : index"));
        bases.push(b.bind(&format!("arith.addi {y}, {xo} : index")));
        positions.push(p);
    }
    let blks: Vec<String> = lane_ix[..vecs]
        .iter()
        .map(|off| b.bind(&format!("arith.addi {mb}, {off} : index")))
        .collect();
    // for kh { for kw { for c/2 { … } } }, the accumulators carried through all three.
    let loop_head = |b: &mut Body, iv: &str, end: &str, init: &[String]| -> (Vec<String>, String) {
        let carried: Vec<String> = (0..n).map(|_| b.fresh()).collect();
        let results = b.fresh();
        let iter: Vec<String> = carried
            .iter()
            .zip(init)
            .map(|(v, i)| format!("{v} = {i}"))
            .collect();
        b.line(&format!(
            "{results}:{n} = scf.for {iv} = {c0} to {end} step {c1} iter_args({}) -> ({tys}) {{",
            iter.join(", ")
        ));
        b.indent += 1;
        (carried, results)
    };
    let (ky, kx, cp) = (b.fresh(), b.fresh(), b.fresh());
    let zeros = vec![zero.clone(); n];
    let (outer, outer_res) = loop_head(b, &ky, &kh_end, &zeros);
    let ty_off = b.bind(&format!("arith.muli {ky}, {kh_step} : index"));
    let ty_step = b.bind(&format!("arith.muli {ky}, {kw_steps} : index"));
    let (middle, middle_res) = loop_head(b, &kx, &kw_end, &outer);
    let tx_off = b.bind(&format!("arith.muli {kx}, {kw_step} : index"));
    let tap_off = b.bind(&format!("arith.addi {ty_off}, {tx_off} : index"));
    let tx_step = b.bind(&format!("arith.muli {kx}, {c_end} : index"));
    let tap_step = b.bind(&format!("arith.addi {ty_step}, {tx_step} : index"));
    let (accs, inner_res) = loop_head(b, &cp, &c_end, &middle);
    // The weight vectors of this step, shifted to the run-time count and widened.
    let step = b.bind(&format!("arith.addi {tap_step}, {cp} : index"));
    let mut weights = Vec::with_capacity(vecs);
    for blk in &blks {
        let w8 = b.bind(&format!(
            "vector.load {wm}[{blk}, {step}, {c0}] : {w_mem}, {w_vec}"
        ));
        let w16 = b.bind(&format!("arith.extsi {w8} : {w_vec} to {v16}"));
        let ws = b.bind(&format!("arith.shrsi {w16}, {shv} : {v16}"));
        weights.push(b.bind(&format!("arith.extsi {ws} : {v16} to {v32}")));
    }
    let c2 = b.bind(&format!("arith.muli {cp}, {two} : index"));
    let within = b.bind(&format!("arith.addi {tap_off}, {c2} : index"));
    let even: Vec<String> = (0..LANES).map(|i| (2 * i).to_string()).collect();
    let odd: Vec<String> = (0..LANES).map(|i| (2 * i + 1).to_string()).collect();
    let mut next = Vec::with_capacity(n);
    for (r, base) in bases.iter().enumerate() {
        // The pair (x[c], x[c+1]) of this row's window in every 32-bit lane.
        let at = b.bind(&format!("arith.addi {base}, {within} : index"));
        let pair = b.bind(&format!("vector.load {xm}[{at}] : {x_mem}, vector<2xi16>"));
        let p32 = b.bind(&format!(
            "vector.bitcast {pair} : vector<2xi16> to vector<1xi32>"
        ));
        let s = b.bind(&format!("vector.extract {p32}[0] : i32 from vector<1xi32>"));
        let bc = b.bind(&format!("vector.broadcast {s} : i32 to {acc_vec}"));
        let b16 = b.bind(&format!("vector.bitcast {bc} : {acc_vec} to {v16}"));
        let be = b.bind(&format!("arith.extsi {b16} : {v16} to {v32}"));
        for (v, we) in weights.iter().enumerate() {
            let prod = b.bind(&format!("arith.muli {be}, {we} : {v32}"));
            let ev = b.bind(&format!(
                "vector.shuffle {prod}, {prod} [{}] : {v32}, {v32}",
                even.join(", ")
            ));
            let od = b.bind(&format!(
                "vector.shuffle {prod}, {prod} [{}] : {v32}, {v32}",
                odd.join(", ")
            ));
            let sum = b.bind(&format!("arith.addi {ev}, {od} : {acc_vec}"));
            next.push(b.bind(&format!(
                "arith.addi {}, {sum} : {acc_vec}",
                accs[r * vecs + v]
            )));
        }
    }
    let yield_all = |b: &mut Body, vals: &[String]| {
        b.line(&format!("scf.yield {} : {tys}", vals.join(", ")));
        b.indent -= 1;
        b.line("}");
    };
    let results = |r: &str| -> Vec<String> { (0..n).map(|i| format!("{r}#{i}")).collect() };
    yield_all(b, &next);
    yield_all(b, &results(&inner_res));
    yield_all(b, &results(&middle_res));

    // The epilogue, 16 outputs of one position at a time.
    let sums: Vec<String> = positions
        .iter()
        .map(|p| {
            let s = b.bind(&format!("memref.load {usum}[{p}] : {usum_mem}"));
            let f = b.bind(&format!("arith.sitofp {s} : i32 to f32"));
            b.bind(&format!("vector.broadcast {f} : f32 to {f_vec}"))
        })
        .collect();
    for (v, blk) in blks.iter().enumerate() {
        let m0 = b.bind(&format!("arith.muli {blk}, {lanes} : index"));
        let load =
            |b: &mut Body, t: &str| b.bind(&format!("vector.load {t}[{m0}] : {row_mem}, {f_vec}"));
        let (al, be, bi) = (load(b, &alpha), load(b, &beta), load(b, &bias));
        let fa = b.bind(&format!("arith.mulf {al}, {scale} : {f_vec}"));
        let fb = b.bind(&format!("arith.mulf {be}, {scale} : {f_vec}"));
        let ys: Vec<String> = (0..rows)
            .map(|r| {
                let a = b.bind(&format!(
                    "arith.sitofp {outer_res}#{} : {acc_vec} to {f_vec}",
                    r * vecs + v
                ));
                let t = b.bind(&format!("arith.mulf {fa}, {a} : {f_vec}"));
                let u = b.bind(&format!("arith.mulf {fb}, {} : {f_vec}", sums[r]));
                let t = b.bind(&format!("arith.addf {t}, {u} : {f_vec}"));
                let y = b.bind(&format!("arith.addf {t}, {bi} : {f_vec}"));
                if e.relu {
                    let neg = b.bind(&format!("arith.cmpf olt, {y}, {fzero} : {f_vec}"));
                    b.bind(&format!(
                        "arith.select {neg}, {fzero}, {y} : vector<16xi1>, {f_vec}"
                    ))
                } else {
                    y
                }
            })
            .collect();
        // Output m0 + i of the tile's positions: lane i of every row, one run of `rows`.
        let runs = transpose(b, &ys);
        for (i, run) in runs.iter().enumerate() {
            let m = b.bind(&format!("arith.addi {m0}, {} : index", lane_ix[i]));
            let store =
                format!("vector.store {run}, {out}[{m}, {p0}] : {out_mem}, vector<{rows}xf32>");
            // Outputs past `m_real` are padding (a partial vector, or a whole vector of a
            // tile of several): only stores inside the output run unguarded.
            if m_real == d.m {
                b.line(&store);
            } else {
                let inside = b.bind(&format!("arith.cmpi ult, {m}, {m_lim} : index"));
                b.line(&format!("scf.if {inside} {{"));
                b.line(&format!("  {store}"));
                b.line("}");
            }
        }
    }
    b.indent -= 1;
    b.line("}");
    b.indent -= 1;
    b.line("}");
    b.bind(&format!(
        "bufferization.to_tensor {out} restrict writable : {out_mem} to {}",
        tensor(&[m_real, d.p], Elem::F32)
    ))
}

/// `rows` vectors of 16 lanes as 16 vectors of `rows` (lane `i` of each, in row order),
/// by shuffles: interleave pairs of rows, then pairs of pairs.
fn transpose(b: &mut Body, ys: &[String]) -> Vec<String> {
    let f = |n: usize| format!("vector<{n}xf32>");
    let rows = ys.len();
    let all = match rows {
        1 => ys[0].clone(),
        4 => {
            let zip = |b: &mut Body, x: &str, y: &str| {
                let idx: Vec<String> = (0..LANES)
                    .flat_map(|i| [i.to_string(), (i + LANES).to_string()])
                    .collect();
                b.bind(&format!(
                    "vector.shuffle {x}, {y} [{}] : {}, {}",
                    idx.join(", "),
                    f(LANES),
                    f(LANES)
                ))
            };
            let (t01, t23) = (zip(b, &ys[0], &ys[1]), zip(b, &ys[2], &ys[3]));
            let idx: Vec<String> = (0..LANES)
                .flat_map(|i| {
                    [2 * i, 2 * i + 1, 2 * LANES + 2 * i, 2 * LANES + 2 * i + 1]
                        .map(|j| j.to_string())
                })
                .collect();
            b.bind(&format!(
                "vector.shuffle {t01}, {t23} [{}] : {}, {}",
                idx.join(", "),
                f(2 * LANES),
                f(2 * LANES)
            ))
        }
        _ => unreachable!("tiles have 1 or 4 rows"),
    };
    (0..LANES)
        .map(|i| {
            if rows == 1 {
                let s = b.bind(&format!("vector.extract {all}[{i}] : f32 from {}", f(LANES)));
                b.bind(&format!("vector.broadcast {s} : f32 to {}", f(1)))
            } else {
                b.bind(&format!(
                    "vector.extract_strided_slice {all} {{offsets = [{}], sizes = [{rows}], strides = [1]}} : {} to {}",
                    i * rows,
                    f(rows * LANES),
                    f(rows)
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_round_to_tiles_and_pairs() {
        let w = Windows::linear();
        let d = Dims::new((197, 9, 10), 9, w, Tile { rows: 4, vecs: 2 });
        assert_eq!((d.p, d.c, d.m), (197, 10, 32));
        let d = Dims::new((1, 3136, 128), 3136, w, Tile { rows: 1, vecs: 4 });
        assert_eq!((d.p, d.c, d.m), (1, 3136, 128));
        let d = Dims::new((0, 0, 0), 0, w, Tile { rows: 1, vecs: 1 });
        assert_eq!((d.p, d.c, d.m), (1, 2, 16));
    }

    /// The text of a product with `m_real` outputs in tiles of 2 weight vectors.
    fn product_text(m_real: usize) -> String {
        let mut b = Body::new(0);
        let d = Dims::new(
            (4, 8, m_real),
            8,
            Windows::linear(),
            Tile { rows: 1, vecs: 2 },
        );
        let e = Epilogue {
            scale: "%s",
            alpha: "%a",
            beta: "%b",
            bias: "%c",
            usum: "%u",
            relu: false,
        };
        product(&mut b, ("%x", "%w", "%sh"), &e, &d, m_real);
        b.text
    }

    #[test]
    fn stores_past_the_outputs_are_guarded() {
        // 48 outputs in tiles of 32: the fourth vector of 16 is padding, and its stores
        // must not run (they once did, past the end of the output buffer, when the count
        // was a multiple of 16).
        for m_real in [48, 40] {
            let t = product_text(m_real);
            assert!(t.contains("arith.cmpi ult"), "{m_real}: unguarded stores");
        }
        assert!(!product_text(64).contains("arith.cmpi ult"));
    }

    #[test]
    fn pack_puts_channel_pairs_of_one_output_and_tap_side_by_side() {
        // 17 outputs × 3 channels × 2 taps: two blocks of 16 outputs, two channel pairs
        // per tap (the fourth channel padding).
        let (m, c, taps) = (17, 3, 2);
        let codes: Vec<i8> = (0..(m * c * taps) as i32)
            .map(|i| (i % 200 - 100) as i8)
            .collect();
        let w = Windows {
            taps: [1, 2],
            ..Windows::linear()
        };
        let d = Dims::new((1, c, m), 0, w, Tile { rows: 1, vecs: 1 });
        let p = pack(&codes, m, c, &d);
        assert_eq!(p.len(), 32 * 2 * 4);
        let at = |blk: usize, step: usize, lane: usize, j: usize| {
            p[(blk * 4 + step) * 32 + 2 * lane + j]
        };
        for r in 0..m {
            for ch in 0..c {
                for t in 0..taps {
                    let want = codes[(r * c + ch) * taps + t];
                    assert_eq!(at(r / 16, t * 2 + ch / 2, r % 16, ch % 2), want);
                }
            }
            for t in 0..taps {
                assert_eq!(at(r / 16, t * 2 + 1, r % 16, 1), 0, "channel 3 is padding");
            }
        }
        for lane in 1..16 {
            for step in 0..4 {
                assert_eq!((at(1, step, lane, 0), at(1, step, lane, 1)), (0, 0));
            }
        }
    }
}
