/*
 * Request handling for the link protocol. Every request gets exactly one response; the last
 * response is kept so a retransmitted request (same sequence number and type) is answered again
 * without being executed twice: a lost STEP reply never trains on a sample twice.
 *
 * One buffer (dev->link) serves the whole exchange: a request is decoded in place, each handler
 * reads all of it before it writes its reply's payload over it at link + 2, and the reply is
 * COBS-encoded as it is written out.
 */
#include "tt/tt_device.h"

#include <stdio.h>
#include <string.h>
#include <zcbor_decode.h>
#include <zcbor_encode.h>

#include "tt/tt_ops.h"
#include "tt/tt_version.h"

typedef struct {
    uint8_t type; /* response type */
    size_t len;   /* payload bytes written at dev->link + 2 */
    tt_error err; /* set when type == TT_MSG_ERROR */
} response;

static uint8_t *payload_buf(tt_device *dev)
{
    return dev->link + 2;
}

static void reply_error(response *r, tt_status code, const char *msg)
{
    if (r->type != TT_MSG_ERROR) { /* keep the first, most specific message */
        tt_fail(&r->err, code, "%s", msg);
        r->type = TT_MSG_ERROR;
    }
}

/* Encodes an empty array: the payload of ACK. */
static void reply_ack(tt_device *dev, response *r)
{
    payload_buf(dev)[0] = 0x80;
    r->type = TT_MSG_ACK;
    r->len = 1;
}

static void finish_encode(tt_device *dev, response *r, zcbor_state_t *s, bool ok, uint8_t type)
{
    if (!ok) {
        reply_error(r, TT_ERR_INTERNAL, "response does not fit the payload buffer");
        return;
    }
    r->type = type;
    r->len = (size_t)(s->payload - payload_buf(dev));
}

/* The slot an upload goes to: the inactive one, or the only one. */
static int upload_slot(const tt_device *dev)
{
    return dev->plan_slots == 1 ? 0 : 1 - dev->active;
}

static void handle_hello(tt_device *dev, response *r)
{
    ZCBOR_STATE_E(s, 2, payload_buf(dev), TT_MAX_PAYLOAD, 0);
#define TT_HELLO_OPCODE_(NAME, name, code, n_in, n_out, n_attrs) TT_OP_##NAME,
    static const uint8_t opcodes[] = {TT_OP_LIST(TT_HELLO_OPCODE_)}; /* in numeric order */
#undef TT_HELLO_OPCODE_
    const char *board = dev->port.board ? dev->port.board : "unknown";
    const char *unit = dev->port.cost_unit ? dev->port.cost_unit : "none";
    const tt_model *m = &dev->model;
    uint32_t used = m->loaded ? m->plan.arena_size + (uint32_t)m->plan.tables_bytes : 0;
    bool ok = zcbor_map_start_encode(s, 19) && zcbor_tstr_put_lit(s, "firmware") &&
              zcbor_tstr_put_term(s, TT_FIRMWARE_VERSION, 32) &&
              zcbor_tstr_put_lit(s, "protocol") && zcbor_uint32_put(s, TT_PROTOCOL_VERSION) &&
              zcbor_tstr_put_lit(s, "plan_format") &&
              zcbor_uint32_put(s, TT_PLAN_FORMAT_VERSION) && zcbor_tstr_put_lit(s, "board") &&
              zcbor_tstr_put_term(s, board, 64) && zcbor_tstr_put_lit(s, "arena_capacity") &&
              zcbor_uint32_put(s, (uint32_t)m->arena.capacity) &&
              zcbor_tstr_put_lit(s, "plan_capacity") &&
              zcbor_uint32_put(s, (uint32_t)dev->plan_capacity) &&
              zcbor_tstr_put_lit(s, "plan_slots") &&
              zcbor_uint32_put(s, (uint32_t)dev->plan_slots) &&
              zcbor_tstr_put_lit(s, "max_payload") && zcbor_uint32_put(s, TT_MAX_PAYLOAD) &&
              zcbor_tstr_put_lit(s, "cost_unit") && zcbor_tstr_put_term(s, unit, 32) &&
              zcbor_tstr_put_lit(s, "plan_loaded") && zcbor_bool_put(s, m->loaded) &&
              zcbor_tstr_put_lit(s, "plan_hash") &&
              zcbor_bstr_encode_ptr(s, (const char *)m->plan.hash,
                                    m->loaded ? TT_SHA256_SIZE : 0) &&
              zcbor_tstr_put_lit(s, "arena_used") && zcbor_uint32_put(s, used) &&
              zcbor_tstr_put_lit(s, "steps") && zcbor_uint32_put(s, tt_model_steps(m)) &&
              zcbor_tstr_put_lit(s, "checkpoints") && zcbor_bool_put(s, dev->checkpoint != NULL) &&
              (dev->stack_peak == NULL || (zcbor_tstr_put_lit(s, "stack_peak") &&
                                           zcbor_uint32_put(s, dev->stack_peak(dev->port.ctx)))) &&
              /* Only a provisioned device says so: without a key INFO is what it was. */
              (dev->plan_signed == NULL ||
               (zcbor_tstr_put_lit(s, "plan_signatures") && zcbor_bool_put(s, true))) &&
              (!dev->auth.enabled ||
               (zcbor_tstr_put_lit(s, "auth") && zcbor_bool_put(s, true) &&
                zcbor_tstr_put_lit(s, "nonce") &&
                zcbor_bstr_encode_ptr(s, (const char *)dev->auth.nonce, TT_AUTH_NONCE_SIZE))) &&
              zcbor_tstr_put_lit(s, "ops") && zcbor_list_start_encode(s, sizeof opcodes);
    for (size_t i = 0; ok && i < sizeof opcodes; i++) {
        ok = zcbor_uint32_put(s, opcodes[i]);
    }
    ok = ok && zcbor_list_end_encode(s, sizeof opcodes) && zcbor_map_end_encode(s, 19);
    finish_encode(dev, r, s, ok, TT_MSG_INFO);
}

