/*
 * The link protocol handler (tt_device.h) driven in-process: requests are CBOR built with zcbor's
 * encoder and framed with tt_frame_encode; the port's write callback captures the replies.
 *
 * Usage: test_device PLAN_DIR   (the files of tests/c/gen_plans.py)
 *
 * A second device (the twin) receives only the good requests; where the first one gets a bad
 * upload, a corrupted frame or a retransmission, both must still train identically (same STEP
 * loss bits, same parameter bytes).
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zcbor_decode.h>
#include <zcbor_encode.h>

#include "plan_data.h"
#include "tt/tt_device.h"
#include "tt/tt_ops.h"
#include "tt/tt_version.h"
#include "tt_test.h"

#define ARENA_SIZE (64u * 1024u)
#define PLAN_CAPACITY (32u * 1024u)
#define CAPTURE_MAX (64u * 1024u)

typedef struct {
    tt_device dev;
    _Alignas(16) uint8_t arena[ARENA_SIZE];
    _Alignas(16) uint8_t slots[2][PLAN_CAPACITY];
    uint8_t captured[CAPTURE_MAX];
    size_t captured_len;
    bool overflowed;
    uint8_t seq;
    uint32_t cost;
} test_device;

static test_device dut, twin; /* device under test, and its twin */

static void port_write(void *ctx, const uint8_t *data, size_t len)
{
    test_device *t = ctx;
    if (len > CAPTURE_MAX - t->captured_len) {
        t->overflowed = true;
        return;
    }
    memcpy(t->captured + t->captured_len, data, len);
    t->captured_len += len;
}

static uint32_t cost_counter(void *ctx)
{
    test_device *t = ctx;
    return t->cost += 7; /* a step costs 7 */
}

static void device_init(test_device *t)
{
    tt_port port = {"test-board", "ticks", cost_counter, port_write, t};
    tt_device_init(&t->dev, &port, t->arena, sizeof t->arena, t->slots[0], t->slots[1],
                   PLAN_CAPACITY);
    t->seq = 0x10;
}

/* --- checkpoint hooks ---------------------------------------------------------------------- */

static int count_save(void *ctx)
{
    ++*(int *)ctx;
    return 0;
}

static void put_bytes(void *ctx, const uint8_t *data, size_t len)
{
    void **c = ctx;
    size_t *at = c[1];
    memcpy((uint8_t *)c[0] + *at, data, len);
    *at += len;
}

/* --- frames ----------------------------------------------------------------------------------- */

typedef struct {
    int nframes;           /* complete frames in the captured output */
    uint8_t type, seq;
    uint8_t payload[TT_MAX_PAYLOAD + 64];
    size_t len;
    uint8_t wire[TT_ENCODED_MAX]; /* the reply's bytes as sent */
    size_t wire_len;
} reply;

static uint8_t frame_buf[TT_ENCODED_MAX + 16];

static size_t build_frame(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len,
                          uint8_t *out)
{
    static uint8_t raw[TT_RAW_MAX + 64];
    if (len > 0) {
        memcpy(raw + 2, payload, len);
    }
    return tt_frame_encode(raw, type, seq, len, out);
}

/* Feeds bytes (in pieces of `piece` bytes, 0: all at once) and decodes what the device wrote:
 * the number of frames, and the last one. */
static void feed(test_device *t, const uint8_t *bytes, size_t n, size_t piece, reply *r)
{
    t->captured_len = 0;
    if (piece == 0) {
        tt_device_receive(&t->dev, bytes, n);
    } else {
        for (size_t at = 0; at < n; at += piece) {
            tt_device_receive(&t->dev, bytes + at, n - at < piece ? n - at : piece);
        }
    }
    memset(r, 0, sizeof *r);
    size_t start = 0;
    for (size_t i = 0; i < t->captured_len; i++) {
        if (t->captured[i] != 0) {
            continue;
        }
        size_t flen = i - start;
        if (flen + 1 <= sizeof r->wire) {
            memcpy(r->wire, t->captured + start, flen + 1);
            r->wire_len = flen + 1;
        }
        static uint8_t dec[TT_ENCODED_MAX];
        tt_frame f;
        if (flen <= sizeof dec) {
            memcpy(dec, t->captured + start, flen);
        }
        if (flen <= sizeof dec && tt_frame_decode(dec, flen, &f) == TT_OK &&
            f.payload_len <= sizeof r->payload) {
            r->type = f.type;
            r->seq = f.seq;
            memcpy(r->payload, f.payload, f.payload_len);
            r->len = f.payload_len;
        } else {
            r->type = 0; /* an undecodable reply */
        }
        r->nframes++;
        start = i + 1;
    }
    TT_CHECK_MSG(start == t->captured_len, "the device wrote an unterminated frame");
}

/* Sends one request with the next sequence number; returns the reply's type (0: no single valid
 * frame). The frame stays in frame_buf (length *sent) for retransmissions. */
static size_t last_sent;

static uint8_t request(test_device *t, uint8_t type, const uint8_t *payload, size_t len, reply *r)
{
    t->seq++;
    last_sent = build_frame(type, t->seq, payload, len, frame_buf);
    feed(t, frame_buf, last_sent, 0, r);
    if (r->nframes != 1 || r->seq != t->seq) {
        return 0;
    }
    return r->type;
}

/* --- CBOR requests ------------------------------------------------------------------------------ */

static uint8_t req[TT_MAX_PAYLOAD + 64];

static size_t cbor_begin(uint32_t size, const uint8_t hash[TT_SHA256_SIZE])
{
    ZCBOR_STATE_E(s, 1, req, sizeof req, 0);
    bool ok = zcbor_list_start_encode(s, 2) && zcbor_uint32_put(s, size) &&
              zcbor_bstr_encode_ptr(s, (const char *)hash, TT_SHA256_SIZE) &&
              zcbor_list_end_encode(s, 2);
    TT_CHECK(ok);
    return (size_t)(s->payload - req);
}

static size_t cbor_chunk(uint32_t offset, const uint8_t *data, size_t len)
{
    ZCBOR_STATE_E(s, 1, req, sizeof req, 0);
    bool ok = zcbor_list_start_encode(s, 2) && zcbor_uint32_put(s, offset) &&
              zcbor_bstr_encode_ptr(s, (const char *)data, len) && zcbor_list_end_encode(s, 2);
    TT_CHECK(ok);
    return (size_t)(s->payload - req);
}

static size_t cbor_train(int32_t label, double lr, const uint8_t *sample, size_t len)
{
    ZCBOR_STATE_E(s, 1, req, sizeof req, 0);
    bool ok = zcbor_list_start_encode(s, 3) && zcbor_int32_put(s, label) &&
              zcbor_float64_put(s, lr) && zcbor_bstr_encode_ptr(s, (const char *)sample, len) &&
              zcbor_list_end_encode(s, 3);
    TT_CHECK(ok);
    return (size_t)(s->payload - req);
}

static size_t cbor_eval(const uint8_t *sample, size_t len)
{
    ZCBOR_STATE_E(s, 1, req, sizeof req, 0);
    bool ok = zcbor_list_start_encode(s, 1) &&
              zcbor_bstr_encode_ptr(s, (const char *)sample, len) && zcbor_list_end_encode(s, 1);
    TT_CHECK(ok);
    return (size_t)(s->payload - req);
}

static size_t cbor_read(uint32_t index, uint32_t offset, uint32_t length)
{
    ZCBOR_STATE_E(s, 1, req, sizeof req, 0);
    bool ok = zcbor_list_start_encode(s, 3) && zcbor_uint32_put(s, index) &&
              zcbor_uint32_put(s, offset) && zcbor_uint32_put(s, length) &&
              zcbor_list_end_encode(s, 3);
    TT_CHECK(ok);
    return (size_t)(s->payload - req);
}

static const uint8_t EMPTY_LIST[] = {0x80};

/* --- replies ------------------------------------------------------------------------------------ */

typedef struct {
    int32_t code;
    char msg[TT_ERROR_MSG_MAX + 1];
} device_error;

