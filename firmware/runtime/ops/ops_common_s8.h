/*
 * Shared by the int8 kernels (private to runtime/ops): parameter checks, and the DSP-extension
 * helpers of the fast path.
 *
 * TT_S8_DSP is 1 when the compiler targets an Arm core with the DSP extension (__ARM_FEATURE_DSP:
 * Cortex-M4, M7, M33, M55, ...) and TT_S8_PORTABLE is not defined; the conv kernels then use
 * SXTB16 (sign-extend two bytes to two halfwords) and SMLAD (two 16x16 products added to a 32-bit
 * accumulator) as CMSIS-NN's s8 kernels do. SMLAD's accumulation wraps modulo 2^32, as the
 * portable code's unsigned accumulation does, so both give the exact sum whenever it fits int32.
 */
#ifndef TT_OPS_COMMON_S8_H
#define TT_OPS_COMMON_S8_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ops_common.h"
#include "tt/tt_kernels_s8.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TT_S8_PORTABLE)
#define TT_S8_DSP 1
#else
#define TT_S8_DSP 0
#endif

/* For helpers whose constant arguments should specialise them (loops over k_w unrolled). */
#if defined(__GNUC__)
#define TT_S8_INLINE inline __attribute__((always_inline))
#else
#define TT_S8_INLINE inline
#endif

static inline int tt_in_s8(int32_t v)
{
    return v >= INT8_MIN && v <= INT8_MAX;
}

static inline int tt_act_range_ok(int32_t lo, int32_t hi)
{
    return tt_in_s8(lo) && tt_in_s8(hi) && lo <= hi;
}

/* A scale as the reference accepts it: positive and finite. */
static inline int tt_scale_ok(float s)
{
    return s > 0.0f && s <= FLT_MAX; /* false for NaN */
}

/* Zero points, clamp and (n channels of) shifts; mult and shift must not be NULL. */
static inline int tt_s8_requant_ok(const tt_s8_requant *q, int32_t n)
{
    if (q == NULL || q->mult == NULL || q->shift == NULL || !tt_in_s8(q->x_zero) ||
        !tt_in_s8(q->y_zero) || !tt_act_range_ok(q->act_min, q->act_max)) {
        return 0;
    }
    for (int32_t i = 0; i < n; i++) {
        if (q->shift[i] < -31 || q->shift[i] > 30) {
            return 0;
        }
    }
    return 1;
}

/* Scratch of at least `need` bytes, 4-byte aligned (need 0: ctx may be NULL). */
static inline int tt_scratch_ok(const tt_scratch *ctx, int32_t need)
{
    if (need == 0) {
        return 1;
    }
    return ctx != NULL && ctx->buf != NULL && ctx->size >= need && ((uintptr_t)ctx->buf & 3u) == 0;
}

/* sel is NULL or count distinct indices in [0, n). Quadratic, but count is a layer's channel
 * count and the kernels that take it do far more work per channel. */
static inline int tt_select_ok(const tt_channel_select *sel, int32_t n)
{
    if (sel == NULL || sel->index == NULL) {
        return 1;
    }
    if (sel->count < 0 || sel->count > n) {
        return 0;
    }
    for (int32_t i = 0; i < sel->count; i++) {
        if (sel->index[i] < 0 || sel->index[i] >= n) {
            return 0;
        }
        for (int32_t j = 0; j < i; j++) {
            if (sel->index[j] == sel->index[i]) {
                return 0;
            }
        }
    }
    return 1;
}

/* sub is NULL, or count rows (non-NULL when count > 0) for strictly increasing channels in
 * [0, out_c). */
static inline int tt_row_subst_ok(const tt_row_subst *sub, int32_t out_c)
{
    if (sub == NULL || sub->count == 0) {
        return 1;
    }
    if (sub->count < 0 || sub->count > out_c || sub->rows == NULL || sub->channels == NULL) {
        return 0;
    }
    for (int32_t j = 0; j < sub->count; j++) {
        if (sub->channels[j] < (j == 0 ? 0 : sub->channels[j - 1] + 1) ||
            sub->channels[j] >= out_c) {
            return 0;
        }
    }
    return 1;
}

/* Walks a weight's rows in increasing output channel order, taking the substituted ones from
 * sub: tt_row_cursor_at(&c, o) for o = o0, o0 + 1, ... (any start, then increasing). */
typedef struct {
    const int8_t *w;  /* row 0 of the weight */
    int32_t row_size; /* entries per row */
    const tt_row_subst *sub;
    int32_t next; /* the first substitution whose channel is not below the last asked */
} tt_row_cursor;

static inline tt_row_cursor tt_row_cursor_make(const int8_t *w, int32_t row_size,
                                               const tt_row_subst *sub, int32_t first_channel)
{
    tt_row_cursor c = {w, row_size, sub, 0};
    if (sub != NULL) {
        while (c.next < sub->count && sub->channels[c.next] < first_channel) {
            c.next++;
        }
    }
    return c;
}

