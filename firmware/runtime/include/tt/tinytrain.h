/*
 * tinytrain's public C API: train and run a compiled plan (.ttp, from `tinyhost compile`) on the
 * device itself, with no host. The caller owns every byte: a tt_model (the context), the arena
 * the plan's tensors live in, and the plan file, read in place (flash). Nothing is allocated.
 * Every call returns TT_OK or a negative tt_status and, given a tt_error, a message saying why.
 * The link protocol (tt_device.h) is one user of this API; an application is another.
 *
 * Usage: an application that reads sensor windows, labels them and trains on them.
 *
 *   #include "tt/tinytrain.h"
 *
 *   extern const uint8_t plan_ttp[];        // the .ttp in flash, 16-byte aligned
 *   extern const size_t plan_ttp_len;
 *   static _Alignas(16) uint8_t arena[64 * 1024];   // at least the plan's arena + its tables
 *   static tt_model model;
 *
 *   int run(void)
 *   {
 *       tt_error err;
 *       if (tt_model_init(&model, plan_ttp, plan_ttp_len, arena, sizeof arena, &err) != TT_OK) {
 *           printf("plan refused: %s\n", err.msg);
 *           return -1;
 *       }
 *       size_t n;
 *       float *x = tt_model_input(&model, &n);   // samples go straight into the arena
 *       for (;;) {
 *           read_imu_window(x, n);               // the application's: fills n bytes
 *           int32_t label = wait_for_label();    // e.g. a button press names the gesture
 *           tt_step_result r;
 *           if (tt_train_step(&model, NULL, 0, label, 0.01f, &r, &err) != TT_OK) {
 *               printf("step refused: %s\n", err.msg);
 *               continue;
 *           }
 *           if (tt_model_steps(&model) % 100 == 0) {
 *               tt_stats s = tt_model_stats(&model);
 *               printf("step %u loss %.3f acc %.2f\n", (unsigned)tt_model_steps(&model),
 *                      (double)s.loss, (double)s.accuracy);
 *               save_checkpoint(&model);         // tt_model_params_walk() into flash
 *           }
 *       }
 *   }
 *
 * At boot, a saved checkpoint goes back with tt_model_params_restore() after tt_model_init().
 */
#ifndef TINYTRAIN_H
#define TINYTRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tt/tt_error.h"
#include "tt/tt_exec.h" /* tt_step_result: the loss and prediction of one step */
#include "tt/tt_plan.h"

/* Steps the running loss and accuracy average over (see tt_stats). */
#ifndef TT_STATS_HORIZON
#define TT_STATS_HORIZON 32u
#endif

/* The running training statistics: the mean over the steps so far while there are fewer than
 * TT_STATS_HORIZON, then an exponential moving average with weight 1/TT_STATS_HORIZON (no
 * buffer of past steps, and no bias towards 0 at the start). Cleared by every load, reset and
 * restore. */
typedef struct {
    float loss;     /* of the training loss */
    float accuracy; /* of 1 when a step's prediction (before its update) was the label, else 0 */
    uint32_t count; /* steps averaged, at most TT_STATS_HORIZON */
} tt_stats;

/* The caller-owned context. Its fields are visible so it can be placed anywhere (static, on the
 * stack); read them through the functions below. */
typedef struct {
    tt_arena arena; /* head: the plan's tensors; tail: its tables when they are in RAM */
    tt_plan plan;
    bool loaded;
    uint32_t steps; /* training steps since the plan was loaded, reset or restored */
    tt_stats stats;
} tt_model;

/* --- loading ----------------------------------------------------------------------------------- */

/* Binds the arena (arena_size bytes, 16-byte aligned) to m; no plan is loaded yet. */
void tt_model_bind(tt_model *m, uint8_t *arena, size_t arena_size);
/* tt_model_bind, then tt_model_load: the one call an application needs. */
tt_status tt_model_init(tt_model *m, const uint8_t *plan, size_t len, uint8_t *arena,
                        size_t arena_size, tt_error *err);
/* Loads the len-byte plan file (16-byte aligned; read in place, so it must stay valid and
 * unchanged while loaded) with every check of tt_plan_load; its tables go to the arena's tail
 * (the arena must hold the plan's arena plus its tables, else TT_ERR_PLAN_ARENA). The trainable
 * parameters start from the plan's values. On failure no plan is loaded. */
