/*
 * The C fp32 kernels against vectors from the numpy reference (tests/c/gen_vectors.py).
 *
 * Usage: test_kernels_f32 VECTOR_DIR   (reads VECTOR_DIR/kernels_f32.vec; format: gen_vectors.py)
 *
 * Per case: every output buffer is surrounded by guard floats (to catch writes past either end)
 * and pre-filled with NaN (so an element the kernel forgot to write, or accumulated into instead
 * of overwriting, fails); inputs are exact-size heap buffers (ASan catches over-reads) and must be
 * unchanged afterwards. Aliasing allowed by the header (relu, relu_grad), db = NULL and sgd's
 * in-place update are exercised too. Then the TT_ERR_ARG / TT_ERR_LABEL cases, which must not
 * write their outputs.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt/tt_kernels_f32.h"
#include "tt_test.h"

#define GUARD 16

static const uint32_t GUARD_BITS = 0x7fc0deadu;  /* a NaN no kernel produces */
static const uint32_t POISON_BITS = 0x7fc0beefu; /* "not written" */

/* --- vector file --------------------------------------------------------------------------- */

/* A float as gen_vectors.py writes it (C99 hex); the case reader is tt_test.h's tt_vec_read_case. */
static int parse_f32(const char *tok, float *out)
{
    char *end;
    *out = strtof(tok, &end); /* reads C99 hex floats exactly */
    return *tok != '\0' && *end == '\0';
}

/* --- per-case context: operand lookup, guarded outputs, comparison -------------------------- */

typedef struct {
    const tt_vec_case *c;
    int ok;
    char msg[320];
} ctx;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void fail(ctx *x, const char *fmt, ...)
{
    if (x->ok) { /* keep the first failure */
        x->ok = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->msg, sizeof x->msg, fmt, ap);
        va_end(ap);
    }
}

/* An input of n floats; NULL if absent (an error unless optional). */
static const float *in_f32(ctx *x, const char *role, int32_t n, int optional)
{
    const tt_vec_tensor *t = tt_vec_find(x->c, 0, role);
    if (t == NULL) {
        if (!optional) {
            fail(x, "vector file: input %s missing", role);
        }
        return NULL;
    }
    if (t->dt != TT_VEC_F32 || t->n != n) {
        fail(x, "vector file: input %s has the wrong type or size", role);
        return NULL;
    }
    return (const float *)t->data;
}

typedef struct {
    float *base; /* GUARD floats, n output floats, GUARD floats */
    float *p;
    int32_t n;
} outbuf;

static void fill_bits(float *p, size_t n, uint32_t bits)
{
    for (size_t k = 0; k < n; k++) {
        memcpy(&p[k], &bits, sizeof bits);
    }
}

static int all_bits(const float *p, size_t n, uint32_t bits)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t v;
        memcpy(&v, &p[k], sizeof v);
        if (v != bits) {
            return 0;
        }
    }
    return 1;
}

static void out_init(outbuf *o, int32_t n)
{
    o->n = n;
    o->base = malloc(((size_t)n + 2 * GUARD) * sizeof(float));
    if (o->base == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    o->p = o->base + GUARD;
    fill_bits(o->base, GUARD, GUARD_BITS);
    fill_bits(o->p, (size_t)n, POISON_BITS);
    fill_bits(o->p + n, GUARD, GUARD_BITS);
}

static void out_free(outbuf *o)
{
    free(o->base);
    o->base = o->p = NULL;
}

static int guards_ok(const outbuf *o)
{
    return all_bits(o->base, GUARD, GUARD_BITS) && all_bits(o->p + o->n, GUARD, GUARD_BITS);
}

static void check_status(ctx *x, tt_status st, const char *what)
{
    if (st != TT_OK) {
        fail(x, "%s returned status %d", what, (int)st);
    }
}

/* Compares o against the expected output `role` (and checks o's guards). */
static void expect(ctx *x, const char *role, const outbuf *o)
{
    if (!guards_ok(o)) {
        fail(x, "%s: wrote outside the output buffer", role);
        return;
    }
    const tt_vec_tensor *t = tt_vec_find(x->c, 1, role);
    if (t == NULL || t->dt != TT_VEC_F32 || t->n != o->n) {
        fail(x, "vector file: expected output %s missing or of the wrong size", role);
        return;
    }
    char detail[200];
    if (!tt_test_close_f32(o->p, (const float *)t->data, (size_t)o->n, detail, sizeof detail)) {
        fail(x, "%s%s", role, detail);
    }
}

/* --- runners, one per kernel ---------------------------------------------------------------- */

static int attrs_ok(ctx *x, int32_t n)
{
    if (x->c->nattrs != n) {
        fail(x, "vector file: wrong number of attributes");
        return 0;
    }
    return 1;
}

static tt_linear_params linear_params(const tt_vec_case *c)
{
    tt_linear_params p = {c->attrs[0], c->attrs[1]};
    return p;
}

static tt_conv2d_params conv_params(const tt_vec_case *c)
{
    const int32_t *a = c->attrs; /* plan order = struct order (tinyhost.ops.CONV_ATTRS) */
    tt_conv2d_params p = {a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                          a[7], a[8], a[9], a[10], a[11], a[12]};
    return p;
}

static tt_pool2d_params pool_params(const tt_vec_case *c)
{
    const int32_t *a = c->attrs; /* tinyhost.ops.POOL_ATTRS */
    tt_pool2d_params p = {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]};
    return p;
}

