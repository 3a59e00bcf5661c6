/* 2-D convolution (cross-correlation, as in PyTorch) with zero padding, stride and groups:
 * y[oc][oy][ox] = b[oc] + sum over the input channels of oc's group and the kernel window of
 * w[oc][ic][ky][kx] * x[ic][oy*stride_h - pad_h + ky][ox*stride_w - pad_w + kx]. */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

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

/* --- the CONV2D_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_conv2d_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_F32_IN_C);
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w)) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_CONV2D_F32_X] = x,
                              [TT_OPND_CONV2D_F32_W] = w,
                              [TT_OPND_CONV2D_F32_B] = (uint64_t)p.out_c,
                              [TT_OPND_CONV2D_F32_Y] = y};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_conv2d_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_F32_IN_C);
    return tt_conv2d_f32(&p, tt_opnd_f32(c, TT_OPND_CONV2D_F32_X),
                         tt_opnd_f32(c, TT_OPND_CONV2D_F32_W),
                         tt_opnd_f32(c, TT_OPND_CONV2D_F32_B),
                         tt_opnd_f32(c, TT_OPND_CONV2D_F32_Y));
}