static void handle_plan_begin(tt_device *dev, zcbor_state_t *s, response *r)
{
    uint32_t size;
    uint32_t arena = 0; /* optional: the plan's arena_size, so an oversized plan is refused here */
    struct zcbor_string hash;
    struct zcbor_string sig = {NULL, 0}; /* optional: the plan's signature (signed plans) */
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &size) &&
          zcbor_bstr_decode(s, &hash) && hash.len == TT_SHA256_SIZE &&
          (zcbor_array_at_end(s) || zcbor_uint32_decode(s, &arena)) &&
          (zcbor_array_at_end(s) || zcbor_bstr_decode(s, &sig)) && zcbor_list_end_decode(s))) {
        reply_error(r, TT_ERR_PROTO, "PLAN_BEGIN needs [size, sha256] or [size, sha256, arena]");
        return;
    }
    /* A device that trusts a plan key takes only plans signed with it: checked on the announced
     * sha256 (PLAN_COMMIT checks the bytes against it), before anything is unloaded or erased. */
    if (dev->plan_signed != NULL) {
        if (sig.len != TT_PLAN_SIG_SIZE) {
            reply_error(r, TT_ERR_AUTH,
                        "unsigned plan: this device takes only plans signed by its owner "
                        "(tinyhost compile --sign-key)");
            return;
        }
        if (!dev->plan_signed(dev->plan_key, sig.value, hash.value)) {
            reply_error(r, TT_ERR_AUTH,
                        "plan signature does not verify: not signed with the key this device "
                        "trusts, or the plan was changed after signing");
            return;
        }
    }
    if (size > dev->plan_capacity) {
        tt_fail(&r->err, TT_ERR_TOO_LARGE, "plan of %lu bytes exceeds the plan store (%lu bytes)",
                (unsigned long)size, (unsigned long)dev->plan_capacity);
        r->type = TT_MSG_ERROR;
        return;
    }
    /* Before a byte is sent, and before a one-slot store unloads the running plan. The tables'
     * share is checked at PLAN_COMMIT, where the plan is decoded. */
    if (arena > dev->model.arena.capacity) {
        tt_fail(&r->err, TT_ERR_PLAN_ARENA, "plan needs an arena of %lu bytes, device has %lu",
                (unsigned long)arena, (unsigned long)dev->model.arena.capacity);
        r->type = TT_MSG_ERROR;
        return;
    }
    dev->uploading = false; /* until the store is ready for it */
    if (dev->plan_slots == 1) {
        /* The running plan's file (frozen weights, tables' source) is about to be overwritten. */
        tt_model_unload(&dev->model);
        dev->model.steps = 0;
        dev->slot_overwritten = true;
    }
    if (dev->store.write != NULL && dev->store.erase != NULL) {
        int rc = dev->store.erase(dev->store.ctx, upload_slot(dev), 0, size);
        if (rc != 0) {
            tt_fail(&r->err, TT_ERR_STORAGE,
                    "plan store: erasing room for %lu bytes failed (%d)%s", (unsigned long)size,
                    rc, dev->plan_slots == 1 ? "; no plan loaded (one slot)" : "");
            r->type = TT_MSG_ERROR;
            return;
        }
    }
    dev->uploading = true;
    dev->upload_size = size;
    dev->upload_next = 0;
    memcpy(dev->upload_hash, hash.value, TT_SHA256_SIZE);
    reply_ack(dev, r);
}