static void run_linear(ctx *x)
{
    if (!attrs_ok(x, 2)) {
        return;
    }
    const tt_linear_params p = linear_params(x->c);
    const float *in = in_f32(x, "x", p.in_features, 0);
    const float *w = in_f32(x, "w", p.in_features * p.out_features, 0);
    const float *b = in_f32(x, "b", p.out_features, 1);
    if (!x->ok) {
        return;
    }
    outbuf y;
    out_init(&y, p.out_features);
    check_status(x, tt_linear_f32(&p, in, w, b, y.p), "tt_linear_f32");
    expect(x, "y", &y);
    out_free(&y);
}

static void run_linear_grad_input(ctx *x)
{
    if (!attrs_ok(x, 2)) {
        return;
    }
    const tt_linear_params p = linear_params(x->c);
    const float *dy = in_f32(x, "dy", p.out_features, 0);
    const float *w = in_f32(x, "w", p.in_features * p.out_features, 0);
    if (!x->ok) {
        return;
    }
    outbuf dx;
    out_init(&dx, p.in_features);
    check_status(x, tt_linear_grad_input_f32(&p, dy, w, dx.p), "tt_linear_grad_input_f32");
    expect(x, "dx", &dx);
    out_free(&dx);
}

/* Runs a grad-weight kernel with db and again with db = NULL (dw must not change). */
typedef tt_status (*grad_weight_fn)(const void *p, const float *dy, const float *x, float *dw,
                                    float *db);

static tt_status linear_gw(const void *p, const float *dy, const float *x, float *dw, float *db)
{
    return tt_linear_grad_weight_f32(p, dy, x, dw, db);
}

static tt_status conv_gw(const void *p, const float *dy, const float *x, float *dw, float *db)
{
    return tt_conv2d_grad_weight_f32(p, dy, x, dw, db);
}

static void grad_weight_common(ctx *x, grad_weight_fn fn, const void *p, const float *dy,
                               const float *in, int32_t n_w, int32_t n_b)
{
    outbuf dw, db, dw2;
    out_init(&dw, n_w);
    out_init(&db, n_b);
    out_init(&dw2, n_w);
    check_status(x, fn(p, dy, in, dw.p, db.p), x->c->kernel);
    expect(x, "dw", &dw);
    expect(x, "db", &db);
    check_status(x, fn(p, dy, in, dw2.p, NULL), x->c->kernel);
    if (!guards_ok(&dw2) || memcmp(dw.p, dw2.p, (size_t)n_w * sizeof(float)) != 0) {
        fail(x, "dw differs when db is NULL");
    }
    /* Bias only: no dw, and no input needed. */
    outbuf db2;
    out_init(&db2, n_b);
    check_status(x, fn(p, dy, NULL, NULL, db2.p), x->c->kernel);
    if (!guards_ok(&db2) || memcmp(db.p, db2.p, (size_t)n_b * sizeof(float)) != 0) {
        fail(x, "db differs when dw is NULL");
    }
    out_free(&db2);
    out_free(&dw);
    out_free(&db);
    out_free(&dw2);
}

