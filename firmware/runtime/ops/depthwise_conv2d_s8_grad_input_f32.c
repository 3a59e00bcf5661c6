/* Gradient of a depthwise int8 conv (groups == in_c == out_c) with respect to its input, a
 * channel at a time: each dx plane is made in one f32 plane of scratch, then copied out, so dx may
 * be dz (in place: channel c of dx depends on channel c of dz only).
 *
 * The sums are tt_conv2d_s8_grad_input_f32's, in its order, so the result is that kernel's bit for
 * bit: a dx element starts from +0 and adds its taps' dz * w with the taps (ky, kx) in descending
 * order (for one channel, that is the output positions ascending). Computed by gathering: each dx
 * element sums its own taps in registers (the scatter form reads and writes dx once per MAC). The
 * channel's weights are converted to float once; the square 3x3, 5x5 and 7x7 kernels of stride 1
 * and 2 have unrolled loops for the elements whose taps all fall inside dz (every tap of their
 * stride class), and every other element and shape takes the general per-element loop. */
#include <stddef.h>
#include <string.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

#define DW_MAX_TAPS 49 /* float weights kept on the stack: up to 7x7 */

/* The taps along one axis that reach input index i: the largest tap k_hi of i's stride class
 * whose output index o = (i + pad - k) / stride lies in [0, n_out), its output index in *o_lo,
 * and the count of taps k_hi, k_hi - stride, ... whose outputs (ascending) are inside (0: none). */
static int32_t axis_taps(int32_t i, int32_t pad, int32_t k, int32_t stride, int32_t n_out,
                         int32_t *k_hi, int32_t *o_lo)
{
    const int32_t t = i + pad; /* >= 0; tap k reaches output (t - k) / stride */
    int32_t hi = t < k - 1 ? t : k - 1;
    hi -= (t - hi) % stride;
    int32_t lo = t - stride * (n_out - 1);
    lo = lo < 0 ? 0 : lo;
    if (hi < lo) {
        return 0;
    }
    *k_hi = hi;
    *o_lo = (t - hi) / stride;
    return (hi - lo) / stride + 1;
}

/* dx[iy][ix] of one channel, any geometry: its valid taps in descending (ky, kx) order, that is
 * its outputs in ascending order. */
static float dw_element(const tt_conv2d_params *p, const float *dz, const float *wf, int32_t iy,
                        int32_t ix)
{
    int32_t ky = 0, oy = 0, kx = 0, ox = 0;
    const int32_t ny = axis_taps(iy, p->pad_h, p->k_h, p->stride_h, p->out_h, &ky, &oy);
    const int32_t nx = axis_taps(ix, p->pad_w, p->k_w, p->stride_w, p->out_w, &kx, &ox);
    float acc = 0.0f;
    for (int32_t a = 0; a < ny; a++) {
        const float *r = dz + (oy + a) * p->out_w + ox;
        const float *wr = wf + (ky - a * p->stride_h) * p->k_w + kx;
        for (int32_t b = 0; b < nx; b++) {
            acc = tt_f32_mla(acc, r[b], wr[-b * p->stride_w]);
        }
    }
    return acc;
}

/* Stride 1, a KxK kernel, the interior elements ix0 <= ix < ix1 of row iy (every tap inside dz):
 * dz_c points at dz[iy + pad_h][ix0 + pad_w]; tap (ky, kx) reads dz_c[-ky * out_w - kx]. */
static TT_S8_INLINE void dw_row_s1(const float *dz_c, int32_t out_w, const float *wf, int32_t k,
                                   int32_t n, float *dx)
{
    for (int32_t i = 0; i < n; i++, dz_c++) {
        float acc = 0.0f;
#pragma GCC unroll 7
        for (int32_t ky = k - 1; ky >= 0; ky--) {
            const float *r = dz_c - ky * out_w;
#pragma GCC unroll 7
            for (int32_t kx = k - 1; kx >= 0; kx--) {
                acc = tt_f32_mla(acc, r[-kx], wf[ky * k + kx]);
            }
        }
        dx[i] = acc;
    }
}

