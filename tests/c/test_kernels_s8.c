/*
 * The C int8 kernels against vectors from the numpy reference (tests/c/gen_vectors_s8.py).
 *
 * Usage: test_kernels_s8 VECTOR_DIR   (reads VECTOR_DIR/kernels_s8.vec; format: gen_vectors_s8.py)
 *
 * Runs on the host (CTest, ASan/UBSan, the portable kernels) and on Cortex-M4F under QEMU (the DSP
 * kernels; firmware/ports/baremetal/test_main.c supplies argv from the semihosting command line,
 * and stdio and malloc go through picolibc's semihosting library), so it uses only ISO C stdio.
 *
 * Integer outputs must equal the reference exactly, and so must the float outputs of the
 * elementwise kernels (one float operation per element, in the reference's order); the conv
 * gradients use tt_test.h's tolerance (their sums are ordered differently). Per case, every
 * kernel runs twice, with its outputs pre-filled with two different poison patterns (an element
 * the kernel forgot to write cannot match in both runs; float outputs get NaNs), inside guard
 * bytes that must stay intact (writes past either end), and with its scratch surrounded by guards
 * and pre-filled with garbage. Inputs are exact-size heap buffers and must be unchanged
 * afterwards. Aliasing the header allows is exercised too. Then the TT_ERR_ARG cases, which must
 * not write their outputs.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "requant_s8.h"
#include "tt/tt_kernels_s8.h"
#include "tt_test.h"

#define GUARD 32 /* bytes on each side of every output and scratch buffer */

static const uint8_t GUARD_BYTE = 0xE7;
static const uint8_t POISON_BYTES[2] = {0x5A, 0xA5};
static const uint32_t NAN_POISON[2] = {0x7fc0beefu, 0xffc0f00du};

/* --- vector file --------------------------------------------------------------------------- */

/* A float as the 8 hex digits of its bit pattern (exact on any libc): gen_vectors_s8.py's form
 * (the case reader is tt_test.h's tt_vec_read_case). */
static int parse_f32_bits(const char *tok, float *out)
{
    char *end;
    const unsigned long long v = strtoull(tok, &end, 16);
    if (strlen(tok) != 8 || *end != '\0' || v > 0xffffffffull) {
        return 0;
    }
    const uint32_t bits = (uint32_t)v;
    memcpy(out, &bits, sizeof bits);
    return 1;
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

/* An input of n elements of dt; NULL if absent (an error unless optional). n < 0: any size. */
static const void *in_t(ctx *x, const char *role, tt_vec_dtype dt, int32_t n, int optional)
{
    const tt_vec_tensor *t = tt_vec_find(x->c, 0, role);
    if (t == NULL) {
        if (!optional) {
            fail(x, "vector file: input %s missing", role);
        }
        return NULL;
    }
    if (t->dt != dt || (n >= 0 && t->n != n)) {
        fail(x, "vector file: input %s has the wrong type or size", role);
        return NULL;
    }
    return t->data;
}

static int32_t in_count(ctx *x, const char *role)
{
    const tt_vec_tensor *t = tt_vec_find(x->c, 0, role);
    return t == NULL ? 0 : t->n;
}

static float in_scalar(ctx *x, const char *role)
{
    const float *v = in_t(x, role, TT_VEC_F32, 1, 0);
    return v == NULL ? 0.0f : v[0];
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        printf("out of memory (%u bytes)\n", (unsigned)n);
        exit(2);
    }
    return p;
}

/* A guarded buffer: GUARD bytes, n elements, GUARD bytes. */
typedef struct {
    uint8_t *base;
    void *p;
    int32_t n;
    tt_vec_dtype dt;
} outbuf;

static size_t out_bytes(const outbuf *o)
{
    return (size_t)o->n * tt_vec_size(o->dt);
}

/* Poisoned with pattern `pass` (0 or 1). */
static void out_init(outbuf *o, tt_vec_dtype dt, int32_t n, int pass)
{
    o->n = n;
    o->dt = dt;
    o->base = xmalloc((size_t)n * tt_vec_size(dt) + 2 * GUARD);
    o->p = o->base + GUARD;
    memset(o->base, GUARD_BYTE, GUARD);
    memset(o->base + GUARD + out_bytes(o), GUARD_BYTE, GUARD);
    if (dt == TT_VEC_F32) {
        for (int32_t k = 0; k < n; k++) {
            memcpy((float *)o->p + k, &NAN_POISON[pass & 1], 4);
        }
    } else {
        memset(o->p, POISON_BYTES[pass & 1], out_bytes(o));
    }
}

/* Initialised with a copy of src (in-place kernels). */
static void out_copy(outbuf *o, tt_vec_dtype dt, int32_t n, const void *src)
{
    out_init(o, dt, n, 0);
    memcpy(o->p, src, out_bytes(o));
}

static void out_free(outbuf *o)
{
    free(o->base);
    o->base = NULL;
    o->p = NULL;
}

static int bytes_are(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t k = 0; k < n; k++) {
        if (p[k] != v) {
            return 0;
        }
    }
    return 1;
}

static int guards_ok(const outbuf *o)
{
    return bytes_are(o->base, GUARD, GUARD_BYTE) &&
           bytes_are(o->base + GUARD + out_bytes(o), GUARD, GUARD_BYTE);
}

static void check_status(ctx *x, tt_status st, const char *what)
{
    if (st != TT_OK) {
        fail(x, "%s returned status %d", what, (int)st);
    }
}

/* Compares o with the expected output `role`: integers and (exact) floats bit for bit, other
 * floats within tt_test.h's tolerance. Also checks o's guards. */
static void expect(ctx *x, const char *role, const outbuf *o, int exact)
{
    if (!guards_ok(o)) {
        fail(x, "%s: wrote outside the output buffer", role);
        return;
    }
    const tt_vec_tensor *t = tt_vec_find(x->c, 1, role);
    if (t == NULL || t->dt != o->dt || t->n != o->n) {
        fail(x, "vector file: expected output %s missing or of the wrong type or size", role);
        return;
    }
    if (o->dt == TT_VEC_F32 && !exact) {
        char detail[200];
        if (!tt_test_close_f32(o->p, t->data, (size_t)o->n, detail, sizeof detail)) {
            fail(x, "%s%s", role, detail);
        }
        return;
    }
    for (int32_t k = 0; k < o->n; k++) {
        if (o->dt == TT_VEC_S8) {
            const int8_t g = ((const int8_t *)o->p)[k], w = ((const int8_t *)t->data)[k];
            if (g != w) {
                fail(x, "%s[%d] = %d, expected %d", role, (int)k, g, w);
                return;
            }
        } else if (o->dt == TT_VEC_I32) {
            const int32_t g = ((const int32_t *)o->p)[k], w = ((const int32_t *)t->data)[k];
            if (g != w) {
                fail(x, "%s[%d] = %ld, expected %ld", role, (int)k, (long)g, (long)w);
                return;
            }
        } else {
            uint32_t g, w;
            memcpy(&g, (const float *)o->p + k, 4);
            memcpy(&w, (const float *)t->data + k, 4);
            if (g != w) {
                fail(x, "%s[%d] = %.9g (0x%08lx), expected %.9g (0x%08lx)", role, (int)k,
                     (double)((const float *)o->p)[k], (unsigned long)g,
                     (double)((const float *)t->data)[k], (unsigned long)w);
                return;
            }
        }
    }
}

/* Scratch of `need` bytes between guards, pre-filled with garbage (kernels may not assume 0). */
typedef struct {
    uint8_t *base;
    tt_scratch s;
} scratchbuf;

static void scratch_init(scratchbuf *b, int32_t need)
{
    b->base = xmalloc((size_t)need + 2 * GUARD);
    memset(b->base, GUARD_BYTE, GUARD);
    memset(b->base + GUARD, 0x9B, (size_t)need);
    memset(b->base + GUARD + need, GUARD_BYTE, GUARD);
    b->s.buf = b->base + GUARD; /* malloc alignment + 32: 4-byte aligned */
    b->s.size = need;
}

static int scratch_guards_ok(const scratchbuf *b)
{
    return bytes_are(b->base, GUARD, GUARD_BYTE) &&
           bytes_are(b->base + GUARD + b->s.size, GUARD, GUARD_BYTE);
}

static int attrs_ok(ctx *x, int32_t n)
{
    if (x->c->nattrs != n) {
        fail(x, "vector file: %d attributes, expected %d", (int)x->c->nattrs, (int)n);
        return 0;
    }
    return 1;
}

