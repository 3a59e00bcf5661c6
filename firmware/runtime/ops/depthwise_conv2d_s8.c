/* Per-channel int8 depthwise convolution (TFLite DepthwiseConvPerChannel): groups == in_c, output
 * channel o = c * multiplier + m reads input channel c.
 *
 * Per input channel, the input rows a window needs are converted once into a ring of k_h int16
 * rows (x - x_zero, with pad_w zeros on each side and one spare zero), and the channel's weights
 * into int16 rows of even length (a zero appended to odd k_w). Every tap is then in bounds, padding
 * contributes 0 and no inner loop tests coordinates. Two outputs of a row are computed per pass;
 * the DSP build takes two taps per SMLAD (the spare zero weight pairs with the spare zero column
 * of an odd k_w). Accumulation is modulo 2^32 (exact in the contract), then tt_requant_out. */
#include <stddef.h>

#include "ops_common_s8.h"
#include "requant_s8.h"

/* int16 entries per buffered row: in_w + 2 * pad_w + 1, rounded up to even (aligned rows). */
static int64_t row_len(const tt_conv2d_params *p)
{
    return ((int64_t)p->in_w + 2 * (int64_t)p->pad_w + 2) & ~(int64_t)1;
}

static int32_t even(int32_t v)
{
    return v + (v & 1);
}

int32_t tt_depthwise_conv2d_s8_get_buffer_size(const tt_conv2d_params *p)
{
    if (!tt_conv2d_params_ok(p) || p->groups != p->in_c) {
        return TT_ERR_ARG;
    }
    const int64_t mult = p->out_c / p->in_c;
    const int64_t entries = p->k_h * row_len(p) + mult * p->k_h * (int64_t)even(p->k_w);
    const int64_t bytes = entries * (int64_t)sizeof(int16_t);
    return bytes <= INT32_MAX ? (int32_t)bytes : TT_ERR_ARG;
}

/* a0 + wr . r[0..k_w), a1 + wr . r[stride..stride + k_w) over the taps of one kernel row. */
static inline void taps_2(const int16_t *wr, const int16_t *r, int32_t stride, int32_t k_w,
                          uint32_t *a0, uint32_t *a1)
{
#if TT_S8_DSP
    int32_t s0 = (int32_t)*a0, s1 = (int32_t)*a1;
    const int16_t *r1 = r + stride;
    for (int32_t k = 0; k < k_w; k += 2) { /* k_w odd: the last pair's second weight is 0 */
        const uint32_t wv = tt_ld32(wr + k);
        s0 = tt_smlad(wv, tt_ld32(r + k), s0);
        s1 = tt_smlad(wv, tt_ld32(r1 + k), s1);
    }
    *a0 = (uint32_t)s0;
    *a1 = (uint32_t)s1;
#else
    uint32_t s0 = *a0, s1 = *a1;
    const int16_t *r1 = r + stride;
    for (int32_t k = 0; k < k_w; k++) {
        const int32_t wv = wr[k];
        s0 += (uint32_t)(wv * r[k]);
        s1 += (uint32_t)(wv * r1[k]);
    }
    *a0 = s0;
    *a1 = s1;
#endif
}

static inline uint32_t taps_1(const int16_t *wr, const int16_t *r, int32_t k_w, uint32_t a0)
{
#if TT_S8_DSP
    int32_t s0 = (int32_t)a0;
    for (int32_t k = 0; k < k_w; k += 2) {
        s0 = tt_smlad(tt_ld32(wr + k), tt_ld32(r + k), s0);
    }
    return (uint32_t)s0;
#else
    for (int32_t k = 0; k < k_w; k++) {
        a0 += (uint32_t)(wr[k] * r[k]);
    }
    return a0;
#endif
}

tt_status tt_depthwise_conv2d_s8(const tt_scratch *ctx, const tt_conv2d_params *p,
                                 const tt_s8_requant *q, const int8_t *x, const int8_t *w,
                                 const int32_t *bias, int8_t *y)
{
    const int32_t need = tt_depthwise_conv2d_s8_get_buffer_size(p);
    if (need < 0 || !tt_scratch_ok(ctx, need) || !tt_s8_requant_ok(q, p->out_c) || x == NULL ||
        w == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t mult = p->out_c / p->in_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, kwp = even(k_w);
    const int32_t wb = (int32_t)row_len(p);
    const int32_t in_hw = p->in_h * p->in_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t sw = p->stride_w;
#if TT_S8_DSP
    const int32_t taps = kwp; /* tap pairs, the odd one padded with a zero weight */
#else
    const int32_t taps = k_w;
#endif
    int16_t *rows = (int16_t *)ctx->buf;
    int16_t *wexp = rows + k_h * wb;
    memset(rows, 0, (size_t)k_h * (size_t)wb * sizeof *rows); /* the padding columns stay 0 */

    for (int32_t ic = 0; ic < p->in_c; ic++) {
        const int8_t *x_c = x + ic * in_hw;
        for (int32_t m = 0; m < mult; m++) {
            const int8_t *w_o = w + (ic * mult + m) * k_h * k_w;
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
            int32_t slot0 = 0;
            if (ky_lo < ky_hi) {
                /* Convert the rows this window needs that the ring does not hold yet. A row r
                 * lives in slot r % k_h; the window spans at most k_h rows ending at the newest,
                 * so the rows it overwrites (r - k_h) are no longer needed. */
                const int32_t first = iy0 + ky_lo > next_row ? iy0 + ky_lo : next_row;
                for (int32_t r = first; r < iy0 + ky_hi; r++) {
                    int16_t *dst = rows + (r % k_h) * wb + p->pad_w;
                    const int8_t *src = x_c + r * p->in_w;
                    for (int32_t ix = 0; ix < p->in_w; ix++) {
                        dst[ix] = (int16_t)(src[ix] - q->x_zero);
                    }
                }
                if (iy0 + ky_hi > next_row) {
                    next_row = iy0 + ky_hi;
                }
                slot0 = (iy0 + ky_lo) % k_h;
            }
            for (int32_t m = 0; m < mult; m++) {
                const int32_t oc = ic * mult + m;
                const uint32_t b = bias != NULL ? (uint32_t)bias[oc] : 0u;
                const int32_t om = q->mult[oc], os = q->shift[oc];
                const int16_t *wm = wexp + m * k_h * kwp;
                int8_t *yrow = y + oc * out_hw + oy * p->out_w;
                int32_t ox = 0;
                for (; ox + 1 < p->out_w; ox += 2) {
                    uint32_t a0 = b, a1 = b;
                    int32_t slot = slot0;
                    for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                        taps_2(wm + ky * kwp, rows + slot * wb + ox * sw, sw, taps, &a0, &a1);
                        slot = slot + 1 == k_h ? 0 : slot + 1;
                    }
                    yrow[ox] = tt_requant_out((int32_t)a0, om, os, q->y_zero, q->act_min,
                                              q->act_max);
                    yrow[ox + 1] = tt_requant_out((int32_t)a1, om, os, q->y_zero, q->act_min,
                                                  q->act_max);
                }
                if (ox < p->out_w) {
                    uint32_t a0 = b;
                    int32_t slot = slot0;
                    for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                        a0 = taps_1(wm + ky * kwp, rows + slot * wb + ox * sw, taps, a0);
                        slot = slot + 1 == k_h ? 0 : slot + 1;
                    }
                    yrow[ox] = tt_requant_out((int32_t)a0, om, os, q->y_zero, q->act_min,
                                              q->act_max);
                }
            }
        }
    }
    return TT_OK;
}
