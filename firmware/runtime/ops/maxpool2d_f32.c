/* Max pooling. Padding counts as -inf, i.e. padded positions are skipped (every window holds at
 * least one input, since the parameters allow at most half a kernel of padding). */
#include <math.h>
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_maxpool2d_f32(const tt_pool2d_params *p, const float *x, float *y)
{
    if (!tt_pool2d_params_ok(p) || x == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t c = 0; c < p->c; c++) {
        const float *x_c = x + c * p->in_h * p->in_w;
        float *y_c = y + c * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                float m = -INFINITY;
                for (int32_t ky = 0; ky < p->k_h; ky++) {
                    const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                    if (iy < 0 || iy >= p->in_h) {
                        continue;
                    }
                    for (int32_t kx = 0; kx < p->k_w; kx++) {
                        const int32_t ix = ox * p->stride_w - p->pad_w + kx;
                        if (ix < 0 || ix >= p->in_w) {
                            continue;
                        }
                        const float v = x_c[iy * p->in_w + ix];
                        if (v > m) {
                            m = v;
                        }
                    }
                }
                y_c[oy * p->out_w + ox] = m;
            }
        }
    }
    return TT_OK;
}

/* --- the MAXPOOL2D_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_maxpool2d_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_MAXPOOL2D_F32_C);
    uint64_t x, y;
    if (!tt_pool_numel(&p, &x, &y)) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {x, y};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_maxpool2d_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_MAXPOOL2D_F32_C);
    return tt_maxpool2d_f32(&p, tt_opnd_f32(c, TT_OPND_MAXPOOL2D_F32_X),
                            tt_opnd_f32(c, TT_OPND_MAXPOOL2D_F32_Y));
}
