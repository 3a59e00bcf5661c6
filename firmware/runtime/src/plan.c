/*
 * Plan decoding with zcbor. The body is walked once to count (so the tables can be sized exactly
 * and the size checks can name them), then once per region of the tables (tensor and op records,
 * operands, attributes), so the tables come out as one sequential stream: into the arena's tail,
 * into a RAM plan slot, through a flash store's writes, or compared with what a slot already
 * holds. Then every op's operands are checked against the sizes its attributes imply, on the
 * tables in place, so no kernel can read or write outside its tensors.
 */
#include "tt/tt_plan.h"

#include <string.h>
#include <zcbor_decode.h>

#include "plan_check.h"
#include "tt/tt_version.h"

#define MAX_DEPTH 6 /* body > tensors > tensor > shape, with room to spare */

/* Where the tables go, as one stream of bytes. */
typedef enum {
    SINK_RAM,    /* memcpy to dest (the arena tail, a RAM slot) */
    SINK_STORE,  /* through the slot's write hook, staged */
    SINK_VERIFY, /* compare with what dest holds */
} sink_kind;

typedef struct {
    sink_kind kind;
    uint8_t *dest;            /* where the tables are read in place */
    size_t at;                /* bytes emitted so far */
    const tt_plan_slot *slot; /* SINK_STORE */
    size_t slot_offset;       /* of dest in the slot */
    size_t staged;            /* bytes waiting in slot->stage */
    int store_rc;             /* the failing write's return value */
    bool mismatch;            /* SINK_VERIFY: some byte differs */
} sink;

typedef enum {
    PASS_COUNT,    /* counts, no output */
    PASS_RECORDS,  /* tensor records, then op records */
    PASS_OPERANDS, /* every op's operands, in op order */
    PASS_ATTRS,    /* every op's attributes, in op order */
} pass;

typedef struct {
    tt_plan *plan;
    pass pass;
    sink *out;           /* NULL in PASS_COUNT */
    uint8_t *arena_base; /* tensor records resolve their data against it */
    tt_error *err;
} walk;

static bool sink_flush(sink *o)
{
    if (o->kind != SINK_STORE || o->staged == 0) {
        return true;
    }
    int rc = o->slot->write(o->slot->ctx, o->slot_offset + o->at - o->staged, o->slot->stage,
                            o->staged);
    o->staged = 0;
    if (rc != 0) {
        o->store_rc = rc;
        return false;
    }
    return true;
}

static bool emit(sink *o, const void *bytes, size_t n)
{
    const uint8_t *b = bytes;
    switch (o->kind) {
    case SINK_RAM:
        memcpy(o->dest + o->at, b, n);
        o->at += n;
        return true;
    case SINK_VERIFY:
        if (memcmp(o->dest + o->at, b, n) != 0) {
            o->mismatch = true;
        }
        o->at += n;
        return true;
    case SINK_STORE:
        while (n > 0) {
            size_t k = o->slot->stage_size - o->staged;
            k = k < n ? k : n;
            memcpy(o->slot->stage + o->staged, b, k);
            o->staged += k;
            o->at += k;
            b += k;
            n -= k;
            if (o->staged == o->slot->stage_size && !sink_flush(o)) {
                return false;
            }
        }
        return true;
    }
    return false;
}

