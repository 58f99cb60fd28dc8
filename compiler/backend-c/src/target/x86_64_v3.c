/*@section kcommon*/
/* AVX2 kernels over the unpacked codes (target x86-64-v3). Products are exact: above
 * BQ_U8_MAX_K planes codes are sign-extended to int16 and multiplied with the int16
 * activations by vpmaddwd, whose pairwise int32 sums cannot overflow (|q| <= 128,
 * |u| <= 384); at fewer planes vpmaddubsw multiplies activation bytes by the s8 codes, which
 * cannot saturate (2 * 255 * 2^(k-1) < 2^15 for k <= 7). Compiled with VNNI (AVX512-VNNI
 * and AVX512-VL, or AVX-VNNI), vpdpbusd does the byte products at every count (BQ_VNNI). */
#if !defined(__AVX2__)
#error "target x86-64-v3 needs AVX2: compile with -march=x86-64-v3 (or -mavx2)"
#endif
#define BQ_PT 6

/* Vectorised activation quantization, the same float operations as bp_quantize. */
static void bq_quant(const float *x, size_t n, float scale, float zero, float lo, float hi,
                     int16_t *u)
{
    const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zero);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    size_t i = 0;
    for (; i + 8u <= n; i += 8u) {
        __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vs),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 ok = _mm256_cmp_ps(r, r, _CMP_ORD_Q);
        __m256 q = _mm256_add_ps(r, vz);
        __m256i v;
        q = _mm256_blendv_ps(q, vlo, _mm256_cmp_ps(q, vlo, _CMP_LT_OQ));
        q = _mm256_blendv_ps(q, vhi, _mm256_cmp_ps(q, vhi, _CMP_GT_OQ));
        q = _mm256_and_ps(_mm256_sub_ps(q, vz), ok);
        v = _mm256_cvttps_epi32(q);
        _mm_storeu_si128((__m128i *)(void *)(u + i),
                         _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
    }
    bp_quantize(x + i, n - i, scale, zero, lo, hi, u + i);
}

static __m256i bq_bcast(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* The 32 fields of one part of a chunk stored at pw = 4, 2 or 1 bits a field (lowering:
 * pack_block), shifted right by sh: the packed bytes are broadcast to every 128-bit half
 * (nibbles), 64-bit lane (crumbs) or 32-bit lane (bits), each lane shifted to its field (and
 * sh further) by vpsrlv and masked. */
static inline __m256i bq_part(const int8_t *w, unsigned pw, unsigned sh)
{
    __m256i b;
    if (pw == 4u) {
        b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)w));
        b = _mm256_srlv_epi64(b, _mm256_set_epi64x(4 + sh, 4 + sh, sh, sh));
    } else if (pw == 2u) {
        long long v;
        memcpy(&v, w, sizeof v);
        b = _mm256_srlv_epi64(_mm256_set1_epi64x(v),
                              _mm256_set_epi64x(6 + sh, 4 + sh, 2 + sh, sh));
    } else {
        int v;
        memcpy(&v, w, sizeof v);
        b = _mm256_srlv_epi32(_mm256_set1_epi32(v), _mm256_add_epi32(_mm256_set1_epi32((int)sh),
                                                                     _mm256_setr_epi32(0, 1, 2, 3,
                                                                                       4, 5, 6, 7)));
    }
    return _mm256_and_si256(b, _mm256_set1_epi8((char)(((1u << pw) - 1u) >> sh)));
}

/* The 32 offset-binary fields f of chunk c of a block of n chunks stored at bits < 8 bits a
 * code (lowering: pack_block), shifted right by sh: f >> sh = q_k + 2^(bits-1-sh). A single
 * part (4 or 2 bits) is shifted in place; split widths (bq_part_bits: each part an array of
 * the block's chunks) are reassembled part by part, most significant first (no field reaches
 * 2^7, so the 16-bit shifts move no bit across a byte), then shifted and masked. */
static inline __m256i bq_ldf(const int8_t *w, unsigned bits, size_t n, size_t c, unsigned sh)
{
    __m256i f;
    switch (bits) {
    case 3u:
        f = _mm256_or_si256(_mm256_slli_epi16(bq_part(w + 8u * c, 2u, 0u), 1),
                            bq_part(w + 8u * n + 4u * c, 1u, 0u));
        break;
    case 5u:
        f = _mm256_or_si256(_mm256_slli_epi16(bq_part(w + 16u * c, 4u, 0u), 1),
                            bq_part(w + 16u * n + 4u * c, 1u, 0u));
        break;
    case 6u:
        f = _mm256_or_si256(_mm256_slli_epi16(bq_part(w + 16u * c, 4u, 0u), 2),
                            bq_part(w + 16u * n + 8u * c, 2u, 0u));
        break;
    case 7u:
        f = _mm256_or_si256(
            _mm256_slli_epi16(bq_part(w + 16u * c, 4u, 0u), 3),
            _mm256_or_si256(_mm256_slli_epi16(bq_part(w + 16u * n + 8u * c, 2u, 0u), 1),
                            bq_part(w + 24u * n + 4u * c, 1u, 0u)));
        break;
    default: /* one part: 4 or 2 bits */
        return bq_part(w + 4u * bits * c, bq_part_bits(bits, 0u), sh);
    }
    if (sh) {
        f = _mm256_and_si256(_mm256_srl_epi16(f, _mm_cvtsi32_si128((int)sh)),
                             _mm256_set1_epi8((char)(((1u << bits) - 1u) >> sh)));
    }
    return f;
}

/* The 32 codes of chunk c of a block of n chunks as s8: 8-bit codes as stored, offset-binary
 * fields less the offset. */
static inline __m256i bq_ld(const int8_t *w, unsigned bits, size_t n, size_t c)
{
    if (bits == 8u) {
        return _mm256_loadu_si256((const __m256i *)(const void *)(w + 32u * c));
    }
    return _mm256_sub_epi8(bq_ldf(w, bits, n, c, 0u),
                           _mm256_set1_epi8((char)(1u << (bits - 1u))));
}

