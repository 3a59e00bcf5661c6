/* Fully connected layer: y[o] = b[o] + sum_i w[o][i] x[i]. */
#include <stddef.h>

#include "ops_common.h"

tt_status tt_linear_f32(const tt_linear_params *p, const float *x, const float *w, const float *b,
                        float *y)
{
    if (!tt_linear_params_ok(p) || x == NULL || w == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t in = p->in_features;
    for (int32_t o = 0; o < p->out_features; o++) {
        const float *row = w + o * in;
        float acc = (b != NULL) ? b[o] : 0.0f;
        for (int32_t i = 0; i < in; i++) {
            acc += row[i] * x[i];
        }
        y[o] = acc;
    }
    return TT_OK;
}