static void handle_plan_chunk(tt_device *dev, zcbor_state_t *s, response *r)
{
    uint32_t offset;
    struct zcbor_string data;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &offset) &&
          zcbor_bstr_decode(s, &data) && zcbor_list_end_decode(s))) {
        reply_error(r, TT_ERR_PROTO, "PLAN_CHUNK needs [offset, bytes]");
        return;
    }
    if (!dev->uploading) {
        reply_error(r, TT_ERR_PROTO, "PLAN_CHUNK without PLAN_BEGIN");
        return;
    }
    if (offset > dev->upload_next || data.len > dev->upload_size - offset) {
        reply_error(r, TT_ERR_PROTO, "PLAN_CHUNK out of order or past the announced size");
        return;
    }
    /* A chunk that starts before upload_next repeats bytes already received (the host resent it,
     * perhaps cut smaller, after its ACK was lost): they must be the same; only what follows
     * upload_next is written (flash is programmed once). */
    size_t again = dev->upload_next - offset;
    again = again < data.len ? again : data.len;
    if (memcmp(dev->plan_slot[upload_slot(dev)] + offset, data.value, again) != 0) {
        reply_error(r, TT_ERR_PROTO, "PLAN_CHUNK rewrites received bytes with others");
        return;
    }
    offset += (uint32_t)again;
    data.value += again;
    data.len -= again;
    if (data.len == 0) {
        reply_ack(dev, r);
        return;
    }
    if (dev->store.write != NULL) {
        int rc = dev->store.write(dev->store.ctx, upload_slot(dev), offset, data.value, data.len);
        if (rc != 0) {
            dev->uploading = false;
            tt_fail(&r->err, TT_ERR_STORAGE, "plan store: writing %lu bytes at %lu failed (%d)%s",
                    (unsigned long)data.len, (unsigned long)offset, rc,
                    dev->plan_slots == 1 ? "; no plan loaded (one slot)" : "");
            r->type = TT_MSG_ERROR;
            return;
        }
    } else {
        memcpy(dev->plan_slot[upload_slot(dev)] + offset, data.value, data.len);
    }
    dev->upload_next += (uint32_t)data.len;
    reply_ack(dev, r);
}

/* One slot: a refused commit leaves no plan; the reply says why nothing runs now. */
static void note_no_plan(const tt_device *dev, response *r)
{
    if (dev->plan_slots == 1) {
        size_t n = strlen(r->err.msg);
        snprintf(r->err.msg + n, sizeof r->err.msg - n,
                 "; no plan loaded (one slot)"); /* short: TT_ERROR_MSG_MAX */
    }
}

/* A plan slot as tt_plan_load_slot reads and writes it: through the store's hooks when the port
 * has them (flash), staging the tables' pieces in the link buffer (PLAN_COMMIT's request is
 * empty, and its reply is written after). */
typedef struct {
    tt_device *dev;
    int slot;
} slot_ref;

static int slot_erase(void *ctx, size_t offset, size_t size)
{
    const slot_ref *ref = ctx;
    return ref->dev->store.erase(ref->dev->store.ctx, ref->slot, offset, size);
}

static int slot_write(void *ctx, size_t offset, const uint8_t *data, size_t len)
{
    const slot_ref *ref = ctx;
    return ref->dev->store.write(ref->dev->store.ctx, ref->slot, offset, data, len);
}

static tt_plan_slot plan_slot(tt_device *dev, int slot, slot_ref *ref)
{
    *ref = (slot_ref){dev, slot};
    tt_plan_slot s = {dev->plan_slot[slot], dev->plan_capacity, NULL, NULL, ref, dev->link,
                      sizeof dev->link};
    if (dev->store.write != NULL) {
        s.write = slot_write;
        s.erase = dev->store.erase != NULL ? slot_erase : NULL;
    }
    return s;
}

