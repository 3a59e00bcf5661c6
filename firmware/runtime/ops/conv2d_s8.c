/* Per-channel int8 convolution (TFLite ConvPerChannel), any groups, through im2col (1x1
 * stride-1 convs with few input channels directly instead: conv_1x1):
 *
 * For two output positions at a time, the input windows are copied into two int16 columns
 * (x - x_zero, 0 for out-of-image taps) in the weight row order (i, ky, kx); then every output
 * channel of the group takes dot products of its int8 weight row with the columns, two channels
 * by two columns per pass (CMSIS-NN's arm_nn_mat_mult_kernel_s8_s16 blocking). The DSP build
 * stores each group of four column entries as (c0, c2, c1, c3), so that one SXTB16 of four
 * weights, (w0, w2), and one SXTB16 ROR 8, (w1, w3), each meet their partners in one SMLAD.
 * Accumulation is modulo 2^32 (exact whenever the sum fits int32, the contract), then
 * the requantization (tt_s8_out_mask). */
#include <stddef.h>

#include "ops_common_s8.h"
#include "requant_s8.h"
#include "tt/tt_op.h"

/* Column entries per column, rounded up to a multiple of 4 (keeps the second column aligned). */
static int64_t column_len(const tt_conv2d_params *p)
{
    const int64_t k = (int64_t)(p->in_c / p->groups) * p->k_h * p->k_w;
    return (k + 3) & ~(int64_t)3;
}

int32_t tt_conv2d_s8_get_buffer_size(const tt_conv2d_params *p)
{
    if (!tt_conv2d_params_ok(p)) {
        return TT_ERR_ARG;
    }
    const int64_t bytes = 2 * column_len(p) * (int64_t)sizeof(int16_t);
    return bytes <= INT32_MAX ? (int32_t)bytes : TT_ERR_ARG;
}

/* The rows of an all-inside window: cin_g x k_h rows of k_w bytes from src (rows in_w apart,
 * channels plane apart), minus x_zero. k_w is a constant where specialised. */
static TT_S8_INLINE void copy_window(int16_t *c, const int8_t *src, int32_t cin_g, int32_t k_h,
                                     int32_t k_w, int32_t in_w, int32_t plane, int32_t x_zero)
{
    for (int32_t i = 0; i < cin_g; i++, src += plane) {
        const int8_t *row = src;
        for (int32_t ky = 0; ky < k_h; ky++, row += in_w, c += k_w) {
            for (int32_t kx = 0; kx < k_w; kx++) {
                c[kx] = (int16_t)(row[kx] - x_zero);
            }
        }
    }
}

/* The column of output position (oy, ox) for the group whose first input channel is x_g. */
static void build_column(const tt_conv2d_params *p, const int8_t *x_g, int32_t x_zero, int32_t oy,
                         int32_t ox, int16_t *col)
{
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t plane = p->in_h * p->in_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
    const int32_t ky_hi = p->in_h - iy0 < p->k_h ? p->in_h - iy0 : p->k_h;
    const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
    const int32_t kx_hi = p->in_w - ix0 < p->k_w ? p->in_w - ix0 : p->k_w;

    if (ky_lo == 0 && ky_hi == p->k_h && kx_lo == 0 && kx_hi == p->k_w) { /* all inside */
        const int8_t *src = x_g + iy0 * p->in_w + ix0;
        if (p->k_h == 1 && p->k_w == 1) { /* pointwise: a strided gather */
            for (int32_t i = 0; i < cin_g; i++) {
                col[i] = (int16_t)(src[i * plane] - x_zero);
            }
            return;
        }
        switch (p->k_w) { /* unrolled copies for the usual widths */
        case 3: copy_window(col, src, cin_g, p->k_h, 3, p->in_w, plane, x_zero); break;
        case 5: copy_window(col, src, cin_g, p->k_h, 5, p->in_w, plane, x_zero); break;
        default: copy_window(col, src, cin_g, p->k_h, p->k_w, p->in_w, plane, x_zero); break;
        }
        return;
    }
    int16_t *c = col;
    for (int32_t i = 0; i < cin_g; i++) {
        const int8_t *x_c = x_g + i * plane;
        for (int32_t ky = 0; ky < p->k_h; ky++, c += p->k_w) {
            if (ky < ky_lo || ky >= ky_hi || kx_lo >= kx_hi) {
                for (int32_t kx = 0; kx < p->k_w; kx++) {
                    c[kx] = 0;
                }
                continue;
            }
            const int8_t *row = x_c + (iy0 + ky) * p->in_w; /* ix0 may be negative */
            for (int32_t kx = 0; kx < p->k_w; kx++) {
                c[kx] = (kx >= kx_lo && kx < kx_hi) ? (int16_t)(row[ix0 + kx] - x_zero) : 0;
            }
        }
    }
}

