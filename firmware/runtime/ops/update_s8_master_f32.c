/* QAS update rule B, a float master copy of the selected rows (the paper's float parameters):
 * master <- master - lr * (dw * qas[o]) (neither clipped nor rounded), and the selected rows of the
 * int8 weight <- clip(rint(master), -127, 127) for the forward pass (docs/int8.md 5). Refused
 * (TT_ERR_NONFINITE, nothing written) when any new master is not finite. */
#include <stdbool.h>
#include <stddef.h>

#include "update_s8_common.h"

typedef struct {
    float *master;
    int8_t *w;
    const float *dw;
    float lr;
    bool check;  /* the first pass only checks that every new master is finite ... */
    bool finite; /* ... and says so here; the second writes */
} master_ctx;

static void master_row(void *vctx, int32_t w_off, int32_t dw_off, int32_t n, float q)
{
    master_ctx *c = vctx;
    float *m = c->master + dw_off;
    int8_t *w = c->w + w_off;
    const float *dw = c->dw + dw_off;
    for (int32_t i = 0; i < n; i++) {
        const float u = c->lr * (dw[i] * q);
        const float v = m[i] - u;
        if (c->check) {
            c->finite = c->finite && isfinite(v);
        } else {
            m[i] = v;
            w[i] = tt_round_weight(v);
        }
    }
}

tt_status tt_update_s8_master_f32(const tt_weight_shape *s, const tt_channel_select *sel,
                                  float *master, int8_t *w, const float *dw, float lr,
                                  const float *qas)
{
    if (!tt_weight_shape_ok(s) || !tt_select_axis_ok(sel, s->out_c, s->in_c, 1) ||
        master == NULL || w == NULL || dw == NULL || qas == NULL) {
        return TT_ERR_ARG;
    }
    master_ctx c = {master, w, dw, lr, true, true};
    tt_for_selected_rows(s, sel, qas, master_row, &c);
    if (!c.finite) {
        return TT_ERR_NONFINITE; /* a NaN/inf master: nothing written */
    }
    c.check = false;
    tt_for_selected_rows(s, sel, qas, master_row, &c);
    return TT_OK;
}
