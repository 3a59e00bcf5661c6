/*
 * Parameter validation shared by the fp32 kernels (private to runtime/ops).
 *
 * A parameter block is accepted when every size is positive, padding is non-negative, groups
 * divide the channels, the output size is exactly (in + 2*pad - k) / stride + 1, pools pad by at
 * most half their kernel (as PyTorch requires: no window lies entirely in the padding), and every
 * tensor's element count fits in int32_t, so the kernels' int32_t index arithmetic cannot
 * overflow. The checks use 64-bit arithmetic so absurd values cannot overflow them either.
 */
#ifndef TT_OPS_COMMON_H
#define TT_OPS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "tt/tt_kernels_f32.h"

static inline int tt_fits_i32(int64_t n)
{
    return n > 0 && n <= INT32_MAX;
}

/* a * b * c * d is positive and fits int32_t. Multiplied step by step: each partial product is
 * at most INT32_MAX^2 < 2^62, so nothing overflows int64_t on the way. */
static inline int tt_numel_fits_i32(int32_t a, int32_t b, int32_t c, int32_t d)
{
    const int32_t f[4] = {a, b, c, d};
    int64_t n = 1;
    for (int i = 0; i < 4; i++) {
        n *= f[i];
        if (!tt_fits_i32(n)) {
            return 0;
        }
    }
    return 1;
}

/* One spatial axis: in, out, kernel, stride, pad. */
static inline int tt_window_ok(int32_t in, int32_t out, int32_t k, int32_t stride, int32_t pad)
{
    if (in <= 0 || out <= 0 || k <= 0 || stride <= 0 || pad < 0) {
        return 0;
    }
    const int64_t padded = (int64_t)in + 2 * (int64_t)pad;
    if (padded < k || padded > INT32_MAX) {
        return 0;
    }
    return out == (padded - k) / stride + 1;
}

static inline int tt_linear_params_ok(const tt_linear_params *p)
{
    return p != NULL && p->in_features > 0 && p->out_features > 0 &&
           tt_numel_fits_i32(p->in_features, p->out_features, 1, 1);
}

static inline int tt_conv2d_params_ok(const tt_conv2d_params *p)
{
    if (p == NULL || p->in_c <= 0 || p->out_c <= 0 || p->groups <= 0 || p->in_c % p->groups != 0 ||
        p->out_c % p->groups != 0) {
        return 0;
    }
    if (!tt_window_ok(p->in_h, p->out_h, p->k_h, p->stride_h, p->pad_h) ||
        !tt_window_ok(p->in_w, p->out_w, p->k_w, p->stride_w, p->pad_w)) {
        return 0;
    }
    return tt_numel_fits_i32(p->in_c, p->in_h, p->in_w, 1) &&
           tt_numel_fits_i32(p->out_c, p->out_h, p->out_w, 1) &&
           tt_numel_fits_i32(p->out_c, p->in_c / p->groups, p->k_h, p->k_w);
}

static inline int tt_pool2d_params_ok(const tt_pool2d_params *p)
{
    if (p == NULL || p->c <= 0) {
        return 0;
    }
    if (!tt_window_ok(p->in_h, p->out_h, p->k_h, p->stride_h, p->pad_h) ||
        !tt_window_ok(p->in_w, p->out_w, p->k_w, p->stride_w, p->pad_w)) {
        return 0;
    }
    if (2 * (int64_t)p->pad_h > p->k_h || 2 * (int64_t)p->pad_w > p->k_w) {
        return 0;
    }
    return tt_numel_fits_i32(p->c, p->in_h, p->in_w, 1) &&
           tt_numel_fits_i32(p->c, p->out_h, p->out_w, 1) &&
           tt_numel_fits_i32(p->k_h, p->k_w, 1, 1);
}

#endif