/* Compiled for a CPU with VNNI (AVX512-VNNI with AVX512-VL, -mavx512vnni -mavx512vl: Intel
 * Xeons from Cascade Lake on, AMD Zen 4 on; or AVX-VNNI, -mavxvnni: Intel cores from Alder
 * Lake on; or -march=native there), the byte tiles multiply with vpdpbusd instead: the same
 * four products of bytes by s8 codes per int32 lane, summed into it with no intermediate
 * int16 (so nothing saturates at any count), one instruction where vpmaddubsw took two or
 * three. The byte path then runs at every count up to 8 (the int16 kernels only where the
 * activation codes do not fit a byte); the sums, and so the outputs, are the same integers
 * as without VNNI. */
#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
#define BQ_VNNI 1
#define BQ_U8_MAX_K 8
#define BQ_U8_LINEAR_MAX_K 8
/* acc + the four byte products of each int32 lane of x and w (the EVEX or the VEX form). */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define BQ_U8_DOT(acc, x, w) _mm256_dpbusd_epi32(acc, x, w)
#else
#define BQ_U8_DOT(acc, x, w) _mm256_dpbusd_avx_epi32(acc, x, w)
#endif
/* A byte tile's running sums as int32 (already). */
#define BQ_U8_I32(s, ones) (s)
#else
/* The byte path (prelude: bq_u8_offset) up to this plane count: vpmaddubsw multiplies the
 * activation bytes v = u + d by the s8 codes, 32 products per instruction into int16 pair
 * sums, which are summed in int16 for bq_u8_run(k) steps before widening to int32: half the
 * multiply instructions of vpmaddwd per product. At 6 planes (widening every 2 steps) the
 * MNIST CNN still ran at 0.93x of the vpmaddwd kernel; at 7 (every step) at 1.11x (both
 * with the earlier, spilling tiles; now a 6-plane build takes 0.98x a 7-plane one), and
 * 8-plane codes would saturate. */
#define BQ_VNNI 0
#define BQ_U8_MAX_K 6
/* Fully connected layers at batch 1 read every code once: there the widening every 2 steps
 * at 6 planes made a 4096 x 4096 GEMV 1.12x slower than vpmaddwd (0.97x at 5 planes). */
#define BQ_U8_LINEAR_MAX_K 5
/* acc + the int16 pair sums of x times w (each lane pair one row's four products). */
#define BQ_U8_DOT(acc, x, w) _mm256_add_epi16(acc, _mm256_maddubs_epi16(x, w))
/* The int16 pair sums widened: each int32 lane one row's sum. */
#define BQ_U8_I32(s, ones) _mm256_madd_epi16(s, ones)
#endif
/* Positions per byte-path tile: its 2 x 5 int16 accumulators, two code vectors, a broadcast
 * and a product fit the 16 AVX2 registers (at 6 positions gcc kept two accumulators on the
 * stack, and the store-to-load round trip each step made the MNIST CNN 9% slower). */
#define BQ_U8_PT 5
#if BQ_PT != 6
#error "bq_tile is unrolled for BQ_PT == 6"
#endif

static __m256i bq_bcast2(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi16((short)v);
}

/* s8 codes >> sh (arithmetic), 32 at a time (AVX2 has no byte shift): the 16-bit logical
 * shift, the bits shifted in from the neighbour byte masked off, then sign extension. */
static __m256i bq_sra8(__m256i w, __m128i shc, __m256i keep, __m256i sign)
{
    w = _mm256_and_si256(_mm256_srl_epi16(w, shc), keep);
    return _mm256_sub_epi8(_mm256_xor_si256(w, sign), sign);
}

/*@section ktile*/
/* bq_unpack at one width: always inlined with a constant width (and shift 0 or not), so
 * that the loop keeps its masks and shift vectors in registers. With the width a variable,
 * every chunk went through the width switch and rebuilt its mask: unpacking took a third of
 * a 3x64x64 ResNet-18's time at 2 and 4 bits (its last stages have 4 output positions, so
 * each code is unpacked for 4 products per call). */
static inline __attribute__((always_inline)) void
bq_unpack_w(const int8_t *w, unsigned bits, unsigned sh, size_t chunks, int8_t *out)
{
    const __m128i shc = _mm_cvtsi32_si128((int)sh);
    const __m256i keep = _mm256_set1_epi8((char)(0xFFu >> sh));
    const __m256i sign = _mm256_set1_epi8((char)(0x80u >> sh));
    size_t c;
    for (c = 0; c < chunks; ++c) {
        __m256i v = bq_ld(w, bits, chunks, c);
        if (sh) {
            v = bq_sra8(v, shc, keep, sign);
        }
        _mm256_storeu_si256((__m256i *)(void *)(out + 32u * c), v);
    }
}

/* CALL(b, s) with b the constant code width `bits` (2..8) and s the constant 0 or sh: the
 * dispatch of the always-inlined unpacking workers, so that each is specialised per width
 * and shift. */
#define BQ_PER_WIDTH(bits, sh, CALL)                                                          \
    do {                                                                                      \
        switch (bits) {                                                                       \
        case 2u:                                                                              \
            BQ_PER_SHIFT(2u, sh, CALL);                                                       \
            break;                                                                            \
        case 3u:                                                                              \
            BQ_PER_SHIFT(3u, sh, CALL);                                                       \
            break;                                                                            \
        case 4u:                                                                              \
            BQ_PER_SHIFT(4u, sh, CALL);                                                       \
            break;                                                                            \
        case 5u:                                                                              \
            BQ_PER_SHIFT(5u, sh, CALL);                                                       \
            break;                                                                            \
        case 6u:                                                                              \
            BQ_PER_SHIFT(6u, sh, CALL);                                                       \
            break;                                                                            \
        case 7u:                                                                              \
            BQ_PER_SHIFT(7u, sh, CALL);                                                       \
            break;                                                                            \
        default:                                                                              \
            BQ_PER_SHIFT(8u, sh, CALL);                                                       \
            break;                                                                            \
        }                                                                                     \
    } while (0)
