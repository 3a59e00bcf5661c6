/* Per-channel int8 depthwise convolution (TFLite DepthwiseConvPerChannel): groups == in_c, output
 * channel o = c * multiplier + m reads input channel c.
 *
 * Per input channel, the input rows a window needs are converted once into int16 (x - x_zero,
 * with pad_w zeros on each side and one spare zero) in a ring of k_h rows. Each row is stored
 * twice, at slots s and s + k_h, so that any k_h consecutive input rows are consecutive in the
 * buffer. The channel's weights are expanded into int16 rows of even length (a zero appended to
 * an odd k_w). Every tap is then in bounds, padding contributes 0 and no inner loop tests
 * coordinates. Four outputs of a row are computed per pass, with the tap loop unrolled for the
 * common kernel widths; the DSP build takes two taps per SMLAD (an odd k_w's spare zero weight
 * meets the spare zero column). Accumulation is modulo 2^32 (exact in the contract), then the
 * requantization of requant_s8.h. */
#include <stddef.h>

#include "ops_common_s8.h"
#include "requant_s8.h"
#include "tt/tt_op.h"

static int32_t even(int32_t v) /* v below INT32_MAX: a checked kernel width */
{
    return v + (v & 1);
}

/* int16 entries per buffered row: in_w + 2 * pad_w + 1, rounded up to even (aligned rows). */
static int64_t row_len(const tt_conv2d_params *p)
{
    return ((int64_t)p->in_w + 2 * (int64_t)p->pad_w + 2) & ~(int64_t)1;
}

int32_t tt_depthwise_conv2d_s8_get_buffer_size(const tt_conv2d_params *p)
{
    if (!tt_conv2d_params_ok(p) || p->groups != p->in_c) {
        return TT_ERR_ARG;
    }
    /* entries = 2 k_h row + multiplier k_h even(k_w), refused before a product can exceed what
     * int32 bytes could hold (so nothing overflows, whatever the attributes) */
    const int64_t limit = INT32_MAX / (int64_t)sizeof(int16_t);
    const int64_t mult = p->out_c / p->in_c, k_h = p->k_h, row = row_len(p);
    const int64_t k_w = (int64_t)p->k_w + (p->k_w & 1);
    if (row > limit / 2 / k_h) {
        return TT_ERR_ARG;
    }
    const int64_t rows = 2 * k_h * row;
    if (k_w > (limit - rows) / k_h / mult) {
        return TT_ERR_ARG;
    }
    return (int32_t)((rows + mult * k_h * k_w) * (int64_t)sizeof(int16_t));
}

/* One output row of one channel. */
typedef struct {
    const int16_t *rows; /* the window's first input row (at output 0), rows wb apart */
    const int16_t *w;    /* the first used kernel row */
    int32_t n_rows;      /* kernel rows inside the image */
    int32_t wb;
    int32_t stride; /* stride_w */
    int32_t out_w;
    int32_t bias;
    tt_requant_ch q;
    int32_t y_zero, lo, hi; /* lo, hi relative to y_zero */
    uint8_t *mask;          /* the clamp mask (tt_s8_requant), or NULL */
    int32_t mask_at;        /* the mask index of the row's output 0 */
} dw_row;

/* Outputs [ox, ox + n) of one row, n in 1..4, sharing each kernel row's weight loads. `taps` (a
 * constant where inlined into the specialisations below) is k_w, or in the DSP build the even
 * kwp, two taps per SMLAD; the weight rows are kwp = taps rounded up to even apart. */
