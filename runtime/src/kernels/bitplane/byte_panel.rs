//! The byte GEMM of the bit-plane Conv: the [`super::panel`] GEMM with four channels' 8-bit
//! values per 32-bit lane instead of two 16-bit ones, so one instruction does twice the
//! products: `sums[r][p] = Σ_j codes_r[quad j]·col[j][p]` with `col` holding *biased*
//! activation codes `v = x_q + 2^7` (unsigned bytes) and the codes signed bytes.
//!
//! *Why:* convolutions with many output positions are compute-bound; with AVX-512 VNNI
//! `vpdpbusd` multiplies 64 unsigned × signed byte pairs and adds them in fours to i32 lanes,
//! exactly (no intermediate saturation) for every code width. Without VNNI, AVX2's
//! `vpmaddubsw` adds pairs of products in *saturating* i16: exact only while `2·255·|q| <
//! 2^15`, i.e. codes of at most 7 bits (`|q| ≤ 64`), so [`pick`] offers it for `k ≤ 7` only
//! — the count at which fewer planes become cheaper on an AVX2 CPU.
//!
//! The caller corrects the biased sums: `Σ q·(x_q − zero) = Σ q·v − (zero + 2^7)·Σ q`, with
//! Conv padding coded as `v = zero + 2^7` (real 0) so that it adds nothing.

use super::panel::{PV, RT};

/// Four bytes as they lie in memory (the first in the low byte), one 32-bit lane.
pub(super) fn pack4(b: [u8; 4]) -> i32 {
    i32::from_le_bytes(b)
}

/// Longest reduction (in quads) whose i32 sums cannot overflow, biased (`|q·v| ≤ 128·255`)
/// or corrected (`|q·u| ≤ 128·383`, `u = v − zero − 128` with `|zero| ≤ 128`), so that a
/// reduction of one chunk is corrected in wrapping i32 arithmetic, exactly.
pub(super) const SAFE_QUADS: usize = (i32::MAX as usize) / (4 * 128 * 383);

/// Code rows for [`gemm`]: row-major `[rows][quads][4]` signed bytes, zero rows up to a
/// whole number of tiles of [`RT`] rows.
pub(super) struct CodeQuads {
    data: Vec<i8>,
    /// Rows including the zero padding (a multiple of [`RT`]).
    pub rows: usize,
    pub quads: usize,
    /// Each row's sum of its bytes (`Σ q`; the padding rows' 0), for the bias correction.
    pub sums: Vec<i64>,
}

impl CodeQuads {
    /// Packs `rows` rows of `quads` quads: `fill(r, row)` writes row `r` (`[quads][4]`,
    /// zero-filled before the call).
    pub fn new(rows: usize, quads: usize, fill: impl Fn(usize, &mut [i8])) -> Self {
        let padded = rows.div_ceil(RT) * RT;
        let mut data = vec![0i8; padded * quads * 4];
        for (r, row) in data.chunks_exact_mut(quads * 4).take(rows).enumerate() {
            fill(r, row);
        }
        let sums = (0..padded)
            .map(|r| {
                data[r * quads * 4..(r + 1) * quads * 4]
                    .iter()
                    .map(|&q| q as i64)
                    .sum()
            })
            .collect();
        CodeQuads {
            data,
            rows: padded,
            quads,
            sums,
        }
    }
}

/// One tile kernel: `out[r·ldo + p] = Σ_{j < quads} q[r·qs + 4j..][..4]·colt[j·ldc + p]`
/// (bytes of `colt` unsigned) for the [`RT`] rows at `q` (row stride `qs` bytes) and the
/// [`PV`] positions at `colt`.
pub(super) type Tile = super::panel::TileOf<i8>;

