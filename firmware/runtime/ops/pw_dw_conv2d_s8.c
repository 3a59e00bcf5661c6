/* A groups-1 conv (in practice an inverted bottleneck's 1x1 expand conv) fused with the depthwise
 * conv that is its only reader, without ever holding the whole expanded tensor.
 *
 * A depthwise conv reads each input channel on its own, so the intermediate is produced one
 * channel at a time: channel c of the first conv (the weights, bias and requantization of
 * channel c) into a one-plane buffer, then the depthwise output channels of c
 * (tt_depthwise_conv2d_s8 on that single-channel plane). Working memory is one mid_h x mid_w plane
 * plus the largest of the stages' own scratch, instead of the mid_c x mid_h x mid_w tensor; the
 * MCUNetV2 / TinyEngine alternative, a rolling buffer of k_h rows of every channel, needs
 * mid_c x k_h x mid_w bytes, more than one plane in every stem of the paper's models.
 *
 * A 1x1 stride-1 unpadded first conv (the expand conv, all the compiler fuses) is computed
 * directly, four positions at a time (pointwise_channel); tt_conv2d_s8 with one output
 * channel would gather its im2col column again for every channel, 2.4x the instructions of the
 * unfused pair on mbv2-w0.35's block 1 (host, portable), where the direct path takes 0.97x. Any
 * other groups-1 conv goes through tt_conv2d_s8 so.
 *
 * The integers are exactly the unfused kernels': the intermediate is requantized and clamped by
 * the first conv's parameters (tt_requant_ch_apply, tt_s8_out, as tt_conv2d_s8), then read by
 * tt_depthwise_conv2d_s8 with its zero point. */
#include <stddef.h>

#include "ops_common_s8.h"
#include "requant_s8.h"
#include "tt/tt_op.h"

/* The single-channel geometries of stage 1 (output channel c of the first conv) and stage 2
 * (the depthwise outputs of input channel c). */
static tt_conv2d_params stage1(const tt_pw_dw_conv2d_params *p)
{
    tt_conv2d_params s = p->pw;
    s.out_c = 1;
    return s;
}

static tt_conv2d_params stage2(const tt_pw_dw_conv2d_params *p)
{
    tt_conv2d_params s = p->dw;
    s.out_c = p->dw.out_c / p->dw.in_c;
    s.in_c = 1;
    s.groups = 1;
    return s;
}

/* The plane's bytes, rounded up to 4 so that the kernels' scratch after it stays aligned. */
static int64_t plane_bytes(const tt_pw_dw_conv2d_params *p)
{
    return ((int64_t)p->pw.out_h * p->pw.out_w + 3) & ~(int64_t)3;
}

/* A 1x1, stride-1, unpadded first conv (every expand conv) takes the direct path below. */
static int pointwise(const tt_conv2d_params *pw)
{
    return pw->k_h == 1 && pw->k_w == 1 && pw->stride_h == 1 && pw->stride_w == 1 &&
           pw->pad_h == 0 && pw->pad_w == 0;
}

static int chain_ok(const tt_pw_dw_conv2d_params *p)
{
    return p != NULL && tt_conv2d_params_ok(&p->pw) && tt_conv2d_params_ok(&p->dw) &&
           p->pw.groups == 1 && p->dw.groups == p->dw.in_c && p->dw.in_c == p->pw.out_c &&
           p->dw.in_h == p->pw.out_h && p->dw.in_w == p->pw.out_w;
}

