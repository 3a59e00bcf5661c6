#include "tt/tt_exec.h"

#include "tt/tt_kernels_f32.h"
#include "tt/tt_kernels_s8.h"
#include "tt/tt_ops.h"

/* Operand i's data (inputs, then outputs), or NULL for an absent optional operand. */
static void *operand(const tt_plan *p, const tt_op *op, unsigned i)
{
    int32_t t = tt_op_operand(p, op, i);
    return t < 0 ? NULL : p->tensors[t].data;
}

static float *f32(const tt_plan *p, const tt_op *op, unsigned i)
{
    return operand(p, op, i);
}

static int32_t *s32(const tt_plan *p, const tt_op *op, unsigned i)
{
    return operand(p, op, i);
}

static int8_t *s8(const tt_plan *p, const tt_op *op, unsigned i)
{
    return operand(p, op, i);
}

/* Attribute structs share the plan's attribute order (see host/tinyhost/ops.py). */
static tt_linear_params linear_params(const int32_t *a)
{
    return (tt_linear_params){a[0], a[1]};
}

static tt_conv2d_params conv_params(const int32_t *a)
{
    return (tt_conv2d_params){a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                              a[7], a[8], a[9], a[10], a[11], a[12]};
}

static tt_pool2d_params pool_params(const int32_t *a)
{
    return (tt_pool2d_params){a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]};
}

/* CONV2D_S8 / DEPTHWISE_CONV2D_S8: x w bias mult shift w_rows channels -> y mask scratch;
 * attrs: conv geometry, x_zero y_zero act_min act_max n_rows. */
static tt_status conv_s8(const tt_plan *p, const tt_op *op, const int32_t *a)
{
    const tt_conv2d_params cp = conv_params(a);
    const tt_s8_requant q = {a[13], a[14], a[15], a[16], s32(p, op, 3), s32(p, op, 4),
                             operand(p, op, 8)};
    const tt_row_subst sub = {s8(p, op, 5), s32(p, op, 6), a[17]};
    const tt_scratch scratch = {operand(p, op, 9),
                                (int32_t)p->tensors[tt_op_operand(p, op, 9)].nbytes};
    if (op->opcode == TT_OP_DEPTHWISE_CONV2D_S8) {
        return tt_depthwise_conv2d_s8(&scratch, &cp, &q, s8(p, op, 0), s8(p, op, 1), &sub,
                                      s32(p, op, 2), s8(p, op, 7));
    }
    return tt_conv2d_s8(&scratch, &cp, &q, s8(p, op, 0), s8(p, op, 1), &sub, s32(p, op, 2),
                        s8(p, op, 7));
}

/* PW_DW_CONV2D_S8: x pw_w pw_bias pw_mult pw_shift dw_w dw_bias dw_mult dw_shift -> y scratch;
 * attrs: the conv's geometry, the depthwise's, x_zero mid_zero mid_act_min mid_act_max y_zero
 * act_min act_max. */
static tt_status pw_dw_s8(const tt_plan *p, const tt_op *op, const int32_t *a)
{
    const tt_pw_dw_conv2d_params cp = {conv_params(a), conv_params(a + 13)};
    const tt_s8_requant pw_q = {a[26], a[27], a[28], a[29], s32(p, op, 3), s32(p, op, 4), NULL};
    const tt_s8_requant dw_q = {a[27], a[30], a[31], a[32], s32(p, op, 7), s32(p, op, 8), NULL};
    const tt_scratch scratch = {operand(p, op, 10),
                                (int32_t)p->tensors[tt_op_operand(p, op, 10)].nbytes};
    return tt_pw_dw_conv2d_s8(&scratch, &cp, &pw_q, s8(p, op, 1), s32(p, op, 2), &dw_q,
                              s8(p, op, 5), s32(p, op, 6), s8(p, op, 0), s8(p, op, 9));
}

/* CONV2D_S8_GRAD_WEIGHT_F32: dz x channels -> dw db; attrs: conv geometry, x_zero n_channels. */
static tt_status conv_s8_grad_weight(const tt_plan *p, const tt_op *op, const int32_t *a)
{
    const tt_conv2d_params cp = conv_params(a);
    const tt_channel_select sel = {s32(p, op, 2), a[14], 0};
    return tt_conv2d_s8_grad_weight_f32(&cp, sel.index != NULL ? &sel : NULL, f32(p, op, 0),
                                        s8(p, op, 1), a[13], f32(p, op, 3), f32(p, op, 4));
}

/* UPDATE_S8_F32: w dw qas master -> w master (in place); attrs rows row_size rule. Every row
 * of the state is updated (a sparse layer's state holds just its trained rows). */