static void run_linear_grad_weight(ctx *x)
{
    if (!attrs_ok(x, 2)) {
        return;
    }
    const tt_linear_params p = linear_params(x->c);
    const float *dy = in_f32(x, "dy", p.out_features, 0);
    const float *in = in_f32(x, "x", p.in_features, 0);
    if (x->ok) {
        grad_weight_common(x, linear_gw, &p, dy, in, p.in_features * p.out_features,
                           p.out_features);
    }
}

static void run_conv2d(ctx *x)
{
    if (!attrs_ok(x, 13)) {
        return;
    }
    const tt_conv2d_params p = conv_params(x->c);
    const int32_t n_w = p.out_c * (p.in_c / p.groups) * p.k_h * p.k_w;
    const float *in = in_f32(x, "x", p.in_c * p.in_h * p.in_w, 0);
    const float *w = in_f32(x, "w", n_w, 0);
    const float *b = in_f32(x, "b", p.out_c, 1);
    if (!x->ok) {
        return;
    }
    outbuf y;
    out_init(&y, p.out_c * p.out_h * p.out_w);
    check_status(x, tt_conv2d_f32(&p, in, w, b, y.p), "tt_conv2d_f32");
    expect(x, "y", &y);
    out_free(&y);
}

static void run_conv2d_grad_input(ctx *x)
{
    if (!attrs_ok(x, 13)) {
        return;
    }
    const tt_conv2d_params p = conv_params(x->c);
    const int32_t n_w = p.out_c * (p.in_c / p.groups) * p.k_h * p.k_w;
    const float *dy = in_f32(x, "dy", p.out_c * p.out_h * p.out_w, 0);
    const float *w = in_f32(x, "w", n_w, 0);
    if (!x->ok) {
        return;
    }
    outbuf dx;
    out_init(&dx, p.in_c * p.in_h * p.in_w);
    check_status(x, tt_conv2d_grad_input_f32(&p, dy, w, dx.p), "tt_conv2d_grad_input_f32");
    expect(x, "dx", &dx);
    out_free(&dx);
}

static void run_conv2d_grad_weight(ctx *x)
{
    if (!attrs_ok(x, 13)) {
        return;
    }
    const tt_conv2d_params p = conv_params(x->c);
    const float *dy = in_f32(x, "dy", p.out_c * p.out_h * p.out_w, 0);
    const float *in = in_f32(x, "x", p.in_c * p.in_h * p.in_w, 0);
    if (x->ok) {
        grad_weight_common(x, conv_gw, &p, dy, in, p.out_c * (p.in_c / p.groups) * p.k_h * p.k_w,
                           p.out_c);
    }
}

static void run_relu(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const float *in = in_f32(x, "x", n, 0);
    if (!x->ok) {
        return;
    }
    outbuf y, y2;
    out_init(&y, n);
    check_status(x, tt_relu_f32(n, in, y.p), "tt_relu_f32");
    expect(x, "y", &y);
    out_init(&y2, n); /* in place: y aliases x */
    memcpy(y2.p, in, (size_t)n * sizeof(float));
    check_status(x, tt_relu_f32(n, y2.p, y2.p), "tt_relu_f32 (in place)");
    expect(x, "y", &y2);
    out_free(&y);
    out_free(&y2);
}

static void run_relu_grad(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const float *y = in_f32(x, "y", n, 0);
    const float *dy = in_f32(x, "dy", n, 0);
    if (!x->ok) {
        return;
    }
    outbuf dx, dx2;
    out_init(&dx, n);
    check_status(x, tt_relu_grad_f32(n, y, dy, dx.p), "tt_relu_grad_f32");
    expect(x, "dx", &dx);
    out_init(&dx2, n); /* in place: dx aliases dy */
    memcpy(dx2.p, dy, (size_t)n * sizeof(float));
    check_status(x, tt_relu_grad_f32(n, y, dx2.p, dx2.p), "tt_relu_grad_f32 (in place)");
    expect(x, "dx", &dx2);
    out_free(&dx);
    out_free(&dx2);
}

