//! The integer product behind convolutions and linear layers, tiled and vectorised here
//! rather than left to LLVM's loop vectoriser (which cannot keep a `linalg` reduction's
//! accumulator in a register when it cannot prove the buffers apart):
//!
//! `acc[p, m] = Σ_tap Σ_c x[base(p) + off(tap) + c] · (w[m, tap, c] >> sh)`
//!
//! `x` is the layer's input as activation codes, channels last and padded (a convolution's
//! padded `[H, W, C]` map, a linear layer's vector); `base(p)` is where output position
//! `p`'s window starts and `off(tap)` where each kernel tap sits in it, so the convolution
//! reads its windows in place (no patch matrix). `w` holds the stored `i8` codes packed
//! `[M/16][taps · C/G][16][G]`: for 16 outputs, each group of `G` channels side by side.
//! Two forms ([`Dot`]):
//! - `Pairs` (`G` = 2, centred `i16` codes, padding 0): one step multiplies a broadcast pair
//!   `(x[c], x[c+1])` with 16 weight pairs in `i32` and adds the even and odd products —
//!   the `pmaddwd` pattern, which LLVM selects as `vpmaddwd` (AVX2), `vpdpwssd` (AVX-512
//!   VNNI) or widening multiply-adds elsewhere;
//! - `Vnni` (`G` = 4, codes offset to `u + o` as `u8`, padding `o`): `vpdpbusd` adds four
//!   `u8 × s8` products per lane, and the epilogue subtracts `o · Σ w` ([`code_sums`]).
//!
//! Every product and sum is exact in `i32` (codes of at most 8 planes, activation codes of
//! at most 16 bits, or 8 for `Vnni`), so the result equals the runtime's accumulator bit
//! for bit, in any order.
//!
//! Each tile keeps `rows × vecs` accumulators of 16 lanes in registers across the whole
//! reduction and loads each packed weight vector once for its `rows` positions.

use crate::body::Body;
use crate::text::{tensor, Elem};
use crate::Dot;

/// Outputs per weight vector.
pub(crate) const LANES: usize = 16;

/// The function around AVX-512 VNNI's `vpdpbusd` ([`vnni_helper`]), after the prefix.
const VPDPBUSD: &str = "vpdpbusd";

/// Memory effects of a call that touches no memory: the buffer deallocation pass refuses
/// operations whose effects it cannot see (an intrinsic call among them).
const NO_MEMORY: &str = "#llvm.memory_effects<other = none, argMem = none, inaccessibleMem = none, errnoMem = none, targetMem0 = none, targetMem1 = none>";

/// The module-level definition the [`Dot::Vnni`] kernels call, `PREFIX_vpdpbusd`:
/// `acc + Σ₄ u8 · s8` per lane. A function (which LLVM inlines) rather than the intrinsic
/// inline, so that the call can carry its memory effects; external like every function of
/// the module (the execution engine looks each one up), hence the prefix.
pub(crate) fn vnni_helper(prefix: &str) -> String {
    format!(
        "  llvm.func @{prefix}_{VPDPBUSD}(%acc: vector<16xi32>, %a: vector<64xi8>, %b: vector<64xi8>) -> vector<16xi32> attributes {{memory_effects = {NO_MEMORY}}} {{\n    \
         %r = llvm.call_intrinsic \"llvm.x86.avx512.vpdpbusd.512\"(%acc, %a, %b) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>\n    \
         llvm.return %r : vector<16xi32>\n  }}\n"
    )
}

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
    pub dot: Dot,
}

impl Dims {
    /// `c` is the layer's channel count; `x_len` the input map's length in elements.
    pub(crate) fn new(
        (p, c, m): (usize, usize, usize),
        x_len: usize,
        windows: Windows,
        tile: Tile,
        dot: Dot,
    ) -> Dims {
        let round = |x: usize, to: usize| x.max(1).div_ceil(to) * to;
        Dims {
            p: p.max(1),
            c: round(c, group(dot)),
            m: round(m, LANES * tile.vecs),
            x_len,
            windows,
            tile,
            dot,
        }
    }

    /// Channels multiplied by one instruction per output lane.
    fn group(&self) -> usize {
        group(self.dot)
    }

    /// The packed codes' shape: `[M/16, taps · C/G, 16 · G]` (`G` channels a group).
    pub(crate) fn w_dims(&self) -> [usize; 3] {
        let [kh, kw] = self.windows.taps;
        let g = self.group();
        [self.m / LANES, kh * kw * self.c / g, g * LANES]
    }

    /// The input map's element type: centred `i16` codes, or `u8` codes offset by the
    /// count's zero point minus its lowest code ([`Dot::Vnni`]).
    pub(crate) fn x_elem(&self) -> Elem {
        match self.dot {
            Dot::Pairs => Elem::I16,
            Dot::Vnni => Elem::I8,
        }
    }
}

