/* Kernels shared by every layer (generic portable C99). Bit-exact with the Strata runtime's
 * integer path: activations are quantized with round-half-to-even (nearbyintf in the default
 * rounding mode) and clamped, sums are exact integers, and the f32 epilogue is evaluated as
 * (alpha*scale)*acc + (beta*scale)*usum + bias, left to right. Build in ISO C mode
 * (-std=c99), where GCC does not contract a*b+c into fused multiply-adds. */

/*@section bp_common*/
typedef struct {
    const uint64_t *planes; /* [K][rows][words]: planes 0..K-1 only */
    const float *alpha;     /* [S][rows] */
    const float *beta;      /* [S][rows] */
    const float *bias;      /* [S][rows] */
    const float *act;       /* [S][4]: scale, zero point, code range lo, hi */
    const uint8_t *counts;  /* the S plane counts with a side table */
    unsigned n_counts;
    unsigned rows, cols, words;
} bp_layer;

/*@section bp_conv_t*/
typedef struct {
    unsigned c, h, w, m, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, group;
} bp_conv;

/*@section pool2d_t*/
typedef struct {
    unsigned c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, eh, ew, dh, dw, include_pad;
} pool2d;

/*@section side*/
/* Side-table row of plane count k, or -1 when the layer cannot run at k. */
static int side_index(const uint8_t *counts, unsigned n_counts, unsigned k)
{
    unsigned j;
    for (j = 0; j < n_counts; ++j) {
        if (counts[j] == k) {
            return (int)j;
        }
    }
    return -1;
}

/*@section quant*/
/* u = clamp(round_half_even(x / scale) + zero, lo, hi) - zero; NaN gives 0. */
static void bp_quantize(const float *x, size_t n, float scale, float zero, float lo, float hi,
                        int16_t *u)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        float r = nearbyintf(x[i] / scale);
        if (r != r) {
            u[i] = 0;
        } else {
            float q = r + zero;
            if (q < lo) {
                q = lo;
            }
            if (q > hi) {
                q = hi;
            }
            u[i] = (int16_t)(q - zero);
        }
    }
}

/*@section bp_common2*/

/* acc = sum_i coeff_i * sum_{j: bit j of plane i set} v[j], coeff_0 = -2^(k-1),
 * coeff_i = 2^(k-1-i): the k-plane code dot product without unpacking the codes. */
static int64_t bp_dot(const uint64_t *row, size_t plane_stride, unsigned k, const int16_t *v,
                      size_t n)
{
    int64_t acc = 0;
    unsigned i;
    for (i = 0; i < k; ++i) {
        const uint64_t *w = row + (size_t)i * plane_stride;
        int32_t s = 0;
        size_t j;
        for (j = 0; j < n; ++j) {
            s += (int32_t)((w[j >> 6] >> (j & 63u)) & 1u) * (int32_t)v[j];
        }
        if (i == 0) {
            acc -= ((int64_t)1 << (k - 1)) * (int64_t)s;
        } else {
            acc += ((int64_t)1 << (k - 1 - i)) * (int64_t)s;
        }
    }
    return acc;
}

static float bp_epilogue(const bp_layer *L, unsigned j, unsigned ch, float scale, int64_t acc,
                         int64_t usum)
{
    float fa = L->alpha[j * L->rows + ch] * scale;
    float fb = L->beta[j * L->rows + ch] * scale;
    float t = fa * (float)acc;
    float v = fb * (float)usum;
    t = t + v;
    return t + L->bias[j * L->rows + ch];
}

/*@section bp_linear*/
static void bp_linear(const float *x, float *y, const bp_layer *L, unsigned k, unsigned j,
                      int16_t *u)
{
    float scale = L->act[4 * j], zero = L->act[4 * j + 1];
    size_t plane_stride = (size_t)L->rows * L->words;
    int64_t usum = 0;
    unsigned i, ch;
    bp_quantize(x, L->cols, scale, zero, L->act[4 * j + 2], L->act[4 * j + 3], u);
    for (i = 0; i < L->cols; ++i) {
        usum += u[i];
    }
    for (ch = 0; ch < L->rows; ++ch) {
        int64_t acc = bp_dot(L->planes + (size_t)ch * L->words, plane_stride, k, u, L->cols);
        y[ch] = bp_epilogue(L, j, ch, scale, acc, usum);
    }
}

/*@section bp_conv2d*/
/* 2-D convolution, one receptive field at a time (reduction order C/group, kh, kw as in the
 * planes); padding taps are u = 0. */
static void bp_conv2d(const float *x, float *y, const bp_layer *L, const bp_conv *g, unsigned k,
                      unsigned j, int16_t *u, int16_t *col)
{
    float scale = L->act[4 * j], zero = L->act[4 * j + 1];
    size_t plane_stride = (size_t)L->rows * L->words;
    unsigned cg = g->c / g->group, mg = g->m / g->group;
    size_t p_out = (size_t)g->oh * g->ow, hw = (size_t)g->h * g->w;
    unsigned gi, oh, ow, ci, a, b, mi;
    bp_quantize(x, (size_t)g->c * hw, scale, zero, L->act[4 * j + 2], L->act[4 * j + 3], u);
    for (gi = 0; gi < g->group; ++gi) {
        for (oh = 0; oh < g->oh; ++oh) {
            for (ow = 0; ow < g->ow; ++ow) {
                int64_t usum = 0;
                size_t t = 0;
                for (ci = 0; ci < cg; ++ci) {
                    const int16_t *plane = u + (size_t)(gi * cg + ci) * hw;
                    for (a = 0; a < g->kh; ++a) {
                        long ih = (long)(oh * g->sh + a * g->dh) - (long)g->ph;
                        for (b = 0; b < g->kw; ++b) {
                            long iw = (long)(ow * g->sw + b * g->dw) - (long)g->pw;
                            int16_t v = 0;
                            if (ih >= 0 && ih < (long)g->h && iw >= 0 && iw < (long)g->w) {
                                v = plane[(size_t)ih * g->w + (size_t)iw];
                            }
                            col[t++] = v;
                            usum += v;
                        }
                    }
                }
                for (mi = 0; mi < mg; ++mi) {
                    unsigned ch = gi * mg + mi;
                    int64_t acc =
                        bp_dot(L->planes + (size_t)ch * L->words, plane_stride, k, col, L->cols);
                    y[(size_t)ch * p_out + (size_t)oh * g->ow + ow] =
                        bp_epilogue(L, j, ch, scale, acc, usum);
                }
            }
        }
    }
}

