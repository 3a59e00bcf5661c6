/* Channel concatenation y = [a, b]: batch 1, C x H x W, so it is that of the two buffers. */
#include <stddef.h>
#include <string.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_concat_f32(int32_t size_a, int32_t size_b, const float *a, const float *b, float *y)
{
    if (size_a <= 0 || size_b <= 0 || a == NULL || b == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    memcpy(y, a, (size_t)size_a * sizeof(float));
    memcpy(y + size_a, b, (size_t)size_b * sizeof(float));
    return TT_OK;
}

/* --- the CONCAT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_concat_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t na = (uint64_t)c->a[TT_ATTR_CONCAT_F32_SIZE_A];
    const uint64_t nb = (uint64_t)c->a[TT_ATTR_CONCAT_F32_SIZE_B];
    if (na + nb > (uint64_t)INT32_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_CONCAT_F32_A] = na,
                              [TT_OPND_CONCAT_F32_B] = nb,
                              [TT_OPND_CONCAT_F32_Y] = na + nb};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_concat_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_concat_f32(c->a[TT_ATTR_CONCAT_F32_SIZE_A], c->a[TT_ATTR_CONCAT_F32_SIZE_B],
                         tt_opnd_f32(c, TT_OPND_CONCAT_F32_A),
                         tt_opnd_f32(c, TT_OPND_CONCAT_F32_B),
                         tt_opnd_f32(c, TT_OPND_CONCAT_F32_Y));
}