static void handle_plan_commit(tt_device *dev, response *r)
{
    if (!dev->uploading || dev->upload_next != dev->upload_size) {
        reply_error(r, TT_ERR_PROTO, "PLAN_COMMIT before the whole plan was received");
        return;
    }
    dev->uploading = false;
    const uint8_t *staged = dev->plan_slot[upload_slot(dev)];
    uint8_t digest[TT_SHA256_SIZE];
    tt_sha256(staged, dev->upload_size, digest);
    if (memcmp(digest, dev->upload_hash, TT_SHA256_SIZE) != 0) {
        reply_error(r, TT_ERR_PLAN_HASH, "uploaded plan does not match its announced sha256");
        note_no_plan(dev, r);
        return;
    }
    /* Decoded and checked with its tables written into its own slot after it, read there in
     * place: nothing the running plan uses (its slot, its tables, the arena) is touched until
     * every check has passed. */
    slot_ref ref;
    tt_plan_slot slot = plan_slot(dev, upload_slot(dev), &ref);
    if (tt_model_load_slot(&dev->model, &slot, dev->upload_size, true, &r->err) != TT_OK) {
        r->type = TT_MSG_ERROR;
        note_no_plan(dev, r);
        return;
    }
    dev->active = upload_slot(dev);
    dev->active_len = dev->upload_size;
    dev->slot_overwritten = false;
    if (dev->store.write != NULL && dev->store.committed != NULL) {
        dev->store.committed(dev->store.ctx, dev->active, dev->active_len);
    }
    reply_ack(dev, r);
}

static bool require_plan(tt_device *dev, response *r)
{
    if (!tt_model_loaded(&dev->model)) {
        reply_error(r, TT_ERR_NO_PLAN,
                    dev->slot_overwritten
                        ? "no plan is loaded: an upload replaced it (one plan slot) and was not "
                          "committed; upload a plan"
                        : "no plan is loaded: upload one first");
    }
    return tt_model_loaded(&dev->model);
}

/* Copies sample bytes into the model's input at offset; an empty sample leaves it as it is.
 * The link's own check: a sample may come in pieces (INPUT_CHUNK), and a wrong size is a
 * malformed request (TT_ERR_PROTO). TRAIN and EVAL then run on the input in place. */
static bool write_input(tt_device *dev, uint32_t offset, const struct zcbor_string *data,
                        bool whole, response *r)
{
    size_t nbytes;
    uint8_t *in = tt_model_input(&dev->model, &nbytes);
    if (data->len == 0 && whole) {
        return true; /* sent before with INPUT_CHUNK */
    }
    if (offset > nbytes || data->len > nbytes - offset || (whole && data->len != nbytes)) {
        tt_fail(&r->err, TT_ERR_PROTO,
                "sample of %lu bytes at %lu does not fit the %lu-byte input",
                (unsigned long)data->len, (unsigned long)offset, (unsigned long)nbytes);
        r->type = TT_MSG_ERROR;
        return false;
    }
    memcpy(in + offset, data->value, data->len);
    return true;
}

static void handle_input_chunk(tt_device *dev, zcbor_state_t *s, response *r)
{
    uint32_t offset;
    struct zcbor_string data;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &offset) &&
          zcbor_bstr_decode(s, &data) && zcbor_list_end_decode(s))) {
        reply_error(r, TT_ERR_PROTO, "INPUT_CHUNK needs [offset, bytes]");
        return;
    }
    if (require_plan(dev, r) && write_input(dev, offset, &data, false, r)) {
        reply_ack(dev, r);
    }
}

static uint32_t cost_now(const tt_device *dev)
{
    return dev->port.cost_counter ? dev->port.cost_counter(dev->port.ctx) : 0u;
}

