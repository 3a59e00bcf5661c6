/* Gradient of the int8 conv with respect to its input, carried in float: the transposed
 * convolution of dz with the int8 weights as floats (as tt_conv2d_grad_input_f32), with the
 * sparse update's trainable rows standing in for theirs.
 *
 * Summation order (part of the specification: kernels_s8.conv2d_s8_grad_input sums the same way,
 * so device and reference train bit-identically): each dx element accumulates its group's output
 * channels in ascending order and, per channel, its output positions in ascending order. Looping
 * the kernel taps (ky, kx) in descending order visits them so; the inner loop then runs along an
 * output row with no bounds tests. */
#include <stddef.h>
#include <string.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_conv2d_s8_grad_input_f32(const tt_conv2d_params *p, const float *dz, const int8_t *w,
                                      const tt_row_subst *sub, float *dx)
{
    if (!tt_conv2d_params_ok(p) || dz == NULL || w == NULL || dx == NULL ||
        !tt_row_subst_ok(sub, p->out_c)) {
        return TT_ERR_ARG;
    }
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t cout_g = p->out_c / p->groups;
    const int32_t ksize = p->k_h * p->k_w;
    const int32_t in_hw = p->in_h * p->in_w, out_hw = p->out_h * p->out_w;
    const int32_t sw = p->stride_w;

    memset(dx, 0, (size_t)p->in_c * (size_t)in_hw * sizeof(float));
    tt_row_cursor rows = tt_row_cursor_make(w, cin_g * ksize, sub, 0);
    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t ic0 = (oc / cout_g) * cin_g;
        const int8_t *w_oc = tt_row_cursor_at(&rows, oc);
        const float *dz_oc = dz + oc * out_hw;
        for (int32_t icg = 0; icg < cin_g; icg++) {
            float *dx_c = dx + (ic0 + icg) * in_hw;
            const int8_t *w_k = w_oc + icg * ksize;
            for (int32_t ky = p->k_h - 1; ky >= 0; ky--) {
                int32_t oy0 = 0;
                const int32_t n_oy = tt_valid_outputs(p->out_h, p->in_h, p->stride_h, p->pad_h, ky,
                                                      &oy0);
                for (int32_t kx = p->k_w - 1; kx >= 0; kx--) {
                    int32_t ox0 = 0;
                    const int32_t n_ox = tt_valid_outputs(p->out_w, p->in_w, sw, p->pad_w, kx,
                                                          &ox0);
                    const float wv = (float)w_k[ky * p->k_w + kx];
                    for (int32_t oy = oy0; oy < oy0 + n_oy; oy++) {
                        const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                        float *dx_row = dx_c + iy * p->in_w + (ox0 * sw - p->pad_w + kx);
                        const float *dz_row = dz_oc + oy * p->out_w + ox0;
                        for (int32_t n = 0; n < n_ox; n++) {
                            dx_row[n * sw] += dz_row[n] * wv;
                        }
                    }
                }
            }
        }
    }
    return TT_OK;
}

/* --- the CONV2D_S8_GRAD_INPUT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_conv2d_s8_grad_input_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const int32_t n_rows = c->a[TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_N_ROWS];
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w) || n_rows > p.out_c) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DZ] = y,
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W] = w,
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W_ROWS] = (uint64_t)n_rows *
                                                                          (w / (uint64_t)p.out_c),
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS] = (uint64_t)n_rows,
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DX] = x};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W_ROWS) != (n_rows > 0) ||
        tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS) != (n_rows > 0)) {
        return tt_op_refuse(c, "substituted weight rows, their channels and n_rows disagree", err);
    }
    return tt_channels_ok(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS, p.out_c)
               ? TT_OK
               : tt_op_refuse(c, "channel indices are not constant, increasing and below out_c",
                              err);
}

tt_status tt_op_conv2d_s8_grad_input_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const tt_row_subst sub = {tt_opnd_s8(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W_ROWS),
                              tt_opnd_s32(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS),
                              c->a[TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_N_ROWS]};
    return tt_conv2d_s8_grad_input_f32(&p, tt_opnd_f32(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DZ),
                                       tt_opnd_s8(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W), &sub,
                                       tt_opnd_f32(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DX));
}