static void run_pool(ctx *x, int is_max, int is_grad)
{
    if (!attrs_ok(x, 11)) {
        return;
    }
    const tt_pool2d_params p = pool_params(x->c);
    const int32_t n_in = p.c * p.in_h * p.in_w;
    const int32_t n_out = p.c * p.out_h * p.out_w;
    const float *in = (is_max || !is_grad) ? in_f32(x, "x", n_in, 0) : NULL;
    const float *dy = is_grad ? in_f32(x, "dy", n_out, 0) : NULL;
    if (!x->ok) {
        return;
    }
    outbuf o;
    out_init(&o, is_grad ? n_in : n_out);
    tt_status st;
    if (is_max) {
        st = is_grad ? tt_maxpool2d_grad_f32(&p, in, dy, o.p) : tt_maxpool2d_f32(&p, in, o.p);
    } else {
        st = is_grad ? tt_avgpool2d_grad_f32(&p, dy, o.p) : tt_avgpool2d_f32(&p, in, o.p);
    }
    check_status(x, st, x->c->kernel);
    expect(x, is_grad ? "dx" : "y", &o);
    out_free(&o);
}

static void run_maxpool(ctx *x) { run_pool(x, 1, 0); }
static void run_maxpool_grad(ctx *x) { run_pool(x, 1, 1); }
static void run_avgpool(ctx *x) { run_pool(x, 0, 0); }
static void run_avgpool_grad(ctx *x) { run_pool(x, 0, 1); }

static void run_softmax_xent(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const float *logits = in_f32(x, "logits", n, 0);
    const tt_vec_tensor *label = tt_vec_find(x->c, 0, "label");
    const tt_vec_tensor *want_pred = tt_vec_find(x->c, 1, "pred");
    if (label == NULL || label->dt != TT_VEC_I32 || label->n != 1 || want_pred == NULL ||
        want_pred->dt != TT_VEC_I32 || want_pred->n != 1) {
        fail(x, "vector file: label or pred missing");
    }
    if (!x->ok) {
        return;
    }
    outbuf loss, d;
    out_init(&loss, 1);
    out_init(&d, n);
    int32_t pred[3] = {-7, -1, -7}; /* pred[0] and pred[2] are guards */
    const int32_t label_value = ((const int32_t *)label->data)[0];
    check_status(x, tt_softmax_xent_f32(n, logits, label_value, loss.p, d.p, &pred[1]),
                 "tt_softmax_xent_f32");
    expect(x, "loss", &loss);
    expect(x, "dlogits", &d);
    if (pred[0] != -7 || pred[2] != -7 || pred[1] != ((const int32_t *)want_pred->data)[0]) {
        fail(x, "pred is wrong (or written out of place)");
    }
    out_free(&loss);
    out_free(&d);
}

static void run_sgd(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const float *w = in_f32(x, "w", n, 0);
    const float *g = in_f32(x, "g", n, 0);
    const float *lr = in_f32(x, "lr", 1, 0);
    if (!x->ok) {
        return;
    }
    outbuf w2; /* sgd updates in place: start from a copy of w */
    out_init(&w2, n);
    memcpy(w2.p, w, (size_t)n * sizeof(float));
    check_status(x, tt_sgd_f32(n, w2.p, g, lr[0]), "tt_sgd_f32");
    expect(x, "w", &w2);
    out_free(&w2);
}

typedef struct {
    const char *kernel;
    void (*run)(ctx *x);
    int cases;
} runner;

static runner RUNNERS[] = {
    {"linear_f32", run_linear, 0},
    {"linear_grad_input_f32", run_linear_grad_input, 0},
    {"linear_grad_weight_f32", run_linear_grad_weight, 0},
    {"conv2d_f32", run_conv2d, 0},
    {"conv2d_grad_input_f32", run_conv2d_grad_input, 0},
    {"conv2d_grad_weight_f32", run_conv2d_grad_weight, 0},
    {"relu_f32", run_relu, 0},
    {"relu_grad_f32", run_relu_grad, 0},
    {"maxpool2d_f32", run_maxpool, 0},
    {"maxpool2d_grad_f32", run_maxpool_grad, 0},
    {"avgpool2d_f32", run_avgpool, 0},
    {"avgpool2d_grad_f32", run_avgpool_grad, 0},
    {"softmax_xent_f32", run_softmax_xent, 0},
    {"sgd_f32", run_sgd, 0},
};
#define N_RUNNERS (sizeof RUNNERS / sizeof RUNNERS[0])