tt_status tt_model_load(tt_model *m, const uint8_t *plan, size_t len, tt_error *err);
/* Loads the plan at the start of a plan slot with its tables in the slot after it, costing no
 * RAM (tt_plan_load_slot: write_tables writes them, through the slot's hooks when it is flash;
 * without, the ones already there are checked). On failure the model is unchanged: a plan it
 * had keeps running with its parameters (the slot must not be that plan's). */
tt_status tt_model_load_slot(tt_model *m, const tt_plan_slot *slot, size_t len, bool write_tables,
                             tt_error *err);
/* Forgets the plan (its file and slot may then be rewritten); the step count stays. */
void tt_model_unload(tt_model *m);
bool tt_model_loaded(const tt_model *m);

/* --- the plan's shapes ------------------------------------------------------------------------- */

/* The input tensor in the arena, where a sample can be written in place; *bytes (if not NULL)
 * its size. NULL (and 0) when no plan is loaded. */
void *tt_model_input(const tt_model *m, size_t *bytes);
/* Labels are 0 .. classes - 1; 0 when no plan is loaded. */
int32_t tt_model_classes(const tt_model *m);

/* --- training and inference -------------------------------------------------------------------- */

/* TT_OK when lr is a learning rate tt_train_step takes: a finite number above 0 (at most
 * FLT_MAX, so it converts to a float), else TT_ERR_ARG. NaN is refused. */
tt_status tt_check_lr(double lr, tt_error *err);
/* One training step (forward, loss, backward, update in place) on sample with label at learning
 * rate lr; result gets the loss and the prediction of the forward pass. sample NULL: the input
 * already holds it (written through tt_model_input); otherwise sample_bytes must be the input's
 * size. Refused before anything is written (TT_ERR_ARG: NULL m or result, bad lr, wrong size;
 * TT_ERR_NO_PLAN; TT_ERR_LABEL: label outside [0, classes)). Counts a step and updates the
 * running statistics. */
tt_status tt_train_step(tt_model *m, const void *sample, size_t sample_bytes, int32_t label,
                        float lr, tt_step_result *result, tt_error *err);
/* The forward pass alone: *pred is the class with the largest logit (the first on a tie).
 * sample as for tt_train_step. The parameters, the step count and the statistics stay. */
tt_status tt_predict(tt_model *m, const void *sample, size_t sample_bytes, int32_t *pred,
                     tt_error *err);
/* tt_predict on n samples stored back to back (sample_bytes each, the input's size) against
 * their labels; *accuracy is the fraction predicted right. Every label is checked before the
 * first sample runs. n == 0 is TT_ERR_ARG. */
tt_status tt_evaluate(tt_model *m, const void *samples, size_t sample_bytes, const int32_t *labels,
                      size_t n, float *accuracy, tt_error *err);

/* --- state ------------------------------------------------------------------------------------- */

/* Training steps since the plan was loaded, reset or restored. */
uint32_t tt_model_steps(const tt_model *m);
/* The running loss and accuracy (all 0 before the first step). */
tt_stats tt_model_stats(const tt_model *m);
/* Back to the plan's initial parameters; the step count and the statistics restart. */
tt_status tt_model_reset(tt_model *m, tt_error *err);

/* The trained parameters: every trainable tensor's bytes, in tensor order (what a checkpoint
 * keeps besides the step count). The layout is the plan's: a restore needs the same plan. */
size_t tt_model_params_size(const tt_model *m);
/* Calls put(ctx, bytes, n) with each trainable tensor in turn (to stream them to flash without a
 * copy in RAM); returns their total size. put NULL: only the size. 0 without a plan. */
size_t tt_model_params_walk(const tt_model *m, void (*put)(void *ctx, const uint8_t *, size_t),
                            void *ctx);
/* Copies them into out (out_size at least tt_model_params_size, else TT_ERR_ARG). */
tt_status tt_model_params_save(const tt_model *m, uint8_t *out, size_t out_size, tt_error *err);
/* Puts back what tt_model_params_save (or _walk) gave, and sets the step count to steps; the
 * statistics restart. Refused, nothing changed, without a plan (TT_ERR_NO_PLAN) or when len is
 * not the plan's parameter size (TT_ERR_ARG). */
tt_status tt_model_params_restore(tt_model *m, const uint8_t *params, size_t len, uint32_t steps,
                                  tt_error *err);

#endif
