/*
 * The plan decoder and checks (tt_plan_validate, tt_plan_load) and a training step on what they
 * accept, against plans from tests/c/gen_plans.py.
 *
 * Usage: test_plan PLAN_DIR
 *
 * The arena sits between guard bytes, which must be intact after every load and step. Plans are
 * exact-size heap buffers, so ASan reports any read past a (truncated) plan. For each plan the
 * manifest lists, three training steps must give the numpy reference executor's loss (1e-5
 * relative) and prediction. Every mutant of mutants.bin must get its expected status (or be refused
 * with the words it names: an op refused for that reason); one that loads (expected or not) must
 * then run a training step and inference without touching anything outside the plan's own arena:
 * the guards, the arena bytes between the plan's tensors and its tables, and the tables themselves
 * are all checked afterwards. And on every mutant the firmware must decide as the host's check,
 * tinyhost.plan.decode_plan, did (its verdict is in the record): the same plans accepted, the same
 * refused, but for the device's arena size, which is not plan validity.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include "plan_data.h"
#include "tt/tt_exec.h"
#include "tt/tt_plan.h"
#include "tt/tt_version.h"
#include "tt_test.h"

#define GUARD 256u
#define CAPACITY (128u * 1024u)
#define GUARD_BYTE 0xA5u
#define SLACK_BYTE 0x5Au

static _Alignas(16) uint8_t memory[GUARD + CAPACITY + GUARD];
static uint8_t tables_copy[CAPACITY];
static uint8_t *const arena_base = memory + GUARD;
static const char *current_case = "(none)"; /* named if a sanitizer stops the test */

static void on_death(void)
{
    printf("\n*** the sanitizer stopped the test in case %s\n", current_case);
    fflush(stdout);
}

static void set_guards(void)
{
    memset(memory, GUARD_BYTE, GUARD);
    memset(memory + GUARD + CAPACITY, GUARD_BYTE, GUARD);
}

static bool guards_intact(void)
{
    for (size_t i = 0; i < GUARD; i++) {
        if (memory[i] != GUARD_BYTE || memory[GUARD + CAPACITY + i] != GUARD_BYTE) {
            return false;
        }
    }
    return true;
}

/* tt_plan_load into a fresh guarded arena of `capacity` bytes (<= CAPACITY), whose contents are
 * first set to `fill`. Checks the guards. */
static tt_status load(const uint8_t *file, size_t len, size_t capacity, size_t keep_head,
                      tt_arena *arena, tt_plan *plan, tt_error *err, const char *what)
{
    set_guards();
    memset(arena_base, 0, CAPACITY);
    tt_arena_init(arena, arena_base, capacity);
    err->code = TT_OK;
    err->msg[0] = '\0';
    tt_status st = tt_plan_load(file, len, arena, keep_head, true, plan, err);
    TT_CHECK_MSG(guards_intact(), "%s: tt_plan_load wrote outside the arena", what);
    TT_CHECK_MSG(st == TT_OK || st == err->code, "%s: returned %s but err.code is %s", what,
                 tt_status_name(st), tt_status_name(err->code));
    TT_CHECK_MSG(st == TT_OK || err->msg[0] != '\0', "%s: %s without a message", what,
                 tt_status_name(st));
    return st;
}

/* After a successful load: the bytes between the plan's arena and its tables get a pattern, and
 * the tables are copied, so run_checked() can tell whether a step wrote outside the plan's arena. */
static void mark_outside(const tt_arena *arena, const tt_plan *plan)
{
    size_t tables_at = arena->capacity - arena->tail_used;
    memset(arena_base + plan->arena_size, SLACK_BYTE, tables_at - plan->arena_size);
    memcpy(tables_copy, arena_base + tables_at, arena->tail_used);
}

static bool outside_intact(const tt_arena *arena, const tt_plan *plan)
{
    size_t tables_at = arena->capacity - arena->tail_used;
    for (size_t i = plan->arena_size; i < tables_at; i++) {
        if (arena_base[i] != SLACK_BYTE) {
            return false;
        }
    }
    return guards_intact() &&
           memcmp(tables_copy, arena_base + tables_at, arena->tail_used) == 0;
}

/* A training step and inference on a plan that loaded; the status of each is returned through
 * *train / *infer. Returns false if anything outside the plan's arena changed. */
static bool run_checked(const tt_arena *arena, const tt_plan *plan, tt_status *train,
                        tt_status *infer)
{
    mark_outside(arena, plan);
    const tt_tensor *in = &plan->tensors[plan->input];
    for (uint32_t i = 0; i < in->nbytes; i++) {
        ((uint8_t *)in->data)[i] = (uint8_t)(0x3C + (i % 4 == 3 ? 0 : i % 7)); /* ~0.01f */
    }
    tt_step_result r;
    tt_error err;
    *train = tt_exec_train_step(plan, 0, 0.01f, &r, &err);
    int32_t pred;
    *infer = tt_exec_infer(plan, &pred, &err);
    return outside_intact(arena, plan);
}

