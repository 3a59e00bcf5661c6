/*
 * tinytrain_run: loads a plan file and runs training steps on deterministic samples, without the
 * link. For benchmarks (callgrind counts the instructions of exactly the runtime's work) and for
 * measuring the arena bytes a step really writes.
 *
 *   tinytrain_run PLAN [--steps N] [--arena BYTES] [--lr X]
 *
 * Prints one line per step (loss, pred) and, last, "arena: planned P bytes, written W bytes,
 * tables T bytes": W is the highest arena offset a step wrote, found by filling the arena with
 * two different patterns before loading and comparing after the steps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt/tt_exec.h"
#include "tt/tt_plan.h"

#define MAX_ARENA (64u * 1024u * 1024u)

static _Alignas(16) uint8_t arena_buf[MAX_ARENA];

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    /* 16-byte aligned, as a device keeps plans: frozen weights are read in place. */
    uint8_t *buf = aligned_alloc(16, ((size_t)size + 15u) & ~(size_t)15u);
    if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

/* Deterministic sample values in [-1, 1) (a small LCG), whatever the input dtype. */
static void fill_input(const tt_plan *plan, uint32_t step)
{
    const tt_tensor *in = &plan->tensors[plan->input];
    uint32_t state = 12345u + step * 7919u;
    for (uint32_t i = 0; i < in->nbytes / (in->dtype == TT_DTYPE_S8 ? 1u : 4u); i++) {
        state = state * 1664525u + 1013904223u;
        float v = (float)(state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
        if (in->dtype == TT_DTYPE_S8) {
            ((int8_t *)in->data)[i] = (int8_t)(v * 127.0f);
        } else {
            ((float *)in->data)[i] = v;
        }
    }
}

/* Loads the plan over an arena filled with pattern, runs the steps; returns the highest
 * written offset + 1 within the planned region, or -1 on error. */
static long run(const uint8_t *file, size_t len, size_t capacity, uint8_t pattern, int steps,
                float lr, int verbose, tt_plan *plan)
{
    tt_arena arena;
    tt_error err = {TT_OK, ""};
    memset(arena_buf, pattern, capacity);
    tt_arena_init(&arena, arena_buf, capacity);
    if (tt_plan_load(file, len, &arena, 0, true, plan, &err) != TT_OK) {
        fprintf(stderr, "tinytrain_run: %s\n", err.msg);
        return -1;
    }
    /* Trainable parameters were copied in: those bytes count as written by loading, not by a
     * step, so compare against the state right after loading. */
    static uint8_t after_load[MAX_ARENA];
    memcpy(after_load, arena_buf, plan->arena_size);
    for (int s = 0; s < steps; s++) {
        fill_input(plan, (uint32_t)s);
        tt_step_result r;
        if (tt_exec_train_step(plan, s % plan->num_classes, lr, &r, &err) != TT_OK) {
            fprintf(stderr, "tinytrain_run: step %d: %s\n", s, err.msg);
            return -1;
        }
        if (verbose) {
            printf("step %d: loss %.7g pred %ld\n", s + 1, (double)r.loss, (long)r.pred);
        }
    }
    long high = 0;
    for (size_t i = 0; i < plan->arena_size; i++) {
        if (arena_buf[i] != after_load[i]) {
            high = (long)i + 1;
        }
    }
    /* Anything written past the planned region (below the tables) is a runtime bug. */
    for (size_t i = plan->arena_size; i < capacity - plan->tables_bytes; i++) {
        if (arena_buf[i] != pattern) {
            fprintf(stderr, "tinytrain_run: byte %zu outside the planned arena was written\n", i);
            return -1;
        }
    }
    return high;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int steps = 1;
    size_t capacity = MAX_ARENA;
    float lr = -1.0f;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--arena") == 0 && i + 1 < argc) {
            capacity = strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--lr") == 0 && i + 1 < argc) {
            lr = strtof(argv[++i], NULL);
        } else if (path == NULL && argv[i][0] != '-') {
            path = argv[i];
        } else {
            fprintf(stderr, "usage: %s PLAN [--steps N] [--arena BYTES] [--lr X]\n", argv[0]);
            return 2;
        }
    }
    if (path == NULL || steps < 1 || capacity == 0 || capacity > MAX_ARENA) {
        fprintf(stderr, "usage: %s PLAN [--steps N] [--arena BYTES] [--lr X]\n", argv[0]);
        return 2;
    }
    size_t len;
    uint8_t *file = read_file(path, &len);
    if (file == NULL) {
        fprintf(stderr, "tinytrain_run: cannot read %s\n", path);
        return 2;
    }
    tt_plan plan;
    tt_error err = {TT_OK, ""};
    if (tt_plan_validate(file, len, capacity, &plan, &err) != TT_OK) {
        fprintf(stderr, "tinytrain_run: %s\n", err.msg);
        free(file);
        return 1;
    }
    if (lr < 0.0f) {
        lr = plan.default_lr;
    }
    long w1 = run(file, len, capacity, 0xA5, steps, lr, 1, &plan);
    long w2 = w1 < 0 ? -1 : run(file, len, capacity, 0x5A, steps, lr, 0, &plan);
    free(file);
    if (w1 < 0 || w2 < 0) {
        return 1;
    }
    printf("arena: planned %lu bytes, written %ld bytes, tables %lu bytes\n",
           (unsigned long)plan.arena_size, w1 > w2 ? w1 : w2, (unsigned long)plan.tables_bytes);
    return 0;
}
