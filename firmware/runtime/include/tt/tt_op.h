/*
 * How an op joins the runtime (as TFLite Micro's TFLMRegistration): each op's kernel file defines
 *
 *   tt_status tt_op_<name>_check(const tt_op_ctx *c, tt_error *err);  at plan load
 *   tt_status tt_op_<name>_run(const tt_op_ctx *c, float lr);          every step
 *
 * and the generated registration table (src/op_table.c, from host/tinyhost/ops.py) points at them.
 * Before check runs, plan_check.c has verified the opcode, the operand and attribute counts and
 * every attribute's range (the registry's AttrRange). check then computes each operand's element
 * count from the attributes (tt_op_impossible when they cannot go together), hands them to
 * tt_op_check_operands (presence, dtype, size, outputs in the arena) and checks what only the
 * operand values can tell (tt_op_refuse). run may assume everything check accepted.
 * Operands and attributes are addressed by the generated names of tt_ops.h:
 * tt_opnd_s8(c, TT_OPND_CONV2D_S8_X), c->a[TT_ATTR_CONV2D_S8_X_ZERO].
 */
#ifndef TT_OP_H
#define TT_OP_H

#include <stdbool.h>
#include <stdint.h>

#include "tt/tt_error.h"
#include "tt/tt_kernels_f32.h"
#include "tt/tt_kernels_s8.h"
#include "tt/tt_ops.h"
#include "tt/tt_plan.h"

typedef struct {
    const tt_plan *plan;
    const tt_op *op;
    const int32_t *a; /* the op's attributes */
    uint32_t index;   /* the op's position in the plan, for messages */
} tt_op_ctx;

/* The value ranges of attributes (host/tinyhost/ops.py AttrRange). */
typedef enum {
    TT_ATTR_POS = 0,    /* 1 .. INT32_MAX */
    TT_ATTR_NONNEG = 1, /* 0 .. INT32_MAX */
    TT_ATTR_INT8 = 2,   /* -128 .. 127 */
    TT_ATTR_RSHIFT = 3, /* -31 .. 0 */
    TT_ATTR_LSHIFT = 4, /* 0 .. 30 */
    TT_ATTR_RULE = 5,   /* 0 .. 1 */
} tt_attr_range;

typedef tt_status (*tt_op_check_fn)(const tt_op_ctx *c, tt_error *err);
typedef tt_status (*tt_op_run_fn)(const tt_op_ctx *c, float lr);

typedef struct {
    const char *name;
    uint8_t n_in, n_out, n_attrs;
    const uint8_t *dtypes;      /* per operand (inputs, then outputs): tt_dtype */
    uint32_t optional;          /* bit i: operand i may be absent (-1) */
    const uint8_t *attr_ranges; /* per attribute: tt_attr_range */
    tt_op_check_fn check;
    tt_op_run_fn run;
} tt_op_registration;

/* The registration of an opcode, or NULL when this firmware does not run it. */
const tt_op_registration *tt_op_find(uint32_t opcode);

/* --- operand access ---------------------------------------------------------------------------- */

static inline int32_t tt_opnd_index(const tt_op_ctx *c, unsigned i)
{
    return tt_op_operand(c->plan, c->op, i);
}

static inline bool tt_opnd_present(const tt_op_ctx *c, unsigned i)
{
    return tt_opnd_index(c, i) >= 0;
}

static inline const tt_tensor *tt_opnd_tensor(const tt_op_ctx *c, unsigned i)
{
    return &c->plan->tensors[tt_opnd_index(c, i)];
}

/* Operand i's data, or NULL for an absent optional operand. */
static inline void *tt_opnd(const tt_op_ctx *c, unsigned i)
{
    const int32_t t = tt_opnd_index(c, i);
    return t < 0 ? NULL : c->plan->tensors[t].data;
}

static inline float *tt_opnd_f32(const tt_op_ctx *c, unsigned i)
{
    return (float *)tt_opnd(c, i);
}

/* An update op's learning rate: the step's lr times its optional lr_scale operand (f32[1], the
 * parameter group's scale relative to the head, issue 18), rounded to float once; the step's lr
 * without one. The reference executor computes the same (refexec/kernels_s8.py op_lr). */
static inline float tt_opnd_lr(const tt_op_ctx *c, unsigned lr_scale, float lr)
{
    const float *s = tt_opnd_f32(c, lr_scale);
    return s != NULL ? lr * s[0] : lr;
}

static inline int8_t *tt_opnd_s8(const tt_op_ctx *c, unsigned i)
{
    return (int8_t *)tt_opnd(c, i);
}

static inline int32_t *tt_opnd_s32(const tt_op_ctx *c, unsigned i)
{
    return (int32_t *)tt_opnd(c, i);
}

/* Operand i as kernel scratch: its data and size. */
static inline tt_scratch tt_opnd_scratch(const tt_op_ctx *c, unsigned i)
{
    return (tt_scratch){tt_opnd(c, i), (int32_t)tt_opnd_tensor(c, i)->nbytes};
}

/* --- for check functions (src/op_check.c) ------------------------------------------------------ */

/* Element count of an operand whose size check_operands must not check: an absent optional one. */
#define TT_NUMEL_ABSENT 0u

/* Every operand against numel (inputs, then outputs): present unless optional, a valid tensor
 * index, the registered dtype, numel elements; outputs in the arena. */
tt_status tt_op_check_operands(const tt_op_ctx *c, const uint64_t *numel, tt_error *err);
/* A weight-gradient op's optional operands: a bias-only layer has neither its input x nor dw;
 * at least one of dw and db, and dw needs x (TT_ERR_PLAN_FORMAT otherwise). */
tt_status tt_op_check_grad_outputs(const tt_op_ctx *c, unsigned x, unsigned dw, unsigned db,
                                   tt_error *err);
/* "op K (opcode N): impossible attributes" (TT_ERR_PLAN_FORMAT). */
tt_status tt_op_impossible(const tt_op_ctx *c, tt_error *err);
/* "op K (opcode N): <problem>" (TT_ERR_PLAN_FORMAT). */
tt_status tt_op_refuse(const tt_op_ctx *c, const char *problem, tt_error *err);

/* a * b * c * d, or UINT64_MAX when a partial product exceeds INT32_MAX (kernels index with
 * int32_t). */
uint64_t tt_numel4(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
/* Bytes of a 1-bit mask of n elements. */
static inline uint64_t tt_mask_bytes(uint64_t n)
{
    return (n + 7u) / 8u;
}
/* Element counts of a conv's input, output and weight; false when the geometry is impossible or
 * a count exceeds int32. */
bool tt_conv_numel(const tt_conv2d_params *p, uint64_t *x, uint64_t *y, uint64_t *w);
/* Element counts of a pool's input and output; false when the geometry is impossible. */
bool tt_pool_numel(const tt_pool2d_params *p, uint64_t *x, uint64_t *y);
/* Channel indices operand i (absent is fine): a constant of strictly increasing values in
 * [0, out_c), so kernels walk them in step with the output channels. */
bool tt_channels_ok(const tt_op_ctx *c, unsigned i, int32_t out_c);
/* A constant of int32 requantization shifts, each in [-31, 30] (tt_s8_requant). */
bool tt_shifts_ok(const tt_op_ctx *c, unsigned i);
/* A constant of scales as the kernels accept them: positive, finite. */
bool tt_scales_ok(const tt_op_ctx *c, unsigned i);

#endif