static inline const int8_t *tt_row_cursor_at(tt_row_cursor *c, int32_t o)
{
    const tt_row_subst *s = c->sub;
    if (s != NULL && c->next < s->count && s->channels[c->next] == o) {
        return s->rows + (c->next++) * c->row_size;
    }
    return c->w + o * c->row_size;
}

/* Of a conv's outputs along one axis, those o in [0, n_out) whose kernel tap k lands inside the
 * input (0 <= o * stride - pad + k < n_in): returns their count (0: none), the first in *lo. */
static inline int32_t tt_valid_outputs(int32_t n_out, int32_t n_in, int32_t stride, int32_t pad,
                                       int32_t k, int32_t *lo)
{
    const int32_t first = pad - k <= 0 ? 0 : (pad - k + stride - 1) / stride;
    const int32_t top = n_in - 1 + pad - k; /* o * stride <= top */
    if (top < 0) {
        return 0;
    }
    const int32_t last = top / stride < n_out - 1 ? top / stride : n_out - 1;
    *lo = first;
    return last >= first ? last - first + 1 : 0;
}

/* A weight shape whose element count fits int32. */
static inline int tt_weight_shape_ok(const tt_weight_shape *s)
{
    return s != NULL && tt_numel_fits_i32(s->out_c, s->in_c, s->k, 1);
}

/* sel is NULL, or selects on axis 0 (rows among n0) or axis 1 (among n1; only when allow_axis1). */
static inline int tt_select_axis_ok(const tt_channel_select *sel, int32_t n0, int32_t n1,
                                    int allow_axis1)
{
    if (sel == NULL) {
        return 1;
    }
    if (sel->axis == 0) {
        return tt_select_ok(sel, n0);
    }
    return sel->axis == 1 && allow_axis1 && tt_select_ok(sel, n1);
}

/* The selection's axis (0 when sel is NULL). */
static inline int32_t tt_select_axis(const tt_channel_select *sel)
{
    return sel == NULL ? 0 : sel->axis;
}

/* Number of selected rows on an axis of n (all when sel or its index is NULL). */
static inline int32_t tt_select_count(const tt_channel_select *sel, int32_t n)
{
    return (sel == NULL || sel->index == NULL) ? n : sel->count;
}

/* The j-th selected row of an axis. */
static inline int32_t tt_select_at(const tt_channel_select *sel, int32_t j)
{
    return (sel == NULL || sel->index == NULL) ? j : sel->index[j];
}

/* acc + a * b rounded twice, as `acc + a * b` with no contraction (-ffp-contract=off): on an FPU
 * with single-precision VMLA (Cortex-M4F, M7, M33: FPv4/FPv5) one instruction, which is not fused
 * (the Arm ARM's pseudocode: FPMul rounded, then FPAdd), so every build rounds alike. The fp32
 * backward kernels' inner loops use it; TT_S8_PORTABLE builds take the C expression. */
#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__) && !defined(TT_S8_PORTABLE)
#define TT_F32_VMLA 1
static TT_S8_INLINE float tt_f32_mla(float acc, float a, float b)
{
    __asm__("vmla.f32 %0, %1, %2" : "+t"(acc) : "t"(a), "t"(b));
    return acc;
}
#else
#define TT_F32_VMLA 0
static TT_S8_INLINE float tt_f32_mla(float acc, float a, float b)
{
    return acc + a * b;
}
#endif

/* CONV2D_S8 and DEPTHWISE_CONV2D_S8 share their operands and attributes (ops/conv2d_s8.c): one
 * plan check, given the kernel's scratch size query, and one unpacking of the kernel arguments. */
#include "tt/tt_op.h"
typedef struct {
    tt_conv2d_params p;
    tt_s8_requant q;
    tt_row_subst sub;
    tt_scratch scratch;
} tt_conv_s8_args;
tt_status tt_op_conv_s8_check(const tt_op_ctx *c, int32_t (*buffer_size)(const tt_conv2d_params *),
                              tt_error *err);
tt_conv_s8_args tt_op_conv_s8_args(const tt_op_ctx *c);

#if TT_S8_DSP
#include <arm_acle.h>

/* Unaligned 32-bit loads (LDR allows them on v7-M/v8-M; memcpy says so to the compiler). */
static inline uint32_t tt_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* (b0, b2) and (b1, b3) of a word's bytes, sign-extended to halfwords. */
static inline uint32_t tt_sxtb16(uint32_t x)
{
    return (uint32_t)__sxtb16((int32_t)x);
}

static inline uint32_t tt_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* acc + x.lo * y.lo + x.hi * y.hi (signed halfwords). */
static inline int32_t tt_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return __smlad((int32_t)x, (int32_t)y, acc);
}
#endif

/* One output channel of a 1x1 conv at four consecutive positions of CHW planes hw apart:
 * acc[j] += sum_{i < n} w[i] * x[i * hw + j] (modulo 2^32; the caller folds x_zero into the initial
 * sums as -x_zero * sum w). The DSP build reads four positions of a channel with one LDR and four
 * weights with another, splits both with SXTB16 (positions (0, 2) and (1, 3); weights (0, 2) and
 * (1, 3)) and multiplies the halfwords it needs with SMLA<x><y>: no column to gather. x may be
 * unaligned. */
