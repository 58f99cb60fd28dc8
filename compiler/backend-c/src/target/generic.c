/*@section kcommon*/
/* Portable scalar kernels over the unpacked codes (target generic). */
#define BQ_PT 4
#define bq_quant bp_quantize

/* floor(q / 2^s) without relying on the implementation-defined >> of negative values. */
static int32_t bq_shr(int32_t q, unsigned s)
{
    return q >= 0 ? q >> s : -(int32_t)((uint32_t)(-(q + 1)) >> s) - 1;
}

/* Code n of chunk c of a block of `chunks` chunks stored at `bits` bits a code (lowering:
 * pack_block; below 8 bits the field is q + 2^(bits-1), split into the parts of
 * bq_part_bits, each part an array of the block's chunks). */
static int32_t bq_code(const int8_t *w, unsigned bits, size_t chunks, size_t c, unsigned n)
{
    unsigned f = 0, i, pw;
    if (bits == 8u) {
        return w[32u * c + n];
    }
    for (i = 0; (pw = bq_part_bits(bits, i)) != 0u; ++i) {
        unsigned len = 4u * pw, byte = (uint8_t)w[len * c + n % len];
        f = f << pw | ((byte >> (pw * (n / len))) & ((1u << pw) - 1u));
        w += len * chunks;
    }
    return (int32_t)f - (int32_t)(1u << (bits - 1u));
}


/*@section ktile*/
/* `chunks` chunks stored at `bits` bits a code to int8 codes at k = K - sh planes. */
static void bq_unpack(const int8_t *w, unsigned bits, unsigned sh, size_t chunks, int8_t *out)
{
    size_t c;
    unsigned n;
    for (c = 0; c < chunks; ++c) {
        for (n = 0; n < 32u; ++n) {
            out[32u * c + n] = (int8_t)bq_shr(bq_code(w, bits, chunks, c, n), sh);
        }
    }
}

/* Sums of codes(r) * x[pos[q] + toff[t] * cs + .] over taps t and channels, for rows r < rows
 * and positions q < np, stored as int32 bits at y[r * ys + q]; w: int8 codes (bq_unpack). */
static void bq_tile(const int8_t *w, const int16_t *x, const size_t *pos, const uint32_t *toff,
                    unsigned taps, unsigned cs, unsigned cpairs, float *y, size_t ys,
                    unsigned rows, unsigned np)
{
    int32_t a[16 * BQ_PT], c[32];
    unsigned t, p, q, r;
    for (r = 0; r < 16u * BQ_PT; ++r) {
        a[r] = 0;
    }
    for (t = 0; t < taps; ++t) {
        size_t off = (size_t)toff[t] * cs;
        for (p = 0; p < cpairs; ++p) {
            for (r = 0; r < 16u; ++r) {
                c[r] = w[2u * r];
                c[16u + r] = w[2u * r + 1u];
            }
            w += 32;
            for (q = 0; q < BQ_PT; ++q) {
                const int16_t *xp = x + pos[q] + off + 2u * p;
                int32_t x0 = xp[0], x1 = xp[1];
                for (r = 0; r < 16u; ++r) {
                    a[q * 16u + r] += c[r] * x0 + c[16u + r] * x1;
                }
            }
        }
    }
    for (r = 0; r < rows; ++r) {
        for (q = 0; q < np; ++q) {
            memcpy(y + r * ys + q, a + q * 16u + r, sizeof(int32_t));
        }
    }
}

/*@section ktile1*/
/* The 16x2 codes of channel pair p of a block of `cpairs` at k = K - sh planes: c[r] for the
 * first channel, c[16 + r] for the second (contiguous per channel, so the row loops
 * vectorise). */
static void bq_load(const int8_t *w, unsigned bits, unsigned cpairs, unsigned p, unsigned sh,
                    int32_t *c)
{
    unsigned i;
    for (i = 0; i < 16u; ++i) {
        c[i] = bq_code(w, bits, cpairs, p, 2u * i);
        c[16u + i] = bq_code(w, bits, cpairs, p, 2u * i + 1u);
    }
    if (sh) {
        for (i = 0; i < 32u; ++i) {
            c[i] = bq_shr(c[i], sh);
        }
    }
}

/* One position, one tap (fully connected layers): acc[r] for the 16 rows of the block. */
static void bq_tile1(const int8_t *w, unsigned bits, const int16_t *x, unsigned cpairs,
                     unsigned sh, int32_t *acc)
{
    int32_t c[32];
    unsigned p, r;
    for (r = 0; r < 16u; ++r) {
        acc[r] = 0;
    }
    for (p = 0; p < cpairs; ++p) {
        int32_t x0 = x[2 * p], x1 = x[2 * p + 1];
        bq_load(w, bits, cpairs, p, sh, c);
        for (r = 0; r < 16u; ++r) {
            acc[r] += c[r] * x0 + c[16u + r] * x1;
        }
    }
}
