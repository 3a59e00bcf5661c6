/* Gradient of a fully connected layer with respect to its parameters:
 * dw[o][i] = dy[o] x[i]; db[o] = dy[o]. Either output may be NULL (not both); without dw,
 * x is not needed and may be NULL. */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_linear_grad_weight_f32(const tt_linear_params *p, const float *dy, const float *x,
                                    float *dw, float *db)
{
    if (!tt_linear_params_ok(p) || dy == NULL || (dw == NULL && db == NULL) ||
        (dw != NULL && x == NULL)) {
        return TT_ERR_ARG;
    }
    const int32_t in = p->in_features;
    for (int32_t o = 0; o < p->out_features; o++) {
        for (int32_t i = 0; dw != NULL && i < in; i++) {
            dw[o * in + i] = dy[o] * x[i];
        }
        if (db != NULL) {
            db[o] = dy[o];
        }
    }
    return TT_OK;
}

/* --- the LINEAR_GRAD_WEIGHT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_linear_grad_weight_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a +
                                                  TT_ATTR_LINEAR_GRAD_WEIGHT_F32_IN_FEATURES);
    const uint64_t in = (uint64_t)p.in_features, out = (uint64_t)p.out_features;
    if (tt_numel4(in, out, 1, 1) == UINT64_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_LINEAR_GRAD_WEIGHT_F32_DY] = out,
                              [TT_OPND_LINEAR_GRAD_WEIGHT_F32_X] = in,
                              [TT_OPND_LINEAR_GRAD_WEIGHT_F32_DW] = out * in,
                              [TT_OPND_LINEAR_GRAD_WEIGHT_F32_DB] = out};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    return tt_op_check_grad_outputs(c, TT_OPND_LINEAR_GRAD_WEIGHT_F32_X,
                                    TT_OPND_LINEAR_GRAD_WEIGHT_F32_DW,
                                    TT_OPND_LINEAR_GRAD_WEIGHT_F32_DB, err);
}

tt_status tt_op_linear_grad_weight_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a +
                                                  TT_ATTR_LINEAR_GRAD_WEIGHT_F32_IN_FEATURES);
    return tt_linear_grad_weight_f32(&p, tt_opnd_f32(c, TT_OPND_LINEAR_GRAD_WEIGHT_F32_DY),
                                     tt_opnd_f32(c, TT_OPND_LINEAR_GRAD_WEIGHT_F32_X),
                                     tt_opnd_f32(c, TT_OPND_LINEAR_GRAD_WEIGHT_F32_DW),
                                     tt_opnd_f32(c, TT_OPND_LINEAR_GRAD_WEIGHT_F32_DB));
}
