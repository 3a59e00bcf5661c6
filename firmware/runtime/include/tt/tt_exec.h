/* The plan interpreter: a training step (forward, loss, backward, update) or inference. */
#ifndef TT_EXEC_H
#define TT_EXEC_H

#include "tt/tt_plan.h"

typedef struct {
    float loss;
    int32_t pred;
} tt_step_result;

/* Runs plan ops [first, first + count) with learning rate lr. */
tt_status tt_exec_ops(const tt_plan *plan, uint32_t first, uint32_t count, float lr,
                      tt_error *err);
/* The input tensor must already hold the sample. */
tt_status tt_exec_train_step(const tt_plan *plan, int32_t label, float lr, tt_step_result *result,
                             tt_error *err);
/* Forward ops only; pred is the first argmax of the logits. */
tt_status tt_exec_infer(const tt_plan *plan, int32_t *pred, tt_error *err);

#endif