static bool decode_error(const reply *r, device_error *e)
{
    ZCBOR_STATE_D(s, 1, r->payload, r->len, 1, 0);
    struct zcbor_string msg;
    bool ok = r->type == TT_MSG_ERROR && zcbor_list_start_decode(s) &&
              zcbor_int32_decode(s, &e->code) && zcbor_tstr_decode(s, &msg) &&
              zcbor_list_end_decode(s) && msg.len <= TT_ERROR_MSG_MAX;
    if (ok) {
        memcpy(e->msg, msg.value, msg.len);
        e->msg[msg.len] = '\0';
    } else {
        e->code = 0;
        e->msg[0] = '\0';
    }
    return ok;
}

/* The request must be answered with ERROR carrying that status. */
static void expect_error(const char *what, uint8_t type, const reply *r, tt_status code)
{
    device_error e;
    bool ok = type == TT_MSG_ERROR && decode_error(r, &e) && e.code == (int32_t)code &&
              e.msg[0] != '\0';
    char detail[200];
    snprintf(detail, sizeof detail, "reply type 0x%02x, code %ld (want %s): %s", type,
             (long)(ok || type == TT_MSG_ERROR ? e.code : 0), tt_status_name(code),
             type == TT_MSG_ERROR ? e.msg : "");
    tt_test_case(what, ok, detail);
}

typedef struct {
    float loss;
    int32_t pred;
    uint32_t cost, step;
} step_reply;

static bool decode_step(const reply *r, step_reply *st)
{
    ZCBOR_STATE_D(s, 1, r->payload, r->len, 1, 0);
    return r->type == TT_MSG_STEP && zcbor_list_start_decode(s) &&
           zcbor_float32_decode(s, &st->loss) && zcbor_int32_decode(s, &st->pred) &&
           zcbor_uint32_decode(s, &st->cost) && zcbor_uint32_decode(s, &st->step) &&
           zcbor_list_end_decode(s);
}

typedef struct {
    char firmware[32], board[64], cost_unit[32];
    uint32_t protocol, plan_format, arena_capacity, plan_capacity, plan_slots, max_payload,
        arena_used, steps;
    bool plan_loaded;
    uint8_t plan_hash[TT_SHA256_SIZE];
    size_t plan_hash_len;
    uint32_t ops[96]; /* opcodes are below 96 (host/tinyhost/ops.py) */
    size_t n_ops;
    int keys;
} info;

static bool key_is(const struct zcbor_string *k, const char *name)
{
    return k->len == strlen(name) && memcmp(k->value, name, k->len) == 0;
}

static bool copy_tstr(zcbor_state_t *s, char *out, size_t size)
{
    struct zcbor_string v;
    if (!zcbor_tstr_decode(s, &v) || v.len >= size) {
        return false;
    }
    memcpy(out, v.value, v.len);
    out[v.len] = '\0';
    return true;
}

static bool decode_info(const reply *r, info *in)
{
    memset(in, 0, sizeof *in);
    ZCBOR_STATE_D(s, 2, r->payload, r->len, 1, 0);
    if (r->type != TT_MSG_INFO || !zcbor_map_start_decode(s)) {
        return false;
    }
    while (!zcbor_array_at_end(s)) {
        struct zcbor_string k, v;
        bool ok = zcbor_tstr_decode(s, &k);
        if (ok && key_is(&k, "firmware")) {
            ok = copy_tstr(s, in->firmware, sizeof in->firmware);
        } else if (ok && key_is(&k, "board")) {
            ok = copy_tstr(s, in->board, sizeof in->board);
        } else if (ok && key_is(&k, "cost_unit")) {
            ok = copy_tstr(s, in->cost_unit, sizeof in->cost_unit);
        } else if (ok && key_is(&k, "protocol")) {
            ok = zcbor_uint32_decode(s, &in->protocol);
        } else if (ok && key_is(&k, "plan_format")) {
            ok = zcbor_uint32_decode(s, &in->plan_format);
        } else if (ok && key_is(&k, "arena_capacity")) {
            ok = zcbor_uint32_decode(s, &in->arena_capacity);
        } else if (ok && key_is(&k, "plan_capacity")) {
            ok = zcbor_uint32_decode(s, &in->plan_capacity);
        } else if (ok && key_is(&k, "plan_slots")) {
            ok = zcbor_uint32_decode(s, &in->plan_slots);
        } else if (ok && key_is(&k, "max_payload")) {
            ok = zcbor_uint32_decode(s, &in->max_payload);
        } else if (ok && key_is(&k, "arena_used")) {
            ok = zcbor_uint32_decode(s, &in->arena_used);
        } else if (ok && key_is(&k, "steps")) {
            ok = zcbor_uint32_decode(s, &in->steps);
        } else if (ok && key_is(&k, "plan_loaded")) {
            ok = zcbor_bool_decode(s, &in->plan_loaded);
        } else if (ok && key_is(&k, "plan_hash")) {
            ok = zcbor_bstr_decode(s, &v) && v.len <= TT_SHA256_SIZE;
            if (ok) {
                memcpy(in->plan_hash, v.value, v.len);
                in->plan_hash_len = v.len;
            }
        } else if (ok && key_is(&k, "ops")) {
            ok = zcbor_list_start_decode(s);
            while (ok && !zcbor_array_at_end(s) && in->n_ops < 96) {
                ok = zcbor_uint32_decode(s, &in->ops[in->n_ops++]);
            }
            ok = ok && zcbor_list_end_decode(s);
        } else if (ok) {
            ok = zcbor_any_skip(s, NULL); /* keys added later */
            in->keys--;
        }
        if (!ok) {
            return false;
        }
        in->keys++;
    }
    return zcbor_map_end_decode(s);
}

static info hello(test_device *t, const char *what)
{
    reply r;
    info in;
    uint8_t type = request(t, TT_MSG_HELLO, NULL, 0, &r);
    bool ok = type == TT_MSG_INFO && decode_info(&r, &in);
    TT_CHECK_MSG(ok, "%s: HELLO got reply type 0x%02x", what, type);
    if (!ok) {
        memset(&in, 0, sizeof in);
    }
    return in;
}

/* --- protocol steps --------------------------------------------------------------------------- */

/* Uploads a plan in chunks; returns the COMMIT reply type (ERROR details in *r). The announced
 * hash is the file's sha256 unless `announce` is given. */
static uint8_t upload(test_device *t, const uint8_t *file, size_t len, size_t chunk,
                      const uint8_t *announce, reply *r)
{
    uint8_t hash[TT_SHA256_SIZE];
    tt_sha256(file, len, hash);
    uint8_t type = request(t, TT_MSG_PLAN_BEGIN, req,
                           cbor_begin((uint32_t)len, announce ? announce : hash), r);
    if (type != TT_MSG_ACK) {
        return type;
    }
    for (size_t at = 0; at < len; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        type = request(t, TT_MSG_PLAN_CHUNK, req, cbor_chunk((uint32_t)at, file + at, n), r);
        if (type != TT_MSG_ACK) {
            return type;
        }
    }
    return request(t, TT_MSG_PLAN_COMMIT, EMPTY_LIST, sizeof EMPTY_LIST, r);
}

static bool train(test_device *t, const pd_step *s, const uint8_t *sample, size_t len,
                  step_reply *st)
{
    reply r;
    return request(t, TT_MSG_TRAIN, req, cbor_train(s->label, s->lr, sample, len), &r) ==
               TT_MSG_STEP && decode_step(&r, st);
}

/* READ_TENSOR in pieces; false on any error. */
static bool read_tensor(test_device *t, uint32_t index, uint8_t *out, uint32_t nbytes)
{
    reply r;
    for (uint32_t at = 0; at < nbytes;) {
        uint32_t n = nbytes - at < 1000u ? nbytes - at : 1000u;
        if (request(t, TT_MSG_READ_TENSOR, req, cbor_read(index, at, n), &r) != TT_MSG_TENSOR) {
            return false;
        }
        ZCBOR_STATE_D(s, 1, r.payload, r.len, 1, 0);
        struct zcbor_string data;
        if (!zcbor_bstr_decode(s, &data) || data.len != n) {
            return false;
        }
        memcpy(out + at, data.value, n);
        at += n;
    }
    return true;
}