#define BQ_PER_SHIFT(b, sh, CALL)                                                             \
    do {                                                                                      \
        if (sh) {                                                                             \
            CALL(b, sh);                                                                      \
        } else {                                                                              \
            CALL(b, 0u);                                                                      \
        }                                                                                     \
    } while (0)

/* `chunks` chunks stored at `bits` bits a code to int8 codes at k = K - sh planes. */
static void bq_unpack(const int8_t *w, unsigned bits, unsigned sh, size_t chunks, int8_t *out)
{
#define BQ_CALL(b, s) bq_unpack_w(w, b, s, chunks, out)
    BQ_PER_WIDTH(bits, sh, BQ_CALL);
#undef BQ_CALL
}

/* Eight int16 values of eight channels (channel c at x + c * hw) transposed by pixels:
 * u[0..3] hold pixels (0,1), (2,3), (4,5), (6,7) of channels 0-3, u[4..7] of channels 4-7. */
static inline __attribute__((always_inline)) void bq_tr8x8(const int16_t *x, size_t hw,
                                                           __m128i *u)
{
    __m128i r[8], t[8];
    unsigned c;
    for (c = 0; c < 8u; ++c) {
        r[c] = _mm_loadu_si128((const __m128i *)(const void *)(x + c * hw));
    }
    for (c = 0; c < 8u; c += 2u) {
        t[c] = _mm_unpacklo_epi16(r[c], r[c + 1u]);
        t[c + 1u] = _mm_unpackhi_epi16(r[c], r[c + 1u]);
    }
    for (c = 0; c < 8u; c += 4u) {
        u[c] = _mm_unpacklo_epi32(t[c], t[c + 2u]);
        u[c + 1u] = _mm_unpackhi_epi32(t[c], t[c + 2u]);
        u[c + 2u] = _mm_unpacklo_epi32(t[c + 1u], t[c + 3u]);
        u[c + 3u] = _mm_unpackhi_epi32(t[c + 1u], t[c + 3u]);
    }
}

/* The channel-last copy of eight channels of one group (bq_conv2d): src holds channel c's
 * h x w plane at c * hw (quantized u), dst the first pixel's first channel, rows rs bytes
 * apart, pixels cs bytes apart. On the byte path (dd >= 0) v = u + dd fits a byte; with
 * dd < 0 the int16 path's u are copied. Eight pixels at a
 * time are an 8x8 int16 transpose (each result a pixel's eight channels), packed to bytes
 * and stored 8 bytes a pixel, where the scalar copy stored one or two bytes per load: it
 * took 15% of the Fashion-MNIST ResNet-8's time at 2 planes. */
#define BQ_COPY8 1
static void bq_copy8(const int16_t *src, size_t hw, unsigned h, unsigned w, int dd,
                     uint8_t *dst, size_t rs, size_t cs)
{
    const __m128i d = _mm_set1_epi16((short)dd);
    unsigned ih, iw, c;
    for (ih = 0; ih < h; ++ih) {
        const int16_t *row = src + (size_t)ih * w;
        uint8_t *o = dst + (size_t)ih * rs;
        if (dd < 0) {
            /* The int16 path (dst is int16 there; rs and cs count bytes): the same
             * transpose, 16 bytes a pixel, u as it is. */
            for (iw = 0; iw + 8u <= w; iw += 8u) {
                __m128i u[8];
                bq_tr8x8(row + iw, hw, u);
                for (c = 0; c < 4u; ++c) {
                    _mm_storeu_si128((__m128i *)(void *)(o + (size_t)(iw + 2u * c) * cs),
                                     _mm_unpacklo_epi64(u[c], u[c + 4u]));
                    _mm_storeu_si128((__m128i *)(void *)(o + (size_t)(iw + 2u * c + 1u) * cs),
                                     _mm_unpackhi_epi64(u[c], u[c + 4u]));
                }
            }
            for (; iw < w; ++iw) {
                for (c = 0; c < 8u; ++c) {
                    memcpy(o + (size_t)iw * cs + 2u * c, row + c * hw + iw, sizeof(int16_t));
                }
            }
            continue;
        }
        for (iw = 0; iw + 8u <= w; iw += 8u) {
            __m128i u[8], b;
            bq_tr8x8(row + iw, hw, u);
            for (c = 0; c < 4u; ++c) {
                __m128i p0 = _mm_add_epi16(_mm_unpacklo_epi64(u[c], u[c + 4u]), d);
                __m128i p1 = _mm_add_epi16(_mm_unpackhi_epi64(u[c], u[c + 4u]), d);
                long long lo, hi;
                b = _mm_packus_epi16(p0, p1);
                lo = _mm_cvtsi128_si64(b);
                hi = _mm_extract_epi64(b, 1);
                memcpy(o + (size_t)(iw + 2u * c) * cs, &lo, sizeof lo);
                memcpy(o + (size_t)(iw + 2u * c + 1u) * cs, &hi, sizeof hi);
            }
        }
        for (; iw < w; ++iw) {
            for (c = 0; c < 8u; ++c) {
                o[(size_t)iw * cs + c] = (uint8_t)(row[c * hw + iw] + dd);
            }
        }
    }
}

/* 8x8 transpose: r[q] holds rows 0-7 of position q on entry, positions 0-7 of row q on exit. */
static inline __attribute__((always_inline)) void bq_tr8(__m256 *r)
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Rows 0-7 of a tile of n <= 6 positions (one vector each) to y[r * ys + q], r < rows,
 * q < np <= n, as bits. Inlined into the tiles with n = np constant (their positions per
 * call): out of line it was a tenth of the MNIST CNN's instructions at 2 planes (a 5-position
 * tile's sums are stored twice for each 72 steps of conv_4 and each 3 of conv_1). */
