/* The OPTIM_STEP_F32 op: gradient accumulation over N samples and SGD momentum, rewriting in
 * place the gradient its update op applies next (host/tinyhost/refexec/kernels_optim.py is the
 * specification; compiler/optim.py emits it). Each float operation is rounded to float, in order:
 *   accumulating (phase < N - 1):  acc = acc + g;  g = 0    (an update by 0 changes nothing)
 *   applying (phase N - 1):        m = (acc + g) / N;  acc = 0   (without accumulation m = g)
 *   with momentum, when applying:  v = momentum * v + m;  g = v   (without: g = m)
 * Refused (TT_ERR_NONFINITE, nothing written) when a new acc or v value would not be finite. */
#include <math.h>
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

static bool applies(int32_t phase, int32_t accumulate)
{
    return accumulate <= 1 || !(phase >= 0 && phase < accumulate - 1);
}

tt_status tt_optim_step_f32(const tt_optim_params *p, float *g, float *acc, float *v)
{
    if (p == NULL || p->size <= 0 || p->accumulate <= 0 || g == NULL ||
        (p->accumulate > 1) != (acc != NULL) || (p->has_momentum != (v != NULL))) {
        return TT_ERR_ARG;
    }
    const int32_t n = p->size;
    const bool apply = applies(p->phase, p->accumulate);
    /* first pass: nothing is written unless every new state value is finite */
    for (int32_t i = 0; i < n; i++) {
        const float m = acc != NULL ? acc[i] + g[i] : g[i];
        if (acc != NULL && !isfinite(m)) {
            return TT_ERR_NONFINITE;
        }
        if (apply && v != NULL) {
            const float mean = acc != NULL ? m / (float)p->accumulate : m;
            const float mv = p->momentum * v[i];
            if (!isfinite(mv + mean)) {
                return TT_ERR_NONFINITE;
            }
        }
    }
    for (int32_t i = 0; i < n; i++) {
        float m = g[i];
        if (acc != NULL) {
            const float total = acc[i] + g[i];
            if (!apply) {
                acc[i] = total;
                g[i] = 0.0f;
                continue;
            }
            m = total / (float)p->accumulate;
            acc[i] = 0.0f;
        }
        if (v != NULL) {
            const float mv = p->momentum * v[i];
            v[i] = mv + m;
            m = v[i];
        }
        g[i] = m;
    }
    return TT_OK;
}

/* --- the OPTIM_STEP_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_optim_step_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_OPTIM_STEP_F32_SIZE];
    const uint64_t numel[] = {
        [TT_OPND_OPTIM_STEP_F32_G] = n,        [TT_OPND_OPTIM_STEP_F32_ACC] = n,
        [TT_OPND_OPTIM_STEP_F32_V] = n,        [TT_OPND_OPTIM_STEP_F32_PHASE] = 1,
        [TT_OPND_OPTIM_STEP_F32_MOMENTUM] = 1, [TT_OPND_OPTIM_STEP_F32_G_OUT] = n,
        [TT_OPND_OPTIM_STEP_F32_ACC_OUT] = n,  [TT_OPND_OPTIM_STEP_F32_V_OUT] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_index(c, TT_OPND_OPTIM_STEP_F32_G_OUT) !=
            tt_opnd_index(c, TT_OPND_OPTIM_STEP_F32_G) ||
        tt_opnd_index(c, TT_OPND_OPTIM_STEP_F32_ACC_OUT) !=
            tt_opnd_index(c, TT_OPND_OPTIM_STEP_F32_ACC) ||
        tt_opnd_index(c, TT_OPND_OPTIM_STEP_F32_V_OUT) !=
            tt_opnd_index(c, TT_OPND_OPTIM_STEP_F32_V)) {
        return tt_op_refuse(c, "the optimizer state must be written in place", err);
    }
    const bool accumulate = c->a[TT_ATTR_OPTIM_STEP_F32_ACCUMULATE] > 1;
    if (tt_opnd_present(c, TT_OPND_OPTIM_STEP_F32_ACC) != accumulate ||
        tt_opnd_present(c, TT_OPND_OPTIM_STEP_F32_PHASE) != accumulate) {
        return tt_op_refuse(c, "acc and phase are needed exactly when accumulate > 1", err);
    }
    const bool momentum = tt_opnd_present(c, TT_OPND_OPTIM_STEP_F32_MOMENTUM);
    if (tt_opnd_present(c, TT_OPND_OPTIM_STEP_F32_V) != momentum) {
        return tt_op_refuse(c, "a velocity is needed exactly with a momentum", err);
    }
    if (accumulate && tt_opnd_tensor(c, TT_OPND_OPTIM_STEP_F32_PHASE)->arena_offset < 0) {
        return tt_op_refuse(c, "the step phase is not in the arena", err);
    }
    if (momentum) {
        const tt_tensor *t = tt_opnd_tensor(c, TT_OPND_OPTIM_STEP_F32_MOMENTUM);
        const float m = t->arena_offset < 0 ? *(const float *)t->data : -1.0f;
        if (!(m >= 0.0f && m < 1.0f)) { /* an arena tensor's bytes at load are not the plan's */
            return tt_op_refuse(c, "the momentum is not a constant in [0, 1)", err);
        }
    }
    return TT_OK;
}

tt_status tt_op_optim_step_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr; /* the update op after it applies the lr */
    const int32_t *phase = tt_opnd_s32(c, TT_OPND_OPTIM_STEP_F32_PHASE);
    const float *momentum = tt_opnd_f32(c, TT_OPND_OPTIM_STEP_F32_MOMENTUM);
    const tt_optim_params p = {c->a[TT_ATTR_OPTIM_STEP_F32_SIZE],
                               c->a[TT_ATTR_OPTIM_STEP_F32_ACCUMULATE], phase ? *phase : 0,
                               momentum != NULL, momentum ? *momentum : 0.0f};
    return tt_optim_step_f32(&p, tt_opnd_f32(c, TT_OPND_OPTIM_STEP_F32_G),
                             tt_opnd_f32(c, TT_OPND_OPTIM_STEP_F32_ACC),
                             tt_opnd_f32(c, TT_OPND_OPTIM_STEP_F32_V));
}