static tt_status update_s8(const tt_plan *p, const tt_op *op, const int32_t *a, float lr)
{
    const tt_weight_shape shape = {a[0], a[1], 1};
    if (a[2] == 0) {
        return tt_update_s8_round_f32(&shape, NULL, s8(p, op, 0), f32(p, op, 1), lr,
                                      f32(p, op, 2));
    }
    return tt_update_s8_master_f32(&shape, NULL, f32(p, op, 3), s8(p, op, 0), f32(p, op, 1), lr,
                                   f32(p, op, 2));
}

static tt_status run_op(const tt_plan *p, const tt_op *op, float lr)
{
    const int32_t *a = p->attrs + op->attrs_at;
    switch ((tt_opcode)op->opcode) {
    case TT_OP_LINEAR_F32: {
        tt_linear_params lp = linear_params(a);
        return tt_linear_f32(&lp, f32(p, op, 0), f32(p, op, 1), f32(p, op, 2), f32(p, op, 3));
    }
    case TT_OP_LINEAR_GRAD_INPUT_F32: {
        tt_linear_params lp = linear_params(a);
        return tt_linear_grad_input_f32(&lp, f32(p, op, 0), f32(p, op, 1), f32(p, op, 2));
    }
    case TT_OP_LINEAR_GRAD_WEIGHT_F32: {
        tt_linear_params lp = linear_params(a);
        return tt_linear_grad_weight_f32(&lp, f32(p, op, 0), f32(p, op, 1), f32(p, op, 2),
                                         f32(p, op, 3));
    }
    case TT_OP_CONV2D_F32: {
        tt_conv2d_params cp = conv_params(a);
        return tt_conv2d_f32(&cp, f32(p, op, 0), f32(p, op, 1), f32(p, op, 2), f32(p, op, 3));
    }
    case TT_OP_CONV2D_GRAD_INPUT_F32: {
        tt_conv2d_params cp = conv_params(a);
        return tt_conv2d_grad_input_f32(&cp, f32(p, op, 0), f32(p, op, 1), f32(p, op, 2));
    }
    case TT_OP_CONV2D_GRAD_WEIGHT_F32: {
        tt_conv2d_params cp = conv_params(a);
        return tt_conv2d_grad_weight_f32(&cp, f32(p, op, 0), f32(p, op, 1), f32(p, op, 2),
                                         f32(p, op, 3));
    }
    case TT_OP_RELU_F32:
        return tt_relu_f32(a[0], f32(p, op, 0), f32(p, op, 1));
    case TT_OP_RELU_GRAD_F32:
        return tt_relu_grad_f32(a[0], f32(p, op, 0), f32(p, op, 1), f32(p, op, 2));
    case TT_OP_MAXPOOL2D_F32: {
        tt_pool2d_params pp = pool_params(a);
        return tt_maxpool2d_f32(&pp, f32(p, op, 0), f32(p, op, 1));
    }
    case TT_OP_MAXPOOL2D_GRAD_F32: {
        tt_pool2d_params pp = pool_params(a);
        return tt_maxpool2d_grad_f32(&pp, f32(p, op, 0), f32(p, op, 1), f32(p, op, 2));
    }
    case TT_OP_AVGPOOL2D_F32: {
        tt_pool2d_params pp = pool_params(a);
        return tt_avgpool2d_f32(&pp, f32(p, op, 0), f32(p, op, 1));
    }
    case TT_OP_AVGPOOL2D_GRAD_F32: {
        tt_pool2d_params pp = pool_params(a);
        return tt_avgpool2d_grad_f32(&pp, f32(p, op, 0), f32(p, op, 1));
    }
    case TT_OP_SOFTMAX_XENT_F32:
        return tt_softmax_xent_f32(a[0], f32(p, op, 0), *s32(p, op, 1), f32(p, op, 2),
                                   f32(p, op, 3), s32(p, op, 4));
    case TT_OP_SGD_F32:
        return tt_sgd_f32(a[0], f32(p, op, 0), f32(p, op, 1), lr);
    case TT_OP_DEQUANTIZE_GRAD_F32:
        return tt_dequantize_grad_f32(a[0], f32(p, op, 0), *f32(p, op, 1), f32(p, op, 2));
    case TT_OP_DEQUANTIZE_S8_F32:
        return tt_dequantize_s8_f32(a[0], s8(p, op, 0), *f32(p, op, 1), a[1],
                                    f32(p, op, 2));
    case TT_OP_ADD_F32:
        return tt_add_f32(a[0], f32(p, op, 0), f32(p, op, 1), f32(p, op, 2));
    case TT_OP_CONV2D_S8:
    case TT_OP_DEPTHWISE_CONV2D_S8:
        return conv_s8(p, op, a);
    case TT_OP_ADD_S8: {
        const tt_add_s8_params ap = {a[1], a[2], a[3], a[4], a[5],  a[6],           a[7],
                                     a[8], a[9], a[10], a[11], a[12], operand(p, op, 3)};
        return tt_add_s8(&ap, a[0], s8(p, op, 0), s8(p, op, 1), s8(p, op, 2));
    }
    case TT_OP_AVGPOOL2D_S8: {
        tt_pool2d_params pp = pool_params(a);
        return tt_avgpool2d_s8(&pp, a[11], a[12], a[13], s8(p, op, 0), s8(p, op, 1));
    }
    case TT_OP_REQUANT_GRAD_F32:
        return tt_requant_grad_f32(a[0], a[1], operand(p, op, 0), f32(p, op, 1), f32(p, op, 2),
                                   f32(p, op, 3));
    case TT_OP_CONV2D_S8_GRAD_INPUT_F32: {
        tt_conv2d_params cp = conv_params(a);
        const tt_row_subst sub = {s8(p, op, 2), s32(p, op, 3), a[13]};
        return tt_conv2d_s8_grad_input_f32(&cp, f32(p, op, 0), s8(p, op, 1), &sub, f32(p, op, 4));
    }
    case TT_OP_CONV2D_S8_GRAD_WEIGHT_F32:
        return conv_s8_grad_weight(p, op, a);
    case TT_OP_ADD_S8_GRAD_F32: {
        const float *sc = f32(p, op, 2); /* s1 s2 sy */
        return tt_add_s8_grad_f32(a[0], operand(p, op, 0), f32(p, op, 1), sc[0], sc[1], sc[2],
                                  f32(p, op, 3), f32(p, op, 4));
    }
    case TT_OP_UPDATE_S8_F32:
        return update_s8(p, op, a, lr);
    case TT_OP_PW_DW_CONV2D_S8:
        return pw_dw_s8(p, op, a);
    case TT_OP_UPDATE_S32_F32:
        return tt_update_s32_f32(a[0], s32(p, op, 0), a[1] == 1 ? f32(p, op, 3) : NULL,
                                 f32(p, op, 1), lr, f32(p, op, 2));
    }
    return TT_ERR_UNSUPPORTED_OP; /* unreachable: tt_plan_check rejects unknown opcodes */
}

