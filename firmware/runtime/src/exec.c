#include "tt/tt_exec.h"

#include "tt/tt_op.h"

/* Op k through its registration (src/op_table.c); tt_plan_check has accepted it. */
static tt_status run_op(const tt_plan *p, uint32_t k, float lr)
{
    const tt_op *op = &p->ops[k];
    const tt_op_registration *r = tt_op_find(op->opcode);
    if (r == NULL) {
        return TT_ERR_UNSUPPORTED_OP; /* unreachable: tt_plan_check rejects unknown opcodes */
    }
    const tt_op_ctx c = {p, op, p->attrs + op->attrs_at, k};
    return r->run(&c, lr);
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
        tt_status st = run_op(plan, k, lr);
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