static void handle_train(tt_device *dev, zcbor_state_t *s, response *r)
{
    int32_t label;
    double lr;
    struct zcbor_string data;
    if (!(zcbor_list_start_decode(s) && zcbor_int32_decode(s, &label) &&
          zcbor_float_decode(s, &lr) && zcbor_bstr_decode(s, &data) && zcbor_list_end_decode(s))) {
        reply_error(r, TT_ERR_PROTO, "TRAIN needs [label, lr, sample]");
        return;
    }
    /* The API's rule, on the decoded double before it becomes a float; first, before anything
     * runs (docs/protocol.md). */
    if (tt_check_lr(lr, NULL) != TT_OK) {
        reply_error(r, TT_ERR_ARG, "TRAIN: the learning rate must be a finite number above 0");
        return;
    }
    if (!require_plan(dev, r) || !write_input(dev, 0, &data, true, r)) {
        return;
    }
    tt_step_result result;
    uint32_t start = cost_now(dev);
    tt_status st = tt_train_step(&dev->model, NULL, 0, label, (float)lr, &result, &r->err);
    uint32_t cost = cost_now(dev) - start;
    if (st != TT_OK) {
        r->type = TT_MSG_ERROR;
        return;
    }
    ZCBOR_STATE_E(e, 1, payload_buf(dev), TT_MAX_PAYLOAD, 0);
    bool ok = zcbor_list_start_encode(e, 4) && zcbor_float32_put(e, result.loss) &&
              zcbor_int32_put(e, result.pred) && zcbor_uint32_put(e, cost) &&
              zcbor_uint32_put(e, tt_model_steps(&dev->model)) && zcbor_list_end_encode(e, 4);
    finish_encode(dev, r, e, ok, TT_MSG_STEP);
}

static void handle_eval(tt_device *dev, zcbor_state_t *s, response *r)
{
    struct zcbor_string data;
    if (!(zcbor_list_start_decode(s) && zcbor_bstr_decode(s, &data) && zcbor_list_end_decode(s))) {
        reply_error(r, TT_ERR_PROTO, "EVAL needs [sample]");
        return;
    }
    if (!require_plan(dev, r) || !write_input(dev, 0, &data, true, r)) {
        return;
    }
    int32_t pred;
    if (tt_predict(&dev->model, NULL, 0, &pred, &r->err) != TT_OK) {
        r->type = TT_MSG_ERROR;
        return;
    }
    ZCBOR_STATE_E(e, 1, payload_buf(dev), TT_MAX_PAYLOAD, 0);
    bool ok = zcbor_list_start_encode(e, 1) && zcbor_int32_put(e, pred) &&
              zcbor_list_end_encode(e, 1);
    finish_encode(dev, r, e, ok, TT_MSG_PRED);
}

static void handle_read_tensor(tt_device *dev, zcbor_state_t *s, response *r)
{
    uint32_t index, offset, length;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &index) &&
          zcbor_uint32_decode(s, &offset) && zcbor_uint32_decode(s, &length) &&
          zcbor_list_end_decode(s))) {
        reply_error(r, TT_ERR_PROTO, "READ_TENSOR needs [index, offset, length]");
        return;
    }
    if (!require_plan(dev, r)) {
        return;
    }
    if (index >= dev->model.plan.n_tensors) {
        reply_error(r, TT_ERR_ARG, "READ_TENSOR: no such tensor");
        return;
    }
    const tt_tensor *t = &dev->model.plan.tensors[index];
    if (offset > t->nbytes || length > t->nbytes - offset || length > TT_MAX_PAYLOAD - 8u) {
        reply_error(r, TT_ERR_ARG, "READ_TENSOR: range outside the tensor or the payload");
        return;
    }
    ZCBOR_STATE_E(e, 1, payload_buf(dev), TT_MAX_PAYLOAD, 0);
    bool ok = zcbor_bstr_encode_ptr(e, (const char *)t->data + offset, length);
    finish_encode(dev, r, e, ok, TT_MSG_TENSOR);
}

/* The trainable tensor `index` of the loaded plan (NULL and an error reply when it is not one). */
static const tt_tensor *trainable(tt_device *dev, uint32_t index, response *r)
{
    const tt_plan *p = &dev->model.plan;
    if (index >= p->n_tensors || p->tensors[index].kind != TT_KIND_PARAM_TRAINABLE) {
        reply_error(r, TT_ERR_ARG, "WRITE_TENSOR: not a trainable parameter of the plan");
        return NULL;
    }
    return &p->tensors[index];
}

static void handle_write_tensor(tt_device *dev, zcbor_state_t *s, response *r)
{
    uint32_t index, offset;
    struct zcbor_string data;
    if (!(zcbor_list_start_decode(s) && zcbor_uint32_decode(s, &index) &&
          zcbor_uint32_decode(s, &offset) && zcbor_bstr_decode(s, &data) &&
          zcbor_list_end_decode(s))) {
        reply_error(r, TT_ERR_PROTO, "WRITE_TENSOR needs [index, offset, bytes]");
        return;
    }
    if (!require_plan(dev, r)) {
        return;
    }
    const tt_tensor *t = trainable(dev, index, r);
    if (t == NULL) {
        return;
    }
    if (offset > t->nbytes || data.len > t->nbytes - offset) {
        reply_error(r, TT_ERR_ARG, "WRITE_TENSOR: range outside the tensor");
        return;
    }
    memcpy((uint8_t *)t->data + offset, data.value, data.len);
    reply_ack(dev, r);
}

