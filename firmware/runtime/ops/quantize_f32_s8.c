/* float -> int8, TFLite AffineQuantize: clamp(round(x / scale) + zero, -128, 127) with the division
 * in float and round() taking halves away from zero (TfLiteRound = std::round). */
#include <math.h>
#include <stddef.h>

#include "ops_common_s8.h"

tt_status tt_quantize_f32_s8(int32_t size, const float *x, float scale, int32_t zero, int8_t *y)
{
    if (size <= 0 || x == NULL || y == NULL || !tt_scale_ok(scale) || !tt_in_s8(zero)) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        if (isnan(x[i])) {
            return TT_ERR_ARG; /* checked before anything is written */
        }
    }
    for (int32_t i = 0; i < size; i++) {
        /* roundf is exact; limiting it to +-256 (infinities included) cannot change the clamped
         * result and makes the conversion to int defined. */
        float r = roundf(x[i] / scale);
        r = r > 256.0f ? 256.0f : r < -256.0f ? -256.0f : r;
        const int32_t v = (int32_t)r + zero;
        y[i] = (int8_t)(v > INT8_MAX ? INT8_MAX : v < INT8_MIN ? INT8_MIN : v);
    }
    return TT_OK;
}
