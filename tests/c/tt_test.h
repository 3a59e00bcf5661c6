/*
 * Tiny assertion and report helpers for the C unit tests. Header-only; the counters are static,
 * so use it from ONE translation unit per test executable (the one with main).
 *
 *   TT_CHECK(cond);                        counts a check; on failure prints file:line and cond
 *   TT_CHECK_MSG(cond, fmt, ...);          same, with a printf-style explanation
 *   TT_CHECK_STATUS(expr, TT_ERR_ARG);     expr must return exactly that status
 *   tt_test_case(name, ok, detail);        one "PASS name" / "FAIL name: detail" line, counted
 *   tt_test_close_f32(got, want, n, ...);  float comparison with the kernels' tolerance
 *   return tt_test_summary("suite");       prints the totals; 0 if all passed, else 1
 *
 * Tolerance (the same as tests/host/test_kernels_f32.py): for an output array `want`,
 *   |got[i] - want[i]| <= TT_TEST_RTOL * |want[i]| + TT_TEST_ATOL_REL * max_j |want[j]|.
 * A NaN in got (or want) always fails.
 */
#ifndef TT_TEST_H
#define TT_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TT_TEST_RTOL 1e-5f
#define TT_TEST_ATOL_REL 1e-5f

static int tt_test_checks_;
static int tt_test_failures_;

static inline int tt_test_check_(int ok, const char *file, int line, const char *what)
{
    tt_test_checks_++;
    if (!ok) {
        tt_test_failures_++;
        printf("FAIL %s:%d: %s\n", file, line, what);
    }
    return ok;
}

#define TT_CHECK(cond) tt_test_check_((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

#define TT_CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                          \
        if (!tt_test_check_((cond) ? 1 : 0, __FILE__, __LINE__, #cond)) {                         \
            printf("     ");                                                                      \
            printf(__VA_ARGS__);                                                                  \
            printf("\n");                                                                         \
        }                                                                                         \
    } while (0)

/* Status codes are compared as ints so this header does not depend on tt_status_name. */
#define TT_CHECK_STATUS(expr, want)                                                               \
    do {                                                                                          \
        const int tt_got_ = (int)(expr);                                                          \
        if (!tt_test_check_(tt_got_ == (int)(want), __FILE__, __LINE__, #expr " == " #want)) {    \
            printf("     got %d, expected %d\n", tt_got_, (int)(want));                          \
        }                                                                                         \
    } while (0)

/* Records and prints the result of one named case; detail (may be NULL) explains a failure. */
static inline void tt_test_case(const char *name, int ok, const char *detail)
{
    tt_test_checks_++;
    if (ok) {
        printf("PASS %s\n", name);
    } else {
        tt_test_failures_++;
        printf("FAIL %s%s%s\n", name, detail ? ": " : "", detail ? detail : "");
    }
}

/* 1 if got[0..n) matches want[0..n) within the tolerance above. Otherwise 0, and (if msg is not
 * NULL) a description of the worst element is written to msg. */
static inline int tt_test_close_f32(const float *got, const float *want, size_t n, char *msg,
                                    size_t msg_size)
{
    float scale = 0.0f;
    for (size_t i = 0; i < n; i++) {
        scale = fmaxf(scale, fabsf(want[i]));
    }
    const float atol = TT_TEST_ATOL_REL * scale;
    size_t worst = 0;
    float worst_excess = 0.0f;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const float err = fabsf(got[i] - want[i]);
        const float tol = TT_TEST_RTOL * fabsf(want[i]) + atol;
        if (!(err <= tol)) { /* also catches NaN */
            const float excess = isnan(err) ? INFINITY : err - tol;
            if (ok || excess > worst_excess) {
                worst = i;
                worst_excess = excess;
            }
            ok = 0;
        }
    }
    if (!ok && msg != NULL && msg_size > 0) {
        snprintf(msg, msg_size, "[%zu] = %.9g, expected %.9g (tolerance %.3g)", worst,
                 (double)got[worst], (double)want[worst],
                 (double)(TT_TEST_RTOL * fabsf(want[worst]) + atol));
    }
    return ok;
}

/* Prints "<suite>: N checks, F failed" and returns the process exit code (0: all passed). */
static inline int tt_test_summary(const char *suite)
{
    printf("%s: %d checks, %d failed\n", suite, tt_test_checks_, tt_test_failures_);
    return tt_test_failures_ == 0 ? 0 : 1;
}


/* Reading the test-vector files the numpy reference writes (tests/c/gen_vectors*.py). */