static void handle_checkpoint(tt_device *dev, response *r)
{
    if (!require_plan(dev, r)) {
        return;
    }
    if (dev->checkpoint == NULL) {
        reply_error(r, TT_ERR_STORAGE, "CHECKPOINT: this device keeps no checkpoints");
        return;
    }
    int rc = dev->checkpoint(dev->checkpoint_ctx);
    if (rc != 0) {
        tt_fail(&r->err, TT_ERR_STORAGE, "CHECKPOINT: saving the parameters failed (%d)", rc);
        r->type = TT_MSG_ERROR;
        return;
    }
    reply_ack(dev, r);
}

static void handle_reset(tt_device *dev, response *r)
{
    if (!require_plan(dev, r)) {
        return;
    }
    if (tt_model_reset(&dev->model, &r->err) != TT_OK) {
        r->type = TT_MSG_ERROR;
        return;
    }
    reply_ack(dev, r);
}

static void encode_error(tt_device *dev, response *r)
{
    ZCBOR_STATE_E(e, 1, payload_buf(dev), TT_MAX_PAYLOAD, 0);
    bool ok = zcbor_list_start_encode(e, 2) && zcbor_int32_put(e, r->err.code) &&
              zcbor_tstr_put_term(e, r->err.msg, sizeof r->err.msg) && zcbor_list_end_encode(e, 2);
    r->len = ok ? (size_t)(e->payload - payload_buf(dev)) : 0;
}

/* A provisioned device's reply to an authenticated request carries a tag after its payload
 * (tt_auth.h); returns the payload's new length. Refusals of unauthenticated requests do not. */
static size_t seal_reply(tt_device *dev, uint8_t type, uint8_t seq, size_t len)
{
    if (!dev->auth.enabled || !dev->last_authed) {
        return len;
    }
    tt_auth_tag(&dev->auth, 'R', dev->last_counter, type, seq, payload_buf(dev), len,
                payload_buf(dev) + len);
    return len + TT_AUTH_TAG_SIZE;
}

/* Sends the reply whose payload is at link + 2, keeping its raw frame for a retransmission
 * when it is small enough. */
static void send(tt_device *dev, uint8_t type, uint8_t seq, size_t len)
{
    len = seal_reply(dev, type, seq, len);
    tt_frame_send(dev->link, type, seq, len, dev->port.write, dev->port.ctx);
    size_t raw_len = len + TT_FRAME_OVERHEAD;
    dev->last_reply_len = raw_len <= sizeof dev->last_reply ? raw_len : 0;
    if (dev->last_reply_len > 0) {
        memcpy(dev->last_reply, dev->link, raw_len);
    }
}

/* A retransmission: the previous request again, byte for byte (type, sequence number, payload:
 * the CRC tells a different sample sent under the same number apart). */
static bool is_retransmission(const tt_device *dev, const tt_frame *f)
{
    return dev->have_last && f->type != TT_MSG_HELLO && f->seq == dev->last_seq &&
           f->type == dev->last_type && f->crc == dev->last_crc;
}

/* A sequence number at or behind the last request's (serial number arithmetic mod 256: up to
 * 127 ahead is new) that is not a retransmission: a delayed or replayed old request. HELLO
 * starts a session and is always taken. */
static bool is_stale(const tt_device *dev, const tt_frame *f)
{
    uint8_t ahead = (uint8_t)(f->seq - dev->last_seq);
    return dev->have_last && f->type != TT_MSG_HELLO && (ahead == 0 || ahead >= 128u);
}