/* The plan's first trainable tensor (index, size), found with tt_plan_load in a scratch arena. */
static bool find_trainable(const uint8_t *file, size_t len, uint32_t *index, uint32_t *nbytes,
                           uint32_t *blob_at)
{
    static _Alignas(16) uint8_t scratch[ARENA_SIZE];
    tt_arena arena;
    tt_plan plan;
    tt_error err;
    tt_arena_init(&arena, scratch, sizeof scratch);
    if (tt_plan_load(file, len, &arena, 0, true, &plan, &err) != TT_OK) {
        printf("cannot load the plan: %s\n", err.msg);
        return false;
    }
    for (uint32_t i = 0; i < plan.n_tensors; i++) {
        if (plan.tensors[i].kind == TT_KIND_PARAM_TRAINABLE) {
            *index = i;
            *nbytes = plan.tensors[i].nbytes;
            *blob_at = (uint32_t)(plan.blob - file) + (uint32_t)plan.tensors[i].data_offset;
            return true;
        }
    }
    return false;
}

static bool close_rel(float got, float want)
{
    return fabsf(got - want) <= 1e-5f * fabsf(want);
}

typedef struct {
    const pd_plan *plan;
    uint8_t *file;
    size_t len;
    uint8_t *samples[PD_MAX_STEPS];
    size_t sample_len;
} plan_files;

static bool load_files(const char *dir, const pd_manifest *m, const char *name, plan_files *pf)
{
    memset(pf, 0, sizeof *pf);
    pf->plan = pd_find(m, name);
    if (pf->plan == NULL || (pf->file = pd_read(dir, pf->plan->file, &pf->len)) == NULL) {
        return false;
    }
    for (int k = 0; k < pf->plan->nsteps; k++) {
        if ((pf->samples[k] = pd_read(dir, pf->plan->steps[k].sample, &pf->sample_len)) == NULL) {
            return false;
        }
    }
    return true;
}

static void free_files(plan_files *pf)
{
    free(pf->file);
    for (int k = 0; k < PD_MAX_STEPS; k++) {
        free(pf->samples[k]);
    }
}

/* --- a plan store behind the port's slot hooks (flash on a device) --------------------------------- */

typedef struct {
    test_device t;
    int erases, writes, commits;
    int erased_slot, committed_slot;
    size_t erased_size, committed_len;
    size_t tables_at, tables_size; /* the last erase past offset 0: the plan's tables */
    size_t fail_write_at; /* a write at this offset fails (SIZE_MAX: never) */
} store_device;

static store_device flashdev;

/* Offset 0 (a plan upload) erases the whole slot; a later run (the plan's tables) only its own
 * range: the plan before it must stay. */
static int store_erase(void *ctx, int slot, size_t offset, size_t size)
{
    store_device *f = ctx;
    f->erases++;
    f->erased_slot = slot;
    if (offset == 0) {
        f->erased_size = size;
        memset(f->t.slots[slot], 0xFF, PLAN_CAPACITY);
    } else {
        if (offset + size > PLAN_CAPACITY) {
            return -28;
        }
        f->tables_at = offset;
        f->tables_size = size;
        memset(f->t.slots[slot] + offset, 0xFF, size);
    }
    return 0;
}

static int store_write(void *ctx, int slot, size_t offset, const uint8_t *data, size_t len)
{
    store_device *f = ctx;
    if (offset == f->fail_write_at) {
        return -5;
    }
    f->writes++;
    for (size_t i = 0; i < len; i++) { /* flash: programming only clears bits */
        f->t.slots[slot][offset + i] &= data[i];
    }
    return 0;
}

static void store_committed(void *ctx, int slot, size_t len)
{
    store_device *f = ctx;
    f->commits++;
    f->committed_slot = slot;
    f->committed_len = len;
}

static void store_port_write(void *ctx, const uint8_t *data, size_t len)
{
    port_write(&((store_device *)ctx)->t, data, len);
}

/* slots: 2, or 1 (slot 0 only: the single-slot store of a small flash). */
static void store_device_init(store_device *f, int slots)
{
    memset(f, 0, sizeof *f);
    f->fail_write_at = SIZE_MAX;
    tt_port port = {"test-flash", "ticks", NULL, store_port_write, f};
    tt_device_init(&f->t.dev, &port, f->t.arena, sizeof f->t.arena, f->t.slots[0],
                   slots == 2 ? f->t.slots[1] : NULL, PLAN_CAPACITY);
    tt_plan_store store = {store_erase, store_write, store_committed, f};
    tt_device_set_plan_store(&f->t.dev, &store);
    f->t.seq = 0x40;
}

/* ERROR with that status whose message contains `part`. */
static void expect_error_text(const char *what, uint8_t type, const reply *r, tt_status code,
                              const char *part)
{
    device_error e;
    bool ok = type == TT_MSG_ERROR && decode_error(r, &e) && e.code == (int32_t)code &&
              strstr(e.msg, part) != NULL;
    char detail[240];
    snprintf(detail, sizeof detail, "reply type 0x%02x, code %ld (want %s, \"%s\"): %s", type,
             (long)(type == TT_MSG_ERROR ? e.code : 0), tt_status_name(code), part,
             type == TT_MSG_ERROR ? e.msg : "");
    tt_test_case(what, ok, detail);
}

