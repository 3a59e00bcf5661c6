#include "plan_check.h"

#include <string.h>

#include "tt/tt_op.h"

#define ANY_DTYPE 0xFFu

/* A binding must be an arena tensor of that dtype; a scalar one (dtype given) exactly 4 bytes,
 * since a step writes the label and reads the loss and prediction through it. */
static tt_status check_binding(const tt_plan *p, int32_t index, uint8_t dtype, const char *what,
                               tt_error *err)
{
    if (index < 0 || (uint32_t)index >= p->n_tensors || p->tensors[index].arena_offset < 0 ||
        (dtype != ANY_DTYPE && p->tensors[index].dtype != dtype) ||
        (dtype != ANY_DTYPE && strcmp(what, "logits") != 0 && p->tensors[index].nbytes != 4u)) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "plan binding '%s' is not a valid arena tensor",
                       what);
    }
    return TT_OK;
}

static bool attr_in_range(int32_t v, uint8_t range)
{
    switch ((tt_attr_range)range) {
    case TT_ATTR_POS: return v >= 1;
    case TT_ATTR_NONNEG: return v >= 0;
    case TT_ATTR_INT8: return v >= -128 && v <= 127;
    case TT_ATTR_RSHIFT: return v >= -31 && v <= 0;
    case TT_ATTR_LSHIFT: return v >= 0 && v <= 30;
    case TT_ATTR_RULE: return v == 0 || v == 1;
    }
    return false;
}

/* The registry's part (opcode, counts, attribute ranges), then the op's own check. */
static tt_status check_op(const tt_plan *p, uint32_t k, tt_error *err)
{
    const tt_op *op = &p->ops[k];
    const tt_op_registration *r = tt_op_find(op->opcode);
    if (r == NULL) {
        return tt_fail(err, TT_ERR_UNSUPPORTED_OP,
                       "op %u: opcode %u is not supported by "
                       "this firmware",
                       (unsigned)k, (unsigned)op->opcode);
    }
    if (op->n_inputs != r->n_in || op->n_outputs != r->n_out || op->n_attrs != r->n_attrs) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u (opcode %u): wrong operand count",
                       (unsigned)k, (unsigned)op->opcode);
    }
    const tt_op_ctx c = {p, op, p->attrs + op->attrs_at, k};
    for (unsigned i = 0; i < r->n_attrs; i++) {
        if (!attr_in_range(c.a[i], r->attr_ranges[i])) {
            return tt_op_impossible(&c, err);
        }
    }
    return r->check(&c, err);
}

tt_status tt_plan_check_tensor(const tt_plan *p, uint32_t i, tt_tensor *t, uint8_t *arena_base,
                               tt_error *err)
{
    bool in_arena = t->arena_offset >= 0;
    t->data = NULL;
    if (in_arena) {
        if ((uint64_t)t->arena_offset + t->nbytes > p->arena_size || t->arena_offset % 4 != 0) {
            return tt_fail(err, TT_ERR_PLAN_BOUNDS,
                           "tensor %u (%lu bytes at %ld) lies outside the %lu-byte arena",
                           (unsigned)i, (unsigned long)t->nbytes, (long)t->arena_offset,
                           (unsigned long)p->arena_size);
        }
        t->data = arena_base + t->arena_offset;
    }
    if (t->data_offset >= 0) {
        if ((uint64_t)t->data_offset + t->nbytes > p->blob_len ||
            ((uintptr_t)(p->blob + t->data_offset)) % 4u != 0) {
            return tt_fail(err, TT_ERR_PLAN_BOUNDS,
                           "tensor %u data lies outside the %lu-byte constant blob or is "
                           "misaligned",
                           (unsigned)i, (unsigned long)p->blob_len);
        }
        if (!in_arena) {
            t->data = (void *)(uintptr_t)(p->blob + t->data_offset); /* read-only */
        }
    } else if (!in_arena || t->kind == TT_KIND_PARAM_TRAINABLE) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "tensor %u has no storage", (unsigned)i);
    }
    /* Loading copies a trainable tensor's initial value from the blob into the arena. */
    if (t->kind == TT_KIND_PARAM_TRAINABLE && !in_arena) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "trainable tensor %u is not in the arena",
                       (unsigned)i);
    }
    return TT_OK;
}

tt_status tt_plan_check(const tt_plan *p, tt_error *err)
{
    tt_status st = TT_OK;
    if ((st = check_binding(p, p->input, ANY_DTYPE, "input", err)) ||
        (st = check_binding(p, p->label, TT_DTYPE_S32, "label", err)) ||
        (st = check_binding(p, p->logits, TT_DTYPE_F32, "logits", err)) ||
        (st = check_binding(p, p->loss, TT_DTYPE_F32, "loss", err)) ||
        (st = check_binding(p, p->pred, TT_DTYPE_S32, "pred", err))) {
        return st;
    }
    if (p->num_classes <= 0 ||
        (uint64_t)p->tensors[p->logits].nbytes != 4u * (uint64_t)p->num_classes) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "logits do not hold num_classes values");
    }
    if (p->n_forward == 0 || p->n_forward > p->n_ops) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "forward op count %lu out of range",
                       (unsigned long)p->n_forward);
    }
    for (uint32_t k = 0; k < p->n_ops; k++) {
        if ((st = check_op(p, k, err)) != TT_OK) {
            return st;
        }
    }
    return TT_OK;
}