#if TT_S8_DSP
/* (c0, c1, c2, c3) -> (c0, c2, c1, c3) in every whole group of four (the tail stays). */
static void reorder_column(int16_t *col, int32_t k)
{
    for (int32_t j = 0; j + 4 <= k; j += 4) {
        const uint32_t a = tt_ld32(col + j);     /* c0 | c1 << 16 */
        const uint32_t b = tt_ld32(col + j + 2); /* c2 | c3 << 16 */
        const uint32_t lo = (a & 0xFFFFu) | (b << 16);
        const uint32_t hi = (a >> 16) | (b & 0xFFFF0000u);
        memcpy(col + j, &lo, sizeof lo);
        memcpy(col + j + 2, &hi, sizeof hi);
    }
}

/* acc[0..3] += (wa . c0, wa . c1, wb . c0, wb . c1) over k entries. */
static void mac_2x2(const int8_t *wa, const int8_t *wb, const int16_t *c0, const int16_t *c1,
                    int32_t k, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    int32_t j = 0;
    for (; j + 4 <= k; j += 4) {
        const uint32_t wva = tt_ld32(wa + j);
        const uint32_t wvb = tt_ld32(wb + j);
        const uint32_t a02 = tt_sxtb16(wva), a13 = tt_sxtb16_ror8(wva);
        const uint32_t b02 = tt_sxtb16(wvb), b13 = tt_sxtb16_ror8(wvb);
        const uint32_t c0_02 = tt_ld32(c0 + j), c0_13 = tt_ld32(c0 + j + 2);
        a0 = tt_smlad(a02, c0_02, a0);
        a0 = tt_smlad(a13, c0_13, a0);
        b0 = tt_smlad(b02, c0_02, b0);
        b0 = tt_smlad(b13, c0_13, b0);
        const uint32_t c1_02 = tt_ld32(c1 + j), c1_13 = tt_ld32(c1 + j + 2);
        a1 = tt_smlad(a02, c1_02, a1);
        a1 = tt_smlad(a13, c1_13, a1);
        b1 = tt_smlad(b02, c1_02, b1);
        b1 = tt_smlad(b13, c1_13, b1);
    }
    uint32_t ua0 = (uint32_t)a0, ua1 = (uint32_t)a1, ub0 = (uint32_t)b0, ub1 = (uint32_t)b1;
    for (; j < k; j++) {
        ua0 += (uint32_t)(wa[j] * c0[j]);
        ua1 += (uint32_t)(wa[j] * c1[j]);
        ub0 += (uint32_t)(wb[j] * c0[j]);
        ub1 += (uint32_t)(wb[j] * c1[j]);
    }
    acc[0] = (int32_t)ua0;
    acc[1] = (int32_t)ua1;
    acc[2] = (int32_t)ub0;
    acc[3] = (int32_t)ub1;
}

/* acc[0..1] += (wa . c0, wb . c0). */
static void mac_2x1(const int8_t *wa, const int8_t *wb, const int16_t *c0, int32_t k, int32_t *acc)
{
    int32_t a0 = acc[0], b0 = acc[1];
    int32_t j = 0;
    for (; j + 4 <= k; j += 4) {
        const uint32_t wva = tt_ld32(wa + j);
        const uint32_t wvb = tt_ld32(wb + j);
        const uint32_t c02 = tt_ld32(c0 + j), c13 = tt_ld32(c0 + j + 2);
        a0 = tt_smlad(tt_sxtb16(wva), c02, a0);
        a0 = tt_smlad(tt_sxtb16_ror8(wva), c13, a0);
        b0 = tt_smlad(tt_sxtb16(wvb), c02, b0);
        b0 = tt_smlad(tt_sxtb16_ror8(wvb), c13, b0);
    }
    uint32_t ua0 = (uint32_t)a0, ub0 = (uint32_t)b0;
    for (; j < k; j++) {
        ua0 += (uint32_t)(wa[j] * c0[j]);
        ub0 += (uint32_t)(wb[j] * c0[j]);
    }
    acc[0] = (int32_t)ua0;
    acc[1] = (int32_t)ub0;
}