static TT_S8_INLINE void outputs_n(const dw_row *d, int32_t taps, int32_t stride, int32_t ox,
                                   int32_t n, int8_t *y)
{
    const int32_t kwp = taps + (taps & 1);
    const int32_t wb = d->wb;
    const int16_t *r = d->rows + ox * stride;
    const int16_t *w = d->w;
    const int16_t *w_end = w + d->n_rows * kwp;
    uint32_t a0 = (uint32_t)d->bias, a1 = a0, a2 = a0, a3 = a0;
    for (; w != w_end; w += kwp, r += wb) {
#if TT_S8_DSP
        /* Taps k, k + 1 of the row for every output (unrolled for taps <= 8). */
#define TT_DW_STEP(k)                                                                             \
    do {                                                                                          \
        const uint32_t wv = tt_ld32(w + (k));                                                     \
        a0 = (uint32_t)tt_smlad(wv, tt_ld32(r + (k)), (int32_t)a0);                               \
        if (n > 1) {                                                                              \
            a1 = (uint32_t)tt_smlad(wv, tt_ld32(r + stride + (k)), (int32_t)a1);                  \
        }                                                                                         \
        if (n > 2) {                                                                              \
            a2 = (uint32_t)tt_smlad(wv, tt_ld32(r + 2 * stride + (k)), (int32_t)a2);              \
        }                                                                                         \
        if (n > 3) {                                                                              \
            a3 = (uint32_t)tt_smlad(wv, tt_ld32(r + 3 * stride + (k)), (int32_t)a3);              \
        }                                                                                         \
    } while (0)
        if (taps <= 8) { /* written out: compilers do not reliably unroll this themselves */
            if (taps > 0) {
                TT_DW_STEP(0);
            }
            if (taps > 2) {
                TT_DW_STEP(2);
            }
            if (taps > 4) {
                TT_DW_STEP(4);
            }
            if (taps > 6) {
                TT_DW_STEP(6);
            }
        } else {
            for (int32_t k = 0; k < taps; k += 2) {
                TT_DW_STEP(k);
            }
        }
#undef TT_DW_STEP
#else
        /* Tap k of the row for every output (unrolled for taps <= 8). */
#define TT_DW_STEP(k)                                                                             \
    do {                                                                                          \
        const int32_t wv = w[k];                                                                  \
        a0 += (uint32_t)(wv * r[k]);                                                              \
        if (n > 1) {                                                                              \
            a1 += (uint32_t)(wv * r[stride + (k)]);                                               \
        }                                                                                         \
        if (n > 2) {                                                                              \
            a2 += (uint32_t)(wv * r[2 * stride + (k)]);                                           \
        }                                                                                         \
        if (n > 3) {                                                                              \
            a3 += (uint32_t)(wv * r[3 * stride + (k)]);                                           \
        }                                                                                         \
    } while (0)
        if (taps <= 8) { /* written out: compilers do not reliably unroll this themselves */
            if (taps > 0) {
                TT_DW_STEP(0);
            }
            if (taps > 1) {
                TT_DW_STEP(1);
            }
            if (taps > 2) {
                TT_DW_STEP(2);
            }
            if (taps > 3) {
                TT_DW_STEP(3);
            }
            if (taps > 4) {
                TT_DW_STEP(4);
            }
            if (taps > 5) {
                TT_DW_STEP(5);
            }
            if (taps > 6) {
                TT_DW_STEP(6);
            }
            if (taps > 7) {
                TT_DW_STEP(7);
            }
        } else {
            for (int32_t k = 0; k < taps; k++) {
                TT_DW_STEP(k);
            }
        }
#undef TT_DW_STEP
#endif
    }
    const tt_requant_ch q = d->q;
    const int32_t yz = d->y_zero, lo = d->lo, hi = d->hi;
    uint8_t *mask = d->mask;
    const int32_t at = d->mask_at + ox;
    y[ox] = tt_s8_out_mask(tt_requant_ch_apply(q, (int32_t)a0), yz, lo, hi, mask, at);
    if (n > 1) {
        y[ox + 1] = tt_s8_out_mask(tt_requant_ch_apply(q, (int32_t)a1), yz, lo, hi, mask, at + 1);
    }
    if (n > 2) {
        y[ox + 2] = tt_s8_out_mask(tt_requant_ch_apply(q, (int32_t)a2), yz, lo, hi, mask, at + 2);
    }
    if (n > 3) {
        y[ox + 3] = tt_s8_out_mask(tt_requant_ch_apply(q, (int32_t)a3), yz, lo, hi, mask, at + 3);
    }
}

