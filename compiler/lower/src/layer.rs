//! One bit-plane layer lowered at its plane count: the validated view from
//! [`Bitplane::resolve`] for every plane count it keeps, its geometry, and its weights in the
//! chosen layout with the scratch its kernel needs.

use strata_ir::ops::bitplane::{Bitplane, BitplaneKernel};
use strata_ir::quant::{ResolveError, ResolvedLayer};
use strata_ir::{Op, Tensor};

use crate::error::unsupported;
use crate::{CodeBits, ConvGeometry, LowerError, Scratch, WeightLayout, Window2d};

/// Convolutions with fewer input channels per group than this use im2col on the code layout:
/// channel pairs would otherwise be mostly zero padding.
const COL_BELOW_CHANNELS: usize = 8;

/// Largest `|u| = |x_q − zero|` of 8-bit activations (`2^7 + 2^8`), and `|q_k|` of 8-bit
/// codes: the bounds the kernels' int32 sums are sized by.
const MAX_U: usize = 384;
const MAX_Q: usize = 128;

/// A bit-plane layer as a backend emits it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The node name.
    pub node: String,
    /// The op's mnemonic (`bitplane_conv`, `bitplane_linear`).
    pub op: &'static str,
    /// The plane count it keeps and runs at by default.
    pub k: u8,
    /// The plane counts `≤ k` with a side table, ascending: what it can run at.
    pub counts: Vec<u8>,
    /// `R` output channels, `K` reduction length.
    pub rows: usize,
    pub cols: usize,
    /// Side tables, one row per count: `alpha`, `beta`, `bias` (`[counts, rows]`) and `act`
    /// (`[counts, 2]`: scale, zero point).
    pub alpha: Vec<f32>,
    pub beta: Vec<f32>,
    pub bias: Vec<f32>,
    pub act: Vec<f32>,
    /// Per count (parallel to `counts`), the activation code range `(-2^(A-1), 2^(A-1) - 1)`
    /// of that count's width `A`: a `W k A k` layer run at another count by
    /// `PREFIX_run_planes` must clamp to that count's range, not the default one's.
    pub act_limits: Vec<(f32, f32)>,
    /// The convolution's geometry; `None` for a linear layer.
    pub conv: Option<ConvGeometry>,
    pub weights: Weights,
}

/// A layer's weights in its layout.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// Planes `0..k` exactly as stored: `[k, rows, words_per_row]` little-endian `u64` words.
    Planes {
        bytes: Vec<u8>,
        words_per_row: usize,
    },
    Codes(CodeBlocks),
}

/// The `k`-plane codes in blocks of 16 output channels × 2 input channels per kernel tap:
/// `[group][row_blocks][taps][channel_pairs][16][2]`, zero padded, each 32-code chunk (one
/// tap and channel pair of a block) packed at [`CodeBlocks::bits`] bits a code.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeBlocks {
    /// The packed chunks, `4 · bits` bytes each (bytes as `i8`; at 8 bits, the codes).
    pub codes: Vec<i8>,
    /// Bits a code is stored in ([`CodeBits`]): the fewest of 2, 4 and 8 that hold `k`
    /// planes, or `k` itself. Below 8 bits a chunk holds offset-binary fields, split into
    /// 4-, 2- and 1-bit parts (`pack_block`): one shift and mask per group of codes unpacks
    /// a part.
    pub bits: u8,
    /// 16-row blocks per group.
    pub row_blocks: usize,
    /// Kernel taps per block row (1 for linear layers and im2col convolutions).
    pub taps: usize,
    /// Input channel pairs per tap.
    pub channel_pairs: usize,
    /// Offset of each tap in the padded input, in pixels.
    pub tap_offsets: Vec<usize>,
    /// Convolutions: the padded input the kernel reads.
    pub padded: Option<PaddedInput>,
    /// `[counts][rows]`: each row's sum of its codes at each plane count (`Σ_c q_K >> (K −
    /// k)`). Kernels that feed the activations as `u + d` (unsigned bytes for `u8 × s8`
    /// products) subtract `d · Σ q_k` to get back the exact `Σ q_k · u`.
    pub row_sums: Vec<i32>,
}

/// The zero-padded input of a code-layout convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaddedInput {
    pub height: usize,
    pub width: usize,
    /// The receptive fields are gathered (im2col) instead of read through tap offsets.
    pub im2col: bool,
}

