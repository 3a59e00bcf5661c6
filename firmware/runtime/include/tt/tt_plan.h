/*
 * A decoded training plan (docs/plan-format.md). The plan bytes stay where they are (flash on a
 * device): frozen weights are read in place from its constant blob. Its tables (a record per
 * tensor and per op, the operand and attribute arrays) are decoded once, every offset and size
 * checked, and then read in place too: a device writes them into its plan slot right after the
 * plan (tt_plan_load_slot), so they cost no RAM; tt_plan_load puts them in the arena's tail
 * instead (tests, tools, and a device restoring tables another firmware build wrote).
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

/* The tables' records: native layout (the device writes and reads them itself; they never cross
 * the link), zero padding, so the same plan on the same firmware gives the same bytes. */
typedef struct {
    void *data; /* resolved: arena + arena_offset, or the blob (read-only) + data_offset */
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
    /* The tables: in the plan slot after the plan (tt_plan_load_slot) or in the arena's tail
     * (tt_plan_load); read-only once loaded. */
    const tt_tensor *tensors;
    const tt_op *ops;
    const int32_t *operands;
    const int32_t *attrs;
    const uint8_t *blob;
    size_t blob_len;
    size_t tables_size;  /* bytes of the tables above, wherever they are */
    size_t tables_bytes; /* of those, bytes in RAM (the arena tail): 0 when they are in the slot */
    uint8_t hash[TT_SHA256_SIZE];
} tt_plan;

/* Checks a whole plan file without touching the arena: version, hash, structure, and that every
 * tensor and op fits (the arena must hold arena_size + the tables, as tt_plan_load places them).
 * On success fills counts and tables_size. */
tt_status tt_plan_validate(const uint8_t *file, size_t len, size_t arena_capacity, tt_plan *plan,
                           tt_error *err);
/* Validates, then decodes the tables into the arena tail, leaving the first keep_head bytes of
 * the arena untouched (the parameters of a plan already loaded, until this one proves valid).
 * With init_params, copies trainable parameters' initial values into the arena; without, the
 * parameters already there are kept (re-attaching a plan). The file must stay valid and
 * unchanged while the plan is in use. */
tt_status tt_plan_load(const uint8_t *file, size_t len, tt_arena *arena, size_t keep_head,
                       bool init_params, tt_plan *plan, tt_error *err);

/* A device's plan slot: the plan file at its start, and room after it for the plan's tables,
 * which start at the plan's size rounded up to TT_PLAN_TABLES_ALIGN (a multiple of any flash
 * write block the ports support, so a flash store starts a fresh block there). */
#define TT_PLAN_TABLES_ALIGN 64u

typedef struct {
    uint8_t *base;   /* the slot, readable in place (16-byte aligned) */
    size_t capacity; /* its bytes */
    /* write NULL: the slot is RAM, written with memcpy. Otherwise (flash), writing the tables
     * calls erase (if set) for [offset, offset + size) once (the bytes before offset, the plan,
     * must stay), then write with consecutive pieces of that range, each staged in stage. */
    int (*erase)(void *ctx, size_t offset, size_t size);
    int (*write)(void *ctx, size_t offset, const uint8_t *data, size_t len);
    void *ctx;
    uint8_t *stage; /* stage_size bytes (> 0) the pieces are staged in */
    size_t stage_size;
} tt_plan_slot;

/* Bytes of the slot a plan of len bytes with tables_size bytes of tables occupies. */
static inline uint64_t tt_plan_slot_bytes(size_t len, size_t tables_size)
{
    return ((uint64_t)len + TT_PLAN_TABLES_ALIGN - 1u) / TT_PLAN_TABLES_ALIGN *
               TT_PLAN_TABLES_ALIGN +
           tables_size;
}

/* The plan of len bytes at the start of slot, with its tables in the slot after it (no RAM:
 * tables_bytes is 0). Validates as tt_plan_load (the arena must hold arena_size; the slot the
 * plan and its tables, else TT_ERR_TOO_LARGE), then with write_tables decodes the tables into
 * the slot (TT_ERR_STORAGE when the store fails), without it compares what the slot holds with
 * what decoding gives (TT_ERR_STORAGE when they differ: tables written by another firmware
 * build, whose arena lies elsewhere, or never written). Then every check of tt_plan_load, on the
 * tables in place; nothing in the arena is written before they all pass (so a failed candidate
 * leaves a running plan whole). init_params as for tt_plan_load. */
tt_status tt_plan_load_slot(const tt_plan_slot *slot, size_t len, tt_arena *arena,
                            bool write_tables, bool init_params, tt_plan *plan, tt_error *err);

/* Copies every trainable parameter's initial value from the blob into the arena. */
void tt_plan_init_params(const tt_plan *plan);

static inline int32_t tt_op_operand(const tt_plan *plan, const tt_op *op, unsigned i)
{
    return plan->operands[op->operands_at + i];
}

#endif