static TT_S8_INLINE void row_outputs(const dw_row *d, int32_t taps, int32_t stride, int8_t *y)
{
    int32_t ox = 0;
    for (; ox + 3 < d->out_w; ox += 4) {
        outputs_n(d, taps, stride, ox, 4, y);
    }
    for (; ox < d->out_w; ox++) {
        outputs_n(d, taps, stride, ox, 1, y);
    }
}

/* Specialised for the usual kernel widths, 3, 5 and 7 (the tap steps unroll), with strides 1
 * and 2 (the four outputs' loads get constant offsets, and at stride 2 neighbours share words),
 * generic otherwise. (Each specialisation costs ~1-2 KB of code on Cortex-M4.) */
#define TT_DW_STRIDES(t)                                                                          \
    (d->stride == 1   ? row_outputs(d, t, 1, y)                                                   \
     : d->stride == 2 ? row_outputs(d, t, 2, y)                                                   \
                      : row_outputs(d, t, d->stride, y))
static void row_outputs_any(const dw_row *d, int32_t taps, int8_t *y)
{
    switch (taps) {
#if TT_S8_DSP
    case 4: TT_DW_STRIDES(4); break;
    case 6: TT_DW_STRIDES(6); break;
    case 8: TT_DW_STRIDES(8); break;
#else
    case 3: TT_DW_STRIDES(3); break;
    case 5: TT_DW_STRIDES(5); break;
    case 7: TT_DW_STRIDES(7); break;
#endif
    default: row_outputs(d, taps, d->stride, y); break;
    }
}
#undef TT_DW_STRIDES

