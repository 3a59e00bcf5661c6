/* Gradient of a depthwise int8 conv (groups == in_c == out_c) with respect to its input, a
 * channel at a time: each dx plane is made in one f32 plane of scratch, then copied out, so dx may
 * be dz (in place: channel c of dx depends on channel c of dz only). The sums are
 * tt_conv2d_s8_grad_input_f32's, in its order, so the result is that kernel's bit for bit. */
#include <stddef.h>
#include <string.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

tt_status tt_depthwise_conv2d_s8_grad_input_f32(const tt_scratch *ctx, const tt_conv2d_params *p,
                                                const float *dz, const int8_t *w,
                                                const tt_row_subst *sub, float *dx)
{
    if (!tt_conv2d_params_ok(p) || p->groups != p->in_c || p->out_c != p->in_c || dz == NULL ||
        w == NULL || dx == NULL || ctx == NULL || ctx->buf == NULL ||
        ctx->size < 4 * p->in_h * p->in_w || !tt_row_subst_ok(sub, p->out_c)) {
        return TT_ERR_ARG;
    }
    const int32_t in_hw = p->in_h * p->in_w, out_hw = p->out_h * p->out_w;
    /* One channel as a conv of its own: in_c = out_c = groups = 1. */
    tt_conv2d_params one = *p;
    one.in_c = one.out_c = one.groups = 1;
    tt_row_cursor rows = tt_row_cursor_make(w, p->k_h * p->k_w, sub, 0);
    float *plane = ctx->buf;
    for (int32_t c = 0; c < p->out_c; c++) {
        const tt_status st = tt_conv2d_s8_grad_input_f32(&one, dz + c * out_hw,
                                                         tt_row_cursor_at(&rows, c), NULL, plane);
        if (st != TT_OK) {
            return st;
        }
        memcpy(dx + c * in_hw, plane, (size_t)in_hw * sizeof(float));
    }
    return TT_OK;
}

/* --- the DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_depthwise_conv2d_s8_grad_input_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a +
                                                  TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const int32_t n_rows = c->a[TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_N_ROWS];
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w) || n_rows > p.out_c || p.groups != p.in_c ||
        p.out_c != p.in_c) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DZ] = y,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W] = w,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W_ROWS] = (uint64_t)n_rows *
                                                              (w / (uint64_t)p.out_c),
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS] = (uint64_t)n_rows,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DX] = x,
        [TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_SCRATCH] = 4u * (uint64_t)p.in_h * p.in_w};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_present(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W_ROWS) != (n_rows > 0) ||
        tt_opnd_present(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS) != (n_rows > 0)) {
        return tt_op_refuse(c, "substituted weight rows, their channels and n_rows disagree", err);
    }
    return tt_channels_ok(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS, p.out_c)
               ? TT_OK
               : tt_op_refuse(c, "channel indices are not constant, increasing and below out_c",
                              err);
}

tt_status tt_op_depthwise_conv2d_s8_grad_input_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a +
                                                  TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const tt_row_subst sub = {tt_opnd_s8(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W_ROWS),
                              tt_opnd_s32(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_CHANNELS),
                              c->a[TT_ATTR_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_N_ROWS]};
    const tt_scratch scratch = tt_opnd_scratch(c,
                                               TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_SCRATCH);
    return tt_depthwise_conv2d_s8_grad_input_f32(
        &scratch, &p, tt_opnd_f32(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DZ),
        tt_opnd_s8(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_W), &sub,
        tt_opnd_f32(c, TT_OPND_DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32_DX));
}
