/* The gradient of CONCAT_F32: dy split back into da and db (either may be absent: an input that
 * needs no gradient). */
#include <stddef.h>
#include <string.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_concat_grad_f32(int32_t size_a, int32_t size_b, const float *dy, float *da, float *db)
{
    if (size_a <= 0 || size_b <= 0 || dy == NULL || (da == NULL && db == NULL)) {
        return TT_ERR_ARG;
    }
    if (da != NULL) {
        memcpy(da, dy, (size_t)size_a * sizeof(float));
    }
    if (db != NULL) {
        memcpy(db, dy + size_a, (size_t)size_b * sizeof(float));
    }
    return TT_OK;
}

/* --- the CONCAT_GRAD_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_concat_grad_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t na = (uint64_t)c->a[TT_ATTR_CONCAT_GRAD_F32_SIZE_A];
    const uint64_t nb = (uint64_t)c->a[TT_ATTR_CONCAT_GRAD_F32_SIZE_B];
    if (na + nb > (uint64_t)INT32_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_CONCAT_GRAD_F32_DY] = na + nb,
                              [TT_OPND_CONCAT_GRAD_F32_DA] = na,
                              [TT_OPND_CONCAT_GRAD_F32_DB] = nb};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    return tt_opnd_present(c, TT_OPND_CONCAT_GRAD_F32_DA) ||
                   tt_opnd_present(c, TT_OPND_CONCAT_GRAD_F32_DB)
               ? TT_OK
               : tt_op_refuse(c, "the concat gradient has no output", err);
}

tt_status tt_op_concat_grad_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_concat_grad_f32(c->a[TT_ATTR_CONCAT_GRAD_F32_SIZE_A],
                              c->a[TT_ATTR_CONCAT_GRAD_F32_SIZE_B],
                              tt_opnd_f32(c, TT_OPND_CONCAT_GRAD_F32_DY),
                              tt_opnd_f32(c, TT_OPND_CONCAT_GRAD_F32_DA),
                              tt_opnd_f32(c, TT_OPND_CONCAT_GRAD_F32_DB));
}
