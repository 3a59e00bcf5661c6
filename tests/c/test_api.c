/*
 * The public C API (tt/tinytrain.h) as an application uses it, and nothing else of the runtime:
 * each generated plan is loaded, trained on the recorded steps (losses and predictions against
 * the numpy reference executor's), predicted and evaluated with; its parameters are saved, reset,
 * retrained, restored and trained on to the same bits; and every argument error is refused
 * without changing anything.
 *
 * Usage: test_api PLAN_DIR   (the files of tests/c/gen_plans.py)
 */
#define _POSIX_C_SOURCE 200809L

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_data.h"
#include "tt/tinytrain.h"
#include "tt_test.h"

#define ARENA_SIZE (256u * 1024u)
#define MAX_PARAMS (128u * 1024u)

static _Alignas(16) uint8_t arena[ARENA_SIZE];
static uint8_t params0[MAX_PARAMS], params1[MAX_PARAMS], params_end[MAX_PARAMS],
    scratch[MAX_PARAMS];

typedef struct {
    const pd_plan *plan;
    uint8_t *file;
    size_t len;
    uint8_t *samples; /* the steps' samples back to back */
    size_t sample_len;
    int32_t labels[PD_MAX_STEPS];
} plan_files;

static bool load_files(const char *dir, const pd_plan *p, plan_files *pf)
{
    memset(pf, 0, sizeof *pf);
    pf->plan = p;
    if ((pf->file = pd_read(dir, p->file, &pf->len)) == NULL) {
        return false;
    }
    for (int k = 0; k < p->nsteps; k++) {
        size_t n;
        uint8_t *s = pd_read(dir, p->steps[k].sample, &n);
        if (s == NULL || (k > 0 && n != pf->sample_len)) {
            free(s);
            return false;
        }
        if (k == 0) {
            pf->sample_len = n;
            pf->samples = malloc(n * (size_t)p->nsteps);
        }
        memcpy(pf->samples + (size_t)k * n, s, n);
        free(s);
        pf->labels[k] = p->steps[k].label;
    }
    return pf->samples != NULL;
}

static const uint8_t *sample(const plan_files *pf, int k)
{
    return pf->samples + (size_t)k * pf->sample_len;
}

static bool close_rel(float got, float want)
{
    return fabsf(got - want) <= 1e-5f * fabsf(want);
}

static bool same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* The parameters now equal want (n bytes). */
static bool params_are(const tt_model *m, const uint8_t *want, size_t n)
{
    tt_error err;
    return tt_model_params_save(m, scratch, sizeof scratch, &err) == TT_OK &&
           memcmp(scratch, want, n) == 0;
}

/* Trains steps [from, to) of pf, recording losses; each must be the reference's. */
static bool train_steps(tt_model *m, const plan_files *pf, int from, int to, float *losses,
                        const char *what)
{
    bool ok = true;
    for (int k = from; k < to; k++) {
        const pd_step *s = &pf->plan->steps[k];
        tt_step_result r = {0};
        tt_error err = {TT_OK, ""};
        tt_status st = tt_train_step(m, sample(pf, k), pf->sample_len, s->label, s->lr, &r, &err);
        bool good = st == TT_OK && close_rel(r.loss, s->loss) && r.pred == s->pred;
        if (!good) {
            printf("     %s step %d: status %d (%s), loss %.9g (reference %.9g), pred %ld (%ld)\n",
                   what, k + 1, (int)st, err.msg, (double)r.loss, (double)s->loss, (long)r.pred,
                   (long)s->pred);
        }
        losses[k] = r.loss;
        ok = ok && good;
    }
    return ok;
}

