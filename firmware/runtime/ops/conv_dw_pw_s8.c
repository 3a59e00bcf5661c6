/* A frozen network stem streamed a row at a time: a conv (any geometry), the depthwise conv that
 * reads its output, and the 1x1 conv that reads the depthwise's, fused. Neither intermediate is
 * ever stored whole: the conv's output rows live in a ring of as many rows as the depthwise
 * kernel is high; each depthwise output row is made from a band of them, then run through the
 * 1x1 conv, whose output row goes to y. Every stage is the unfused kernel applied to a band with
 * its padding rows written out as the input zero point (which adds exactly nothing to an int8
 * conv's sums), so y is the three kernels' output bit for bit.
 *
 * Scratch, in order (each piece rounded up to 4 bytes): the ring (d.k_h x c.out_c x c.out_w),
 * the conv's input band (c.in_c x c.k_h x c.in_w), the depthwise's input band
 * (d.in_c x d.k_h x d.in_w), one depthwise output row (d.out_c x d.out_w), one 1x1 output row
 * (p.out_c x p.out_w), the ring's row tags (d.k_h int32) and the largest of the three kernels'
 * own scratch for their band geometries. */
#include <stddef.h>
#include <string.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

static int32_t round4(int64_t n)
{
    return n < 0 || n > INT32_MAX - 3 ? -1 : (int32_t)((n + 3) / 4 * 4);
}

/* One output row of conv p from an input band of p->k_h rows (padding rows written out). */
static tt_conv2d_params band_of(const tt_conv2d_params *p)
{
    tt_conv2d_params b = *p;
    b.in_h = p->k_h;
    b.pad_h = 0;
    b.stride_h = 1;
    b.out_h = 1;
    return b;
}

static bool chain_ok(const tt_conv_dw_pw_params *p)
{
    const tt_conv2d_params *c = &p->c, *d = &p->d, *q = &p->p;
    return tt_conv2d_params_ok(c) && tt_conv2d_params_ok(d) && tt_conv2d_params_ok(q) &&
           d->in_c == c->out_c && d->in_h == c->out_h && d->in_w == c->out_w &&
           d->groups == d->in_c && q->in_c == d->out_c && q->in_h == d->out_h &&
           q->in_w == d->out_w && q->k_h == 1 && q->k_w == 1 && q->stride_h == 1 &&
           q->stride_w == 1 && q->pad_h == 0 && q->pad_w == 0 && q->groups == 1;
}

typedef struct {
    int32_t ring, xband, dband, drow, prow, tags, kernel, total; /* byte offsets, total size */
} layout;

static bool layout_of(const tt_conv_dw_pw_params *p, layout *l)
{
    const tt_conv2d_params cb = band_of(&p->c), db = band_of(&p->d), pr = band_of(&p->p);
    const int32_t kc = tt_conv2d_s8_get_buffer_size(&cb);
    const int32_t kd = tt_depthwise_conv2d_s8_get_buffer_size(&db);
    const int32_t kp = tt_conv2d_s8_get_buffer_size(&pr);
    const int32_t sizes[7] = {
        round4((int64_t)p->d.k_h * p->c.out_c * p->c.out_w),
        round4((int64_t)p->c.in_c * p->c.k_h * p->c.in_w),
        round4((int64_t)p->d.in_c * p->d.k_h * p->d.in_w),
        round4((int64_t)p->d.out_c * p->d.out_w),
        round4((int64_t)p->p.out_c * p->p.out_w),
        round4((int64_t)p->d.k_h * 4),
        kc > kd ? (kc > kp ? kc : kp) : (kd > kp ? kd : kp),
    };
    int32_t *at[7] = {&l->ring, &l->xband, &l->dband, &l->drow, &l->prow, &l->tags, &l->kernel};
    int64_t off = 0;
    for (int i = 0; i < 7; i++) {
        if (sizes[i] < 0 || kc < 0 || kd < 0 || kp < 0) {
            return false;
        }
        *at[i] = (int32_t)off;
        off += sizes[i];
    }
    if (off > INT32_MAX) {
        return false;
    }
    l->total = (int32_t)off;
    return true;
}

int32_t tt_conv_dw_pw_s8_get_buffer_size(const tt_conv_dw_pw_params *p)
{
    layout l;
    return p != NULL && chain_ok(p) && layout_of(p, &l) ? l.total : TT_ERR_ARG;
}

/* rows [first, first + n) of every channel of a CHW tensor (c x h x w) into band (c x n x w);
 * rows outside [0, h) become `fill` (the padding, as the input zero point). */