static void run_case(const tt_vec_case *c)
{
    char label[2 * TT_VEC_NAME_LEN + 2];
    snprintf(label, sizeof label, "%s/%s", c->kernel, c->name);
    ctx x = {c, 1, ""};

    /* Snapshot the inputs: kernels must not modify them. */
    float *saved[TT_VEC_MAX_TENSORS] = {0};
    for (int k = 0; k < c->ntensors; k++) {
        if (!c->t[k].is_out && c->t[k].dt == TT_VEC_F32) {
            saved[k] = malloc((size_t)c->t[k].n * sizeof(float));
            if (saved[k] != NULL) {
                memcpy(saved[k], c->t[k].data, (size_t)c->t[k].n * sizeof(float));
            }
        }
    }
    runner *r = NULL;
    for (size_t k = 0; k < N_RUNNERS; k++) {
        if (strcmp(RUNNERS[k].kernel, c->kernel) == 0) {
            r = &RUNNERS[k];
        }
    }
    if (r == NULL) {
        fail(&x, "unknown kernel %s", c->kernel);
    } else {
        r->cases++;
        r->run(&x);
    }
    for (int k = 0; k < c->ntensors; k++) {
        if (saved[k] != NULL) {
            if (memcmp(saved[k], c->t[k].data, (size_t)c->t[k].n * sizeof(float)) != 0) {
                fail(&x, "input %s was modified", c->t[k].role);
            }
            free(saved[k]);
        }
    }
    tt_test_case(label, x.ok, x.msg);
}

/* --- invalid arguments ---------------------------------------------------------------------- */

#define ERR_BUF 512
static float g_in[ERR_BUF], g_w[ERR_BUF], g_b[ERR_BUF], g_out[ERR_BUF], g_out2[ERR_BUF];
static float g_loss;
static int32_t g_pred;

static void poison_outputs(void)
{
    fill_bits(g_out, ERR_BUF, POISON_BITS);
    fill_bits(g_out2, ERR_BUF, POISON_BITS);
    fill_bits(&g_loss, 1, POISON_BITS);
    g_pred = -7;
}

static int outputs_untouched(void)
{
    return all_bits(g_out, ERR_BUF, POISON_BITS) && all_bits(g_out2, ERR_BUF, POISON_BITS) &&
           all_bits(&g_loss, 1, POISON_BITS) && g_pred == -7;
}