/* Uploads through the slot hooks, a failing write, and tt_device_restore of the stored slot. */
static void run_store(const plan_files *small, const plan_files *demo)
{
    reply r;
    step_reply st;
    char detail[160];
    store_device_init(&flashdev, 2);
    uint8_t type = upload(&flashdev.t, small->file, small->len, 700, NULL, &r);
    tt_plan sp;
    tt_error verr = {TT_OK, ""};
    bool valid = tt_plan_validate(small->file, small->len, SIZE_MAX, &sp, &verr) == TT_OK;
    size_t tables_at = (small->len + TT_PLAN_TABLES_ALIGN - 1) / TT_PLAN_TABLES_ALIGN *
                       TT_PLAN_TABLES_ALIGN;
    bool ok = type == TT_MSG_ACK && valid && flashdev.erases == 2 && flashdev.erased_slot == 1 &&
              flashdev.erased_size == small->len && flashdev.tables_at == tables_at &&
              flashdev.tables_size == sp.tables_size && flashdev.commits == 1 &&
              flashdev.committed_slot == 1 && flashdev.committed_len == small->len &&
              flashdev.writes == (int)((small->len + 699) / 700) + 1 &&
              memcmp(flashdev.t.slots[1], small->file, small->len) == 0;
    snprintf(detail, sizeof detail, "reply 0x%02x, erases %d (slot %d, %lu B; tables %lu B at "
             "%lu), writes %d, commits %d (slot %d, %lu B)", type, flashdev.erases,
             flashdev.erased_slot, (unsigned long)flashdev.erased_size,
             (unsigned long)flashdev.tables_size, (unsigned long)flashdev.tables_at,
             flashdev.writes, flashdev.commits, flashdev.committed_slot,
             (unsigned long)flashdev.committed_len);
    tt_test_case("store hooks: PLAN_BEGIN erases the inactive slot, chunks go through slot_write, "
                 "the commit erases and writes the tables after the plan (one staged piece) and "
                 "is reported", ok, detail);
    info in = hello(&flashdev.t, "tables in the slot");
    ok = in.plan_loaded && in.arena_used == sp.arena_size &&
         memcmp(flashdev.t.dev.plan.tensors, flashdev.t.slots[1] + tables_at, 16) == 0 &&
         (const uint8_t *)flashdev.t.dev.plan.tensors == flashdev.t.slots[1] + tables_at;
    snprintf(detail, sizeof detail, "arena_used %lu, plan arena %lu", (unsigned long)in.arena_used,
             (unsigned long)sp.arena_size);
    tt_test_case("store hooks: the tables are read in the slot, INFO arena_used is the plan's "
                 "arena alone", ok, detail);
    const pd_step *s0 = &small->plan->steps[0];
    ok = train(&flashdev.t, s0, small->samples[0], small->sample_len, &st) &&
         close_rel(st.loss, s0->loss);
    tt_test_case("store hooks: the plan runs from the stored slot (reference loss)", ok, NULL);

    flashdev.fail_write_at = 4000;
    type = upload(&flashdev.t, demo->file, demo->len, 4000, NULL, &r);
    expect_error("store hooks: a failing slot_write -> ERROR TT_ERR_STORAGE", type, &r,
                 TT_ERR_STORAGE);
    in = hello(&flashdev.t, "after the failed write");
    ok = in.plan_loaded && in.steps == 1 && flashdev.commits == 1 &&
         memcmp(in.plan_hash, small->file + small->len - TT_SHA256_SIZE, TT_SHA256_SIZE) == 0;
    tt_test_case("store hooks: ... and the running plan is kept", ok, NULL);
    type = request(&flashdev.t, TT_MSG_PLAN_CHUNK, req, cbor_chunk(8000, demo->file, 16), &r);
    expect_error("store hooks: ... and the upload is over (PLAN_CHUNK -> TT_ERR_PROTO)", type, &r,
                 TT_ERR_PROTO);

    /* A "reboot": a fresh device over the same slots restores the stored plan. */
    static store_device rebooted;
    store_device_init(&rebooted, 2);
    memcpy(rebooted.t.slots, flashdev.t.slots, sizeof rebooted.t.slots);
    tt_error err = {TT_OK, ""};
    tt_status rs = tt_device_restore(&rebooted.t.dev, 1, small->len, &err);
    in = hello(&rebooted.t, "restored");
    ok = rs == TT_OK && in.plan_loaded && in.steps == 0 &&
         memcmp(in.plan_hash, small->file + small->len - TT_SHA256_SIZE, TT_SHA256_SIZE) == 0 &&
         train(&rebooted.t, s0, small->samples[0], small->sample_len, &st) &&
         close_rel(st.loss, s0->loss);
    tt_test_case("tt_device_restore: the stored plan runs with its initial parameters", ok,
                 err.msg);
    /* The rebooted device's arena (and slots) lie elsewhere: the tables in the slot hold the first
     * device's pointers, so they are decoded into the arena's tail instead, and INFO counts them. */
    in = hello(&rebooted.t, "restored elsewhere");
    ok = in.arena_used == sp.arena_size + sp.tables_size && rebooted.t.dev.plan.tables_bytes > 0;
    snprintf(detail, sizeof detail, "arena_used %lu, arena %lu + tables %lu",
             (unsigned long)in.arena_used, (unsigned long)sp.arena_size,
             (unsigned long)sp.tables_size);
    tt_test_case("tt_device_restore: tables another build wrote -> tables in the arena tail", ok,
                 detail);
    /* The same device restoring its own slot: the tables there match and are used in place. */
    int erases = flashdev.erases;
    err = (tt_error){TT_OK, ""};
    rs = tt_device_restore(&flashdev.t.dev, 1, small->len, &err);
    in = hello(&flashdev.t, "restored in place");
    ok = rs == TT_OK && in.arena_used == sp.arena_size && flashdev.erases == erases &&
         (const uint8_t *)flashdev.t.dev.plan.tensors == flashdev.t.slots[1] + tables_at &&
         train(&flashdev.t, s0, small->samples[0], small->sample_len, &st) &&
         close_rel(st.loss, s0->loss);
    tt_test_case("tt_device_restore: this firmware's tables are checked and read in place (no "
                 "erase, no RAM)", ok, err.msg);
    rs = tt_device_restore(&rebooted.t.dev, 0, small->len, &err); /* slot 0 holds no plan */
    in = hello(&rebooted.t, "bad restore");
    ok = rs != TT_OK && !in.plan_loaded;
    tt_test_case("tt_device_restore of a slot without a valid plan fails, nothing loaded", ok,
                 tt_status_name(rs));

    /* The tables' write fails: the commit fails, the running plan keeps running. */
    flashdev.fail_write_at = (demo->len + TT_PLAN_TABLES_ALIGN - 1) / TT_PLAN_TABLES_ALIGN *
                             TT_PLAN_TABLES_ALIGN;
    type = upload(&flashdev.t, demo->file, demo->len, 4000, NULL, &r);
    expect_error_text("store hooks: the tables' write fails -> TT_ERR_STORAGE", type, &r,
                      TT_ERR_STORAGE, "tables");
    in = hello(&flashdev.t, "after the failed tables");
    ok = in.plan_loaded && in.steps == 1 && flashdev.commits == 1 &&
         memcmp(in.plan_hash, small->file + small->len - TT_SHA256_SIZE, TT_SHA256_SIZE) == 0 &&
         train(&flashdev.t, &small->plan->steps[1], small->samples[1], small->sample_len, &st) &&
         st.step == 2;
    tt_test_case("store hooks: ... and the running plan keeps training", ok, NULL);
    flashdev.fail_write_at = SIZE_MAX;

    /* A slot with room for the plan but not for its tables: refused at PLAN_COMMIT, saying so. */
    static store_device tight;
    store_device_init(&tight, 2);
    tt_port port = {"test-flash", "ticks", NULL, store_port_write, &tight};
    size_t capacity = tables_at + sp.tables_size - 8;
    tt_device_init(&tight.t.dev, &port, tight.t.arena, sizeof tight.t.arena, tight.t.slots[0],
                   tight.t.slots[1], capacity);
    tt_plan_store hooks = {store_erase, store_write, store_committed, &tight};
    tt_device_set_plan_store(&tight.t.dev, &hooks);
    type = upload(&tight.t, small->file, small->len, 700, NULL, &r);
    expect_error_text("a slot without room for the plan's tables -> TT_ERR_TOO_LARGE naming them",
                      type, &r, TT_ERR_TOO_LARGE, "tables exceed");
    in = hello(&tight.t, "tight");
    tt_test_case("... and no plan is loaded, nothing committed", !in.plan_loaded &&
                 tight.commits == 0, NULL);
    TT_CHECK(!flashdev.t.overflowed && !rebooted.t.overflowed && !tight.t.overflowed);
}

/* INFO says no plan is loaded, and TRAIN is refused saying why. */
static bool no_plan_runs(test_device *t, const plan_files *pf, const char *why)
{
    reply r;
    info in = hello(t, "no plan");
    const pd_step *s0 = &pf->plan->steps[0];
    uint8_t type = request(t, TT_MSG_TRAIN, req,
                           cbor_train(s0->label, s0->lr, pf->samples[0], pf->sample_len), &r);
    device_error e;
    return !in.plan_loaded && in.plan_hash_len == 0 && in.arena_used == 0 &&
           type == TT_MSG_ERROR && decode_error(&r, &e) && e.code == TT_ERR_NO_PLAN &&
           strstr(e.msg, why) != NULL;
}

static bool runs_plan(test_device *t, const plan_files *pf, uint32_t steps_before)
{
    step_reply st;
    const pd_step *s0 = &pf->plan->steps[0];
    info in = hello(t, "runs");
    return in.plan_loaded && in.plan_slots == 1 && in.steps == steps_before &&
           memcmp(in.plan_hash, pf->file + pf->len - TT_SHA256_SIZE, TT_SHA256_SIZE) == 0 &&
           train(t, s0, pf->samples[0], pf->sample_len, &st) && st.step == steps_before + 1 &&
           (steps_before > 0 || close_rel(st.loss, s0->loss)); /* the reference's first step */
}

/* One plan slot (a flash too small for two): an upload overwrites the running plan, so it is
 * unloaded at PLAN_BEGIN; an interrupted or corrupt upload leaves no plan, never a partial one. */
