/* Fully connected layer: y[o] = b[o] + sum_i w[o][i] x[i]. */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_linear_f32(const tt_linear_params *p, const float *x, const float *w, const float *b,
                        float *y)
{
    if (!tt_linear_params_ok(p) || x == NULL || w == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t in = p->in_features;
    for (int32_t o = 0; o < p->out_features; o++) {
        const float *row = w + o * in;
        float acc = (b != NULL) ? b[o] : 0.0f;
        for (int32_t i = 0; i < in; i++) {
            acc += row[i] * x[i];
        }
        y[o] = acc;
    }
    return TT_OK;
}

/* --- the LINEAR_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_linear_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a + TT_ATTR_LINEAR_F32_IN_FEATURES);
    const uint64_t in = (uint64_t)p.in_features, out = (uint64_t)p.out_features;
    if (tt_numel4(in, out, 1, 1) == UINT64_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_LINEAR_F32_X] = in,
                              [TT_OPND_LINEAR_F32_W] = out * in,
                              [TT_OPND_LINEAR_F32_B] = out,
                              [TT_OPND_LINEAR_F32_Y] = out};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_linear_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a + TT_ATTR_LINEAR_F32_IN_FEATURES);
    return tt_linear_f32(&p, tt_opnd_f32(c, TT_OPND_LINEAR_F32_X),
                         tt_opnd_f32(c, TT_OPND_LINEAR_F32_W),
                         tt_opnd_f32(c, TT_OPND_LINEAR_F32_B),
                         tt_opnd_f32(c, TT_OPND_LINEAR_F32_Y));
}
