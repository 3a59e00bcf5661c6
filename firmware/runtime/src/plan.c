/*
 * Plan decoding with zcbor. The body is walked twice: once to count (so the tables can be sized
 * exactly and the arena check can name both sizes), once to fill the tables. Then every op's
 * operands are checked against the sizes its attributes imply, so no kernel can read or write
 * outside its tensors.
 */
#include "tt/tt_plan.h"

#include <string.h>
#include <zcbor_decode.h>

#include "plan_check.h"
#include "tt/tt_version.h"

#define MAX_DEPTH 6 /* body > tensors > tensor > shape, with room to spare */

typedef struct {
    tt_plan *plan;
    bool fill; /* second pass: store into the tables */
    tt_error *err;
} walk;

static tt_status malformed(tt_error *err, const char *what)
{
    return tt_fail(err, TT_ERR_PLAN_FORMAT, "malformed plan: %s", what);
}

static bool decode_i32_list(zcbor_state_t *s, int32_t *out, uint32_t *count, bool fill)
{
    if (!zcbor_list_start_decode(s)) {
        return false;
    }
    while (!zcbor_array_at_end(s)) {
        int32_t v;
        if (!zcbor_int32_decode(s, &v)) {
            return false;
        }
        if (fill) {
            out[*count] = v;
        }
        (*count)++;
    }
    return zcbor_list_end_decode(s);
}

static tt_status decode_tensor(zcbor_state_t *s, walk *w)
{
    tt_plan *p = w->plan;
    uint32_t dtype, kind, nbytes;
    int32_t arena_offset, data_offset;
    struct zcbor_string name;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &dtype) &&
          zcbor_uint32_decode(s, &kind) && zcbor_uint32_decode(s, &nbytes) &&
          zcbor_int32_decode(s, &arena_offset) && zcbor_int32_decode(s, &data_offset) &&
          zcbor_list_start_decode(s))) {
        return malformed(w->err, "tensor entry");
    }
    uint64_t numel = 1;
    while (!zcbor_array_at_end(s)) {
        uint32_t dim;
        if (!zcbor_uint32_decode(s, &dim)) {
            return malformed(w->err, "tensor shape");
        }
        numel *= dim;
        if (numel > UINT32_MAX) {
            return malformed(w->err, "tensor too large");
        }
    }
    if (!(zcbor_list_end_decode(s) && zcbor_tstr_decode(s, &name) && zcbor_list_end_decode(s))) {
        return malformed(w->err, "tensor entry");
    }
    uint32_t index = p->n_tensors++;
    if (dtype > TT_DTYPE_S32 || kind > TT_KIND_OUTPUT) {
        return tt_fail(w->err, TT_ERR_PLAN_FORMAT, "tensor %u: unknown dtype %u or kind %u",
                       (unsigned)index, (unsigned)dtype, (unsigned)kind);
    }
    static const uint32_t itemsize[] = {4, 1, 4};
    if (numel * itemsize[dtype] != nbytes) {
        return tt_fail(w->err, TT_ERR_PLAN_FORMAT, "tensor %u: %u bytes do not match its shape",
                       (unsigned)index, (unsigned)nbytes);
    }
    if (w->fill) {
        tt_tensor *t = &p->tensors[index];
        t->data = NULL;
        t->nbytes = nbytes;
        t->arena_offset = arena_offset;
        t->data_offset = data_offset;
        t->dtype = (uint8_t)dtype;
        t->kind = (uint8_t)kind;
    }
    return TT_OK;
}

/* Decodes ops: [opcode, [inputs], [outputs], [attrs]]. Inputs and outputs are stored back to
 * back in plan->operands. */
static tt_status decode_op_entry(zcbor_state_t *s, walk *w)
{
    tt_plan *p = w->plan;
    uint32_t opcode, n_in = 0, n_out = 0, n_attrs = 0;
    uint32_t operands_at = p->n_operands, attrs_at = p->n_attrs;
    int32_t *operands = w->fill ? p->operands + operands_at : NULL;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &opcode) &&
          decode_i32_list(s, operands, &n_in, w->fill))) {
        return malformed(w->err, "op entry");
    }
    n_out = n_in;
    if (!decode_i32_list(s, operands, &n_out, w->fill)) {
        return malformed(w->err, "op outputs");
    }
    n_out -= n_in;
    if (!(decode_i32_list(s, w->fill ? p->attrs + attrs_at : NULL, &n_attrs, w->fill) &&
          zcbor_list_end_decode(s))) {
        return malformed(w->err, "op attributes");
    }
    uint32_t index = p->n_ops++;
    if (n_in > 255 || n_out > 255 || n_attrs > 255) {
        return tt_fail(w->err, TT_ERR_PLAN_FORMAT, "op %u: too many operands", (unsigned)index);
    }
    p->n_operands += n_in + n_out;
    p->n_attrs += n_attrs;
    if (w->fill) {
        tt_op *op = &p->ops[index];
        op->opcode = (uint16_t)(opcode > UINT16_MAX ? UINT16_MAX : opcode);
        op->n_inputs = (uint8_t)n_in;
        op->n_outputs = (uint8_t)n_out;
        op->n_attrs = (uint8_t)n_attrs;
        op->operands_at = operands_at;
        op->attrs_at = attrs_at;
    }
    return TT_OK;
}

