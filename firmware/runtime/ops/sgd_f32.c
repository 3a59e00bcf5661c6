/* Plain SGD step, in place: w -= lr * g; refused (TT_ERR_NONFINITE, w untouched) when a new
 * value would not be finite. */
#include <math.h>
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_sgd_f32(int32_t size, float *w, const float *g, float lr)
{
    if (size <= 0 || w == NULL || g == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) { /* nothing is written unless every value is finite */
        if (!isfinite(w[i] - lr * g[i])) {
            return TT_ERR_NONFINITE;
        }
    }
    for (int32_t i = 0; i < size; i++) {
        w[i] -= lr * g[i];
    }
    return TT_OK;
}

/* --- the SGD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_sgd_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_SGD_F32_SIZE];
    const uint64_t numel[] = {n, n, n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_index(c, TT_OPND_SGD_F32_W) != tt_opnd_index(c, TT_OPND_SGD_F32_W_OUT)) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u: SGD must update in place",
                       (unsigned)c->index);
    }
    if (tt_opnd_tensor(c, TT_OPND_SGD_F32_W)->arena_offset < 0) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u: SGD on a constant", (unsigned)c->index);
    }
    return TT_OK;
}

tt_status tt_op_sgd_f32_run(const tt_op_ctx *c, float lr)
{
    return tt_sgd_f32(c->a[TT_ATTR_SGD_F32_SIZE], tt_opnd_f32(c, TT_OPND_SGD_F32_W),
                      tt_opnd_f32(c, TT_OPND_SGD_F32_G), lr);
}
