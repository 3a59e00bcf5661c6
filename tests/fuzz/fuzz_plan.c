/*
 * libFuzzer target: a plan file as a device receives it. tt_plan_load decodes and checks it;
 * a plan that passes runs one training step and one inference on a zero sample, so anything the
 * checks let through that a kernel cannot take shows up as an ASan/UBSan report.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tt/tt_exec.h"
#include "tt/tt_plan.h"

#define ARENA_BYTES (256u * 1024u)
#define FILE_BYTES (1u << 20)

static _Alignas(16) uint8_t arena_mem[ARENA_BYTES];
static _Alignas(16) uint8_t file_buf[FILE_BYTES]; /* a plan slot: 16-aligned, as on a device */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > sizeof file_buf) {
        return 0;
    }
    memcpy(file_buf, data, size);
    memset(arena_mem, 0, sizeof arena_mem); /* every input starts from the same arena */
    tt_arena arena;
    tt_arena_init(&arena, arena_mem, sizeof arena_mem);
    tt_plan plan;
    tt_error err = {TT_OK, ""};
    if (tt_plan_load(file_buf, size, &arena, 0, true, &plan, &err) != TT_OK) {
        return 0;
    }
    tt_step_result result;
    int32_t pred;
    (void)tt_exec_train_step(&plan, 0, 0.01f, &result, &err);
    (void)tt_exec_infer(&plan, &pred, &err);
    return 0;
}
