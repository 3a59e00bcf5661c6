/* int8 -> float: y = (x - zero) * scale (x - zero is exact in float, so this is one rounding). */
#include <stddef.h>

#include "ops_common_s8.h"

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