static bool close_rel(float got, float want)
{
    return fabsf(got - want) <= 1e-5f * fabsf(want);
}

/* --- the original plans: load, reference steps, arena limits, re-attach --------------------- */

static void test_plan_steps(const char *dir, const pd_plan *pp)
{
    char what[128];
    size_t len;
    current_case = pp->name;
    uint8_t *file = pd_read(dir, pp->file, &len);
    TT_CHECK_MSG(file != NULL, "cannot read %s", pp->file);
    if (file == NULL) {
        return;
    }
    tt_arena arena;
    tt_plan plan;
    tt_error err;
    snprintf(what, sizeof what, "%s: load", pp->name);
    tt_status st = load(file, len, CAPACITY, 0, &arena, &plan, &err, what);
    tt_test_case(what, st == TT_OK, err.msg);
    if (st != TT_OK) {
        free(file);
        return;
    }
    TT_CHECK(memcmp(plan.hash, file + len - TT_SHA256_SIZE, TT_SHA256_SIZE) == 0);
    TT_CHECK(plan.tables_bytes == arena.tail_used);

    /* The reference executor's steps, in order, from the initial parameters. */
    mark_outside(&arena, &plan);
    for (int k = 0; k < pp->nsteps; k++) {
        const pd_step *s = &pp->steps[k];
        size_t slen;
        uint8_t *sample = pd_read(dir, s->sample, &slen);
        const tt_tensor *in = &plan.tensors[plan.input];
        TT_CHECK_MSG(sample != NULL && slen == in->nbytes, "%s: sample size", s->sample);
        if (sample == NULL || slen != in->nbytes) {
            free(sample);
            break;
        }
        memcpy(in->data, sample, slen);
        free(sample);
        tt_step_result r = {0};
        st = tt_exec_train_step(&plan, s->label, s->lr, &r, &err);
        char detail[160];
        snprintf(detail, sizeof detail, "status %s, loss %.9g (reference %.9g), pred %ld (%ld)",
                 tt_status_name(st), (double)r.loss, (double)s->loss, (long)r.pred,
                 (long)s->pred);
        snprintf(what, sizeof what, "%s: step %d equals the reference executor", pp->name, k + 1);
        tt_test_case(what, st == TT_OK && close_rel(r.loss, s->loss) && r.pred == s->pred, detail);
    }
    TT_CHECK_MSG(outside_intact(&arena, &plan), "%s: steps wrote outside the plan's arena",
                 pp->name);

    /* Re-attach without init_params keeps the trained parameters; with it, restores the blob's. */
    uint32_t ti = 0;
    while (ti < plan.n_tensors && plan.tensors[ti].kind != TT_KIND_PARAM_TRAINABLE) {
        ti++;
    }
    TT_CHECK(ti < plan.n_tensors);
    if (ti < plan.n_tensors) {
        const uint32_t nbytes = plan.tensors[ti].nbytes;
        uint8_t *trained = malloc(nbytes);
        memcpy(trained, plan.tensors[ti].data, nbytes);
        TT_CHECK_MSG(memcmp(trained, plan.blob + plan.tensors[ti].data_offset, nbytes) != 0,
                     "%s: training did not change tensor %u", pp->name, (unsigned)ti);
        tt_plan again;
        TT_CHECK_STATUS(tt_plan_load(file, len, &arena, plan.arena_size, false, &again, &err),
                        TT_OK);
        TT_CHECK_MSG(memcmp(trained, again.tensors[ti].data, nbytes) == 0,
                     "%s: re-attaching the plan changed its trained parameters", pp->name);
        TT_CHECK_STATUS(tt_plan_load(file, len, &arena, 0, true, &again, &err), TT_OK);
        TT_CHECK_MSG(memcmp(again.blob + again.tensors[ti].data_offset, again.tensors[ti].data,
                            nbytes) == 0,
                     "%s: init_params did not restore the initial parameters", pp->name);
        free(trained);
    }

    /* Capacity: exactly enough loads and trains; a byte (8, as the tail is 8-aligned) less is
     * TT_ERR_PLAN_ARENA naming what the plan needs and what the device has. */
    size_t need = plan.arena_size + plan.tables_bytes;
    tt_plan tight;
    snprintf(what, sizeof what, "%s: loads into an arena of exactly %lu bytes", pp->name,
             (unsigned long)need);
    st = load(file, len, need, 0, &arena, &tight, &err, what);
    tt_status train = TT_ERR_INTERNAL, infer = TT_ERR_INTERNAL;
    bool intact = st == TT_OK && run_checked(&arena, &tight, &train, &infer);
    tt_test_case(what, st == TT_OK && train == TT_OK && infer == TT_OK && intact, err.msg);

    st = load(file, len, need - 8, 0, &arena, &tight, &err, what);
    char num_need[24], num_have[24];
    snprintf(num_need, sizeof num_need, "%lu", (unsigned long)plan.arena_size);
    snprintf(num_have, sizeof num_have, "%lu", (unsigned long)arena.capacity);
    snprintf(what, sizeof what, "%s: arena of %s bytes is TT_ERR_PLAN_ARENA naming %s and %s",
             pp->name, num_have, num_need, num_have);
    tt_test_case(what, st == TT_ERR_PLAN_ARENA && strstr(err.msg, num_need) != NULL &&
                           strstr(err.msg, num_have) != NULL, err.msg);
    st = load(file, len, 16, 0, &arena, &tight, &err, what);
    TT_CHECK_STATUS(st, TT_ERR_PLAN_ARENA);
    /* tt_plan_validate alone says the same without an arena. */
    TT_CHECK_STATUS(tt_plan_validate(file, len, need - 8, &tight, &err), TT_ERR_PLAN_ARENA);
    TT_CHECK_STATUS(tt_plan_validate(file, len, need, &tight, &err), TT_OK);
    /* Keeping a loaded plan's head that leaves no room for these tables: refused, nothing written. */
    st = load(file, len, need, need - plan.tables_bytes + 8, &arena, &tight, &err, what);
    TT_CHECK_STATUS(st, TT_ERR_PLAN_ARENA);
    bool untouched = true;
    for (size_t i = 0; i < need; i++) {
        untouched = untouched && arena_base[i] == 0;
    }
    TT_CHECK_MSG(untouched, "%s: a refused load wrote into the arena", pp->name);
    TT_CHECK_STATUS(tt_plan_validate(NULL, 0, CAPACITY, &tight, &err), TT_ERR_ARG);
    free(file);
}