impl Layer {
    /// Its constant data: the weights (with tap offsets) and the side tables of every count.
    pub fn weight_bytes(&self) -> u64 {
        let weights = match &self.weights {
            Weights::Planes { bytes, .. } => bytes.len(),
            Weights::Codes(c) => c.codes.len() + 4 * (c.tap_offsets.len() + c.row_sums.len()),
        };
        let n = self.counts.len();
        (weights + 4 * (3 * self.rows + 4) * n + n) as u64
    }
}

/// A layer with what it adds to the program's totals.
pub(crate) struct LayerLowering {
    pub layer: Layer,
    pub scratch: Scratch,
}

/// Lowers bit-plane node `node` at `k` planes: `weights` are its constant inputs (planes,
/// alpha, beta, bias, act), `x` and `y` the batch-1 input and output shapes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_layer(
    b: &Bitplane,
    node: &str,
    op: &Op,
    weights: &[&Tensor],
    k: u8,
    x: &[usize],
    y: &[usize],
    layout: WeightLayout,
    code_bits_mode: CodeBits,
) -> Result<LayerLowering, LowerError> {
    let spec = &b.spec;
    let resolve_err = |e: ResolveError| match e {
        ResolveError::NoSideTable { k, .. }
        | ResolveError::PlanesUnavailable { k, .. }
        | ResolveError::Activation { k, .. } => LowerError::Planes {
            node: node.to_string(),
            planes: k,
            reason: e.to_string(),
        },
        ResolveError::Spec(_)
        | ResolveError::Arity { .. }
        | ResolveError::DType { .. }
        | ResolveError::SideTable { .. }
        | ResolveError::Layout(_) => unsupported(node, op, e.to_string()),
    };
    let layer = b.resolve(weights, k).map_err(resolve_err)?;
    let (rows, cols) = (spec.rows, spec.cols);
    // Each plane's partial sum Σ bit·u is kept in int32.
    if cols > (i32::MAX as usize) / MAX_U {
        return Err(unsupported(
            node,
            op,
            format!("{cols} columns overflow int32 sums"),
        ));
    }
    // The side tables of every plane count up to `k`, each validated.
    let tables = spec
        .plane_counts
        .iter()
        .filter(|&&c| c <= k)
        .map(|&c| b.resolve(weights, c).map_err(resolve_err))
        .collect::<Result<Vec<_>, _>>()?;
    let rows_of = |f: &dyn Fn(&ResolvedLayer) -> Vec<f32>| -> Vec<f32> {
        tables.iter().flat_map(f).collect()
    };
    let conv = match &b.kernel {
        BitplaneKernel::Linear => None,
        BitplaneKernel::Conv(c) => {
            Some(ConvGeometry::new(c, x, y).map_err(|reason| unsupported(node, op, reason))?)
        }
    };
    let (weights, scratch) = match layout {
        WeightLayout::Planes => {
            let input = match &conv {
                Some(_) => x.iter().product(),
                None => cols,
            };
            let scratch = Scratch {
                input,
                column: if conv.is_some() { cols } else { 0 },
                ..Scratch::default()
            };
            let words_per_row = strata_ir::quant::row_bytes(cols) / 8;
            let bytes = layer.planes.to_vec();
            (
                Weights::Planes {
                    bytes,
                    words_per_row,
                },
                scratch,
            )
        }
        WeightLayout::Codes => {
            // The codes' exact dot products are kept in int32.
            if cols > (i32::MAX as usize) / (MAX_Q * MAX_U) {
                return Err(unsupported(
                    node,
                    op,
                    format!("{cols} columns overflow int32 sums"),
                ));
            }
            let codes = layer
                .codes()
                .map_err(|e| unsupported(node, op, format!("planes: {e}")))?;
            let (mut blocks, scratch) =
                code_blocks(&codes, k, code_bits_mode, rows, cols, conv.as_ref());
            blocks.row_sums = tables
                .iter()
                .flat_map(|t| {
                    let shift = k - t.k;
                    // |Σ q_k| <= cols · 128 fits: cols was checked against MAX_Q · MAX_U.
                    codes
                        .chunks_exact(cols)
                        .map(move |row| row.iter().map(|&q| q >> shift).sum::<i32>())
                })
                .collect();
            (Weights::Codes(blocks), scratch)
        }
    };
    let act = |t: &ResolvedLayer| {
        let q = t.act.params();
        vec![q.scale, q.zero]
    };
    Ok(LayerLowering {
        layer: Layer {
            node: node.to_string(),
            op: op.mnemonic(),
            k,
            counts: tables.iter().map(|t| t.k).collect(),
            rows,
            cols,
            alpha: rows_of(&|t| t.alpha.to_vec()),
            beta: rows_of(&|t| t.beta.to_vec()),
            bias: rows_of(&|t| t.bias.to_vec()),
            act: rows_of(&act),
            act_limits: tables.iter().map(|t| t.act.limits()).collect(),
            conv,
            weights,
        },
        scratch,
    })
}