/*@section relu*/
static void relu(const float *x, float *y, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
    }
}

/*@section pool2d*/
/* Valid taps of one window on one axis visit inputs in increasing order, as the runtime's. */
static void pool2d_run(const float *x, float *y, const pool2d *p, int is_max)
{
    unsigned c, oh, ow, a, b;
    if (is_max && p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 &&
        p->pw == 0 && p->dh == 1 && p->dw == 1 && 2 * p->oh <= p->h && 2 * p->ow <= p->w) {
        /* 2x2/2 max pooling without padding: the same comparisons in the same order. */
        for (c = 0; c < p->c; ++c) {
            const float *xp = x + (size_t)c * p->h * p->w;
            float *yp = y + (size_t)c * p->oh * p->ow;
            for (oh = 0; oh < p->oh; ++oh) {
                const float *r0 = xp + (size_t)(2 * oh) * p->w, *r1 = r0 + p->w;
                for (ow = 0; ow < p->ow; ++ow) {
                    float m = -INFINITY;
                    m = r0[2 * ow] > m ? r0[2 * ow] : m;
                    m = r0[2 * ow + 1] > m ? r0[2 * ow + 1] : m;
                    m = r1[2 * ow] > m ? r1[2 * ow] : m;
                    m = r1[2 * ow + 1] > m ? r1[2 * ow + 1] : m;
                    yp[(size_t)oh * p->ow + ow] = m;
                }
            }
        }
        return;
    }
    for (c = 0; c < p->c; ++c) {
        const float *xp = x + (size_t)c * p->h * p->w;
        float *yp = y + (size_t)c * p->oh * p->ow;
        for (oh = 0; oh < p->oh; ++oh) {
            for (ow = 0; ow < p->ow; ++ow) {
                float acc = is_max ? -INFINITY : 0.0f;
                unsigned nh = 0, nw = 0, padh = 0, padw = 0;
                long h0 = (long)(oh * p->sh) - (long)p->ph;
                long w0 = (long)(ow * p->sw) - (long)p->pw;
                for (a = 0; a < p->kh; ++a) {
                    long ih = h0 + (long)(a * p->dh);
                    if (ih < (long)p->h + (long)p->eh) {
                        ++padh;
                    }
                    if (ih < 0 || ih >= (long)p->h) {
                        continue;
                    }
                    ++nh;
                    for (b = 0; b < p->kw; ++b) {
                        long iw = w0 + (long)(b * p->dw);
                        float v;
                        if (iw < 0 || iw >= (long)p->w) {
                            continue;
                        }
                        v = xp[(size_t)ih * p->w + (size_t)iw];
                        if (is_max) {
                            if (v > acc) {
                                acc = v;
                            }
                        } else {
                            acc = acc + v;
                        }
                    }
                }
                for (b = 0; b < p->kw; ++b) {
                    long iw = w0 + (long)(b * p->dw);
                    if (iw < (long)p->w + (long)p->ew) {
                        ++padw;
                    }
                    if (iw >= 0 && iw < (long)p->w) {
                        ++nw;
                    }
                }
                if (!is_max) {
                    unsigned cnt = p->include_pad ? padh * padw : nh * nw;
                    acc = acc / (float)cnt;
                }
                yp[(size_t)oh * p->ow + ow] = acc;
            }
        }
    }
}

/*@section reduce*/
enum { R_MEAN, R_SUM, R_MAX, R_MAX_NUM };

/* Reduction over len values inner apart, in index order as the runtime folds: means and sums
 * in double (rounded once), maxima from -INFINITY (R_MAX lets a NaN in, R_MAX_NUM skips it). */
static void reduce(const float *x, float *y, size_t outer, size_t len, size_t inner, int f)
{
    size_t o, j, i;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            if (f == R_MEAN || f == R_SUM) {
                double s = 0.0;
                for (j = 0; j < len; ++j) {
                    s += (double)x[(o * len + j) * inner + i];
                }
                y[o * inner + i] = f == R_MEAN ? (float)(s / (double)len) : (float)s;
            } else {
                float m = -INFINITY;
                for (j = 0; j < len; ++j) {
                    float v = x[(o * len + j) * inner + i];
                    if (v > m || (f == R_MAX && v != v)) {
                        m = v;
                    }
                }
                y[o * inner + i] = m;
            }
        }
    }
}

/*@section binary*/
enum { B_ADD, B_MUL, B_SUB, B_SUB_FROM, B_DIV, B_DIV_INTO, B_PRELU, B_MAX, B_MAX_REV, B_MIN,
       B_MIN_REV, B_POW, B_POW_FROM };

/* The runtime's pow_f32 (runtime/src/kernels/elementwise.rs, where the choice is explained):
 * exact IEEE sequences for the exponents 1, 2, 3, -1 and 0.5 (with powf's special cases), the
 * C library's powf with a run-time exponent otherwise. */
static float pow_f32(float x, float e)
{
    float t;
    if (e == 1.0f) {
        return x;
    }
    if (e == 2.0f) {
        return x * x;
    }
    if (e == 3.0f) {
        t = x * x;
        return t * x;
    }
    if (e == -1.0f) {
        return 1.0f / x;
    }
    if (e == 0.5f) {
        return x == 0.0f ? 0.0f : x == -INFINITY ? INFINITY : sqrtf(x);
    }
    return powf(x, e);
}

/* The runtime's Max/Min of (p, q), graph order: p unless q wins (ties go to q); NaN p wins. */
static float max_pq(float p, float q)
{
    return p > q || p != p ? p : q;
}

static float min_pq(float p, float q)
{
    return p < q || p != p ? p : q;
}

/* y = f(a, b) with b[(i / inner) % bn] (a scalar, per-channel, full, ...). IEEE + and *
 * commute, so an Add or Mul whose graph operands are swapped gives the same bits. */
