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

/* The int8 output of a requantized accumulator: clamp(tt_requantize(acc) + y_zero, lo, hi), with
 * lo <= hi in [-128, 127] and y_zero in [-128, 127]. The requantized value is first limited to
 * [-256, 255], which cannot change the clamped sum but keeps the addition inside int32. */
static inline int8_t tt_requant_out(int32_t acc, int32_t mult, int32_t shift, int32_t y_zero,
                                    int32_t lo, int32_t hi)
{
    int32_t v = tt_requantize(acc, mult, shift);
    v = v > 255 ? 255 : v < -256 ? -256 : v;
    v += y_zero;
    return (int8_t)(v > hi ? hi : v < lo ? lo : v);
}

#endif