static inline __attribute__((always_inline)) void
bq_put8(const __m256i *a, unsigned n, float *y, size_t ys, unsigned rows, unsigned np)
{
    __m256 v[8];
    unsigned q, r;
    for (q = 0; q < 8u; ++q) {
        v[q] = q < n ? _mm256_castsi256_ps(a[q < n ? q : 0]) : _mm256_setzero_ps();
    }
    bq_tr8(v);
    for (r = 0; r < rows && r < 8u; ++r) {
        float *d = y + r * ys;
        __m128 l = _mm256_castps256_ps128(v[r]);
        if (np >= 4u) {
            _mm_storeu_ps(d, l);
            if (np == 6u) {
                _mm_storel_pi((__m64 *)(void *)(d + 4), _mm256_extractf128_ps(v[r], 1));
            } else if (np == 5u) {
                _mm_store_ss(d + 4, _mm256_extractf128_ps(v[r], 1));
            }
        } else if (np >= 2u) {
            _mm_storel_pi((__m64 *)(void *)d, l);
            if (np == 3u) {
                _mm_store_ss(d + 2, _mm_movehl_ps(l, l));
            }
        } else {
            _mm_store_ss(d, l);
        }
    }
}

/* Stores the sums of rows r < rows, positions q < np as int32 bits at y[r * ys + q]; w: int8
 * codes (bq_unpack). Positions from npos on (a constant: bq_tile) are not computed. One
 * named accumulator per position and half (an array here was
 * zeroed in memory with rep stos on every call: 12% slower on the MNIST CNN). */
static inline __attribute__((always_inline)) void
bq_tile_n(const int8_t *w, const int16_t *x, const size_t *pos, const uint32_t *toff,
          unsigned taps, unsigned cs, unsigned cpairs, float *y, size_t ys, unsigned rows,
          unsigned np, unsigned npos)
{
    __m256i o[BQ_PT];
    __m256i a00, a01, a02, a03, a04, a05, a10, a11, a12, a13, a14, a15;
    unsigned t, p;
    (void)np; /* == npos (bq_tile) */
    a00 = a01 = a02 = a03 = a04 = a05 = a10 = a11 = a12 = a13 = a14 = a15 =
        _mm256_setzero_si256();
#define BQ_I16_POS(q)                                                                         \
    do {                                                                                      \
        if (npos > q) {                                                                       \
            __m256i xb = bq_bcast(x##q + 2u * p);                                             \
            a0##q = _mm256_add_epi32(a0##q, _mm256_madd_epi16(w0, xb));                       \
            a1##q = _mm256_add_epi32(a1##q, _mm256_madd_epi16(w1, xb));                       \
        }                                                                                     \
    } while (0)
    for (t = 0; t < taps; ++t) {
        size_t off = (size_t)toff[t] * cs;
        const int16_t *x0 = x + pos[0] + off, *x1 = x + pos[1] + off, *x2 = x + pos[2] + off;
        const int16_t *x3 = x + pos[3] + off, *x4 = x + pos[4] + off, *x5 = x + pos[5] + off;
        for (p = 0; p < cpairs; ++p) {
            __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)w));
            __m256i w1 =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + 16)));
            w += 32;
            BQ_I16_POS(0);
            BQ_I16_POS(1);
            BQ_I16_POS(2);
            BQ_I16_POS(3);
            BQ_I16_POS(4);
            BQ_I16_POS(5);
        }
    }
#undef BQ_I16_POS
    o[0] = a00, o[1] = a01, o[2] = a02, o[3] = a03, o[4] = a04, o[5] = a05;
    bq_put8(o, npos, y, ys, rows, npos);
    if (rows > 8u) {
        o[0] = a10, o[1] = a11, o[2] = a12, o[3] = a13, o[4] = a14, o[5] = a15;
        bq_put8(o, npos, y + 8u * ys, ys, rows - 8u, npos);
    }
}

/* bq_tile over the tile's np <= BQ_PT positions only: a layer whose positions are not a
 * multiple of the tile (a 3x64x64 ResNet-18's last stages have 16 and 4) computed whole
 * tiles, a third of them thrown away at 4 positions. */
static void bq_tile(const int8_t *w, const int16_t *x, const size_t *pos, const uint32_t *toff,
                    unsigned taps, unsigned cs, unsigned cpairs, float *y, size_t ys,
                    unsigned rows, unsigned np)
{
    switch (np) {
    case 1u:
        bq_tile_n(w, x, pos, toff, taps, cs, cpairs, y, ys, rows, np, 1u);
        break;
    case 2u:
        bq_tile_n(w, x, pos, toff, taps, cs, cpairs, y, ys, rows, np, 2u);
        break;
    case 3u:
        bq_tile_n(w, x, pos, toff, taps, cs, cpairs, y, ys, rows, np, 3u);
        break;
    case 4u:
        bq_tile_n(w, x, pos, toff, taps, cs, cpairs, y, ys, rows, np, 4u);
        break;
    case 5u:
        bq_tile_n(w, x, pos, toff, taps, cs, cpairs, y, ys, rows, np, 5u);
        break;
    default:
        bq_tile_n(w, x, pos, toff, taps, cs, cpairs, y, ys, rows, np, BQ_PT);
        break;
    }
}

/* The byte path's codes as bq_tile_u8 reads them: bq_unpack's int8 codes at k planes, and
 * per tap each two channel pairs' 16x2 blocks interleaved by row (16-bit unpack: rows 0-3
 * and 8-11 of both, then rows 4-7 and 12-15); a lone last pair as it is. Done once per block
 * and call in the unpacking pass (prelude: bq_conv2d), not in every tile's inner loop, where
 * the two shuffles were 2 of a step's 22 vector operations. */