/* An ERROR sent without keeping it as the last reply (a refused request changes nothing). */
static void send_refusal(tt_device *dev, response *r, uint8_t seq)
{
    r->type = TT_MSG_ERROR;
    encode_error(dev, r);
    size_t len = seal_reply(dev, r->type, seq, r->len);
    tt_frame_send(dev->link, r->type, seq, len, dev->port.write, dev->port.ctx);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A provisioned device checks a request's counter and tag (tt_auth.h) before anything else
 * and strips them from the payload. A replay is an authentic request whose counter is not above
 * the last one; the one exception is the last request retransmitted byte for byte (its reply
 * was too large to keep, a READ_TENSOR: answered again, which changes nothing). */
static bool authenticate(tt_device *dev, tt_frame *f, response *r)
{
    dev->last_authed = false;
    if (!dev->auth.enabled || f->type == TT_MSG_HELLO) {
        return true;
    }
    if (!dev->auth.session || f->payload_len < TT_AUTH_TRAILER) {
        tt_fail(&r->err, TT_ERR_AUTH,
                "unauthenticated request: this device is provisioned with a key%s",
                dev->auth.session ? "; every request needs its MAC" : ": HELLO first");
        return false;
    }
    size_t len = f->payload_len - TT_AUTH_TRAILER;
    uint32_t counter = get_u32(f->payload + len);
    uint8_t tag[TT_AUTH_TAG_SIZE];
    tt_auth_tag(&dev->auth, 'Q', counter, f->type, f->seq, f->payload, len, tag);
    if (!tt_auth_tag_equal(tag, f->payload + len + 4u)) {
        tt_fail(
            &r->err, TT_ERR_AUTH,
            "bad key: the request's MAC does not verify (no key, another key, or a request of an "
            "earlier session)");
        return false;
    }
    if (counter <= dev->auth.counter &&
        !(counter == dev->auth.counter && is_retransmission(dev, f))) {
        tt_fail(&r->err, TT_ERR_AUTH,
                "replayed request: counter %lu is not above the session's last, %lu",
                (unsigned long)counter, (unsigned long)dev->auth.counter);
        return false;
    }
    dev->auth.counter = counter;
    dev->last_authed = true;
    dev->last_counter = counter;
    f->payload_len = len;
    return true;
}

/* HELLO opens a session with a fresh nonce, unless it is the last HELLO retransmitted (its
 * INFO, carrying the nonce, was lost or is late: the host takes either reply). */
static void open_session(tt_device *dev, const tt_frame *f)
{
    bool again = dev->have_last && dev->last_type == TT_MSG_HELLO && f->seq == dev->last_seq &&
                 f->crc == dev->last_crc && dev->auth.session;
    if (dev->auth.enabled && !again) {
        tt_auth_new_session(&dev->auth);
    }
}

static void handle_frame(tt_device *dev, tt_frame *f)
{
    if (is_retransmission(dev, f) && dev->last_reply_len > 0) {
        tt_cobs_write(dev->last_reply, dev->last_reply_len, dev->port.write, dev->port.ctx);
        return; /* its kept reply again, nothing executed */
    }
    response r = {.type = 0, .len = 0, .err = {TT_OK, ""}};
    if (!authenticate(dev, f, &r)) {
        send_refusal(dev, &r, f->seq);
        return; /* nothing executed; the session's state and kept reply are unchanged */
    }
    if (is_stale(dev, f) && !is_retransmission(dev, f)) {
        tt_fail(&r.err, TT_ERR_PROTO, "stale sequence number %u (the last request had %u)",
                (unsigned)f->seq, (unsigned)dev->last_seq);
        send_refusal(dev, &r, f->seq);
        return; /* refused, and the kept reply stays that of the last request */
    }
    ZCBOR_STATE_D(s, 3, f->payload, f->payload_len, 1, 0);
    switch (f->type) {
    case TT_MSG_HELLO:
        open_session(dev, f);
        handle_hello(dev, &r);
        break;
    case TT_MSG_PLAN_BEGIN: handle_plan_begin(dev, s, &r); break;
    case TT_MSG_PLAN_CHUNK: handle_plan_chunk(dev, s, &r); break;
    case TT_MSG_PLAN_COMMIT: handle_plan_commit(dev, &r); break;
    case TT_MSG_INPUT_CHUNK: handle_input_chunk(dev, s, &r); break;
    case TT_MSG_TRAIN: handle_train(dev, s, &r); break;
    case TT_MSG_EVAL: handle_eval(dev, s, &r); break;
    case TT_MSG_READ_TENSOR: handle_read_tensor(dev, s, &r); break;
    case TT_MSG_RESET: handle_reset(dev, &r); break;
    case TT_MSG_WRITE_TENSOR: handle_write_tensor(dev, s, &r); break;
    case TT_MSG_CHECKPOINT: handle_checkpoint(dev, &r); break;
    default: reply_error(&r, TT_ERR_PROTO, "unknown message type"); break;
    }
    if (r.type == TT_MSG_ERROR) {
        encode_error(dev, &r);
    }
    send(dev, r.type, f->seq, r.len);
    dev->have_last = true;
    dev->last_seq = f->seq;
    dev->last_type = f->type;
    dev->last_crc = f->crc;
}

void tt_device_init(tt_device *dev, const tt_port *port, uint8_t *arena, size_t arena_capacity,
                    uint8_t *plan_slot0, uint8_t *plan_slot1, size_t plan_capacity)
{
    memset(dev, 0, sizeof *dev);
    dev->port = *port;
    tt_model_bind(&dev->model, arena, arena_capacity);
    dev->plan_slot[0] = plan_slot0;
    dev->plan_slot[1] = plan_slot1;
    dev->plan_slots = plan_slot1 != NULL ? 2 : 1;
    dev->plan_capacity = plan_capacity;
}

void tt_device_set_plan_store(tt_device *dev, const tt_plan_store *store)
{
    dev->store = *store;
}

void tt_device_set_auth(tt_device *dev, const uint8_t key[TT_AUTH_KEY_SIZE], tt_entropy_fn entropy,
                        void *entropy_ctx)
{
    tt_auth_init(&dev->auth, key, entropy, entropy_ctx);
}

void tt_device_set_plan_key(tt_device *dev, const uint8_t key[TT_PLAN_KEY_SIZE])
{
    memcpy(dev->plan_key, key, TT_PLAN_KEY_SIZE);
    dev->plan_signed = tt_auth_plan_signed; /* only here: a port that never calls this links no
                                               signature code (--gc-sections) */
}

void tt_device_set_stack_probe(tt_device *dev, uint32_t (*stack_peak)(void *ctx))
{
    dev->stack_peak = stack_peak;
}

void tt_device_set_checkpoint(tt_device *dev, int (*checkpoint)(void *ctx), void *ctx)
{
    dev->checkpoint = checkpoint;
    dev->checkpoint_ctx = ctx;
}

size_t tt_device_params(const tt_device *dev, void (*put)(void *ctx, const uint8_t *, size_t),
                        void *ctx)
{
    return tt_model_params_walk(&dev->model, put, ctx);
}

tt_status tt_device_restore_params(tt_device *dev, const uint8_t *params, size_t len,
                                   uint32_t steps, tt_error *err)
{
    return tt_model_params_restore(&dev->model, params, len, steps, err);
}

void tt_device_receive(tt_device *dev, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t byte = data[i];
        if (byte != 0) {
            if (dev->rx_len < sizeof dev->link) {
                dev->link[dev->rx_len++] = byte;
            } else {
                dev->rx_overflow = true;
            }
            continue;
        }
        /* A delimiter: one frame is complete (empty frames are line noise between frames). */
        tt_frame frame;
        if (dev->rx_len > 0) {
            if (!dev->rx_overflow && tt_frame_decode(dev->link, dev->rx_len, &frame) == TT_OK) {
                handle_frame(dev, &frame);
            } else {
                /* The host resends its last request. Built aside so the kept reply survives. */
                uint8_t raw[TT_FRAME_OVERHEAD];
                dev->bad_frames++;
                tt_frame_send(raw, TT_MSG_NAK, 0, 0, dev->port.write, dev->port.ctx);
            }
        }
        dev->rx_len = 0;
        dev->rx_overflow = false;
    }
}