/* Each region of the tables starts 8-byte aligned. */
static size_t region_size(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static bool emit_pad(sink *o)
{
    static const uint8_t zero[8];
    return emit(o, zero, region_size(o->at) - o->at);
}

static tt_status store_failed(walk *w)
{
    return tt_fail(w->err, TT_ERR_STORAGE, "plan store: writing the plan's tables failed (%d)",
                   w->out->store_rc);
}

static tt_status malformed(tt_error *err, const char *what)
{
    return tt_fail(err, TT_ERR_PLAN_FORMAT, "malformed plan: %s", what);
}

/* A list of int32 (counted into *count); with out, each value is emitted. A failing emit sets
 * *stored false. */
static bool decode_i32_list(zcbor_state_t *s, sink *out, uint32_t *count, bool *stored)
{
    if (!zcbor_list_start_decode(s)) {
        return false;
    }
    while (!zcbor_array_at_end(s)) {
        int32_t v;
        if (!zcbor_int32_decode(s, &v)) {
            return false;
        }
        if (out != NULL && *stored) {
            *stored = emit(out, &v, sizeof v);
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
    if (w->pass == PASS_RECORDS) {
        tt_tensor t;
        memset(&t, 0, sizeof t); /* padding too: the same plan gives the same bytes */
        t.nbytes = nbytes;
        t.arena_offset = arena_offset;
        t.data_offset = data_offset;
        t.dtype = (uint8_t)dtype;
        t.kind = (uint8_t)kind;
        tt_status st = tt_plan_check_tensor(p, index, &t, w->arena_base, w->err);
        if (st != TT_OK) {
            return st;
        }
        if (!emit(w->out, &t, sizeof t)) {
            return store_failed(w);
        }
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
    sink *operands = w->pass == PASS_OPERANDS ? w->out : NULL;
    bool stored = true;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &opcode) &&
          decode_i32_list(s, operands, &n_in, &stored))) {
        return malformed(w->err, "op entry");
    }
    n_out = n_in;
    if (!decode_i32_list(s, operands, &n_out, &stored)) {
        return malformed(w->err, "op outputs");
    }
    n_out -= n_in;
    if (!(decode_i32_list(s, w->pass == PASS_ATTRS ? w->out : NULL, &n_attrs, &stored) &&
          zcbor_list_end_decode(s))) {
        return malformed(w->err, "op attributes");
    }
    if (!stored) {
        return store_failed(w);
    }
    uint32_t index = p->n_ops++;
    if (n_in > 255 || n_out > 255 || n_attrs > 255) {
        return tt_fail(w->err, TT_ERR_PLAN_FORMAT, "op %u: too many operands", (unsigned)index);
    }
    p->n_operands += n_in + n_out;
    p->n_attrs += n_attrs;
    if (w->pass == PASS_RECORDS) {
        tt_op op;
        memset(&op, 0, sizeof op);
        op.opcode = (uint16_t)(opcode > UINT16_MAX ? UINT16_MAX : opcode);
        op.n_inputs = (uint8_t)n_in;
        op.n_outputs = (uint8_t)n_out;
        op.n_attrs = (uint8_t)n_attrs;
        op.operands_at = operands_at;
        op.attrs_at = attrs_at;
        if (!emit(w->out, &op, sizeof op)) {
            return store_failed(w);
        }
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
    if (w->pass == PASS_RECORDS && !emit_pad(w->out)) {
        return store_failed(w);
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
    if (w->pass != PASS_COUNT && !emit_pad(w->out)) {
        return store_failed(w);
    }
    if (!(zcbor_list_end_decode(s) && skip_item(s) && zcbor_bstr_decode(s, &pad) &&
          zcbor_bstr_decode(s, &blob) && zcbor_list_end_decode(s))) {
        return malformed(w->err, "trailer (meta, blob)");
    }
    p->blob = blob.value;
    p->blob_len = blob.len;
    return TT_OK;
}

/* The tables' layout: tensor records, op records, operands, attributes, each region 8-aligned. */
static size_t tables_size(const tt_plan *p)
{
    return region_size(p->n_tensors * sizeof(tt_tensor)) + region_size(p->n_ops * sizeof(tt_op)) +
           region_size(p->n_operands * sizeof(int32_t)) +
           region_size(p->n_attrs * sizeof(int32_t));
}

static void point_at_tables(tt_plan *p, const uint8_t *at)
{
    p->tensors = (const tt_tensor *)(const void *)at;
    at += region_size(p->n_tensors * sizeof(tt_tensor));
    p->ops = (const tt_op *)(const void *)at;
    at += region_size(p->n_ops * sizeof(tt_op));
    p->operands = (const int32_t *)(const void *)at;
    at += region_size(p->n_operands * sizeof(int32_t));
    p->attrs = (const int32_t *)(const void *)at;
}

/* Outer structure: [version, body, sha256(body)]; with hash, the body's sha256 is checked. */
static tt_status open_file(const uint8_t *file, size_t len, struct zcbor_string *body,
                           uint8_t *hash, tt_error *err)
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
    if (hash == NULL) {
        return TT_OK;
    }
    tt_sha256(body->value, body->len, hash);
    if (memcmp(hash, digest.value, TT_SHA256_SIZE) != 0) {
        return tt_fail(err, TT_ERR_PLAN_HASH, "plan content hash does not match: corrupt plan");
    }
    return TT_OK;
}

/* tables_in_ram: the tables will take the arena's tail (the arena check counts them). */
static tt_status validate(const uint8_t *file, size_t len, size_t arena_capacity,
                          bool tables_in_ram, tt_plan *plan, tt_error *err)
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
    walk w = {plan, PASS_COUNT, NULL, NULL, err};
    st = walk_body(&body, &w);
    if (st != TT_OK) {
        return st;
    }
    plan->tables_size = tables_size(plan);
    plan->tables_bytes = tables_in_ram ? plan->tables_size : 0;
    if ((uint64_t)plan->arena_size + plan->tables_bytes > arena_capacity) {
        return tt_fail(err, TT_ERR_PLAN_ARENA,
                       "plan needs an arena of %lu bytes (+%lu for its tables), device has %lu",
                       (unsigned long)plan->arena_size, (unsigned long)plan->tables_bytes,
                       (unsigned long)arena_capacity);
    }
    return TT_OK;
}

tt_status tt_plan_validate(const uint8_t *file, size_t len, size_t arena_capacity, tt_plan *plan,
                           tt_error *err)
{
    return validate(file, len, arena_capacity, true, plan, err);
}

/* The tables of a validated plan into out, region by region; then, in place, every check. */
static tt_status install(const uint8_t *file, size_t len, tt_plan *plan, sink *out,
                         uint8_t *arena_base, tt_error *err)
{
    struct zcbor_string body;
    tt_status st = open_file(file, len, &body, NULL, err);
    for (pass ps = PASS_RECORDS; st == TT_OK && ps <= PASS_ATTRS; ps++) {
        walk w = {plan, ps, out, arena_base, err};
        st = walk_body(&body, &w);
    }
    if (st == TT_OK && !sink_flush(out)) {
        st = tt_fail(err, TT_ERR_STORAGE, "plan store: writing the plan's tables failed (%d)",
                     out->store_rc);
    }
    if (st != TT_OK) {
        return st;
    }
    if (out->at != plan->tables_size) {
        return tt_fail(err, TT_ERR_INTERNAL, "plan tables: %lu bytes written, %lu planned",
                       (unsigned long)out->at, (unsigned long)plan->tables_size);
    }
    if (out->mismatch) {
        return tt_fail(err, TT_ERR_STORAGE,
                       "the plan's tables in its slot are not this "
                       "firmware's (written by another build, or torn)");
    }
    point_at_tables(plan, out->dest);
    return tt_plan_check(plan, err);
}

void tt_plan_init_params(const tt_plan *plan)
{
    for (uint32_t i = 0; i < plan->n_tensors; i++) {
        const tt_tensor *t = &plan->tensors[i];
        if (t->kind == TT_KIND_PARAM_TRAINABLE) {
            memcpy(t->data, plan->blob + t->data_offset, t->nbytes);
        }
    }
}

tt_status tt_plan_load(const uint8_t *file, size_t len, tt_arena *arena, size_t keep_head,
                       bool init_params, tt_plan *plan, tt_error *err)
{
    tt_status st = validate(file, len, arena->capacity, true, plan, err);
    if (st != TT_OK) {
        return st;
    }
    size_t head = plan->arena_size > keep_head ? plan->arena_size : keep_head;
    if (head + plan->tables_size > arena->capacity) {
        return tt_fail(err, TT_ERR_PLAN_ARENA,
                       "checking this plan would overwrite the loaded plan's parameters "
                       "(%lu + %lu > %lu bytes)",
                       (unsigned long)head, (unsigned long)plan->tables_size,
                       (unsigned long)arena->capacity);
    }
    tt_arena_reset(arena);
    uint8_t *tables = tt_arena_alloc_tail(arena, plan->tables_size, head);
    if (tables == NULL) {
        return tt_fail(err, TT_ERR_INTERNAL, "plan tables do not fit after validation");
    }
    sink out = {SINK_RAM, tables, 0, NULL, 0, 0, 0, false};
    st = install(file, len, plan, &out, arena->base, err);
    if (st != TT_OK) {
        return st;
    }
    plan->tables_bytes = arena->tail_used;
    /* Only now touch the head: trainable parameters start from the plan's values. */
    if (init_params) {
        tt_plan_init_params(plan);
    }
    return TT_OK;
}

tt_status tt_plan_load_slot(const tt_plan_slot *slot, size_t len, tt_arena *arena,
                            bool write_tables, bool init_params, tt_plan *plan, tt_error *err)
{
    if (slot == NULL || slot->base == NULL || len > slot->capacity ||
        (slot->write != NULL && (slot->stage == NULL || slot->stage_size == 0))) {
        return tt_fail(err, TT_ERR_ARG, "no plan slot");
    }
    tt_status st = validate(slot->base, len, arena->capacity, false, plan, err);
    if (st != TT_OK) {
        return st;
    }
    uint64_t need = tt_plan_slot_bytes(len, plan->tables_size);
    if (need > slot->capacity) {
        return tt_fail(err, TT_ERR_TOO_LARGE,
                       "plan of %lu bytes and its %lu bytes of tables exceed the %lu-byte plan "
                       "slot",
                       (unsigned long)len, (unsigned long)plan->tables_size,
                       (unsigned long)slot->capacity);
    }
    size_t at = (size_t)need - plan->tables_size;
    sink out = {SINK_VERIFY, slot->base + at, 0, slot, at, 0, 0, false};
    if (write_tables && slot->write == NULL) {
        out.kind = SINK_RAM;
    } else if (write_tables) {
        out.kind = SINK_STORE;
        int rc = slot->erase != NULL ? slot->erase(slot->ctx, at, plan->tables_size) : 0;
        if (rc != 0) {
            return tt_fail(err, TT_ERR_STORAGE,
                           "plan store: erasing %lu bytes for the plan's tables failed (%d)",
                           (unsigned long)plan->tables_size, rc);
        }
    }
    st = install(slot->base, len, plan, &out, arena->base, err);
    if (st != TT_OK) {
        return st;
    }
    if (init_params) {
        tt_plan_init_params(plan);
    }
    return TT_OK;
}
