/*
 * ztests of the tinytrain runtime on a Zephyr target: kernels, a real plan trained for three
 * steps against the numpy reference executor's losses, plan refusals, the protocol handler, and
 * the flash plan store (tt_zstore) on the board's flash (the flash simulator on native_sim and
 * mps2/an386). The plan and the reference losses come from src/fixture.h (gen_fixture.py).
 */
#include <math.h>
#include <string.h>
#include <zcbor_decode.h>
#include <zcbor_encode.h>
#include <zephyr/ztest.h>

#include "fixture.h"
#include "tt/tt_device.h"
#include "tt/tt_exec.h"
#include "tt/tt_kernels_f32.h"
#include "tt/tt_plan.h"
#ifdef CONFIG_TINYTRAIN_FLASH_STORE
#include "tt_zephyr/store.h"
#endif

#define ARENA_SIZE (64u * 1024u)
#define SLOT_SIZE (8u * 1024u)

static uint8_t arena[ARENA_SIZE] __aligned(16);
static uint8_t slots[2][SLOT_SIZE] __aligned(16);
static tt_device device;

static bool close_rel(float got, float want)
{
    return fabsf(got - want) <= 1e-5f * fabsf(want);
}

/* --- kernels --------------------------------------------------------------------------------- */

ZTEST(tt_kernels, test_linear)
{
    const tt_linear_params p = {.in_features = 3, .out_features = 2};
    const float x[3] = {1.0f, -2.0f, 0.5f};
    const float w[6] = {0.5f, 0.25f, -1.0f, /* row 0 */ 2.0f, 0.0f, 4.0f};
    const float b[2] = {0.125f, -1.0f};
    float y[2];
    zassert_equal(tt_linear_f32(&p, x, w, b, y), TT_OK);
    zassert_equal(y[0], 0.125f + 0.5f - 0.5f - 0.5f);
    zassert_equal(y[1], -1.0f + 2.0f + 2.0f);
    const tt_linear_params bad = {.in_features = 0, .out_features = 2};
    zassert_equal(tt_linear_f32(&bad, x, w, b, y), TT_ERR_ARG);
}

ZTEST(tt_kernels, test_relu_and_grad)
{
    const float x[4] = {-1.0f, 0.0f, 2.5f, -0.0f};
    float y[4], dx[4];
    const float dy[4] = {1.0f, 1.0f, 3.0f, 1.0f};
    zassert_equal(tt_relu_f32(4, x, y), TT_OK);
    zassert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 2.5f && y[3] == 0.0f);
    zassert_equal(tt_relu_grad_f32(4, y, dy, dx), TT_OK);
    zassert_true(dx[0] == 0.0f && dx[2] == 3.0f);
}