/* Returns acc + wa . c0. */
static int32_t mac_1x1(const int8_t *wa, const int16_t *c0, int32_t k, int32_t acc)
{
    int32_t j = 0;
    for (; j + 4 <= k; j += 4) {
        const uint32_t wva = tt_ld32(wa + j);
        acc = tt_smlad(tt_sxtb16(wva), tt_ld32(c0 + j), acc);
        acc = tt_smlad(tt_sxtb16_ror8(wva), tt_ld32(c0 + j + 2), acc);
    }
    uint32_t u = (uint32_t)acc;
    for (; j < k; j++) {
        u += (uint32_t)(wa[j] * c0[j]);
    }
    return (int32_t)u;
}

#else /* portable */

static void mac_2x2(const int8_t *wa, const int8_t *wb, const int16_t *c0, const int16_t *c1,
                    int32_t k, int32_t *acc)
{
    uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1];
    uint32_t b0 = (uint32_t)acc[2], b1 = (uint32_t)acc[3];
    for (int32_t j = 0; j < k; j++) {
        const int32_t va = wa[j], vb = wb[j], x0 = c0[j], x1 = c1[j];
        a0 += (uint32_t)(va * x0);
        a1 += (uint32_t)(va * x1);
        b0 += (uint32_t)(vb * x0);
        b1 += (uint32_t)(vb * x1);
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)a1;
    acc[2] = (int32_t)b0;
    acc[3] = (int32_t)b1;
}

static void mac_2x1(const int8_t *wa, const int8_t *wb, const int16_t *c0, int32_t k, int32_t *acc)
{
    uint32_t a0 = (uint32_t)acc[0], b0 = (uint32_t)acc[1];
    for (int32_t j = 0; j < k; j++) {
        const int32_t x0 = c0[j];
        a0 += (uint32_t)(wa[j] * x0);
        b0 += (uint32_t)(wb[j] * x0);
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)b0;
}

static int32_t mac_1x1(const int8_t *wa, const int16_t *c0, int32_t k, int32_t acc)
{
    uint32_t u = (uint32_t)acc;
    for (int32_t j = 0; j < k; j++) {
        u += (uint32_t)(wa[j] * c0[j]);
    }
    return (int32_t)u;
}
#endif

/* One group's weight rows and requantization, for conv_columns. */
typedef struct {
    const int8_t *w;         /* the weight's row 0 (rows k apart) */
    const tt_row_subst *sub; /* substituted rows, or NULL */
    int32_t oc0;             /* the group's first output channel */
    const int32_t *bias;     /* per output channel (indexed by oc0 + c), or NULL */
    const int32_t *mult;
    const int32_t *shift;
    int32_t k;              /* weights per row (column entries) */
    int32_t out_hw;         /* output channel stride */
    int32_t y_zero, lo, hi; /* output zero point and clamp (lo, hi relative to y_zero) */
    uint8_t *mask;          /* the clamp mask (tt_s8_requant), or NULL */
} conv_rows;

/* Output channels [0, n) of r's group at output position pos (col0) or at pos and pos + 1 (col0,
 * col1 != NULL); y is the whole output. */
