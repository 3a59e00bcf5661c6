/* Elementwise y = a + b (the int8 graph's gradient accumulation, ADD_F32). y may be a or b. */
#include <stddef.h>

#include "tt/tt_kernels_s8.h"

tt_status tt_add_f32(int32_t size, const float *a, const float *b, float *y)
{
    if (size <= 0 || a == NULL || b == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        y[i] = a[i] + b[i];
    }
    return TT_OK;
}
