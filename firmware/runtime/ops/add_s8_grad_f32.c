/* Gradient of the int8 add: its clamp mask, then dx_i = dy * f32(s_i / sy), the factor divided in
 * double and rounded to float once (tiny-training _QuantizedElementwiseAddFunc.backward). */
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_add_s8_grad_f32(int32_t size, const uint8_t *mask, const float *dy, float s1,
                             float s2, float sy, float *dx1, float *dx2)
{
    if (size <= 0 || dy == NULL || !tt_scale_ok(s1) || !tt_scale_ok(s2) || !tt_scale_ok(sy)) {
        return TT_ERR_ARG;
    }
    const float f1 = (float)((double)s1 / (double)sy);
    const float f2 = (float)((double)s2 / (double)sy);
    for (int32_t i = 0; i < size; i++) {
        /* read once: dx1 or dx2 may alias dy */
        const float g = mask == NULL || ((mask[i >> 3] >> (i & 7)) & 1u) ? dy[i] : 0.0f;
        if (dx1 != NULL) {
            dx1[i] = g * f1;
        }
        if (dx2 != NULL) {
            dx2[i] = g * f2;
        }
    }
    return TT_OK;
}

/* --- the ADD_S8_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_add_s8_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_ADD_S8_GRAD_F32_SIZE];
    const uint64_t numel[] = {[TT_OPND_ADD_S8_GRAD_F32_MASK] = tt_mask_bytes(n),
                              [TT_OPND_ADD_S8_GRAD_F32_DY] = n,
                              [TT_OPND_ADD_S8_GRAD_F32_SCALES] = 3,
                              [TT_OPND_ADD_S8_GRAD_F32_DX1] = n,
                              [TT_OPND_ADD_S8_GRAD_F32_DX2] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (!tt_scales_ok(c, TT_OPND_ADD_S8_GRAD_F32_SCALES)) {
        return tt_op_refuse(c, "the add's scales are not positive and finite", err);
    }
    return tt_opnd_present(c, TT_OPND_ADD_S8_GRAD_F32_DX1) ||
                   tt_opnd_present(c, TT_OPND_ADD_S8_GRAD_F32_DX2)
               ? TT_OK
               : tt_op_refuse(c, "the add gradient has no output", err);
}

tt_status tt_op_add_s8_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const float *sc = tt_opnd_f32(c, TT_OPND_ADD_S8_GRAD_F32_SCALES); /* s1 s2 sy */
    return tt_add_s8_grad_f32(c->a[TT_ATTR_ADD_S8_GRAD_F32_SIZE],
                              (const uint8_t *)tt_opnd(c, TT_OPND_ADD_S8_GRAD_F32_MASK),
                              tt_opnd_f32(c, TT_OPND_ADD_S8_GRAD_F32_DY), sc[0], sc[1], sc[2],
                              tt_opnd_f32(c, TT_OPND_ADD_S8_GRAD_F32_DX1),
                              tt_opnd_f32(c, TT_OPND_ADD_S8_GRAD_F32_DX2));
}