tt_status tt_depthwise_conv2d_s8(const tt_scratch *ctx, const tt_conv2d_params *p,
                                 const tt_s8_requant *q, const int8_t *x, const int8_t *w,
                                 const tt_row_subst *sub, const int32_t *bias, int8_t *y)
{
    const int32_t need = tt_depthwise_conv2d_s8_get_buffer_size(p);
    if (need < 0 || !tt_scratch_ok(ctx, need) || !tt_s8_requant_ok(q, p->out_c) || x == NULL ||
        w == NULL || y == NULL || !tt_row_subst_ok(sub, p->out_c)) {
        return TT_ERR_ARG;
    }
    const int32_t mult = p->out_c / p->in_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, kwp = even(k_w);
    const int32_t wb = (int32_t)row_len(p);
    const int32_t in_hw = p->in_h * p->in_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t x_zero = q->x_zero;
#if TT_S8_DSP
    const int32_t taps = kwp; /* tap pairs, the odd one padded with a zero weight */
#else
    const int32_t taps = k_w;
#endif
    int16_t *rows = (int16_t *)ctx->buf;
    int16_t *wexp = rows + 2 * k_h * wb;
    /* The padding columns are never written again, so they stay 0. */
    memset(rows, 0, (size_t)(2 * k_h) * (size_t)wb * sizeof *rows);

    dw_row d;
    d.wb = wb;
    d.stride = p->stride_w;
    d.out_w = p->out_w;
    d.y_zero = q->y_zero;
    d.lo = q->act_min - q->y_zero;
    d.hi = q->act_max - q->y_zero;
    d.mask = q->mask;
    tt_row_cursor w_rows = tt_row_cursor_make(w, k_h * k_w, sub, 0);
    for (int32_t ic = 0; ic < p->in_c; ic++) {
        const int8_t *x_c = x + ic * in_hw;
        for (int32_t m = 0; m < mult; m++) {
            const int8_t *w_o = tt_row_cursor_at(&w_rows, ic * mult + m);
            for (int32_t ky = 0; ky < k_h; ky++) {
                int16_t *dst = wexp + (m * k_h + ky) * kwp;
                for (int32_t kx = 0; kx < k_w; kx++) {
                    dst[kx] = w_o[ky * k_w + kx];
                }
                if (kwp != k_w) {
                    dst[k_w] = 0;
                }
            }
        }
        int32_t next_row = 0; /* input rows below this one are (or were) in the ring */
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = p->in_h - iy0 < k_h ? p->in_h - iy0 : k_h;
            d.n_rows = ky_hi > ky_lo ? ky_hi - ky_lo : 0;
            d.rows = rows;
            if (d.n_rows > 0) {
                /* Convert the rows this window needs that the ring does not hold yet. Row r
                 * lives in slots r % k_h and r % k_h + k_h; the window spans at most k_h rows
                 * ending at the newest, so the row a conversion replaces (r - k_h) is no longer
                 * needed. */
                const int32_t first = iy0 + ky_lo > next_row ? iy0 + ky_lo : next_row;
                for (int32_t r = first; r < iy0 + ky_hi; r++) {
                    int16_t *dst = rows + (r % k_h) * wb + p->pad_w;
                    int16_t *dst2 = dst + k_h * wb;
                    const int8_t *src = x_c + r * p->in_w;
                    int32_t ix = 0;
#if TT_S8_DSP
                    /* four at a time: SXTB16, SSUB16 of (x_zero, x_zero), repacked in order */
                    const uint32_t zz = (uint32_t)(uint16_t)x_zero * 0x10001u;
                    for (; ix + 4 <= p->in_w; ix += 4) {
                        const uint32_t v = tt_ld32(src + ix);
                        const uint32_t e = (uint32_t)__ssub16((int32_t)tt_sxtb16(v), (int32_t)zz);
                        const uint32_t o = (uint32_t)__ssub16((int32_t)tt_sxtb16_ror8(v),
                                                              (int32_t)zz);
                        const uint32_t lo = (e & 0xFFFFu) | (o << 16);     /* entries 0, 1 */
                        const uint32_t hi = (o & 0xFFFF0000u) | (e >> 16); /* 2, 3 */
                        memcpy(dst + ix, &lo, 4);
                        memcpy(dst + ix + 2, &hi, 4);
                        memcpy(dst2 + ix, &lo, 4);
                        memcpy(dst2 + ix + 2, &hi, 4);
                    }
#endif
                    for (; ix < p->in_w; ix++) {
                        const int16_t v = (int16_t)(src[ix] - x_zero);
                        dst[ix] = v;
                        dst2[ix] = v;
                    }
                }
                if (iy0 + ky_hi > next_row) {
                    next_row = iy0 + ky_hi;
                }
                d.rows = rows + ((iy0 + ky_lo) % k_h) * wb;
            }
            for (int32_t m = 0; m < mult; m++) {
                const int32_t oc = ic * mult + m;
                /* (a window entirely in the padding reads no weights) */
                d.w = wexp + (m * k_h + (d.n_rows > 0 ? ky_lo : 0)) * kwp;
                d.bias = bias != NULL ? bias[oc] : 0;
                d.q = tt_requant_ch_make(q->mult[oc], q->shift[oc]);
                d.mask_at = oc * out_hw + oy * p->out_w;
                row_outputs_any(&d, taps, y + d.mask_at);
            }
        }
    }
    return TT_OK;
}

/* --- the DEPTHWISE_CONV2D_S8 op: plan check and run (tt/tt_op.h; shared with CONV2D_S8's) --- */

tt_status tt_op_depthwise_conv2d_s8_check(const tt_op_ctx *c, tt_error *err)
{
    return tt_op_conv_s8_check(c, tt_depthwise_conv2d_s8_get_buffer_size, err);
}

tt_status tt_op_depthwise_conv2d_s8_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv_s8_args a = tt_op_conv_s8_args(c);
    return tt_depthwise_conv2d_s8(&a.scratch, &a.p, &a.q, tt_opnd_s8(c, TT_OPND_CONV2D_S8_X),
                                  tt_opnd_s8(c, TT_OPND_CONV2D_S8_W), &a.sub,
                                  tt_opnd_s32(c, TT_OPND_CONV2D_S8_BIAS),
                                  tt_opnd_s8(c, TT_OPND_CONV2D_S8_Y));
}
