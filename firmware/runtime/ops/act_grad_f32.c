/* The gradient of ACT_F32: dx = dy * func'(x), from what the derivative needs, v: the forward
 * output for relu6 (0 < y < 6), sigmoid (y (1 - y)) and tanh (1 - y^2), the input for leaky_relu
 * (x > 0) and hardswish (PyTorch's piecewise form). Float operations in the reference's order.
 * dx may alias dy. */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

static float act_grad(tt_act_func func, float v, float dy, float alpha)
{
    switch (func) {
    case TT_ACT_RELU6: return (v > 0.0f && v < 6.0f) ? dy : 0.0f;
    case TT_ACT_LEAKY_RELU: return v > 0.0f ? dy : dy * alpha;
    case TT_ACT_SIGMOID: return dy * ((1.0f - v) * v);
    case TT_ACT_TANH: return dy * (1.0f - v * v);
    case TT_ACT_HARDSWISH:
        if (v <= -3.0f) { /* PyTorch's hardswish_backward: 0 at -3, dy at 3 */
            return 0.0f;
        }
        return v < 3.0f ? dy * (v / 3.0f + 0.5f) : dy;
    }
    return 0.0f; /* unreachable: the caller checked func */
}

tt_status tt_act_grad_f32(tt_act_func func, int32_t size, const float *v, const float *dy,
                          float alpha, float *dx)
{
    if (size <= 0 || v == NULL || dy == NULL || dx == NULL ||
        (unsigned)func > (unsigned)TT_ACT_HARDSWISH) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        dx[i] = act_grad(func, v[i], dy[i], alpha);
    }
    return TT_OK;
}

/* --- the ACT_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_act_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    if (c->a[TT_ATTR_ACT_GRAD_F32_FUNC] > (int32_t)TT_ACT_HARDSWISH) {
        return tt_op_impossible(c, err);
    }
    const uint64_t n = (uint64_t)c->a[TT_ATTR_ACT_GRAD_F32_SIZE];
    const uint64_t numel[] = {[TT_OPND_ACT_GRAD_F32_V] = n,
                              [TT_OPND_ACT_GRAD_F32_DY] = n,
                              [TT_OPND_ACT_GRAD_F32_ALPHA] = 1,
                              [TT_OPND_ACT_GRAD_F32_DX] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    const bool leaky = c->a[TT_ATTR_ACT_GRAD_F32_FUNC] == (int32_t)TT_ACT_LEAKY_RELU;
    return tt_opnd_present(c, TT_OPND_ACT_GRAD_F32_ALPHA) == leaky
               ? TT_OK
               : tt_op_refuse(c, "alpha is needed exactly for leaky_relu", err);
}

tt_status tt_op_act_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const float *alpha = tt_opnd_f32(c, TT_OPND_ACT_GRAD_F32_ALPHA);
    return tt_act_grad_f32((tt_act_func)c->a[TT_ATTR_ACT_GRAD_F32_FUNC],
                           c->a[TT_ATTR_ACT_GRAD_F32_SIZE], tt_opnd_f32(c, TT_OPND_ACT_GRAD_F32_V),
                           tt_opnd_f32(c, TT_OPND_ACT_GRAD_F32_DY), alpha == NULL ? 0.0f : *alpha,
                           tt_opnd_f32(c, TT_OPND_ACT_GRAD_F32_DX));
}
