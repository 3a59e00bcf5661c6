#include "plan_check.h"

#include <string.h>

#include "tt/tt_ops.h"

/* Arity of each opcode: inputs, outputs, attributes (must match host/tinyhost/ops.py). */
typedef struct {
    uint8_t n_in, n_out, n_attrs;
} op_arity;

static const op_arity ARITY[] = {
    [TT_OP_LINEAR_F32] = {3, 1, 2},
    [TT_OP_LINEAR_GRAD_INPUT_F32] = {2, 1, 2},
    [TT_OP_LINEAR_GRAD_WEIGHT_F32] = {2, 2, 2},
    [TT_OP_CONV2D_F32] = {3, 1, 13},
    [TT_OP_CONV2D_GRAD_INPUT_F32] = {2, 1, 13},
    [TT_OP_CONV2D_GRAD_WEIGHT_F32] = {2, 2, 13},
    [TT_OP_RELU_F32] = {1, 1, 1},
    [TT_OP_RELU_GRAD_F32] = {2, 1, 1},
    [TT_OP_MAXPOOL2D_F32] = {1, 1, 11},
    [TT_OP_MAXPOOL2D_GRAD_F32] = {2, 1, 11},
    [TT_OP_AVGPOOL2D_F32] = {1, 1, 11},
    [TT_OP_AVGPOOL2D_GRAD_F32] = {1, 1, 11},
    [TT_OP_SOFTMAX_XENT_F32] = {2, 3, 1},
    [TT_OP_SGD_F32] = {2, 1, 1},
    [TT_OP_DEQUANTIZE_GRAD_F32] = {2, 1, 1},
    [TT_OP_ADD_F32] = {2, 1, 1},
    [TT_OP_DEQUANTIZE_S8_F32] = {2, 1, 2},
};
#define N_OPCODES (sizeof ARITY / sizeof ARITY[0])

/* Expected element count of each operand (inputs then outputs); 0 = operand must be absent
 * (only optional operands may be -1: biases). */
typedef struct {
    uint64_t numel[8];
    bool optional[8];
    uint8_t dtype[8];
} operand_spec;

static bool positive(const int32_t *a, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (a[i] <= 0) {
            return false;
        }
    }
    return true;
}

/* a * b * c * d, or UINT64_MAX when a partial product exceeds INT32_MAX (the kernels index with
 * int32_t). Every partial product stays below 2^62, so nothing wraps around. */
static uint64_t numel4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    const uint64_t f[4] = {a, b, c, d};
    uint64_t n = 1;
    for (unsigned i = 0; i < 4; i++) {
        if (f[i] > INT32_MAX || (n *= f[i]) > INT32_MAX) {
            return UINT64_MAX;
        }
    }
    return n;
}

