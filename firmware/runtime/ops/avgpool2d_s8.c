/* int8 average pool with count_include_pad: the window sum of x padded with x_zero, divided by
 * k_h * k_w and rounded half away from zero as TFLite reference_integer_ops::AveragePool and
 * CMSIS-NN arm_avgpool_s8 round ((s + n/2) / n or (s - n/2) / n, C division). */
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_avgpool2d_s8(const tt_pool2d_params *p, int32_t x_zero, int32_t act_min,
                          int32_t act_max, const int8_t *x, int8_t *y)
{
    if (!tt_pool2d_params_ok(p) || (int64_t)p->k_h * p->k_w > ((int64_t)1 << 23) ||
        !tt_in_s8(x_zero) || !tt_act_range_ok(act_min, act_max) || x == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    const int32_t n = p->k_h * p->k_w; /* |sum| <= 128 * 2^23 = 2^30 */
    for (int32_t c = 0; c < p->c; c++) {
        const int8_t *x_c = x + c * p->in_h * p->in_w;
        int8_t *y_c = y + c * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = p->in_h - iy0 < p->k_h ? p->in_h - iy0 : p->k_h;
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
                const int32_t kx_hi = p->in_w - ix0 < p->k_w ? p->in_w - ix0 : p->k_w;
                int32_t sum = 0, inside = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int8_t *row = x_c + (iy0 + ky) * p->in_w;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        sum += row[ix0 + kx];
                    }
                    inside += kx_hi > kx_lo ? kx_hi - kx_lo : 0;
                }
                sum += (n - inside) * x_zero; /* the padded taps */
                int32_t v = sum > 0 ? (sum + n / 2) / n : (sum - n / 2) / n;
                v = v > act_max ? act_max : v < act_min ? act_min : v;
                y_c[oy * p->out_w + ox] = (int8_t)v;
            }
        }
    }
    return TT_OK;
}

/* --- the AVGPOOL2D_S8 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_avgpool2d_s8_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_AVGPOOL2D_S8_C);
    uint64_t x, y;
    if (!tt_pool_numel(&p, &x, &y) ||
        !tt_act_range_ok(c->a[TT_ATTR_AVGPOOL2D_S8_ACT_MIN], c->a[TT_ATTR_AVGPOOL2D_S8_ACT_MAX])) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_AVGPOOL2D_S8_X] = x, [TT_OPND_AVGPOOL2D_S8_Y] = y};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_avgpool2d_s8_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_pool2d_params p = TT_POOL2D_ATTRS_AT(c->a + TT_ATTR_AVGPOOL2D_S8_C);
    return tt_avgpool2d_s8(&p, c->a[TT_ATTR_AVGPOOL2D_S8_X_ZERO],
                           c->a[TT_ATTR_AVGPOOL2D_S8_ACT_MIN], c->a[TT_ATTR_AVGPOOL2D_S8_ACT_MAX],
                           tt_opnd_s8(c, TT_OPND_AVGPOOL2D_S8_X),
                           tt_opnd_s8(c, TT_OPND_AVGPOOL2D_S8_Y));
}
