/* The learning loop (learner.h). */
#include "learner.h"

#include <errno.h>
#include <stdio.h>
#include <zephyr/drivers/sensor.h>
#include <zephyr/logging/log.h>

#include "replay_imu.h"

LOG_MODULE_REGISTER(sensor_learning, LOG_LEVEL_INF);

int tt_learner_init(tt_learner *l, tt_model *model, const struct device *imu,
                    const tt_recording *rec, float lr)
{
    *l = (tt_learner){.model = model,
                      .imu = imu,
                      .rec = rec,
                      .lr = lr,
                      .accuracy_before = -1.0f,
                      .accuracy_last = -1.0f,
                      .label_override = TT_LABEL_NONE};
    k_mutex_init(&l->lock);
    size_t bytes = 0;
    tt_model_input(model, &bytes);
    size_t want = (size_t)rec->channels * rec->rows * sizeof(float);
    if (model->plan.tensors[model->plan.input].dtype != TT_DTYPE_F32 || bytes != want) {
        LOG_ERR("the plan's input is not %u x %u float32 values (a window of the recording): "
                "%u bytes",
                rec->channels, rec->rows, (unsigned)bytes);
        return -EINVAL;
    }
    for (uint32_t w = 0; w < rec->windows; w++) {
        if (rec->labels[w] >= (uint32_t)tt_model_classes(model)) {
            LOG_ERR("window %u is labelled %u, the plan has %d classes", w, rec->labels[w],
                    tt_model_classes(model));
            return -EINVAL;
        }
    }
    if (tt_check_lr(lr, NULL) != TT_OK) {
        LOG_ERR("learning rate %f is not a finite number above 0", (double)lr);
        return -EINVAL;
    }
    return 0;
}

/* Reads window w through the sensor API into the model's input, standardized channel by channel
 * with the training windows' statistics (C x rows, as the plan takes it). */
static int read_window(tt_learner *l, uint32_t w)
{
    const tt_recording *r = l->rec;
    struct sensor_value seek = {.val1 = (int32_t)w};
    int rc = sensor_attr_set(l->imu, SENSOR_CHAN_ALL, (enum sensor_attribute)TT_REPLAY_ATTR_WINDOW,
                             &seek);
    if (rc != 0 && rc != -ENOTSUP) { /* a real IMU has no recording to seek in */
        return rc;
    }
    float *x = tt_model_input(l->model, NULL);
    for (uint32_t t = 0; t < r->rows; t++) {
        struct sensor_value v[6];
        rc = sensor_sample_fetch(l->imu);
        if (rc == 0) {
            rc = sensor_channel_get(l->imu, SENSOR_CHAN_ACCEL_XYZ, &v[0]);
        }
        if (rc == 0) {
            rc = sensor_channel_get(l->imu, SENSOR_CHAN_GYRO_XYZ, &v[3]);
        }
        if (rc != 0) {
            return rc;
        }
        for (uint32_t c = 0; c < r->channels; c++) {
            x[c * r->rows + t] = (sensor_value_to_float(&v[c]) - r->mean[c]) / r->std[c];
        }
        if (CONFIG_TT_SAMPLE_PERIOD_MS > 0) {
            k_sleep(K_MSEC(CONFIG_TT_SAMPLE_PERIOD_MS));
        }
    }
    return 0;
}

static int32_t label_for(tt_learner *l, uint32_t w)
{
    k_mutex_lock(&l->lock, K_FOREVER);
    int32_t label = l->label_override;
    k_mutex_unlock(&l->lock);
    if (label == TT_LABEL_NONE && IS_ENABLED(CONFIG_TT_SAMPLE_LABELS_FROM_SCHEDULE)) {
        label = l->rec->labels[w];
    }
    return label;
}

/* Accuracy on the held-out windows (those after the training ones), read from the sensor. */
static float held_out_accuracy(tt_learner *l)
{
    const tt_recording *r = l->rec;
    uint32_t right = 0, n = 0;
    for (uint32_t w = r->train_windows; w < r->windows; w++) {
        int32_t pred;
        tt_error err;
        if (read_window(l, w) != 0) {
            continue;
        }
        k_mutex_lock(&l->lock, K_FOREVER);
        tt_status st = tt_predict(l->model, NULL, 0, &pred, &err);
        k_mutex_unlock(&l->lock);
        if (st != TT_OK) {
            LOG_ERR("predict: %s", err.msg);
            continue;
        }
        right += pred == (int32_t)r->labels[w];
        n++;
    }
    return n > 0 ? (float)right / (float)n : 0.0f;
}

