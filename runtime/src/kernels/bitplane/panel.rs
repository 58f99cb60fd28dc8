//! The integer GEMM of the bit-plane Conv: `sums[r][p] = Σ_j codes_r[pair j]·col[j][p]` for
//! the code rows of one group and the output positions of one image, exact in i32 when every
//! row's true sum over the pairs taken fits i32 (the caller bounds the number of pairs per
//! call by the overflow-safe chunk; wrapping lane arithmetic is exact modulo 2^32, so only
//! the totals matter).
//!
//! *Why this shape:* the input is im2col'd as *packed pairs* — two channels' i16 values in
//! one i32, `[pairs][positions]` — so the im2col is the f32 kernel's (contiguous row copies
//! for unit strides) over half as many channels, and the sums are accumulated across the
//! lanes of a vector, eight positions per AVX2 register: each `vpmaddwd` multiplies two
//! channels of eight positions by one broadcast pair of codes. No horizontal reduction is
//! needed at the end of a tile, and the output is channel-major (each channel's epilogue is
//! one contiguous run). A tile is [`RT`] rows × [`PV`] positions: 12 accumulators, two input
//! loads and six code broadcasts per pair (with AVX-512 VNNI: six accumulators, one load
//! and six fused `vpdpwssd`).

/// Code rows per tile.
pub(super) const RT: usize = 6;
/// Positions per tile (two AVX2 vectors of eight i32 sums).
pub(super) const PV: usize = 16;

/// Two i16 values packed as they lie in memory (the first in the low half), so that a
/// vector load of packed pairs is a load of the interleaved i16 values.
pub(super) fn pack(a: i16, b: i16) -> i32 {
    (a as u16 as u32 | (b as u16 as u32) << 16) as i32
}

/// Code rows for [`gemm`]: row-major `[rows][pairs][2]`, zero rows up to a whole number of
/// tiles of [`RT`] rows.
pub(super) struct CodeRows {
    data: Vec<i16>,
    /// Rows including the zero padding (a multiple of [`RT`]).
    pub rows: usize,
    pub pairs: usize,
}

impl CodeRows {
    /// Packs `rows` rows of `pairs` pairs: `fill(r, row)` writes row `r` (`[pairs][2]`,
    /// zero-filled before the call).
    pub fn new(rows: usize, pairs: usize, fill: impl Fn(usize, &mut [i16])) -> Self {
        let padded = rows.div_ceil(RT) * RT;
        let mut data = vec![0i16; padded * pairs * 2];
        for (r, row) in data.chunks_exact_mut(pairs * 2).take(rows).enumerate() {
            fill(r, row);
        }
        CodeRows {
            data,
            rows: padded,
            pairs,
        }
    }
}

/// One tile kernel: `out[r·ldo + p] = Σ_{j < pairs} q[r·qs + 2j..][..2]·colt[j·ldc + p]` for
/// the [`RT`] rows at `q` (row stride `qs` i16) and the [`PV`] positions at `colt`.
pub(super) type Tile = TileOf<i16>;

/// A tile kernel over code values of type `E` (int16 here, bytes in the byte panel).
pub(super) type TileOf<E> = fn(&[E], usize, usize, &[i32], usize, &mut [i32], usize);