/* Training, inference, save/reset/restore on one plan. */
static void run_plan(const plan_files *pf)
{
    const char *name = pf->plan->name;
    const int n = pf->plan->nsteps;
    char what[160];
    tt_model m;
    tt_error err = {TT_OK, ""};

    tt_status st = tt_model_init(&m, pf->file, pf->len, arena, sizeof arena, &err);
    size_t in_bytes = 0;
    void *in = tt_model_input(&m, &in_bytes);
    snprintf(what, sizeof what, "%s: tt_model_init loads it (input %lu bytes, %ld classes)", name,
             (unsigned long)in_bytes, (long)tt_model_classes(&m));
    tt_test_case(what,
                 st == TT_OK && tt_model_loaded(&m) && in != NULL &&
                     in_bytes == pf->sample_len && tt_model_classes(&m) > 0 &&
                     tt_model_steps(&m) == 0 && tt_model_stats(&m).count == 0,
                 err.msg);
    if (st != TT_OK) {
        return;
    }
    size_t np = tt_model_params_size(&m);
    TT_CHECK_MSG(np > 0 && np <= MAX_PARAMS, "%s: %lu parameter bytes", name, (unsigned long)np);
    if (np == 0 || np > MAX_PARAMS) {
        return;
    }
    TT_CHECK_STATUS(tt_model_params_save(&m, params0, sizeof params0, &err), TT_OK);

    /* The recorded steps, against the reference; the parameters after step 1 kept. */
    float first[PD_MAX_STEPS], again[PD_MAX_STEPS];
    bool ok = train_steps(&m, pf, 0, 1, first, "first run");
    TT_CHECK_STATUS(tt_model_params_save(&m, params1, sizeof params1, &err), TT_OK);
    ok = train_steps(&m, pf, 1, n, first, "first run") && ok;
    snprintf(what, sizeof what, "%s: tt_train_step x%d equals the reference executor", name, n);
    tt_test_case(what, ok && tt_model_steps(&m) == (uint32_t)n, NULL);
    TT_CHECK_STATUS(tt_model_params_save(&m, params_end, sizeof params_end, &err), TT_OK);
    TT_CHECK_MSG(memcmp(params_end, params0, np) != 0, "%s: training changed no parameter", name);

    /* Running statistics: fewer steps than the horizon, so the plain means. */
    float mean = 0.0f, acc = 0.0f;
    for (int k = 0; k < n; k++) {
        mean += first[k] / (float)n;
        acc += (pf->plan->steps[k].pred == pf->plan->steps[k].label ? 1.0f : 0.0f) / (float)n;
    }
    tt_stats s = tt_model_stats(&m);
    snprintf(what, sizeof what, "%s: running loss %.6g (mean %.6g), accuracy %.3g (%.3g)", name,
             (double)s.loss, (double)mean, (double)s.accuracy, (double)acc);
    tt_test_case(what,
                 s.count == (uint32_t)n && fabsf(s.loss - mean) <= 1e-5f * mean &&
                     fabsf(s.accuracy - acc) <= 1e-6f,
                 NULL);

    /* Inference: a sample passed, or written in place; evaluate agrees; nothing trains. */
    int32_t preds[PD_MAX_STEPS], wrong[PD_MAX_STEPS];
    ok = true;
    for (int k = 0; k < n; k++) {
        int32_t inplace = -1;
        ok = ok && tt_predict(&m, sample(pf, k), pf->sample_len, &preds[k], &err) == TT_OK;
        memcpy(in, sample(pf, k), in_bytes);
        ok = ok && tt_predict(&m, NULL, 0, &inplace, &err) == TT_OK && inplace == preds[k] &&
             preds[k] >= 0 && preds[k] < tt_model_classes(&m);
        wrong[k] = (preds[k] + 1) % tt_model_classes(&m);
    }
    float a_right = -1.0f, a_wrong = -1.0f;
    ok = ok &&
         tt_evaluate(&m, pf->samples, pf->sample_len, preds, (size_t)n, &a_right, &err) == TT_OK &&
         tt_evaluate(&m, pf->samples, pf->sample_len, wrong, (size_t)n, &a_wrong, &err) == TT_OK;
    ok = ok && (tt_model_classes(&m) == 1 || (a_right == 1.0f && a_wrong == 0.0f));
    snprintf(what, sizeof what, "%s: tt_predict (passed or in place) and tt_evaluate agree",
             name);
    tt_test_case(what, ok, err.msg);
    snprintf(what, sizeof what, "%s: inference changes no parameter, step count or statistic",
             name);
    tt_test_case(what,
                 params_are(&m, params_end, np) && tt_model_steps(&m) == (uint32_t)n &&
                     tt_model_stats(&m).count == s.count &&
                     same_bits(tt_model_stats(&m).loss, s.loss),
                 NULL);

    /* Reset: the plan's parameters; training again gives the same bits. */
    TT_CHECK_STATUS(tt_model_reset(&m, &err), TT_OK);
    snprintf(what, sizeof what, "%s: tt_model_reset restores the initial parameters", name);
    tt_test_case(what,
                 params_are(&m, params0, np) && tt_model_steps(&m) == 0 &&
                     tt_model_stats(&m).count == 0,
                 NULL);
    ok = train_steps(&m, pf, 0, n, again, "after reset");
    for (int k = 0; k < n; k++) {
        ok = ok && same_bits(again[k], first[k]);
    }
    snprintf(what, sizeof what, "%s: retrained after reset: the same losses and parameters", name);
    tt_test_case(what, ok && params_are(&m, params_end, np), NULL);

    /* Restore the parameters after step 1: the rest of the run continues bit for bit. */
    st = tt_model_params_restore(&m, params1, np, 1, &err);
    snprintf(what, sizeof what, "%s: tt_model_params_restore puts step 1's parameters back", name);
    tt_test_case(what,
                 st == TT_OK && params_are(&m, params1, np) && tt_model_steps(&m) == 1 &&
                     tt_model_stats(&m).count == 0,
                 err.msg);
    ok = train_steps(&m, pf, 1, n, again, "after restore");
    for (int k = 1; k < n; k++) {
        ok = ok && same_bits(again[k], first[k]);
    }
    snprintf(what, sizeof what, "%s: training on from the restore ends where the run did", name);
    tt_test_case(what,
                 ok && params_are(&m, params_end, np) && tt_model_steps(&m) == (uint32_t)n,
                 NULL);
}

