/* Elementwise activations y = func(x): ReLU6, LeakyReLU, Sigmoid, Tanh, Hardswish (one op, the
 * function an attribute). sigmoid and tanh go through double and are rounded to float once: float
 * expf/tanhf differ by an ulp between C libraries, the rounded double results agree (as
 * softmax_xent_f32.c), so the device trains as the reference does. The others are float
 * operations in a fixed order (no contraction: -ffp-contract=off). y may alias x. */
#include <math.h>
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

static float act(tt_act_func func, float x, float alpha)
{
    switch (func) {
    case TT_ACT_RELU6: return x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f;
    case TT_ACT_LEAKY_RELU: return x > 0.0f ? x : x * alpha;
    case TT_ACT_SIGMOID: return (float)(1.0 / (1.0 + exp(-(double)x)));
    case TT_ACT_TANH: {
        /* from expm1 (accurate near 0): libm's tanh would cost 32 B of static RAM on the M4F
         * (picolibc keeps its constants in .data) */
        const double e = expm1(-2.0 * fabs((double)x));
        const double t = -e / (2.0 + e);
        return (float)(x < 0.0f ? -t : t);
    }
    case TT_ACT_HARDSWISH: {
        const float t = x + 3.0f;
        const float r = t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f;
        return x * r / 6.0f;
    }
    }
    return 0.0f; /* unreachable: the caller checked func */
}

tt_status tt_act_f32(tt_act_func func, int32_t size, const float *x, float alpha, float *y)
{
    if (size <= 0 || x == NULL || y == NULL || (unsigned)func > (unsigned)TT_ACT_HARDSWISH) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        y[i] = act(func, x[i], alpha);
    }
    return TT_OK;
}

/* --- the ACT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_act_f32_check(const tt_op_ctx *c, tt_error *err)
{
    if (c->a[TT_ATTR_ACT_F32_FUNC] > (int32_t)TT_ACT_HARDSWISH) {
        return tt_op_impossible(c, err);
    }
    const uint64_t n = (uint64_t)c->a[TT_ATTR_ACT_F32_SIZE];
    const uint64_t numel[] = {
        [TT_OPND_ACT_F32_X] = n, [TT_OPND_ACT_F32_ALPHA] = 1, [TT_OPND_ACT_F32_Y] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    const bool leaky = c->a[TT_ATTR_ACT_F32_FUNC] == (int32_t)TT_ACT_LEAKY_RELU;
    return tt_opnd_present(c, TT_OPND_ACT_F32_ALPHA) == leaky
               ? TT_OK
               : tt_op_refuse(c, "alpha is needed exactly for leaky_relu", err);
}

tt_status tt_op_act_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const float *alpha = tt_opnd_f32(c, TT_OPND_ACT_F32_ALPHA);
    return tt_act_f32((tt_act_func)c->a[TT_ATTR_ACT_F32_FUNC], c->a[TT_ATTR_ACT_F32_SIZE],
                      tt_opnd_f32(c, TT_OPND_ACT_F32_X), alpha == NULL ? 0.0f : *alpha,
                      tt_opnd_f32(c, TT_OPND_ACT_F32_Y));
}
