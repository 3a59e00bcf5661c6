#include "plan_check.h"

#include <float.h>
#include <string.h>

#include "tt/tt_kernels_s8.h"
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
    [TT_OP_CONV2D_S8] = {7, 3, 18},
    [TT_OP_DEPTHWISE_CONV2D_S8] = {7, 3, 18},
    [TT_OP_ADD_S8] = {2, 2, 13},
    [TT_OP_AVGPOOL2D_S8] = {1, 1, 14},
    [TT_OP_REQUANT_GRAD_F32] = {3, 1, 2},
    [TT_OP_CONV2D_S8_GRAD_INPUT_F32] = {4, 1, 14},
    [TT_OP_CONV2D_S8_GRAD_WEIGHT_F32] = {3, 2, 15},
    [TT_OP_ADD_S8_GRAD_F32] = {3, 2, 1},
    [TT_OP_UPDATE_S8_F32] = {4, 2, 3},
    [TT_OP_UPDATE_S32_F32] = {4, 2, 2},
    [TT_OP_PW_DW_CONV2D_S8] = {9, 2, 33},
};
#define N_OPCODES (sizeof ARITY / sizeof ARITY[0])

/* Expected element count of each operand (inputs then outputs); 0 = operand must be absent
 * (only optional operands may be -1: biases). */
#define MAX_OPERANDS 11 /* PW_DW_CONV2D_S8: 9 inputs, 2 outputs */

