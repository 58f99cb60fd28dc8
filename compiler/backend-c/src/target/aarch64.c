/*@section kcommon*/
/* NEON kernels over the unpacked codes (target aarch64): vld2q_s8 splits a 16x2 block into
 * the codes of the two channels, which are sign-extended to int16 and multiplied into int32
 * accumulators with widening multiply-accumulates (vmlal), exact for every plane count. */
#if !defined(__aarch64__) || !defined(__ARM_NEON)
#error "target aarch64 needs an AArch64 compiler with NEON"
#endif
#define BQ_PT 4
#define bq_quant bp_quantize

/* The codes of `bits`-bit offset-binary fields in the low bits of every byte: f - 2^(bits-1). */
static int8x16_t bq_sext(uint8x16_t f, unsigned bits)
{
    return vsubq_s8(vreinterpretq_s8_u8(f), vdupq_n_s8((int8_t)(1 << (bits - 1u))));
}

/* Fields 0-15 and 16-31 of one part of a chunk stored at pw = 4, 2 or 1 bits a field
 * (lowering: pack_chunk), masked out of shifted copies. */
static void bq_part(const int8_t *w, unsigned pw, uint8x16_t *lo, uint8x16_t *hi)
{
    if (pw == 4u) {
        uint8x16_t b = vld1q_u8((const uint8_t *)w);
        *lo = vandq_u8(b, vdupq_n_u8(15));
        *hi = vshrq_n_u8(b, 4);
    } else if (pw == 2u) {
        uint8x8_t b = vld1_u8((const uint8_t *)w), m = vdup_n_u8(3);
        *lo = vcombine_u8(vand_u8(b, m), vand_u8(vshr_n_u8(b, 2), m));
        *hi = vcombine_u8(vand_u8(vshr_n_u8(b, 4), m), vshr_n_u8(b, 6));
    } else {
        /* Byte i of the 4 holds codes i, i + 4, ..., i + 28 at bits 0-7: replicated to every
         * 32-bit lane, lane j of 4 shifted right by j (lo) or 4 + j (hi). */
        static const int8_t slo[16] = {0, 0, 0, 0, -1, -1, -1, -1, -2, -2, -2, -2, -3, -3, -3, -3};
        uint32_t v;
        uint8x16_t b, one = vdupq_n_u8(1);
        int8x16_t s = vld1q_s8(slo);
        memcpy(&v, w, sizeof v);
        b = vreinterpretq_u8_u32(vdupq_n_u32(v));
        *lo = vandq_u8(vshlq_u8(b, s), one);
        *hi = vandq_u8(vshlq_u8(b, vaddq_s8(s, vdupq_n_s8(-4))), one);
    }
}

/* Codes 0-15 and 16-31 of chunk c of a block of `chunks` chunks stored at bits < 8 bits a
 * code (lowering: pack_block): the offset-binary fields reassembled from their parts
 * (bq_part_bits, each an array of the block's chunks), most significant first, less the
 * offset. */
static void bq_dec(const int8_t *w, unsigned bits, size_t chunks, size_t c, int8x16_t *lo,
                   int8x16_t *hi)
{
    uint8x16_t flo = vdupq_n_u8(0), fhi = flo;
    unsigned i, pw;
    for (i = 0; (pw = bq_part_bits(bits, i)) != 0u; ++i) {
        uint8x16_t plo, phi;
        int8x16_t up = vdupq_n_s8((int8_t)pw);
        bq_part(w + 4u * pw * c, pw, &plo, &phi);
        flo = vorrq_u8(vshlq_u8(flo, up), plo);
        fhi = vorrq_u8(vshlq_u8(fhi, up), phi);
        w += 4u * pw * chunks;
    }
    *lo = bq_sext(flo, bits);
    *hi = bq_sext(fhi, bits);
}


/*@section ktile*/
/* `chunks` chunks stored at `bits` bits a code to int8 codes at k = K - sh planes (an
 * arithmetic shift right: vshlq_s8 by -sh). */
static void bq_unpack(const int8_t *w, unsigned bits, unsigned sh, size_t chunks, int8_t *out)
{
    const int8x16_t shv = vdupq_n_s8((int8_t)(-(int)sh));
    size_t c;
    for (c = 0; c < chunks; ++c) {
        int8x16_t lo, hi;
        if (bits == 8u) {
            lo = vld1q_s8(w + 32u * c);
            hi = vld1q_s8(w + 32u * c + 16u);
        } else {
            bq_dec(w, bits, chunks, c, &lo, &hi);
        }
        vst1q_s8(out + 32u * c, vshlq_s8(lo, shv));
        vst1q_s8(out + 32u * c + 16u, vshlq_s8(hi, shv));
    }
}

/* Stores the sums of rows r < rows, positions q < np as int32 bits at y[r * ys + q]; w: int8
 * codes (bq_unpack). */