tt_status tt_device_restore(tt_device *dev, int slot, size_t len, tt_error *err)
{
    if (slot < 0 || slot >= dev->plan_slots || len > dev->plan_capacity) {
        return tt_fail(err, TT_ERR_ARG, "no plan of %lu bytes in slot %d (capacity %lu)",
                       (unsigned long)len, slot, (unsigned long)dev->plan_capacity);
    }
    tt_model_unload(&dev->model);
    dev->uploading = false;
    /* A RAM slot gets its tables written again; a store's slot (flash) keeps the ones the upload
     * wrote, compared with what decoding the plan gives. Tables another firmware build wrote
     * (its arena elsewhere) do not match: the plan then runs with its tables in the arena's
     * tail, as far as they fit, until the next upload writes them again. */
    slot_ref ref;
    tt_plan_slot s = plan_slot(dev, slot, &ref);
    tt_status st = tt_model_load_slot(&dev->model, &s, len, dev->store.write == NULL, err);
    if (st == TT_ERR_STORAGE && dev->store.write != NULL) {
        st = tt_model_load(&dev->model, dev->plan_slot[slot], len, err);
    }
    if (st != TT_OK) {
        return st;
    }
    dev->active = slot;
    dev->active_len = len;
    dev->slot_overwritten = false;
    return TT_OK;
}
