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
    const float *act;       /* [S][2]: scale, zero point */
    const uint8_t *counts;  /* the S plane counts with a side table */
    unsigned n_counts;
    unsigned rows, cols, words;
    float act_lo, act_hi;
} bp_layer;

/*@section bp_conv_t*/
typedef struct {
    unsigned c, h, w, m, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, group;
} bp_conv;

/*@section pool2d_t*/
typedef struct {
    unsigned c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, eh, ew, dh, dw, include_pad;
} pool2d;

/*@section bp_common2*/
/* Side-table row of plane count k, or -1 when the layer cannot run at k. */
static int bp_side(const bp_layer *L, unsigned k)
{
    unsigned j;
    for (j = 0; j < L->n_counts; ++j) {
        if (L->counts[j] == k) {
            return (int)j;
        }
    }
    return -1;
}

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
    t = t + fb * (float)usum;
    return t + L->bias[j * L->rows + ch];
}

/*@section bp_linear*/
static void bp_linear(const float *x, float *y, const bp_layer *L, unsigned k, unsigned j,
                      int16_t *u)
{
    float scale = L->act[2 * j], zero = L->act[2 * j + 1];
    size_t plane_stride = (size_t)L->rows * L->words;
    int64_t usum = 0;
    unsigned i, ch;
    bp_quantize(x, L->cols, scale, zero, L->act_lo, L->act_hi, u);
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
    float scale = L->act[2 * j], zero = L->act[2 * j + 1];
    size_t plane_stride = (size_t)L->rows * L->words;
    unsigned cg = g->c / g->group, mg = g->m / g->group;
    size_t p_out = (size_t)g->oh * g->ow, hw = (size_t)g->h * g->w;
    unsigned gi, oh, ow, ci, a, b, mi;
    bp_quantize(x, (size_t)g->c * hw, scale, zero, L->act_lo, L->act_hi, u);
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

/*@section global_avg*/
static void global_avg(const float *x, float *y, size_t planes, size_t area)
{
    size_t c, i;
    for (c = 0; c < planes; ++c) {
        double s = 0.0;
        for (i = 0; i < area; ++i) {
            s += (double)x[c * area + i];
        }
        y[c] = (float)(s / (double)area);
    }
}

/*@section binary*/
/* y = a op b with b either the same length as a or (bn == 1) one value for all (IEEE + and *
 * commute, so the operand order of the graph does not matter). */
static void binary(const float *a, const float *b, float *y, size_t n, size_t bn, int is_mul)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        float r = b[bn == 1 ? 0 : i];
        y[i] = is_mul ? a[i] * r : a[i] + r;
    }
}
