/* int8 -> float: y = (x - zero) * scale (x - zero is exact in float, so this is one rounding). */
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_dequantize_s8_f32(int32_t size, const int8_t *x, float scale, int32_t zero, float *y)
{
    if (size <= 0 || x == NULL || y == NULL || !tt_scale_ok(scale) || !tt_in_s8(zero)) {
        return TT_ERR_ARG;
    }
    const float z = (float)zero;
    for (int32_t i = 0; i < size; i++) {
        y[i] = ((float)x[i] - z) * scale;
    }
    return TT_OK;
}

/* --- the DEQUANTIZE_S8_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_dequantize_s8_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_DEQUANTIZE_S8_F32_SIZE];
    const uint64_t numel[] = {[TT_OPND_DEQUANTIZE_S8_F32_X] = n,
                              [TT_OPND_DEQUANTIZE_S8_F32_SCALE] = 1,
                              [TT_OPND_DEQUANTIZE_S8_F32_Y] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    return tt_scales_ok(c, TT_OPND_DEQUANTIZE_S8_F32_SCALE)
               ? TT_OK
               : tt_op_refuse(c, "the scale is not positive and finite", err);
}

tt_status tt_op_dequantize_s8_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_dequantize_s8_f32(c->a[TT_ATTR_DEQUANTIZE_S8_F32_SIZE],
                                tt_opnd_s8(c, TT_OPND_DEQUANTIZE_S8_F32_X),
                                *tt_opnd_f32(c, TT_OPND_DEQUANTIZE_S8_F32_SCALE),
                                c->a[TT_ATTR_DEQUANTIZE_S8_F32_ZERO],
                                tt_opnd_f32(c, TT_OPND_DEQUANTIZE_S8_F32_Y));
}