fn tile_portable(
    q: &[i16],
    qs: usize,
    pairs: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    let mut acc = [[0i32; PV]; RT];
    for j in 0..pairs {
        let c = &colt[j * ldc..j * ldc + PV];
        for (r, a) in acc.iter_mut().enumerate() {
            let (b0, b1) = (q[r * qs + 2 * j] as i32, q[r * qs + 2 * j + 1] as i32);
            for (&c, s) in c.iter().zip(a.iter_mut()) {
                let (c0, c1) = (c as i16 as i32, (c >> 16) as i16 as i32);
                *s = s.wrapping_add((c0 * b0).wrapping_add(c1 * b1));
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        out[r * ldo..r * ldo + PV].copy_from_slice(a);
    }
}

/// The bounds every vector tile relies on: [`RT`] code rows of `2·pairs` values at stride
/// `qs`, `pairs` input rows of [`PV`] packed pairs at stride `ldc`, [`RT`] output rows of
/// [`PV`] sums at stride `ldo`.
fn check_tile(
    q: &[i16],
    qs: usize,
    pairs: usize,
    colt: &[i32],
    ldc: usize,
    out: &[i32],
    ldo: usize,
) {
    assert!(qs >= 2 * pairs && q.len() >= (RT - 1) * qs + 2 * pairs);
    assert!(pairs == 0 || colt.len() >= (pairs - 1) * ldc + PV);
    assert!(ldo >= PV && out.len() >= (RT - 1) * ldo + PV);
}

/// One AVX2 tile: per pair, two input loads (16 positions) and [`RT`] broadcasts of a row's
/// code pair feed `2·RT` `vpmaddwd` (exact i16 products, pairwise i32 sums).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn tile_avx2_inner(
    q: &[i16],
    qs: usize,
    pairs: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    use std::arch::x86_64::*;
    check_tile(q, qs, pairs, colt, ldc, out, ldo);
    let mut acc = [[_mm256_setzero_si256(); 2]; RT];
    for j in 0..pairs {
        // SAFETY: `check_tile` bounds colt by (pairs−1)·ldc + 16 and each of the RT code rows
        // by 2·pairs, so the two 8-pair input loads and the code-pair reads are in bounds.
        unsafe {
            let c = colt.as_ptr().add(j * ldc);
            let c0 = _mm256_loadu_si256(c as *const __m256i);
            let c1 = _mm256_loadu_si256(c.add(8) as *const __m256i);
            for (r, a) in acc.iter_mut().enumerate() {
                let pair = q.as_ptr().add(r * qs + 2 * j) as *const i32;
                let b = _mm256_set1_epi32(pair.read_unaligned());
                a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(c0, b));
                a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(c1, b));
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = &mut out[r * ldo..r * ldo + PV];
        // SAFETY: `o` holds PV = 16 i32, exactly two unaligned 256-bit stores.
        unsafe {
            _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, a[0]);
            _mm256_storeu_si256(o.as_mut_ptr().add(8) as *mut __m256i, a[1]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn tile_avx2(
    q: &[i16],
    qs: usize,
    pairs: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    // SAFETY: only selected by `pick` (or a test) after AVX2 was detected on this CPU.
    unsafe { tile_avx2_inner(q, qs, pairs, colt, ldc, out, ldo) }
}

/// One AVX-512 VNNI tile: per pair, one input load (16 positions) and [`RT`] broadcasts of
/// a row's code pair feed [`RT`] `vpdpwssd` (the same exact i16 products and pairwise sums
/// as `vpmaddwd`, added to the accumulator in the same instruction, wrapping).
///
/// Built when the compiler has these intrinsics (`strata_avx512`, set by `build.rs` from
/// Rust 1.89 on); the crate's minimum Rust version predates them, hence the lint allowance.
#[cfg(all(target_arch = "x86_64", strata_avx512))]
#[allow(clippy::incompatible_msrv)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn tile_vnni_inner(
    q: &[i16],
    qs: usize,
    pairs: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    use std::arch::x86_64::*;
    check_tile(q, qs, pairs, colt, ldc, out, ldo);
    let mut acc = [_mm512_setzero_si512(); RT];
    for j in 0..pairs {
        // SAFETY: as in `tile_avx2_inner`: `check_tile` bounds the 16-pair input load and the
        // code-pair reads of every row.
        unsafe {
            let c = _mm512_loadu_si512(colt.as_ptr().add(j * ldc) as *const __m512i);
            for (r, a) in acc.iter_mut().enumerate() {
                let pair = q.as_ptr().add(r * qs + 2 * j) as *const i32;
                *a = _mm512_dpwssd_epi32(*a, c, _mm512_set1_epi32(pair.read_unaligned()));
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = &mut out[r * ldo..r * ldo + PV];
        // SAFETY: `o` holds PV = 16 i32, exactly one unaligned 512-bit store.
        unsafe { _mm512_storeu_si512(o.as_mut_ptr() as *mut __m512i, *a) };
    }
}

#[cfg(all(target_arch = "x86_64", strata_avx512))]
fn tile_vnni(
    q: &[i16],
    qs: usize,
    pairs: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    // SAFETY: only selected by `pick` (or a test) after the three features were detected.
    unsafe { tile_vnni_inner(q, qs, pairs, colt, ldc, out, ldo) }
}

#[cfg(all(target_arch = "x86_64", strata_avx512))]
#[allow(clippy::incompatible_msrv)]
pub(super) fn has_vnni() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
}

/// The fastest tile this CPU supports under the [`crate::isa`] cap; all of them are exact.
pub(super) fn pick() -> Tile {
    #[cfg(all(target_arch = "x86_64", strata_avx512))]
    if vnni_allowed() {
        return tile_vnni;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::isa::avx2() {
        return tile_avx2;
    }
    tile_portable
}

/// Whether the kernels may use AVX-512 VNNI here ([`has_vnni`] and no [`crate::isa`] cap).
#[cfg(all(target_arch = "x86_64", strata_avx512))]
pub(super) fn vnni_allowed() -> bool {
    crate::isa::cap() == crate::isa::IsaCap::Native && has_vnni()
}

/// `np` rounded up to whole tiles: the width of the rows [`gemm`] writes.
pub(super) fn out_width(np: usize) -> usize {
    np.div_ceil(PV) * PV
}

/// `out[r·ldo + p] = Σ_{j ∈ js} rows_r[pair j]·colt[j·ldc + p]` for every (padded) row and
/// `p < out_width(np)`, with `ldo = out_width(np)`. `colt` (packed pairs, `[pairs][ldc]`)
/// must extend [`PV`] values past its last row's `np` positions; the columns from `np` on
/// hold whatever those values give, and are the caller's to ignore.
pub(super) fn gemm(
    tile: Tile,
    rows: &CodeRows,
    js: std::ops::Range<usize>,
    colt: &[i32],
    ldc: usize,
    np: usize,
    out: &mut [i32],
) {
    assert!(js.end <= rows.pairs);
    let (data, n) = (&rows.data, rows.rows);
    sweep(tile, data, n, 2 * rows.pairs, 2, js, colt, ldc, np, out);
}

/// The tile loop shared by this GEMM and the byte panel's: every [`PV`]-position tile of
/// `colt` against every [`RT`]-row tile of the `rows` rows of `data` (`qs` code values each,
/// `per` values a 32-bit lane), lanes `js` of each row.
#[allow(clippy::too_many_arguments)]
pub(super) fn sweep<E>(
    tile: TileOf<E>,
    data: &[E],
    rows: usize,
    qs: usize,
    per: usize,
    js: std::ops::Range<usize>,
    colt: &[i32],
    ldc: usize,
    np: usize,
    out: &mut [i32],
) {
    let ldo = out_width(np);
    assert!(rows % RT == 0 && data.len() >= rows * qs && ldc >= np && out.len() >= rows * ldo);
    let colt = &colt[js.start * ldc..];
    for p0 in (0..np).step_by(PV) {
        for r0 in (0..rows).step_by(RT) {
            let q = &data[r0 * qs + per * js.start..(r0 + RT) * qs];
            tile(
                q,
                qs,
                js.len(),
                &colt[p0..],
                ldc,
                &mut out[r0 * ldo + p0..],
                ldo,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::vals;
    use super::*;

    /// Every tile against i64 dot products: one and many pairs, pair ranges that start
    /// past 0 (the chunked long reductions), row counts that are not whole tiles, position
    /// counts below, at and past one tile, edge codes ±2^(k−1) and the largest |u| of 8-bit
    /// activations.
    #[test]
    fn tiles_match_i64_dot_products() {
        let mut tiles: Vec<Tile> = vec![tile_portable];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            tiles.push(tile_avx2);
        }
        #[cfg(all(target_arch = "x86_64", strata_avx512))]
        if has_vnni() {
            tiles.push(tile_vnni);
        }
        for pairs in [1usize, 5, 8, 144] {
            for rows in [1usize, 6, 7, 65] {
                for np in [1usize, 5, 16, 17, 40] {
                    let seed = (pairs * 1000 + rows * 10 + np) as u64;
                    let mut codes = vals(rows * pairs * 2, seed, 128);
                    codes[..2 * pairs].iter_mut().for_each(|v| *v = -128);
                    if rows > 1 {
                        codes[2 * pairs..4 * pairs]
                            .iter_mut()
                            .for_each(|v| *v = 127);
                    }
                    let packed = CodeRows::new(rows, pairs, |r, row| {
                        row.copy_from_slice(&codes[r * 2 * pairs..(r + 1) * 2 * pairs])
                    });
                    let ldc = np + 3;
                    let mut u = vals(pairs * 2 * ldc + 2 * PV, seed + 7, 384);
                    u[..2 * ldc].iter_mut().for_each(|v| *v = -384);
                    let colt: Vec<i32> = u.chunks(2).map(|c| pack(c[0], c[1])).collect();
                    let unpacked = |j: usize, p: usize, h: usize| u[2 * (j * ldc + p) + h] as i64;
                    let ldo = out_width(np);
                    for js in [0..pairs, pairs / 2..pairs] {
                        for &tile in &tiles {
                            let mut out = vec![i32::MIN; packed.rows * ldo + 3];
                            gemm(tile, &packed, js.clone(), &colt, ldc, np, &mut out);
                            for r in 0..packed.rows {
                                for p in 0..np {
                                    let want: i64 = if r < rows {
                                        js.clone()
                                            .flat_map(|j| [(j, 0), (j, 1)])
                                            .map(|(j, h)| {
                                                codes[r * 2 * pairs + 2 * j + h] as i64
                                                    * unpacked(j, p, h)
                                            })
                                            .sum()
                                    } else {
                                        0
                                    };
                                    assert_eq!(
                                        out[r * ldo + p] as i64,
                                        want,
                                        "pairs {pairs} {js:?} rows {rows} np {np} r {r} p {p}"
                                    );
                                }
                            }
                            assert!(out[packed.rows * ldo..].iter().all(|&v| v == i32::MIN));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pack_keeps_memory_order() {
        let v = [-3i16, 7];
        let p = pack(v[0], v[1]);
        assert_eq!(
            p.to_le_bytes(),
            [v[0].to_le_bytes(), v[1].to_le_bytes()].concat()[..]
        );
    }
}