static void conv_columns(const conv_rows *r, int32_t n, const int16_t *col0, const int16_t *col1,
                         int8_t *y, int32_t pos)
{
    const int32_t k = r->k, out_hw = r->out_hw, yz = r->y_zero, lo = r->lo, hi = r->hi;
    uint8_t *mask = r->mask;
    tt_row_cursor rows = tt_row_cursor_make(r->w, k, r->sub, r->oc0);
    int32_t o = r->oc0;
    const int32_t end = r->oc0 + n;
    for (; o + 1 < end; o += 2) {
        const int8_t *wa = tt_row_cursor_at(&rows, o);
        const int8_t *wb = tt_row_cursor_at(&rows, o + 1);
        const int32_t ba = r->bias != NULL ? r->bias[o] : 0;
        const int32_t bb = r->bias != NULL ? r->bias[o + 1] : 0;
        const tt_requant_ch qa = tt_requant_ch_make(r->mult[o], r->shift[o]);
        const tt_requant_ch qb = tt_requant_ch_make(r->mult[o + 1], r->shift[o + 1]);
        const int32_t ia = o * out_hw + pos, ib = ia + out_hw;
        if (col1 != NULL) {
            int32_t acc[4] = {ba, ba, bb, bb};
            mac_2x2(wa, wb, col0, col1, k, acc);
            y[ia] = tt_s8_out_mask(tt_requant_ch_apply(qa, acc[0]), yz, lo, hi, mask, ia);
            y[ia + 1] = tt_s8_out_mask(tt_requant_ch_apply(qa, acc[1]), yz, lo, hi, mask, ia + 1);
            y[ib] = tt_s8_out_mask(tt_requant_ch_apply(qb, acc[2]), yz, lo, hi, mask, ib);
            y[ib + 1] = tt_s8_out_mask(tt_requant_ch_apply(qb, acc[3]), yz, lo, hi, mask, ib + 1);
        } else {
            int32_t acc[2] = {ba, bb};
            mac_2x1(wa, wb, col0, k, acc);
            y[ia] = tt_s8_out_mask(tt_requant_ch_apply(qa, acc[0]), yz, lo, hi, mask, ia);
            y[ib] = tt_s8_out_mask(tt_requant_ch_apply(qb, acc[1]), yz, lo, hi, mask, ib);
        }
    }
    if (o < end) { /* an odd channel left over */
        const int8_t *wa = tt_row_cursor_at(&rows, o);
        const int32_t b = r->bias != NULL ? r->bias[o] : 0;
        const tt_requant_ch q = tt_requant_ch_make(r->mult[o], r->shift[o]);
        const int32_t ia = o * out_hw + pos;
        y[ia] = tt_s8_out_mask(tt_requant_ch_apply(q, mac_1x1(wa, col0, k, b)), yz, lo, hi, mask,
                               ia);
        if (col1 != NULL) {
            y[ia + 1] = tt_s8_out_mask(tt_requant_ch_apply(q, mac_1x1(wa, col1, k, b)), yz, lo, hi,
                                       mask, ia + 1);
        }
    }
}

/* A 1x1 stride-1 unpadded conv directly on the CHW planes, with no column: each output channel
 * four positions at a time (tt_pw_acc4, x_zero folded into the initial sums; the same integers
 * modulo 2^32), then the requantization. */
static void conv_1x1(const conv_rows *r, const int8_t *x_g, int32_t n, int32_t x_zero, int8_t *y)
{
    const int32_t k = r->k, hw = r->out_hw, yz = r->y_zero, lo = r->lo, hi = r->hi;
    uint8_t *mask = r->mask;
    tt_row_cursor rows = tt_row_cursor_make(r->w, k, r->sub, r->oc0);
    for (int32_t o = r->oc0; o < r->oc0 + n; o++) {
        const int8_t *wo = tt_row_cursor_at(&rows, o);
        const tt_requant_ch rq = tt_requant_ch_make(r->mult[o], r->shift[o]);
        const uint32_t init = (uint32_t)(r->bias != NULL ? r->bias[o] : 0) +
                              tt_pw_zero_term(wo, k, x_zero);
        const int32_t base = o * hw;
        int32_t j = 0;
        for (; j + 4 <= hw; j += 4) {
            uint32_t acc[4] = {init, init, init, init};
            tt_pw_acc4(x_g + j, hw, wo, k, acc);
            const int32_t i = base + j;
            y[i] = tt_s8_out_mask(tt_requant_ch_apply(rq, (int32_t)acc[0]), yz, lo, hi, mask, i);
            y[i + 1] = tt_s8_out_mask(tt_requant_ch_apply(rq, (int32_t)acc[1]), yz, lo, hi, mask,
                                      i + 1);
            y[i + 2] = tt_s8_out_mask(tt_requant_ch_apply(rq, (int32_t)acc[2]), yz, lo, hi, mask,
                                      i + 2);
            y[i + 3] = tt_s8_out_mask(tt_requant_ch_apply(rq, (int32_t)acc[3]), yz, lo, hi, mask,
                                      i + 3);
        }
        for (; j < hw; j++) { /* the last hw % 4 positions */
            uint32_t a = init;
            for (int32_t c = 0; c < k; c++) {
                a += (uint32_t)(wo[c] * x_g[(size_t)c * (size_t)hw + j]);
            }
            y[base + j] = tt_s8_out_mask(tt_requant_ch_apply(rq, (int32_t)a), yz, lo, hi, mask,
                                         base + j);
        }
    }
}

