/*
 * The learning loop: read a window of samples from the IMU through the sensor API, standardize
 * it, label it (the recording's known schedule, or a label set from the shell), train on it, and
 * now and then save the parameters and measure accuracy on held-out windows.
 */
#ifndef TT_SAMPLE_LEARNER_H
#define TT_SAMPLE_LEARNER_H

#include <stdbool.h>
#include <stdint.h>
#include <zephyr/device.h>
#include <zephyr/kernel.h>

#include "recording.h"
#include "tt/tinytrain.h"

#define TT_LABEL_NONE (-1)

typedef struct {
    tt_model *model;
    const struct device *imu;
    const tt_recording *rec;
    float lr;
    /* save(ctx): 1 saved, 0 nothing to save, negative errno (the flash store). */
    int (*save)(void *ctx);
    void *save_ctx;
    /* Read by the shell while the loop runs: under lock. */
    struct k_mutex lock;
    float accuracy_before, accuracy_last; /* on the held-out windows; < 0: not measured yet */
    uint32_t epochs, saves, skipped;
    int32_t label_override; /* TT_LABEL_NONE: the schedule labels (if enabled) */
} tt_learner;

/* Checks that the plan takes the recording's windows (f32 input of channels x rows) and the
 * recording's labels. 0, or -EINVAL with the reason logged. */
int tt_learner_init(tt_learner *l, tt_model *model, const struct device *imu,
                    const tt_recording *rec, float lr);
/* Held-out accuracy before training, then CONFIG_TT_SAMPLE_EPOCHS passes (0: forever). */
void tt_learner_run(tt_learner *l);
/* Saves now (the shell's `tinytrain save`): what l->save returns. */
int tt_learner_save(tt_learner *l);
/* A one-line summary for the shell. */
void tt_learner_status(tt_learner *l, char *out, size_t size);

#endif
