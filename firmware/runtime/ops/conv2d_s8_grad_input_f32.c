/* Gradient of the int8 conv with respect to its input, carried in float: the transposed
 * convolution of dz with the int8 weights as floats (as tt_conv2d_grad_input_f32), with the
 * sparse update's trainable rows standing in for theirs. */
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

    memset(dx, 0, (size_t)p->in_c * (size_t)p->in_h * (size_t)p->in_w * sizeof(float));
    tt_row_cursor rows = tt_row_cursor_make(w, cin_g * ksize, sub, 0);
    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t ic0 = (oc / cout_g) * cin_g;
        const int8_t *w_oc = tt_row_cursor_at(&rows, oc);
        const float *dz_oc = dz + oc * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = p->in_h - iy0 < p->k_h ? p->in_h - iy0 : p->k_h;
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
                const int32_t kx_hi = p->in_w - ix0 < p->k_w ? p->in_w - ix0 : p->k_w;
                const float g = dz_oc[oy * p->out_w + ox];
                for (int32_t icg = 0; icg < cin_g; icg++) {
                    float *dx_c = dx + (ic0 + icg) * p->in_h * p->in_w;
                    const int8_t *w_k = w_oc + icg * ksize;
                    for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                        float *dx_row = dx_c + (iy0 + ky) * p->in_w;
                        const int8_t *w_row = w_k + ky * p->k_w;
                        for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                            dx_row[ix0 + kx] += g * (float)w_row[kx];
                        }
                    }
                }
            }
        }
    }
    return TT_OK;
}