/* Every refused argument: the status, and nothing changed (parameters, steps, the input). */
static void run_errors(const plan_files *pf)
{
    tt_model m;
    tt_error err;
    tt_step_result r;
    int32_t pred;
    float acc;
    const pd_step *s0 = &pf->plan->steps[0];
    const uint8_t *x = sample(pf, 0);
    const size_t len = pf->sample_len;

    /* Without a plan. */
    tt_model_bind(&m, arena, sizeof arena);
    size_t bytes = 1;
    TT_CHECK(!tt_model_loaded(&m) && tt_model_input(&m, &bytes) == NULL && bytes == 0);
    TT_CHECK(tt_model_classes(&m) == 0 && tt_model_steps(&m) == 0 &&
             tt_model_params_size(&m) == 0);
    TT_CHECK_STATUS(tt_train_step(&m, x, len, s0->label, s0->lr, &r, &err), TT_ERR_NO_PLAN);
    TT_CHECK_STATUS(tt_predict(&m, x, len, &pred, &err), TT_ERR_NO_PLAN);
    TT_CHECK_STATUS(tt_evaluate(&m, x, len, &s0->label, 1, &acc, &err), TT_ERR_NO_PLAN);
    TT_CHECK_STATUS(tt_model_reset(&m, &err), TT_ERR_NO_PLAN);
    TT_CHECK_STATUS(tt_model_params_save(&m, params0, sizeof params0, &err), TT_ERR_NO_PLAN);
    TT_CHECK_STATUS(tt_model_params_restore(&m, params0, 0, 0, &err), TT_ERR_NO_PLAN);

    /* Plans refused at init leave no plan loaded. */
    TT_CHECK_STATUS(tt_model_init(&m, pf->file, pf->len, NULL, sizeof arena, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_model_init(&m, pf->file, pf->len, arena, 1024, &err), TT_ERR_PLAN_ARENA);
    TT_CHECK(!tt_model_loaded(&m));
    uint8_t *bad = pd_copy(pf->file, pf->len);
    bad[pf->len / 2] ^= 0x5a; /* the content hash no longer matches */
    tt_status st = tt_model_init(&m, bad, pf->len, arena, sizeof arena, &err);
    tt_test_case("a corrupted plan is refused by tt_model_init",
                 st != TT_OK && !tt_model_loaded(&m), err.msg);
    TT_CHECK_STATUS(tt_train_step(&m, x, len, s0->label, s0->lr, &r, &err), TT_ERR_NO_PLAN);
    free(bad);

    /* With a plan, one step trained: every refusal below must leave this state. */
    TT_CHECK_STATUS(tt_model_init(&m, pf->file, pf->len, arena, sizeof arena, &err), TT_OK);
    TT_CHECK_STATUS(tt_train_step(&m, x, len, s0->label, s0->lr, &r, &err), TT_OK);
    size_t np = tt_model_params_size(&m);
    TT_CHECK_STATUS(tt_model_params_save(&m, params1, sizeof params1, &err), TT_OK);
    uint8_t *in = tt_model_input(&m, NULL);
    memset(in, 0x11, len); /* a refused call must not overwrite the input either */
    const int32_t classes = tt_model_classes(&m);
    const float bad_lrs[] = {0.0f, -0.01f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_lrs / sizeof bad_lrs[0]; i++) {
        TT_CHECK_STATUS(tt_train_step(&m, x, len, s0->label, bad_lrs[i], &r, &err), TT_ERR_ARG);
    }
    TT_CHECK_STATUS(tt_check_lr((double)FLT_MAX, &err), TT_OK);
    TT_CHECK_STATUS(tt_check_lr((double)FLT_MAX * 2.0, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_check_lr(1e-30, &err), TT_OK);
    TT_CHECK_STATUS(tt_train_step(NULL, x, len, s0->label, s0->lr, &r, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_train_step(&m, x, len, s0->label, s0->lr, NULL, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_train_step(&m, x, len - 1, s0->label, s0->lr, &r, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_train_step(&m, x, len + 1, s0->label, s0->lr, &r, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_train_step(&m, x, len, -1, s0->lr, &r, &err), TT_ERR_LABEL);
    TT_CHECK_STATUS(tt_train_step(&m, x, len, classes, s0->lr, &r, &err), TT_ERR_LABEL);
    TT_CHECK_STATUS(tt_train_step(&m, NULL, 0, classes, s0->lr, &r, &err), TT_ERR_LABEL);
    TT_CHECK_STATUS(tt_predict(NULL, x, len, &pred, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_predict(&m, x, len, NULL, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_predict(&m, x, len + 4, &pred, &err), TT_ERR_ARG);
    const int32_t labels[2] = {s0->label, classes};
    TT_CHECK_STATUS(tt_evaluate(&m, x, len, labels, 0, &acc, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_evaluate(&m, x, len, NULL, 1, &acc, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_evaluate(&m, NULL, len, labels, 1, &acc, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_evaluate(&m, x, len, labels, 1, NULL, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_evaluate(&m, x, len - 1, labels, 1, &acc, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_evaluate(&m, pf->samples, len, labels, 2, &acc, &err), TT_ERR_LABEL);
    TT_CHECK_STATUS(tt_model_params_save(&m, scratch, np - 1, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_model_params_save(&m, NULL, np, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_model_params_restore(&m, params0, np - 1, 7, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_model_params_restore(&m, params0, np + 1, 7, &err), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_model_params_restore(&m, NULL, np, 7, &err), TT_ERR_ARG);
    bool untouched = true;
    for (size_t i = 0; i < len; i++) {
        untouched = untouched && in[i] == 0x11;
    }
    tt_test_case("refused calls change no parameter, step count, statistic or input",
                 params_are(&m, params1, np) && tt_model_steps(&m) == 1 &&
                     tt_model_stats(&m).count == 1 && untouched,
                 NULL);
    TT_CHECK(strlen(err.msg) > 0 && err.code == TT_ERR_ARG); /* the last refusal's message */
}

/* The running statistics past TT_STATS_HORIZON steps, against their definition (tinytrain.h)
 * computed here in double: steps labelled with the prediction (right), then with another
 * class (wrong), so the accuracy rises to 1 and decays as an EMA. */
static void run_stats(const plan_files *pf)
{
    tt_model m;
    tt_error err = {TT_OK, ""};
    const int steps = (int)TT_STATS_HORIZON + 24;
    double loss = 0.0, acc = 0.0;
    bool ok = tt_model_init(&m, pf->file, pf->len, arena, sizeof arena, &err) == TT_OK;
    for (int k = 0; ok && k < steps; k++) {
        const uint8_t *x = sample(pf, k % pf->plan->nsteps);
        int32_t pred;
        tt_step_result r;
        ok = tt_predict(&m, x, pf->sample_len, &pred, &err) == TT_OK;
        int32_t label = k < steps / 2 ? pred : (pred + 1) % tt_model_classes(&m);
        ok = ok && tt_train_step(&m, x, pf->sample_len, label, 0.01f, &r, &err) == TT_OK &&
             r.pred == pred;
        double w = 1.0 / (k + 1 < (int)TT_STATS_HORIZON ? k + 1 : (int)TT_STATS_HORIZON);
        loss += ((double)r.loss - loss) * w;
        acc += ((r.pred == label ? 1.0 : 0.0) - acc) * w;
    }
    tt_stats s = tt_model_stats(&m);
    char what[160];
    snprintf(what, sizeof what,
             "running statistics after %d steps: loss %.6g (%.6g), accuracy %.6g (%.6g)", steps,
             (double)s.loss, loss, (double)s.accuracy, acc);
    tt_test_case(what,
                 ok && s.count == TT_STATS_HORIZON && fabs((double)s.loss - loss) <= 1e-4 * loss &&
                     fabs((double)s.accuracy - acc) <= 1e-4 && acc > 0.05 && acc < 0.95,
                 err.msg);
}

/* A device's way: the plan in a RAM slot with its tables written after it (no RAM), and a bad
 * candidate in another slot that leaves the running plan training on. */
static void run_slots(const plan_files *pf, const uint8_t *bad, size_t bad_len)
{
    static _Alignas(16) uint8_t slots[2][96u * 1024u];
    tt_model m;
    tt_error err = {TT_OK, ""};
    memcpy(slots[0], pf->file, pf->len);
    memcpy(slots[1], bad, bad_len);
    tt_plan_slot good = {slots[0], sizeof slots[0], NULL, NULL, NULL, NULL, 0};
    tt_plan_slot cand = {slots[1], sizeof slots[1], NULL, NULL, NULL, NULL, 0};
    tt_model_bind(&m, arena, sizeof arena);
    tt_status st = tt_model_load_slot(&m, &good, pf->len, true, &err);
    const uint8_t *tables = (const uint8_t *)m.plan.tensors;
    tt_test_case("tt_model_load_slot: the tables go into the slot, after the plan",
                 st == TT_OK && tables >= slots[0] + pf->len && tables < slots[0] + sizeof slots[0],
                 err.msg);
    size_t np = tt_model_params_size(&m);
    TT_CHECK_STATUS(tt_model_params_save(&m, params0, sizeof params0, &err), TT_OK);
    float losses[PD_MAX_STEPS];
    bool ok = st == TT_OK && train_steps(&m, pf, 0, 1, losses, "slot");
    st = tt_model_load_slot(&m, &cand, bad_len, true, &err);
    tt_test_case("a refused candidate plan leaves the running model as it was",
                 st != TT_OK && tt_model_loaded(&m) && tt_model_steps(&m) == 1, err.msg);
    ok = ok && train_steps(&m, pf, 1, pf->plan->nsteps, losses, "slot, after the candidate");
    tt_test_case("the slot-loaded model trains as the reference executor", ok, NULL);
    /* Checking the tables already in the slot (a reboot), without writing them. */
    tt_model_unload(&m);
    st = tt_model_load_slot(&m, &good, pf->len, false, &err);
    tt_test_case("tt_model_load_slot without write_tables accepts the tables it wrote",
                 st == TT_OK && tt_model_steps(&m) == 0 && params_are(&m, params0, np), err.msg);
}

static void run(const char *dir)
{
    pd_manifest man;
    if (!pd_read_manifest(dir, &man)) {
        tt_test_case("read the manifest", 0, dir);
        return;
    }
    plan_files small = {0};
    for (int i = 0; i < man.nplans; i++) {
        plan_files pf;
        if (!load_files(dir, &man.plans[i], &pf)) {
            tt_test_case("read a plan's files", 0, man.plans[i].name);
            continue;
        }
        run_plan(&pf);
        if (strcmp(pf.plan->name, "small") == 0) {
            small = pf;
        } else {
            free(pf.file);
            free(pf.samples);
        }
    }
    if (small.plan == NULL) {
        tt_test_case("the manifest has the plan small", 0, NULL);
        return;
    }
    run_errors(&small);
    run_stats(&small);
    size_t pack_len, pos = 0;
    uint8_t *pack = pd_read(dir, "mutants.bin", &pack_len);
    pd_mutant mu;
    bool found = false;
    while (pack != NULL && !found && pd_next_mutant(pack, pack_len, &pos, &mu)) {
        if (strcmp(mu.name, "small/opcode-99") == 0) {
            found = true;
            run_slots(&small, mu.data, mu.len);
        }
    }
    tt_test_case("find small/opcode-99 in mutants.bin", found, NULL);
    free(pack);
    free(small.file);
    free(small.samples);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        printf("usage: %s PLAN_DIR\n", argv[0]);
        return 2;
    }
    run(argv[1]);
    return tt_test_summary("test_api");
}