static tt_conv2d_params conv_params(const int32_t *a)
{
    tt_conv2d_params p = {a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                          a[7], a[8], a[9], a[10], a[11], a[12]};
    return p;
}

static tt_pool2d_params pool_params(const int32_t *a)
{
    tt_pool2d_params p = {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]};
    return p;
}

static int32_t numel_x(const tt_conv2d_params *p)
{
    return p->in_c * p->in_h * p->in_w;
}

static int32_t numel_y(const tt_conv2d_params *p)
{
    return p->out_c * p->out_h * p->out_w;
}

static int32_t numel_w(const tt_conv2d_params *p)
{
    return p->out_c * (p->in_c / p->groups) * p->k_h * p->k_w;
}

/* A clamp mask output of n bits: only the first n bits are specified (the rest of the last byte
 * is cleared before comparing). */
static void expect_mask(ctx *x, outbuf *m, int32_t n)
{
    if (n % 8 != 0 && guards_ok(m)) {
        ((uint8_t *)m->p)[n / 8] &= (uint8_t)((1u << (n % 8)) - 1u);
    }
    expect(x, "mask", m, 1);
}

/* The optional "rows" (count x row_size int8) and "channels" inputs of a case: a row substitution,
 * or NULL when the case has none. */
static const tt_row_subst *in_subst(ctx *x, tt_row_subst *sub, int32_t row_size)
{
    const int32_t count = in_count(x, "channels");
    sub->channels = in_t(x, "channels", TT_VEC_I32, -1, 1);
    sub->rows = in_t(x, "rows", TT_VEC_S8, count * row_size, sub->channels == NULL);
    sub->count = count;
    return sub->channels == NULL ? NULL : sub;
}

/* --- runners, one per kernel ---------------------------------------------------------------- */

static void run_primitive(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const char *kern = x->c->kernel;
    const int is_srdhm = strcmp(kern, "srdhm") == 0, is_rdbpot = strcmp(kern, "rdbpot") == 0;
    const int32_t *a = in_t(x, is_srdhm ? "a" : "x", TT_VEC_I32, n, 0);
    const int32_t *b = in_t(x, is_srdhm ? "b" : is_rdbpot ? "e" : "mult", TT_VEC_I32, n, 0);
    const int32_t *s = is_srdhm || is_rdbpot ? NULL : in_t(x, "shift", TT_VEC_I32, n, 0);
    if (!x->ok) {
        return;
    }
    outbuf r;
    out_init(&r, TT_VEC_I32, n, 0);
    int32_t *rp = r.p;
    for (int32_t k = 0; k < n; k++) {
        if (is_srdhm) {
            rp[k] = tt_srdhm(a[k], b[k]);
        } else if (is_rdbpot) {
            if (b[k] < 0 || b[k] > 31) {
                fail(x, "vector file: exponent %ld", (long)b[k]);
                break;
            }
            rp[k] = tt_rdbpot(a[k], b[k]);
        } else {
            if (s[k] < -31 || s[k] > 30) {
                fail(x, "vector file: shift %ld", (long)s[k]);
                break;
            }
            rp[k] = tt_requantize(a[k], b[k], s[k]);
        }
    }
    expect(x, "r", &r, 1);
    if (!is_srdhm && !is_rdbpot && x->ok) { /* the one-multiply form the conv kernels use */
        for (int32_t k = 0; k < n; k++) {
            rp[k] = tt_requant_ch_apply(tt_requant_ch_make(b[k], s[k]), a[k]);
        }
        expect(x, "r", &r, 1);
    }
    out_free(&r);
}

static void run_conv(ctx *x)
{
    if (!attrs_ok(x, 17)) {
        return;
    }
    const int depthwise = strcmp(x->c->kernel, "depthwise_conv2d_s8") == 0;
    const tt_conv2d_params p = conv_params(x->c->attrs);
    const int32_t *a = x->c->attrs;
    const int8_t *in = in_t(x, "x", TT_VEC_S8, numel_x(&p), 0);
    const int8_t *w = in_t(x, "w", TT_VEC_S8, numel_w(&p), 0);
    const int32_t *bias = in_t(x, "bias", TT_VEC_I32, p.out_c, 1);
    const int32_t *mult = in_t(x, "mult", TT_VEC_I32, p.out_c, 0);
    const int32_t *shift = in_t(x, "shift", TT_VEC_I32, p.out_c, 0);
    tt_row_subst sub_buf;
    const tt_row_subst *sub = in_subst(x, &sub_buf, numel_w(&p) / p.out_c);
    if (!x->ok) {
        return;
    }
    const int with_mask = tt_vec_find(x->c, 1, "mask") != NULL;
    const int32_t need = depthwise ? tt_depthwise_conv2d_s8_get_buffer_size(&p)
                                   : tt_conv2d_s8_get_buffer_size(&p);
    if (need < 0) {
        fail(x, "get_buffer_size returned %ld", (long)need);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        scratchbuf sb;
        scratch_init(&sb, need);
        outbuf y, m;
        out_init(&y, TT_VEC_S8, numel_y(&p), pass);
        out_init(&m, TT_VEC_S8, with_mask ? (numel_y(&p) + 7) / 8 : 1, pass);
        const tt_s8_requant q = {a[13], a[14], a[15], a[16], mult, shift,
                                 with_mask ? (uint8_t *)m.p : NULL};
        const tt_status st = depthwise ? tt_depthwise_conv2d_s8(&sb.s, &p, &q, in, w, sub, bias, y.p)
                                       : tt_conv2d_s8(&sb.s, &p, &q, in, w, sub, bias, y.p);
        check_status(x, st, x->c->kernel);
        expect(x, "y", &y, 1);
        if (with_mask) {
            expect_mask(x, &m, numel_y(&p));
        }
        if (!scratch_guards_ok(&sb)) {
            fail(x, "wrote outside the scratch buffer (%ld bytes)", (long)need);
        }
        out_free(&y);
        out_free(&m);
        free(sb.base);
    }
    /* In place (y over x), where the header allows it: the compiler's inplace pass relies on it. */
    if (depthwise && p.out_c == p.in_c && p.out_h == p.in_h && p.out_w == p.in_w &&
        p.stride_h == 1) {
        scratchbuf sb;
        scratch_init(&sb, need);
        outbuf y, m;
        out_copy(&y, TT_VEC_S8, numel_x(&p), in);
        out_init(&m, TT_VEC_S8, with_mask ? (numel_y(&p) + 7) / 8 : 1, 0);
        const tt_s8_requant q = {a[13], a[14], a[15], a[16], mult, shift,
                                 with_mask ? (uint8_t *)m.p : NULL};
        check_status(x, tt_depthwise_conv2d_s8(&sb.s, &p, &q, y.p, w, sub, bias, y.p),
                     "tt_depthwise_conv2d_s8 (in place)");
        expect(x, "y", &y, 1);
        if (with_mask) {
            expect_mask(x, &m, numel_y(&p));
        }
        out_free(&y);
        out_free(&m);
        free(sb.base);
    }
}

/* The fused conv + depthwise: bit-exact y in every pass; the scratch is exactly the query. */
static void run_pw_dw(ctx *x)
{
    if (!attrs_ok(x, 33)) {
        return;
    }
    const int32_t *a = x->c->attrs;
    const tt_pw_dw_conv2d_params p = {conv_params(a), conv_params(a + 13)};
    const int8_t *in = in_t(x, "x", TT_VEC_S8, numel_x(&p.pw), 0);
    const int8_t *pw_w = in_t(x, "pw_w", TT_VEC_S8, numel_w(&p.pw), 0);
    const int32_t *pw_b = in_t(x, "pw_bias", TT_VEC_I32, p.pw.out_c, 1);
    const int32_t *pw_m = in_t(x, "pw_mult", TT_VEC_I32, p.pw.out_c, 0);
    const int32_t *pw_s = in_t(x, "pw_shift", TT_VEC_I32, p.pw.out_c, 0);
    const int8_t *dw_w = in_t(x, "dw_w", TT_VEC_S8, numel_w(&p.dw), 0);
    const int32_t *dw_b = in_t(x, "dw_bias", TT_VEC_I32, p.dw.out_c, 1);
    const int32_t *dw_m = in_t(x, "dw_mult", TT_VEC_I32, p.dw.out_c, 0);
    const int32_t *dw_s = in_t(x, "dw_shift", TT_VEC_I32, p.dw.out_c, 0);
    if (!x->ok) {
        return;
    }
    const int32_t need = tt_pw_dw_conv2d_s8_get_buffer_size(&p);
    if (need <= 0) {
        fail(x, "get_buffer_size returned %ld", (long)need);
        return;
    }
    const tt_s8_requant pw_q = {a[26], a[27], a[28], a[29], pw_m, pw_s, NULL};
    const tt_s8_requant dw_q = {a[27], a[30], a[31], a[32], dw_m, dw_s, NULL};
    for (int pass = 0; pass < 2; pass++) {
        scratchbuf sb;
        scratch_init(&sb, need);
        outbuf y;
        out_init(&y, TT_VEC_S8, numel_y(&p.dw), pass);
        check_status(x, tt_pw_dw_conv2d_s8(&sb.s, &p, &pw_q, pw_w, pw_b, &dw_q, dw_w, dw_b, in,
                                           y.p),
                     "tt_pw_dw_conv2d_s8");
        expect(x, "y", &y, 1);
        if (!scratch_guards_ok(&sb)) {
            fail(x, "wrote outside the scratch buffer (%ld bytes)", (long)need);
        }
        out_free(&y);
        free(sb.base);
    }
}

