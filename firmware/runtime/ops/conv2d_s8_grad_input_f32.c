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
                    const int32_t n_ox = tt_valid_outputs(p->out_w, p->in_w, sw, p->pad_w, kx, &ox0);
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
