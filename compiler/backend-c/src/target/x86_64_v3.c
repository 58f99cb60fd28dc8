/*@section kcommon*/
/* AVX2 kernels over the unpacked codes (target x86-64-v3). Products are exact: codes are
 * sign-extended to int16 and multiplied with the int16 activations by vpmaddwd, whose pairwise
 * int32 sums cannot overflow (|q| <= 128, |u| <= 384); vpmaddubsw (u8 x s8 with int16
 * saturation) is not used because it would saturate at 8 planes. */
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

/*@section ktile*/
/* 8x8 transpose: r[q] holds rows 0-7 of position q on entry, positions 0-7 of row q on exit. */
static void bq_tr8(__m256 *r)
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

/* Rows 0-7 of the tile (one vector per position) to y[r * ys + q], r < rows, q < np, as bits. */
static void bq_put8(const __m256i *a, float *y, size_t ys, unsigned rows, unsigned np)
{
    __m256 v[8];
    unsigned q, r;
    for (q = 0; q < 8u; ++q) {
        v[q] = q < BQ_PT ? _mm256_castsi256_ps(a[q < BQ_PT ? q : 0]) : _mm256_setzero_ps();
    }
    bq_tr8(v);
    for (r = 0; r < rows && r < 8u; ++r) {
        float *d = y + r * ys;
        if (np == BQ_PT) {
            _mm_storeu_ps(d, _mm256_castps256_ps128(v[r]));
            _mm_storel_pi((__m64 *)(void *)(d + 4), _mm256_extractf128_ps(v[r], 1));
        } else {
            float lane[8];
            _mm256_storeu_ps(lane, v[r]);
            memcpy(d, lane, np * sizeof(float));
        }
    }
}

/* Stores the sums of rows r < rows, positions q < np as int32 bits at y[r * ys + q]. */
static void bq_tile(const int8_t *w, const int16_t *x, const size_t *pos, const uint32_t *toff,
                    unsigned taps, unsigned cs, unsigned cpairs, unsigned sh, float *y,
                    size_t ys, unsigned rows, unsigned np)
{
    __m256i a0[BQ_PT], a1[BQ_PT];
    const __m128i shc = _mm_cvtsi32_si128((int)sh);
    unsigned t, p, q;
    for (q = 0; q < BQ_PT; ++q) {
        a0[q] = _mm256_setzero_si256();
        a1[q] = _mm256_setzero_si256();
    }
    for (t = 0; t < taps; ++t) {
        const int16_t *xt[BQ_PT];
        for (q = 0; q < BQ_PT; ++q) {
            xt[q] = x + pos[q] + (size_t)toff[t] * cs;
        }
        for (p = 0; p < cpairs; ++p) {
            __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)w));
            __m256i w1 =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + 16)));
            w += 32;
            if (sh) {
                w0 = _mm256_sra_epi16(w0, shc);
                w1 = _mm256_sra_epi16(w1, shc);
            }
            for (q = 0; q < BQ_PT; ++q) {
                __m256i xb = bq_bcast(xt[q] + 2u * p);
                a0[q] = _mm256_add_epi32(a0[q], _mm256_madd_epi16(w0, xb));
                a1[q] = _mm256_add_epi32(a1[q], _mm256_madd_epi16(w1, xb));
            }
        }
    }
    bq_put8(a0, y, ys, rows, np);
    if (rows > 8u) {
        bq_put8(a1, y + 8u * ys, ys, rows - 8u, np);
    }
}

/*@section ktile1*/
static void bq_tile1(const int8_t *w, const int16_t *x, unsigned cpairs, unsigned sh,
                     int32_t *acc)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const __m128i shc = _mm_cvtsi32_si128((int)sh);
    unsigned p = 0;
    for (; p + 2u <= cpairs; p += 2u) {
        __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)w));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + 16)));
        __m256i w2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + 32)));
        __m256i w3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + 48)));
        __m256i x0 = bq_bcast(x + 2u * p), x1 = bq_bcast(x + 2u * p + 2u);
        w += 64;
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
        __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)w));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(w + 16)));
        __m256i x0 = bq_bcast(x + 2u * p);
        w += 32;
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