/* Fills the expected operand sizes from the attributes; false when the geometry is impossible. */
static bool expected_operands(uint16_t opcode, const int32_t *a, operand_spec *s)
{
    for (unsigned i = 0; i < 8; i++) {
        s->optional[i] = false;
        s->dtype[i] = TT_DTYPE_F32;
    }
    switch (opcode) {
    case TT_OP_LINEAR_F32:
    case TT_OP_LINEAR_GRAD_INPUT_F32:
    case TT_OP_LINEAR_GRAD_WEIGHT_F32: {
        if (!positive(a, 2)) {
            return false;
        }
        uint64_t in = (uint64_t)a[0], out = (uint64_t)a[1];
        if (numel4(in, out, 1, 1) == UINT64_MAX) {
            return false;
        }
        if (opcode == TT_OP_LINEAR_F32) { /* x w b -> y */
            s->numel[0] = in; s->numel[1] = out * in; s->numel[2] = out; s->numel[3] = out;
            s->optional[2] = true;
        } else if (opcode == TT_OP_LINEAR_GRAD_INPUT_F32) { /* dy w -> dx */
            s->numel[0] = out; s->numel[1] = out * in; s->numel[2] = in;
        } else { /* dy x -> dw db */
            s->numel[0] = out; s->numel[1] = in; s->numel[2] = out * in; s->numel[3] = out;
            s->optional[1] = s->optional[2] = s->optional[3] = true; /* see grad_weight_ok */
        }
        return true;
    }
    case TT_OP_CONV2D_F32:
    case TT_OP_CONV2D_GRAD_INPUT_F32:
    case TT_OP_CONV2D_GRAD_WEIGHT_F32: {
        /* in_c in_h in_w out_c out_h out_w k_h k_w stride_h stride_w pad_h pad_w groups */
        if (!positive(a, 10) || a[10] < 0 || a[11] < 0 || a[12] <= 0 || a[0] % a[12] != 0 ||
            a[3] % a[12] != 0 || (int64_t)a[1] + 2 * (int64_t)a[10] < a[6] ||
            (int64_t)a[2] + 2 * (int64_t)a[11] < a[7] ||
            ((int64_t)a[1] + 2 * (int64_t)a[10] - a[6]) / a[8] + 1 != a[4] ||
            ((int64_t)a[2] + 2 * (int64_t)a[11] - a[7]) / a[9] + 1 != a[5]) {
            return false;
        }
        uint64_t x = numel4((uint64_t)a[0], (uint64_t)a[1], (uint64_t)a[2], 1);
        uint64_t y = numel4((uint64_t)a[3], (uint64_t)a[4], (uint64_t)a[5], 1);
        uint64_t w = numel4((uint64_t)a[3], (uint64_t)(a[0] / a[12]), (uint64_t)a[6], (uint64_t)a[7]);
        uint64_t b = (uint64_t)a[3];
        if (x == UINT64_MAX || y == UINT64_MAX || w == UINT64_MAX) {
            return false;
        }
        if (opcode == TT_OP_CONV2D_F32) {
            s->numel[0] = x; s->numel[1] = w; s->numel[2] = b; s->numel[3] = y;
            s->optional[2] = true;
        } else if (opcode == TT_OP_CONV2D_GRAD_INPUT_F32) {
            s->numel[0] = y; s->numel[1] = w; s->numel[2] = x;
        } else {
            s->numel[0] = y; s->numel[1] = x; s->numel[2] = w; s->numel[3] = b;
            s->optional[1] = s->optional[2] = s->optional[3] = true; /* see grad_weight_ok */
        }
        return true;
    }
    case TT_OP_RELU_F32:
    case TT_OP_RELU_GRAD_F32:
        if (!positive(a, 1)) {
            return false;
        }
        s->numel[0] = s->numel[1] = s->numel[2] = (uint64_t)a[0];
        return true;
    case TT_OP_SGD_F32:
        if (!positive(a, 1)) {
            return false;
        }
        s->numel[0] = s->numel[1] = s->numel[2] = (uint64_t)a[0];
        return true;
    case TT_OP_DEQUANTIZE_GRAD_F32: /* dy scale -> dx */
        if (!positive(a, 1)) {
            return false;
        }
        s->numel[0] = s->numel[2] = (uint64_t)a[0];
        s->numel[1] = 1;
        return true;
    case TT_OP_DEQUANTIZE_S8_F32: /* x (int8) scale -> y; attrs size zero */
        if (!positive(a, 1) || a[1] < -128 || a[1] > 127) {
            return false;
        }
        s->numel[0] = s->numel[2] = (uint64_t)a[0];
        s->numel[1] = 1;
        s->dtype[0] = TT_DTYPE_S8;
        return true;
    case TT_OP_ADD_F32: /* a b -> y */
        if (!positive(a, 1)) {
            return false;
        }
        s->numel[0] = s->numel[1] = s->numel[2] = (uint64_t)a[0];
        return true;
    case TT_OP_MAXPOOL2D_F32:
    case TT_OP_MAXPOOL2D_GRAD_F32:
    case TT_OP_AVGPOOL2D_F32:
    case TT_OP_AVGPOOL2D_GRAD_F32: {
        /* c in_h in_w out_h out_w k_h k_w stride_h stride_w pad_h pad_w */
        if (!positive(a, 9) || a[9] < 0 || a[10] < 0 || 2 * a[9] > a[5] || 2 * a[10] > a[6] ||
            ((int64_t)a[1] + 2 * (int64_t)a[9] - a[5]) / a[7] + 1 != a[3] ||
            ((int64_t)a[2] + 2 * (int64_t)a[10] - a[6]) / a[8] + 1 != a[4] ||
            (int64_t)a[1] + 2 * (int64_t)a[9] < a[5] || (int64_t)a[2] + 2 * (int64_t)a[10] < a[6]) {
            return false;
        }
        uint64_t x = numel4((uint64_t)a[0], (uint64_t)a[1], (uint64_t)a[2], 1);
        uint64_t y = numel4((uint64_t)a[0], (uint64_t)a[3], (uint64_t)a[4], 1);
        if (x == UINT64_MAX || y == UINT64_MAX) {
            return false;
        }
        if (opcode == TT_OP_MAXPOOL2D_F32 || opcode == TT_OP_AVGPOOL2D_F32) {
            s->numel[0] = x; s->numel[1] = y;
        } else if (opcode == TT_OP_MAXPOOL2D_GRAD_F32) { /* x dy -> dx */
            s->numel[0] = x; s->numel[1] = y; s->numel[2] = x;
        } else { /* dy -> dx */
            s->numel[0] = y; s->numel[1] = x;
        }
        return true;
    }
    case TT_OP_SOFTMAX_XENT_F32: /* logits label -> loss dlogits pred */
        if (!positive(a, 1)) {
            return false;
        }
        s->numel[0] = (uint64_t)a[0]; s->numel[1] = 1; s->numel[2] = 1;
        s->numel[3] = (uint64_t)a[0]; s->numel[4] = 1;
        s->dtype[1] = TT_DTYPE_S32;
        s->dtype[4] = TT_DTYPE_S32;
        return true;
    default:
        return false;
    }
}

/* Weight-gradient ops (dy, x -> dw, db): a bias-only layer has neither x nor dw, so both are
 * optional, but dw needs x and at least one output must exist. */