tt_status tt_exec_ops(const tt_plan *plan, uint32_t first, uint32_t count, float lr, tt_error *err)
{
    if (plan == NULL || plan->ops == NULL) {
        return tt_fail(err, TT_ERR_NO_PLAN, "no plan is loaded");
    }
    if (first > plan->n_ops || count > plan->n_ops - first) {
        return tt_fail(err, TT_ERR_ARG, "op range out of bounds");
    }
    for (uint32_t k = first; k < first + count; k++) {
        tt_status st = run_op(plan, &plan->ops[k], lr);
        if (st != TT_OK) {
            return tt_fail(err, st, "op %lu (opcode %u) failed: %s", (unsigned long)k,
                           (unsigned)plan->ops[k].opcode, tt_status_name(st));
        }
    }
    return TT_OK;
}

tt_status tt_exec_train_step(const tt_plan *plan, int32_t label, float lr, tt_step_result *result,
                             tt_error *err)
{
    if (plan == NULL || plan->ops == NULL) {
        return tt_fail(err, TT_ERR_NO_PLAN, "no plan is loaded");
    }
    if (label < 0 || label >= plan->num_classes) {
        return tt_fail(err, TT_ERR_LABEL, "label %ld outside [0, %ld)", (long)label,
                       (long)plan->num_classes);
    }
    *(int32_t *)plan->tensors[plan->label].data = label;
    tt_status st = tt_exec_ops(plan, 0, plan->n_ops, lr, err);
    if (st == TT_OK) {
        result->loss = *(const float *)plan->tensors[plan->loss].data;
        result->pred = *(const int32_t *)plan->tensors[plan->pred].data;
    }
    return st;
}

tt_status tt_exec_infer(const tt_plan *plan, int32_t *pred, tt_error *err)
{
    tt_status st = tt_exec_ops(plan, 0, plan == NULL ? 0 : plan->n_forward, 0.0f, err);
    if (st != TT_OK) {
        return st;
    }
    const float *logits = plan->tensors[plan->logits].data;
    int32_t best = 0;
    for (int32_t i = 1; i < plan->num_classes; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    *pred = best;
    return TT_OK;
}