/* expr must return `want` and leave every output buffer as it was. */
#define EXPECT_ERR(expr, want)                                                                    \
    do {                                                                                          \
        poison_outputs();                                                                         \
        TT_CHECK_STATUS(expr, want);                                                              \
        TT_CHECK_MSG(outputs_untouched(), "%s wrote an output", #expr);                           \
    } while (0)

static void check_linear_errors(void)
{
    const tt_linear_params ok = {3, 2};
    TT_CHECK_STATUS(tt_linear_f32(&ok, g_in, g_w, g_b, g_out), TT_OK); /* the baseline is valid */
    TT_CHECK_STATUS(tt_linear_f32(&ok, g_in, g_w, NULL, g_out), TT_OK);
    EXPECT_ERR(tt_linear_f32(NULL, g_in, g_w, g_b, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_f32(&ok, NULL, g_w, g_b, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_f32(&ok, g_in, NULL, g_b, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_f32(&ok, g_in, g_w, g_b, NULL), TT_ERR_ARG);
    const tt_linear_params bad[] = {{0, 2}, {3, 0}, {-1, 2}, {3, -5}, {INT32_MAX, 2}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        EXPECT_ERR(tt_linear_f32(&bad[k], g_in, g_w, g_b, g_out), TT_ERR_ARG);
        EXPECT_ERR(tt_linear_grad_input_f32(&bad[k], g_in, g_w, g_out), TT_ERR_ARG);
        EXPECT_ERR(tt_linear_grad_weight_f32(&bad[k], g_in, g_w, g_out, g_out2), TT_ERR_ARG);
    }
    TT_CHECK_STATUS(tt_linear_grad_input_f32(&ok, g_in, g_w, g_out), TT_OK);
    EXPECT_ERR(tt_linear_grad_input_f32(NULL, g_in, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_grad_input_f32(&ok, NULL, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_grad_input_f32(&ok, g_in, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_grad_input_f32(&ok, g_in, g_w, NULL), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_linear_grad_weight_f32(&ok, g_in, g_w, g_out, NULL), TT_OK);
    EXPECT_ERR(tt_linear_grad_weight_f32(NULL, g_in, g_w, g_out, g_out2), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_grad_weight_f32(&ok, NULL, g_w, g_out, g_out2), TT_ERR_ARG);
    EXPECT_ERR(tt_linear_grad_weight_f32(&ok, g_in, NULL, g_out, g_out2), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_linear_grad_weight_f32(&ok, g_in, NULL, NULL, g_out2), TT_OK);
    EXPECT_ERR(tt_linear_grad_weight_f32(&ok, g_in, g_w, NULL, NULL), TT_ERR_ARG);
}

static void check_conv_errors(void)
{
    /* 2 -> 4 channels in 2 groups, 5x5 input, 3x3 kernel, stride 1, no padding: 3x3 output. */
    const tt_conv2d_params ok = {2, 5, 5, 4, 3, 3, 3, 3, 1, 1, 0, 0, 2};
    TT_CHECK_STATUS(tt_conv2d_f32(&ok, g_in, g_w, g_b, g_out), TT_OK);
    TT_CHECK_STATUS(tt_conv2d_grad_input_f32(&ok, g_in, g_w, g_out), TT_OK);
    TT_CHECK_STATUS(tt_conv2d_grad_weight_f32(&ok, g_in, g_w, g_out, g_out2), TT_OK);
    TT_CHECK_STATUS(tt_conv2d_grad_weight_f32(&ok, g_in, g_w, g_out, NULL), TT_OK);

    tt_conv2d_params bad[16];
    int n = 0;
    for (int k = 0; k < 16; k++) {
        bad[k] = ok;
    }
    bad[n++].groups = 0;
    bad[n++].groups = 3;     /* divides neither */
    bad[n].out_c = 3;        /* 2 groups do not divide 3 output channels */
    bad[n++].groups = 2;
    bad[n++].in_c = 0;
    bad[n++].in_h = -5;
    bad[n++].out_h = 4;      /* inconsistent with (5 - 3) / 1 + 1 = 3 */
    bad[n++].out_w = 2;
    bad[n++].stride_h = 0;
    bad[n++].pad_w = -1;
    bad[n++].k_w = 0;
    bad[n++].k_h = 6;        /* kernel taller than the input */
    for (int k = 0; k < n; k++) {
        EXPECT_ERR(tt_conv2d_f32(&bad[k], g_in, g_w, g_b, g_out), TT_ERR_ARG);
        EXPECT_ERR(tt_conv2d_grad_input_f32(&bad[k], g_in, g_w, g_out), TT_ERR_ARG);
        EXPECT_ERR(tt_conv2d_grad_weight_f32(&bad[k], g_in, g_w, g_out, g_out2), TT_ERR_ARG);
    }
    EXPECT_ERR(tt_conv2d_f32(NULL, g_in, g_w, g_b, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_f32(&ok, NULL, g_w, g_b, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_f32(&ok, g_in, NULL, g_b, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_f32(&ok, g_in, g_w, g_b, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_grad_input_f32(NULL, g_in, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_grad_input_f32(&ok, NULL, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_grad_input_f32(&ok, g_in, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_grad_input_f32(&ok, g_in, g_w, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_grad_weight_f32(NULL, g_in, g_w, g_out, g_out2), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_grad_weight_f32(&ok, NULL, g_w, g_out, g_out2), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_grad_weight_f32(&ok, g_in, NULL, g_out, g_out2), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_conv2d_grad_weight_f32(&ok, g_in, NULL, NULL, g_out2), TT_OK);
    EXPECT_ERR(tt_conv2d_grad_weight_f32(&ok, g_in, g_w, NULL, NULL), TT_ERR_ARG);
}

static void check_pool_errors(void)
{
    /* 2 channels, 5x5, 2x2 kernel, stride 2, padding 1: 3x3 output. */
    const tt_pool2d_params ok = {2, 5, 5, 3, 3, 2, 2, 2, 2, 1, 1};
    TT_CHECK_STATUS(tt_maxpool2d_f32(&ok, g_in, g_out), TT_OK);
    TT_CHECK_STATUS(tt_maxpool2d_grad_f32(&ok, g_in, g_w, g_out), TT_OK);
    TT_CHECK_STATUS(tt_avgpool2d_f32(&ok, g_in, g_out), TT_OK);
    TT_CHECK_STATUS(tt_avgpool2d_grad_f32(&ok, g_in, g_out), TT_OK);

    tt_pool2d_params bad[12];
    int n = 0;
    for (int k = 0; k < 12; k++) {
        bad[k] = ok;
    }
    bad[n++].c = 0;
    bad[n++].in_w = 0;
    bad[n++].out_h = 2;          /* inconsistent with (5 + 2 - 2) / 2 + 1 = 3 */
    bad[n++].stride_w = 0;
    bad[n++].k_h = -2;
    bad[n++].pad_h = -1;
    bad[n].pad_w = 2;            /* more than half the kernel (out_w kept consistent: 4) */
    bad[n++].out_w = 4;
    for (int k = 0; k < n; k++) {
        EXPECT_ERR(tt_maxpool2d_f32(&bad[k], g_in, g_out), TT_ERR_ARG);
        EXPECT_ERR(tt_maxpool2d_grad_f32(&bad[k], g_in, g_w, g_out), TT_ERR_ARG);
        EXPECT_ERR(tt_avgpool2d_f32(&bad[k], g_in, g_out), TT_ERR_ARG);
        EXPECT_ERR(tt_avgpool2d_grad_f32(&bad[k], g_in, g_out), TT_ERR_ARG);
    }
    EXPECT_ERR(tt_maxpool2d_f32(NULL, g_in, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_maxpool2d_f32(&ok, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_maxpool2d_f32(&ok, g_in, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_maxpool2d_grad_f32(NULL, g_in, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_maxpool2d_grad_f32(&ok, NULL, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_maxpool2d_grad_f32(&ok, g_in, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_maxpool2d_grad_f32(&ok, g_in, g_w, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_f32(NULL, g_in, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_f32(&ok, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_f32(&ok, g_in, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_grad_f32(NULL, g_in, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_grad_f32(&ok, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_grad_f32(&ok, g_in, NULL), TT_ERR_ARG);
}

static void check_elementwise_errors(void)
{
    TT_CHECK_STATUS(tt_relu_f32(4, g_in, g_out), TT_OK);
    EXPECT_ERR(tt_relu_f32(0, g_in, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_relu_f32(-3, g_in, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_relu_f32(4, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_relu_f32(4, g_in, NULL), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_relu_grad_f32(4, g_in, g_w, g_out), TT_OK);
    EXPECT_ERR(tt_relu_grad_f32(0, g_in, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_relu_grad_f32(-1, g_in, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_relu_grad_f32(4, NULL, g_w, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_relu_grad_f32(4, g_in, NULL, g_out), TT_ERR_ARG);
    EXPECT_ERR(tt_relu_grad_f32(4, g_in, g_w, NULL), TT_ERR_ARG);
    /* sgd's output is w itself. */
    poison_outputs();
    TT_CHECK_STATUS(tt_sgd_f32(0, g_out, g_w, 0.1f), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_sgd_f32(-4, g_out, g_w, 0.1f), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_sgd_f32(4, g_out, NULL, 0.1f), TT_ERR_ARG);
    TT_CHECK(outputs_untouched());
    TT_CHECK_STATUS(tt_sgd_f32(4, NULL, g_w, 0.1f), TT_ERR_ARG);
}

static void check_softmax_errors(void)
{
    const float logits[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    TT_CHECK_STATUS(tt_softmax_xent_f32(4, logits, 3, &g_loss, g_out, &g_pred), TT_OK);
    TT_CHECK(g_pred == 2);
    EXPECT_ERR(tt_softmax_xent_f32(4, logits, -1, &g_loss, g_out, &g_pred), TT_ERR_LABEL);
    EXPECT_ERR(tt_softmax_xent_f32(4, logits, 4, &g_loss, g_out, &g_pred), TT_ERR_LABEL);
    EXPECT_ERR(tt_softmax_xent_f32(4, logits, INT32_MIN, &g_loss, g_out, &g_pred), TT_ERR_LABEL);
    EXPECT_ERR(tt_softmax_xent_f32(0, logits, 0, &g_loss, g_out, &g_pred), TT_ERR_ARG);
    EXPECT_ERR(tt_softmax_xent_f32(-2, logits, 0, &g_loss, g_out, &g_pred), TT_ERR_ARG);
    EXPECT_ERR(tt_softmax_xent_f32(4, NULL, 0, &g_loss, g_out, &g_pred), TT_ERR_ARG);
    EXPECT_ERR(tt_softmax_xent_f32(4, logits, 0, NULL, g_out, &g_pred), TT_ERR_ARG);
    EXPECT_ERR(tt_softmax_xent_f32(4, logits, 0, &g_loss, NULL, &g_pred), TT_ERR_ARG);
    EXPECT_ERR(tt_softmax_xent_f32(4, logits, 0, &g_loss, g_out, NULL), TT_ERR_ARG);
    /* A NULL pointer is reported as such even when the label is also out of range. */
    EXPECT_ERR(tt_softmax_xent_f32(4, logits, 9, &g_loss, NULL, &g_pred), TT_ERR_ARG);
}

/* A NaN/inf loss is reported (TT_ERR_NONFINITE, the loss written); a NaN/inf SGD step is
 * refused with nothing written. */
static void check_nonfinite(void)
{
    const float logits[3] = {1.0f, NAN, 0.0f};
    TT_CHECK_STATUS(tt_softmax_xent_f32(3, logits, 0, &g_loss, g_out, &g_pred), TT_ERR_NONFINITE);
    TT_CHECK(isnan(g_loss));
    const float big[3] = {INFINITY, 1.0f, 0.0f};
    TT_CHECK_STATUS(tt_softmax_xent_f32(3, big, 1, &g_loss, g_out, &g_pred), TT_ERR_NONFINITE);
    float w[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    const float g[4] = {0.5f, NAN, 0.0f, 1.0f};
    const float huge[4] = {1.0f, 1.0f, 3e38f, 1.0f};
    TT_CHECK_STATUS(tt_sgd_f32(4, w, g, 0.1f), TT_ERR_NONFINITE);
    TT_CHECK_STATUS(tt_sgd_f32(4, w, huge, -10.0f), TT_ERR_NONFINITE);
    TT_CHECK(w[0] == 1.0f && w[1] == 2.0f && w[2] == 3.0f && w[3] == 4.0f);
    const tt_linear_params p = {2, 2};
    const float dy[2] = {1.0f, INFINITY}, x[2] = {1.0f, 1.0f};
    float b[2] = {5.0f, 6.0f};
    TT_CHECK_STATUS(tt_linear_sgd_f32(&p, dy, x, w, b, 0.1f), TT_ERR_NONFINITE);
    TT_CHECK_STATUS(tt_linear_sgd_f32(&p, dy, NULL, NULL, b, 0.1f), TT_ERR_NONFINITE);
    TT_CHECK(w[0] == 1.0f && w[3] == 4.0f && b[0] == 5.0f && b[1] == 6.0f);
    TT_CHECK_STATUS(tt_sgd_f32(4, w, huge, 0.1f), TT_OK);
}

/* --- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTOR_DIR\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/kernels_f32.vec", argv[1]);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (generate it with tests/c/gen_vectors.py)\n", path);
        return 2;
    }
    tt_vec_case *c = malloc(sizeof *c); /* large: not on the stack */
    if (c == NULL) {
        fclose(f);
        return 2;
    }
    char err[256];
    int rc;
    while ((rc = tt_vec_read_case(f, parse_f32, c, err, sizeof err)) == 1) {
        run_case(c);
        tt_vec_free(c);
    }
    tt_vec_free(c);
    free(c);
    fclose(f);
    TT_CHECK_MSG(rc == 0, "%s: %s", path, err);
    for (size_t k = 0; k < N_RUNNERS; k++) {
        TT_CHECK_MSG(RUNNERS[k].cases > 0, "no vectors for %s", RUNNERS[k].kernel);
    }

    check_linear_errors();
    check_conv_errors();
    check_pool_errors();
    check_elementwise_errors();
    check_softmax_errors();
    check_nonfinite();
    return tt_test_summary("test_kernels_f32");
}