/// The codes `[rows, cols]` (ONNX `OIHW` columns) in the blocked layout of [`CodeBlocks`],
/// with the tap offsets, padded input and scratch of the kernel that reads them.
fn code_blocks(
    codes: &[i32],
    k: u8,
    mode: CodeBits,
    rows: usize,
    cols: usize,
    conv: Option<&ConvGeometry>,
) -> (CodeBlocks, Scratch) {
    // Layers with few channels per group use im2col (one "tap" holding C/group·kh·kw
    // channels).
    let im2col = conv.is_some_and(|g| g.group_channels() < COL_BELOW_CHANNELS);
    let (group, taps) = match conv {
        Some(g) if !im2col => (g.group, g.window.kernel[0] * g.window.kernel[1]),
        Some(g) => (g.group, 1),
        None => (1, 1),
    };
    let mg = rows / group;
    let cg = cols / taps;
    let mb = mg.div_ceil(16);
    let cpairs = cg.div_ceil(2);
    let mut w = vec![0i8; group * mb * taps * cpairs * 32];
    for gi in 0..group {
        for m in 0..mg {
            let (b, rr) = (m / 16, m % 16);
            let row = &codes[(gi * mg + m) * cols..(gi * mg + m + 1) * cols];
            for ci in 0..cg {
                for t in 0..taps {
                    let at =
                        ((((gi * mb + b) * taps + t) * cpairs + ci / 2) * 16 + rr) * 2 + ci % 2;
                    // |q_k| <= 128 and q_k >= -128: the codes are int8.
                    w[at] = row[ci * taps + t] as i8;
                }
            }
        }
    }
    let pair_channels = 2 * cpairs;
    let mut scratch = Scratch {
        rows,
        ..Scratch::default()
    };
    let (tap_offsets, padded) = match conv {
        Some(g) => {
            let Window2d {
                input: [c, h, w],
                output: [oh, ow],
                kernel: [kh, kw],
                strides: [sh, sw],
                dilations: [dh, dw],
            } = g.window;
            let hp = (h + g.pads[0]).max((oh.max(1) - 1) * sh + (kh - 1) * dh + 1);
            let wp = (w + g.pads[1]).max((ow.max(1) - 1) * sw + (kw - 1) * dw + 1);
            let offsets: Vec<usize> = if im2col {
                vec![0]
            } else {
                (0..kh)
                    .flat_map(|a| (0..kw).map(move |bb| a * dh * wp + bb * dw))
                    .collect()
            };
            scratch.quantized = c * h * w;
            if im2col {
                scratch.padded = g.positions() * pair_channels;
            } else {
                scratch.padded = hp * wp * pair_channels * group;
                scratch.pixel_sums = hp * wp;
            }
            scratch.position_sums = g.positions();
            let padded = PaddedInput {
                height: hp,
                width: wp,
                im2col,
            };
            (offsets, Some(padded))
        }
        None => {
            scratch.padded = pair_channels;
            (vec![0], None)
        }
    };
    let bits = code_bits(k, mode, conv.is_none());
    // Every convolution may run below K at run time (`run_planes`): its tiles then read one
    // block of codes shifted to k planes, prepared once per call like a packed block.
    if conv.is_some() {
        scratch.unpacked = taps * cpairs * 32;
    }
    let blocks = CodeBlocks {
        codes: if bits == 8 {
            w
        } else {
            w.chunks_exact(32 * taps * cpairs)
                .flat_map(|b| pack_block(b, bits))
                .collect()
        },
        bits,
        row_blocks: mb,
        taps,
        channel_pairs: cpairs,
        tap_offsets,
        padded,
        row_sums: Vec::new(),
    };
    (blocks, scratch)
}

/// Bits a stored `k`-plane code takes in the code layout ([`CodeBits`]), in a fully
/// connected layer (`linear`) or a convolution.
pub(crate) fn code_bits(k: u8, mode: CodeBits, linear: bool) -> u8 {
    match (mode, k) {
        (CodeBits::Exact, _) => k.clamp(2, 8),
        (CodeBits::Stream, 5..=6) if linear => k,
        (CodeBits::Stream, _) => code_bits(k, CodeBits::Fast, linear),
        (CodeBits::Fast, 0..=2) => 2,
        (CodeBits::Fast, 3..=4) => 4,
        (CodeBits::Fast, _) => 8,
    }
}

