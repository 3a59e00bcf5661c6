/*
 * One training step of a plan, op by op, on the Cortex-M4F in QEMU (-icount shift=0: the cost
 * counter counts instructions), for bench/m4f.py's per-op table. The production firmware does
 * not time ops (no RAM for it); this program, built like the kernel tests
 * (firmware/ports/baremetal/kernel_tests.cmake), reads a plan file through semihosting into the
 * plan store, loads it with its tables in the slot (tinytrain.h), trains one step on a zero sample
 * (label 0) running the ops one at a time, and prints
 *
 *   op K OPCODE COST        for every op, then
 *   step TOTAL              the sum
 *
 *   bench_plan_ops_an386 PLAN_FILE
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cortex_m4.h"
#include "tt/tinytrain.h"

extern uint8_t __plan_slot0[], __plan_capacity[];

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: bench_plan_ops PLAN_FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        printf("cannot open %s\n", argv[1]);
        return 2;
    }
    size_t capacity = (size_t)(uintptr_t)__plan_capacity;
    size_t len = fread(__plan_slot0, 1, capacity, f);
    fclose(f);
    /* The heap is the firmware's arena region (less this program's stack and stdio): take the
     * most of it malloc gives. */
    size_t arena_size = 256u * 1024u;
    uint8_t *arena = NULL;
    while (arena == NULL && arena_size > 4096u) {
        arena_size -= 1024u;
        arena = malloc(arena_size);
    }
    if (arena == NULL) {
        printf("no arena\n");
        return 2;
    }
    static uint8_t stage[256];
    tt_model m;
    tt_model_bind(&m, (uint8_t *)(((uintptr_t)arena + 15u) & ~(uintptr_t)15u), arena_size - 16u);
    tt_plan_slot slot = {__plan_slot0, capacity, NULL, NULL, NULL, stage, sizeof stage};
    tt_error err = {TT_OK, ""};
    if (tt_model_load_slot(&m, &slot, len, true, &err) != TT_OK) {
        printf("plan not loaded: %s\n", err.msg);
        return 1;
    }
    size_t in_bytes;
    memset(tt_model_input(&m, &in_bytes), 0, in_bytes);
    *(int32_t *)m.plan.tensors[m.plan.label].data = 0;
    uint32_t total = 0;
    for (uint32_t k = 0; k < m.plan.n_ops; k++) {
        uint32_t t0 = cost_counter_read(NULL);
        tt_status st = tt_exec_ops(&m.plan, k, 1, 0.001f, &err);
        uint32_t cost = cost_counter_read(NULL) - t0;
        if (st != TT_OK) {
            printf("op %lu failed: %s\n", (unsigned long)k, err.msg);
            return 1;
        }
        printf("op %lu %u %lu\n", (unsigned long)k, (unsigned)m.plan.ops[k].opcode,
               (unsigned long)cost);
        total += cost;
    }
    printf("step %lu (cost unit %s)\n", (unsigned long)total, cost_counter_unit());
    return 0;
}
