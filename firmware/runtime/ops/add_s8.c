/* int8 elementwise add, TFLite reference_integer_ops::AddFunc (CMSIS-NN arm_elementwise_add_s8):
 * both inputs are rescaled to a common fixed-point scale with left_shift bits of headroom, added,
 * and requantized to the output scale. */
#include <stddef.h>

#include "ops_common_s8.h"
#include "requant_s8.h"
#include "tt/tt_op.h"

static int add_params_ok(const tt_add_s8_params *p)
{
    return p != NULL && tt_in_s8(p->x1_zero) && tt_in_s8(p->x2_zero) && tt_in_s8(p->y_zero) &&
           p->left_shift >= 0 && p->left_shift <= 30 && p->x1_mult >= 0 && p->x2_mult >= 0 &&
           p->y_mult >= 0 && p->x1_shift >= -31 && p->x1_shift <= 0 && p->x2_shift >= -31 &&
           p->x2_shift <= 0 && p->y_shift >= -31 && p->y_shift <= 0 &&
           tt_act_range_ok(p->act_min, p->act_max);
}

tt_status tt_add_s8(const tt_add_s8_params *p, int32_t size, const int8_t *x1, const int8_t *x2,
                    int8_t *y)
{
    if (!add_params_ok(p) || size <= 0 || x1 == NULL || x2 == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        /* (x - zero) * 2^left_shift fits int32 for left_shift <= 23; beyond, it saturates
         * (outside the contract). */
        const int32_t s1 = tt_shl_sat(x1[i] - p->x1_zero, p->left_shift);
        const int32_t s2 = tt_shl_sat(x2[i] - p->x2_zero, p->left_shift);
        const int32_t v1 = tt_rdbpot(tt_srdhm(s1, p->x1_mult), -p->x1_shift);
        const int32_t v2 = tt_rdbpot(tt_srdhm(s2, p->x2_mult), -p->x2_shift);
        /* |v_i| <= |s_i| < 2^31 with multipliers below 2^31; their sum can leave int32 only
         * outside the contract, so add in 64 bits and saturate. */
        const int64_t sum = (int64_t)v1 + v2;
        const int32_t vs = sum > INT32_MAX   ? INT32_MAX
                           : sum < INT32_MIN ? INT32_MIN
                                             : (int32_t)sum;
        y[i] = tt_s8_out_mask(tt_requantize(vs, p->y_mult, p->y_shift), p->y_zero,
                              p->act_min - p->y_zero, p->act_max - p->y_zero, p->mask, i);
    }
    return TT_OK;
}

/* --- the ADD_S8 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_add_s8_check(const tt_op_ctx *c, tt_error *err)
{
    if (!tt_act_range_ok(c->a[TT_ATTR_ADD_S8_ACT_MIN], c->a[TT_ATTR_ADD_S8_ACT_MAX])) {
        return tt_op_impossible(c, err);
    }
    const uint64_t n = (uint64_t)c->a[TT_ATTR_ADD_S8_SIZE];
    const uint64_t numel[] = {[TT_OPND_ADD_S8_X1] = n,
                              [TT_OPND_ADD_S8_X2] = n,
                              [TT_OPND_ADD_S8_Y] = n,
                              [TT_OPND_ADD_S8_MASK] = tt_mask_bytes(n)};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_add_s8_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const int32_t *a = c->a;
    const tt_add_s8_params p = {a[TT_ATTR_ADD_S8_X1_ZERO],
                                a[TT_ATTR_ADD_S8_X2_ZERO],
                                a[TT_ATTR_ADD_S8_Y_ZERO],
                                a[TT_ATTR_ADD_S8_LEFT_SHIFT],
                                a[TT_ATTR_ADD_S8_X1_MULT],
                                a[TT_ATTR_ADD_S8_X1_SHIFT],
                                a[TT_ATTR_ADD_S8_X2_MULT],
                                a[TT_ATTR_ADD_S8_X2_SHIFT],
                                a[TT_ATTR_ADD_S8_Y_MULT],
                                a[TT_ATTR_ADD_S8_Y_SHIFT],
                                a[TT_ATTR_ADD_S8_ACT_MIN],
                                a[TT_ATTR_ADD_S8_ACT_MAX],
                                (uint8_t *)tt_opnd(c, TT_OPND_ADD_S8_MASK)};
    return tt_add_s8(&p, a[TT_ATTR_ADD_S8_SIZE], tt_opnd_s8(c, TT_OPND_ADD_S8_X1),
                     tt_opnd_s8(c, TT_OPND_ADD_S8_X2), tt_opnd_s8(c, TT_OPND_ADD_S8_Y));
}