#define BQ_U8_PAIRED 1
static inline __attribute__((always_inline)) void
bq_unpack_u8_w(const int8_t *w, unsigned bits, unsigned sh, unsigned taps, unsigned cpairs,
               int8_t *out)
{
    const __m128i shc = _mm_cvtsi32_si128((int)sh);
    const __m256i keep = _mm256_set1_epi8((char)(0xFFu >> sh));
    const __m256i sign = _mm256_set1_epi8((char)(0x80u >> sh));
    size_t n = (size_t)taps * cpairs, c = 0;
    unsigned t, p;
    for (t = 0; t < taps; ++t) {
        for (p = 0; p + 1u < cpairs; p += 2u, c += 2u) {
            __m256i w0 = bq_ld(w, bits, n, c), w1 = bq_ld(w, bits, n, c + 1u);
            if (sh) {
                w0 = bq_sra8(w0, shc, keep, sign);
                w1 = bq_sra8(w1, shc, keep, sign);
            }
            _mm256_storeu_si256((__m256i *)(void *)out, _mm256_unpacklo_epi16(w0, w1));
            _mm256_storeu_si256((__m256i *)(void *)(out + 32), _mm256_unpackhi_epi16(w0, w1));
            out += 64;
        }
        if (p < cpairs) {
            __m256i w0 = bq_ld(w, bits, n, c);
            if (sh) {
                w0 = bq_sra8(w0, shc, keep, sign);
            }
            _mm256_storeu_si256((__m256i *)(void *)out, w0);
            out += 32;
            ++c;
        }
    }
}

/* bq_unpack_u8_w with a constant width and shift (BQ_PER_WIDTH). */
static void bq_unpack_u8(const int8_t *w, unsigned bits, unsigned sh, unsigned taps,
                         unsigned cpairs, int8_t *out)
{
#define BQ_CALL(b, s) bq_unpack_u8_w(w, b, s, taps, cpairs, out)
    BQ_PER_WIDTH(bits, sh, BQ_CALL);
#undef BQ_CALL
}

/* bq_tile over activation bytes: the same sums (v instead of u; the caller subtracts
 * d * sum(q_k)). Two channel pairs at a time: their 16x2 code blocks come interleaved by
 * row (bq_unpack_u8), so one dword broadcast of four activation bytes feeds both, and each int16
 * lane pair holds one row's two pair sums; vpmaddwd by ones adds them into int32 every `run`
 * steps. Lanes of the A sums are rows 0-3 and 8-11, of the B sums rows 4-7 and 12-15. */
static inline __attribute__((always_inline)) void
bq_tile_u8_n(const int8_t *w, const uint8_t *x, const size_t *pos, const uint32_t *toff,
             unsigned taps, unsigned cs, unsigned cpairs, unsigned run, float *y, size_t ys,
             unsigned rows, unsigned np, unsigned npos)
{
    __m256i a[2 * BQ_U8_PT], lo[BQ_U8_PT], hi[BQ_U8_PT];
    __m256i s0a, s0b, s1a, s1b, s2a, s2b, s3a, s3b, s4a, s4b;
    const __m256i ones = _mm256_set1_epi16(1);
    unsigned t, p, q, n = 0, first = 1;
    (void)np; /* == npos (bq_tile_u8) */
    (void)ones; /* unused with VNNI */
    s0a = s0b = s1a = s1b = s2a = s2b = s3a = s3b = s4a = s4b =
        _mm256_setzero_si256();
#define BQ_U8_POS(q, xq)                                                                      \
    do {                                                                                      \
        if (npos > q) {                                                                       \
            __m256i xv = bcast(xq);                                                           \
            s##q##a = BQ_U8_DOT(s##q##a, xv, wa);                                             \
            s##q##b = BQ_U8_DOT(s##q##b, xv, wb);                                             \
        }                                                                                     \
    } while (0)
#define BQ_U8_STEP                                                                            \
    do {                                                                                      \
        BQ_U8_POS(0, x0 + o);                                                                 \
        BQ_U8_POS(1, x1 + o);                                                                 \
        BQ_U8_POS(2, x2 + o);                                                                 \
        BQ_U8_POS(3, x3 + o);                                                                 \
        BQ_U8_POS(4, x4 + o);                                                                 \
        if (!BQ_VNNI && ++n == run) {                                                         \
            n = 0;                                                                            \
            BQ_U8_WIDEN;                                                                      \
        }                                                                                     \
    } while (0)
#define BQ_U8_ACC(i, v)                                                                       \
    do {                                                                                      \
        if (npos > (i) / 2u) {                                                                \
            __m256i m_ = BQ_U8_I32(v, ones);                                                  \
            a[i] = first ? m_ : _mm256_add_epi32(a[i], m_);                                   \
            v = _mm256_setzero_si256();                                                       \
        } else {                                                                              \
            a[i] = _mm256_setzero_si256();                                                    \
        }                                                                                     \
    } while (0)
#define BQ_U8_WIDEN                                                                           \
    do {                                                                                      \
        BQ_U8_ACC(0, s0a);                                                                    \
        BQ_U8_ACC(1, s0b);                                                                    \
        BQ_U8_ACC(2, s1a);                                                                    \
        BQ_U8_ACC(3, s1b);                                                                    \
        BQ_U8_ACC(4, s2a);                                                                    \
        BQ_U8_ACC(5, s2b);                                                                    \
        BQ_U8_ACC(6, s3a);                                                                    \
        BQ_U8_ACC(7, s3b);                                                                    \
        BQ_U8_ACC(8, s4a);                                                                    \
        BQ_U8_ACC(9, s4b);                                                                    \
        first = 0;                                                                            \
    } while (0)
    for (t = 0; t < taps; ++t) {
        size_t off = (size_t)toff[t] * cs;
        const uint8_t *x0 = x + pos[0] + off, *x1 = x + pos[1] + off, *x2 = x + pos[2] + off;
        const uint8_t *x3 = x + pos[3] + off, *x4 = x + pos[4] + off;
        for (p = 0; p + 1u < cpairs; p += 2u) {
            /* Interleaved by bq_unpack_u8. */
            __m256i wa = _mm256_loadu_si256((const __m256i *)(const void *)w);
            __m256i wb = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32));
            size_t o = 2u * p;
            w += 64;
#define bcast(ptr) bq_bcast((const int16_t *)(const void *)(ptr))
            BQ_U8_STEP;
#undef bcast
        }
        if (p < cpairs) {
            /* A lone last pair: its two bytes are read twice, against zero codes. */
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(const void *)w);
            __m256i wa = _mm256_unpacklo_epi16(w0, _mm256_setzero_si256());
            __m256i wb = _mm256_unpackhi_epi16(w0, _mm256_setzero_si256());
            size_t o = 2u * p;
            w += 32;
