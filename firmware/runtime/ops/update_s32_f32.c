/* QAS update of an int32 bias, u = lr * (db * qas) in float (docs/int8.md 5):
 * - int32 state (master NULL): b <- sat32(b - rint(u)), the step rounded (halves to even), not
 *   the sum, so the integer arithmetic is exact for any bias;
 * - float master: master <- master - u, b = sat32(rint(master)).
 * Refused (TT_ERR_NONFINITE, nothing written) when any u (int32 state) or new master is not
 * finite. */
#include <math.h>
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

#define TWO_31 2147483648.0f
#define STEP_LIMIT 8589934592.0f /* 2^33 */

static int32_t sat32(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

tt_status tt_update_s32_f32(int32_t size, int32_t *b, float *master, const float *db, float lr,
                            const float *qas)
{
    if (size <= 0 || b == NULL || db == NULL || qas == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) { /* nothing is written unless every step is finite */
        const float u = lr * (db[i] * qas[i]);
        if (!isfinite(master == NULL ? u : master[i] - u)) {
            return TT_ERR_NONFINITE;
        }
    }
    for (int32_t i = 0; i < size; i++) {
        const float u = lr * (db[i] * qas[i]);
        if (master == NULL) {
            /* A step beyond +-2^32 saturates whatever b is; limiting it keeps the conversion
             * defined (a NaN step, outside the contract, counts as -2^33). */
            float r = rintf(u);
            r = r > STEP_LIMIT ? STEP_LIMIT : !(r >= -STEP_LIMIT) ? -STEP_LIMIT : r;
            b[i] = sat32((int64_t)b[i] - (int64_t)r);
        } else {
            master[i] = master[i] - u;
            const float r = rintf(master[i]);
            b[i] = r >= TWO_31 ? INT32_MAX : !(r >= -TWO_31) ? INT32_MIN : (int32_t)r;
        }
    }
    return TT_OK;
}

/* --- the UPDATE_S32_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_update_s32_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_UPDATE_S32_F32_SIZE];
    const uint64_t numel[] = {
        [TT_OPND_UPDATE_S32_F32_B] = n,         [TT_OPND_UPDATE_S32_F32_DB] = n,
        [TT_OPND_UPDATE_S32_F32_QAS] = n,       [TT_OPND_UPDATE_S32_F32_MASTER] = n,
        [TT_OPND_UPDATE_S32_F32_LR_SCALE] = 1,  [TT_OPND_UPDATE_S32_F32_B_OUT] = n,
        [TT_OPND_UPDATE_S32_F32_MASTER_OUT] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_index(c, TT_OPND_UPDATE_S32_F32_B_OUT) !=
            tt_opnd_index(c, TT_OPND_UPDATE_S32_F32_B) ||
        tt_opnd_index(c, TT_OPND_UPDATE_S32_F32_MASTER_OUT) !=
            tt_opnd_index(c, TT_OPND_UPDATE_S32_F32_MASTER)) {
        return tt_op_refuse(c, "an update must write its state in place", err);
    }
    return tt_opnd_present(c, TT_OPND_UPDATE_S32_F32_MASTER) ==
                   (c->a[TT_ATTR_UPDATE_S32_F32_RULE] == 1)
               ? TT_OK
               : tt_op_refuse(c, "an f32 master is needed exactly for rule 1", err);
}

tt_status tt_op_update_s32_f32_run(const tt_op_ctx *c, float step_lr)
{
    const float lr = tt_opnd_lr(c, TT_OPND_UPDATE_S32_F32_LR_SCALE, step_lr);
    const bool master = c->a[TT_ATTR_UPDATE_S32_F32_RULE] == 1;
    return tt_update_s32_f32(c->a[TT_ATTR_UPDATE_S32_F32_SIZE],
                             tt_opnd_s32(c, TT_OPND_UPDATE_S32_F32_B),
                             master ? tt_opnd_f32(c, TT_OPND_UPDATE_S32_F32_MASTER) : NULL,
                             tt_opnd_f32(c, TT_OPND_UPDATE_S32_F32_DB), lr,
                             tt_opnd_f32(c, TT_OPND_UPDATE_S32_F32_QAS));
}
