/* QAS update rule A, the int8 weights only: for the selected rows,
 * w <- clip(rint(w - lr * (dw * qas[o])), -127, 127), in float, halves to even (docs/int8.md 5).
 * Refused (TT_ERR_NONFINITE, nothing written) when any w - u is not finite. */
#include <stdbool.h>
#include <stddef.h>

#include "update_s8_common.h"

typedef struct {
    int8_t *w;
    const float *dw;
    float lr;
    bool check;  /* the first pass only checks that every w - u is finite ... */
    bool finite; /* ... and says so here; the second writes */
} round_ctx;

static void round_row(void *vctx, int32_t w_off, int32_t dw_off, int32_t n, float q)
{
    round_ctx *c = vctx;
    int8_t *w = c->w + w_off;
    const float *dw = c->dw + dw_off;
    for (int32_t i = 0; i < n; i++) {
        const float u = c->lr * (dw[i] * q);
        const float v = (float)w[i] - u;
        if (c->check) {
            c->finite = c->finite && isfinite(v);
        } else {
            w[i] = tt_round_weight(v);
        }
    }
}

tt_status tt_update_s8_round_f32(const tt_weight_shape *s, const tt_channel_select *sel, int8_t *w,
                                 const float *dw, float lr, const float *qas)
{
    if (!tt_weight_shape_ok(s) || !tt_select_axis_ok(sel, s->out_c, s->in_c, 1) || w == NULL ||
        dw == NULL || qas == NULL) {
        return TT_ERR_ARG;
    }
    round_ctx c = {w, dw, lr, true, true};
    tt_for_selected_rows(s, sel, qas, round_row, &c);
    if (!c.finite) {
        return TT_ERR_NONFINITE; /* a NaN/inf step: nothing written */
    }
    c.check = false;
    tt_for_selected_rows(s, sel, qas, round_row, &c);
    return TT_OK;
}
