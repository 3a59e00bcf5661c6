/* Gradient through an int8 output's clamp and requantization, to its int32 accumulator:
 * dz = dy * mask * eff_scale[c], the mask keeping act_min < y < act_max (strict: a value at a bound
 * may be saturated, so it gets no gradient; docs/int8.md section 4). */
#include <stddef.h>

#include "ops_common_s8.h"

tt_status tt_requant_grad_f32(int32_t channels, int32_t plane, const int8_t *y, const float *dy,
                              const float *eff_scale, int32_t act_min, int32_t act_max,
                              float *dz)
{
    if (!tt_numel_fits_i32(channels, plane, 1, 1) || y == NULL || dy == NULL ||
        eff_scale == NULL || dz == NULL || !tt_act_range_ok(act_min, act_max)) {
        return TT_ERR_ARG;
    }
    for (int32_t c = 0; c < channels; c++) {
        const float e = eff_scale[c];
        const int8_t *y_c = y + c * plane;
        const float *dy_c = dy + c * plane;
        float *dz_c = dz + c * plane;
        for (int32_t i = 0; i < plane; i++) {
            const float g = (y_c[i] > act_min && y_c[i] < act_max) ? dy_c[i] : 0.0f;
            dz_c[i] = g * e;
        }
    }
    return TT_OK;
}
