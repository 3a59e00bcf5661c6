/*
 * Kernel scratch sizes: the host's formulas (tinyhost.ops.scratch_bytes, which the compiler sizes
 * the planned scratch tensors with and the host's plan check requires) against the C kernels'
 * _get_buffer_size(), on the geometries of tests/c/gen_scratch_cases.py: valid ones of every
 * kind, invalid ones (both must say TT_ERR_ARG) and large ones at int32's limits.
 *
 * Usage: test_scratch CASE_DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt/tt_kernels_s8.h"
#include "tt_test.h"

static int read_geometry(char **s, tt_conv2d_params *p)
{
    int32_t *f[] = {&p->in_c,     &p->in_h,     &p->in_w,  &p->out_c, &p->out_h,
                    &p->out_w,    &p->k_h,      &p->k_w,   &p->stride_h, &p->stride_w,
                    &p->pad_h,    &p->pad_w,    &p->groups};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        char *end;
        long long v = strtoll(*s, &end, 10);
        if (end == *s || v < INT32_MIN || v > INT32_MAX) {
            return 0;
        }
        *f[i] = (int32_t)v;
        *s = end;
    }
    return 1;
}

static void print_geometry(const tt_conv2d_params *p)
{
    printf(" [in %ld %ldx%ld out %ld %ldx%ld k %ldx%ld stride %ld,%ld pad %ld,%ld groups %ld]",
           (long)p->in_c, (long)p->in_h, (long)p->in_w, (long)p->out_c, (long)p->out_h,
           (long)p->out_w, (long)p->k_h, (long)p->k_w, (long)p->stride_h, (long)p->stride_w,
           (long)p->pad_h, (long)p->pad_w, (long)p->groups);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CASE_DIR\n", argv[0]);
        return 2;
    }
    char path[1024], line[1024];
    snprintf(path, sizeof path, "%s/scratch_cases.txt", argv[1]);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("cannot open %s\n", path);
        return 2;
    }
    const char *kinds[] = {"conv2d", "depthwise", "pw_dw"};
    int cases[3] = {0}, valid[3] = {0}, wrong[3] = {0}, malformed = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#') {
            continue;
        }
        char kind[16];
        int n = 0;
        if (sscanf(line, "%15s %n", kind, &n) != 1) {
            malformed++;
            continue;
        }
        int k = strcmp(kind, "conv2d") == 0 ? 0 : strcmp(kind, "depthwise") == 0 ? 1
                : strcmp(kind, "pw_dw") == 0 ? 2 : -1;
        char *s = line + n;
        tt_pw_dw_conv2d_params p;
        memset(&p, 0, sizeof p);
        if (k < 0 || !read_geometry(&s, &p.pw) || (k == 2 && !read_geometry(&s, &p.dw))) {
            malformed++;
            continue;
        }
        char *end;
        const long long want = strtoll(s, &end, 10);
        if (end == s) {
            malformed++;
            continue;
        }
        const int32_t got = k == 0   ? tt_conv2d_s8_get_buffer_size(&p.pw)
                            : k == 1 ? tt_depthwise_conv2d_s8_get_buffer_size(&p.pw)
                                     : tt_pw_dw_conv2d_s8_get_buffer_size(&p);
        cases[k]++;
        valid[k] += want >= 0;
        if ((long long)got != want) {
            if (++wrong[k] <= 10) {
                printf("FAIL %s: C %ld, host %lld:", kind, (long)got, want);
                print_geometry(&p.pw);
                if (k == 2) {
                    print_geometry(&p.dw);
                }
                printf("\n");
            }
        }
    }
    fclose(f);
    TT_CHECK_MSG(malformed == 0, "%d malformed lines in %s", malformed, path);
    for (int k = 0; k < 3; k++) {
        char what[160], detail[64];
        snprintf(what, sizeof what,
                 "%s scratch: host formula == C _get_buffer_size on %d geometries (%d valid)",
                 kinds[k], cases[k], valid[k]);
        snprintf(detail, sizeof detail, "%d differ", wrong[k]);
        tt_test_case(what, cases[k] > 1000 && valid[k] > 100 && wrong[k] == 0, detail);
    }
    return tt_test_summary("test_scratch");
}
