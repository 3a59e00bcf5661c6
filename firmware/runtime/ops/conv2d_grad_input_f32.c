/* Gradient of conv2d with respect to its input (a transposed convolution): each dy[oc][oy][ox]
 * is scattered back, weighted by w, onto the inputs of its window. Padding positions are dropped. */
#include <stddef.h>
#include <string.h>

#include "ops_common.h"

tt_status tt_conv2d_grad_input_f32(const tt_conv2d_params *p, const float *dy, const float *w,
                                   float *dx)
{
    if (!tt_conv2d_params_ok(p) || dy == NULL || w == NULL || dx == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t cout_g = p->out_c / p->groups;
    const int32_t ksize = p->k_h * p->k_w;

    memset(dx, 0, (size_t)p->in_c * (size_t)p->in_h * (size_t)p->in_w * sizeof(float));
    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t ic0 = (oc / cout_g) * cin_g;
        const float *w_oc = w + oc * cin_g * ksize;
        const float *dy_oc = dy + oc * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const float g = dy_oc[oy * p->out_w + ox];
                for (int32_t icg = 0; icg < cin_g; icg++) {
                    float *dx_c = dx + (ic0 + icg) * p->in_h * p->in_w;
                    const float *w_k = w_oc + icg * ksize;
                    for (int32_t ky = 0; ky < p->k_h; ky++) {
                        const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < p->k_w; kx++) {
                            const int32_t ix = ox * p->stride_w - p->pad_w + kx;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            dx_c[iy * p->in_w + ix] += g * w_k[ky * p->k_w + kx];
                        }
                    }
                }
            }
        }
    }
    return TT_OK;
}