static void copy_band(const int8_t *src, int32_t c, int32_t h, int32_t w, int32_t first, int32_t n,
                      int32_t fill, int8_t *band)
{
    for (int32_t ch = 0; ch < c; ch++) {
        for (int32_t i = 0; i < n; i++) {
            const int32_t row = first + i;
            int8_t *dst = band + ((size_t)ch * n + i) * w;
            if (row < 0 || row >= h) {
                memset(dst, fill, (size_t)w);
            } else {
                memcpy(dst, src + ((size_t)ch * h + row) * w, (size_t)w);
            }
        }
    }
}

tt_status tt_conv_dw_pw_s8(const tt_scratch *ctx, const tt_conv_dw_pw_params *p,
                           const tt_s8_requant *cq, const int8_t *cw, const int32_t *cbias,
                           const tt_s8_requant *dq, const int8_t *dw, const int32_t *dbias,
                           const tt_s8_requant *pq, const int8_t *pw, const int32_t *pbias,
                           const int8_t *x, int8_t *y)
{
    layout l;
    if (p == NULL || !chain_ok(p) || !layout_of(p, &l) || !tt_scratch_ok(ctx, l.total) ||
        !tt_s8_requant_ok(cq, p->c.out_c) || !tt_s8_requant_ok(dq, p->d.out_c) ||
        !tt_s8_requant_ok(pq, p->p.out_c) || cq->mask != NULL || dq->mask != NULL ||
        pq->mask != NULL || cq->y_zero != dq->x_zero || dq->y_zero != pq->x_zero || x == NULL ||
        cw == NULL || dw == NULL || pw == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    const tt_conv2d_params cb = band_of(&p->c), db = band_of(&p->d), pr = band_of(&p->p);
    int8_t *base = ctx->buf;
    int8_t *ring = base + l.ring, *xband = base + l.xband, *dband = base + l.dband;
    int8_t *drow = base + l.drow, *prow = base + l.prow;
    int32_t *tags = (int32_t *)(void *)(base + l.tags);
    const tt_scratch kernel = {base + l.kernel, l.total - l.kernel};
    const int32_t ring_row = p->c.out_c * p->c.out_w; /* one conv output row, every channel */
    for (int32_t i = 0; i < p->d.k_h; i++) {
        tags[i] = -1;
    }
    tt_status st = TT_OK;
    for (int32_t r = 0; r < p->d.out_h && st == TT_OK; r++) {
        const int32_t first = r * p->d.stride_h - p->d.pad_h;
        for (int32_t i = 0; i < p->d.k_h && st == TT_OK; i++) {
            const int32_t j = first + i; /* a conv output row */
            int8_t *dst = dband + (size_t)i * p->d.in_w;
            if (j < 0 || j >= p->c.out_h) {
                for (int32_t ch = 0; ch < p->d.in_c; ch++) {
                    memset(dst + (size_t)ch * p->d.k_h * p->d.in_w, dq->x_zero, (size_t)p->d.in_w);
                }
                continue;
            }
            int8_t *slot = ring + (size_t)(j % p->d.k_h) * ring_row;
            if (tags[j % p->d.k_h] != j) {
                copy_band(x, p->c.in_c, p->c.in_h, p->c.in_w, j * p->c.stride_h - p->c.pad_h,
                          p->c.k_h, cq->x_zero, xband);
                st = tt_conv2d_s8(&kernel, &cb, cq, xband, cw, NULL, cbias, slot);
                tags[j % p->d.k_h] = j;
            }
            for (int32_t ch = 0; ch < p->d.in_c; ch++) {
                memcpy(dst + (size_t)ch * p->d.k_h * p->d.in_w, slot + (size_t)ch * p->d.in_w,
                       (size_t)p->d.in_w);
            }
        }
        if (st == TT_OK) {
            st = tt_depthwise_conv2d_s8(&kernel, &db, dq, dband, dw, NULL, dbias, drow);
        }
        if (st == TT_OK) {
            st = tt_conv2d_s8(&kernel, &pr, pq, drow, pw, NULL, pbias, prow);
        }
        for (int32_t ch = 0; st == TT_OK && ch < p->p.out_c; ch++) {
            memcpy(y + ((size_t)ch * p->p.out_h + r) * p->p.out_w, prow + (size_t)ch * p->p.out_w,
                   (size_t)p->p.out_w);
        }
    }
    return st;
}

/* --- the CONV_DW_PW_S8 op: plan check and run (tt/tt_op.h) --- */

#define A(name) (c->a[TT_ATTR_CONV_DW_PW_S8_##name])
#define OPND(name) TT_OPND_CONV_DW_PW_S8_##name

static tt_conv_dw_pw_params params_of(const tt_op_ctx *c)
{
    return (tt_conv_dw_pw_params){TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV_DW_PW_S8_C_IN_C),
                                  TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV_DW_PW_S8_D_IN_C),
                                  TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV_DW_PW_S8_P_IN_C)};
}

