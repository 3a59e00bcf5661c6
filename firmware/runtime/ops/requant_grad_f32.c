/* Gradient through an int8 output's clamp and requantization, to its int32 accumulator:
 * dz = dy * mask * eff_scale[c], the mask being the forward's record of where the clamp kept the
 * value (act_min <= pre-clamp <= act_max: the paper's rule, docs/int8.md section 4). */
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_requant_grad_f32(int32_t channels, int32_t plane, const uint8_t *mask,
                              const float *dy, const float *eff_scale, float *dz)
{
    if (!tt_numel_fits_i32(channels, plane, 1, 1) || mask == NULL || dy == NULL ||
        eff_scale == NULL || dz == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t c = 0; c < channels; c++) {
        const float e = eff_scale[c];
        const int32_t i0 = c * plane;
        for (int32_t i = i0; i < i0 + plane; i++) {
            const float g = (mask[i >> 3] >> (i & 7)) & 1u ? dy[i] : 0.0f;
            dz[i] = g * e;
        }
    }
    return TT_OK;
}

/* --- the REQUANT_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_requant_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t channels = (uint64_t)c->a[TT_ATTR_REQUANT_GRAD_F32_CHANNELS];
    const uint64_t n = tt_numel4(channels, (uint64_t)c->a[TT_ATTR_REQUANT_GRAD_F32_PLANE], 1, 1);
    if (n == UINT64_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_REQUANT_GRAD_F32_MASK] = tt_mask_bytes(n),
                              [TT_OPND_REQUANT_GRAD_F32_DY] = n,
                              [TT_OPND_REQUANT_GRAD_F32_EFF_SCALE] = channels,
                              [TT_OPND_REQUANT_GRAD_F32_DZ] = n};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_requant_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_requant_grad_f32(c->a[TT_ATTR_REQUANT_GRAD_F32_CHANNELS],
                               c->a[TT_ATTR_REQUANT_GRAD_F32_PLANE],
                               (const uint8_t *)tt_opnd(c, TT_OPND_REQUANT_GRAD_F32_MASK),
                               tt_opnd_f32(c, TT_OPND_REQUANT_GRAD_F32_DY),
                               tt_opnd_f32(c, TT_OPND_REQUANT_GRAD_F32_EFF_SCALE),
                               tt_opnd_f32(c, TT_OPND_REQUANT_GRAD_F32_DZ));
}