static void run_single_slot(const plan_files *small, const plan_files *demo)
{
    reply r;
    uint8_t type;
    static store_device one, rebooted;
    store_device_init(&one, 1);
    info in = hello(&one.t, "single slot");
    tt_test_case("one slot: INFO plan_slots = 1", in.plan_slots == 1 &&
                 in.plan_capacity == PLAN_CAPACITY && !in.plan_loaded, NULL);

    type = upload(&one.t, small->file, small->len, 700, NULL, &r);
    bool ok = type == TT_MSG_ACK && one.erases == 2 && one.erased_slot == 0 &&
              one.commits == 1 && one.committed_slot == 0 && one.committed_len == small->len &&
              runs_plan(&one.t, small, 0);
    tt_test_case("one slot: upload erases (plan, then its tables) and commits slot 0, the plan "
                 "trains (reference loss)", ok, NULL);

    type = request(&one.t, TT_MSG_PLAN_BEGIN, req, cbor_begin(PLAN_CAPACITY + 1, small->file), &r);
    expect_error("one slot: PLAN_BEGIN over capacity -> TT_ERR_TOO_LARGE", type, &r,
                 TT_ERR_TOO_LARGE);
    ok = one.erases == 2 && runs_plan(&one.t, small, 1);
    tt_test_case("one slot: ... refused before erasing: the running plan is kept", ok, NULL);

    /* Interrupted: the demo plan's first half arrives, then the link goes quiet. */
    uint8_t hash[TT_SHA256_SIZE];
    tt_sha256(demo->file, demo->len, hash);
    type = request(&one.t, TT_MSG_PLAN_BEGIN, req, cbor_begin((uint32_t)demo->len, hash), &r);
    uint8_t t2 = TT_MSG_ACK;
    for (size_t at = 0; at < demo->len / 2 && t2 == TT_MSG_ACK; at += 2000) {
        size_t n = cbor_chunk((uint32_t)at, demo->file + at, 2000);
        t2 = request(&one.t, TT_MSG_PLAN_CHUNK, req, n, &r);
    }
    ok = type == TT_MSG_ACK && t2 == TT_MSG_ACK && one.erases == 3 && one.erased_slot == 0 &&
         no_plan_runs(&one.t, small, "an upload replaced it (one plan slot)");
    tt_test_case("one slot: during an upload no plan is loaded (INFO; TRAIN -> TT_ERR_NO_PLAN "
                 "saying the upload replaced it)", ok, NULL);
    type = request(&one.t, TT_MSG_PLAN_COMMIT, EMPTY_LIST, sizeof EMPTY_LIST, &r);
    expect_error("one slot: PLAN_COMMIT of half a plan -> TT_ERR_PROTO", type, &r, TT_ERR_PROTO);
    ok = one.commits == 1 && no_plan_runs(&one.t, small, "not committed");
    tt_test_case("one slot: ... and still no plan runs", ok, NULL);

    /* A "reboot" over the half-written slot: the last committed record names the small plan;
     * its bytes are gone, and the restore refuses what is there. */
    store_device_init(&rebooted, 1);
    memcpy(rebooted.t.slots[0], one.t.slots[0], PLAN_CAPACITY);
    tt_error err = {TT_OK, ""};
    tt_status rs = tt_device_restore(&rebooted.t.dev, 0, small->len, &err);
    ok = rs != TT_OK && no_plan_runs(&rebooted.t, small, "upload one first");
    tt_test_case("one slot: restore after an interrupted upload fails, no plan loaded", ok,
                 err.msg);
    rs = tt_device_restore(&rebooted.t.dev, 0, demo->len, &err);
    ok = rs != TT_OK && no_plan_runs(&rebooted.t, small, "upload one first");
    tt_test_case("one slot: ... also as the plan being uploaded (half of it)", ok, err.msg);
    rs = tt_device_restore(&rebooted.t.dev, 1, small->len, &err);
    tt_test_case("one slot: restore of slot 1 -> TT_ERR_ARG", rs == TT_ERR_ARG, err.msg);

    /* Every byte arrives but does not match the announced sha256 (a corrupt transfer). */
    uint8_t wrong[TT_SHA256_SIZE];
    memcpy(wrong, hash, sizeof wrong);
    wrong[0] ^= 1;
    type = upload(&one.t, demo->file, demo->len, 4000, wrong, &r);
    expect_error_text("one slot: a corrupt upload -> TT_ERR_PLAN_HASH, saying no plan is loaded",
                      type, &r, TT_ERR_PLAN_HASH, "no plan loaded (one slot)");
    ok = one.commits == 1 && no_plan_runs(&one.t, small, "not committed");
    tt_test_case("one slot: ... and nothing runs", ok, NULL);

    /* A failing flash write. */
    one.fail_write_at = 4000;
    type = upload(&one.t, demo->file, demo->len, 4000, NULL, &r);
    expect_error_text("one slot: a failing write -> TT_ERR_STORAGE, saying no plan is loaded",
                      type, &r, TT_ERR_STORAGE, "no plan loaded (one slot)");
    ok = one.commits == 1 && no_plan_runs(&one.t, small, "not committed");
    tt_test_case("one slot: ... and nothing runs", ok, NULL);
    one.fail_write_at = SIZE_MAX;

    /* A complete upload recovers; a reboot restores it. */
    type = upload(&one.t, demo->file, demo->len, 4000, NULL, &r);
    ok = type == TT_MSG_ACK && one.commits == 2 && one.committed_slot == 0 &&
         one.committed_len == demo->len && runs_plan(&one.t, demo, 0);
    tt_test_case("one slot: a complete upload then commits and trains (reference loss)", ok, NULL);
    store_device_init(&rebooted, 1);
    memcpy(rebooted.t.slots[0], one.t.slots[0], PLAN_CAPACITY);
    rs = tt_device_restore(&rebooted.t.dev, 0, demo->len, &err);
    ok = rs == TT_OK && runs_plan(&rebooted.t, demo, 0);
    tt_test_case("one slot: restore at boot runs the committed plan (reference loss)", ok,
                 err.msg);

    /* RAM slot, no store hooks: the same rules with memcpy. */
    static test_device ram;
    device_init(&ram);
    tt_port port = {"test-ram", "ticks", NULL, port_write, &ram};
    tt_device_init(&ram.dev, &port, ram.arena, sizeof ram.arena, ram.slots[0], NULL,
                   PLAN_CAPACITY);
    ok = upload(&ram, small->file, small->len, 700, NULL, &r) == TT_MSG_ACK &&
         runs_plan(&ram, small, 0) &&
         upload(&ram, demo->file, demo->len, 4000, wrong, &r) == TT_MSG_ERROR &&
         no_plan_runs(&ram, small, "not committed") &&
         upload(&ram, demo->file, demo->len, 4000, NULL, &r) == TT_MSG_ACK &&
         runs_plan(&ram, demo, 0);
    tt_test_case("one RAM slot: upload, corrupt upload (no plan), upload again", ok, NULL);
    TT_CHECK(!one.t.overflowed && !rebooted.t.overflowed && !ram.overflowed);
}

/* --- the test --------------------------------------------------------------------------------- */