tt_status tt_conv2d_s8(const tt_scratch *ctx, const tt_conv2d_params *p, const tt_s8_requant *q,
                       const int8_t *x, const int8_t *w, const tt_row_subst *sub,
                       const int32_t *bias, int8_t *y)
{
    const int32_t need = tt_conv2d_s8_get_buffer_size(p);
    if (need < 0 || !tt_scratch_ok(ctx, need) || !tt_s8_requant_ok(q, p->out_c) || x == NULL ||
        w == NULL || y == NULL || !tt_row_subst_ok(sub, p->out_c)) {
        return TT_ERR_ARG;
    }
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t cout_g = p->out_c / p->groups;
    const int32_t k = cin_g * p->k_h * p->k_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t x_zero = q->x_zero;
    int16_t *col0 = (int16_t *)ctx->buf;
    int16_t *col1 = col0 + column_len(p);
    /* Direct where it takes fewer instructions (bench/kernels.py, bench/m4f.py's plans): short
     * rows (the 2x2 blocks' loops are mostly overhead) or few output channels (little to amortize
     * each column's gathering over). Otherwise the blocks win: 96 -> 160 at 4x4 2.0 instructions
     * per MAC against 3.0, 48 -> 240 at 8x8 2.8 against 3.3. */
    const int direct = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                       p->pad_h == 0 && p->pad_w == 0 && out_hw >= 4 &&
                       (k < 32 || (k < 64 && cout_g < 32));

    for (int32_t g = 0; g < p->groups; g++) {
        const int8_t *x_g = x + g * cin_g * p->in_h * p->in_w;
        const int32_t oc0 = g * cout_g;
        const conv_rows rows = {w,
                                sub,
                                oc0,
                                bias,
                                q->mult,
                                q->shift,
                                k,
                                out_hw,
                                q->y_zero,
                                q->act_min - q->y_zero,
                                q->act_max - q->y_zero,
                                q->mask};
        if (direct) {
            conv_1x1(&rows, x_g, cout_g, x_zero, y);
            continue;
        }
        int32_t oy = 0, ox = 0; /* the position pos */
        for (int32_t pos = 0; pos < out_hw; pos += 2) {
            const int two = pos + 1 < out_hw;
            build_column(p, x_g, x_zero, oy, ox, col0);
            if (++ox == p->out_w) {
                ox = 0;
                oy++;
            }
            if (two) {
                build_column(p, x_g, x_zero, oy, ox, col1);
                if (++ox == p->out_w) {
                    ox = 0;
                    oy++;
                }
            }
#if TT_S8_DSP
            reorder_column(col0, k);
            if (two) {
                reorder_column(col1, k);
            }
#endif
            conv_columns(&rows, cout_g, col0, two ? col1 : NULL, y, pos);
        }
    }
    return TT_OK;
}

/* --- the CONV2D_S8 op: plan check and run (tt/tt_op.h) --- */

/* DEPTHWISE_CONV2D_S8 has the same operands and attributes; the two ops share these. */
_Static_assert((int)TT_OPND_DEPTHWISE_CONV2D_S8_SCRATCH == (int)TT_OPND_CONV2D_S8_SCRATCH &&
                   (int)TT_OPND_DEPTHWISE_CONV2D_S8_CHANNELS == (int)TT_OPND_CONV2D_S8_CHANNELS &&
                   (int)TT_ATTR_DEPTHWISE_CONV2D_S8_N_ROWS == (int)TT_ATTR_CONV2D_S8_N_ROWS,
               "CONV2D_S8 and DEPTHWISE_CONV2D_S8 share their operand and attribute layout");