static void binary(const float *a, const float *b, float *y, size_t n, size_t bn, size_t inner,
                   int f)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        float x = a[i], r = b[(i / inner) % bn];
        switch (f) {
        case B_ADD: y[i] = x + r; break;
        case B_MUL: y[i] = x * r; break;
        case B_SUB: y[i] = x - r; break;
        case B_SUB_FROM: y[i] = r - x; break;
        case B_DIV: y[i] = x / r; break;
        case B_DIV_INTO: y[i] = r / x; break;
        case B_MAX: y[i] = max_pq(x, r); break;
        case B_MAX_REV: y[i] = max_pq(r, x); break;
        case B_MIN: y[i] = min_pq(x, r); break;
        case B_MIN_REV: y[i] = min_pq(r, x); break;
        case B_POW: y[i] = pow_f32(x, r); break;
        case B_POW_FROM: y[i] = pow_f32(r, x); break;
        default: y[i] = x < 0.0f ? r * x : x; break;
        }
    }
}

/*@section select*/
enum { C_EQ, C_GT, C_LT, C_GE, C_LE };

/* A Where on a comparison: y = cmp(l, r) ? a : b, operand j read at (i / inner[j]) % len[j]
 * (ops: l, r, a, b). The comparisons are IEEE's (false with a NaN, as the runtime's). */
static void select_where(const float *const *ops, const size_t *len, const size_t *inner,
                         float *y, size_t n, int cmp)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        float v[4];
        int t;
        unsigned j;
        for (j = 0; j < 4u; ++j) {
            v[j] = ops[j][(i / inner[j]) % len[j]];
        }
        switch (cmp) {
        case C_EQ: t = v[0] == v[1]; break;
        case C_GT: t = v[0] > v[1]; break;
        case C_LT: t = v[0] < v[1]; break;
        case C_GE: t = v[0] >= v[1]; break;
        default: t = v[0] <= v[1]; break;
        }
        y[i] = t ? v[2] : v[3];
    }
}

/*@section matmul*/
/* numpy MatMul as the runtime computes it: for each batch index (row-major over dims), the
 * [m x k] . [k x n] product of A's and B's matrices (a_dims/b_dims: their batch dims, 1 where
 * broadcast); y[i][j] starts at +0 and adds a[i][p] * b[p][j] for p = 0 .. k-1 in order, one
 * rounded multiply and one rounded add per term (this file is compiled without contraction). */
