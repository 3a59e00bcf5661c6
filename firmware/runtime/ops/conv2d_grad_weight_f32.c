/* Gradient of conv2d with respect to its parameters:
 * dw[oc][icg][ky][kx] = sum_{oy,ox} dy[oc][oy][ox] * x[ic][oy*stride_h - pad_h + ky][...],
 * db[oc] = sum_{oy,ox} dy[oc][oy][ox]. Either output may be NULL (not both): a layer that
 * trains only its bias needs no dw and so no saved input x (then x may be NULL too). */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_conv2d_grad_weight_f32(const tt_conv2d_params *p, const float *dy, const float *x,
                                    float *dw, float *db)
{
    if (!tt_conv2d_params_ok(p) || dy == NULL || (dw == NULL && db == NULL) ||
        (dw != NULL && x == NULL)) {
        return TT_ERR_ARG;
    }
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t cout_g = p->out_c / p->groups;
    const int32_t ksize = p->k_h * p->k_w;
    const int32_t out_hw = p->out_h * p->out_w;

    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t ic0 = (oc / cout_g) * cin_g;
        const float *dy_oc = dy + oc * out_hw;
        for (int32_t icg = 0; dw != NULL && icg < cin_g; icg++) {
            const float *x_c = x + (ic0 + icg) * p->in_h * p->in_w;
            float *dw_k = dw + (oc * cin_g + icg) * ksize;
            for (int32_t ky = 0; ky < p->k_h; ky++) {
                for (int32_t kx = 0; kx < p->k_w; kx++) {
                    float acc = 0.0f;
                    for (int32_t oy = 0; oy < p->out_h; oy++) {
                        const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (int32_t ox = 0; ox < p->out_w; ox++) {
                            const int32_t ix = ox * p->stride_w - p->pad_w + kx;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            acc += dy_oc[oy * p->out_w + ox] * x_c[iy * p->in_w + ix];
                        }
                    }
                    dw_k[ky * p->k_w + kx] = acc;
                }
            }
        }
        if (db != NULL) {
            float acc = 0.0f;
            for (int32_t i = 0; i < out_hw; i++) {
                acc += dy_oc[i];
            }
            db[oc] = acc;
        }
    }
    return TT_OK;
}

/* --- the CONV2D_GRAD_WEIGHT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_conv2d_grad_weight_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_GRAD_WEIGHT_F32_IN_C);
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w)) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_CONV2D_GRAD_WEIGHT_F32_DY] = y,
                              [TT_OPND_CONV2D_GRAD_WEIGHT_F32_X] = x,
                              [TT_OPND_CONV2D_GRAD_WEIGHT_F32_DW] = w,
                              [TT_OPND_CONV2D_GRAD_WEIGHT_F32_DB] = (uint64_t)p.out_c};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    return tt_op_check_grad_outputs(c, TT_OPND_CONV2D_GRAD_WEIGHT_F32_X,
                                    TT_OPND_CONV2D_GRAD_WEIGHT_F32_DW,
                                    TT_OPND_CONV2D_GRAD_WEIGHT_F32_DB, err);
}

tt_status tt_op_conv2d_grad_weight_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_GRAD_WEIGHT_F32_IN_C);
    return tt_conv2d_grad_weight_f32(&p, tt_opnd_f32(c, TT_OPND_CONV2D_GRAD_WEIGHT_F32_DY),
                                     tt_opnd_f32(c, TT_OPND_CONV2D_GRAD_WEIGHT_F32_X),
                                     tt_opnd_f32(c, TT_OPND_CONV2D_GRAD_WEIGHT_F32_DW),
                                     tt_opnd_f32(c, TT_OPND_CONV2D_GRAD_WEIGHT_F32_DB));
}