/* --- mutants -------------------------------------------------------------------------------- */

static tt_status status_named(const char *name)
{
    for (int s = 0; s >= -64; s--) {
        if (strcmp(tt_status_name((tt_status)s), name) == 0) {
            return (tt_status)s;
        }
    }
    return (tt_status)1; /* not a status */
}

typedef struct {
    int total, accepted, trained, refused, capacity, known_bugs, disagree;
    int by_status[16];
} mutant_stats;

/* The host's verdict of a record ("ok", "fail", "fail|known firmware bug", "crash|what"): its
 * first word, and what follows the '|' (NULL when nothing). */
static const char *python_note(const pd_mutant *m, char *verdict, size_t size)
{
    const char *bar = strchr(m->python, '|');
    size_t n = bar == NULL ? strlen(m->python) : (size_t)(bar - m->python);
    snprintf(verdict, size, "%.*s", (int)n, m->python);
    return bar == NULL ? NULL : bar + 1;
}

static void test_mutant(const pd_mutant *m, mutant_stats *stats)
{
    uint8_t *file = pd_copy(m->data, m->len);
    current_case = m->name;
    tt_arena arena;
    tt_plan plan;
    tt_error err;
    tt_status st = load(file, m->len, CAPACITY, 0, &arena, &plan, &err, m->name);
    stats->total++;
    stats->by_status[-st < 16 ? -st : 15]++;

    /* The host's check must decide as the firmware does: plan validity, not the device's arena
     * (capacity is the device's business, TT_ERR_PLAN_ARENA is not compared). */
    char verdict[16];
    const char *note = python_note(m, verdict, sizeof verdict);
    const bool host_ok = strcmp(verdict, "ok") == 0;
    const bool known_bug = note != NULL && strcmp(verdict, "crash") != 0;
    TT_CHECK_MSG(strcmp(verdict, "crash") != 0, "%s: the host's check crashed: %s", m->name,
                 note != NULL ? note : "");
    if (st == TT_ERR_PLAN_ARENA) {
        stats->capacity++;
    } else if ((st == TT_OK) != host_ok) {
        if (known_bug) {
            stats->known_bugs++;
            if (stats->known_bugs <= 5) {
                printf("known firmware bug: %s: firmware %s, host %s: %s\n", m->name,
                       tt_status_name(st), verdict, note);
            }
        } else {
            stats->disagree++;
            TT_CHECK_MSG(false, "%s: the firmware says %s (%s), the host's check %s%s%s", m->name,
                         st == TT_OK ? "ok" : tt_status_name(st), st == TT_OK ? "" : err.msg,
                         verdict, note != NULL ? ": " : "", note != NULL ? note : "");
        }
    }
    if (strcmp(m->expect, "ok") == 0) {
        TT_CHECK_MSG(st == TT_OK, "%s: expected TT_OK, got %s: %s", m->name, tt_status_name(st),
                     err.msg);
    } else if (strcmp(m->expect, "fail") == 0) {
        TT_CHECK_MSG(st != TT_OK, "%s: a bad plan was accepted", m->name);
    } else if (strncmp(m->expect, "why:", 4) == 0) {
        /* Refused for the reason the host names (the words of the firmware's message). */
        TT_CHECK_MSG(st != TT_OK && strstr(err.msg, m->expect + 4) != NULL,
                     "%s: expected a refusal saying '%s', got %s: %s", m->name, m->expect + 4,
                     tt_status_name(st), err.msg);
    } else if (strcmp(m->expect, "any") != 0) {
        tt_status want = status_named(m->expect);
        TT_CHECK_MSG(st == want, "%s: expected %s, got %s: %s", m->name, m->expect,
                     tt_status_name(st), err.msg);
        const char *v = strstr(m->name, "/version-");
        if (want == TT_ERR_PLAN_VERSION && v != NULL) {
            char mine[40], theirs[40];
            snprintf(theirs, sizeof theirs, "version %s ", v + 9);
            snprintf(mine, sizeof mine, "version %u", (unsigned)TT_PLAN_FORMAT_VERSION);
            TT_CHECK_MSG(strstr(err.msg, theirs) != NULL && strstr(err.msg, mine) != NULL,
                         "%s: the message should name both versions: %s", m->name, err.msg);
        }
    }
    if (st == TT_OK) {
        stats->accepted++;
        /* A plan the firmware accepts only through a known bug may make a step misbehave (read
         * past its tensors): it is loaded, never run. */
        if (!(known_bug && !host_ok)) {
            tt_status train, infer;
            bool intact = run_checked(&arena, &plan, &train, &infer);
            TT_CHECK_MSG(intact, "%s: a training step wrote outside the plan's arena", m->name);
            stats->trained += train == TT_OK;
            /* A NaN/inf constant is a valid plan whose update the runtime refuses. */
            const bool nonfinite = strstr(m->name, "=nan") != NULL ||
                                   strstr(m->name, "inf") != NULL;
            const tt_status ok = nonfinite ? TT_ERR_NONFINITE : TT_OK;
            if (strcmp(m->expect, "ok") == 0) {
                TT_CHECK_MSG((train == TT_OK || train == ok) && (infer == TT_OK || infer == ok),
                             "%s: step %s, inference %s", m->name, tt_status_name(train),
                             tt_status_name(infer));
            }
        }
    } else {
        stats->refused++;
    }
    free(file);
}

