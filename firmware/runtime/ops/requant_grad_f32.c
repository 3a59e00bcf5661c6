/* Gradient through an int8 output's clamp and requantization, to its int32 accumulator:
 * dz = dy * mask * eff_scale[c], the mask being the forward's record of where the clamp kept the
 * value (act_min <= pre-clamp <= act_max: the paper's rule, docs/int8.md section 4). */
#include <stddef.h>

#include "ops_common_s8.h"

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
