/* Elementwise y = a + b (the int8 graph's gradient accumulation, ADD_F32). y may be a or b. */
#include <stddef.h>

#include "tt/tt_kernels_s8.h"
#include "tt/tt_op.h"

tt_status tt_add_f32(int32_t size, const float *a, const float *b, float *y)
{
    if (size <= 0 || a == NULL || b == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        y[i] = a[i] + b[i];
    }
    return TT_OK;
}

/* --- the ADD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_add_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_ADD_F32_SIZE];
    const uint64_t numel[] = {n, n, n};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_add_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_add_f32(c->a[TT_ATTR_ADD_F32_SIZE], tt_opnd_f32(c, TT_OPND_ADD_F32_A),
                      tt_opnd_f32(c, TT_OPND_ADD_F32_B), tt_opnd_f32(c, TT_OPND_ADD_F32_Y));
}
