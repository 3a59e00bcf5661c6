/* Gradient of max pooling: each dy goes to the FIRST maximum of its window in row-major scan
 * order (PyTorch's CPU choice: a later element wins only if strictly greater). Windows overlap
 * when stride < kernel, so contributions are summed into the zeroed dx. */
#include <stddef.h>
#include <string.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_maxpool2d_grad_f32(const tt_pool2d_params *p, const float *x, const float *dy,
                                float *dx)
{
    if (!tt_pool2d_params_ok(p) || x == NULL || dy == NULL || dx == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t in_hw = p->in_h * p->in_w;
    memset(dx, 0, (size_t)p->c * (size_t)in_hw * sizeof(float));
    for (int32_t c = 0; c < p->c; c++) {
        const float *x_c = x + c * in_hw;
        float *dx_c = dx + c * in_hw;
        const float *dy_c = dy + c * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                int32_t best = -1; /* index into x_c of the first maximum so far */
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
                        const int32_t i = iy * p->in_w + ix;
                        if (best < 0 || x_c[i] > x_c[best]) {
                            best = i;
                        }
                    }
                }
                if (best >= 0) { /* always true for valid parameters */
                    dx_c[best] += dy_c[oy * p->out_w + ox];
                }
            }
        }
    }
    return TT_OK;
}

/* --- the MAXPOOL2D_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_maxpool2d_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_MAXPOOL2D_GRAD_F32_C);
    uint64_t x, y;
    if (!tt_pool_numel(&p, &x, &y)) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {x, y, x};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_maxpool2d_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_MAXPOOL2D_GRAD_F32_C);
    return tt_maxpool2d_grad_f32(&p, tt_opnd_f32(c, TT_OPND_MAXPOOL2D_GRAD_F32_X),
                                 tt_opnd_f32(c, TT_OPND_MAXPOOL2D_GRAD_F32_DY),
                                 tt_opnd_f32(c, TT_OPND_MAXPOOL2D_GRAD_F32_DX));
}
