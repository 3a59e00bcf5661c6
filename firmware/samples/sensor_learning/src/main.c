/*
 * sensor_learning: a device that learns from its own IMU with no host attached (README.md).
 * At boot: the plan (built into the image, or deployed earlier with tinyhost into the flash
 * store), the parameters saved last time (the flash store's parameter log), then the learning
 * loop (learner.c). Progress goes to the log; the shell's `tinytrain status` asks for it.
 */
#include <errno.h>
#include <zephyr/device.h>
#include <zephyr/devicetree.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>

#include "learner.h"
#include "recording.h"
#include "tt/tinytrain.h"
#include "tt_zephyr/store.h"
#ifdef CONFIG_ARCH_POSIX
#include <nsi_main.h>
#endif

LOG_MODULE_REGISTER(sensor_learning_main, LOG_LEVEL_INF);

#if !DT_NODE_EXISTS(DT_ALIAS(tt_imu))
#error "sensor_learning needs an IMU: a devicetree alias tt-imu (boards/*.overlay)"
#endif

tt_learner learner; /* shell.c reads it */
static tt_zstore store;
static uint8_t arena[CONFIG_TT_SAMPLE_ARENA_SIZE] __aligned(16);

#ifdef CONFIG_TT_SAMPLE_PLAN_BAKED
static const uint8_t plan[] __aligned(16) = {
#include "tt_plan.inc"
};
static tt_model model;

static int save(void *ctx)
{
    ARG_UNUSED(ctx);
    return tt_zstore_save_model(&store, &model, sizeof plan);
}

static tt_model *load_plan(void)
{
    tt_error err;
    if (tt_model_init(&model, plan, sizeof plan, arena, sizeof arena, &err) != TT_OK) {
        LOG_ERR("the plan built into the image does not load: %s", err.msg);
        return NULL;
    }
    if (IS_ENABLED(CONFIG_TT_SAMPLE_FRESH_START)) {
        int rc = tt_zstore_clear(&store);
        LOG_INF("fresh start: parameter log erased (%d)", rc);
    } else {
        int rc = tt_zstore_restore_model(&store, &model, sizeof plan, &err);
        if (rc > 0) {
            LOG_INF("restored the parameters saved at step %u", tt_model_steps(&model));
        } else if (rc < 0) {
            LOG_WRN("saved parameters not restored: %s", err.msg);
        }
    }
    LOG_INF("plan built into the image: %u bytes, %d classes", (unsigned)sizeof plan,
            tt_model_classes(&model));
    return &model;
}
#else
/* The plan tinyhost uploaded through the tinytrain firmware (firmware/) on this board: a
 * tt_device holds it as that firmware does (same flash layout), but no link is served. */
static tt_device device;

static void no_link(void *ctx, const uint8_t *data, size_t len)
{
    ARG_UNUSED(ctx);
    ARG_UNUSED(data);
    ARG_UNUSED(len);
}

static int save(void *ctx)
{
    return tt_zstore_save(ctx);
}

static tt_model *load_plan(void)
{
    tt_port port = {CONFIG_BOARD_TARGET, "none", NULL, no_link, NULL};
    tt_device_init(&device, &port, arena, sizeof arena, tt_zstore_slot(&store, 0),
                   tt_zstore_slot(&store, 1), tt_zstore_slot_capacity(&store));
    tt_zstore_attach(&store, &device);
    tt_error err;
    int rc = tt_zstore_restore(&store, &err);
    if (rc <= 0) {
        LOG_ERR("no plan in the flash store (%s): deploy one with `tinyhost train` or `tinyhost "
                "push` through the tinytrain firmware first",
                rc < 0 ? err.msg : "none saved");
        return NULL;
    }
    if (IS_ENABLED(CONFIG_TT_SAMPLE_FRESH_START)) {
        tt_model_reset(&device.model, &err);
    }
    LOG_INF("plan from the flash store at step %u", tt_model_steps(&device.model));
    return &device.model;
}
#endif

int main(void)
{
    const struct device *imu = DEVICE_DT_GET(DT_ALIAS(tt_imu));
    const tt_recording *rec = tt_recording_get();
    if (!device_is_ready(imu) || rec == NULL) {
        LOG_ERR("the IMU %s is not ready", imu->name);
        return 0;
    }
    int rc = tt_zstore_open(&store);
    if (rc != 0) {
        LOG_ERR("flash store unusable (%d)", rc);
        return 0;
    }
    tt_model *m = load_plan();
    if (m == NULL) {
        return 0;
    }
    float lr = CONFIG_TT_SAMPLE_LR_MILLI > 0 ? (float)CONFIG_TT_SAMPLE_LR_MILLI / 1000.0f
                                             : m->plan.default_lr;
    if (tt_learner_init(&learner, m, imu, rec, lr) != 0) {
        return 0;
    }
    learner.save = save;
#ifdef CONFIG_TT_SAMPLE_PLAN_BAKED
    learner.save_ctx = NULL;
#else
    learner.save_ctx = &store;
#endif
    LOG_INF("learning from %s: %u windows of %u rows (%u for training), lr %f", imu->name,
            rec->windows, rec->rows, rec->train_windows, (double)lr);
    tt_learner_run(&learner);
#ifdef CONFIG_ARCH_POSIX
    if (CONFIG_TT_SAMPLE_EPOCHS > 0) {
        nsi_exit(0); /* native_sim: a finished run ends the process (a board keeps its shell) */
    }
#endif
    return 0;
}