static void bq_tile(const int8_t *w, const int16_t *x, const size_t *pos, const uint32_t *toff,
                    unsigned taps, unsigned cs, unsigned cpairs, float *y, size_t ys,
                    unsigned rows, unsigned np)
{
    int32x4_t a[BQ_PT][4];
    int32_t acc[16 * BQ_PT];
    unsigned t, p, q, r;
    for (q = 0; q < BQ_PT; ++q) {
        for (r = 0; r < 4u; ++r) {
            a[q][r] = vdupq_n_s32(0);
        }
    }
    for (t = 0; t < taps; ++t) {
        size_t off = (size_t)toff[t] * cs;
        for (p = 0; p < cpairs; ++p) {
            int8x16x2_t v = vld2q_s8(w);
            int16x8_t c[4];
            c[0] = vmovl_s8(vget_low_s8(v.val[0]));
            c[1] = vmovl_high_s8(v.val[0]);
            c[2] = vmovl_s8(vget_low_s8(v.val[1]));
            c[3] = vmovl_high_s8(v.val[1]);
            w += 32;
            for (q = 0; q < BQ_PT; ++q) {
                const int16_t *xp = x + pos[q] + off + 2u * p;
                int16_t x0 = xp[0], x1 = xp[1];
                a[q][0] = vmlal_n_s16(a[q][0], vget_low_s16(c[0]), x0);
                a[q][1] = vmlal_high_n_s16(a[q][1], c[0], x0);
                a[q][2] = vmlal_n_s16(a[q][2], vget_low_s16(c[1]), x0);
                a[q][3] = vmlal_high_n_s16(a[q][3], c[1], x0);
                a[q][0] = vmlal_n_s16(a[q][0], vget_low_s16(c[2]), x1);
                a[q][1] = vmlal_high_n_s16(a[q][1], c[2], x1);
                a[q][2] = vmlal_n_s16(a[q][2], vget_low_s16(c[3]), x1);
                a[q][3] = vmlal_high_n_s16(a[q][3], c[3], x1);
            }
        }
    }
    for (q = 0; q < BQ_PT; ++q) {
        for (r = 0; r < 4u; ++r) {
            vst1q_s32(acc + 16u * q + 4u * r, a[q][r]);
        }
    }
    for (r = 0; r < rows; ++r) {
        for (q = 0; q < np; ++q) {
            memcpy(y + r * ys + q, acc + q * 16u + r, sizeof(int32_t));
        }
    }
}

/*@section ktile1*/
/* The codes of channel 0 and 1 of the 16x2 block of pair p as int16, rows 0-7 and 8-15, at
 * K - sh planes (packed chunks are decoded, then split into the even and odd codes). */
static void bq_load(const int8_t *w, unsigned bits, unsigned cpairs, unsigned p, int16x8_t shv,
                    int16x8_t *c)
{
    int8x16x2_t v;
    if (bits == 8u) {
        v = vld2q_s8(w + 32u * p);
    } else {
        int8x16_t lo, hi;
        bq_dec(w, bits, cpairs, p, &lo, &hi);
        v.val[0] = vuzp1q_s8(lo, hi);
        v.val[1] = vuzp2q_s8(lo, hi);
    }
    c[0] = vshlq_s16(vmovl_s8(vget_low_s8(v.val[0])), shv);
    c[1] = vshlq_s16(vmovl_high_s8(v.val[0]), shv);
    c[2] = vshlq_s16(vmovl_s8(vget_low_s8(v.val[1])), shv);
    c[3] = vshlq_s16(vmovl_high_s8(v.val[1]), shv);
}

static void bq_tile1(const int8_t *w, unsigned bits, const int16_t *x, unsigned cpairs,
                     unsigned sh, int32_t *acc)
{
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    const int16x8_t shv = vdupq_n_s16((int16_t)(-(int)sh));
    unsigned p;
    for (p = 0; p < cpairs; ++p) {
        int16x8_t c[4];
        int16_t x0 = x[2u * p], x1 = x[2u * p + 1u];
        bq_load(w, bits, cpairs, p, shv, c);
        a0 = vmlal_n_s16(a0, vget_low_s16(c[0]), x0);
        a1 = vmlal_high_n_s16(a1, c[0], x0);
        a2 = vmlal_n_s16(a2, vget_low_s16(c[1]), x0);
        a3 = vmlal_high_n_s16(a3, c[1], x0);
        a0 = vmlal_n_s16(a0, vget_low_s16(c[2]), x1);
        a1 = vmlal_high_n_s16(a1, c[2], x1);
        a2 = vmlal_n_s16(a2, vget_low_s16(c[3]), x1);
        a3 = vmlal_high_n_s16(a3, c[3], x1);
    }
    vst1q_s32(acc, a0);
    vst1q_s32(acc + 4, a1);
    vst1q_s32(acc + 8, a2);
    vst1q_s32(acc + 12, a3);
}
