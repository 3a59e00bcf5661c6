/* The int8 conv's trained rows updated straight from dz, a row at a time (TinyEngine's fused
 * gradient and update): each selected output channel's weight gradient is made in one row of
 * scratch and applied at once by the QAS update rule, so the layer's whole f32 weight gradient
 * never exists. The sums and the update are those of CONV2D_S8_GRAD_WEIGHT_F32 followed by
 * UPDATE_S8_F32, element for element, so the result is theirs bit for bit. A row whose step is
 * not finite is refused (TT_ERR_NONFINITE) before it is written; the rows before it are kept
 * updated and db is not computed. */
#include <stddef.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_conv2d_s8_sgd_f32(const tt_conv2d_params *p, const tt_channel_select *sel,
                               const float *dz, const int8_t *x, int32_t x_zero, int8_t *w,
                               float *master, const float *qas, float lr, float *db,
                               float *row_buf)
{
    if (!tt_conv2d_params_ok(p) || !tt_select_axis_ok(sel, p->out_c, 0, 0) ||
        tt_select_axis(sel) != 0 || dz == NULL || x == NULL || w == NULL || qas == NULL ||
        row_buf == NULL || !tt_in_s8(x_zero)) {
        return TT_ERR_ARG;
    }
    const int32_t row = (p->in_c / p->groups) * p->k_h * p->k_w;
    const tt_weight_shape one_row = {1, row, 1};
    const int32_t rows = tt_select_count(sel, p->out_c);
    for (int32_t j = 0; j < rows; j++) {
        tt_conv2d_s8_grad_weight_row_f32(p, dz, x, x_zero, tt_select_at(sel, j), row_buf);
        const tt_status st = master == NULL
                                 ? tt_update_s8_round_f32(&one_row, NULL, w + j * row, row_buf, lr,
                                                          qas + j)
                                 : tt_update_s8_master_f32(&one_row, NULL, master + j * row,
                                                           w + j * row, row_buf, lr, qas + j);
        if (st != TT_OK) {
            return st;
        }
    }
    if (db != NULL) {
        return tt_conv2d_s8_grad_weight_f32(p, NULL, dz, NULL, x_zero, NULL, db);
    }
    return TT_OK;
}

/* --- the CONV2D_S8_SGD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_conv2d_s8_sgd_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_SGD_F32_IN_C);
    const int32_t n_ch = c->a[TT_ATTR_CONV2D_S8_SGD_F32_N_CHANNELS];
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w) || n_ch > p.out_c) {
        return tt_op_impossible(c, err);
    }
    const uint64_t row = w / (uint64_t)p.out_c, rows = (uint64_t)n_ch;
    const uint64_t numel[] = {[TT_OPND_CONV2D_S8_SGD_F32_DZ] = y,
                              [TT_OPND_CONV2D_S8_SGD_F32_X] = x,
                              [TT_OPND_CONV2D_S8_SGD_F32_CHANNELS] = rows,
                              [TT_OPND_CONV2D_S8_SGD_F32_W] = rows * row,
                              [TT_OPND_CONV2D_S8_SGD_F32_QAS] = rows,
                              [TT_OPND_CONV2D_S8_SGD_F32_MASTER] = rows * row,
                              [TT_OPND_CONV2D_S8_SGD_F32_LR_SCALE] = 1,
                              [TT_OPND_CONV2D_S8_SGD_F32_W_OUT] = rows * row,
                              [TT_OPND_CONV2D_S8_SGD_F32_MASTER_OUT] = rows * row,
                              [TT_OPND_CONV2D_S8_SGD_F32_DB] = (uint64_t)p.out_c,
                              [TT_OPND_CONV2D_S8_SGD_F32_SCRATCH] = 4u * row};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (!tt_opnd_present(c, TT_OPND_CONV2D_S8_SGD_F32_CHANNELS) && n_ch != p.out_c) {
        return tt_op_refuse(c, "without channels every row trains (n_channels == out_c)", err);
    }
    if (tt_opnd_index(c, TT_OPND_CONV2D_S8_SGD_F32_W_OUT) !=
            tt_opnd_index(c, TT_OPND_CONV2D_S8_SGD_F32_W) ||
        tt_opnd_index(c, TT_OPND_CONV2D_S8_SGD_F32_MASTER_OUT) !=
            tt_opnd_index(c, TT_OPND_CONV2D_S8_SGD_F32_MASTER)) {
        return tt_op_refuse(c, "an update must write its state in place", err);
    }
    if (tt_opnd_present(c, TT_OPND_CONV2D_S8_SGD_F32_MASTER) !=
        (c->a[TT_ATTR_CONV2D_S8_SGD_F32_RULE] == 1)) {
        return tt_op_refuse(c, "an f32 master is needed exactly for rule 1", err);
    }
    return tt_channels_ok(c, TT_OPND_CONV2D_S8_SGD_F32_CHANNELS, p.out_c)
               ? TT_OK
               : tt_op_refuse(c, "channel indices are not constant, increasing and below out_c",
                              err);
}

tt_status tt_op_conv2d_s8_sgd_f32_run(const tt_op_ctx *c, float step_lr)
{
    const float lr = tt_opnd_lr(c, TT_OPND_CONV2D_S8_SGD_F32_LR_SCALE, step_lr);
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_SGD_F32_IN_C);
    const tt_channel_select sel = {tt_opnd_s32(c, TT_OPND_CONV2D_S8_SGD_F32_CHANNELS),
                                   c->a[TT_ATTR_CONV2D_S8_SGD_F32_N_CHANNELS], 0};
    return tt_conv2d_s8_sgd_f32(&p, sel.index != NULL ? &sel : NULL,
                                tt_opnd_f32(c, TT_OPND_CONV2D_S8_SGD_F32_DZ),
                                tt_opnd_s8(c, TT_OPND_CONV2D_S8_SGD_F32_X),
                                c->a[TT_ATTR_CONV2D_S8_SGD_F32_X_ZERO],
                                tt_opnd_s8(c, TT_OPND_CONV2D_S8_SGD_F32_W),
                                tt_opnd_f32(c, TT_OPND_CONV2D_S8_SGD_F32_MASTER),
                                tt_opnd_f32(c, TT_OPND_CONV2D_S8_SGD_F32_QAS), lr,
                                tt_opnd_f32(c, TT_OPND_CONV2D_S8_SGD_F32_DB),
                                tt_opnd_f32(c, TT_OPND_CONV2D_S8_SGD_F32_SCRATCH));
}
