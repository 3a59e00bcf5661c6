/* Gradient of average pooling (count_include_pad): each dy / (k_h*k_w) is added to every input of
 * its window; the share that fell on padding is dropped. */
#include <stddef.h>
#include <string.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_avgpool2d_grad_f32(const tt_pool2d_params *p, const float *dy, float *dx)
{
    if (!tt_pool2d_params_ok(p) || dy == NULL || dx == NULL) {
        return TT_ERR_ARG;
    }
    const float divisor = (float)(p->k_h * p->k_w);
    const int32_t in_hw = p->in_h * p->in_w;
    memset(dx, 0, (size_t)p->c * (size_t)in_hw * sizeof(float));
    for (int32_t c = 0; c < p->c; c++) {
        float *dx_c = dx + c * in_hw;
        const float *dy_c = dy + c * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const float share = dy_c[oy * p->out_w + ox] / divisor;
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
                        dx_c[iy * p->in_w + ix] += share;
                    }
                }
            }
        }
    }
    return TT_OK;
}

/* --- the AVGPOOL2D_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_avgpool2d_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_AVGPOOL2D_GRAD_F32_C);
    uint64_t x, y;
    if (!tt_pool_numel(&p, &x, &y)) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {y, x};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_avgpool2d_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_AVGPOOL2D_GRAD_F32_C);
    return tt_avgpool2d_grad_f32(&p, tt_opnd_f32(c, TT_OPND_AVGPOOL2D_GRAD_F32_DY),
                                 tt_opnd_f32(c, TT_OPND_AVGPOOL2D_GRAD_F32_DX));
}