tt_status tt_op_conv_dw_pw_s8_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv_dw_pw_params p = params_of(c);
    uint64_t x, c_y, c_w, d_x, d_y, d_w, p_x, y, p_w;
    if (!tt_conv_numel(&p.c, &x, &c_y, &c_w) || !tt_conv_numel(&p.d, &d_x, &d_y, &d_w) ||
        !tt_conv_numel(&p.p, &p_x, &y, &p_w) || !tt_act_range_ok(A(C_ACT_MIN), A(C_ACT_MAX)) ||
        !tt_act_range_ok(A(D_ACT_MIN), A(D_ACT_MAX)) || !tt_act_range_ok(A(ACT_MIN), A(ACT_MAX))) {
        return tt_op_impossible(c, err);
    }
    const int32_t scratch = tt_conv_dw_pw_s8_get_buffer_size(&p); /* checks the chain */
    if (scratch <= 0) {
        return tt_op_impossible(c, err);
    }
    const uint64_t c_oc = (uint64_t)p.c.out_c, d_oc = (uint64_t)p.d.out_c,
                   p_oc = (uint64_t)p.p.out_c;
    const uint64_t numel[] = {
        [OPND(X)] = x,          [OPND(C_W)] = c_w,      [OPND(C_BIAS)] = c_oc,
        [OPND(C_MULT)] = c_oc,  [OPND(C_SHIFT)] = c_oc, [OPND(D_W)] = d_w,
        [OPND(D_BIAS)] = d_oc,  [OPND(D_MULT)] = d_oc,  [OPND(D_SHIFT)] = d_oc,
        [OPND(P_W)] = p_w,      [OPND(P_BIAS)] = p_oc,  [OPND(P_MULT)] = p_oc,
        [OPND(P_SHIFT)] = p_oc, [OPND(Y)] = y,          [OPND(SCRATCH)] = (uint64_t)scratch};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    /* Fused only where frozen: every parameter is a constant. */
    for (unsigned i = OPND(C_W); i <= OPND(P_SHIFT); i++) {
        if (tt_opnd_present(c, i) && tt_opnd_tensor(c, i)->arena_offset >= 0) {
            return tt_op_refuse(c,
                                "a fused conv's weights, biases and multipliers must be "
                                "constants",
                                err);
        }
    }
    return tt_shifts_ok(c, OPND(C_SHIFT)) && tt_shifts_ok(c, OPND(D_SHIFT)) &&
                   tt_shifts_ok(c, OPND(P_SHIFT))
               ? TT_OK
               : tt_op_refuse(c, "a requantization shift is outside [-31, 30]", err);
}

tt_status tt_op_conv_dw_pw_s8_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv_dw_pw_params p = params_of(c);
    const tt_s8_requant cq = {A(X_ZERO),
                              A(C_ZERO),
                              A(C_ACT_MIN),
                              A(C_ACT_MAX),
                              tt_opnd_s32(c, OPND(C_MULT)),
                              tt_opnd_s32(c, OPND(C_SHIFT)),
                              NULL};
    const tt_s8_requant dq = {A(C_ZERO),
                              A(D_ZERO),
                              A(D_ACT_MIN),
                              A(D_ACT_MAX),
                              tt_opnd_s32(c, OPND(D_MULT)),
                              tt_opnd_s32(c, OPND(D_SHIFT)),
                              NULL};
    const tt_s8_requant pq = {A(D_ZERO),
                              A(Y_ZERO),
                              A(ACT_MIN),
                              A(ACT_MAX),
                              tt_opnd_s32(c, OPND(P_MULT)),
                              tt_opnd_s32(c, OPND(P_SHIFT)),
                              NULL};
    const tt_scratch scratch = tt_opnd_scratch(c, OPND(SCRATCH));
    return tt_conv_dw_pw_s8(&scratch, &p, &cq, tt_opnd_s8(c, OPND(C_W)),
                            tt_opnd_s32(c, OPND(C_BIAS)), &dq, tt_opnd_s8(c, OPND(D_W)),
                            tt_opnd_s32(c, OPND(D_BIAS)), &pq, tt_opnd_s8(c, OPND(P_W)),
                            tt_opnd_s32(c, OPND(P_BIAS)), tt_opnd_s8(c, OPND(X)),
                            tt_opnd_s8(c, OPND(Y)));
}
