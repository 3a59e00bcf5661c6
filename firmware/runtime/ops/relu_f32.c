/* y = max(x, 0), elementwise; y may alias x. */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_relu_f32(int32_t size, const float *x, float *y)
{
    if (size <= 0 || x == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        y[i] = (x[i] > 0.0f) ? x[i] : 0.0f;
    }
    return TT_OK;
}

/* --- the RELU_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_relu_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_RELU_F32_SIZE];
    const uint64_t numel[] = {n, n};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_relu_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_relu_f32(c->a[TT_ATTR_RELU_F32_SIZE], tt_opnd_f32(c, TT_OPND_RELU_F32_X),
                       tt_opnd_f32(c, TT_OPND_RELU_F32_Y));
}