int32_t tt_pw_dw_conv2d_s8_get_buffer_size(const tt_pw_dw_conv2d_params *p)
{
    if (!chain_ok(p)) {
        return TT_ERR_ARG;
    }
    const tt_conv2d_params s1 = stage1(p), s2 = stage2(p);
    const int32_t b1 = tt_conv2d_s8_get_buffer_size(&s1);
    const int32_t b2 = tt_depthwise_conv2d_s8_get_buffer_size(&s2);
    if (b1 < 0 || b2 < 0) {
        return TT_ERR_ARG;
    }
    /* After the plane, the stages take turns with the rest: the conv's scratch, then the
     * depthwise's. (The direct path's row of int32 accumulators is no longer used; the size stays
     * what compiler/scratch.py plans.) */
    const int64_t acc = (int64_t)p->pw.out_w * (int64_t)sizeof(int32_t);
    const int64_t rest = b1 > b2 ? (b1 > acc ? b1 : acc) : (b2 > acc ? b2 : acc);
    const int64_t bytes = plane_bytes(p) + rest;
    return bytes <= INT32_MAX ? (int32_t)bytes : TT_ERR_ARG;
}

/* Channel c of a pointwise first conv into plane, four positions at a time (tt_pw_acc4: the
 * channel's inputs are read in place, with no im2col column to gather again for every channel;
 * x_zero folded into the initial sums), then requantized as tt_conv2d_s8 does. The sums are
 * modulo 2^32 like the conv kernels' (exact in the contract), so their order does not matter. */
static void pointwise_channel(const tt_conv2d_params *pw, const tt_s8_requant *q, const int8_t *x,
                              const int8_t *w_c, int32_t bias, int32_t c, int8_t *plane)
{
    const int32_t hw = pw->in_h * pw->in_w, n = pw->in_c;
    const tt_requant_ch rq = tt_requant_ch_make(q->mult[c], q->shift[c]);
    const int32_t yz = q->y_zero, lo = q->act_min - yz, hi = q->act_max - yz;
    const uint32_t init = (uint32_t)bias + tt_pw_zero_term(w_c, n, q->x_zero);
    int32_t j = 0;
    for (; j + 4 <= hw; j += 4) {
        uint32_t acc[4] = {init, init, init, init};
        tt_pw_acc4(x + j, hw, w_c, n, acc);
        plane[j] = tt_s8_out(tt_requant_ch_apply(rq, (int32_t)acc[0]), yz, lo, hi);
        plane[j + 1] = tt_s8_out(tt_requant_ch_apply(rq, (int32_t)acc[1]), yz, lo, hi);
        plane[j + 2] = tt_s8_out(tt_requant_ch_apply(rq, (int32_t)acc[2]), yz, lo, hi);
        plane[j + 3] = tt_s8_out(tt_requant_ch_apply(rq, (int32_t)acc[3]), yz, lo, hi);
    }
    for (; j < hw; j++) { /* the last hw % 4 positions */
        uint32_t a = init;
        for (int32_t i = 0; i < n; i++) {
            a += (uint32_t)(w_c[i] * x[(size_t)i * (size_t)hw + j]);
        }
        plane[j] = tt_s8_out(tt_requant_ch_apply(rq, (int32_t)a), yz, lo, hi);
    }
}