#define bcast(ptr) bq_bcast2(ptr)
            BQ_U8_STEP;
#undef bcast
        }
    }
    BQ_U8_WIDEN;
#undef BQ_U8_POS
#undef BQ_U8_STEP
#undef BQ_U8_ACC
#undef BQ_U8_WIDEN
    for (q = 0; q < BQ_U8_PT; ++q) {
        lo[q] = _mm256_permute2x128_si256(a[2 * q], a[2 * q + 1], 0x20);
        hi[q] = _mm256_permute2x128_si256(a[2 * q], a[2 * q + 1], 0x31);
    }
    bq_put8(lo, npos, y, ys, rows, npos);
    if (rows > 8u) {
        bq_put8(hi, npos, y + 8u * ys, ys, rows - 8u, npos);
    }
}

/* bq_tile_u8 over the tile's np <= BQ_U8_PT positions only (as bq_tile). */
static void bq_tile_u8(const int8_t *w, const uint8_t *x, const size_t *pos, const uint32_t *toff,
                       unsigned taps, unsigned cs, unsigned cpairs, unsigned run, float *y,
                       size_t ys, unsigned rows, unsigned np)
{
    switch (np) {
    case 1u:
        bq_tile_u8_n(w, x, pos, toff, taps, cs, cpairs, run, y, ys, rows, np, 1u);
        break;
    case 2u:
        bq_tile_u8_n(w, x, pos, toff, taps, cs, cpairs, run, y, ys, rows, np, 2u);
        break;
    case 3u:
        bq_tile_u8_n(w, x, pos, toff, taps, cs, cpairs, run, y, ys, rows, np, 3u);
        break;
    case 4u:
        bq_tile_u8_n(w, x, pos, toff, taps, cs, cpairs, run, y, ys, rows, np, 4u);
        break;
    default:
        bq_tile_u8_n(w, x, pos, toff, taps, cs, cpairs, run, y, ys, rows, np, BQ_U8_PT);
        break;
    }
}

/*@section ktile1*/
/* Fully connected kernels read a block's codes once, front to back: a software prefetch
 * BQ_PF_AHEAD bytes ahead in the stream (through an integer, so no out-of-bounds pointer is
 * formed; a prefetch never faults). The hardware prefetchers stop at 4 KiB pages: without
 * it a 4096 x 4096 GEMV read its weights at 0.58x (8 planes) and 0.49x (2 planes) the rate
 * of a STREAM-style read of the same bytes (bench_gemv.py, a 2.1 GHz Xeon); with it, at
 * 0.8x to 1.1x. */
#define BQ_PF_AHEAD 4096u
static inline void bq_prefetch(const int8_t *p)
{
    /* The GNU builtin (as the attributes here): gcc 12 dropped _mm_prefetch of this address
     * where bq_tile1_u8p is inlined. */
    __builtin_prefetch((const void *)(uintptr_t)((uintptr_t)p + BQ_PF_AHEAD), 0, 3);
}

static void bq_tile1(const int8_t *w, unsigned bits, const int16_t *x, unsigned cpairs,
                     unsigned sh, int32_t *acc)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const __m128i shc = _mm_cvtsi32_si128((int)sh);
    unsigned p = 0;
    for (; p + 2u <= cpairs; p += 2u) {
        __m256i c0, c1;
        if (bits == 8u) {
            bq_prefetch(w + 32u * p);
        }
        c0 = bq_ld(w, bits, cpairs, p);
        c1 = bq_ld(w, bits, cpairs, p + 1u);
        __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(c0));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(c0, 1));
        __m256i w2 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(c1));
        __m256i w3 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(c1, 1));
        __m256i x0 = bq_bcast(x + 2u * p), x1 = bq_bcast(x + 2u * p + 2u);
        if (sh) {
            w0 = _mm256_sra_epi16(w0, shc);
            w1 = _mm256_sra_epi16(w1, shc);
            w2 = _mm256_sra_epi16(w2, shc);
            w3 = _mm256_sra_epi16(w3, shc);
        }
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(w0, x0));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(w1, x0));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(w2, x1));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(w3, x1));
    }
    for (; p < cpairs; ++p) {
        __m256i c0 = bq_ld(w, bits, cpairs, p);
        __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(c0));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(c0, 1));
        __m256i x0 = bq_bcast(x + 2u * p);
        if (sh) {
            w0 = _mm256_sra_epi16(w0, shc);
            w1 = _mm256_sra_epi16(w1, shc);
        }
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(w0, x0));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(w1, x0));
    }
    _mm256_storeu_si256((__m256i *)(void *)acc, _mm256_add_epi32(a0, a2));
    _mm256_storeu_si256((__m256i *)(void *)(acc + 8), _mm256_add_epi32(a1, a3));
}

/* bq_tile1 over activation bytes, two channel pairs a step as in bq_tile_u8. Packed codes are
 * multiplied as their offset-binary fields >> sh (bq_ldf: no sign extension), so the sums
 * are of v * (q_k + 2^(bits-1-sh)): the caller subtracts 2^(bits-1-sh) * sum(v). `run`
 * bounds the fields' magnitude, not the codes'. */
