/* Internal: semantic checks of a decoded plan (operand sizes implied by attributes). */
#ifndef TT_PLAN_CHECK_H
#define TT_PLAN_CHECK_H

#include "tt/tt_plan.h"

/* Tensor `index`'s record before it is stored: its arena range within the plan's arena (4-byte
 * aligned), its initial data within the blob (4-byte aligned), some storage, trainable ones in the
 * arena; then resolves t->data against arena_base and the blob. Needs plan->blob and arena_size. */
tt_status tt_plan_check_tensor(const tt_plan *plan, uint32_t index, tt_tensor *t,
                               uint8_t *arena_base, tt_error *err);
/* With every tensor checked and the tables in place: bindings and every op (arity, operand
 * indices, dtypes, sizes implied by the attributes, writable outputs). */
tt_status tt_plan_check(const tt_plan *plan, tt_error *err);

#endif