int tt_learner_save(tt_learner *l)
{
    if (l->save == NULL) {
        return 0;
    }
    k_mutex_lock(&l->lock, K_FOREVER);
    int rc = l->save(l->save_ctx);
    if (rc > 0) {
        l->saves++;
    }
    k_mutex_unlock(&l->lock);
    if (rc < 0) {
        LOG_ERR("saving the parameters failed (%d)", rc);
    }
    return rc;
}

static void train_epoch(tt_learner *l)
{
    const tt_recording *r = l->rec;
    for (uint32_t w = 0; w < r->train_windows; w++) {
        int rc = read_window(l, w);
        if (rc != 0) {
            LOG_ERR("reading the IMU failed (%d)", rc);
            continue;
        }
        int32_t label = label_for(l, w);
        if (label == TT_LABEL_NONE) {
            k_mutex_lock(&l->lock, K_FOREVER);
            l->skipped++;
            k_mutex_unlock(&l->lock);
            continue; /* nothing says what this window is: nothing to learn */
        }
        tt_step_result res;
        tt_error err;
        k_mutex_lock(&l->lock, K_FOREVER);
        tt_status st = tt_train_step(l->model, NULL, 0, label, l->lr, &res, &err);
        uint32_t steps = tt_model_steps(l->model);
        k_mutex_unlock(&l->lock);
        if (st != TT_OK) {
            LOG_ERR("training step refused: %s", err.msg);
            continue;
        }
        if (CONFIG_TT_SAMPLE_SAVE_EVERY > 0 && steps % CONFIG_TT_SAMPLE_SAVE_EVERY == 0) {
            tt_learner_save(l);
        }
    }
}

void tt_learner_run(tt_learner *l)
{
    float before = held_out_accuracy(l);
    k_mutex_lock(&l->lock, K_FOREVER);
    l->accuracy_before = l->accuracy_last = before;
    k_mutex_unlock(&l->lock);
    LOG_INF("held-out accuracy before training: %.3f (%u windows; step %u)", (double)before,
            l->rec->windows - l->rec->train_windows, tt_model_steps(l->model));
    for (uint32_t e = 1; CONFIG_TT_SAMPLE_EPOCHS == 0 || e <= CONFIG_TT_SAMPLE_EPOCHS; e++) {
        train_epoch(l);
        float acc = held_out_accuracy(l);
        k_mutex_lock(&l->lock, K_FOREVER);
        l->accuracy_last = acc;
        l->epochs = e;
        tt_stats s = tt_model_stats(l->model);
        uint32_t steps = tt_model_steps(l->model), saves = l->saves;
        k_mutex_unlock(&l->lock);
        LOG_INF("epoch %u: step %u, running loss %.4f, running accuracy %.3f, held-out "
                "accuracy %.3f, %u saves",
                e, steps, (double)s.loss, (double)s.accuracy, (double)acc, saves);
    }
    tt_learner_save(l);
    LOG_INF("held-out accuracy %s from %.3f to %.3f after %u steps",
            l->accuracy_last > before ? "rose" : "did not rise", (double)before,
            (double)l->accuracy_last, tt_model_steps(l->model));
}

void tt_learner_status(tt_learner *l, char *out, size_t size)
{
    k_mutex_lock(&l->lock, K_FOREVER);
    tt_stats s = tt_model_stats(l->model);
    char label[24] = "none";
    if (l->label_override != TT_LABEL_NONE) {
        snprintf(label, sizeof label, "%d (shell)", l->label_override);
    } else if (IS_ENABLED(CONFIG_TT_SAMPLE_LABELS_FROM_SCHEDULE)) {
        snprintf(label, sizeof label, "from the schedule");
    }
    snprintf(out, size,
             "step %u, epoch %u, running loss %.4f, running accuracy %.3f, held-out accuracy "
             "%.3f (before training %.3f), %u saves, %u windows without a label, label %s",
             tt_model_steps(l->model), l->epochs, (double)s.loss, (double)s.accuracy,
             (double)l->accuracy_last, (double)l->accuracy_before, l->saves, l->skipped, label);
    k_mutex_unlock(&l->lock);
}