static void bq_tile1_u8(const int8_t *w, unsigned bits, const uint8_t *x, unsigned cpairs,
                        unsigned sh, unsigned run, int32_t *acc)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, sa = a0, sb = a0;
    const __m128i shc = _mm_cvtsi32_si128((int)sh);
    const __m256i keep = _mm256_set1_epi8((char)(0xFFu >> sh));
    const __m256i sign = _mm256_set1_epi8((char)(0x80u >> sh));
    const __m256i ones = _mm256_set1_epi16(1);
    unsigned p, n = 0;
    for (p = 0; p < cpairs; p += 2u) {
        int two = p + 1u < cpairs;
        __m256i w0, w1 = _mm256_setzero_si256();
        __m256i xv = two ? bq_bcast((const int16_t *)(const void *)(x + 2u * p))
                         : bq_bcast2(x + 2u * p);
        if (bits == 8u) {
            bq_prefetch(w + 32u * p);
            w0 = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32u * p));
            if (two) {
                w1 = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32u * p + 32u));
            }
            if (sh) {
                w0 = bq_sra8(w0, shc, keep, sign);
                w1 = bq_sra8(w1, shc, keep, sign);
            }
        } else {
            w0 = bq_ldf(w, bits, cpairs, p, sh);
            if (two) {
                w1 = bq_ldf(w, bits, cpairs, p + 1u, sh);
            }
        }
        sa = BQ_U8_DOT(sa, xv, _mm256_unpacklo_epi16(w0, w1));
        sb = BQ_U8_DOT(sb, xv, _mm256_unpackhi_epi16(w0, w1));
        if (!BQ_VNNI && ++n == run) {
            n = 0;
            a0 = _mm256_add_epi32(a0, BQ_U8_I32(sa, ones));
            a1 = _mm256_add_epi32(a1, BQ_U8_I32(sb, ones));
            sa = _mm256_setzero_si256();
            sb = sa;
        }
    }
    (void)ones;
    a0 = _mm256_add_epi32(a0, BQ_U8_I32(sa, ones));
    a1 = _mm256_add_epi32(a1, BQ_U8_I32(sb, ones));
    _mm256_storeu_si256((__m256i *)(void *)acc, _mm256_permute2x128_si256(a0, a1, 0x20));
    _mm256_storeu_si256((__m256i *)(void *)(acc + 8), _mm256_permute2x128_si256(a0, a1, 0x31));
}

/* bq_tile1_u8 for packed codes, or one part of split codes (bq_tile1_parts), at bits = 4 or 2
 * bits a field, G = 8 / bits chunks per 32-byte load: field f of every byte
 * ((w >> (f * bits + sh)) & mask, f < F = 8 / bits) holds, in group j (its 32 / G bytes),
 * rows f * W .. f * W + W - 1 (W = 16 / G words, one row's channel pair each) of chunk j, so
 * F masks decode 32 * G codes with no unpacking, and one shuffle of 2 * G activation bytes
 * (pair j broadcast to group j's words) feeds all F products. Each int16 word sums one
 * row's products over the pairs of its group; widening splits even and odd words into
 * int32, and the groups are added per row at the end. Chunks past the last whole load go
 * through bq_tile1_u8. Same sums, same caller correction. */
/* Always inlined (a GNU attribute, as the intrinsics are) and called with a constant width:
 * called from several places gcc kept it out of line, where its accumulator arrays live in
 * memory (2x the time at 2 and 4 bits). */
static inline __attribute__((always_inline)) void
bq_tile1_u8p(const int8_t *w, unsigned bits, const uint8_t *x, unsigned cpairs, unsigned sh,
             unsigned run, int32_t *acc)
{
    const unsigned G = 8u / bits, F = 8u / bits, W = 16u / G;
    const __m256i mask = _mm256_set1_epi8((char)(((1u << bits) - 1u) >> sh));
    const __m256i ctl = bits == 2u ? _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3,
                                                      2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7,
                                                      6, 7, 6, 7)
                                   : _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                                      0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
                                                      2, 3, 2, 3);
    __m256i s[4], e[4], o[4];
    int32_t ev[8], od[8];
    unsigned g, f, n = 0, groups = cpairs / G, i, j;
    for (f = 0; f < 4u; ++f) {
        s[f] = e[f] = o[f] = _mm256_setzero_si256();
    }
    for (g = 0; g < groups; ++g) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32u * g));
        __m256i xq;
        bq_prefetch(w + 32u * g);
        if (bits == 2u) {
            long long xv;
            memcpy(&xv, x + 8u * g, sizeof xv);
            xq = _mm256_shuffle_epi8(_mm256_set1_epi64x(xv), ctl);
        } else {
            int32_t xv;
            memcpy(&xv, x + 4u * g, sizeof xv);
            xq = _mm256_shuffle_epi8(_mm256_set1_epi32(xv), ctl);
        }
        if (sh) {
            v = _mm256_srl_epi16(v, _mm_cvtsi32_si128((int)sh));
        }
        for (f = 0; f < F; ++f) {
            __m256i c = _mm256_and_si256(f ? _mm256_srli_epi16(v, (int)(f * bits)) : v, mask);
            s[f] = _mm256_add_epi16(s[f], _mm256_maddubs_epi16(xq, c));
        }
        if (++n == run || g + 1u == groups) {
            n = 0;
            for (f = 0; f < F; ++f) {
                e[f] = _mm256_add_epi32(e[f], _mm256_srai_epi32(_mm256_slli_epi32(s[f], 16), 16));
                o[f] = _mm256_add_epi32(o[f], _mm256_srai_epi32(s[f], 16));
                s[f] = _mm256_setzero_si256();
            }
        }
    }
    for (f = 0; f < F; ++f) {
        _mm256_storeu_si256((__m256i *)(void *)ev, e[f]);
        _mm256_storeu_si256((__m256i *)(void *)od, o[f]);
        for (i = 0; i < W / 2u; ++i) {
            int32_t a = 0, b = 0;
            for (j = 0; j < G; ++j) {
                a += ev[j * (W / 2u) + i];
                b += od[j * (W / 2u) + i];
            }
            acc[f * W + 2u * i] = a;
            acc[f * W + 2u * i + 1u] = b;
        }
    }
    if (groups * G < cpairs) {
        int32_t tail[16];
        bq_tile1_u8(w + 32u * groups, bits, x + 2u * G * groups, cpairs - G * groups, sh, run,
                    tail);
        for (i = 0; i < 16u; ++i) {
            acc[i] += tail[i];
        }
    }
}