/* Next whitespace-separated token, skipping '#' comment lines. 0 at end of file. */
static inline int tt_next_token(FILE *f, char *tok, size_t size)
{
    int ch;
    for (;;) {
        do {
            ch = fgetc(f);
        } while (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r');
        if (ch == EOF) {
            return 0;
        }
        if (ch != '#') {
            break;
        }
        while (ch != '\n' && ch != EOF) {
            ch = fgetc(f);
        }
    }
    size_t len = 0;
    while (ch != EOF && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
        if (len + 1 < size) {
            tok[len++] = (char)ch;
        }
        ch = fgetc(f);
    }
    tok[len] = '\0';
    return 1;
}

/* A decimal int32 token; 0 when it is not one (strtoll: long is 32 bits on Cortex-M). */
static inline int tt_parse_i32(const char *tok, int32_t *out)
{
    char *end;
    const long long v = strtoll(tok, &end, 10);
    if (*tok == '\0' || *end != '\0' || v < INT32_MIN || v > INT32_MAX) {
        return 0;
    }
    *out = (int32_t)v;
    return 1;
}

/* One case of a vector file (format: tests/c/gen_vectors.py, gen_vectors_s8.py):
 *     case <kernel> <name>  attrs <n> <int>...  (in|out) <s8|i32|f32> <role> <n> <value>...  end
 * Floats are written differently by the two generators, so the reader takes the float parser. */
#define TT_VEC_NAME_LEN 64
#define TT_VEC_MAX_ATTRS 40 /* pw_dw_conv2d_s8: two conv geometries + 7 */
#define TT_VEC_MAX_TENSORS 12

typedef enum { TT_VEC_S8, TT_VEC_I32, TT_VEC_F32 } tt_vec_dtype;

static inline size_t tt_vec_size(tt_vec_dtype dt)
{
    return dt == TT_VEC_S8 ? 1 : 4;
}

typedef struct {
    int is_out;
    tt_vec_dtype dt;
    char role[TT_VEC_NAME_LEN];
    int32_t n;
    void *data; /* int8_t, int32_t or float */
} tt_vec_tensor;

typedef struct {
    char kernel[TT_VEC_NAME_LEN];
    char name[TT_VEC_NAME_LEN];
    int32_t nattrs;
    int32_t attrs[TT_VEC_MAX_ATTRS];
    int ntensors;
    tt_vec_tensor t[TT_VEC_MAX_TENSORS];
} tt_vec_case;

static inline void tt_vec_free(tt_vec_case *c)
{
    for (int k = 0; k < c->ntensors; k++) {
        free(c->t[k].data);
    }
    memset(c, 0, sizeof *c);
}

/* The tensor of that direction and role, or NULL. */
static inline const tt_vec_tensor *tt_vec_find(const tt_vec_case *c, int is_out, const char *role)
{
    for (int k = 0; k < c->ntensors; k++) {
        if (c->t[k].is_out == is_out && strcmp(c->t[k].role, role) == 0) {
            return &c->t[k];
        }
    }
    return NULL;
}

/* Reads one case. 1: read; 0: end of file; -1: malformed (message in err). */
static inline int tt_vec_read_case(FILE *f, int (*parse_float)(const char *tok, float *out),
                                   tt_vec_case *c, char *err, size_t err_size)
{
    char tok[TT_VEC_NAME_LEN];
    memset(c, 0, sizeof *c);
    if (!tt_next_token(f, tok, sizeof tok)) {
        return 0;
    }
    if (strcmp(tok, "case") != 0 || !tt_next_token(f, c->kernel, sizeof c->kernel) ||
        !tt_next_token(f, c->name, sizeof c->name)) {
        snprintf(err, err_size, "expected 'case <kernel> <name>', got '%s'", tok);
        return -1;
    }
    for (;;) {
        if (!tt_next_token(f, tok, sizeof tok)) {
            snprintf(err, err_size, "%s/%s: unexpected end of file", c->kernel, c->name);
            return -1;
        }
        if (strcmp(tok, "end") == 0) {
            return 1;
        }
        if (strcmp(tok, "attrs") == 0) {
            if (!tt_next_token(f, tok, sizeof tok) || !tt_parse_i32(tok, &c->nattrs) ||
                c->nattrs < 0 || c->nattrs > TT_VEC_MAX_ATTRS) {
                snprintf(err, err_size, "%s/%s: bad attrs count", c->kernel, c->name);
                return -1;
            }
            for (int32_t k = 0; k < c->nattrs; k++) {
                if (!tt_next_token(f, tok, sizeof tok) || !tt_parse_i32(tok, &c->attrs[k])) {
                    snprintf(err, err_size, "%s/%s: bad attribute", c->kernel, c->name);
                    return -1;
                }
            }
            continue;
        }
        if ((strcmp(tok, "in") != 0 && strcmp(tok, "out") != 0) ||
            c->ntensors == TT_VEC_MAX_TENSORS) {
            snprintf(err, err_size, "%s/%s: unexpected '%s'", c->kernel, c->name, tok);
            return -1;
        }
        tt_vec_tensor *t = &c->t[c->ntensors++];
        t->is_out = strcmp(tok, "out") == 0;
        char type[8];
        if (!tt_next_token(f, type, sizeof type) || !tt_next_token(f, t->role, sizeof t->role) ||
            !tt_next_token(f, tok, sizeof tok) || !tt_parse_i32(tok, &t->n) || t->n <= 0) {
            snprintf(err, err_size, "%s/%s: bad tensor header", c->kernel, c->name);
            return -1;
        }
        if (strcmp(type, "s8") == 0) {
            t->dt = TT_VEC_S8;
        } else if (strcmp(type, "i32") == 0) {
            t->dt = TT_VEC_I32;
        } else if (strcmp(type, "f32") == 0) {
            t->dt = TT_VEC_F32;
        } else {
            snprintf(err, err_size, "%s/%s: unknown dtype %s", c->kernel, c->name, type);
            return -1;
        }
        t->data = malloc((size_t)t->n * tt_vec_size(t->dt));
        if (t->data == NULL) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        for (int32_t k = 0; k < t->n; k++) {
            int ok = tt_next_token(f, tok, sizeof tok);
            int32_t v = 0;
            if (ok && t->dt == TT_VEC_F32) {
                ok = parse_float(tok, (float *)t->data + k);
            } else if (ok) {
                ok = tt_parse_i32(tok, &v);
                if (t->dt == TT_VEC_S8) {
                    ok = ok && v >= INT8_MIN && v <= INT8_MAX;
                    ((int8_t *)t->data)[k] = (int8_t)v;
                } else {
                    ((int32_t *)t->data)[k] = v;
                }
            }
            if (!ok) {
                snprintf(err, err_size, "%s/%s: bad value %d of %s", c->kernel, c->name, (int)k,
                         t->role);
                return -1;
            }
        }
    }
}

#endif
