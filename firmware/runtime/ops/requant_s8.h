/*
 * Fixed-point requantization primitives of the int8 kernels (private to runtime/ops), the
 * "double rounding" arithmetic TFLite Micro and CMSIS-NN use by default (docs/int8.md section 2;
 * numpy models in host/tinyhost/refexec/requant.py):
 *
 *   tt_srdhm(a, b)           gemmlowp SaturatingRoundingDoublingHighMul: (a*b + 2^30) >> 31
 *                            (halves up), INT32_MIN * INT32_MIN -> INT32_MAX
 *   tt_rdbpot(x, e)          gemmlowp RoundingDivideByPOT: x / 2^e, halves away from zero
 *   tt_requantize(x, m, s)   TFLite MultiplyByQuantizedMultiplier (CMSIS-NN arm_nn_requantize):
 *                            tt_rdbpot(tt_srdhm(x * 2^max(s, 0), m), max(-s, 0))
 *
 * Everything is defined behaviour for every int32 input: right shifts of negative values are
 * arithmetic (GCC, Clang and every Arm compiler), and a left shift that would overflow int32
 * (outside the contract: the reference raises) saturates instead.
 */
#ifndef TT_REQUANT_S8_H
#define TT_REQUANT_S8_H

#include <stdint.h>

static inline int32_t tt_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    /* |a*b| <= 2^62, so the nudged product fits int64; >> 31 is floor division, which equals
     * gemmlowp's truncating division of (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) (docs/int8.md). */
    const int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

/* e in [0, 31]. */
static inline int32_t tt_rdbpot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << e) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> e) + (remainder > threshold);
}

/* x * 2^left (left in [0, 31)), saturated to int32 (the in-contract case never saturates). */
static inline int32_t tt_shl_sat(int32_t x, int32_t left)
{
    const int64_t v = (int64_t)x * ((int64_t)1 << left); /* |v| <= 2^61 */
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

/* shift in [-31, 30]. */
static inline int32_t tt_requantize(int32_t x, int32_t mult, int32_t shift)
{
    if (shift > 0) {
        return tt_srdhm(tt_shl_sat(x, shift), mult);
    }
    return tt_rdbpot(tt_srdhm(x, mult), -shift);
}

/* clamp(v + y_zero, lo, hi) for any int32 v, with lo_rel = lo - y_zero and hi_rel = hi - y_zero
 * (lo <= hi and y_zero in [-128, 127]): clamping v first is the same and cannot overflow. */
static inline int8_t tt_s8_out(int32_t v, int32_t y_zero, int32_t lo_rel, int32_t hi_rel)
{
    v = v < lo_rel ? lo_rel : v > hi_rel ? hi_rel : v;
    return (int8_t)(v + y_zero);
}

/* tt_s8_out that also records the clamp mask bit i (mask NULL: none): set where v lies in
 * [lo_rel, hi_rel], i.e. where the clamp did not change the value (tt_s8_requant). */
static inline int8_t tt_s8_out_mask(int32_t v, int32_t y_zero, int32_t lo_rel, int32_t hi_rel,
                                    uint8_t *mask, int32_t i)
{
    if (mask != NULL) {
        const uint8_t bit = (uint8_t)(1u << (i & 7));
        mask[i >> 3] = (v >= lo_rel && v <= hi_rel) ? (uint8_t)(mask[i >> 3] | bit)
                                                    : (uint8_t)(mask[i >> 3] & ~bit);
    }
    return tt_s8_out(v, y_zero, lo_rel, hi_rel);
}

/*
 * tt_requantize for one output channel, prepared once and applied to many accumulators. For a
 * right shift e = -shift >= 1 (every realistic conv: M < 1/2) it takes one 32x32+64-bit
 * multiply-accumulate (SMLAL) and one shift instead of the two rounding steps:
 *
 *   tt_rdbpot(r, e) = floor((r + 2^(e-1) - [r < 0]) / 2^e)                  (checked case by case)
 *   r = tt_srdhm(x, m) = floor((P + 2^30) / 2^31), P = x * m
 *   => result = floor((P + 2^30 + c * 2^31) / 2^(31+e)),  c = 2^(e-1) - [r < 0]
 *             = high_word(P + 2^30 + c * 2^31) >> (e - 1)
 *
 * [r < 0] may be replaced by [x ^ m < 0] (the sign of P): they differ only when r = 0, where
 * both give 0. x = m = INT32_MIN (where tt_srdhm saturates to 2^31 - 1 instead of 2^31) needs no
 * special case: both give 2^(31-e). |P + 2^30 + c * 2^31| < 2^63. Shifts >= 0 use tt_requantize.
 * tests/c/test_kernels_s8.c compares the two on the reference's vectors and random values.
 */
typedef struct {
    int32_t mult;
    int32_t shift;
    int32_t half; /* 2^(-shift-1) when shift < 0 */
} tt_requant_ch;

/* The rare shift >= 0 case, kept out of line so that the inner loops stay small. */
#if defined(__GNUC__)
#define TT_REQUANT_OUTLINED static __attribute__((noinline, unused))
#else
#define TT_REQUANT_OUTLINED static inline
#endif
TT_REQUANT_OUTLINED int32_t tt_requantize_outlined(int32_t x, int32_t mult, int32_t shift)
{
    return tt_requantize(x, mult, shift);
}

static inline tt_requant_ch tt_requant_ch_make(int32_t mult, int32_t shift)
{
    tt_requant_ch c = {mult, shift, shift < 0 ? (int32_t)(UINT32_C(1) << (-shift - 1)) : 0};
    return c;
}

static inline int32_t tt_requant_ch_apply(tt_requant_ch c, int32_t x)
{
    if (c.shift >= 0) {
        return tt_requantize_outlined(x, c.mult, c.shift);
    }
    const int32_t k = c.half - (int32_t)((uint32_t)(x ^ c.mult) >> 31); /* c above, >= 0 */
    const int64_t add = (int64_t)((uint64_t)(uint32_t)(k >> 1) << 32 |
                                  (UINT32_C(0x40000000) | (uint32_t)k << 31));
    const int64_t v = (int64_t)x * c.mult + add;
    return (int32_t)(v >> 32) >> (-c.shift - 1);
}

#endif
