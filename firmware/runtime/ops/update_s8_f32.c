/* The UPDATE_S8_F32 op: QAS updates of int8 weight rows, by rule round
 * (update_s8_round_f32.c) or f32 master (update_s8_master_f32.c). */
#include <stddef.h>

#include "tt/tt_op.h"

tt_status tt_op_update_s8_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = tt_numel4((uint64_t)c->a[TT_ATTR_UPDATE_S8_F32_ROWS],
                                 (uint64_t)c->a[TT_ATTR_UPDATE_S8_F32_ROW_SIZE], 1, 1);
    if (n == UINT64_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_UPDATE_S8_F32_W] = n,
                              [TT_OPND_UPDATE_S8_F32_DW] = n,
                              [TT_OPND_UPDATE_S8_F32_QAS] = (uint64_t)
                                                                c->a[TT_ATTR_UPDATE_S8_F32_ROWS],
                              [TT_OPND_UPDATE_S8_F32_MASTER] = n,
                              [TT_OPND_UPDATE_S8_F32_LR_SCALE] = 1,
                              [TT_OPND_UPDATE_S8_F32_W_OUT] = n,
                              [TT_OPND_UPDATE_S8_F32_MASTER_OUT] = n};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_index(c, TT_OPND_UPDATE_S8_F32_W_OUT) !=
            tt_opnd_index(c, TT_OPND_UPDATE_S8_F32_W) ||
        tt_opnd_index(c, TT_OPND_UPDATE_S8_F32_MASTER_OUT) !=
            tt_opnd_index(c, TT_OPND_UPDATE_S8_F32_MASTER)) {
        return tt_op_refuse(c, "an update must write its state in place", err);
    }
    return tt_opnd_present(c, TT_OPND_UPDATE_S8_F32_MASTER) ==
                   (c->a[TT_ATTR_UPDATE_S8_F32_RULE] == 1)
               ? TT_OK
               : tt_op_refuse(c, "an f32 master is needed exactly for rule 1", err);
}

/* Every row of the state is updated (a sparse layer's state holds just its trained rows). */
tt_status tt_op_update_s8_f32_run(const tt_op_ctx *c, float step_lr)
{
    const float lr = tt_opnd_lr(c, TT_OPND_UPDATE_S8_F32_LR_SCALE, step_lr);
    const tt_weight_shape shape = {c->a[TT_ATTR_UPDATE_S8_F32_ROWS],
                                   c->a[TT_ATTR_UPDATE_S8_F32_ROW_SIZE], 1};
    int8_t *w = tt_opnd_s8(c, TT_OPND_UPDATE_S8_F32_W);
    const float *dw = tt_opnd_f32(c, TT_OPND_UPDATE_S8_F32_DW);
    const float *qas = tt_opnd_f32(c, TT_OPND_UPDATE_S8_F32_QAS);
    if (c->a[TT_ATTR_UPDATE_S8_F32_RULE] == 0) {
        return tt_update_s8_round_f32(&shape, NULL, w, dw, lr, qas);
    }
    return tt_update_s8_master_f32(&shape, NULL, tt_opnd_f32(c, TT_OPND_UPDATE_S8_F32_MASTER), w,
                                   dw, lr, qas);
}