static void matmul(const float *a, const float *b, float *y, unsigned rank, const size_t *dims,
                   const size_t *a_dims, const size_t *b_dims, size_t m, size_t k, size_t n)
{
    size_t idx[8] = {0}, count = 1, t, i, j, p;
    unsigned d;
    for (d = 0; d < rank; ++d) {
        count *= dims[d];
    }
    for (t = 0; t < count; ++t) {
        size_t oa = 0, ob = 0;
        const float *at, *bt;
        float *yt = y + t * m * n;
        for (d = 0; d < rank; ++d) {
            oa = oa * a_dims[d] + (a_dims[d] == 1 ? 0 : idx[d]);
            ob = ob * b_dims[d] + (b_dims[d] == 1 ? 0 : idx[d]);
        }
        at = a + oa * m * k;
        bt = b + ob * k * n;
        for (i = 0; i < m; ++i) {
            float *row = yt + i * n;
            for (j = 0; j < n; ++j) {
                row[j] = 0.0f;
            }
            for (p = 0; p < k; ++p) {
                const float av = at[i * k + p];
                const float *br = bt + p * n;
                for (j = 0; j < n; ++j) {
                    const float prod = av * br[j];
                    row[j] = row[j] + prod;
                }
            }
        }
        for (d = rank; d-- > 0;) {
            if (++idx[d] < dims[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
}

/*@section unary*/
/* The runtime's f32::max / f32::min: a NaN operand yields the other one; on ties the first. */
static float max_of(float a, float b)
{
    return a != a ? b : (b > a ? b : a);
}

static float min_of(float a, float b)
{
    return a != a ? b : (b < a ? b : a);
}

enum { U_SIGMOID, U_LEAKY, U_HSIGMOID, U_HSWISH, U_CLIP, U_NEG, U_ABS, U_FLOOR, U_CEIL, U_SQRT,
       U_RECIP, U_EXP, U_LOG, U_TANH, U_ERF };

/* The runtime's scalar formulas, one operation per statement (no contraction); p: the
 * function's parameters (alpha, beta; clip: lo, hi, has_lo, has_hi). expf is the C library's,
 * as Rust's f32::exp calls it (glibc's expf gives the same bits on every ISA tested). */
static void unary(const float *x, float *y, size_t n, int f, const float *p)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        float v = x[i], r, t;
        switch (f) {
        case U_SIGMOID:
            if (v >= 0.0f) {
                t = expf(0.0f - v);
                t = 1.0f + t;
                r = 1.0f / t;
            } else {
                t = expf(v);
                r = 1.0f + t;
                r = t / r;
            }
            break;
        case U_LEAKY: r = v < 0.0f ? p[0] * v : v; break;
        case U_HSIGMOID:
            t = p[0] * v;
            t = t + p[1];
            r = max_of(0.0f, min_of(1.0f, t));
            break;
        case U_HSWISH:
            t = (float)(1.0 / 6.0) * v;
            t = t + 0.5f;
            r = v * max_of(0.0f, min_of(1.0f, t));
            break;
        /* IEEE operations: the same bits on every target. */
        case U_NEG: r = 0.0f - v; break;
        case U_ABS: r = fabsf(v); break;
        case U_FLOOR: r = floorf(v); break;
        case U_CEIL: r = ceilf(v); break;
        case U_SQRT: r = sqrtf(v); break;
        case U_RECIP: r = 1.0f / v; break;
        /* The C library's, as Rust's f32::exp and f32::ln call them. */
        case U_EXP: r = expf(v); break;
        case U_LOG: r = logf(v); break;
        /* strata_ir::math's deterministic functions (section det_math). */
        case U_TANH: r = strata_tanhf(v); break;
        case U_ERF: r = strata_erff(v); break;
        default:
            r = p[2] != 0.0f && v < p[0] ? p[0] : v;
            r = p[3] != 0.0f && r > p[1] ? p[1] : r;
            break;
        }
        y[i] = r;
    }
}

/*@section rnn_dot*/
/* sum_k a[k]*b[k] in float, index order from 0: one rounded product and sum per term (the
 * runtime's recurrent `dot`; every LSTM and GRU gate row's dot products). */
static float rnn_dot(const float *a, const float *b, size_t n)
{
    float acc = 0.0f, v;
    size_t k;
    for (k = 0; k < n; ++k) {
        v = a[k] * b[k];
        acc = acc + v;
    }
    return acc;
}

/*@section lstm*/
/* The runtime's LSTM step (runtime/src/kernels/recurrent.rs), statement for statement, one
 * sample: gate rows i, o, f, c (4H), each dot product summed in float in index order from 0;
 * then per hidden unit the runtime's sigmoid (unary) and strata_tanhf. h and c (H each) are
 * updated in place; g is 4H of scratch; b (8H) and p (3H) may be NULL. */
static void lstm_step(const float *x, float *h, float *c, const float *w, const float *r,
                      const float *b, const float *p, float *g, size_t in, size_t hn)
{
    size_t j, k;
    for (j = 0; j < 4 * hn; ++j) {
        float a = rnn_dot(x, w + j * in, in), s = rnn_dot(h, r + j * hn, hn), v;
        v = a + s;
        if (b) {
            v = v + b[j];
            v = v + b[4 * hn + j];
        }
        g[j] = v;
    }
    for (k = 0; k < hn; ++k) {
        float gi = g[k], go = g[hn + k], gf = g[2 * hn + k], gc = g[3 * hn + k];
        float ig, fg, og, cc, cn, t;
        if (p) {
            t = p[k] * c[k];
            gi = gi + t;
            t = p[2 * hn + k] * c[k];
            gf = gf + t;
        }
        unary(&gi, &ig, 1u, U_SIGMOID, NULL);
        unary(&gf, &fg, 1u, U_SIGMOID, NULL);
        cc = strata_tanhf(gc);
        cn = fg * c[k];
        t = ig * cc;
        cn = cn + t;
        if (p) {
            t = p[hn + k] * cn;
            go = go + t;
        }
        unary(&go, &og, 1u, U_SIGMOID, NULL);
        c[k] = cn;
        t = strata_tanhf(cn);
        h[k] = og * t;
    }
}

/* A whole LSTM over seq steps: y [seq, dirs, H]; yh, yc [dirs, H] start as h0, c0 (zeros when
 * NULL) and end as the final states; direction d runs backwards when back[d]. */
static void lstm(const float *x, float *y, float *yh, float *yc, const float *h0,
                 const float *c0, const float *w, const float *r, const float *b,
                 const float *p, float *g, size_t seq, size_t in, size_t hn, size_t dirs,
                 const unsigned char *back)
{
    size_t d, s, k;
    for (d = 0; d < dirs; ++d) {
        float *h = yh + d * hn, *c = yc + d * hn;
        for (k = 0; k < hn; ++k) {
            h[k] = h0 ? h0[d * hn + k] : 0.0f;
            c[k] = c0 ? c0[d * hn + k] : 0.0f;
        }
        for (s = 0; s < seq; ++s) {
            size_t t = back[d] ? seq - 1 - s : s;
            lstm_step(x + t * in, h, c, w + d * 4 * hn * in, r + d * 4 * hn * hn,
                      b ? b + d * 8 * hn : NULL, p ? p + d * 3 * hn : NULL, g, in, hn);
            memcpy(y + (t * dirs + d) * hn, h, hn * sizeof *h);
        }
    }
}

/*@section gru*/
/* The runtime's GRU step (runtime/src/kernels/recurrent.rs, gru_step), statement for
 * statement, one sample: gate rows z, r, h (3H), the h gate's reset applied after its
 * recurrent product when lbr (linear_before_reset), before it otherwise; then per hidden
 * unit h' = (1 - z)*tanh(p) + z*h. h (H) is updated in place; g is 4H of scratch; b (6H) may
 * be NULL. */
static void gru_step(const float *x, float *h, const float *w, const float *r,
                     const float *b, float *g, size_t in, size_t hn, int lbr)
{
    size_t j, k;
    float a, s, v, t;
    for (j = 0; j < 2 * hn; ++j) {
        a = rnn_dot(x, w + j * in, in);
        s = rnn_dot(h, r + j * hn, hn);
        v = a + s;
        if (b) {
            v = v + b[j];
            v = v + b[3 * hn + j];
        }
        g[j] = v;
    }
    if (lbr) {
        for (j = 2 * hn; j < 3 * hn; ++j) {
            a = rnn_dot(x, w + j * in, in);
            s = rnn_dot(h, r + j * hn, hn);
            if (b) {
                a = a + b[j];
                s = s + b[3 * hn + j];
            }
            g[j] = a;
            g[hn + j] = s;
        }
    } else {
        for (k = 0; k < hn; ++k) {
            unary(&g[hn + k], &t, 1u, U_SIGMOID, NULL);
            g[3 * hn + k] = t * h[k];
        }
        for (j = 2 * hn; j < 3 * hn; ++j) {
            a = rnn_dot(x, w + j * in, in);
            s = rnn_dot(g + 3 * hn, r + j * hn, hn);
            v = a + s;
            if (b) {
                v = v + b[j];
                v = v + b[3 * hn + j];
            }
            g[j] = v;
        }
    }
    for (k = 0; k < hn; ++k) {
        float z, p, u;
        unary(&g[k], &z, 1u, U_SIGMOID, NULL);
        if (lbr) {
            unary(&g[hn + k], &t, 1u, U_SIGMOID, NULL);
            t = t * g[3 * hn + k];
            p = g[2 * hn + k] + t;
        } else {
            p = g[2 * hn + k];
        }
        u = 1.0f - z;
        u = u * strata_tanhf(p);
        t = z * h[k];
        h[k] = u + t;
    }
}

/* A whole GRU over seq steps: y [seq, dirs, H]; yh [dirs, H] starts as h0 (zeros when NULL)
 * and ends as the final state; direction d runs backwards when back[d]. */
static void gru(const float *x, float *y, float *yh, const float *h0, const float *w,
                const float *r, const float *b, float *g, size_t seq, size_t in, size_t hn,
                size_t dirs, const unsigned char *back, int lbr)
{
    size_t d, s, k;
    for (d = 0; d < dirs; ++d) {
        float *h = yh + d * hn;
        for (k = 0; k < hn; ++k)
            h[k] = h0 ? h0[d * hn + k] : 0.0f;
        for (s = 0; s < seq; ++s) {
            size_t t = back[d] ? seq - 1 - s : s;
            gru_step(x + t * in, h, w + d * 3 * hn * in, r + d * 3 * hn * hn,
                     b ? b + d * 6 * hn : NULL, g, in, hn, lbr);
            memcpy(y + (t * dirs + d) * hn, h, hn * sizeof *h);
        }
    }
}

/*@section softmax*/
/* The runtime's softmax: maximum, exp(x - max) summed in order, then each divided by the sum. */
static void softmax(const float *x, float *y, size_t outer, size_t len, size_t inner)
{
    size_t o, i, j;
    for (o = 0; o < outer; ++o) {
        const float *xb = x + o * len * inner;
        float *yb = y + o * len * inner;
        for (i = 0; i < inner; ++i) {
            float mx = -INFINITY, sum = 0.0f;
            for (j = 0; j < len; ++j) {
                if (xb[j * inner + i] > mx) {
                    mx = xb[j * inner + i];
                }
            }
            for (j = 0; j < len; ++j) {
                float e = expf(xb[j * inner + i] - mx);
                yb[j * inner + i] = e;
                sum = sum + e;
            }
            for (j = 0; j < len; ++j) {
                yb[j * inner + i] = yb[j * inner + i] / sum;
            }
        }
    }
}

/*@section concat*/
/* One part of a concatenation: outer slabs of chunk values, stride apart in y from offset. */
static void concat_part(const float *x, float *y, size_t outer, size_t chunk, size_t stride,
                        size_t offset)
{
    size_t o;
    for (o = 0; o < outer; ++o) {
        memcpy(y + o * stride + offset, x + o * chunk, chunk * sizeof(float));
    }
}

/*@section gather*/
/* y in row-major order over dims[0..rank) reads x[sum_d i_d * strides[d]] (Transpose, Slice,
 * Split, Expand; the caller passes x at the base offset; strides may be negative or 0). */
static void gather(const float *x, float *y, unsigned rank, const size_t *dims,
                   const ptrdiff_t *strides)
{
    size_t idx[8] = {0}, n = 1, k;
    ptrdiff_t off = 0;
    unsigned d;
    for (d = 0; d < rank; ++d) {
        n *= dims[d];
    }
    for (k = 0; k < n; ++k) {
        y[k] = x[off];
        for (d = rank; d-- > 0;) {
            off += strides[d];
            if (++idx[d] < dims[d]) {
                break;
            }
            off -= (ptrdiff_t)idx[d] * strides[d];
            idx[d] = 0;
        }
    }
}

/*@section take*/
/* A copy through an index table (Pad, nearest Resize, Gather): -1 is the fill value. */
static void take(const float *x, float *y, size_t n, const int32_t *idx, float fill)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        y[i] = idx[i] < 0 ? fill : x[idx[i]];
    }
}

