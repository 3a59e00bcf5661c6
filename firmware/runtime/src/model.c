/*
 * The public API's model: loading a plan into a caller-owned context, and its state (step count,
 * statistics, trained parameters). Training and inference are in train.c.
 */
#include "tt/tinytrain.h"

#include <string.h>

static void restart(tt_model *m, uint32_t steps)
{
    m->steps = steps;
    memset(&m->stats, 0, sizeof m->stats);
}

void tt_model_bind(tt_model *m, uint8_t *arena, size_t arena_size)
{
    memset(m, 0, sizeof *m);
    tt_arena_init(&m->arena, arena, arena_size);
}

tt_status tt_model_init(tt_model *m, const uint8_t *plan, size_t len, uint8_t *arena,
                        size_t arena_size, tt_error *err)
{
    if (m == NULL || arena == NULL) {
        return tt_fail(err, TT_ERR_ARG, "tt_model_init: no model or no arena");
    }
    tt_model_bind(m, arena, arena_size);
    return tt_model_load(m, plan, len, err);
}

tt_status tt_model_load(tt_model *m, const uint8_t *plan, size_t len, tt_error *err)
{
    if (m == NULL) {
        return tt_fail(err, TT_ERR_ARG, "tt_model_load: no model");
    }
    /* Decoding rewrites the arena's tail, where a running plan's tables may be. */
    m->loaded = false;
    tt_status st = tt_plan_load(plan, len, &m->arena, 0, true, &m->plan, err);
    if (st != TT_OK) {
        return st;
    }
    m->loaded = true;
    restart(m, 0);
    return TT_OK;
}

tt_status tt_model_load_slot(tt_model *m, const tt_plan_slot *slot, size_t len, bool write_tables,
                             tt_error *err)
{
    if (m == NULL) {
        return tt_fail(err, TT_ERR_ARG, "tt_model_load_slot: no model");
    }
    /* Into a candidate: tt_plan_load_slot touches nothing a running plan uses before every
     * check has passed, so a refused plan leaves the model as it was. */
    tt_plan candidate;
    tt_status st = tt_plan_load_slot(slot, len, &m->arena, write_tables, true, &candidate, err);
    if (st != TT_OK) {
        return st;
    }
    m->plan = candidate;
    m->loaded = true;
    restart(m, 0);
    return TT_OK;
}

void tt_model_unload(tt_model *m)
{
    m->loaded = false; /* the step count stays readable (a device reports it until a load) */
}

bool tt_model_loaded(const tt_model *m)
{
    return m != NULL && m->loaded;
}

void *tt_model_input(const tt_model *m, size_t *bytes)
{
    const tt_tensor *in = tt_model_loaded(m) ? &m->plan.tensors[m->plan.input] : NULL;
    if (bytes != NULL) {
        *bytes = in != NULL ? in->nbytes : 0;
    }
    return in != NULL ? in->data : NULL;
}

int32_t tt_model_classes(const tt_model *m)
{
    return tt_model_loaded(m) ? m->plan.num_classes : 0;
}

uint32_t tt_model_steps(const tt_model *m)
{
    return m != NULL ? m->steps : 0;
}

tt_stats tt_model_stats(const tt_model *m)
{
    tt_stats none = {0.0f, 0.0f, 0};
    return m != NULL ? m->stats : none;
}

tt_status tt_model_reset(tt_model *m, tt_error *err)
{
    if (!tt_model_loaded(m)) {
        return tt_fail(err, TT_ERR_NO_PLAN, "no plan is loaded to reset");
    }
    tt_plan_init_params(&m->plan); /* the tables stay where they are */
    restart(m, 0);
    return TT_OK;
}

size_t tt_model_params_walk(const tt_model *m, void (*put)(void *ctx, const uint8_t *, size_t),
                            void *ctx)
{
    size_t total = 0;
    for (uint32_t i = 0; tt_model_loaded(m) && i < m->plan.n_tensors; i++) {
        const tt_tensor *t = &m->plan.tensors[i];
        if (t->kind == TT_KIND_PARAM_TRAINABLE) {
            if (put != NULL) {
                put(ctx, t->data, t->nbytes);
            }
            total += t->nbytes;
        }
    }
    return total;
}

size_t tt_model_params_size(const tt_model *m)
{
    return tt_model_params_walk(m, NULL, NULL);
}

static void put_copy(void *ctx, const uint8_t *data, size_t len)
{
    uint8_t **at = ctx;
    memcpy(*at, data, len);
    *at += len;
}

tt_status tt_model_params_save(const tt_model *m, uint8_t *out, size_t out_size, tt_error *err)
{
    if (!tt_model_loaded(m)) {
        return tt_fail(err, TT_ERR_NO_PLAN, "no plan is loaded to save parameters from");
    }
    size_t want = tt_model_params_size(m);
    if (out == NULL || out_size < want) {
        return tt_fail(err, TT_ERR_ARG, "parameters need %lu bytes, the buffer has %lu",
                       (unsigned long)want, (unsigned long)(out == NULL ? 0 : out_size));
    }
    tt_model_params_walk(m, put_copy, &out);
    return TT_OK;
}

tt_status tt_model_params_restore(tt_model *m, const uint8_t *params, size_t len, uint32_t steps,
                                  tt_error *err)
{
    if (!tt_model_loaded(m)) {
        return tt_fail(err, TT_ERR_NO_PLAN, "no plan loaded to restore parameters into");
    }
    size_t want = tt_model_params_size(m);
    if (len != want || params == NULL) {
        return tt_fail(err, TT_ERR_ARG, "saved parameters are %lu bytes, the plan's are %lu",
                       (unsigned long)len, (unsigned long)want);
    }
    for (uint32_t i = 0; i < m->plan.n_tensors; i++) {
        const tt_tensor *t = &m->plan.tensors[i];
        if (t->kind == TT_KIND_PARAM_TRAINABLE) {
            memcpy(t->data, params, t->nbytes);
            params += t->nbytes;
        }
    }
    restart(m, steps);
    return TT_OK;
}
