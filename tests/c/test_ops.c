/*
 * Every op on its device path against the numpy reference, bit for bit: single-op plans on random
 * shapes (tests/c/gen_op_cases.py) are loaded (the op's plan check runs), the arena gets the
 * case's contents, the op runs through the registration table (tt_exec_ops), and every output
 * byte must equal the reference executor's.
 *
 *   test_ops DIR      reads DIR/op_cases.bin
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt/tt_exec.h"
#include "tt/tt_plan.h"
#include "tt_test.h"

#define CAPACITY (1u << 20)

static uint8_t arena_mem[CAPACITY] __attribute__((aligned(16)));

typedef struct {
    const uint8_t *p, *end;
} reader;

static int take(reader *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        return 0;
    }
    memcpy(out, r->p, n);
    r->p += n;
    return 1;
}

static int take_u32(reader *r, uint32_t *v)
{
    uint8_t b[4];
    if (!take(r, b, 4)) {
        return 0;
    }
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

/* One case: 1 when it ran and matched; a failure is reported by name. */
static int run_case(reader *r, const char *name)
{
    char detail[200] = "";
    float lr;
    uint32_t plan_len, arena_len, n_ranges;
    if (!take(r, &lr, 4) || !take_u32(r, &plan_len) || (size_t)(r->end - r->p) < plan_len) {
        return -1;
    }
    /* The plan stays in place while in use; copy it to aligned memory (the blob is read there). */
    static uint8_t plan_buf[CAPACITY] __attribute__((aligned(16)));
    if (plan_len > sizeof plan_buf) {
        return -1;
    }
    memcpy(plan_buf, r->p, plan_len);
    r->p += plan_len;
    if (!take_u32(r, &arena_len) || (size_t)(r->end - r->p) < arena_len) {
        return -1;
    }
    const uint8_t *before = r->p;
    r->p += arena_len;

    tt_arena arena;
    tt_plan plan;
    tt_error err = {0};
    tt_arena_init(&arena, arena_mem, CAPACITY);
    tt_status st = tt_plan_load(plan_buf, plan_len, &arena, 0, true, &plan, &err);
    int ok = st == TT_OK && plan.arena_size == arena_len;
    if (st != TT_OK) {
        snprintf(detail, sizeof detail, "load: %s", err.msg);
    } else if (!ok) {
        snprintf(detail, sizeof detail, "arena %lu bytes, case has %lu",
                 (unsigned long)plan.arena_size, (unsigned long)arena_len);
    }
    if (ok) {
        memcpy(arena_mem, before, arena_len);
        st = tt_exec_ops(&plan, 0, plan.n_ops, lr, &err);
        if (st != TT_OK) {
            ok = 0;
            snprintf(detail, sizeof detail, "run: %s", err.msg);
        }
    }
    if (!take_u32(r, &n_ranges)) {
        return -1;
    }
    for (uint32_t k = 0; k < n_ranges; k++) {
        uint32_t offset, mode, nbytes;
        if (!take_u32(r, &offset) || !take_u32(r, &mode) || !take_u32(r, &nbytes) ||
            (size_t)(r->end - r->p) < nbytes || (uint64_t)offset + nbytes > arena_len ||
            offset % 4 != 0) {
            return -1;
        }
        if (ok && mode == 1) {
            float want[256];
            for (uint32_t i = 0; ok && i < nbytes / 4; i += 256) {
                const uint32_t n = nbytes / 4 - i < 256 ? nbytes / 4 - i : 256;
                memcpy(want, r->p + 4 * i, 4 * n);
                ok = tt_test_close_f32((const float *)(arena_mem + offset) + i, want, n, detail,
                                       sizeof detail);
            }
        } else if (ok) {
            for (uint32_t i = 0; i < nbytes; i++) {
                if (arena_mem[offset + i] != r->p[i]) {
                    ok = 0;
                    snprintf(detail, sizeof detail, "output %lu byte %lu: %u, reference %u",
                             (unsigned long)k, (unsigned long)i, arena_mem[offset + i], r->p[i]);
                    break;
                }
            }
        }
        r->p += nbytes;
    }
    tt_test_case(name, ok, detail);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_ops DIR\n");
        return 2;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/op_cases.bin", argv[1]);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)size);
    if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        return 2;
    }
    fclose(f);
    reader r = {data, data + size};
    int cases = 0;
    while (r.p < r.end) {
        const uint8_t *nul = memchr(r.p, 0, (size_t)(r.end - r.p));
        if (nul == NULL) {
            break;
        }
        char name[160];
        snprintf(name, sizeof name, "%.*s", (int)(nul - r.p), (const char *)r.p);
        r.p = nul + 1;
        if (run_case(&r, name) < 0) {
            tt_test_case("op_cases.bin", 0, "truncated record");
            break;
        }
        cases++;
    }
    free(data);
    TT_CHECK_MSG(cases > 0, "no cases in %s", path);
    return tt_test_summary("test_ops");
}
