/* dx = dy where the forward output y > 0, else 0 (so the gradient at 0 is 0, as in PyTorch);
 * dx may alias dy. */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_relu_grad_f32(int32_t size, const float *y, const float *dy, float *dx)
{
    if (size <= 0 || y == NULL || dy == NULL || dx == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        dx[i] = (y[i] > 0.0f) ? dy[i] : 0.0f;
    }
    return TT_OK;
}

/* --- the RELU_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_relu_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_RELU_GRAD_F32_SIZE];
    const uint64_t numel[] = {n, n, n};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_relu_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_relu_grad_f32(c->a[TT_ATTR_RELU_GRAD_F32_SIZE],
                            tt_opnd_f32(c, TT_OPND_RELU_GRAD_F32_Y),
                            tt_opnd_f32(c, TT_OPND_RELU_GRAD_F32_DY),
                            tt_opnd_f32(c, TT_OPND_RELU_GRAD_F32_DX));
}