/* Skips one data item (the meta map). zcbor_any_skip recurses once per nesting level, so a body
 * of deeply nested arrays would exhaust a device's stack; here containers are entered with the
 * state's backups, so nesting deeper than MAX_DEPTH in all is refused instead. */
static bool skip_item(zcbor_state_t *s)
{
    while (s->payload < s->payload_end && ZCBOR_MAJOR_TYPE(*s->payload) == ZCBOR_MAJOR_TYPE_TAG) {
        uint32_t tag;
        if (!zcbor_tag_decode(s, &tag)) {
            return false;
        }
    }
    if (s->payload >= s->payload_end) {
        return false;
    }
    zcbor_major_type_t major = ZCBOR_MAJOR_TYPE(*s->payload);
    if (major != ZCBOR_MAJOR_TYPE_LIST && major != ZCBOR_MAJOR_TYPE_MAP) {
        return zcbor_any_skip(s, NULL); /* does not recurse for a non-container */
    }
    bool map = major == ZCBOR_MAJOR_TYPE_MAP;
    if (!(map ? zcbor_map_start_decode(s) : zcbor_list_start_decode(s))) {
        return false; /* also when nested too deep: no backup left */
    }
    while (!zcbor_array_at_end(s)) {
        if (!skip_item(s)) {
            return false;
        }
    }
    return map ? zcbor_map_end_decode(s) : zcbor_list_end_decode(s);
}

static tt_status walk_body(const struct zcbor_string *body, walk *w)
{
    tt_plan *p = w->plan;
    ZCBOR_STATE_D(s, MAX_DEPTH, body->value, body->len, 1, 0);
    struct zcbor_string pad, blob;
    double lr;
    p->n_tensors = p->n_ops = p->n_operands = p->n_attrs = 0;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &p->arena_size) &&
          zcbor_uint32_decode(s, &p->n_forward) && zcbor_list_start_decode(s) &&
          zcbor_int32_decode(s, &p->input) && zcbor_int32_decode(s, &p->label) &&
          zcbor_int32_decode(s, &p->logits) && zcbor_int32_decode(s, &p->loss) &&
          zcbor_int32_decode(s, &p->pred) && zcbor_list_end_decode(s) &&
          zcbor_int32_decode(s, &p->num_classes) && zcbor_float_decode(s, &lr))) {
        return malformed(w->err, "header");
    }
    p->default_lr = (float)lr;
    if (!zcbor_list_start_decode(s)) {
        return malformed(w->err, "tensor table");
    }
    while (!zcbor_array_at_end(s)) {
        tt_status st = decode_tensor(s, w);
        if (st != TT_OK) {
            return st;
        }
    }
    if (!(zcbor_list_end_decode(s) && zcbor_list_start_decode(s))) {
        return malformed(w->err, "op list");
    }
    while (!zcbor_array_at_end(s)) {
        tt_status st = decode_op_entry(s, w);
        if (st != TT_OK) {
            return st;
        }
    }
    if (!(zcbor_list_end_decode(s) && skip_item(s) && zcbor_bstr_decode(s, &pad) &&
          zcbor_bstr_decode(s, &blob) && zcbor_list_end_decode(s))) {
        return malformed(w->err, "trailer (meta, blob)");
    }
    p->blob = blob.value;
    p->blob_len = blob.len;
    return TT_OK;
}

static size_t tables_size(const tt_plan *p)
{
    return ((p->n_tensors * sizeof(tt_tensor) + 7u) & ~(size_t)7u) +
           ((p->n_ops * sizeof(tt_op) + 7u) & ~(size_t)7u) +
           ((p->n_operands * sizeof(int32_t) + 7u) & ~(size_t)7u) +
           ((p->n_attrs * sizeof(int32_t) + 7u) & ~(size_t)7u);
}