typedef struct {
    uint64_t numel[MAX_OPERANDS];
    bool optional[MAX_OPERANDS];
    uint8_t dtype[MAX_OPERANDS];
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

/* Element counts of a conv's input, output and weight (attrs: tt_conv2d_params order); false when
 * the geometry is impossible or a count exceeds int32. */
static bool conv_numel(const int32_t *a, uint64_t *x, uint64_t *y, uint64_t *w)
{
    /* in_c in_h in_w out_c out_h out_w k_h k_w stride_h stride_w pad_h pad_w groups */
    if (!positive(a, 10) || a[10] < 0 || a[11] < 0 || a[12] <= 0 || a[0] % a[12] != 0 ||
        a[3] % a[12] != 0 || (int64_t)a[1] + 2 * (int64_t)a[10] < a[6] ||
        (int64_t)a[2] + 2 * (int64_t)a[11] < a[7] ||
        ((int64_t)a[1] + 2 * (int64_t)a[10] - a[6]) / a[8] + 1 != a[4] ||
        ((int64_t)a[2] + 2 * (int64_t)a[11] - a[7]) / a[9] + 1 != a[5]) {
        return false;
    }
    *x = numel4((uint64_t)a[0], (uint64_t)a[1], (uint64_t)a[2], 1);
    *y = numel4((uint64_t)a[3], (uint64_t)a[4], (uint64_t)a[5], 1);
    *w = numel4((uint64_t)a[3], (uint64_t)(a[0] / a[12]), (uint64_t)a[6], (uint64_t)a[7]);
    return *x != UINT64_MAX && *y != UINT64_MAX && *w != UINT64_MAX;
}

/* Element counts of a pool's input and output (attrs: tt_pool2d_params order). */
static bool pool_numel(const int32_t *a, uint64_t *x, uint64_t *y)
{
    /* c in_h in_w out_h out_w k_h k_w stride_h stride_w pad_h pad_w */
    if (!positive(a, 9) || a[9] < 0 || a[10] < 0 || 2 * a[9] > a[5] || 2 * a[10] > a[6] ||
        ((int64_t)a[1] + 2 * (int64_t)a[9] - a[5]) / a[7] + 1 != a[3] ||
        ((int64_t)a[2] + 2 * (int64_t)a[10] - a[6]) / a[8] + 1 != a[4] ||
        (int64_t)a[1] + 2 * (int64_t)a[9] < a[5] || (int64_t)a[2] + 2 * (int64_t)a[10] < a[6]) {
        return false;
    }
    *x = numel4((uint64_t)a[0], (uint64_t)a[1], (uint64_t)a[2], 1);
    *y = numel4((uint64_t)a[0], (uint64_t)a[3], (uint64_t)a[4], 1);
    return *x != UINT64_MAX && *y != UINT64_MAX;
}

static bool in_s8(int32_t v)
{
    return v >= -128 && v <= 127;
}

static bool act_range_ok(int32_t lo, int32_t hi)
{
    return in_s8(lo) && in_s8(hi) && lo <= hi;
}

static uint64_t mask_bytes(uint64_t n)
{
    return (n + 7u) / 8u;
}

static tt_conv2d_params conv_params_of(const int32_t *a)
{
    return (tt_conv2d_params){a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                              a[7], a[8], a[9], a[10], a[11], a[12]};
}

/* Fills the expected operand sizes from the attributes; false when the geometry is impossible. */
static bool expected_operands(uint16_t opcode, const int32_t *a, operand_spec *s)
{
    for (unsigned i = 0; i < MAX_OPERANDS; i++) {
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
        uint64_t x, y, w;
        const uint64_t b = (uint64_t)a[3];
        if (!conv_numel(a, &x, &y, &w)) {
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
        uint64_t x, y;
        if (!pool_numel(a, &x, &y)) {
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
    case TT_OP_CONV2D_S8:
    case TT_OP_DEPTHWISE_CONV2D_S8: { /* x w bias mult shift w_rows channels -> y mask scratch */
        uint64_t x, y, w;
        const uint64_t out_c = (uint64_t)a[3];
        if (!conv_numel(a, &x, &y, &w) || !in_s8(a[13]) || !in_s8(a[14]) ||
            !act_range_ok(a[15], a[16]) || a[17] < 0 || a[17] > a[3]) {
            return false;
        }
        const tt_conv2d_params cp = conv_params_of(a);
        const int32_t scratch = opcode == TT_OP_CONV2D_S8 ? tt_conv2d_s8_get_buffer_size(&cp)
                                                         : tt_depthwise_conv2d_s8_get_buffer_size(&cp);
        if (scratch <= 0) { /* (depthwise: groups must equal in_c) */
            return false;
        }
        s->numel[0] = x; s->numel[1] = w; s->numel[2] = out_c; s->numel[3] = out_c;
        s->numel[4] = out_c; s->numel[5] = (uint64_t)a[17] * (w / out_c);
        s->numel[6] = (uint64_t)a[17]; s->numel[7] = y; s->numel[8] = mask_bytes(y);
        s->numel[9] = (uint64_t)scratch;
        s->dtype[0] = s->dtype[1] = s->dtype[5] = s->dtype[7] = s->dtype[8] = s->dtype[9] =
            TT_DTYPE_S8;
        s->dtype[2] = s->dtype[3] = s->dtype[4] = s->dtype[6] = TT_DTYPE_S32;
        s->optional[2] = s->optional[5] = s->optional[6] = s->optional[8] = true;
        return true;
    }
    case TT_OP_ADD_S8: /* x1 x2 -> y mask */
        if (!positive(a, 1) || !in_s8(a[1]) || !in_s8(a[2]) || !in_s8(a[3]) || a[4] < 0 ||
            a[4] > 30 || a[5] < 0 || a[7] < 0 || a[9] < 0 || a[6] < -31 || a[6] > 0 ||
            a[8] < -31 || a[8] > 0 || a[10] < -31 || a[10] > 0 || !act_range_ok(a[11], a[12])) {
            return false;
        }
        s->numel[0] = s->numel[1] = s->numel[2] = (uint64_t)a[0];
        s->numel[3] = mask_bytes((uint64_t)a[0]);
        s->dtype[0] = s->dtype[1] = s->dtype[2] = s->dtype[3] = TT_DTYPE_S8;
        s->optional[3] = true;
        return true;
    case TT_OP_AVGPOOL2D_S8: { /* x -> y; attrs pool, x_zero act_min act_max */
        uint64_t x, y;
        if (!pool_numel(a, &x, &y) || !in_s8(a[11]) || !act_range_ok(a[12], a[13])) {
            return false;
        }
        s->numel[0] = x; s->numel[1] = y;
        s->dtype[0] = s->dtype[1] = TT_DTYPE_S8;
        return true;
    }
    case TT_OP_REQUANT_GRAD_F32: { /* mask dy eff_scale -> dz; attrs channels plane */
        if (!positive(a, 2)) {
            return false;
        }
        const uint64_t n = numel4((uint64_t)a[0], (uint64_t)a[1], 1, 1);
        if (n == UINT64_MAX) {
            return false;
        }
        s->numel[0] = mask_bytes(n); s->numel[1] = n; s->numel[2] = (uint64_t)a[0];
        s->numel[3] = n;
        s->dtype[0] = TT_DTYPE_S8;
        return true;
    }
    case TT_OP_CONV2D_S8_GRAD_INPUT_F32: { /* dz w w_rows channels -> dx; attrs conv, n_rows */
        uint64_t x, y, w;
        if (!conv_numel(a, &x, &y, &w) || a[13] < 0 || a[13] > a[3]) {
            return false;
        }
        s->numel[0] = y; s->numel[1] = w; s->numel[2] = (uint64_t)a[13] * (w / (uint64_t)a[3]);
        s->numel[3] = (uint64_t)a[13]; s->numel[4] = x;
        s->dtype[1] = s->dtype[2] = TT_DTYPE_S8;
        s->dtype[3] = TT_DTYPE_S32;
        s->optional[2] = s->optional[3] = true;
        return true;
    }
    case TT_OP_CONV2D_S8_GRAD_WEIGHT_F32: { /* dz x channels -> dw db; attrs conv, x_zero n_ch */
        uint64_t x, y, w;
        if (!conv_numel(a, &x, &y, &w) || !in_s8(a[13]) || a[14] < 0 || a[14] > a[3]) {
            return false;
        }
        s->numel[0] = y; s->numel[1] = x; s->numel[2] = (uint64_t)a[14];
        s->numel[3] = (uint64_t)a[14] * (w / (uint64_t)a[3]); s->numel[4] = (uint64_t)a[3];
        s->dtype[1] = TT_DTYPE_S8;
        s->dtype[2] = TT_DTYPE_S32;
        s->optional[1] = s->optional[2] = s->optional[3] = s->optional[4] = true;
        return true;
    }
    case TT_OP_ADD_S8_GRAD_F32: /* mask dy scales -> dx1 dx2 */
        if (!positive(a, 1)) {
            return false;
        }
        s->numel[0] = mask_bytes((uint64_t)a[0]); s->numel[1] = (uint64_t)a[0]; s->numel[2] = 3;
        s->numel[3] = s->numel[4] = (uint64_t)a[0];
        s->dtype[0] = TT_DTYPE_S8;
        s->optional[3] = s->optional[4] = true;
        return true;
    case TT_OP_UPDATE_S8_F32: { /* w dw qas master -> w master; attrs rows row_size rule */
        if (!positive(a, 2) || (a[2] != 0 && a[2] != 1)) {
            return false;
        }
        const uint64_t n = numel4((uint64_t)a[0], (uint64_t)a[1], 1, 1);
        if (n == UINT64_MAX) {
            return false;
        }
        s->numel[0] = s->numel[1] = s->numel[3] = s->numel[4] = s->numel[5] = n;
        s->numel[2] = (uint64_t)a[0];
        s->dtype[0] = s->dtype[4] = TT_DTYPE_S8;
        s->optional[3] = s->optional[5] = true;
        return true;
    }
    case TT_OP_PW_DW_CONV2D_S8: { /* x, the conv's w bias mult shift, the depthwise's -> y scratch */
        uint64_t x, mid, pw_w, mid2, y, dw_w;
        if (!conv_numel(a, &x, &mid, &pw_w) || !conv_numel(a + 13, &mid2, &y, &dw_w) ||
            !in_s8(a[26]) || !in_s8(a[27]) || !act_range_ok(a[28], a[29]) || !in_s8(a[30]) ||
            !act_range_ok(a[31], a[32])) {
            return false;
        }
        const tt_pw_dw_conv2d_params cp = {conv_params_of(a), conv_params_of(a + 13)};
        const int32_t scratch = tt_pw_dw_conv2d_s8_get_buffer_size(&cp); /* checks the chain */
        if (scratch <= 0) {
            return false;
        }
        const uint64_t mid_c = (uint64_t)a[3], out_c = (uint64_t)a[16];
        s->numel[0] = x; s->numel[1] = pw_w; s->numel[2] = s->numel[3] = s->numel[4] = mid_c;
        s->numel[5] = dw_w; s->numel[6] = s->numel[7] = s->numel[8] = out_c;
        s->numel[9] = y; s->numel[10] = (uint64_t)scratch;
        s->dtype[0] = s->dtype[1] = s->dtype[5] = s->dtype[9] = s->dtype[10] = TT_DTYPE_S8;
        s->dtype[2] = s->dtype[3] = s->dtype[4] = s->dtype[6] = s->dtype[7] = s->dtype[8] =
            TT_DTYPE_S32;
        s->optional[2] = s->optional[6] = true;
        return true;
    }
    case TT_OP_UPDATE_S32_F32: /* b db qas master -> b master; attrs size rule */
        if (!positive(a, 1) || (a[1] != 0 && a[1] != 1)) {
            return false;
        }
        s->numel[0] = s->numel[1] = s->numel[2] = s->numel[3] = s->numel[4] = s->numel[5] =
            (uint64_t)a[0];
        s->dtype[0] = s->dtype[4] = TT_DTYPE_S32;
        s->optional[3] = s->optional[5] = true;
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

static bool present(const tt_plan *p, const tt_op *op, unsigned i)
{
    return tt_op_operand(p, op, i) >= 0;
}

/* Channel indices (of a row substitution or a weight-gradient selection): a constant of strictly
 * increasing values in [0, out_c), so kernels can walk them in step with the output channels. */
static bool channels_ok(const tt_plan *p, const tt_op *op, unsigned i, int32_t out_c)
{
    int32_t t = tt_op_operand(p, op, i);
    if (t < 0) {
        return true;
    }
    const tt_tensor *ch = &p->tensors[t];
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

/* A constant of int32 requantization shifts, each in [-31, 30] (tt_s8_requant). */
static bool shifts_ok(const tt_plan *p, const tt_op *op, unsigned i)
{
    const tt_tensor *t = &p->tensors[tt_op_operand(p, op, i)];
    const int32_t *v = t->data;
    for (uint32_t j = 0; j < t->nbytes / 4u; j++) {
        if (v[j] < -31 || v[j] > 30) {
            return false;
        }
    }
    return true;
}

/* Scales (a dequantize's, an add gradient's three) as the kernels accept them: positive, finite. */
static bool scales_ok(const tt_plan *p, const tt_op *op, unsigned i)
{
    const tt_tensor *t = &p->tensors[tt_op_operand(p, op, i)];
    const float *v = t->data;
    for (uint32_t j = 0; j < t->nbytes / 4u; j++) {
        if (!(v[j] > 0.0f && v[j] <= FLT_MAX)) { /* false for NaN */
            return false;
        }
    }
    return true;
}

/* Which optional operands the int8 ops need together (the sizes are checked already), and the
 * constants whose values the kernels would refuse at run time; NULL when consistent, else what
 * is wrong. */
static const char *int8_operands_problem(const tt_plan *p, const tt_op *op)
{
    const int32_t *a = p->attrs + op->attrs_at;
    switch ((tt_opcode)op->opcode) {
    case TT_OP_CONV2D_S8:
    case TT_OP_DEPTHWISE_CONV2D_S8:
    case TT_OP_CONV2D_S8_GRAD_INPUT_F32: {
        const bool fwd = op->opcode != TT_OP_CONV2D_S8_GRAD_INPUT_F32;
        const unsigned rows = fwd ? 5 : 2;
        const int32_t n_rows = fwd ? a[17] : a[13];
        if (present(p, op, rows) != (n_rows > 0) || present(p, op, rows + 1) != (n_rows > 0)) {
            return "substituted weight rows, their channels and n_rows disagree";
        }
        if (fwd && !shifts_ok(p, op, 4)) {
            return "a requantization shift is outside [-31, 30]";
        }
        return channels_ok(p, op, rows + 1, a[3]) ? NULL
                                                  : "channel indices are not constant, increasing "
                                                    "and below out_c";
    }
    case TT_OP_CONV2D_S8_GRAD_WEIGHT_F32: { /* dz x channels -> dw db */
        const bool dw = present(p, op, 3);
        if (dw != present(p, op, 1) || dw != (a[14] > 0) || (!dw && present(p, op, 2)) ||
            (dw && !present(p, op, 2) && a[14] != a[3]) || (!dw && !present(p, op, 4))) {
            return "a weight gradient needs its input and n_channels rows (all rows without "
                   "channels); with neither, db";
        }
        return channels_ok(p, op, 2, a[3]) ? NULL
                                           : "channel indices are not constant, increasing and "
                                             "below out_c";
    }
    case TT_OP_PW_DW_CONV2D_S8: /* fused only where frozen: every parameter is a constant */
        for (unsigned i = 1; i <= 8; i++) {
            const int32_t t = tt_op_operand(p, op, i);
            if (t >= 0 && p->tensors[t].arena_offset >= 0) {
                return "a fused conv's weights, biases and multipliers must be constants";
            }
        }
        return shifts_ok(p, op, 4) && shifts_ok(p, op, 8) ? NULL
                                                           : "a requantization shift is outside "
                                                             "[-31, 30]";
    case TT_OP_ADD_S8_GRAD_F32:
        if (!scales_ok(p, op, 2)) {
            return "the add's scales are not positive and finite";
        }
        return present(p, op, 3) || present(p, op, 4) ? NULL : "the add gradient has no output";
    case TT_OP_DEQUANTIZE_S8_F32:
    case TT_OP_DEQUANTIZE_GRAD_F32:
        return scales_ok(p, op, 1) ? NULL : "the scale is not positive and finite";
    case TT_OP_UPDATE_S8_F32:
    case TT_OP_UPDATE_S32_F32: { /* state grad qas master -> state master */
        const int32_t rule = op->opcode == TT_OP_UPDATE_S8_F32 ? a[2] : a[1];
        if (tt_op_operand(p, op, 4) != tt_op_operand(p, op, 0) ||
            tt_op_operand(p, op, 5) != tt_op_operand(p, op, 3)) {
            return "an update must write its state in place";
        }
        return present(p, op, 3) == (rule == 1) ? NULL
                                                : "an f32 master is needed exactly for rule 1";
    }
    default:
        return NULL;
    }
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
        const char *problem = int8_operands_problem(p, op);
        if (problem != NULL) {
            return tt_fail(err, TT_ERR_PLAN_FORMAT, "op %u (opcode %u): %s", (unsigned)k,
                           (unsigned)op->opcode, problem);
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
