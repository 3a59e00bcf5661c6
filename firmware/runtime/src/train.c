/*
 * The public API's training and inference: the argument checks every caller shares (the link's
 * TRAIN and EVAL included), then the interpreter (exec.c). A refused call writes nothing.
 */
#include "tt/tinytrain.h"

#include <float.h>
#include <string.h>

tt_status tt_check_lr(double lr, tt_error *err)
{
    if (!(lr > 0.0 && lr <= (double)FLT_MAX)) { /* NaN fails both */
        return tt_fail(err, TT_ERR_ARG, "the learning rate must be a finite number above 0");
    }
    return TT_OK;
}

/* A plan is loaded and sample (unless NULL: already in place) has the input's size. */
static tt_status check_sample(const tt_model *m, const void *sample, size_t bytes, tt_error *err)
{
    if (!tt_model_loaded(m)) {
        return tt_fail(err, TT_ERR_NO_PLAN, "no plan is loaded");
    }
    size_t want = m->plan.tensors[m->plan.input].nbytes;
    if (sample != NULL && bytes != want) {
        return tt_fail(err, TT_ERR_ARG, "sample of %lu bytes, the plan's input takes %lu",
                       (unsigned long)bytes, (unsigned long)want);
    }
    return TT_OK;
}

static tt_status check_label(const tt_model *m, int32_t label, tt_error *err)
{
    if (label < 0 || label >= m->plan.num_classes) {
        return tt_fail(err, TT_ERR_LABEL, "label %ld outside [0, %ld)", (long)label,
                       (long)m->plan.num_classes);
    }
    return TT_OK;
}

static void put_sample(const tt_model *m, const void *sample)
{
    const tt_tensor *in = &m->plan.tensors[m->plan.input];
    if (sample != NULL && sample != in->data) {
        memcpy(in->data, sample, in->nbytes);
    }
}

/* The running mean while there are fewer than TT_STATS_HORIZON steps, then an EMA (tinytrain.h). */
static void update_stats(tt_stats *s, float loss, bool correct)
{
    if (s->count < TT_STATS_HORIZON) {
        s->count++;
    }
    float w = 1.0f / (float)s->count;
    s->loss += (loss - s->loss) * w;
    s->accuracy += ((correct ? 1.0f : 0.0f) - s->accuracy) * w;
}

tt_status tt_train_step(tt_model *m, const void *sample, size_t sample_bytes, int32_t label,
                        float lr, tt_step_result *result, tt_error *err)
{
    if (m == NULL || result == NULL) {
        return tt_fail(err, TT_ERR_ARG, "tt_train_step: no model or no result");
    }
    tt_status st = tt_check_lr(lr, err);
    if (st == TT_OK) {
        st = check_sample(m, sample, sample_bytes, err);
    }
    if (st == TT_OK) {
        st = check_label(m, label, err);
    }
    if (st != TT_OK) {
        return st;
    }
    put_sample(m, sample);
    st = tt_exec_train_step(&m->plan, label, lr, result, err);
    if (st != TT_OK) {
        return st;
    }
    m->steps++;
    update_stats(&m->stats, result->loss, result->pred == label);
    return TT_OK;
}

tt_status tt_predict(tt_model *m, const void *sample, size_t sample_bytes, int32_t *pred,
                     tt_error *err)
{
    if (m == NULL || pred == NULL) {
        return tt_fail(err, TT_ERR_ARG, "tt_predict: no model or no pred");
    }
    tt_status st = check_sample(m, sample, sample_bytes, err);
    if (st != TT_OK) {
        return st;
    }
    put_sample(m, sample);
    return tt_exec_infer(&m->plan, pred, err);
}

tt_status tt_evaluate(tt_model *m, const void *samples, size_t sample_bytes, const int32_t *labels,
                      size_t n, float *accuracy, tt_error *err)
{
    if (m == NULL || samples == NULL || labels == NULL || accuracy == NULL || n == 0) {
        return tt_fail(err, TT_ERR_ARG, "tt_evaluate: no model, samples, labels or accuracy");
    }
    tt_status st = check_sample(m, samples, sample_bytes, err);
    for (size_t i = 0; st == TT_OK && i < n; i++) {
        st = check_label(m, labels[i], err);
    }
    size_t correct = 0;
    for (size_t i = 0; st == TT_OK && i < n; i++) {
        int32_t pred;
        st = tt_predict(m, (const uint8_t *)samples + i * sample_bytes, sample_bytes, &pred, err);
        correct += st == TT_OK && pred == labels[i];
    }
    if (st != TT_OK) {
        return st;
    }
    *accuracy = (float)correct / (float)n;
    return TT_OK;
}