tt_status tt_pw_dw_conv2d_s8(const tt_scratch *ctx, const tt_pw_dw_conv2d_params *p,
                             const tt_s8_requant *pw_q, const int8_t *pw_w, const int32_t *pw_bias,
                             const tt_s8_requant *dw_q, const int8_t *dw_w, const int32_t *dw_bias,
                             const int8_t *x, int8_t *y)
{
    const int32_t need = tt_pw_dw_conv2d_s8_get_buffer_size(p);
    if (need < 0 || !tt_scratch_ok(ctx, need) || !tt_s8_requant_ok(pw_q, p->pw.out_c) ||
        !tt_s8_requant_ok(dw_q, p->dw.out_c) || pw_q->mask != NULL || dw_q->mask != NULL ||
        pw_q->y_zero != dw_q->x_zero || x == NULL || pw_w == NULL || dw_w == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    const tt_conv2d_params s1 = stage1(p), s2 = stage2(p);
    const int32_t mult = s2.out_c;
    const int32_t pw_row = p->pw.in_c * p->pw.k_h * p->pw.k_w;
    const int32_t dw_row = p->dw.k_h * p->dw.k_w;
    const int32_t out_hw = p->dw.out_h * p->dw.out_w;
    const int direct = pointwise(&p->pw);
    int8_t *plane = ctx->buf;
    const tt_scratch rest = {(uint8_t *)ctx->buf + plane_bytes(p), need - (int32_t)plane_bytes(p)};

    for (int32_t c = 0; c < p->pw.out_c; c++) {
        const tt_s8_requant q1 = {pw_q->x_zero,   pw_q->y_zero,    pw_q->act_min, pw_q->act_max,
                                  pw_q->mult + c, pw_q->shift + c, NULL};
        tt_status st = TT_OK;
        if (direct) {
            pointwise_channel(&p->pw, pw_q, x, pw_w + (size_t)c * (size_t)pw_row,
                              pw_bias != NULL ? pw_bias[c] : 0, c, plane);
        } else {
            st = tt_conv2d_s8(&rest, &s1, &q1, x, pw_w + (size_t)c * (size_t)pw_row, NULL,
                              pw_bias != NULL ? pw_bias + c : NULL, plane);
        }
        if (st != TT_OK) {
            return st; /* unreachable: everything was checked above */
        }
        const int32_t o = c * mult; /* the first depthwise output channel reading c */
        const tt_s8_requant q2 = {dw_q->x_zero,   dw_q->y_zero,    dw_q->act_min, dw_q->act_max,
                                  dw_q->mult + o, dw_q->shift + o, NULL};
        st = tt_depthwise_conv2d_s8(&rest, &s2, &q2, plane, dw_w + (size_t)o * (size_t)dw_row,
                                    NULL, dw_bias != NULL ? dw_bias + o : NULL,
                                    y + (size_t)o * (size_t)out_hw);
        if (st != TT_OK) {
            return st;
        }
    }
    return TT_OK;
}

/* --- the PW_DW_CONV2D_S8 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_pw_dw_conv2d_s8_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_pw_dw_conv2d_params p = {TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_PW_DW_CONV2D_S8_PW_IN_C),
                                      TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_PW_DW_CONV2D_S8_DW_IN_C)};
    uint64_t x, mid, pw_w, mid2, y, dw_w;
    if (!tt_conv_numel(&p.pw, &x, &mid, &pw_w) || !tt_conv_numel(&p.dw, &mid2, &y, &dw_w) ||
        !tt_act_range_ok(c->a[TT_ATTR_PW_DW_CONV2D_S8_MID_ACT_MIN],
                         c->a[TT_ATTR_PW_DW_CONV2D_S8_MID_ACT_MAX]) ||
        !tt_act_range_ok(c->a[TT_ATTR_PW_DW_CONV2D_S8_ACT_MIN],
                         c->a[TT_ATTR_PW_DW_CONV2D_S8_ACT_MAX])) {
        return tt_op_impossible(c, err);
    }
    const int32_t scratch = tt_pw_dw_conv2d_s8_get_buffer_size(&p); /* checks the chain */
    if (scratch <= 0) {
        return tt_op_impossible(c, err);
    }
    const uint64_t mid_c = (uint64_t)p.pw.out_c, out_c = (uint64_t)p.dw.out_c;
    const uint64_t numel[] = {[TT_OPND_PW_DW_CONV2D_S8_X] = x,
                              [TT_OPND_PW_DW_CONV2D_S8_PW_W] = pw_w,
                              [TT_OPND_PW_DW_CONV2D_S8_PW_BIAS] = mid_c,
                              [TT_OPND_PW_DW_CONV2D_S8_PW_MULT] = mid_c,
                              [TT_OPND_PW_DW_CONV2D_S8_PW_SHIFT] = mid_c,
                              [TT_OPND_PW_DW_CONV2D_S8_DW_W] = dw_w,
                              [TT_OPND_PW_DW_CONV2D_S8_DW_BIAS] = out_c,
                              [TT_OPND_PW_DW_CONV2D_S8_DW_MULT] = out_c,
                              [TT_OPND_PW_DW_CONV2D_S8_DW_SHIFT] = out_c,
                              [TT_OPND_PW_DW_CONV2D_S8_Y] = y,
                              [TT_OPND_PW_DW_CONV2D_S8_SCRATCH] = (uint64_t)scratch};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    /* Fused only where frozen: every parameter is a constant. */
    for (unsigned i = TT_OPND_PW_DW_CONV2D_S8_PW_W; i <= TT_OPND_PW_DW_CONV2D_S8_DW_SHIFT; i++) {
        if (tt_opnd_present(c, i) && tt_opnd_tensor(c, i)->arena_offset >= 0) {
            return tt_op_refuse(c,
                                "a fused conv's weights, biases and multipliers must be "
                                "constants",
                                err);
        }
    }
    return tt_shifts_ok(c, TT_OPND_PW_DW_CONV2D_S8_PW_SHIFT) &&
                   tt_shifts_ok(c, TT_OPND_PW_DW_CONV2D_S8_DW_SHIFT)
               ? TT_OK
               : tt_op_refuse(c, "a requantization shift is outside [-31, 30]", err);
}