/// The parts a chunk of `bits`-bit codes is stored in, most significant first: the widths 4,
/// 2 and 1 whose sum is `bits` (a 6-bit code is a 4-bit and a 2-bit field). Each part is a
/// whole field array that one shift and mask per group of codes unpacks, so every width is
/// read with the 4-, 2- and 1-bit decoders alone. 8-bit codes are stored whole.
pub(crate) fn code_parts(bits: u8) -> &'static [u8] {
    match bits {
        2 => &[2],
        3 => &[2, 1],
        4 => &[4],
        5 => &[4, 1],
        6 => &[4, 2],
        7 => &[4, 2, 1],
        _ => &[8],
    }
}

/// One 32-code chunk at `bits` bits a code (`4 · bits` bytes), in offset binary below 8 bits:
/// the stored value is `f = q + 2^(bits−1)`, never negative. `f` is split into the fields of
/// [`code_parts`], most significant first; a part of width `w` takes `4 · w` bytes, and its
/// byte `i` holds, from its low bits up, the fields of codes `i + j · 32/n` at bits `j · w`
/// (`n = 8 / w` fields a byte). A decoder reassembles `f` from its parts and subtracts one
/// constant; the byte kernels multiply `f` itself (shifted right for a lower run-time count,
/// `(f >> s) = q_k + 2^(bits−1−s)`) and subtract `2^(bits−1−s) · Σ v` once per layer, which
/// saves a sign extension per vector of codes where fully connected layers decode every code
/// on every call. 8-bit codes are stored as they are (s8). A block of several chunks stores
/// its parts one after another ([`pack_block`]); a block of one chunk is this.
#[cfg(test)]
pub(crate) fn pack_chunk(chunk: &[i8], bits: u8) -> Vec<i8> {
    pack_block(chunk, bits)
}

/// The chunks of one block (a 16-row block's taps × channel pairs, 32 codes each) at `bits`
/// bits a code: part by part, most significant first, each part the chunks in order at `4 ·
/// w` bytes a chunk. So each part is a packed `w`-bit array of its own, which the 2- and
/// 4-bit kernels read with several chunks per load, and a run at the plane count of the
/// leading parts reads only those.
pub(crate) fn pack_block(block: &[i8], bits: u8) -> Vec<i8> {
    if bits == 8 {
        return block.to_vec();
    }
    let bias = 1i16 << (bits - 1);
    let fields: Vec<u8> = block
        .iter()
        .map(|&q| {
            let f = i16::from(q) + bias;
            debug_assert!((0..1 << bits).contains(&f), "code outside {bits} bits");
            f as u8
        })
        .collect();
    let mut below = bits;
    let mut out = Vec::with_capacity(block.len() / 8 * usize::from(bits));
    for &w in code_parts(bits) {
        below -= w;
        let per_byte = usize::from(8 / w);
        let len = 32 / per_byte;
        let mask = (1u8 << w) - 1;
        for chunk in fields.chunks_exact(32) {
            out.extend((0..len).map(|i| {
                let byte = (0..per_byte).fold(0u8, |b, j| {
                    b | ((chunk[i + j * len] >> below) & mask) << (j * usize::from(w))
                });
                byte as i8
            }));
        }
    }
    out
}

/// Chunk `c` of a block of `chunks` chunks packed by [`pack_block`]: what the C targets'
/// decoders compute.
#[cfg(test)]
pub(crate) fn unpack_block_chunk(block: &[i8], bits: u8, chunks: usize, c: usize) -> [i8; 32] {
    if bits == 8 {
        return block[32 * c..32 * c + 32].try_into().expect("32 codes");
    }
    let mut fields = [0u8; 32];
    let mut base = 0;
    for &w in code_parts(bits) {
        let per_byte = usize::from(8 / w);
        let len = 32 / per_byte;
        let at = base + len * c;
        for (n, f) in fields.iter_mut().enumerate() {
            let (i, j) = (n % len, n / len);
            let field = (block[at + i] as u8 >> (usize::from(w) * j)) & ((1u8 << w) - 1);
            *f = *f << w | field;
        }
        base += len * chunks;
    }
    fields.map(|f| (i16::from(f) - (1i16 << (bits - 1))) as i8)
}

/// The inverse of [`pack_chunk`] (what the C targets' decoders compute): the 32 codes of a
/// chunk stored at `bits` bits a code ([`CodeBlocks::bits`]; `packed` holds `4 · bits`
/// bytes), a block of one chunk.
#[cfg(test)]
pub(crate) fn unpack_chunk(packed: &[i8], bits: u8) -> [i8; 32] {
    unpack_block_chunk(packed, bits, 1, 0)
}
