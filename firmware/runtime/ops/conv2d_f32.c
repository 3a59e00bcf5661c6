/* 2-D convolution (cross-correlation, as in PyTorch) with zero padding, stride and groups:
 * y[oc][oy][ox] = b[oc] + sum over the input channels of oc's group and the kernel window of
 * w[oc][ic][ky][kx] * x[ic][oy*stride_h - pad_h + ky][ox*stride_w - pad_w + kx]. */
#include <stddef.h>

#include "ops_common.h"

tt_status tt_conv2d_f32(const tt_conv2d_params *p, const float *x, const float *w, const float *b,
                        float *y)
{
    if (!tt_conv2d_params_ok(p) || x == NULL || w == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t cin_g = p->in_c / p->groups;   /* input channels per group */
    const int32_t cout_g = p->out_c / p->groups; /* output channels per group */
    const int32_t ksize = p->k_h * p->k_w;

    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t ic0 = (oc / cout_g) * cin_g; /* first input channel of oc's group */
        const float *w_oc = w + oc * cin_g * ksize;
        float *y_oc = y + oc * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                float acc = (b != NULL) ? b[oc] : 0.0f;
                for (int32_t icg = 0; icg < cin_g; icg++) {
                    const float *x_c = x + (ic0 + icg) * p->in_h * p->in_w;
                    const float *w_k = w_oc + icg * ksize;
                    for (int32_t ky = 0; ky < p->k_h; ky++) {
                        const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                        if (iy < 0 || iy >= p->in_h) {
                            continue; /* zero padding */
                        }
                        for (int32_t kx = 0; kx < p->k_w; kx++) {
                            const int32_t ix = ox * p->stride_w - p->pad_w + kx;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            acc += w_k[ky * p->k_w + kx] * x_c[iy * p->in_w + ix];
                        }
                    }
                }
                y_oc[oy * p->out_w + ox] = acc;
            }
        }
    }
    return TT_OK;
}
