/* Gradient of the int8 add: its clamp mask, then dx_i = dy * f32(s_i / sy), the factor divided in
 * double and rounded to float once (tiny-training _QuantizedElementwiseAddFunc.backward). */
#include <stddef.h>

#include "ops_common_s8.h"

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