tt_status tt_op_pw_dw_conv2d_s8_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const int32_t *a = c->a;
    const tt_pw_dw_conv2d_params p = {TT_CONV2D_ATTRS_AT(a + TT_ATTR_PW_DW_CONV2D_S8_PW_IN_C),
                                      TT_CONV2D_ATTRS_AT(a + TT_ATTR_PW_DW_CONV2D_S8_DW_IN_C)};
    const tt_s8_requant pw_q = {a[TT_ATTR_PW_DW_CONV2D_S8_X_ZERO],
                                a[TT_ATTR_PW_DW_CONV2D_S8_MID_ZERO],
                                a[TT_ATTR_PW_DW_CONV2D_S8_MID_ACT_MIN],
                                a[TT_ATTR_PW_DW_CONV2D_S8_MID_ACT_MAX],
                                tt_opnd_s32(c, TT_OPND_PW_DW_CONV2D_S8_PW_MULT),
                                tt_opnd_s32(c, TT_OPND_PW_DW_CONV2D_S8_PW_SHIFT),
                                NULL};
    const tt_s8_requant dw_q = {a[TT_ATTR_PW_DW_CONV2D_S8_MID_ZERO],
                                a[TT_ATTR_PW_DW_CONV2D_S8_Y_ZERO],
                                a[TT_ATTR_PW_DW_CONV2D_S8_ACT_MIN],
                                a[TT_ATTR_PW_DW_CONV2D_S8_ACT_MAX],
                                tt_opnd_s32(c, TT_OPND_PW_DW_CONV2D_S8_DW_MULT),
                                tt_opnd_s32(c, TT_OPND_PW_DW_CONV2D_S8_DW_SHIFT),
                                NULL};
    const tt_scratch scratch = tt_opnd_scratch(c, TT_OPND_PW_DW_CONV2D_S8_SCRATCH);
    return tt_pw_dw_conv2d_s8(&scratch, &p, &pw_q, tt_opnd_s8(c, TT_OPND_PW_DW_CONV2D_S8_PW_W),
                              tt_opnd_s32(c, TT_OPND_PW_DW_CONV2D_S8_PW_BIAS), &dw_q,
                              tt_opnd_s8(c, TT_OPND_PW_DW_CONV2D_S8_DW_W),
                              tt_opnd_s32(c, TT_OPND_PW_DW_CONV2D_S8_DW_BIAS),
                              tt_opnd_s8(c, TT_OPND_PW_DW_CONV2D_S8_X),
                              tt_opnd_s8(c, TT_OPND_PW_DW_CONV2D_S8_Y));
}