/// The scalar reference of the tests (a CPU without a byte tile runs the int16 panel).
#[cfg(test)]
fn tile_portable(
    q: &[i8],
    qs: usize,
    quads: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    let mut acc = [[0i32; PV]; RT];
    for j in 0..quads {
        let c = &colt[j * ldc..j * ldc + PV];
        for (r, a) in acc.iter_mut().enumerate() {
            let b = &q[r * qs + 4 * j..][..4];
            for (&c, s) in c.iter().zip(a.iter_mut()) {
                let v = c.to_le_bytes();
                let d: i32 = (0..4).map(|h| v[h] as i32 * b[h] as i32).sum();
                *s = s.wrapping_add(d);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        out[r * ldo..r * ldo + PV].copy_from_slice(a);
    }
}

/// The bounds every vector tile relies on (as [`super::panel`]'s, in quads of bytes).
fn check_tile(
    q: &[i8],
    qs: usize,
    quads: usize,
    colt: &[i32],
    ldc: usize,
    out: &[i32],
    ldo: usize,
) {
    assert!(qs >= 4 * quads && q.len() >= (RT - 1) * qs + 4 * quads);
    assert!(quads == 0 || colt.len() >= (quads - 1) * ldc + PV);
    assert!(ldo >= PV && out.len() >= (RT - 1) * ldo + PV);
}

/// One AVX2 tile (codes of at most 7 bits): per quad, two input loads (16 positions) and
/// [`RT`] broadcasts of a row's code quad feed `2·RT` `vpmaddubsw` (two products per i16,
/// exact below 2^15 for `|q| ≤ 64`), each widened and summed in pairs by a `vpmaddwd` with
/// ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn tile_avx2_inner(
    q: &[i8],
    qs: usize,
    quads: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    use std::arch::x86_64::*;
    check_tile(q, qs, quads, colt, ldc, out, ldo);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; RT];
    for j in 0..quads {
        // SAFETY: `check_tile` bounds colt by (quads−1)·ldc + 16 and each of the RT code rows
        // by 4·quads, so the two 8-lane input loads and the code-quad reads are in bounds.
        unsafe {
            let c = colt.as_ptr().add(j * ldc);
            let c0 = _mm256_loadu_si256(c as *const __m256i);
            let c1 = _mm256_loadu_si256(c.add(8) as *const __m256i);
            for (r, a) in acc.iter_mut().enumerate() {
                let quad = q.as_ptr().add(r * qs + 4 * j) as *const i32;
                let b = _mm256_set1_epi32(quad.read_unaligned());
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(c0, b), ones);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(c1, b), ones);
                a[0] = _mm256_add_epi32(a[0], p0);
                a[1] = _mm256_add_epi32(a[1], p1);
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
    q: &[i8],
    qs: usize,
    quads: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    // SAFETY: only selected by `pick` (or a test) after AVX2 was detected on this CPU.
    unsafe { tile_avx2_inner(q, qs, quads, colt, ldc, out, ldo) }
}

/// One AVX-512 VNNI tile: per quad, one input load (16 positions) and [`RT`] broadcasts of
/// a row's code quad feed [`RT`] `vpdpbusd` (four exact u8 × s8 products added to each i32
/// lane, wrapping). Built under `strata_avx512` as [`super::panel`]'s VNNI tile.
#[cfg(all(target_arch = "x86_64", strata_avx512))]
#[allow(clippy::incompatible_msrv)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn tile_vnni_inner(
    q: &[i8],
    qs: usize,
    quads: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    use std::arch::x86_64::*;
    check_tile(q, qs, quads, colt, ldc, out, ldo);
    let mut acc = [_mm512_setzero_si512(); RT];
    for j in 0..quads {
        // SAFETY: as in `tile_avx2_inner`: `check_tile` bounds the 16-lane input load and the
        // code-quad reads of every row.
        unsafe {
            let c = _mm512_loadu_si512(colt.as_ptr().add(j * ldc) as *const __m512i);
            for (r, a) in acc.iter_mut().enumerate() {
                let quad = q.as_ptr().add(r * qs + 4 * j) as *const i32;
                *a = _mm512_dpbusd_epi32(*a, c, _mm512_set1_epi32(quad.read_unaligned()));
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
    q: &[i8],
    qs: usize,
    quads: usize,
    colt: &[i32],
    ldc: usize,
    out: &mut [i32],
    ldo: usize,
) {
    // SAFETY: only selected by `pick` (or a test) after the three features were detected.
    unsafe { tile_vnni_inner(q, qs, quads, colt, ldc, out, ldo) }
}

/// The byte tile for `k`-plane codes on this CPU (under the [`crate::isa`] cap), if one beats
/// the int16 panel: VNNI at every `k`, AVX2 for `k ≤ 7` (see the module note); otherwise
/// `None`.
pub(super) fn pick(k: u8) -> Option<Tile> {
    #[cfg(all(target_arch = "x86_64", strata_avx512))]
    if super::panel::vnni_allowed() {
        return Some(tile_vnni);
    }
    #[cfg(target_arch = "x86_64")]
    if k <= 7 && crate::isa::avx2() {
        return Some(tile_avx2);
    }
    let _ = k;
    None
}

/// `out[r·ldo + p] = Σ_{j ∈ js} rows_r[quad j]·colt[j·ldc + p]` for every (padded) row and
/// `p < out_width(np)`, with `ldo = out_width(np)`; `colt` as in [`super::panel::gemm`].
pub(super) fn gemm(
    tile: Tile,
    rows: &CodeQuads,
    js: std::ops::Range<usize>,
    colt: &[i32],
    ldc: usize,
    np: usize,
    out: &mut [i32],
) {
    assert!(js.end <= rows.quads);
    let (data, n) = (&rows.data, rows.rows);
    super::panel::sweep(tile, data, n, 4 * rows.quads, 4, js, colt, ldc, np, out);
}

#[cfg(test)]
mod tests {
    use super::super::panel::out_width;
    use super::super::tests::vals;
    use super::*;

    /// Every tile against i64 dot products: one and many quads, quad ranges that start past
    /// 0, row counts that are not whole tiles, position counts below, at and past one tile,
    /// the edge codes −2^(k−1) and 2^(k−1) − 1 (k = 8 for VNNI and the reference, 7 for
    /// AVX2) and the extreme bytes 0 and 255.
    #[test]
    fn byte_tiles_match_i64_dot_products() {
        let mut tiles: Vec<(Tile, u8)> = vec![(tile_portable, 8)];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            tiles.push((tile_avx2, 7));
        }
        #[cfg(all(target_arch = "x86_64", strata_avx512))]
        if super::super::panel::has_vnni() {
            tiles.push((tile_vnni, 8));
        }
        for (tile, k) in tiles {
            let (lo, hi) = (-(1i16 << (k - 1)), (1i16 << (k - 1)) - 1);
            for quads in [1usize, 5, 8, 72] {
                for rows in [1usize, 6, 7, 13] {
                    for np in [1usize, 5, 16, 17, 40] {
                        let seed = (quads * 1000 + rows * 10 + np) as u64;
                        let mut codes: Vec<i8> = vals(rows * quads * 4, seed, 128)
                            .into_iter()
                            .map(|v| v.clamp(lo, hi) as i8)
                            .collect();
                        codes[..4 * quads].iter_mut().for_each(|v| *v = lo as i8);
                        if rows > 1 {
                            codes[4 * quads..8 * quads]
                                .iter_mut()
                                .for_each(|v| *v = hi as i8);
                        }
                        let packed = CodeQuads::new(rows, quads, |r, row| {
                            row.copy_from_slice(&codes[r * 4 * quads..(r + 1) * 4 * quads])
                        });
                        let ldc = np + 3;
                        let mut v: Vec<u8> = vals(quads * 4 * ldc + 4 * PV, seed + 7, 128)
                            .into_iter()
                            .map(|x| (x + 127).clamp(0, 255) as u8)
                            .collect();
                        v[..4 * ldc].iter_mut().for_each(|x| *x = 255);
                        if quads > 1 {
                            v[4 * ldc..8 * ldc].iter_mut().for_each(|x| *x = 0);
                        }
                        let colt: Vec<i32> = v
                            .chunks(4)
                            .map(|c| pack4([c[0], c[1], c[2], c[3]]))
                            .collect();
                        let byte = |j: usize, p: usize, h: usize| v[4 * (j * ldc + p) + h] as i64;
                        let ldo = out_width(np);
                        for js in [0..quads, quads / 2..quads] {
                            let mut out = vec![i32::MIN; packed.rows * ldo + 3];
                            gemm(tile, &packed, js.clone(), &colt, ldc, np, &mut out);
                            for r in 0..packed.rows {
                                for p in 0..np {
                                    let want: i64 = if r < rows {
                                        js.clone()
                                            .flat_map(|j| (0..4).map(move |h| (j, h)))
                                            .map(|(j, h)| {
                                                codes[r * 4 * quads + 4 * j + h] as i64
                                                    * byte(j, p, h)
                                            })
                                            .sum()
                                    } else {
                                        0
                                    };
                                    assert_eq!(
                                        out[r * ldo + p] as i64,
                                        want,
                                        "k {k} quads {quads} {js:?} rows {rows} np {np} r {r} p {p}"
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
    fn pack4_keeps_memory_order() {
        assert_eq!(pack4([1, 2, 3, 250]).to_le_bytes(), [1, 2, 3, 250]);
    }
}