/* Stride 2, a KxK kernel, interior elements of one row class ry = (iy + pad_h) % 2 and one column
 * class rx = (ix + pad_w) % 2, every second element from ix0: only the taps ky = ry (mod 2),
 * kx = rx (mod 2) land on an output. dz_c points at dz[(iy + pad_h - ry) / 2][(ix0 + pad_w -
 * rx) / 2]; tap (ky, kx) reads dz_c[-((ky - ry) / 2) * out_w - (kx - rx) / 2]. */
static TT_S8_INLINE void dw_row_s2(const float *dz_c, int32_t out_w, const float *wf, int32_t k,
                                   int32_t ry, int32_t rx, int32_t n, float *dx)
{
    for (int32_t i = 0; i < n; i++, dz_c++) {
        float acc = 0.0f;
#pragma GCC unroll 7
        for (int32_t ky = k - 1; ky >= 0; ky--) {
            if ((ky - ry) % 2 != 0) {
                continue;
            }
            const float *r = dz_c - ((ky - ry) / 2) * out_w;
#pragma GCC unroll 7
            for (int32_t kx = k - 1; kx >= 0; kx--) {
                if ((kx - rx) % 2 == 0) {
                    acc = tt_f32_mla(acc, r[-((kx - rx) / 2)], wf[ky * k + kx]);
                }
            }
        }
        dx[2 * i] = acc;
    }
}

/* The interior of row iy from ix0 to ix1 - 1 with a compile-time kernel size k. */
static TT_S8_INLINE void dw_interior_row(const tt_conv2d_params *p, const float *dz,
                                         const float *wf, int32_t k, int32_t iy, int32_t ix0,
                                         int32_t ix1, float *dx_row)
{
    const int32_t ow = p->out_w;
    if (p->stride_h == 1) {
        dw_row_s1(dz + (iy + p->pad_h) * ow + ix0 + p->pad_w, ow, wf, k, ix1 - ix0, dx_row + ix0);
        return;
    }
    const int32_t ty = iy + p->pad_h, ry = ty & 1;
    const float *dz_r = dz + ((ty - ry) / 2) * ow;
    for (int32_t ix = ix0; ix < ix0 + 2 && ix < ix1; ix++) {
        const int32_t tx = ix + p->pad_w, rx = tx & 1;
        const int32_t n = (ix1 - ix + 1) / 2;
        const float *c = dz_r + (tx - rx) / 2;
        if (ry == 0 && rx == 0) {
            dw_row_s2(c, ow, wf, k, 0, 0, n, dx_row + ix);
        } else if (ry == 0) {
            dw_row_s2(c, ow, wf, k, 0, 1, n, dx_row + ix);
        } else if (rx == 0) {
            dw_row_s2(c, ow, wf, k, 1, 0, n, dx_row + ix);
        } else {
            dw_row_s2(c, ow, wf, k, 1, 1, n, dx_row + ix);
        }
    }
}

/* The first and one past the last index along an axis whose every tap (of its stride class)
 * lands inside the output: i + pad - (k - 1) >= 0 and i + pad <= stride * (n_out - 1). */
static void interior(int32_t n_in, int32_t n_out, int32_t k, int32_t stride, int32_t pad,
                     int32_t *lo, int32_t *hi)
{
    int32_t a = k - 1 - pad, b = stride * (n_out - 1) - pad + 1;
    a = a < 0 ? 0 : a;
    b = b > n_in ? n_in : b;
    *lo = a;
    *hi = b > a ? b : a;
}

