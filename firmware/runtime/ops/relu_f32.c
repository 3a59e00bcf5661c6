/* y = max(x, 0), elementwise; y may alias x. */
#include <stddef.h>

#include "ops_common.h"

tt_status tt_relu_f32(int32_t size, const float *x, float *y)
{
    if (size <= 0 || x == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        y[i] = (x[i] > 0.0f) ? x[i] : 0.0f;
    }
    return TT_OK;
}
