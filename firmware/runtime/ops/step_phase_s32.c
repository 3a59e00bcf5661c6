/* The STEP_PHASE_S32 op: the step phase of gradient accumulation, the plan's last op (after every
 * OPTIM_STEP_F32 of the step has read it): phase + 1, or 0 after period - 1 (and for a value
 * outside [0, period), which only a pushed state could hold). */
#include "tt/tt_op.h"

tt_status tt_op_step_phase_s32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t numel[] = {
        [TT_OPND_STEP_PHASE_S32_PHASE] = 1, [TT_OPND_STEP_PHASE_S32_PHASE_OUT] = 1};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    return tt_opnd_index(c, TT_OPND_STEP_PHASE_S32_PHASE_OUT) ==
                   tt_opnd_index(c, TT_OPND_STEP_PHASE_S32_PHASE)
               ? TT_OK
               : tt_op_refuse(c, "an update must write its state in place", err);
}

tt_status tt_op_step_phase_s32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    int32_t *phase = tt_opnd_s32(c, TT_OPND_STEP_PHASE_S32_PHASE);
    const int32_t period = c->a[TT_ATTR_STEP_PHASE_S32_PERIOD];
    *phase = (*phase >= 0 && *phase < period - 1) ? *phase + 1 : 0;
    return TT_OK;
}