static void dw_plane(const tt_conv2d_params *p, const float *dz, const int8_t *w, float *dx)
{
    float wf[DW_MAX_TAPS];
    const int32_t taps = p->k_h * p->k_w;
    for (int32_t t = 0; t < taps; t++) {
        wf[t] = (float)w[t];
    }
    const int32_t k = p->k_h;
    const int fast = p->k_w == k && (k == 3 || k == 5 || k == 7) && p->stride_h == p->stride_w &&
                     (p->stride_h == 1 || p->stride_h == 2);
    int32_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
    if (fast) {
        interior(p->in_h, p->out_h, k, p->stride_h, p->pad_h, &y0, &y1);
        interior(p->in_w, p->out_w, k, p->stride_w, p->pad_w, &x0, &x1);
    }
    for (int32_t iy = 0; iy < p->in_h; iy++) {
        float *dx_row = dx + iy * p->in_w;
        const int inner = iy >= y0 && iy < y1 && x1 > x0;
        for (int32_t ix = 0; ix < p->in_w; ix++) {
            if (inner && ix == x0) {
                if (k == 3) {
                    dw_interior_row(p, dz, wf, 3, iy, x0, x1, dx_row);
                } else if (k == 5) {
                    dw_interior_row(p, dz, wf, 5, iy, x0, x1, dx_row);
                } else {
                    dw_interior_row(p, dz, wf, 7, iy, x0, x1, dx_row);
                }
                ix = x1 - 1;
                continue;
            }
            dx_row[ix] = dw_element(p, dz, wf, iy, ix);
        }
    }
}

tt_status tt_depthwise_conv2d_s8_grad_input_f32(const tt_scratch *ctx, const tt_conv2d_params *p,
                                                const float *dz, const int8_t *w,
                                                const tt_row_subst *sub, float *dx)
{
    if (!tt_conv2d_params_ok(p) || p->groups != p->in_c || p->out_c != p->in_c || dz == NULL ||
        w == NULL || dx == NULL || ctx == NULL || ctx->buf == NULL ||
        ctx->size < 4 * p->in_h * p->in_w || !tt_row_subst_ok(sub, p->out_c)) {
        return TT_ERR_ARG;
    }
    const int32_t in_hw = p->in_h * p->in_w, out_hw = p->out_h * p->out_w;
    /* One channel as a conv of its own: in_c = out_c = groups = 1. */
    tt_conv2d_params one = *p;
    one.in_c = one.out_c = one.groups = 1;
    const int gather = p->k_h * p->k_w <= DW_MAX_TAPS;
    tt_row_cursor rows = tt_row_cursor_make(w, p->k_h * p->k_w, sub, 0);
    float *plane = ctx->buf;
    for (int32_t c = 0; c < p->out_c; c++) {
        const int8_t *w_c = tt_row_cursor_at(&rows, c);
        if (gather) {
            dw_plane(&one, dz + c * out_hw, w_c, plane);
        } else {
            const tt_status st = tt_conv2d_s8_grad_input_f32(&one, dz + c * out_hw, w_c, NULL,
                                                             plane);
            if (st != TT_OK) {
                return st;
            }
        }
        memcpy(dx + c * in_hw, plane, (size_t)in_hw * sizeof(float));
    }
    return TT_OK;
}

/* --- the DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_depthwise_conv2d_s8_grad_input_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a +
                                                  TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const int32_t n_rows = c->a[TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_N_ROWS];
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w) || n_rows > p.out_c || p.groups != p.in_c ||
        p.out_c != p.in_c) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DZ] = y,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W] = w,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W_ROWS] = (uint64_t)n_rows *
                                                              (w / (uint64_t)p.out_c),
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS] = (uint64_t)n_rows,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DX] = x,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_SCRATCH] = 4u * (uint64_t)p.in_h * p.in_w};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_present(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W_ROWS) != (n_rows > 0) ||
        tt_opnd_present(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS) != (n_rows > 0)) {
        return tt_op_refuse(c, "substituted weight rows, their channels and n_rows disagree", err);
    }
    return tt_channels_ok(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS, p.out_c)
               ? TT_OK
               : tt_op_refuse(c, "channel indices are not constant, increasing and below out_c",
                              err);
}

tt_status tt_op_depthwise_conv2d_s8_grad_input_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a +
                                                  TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const tt_row_subst sub = {tt_opnd_s8(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W_ROWS),
                              tt_opnd_s32(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS),
                              c->a[TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_N_ROWS]};
    const tt_scratch scratch = tt_opnd_scratch(c,
                                               TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_SCRATCH);
    return tt_depthwise_conv2d_s8_grad_input_f32(
        &scratch, &p, tt_opnd_f32(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DZ),
        tt_opnd_s8(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W), &sub,
        tt_opnd_f32(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DX));
}
