/* Gradient of tt_dequantize_s8_f32 with respect to the integer input: dx = dy * scale. */
#include <stddef.h>

#include "ops_common_s8.h"

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