static TT_S8_INLINE void tt_pw_acc4(const int8_t *x, int32_t hw, const int8_t *w, int32_t n,
                                    uint32_t *acc)
{
    uint32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t i = 0;
#if TT_S8_DSP
#define TT_PW_CH(v_, wv_, B_, T_)                                                                 \
    do {                                                                                          \
        const uint32_t v = (v_), ev = tt_sxtb16(v), od = tt_sxtb16_ror8(v);                       \
        a0 = (uint32_t)B_((int32_t)ev, (int32_t)(wv_), (int32_t)a0);                              \
        a1 = (uint32_t)B_((int32_t)od, (int32_t)(wv_), (int32_t)a1);                              \
        a2 = (uint32_t)T_((int32_t)ev, (int32_t)(wv_), (int32_t)a2);                              \
        a3 = (uint32_t)T_((int32_t)od, (int32_t)(wv_), (int32_t)a3);                              \
    } while (0)
    /* Four input channels per step, written out in assembly: compilers spill the four sums
     * here (13 live registers), which costs a third more instructions. The weights' halves:
     * channel 0 (w0, w2).bottom, 1 (w1, w3).bottom, 2 (w0, w2).top, 3 (w1, w3).top. */
    for (; i + 4 <= n; i += 4) {
        uint32_t wq, we, v, ev;
        __asm__("ldr %[wq], [%[w]]\n\t"
                "sxtb16 %[we], %[wq]\n\t"
                "sxtb16 %[wq], %[wq], ror #8\n\t"
                "ldr %[v], [%[x]]\n\t"
                "add %[x], %[x], %[hw]\n\t"
                "sxtb16 %[ev], %[v]\n\t"
                "sxtb16 %[v], %[v], ror #8\n\t"
                "smlabb %[a0], %[ev], %[we], %[a0]\n\t"
                "smlatb %[a2], %[ev], %[we], %[a2]\n\t"
                "smlabb %[a1], %[v], %[we], %[a1]\n\t"
                "smlatb %[a3], %[v], %[we], %[a3]\n\t"
                "ldr %[v], [%[x]]\n\t"
                "add %[x], %[x], %[hw]\n\t"
                "sxtb16 %[ev], %[v]\n\t"
                "sxtb16 %[v], %[v], ror #8\n\t"
                "smlabb %[a0], %[ev], %[wq], %[a0]\n\t"
                "smlatb %[a2], %[ev], %[wq], %[a2]\n\t"
                "smlabb %[a1], %[v], %[wq], %[a1]\n\t"
                "smlatb %[a3], %[v], %[wq], %[a3]\n\t"
                "ldr %[v], [%[x]]\n\t"
                "add %[x], %[x], %[hw]\n\t"
                "sxtb16 %[ev], %[v]\n\t"
                "sxtb16 %[v], %[v], ror #8\n\t"
                "smlabt %[a0], %[ev], %[we], %[a0]\n\t"
                "smlatt %[a2], %[ev], %[we], %[a2]\n\t"
                "smlabt %[a1], %[v], %[we], %[a1]\n\t"
                "smlatt %[a3], %[v], %[we], %[a3]\n\t"
                "ldr %[v], [%[x]]\n\t"
                "add %[x], %[x], %[hw]\n\t"
                "sxtb16 %[ev], %[v]\n\t"
                "sxtb16 %[v], %[v], ror #8\n\t"
                "smlabt %[a0], %[ev], %[wq], %[a0]\n\t"
                "smlatt %[a2], %[ev], %[wq], %[a2]\n\t"
                "smlabt %[a1], %[v], %[wq], %[a1]\n\t"
                "smlatt %[a3], %[v], %[wq], %[a3]"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x),
                  [wq] "=&r"(wq), [we] "=&r"(we), [v] "=&r"(v), [ev] "=&r"(ev)
                : [w] "r"(w + i), [hw] "r"(hw)
                : "memory");
    }
    for (; i < n; i++, x += hw) {
        TT_PW_CH(tt_ld32(x), (uint32_t)(int32_t)w[i], __smlabb, __smlatb);
    }
#undef TT_PW_CH
#else
    for (; i < n; i++, x += hw) {
        const int32_t wv = w[i];
        a0 += (uint32_t)(wv * x[0]);
        a1 += (uint32_t)(wv * x[1]);
        a2 += (uint32_t)(wv * x[2]);
        a3 += (uint32_t)(wv * x[3]);
    }
#endif
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* The x_zero correction of a 1x1 conv's channel: -x_zero * sum w (modulo 2^32). */
static inline uint32_t tt_pw_zero_term(const int8_t *w, int32_t n, int32_t x_zero)
{
    uint32_t s = 0;
    for (int32_t i = 0; i < n; i++) {
        s += (uint32_t)(int32_t)w[i];
    }
    return (uint32_t)(-x_zero) * s;
}

#endif