/// Channels per product group: pairs for `pmaddwd`, quads for `vpdpbusd`.
pub(crate) fn group(dot: Dot) -> usize {
    match dot {
        Dot::Pairs => 2,
        Dot::Vnni => 4,
    }
}

/// `codes` (`[m, c, kh, kw]` row-major, as stored) in the kernel's layout
/// `[M/16][(kh · KW + kw) · C/G + c/G][16][G]`, zero padded.
pub(crate) fn pack(codes: &[i8], m: usize, c: usize, d: &Dims) -> Vec<i8> {
    let [kh, kw] = d.windows.taps;
    let (taps, g) = (kh * kw, d.group());
    let steps = taps * d.c / g;
    let mut out = vec![0i8; d.m * taps * d.c];
    for r in 0..m {
        let (blk, lane) = (r / LANES, r % LANES);
        for ch in 0..c {
            for t in 0..taps {
                let step = t * d.c / g + ch / g;
                out[(blk * steps + step) * g * LANES + g * lane + ch % g] =
                    codes[(r * c + ch) * taps + t];
            }
        }
    }
    out
}

/// Per side-table row `j` and output `m`, the sum of the codes shifted to that row's count
/// (`Σ_k w[m, k] >> (K − count_j)`, padding outputs 0): with [`Dot::Vnni`] the kernel
/// multiplies offset codes `u + o`, and `acc = Σ w·(u + o) − o · wsum`.
pub(crate) fn code_sums(codes: &[i8], m: usize, k: u8, counts: &[u8], d: &Dims) -> Vec<i32> {
    let row_len = codes.len() / m.max(1);
    let mut out = vec![0i32; counts.len() * d.m];
    for (j, &count) in counts.iter().enumerate() {
        let sh = u32::from(k.saturating_sub(count));
        for r in 0..m {
            out[j * d.m + r] = codes[r * row_len..(r + 1) * row_len]
                .iter()
                .map(|&q| i32::from(q) >> sh)
                .sum();
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
    /// [`Dot::Vnni`]: the codes' offset `o` (an `i32` value) and the shifted code sums of
    /// this count (a `tensor<M_pad x i32>` value, [`code_sums`]).
    pub offset: Option<(&'a str, &'a str)>,
}

/// Emits the layer: the product of `x` (a `tensor<x_len x T>` value, `T` of
/// [`Dims::x_elem`]) and the packed codes `w` (a value of [`Dims::w_dims`] `i8`) shifted
/// down by `sh` (an `i8` value), and the epilogue. Returns `tensor<M x P x f32>` — channels first, as the layer's output —
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
    let xe = d.x_elem();
    let g = d.group();
    let (x_mem, w_mem) = (
        format!("memref<{}x{}>", d.x_len, xe.name()),
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
    let xm = buffer(b, x, tensor(&[d.x_len], xe), &x_mem);
    let w_ty = tensor(&wd, Elem::I8);
    let wsum = e.offset.map(|(o, sums)| {
        let m = buffer(
            b,
            sums,
            tensor(&[d.m], Elem::I32),
            &format!("memref<{}xi32>", d.m),
        );
        (o, m)
    });
    let row_ty = tensor(&[d.m], Elem::F32);
    let [alpha, beta, bias] =
        [e.alpha, e.beta, e.bias].map(|v| buffer(b, v, row_ty.clone(), &row_mem));
    let usum = buffer(b, e.usum, tensor(&[d.p], Elem::I32), &usum_mem);
    let out = b.bind(&format!(
        "memref.alloc() {{alignment = 64 : i64}} : {out_mem}"
    ));
    let w_vec = format!("vector<{}xi8>", g * LANES);
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
    let (c0, c1, lanes) = (b.index(0), b.index(1), b.index(LANES));
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
    let (kw_steps, c_end) = (b.index(win.taps[1] * d.c / g), b.index(d.c / g));
    let group_ix = b.index(g);

    // The loop nest over the codes in `wm`, writing `out`. Vnni emits it twice: the codes
    // shift once per call (x86 has no byte shift to put in the loop), into a buffer of
    // the branch that needs it, and not at all at the stored count (a branch yielding
    // either tensor would leave the deallocation pass a buffer of unknown ownership).
    let loops = |b: &mut Body, wm: &str| {
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
        let loop_head = |b: &mut Body,
                         iv: &str,
                         end: &str,
                         init: &[String]|
         -> (Vec<String>, String) {
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
        // The weight vectors of this step (Pairs: shifted to the run-time count and widened).
        let step = b.bind(&format!("arith.addi {tap_step}, {cp} : index"));
        let mut weights = Vec::with_capacity(vecs);
        for blk in &blks {
            let w8 = b.bind(&format!(
                "vector.load {wm}[{blk}, {step}, {c0}] : {w_mem}, {w_vec}"
            ));
            weights.push(match d.dot {
                Dot::Pairs => {
                    let w16 = b.bind(&format!("arith.extsi {w8} : {w_vec} to {v16}"));
                    let ws = b.bind(&format!("arith.shrsi {w16}, {shv} : {v16}"));
                    b.bind(&format!("arith.extsi {ws} : {v16} to {v32}"))
                }
                Dot::Vnni => w8,
            });
        }
        let cg = b.bind(&format!("arith.muli {cp}, {group_ix} : index"));
        let within = b.bind(&format!("arith.addi {tap_off}, {cg} : index"));
        let even: Vec<String> = (0..LANES).map(|i| (2 * i).to_string()).collect();
        let odd: Vec<String> = (0..LANES).map(|i| (2 * i + 1).to_string()).collect();
        let x_group = format!("vector<{g}x{}>", xe.name());
        let mut next = Vec::with_capacity(n);
        for (r, base) in bases.iter().enumerate() {
            // The group (x[c], …, x[c+G−1]) of this row's window in every 32-bit lane.
            let at = b.bind(&format!("arith.addi {base}, {within} : index"));
            let grp = b.bind(&format!("vector.load {xm}[{at}] : {x_mem}, {x_group}"));
            let g32 = b.bind(&format!(
                "vector.bitcast {grp} : {x_group} to vector<1xi32>"
            ));
            let s = b.bind(&format!("vector.extract {g32}[0] : i32 from vector<1xi32>"));
            let bc = b.bind(&format!("vector.broadcast {s} : i32 to {acc_vec}"));
            match d.dot {
                Dot::Pairs => {
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
                Dot::Vnni => {
                    let b8 = b.bind(&format!("vector.bitcast {bc} : {acc_vec} to {w_vec}"));
                    for (v, we) in weights.iter().enumerate() {
                        next.push(b.bind(&format!(
                            "llvm.call @{}_{VPDPBUSD}({}, {b8}, {we}) {{memory_effects = {NO_MEMORY}}} : ({acc_vec}, {w_vec}, {w_vec}) -> {acc_vec}",
                            b.prefix,
                            accs[r * vecs + v]
                        )));
                    }
                }
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
            let load = |b: &mut Body, t: &str| {
                b.bind(&format!("vector.load {t}[{m0}] : {row_mem}, {f_vec}"))
            };
            let (al, be, bi) = (load(b, &alpha), load(b, &beta), load(b, &bias));
            let fa = b.bind(&format!("arith.mulf {al}, {scale} : {f_vec}"));
            let fb = b.bind(&format!("arith.mulf {be}, {scale} : {f_vec}"));
            // Vnni: acc = Σ w·(u + o) − o · Σ w.
            let correction = wsum.as_ref().map(|(o, sums)| {
                let s = b.bind(&format!(
                    "vector.load {sums}[{m0}] : memref<{}xi32>, {acc_vec}",
                    d.m
                ));
                let ov = b.bind(&format!("vector.broadcast {o} : i32 to {acc_vec}"));
                b.bind(&format!("arith.muli {s}, {ov} : {acc_vec}"))
            });
            let ys: Vec<String> = (0..rows)
                .map(|r| {
                    let acc = format!("{outer_res}#{}", r * vecs + v);
                    let acc = match &correction {
                        Some(c) => b.bind(&format!("arith.subi {acc}, {c} : {acc_vec}")),
                        None => acc,
                    };
                    let a = b.bind(&format!("arith.sitofp {acc} : {acc_vec} to {f_vec}"));
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
    };
    match d.dot {
        Dot::Pairs => {
            let wm = buffer(b, w, w_ty, &w_mem);
            loops(b, &wm);
        }
        Dot::Vnni => {
            let zero = b.constant("0", "i8");
            let stored = b.bind(&format!("arith.cmpi eq, {sh}, {zero} : i8"));
            b.line(&format!("scf.if {stored} {{"));
            b.indent += 1;
            let wm = buffer(b, w, w_ty.clone(), &w_mem);
            loops(b, &wm);
            b.indent -= 1;
            b.line("} else {");
            b.indent += 1;
            let ws = shifted(b, w, sh, &wd);
            let wm = buffer(b, &ws, w_ty, &w_mem);
            loops(b, &wm);
            b.indent -= 1;
            b.line("}");
        }
    }
    b.bind(&format!(
        "bufferization.to_tensor {out} restrict writable : {out_mem} to {}",
        tensor(&[m_real, d.p], Elem::F32)
    ))
}

/// The packed codes `w` shifted down by `sh`, element by element.
fn shifted(b: &mut Body, w: &str, sh: &str, dims: &[usize; 3]) -> String {
    let ty = tensor(dims, Elem::I8);
    let empty = b.empty(dims, Elem::I8);
    let all = crate::text::identity(3);
    b.generic(
        &["parallel"; 3],
        &[crate::body::Operand::new(w, ty.clone(), all.clone())],
        crate::body::Operand::new(&empty, ty, all),
        Elem::I8,
        &[Elem::I8],
        |r, g| r.bind(&format!("arith.shrsi {}, {sh} : i8", g[0])),
    )
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
        let t = |rows, vecs| Tile { rows, vecs };
        let d = Dims::new((197, 9, 10), 9, w, t(4, 2), Dot::Pairs);
        assert_eq!((d.p, d.c, d.m), (197, 10, 32));
        assert_eq!(d.w_dims(), [2, 5, 32]);
        let d = Dims::new((197, 9, 10), 9, w, t(4, 2), Dot::Vnni);
        assert_eq!((d.c, d.w_dims()), (12, [2, 3, 64]));
        let d = Dims::new((1, 3136, 128), 3136, w, t(1, 4), Dot::Pairs);
        assert_eq!((d.p, d.c, d.m), (1, 3136, 128));
        let d = Dims::new((0, 0, 0), 0, w, t(1, 1), Dot::Pairs);
        assert_eq!((d.p, d.c, d.m), (1, 2, 16));
    }

    /// The text of a product with `m_real` outputs in tiles of 2 weight vectors.
    fn product_text(m_real: usize, dot: Dot) -> String {
        let mut b = Body::new(0);
        let d = Dims::new(
            (4, 8, m_real),
            8,
            Windows::linear(),
            Tile { rows: 1, vecs: 2 },
            dot,
        );
        let e = Epilogue {
            scale: "%s",
            alpha: "%a",
            beta: "%b",
            bias: "%c",
            usum: "%u",
            relu: false,
            offset: (dot == Dot::Vnni).then_some(("%o", "%sums")),
        };
        product(&mut b, ("%x", "%w", "%sh"), &e, &d, m_real);
        b.text
    }

    #[test]
    fn stores_past_the_outputs_are_guarded() {
        // 48 outputs in tiles of 32: the fourth vector of 16 is padding, and its stores
        // must not run (they once did, past the end of the output buffer, when the count
        // was a multiple of 16).
        for dot in [Dot::Pairs, Dot::Vnni] {
            for m_real in [48, 40] {
                let t = product_text(m_real, dot);
                assert!(t.contains("arith.cmpi ult"), "{m_real}: unguarded stores");
            }
            assert!(!product_text(64, dot).contains("arith.cmpi ult"));
        }
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
        let d = Dims::new((1, c, m), 0, w, Tile { rows: 1, vecs: 1 }, Dot::Pairs);
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

    #[test]
    fn vnni_packs_quads_and_sums_the_shifted_codes_of_every_count() {
        // 3 outputs × 5 channels × 1 tap: two quads of channels (the last three padding).
        let (m, c) = (3, 5);
        let codes: Vec<i8> = vec![-128, 127, -1, 0, 5, 64, -64, 3, -3, 1, 7, -7, 100, -100, 2];
        let w = Windows::linear();
        let d = Dims::new((1, c, m), 8, w, Tile { rows: 1, vecs: 1 }, Dot::Vnni);
        let p = pack(&codes, m, c, &d);
        assert_eq!(p.len(), 64 * 2);
        for r in 0..m {
            for ch in 0..8 {
                let got = p[(ch / 4) * 64 + 4 * r + ch % 4];
                assert_eq!(got, if ch < c { codes[r * c + ch] } else { 0 });
            }
        }
        // Counts 8, 5, 2 of an 8-plane layer: shifts 0, 3, 6 (floor, like the runtime).
        let sums = code_sums(&codes, m, 8, &[2, 5, 8], &d);
        assert_eq!(sums.len(), 3 * 16);
        for (j, sh) in [(0, 6), (1, 3), (2, 0)] {
            for r in 0..m {
                let want: i32 = codes[r * c..(r + 1) * c]
                    .iter()
                    .map(|&q| i32::from(q) >> sh)
                    .sum();
                assert_eq!(sums[j * 16 + r], want, "row {j} output {r}");
            }
            assert!(sums[j * 16 + m..(j + 1) * 16].iter().all(|&s| s == 0));
        }
        assert_eq!(sums[2 * 16], -128 + 127 - 1 + 5);
        // -128 >> 6, 127 >> 6, -1 >> 6 (floor); 0 and 5 shift to 0.
        assert_eq!(sums[0], -2 + 1 - 1);
    }
}
