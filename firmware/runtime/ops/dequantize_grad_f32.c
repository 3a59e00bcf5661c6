/* Gradient of tt_dequantize_s8_f32 with respect to the integer input: dx = dy * scale. */
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_dequantize_grad_f32(int32_t size, const float *dy, float scale, float *dx)
{
    if (size <= 0 || dy == NULL || dx == NULL || !tt_scale_ok(scale)) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        dx[i] = dy[i] * scale;
    }
    return TT_OK;
}

/* --- the DEQUANTIZE_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_dequantize_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_DEQUANTIZE_GRAD_F32_SIZE];
    const uint64_t numel[] = {[TT_OPND_DEQUANTIZE_GRAD_F32_DY] = n,
                              [TT_OPND_DEQUANTIZE_GRAD_F32_SCALE] = 1,
                              [TT_OPND_DEQUANTIZE_GRAD_F32_DX] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    return tt_scales_ok(c, TT_OPND_DEQUANTIZE_GRAD_F32_SCALE)
               ? TT_OK
               : tt_op_refuse(c, "the scale is not positive and finite", err);
}

tt_status tt_op_dequantize_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_dequantize_grad_f32(c->a[TT_ATTR_DEQUANTIZE_GRAD_F32_SIZE],
                                  tt_opnd_f32(c, TT_OPND_DEQUANTIZE_GRAD_F32_DY),
                                  *tt_opnd_f32(c, TT_OPND_DEQUANTIZE_GRAD_F32_SCALE),
                                  tt_opnd_f32(c, TT_OPND_DEQUANTIZE_GRAD_F32_DX));
}