tt_status tt_op_conv_s8_check(const tt_op_ctx *c, int32_t (*buffer_size)(const tt_conv2d_params *),
                              tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_IN_C);
    const int32_t n_rows = c->a[TT_ATTR_CONV2D_S8_N_ROWS];
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w) ||
        !tt_act_range_ok(c->a[TT_ATTR_CONV2D_S8_ACT_MIN], c->a[TT_ATTR_CONV2D_S8_ACT_MAX]) ||
        n_rows > p.out_c) {
        return tt_op_impossible(c, err);
    }
    const int32_t scratch = buffer_size(&p);
    if (scratch <= 0) {
        return tt_op_impossible(c, err);
    }
    const uint64_t out_c = (uint64_t)p.out_c;
    const uint64_t numel[] = {[TT_OPND_CONV2D_S8_X] = x,
                              [TT_OPND_CONV2D_S8_W] = w,
                              [TT_OPND_CONV2D_S8_BIAS] = out_c,
                              [TT_OPND_CONV2D_S8_MULT] = out_c,
                              [TT_OPND_CONV2D_S8_SHIFT] = out_c,
                              [TT_OPND_CONV2D_S8_W_ROWS] = (uint64_t)n_rows * (w / out_c),
                              [TT_OPND_CONV2D_S8_CHANNELS] = (uint64_t)n_rows,
                              [TT_OPND_CONV2D_S8_Y] = y,
                              [TT_OPND_CONV2D_S8_MASK] = tt_mask_bytes(y),
                              [TT_OPND_CONV2D_S8_SCRATCH] = (uint64_t)scratch};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_present(c, TT_OPND_CONV2D_S8_W_ROWS) != (n_rows > 0) ||
        tt_opnd_present(c, TT_OPND_CONV2D_S8_CHANNELS) != (n_rows > 0)) {
        return tt_op_refuse(c, "substituted weight rows, their channels and n_rows disagree", err);
    }
    if (!tt_shifts_ok(c, TT_OPND_CONV2D_S8_SHIFT)) {
        return tt_op_refuse(c, "a requantization shift is outside [-31, 30]", err);
    }
    return tt_channels_ok(c, TT_OPND_CONV2D_S8_CHANNELS, p.out_c)
               ? TT_OK
               : tt_op_refuse(c, "channel indices are not constant, increasing and below out_c",
                              err);
}

tt_conv_s8_args tt_op_conv_s8_args(const tt_op_ctx *c)
{
    return (tt_conv_s8_args){TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_IN_C),
                             {c->a[TT_ATTR_CONV2D_S8_X_ZERO], c->a[TT_ATTR_CONV2D_S8_Y_ZERO],
                              c->a[TT_ATTR_CONV2D_S8_ACT_MIN], c->a[TT_ATTR_CONV2D_S8_ACT_MAX],
                              tt_opnd_s32(c, TT_OPND_CONV2D_S8_MULT),
                              tt_opnd_s32(c, TT_OPND_CONV2D_S8_SHIFT),
                              (uint8_t *)tt_opnd(c, TT_OPND_CONV2D_S8_MASK)},
                             {tt_opnd_s8(c, TT_OPND_CONV2D_S8_W_ROWS),
                              tt_opnd_s32(c, TT_OPND_CONV2D_S8_CHANNELS),
                              c->a[TT_ATTR_CONV2D_S8_N_ROWS]},
                             tt_opnd_scratch(c, TT_OPND_CONV2D_S8_SCRATCH)};
}

tt_status tt_op_conv2d_s8_check(const tt_op_ctx *c, tt_error *err)
{
    return tt_op_conv_s8_check(c, tt_conv2d_s8_get_buffer_size, err);
}

tt_status tt_op_conv2d_s8_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv_s8_args a = tt_op_conv_s8_args(c);
    return tt_conv2d_s8(&a.scratch, &a.p, &a.q, tt_opnd_s8(c, TT_OPND_CONV2D_S8_X),
                        tt_opnd_s8(c, TT_OPND_CONV2D_S8_W), &a.sub,
                        tt_opnd_s32(c, TT_OPND_CONV2D_S8_BIAS),
                        tt_opnd_s8(c, TT_OPND_CONV2D_S8_Y));
}