/*@section resize_linear*/
/* Linear Resize as the runtime computes it: axis by axis in increasing order, in double,
 * v = (1 - w) * a + w * b between the two taps of each axis (only a where w is 0), rounded
 * to float once. Per output element, the 2^m corners of its m interpolated axes are read and
 * combined lowest axis first, which is the order of the runtime's separable passes. taps:
 * per axis and output index, the input index pair; w: the weights, in the same order. */
static void resize_linear(const float *x, float *y, unsigned rank, const size_t *dims,
                          const size_t *strides, const int32_t *taps, const double *w)
{
    size_t idx[8] = {0}, first[8], n = 1, k, t = 0;
    unsigned d;
    for (d = 0; d < rank; ++d) {
        first[d] = t;
        t += dims[d];
        n *= dims[d];
    }
    for (k = 0; k < n; ++k) {
        double c[256];
        size_t step[8], base = 0, mask, bit;
        unsigned act[8], m = 0, j;
        for (d = 0; d < rank; ++d) {
            size_t i = first[d] + idx[d];
            base += (size_t)taps[2 * i] * strides[d];
            if (w[i] != 0.0) {
                step[m] = (size_t)(taps[2 * i + 1] - taps[2 * i]) * strides[d];
                act[m++] = d;
            }
        }
        for (mask = 0; mask < ((size_t)1 << m); ++mask) {
            size_t off = base;
            for (j = 0; j < m; ++j) {
                if ((mask >> j) & 1u) {
                    off += step[j];
                }
            }
            c[mask] = (double)x[off];
        }
        for (j = 0; j < m; ++j) {
            double wj = w[first[act[j]] + idx[act[j]]];
            bit = (size_t)1 << j;
            for (mask = 0; mask < ((size_t)1 << m); mask += 2 * bit) {
                double a = 1.0 - wj;
                double b = wj * c[mask + bit];
                a = a * c[mask];
                c[mask] = a + b;
            }
        }
        y[k] = (float)c[0];
        for (d = rank; d-- > 0;) {
            if (++idx[d] < dims[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
}

/*@section bq_common*/
/* Layers whose weights are the K-plane codes. Per group and block of 16 output channels, for
 * every kernel tap and channel pair, the 16x2 codes row by row (a chunk of 32); channels and
 * rows beyond the layer's are zero. Chunks are stored at `bits` bits a code (4 * bits bytes):
 * 8 as s8, fewer as offset-binary fields q + 2^(bits-1). `bits` is the fewest of 2, 4 and 8
 * that hold K planes (--code-bits fast) or K itself (exact: the weights grow by one bit a
 * weight per plane); 3, 5, 6 and 7 are split into parts of 4, 2 and 1 bits (bq_part_bits),
 * each part stored as one array over the block's chunks (lowering: pack_block). The codes are
 * rebuilt at emit time from planes 0..K-1 only; a run at k < K planes uses
 * q_k = q_K >> (K - k) (floor), as the runtime does. */
typedef struct {
    const int8_t *w;
    const float *alpha; /* [S][rows] */
    const float *beta;  /* [S][rows] */
    const float *bias;  /* [S][rows] */
    const float *act;   /* [S][4]: scale, zero point, code range lo, hi */
    const uint8_t *counts;
    const uint32_t *toff; /* per tap: pixel offset in the padded input */
    const int32_t *ws;    /* [S][rows]: each row's sum of its codes at that count */
    unsigned n_counts, rows, planes, mb, taps, cpairs, cols;
    unsigned bits; /* per code: 2, 4 or 8, or (exact widths) the planes */
} bq_layer;

/* Width of part i of `bits`-bit codes (lowering: code_parts): the fields are split greedily
 * into parts of 4, 2 and 1 bits, most significant first. Part i of a block is its chunks at
 * 4 * w bytes each (byte j of a chunk holds the fields of codes j, j + 32 / n, ... from the low
 * bits up, n = 8 / w fields a byte), after the whole arrays of the parts before it, so one
 * shift and mask per group of codes reads any width; 8-bit codes are one part. 0 past the
 * last part. */
static unsigned bq_part_bits(unsigned bits, unsigned i)
{
    unsigned rest = bits, w = 0, j;
    for (j = 0; j <= i; ++j) {
        w = rest >= 8u ? 8u : rest >= 4u ? 4u : rest >= 2u ? 2u : rest;
        rest -= w;
    }
    return w;
}

/* Convolution geometry; hp, wp: the zero-padded input (input pixel (i, j) at (i+ph, j+pw));
 * col: im2col mode (taps == 1 in the weight layout, channels = C/group x kh x kw). */
typedef struct {
    unsigned c, h, w, m, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, hp, wp, group, col;
} bq_conv;

/*@section bq_run*/
static float bq_epi(float fa, float fb, float bias, int32_t acc, int32_t usum)
{
    float t = fa * (float)acc;
    float v = fb * (float)usum;
    t = t + v;
    return t + bias;
}

/* The offset d = zero - lo of the byte path: targets that define BQ_U8_MAX_K (convolutions)
 * and BQ_U8_LINEAR_MAX_K multiply activations fed as bytes v = u + d (in [0, 255]) by the s8
 * codes and subtract d * sum(q_k) per row (L->ws), exactly. -1 (the int16 kernels run) above
 * max_k, or when the count's code range does not fit a byte. */
static int bq_u8_offset(const bq_layer *L, unsigned k, unsigned j, unsigned max_k)
{
#ifdef BQ_U8_MAX_K
    float zero = L->act[4 * j + 1], lo = L->act[4 * j + 2], hi = L->act[4 * j + 3];
    float d = zero - lo;
    if (k <= max_k && hi - lo <= 255.0f && d >= 0.0f && d <= 255.0f && d == (float)(int)d) {
        return (int)d;
    }
#else
    (void)L;
    (void)k;
    (void)j;
    (void)max_k;
#endif
    return -1;
}

/* The byte path's largest plane count for convolutions and for fully connected layers (0:
 * the target has none). */
#ifdef BQ_U8_MAX_K
#define BQ_U8_CONV_K BQ_U8_MAX_K
#define BQ_U8_FC_K BQ_U8_LINEAR_MAX_K
#else
#define BQ_U8_CONV_K 0u
#define BQ_U8_FC_K 0u
#endif

#ifdef BQ_U8_MAX_K
/* Steps an int16 lane can sum without overflow when every byte code is at most qmax in
 * magnitude: one step adds |v0*q0 + v1*q1| <= 2 * 255 * qmax. */
static unsigned bq_u8_steps(unsigned qmax)
{
    return 32767u / (510u * qmax);
}

/* The steps at k planes, whose codes reach -2^(k-1). */
static unsigned bq_u8_run(unsigned k)
{
    return bq_u8_steps(1u << (k < 1u ? 0u : k - 1u));
}
#endif

/* alpha*scale and beta*scale of every row (the runtime's folding order). */
static void bq_fold(const bq_layer *L, unsigned j, float scale)
{
    unsigned r;
    for (r = 0; r < L->rows; ++r) {
        SFA[r] = L->alpha[j * L->rows + r] * scale;
        SFB[r] = L->beta[j * L->rows + r] * scale;
    }
}

/*@section bq_linear*/
/* relu: a following Relu fused into the epilogue (the comparison of relu()). */
static void bq_linear(const float *x, float *y, const bq_layer *L, unsigned k, unsigned j,
                      int relu)
{
    float scale = L->act[4 * j], zero = L->act[4 * j + 1];
    unsigned sh = L->planes - k, n = 2u * L->cpairs, b, r;
    size_t blk = (size_t)L->cpairs * 4u * L->bits;
    int32_t usum = 0, vsum = 0, fb = 0, acc[16];
    unsigned run = 0, split = 0;
    int dd;
    const float *bias = L->bias + (size_t)j * L->rows;
    bq_quant(x, L->cols, scale, zero, L->act[4 * j + 2], L->act[4 * j + 3], SX);
    for (r = L->cols; r < n; ++r) {
        SX[r] = 0;
    }
    for (r = 0; r < L->cols; ++r) {
        usum += SX[r];
    }
    bq_fold(L, j, scale);
#ifdef BQ_U8_MAX_K
    /* Split widths (bq_part_bits) multiply their parts' fields, at most 15 (bq_tile1_parts),
     * which the byte path takes at any count. */
    split = L->bits != 2u && L->bits != 4u && L->bits != 8u;
#endif
    dd = bq_u8_offset(L, k, j, split ? 8u : BQ_U8_FC_K);
    if (dd >= 0) {
        /* Bytes v = u + d written over SX front to back: byte r lies in element r/2 <= r,
         * which has been read already. */
        uint8_t *xb = (uint8_t *)(void *)SX;
        for (r = 0; r < n; ++r) {
            xb[r] = (uint8_t)(SX[r] + dd);
            vsum += xb[r];
        }
#ifdef BQ_U8_MAX_K
        /* Codes below 8 bits are multiplied as offset-binary fields f >> sh = q_k + fb
         * (bq_tile1_u8p, bq_tile1_u8), at most (2^bits - 1) >> sh. */
        if (L->bits != 8u) {
            fb = (int32_t)((1u << (L->bits - 1u)) >> sh);
            run = bq_u8_steps(((1u << L->bits) - 1u) >> sh);
        } else {
            run = bq_u8_run(k);
        }
#endif
    }
    for (b = 0; b < L->mb; ++b) {
        unsigned r0 = 16u * b;
        const int32_t *ws = L->ws + (size_t)j * L->rows + r0;
#ifdef BQ_U8_MAX_K
        if (dd >= 0) {
            const uint8_t *xb = (const uint8_t *)(const void *)SX;
            if (split) {
                bq_tile1_parts(L->w + b * blk, L->bits, sh, xb, L->cpairs, acc);
            } else if (L->bits == 2u) {
                bq_tile1_u8p(L->w + b * blk, 2u, xb, L->cpairs, sh, run, acc);
            } else if (L->bits == 4u) {
                bq_tile1_u8p(L->w + b * blk, 4u, xb, L->cpairs, sh, run, acc);
            } else {
                bq_tile1_u8(L->w + b * blk, L->bits, xb, L->cpairs, sh, run, acc);
            }
        } else
#endif
        {
            (void)run;
            (void)split;
            bq_tile1(L->w + b * blk, L->bits, SX, L->cpairs, sh, acc);
        }
        for (r = 0; r < 16u && r0 + r < L->rows; ++r) {
            int32_t a = dd >= 0 ? acc[r] - dd * ws[r] - fb * vsum : acc[r];
            float v = bq_epi(SFA[r0 + r], SFB[r0 + r], bias[r0 + r], a, usum);
            y[r0 + r] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

/*@section bq_conv2d*/
/* Convolution as tiles of BQ_PT (byte path: BQ_U8_PT) output positions times 16 output
 * channels. Direct mode: the quantized input is copied channel-last into a zero-padded buffer
 * and every kernel tap reads it in place. im2col mode (layers with few input channels per
 * group, where channel pairs would be mostly padding): the receptive fields are copied out in
 * ONNX order (c, kh, kw). The int32 sums are parked in y (as bits, written by bq_tile) and
 * turned into floats per channel afterwards. */
static void bq_conv2d(const float *x, float *y, const bq_layer *L, const bq_conv *g, unsigned k,
                      unsigned j, int relu)
{
    float scale = L->act[4 * j], zero = L->act[4 * j + 1];
    unsigned sh = L->planes - k, cg = g->c / g->group, mg = g->m / g->group;
    unsigned cb = 2u * L->cpairs, cs = g->col ? 1u : cb * g->group, c, gi, b, r, q, t;
    size_t hw = (size_t)g->h * g->w, npix = (size_t)g->hp * g->wp, P = (size_t)g->oh * g->ow;
    size_t blk = (size_t)L->taps * L->cpairs * 4u * L->bits, i, p0;
    const float *bias = L->bias + (size_t)j * L->rows;
    int dd = bq_u8_offset(L, k, j, BQ_U8_CONV_K);
    /* The byte path's copy of the (padded or gathered) input, over SX: v = u + d. */
    uint8_t *xb = (uint8_t *)(void *)SX;
    bq_quant(x, (size_t)g->c * hw, scale, zero, L->act[4 * j + 2], L->act[4 * j + 3], SQ);
    if (!g->col) {
        /* Padding is u = 0: bytes d on the byte path. */
        if (dd >= 0) {
            memset(xb, dd, npix * cs);
        } else {
            memset(SX, 0, npix * cs * sizeof(int16_t));
        }
        /* Channel pairs of a group at once on the byte path: one 16-bit store for two
         * bytes (the channel-last stores, a cache line apart, took 8% of a 3x64x64
         * ResNet-18's time at 2 planes one byte at a time). */
        for (c = 0; c < g->c; ++c) {
            const int16_t *src = SQ + (size_t)c * hw;
            size_t at = ((size_t)g->ph * g->wp + g->pw) * cs + (c / cg) * cb + c % cg;
            unsigned ih, iw;
#ifdef BQ_COPY8
            if (c % cg + 8u <= cg) {
                if (dd >= 0) {
                    bq_copy8(src, hw, g->h, g->w, dd, xb + at, (size_t)g->wp * cs, cs);
                } else {
                    bq_copy8(src, hw, g->h, g->w, dd, (uint8_t *)(void *)(SX + at),
                             2u * (size_t)g->wp * cs, 2u * cs);
                }
                c += 7u;
                continue;
            }
#endif
            if (dd >= 0 && c % cg + 1u < cg) {
                const int16_t *src1 = src + hw;
                for (ih = 0; ih < g->h; ++ih) {
                    uint8_t *o = xb + at + (size_t)ih * g->wp * cs;
                    const int16_t *s0 = src + (size_t)ih * g->w, *s1 = src1 + (size_t)ih * g->w;
                    for (iw = 0; iw < g->w; ++iw) {
                        uint16_t two = (uint16_t)((uint8_t)(s0[iw] + dd) |
                                                  (unsigned)(uint8_t)(s1[iw] + dd) << 8);
                        memcpy(o + (size_t)iw * cs, &two, sizeof two);
                    }
                }
                ++c;
            } else if (dd >= 0) {
                for (ih = 0; ih < g->h; ++ih) {
                    uint8_t *o = xb + at + (size_t)ih * g->wp * cs;
                    const int16_t *s0 = src + (size_t)ih * g->w;
                    for (iw = 0; iw < g->w; ++iw) {
                        o[(size_t)iw * cs] = (uint8_t)(s0[iw] + dd);
                    }
                }
            } else {
                for (ih = 0; ih < g->h; ++ih) {
                    int16_t *o = SX + at + (size_t)ih * g->wp * cs;
                    const int16_t *s0 = src + (size_t)ih * g->w;
                    for (iw = 0; iw < g->w; ++iw) {
                        o[(size_t)iw * cs] = s0[iw];
                    }
                }
            }
        }
    }
    bq_fold(L, j, scale);
    for (gi = 0; gi < g->group; ++gi) {
        size_t g0 = g->col ? 0u : (size_t)gi * cb;
        const int16_t *xg = SX + g0;
        if (g->col) {
            for (i = 0; i < P; ++i) {
                long oh = (long)(i / g->ow), ow = (long)(i % g->ow);
                long ih0 = oh * (long)g->sh - (long)g->ph, iw0 = ow * (long)g->sw - (long)g->pw;
                int16_t *d = SX + i * cb;
                uint8_t *db = xb + i * cb;
                int32_t s = 0;
                unsigned n = 0, a, bb;
                if (ih0 >= 0 && iw0 >= 0 && ih0 + (long)((g->kh - 1u) * g->dh) < (long)g->h &&
                    iw0 + (long)((g->kw - 1u) * g->dw) < (long)g->w) {
                    /* A window inside the input (most of them): rows read with no bounds
                     * checks, one loop per path. With the checks, the gather of a 3x64x64
                     * ResNet-18's 7x7 stem took 12% of its time at 2 planes. */
                    for (c = 0; c < cg; ++c) {
                        const int16_t *plane = SQ + (size_t)(gi * cg + c) * hw;
                        for (a = 0; a < g->kh; ++a) {
                            const int16_t *row =
                                plane + (size_t)(ih0 + (long)(a * g->dh)) * g->w + (size_t)iw0;
                            if (dd >= 0) {
                                for (bb = 0; bb < g->kw; ++bb) {
                                    int16_t v = row[(size_t)bb * g->dw];
                                    db[n++] = (uint8_t)(v + dd);
                                    s += v;
                                }
                            } else {
                                for (bb = 0; bb < g->kw; ++bb) {
                                    int16_t v = row[(size_t)bb * g->dw];
                                    d[n++] = v;
                                    s += v;
                                }
                            }
                        }
                    }
                } else {
                    for (c = 0; c < cg; ++c) {
                        const int16_t *plane = SQ + (size_t)(gi * cg + c) * hw;
                        for (a = 0; a < g->kh; ++a) {
                            long ih = ih0 + (long)(a * g->dh);
                            for (bb = 0; bb < g->kw; ++bb) {
                                long iw = iw0 + (long)(bb * g->dw);
                                int16_t v = 0;
                                if (ih >= 0 && ih < (long)g->h && iw >= 0 && iw < (long)g->w) {
                                    v = plane[(size_t)ih * g->w + (size_t)iw];
                                }
                                if (dd >= 0) {
                                    db[n++] = (uint8_t)(v + dd);
                                } else {
                                    d[n++] = v;
                                }
                                s += v;
                            }
                        }
                    }
                }
                for (; n < cb; ++n) {
                    if (dd >= 0) {
                        db[n] = (uint8_t)dd;
                    } else {
                        d[n] = 0;
                    }
                }
                SUS[i] = s;
            }
        } else if (dd >= 0) {
            /* Receptive-field sums of u = v - d: channel sums per pixel, then over the taps. */
            for (i = 0; i < npix; ++i) {
                int32_t s = -(int32_t)cb * dd;
                for (c = 0; c < cb; ++c) {
                    s += xb[g0 + i * cs + c];
                }
                SS[i] = s;
            }
        } else {
            /* Receptive-field sums of u: channel sums per pixel, then over the taps. */
            for (i = 0; i < npix; ++i) {
                int32_t s = 0;
                for (c = 0; c < cb; ++c) {
                    s += xg[i * cs + c];
                }
                SS[i] = s;
            }
        }
        if (!g->col) {
            for (i = 0; i < P; ++i) {
                size_t base = (i / g->ow) * g->sh * g->wp + (i % g->ow) * g->sw;
                int32_t s = 0;
                for (t = 0; t < L->taps; ++t) {
                    s += SS[base + L->toff[t]];
                }
                SUS[i] = s;
            }
        }
        for (b = 0; b < L->mb; ++b) {
            unsigned r0 = 16u * b;
            const int8_t *w = L->w + ((size_t)gi * L->mb + b) * blk;
            unsigned rows = mg - r0 < 16u ? mg - r0 : 16u;
            unsigned pt = BQ_PT; /* positions per tile */
#ifdef BQ_U8_MAX_K
            if (dd >= 0) {
                pt = BQ_U8_PT;
            }
#endif
            /* The block's codes as int8 at k planes (unpacked, shifted), once per call:
             * every tile reads them, so no tile decodes or shifts in its inner loop. */
#ifdef BQ_U8_PAIRED
            if (dd >= 0) {
                /* In the layout the target's byte tile reads. */
                bq_unpack_u8(w, L->bits, sh, L->taps, L->cpairs, SW);
                w = SW;
            }
#endif
            if (w != SW && (L->bits != 8u || sh)) {
                bq_unpack(w, L->bits, sh, (size_t)L->taps * L->cpairs, SW);
                w = SW;
            }
            for (p0 = 0; p0 < P; p0 += pt) {
                size_t pos[BQ_PT];
                unsigned np = P - p0 < pt ? (unsigned)(P - p0) : pt;
                float *yt = y + (size_t)(gi * mg + r0) * P + p0;
                for (q = 0; q < BQ_PT; ++q) {
                    size_t p = p0 + (q < np ? q : 0);
                    pos[q] = g->col ? p * cb
                                    : ((p / g->ow) * g->sh * g->wp + (p % g->ow) * g->sw) * cs;
                }
#ifdef BQ_U8_MAX_K
                if (dd >= 0) {
                    bq_tile_u8(w, xb + g0, pos, L->toff, L->taps, cs, L->cpairs, bq_u8_run(k),
                               yt, P, rows, np);
                    continue;
                }
#endif
                bq_tile(w, xg, pos, L->toff, L->taps, cs, L->cpairs, yt, P, rows, np);
            }
        }
        for (r = 0; r < mg; ++r) {
            unsigned ch = gi * mg + r;
            float fa = SFA[ch], fb = SFB[ch], bi = bias[ch];
            float *yr = y + (size_t)ch * P;
            int32_t corr = dd >= 0 ? dd * L->ws[(size_t)j * L->rows + ch] : 0;
            for (i = 0; i < P; ++i) {
                int32_t a;
                float v;
                memcpy(&a, yr + i, sizeof a);
                v = bq_epi(fa, fb, bi, a - corr, SUS[i]);
                yr[i] = relu && v < 0.0f ? 0.0f : v;
            }
        }
    }
}