static void run_add(ctx *x)
{
    if (!attrs_ok(x, 13)) {
        return;
    }
    const int32_t *a = x->c->attrs;
    const int32_t n = a[0];
    tt_add_s8_params p = {a[1], a[2], a[3], a[4], a[5], a[6],
                          a[7], a[8], a[9], a[10], a[11], a[12], NULL};
    const int8_t *x1 = in_t(x, "x1", TT_VEC_S8, n, 0);
    const int8_t *x2 = in_t(x, "x2", TT_VEC_S8, n, 0);
    if (!x->ok) {
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        outbuf y, m;
        out_init(&y, TT_VEC_S8, n, pass);
        out_init(&m, TT_VEC_S8, (n + 7) / 8, pass);
        p.mask = m.p;
        check_status(x, tt_add_s8(&p, n, x1, x2, y.p), "tt_add_s8");
        expect(x, "y", &y, 1);
        expect_mask(x, &m, n);
        out_free(&y);
        out_free(&m);
    }
    p.mask = NULL;
    outbuf y1, y2; /* in place: y aliases x1, then x2 */
    out_copy(&y1, TT_VEC_S8, n, x1);
    check_status(x, tt_add_s8(&p, n, y1.p, x2, y1.p), "tt_add_s8 (y = x1)");
    expect(x, "y", &y1, 1);
    out_copy(&y2, TT_VEC_S8, n, x2);
    check_status(x, tt_add_s8(&p, n, x1, y2.p, y2.p), "tt_add_s8 (y = x2)");
    expect(x, "y", &y2, 1);
    out_free(&y1);
    out_free(&y2);
}

static void run_avgpool(ctx *x)
{
    if (!attrs_ok(x, 14)) {
        return;
    }
    const tt_pool2d_params p = pool_params(x->c->attrs);
    const int32_t *a = x->c->attrs;
    const int8_t *in = in_t(x, "x", TT_VEC_S8, p.c * p.in_h * p.in_w, 0);
    if (!x->ok) {
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        outbuf y;
        out_init(&y, TT_VEC_S8, p.c * p.out_h * p.out_w, pass);
        check_status(x, tt_avgpool2d_s8(&p, a[11], a[12], a[13], in, y.p), "tt_avgpool2d_s8");
        expect(x, "y", &y, 1);
        out_free(&y);
    }
}