/* bq_tile1_u8p for a 1-bit part of split codes (never shifted: a cut falls between bits): 8
 * chunks per 32-byte load, bit f of group j's 4 bytes holds rows 2f and 2f + 1 of chunk j, so
 * one shuffle of 16 activation bytes feeds 8 products, one per bit. Its own function with one
 * named accumulator per bit: bq_tile1_u8p with arrays of 8 kept them in memory, and the 2-
 * and 4-bit kernels ran 2x slower. A word sums at most 510 a load: widened every 64. */
static void bq_tile1_u8p1(const int8_t *w, const uint8_t *x, unsigned cpairs, int32_t *acc)
{
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i ctl = _mm256_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9, 8,
                                         9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 15, 14, 15);
    __m256i s0, s1, s2, s3, s4, s5, s6, s7, e[8], o[8];
    int32_t ev[8], od[8];
    unsigned g, f, n = 0, groups = cpairs / 8u, i;
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = _mm256_setzero_si256();
    for (f = 0; f < 8u; ++f) {
        e[f] = o[f] = _mm256_setzero_si256();
    }
#define BQ_P1(f)                                                                              \
    s##f = _mm256_add_epi16(                                                                  \
        s##f, _mm256_maddubs_epi16(xq, _mm256_and_si256(_mm256_srli_epi16(v, f), one)))
#define BQ_W1(f)                                                                              \
    do {                                                                                      \
        e[f] = _mm256_add_epi32(e[f], _mm256_srai_epi32(_mm256_slli_epi32(s##f, 16), 16));    \
        o[f] = _mm256_add_epi32(o[f], _mm256_srai_epi32(s##f, 16));                           \
        s##f = _mm256_setzero_si256();                                                        \
    } while (0)
    for (g = 0; g < groups; ++g) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32u * g));
        __m256i xq;
        bq_prefetch(w + 32u * g);
        xq = _mm256_shuffle_epi8(
            _mm256_broadcastsi128_si256(
                _mm_loadu_si128((const __m128i *)(const void *)(x + 16u * g))),
            ctl);
        BQ_P1(0);
        BQ_P1(1);
        BQ_P1(2);
        BQ_P1(3);
        BQ_P1(4);
        BQ_P1(5);
        BQ_P1(6);
        BQ_P1(7);
        if (++n == 64u || g + 1u == groups) {
            n = 0;
            BQ_W1(0);
            BQ_W1(1);
            BQ_W1(2);
            BQ_W1(3);
            BQ_W1(4);
            BQ_W1(5);
            BQ_W1(6);
            BQ_W1(7);
        }
    }
#undef BQ_P1
#undef BQ_W1
    for (f = 0; f < 8u; ++f) {
        int32_t a = 0, b = 0;
        _mm256_storeu_si256((__m256i *)(void *)ev, e[f]);
        _mm256_storeu_si256((__m256i *)(void *)od, o[f]);
        for (i = 0; i < 8u; ++i) {
            a += ev[i];
            b += od[i];
        }
        acc[2u * f] = a;
        acc[2u * f + 1u] = b;
    }
    if (groups * 8u < cpairs) {
        int32_t tail[16];
        bq_tile1_u8(w + 32u * groups, 1u, x + 16u * groups, cpairs - 8u * groups, 0u, 64u, tail);
        for (i = 0; i < 16u; ++i) {
            acc[i] += tail[i];
        }
    }
}

/* Fully connected layers stored at a split width (bq_part_bits), run at k = bits - sh planes:
 * f >> sh is the concatenation of the parts' bits above sh, so each part's packed array (raw
 * fields of 4, 2 or 1 bits over the block's chunks) goes through bq_tile1_u8p as it is, 2 to
 * 8 chunks per load with no reassembly: a part above the cut added at its place, the part
 * the cut falls in shifted right by the rest, and the parts below it not read at all (a
 * run-time count below K reads only the bytes of its planes). Same sums, same caller
 * correction as bq_tile1_u8. */
static void bq_tile1_parts(const int8_t *w, unsigned bits, unsigned sh, const uint8_t *x,
                           unsigned cpairs, int32_t *acc)
{
    int32_t part[16];
    unsigned i, r, pw, pos = bits;
    for (r = 0; r < 16u; ++r) {
        acc[r] = 0;
    }
    for (i = 0; (pw = bq_part_bits(bits, i)) != 0u; ++i) {
        pos -= pw; /* the place of the part's lowest bit in f */
        if (pos + pw > sh) {
            unsigned psh = sh > pos ? sh - pos : 0u, place = pos > sh ? pos - sh : 0u;
            /* The int16 steps of bq_u8_steps (a later section) for fields up to top. */
            unsigned top = ((1u << pw) - 1u) >> psh;
            /* Constant widths: bq_tile1_u8p is inlined and specialised per width (with
             * the width a variable its accumulators stayed in memory: 1.7x the time). */
            if (pw == 4u) {
                bq_tile1_u8p(w, 4u, x, cpairs, psh, 32767u / (510u * top), part);
            } else if (pw == 2u) {
                bq_tile1_u8p(w, 2u, x, cpairs, psh, 32767u / (510u * top), part);
            } else {
                bq_tile1_u8p1(w, x, cpairs, part);
            }
            for (r = 0; r < 16u; ++r) {
                acc[r] += part[r] * (int32_t)(1u << place);
            }
        }
        w += 4u * pw * cpairs;
    }
}
