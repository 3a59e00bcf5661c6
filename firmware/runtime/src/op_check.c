/* What the ops' plan checks share (tt/tt_op.h): the operand check and geometry rules. */
#include <float.h>

#include "tt/tt_op.h"

tt_status tt_op_impossible(const tt_op_ctx *c, tt_error *err)
{
    return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u (opcode %u): impossible attributes",
                   (unsigned)c->index, (unsigned)c->op->opcode);
}

tt_status tt_op_refuse(const tt_op_ctx *c, const char *problem, tt_error *err)
{
    return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u (opcode %u): %s", (unsigned)c->index,
                   (unsigned)c->op->opcode, problem);
}

tt_status tt_op_check_operands(const tt_op_ctx *c, const uint64_t *numel, tt_error *err)
{
    const tt_op_registration *r = tt_op_find(c->op->opcode);
    const unsigned k = (unsigned)c->index;
    for (unsigned i = 0; i < (unsigned)(r->n_in + r->n_out); i++) {
        const int32_t t = tt_opnd_index(c, i);
        if (t < 0 && (r->optional >> i & 1u)) {
            continue;
        }
        if (t < 0 || (uint32_t)t >= c->plan->n_tensors) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u: operand %u names tensor %ld", k, i,
                           (long)t);
        }
        const tt_tensor *tt = &c->plan->tensors[t];
        const uint64_t esize = r->dtypes[i] == TT_DTYPE_S8 ? 1u : 4u;
        if (tt->dtype != r->dtypes[i] || (uint64_t)tt->nbytes != numel[i] * esize) {
            return tt_fail(err, TT_ERR_PLAN_BOUNDS,
                           "op %u (opcode %u): operand %u has %lu "
                           "bytes, its attributes need %lu",
                           k, (unsigned)c->op->opcode, i, (unsigned long)tt->nbytes,
                           (unsigned long)(numel[i] * esize));
        }
        if (i >= r->n_in && tt->arena_offset < 0) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u writes constant tensor %ld", k,
                           (long)t);
        }
    }
    return TT_OK;
}

uint64_t tt_numel4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    /* Every partial product stays below 2^62, so nothing wraps around. */
    const uint64_t f[4] = {a, b, c, d};
    uint64_t n = 1;
    for (unsigned i = 0; i < 4; i++) {
        if (f[i] > INT32_MAX || (n *= f[i]) > INT32_MAX) {
            return UINT64_MAX;
        }
    }
    return n;
}

/* Attribute ranges are checked already (sizes and strides positive, padding non-negative). */
bool tt_conv_numel(const tt_conv2d_params *p, uint64_t *x, uint64_t *y, uint64_t *w)
{
    const int64_t padded_h = (int64_t)p->in_h + 2 * (int64_t)p->pad_h;
    const int64_t padded_w = (int64_t)p->in_w + 2 * (int64_t)p->pad_w;
    if (p->in_c % p->groups != 0 || p->out_c % p->groups != 0 || padded_h < p->k_h ||
        padded_w < p->k_w || (padded_h - p->k_h) / p->stride_h + 1 != p->out_h ||
        (padded_w - p->k_w) / p->stride_w + 1 != p->out_w) {
        return false;
    }
    *x = tt_numel4((uint64_t)p->in_c, (uint64_t)p->in_h, (uint64_t)p->in_w, 1);
    *y = tt_numel4((uint64_t)p->out_c, (uint64_t)p->out_h, (uint64_t)p->out_w, 1);
    *w = tt_numel4((uint64_t)p->out_c, (uint64_t)(p->in_c / p->groups), (uint64_t)p->k_h,
                   (uint64_t)p->k_w);
    return *x != UINT64_MAX && *y != UINT64_MAX && *w != UINT64_MAX;
}

bool tt_pool_numel(const tt_pool2d_params *p, uint64_t *x, uint64_t *y)
{
    const int64_t padded_h = (int64_t)p->in_h + 2 * (int64_t)p->pad_h;
    const int64_t padded_w = (int64_t)p->in_w + 2 * (int64_t)p->pad_w;
    if (2 * (int64_t)p->pad_h > p->k_h || 2 * (int64_t)p->pad_w > p->k_w || padded_h < p->k_h ||
        padded_w < p->k_w || (padded_h - p->k_h) / p->stride_h + 1 != p->out_h ||
        (padded_w - p->k_w) / p->stride_w + 1 != p->out_w) {
        return false;
    }
    *x = tt_numel4((uint64_t)p->c, (uint64_t)p->in_h, (uint64_t)p->in_w, 1);
    *y = tt_numel4((uint64_t)p->c, (uint64_t)p->out_h, (uint64_t)p->out_w, 1);
    return *x != UINT64_MAX && *y != UINT64_MAX;
}

bool tt_channels_ok(const tt_op_ctx *c, unsigned i, int32_t out_c)
{
    if (!tt_opnd_present(c, i)) {
        return true;
    }
    const tt_tensor *ch = tt_opnd_tensor(c, i);
    if (ch->arena_offset >= 0) {
        return false;
    }
    const int32_t *v = ch->data;
    for (uint32_t j = 0; j < ch->nbytes / 4u; j++) {
        if (v[j] < (j == 0 ? 0 : v[j - 1] + 1) || v[j] >= out_c) {
            return false;
        }
    }
    return true;
}

bool tt_shifts_ok(const tt_op_ctx *c, unsigned i)
{
    const tt_tensor *t = tt_opnd_tensor(c, i);
    if (t->arena_offset >= 0) { /* its bytes at load are not the plan's */
        return false;
    }
    const int32_t *v = t->data;
    for (uint32_t j = 0; j < t->nbytes / 4u; j++) {
        if (v[j] < -31 || v[j] > 30) {
            return false;
        }
    }
    return true;
}

bool tt_scales_ok(const tt_op_ctx *c, unsigned i)
{
    const tt_tensor *t = tt_opnd_tensor(c, i);
    if (t->arena_offset >= 0) { /* its bytes at load are not the plan's */
        return false;
    }
    const float *v = t->data;
    for (uint32_t j = 0; j < t->nbytes / 4u; j++) {
        if (!(v[j] > 0.0f && v[j] <= FLT_MAX)) { /* false for NaN */
            return false;
        }
    }
    return true;
}

tt_status tt_op_check_grad_outputs(const tt_op_ctx *c, unsigned x, unsigned dw, unsigned db,
                                   tt_error *err)
{
    const bool has_x = tt_opnd_present(c, x), has_dw = tt_opnd_present(c, dw);
    if (!(has_dw || tt_opnd_present(c, db)) || (has_dw && !has_x)) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT,
                       "op %u: a weight gradient needs its input, and "
                       "at least one of dw and db",
                       (unsigned)c->index);
    }
    return TT_OK;
}
