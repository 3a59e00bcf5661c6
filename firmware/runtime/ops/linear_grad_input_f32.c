/* Gradient of a fully connected layer with respect to its input: dx[i] = sum_o dy[o] w[o][i]. */
#include <stddef.h>
#include <string.h>

#include "ops_common.h"

tt_status tt_linear_grad_input_f32(const tt_linear_params *p, const float *dy, const float *w,
                                   float *dx)
{
    if (!tt_linear_params_ok(p) || dy == NULL || w == NULL || dx == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t in = p->in_features;
    memset(dx, 0, (size_t)in * sizeof(float));
    /* Row by row, so w is read in memory order. */
    for (int32_t o = 0; o < p->out_features; o++) {
        const float *row = w + o * in;
        const float g = dy[o];
        for (int32_t i = 0; i < in; i++) {
            dx[i] += g * row[i];
        }
    }
    return TT_OK;
}