static void run_dequantize(ctx *x)
{
    if (!attrs_ok(x, 2)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const int8_t *in = in_t(x, "x", TT_VEC_S8, n, 0);
    const float scale = in_scalar(x, "scale");
    if (!x->ok) {
        return;
    }
    outbuf y;
    out_init(&y, TT_VEC_F32, n, 0);
    check_status(x, tt_dequantize_s8_f32(n, in, scale, x->c->attrs[1], y.p), "tt_dequantize_s8_f32");
    expect(x, "y", &y, 1);
    out_free(&y);
}

static void run_quantize(ctx *x)
{
    if (!attrs_ok(x, 2)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const float *in = in_t(x, "x", TT_VEC_F32, n, 0);
    const float scale = in_scalar(x, "scale");
    if (!x->ok) {
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        outbuf y;
        out_init(&y, TT_VEC_S8, n, pass);
        check_status(x, tt_quantize_f32_s8(n, in, scale, x->c->attrs[1], y.p),
                     "tt_quantize_f32_s8");
        expect(x, "y", &y, 1);
        out_free(&y);
    }
}

static void run_requant_grad(ctx *x)
{
    if (!attrs_ok(x, 2)) {
        return;
    }
    const int32_t *a = x->c->attrs;
    const int32_t n = a[0] * a[1];
    const uint8_t *mask = in_t(x, "mask", TT_VEC_S8, (n + 7) / 8, 0);
    const float *dy = in_t(x, "dy", TT_VEC_F32, n, 0);
    const float *e = in_t(x, "eff_scale", TT_VEC_F32, a[0], 0);
    if (!x->ok) {
        return;
    }
    outbuf dz, dz2;
    out_init(&dz, TT_VEC_F32, n, 0);
    check_status(x, tt_requant_grad_f32(a[0], a[1], mask, dy, e, dz.p), "tt_requant_grad_f32");
    expect(x, "dz", &dz, 1);
    out_copy(&dz2, TT_VEC_F32, n, dy); /* in place: dz aliases dy */
    check_status(x, tt_requant_grad_f32(a[0], a[1], mask, dz2.p, e, dz2.p),
                 "tt_requant_grad_f32 (in place)");
    expect(x, "dz", &dz2, 1);
    out_free(&dz);
    out_free(&dz2);
}

/* The fp32 backward kernels are compared bit for bit: their summation order is part of the
 * specification (docs/int8.md section 11), so the reference sums the same way. */
static void run_grad_input(ctx *x)
{
    if (!attrs_ok(x, 13)) {
        return;
    }
    const tt_conv2d_params p = conv_params(x->c->attrs);
    const float *dz = in_t(x, "dz", TT_VEC_F32, numel_y(&p), 0);
    const int8_t *w = in_t(x, "w", TT_VEC_S8, numel_w(&p), 0);
    tt_row_subst sub_buf;
    const tt_row_subst *sub = in_subst(x, &sub_buf, numel_w(&p) / p.out_c);
    if (!x->ok) {
        return;
    }
    outbuf dx;
    out_init(&dx, TT_VEC_F32, numel_x(&p), 0);
    check_status(x, tt_conv2d_s8_grad_input_f32(&p, dz, w, sub, dx.p),
                 "tt_conv2d_s8_grad_input_f32");
    expect(x, "dx", &dx, 1);
    out_free(&dx);
}

static void run_dw_grad_input(ctx *x)
{
    if (!attrs_ok(x, 13)) {
        return;
    }
    const tt_conv2d_params p = conv_params(x->c->attrs);
    const float *dz = in_t(x, "dz", TT_VEC_F32, numel_y(&p), 0);
    const int8_t *w = in_t(x, "w", TT_VEC_S8, numel_w(&p), 0);
    tt_row_subst sub_buf;
    const tt_row_subst *sub = in_subst(x, &sub_buf, numel_w(&p) / p.out_c);
    if (!x->ok) {
        return;
    }
    scratchbuf sc;
    scratch_init(&sc, 4 * p.in_h * p.in_w);
    outbuf dx, dx2;
    out_init(&dx, TT_VEC_F32, numel_x(&p), 0);
    check_status(x, tt_depthwise_conv2d_s8_grad_input_f32(&sc.s, &p, dz, w, sub, dx.p),
                 "tt_depthwise_conv2d_s8_grad_input_f32");
    expect(x, "dx", &dx, 1);
    if (numel_x(&p) == numel_y(&p)) { /* in place: dx is dz */
        out_copy(&dx2, TT_VEC_F32, numel_y(&p), dz);
        check_status(x, tt_depthwise_conv2d_s8_grad_input_f32(&sc.s, &p, dx2.p, w, sub, dx2.p),
                     "tt_depthwise_conv2d_s8_grad_input_f32 (in place)");
        expect(x, "dx", &dx2, 1);
        out_free(&dx2);
    }
    if (!scratch_guards_ok(&sc)) {
        fail(x, "scratch written outside its bounds");
    }
    free(sc.base);
    out_free(&dx);
}

static void run_grad_weight(ctx *x)
{
    if (!attrs_ok(x, 15)) {
        return;
    }
    const tt_conv2d_params p = conv_params(x->c->attrs);
    const int32_t x_zero = x->c->attrs[13], axis = x->c->attrs[14];
    const float *dz = in_t(x, "dz", TT_VEC_F32, numel_y(&p), 0);
    const int8_t *in = in_t(x, "x", TT_VEC_S8, numel_x(&p), 0);
    const int32_t *chan = in_t(x, "channels", TT_VEC_I32, -1, 1);
    if (!x->ok) {
        return;
    }
    const tt_channel_select sel = {chan, in_count(x, "channels"), axis};
    const int32_t cin_g = p.in_c / p.groups, ksize = p.k_h * p.k_w;
    int32_t n_dw = numel_w(&p);
    if (chan != NULL) {
        n_dw = axis == 0 ? sel.count * cin_g * ksize : p.out_c * sel.count * ksize;
    }
    outbuf dw, db, dw2;
    out_init(&dw, TT_VEC_F32, n_dw, 0);
    out_init(&db, TT_VEC_F32, p.out_c, 0);
    out_init(&dw2, TT_VEC_F32, n_dw, 1);
    const tt_channel_select *s = chan != NULL ? &sel : NULL;
    check_status(x, tt_conv2d_s8_grad_weight_f32(&p, s, dz, in, x_zero, dw.p, db.p),
                 "tt_conv2d_s8_grad_weight_f32");
    expect(x, "dw", &dw, 1);
    expect(x, "db", &db, 1);
    check_status(x, tt_conv2d_s8_grad_weight_f32(&p, s, dz, in, x_zero, dw2.p, NULL),
                 "tt_conv2d_s8_grad_weight_f32 (db NULL)");
    if (!guards_ok(&dw2) || memcmp(dw.p, dw2.p, out_bytes(&dw)) != 0) {
        fail(x, "dw differs when db is NULL");
    }
    outbuf db2; /* db only: neither x nor dw */
    out_init(&db2, TT_VEC_F32, p.out_c, 1);
    check_status(x, tt_conv2d_s8_grad_weight_f32(&p, s, dz, NULL, x_zero, NULL, db2.p),
                 "tt_conv2d_s8_grad_weight_f32 (db only)");
    expect(x, "db", &db2, 1);
    out_free(&db2);
    out_free(&dw);
    out_free(&db);
    out_free(&dw2);
}

static void run_add_grad(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const float *dy = in_t(x, "dy", TT_VEC_F32, n, 0);
    const uint8_t *mask = in_t(x, "mask", TT_VEC_S8, (n + 7) / 8, 1);
    const float s1 = in_scalar(x, "s1"), s2 = in_scalar(x, "s2"), sy = in_scalar(x, "sy");
    if (!x->ok) {
        return;
    }
    outbuf dx1, dx2, dx1b;
    out_init(&dx1, TT_VEC_F32, n, 0);
    out_init(&dx2, TT_VEC_F32, n, 1);
    check_status(x, tt_add_s8_grad_f32(n, mask, dy, s1, s2, sy, dx1.p, dx2.p),
                 "tt_add_s8_grad_f32");
    expect(x, "dx1", &dx1, 1);
    expect(x, "dx2", &dx2, 1);
    out_copy(&dx1b, TT_VEC_F32, n, dy); /* dx1 aliases dy */
    check_status(x, tt_add_s8_grad_f32(n, mask, dx1b.p, s1, s2, sy, dx1b.p, dx2.p),
                 "tt_add_s8_grad_f32 (in place)");
    expect(x, "dx1", &dx1b, 1);
    expect(x, "dx2", &dx2, 1);
    outbuf only2; /* dx1 not wanted */
    out_init(&only2, TT_VEC_F32, n, 0);
    check_status(x, tt_add_s8_grad_f32(n, mask, dy, s1, s2, sy, NULL, only2.p),
                 "tt_add_s8_grad_f32 (dx1 NULL)");
    expect(x, "dx2", &only2, 1);
    out_free(&only2);
    out_free(&dx1);
    out_free(&dx2);
    out_free(&dx1b);
}

static void run_dequantize_grad(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const float *dy = in_t(x, "dy", TT_VEC_F32, n, 0);
    const float scale = in_scalar(x, "scale");
    if (!x->ok) {
        return;
    }
    outbuf dx, dx2;
    out_init(&dx, TT_VEC_F32, n, 0);
    check_status(x, tt_dequantize_grad_f32(n, dy, scale, dx.p), "tt_dequantize_grad_f32");
    expect(x, "dx", &dx, 1);
    out_copy(&dx2, TT_VEC_F32, n, dy);
    check_status(x, tt_dequantize_grad_f32(n, dx2.p, scale, dx2.p), "tt_dequantize_grad_f32 (in place)");
    expect(x, "dx", &dx2, 1);
    out_free(&dx);
    out_free(&dx2);
}

static void run_update_s8(ctx *x)
{
    if (!attrs_ok(x, 4)) {
        return;
    }
    const int master_rule = strcmp(x->c->kernel, "update_s8_master_f32") == 0;
    const int32_t *a = x->c->attrs;
    const tt_weight_shape s = {a[0], a[1], a[2]};
    const int32_t *chan = in_t(x, "channels", TT_VEC_I32, -1, 1);
    const tt_channel_select sel = {chan, in_count(x, "channels"), a[3]};
    const int32_t n_w = s.out_c * s.in_c * s.k;
    int32_t n_rows = n_w;
    if (chan != NULL) {
        n_rows = a[3] == 0 ? sel.count * s.in_c * s.k : s.out_c * sel.count * s.k;
    }
    const int8_t *w = in_t(x, "w", TT_VEC_S8, n_w, 0);
    const float *dw = in_t(x, "dw", TT_VEC_F32, n_rows, 0);
    const float *qas = in_t(x, "qas", TT_VEC_F32, s.out_c, 0);
    const float lr = in_scalar(x, "lr");
    const float *master = master_rule ? in_t(x, "master", TT_VEC_F32, n_rows, 0) : NULL;
    if (!x->ok) {
        return;
    }
    const tt_channel_select *sp = chan != NULL ? &sel : NULL;
    outbuf wo;
    out_copy(&wo, TT_VEC_S8, n_w, w);
    if (master_rule) {
        outbuf mo;
        out_copy(&mo, TT_VEC_F32, n_rows, master);
        check_status(x, tt_update_s8_master_f32(&s, sp, mo.p, wo.p, dw, lr, qas),
                     "tt_update_s8_master_f32");
        expect(x, "master", &mo, 1);
        out_free(&mo);
    } else {
        check_status(x, tt_update_s8_round_f32(&s, sp, wo.p, dw, lr, qas), "tt_update_s8_round_f32");
    }
    expect(x, "w", &wo, 1);
    out_free(&wo);
}

static void run_update_s32(ctx *x)
{
    if (!attrs_ok(x, 1)) {
        return;
    }
    const int32_t n = x->c->attrs[0];
    const int32_t *b = in_t(x, "b", TT_VEC_I32, n, 0);
    const float *master = in_t(x, "master", TT_VEC_F32, n, 1);
    const float *db = in_t(x, "db", TT_VEC_F32, n, 0);
    const float *qas = in_t(x, "qas", TT_VEC_F32, n, 0);
    const float lr = in_scalar(x, "lr");
    if (!x->ok) {
        return;
    }
    outbuf bo, mo;
    out_copy(&bo, TT_VEC_I32, n, b);
    if (master != NULL) {
        out_copy(&mo, TT_VEC_F32, n, master);
    }
    check_status(x, tt_update_s32_f32(n, bo.p, master != NULL ? mo.p : NULL, db, lr, qas),
                 "tt_update_s32_f32");
    expect(x, "b", &bo, 1);
    if (master != NULL) {
        expect(x, "master", &mo, 1);
        out_free(&mo);
    }
    out_free(&bo);
}

typedef struct {
    const char *kernel;
    void (*run)(ctx *x);
    int cases;
} runner;

static runner RUNNERS[] = {
    {"srdhm", run_primitive, 0},
    {"rdbpot", run_primitive, 0},
    {"requantize", run_primitive, 0},
    {"conv2d_s8", run_conv, 0},
    {"depthwise_conv2d_s8", run_conv, 0},
    {"add_s8", run_add, 0},
    {"avgpool2d_s8", run_avgpool, 0},
    {"dequantize_s8_f32", run_dequantize, 0},
    {"quantize_f32_s8", run_quantize, 0},
    {"requant_grad_f32", run_requant_grad, 0},
    {"conv2d_s8_grad_input_f32", run_grad_input, 0},
    {"depthwise_conv2d_s8_grad_input_f32", run_dw_grad_input, 0},
    {"conv2d_s8_grad_weight_f32", run_grad_weight, 0},
    {"add_s8_grad_f32", run_add_grad, 0},
    {"dequantize_grad_f32", run_dequantize_grad, 0},
    {"update_s8_round_f32", run_update_s8, 0},
    {"update_s8_master_f32", run_update_s8, 0},
    {"update_s32_f32", run_update_s32, 0},
    {"pw_dw_conv2d_s8", run_pw_dw, 0},
};
#define N_RUNNERS (sizeof RUNNERS / sizeof RUNNERS[0])

static void run_case(const tt_vec_case *c)
{
    char label[2 * TT_VEC_NAME_LEN + 2];
    snprintf(label, sizeof label, "%s/%s", c->kernel, c->name);
    ctx x = {c, 1, ""};

    /* Snapshot the inputs: kernels must not modify them. */
    void *saved[TT_VEC_MAX_TENSORS] = {0};
    for (int k = 0; k < c->ntensors; k++) {
        if (!c->t[k].is_out) {
            const size_t n = (size_t)c->t[k].n * tt_vec_size(c->t[k].dt);
            saved[k] = xmalloc(n);
            memcpy(saved[k], c->t[k].data, n);
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
            if (memcmp(saved[k], c->t[k].data, (size_t)c->t[k].n * tt_vec_size(c->t[k].dt)) != 0) {
                fail(&x, "input %s was modified", c->t[k].role);
            }
            free(saved[k]);
        }
    }
    tt_test_case(label, x.ok, x.msg);
}

/* --- invalid arguments ---------------------------------------------------------------------- */

#define ERR_BUF 1024
static int8_t g_s8a[ERR_BUF], g_s8b[ERR_BUF], g_s8out[ERR_BUF];
static int32_t g_i32[ERR_BUF], g_mult[ERR_BUF], g_shift[ERR_BUF], g_i32out[ERR_BUF];
static float g_f32[ERR_BUF], g_f32out[ERR_BUF], g_f32out2[ERR_BUF];
static uint32_t g_scratch_words[ERR_BUF];

static void poison_outputs(void)
{
    memset(g_s8out, 0x5A, sizeof g_s8out);
    memset(g_i32out, 0x5A, sizeof g_i32out);
    memset(g_f32out, 0x5A, sizeof g_f32out);
    memset(g_f32out2, 0x5A, sizeof g_f32out2);
}

static int outputs_untouched(void)
{
    return bytes_are((const uint8_t *)g_s8out, sizeof g_s8out, 0x5A) &&
           bytes_are((const uint8_t *)g_i32out, sizeof g_i32out, 0x5A) &&
           bytes_are((const uint8_t *)g_f32out, sizeof g_f32out, 0x5A) &&
           bytes_are((const uint8_t *)g_f32out2, sizeof g_f32out2, 0x5A);
}

/* expr must return `want` and leave every output buffer as it was. */
#define EXPECT_ERR(expr, want)                                                                    \
    do {                                                                                          \
        poison_outputs();                                                                         \
        TT_CHECK_STATUS(expr, want);                                                              \
        TT_CHECK_MSG(outputs_untouched(), "%s wrote an output", #expr);                           \
    } while (0)

static void init_error_inputs(void)
{
    for (int k = 0; k < ERR_BUF; k++) {
        g_s8a[k] = (int8_t)(k * 37);
        g_s8b[k] = (int8_t)(k * 11 + 3);
        g_i32[k] = k * 1000 - 500000;
        g_mult[k] = (1 << 30) + k;
        g_shift[k] = -8;
        g_f32[k] = (float)(k % 17) * 0.25f - 2.0f;
    }
}

static void check_conv_errors(void)
{
    /* 4 -> 6 channels in 2 groups, 6x6 input, 3x3 kernel, stride 1, padding 1: 6x6 output. */
    const tt_conv2d_params ok = {4, 6, 6, 6, 6, 6, 3, 3, 1, 1, 1, 1, 2};
    const tt_s8_requant q = {3, -5, -128, 127, g_mult, g_shift, NULL};
    const int32_t need = tt_conv2d_s8_get_buffer_size(&ok);
    TT_CHECK(need > 0 && need <= (int32_t)sizeof g_scratch_words - 4);
    tt_scratch sc = {g_scratch_words, need};
    TT_CHECK_STATUS(tt_conv2d_s8(&sc, &ok, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_OK);
    TT_CHECK_STATUS(tt_conv2d_s8(&sc, &ok, &q, g_s8a, g_s8b, NULL, NULL, g_s8out), TT_OK);

    tt_conv2d_params bad[16];
    int n = 0;
    for (int k = 0; k < 16; k++) {
        bad[k] = ok;
    }
    bad[n++].groups = 0;
    bad[n++].groups = 4;    /* does not divide out_c 6 */
    bad[n++].in_c = 0;
    bad[n++].in_h = -6;
    bad[n++].out_h = 5;     /* inconsistent with (6 + 2 - 3) / 1 + 1 = 6 */
    bad[n++].stride_w = 0;
    bad[n++].pad_h = -1;
    bad[n++].k_w = 0;
    bad[n++].k_h = 9;       /* taller than the padded input */
    for (int k = 0; k < n; k++) {
        TT_CHECK(tt_conv2d_s8_get_buffer_size(&bad[k]) < 0);
        EXPECT_ERR(tt_conv2d_s8(&sc, &bad[k], &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
        EXPECT_ERR(tt_conv2d_s8_grad_input_f32(&bad[k], g_f32, g_s8b, NULL, g_f32out), TT_ERR_ARG);
        EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&bad[k], NULL, g_f32, g_s8a, 0, g_f32out,
                                                g_f32out2),
                   TT_ERR_ARG);
    }
    TT_CHECK(tt_conv2d_s8_get_buffer_size(NULL) < 0);
    EXPECT_ERR(tt_conv2d_s8(NULL, &ok, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8(&sc, NULL, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8(&sc, &ok, NULL, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8(&sc, &ok, &q, NULL, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8(&sc, &ok, &q, g_s8a, NULL, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8(&sc, &ok, &q, g_s8a, g_s8b, NULL, g_i32, NULL), TT_ERR_ARG);

    /* Row substitutions: channels must be strictly increasing and inside out_c. */
    const int32_t ch_ok[2] = {1, 4}, ch_dup[2] = {4, 4}, ch_down[2] = {4, 1}, ch_out[2] = {1, 6};
    const int32_t ch_neg[2] = {-1, 2};
    const tt_row_subst sub_ok = {g_s8b, ch_ok, 2};
    TT_CHECK_STATUS(tt_conv2d_s8(&sc, &ok, &q, g_s8a, g_s8b, &sub_ok, g_i32, g_s8out), TT_OK);
    TT_CHECK_STATUS(tt_conv2d_s8_grad_input_f32(&ok, g_f32, g_s8b, &sub_ok, g_f32out), TT_OK);
    const tt_row_subst bad_sub[] = {
        {g_s8b, ch_dup, 2}, {g_s8b, ch_down, 2}, {g_s8b, ch_out, 2}, {g_s8b, ch_neg, 2},
        {NULL, ch_ok, 2},   {g_s8b, NULL, 2},    {g_s8b, ch_ok, -1}, {g_s8b, ch_ok, 7},
    };
    for (size_t k = 0; k < sizeof bad_sub / sizeof bad_sub[0]; k++) {
        EXPECT_ERR(tt_conv2d_s8(&sc, &ok, &q, g_s8a, g_s8b, &bad_sub[k], g_i32, g_s8out),
                   TT_ERR_ARG);
        EXPECT_ERR(tt_conv2d_s8_grad_input_f32(&ok, g_f32, g_s8b, &bad_sub[k], g_f32out),
                   TT_ERR_ARG);
    }

    /* Scratch: too small, NULL, misaligned. */
    tt_scratch small = {g_scratch_words, need - 1};
    tt_scratch null_buf = {NULL, need};
    tt_scratch odd = {(uint8_t *)g_scratch_words + 2, need};
    EXPECT_ERR(tt_conv2d_s8(&small, &ok, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8(&null_buf, &ok, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8(&odd, &ok, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);

    /* Quantization parameters. */
    const tt_s8_requant bad_q[] = {
        {128, 0, -128, 127, g_mult, g_shift, NULL},  {-129, 0, -128, 127, g_mult, g_shift, NULL},
        {0, 128, -128, 127, g_mult, g_shift, NULL},  {0, -200, -128, 127, g_mult, g_shift, NULL},
        {0, 0, 5, 4, g_mult, g_shift, NULL},         {0, 0, -129, 127, g_mult, g_shift, NULL},
        {0, 0, -128, 128, g_mult, g_shift, NULL},    {0, 0, -128, 127, NULL, g_shift, NULL},
        {0, 0, -128, 127, g_mult, NULL, NULL},
    };
    for (size_t k = 0; k < sizeof bad_q / sizeof bad_q[0]; k++) {
        EXPECT_ERR(tt_conv2d_s8(&sc, &ok, &bad_q[k], g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    }
    int32_t shifts[6] = {-8, -8, -8, -8, -8, 31}; /* the last channel's shift is out of range */
    const tt_s8_requant q31 = {0, 0, -128, 127, g_mult, shifts, NULL};
    EXPECT_ERR(tt_conv2d_s8(&sc, &ok, &q31, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    shifts[5] = -32;
    EXPECT_ERR(tt_conv2d_s8(&sc, &ok, &q31, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    shifts[5] = 30;
    TT_CHECK_STATUS(tt_conv2d_s8(&sc, &ok, &q31, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_OK);

    /* Depthwise: 4 channels, multiplier 2. */
    const tt_conv2d_params dw = {4, 6, 6, 8, 6, 6, 3, 3, 1, 1, 1, 1, 4};
    const int32_t dneed = tt_depthwise_conv2d_s8_get_buffer_size(&dw);
    TT_CHECK(dneed > 0 && dneed <= (int32_t)sizeof g_scratch_words - 4);
    tt_scratch dsc = {g_scratch_words, dneed};
    TT_CHECK_STATUS(tt_depthwise_conv2d_s8(&dsc, &dw, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_OK);
    TT_CHECK(tt_depthwise_conv2d_s8_get_buffer_size(&ok) < 0); /* groups 2 != in_c 4 */
    EXPECT_ERR(tt_depthwise_conv2d_s8(&sc, &ok, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    tt_scratch dsmall = {g_scratch_words, dneed - 2};
    EXPECT_ERR(tt_depthwise_conv2d_s8(&dsmall, &dw, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out),
               TT_ERR_ARG);
    EXPECT_ERR(tt_depthwise_conv2d_s8(NULL, &dw, &q, g_s8a, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_depthwise_conv2d_s8(&dsc, &dw, &bad_q[4], g_s8a, g_s8b, NULL, g_i32, g_s8out),
               TT_ERR_ARG);
    EXPECT_ERR(tt_depthwise_conv2d_s8(&dsc, &dw, &q, NULL, g_s8b, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_depthwise_conv2d_s8(&dsc, &dw, &q, g_s8a, NULL, NULL, g_i32, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_depthwise_conv2d_s8(&dsc, &dw, &q, g_s8a, g_s8b, NULL, g_i32, NULL), TT_ERR_ARG);

    /* Gradients: pointers, x_zero, channel selections. */
    TT_CHECK_STATUS(tt_conv2d_s8_grad_input_f32(&ok, g_f32, g_s8b, NULL, g_f32out), TT_OK);
    EXPECT_ERR(tt_conv2d_s8_grad_input_f32(NULL, g_f32, g_s8b, NULL, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_input_f32(&ok, NULL, g_s8b, NULL, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_input_f32(&ok, g_f32, NULL, NULL, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_input_f32(&ok, g_f32, g_s8b, NULL, NULL), TT_ERR_ARG);
    const tt_conv2d_params g1 = {4, 6, 6, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1};
    const int32_t idx[4] = {2, 0, 5, 2};
    const tt_channel_select sel_ok = {idx, 3, 0}, sel_in = {idx, 2, 1};
    TT_CHECK_STATUS(tt_conv2d_s8_grad_weight_f32(&g1, &sel_ok, g_f32, g_s8a, 7, g_f32out, NULL),
                    TT_OK);
    TT_CHECK_STATUS(tt_conv2d_s8_grad_weight_f32(&g1, &sel_in, g_f32, g_s8a, 7, g_f32out, NULL),
                    TT_OK);
    const tt_channel_select bad_sel[] = {
        {idx, 4, 0},  /* index 2 repeats */
        {idx, 3, 1},  /* input channel 5 of 4 */
        {idx, 2, 2},  /* no axis 2 */
        {idx, -1, 0}, /* negative count */
        {idx, 7, 0},  /* more rows than channels */
    };
    for (size_t k = 0; k < sizeof bad_sel / sizeof bad_sel[0]; k++) {
        EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&g1, &bad_sel[k], g_f32, g_s8a, 7, g_f32out,
                                                g_f32out2),
                   TT_ERR_ARG);
    }
    const int32_t neg[1] = {-1};
    const tt_channel_select sel_neg = {neg, 1, 0};
    EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&g1, &sel_neg, g_f32, g_s8a, 7, g_f32out, g_f32out2),
               TT_ERR_ARG);
    /* Input-channel selection needs groups == 1. */
    EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&ok, &sel_in, g_f32, g_s8a, 7, g_f32out, g_f32out2),
               TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&g1, NULL, g_f32, g_s8a, 128, g_f32out, g_f32out2),
               TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(NULL, NULL, g_f32, g_s8a, 0, g_f32out, g_f32out2),
               TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&g1, NULL, NULL, g_s8a, 0, g_f32out, g_f32out2),
               TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&g1, NULL, g_f32, NULL, 0, g_f32out, g_f32out2),
               TT_ERR_ARG);
    EXPECT_ERR(tt_conv2d_s8_grad_weight_f32(&g1, NULL, g_f32, g_s8a, 0, NULL, NULL), TT_ERR_ARG);
    /* db only (a layer training just its bias): no input needed */
    TT_CHECK_STATUS(tt_conv2d_s8_grad_weight_f32(&g1, NULL, g_f32, NULL, 0, NULL, g_f32out2), TT_OK);
}

static void check_pw_dw_errors(void)
{
    /* 3 -> 6 channels 1x1, then 3x3 depthwise stride 2 padding 1: 5x5 -> 6x5x5 -> 6x3x3. */
    const tt_pw_dw_conv2d_params ok = {{3, 5, 5, 6, 5, 5, 1, 1, 1, 1, 0, 0, 1},
                                       {6, 5, 5, 6, 3, 3, 3, 3, 2, 2, 1, 1, 6}};
    const tt_s8_requant pq = {3, -7, -128, 127, g_mult, g_shift, NULL};
    const tt_s8_requant dq = {-7, 5, -128, 127, g_mult, g_shift, NULL};
    const int32_t need = tt_pw_dw_conv2d_s8_get_buffer_size(&ok);
    TT_CHECK(need > 0 && need <= (int32_t)sizeof g_scratch_words);
    tt_scratch sc = {g_scratch_words, need};
#define PW_DW(ctx_, p_, pq_, dq_, x_, y_)                                                         \
    tt_pw_dw_conv2d_s8(ctx_, p_, pq_, g_s8b, g_i32, dq_, g_s8b, NULL, x_, y_)
    TT_CHECK_STATUS(PW_DW(&sc, &ok, &pq, &dq, g_s8a, g_s8out), TT_OK);

    tt_pw_dw_conv2d_params bad[8];
    for (int k = 0; k < 8; k++) {
        bad[k] = ok;
    }
    bad[0].pw.groups = 3;  /* the first conv must have groups 1 */
    bad[0].pw.out_c = 6;
    bad[1].dw.in_c = 3;    /* the depthwise must read the conv's 6 channels */
    bad[1].dw.groups = 3;
    bad[2].dw.groups = 1;  /* not depthwise */
    bad[3].dw.in_h = 4;    /* not the conv's output size */
    bad[3].dw.out_h = 2;
    bad[4].pw.out_h = 4;   /* impossible geometry */
    for (int k = 0; k < 5; k++) {
        TT_CHECK(tt_pw_dw_conv2d_s8_get_buffer_size(&bad[k]) < 0);
        EXPECT_ERR(PW_DW(&sc, &bad[k], &pq, &dq, g_s8a, g_s8out), TT_ERR_ARG);
    }
    const tt_s8_requant dq_zero = {-6, 5, -128, 127, g_mult, g_shift, NULL}; /* not pq's y_zero */
    const tt_s8_requant pq_mask = {3, -7, -128, 127, g_mult, g_shift, (uint8_t *)g_i32out};
    const tt_scratch small = {g_scratch_words, need - 1};
    TT_CHECK(tt_pw_dw_conv2d_s8_get_buffer_size(NULL) < 0);
    EXPECT_ERR(PW_DW(&sc, &ok, &pq, &dq_zero, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(&sc, &ok, &pq_mask, &dq, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(&small, &ok, &pq, &dq, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(NULL, &ok, &pq, &dq, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(&sc, NULL, &pq, &dq, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(&sc, &ok, NULL, &dq, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(&sc, &ok, &pq, NULL, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(&sc, &ok, &pq, &dq, NULL, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(PW_DW(&sc, &ok, &pq, &dq, g_s8a, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_pw_dw_conv2d_s8(&sc, &ok, &pq, NULL, g_i32, &dq, g_s8b, NULL, g_s8a, g_s8out),
               TT_ERR_ARG);
    EXPECT_ERR(tt_pw_dw_conv2d_s8(&sc, &ok, &pq, g_s8b, g_i32, &dq, NULL, NULL, g_s8a, g_s8out),
               TT_ERR_ARG);
#undef PW_DW
}

static void check_elementwise_errors(void)
{
    const tt_add_s8_params ok = {1, -2, 3, 20, 1 << 30, -1, 1 << 30, -2, 1 << 30, -10, -128, 127,
                                 NULL};
    TT_CHECK_STATUS(tt_add_s8(&ok, 16, g_s8a, g_s8b, g_s8out), TT_OK);
    tt_add_s8_params bad[12];
    int n = 0;
    for (int k = 0; k < 12; k++) {
        bad[k] = ok;
    }
    bad[n++].x1_zero = 128;
    bad[n++].y_zero = -129;
    bad[n++].left_shift = 31;
    bad[n++].left_shift = -1;
    bad[n++].x1_mult = -1;
    bad[n++].x2_shift = 1; /* multipliers are below 1: no left shifts */
    bad[n++].y_shift = -32;
    bad[n].act_min = 10;
    bad[n++].act_max = 9;
    bad[n++].act_max = 128;
    for (int k = 0; k < n; k++) {
        EXPECT_ERR(tt_add_s8(&bad[k], 16, g_s8a, g_s8b, g_s8out), TT_ERR_ARG);
    }
    EXPECT_ERR(tt_add_s8(NULL, 16, g_s8a, g_s8b, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_s8(&ok, 0, g_s8a, g_s8b, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_s8(&ok, -3, g_s8a, g_s8b, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_s8(&ok, 16, NULL, g_s8b, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_s8(&ok, 16, g_s8a, NULL, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_s8(&ok, 16, g_s8a, g_s8b, NULL), TT_ERR_ARG);

    const tt_pool2d_params pool = {2, 5, 5, 3, 3, 2, 2, 2, 2, 1, 1};
    TT_CHECK_STATUS(tt_avgpool2d_s8(&pool, 3, -128, 127, g_s8a, g_s8out), TT_OK);
    tt_pool2d_params bad_pool = pool;
    bad_pool.out_h = 2;
    EXPECT_ERR(tt_avgpool2d_s8(&bad_pool, 3, -128, 127, g_s8a, g_s8out), TT_ERR_ARG);
    bad_pool = pool;
    bad_pool.pad_w = 2; /* more than half the kernel */
    bad_pool.out_w = 4;
    EXPECT_ERR(tt_avgpool2d_s8(&bad_pool, 3, -128, 127, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_s8(NULL, 3, -128, 127, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_s8(&pool, 128, -128, 127, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_s8(&pool, 0, 1, 0, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_s8(&pool, 0, -129, 0, g_s8a, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_s8(&pool, 0, -128, 127, NULL, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_avgpool2d_s8(&pool, 0, -128, 127, g_s8a, NULL), TT_ERR_ARG);
    /* A window of 2^23 + 1 taps could overflow the rounding. */
    const tt_pool2d_params huge = {1, 8388609, 1, 1, 1, 8388609, 1, 1, 1, 0, 0};
    EXPECT_ERR(tt_avgpool2d_s8(&huge, 0, -128, 127, g_s8a, g_s8out), TT_ERR_ARG);

    const float bad_scales[] = {0.0f, -1.0f, INFINITY, NAN, -0.0f};
    TT_CHECK_STATUS(tt_dequantize_s8_f32(8, g_s8a, 0.5f, 3, g_f32out), TT_OK);
    TT_CHECK_STATUS(tt_quantize_f32_s8(8, g_f32, 0.5f, 3, g_s8out), TT_OK);
    TT_CHECK_STATUS(tt_dequantize_grad_f32(8, g_f32, 0.5f, g_f32out), TT_OK);
    TT_CHECK_STATUS(tt_add_s8_grad_f32(8, NULL, g_f32, 0.5f, 0.25f, 0.75f, g_f32out, g_f32out2), TT_OK);
    for (size_t k = 0; k < sizeof bad_scales / sizeof bad_scales[0]; k++) {
        const float s = bad_scales[k];
        EXPECT_ERR(tt_dequantize_s8_f32(8, g_s8a, s, 3, g_f32out), TT_ERR_ARG);
        EXPECT_ERR(tt_quantize_f32_s8(8, g_f32, s, 3, g_s8out), TT_ERR_ARG);
        EXPECT_ERR(tt_dequantize_grad_f32(8, g_f32, s, g_f32out), TT_ERR_ARG);
        EXPECT_ERR(tt_add_s8_grad_f32(8, NULL, g_f32, s, 0.25f, 0.75f, g_f32out, g_f32out2), TT_ERR_ARG);
        EXPECT_ERR(tt_add_s8_grad_f32(8, NULL, g_f32, 0.5f, s, 0.75f, g_f32out, g_f32out2), TT_ERR_ARG);
        EXPECT_ERR(tt_add_s8_grad_f32(8, NULL, g_f32, 0.5f, 0.25f, s, g_f32out, g_f32out2), TT_ERR_ARG);
    }
    EXPECT_ERR(tt_dequantize_s8_f32(0, g_s8a, 0.5f, 3, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_dequantize_s8_f32(8, NULL, 0.5f, 3, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_dequantize_s8_f32(8, g_s8a, 0.5f, 3, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_dequantize_s8_f32(8, g_s8a, 0.5f, -129, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_quantize_f32_s8(-1, g_f32, 0.5f, 3, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_quantize_f32_s8(8, NULL, 0.5f, 3, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_quantize_f32_s8(8, g_f32, 0.5f, 3, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_quantize_f32_s8(8, g_f32, 0.5f, 200, g_s8out), TT_ERR_ARG);
    float with_nan[8] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, NAN};
    EXPECT_ERR(tt_quantize_f32_s8(8, with_nan, 0.5f, 0, g_s8out), TT_ERR_ARG);
    EXPECT_ERR(tt_dequantize_grad_f32(0, g_f32, 0.5f, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_dequantize_grad_f32(8, NULL, 0.5f, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_dequantize_grad_f32(8, g_f32, 0.5f, NULL), TT_ERR_ARG);
    /* ADD_F32: exact elementwise sum (the reference's f32 a + b), also in place on either input. */
    TT_CHECK_STATUS(tt_add_f32(8, g_f32, g_f32, g_f32out), TT_OK);
    for (int k = 0; k < 8; k++) {
        TT_CHECK(g_f32out[k] == g_f32[k] + g_f32[k]);
        g_f32out2[k] = 0.125f * (float)k;
    }
    TT_CHECK_STATUS(tt_add_f32(8, g_f32out2, g_f32, g_f32out2), TT_OK);
    for (int k = 0; k < 8; k++) {
        TT_CHECK(g_f32out2[k] == 0.125f * (float)k + g_f32[k]);
    }
    EXPECT_ERR(tt_add_f32(0, g_f32, g_f32, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_f32(8, NULL, g_f32, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_f32(8, g_f32, NULL, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_add_f32(8, g_f32, g_f32, NULL), TT_ERR_ARG);
    EXPECT_ERR(tt_add_s8_grad_f32(0, NULL, g_f32, 0.5f, 0.25f, 0.75f, g_f32out, g_f32out2), TT_ERR_ARG);
    EXPECT_ERR(tt_add_s8_grad_f32(8, NULL, NULL, 0.5f, 0.25f, 0.75f, g_f32out, g_f32out2), TT_ERR_ARG);

    const uint8_t *mask = (const uint8_t *)g_s8a;
    TT_CHECK_STATUS(tt_requant_grad_f32(2, 4, mask, g_f32, g_f32, g_f32out), TT_OK);
    EXPECT_ERR(tt_requant_grad_f32(0, 4, mask, g_f32, g_f32, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_requant_grad_f32(2, -4, mask, g_f32, g_f32, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_requant_grad_f32(65536, 65536, mask, g_f32, g_f32, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_requant_grad_f32(2, 4, NULL, g_f32, g_f32, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_requant_grad_f32(2, 4, mask, NULL, g_f32, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_requant_grad_f32(2, 4, mask, g_f32, NULL, g_f32out), TT_ERR_ARG);
    EXPECT_ERR(tt_requant_grad_f32(2, 4, mask, g_f32, g_f32, NULL), TT_ERR_ARG);
}

static void check_update_errors(void)
{
    /* Updates write in place: their "outputs" are copies that must stay as they were. */
    const tt_weight_shape s = {4, 3, 9};
    const int32_t idx[3] = {1, 3, 1};
    const tt_channel_select sel = {idx, 2, 0};
    int8_t w[108];
    float master[108];
    memset(w, 0x5A, sizeof w);
    memset(master, 0x5A, sizeof master);
    TT_CHECK_STATUS(tt_update_s8_round_f32(&s, &sel, w, g_f32, 0.1f, g_f32), TT_OK);
    TT_CHECK_STATUS(tt_update_s8_master_f32(&s, &sel, master, w, g_f32, 0.1f, g_f32), TT_OK);
    memset(w, 0x5A, sizeof w);
    memset(master, 0x5A, sizeof master);
    const tt_weight_shape bad_s[] = {{0, 3, 9}, {4, -3, 9}, {4, 3, 0}, {65536, 65536, 1}};
    const tt_channel_select bad_sel[] = {
        {idx, 3, 0},  /* 1 repeats */
        {idx, 2, 1},  /* input channel 3 of 3 */
        {idx, 1, -1}, /* no such axis */
        {idx, 5, 0},  /* more than out_c */
    };
    for (size_t k = 0; k < sizeof bad_s / sizeof bad_s[0]; k++) {
        TT_CHECK_STATUS(tt_update_s8_round_f32(&bad_s[k], NULL, w, g_f32, 0.1f, g_f32), TT_ERR_ARG);
        TT_CHECK_STATUS(tt_update_s8_master_f32(&bad_s[k], NULL, master, w, g_f32, 0.1f, g_f32),
                        TT_ERR_ARG);
    }
    for (size_t k = 0; k < sizeof bad_sel / sizeof bad_sel[0]; k++) {
        TT_CHECK_STATUS(tt_update_s8_round_f32(&s, &bad_sel[k], w, g_f32, 0.1f, g_f32), TT_ERR_ARG);
        TT_CHECK_STATUS(tt_update_s8_master_f32(&s, &bad_sel[k], master, w, g_f32, 0.1f, g_f32),
                        TT_ERR_ARG);
    }
    TT_CHECK_STATUS(tt_update_s8_round_f32(NULL, NULL, w, g_f32, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s8_round_f32(&s, NULL, NULL, g_f32, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s8_round_f32(&s, NULL, w, NULL, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s8_round_f32(&s, NULL, w, g_f32, 0.1f, NULL), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s8_master_f32(&s, NULL, NULL, w, g_f32, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s8_master_f32(&s, NULL, master, NULL, g_f32, 0.1f, g_f32),
                    TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s8_master_f32(&s, NULL, master, w, NULL, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s8_master_f32(&s, NULL, master, w, g_f32, 0.1f, NULL), TT_ERR_ARG);
    TT_CHECK(bytes_are((const uint8_t *)w, sizeof w, 0x5A));
    TT_CHECK(bytes_are((const uint8_t *)master, sizeof master, 0x5A));

    int32_t b[8];
    memset(b, 0x5A, sizeof b);
    memset(master, 0x5A, sizeof master);
    TT_CHECK_STATUS(tt_update_s32_f32(0, b, NULL, g_f32, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s32_f32(8, NULL, master, g_f32, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s32_f32(8, b, master, NULL, 0.1f, g_f32), TT_ERR_ARG);
    TT_CHECK_STATUS(tt_update_s32_f32(8, b, master, g_f32, 0.1f, NULL), TT_ERR_ARG);
    TT_CHECK(bytes_are((const uint8_t *)b, sizeof b, 0x5A));
    TT_CHECK(bytes_are((const uint8_t *)master, sizeof master, 0x5A));
}

/* A NaN/inf step is refused (TT_ERR_NONFINITE) and nothing is written, under every rule. */
static void check_update_nonfinite(void)
{
    const tt_weight_shape s = {2, 3, 1};
    const float qas[2] = {1.0f, 1.0f};
    const float nan = NAN, inf = INFINITY;
    float dw[6] = {0.5f, 0.25f, -1.0f, 2.0f, 1.0f, 0.0f};
    int8_t w[6];
    float master[6];
    int32_t b[2] = {7, -7};
    const float dw_bad[3] = {nan, inf, 3e38f}; /* the last one: lr * dw overflows */
    for (int k = 0; k < 3; k++) {
        dw[4] = dw_bad[k];
        memset(w, 5, sizeof w);
        memset(master, 0x42, sizeof master);
        const float lr = k == 2 ? 1e10f : 0.1f;
        TT_CHECK_STATUS(tt_update_s8_round_f32(&s, NULL, w, dw, lr, qas), TT_ERR_NONFINITE);
        TT_CHECK_STATUS(tt_update_s8_master_f32(&s, NULL, master, w, dw, lr, qas),
                        TT_ERR_NONFINITE);
        TT_CHECK(bytes_are((const uint8_t *)w, sizeof w, 5));
        TT_CHECK(bytes_are((const uint8_t *)master, sizeof master, 0x42));
        TT_CHECK_STATUS(tt_update_s32_f32(2, b, NULL, dw + 3, lr, qas), TT_ERR_NONFINITE);
        TT_CHECK_STATUS(tt_update_s32_f32(2, b, master, dw + 3, lr, qas), TT_ERR_NONFINITE);
        TT_CHECK(b[0] == 7 && b[1] == -7);
        TT_CHECK(bytes_are((const uint8_t *)master, sizeof master, 0x42));
    }
    /* A finite learning rate that is NaN: every step refused. */
    dw[4] = 1.0f;
    TT_CHECK_STATUS(tt_update_s8_round_f32(&s, NULL, w, dw, nan, qas), TT_ERR_NONFINITE);
    TT_CHECK_STATUS(tt_update_s8_round_f32(&s, NULL, w, dw, 0.1f, qas), TT_OK);
}

/* --- the prepared requantization against tt_requantize ----------------------------------------- */

static uint32_t rng_state = 0x9E3779B9u;

static uint32_t rng32(void) /* xorshift32 */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* A random int32 that is often an edge value or small. */
static int32_t rng_i32(void)
{
    static const int32_t edges[] = {0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MIN + 1,
                                    INT32_MAX - 1, 1 << 30, -(1 << 30), (1 << 30) - 1};
    const uint32_t kind = rng32() % 8u;
    if (kind == 0) {
        return edges[rng32() % (sizeof edges / sizeof edges[0])];
    }
    if (kind < 4) {
        return (int32_t)(rng32() % 2000001u) - 1000000;
    }
    return (int32_t)rng32();
}

static void check_requant_fast(void)
{
    long mismatches = 0;
    const long n = 200000;
    for (long i = 0; i < n; i++) {
        const int32_t shift = (int32_t)(rng32() % 62u) - 31;
        int32_t x = rng_i32();
        const uint32_t mk = rng32() % 4u;
        const int32_t m = mk == 0 ? rng_i32() : (int32_t)(0x40000000u | (rng32() & 0x3FFFFFFFu));
        if (shift > 0) { /* keep x * 2^shift inside int32, the contract */
            x /= (int32_t)(INT32_C(1) << shift);
        }
        const int32_t want = tt_requantize(x, m, shift);
        const int32_t got = tt_requant_ch_apply(tt_requant_ch_make(m, shift), x);
        if (got != want && mismatches++ < 3) {
            printf("     requant x %ld m %ld shift %ld: %ld, expected %ld\n", (long)x, (long)m,
                   (long)shift, (long)got, (long)want);
        }
    }
    TT_CHECK_MSG(mismatches == 0, "%ld of %ld prepared requantizations differ", mismatches, n);
}

/* --- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTOR_DIR\n", argc > 0 ? argv[0] : "test_kernels_s8");
        return 2;
    }
    printf("test_kernels_s8: %s kernels\n", tt_kernels_s8_variant());
    char path[512];
    snprintf(path, sizeof path, "%s/kernels_s8.vec", argv[1]);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (generate it with tests/c/gen_vectors_s8.py)\n", path);
        return 2;
    }
    tt_vec_case *c = xmalloc(sizeof *c);
    char err[256];
    int rc;
    while ((rc = tt_vec_read_case(f, parse_f32_bits, c, err, sizeof err)) == 1) {
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

    check_requant_fast();
    init_error_inputs();
    check_conv_errors();
    check_pw_dw_errors();
    check_elementwise_errors();
    check_update_errors();
    check_update_nonfinite();
    return tt_test_summary("test_kernels_s8");
}
