/* Gradient of a fully connected layer with respect to its input: dx[i] = sum_o dy[o] w[o][i]. */
#include <stddef.h>
#include <string.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_linear_grad_input_f32(const tt_linear_params *p, const float *dy, const float *w,
                                   float *dx)
{
    if (!tt_linear_params_ok(p) || dy == NULL || w == NULL || dx == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t in = p->in_features;
    memset(dx, 0, (size_t)in * sizeof(float));
    /* Row by row, so w is read in memory order. */
    for (int32_t o = 0; o < p->out_features; o++) {
        const float *row = w + o * in;
        const float g = dy[o];
        for (int32_t i = 0; i < in; i++) {
            dx[i] += g * row[i];
        }
    }
    return TT_OK;
}

/* --- the LINEAR_GRAD_INPUT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_linear_grad_input_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a +
                                                  TT_ATTR_LINEAR_GRAD_INPUT_F32_IN_FEATURES);
    const uint64_t in = (uint64_t)p.in_features, out = (uint64_t)p.out_features;
    if (tt_numel4(in, out, 1, 1) == UINT64_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_LINEAR_GRAD_INPUT_F32_DY] = out,
                              [TT_OPND_LINEAR_GRAD_INPUT_F32_W] = out * in,
                              [TT_OPND_LINEAR_GRAD_INPUT_F32_DX] = in};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_linear_grad_input_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a +
                                                  TT_ATTR_LINEAR_GRAD_INPUT_F32_IN_FEATURES);
    return tt_linear_grad_input_f32(&p, tt_opnd_f32(c, TT_OPND_LINEAR_GRAD_INPUT_F32_DY),
                                    tt_opnd_f32(c, TT_OPND_LINEAR_GRAD_INPUT_F32_W),
                                    tt_opnd_f32(c, TT_OPND_LINEAR_GRAD_INPUT_F32_DX));
}
