/* Shared by the QAS weight updates (private to runtime/ops): the float step and int8 rounding. */
#ifndef TT_UPDATE_S8_COMMON_H
#define TT_UPDATE_S8_COMMON_H

#include <math.h>

#include "ops_common_s8.h"

/* clip(rint(v), -127, 127): rintf rounds halves to even in the default rounding mode, as numpy's
 * rint. A NaN (outside the contract) gives -127 rather than an undefined conversion. */
static inline int8_t tt_round_weight(float v)
{
    const float r = rintf(v);
    if (r > 127.0f) {
        return 127;
    }
    if (!(r >= -127.0f)) {
        return -127;
    }
    return (int8_t)r;
}

/* Calls row(ctx, w_offset, dw_offset, n, q) for every run of n contiguous selected weights: the
 * weight index w_offset, its gradient (and master) index dw_offset, and its output channel's qas.
 * Validates nothing. */
typedef void (*tt_update_row_fn)(void *ctx, int32_t w_off, int32_t dw_off, int32_t n, float q);

static inline void tt_for_selected_rows(const tt_weight_shape *s, const tt_channel_select *sel,
                                        const float *qas, tt_update_row_fn row, void *ctx)
{
    const int32_t row_len = s->in_c * s->k;
    if (tt_select_axis(sel) == 0) {
        const int32_t rows = tt_select_count(sel, s->out_c);
        for (int32_t j = 0; j < rows; j++) {
            const int32_t o = tt_select_at(sel, j);
            row(ctx, o * row_len, j * row_len, row_len, qas[o]);
        }
    } else {
        const int32_t cols = tt_select_count(sel, s->in_c);
        for (int32_t o = 0; o < s->out_c; o++) {
            for (int32_t j = 0; j < cols; j++) {
                row(ctx, (o * s->in_c + tt_select_at(sel, j)) * s->k, (o * cols + j) * s->k, s->k,
                    qas[o]);
            }
        }
    }
}

#endif
