/* Gradient of the int8 conv with respect to its integer weights and bias, in float:
 * dw[o,i,ky,kx] = sum_p dz[o,p] * (x - x_zero) over the window (out-of-image taps 0) for the
 * selected rows only (the sparse update), db[o] = sum_p dz[o,p] for every channel. */
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

/* dw_k[ky][kx] = sum_p dz_oc[p] * (x_c - x_zero)[window(p) + (ky, kx)] for one (oc, ic) pair,
 * summed over the output positions p in ascending order (the reference's order; out-of-image
 * taps add nothing). */
static void kernel_grad(const tt_conv2d_params *p, const float *dz_oc, const int8_t *x_c,
                        float x_zero, float *dw_k)
{
    const int32_t sw = p->stride_w;
    for (int32_t ky = 0; ky < p->k_h; ky++) {
        int32_t oy0 = 0;
        const int32_t n_oy = tt_valid_outputs(p->out_h, p->in_h, p->stride_h, p->pad_h, ky, &oy0);
        for (int32_t kx = 0; kx < p->k_w; kx++) {
            int32_t ox0 = 0;
            const int32_t n_ox = tt_valid_outputs(p->out_w, p->in_w, sw, p->pad_w, kx, &ox0);
            float acc = 0.0f;
            for (int32_t oy = oy0; oy < oy0 + n_oy; oy++) {
                const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                const int8_t *x_row = x_c + iy * p->in_w + (ox0 * sw - p->pad_w + kx);
                const float *dz_row = dz_oc + oy * p->out_w + ox0;
                int32_t n = 0;
                if (sw == 1) { /* unrolled: the same sum, in the same order */
                    for (; n + 4 <= n_ox; n += 4) {
                        acc = tt_f32_mla(acc, dz_row[n], (float)x_row[n] - x_zero);
                        acc = tt_f32_mla(acc, dz_row[n + 1], (float)x_row[n + 1] - x_zero);
                        acc = tt_f32_mla(acc, dz_row[n + 2], (float)x_row[n + 2] - x_zero);
                        acc = tt_f32_mla(acc, dz_row[n + 3], (float)x_row[n + 3] - x_zero);
                    }
                }
                for (; n < n_ox; n++) {
                    acc = tt_f32_mla(acc, dz_row[n], (float)x_row[n * sw] - x_zero);
                }
            }
            dw_k[ky * p->k_w + kx] = acc;
        }
    }
}

/* The integers -256 .. 255 as floats (2 KB of constants): x - x_zero as a float in one load from
 * (k_ints + 256 - x_zero)[x], where the conversion takes three instructions (move to the FPU,
 * convert, subtract). Exact either way: |x - x_zero| <= 255. */
#define TT_I1(n) (float)(n)
#define TT_I4(n) TT_I1(n), TT_I1((n) + 1), TT_I1((n) + 2), TT_I1((n) + 3)
#define TT_I16(n) TT_I4(n), TT_I4((n) + 4), TT_I4((n) + 8), TT_I4((n) + 12)
#define TT_I64(n) TT_I16(n), TT_I16((n) + 16), TT_I16((n) + 32), TT_I16((n) + 48)
#define TT_I256(n) TT_I64(n), TT_I64((n) + 64), TT_I64((n) + 128), TT_I64((n) + 192)
static const float k_ints[512] = {TT_I256(-256), TT_I256(0)};

/* A 1x1 stride-1 unpadded conv's row: row[i] = sum_q dz_oc[q] * (x_i[q] - x_zero) over the whole
 * plane in ascending order, four input channels at a time (each dz value loaded once for four
 * sums; each sum's order is the general path's). */
static void row_1x1(const float *dz_oc, const int8_t *x, int32_t hw, int32_t n, int32_t x_zero,
                    float *row)
{
    const float *xf = k_ints + 256 - x_zero; /* xf[v] = v - x_zero */
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int8_t *x0 = x + i * hw, *x1 = x0 + hw, *x2 = x1 + hw, *x3 = x2 + hw;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (int32_t q = 0; q < hw; q++) {
            const float d = dz_oc[q];
            a0 = tt_f32_mla(a0, d, xf[x0[q]]);
            a1 = tt_f32_mla(a1, d, xf[x1[q]]);
            a2 = tt_f32_mla(a2, d, xf[x2[q]]);
            a3 = tt_f32_mla(a3, d, xf[x3[q]]);
        }
        row[i] = a0, row[i + 1] = a1, row[i + 2] = a2, row[i + 3] = a3;
    }
    for (; i < n; i++) {
        const int8_t *xi = x + i * hw;
        float acc = 0.0f;
        for (int32_t q = 0; q < hw; q++) {
            acc = tt_f32_mla(acc, dz_oc[q], xf[xi[q]]);
        }
        row[i] = acc;
    }
}

