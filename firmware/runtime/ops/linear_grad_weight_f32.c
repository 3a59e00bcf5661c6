/* Gradient of a fully connected layer with respect to its parameters:
 * dw[o][i] = dy[o] x[i]; db[o] = dy[o]. Either output may be NULL (not both); without dw,
 * x is not needed and may be NULL. */
#include <stddef.h>

#include "ops_common.h"

tt_status tt_linear_grad_weight_f32(const tt_linear_params *p, const float *dy, const float *x,
                                    float *dw, float *db)
{
    if (!tt_linear_params_ok(p) || dy == NULL || (dw == NULL && db == NULL) ||
        (dw != NULL && x == NULL)) {
        return TT_ERR_ARG;
    }
    const int32_t in = p->in_features;
    for (int32_t o = 0; o < p->out_features; o++) {
        for (int32_t i = 0; dw != NULL && i < in; i++) {
            dw[o * in + i] = dy[o] * x[i];
        }
        if (db != NULL) {
            db[o] = dy[o];
        }
    }
    return TT_OK;
}
