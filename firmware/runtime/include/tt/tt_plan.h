/*
 * A decoded training plan (docs/plan-format.md). The plan bytes stay where they are (flash on a
 * device): frozen weights are read in place from its constant blob. The tables decoded from it
 * live in the arena's tail; every offset and size is checked before anything runs.
 */
#ifndef TT_PLAN_H
#define TT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tt/tt_arena.h"
#include "tt/tt_error.h"
#include "tt/tt_sha256.h"

typedef enum { TT_DTYPE_F32 = 0, TT_DTYPE_S8 = 1, TT_DTYPE_S32 = 2 } tt_dtype;

typedef enum {
    TT_KIND_INPUT = 0,
    TT_KIND_LABEL = 1,
    TT_KIND_ACTIVATION = 2,
    TT_KIND_GRADIENT = 3,
    TT_KIND_PARAM_TRAINABLE = 4,
    TT_KIND_PARAM_FROZEN = 5,
    TT_KIND_OUTPUT = 6,
} tt_tensor_kind;

typedef struct {
    void *data;      /* resolved: arena + arena_offset, or the blob (read-only) + data_offset */
    uint32_t nbytes;
    int32_t arena_offset;
    int32_t data_offset;
    uint8_t dtype;
    uint8_t kind;
} tt_tensor;

typedef struct {
    uint16_t opcode;
    uint8_t n_inputs, n_outputs, n_attrs;
    uint32_t operands_at; /* inputs then outputs, in plan->operands */
    uint32_t attrs_at;    /* in plan->attrs */
} tt_op;

typedef struct {
    uint32_t arena_size; /* bytes the plan's tensors need at the head of the arena */
    uint32_t n_forward;
    int32_t input, label, logits, loss, pred;
    int32_t num_classes;
    float default_lr;
    uint32_t n_tensors, n_ops, n_operands, n_attrs;
    tt_tensor *tensors;
    tt_op *ops;
    int32_t *operands;
    int32_t *attrs;
    const uint8_t *blob;
    size_t blob_len;
    size_t tables_bytes; /* arena tail used by the tables above */
    uint8_t hash[TT_SHA256_SIZE];
} tt_plan;

/* Checks a whole plan file without touching the arena: version, hash, structure, and that every
 * tensor and op fits (the arena must hold arena_size + the tables). On success fills counts. */
tt_status tt_plan_validate(const uint8_t *file, size_t len, size_t arena_capacity, tt_plan *plan,
                           tt_error *err);
/* Validates, then decodes the tables into the arena tail, leaving the first keep_head bytes of
 * the arena untouched (the parameters of a plan already loaded, until this one proves valid).
 * With init_params, copies trainable parameters' initial values into the arena; without, the
 * parameters already there are kept (re-attaching a plan). The file must stay valid and
 * unchanged while the plan is in use. */
tt_status tt_plan_load(const uint8_t *file, size_t len, tt_arena *arena, size_t keep_head,
                       bool init_params, tt_plan *plan, tt_error *err);

static inline int32_t tt_op_operand(const tt_plan *plan, const tt_op *op, unsigned i)
{
    return plan->operands[op->operands_at + i];
}

#endif