void tt_conv2d_s8_grad_weight_row_f32(const tt_conv2d_params *p, const float *dz, const int8_t *x,
                                      int32_t x_zero, int32_t oc, float *row)
{
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t ksize = p->k_h * p->k_w;
    const int32_t ic0 = (oc / (p->out_c / p->groups)) * cin_g;
    const int32_t hw = p->in_h * p->in_w;
    if (ksize == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0) {
        row_1x1(dz + oc * hw, x + ic0 * hw, hw, cin_g, x_zero, row);
        return;
    }
    for (int32_t icg = 0; icg < cin_g; icg++) {
        kernel_grad(p, dz + oc * p->out_h * p->out_w, x + (ic0 + icg) * p->in_h * p->in_w,
                    (float)x_zero, row + icg * ksize);
    }
}

tt_status tt_conv2d_s8_grad_weight_f32(const tt_conv2d_params *p, const tt_channel_select *sel,
                                       const float *dz, const int8_t *x, int32_t x_zero, float *dw,
                                       float *db)
{
    if (!tt_conv2d_params_ok(p) ||
        !tt_select_axis_ok(sel, p->out_c, p->in_c / p->groups, p->groups == 1) || dz == NULL ||
        (dw != NULL && x == NULL) || (dw == NULL && db == NULL) || !tt_in_s8(x_zero)) {
        return TT_ERR_ARG;
    }
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t ksize = p->k_h * p->k_w;
    const int32_t out_hw = p->out_h * p->out_w;
    const int32_t in_hw = p->in_h * p->in_w;
    const float xz = (float)x_zero;

    if (dw == NULL) { /* a layer that trains only its bias */
    } else if (tt_select_axis(sel) == 0) {
        const int32_t rows = tt_select_count(sel, p->out_c);
        for (int32_t j = 0; j < rows; j++) {
            tt_conv2d_s8_grad_weight_row_f32(p, dz, x, x_zero, tt_select_at(sel, j),
                                             dw + j * cin_g * ksize);
        }
    } else { /* input channels of a groups == 1 conv */
        const int32_t cols = tt_select_count(sel, p->in_c);
        for (int32_t oc = 0; oc < p->out_c; oc++) {
            for (int32_t j = 0; j < cols; j++) {
                kernel_grad(p, dz + oc * out_hw, x + tt_select_at(sel, j) * in_hw, xz,
                            dw + (oc * cols + j) * ksize);
            }
        }
    }
    if (db != NULL) {
        for (int32_t oc = 0; oc < p->out_c; oc++) {
            float acc = 0.0f;
            for (int32_t i = 0; i < out_hw; i++) {
                acc += dz[oc * out_hw + i];
            }
            db[oc] = acc;
        }
    }
    return TT_OK;
}

/* --- the CONV2D_S8_GRAD_WEIGHT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_conv2d_s8_grad_weight_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_GRAD_WEIGHT_F32_IN_C);
    const int32_t n_ch = c->a[TT_ATTR_CONV2D_S8_GRAD_WEIGHT_F32_N_CHANNELS];
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w) || n_ch > p.out_c) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DZ] = y,
                              [TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_X] = x,
                              [TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_CHANNELS] = (uint64_t)n_ch,
                              [TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DW] = (uint64_t)n_ch *
                                                                       (w / (uint64_t)p.out_c),
                              [TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DB] = (uint64_t)p.out_c};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    const bool dw = tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DW);
    const bool x_in = tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_X);
    const bool sel = tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_CHANNELS);
    const bool db = tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DB);
    if (dw != x_in || dw != (n_ch > 0) || (!dw && sel) || (dw && !sel && n_ch != p.out_c) ||
        (!dw && !db)) {
        return tt_op_refuse(c,
                            "a weight gradient needs its input and n_channels rows (all rows "
                            "without channels); with neither, db",
                            err);
    }
    return tt_channels_ok(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_CHANNELS, p.out_c)
               ? TT_OK
               : tt_op_refuse(c, "channel indices are not constant, increasing and below out_c",
                              err);
}

tt_status tt_op_conv2d_s8_grad_weight_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_GRAD_WEIGHT_F32_IN_C);
    const tt_channel_select sel = {tt_opnd_s32(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_CHANNELS),
                                   c->a[TT_ATTR_CONV2D_S8_GRAD_WEIGHT_F32_N_CHANNELS], 0};
    return tt_conv2d_s8_grad_weight_f32(&p, sel.index != NULL ? &sel : NULL,
                                        tt_opnd_f32(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DZ),
                                        tt_opnd_s8(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_X),
                                        c->a[TT_ATTR_CONV2D_S8_GRAD_WEIGHT_F32_X_ZERO],
                                        tt_opnd_f32(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DW),
                                        tt_opnd_f32(c, TT_OPND_CONV2D_S8_GRAD_WEIGHT_F32_DB));
}