static void test_mutants(const char *dir)
{
    size_t size;
    uint8_t *pack = pd_read(dir, "mutants.bin", &size);
    TT_CHECK(pack != NULL);
    if (pack == NULL) {
        return;
    }
    mutant_stats stats = {0};
    size_t pos = 0;
    pd_mutant m;
    int failures_before = tt_test_failures_;
    while (pd_next_mutant(pack, size, &pos, &m)) {
        test_mutant(&m, &stats);
    }
    TT_CHECK_MSG(pos == size, "mutants.bin is malformed at byte %lu", (unsigned long)pos);
    char detail[64];
    snprintf(detail, sizeof detail, "%d checks failed", tt_test_failures_ - failures_before);
    char what[160];
    snprintf(what, sizeof what, "%d mutated plans: %d refused, %d loaded (%d trained without error)",
             stats.total, stats.refused, stats.accepted, stats.trained);
    tt_test_case(what, tt_test_failures_ == failures_before, detail);
    printf("     refusals by status:");
    for (int s = 1; s < 16; s++) {
        if (stats.by_status[s]) {
            printf(" %s %d", tt_status_name((tt_status)-s), stats.by_status[s]);
        }
    }
    printf("\n");
    snprintf(what, sizeof what, "the host's check (tinyhost.plan.decode_plan) decides as the "
             "firmware on all %d (%d refused for the device's arena, not compared)",
             stats.total - stats.capacity, stats.capacity);
    snprintf(detail, sizeof detail, "%d disagree", stats.disagree);
    tt_test_case(what, stats.disagree == 0, detail);
    if (stats.known_bugs > 0) {
        printf("     %d plans the firmware accepts only through known firmware bugs (see above)\n",
               stats.known_bugs);
    }
    TT_CHECK(stats.total > 1000);
    free(pack);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLAN_DIR\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(on_death);
#else
    (void)on_death;
#endif
    pd_manifest manifest;
    if (!pd_read_manifest(argv[1], &manifest)) {
        return 2;
    }
    for (int i = 0; i < manifest.nplans; i++) {
        TT_CHECK_MSG(manifest.plans[i].nsteps == 3, "%s: 3 reference steps expected",
                     manifest.plans[i].name);
        test_plan_steps(argv[1], &manifest.plans[i]);
    }
    test_mutants(argv[1]);
    return tt_test_summary("test_plan");
}
