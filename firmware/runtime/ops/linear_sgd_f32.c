/* A fully connected layer's SGD step straight from its output gradient, in place:
 * w[o][i] -= lr * (dy[o] x[i]); b[o] -= lr * dy[o]. The weight gradient is applied as it is made
 * and never stored (LINEAR_GRAD_WEIGHT_F32 + SGD_F32 without their dw buffer), with the same
 * float operations in the same order, so the result is theirs bit for bit. w (with x) or b may
 * be NULL (not both): a layer that trains only its bias keeps no input. */
#include <math.h>
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_linear_sgd_f32(const tt_linear_params *p, const float *dy, const float *x, float *w,
                            float *b, float lr)
{
    if (!tt_linear_params_ok(p) || dy == NULL || (w == NULL && b == NULL) ||
        (w != NULL && x == NULL)) {
        return TT_ERR_ARG;
    }
    const int32_t in = p->in_features;
    /* The same arithmetic twice: first only to check that every new value is finite (else nothing
     * is written, TT_ERR_NONFINITE), then to write them. */
    for (int32_t o = 0; o < p->out_features; o++) {
        for (int32_t i = 0; w != NULL && i < in; i++) {
            const float g = dy[o] * x[i];
            if (!isfinite(w[o * in + i] - lr * g)) {
                return TT_ERR_NONFINITE;
            }
        }
        if (b != NULL && !isfinite(b[o] - lr * dy[o])) {
            return TT_ERR_NONFINITE;
        }
    }
    for (int32_t o = 0; o < p->out_features; o++) {
        for (int32_t i = 0; w != NULL && i < in; i++) {
            const float g = dy[o] * x[i];
            w[o * in + i] -= lr * g;
        }
        if (b != NULL) {
            b[o] -= lr * dy[o];
        }
    }
    return TT_OK;
}

/* --- the LINEAR_SGD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_linear_sgd_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a + TT_ATTR_LINEAR_SGD_F32_IN_FEATURES);
    const uint64_t in = (uint64_t)p.in_features, out = (uint64_t)p.out_features;
    if (tt_numel4(in, out, 1, 1) == UINT64_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {
        [TT_OPND_LINEAR_SGD_F32_DY] = out,         [TT_OPND_LINEAR_SGD_F32_X] = in,
        [TT_OPND_LINEAR_SGD_F32_W] = out * in,     [TT_OPND_LINEAR_SGD_F32_B] = out,
        [TT_OPND_LINEAR_SGD_F32_W_OUT] = out * in, [TT_OPND_LINEAR_SGD_F32_B_OUT] = out};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    const bool x = tt_opnd_present(c, TT_OPND_LINEAR_SGD_F32_X);
    const bool w = tt_opnd_present(c, TT_OPND_LINEAR_SGD_F32_W);
    const bool b = tt_opnd_present(c, TT_OPND_LINEAR_SGD_F32_B);
    if (tt_opnd_index(c, TT_OPND_LINEAR_SGD_F32_W_OUT) !=
            tt_opnd_index(c, TT_OPND_LINEAR_SGD_F32_W) ||
        tt_opnd_index(c, TT_OPND_LINEAR_SGD_F32_B_OUT) !=
            tt_opnd_index(c, TT_OPND_LINEAR_SGD_F32_B)) {
        return tt_op_refuse(c, "an update must write its state in place", err);
    }
    return (w || b) && w == x ? TT_OK
                              : tt_op_refuse(c, "the step needs w with x, b, or both", err);
}

tt_status tt_op_linear_sgd_f32_run(const tt_op_ctx *c, float lr)
{
    const tt_linear_params p = TT_LINEAR_ATTRS_AT(c->a + TT_ATTR_LINEAR_SGD_F32_IN_FEATURES);
    return tt_linear_sgd_f32(&p, tt_opnd_f32(c, TT_OPND_LINEAR_SGD_F32_DY),
                             tt_opnd_f32(c, TT_OPND_LINEAR_SGD_F32_X),
                             tt_opnd_f32(c, TT_OPND_LINEAR_SGD_F32_W),
                             tt_opnd_f32(c, TT_OPND_LINEAR_SGD_F32_B), lr);
}
