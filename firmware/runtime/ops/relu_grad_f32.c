/* dx = dy where the forward output y > 0, else 0 (so the gradient at 0 is 0, as in PyTorch);
 * dx may alias dy. */
#include <stddef.h>

#include "ops_common.h"

tt_status tt_relu_grad_f32(int32_t size, const float *y, const float *dy, float *dx)
{
    if (size <= 0 || y == NULL || dy == NULL || dx == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        dx[i] = (y[i] > 0.0f) ? dy[i] : 0.0f;
    }
    return TT_OK;
}
