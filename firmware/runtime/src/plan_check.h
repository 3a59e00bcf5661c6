/* Internal: semantic checks of a decoded plan (operand sizes implied by attributes). */
#ifndef TT_PLAN_CHECK_H
#define TT_PLAN_CHECK_H

#include "tt/tt_plan.h"

/* Resolves tensor data pointers against arena_base and the blob, then checks bindings and every
 * op: arity, operand indices, dtypes, sizes implied by the attributes, writable outputs. */
tt_status tt_plan_check(tt_plan *plan, uint8_t *arena_base, tt_error *err);

#endif
