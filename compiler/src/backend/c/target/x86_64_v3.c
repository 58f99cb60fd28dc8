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
static void bq_tile(const int8_t *w, const int16_t *x, const size_t *pos, const uint32_t *toff,
                    unsigned taps, unsigned cs, unsigned cpairs, unsigned sh, int32_t *acc)
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
    for (q = 0; q < BQ_PT; ++q) {
        _mm256_storeu_si256((__m256i *)(void *)(acc + 16u * q), a0[q]);
        _mm256_storeu_si256((__m256i *)(void *)(acc + 16u * q + 8u), a1[q]);
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