static void run(const char *dir)
{
    pd_manifest m;
    plan_files small, demo;
    if (!pd_read_manifest(dir, &m) || !load_files(dir, &m, "small", &small) ||
        !load_files(dir, &m, "demo", &demo)) {
        tt_test_case("read the generated plans", 0, dir);
        return;
    }
    size_t bad_len = 0, bad_demo_len = 0;
    /* A structurally bad plan with a valid content hash, from the mutants. */
    uint8_t *pack;
    size_t pack_len, pos = 0;
    uint8_t *bad = NULL, *bad_demo = NULL;
    pack = pd_read(dir, "mutants.bin", &pack_len);
    pd_mutant mu;
    while (pack != NULL && pd_next_mutant(pack, pack_len, &pos, &mu)) {
        if (strcmp(mu.name, "small/opcode-99") == 0) {
            bad = pd_copy(mu.data, mu.len);
            bad_len = mu.len;
        } else if (strcmp(mu.name, "demo/linear-in-features+1") == 0) {
            bad_demo = pd_copy(mu.data, mu.len);
            bad_demo_len = mu.len;
        }
    }
    free(pack);
    if (bad == NULL || bad_demo == NULL) {
        tt_test_case("find the bad plans in mutants.bin", 0, NULL);
        return;
    }
    uint32_t ti, tbytes, tblob;
    if (!find_trainable(small.file, small.len, &ti, &tbytes, &tblob)) {
        tt_test_case("find a trainable tensor", 0, NULL);
        return;
    }
    uint8_t *params = malloc(tbytes), *params2 = malloc(tbytes);
    reply r;
    step_reply st, st2;
    uint8_t type;

    device_init(&dut);
    device_init(&twin);

    /* HELLO before anything: the INFO map. */
    info in = hello(&dut, "first HELLO");
    bool ok = in.protocol == TT_PROTOCOL_VERSION && in.plan_format == TT_PLAN_FORMAT_VERSION &&
              strcmp(in.firmware, TT_FIRMWARE_VERSION) == 0 &&
              strcmp(in.board, "test-board") == 0 && strcmp(in.cost_unit, "ticks") == 0 &&
              in.arena_capacity == ARENA_SIZE && in.plan_capacity == PLAN_CAPACITY &&
              in.max_payload == TT_MAX_PAYLOAD && !in.plan_loaded && in.plan_hash_len == 0 &&
              in.plan_slots == 2 && in.arena_used == 0 && in.steps == 0 && in.n_ops >= 27 &&
              in.keys == 14;
    for (size_t i = 0; ok && i < 27; i++) { /* the fp32 ops 1..14 and the int8 graph's 20..32 */
        ok = in.ops[i] == (uint32_t)(i < 14 ? TT_OP_LINEAR_F32 + i : TT_OP_CONV2D_S8 + (i - 14));
    }
    tt_test_case("HELLO -> INFO map with every documented key", ok, NULL);
    hello(&twin, "twin");

    type = request(&dut, TT_MSG_TRAIN, req, cbor_train(0, 0.1, small.samples[0], small.sample_len), &r);
    expect_error("TRAIN without a plan -> ERROR TT_ERR_NO_PLAN", type, &r, TT_ERR_NO_PLAN);
    type = request(&dut, TT_MSG_PLAN_CHUNK, req, cbor_chunk(0, small.file, 10), &r);
    expect_error("PLAN_CHUNK without PLAN_BEGIN -> ERROR", type, &r, TT_ERR_PROTO);
    type = request(&dut, TT_MSG_PLAN_BEGIN, req, cbor_begin(PLAN_CAPACITY + 1, small.file), &r);
    expect_error("PLAN_BEGIN larger than the plan store -> TT_ERR_TOO_LARGE", type, &r,
                 TT_ERR_TOO_LARGE);
    type = request(&dut, 0x55, EMPTY_LIST, 1, &r);
    expect_error("unknown message type -> ERROR TT_ERR_PROTO", type, &r, TT_ERR_PROTO);
    type = request(&dut, TT_MSG_TRAIN, EMPTY_LIST, 1, &r);
    expect_error("TRAIN with a malformed payload -> ERROR TT_ERR_PROTO", type, &r, TT_ERR_PROTO);

    /* Upload in chunks, commit. */
    type = upload(&dut, small.file, small.len, 700, NULL, &r);
    tt_test_case("plan upload in 700-byte chunks + commit -> ACK",
                 type == TT_MSG_ACK && r.len == 1 && r.payload[0] == 0x80, NULL);
    upload(&twin, small.file, small.len, 700, NULL, &r);
    in = hello(&dut, "after upload");
    tt_test_case("INFO after upload: plan_loaded, plan_hash = the file's body hash, arena_used",
                 in.plan_loaded && in.plan_hash_len == TT_SHA256_SIZE &&
                 memcmp(in.plan_hash, small.file + small.len - TT_SHA256_SIZE,
                        TT_SHA256_SIZE) == 0 && in.arena_used > 0 && in.steps == 0, NULL);
    ok = read_tensor(&dut, ti, params, tbytes) &&
         memcmp(params, small.file + tblob, tbytes) == 0;
    tt_test_case("READ_TENSOR of a trainable tensor = its initial value in the plan", ok, NULL);

    /* TRAIN -> STEP with the reference executor's loss. */
    const pd_step *s0 = &small.plan->steps[0];
    reply original, again;
    type = request(&dut, TT_MSG_TRAIN, req,
                   cbor_train(s0->label, s0->lr, small.samples[0], small.sample_len), &original);
    ok = type == TT_MSG_STEP && decode_step(&original, &st);
    char detail[160];
    snprintf(detail, sizeof detail, "loss %.9g (reference %.9g), pred %ld, step %lu, cost %lu",
             (double)st.loss, (double)s0->loss, (long)st.pred, (unsigned long)st.step,
             (unsigned long)st.cost);
    tt_test_case("TRAIN -> STEP with the reference loss, step 1",
                 ok && close_rel(st.loss, s0->loss) && st.pred == s0->pred && st.step == 1 &&
                     st.cost == 7, detail);
    uint8_t train_frame[TT_ENCODED_MAX];
    size_t train_len = last_sent;
    memcpy(train_frame, frame_buf, last_sent);
    train(&twin, s0, small.samples[0], small.sample_len, &st2);

    /* A retransmission (same seq and type) is answered from the cache, not executed: the same
     * reply bytes, even fed in 3-byte pieces. */
    feed(&dut, train_frame, train_len, 3, &again);
    step_reply sr;
    ok = again.nframes == 1 && original.wire_len == again.wire_len &&
         memcmp(original.wire, again.wire, again.wire_len) == 0 && decode_step(&again, &sr) &&
         sr.step == 1 && sr.loss == st.loss;
    tt_test_case("retransmitted TRAIN is answered from the cache (step count stays 1)", ok, NULL);
    TT_CHECK(dut.dev.steps == 1);

    /* A corrupted frame -> NAK; the cached reply still answers the retransmission. */
    uint8_t corrupt[TT_ENCODED_MAX];
    memcpy(corrupt, train_frame, train_len);
    corrupt[train_len / 2] ^= 0x40;
    if (corrupt[train_len / 2] == 0) {
        corrupt[train_len / 2] = 0x01;
    }
    reply nak;
    feed(&dut, corrupt, train_len, 0, &nak);
    ok = nak.nframes == 1 && nak.type == TT_MSG_NAK && nak.seq == 0 && nak.len == 0;
    feed(&dut, train_frame, train_len, 0, &again);
    ok = ok && again.nframes == 1 && again.wire_len == original.wire_len &&
         memcmp(again.wire, original.wire, again.wire_len) == 0;
    tt_test_case("corrupted frame -> NAK, then the retransmission gets the cached STEP", ok, NULL);
    TT_CHECK(dut.dev.steps == 1 && dut.dev.bad_frames == 1);

    /* The same sequence number and type with another sample is not a retransmission: refused as
     * stale, not answered with the old STEP; so is an older sequence number. */
    reply stale;
    size_t n_other = build_frame(TT_MSG_TRAIN, dut.seq, req,
                                 cbor_train(s0->label, s0->lr, small.samples[1], small.sample_len),
                                 frame_buf);
    feed(&dut, frame_buf, n_other, 0, &stale);
    expect_error("same seq and type, another sample -> ERROR TT_ERR_PROTO (stale), not the cached "
                 "STEP", stale.type, &stale, TT_ERR_PROTO);
    n_other = build_frame(TT_MSG_TRAIN, (uint8_t)(dut.seq - 5u), req,
                          cbor_train(s0->label, s0->lr, small.samples[1], small.sample_len),
                          frame_buf);
    feed(&dut, frame_buf, n_other, 0, &stale);
    expect_error("an older sequence number -> ERROR TT_ERR_PROTO (stale)", stale.type, &stale,
                 TT_ERR_PROTO);
    /* Learning rates that cannot work are refused before anything runs. */
    static const double bad_lrs[] = {0.0, -0.01, 1e39, (double)NAN, (double)INFINITY};
    for (size_t i = 0; i < sizeof bad_lrs / sizeof bad_lrs[0]; i++) {
        reply bad_lr;
        uint8_t got = request(&dut, TT_MSG_TRAIN, req,
                              cbor_train(s0->label, bad_lrs[i], small.samples[1],
                                         small.sample_len),
                              &bad_lr);
        char what[80];
        snprintf(what, sizeof what, "TRAIN with lr %g -> ERROR TT_ERR_ARG", bad_lrs[i]);
        expect_error(what, got, &bad_lr, TT_ERR_ARG);
    }
    TT_CHECK_MSG(dut.dev.steps == 1, "steps = %lu after refused requests",
                 (unsigned long)dut.dev.steps);
    in = hello(&dut, "after retransmissions");
    TT_CHECK_MSG(in.steps == 1, "INFO steps = %lu after one step and retransmissions",
                 (unsigned long)in.steps);

    /* More steps agree with the reference and the twin. */
    for (int k = 1; k < small.plan->nsteps; k++) {
        const pd_step *sk = &small.plan->steps[k];
        ok = train(&dut, sk, small.samples[k], small.sample_len, &st) &&
             train(&twin, sk, small.samples[k], small.sample_len, &st2);
        snprintf(detail, sizeof detail, "loss %.9g, twin %.9g, reference %.9g", (double)st.loss,
                 (double)st2.loss, (double)sk->loss);
        char name[80];
        snprintf(name, sizeof name, "TRAIN step %d = reference and twin", k + 1);
        tt_test_case(name, ok && close_rel(st.loss, sk->loss) && st.loss == st2.loss &&
                               st.step == (uint32_t)k + 1, detail);
    }

    /* Bad uploads are refused; the running plan keeps its trained parameters. */
    ok = read_tensor(&dut, ti, params, tbytes) && memcmp(params, small.file + tblob, tbytes) != 0;
    tt_test_case("training changed the parameters", ok, NULL);
    /* A reply too large to keep (TENSOR) is not replayed: its retransmitted request (READ_TENSOR,
     * which changes nothing) is answered anew, with the same bytes. */
    reply first, again_read;
    size_t read_len = cbor_read(ti, 0, tbytes < 1000u ? tbytes : 1000u);
    ok = request(&dut, TT_MSG_READ_TENSOR, req, read_len, &first) == TT_MSG_TENSOR &&
         first.len > TT_REPLAY_MAX && dut.dev.last_reply_len == 0;
    feed(&dut, frame_buf, last_sent, 0, &again_read);
    ok = ok && again_read.nframes == 1 && again_read.wire_len == first.wire_len &&
         memcmp(again_read.wire, first.wire, first.wire_len) == 0;
    tt_test_case("retransmitted READ_TENSOR (reply not kept) is answered anew, same bytes", ok,
                 NULL);
    uint8_t wrong[TT_SHA256_SIZE];
    tt_sha256(small.file, small.len, wrong);
    wrong[5] ^= 1;
    type = upload(&dut, small.file, small.len, 1000, wrong, &r);
    expect_error("upload with a wrong announced sha256 -> ERROR TT_ERR_PLAN_HASH", type, &r,
                 TT_ERR_PLAN_HASH);
    ok = read_tensor(&dut, ti, params2, tbytes) && memcmp(params, params2, tbytes) == 0;
    tt_test_case("... and the trained parameters are unchanged", ok, NULL);

    type = upload(&dut, bad, bad_len, 1000, NULL, &r);
    expect_error("upload of a plan with an unknown opcode -> ERROR TT_ERR_UNSUPPORTED_OP", type,
                 &r, TT_ERR_UNSUPPORTED_OP);
    ok = read_tensor(&dut, ti, params2, tbytes) && memcmp(params, params2, tbytes) == 0;
    tt_test_case("... and the trained parameters are unchanged", ok, NULL);

    type = upload(&dut, bad_demo, bad_demo_len, 1500, NULL, &r);
    expect_error("upload of a larger plan whose op sizes are wrong -> ERROR TT_ERR_PLAN_BOUNDS",
                 type, &r, TT_ERR_PLAN_BOUNDS);
    ok = read_tensor(&dut, ti, params2, tbytes) && memcmp(params, params2, tbytes) == 0;
    tt_test_case("... and the trained parameters are unchanged", ok, NULL);

    type = upload(&dut, small.file, small.len - 10, 1000, NULL, &r);
    expect_error("upload of a truncated plan -> ERROR TT_ERR_PLAN_FORMAT", type, &r,
                 TT_ERR_PLAN_FORMAT);
    type = request(&dut, TT_MSG_PLAN_BEGIN, req, cbor_begin((uint32_t)small.len, wrong), &r);
    TT_CHECK(type == TT_MSG_ACK);
    type = request(&dut, TT_MSG_PLAN_CHUNK, req, cbor_chunk(10, small.file, 10), &r);
    expect_error("PLAN_CHUNK out of order -> ERROR TT_ERR_PROTO", type, &r, TT_ERR_PROTO);
    /* A chunk resent after its ACK was lost, whole or cut smaller, is taken (the host shrinks its
     * chunks on a noisy line); one that changes bytes already received is not. */
    type = request(&dut, TT_MSG_PLAN_CHUNK, req, cbor_chunk(0, small.file, 40), &r);
    TT_CHECK(type == TT_MSG_ACK);
    type = request(&dut, TT_MSG_PLAN_CHUNK, req, cbor_chunk(0, small.file, 40), &r);
    ok = type == TT_MSG_ACK;
    type = request(&dut, TT_MSG_PLAN_CHUNK, req, cbor_chunk(20, small.file + 20, 30), &r);
    ok = ok && type == TT_MSG_ACK && dut.dev.upload_next == 50;
    tt_test_case("PLAN_CHUNK repeating received bytes (a resend) -> ACK, only new bytes added", ok,
                 NULL);
    uint8_t changed[16];
    memcpy(changed, small.file + 30, sizeof changed);
    changed[3] ^= 0x5A;
    type = request(&dut, TT_MSG_PLAN_CHUNK, req, cbor_chunk(30, changed, sizeof changed), &r);
    expect_error("PLAN_CHUNK changing received bytes -> ERROR TT_ERR_PROTO", type, &r,
                 TT_ERR_PROTO);
    type = request(&dut, TT_MSG_PLAN_COMMIT, EMPTY_LIST, 1, &r);
    expect_error("PLAN_COMMIT before every byte arrived -> ERROR TT_ERR_PROTO", type, &r,
                 TT_ERR_PROTO);
    in = hello(&dut, "after bad uploads");
    tt_test_case("INFO after the bad uploads: the same plan, step count kept",
                 in.plan_loaded && in.steps == 3 &&
                     memcmp(in.plan_hash, small.file + small.len - TT_SHA256_SIZE,
                            TT_SHA256_SIZE) == 0, NULL);

    /* Checkpoints and set-parameters. No store: CHECKPOINT is an error; with one, the port's
     * hook runs and what tt_device_params() walks restores the parameters. */
    expect_error("CHECKPOINT without a store -> ERROR TT_ERR_STORAGE",
                 request(&dut, TT_MSG_CHECKPOINT, EMPTY_LIST, 1, &r), &r, TT_ERR_STORAGE);
    int saves = 0;
    tt_device_set_checkpoint(&dut.dev, count_save, &saves);
    type = request(&dut, TT_MSG_CHECKPOINT, EMPTY_LIST, 1, &r);
    tt_test_case("CHECKPOINT with a store -> the port saves, ACK", type == TT_MSG_ACK && saves == 1,
                 NULL);
    size_t nparams = tt_device_params(&dut.dev, NULL, NULL);
    uint8_t *snapshot = malloc(nparams);
    size_t at = 0;
    void *put_ctx[2] = {snapshot, &at};
    tt_device_params(&dut.dev, put_bytes, put_ctx);
    uint8_t wzeros[8] = {0};
    ZCBOR_STATE_E(ws, 1, req, sizeof req, 0);
    TT_CHECK(zcbor_list_start_encode(ws, 3) && zcbor_uint32_put(ws, ti) &&
             zcbor_uint32_put(ws, 0) && zcbor_bstr_encode_ptr(ws, (const char *)wzeros, 8) &&
             zcbor_list_end_encode(ws, 3));
    type = request(&dut, TT_MSG_WRITE_TENSOR, req, (size_t)(ws->payload - req), &r);
    ok = type == TT_MSG_ACK && read_tensor(&dut, ti, params2, tbytes) &&
         memcmp(params2, wzeros, tbytes < 8 ? tbytes : 8) == 0;
    tt_test_case("WRITE_TENSOR into a trainable parameter -> ACK, the bytes are there", ok, NULL);
    ZCBOR_STATE_E(ws2, 1, req, sizeof req, 0);
    TT_CHECK(zcbor_list_start_encode(ws2, 3) && zcbor_uint32_put(ws2, dut.dev.plan.input) &&
             zcbor_uint32_put(ws2, 0) && zcbor_bstr_encode_ptr(ws2, (const char *)wzeros, 4) &&
             zcbor_list_end_encode(ws2, 3));
    expect_error("WRITE_TENSOR into the input (not trainable) -> ERROR TT_ERR_ARG",
                 request(&dut, TT_MSG_WRITE_TENSOR, req, (size_t)(ws2->payload - req), &r), &r,
                 TT_ERR_ARG);
    tt_error perr = {TT_OK, ""};
    ok = tt_device_restore_params(&dut.dev, snapshot, nparams - 1, 3, &perr) == TT_ERR_ARG &&
         tt_device_restore_params(&dut.dev, snapshot, nparams, 3, &perr) == TT_OK &&
         read_tensor(&dut, ti, params2, tbytes) && memcmp(params, params2, tbytes) == 0 &&
         dut.dev.steps == 3;
    tt_test_case("tt_device_restore_params puts the walked parameters back (wrong size refused)",
                 ok, perr.msg);
    free(snapshot);
    tt_device_set_checkpoint(&dut.dev, NULL, NULL);

    /* Training continues exactly as on the twin that never saw the bad uploads. */
    ok = train(&dut, s0, small.samples[0], small.sample_len, &st) &&
         train(&twin, s0, small.samples[0], small.sample_len, &st2) && st.loss == st2.loss &&
         st.pred == st2.pred && st.step == 4 && st2.step == 4;
    ok = ok && read_tensor(&dut, ti, params, tbytes) && read_tensor(&twin, ti, params2, tbytes) &&
         memcmp(params, params2, tbytes) == 0;
    tt_test_case("after the refused uploads, training equals the twin's (loss and parameters)",
                 ok, NULL);

    /* A sample sent ahead with INPUT_CHUNK, then TRAIN with an empty sample. */
    const pd_step *s1 = &small.plan->steps[1];
    size_t half = small.sample_len / 2;
    ok = request(&dut, TT_MSG_INPUT_CHUNK, req, cbor_chunk(0, small.samples[1], half), &r) ==
             TT_MSG_ACK &&
         request(&dut, TT_MSG_INPUT_CHUNK, req,
                 cbor_chunk((uint32_t)half, small.samples[1] + half, small.sample_len - half),
                 &r) == TT_MSG_ACK &&
         train(&dut, s1, small.samples[1], 0, &st) &&
         train(&twin, s1, small.samples[1], small.sample_len, &st2) && st.loss == st2.loss;
    tt_test_case("INPUT_CHUNK x2 + TRAIN with an empty sample = TRAIN with the sample", ok, NULL);
    type = request(&dut, TT_MSG_INPUT_CHUNK, req,
                   cbor_chunk((uint32_t)small.sample_len - 4, small.samples[1], 8), &r);
    expect_error("INPUT_CHUNK past the input tensor -> ERROR TT_ERR_PROTO", type, &r,
                 TT_ERR_PROTO);
    type = request(&dut, TT_MSG_TRAIN, req, cbor_train(0, 0.1, small.samples[0], 12), &r);
    expect_error("TRAIN with a sample of the wrong size -> ERROR TT_ERR_PROTO", type, &r,
                 TT_ERR_PROTO);
    type = request(&dut, TT_MSG_TRAIN, req,
                   cbor_train(small.plan->steps[0].label + 100, 0.1, small.samples[0],
                              small.sample_len), &r);
    expect_error("TRAIN with a label out of range -> ERROR TT_ERR_LABEL", type, &r, TT_ERR_LABEL);
    type = request(&dut, TT_MSG_READ_TENSOR, req, cbor_read(ti, tbytes - 4, 8), &r);
    expect_error("READ_TENSOR past the tensor -> ERROR TT_ERR_ARG", type, &r, TT_ERR_ARG);
    type = request(&dut, TT_MSG_READ_TENSOR, req, cbor_read(100000, 0, 4), &r);
    expect_error("READ_TENSOR of no tensor -> ERROR TT_ERR_ARG", type, &r, TT_ERR_ARG);

    /* EVAL = twin's. */
    int32_t p1 = -1, p2 = -2;
    if (request(&dut, TT_MSG_EVAL, req, cbor_eval(small.samples[2], small.sample_len), &r) ==
        TT_MSG_PRED) {
        ZCBOR_STATE_D(s, 1, r.payload, r.len, 1, 0);
        if (!(zcbor_list_start_decode(s) && zcbor_int32_decode(s, &p1))) {
            p1 = -1;
        }
    }
    if (request(&twin, TT_MSG_EVAL, req, cbor_eval(small.samples[2], small.sample_len), &r) ==
        TT_MSG_PRED) {
        ZCBOR_STATE_D(s, 1, r.payload, r.len, 1, 0);
        if (!(zcbor_list_start_decode(s) && zcbor_int32_decode(s, &p2))) {
            p2 = -2;
        }
    }
    tt_test_case("EVAL -> PRED, the twin's", p1 == p2 && p1 >= 0, NULL);

    /* Oversize input: 100 KB without a delimiter must not overflow; the frame that follows is
     * swallowed by the garbage (one NAK), and its retransmission works. */
    static uint8_t garbage[100 * 1024];
    memset(garbage, 0x55, sizeof garbage);
    reply g;
    feed(&dut, garbage, sizeof garbage, 4096, &g);
    ok = g.nframes == 0;
    dut.seq++;
    size_t hello_len = build_frame(TT_MSG_HELLO, dut.seq, NULL, 0, frame_buf);
    feed(&dut, frame_buf, hello_len, 0, &g);
    ok = ok && g.nframes == 1 && g.type == TT_MSG_NAK;
    feed(&dut, frame_buf, hello_len, 0, &g);
    ok = ok && g.nframes == 1 && g.type == TT_MSG_INFO && g.seq == dut.seq;
    /* ... and with a delimiter after the garbage, the next frame is answered at once. */
    static uint8_t stream[100 * 1024 + 1 + 64];
    memcpy(stream, garbage, sizeof garbage);
    stream[sizeof garbage] = 0;
    dut.seq++;
    hello_len = build_frame(TT_MSG_HELLO, dut.seq, NULL, 0, stream + sizeof garbage + 1);
    feed(&dut, stream, sizeof garbage + 1 + hello_len, 0, &g);
    ok = ok && g.nframes == 2 && g.type == TT_MSG_INFO && g.seq == dut.seq;
    /* A frame exactly one byte over the receive buffer. */
    static uint8_t big[TT_ENCODED_MAX + 2];
    memset(big, 0x33, sizeof big);
    big[sizeof big - 1] = 0;
    feed(&dut, big, sizeof big, 0, &g);
    ok = ok && g.nframes == 1 && g.type == TT_MSG_NAK;
    tt_test_case("100 KB without a delimiter and an oversize frame -> NAK, no overflow; the next "
                 "frame works", ok && !dut.overflowed, NULL);
    /* Line noise: empty frames are ignored. */
    static const uint8_t zeros[8] = {0};
    feed(&dut, zeros, sizeof zeros, 0, &g);
    TT_CHECK(g.nframes == 0);

    /* RESET: parameters back to the plan's initial values, steps 0. */
    type = request(&dut, TT_MSG_RESET, EMPTY_LIST, 1, &r);
    ok = type == TT_MSG_ACK && read_tensor(&dut, ti, params, tbytes) &&
         memcmp(params, small.file + tblob, tbytes) == 0 && hello(&dut, "reset").steps == 0;
    tt_test_case("RESET -> ACK, initial parameters, step count 0", ok, NULL);

    /* A good upload of another plan replaces it. */
    type = upload(&dut, demo.file, demo.len, 4000, NULL, &r);
    tt_test_case("upload of the demo plan (4000-byte chunks) -> ACK", type == TT_MSG_ACK, NULL);
    const pd_step *d0 = &demo.plan->steps[0];
    ok = train(&dut, d0, demo.samples[0], demo.sample_len, &st);
    snprintf(detail, sizeof detail, "loss %.9g (reference %.9g), step %lu", (double)st.loss,
             (double)d0->loss, (unsigned long)st.step);
    tt_test_case("demo plan: TRAIN -> STEP with the reference loss, step 1",
                 ok && close_rel(st.loss, d0->loss) && st.pred == d0->pred && st.step == 1,
                 detail);
    in = hello(&dut, "demo");
    TT_CHECK(memcmp(in.plan_hash, demo.file + demo.len - TT_SHA256_SIZE, TT_SHA256_SIZE) == 0);
    TT_CHECK(!dut.overflowed && !twin.overflowed);

    run_store(&small, &demo);
    run_single_slot(&small, &demo);

    free(params);
    free(params2);
    free(bad);
    free(bad_demo);
    free_files(&small);
    free_files(&demo);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLAN_DIR\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    run(argv[1]);
    return tt_test_summary("test_device");
}