static bool grad_weight_ok(const tt_plan *p, const tt_op *op)
{
    if (op->opcode != TT_OP_LINEAR_GRAD_WEIGHT_F32 && op->opcode != TT_OP_CONV2D_GRAD_WEIGHT_F32) {
        return true;
    }
    int32_t x = tt_op_operand(p, op, 1), dw = tt_op_operand(p, op, 2), db = tt_op_operand(p, op, 3);
    return (dw >= 0 || db >= 0) && (dw < 0 || x >= 0);
}

#define ANY_DTYPE 0xFFu

/* A binding must be an arena tensor of that dtype; a scalar one (dtype given) exactly 4 bytes,
 * since a step writes the label and reads the loss and prediction through it. */
static tt_status check_binding(const tt_plan *p, int32_t index, uint8_t dtype, const char *what,
                               tt_error *err)
{
    if (index < 0 || (uint32_t)index >= p->n_tensors || p->tensors[index].arena_offset < 0 ||
        (dtype != ANY_DTYPE && p->tensors[index].dtype != dtype) ||
        (dtype != ANY_DTYPE && strcmp(what, "logits") != 0 && p->tensors[index].nbytes != 4u)) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "plan binding '%s' is not a valid arena tensor", what);
    }
    return TT_OK;
}

tt_status tt_plan_check(tt_plan *p, uint8_t *arena_base, tt_error *err)
{
    for (uint32_t i = 0; i < p->n_tensors; i++) {
        tt_tensor *t = &p->tensors[i];
        bool in_arena = t->arena_offset >= 0;
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
                               "misaligned", (unsigned)i, (unsigned long)p->blob_len);
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
    }
    tt_status st = TT_OK;
    if ((st = check_binding(p, p->input, ANY_DTYPE, "input", err)) ||
        (st = check_binding(p, p->label, TT_DTYPE_S32, "label", err)) ||
        (st = check_binding(p, p->logits, TT_DTYPE_F32, "logits", err)) ||
        (st = check_binding(p, p->loss, TT_DTYPE_F32, "loss", err)) ||
        (st = check_binding(p, p->pred, TT_DTYPE_S32, "pred", err))) {
        return st;
    }
    if (p->num_classes <= 0 || p->tensors[p->logits].nbytes != 4u * (uint32_t)p->num_classes) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "logits do not hold num_classes values");
    }
    if (p->n_forward == 0 || p->n_forward > p->n_ops) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "forward op count %lu out of range",
                       (unsigned long)p->n_forward);
    }
    for (uint32_t k = 0; k < p->n_ops; k++) {
        const tt_op *op = &p->ops[k];
        if (op->opcode >= N_OPCODES || ARITY[op->opcode].n_attrs == 0) {
            return tt_fail(err, TT_ERR_UNSUPPORTED_OP, "op %u: opcode %u is not supported by "
                           "this firmware", (unsigned)k, (unsigned)op->opcode);
        }
        const op_arity *ar = &ARITY[op->opcode];
        if (op->n_inputs != ar->n_in || op->n_outputs != ar->n_out || op->n_attrs != ar->n_attrs) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u (opcode %u): wrong operand count",
                           (unsigned)k, (unsigned)op->opcode);
        }
        operand_spec spec;
        if (!expected_operands(op->opcode, p->attrs + op->attrs_at, &spec)) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u (opcode %u): impossible attributes",
                           (unsigned)k, (unsigned)op->opcode);
        }
        for (unsigned i = 0; i < (unsigned)(ar->n_in + ar->n_out); i++) {
            int32_t t = tt_op_operand(p, op, i);
            if (t < 0 && spec.optional[i]) {
                continue;
            }
            if (t < 0 || (uint32_t)t >= p->n_tensors) {
                return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u: operand %u names tensor %ld",
                               (unsigned)k, i, (long)t);
            }
            const tt_tensor *tt = &p->tensors[t];
            const uint64_t esize = spec.dtype[i] == TT_DTYPE_S8 ? 1u : 4u;
            if (tt->dtype != spec.dtype[i] || (uint64_t)tt->nbytes != spec.numel[i] * esize) {
                return tt_fail(err, TT_ERR_PLAN_BOUNDS, "op %u (opcode %u): operand %u has %lu "
                               "bytes, its attributes need %lu", (unsigned)k, (unsigned)op->opcode,
                               i, (unsigned long)tt->nbytes, (unsigned long)(spec.numel[i] * esize));
            }
            if (i >= ar->n_in && tt->arena_offset < 0) {
                return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u writes constant tensor %ld",
                               (unsigned)k, (long)t);
            }
        }
        if (!grad_weight_ok(p, op)) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u: a weight gradient needs its input, and "
                           "at least one of dw and db", (unsigned)k);
        }
        if (op->opcode == TT_OP_SGD_F32 && tt_op_operand(p, op, 0) != tt_op_operand(p, op, 2)) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u: SGD must update in place", (unsigned)k);
        }
        if (op->opcode == TT_OP_SGD_F32 && p->tensors[tt_op_operand(p, op, 0)].arena_offset < 0) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u: SGD on a constant", (unsigned)k);
        }
    }
    return TT_OK;
}