/* Outer structure: [version, body, sha256(body)]. */
static tt_status open_file(const uint8_t *file, size_t len, struct zcbor_string *body,
                           uint8_t hash[TT_SHA256_SIZE], tt_error *err)
{
    ZCBOR_STATE_D(s, 2, file, len, 1, 0);
    uint32_t version;
    struct zcbor_string digest;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &version))) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "not a tinytrain plan (corrupt or truncated)");
    }
    if (version != TT_PLAN_FORMAT_VERSION) {
        return tt_fail(err, TT_ERR_PLAN_VERSION,
                       "plan format version %u is not supported: this firmware reads version %u",
                       (unsigned)version, (unsigned)TT_PLAN_FORMAT_VERSION);
    }
    if (!(zcbor_bstr_decode(s, body) && zcbor_bstr_decode(s, &digest) &&
          digest.len == TT_SHA256_SIZE && zcbor_list_end_decode(s))) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "plan is truncated or corrupt");
    }
    if (s->payload != file + len) {
        return tt_fail(err, TT_ERR_PLAN_FORMAT, "plan has %lu bytes of trailing data: corrupt",
                       (unsigned long)(file + len - s->payload));
    }
    tt_sha256(body->value, body->len, hash);
    if (memcmp(hash, digest.value, TT_SHA256_SIZE) != 0) {
        return tt_fail(err, TT_ERR_PLAN_HASH, "plan content hash does not match: corrupt plan");
    }
    return TT_OK;
}

tt_status tt_plan_validate(const uint8_t *file, size_t len, size_t arena_capacity, tt_plan *plan,
                           tt_error *err)
{
    struct zcbor_string body;
    if (file == NULL || plan == NULL) {
        return tt_fail(err, TT_ERR_ARG, "no plan");
    }
    memset(plan, 0, sizeof *plan);
    tt_status st = open_file(file, len, &body, plan->hash, err);
    if (st != TT_OK) {
        return st;
    }
    walk w = {plan, false, err};
    st = walk_body(&body, &w);
    if (st != TT_OK) {
        return st;
    }
    plan->tables_bytes = tables_size(plan);
    if ((uint64_t)plan->arena_size + plan->tables_bytes > arena_capacity) {
        return tt_fail(err, TT_ERR_PLAN_ARENA,
                       "plan needs an arena of %lu bytes (+%lu for its tables), device has %lu",
                       (unsigned long)plan->arena_size, (unsigned long)plan->tables_bytes,
                       (unsigned long)arena_capacity);
    }
    return TT_OK;
}

tt_status tt_plan_load(const uint8_t *file, size_t len, tt_arena *arena, size_t keep_head,
                       bool init_params, tt_plan *plan, tt_error *err)
{
    tt_status st = tt_plan_validate(file, len, arena->capacity, plan, err);
    if (st != TT_OK) {
        return st;
    }
    size_t head = plan->arena_size > keep_head ? plan->arena_size : keep_head;
    if (head + plan->tables_bytes > arena->capacity) {
        return tt_fail(err, TT_ERR_PLAN_ARENA,
                       "checking this plan would overwrite the loaded plan's parameters "
                       "(%lu + %lu > %lu bytes)",
                       (unsigned long)head, (unsigned long)plan->tables_bytes,
                       (unsigned long)arena->capacity);
    }
    tt_arena_reset(arena);
    plan->tensors = tt_arena_alloc_tail(arena, plan->n_tensors * sizeof(tt_tensor), head);
    plan->ops = tt_arena_alloc_tail(arena, plan->n_ops * sizeof(tt_op), head);
    plan->operands = tt_arena_alloc_tail(arena, plan->n_operands * sizeof(int32_t), head);
    plan->attrs = tt_arena_alloc_tail(arena, plan->n_attrs * sizeof(int32_t), head);
    if (plan->tensors == NULL || plan->ops == NULL || plan->operands == NULL || plan->attrs == NULL) {
        return tt_fail(err, TT_ERR_INTERNAL, "plan tables do not fit after validation");
    }
    struct zcbor_string body;
    uint8_t hash[TT_SHA256_SIZE];
    st = open_file(file, len, &body, hash, err);
    walk w = {plan, true, err};
    if (st == TT_OK) {
        st = walk_body(&body, &w);
    }
    if (st == TT_OK) {
        st = tt_plan_check(plan, arena->base, err);
    }
    if (st != TT_OK) {
        return st;
    }
    if (!init_params) {
        return TT_OK;
    }
    /* Only now touch the head: trainable parameters start from the plan's values. */
    for (uint32_t i = 0; i < plan->n_tensors; i++) {
        tt_tensor *t = &plan->tensors[i];
        if (t->kind == TT_KIND_PARAM_TRAINABLE) {
            memcpy(t->data, plan->blob + t->data_offset, t->nbytes);
        }
    }
    return TT_OK;
}
