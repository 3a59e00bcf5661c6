/* Plain SGD step, in place: w -= lr * g. */
#include <stddef.h>

#include "ops_common.h"

tt_status tt_sgd_f32(int32_t size, float *w, const float *g, float lr)
{
    if (size <= 0 || w == NULL || g == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        w[i] -= lr * g[i];
    }
    return TT_OK;
}