ZTEST(tt_kernels, test_softmax_xent_uniform)
{
    const float logits[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    float loss, dlogits[4];
    int32_t pred;
    zassert_equal(tt_softmax_xent_f32(4, logits, 2, &loss, dlogits, &pred), TT_OK);
    zassert_true(fabsf(loss - logf(4.0f)) < 1e-6f, "loss %f", (double)loss);
    zassert_equal(pred, 0, "first argmax");
    zassert_true(fabsf(dlogits[2] - (0.25f - 1.0f)) < 1e-6f && fabsf(dlogits[0] - 0.25f) < 1e-6f);
    zassert_equal(tt_softmax_xent_f32(4, logits, 4, &loss, dlogits, &pred), TT_ERR_LABEL);
}

ZTEST(tt_kernels, test_sgd)
{
    float w[2] = {1.0f, -1.0f};
    const float g[2] = {2.0f, -4.0f};
    zassert_equal(tt_sgd_f32(2, w, g, 0.25f), TT_OK);
    zassert_true(w[0] == 0.5f && w[1] == 0.0f);
}

ZTEST_SUITE(tt_kernels, NULL, NULL, NULL, NULL, NULL);

/* --- plans ------------------------------------------------------------------------------------ */

static tt_plan plan;
static tt_arena plan_arena;

static void load_fixture(void)
{
    tt_error err = {TT_OK, ""};
    tt_arena_init(&plan_arena, arena, sizeof arena);
    tt_status st = tt_plan_load(fixture_plan, sizeof fixture_plan, &plan_arena, 0, true, &plan,
                                &err);
    zassert_equal(st, TT_OK, "tt_plan_load: %s", err.msg);
}

ZTEST(tt_plan, test_three_steps_match_reference)
{
    load_fixture();
    const tt_tensor *in = &plan.tensors[plan.input];
    for (int k = 0; k < 3; k++) {
        const struct fixture_step *s = &fixture_steps[k];
        memcpy(in->data, s->sample, in->nbytes);
        tt_step_result r;
        tt_error err = {TT_OK, ""};
        zassert_equal(tt_exec_train_step(&plan, s->label, s->lr, &r, &err), TT_OK, "%s",
                      err.msg);
        zassert_true(close_rel(r.loss, s->loss), "step %d: loss %.9g, reference %.9g", k + 1,
                     (double)r.loss, (double)s->loss);
        zassert_equal(r.pred, s->pred, "step %d", k + 1);
    }
    int32_t pred = -1;
    zassert_equal(tt_exec_infer(&plan, &pred, NULL), TT_OK);
    zassert_true(pred >= 0 && pred < plan.num_classes);
}

ZTEST(tt_plan, test_refusals)
{
    static uint8_t copy[sizeof fixture_plan] __aligned(16);
    tt_error err;
    tt_plan p;
    memcpy(copy, fixture_plan, sizeof copy);
    copy[sizeof copy / 2] ^= 0x01; /* inside the hashed body */
    tt_arena_init(&plan_arena, arena, sizeof arena);
    zassert_equal(tt_plan_load(copy, sizeof copy, &plan_arena, 0, true, &p, &err),
                  TT_ERR_PLAN_HASH, "%s", err.msg);
    tt_arena_init(&plan_arena, arena, 256);
    zassert_equal(tt_plan_validate(fixture_plan, sizeof fixture_plan, 256, &p, &err),
                  TT_ERR_PLAN_ARENA, "%s", err.msg);
    zassert_not_equal(tt_plan_load(fixture_plan, 100, &plan_arena, 0, true, &p, &err), TT_OK,
                      "a truncated plan loads");
}

ZTEST_SUITE(tt_plan, NULL, NULL, NULL, NULL, NULL);

/* --- the protocol handler --------------------------------------------------------------------- */

static uint8_t captured[2 * TT_ENCODED_MAX];
static size_t captured_len;
static uint8_t seq = 0x20;

static void capture(void *ctx, const uint8_t *data, size_t len)
{
    ARG_UNUSED(ctx);
    if (len <= sizeof captured - captured_len) {
        memcpy(captured + captured_len, data, len);
        captured_len += len;
    }
}

static uint8_t raw[TT_RAW_MAX];
static uint8_t wire[TT_ENCODED_MAX];

/* Sends one request (payload already at raw + 2) and decodes the one reply frame. */
static tt_frame request(tt_device *dev, uint8_t type, size_t payload_len)
{
    seq++;
    size_t n = tt_frame_encode(raw, type, seq, payload_len, wire);
    captured_len = 0;
    tt_device_receive(dev, wire, n);
    tt_frame f = {0};
    zassert_true(captured_len > 1 && captured[captured_len - 1] == 0, "no reply frame");
    zassert_equal(tt_frame_decode(captured, captured_len - 1, &f), TT_OK);
    zassert_equal(f.seq, seq);
    return f;
}

static size_t cbor_begin(uint32_t size, const uint8_t hash[TT_SHA256_SIZE])
{
    ZCBOR_STATE_E(s, 1, raw + 2, TT_MAX_PAYLOAD, 0);
    zassert_true(zcbor_list_start_encode(s, 2) && zcbor_uint32_put(s, size) &&
                 zcbor_bstr_encode_ptr(s, (const char *)hash, TT_SHA256_SIZE) &&
                 zcbor_list_end_encode(s, 2));
    return (size_t)(s->payload - (raw + 2));
}

static size_t cbor_chunk(uint32_t offset, const uint8_t *data, size_t len)
{
    ZCBOR_STATE_E(s, 1, raw + 2, TT_MAX_PAYLOAD, 0);
    zassert_true(zcbor_list_start_encode(s, 2) && zcbor_uint32_put(s, offset) &&
                 zcbor_bstr_encode_ptr(s, (const char *)data, len) &&
                 zcbor_list_end_encode(s, 2));
    return (size_t)(s->payload - (raw + 2));
}

static size_t cbor_train(const struct fixture_step *st, size_t len)
{
    ZCBOR_STATE_E(s, 1, raw + 2, TT_MAX_PAYLOAD, 0);
    zassert_true(zcbor_list_start_encode(s, 3) && zcbor_int32_put(s, st->label) &&
                 zcbor_float64_put(s, st->lr) &&
                 zcbor_bstr_encode_ptr(s, (const char *)st->sample, len) &&
                 zcbor_list_end_encode(s, 3));
    return (size_t)(s->payload - (raw + 2));
}

static void upload_fixture(tt_device *dev)
{
    uint8_t hash[TT_SHA256_SIZE];
    tt_sha256(fixture_plan, sizeof fixture_plan, hash);
    tt_frame f = request(dev, TT_MSG_PLAN_BEGIN, cbor_begin(sizeof fixture_plan, hash));
    zassert_equal(f.type, TT_MSG_ACK);
    for (size_t at = 0; at < sizeof fixture_plan; at += 1000) {
        size_t n = MIN(sizeof fixture_plan - at, 1000u);
        f = request(dev, TT_MSG_PLAN_CHUNK, cbor_chunk(at, fixture_plan + at, n));
        zassert_equal(f.type, TT_MSG_ACK, "chunk at %u", (unsigned)at);
    }
    raw[2] = 0x80; /* [] */
    f = request(dev, TT_MSG_PLAN_COMMIT, 1);
    zassert_equal(f.type, TT_MSG_ACK, "PLAN_COMMIT answered 0x%02x", f.type);
}

/* Training step with fixture step k's sample; its prediction must be the reference's when the
 * parameters are the ones the reference had (reference = true). */
static float train_step(tt_device *dev, int k, bool reference)
{
    const struct fixture_step *st = &fixture_steps[k];
    const tt_tensor *in = &dev->model.plan.tensors[dev->model.plan.input];
    tt_frame f = request(dev, TT_MSG_TRAIN, cbor_train(st, in->nbytes));
    zassert_equal(f.type, TT_MSG_STEP);
    ZCBOR_STATE_D(s, 1, f.payload, f.payload_len, 1, 0);
    float loss;
    int32_t pred;
    zassert_true(zcbor_list_start_decode(s) && zcbor_float32_decode(s, &loss) &&
                 zcbor_int32_decode(s, &pred));
    zassert_true(!reference || pred == st->pred, "pred %d, reference %d", pred, st->pred);
    return loss;
}

static void device_setup(void)
{
    tt_port port = {"ztest", "none", NULL, capture, NULL};
    tt_device_init(&device, &port, arena, sizeof arena, slots[0], slots[1], SLOT_SIZE);
}

ZTEST(tt_device, test_hello_upload_train)
{
    device_setup();
    tt_frame f = request(&device, TT_MSG_HELLO, 0);
    zassert_equal(f.type, TT_MSG_INFO);
    upload_fixture(&device);
    for (int k = 0; k < 3; k++) {
        float loss = train_step(&device, k, true);
        zassert_true(close_rel(loss, fixture_steps[k].loss), "step %d: loss %.9g", k + 1,
                     (double)loss);
    }
    zassert_equal(device.model.steps, 3u);
    /* A corrupt frame gets a NAK. */
    static const uint8_t junk[] = {0x05, 0x11, 0x22, 0x33, 0x00};
    captured_len = 0;
    tt_device_receive(&device, junk, sizeof junk);
    tt_frame nak;
    zassert_equal(tt_frame_decode(captured, captured_len - 1, &nak), TT_OK);
    zassert_equal(nak.type, TT_MSG_NAK);
}

ZTEST_SUITE(tt_device, NULL, NULL, NULL, NULL, NULL);

/* --- the flash plan store --------------------------------------------------------------------- */

#ifdef CONFIG_TINYTRAIN_FLASH_STORE
static tt_zstore store;

/* A "boot": open the store, a fresh device on its slots, restore. */
static int boot(void)
{
    zassert_equal(tt_zstore_open(&store), 0);
    tt_port port = {"ztest", "none", NULL, capture, NULL};
    tt_device_init(&device, &port, arena, sizeof arena, tt_zstore_slot(&store, 0),
                   tt_zstore_slot(&store, 1), tt_zstore_slot_capacity(&store));
    tt_zstore_attach(&store, &device);
    tt_error err = {TT_OK, ""};
    int rc = tt_zstore_restore(&store, &err);
    zassert_true(rc >= 0, "restore: %d %s", rc, err.msg);
    return rc;
}

static uint32_t params_crc(const tt_device *dev)
{
    uint32_t crc = 0;
    for (uint32_t i = 0; i < dev->model.plan.n_tensors; i++) {
        const tt_tensor *t = &dev->model.plan.tensors[i];
        if (t->kind == TT_KIND_PARAM_TRAINABLE) {
            crc = tt_crc32(crc, t->data, t->nbytes);
        }
    }
    return crc;
}

ZTEST(tt_zstore, test_upload_save_reboot_restore)
{
    (void)boot();
    zassert_true(tt_zstore_slot_capacity(&store) >= sizeof fixture_plan,
                 "the partition is too small for the fixture plan");
    upload_fixture(&device);
    zassert_true(device.model.loaded);
    zassert_equal(memcmp(tt_zstore_slot(&store, device.active), fixture_plan,
                         sizeof fixture_plan), 0, "the plan is not in its flash slot");
    float loss = train_step(&device, 0, true);
    zassert_true(close_rel(loss, fixture_steps[0].loss));
    zassert_equal(tt_zstore_save(&store), 1, "changed parameters are saved");
    zassert_equal(tt_zstore_save(&store), 0, "unchanged parameters are not saved again");
    uint32_t crc = params_crc(&device);
    int active = device.active;

    zassert_equal(boot(), 1, "plan and parameters restored");
    zassert_true(device.model.loaded);
    zassert_equal(device.active, active);
    zassert_equal(device.model.steps, 1u);
    zassert_equal(params_crc(&device), crc, "restored parameters differ");
    /* Training continues where it was: step 2 gives the reference loss. */
    loss = train_step(&device, 1, true);
    zassert_true(close_rel(loss, fixture_steps[1].loss), "loss %.9g", (double)loss);
}

ZTEST(tt_zstore, test_log_wraps)
{
    (void)boot();
    if (!device.model.loaded) {
        upload_fixture(&device);
    }
    uint32_t erases = store.log_erases;
    /* Enough saves to fill the log part at least once. */
    int saves = 0;
    for (int i = 0; i < 64 && store.log_erases == erases; i++) {
        (void)train_step(&device, i % 3, false);
        zassert_equal(tt_zstore_save(&store), 1);
        saves++;
    }
    zassert_true(store.log_erases > erases, "the log never filled in %d saves", saves);
    (void)train_step(&device, 0, false);
    zassert_equal(tt_zstore_save(&store), 1);
    uint32_t crc = params_crc(&device), steps = device.model.steps;
    zassert_equal(boot(), 1);
    zassert_equal(device.model.steps, steps);
    zassert_equal(params_crc(&device), crc);
}

ZTEST(tt_zstore, test_new_plan_replaces_saved_one)
{
    (void)boot();
    upload_fixture(&device); /* the same plan again (to the other slot of two), steps back to 0 */
    int active = device.active;
    zassert_equal(boot(), 1);
    zassert_equal(device.active, active);
    zassert_equal(device.model.steps, 0u);
}

/* A plan built into the application's image (firmware/samples/sensor_learning): its trained
 * parameters are saved in the log and come back after a reboot into a model loaded from the
 * same bytes; tt_zstore_restore refuses them (the device has no such plan); a clear forgets them. */
static tt_model image_model;
static uint8_t image_arena[ARENA_SIZE] __aligned(16);

ZTEST(tt_zstore, test_image_plan_parameters_survive_a_reboot)
{
    (void)boot();
    tt_error err = {TT_OK, ""};
    zassert_equal(tt_model_init(&image_model, fixture_plan, sizeof fixture_plan, image_arena,
                                sizeof image_arena, &err), TT_OK, "%s", err.msg);
    const struct fixture_step *st = &fixture_steps[0];
    size_t n;
    tt_model_input(&image_model, &n);
    tt_step_result r;
    zassert_equal(tt_train_step(&image_model, st->sample, n, st->label, st->lr, &r, &err),
                  TT_OK, "%s", err.msg);
    zassert_true(close_rel(r.loss, st->loss), "loss %.9g", (double)r.loss);
    zassert_equal(tt_zstore_save_model(&store, &image_model, sizeof fixture_plan), 1);
    zassert_equal(tt_zstore_save_model(&store, &image_model, sizeof fixture_plan), 0,
                  "nothing changed: nothing to save");
    static uint8_t saved[4096], back[4096]; /* the fixture plan is 2,302 bytes in all */
    size_t len = tt_model_params_size(&image_model);
    zassert_true(len <= sizeof saved);
    zassert_equal(tt_model_params_save(&image_model, saved, sizeof saved, &err), TT_OK);

    /* reboot: the device's own restore refuses the record, the image model takes it */
    zassert_equal(tt_zstore_open(&store), 0);
    tt_port port = {"ztest", "none", NULL, capture, NULL};
    tt_device_init(&device, &port, arena, sizeof arena, tt_zstore_slot(&store, 0),
                   tt_zstore_slot(&store, 1), tt_zstore_slot_capacity(&store));
    tt_zstore_attach(&store, &device);
    zassert_true(tt_zstore_restore(&store, &err) < 0);
    zassert_not_null(strstr(err.msg, "built into another application's image"), "%s", err.msg);
    zassert_equal(tt_model_init(&image_model, fixture_plan, sizeof fixture_plan, image_arena,
                                sizeof image_arena, &err), TT_OK);
    zassert_equal(tt_model_steps(&image_model), 0u);
    zassert_equal(tt_zstore_restore_model(&store, &image_model, sizeof fixture_plan, &err), 1,
                  "%s", err.msg);
    zassert_equal(tt_model_steps(&image_model), 1u);
    zassert_equal(tt_model_params_save(&image_model, back, sizeof back, &err), TT_OK);
    zassert_equal(memcmp(saved, back, len), 0, "the restored parameters differ");
    zassert_equal(tt_zstore_restore_model(&store, &image_model, sizeof fixture_plan - 16, &err),
                  0, "another plan length: nothing saved for it");

    zassert_equal(tt_zstore_clear(&store), 0);
    zassert_equal(tt_zstore_open(&store), 0);
    zassert_equal(tt_zstore_restore_model(&store, &image_model, sizeof fixture_plan, &err), 0,
                  "cleared: nothing to restore");
}

#if TT_ZSTORE_SLOTS == 1
/* One slot: an upload that stops after PLAN_BEGIN leaves no plan, at once and after a reboot
 * (the saved record names the plan whose bytes were erased); a complete upload recovers. */
ZTEST(tt_zstore, test_one_slot_interrupted_upload)
{
    (void)boot();
    upload_fixture(&device);
    zassert_is_null(tt_zstore_slot(&store, 1));
    (void)train_step(&device, 0, true);
    zassert_equal(tt_zstore_save(&store), 1);
    uint8_t hash[TT_SHA256_SIZE];
    tt_sha256(fixture_plan, sizeof fixture_plan, hash);
    tt_frame f = request(&device, TT_MSG_PLAN_BEGIN, cbor_begin(sizeof fixture_plan, hash));
    zassert_equal(f.type, TT_MSG_ACK);
    f = request(&device, TT_MSG_PLAN_CHUNK, cbor_chunk(0, fixture_plan, 1000));
    zassert_equal(f.type, TT_MSG_ACK);
    zassert_false(device.model.loaded, "the running plan's slot is being rewritten");

    zassert_equal(tt_zstore_open(&store), 0);
    tt_port port = {"ztest", "none", NULL, capture, NULL};
    tt_device_init(&device, &port, arena, sizeof arena, tt_zstore_slot(&store, 0), NULL,
                   tt_zstore_slot_capacity(&store));
    tt_zstore_attach(&store, &device);
    tt_error err = {TT_OK, ""};
    zassert_true(tt_zstore_restore(&store, &err) < 0, "a half-written plan was restored");
    zassert_false(device.model.loaded);

    upload_fixture(&device);
    zassert_equal(boot(), 1);
    zassert_equal(device.model.steps, 0u);
    zassert_true(close_rel(train_step(&device, 0, true), fixture_steps[0].loss));
}
#endif

/* Starts from an erased partition (native_sim keeps flash.bin between runs). */
static void *zstore_setup(void)
{
    zassert_equal(tt_zstore_open(&store), 0);
    zassert_equal(flash_area_erase(store.fa, 0, store.fa->fa_size), 0);
    return NULL;
}

ZTEST_SUITE(tt_zstore, NULL, zstore_setup, NULL, NULL, NULL);
#endif
