"""Quantization math shared by the compiler and the reference executor: the fixed-point arithmetic
of the int8 kernels, quantization parameters, the int8 add's parameters, QAS gradient scales and
the size of 1-bit clamp masks.

A neutral module (numpy only): the compiler computes a plan's constants with it and the reference
executor (refexec/requant.py and refexec/kernels_s8.py re-export these names) runs the plan with
the same functions, so neither side imports the other.

Bit-exact numpy models of the C primitives the int8 kernels (`refexec/kernels_s8`) are built on, in
the "double rounding" form that TFLite Micro and CMSIS-NN use by default (neither
TFLITE_SINGLE_ROUNDING nor CMSIS_NN_USE_SINGLE_ROUNDING defined):

- quantize_multiplier: TFLite `QuantizeMultiplier` (tensorflow/lite/kernels/internal/
  quantization_util.cc): real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) or 0.
- multiply_by_quantized_multiplier: TFLite `MultiplyByQuantizedMultiplier(int32_t, ...)`
  (tensorflow/lite/kernels/internal/common.cc, the #else branch) =
  `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * (1 << left_shift), m), right_shift)`
  with both gemmlowp primitives from gemmlowp fixedpoint/fixedpoint.h; CMSIS-NN `arm_nn_requantize`
  (Include/arm_nnsupportfunctions.h) computes the same values (its `doubling_high_mult_no_sat`
  differs only in the INT32_MIN * INT32_MIN case, which needs a negative multiplier).

All integer arithmetic is done in int64 numpy arrays and reproduces C's int32 results exactly,
including C's truncating division. Inputs outside the C functions' contract (an int32 overflow,
which is undefined behaviour in C) raise ValueError instead of returning a wrapped value.

Weight and activation quantization parameters follow the paper's code (mit-han-lab/tiny-training,
algorithm/quantize/quantize_helper.py) and TFLite's `ChooseQuantizationParams`
(tensorflow/lite/kernels/internal/quantization_util.h). docs/int8.md is the written specification.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
WEIGHT_QMAX = 127  # symmetric weights use [-127, 127] (TFLite's int8 spec, the paper's assert)
# The paper's get_weight_scales expands a channel's range to at least k_near_zero_tolerance = 1e-6,
# i.e. max|w| >= 5e-7, so an all-zero channel gets a small non-zero scale.
WEIGHT_ABSMAX_FLOOR = 5e-7

I64 = NDArray[np.int64]
I32 = NDArray[np.int32]
F32 = NDArray[np.float32]


# --- exact rounding helpers -----------------------------------------------------------------------

def round_half_away(x: float) -> int:
    """C's std::round of a double (TfLiteRound): halves go away from zero. Exact for every double
    (x - floor(x) is exact, so no addition of 0.5 can round the wrong way)."""
    if not math.isfinite(x):
        raise ValueError(f"cannot round {x}")
    f = math.floor(abs(x))
    r = f + 1 if abs(x) - f >= 0.5 else f
    return int(r) if x >= 0 else -int(r)


def round_half_away_array(x: ArrayLike) -> NDArray[np.float64]:
    """std::round elementwise, in float64 (exact for float32 and float64 inputs)."""
    a = np.asarray(x, dtype=np.float64)
    mag = np.abs(a)
    f = np.floor(mag)
    with np.errstate(invalid="ignore"):  # inf - inf: infinities stay infinite
        r = np.where(mag - f >= 0.5, f + 1.0, f)
    return np.copysign(r, a)


def trunc_div(a: ArrayLike, b: ArrayLike) -> I64:
    """C's integer division (truncation toward zero) on int64 arrays."""
    aa = np.asarray(a, dtype=np.int64)
    bb = np.asarray(b, dtype=np.int64)
    q = np.abs(aa) // np.abs(bb)
    return np.where((aa < 0) != (bb < 0), -q, q)


def _int32_range(a: NDArray[np.int64], what: str) -> None:
    if a.size and (a.min() < INT32_MIN or a.max() > INT32_MAX):
        raise ValueError(f"{what} overflows int32 (undefined behaviour in C)")


# --- multipliers ----------------------------------------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: (multiplier, shift) with real ~= multiplier * 2^(shift - 31).

    frexp(real) = q * 2^shift with 0.5 <= |q| < 1; multiplier = std::round(q * 2^31) (halves away
    from zero); a multiplier that rounds up to 2^31 is halved and the shift incremented; a shift
    below -31 flushes to (0, 0); real == 0 gives (0, 0). Negative reals give negative multipliers
    (as in TFLite); a shift above 30 is kept (double-rounding TFLite only saturates it in its
    single-rounding build).
    """
    r = float(real)
    if not math.isfinite(r):
        raise ValueError(f"cannot quantize the multiplier {real}")
    if r == 0.0:
        return 0, 0
    q, shift = math.frexp(r)
    q_fixed = round_half_away(q * (1 << 31))  # q * 2^31 is exact (a power-of-two scaling)
    assert abs(q_fixed) <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multipliers(reals: ArrayLike) -> tuple[I32, I32]:
    """quantize_multiplier over a 1-D array (per-channel effective scales): (multipliers,
    shifts)."""
    r = np.asarray(reals, dtype=np.float64).ravel()
    pairs = [quantize_multiplier(float(v)) for v in r]
    mult = np.array([p[0] for p in pairs], dtype=np.int64)
    shift = np.array([p[1] for p in pairs], dtype=np.int64)
    _int32_range(mult, "multiplier")
    return mult.astype(np.int32), shift.astype(np.int32)


def effective_scale(x_scale: float, w_scales: ArrayLike, y_scale: float) -> NDArray[np.float64]:
    """Per-output-channel real requantization scale x_scale * w_scale[c] / y_scale, in double (as
    the paper's custom_quantized_format.get_effective_scale and TFLite's PopulateConvolution-
    QuantizationParams). Scales are float32 quantities (as stored in a model): they are rounded
    to float32 first, then multiplied in double."""
    xs = np.float64(np.float32(x_scale))
    ws = np.asarray(w_scales, dtype=np.float32).astype(np.float64)
    ys = np.float64(np.float32(y_scale))
    out: NDArray[np.float64] = xs * ws / ys
    return out


# --- fixed-point primitives -----------------------------------------------------------------------

def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> I64:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (broadcasting), as int64.

    (a*b + nudge) / 2^31 with nudge = 2^30 if a*b >= 0 else 1 - 2^30 and C's truncating division
    (equivalently floor((a*b + 2^30) / 2^31): halves round up); INT32_MIN * INT32_MIN saturates to
    INT32_MAX."""
    aa = np.asarray(a, dtype=np.int64)
    bb = np.asarray(b, dtype=np.int64)
    _int32_range(aa, "SaturatingRoundingDoublingHighMul input a")
    _int32_range(bb, "SaturatingRoundingDoublingHighMul input b")
    ab = aa * bb  # |ab| <= 2^62: exact in int64
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    high = trunc_div(ab + nudge, 1 << 31)
    overflow = (aa == INT32_MIN) & (bb == INT32_MIN)
    return np.where(overflow, np.int64(INT32_MAX), high)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> I64:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, halves away from zero;
    exponent in [0, 31] (broadcasting)."""
    xx = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    _int32_range(xx, "RoundingDivideByPOT input")
    if e.size and (e.min() < 0 or e.max() > 31):
        raise ValueError("RoundingDivideByPOT exponent must be in [0, 31]")
    mask = (np.int64(1) << e) - 1
    remainder = xx & mask  # two's complement low bits, as in C
    threshold = (mask >> 1) + (xx < 0)
    out: I64 = (xx >> e) + (remainder > threshold)
    return out


def multiply_by_quantized_multiplier(acc: ArrayLike, multiplier: ArrayLike,
                                     shift: ArrayLike) -> I32:
    """TFLite MultiplyByQuantizedMultiplier(int32 x, multiplier, shift), double-rounding form:
    RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(shift, 0), multiplier),
    max(-shift, 0)). multiplier and shift broadcast against acc (numpy rules), e.g. per-channel
    arrays of shape (C, 1, 1) against a (C, H, W) accumulator. Returns int32.

    Raises ValueError if acc or multiplier is outside int32, shift outside [-31, 30], or the left
    shift overflows int32 (undefined behaviour in C)."""
    x = np.asarray(acc)
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"acc must be an integer array, got {x.dtype}")
    x64 = x.astype(np.int64)
    m = np.asarray(multiplier)
    s = np.asarray(shift)
    if not (np.issubdtype(m.dtype, np.integer) and np.issubdtype(s.dtype, np.integer)):
        raise ValueError("multiplier and shift must be integers")
    s64 = s.astype(np.int64)
    if s64.size and (s64.min() < -31 or s64.max() > 30):
        raise ValueError("shift must be in [-31, 30]")
    _int32_range(x64, "acc")
    left = np.maximum(s64, 0)
    right = np.maximum(-s64, 0)
    shifted = x64 << left  # |x| <= 2^31, left <= 30: no int64 overflow
    _int32_range(shifted, "x * (1 << left_shift)")
    out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), right)
    return out.astype(np.int32)


# --- quantization parameters ----------------------------------------------------------------------

def quantize_per_channel_weights(w: ArrayLike) -> tuple[NDArray[np.int8], F32]:
    """Symmetric per-output-channel int8 weights, as the paper's quantize_helper.py
    (get_weight_scales + get_quantized_weight_and_bias), in float32:

        absmax[c] = max(max|w[c]|, 5e-7);  scale[c] = absmax[c] / 127
        w_q = clip(rint(w / scale[c]), -127, 127)      (rint: halves to even, as torch.round)

    w is float32 with the output channel first (conv O x I/g x KH x KW, linear O x I).
    Returns (w_q int8, scales float32[O])."""
    wa = np.asarray(w)
    if wa.dtype != np.float32 or wa.ndim < 1 or wa.shape[0] == 0:
        raise ValueError("w must be a float32 array with output channels first, got "
                         f"{wa.dtype} {wa.shape}")
    if not np.isfinite(wa).all():
        raise ValueError("w has non-finite values")
    flat = wa.reshape(wa.shape[0], -1)
    absmax = np.abs(flat).max(axis=1) if flat.shape[1] else np.zeros(wa.shape[0], np.float32)
    absmax = np.maximum(absmax, np.float32(WEIGHT_ABSMAX_FLOOR)).astype(np.float32)
    scales = (absmax / np.float32(WEIGHT_QMAX)).astype(np.float32)
    q = np.rint(flat / scales[:, None])
    q = np.clip(q, -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8).reshape(wa.shape)
    return q, scales


def quantize_bias(b: ArrayLike, w_scales: ArrayLike, x_scale: float) -> I32:
    """int32 bias in the accumulator's scale: rint(b / (w_scale[c] * x_scale)) (the paper's
    get_quantized_weight_and_bias; computed in double, halves to even). Raises ValueError if a
    value does not fit int32."""
    ba = np.asarray(b, dtype=np.float64)
    s = np.asarray(w_scales, dtype=np.float32).astype(np.float64) * np.float64(np.float32(x_scale))
    q = np.rint(ba / s)
    if not np.isfinite(q).all() or (q.size and (q.min() < INT32_MIN or q.max() > INT32_MAX)):
        raise ValueError("quantized bias does not fit int32")
    return q.astype(np.int32)


def quantize_activation_params(rmin: float, rmax: float) -> tuple[np.float32, int]:
    """Asymmetric int8 (scale, zero_point) for the real range [rmin, rmax], as TFLite's
    ChooseQuantizationParams<int8_t>(min(rmin, 0), max(rmax, 0)) (the range is first extended to
    contain 0, so that 0 is exactly representable):

        scale = (rmax - rmin) / 255   (double; returned rounded to float32, as a model stores it)
        zero  = the zero point from (rmin, -128) or (rmax, 127), whichever has the smaller error
                term, rounded half away from zero and clamped to [-128, 127]

    A degenerate range (rmin == rmax == 0) gives (1.0, 0) where TFLite gives scale 0: an all-zero
    tensor is exact under any scale, and 1.0 keeps effective scales finite."""
    lo, hi = float(rmin), float(rmax)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"invalid range [{rmin}, {rmax}]")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if lo == hi:
        return np.float32(1.0), 0
    qmin, qmax = float(INT8_MIN), float(INT8_MAX)
    scale = (hi - lo) / (qmax - qmin)
    zp_from_min = qmin - lo / scale
    zp_from_max = qmax - hi / scale
    err_min = abs(qmin) + abs(lo / scale)
    err_max = abs(qmax) + abs(hi / scale)
    zp = zp_from_min if err_min < err_max else zp_from_max
    if zp < qmin:
        zero = INT8_MIN
    elif zp > qmax:
        zero = INT8_MAX
    else:
        zero = round_half_away(zp)
    return np.float32(scale), zero


# --- argument checks ------------------------------------------------------------------------------

def check_int(v: int, lo: int, hi: int, name: str) -> int:
    """v as an int in [lo, hi], else ValueError naming it."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {v!r}")
    if not lo <= int(v) <= hi:
        raise ValueError(f"{name} = {v} is outside [{lo}, {hi}]")
    return int(v)


def check_act_range(act_min: int, act_max: int) -> tuple[int, int]:
    """An int8 clamp range: both in [-128, 127], act_min <= act_max."""
    lo = check_int(act_min, INT8_MIN, INT8_MAX, "act_min")
    hi = check_int(act_max, INT8_MIN, INT8_MAX, "act_max")
    if lo > hi:
        raise ValueError(f"act_min {lo} > act_max {hi}")
    return lo, hi


def check_scale(v: float, name: str) -> np.float32:
    """v as a positive finite float32 scale."""
    s = np.float32(v)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"{name} must be a positive finite float32, got {v!r}")
    return s


# --- int8 add parameters --------------------------------------------------------------------------

ADD_LEFT_SHIFT = 20  # TFLite's left_shift for int8 add (15 for int16)


@dataclass(frozen=True)
class AddParams:
    """The quantized parameters of an int8 add (TFLite ArithmeticParams). Zero points are stored as
    zero points: TFLite's input1_offset / input2_offset are their negatives, output_offset is
    y_zero. Shifts are TFLite's (<= 0: right shifts)."""
    x1_zero: int
    x2_zero: int
    y_zero: int
    left_shift: int
    x1_multiplier: int
    x1_shift: int
    x2_multiplier: int
    x2_shift: int
    y_multiplier: int
    y_shift: int
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX

    def __post_init__(self) -> None:
        for name in ("x1_zero", "x2_zero", "y_zero"):
            check_int(getattr(self, name), INT8_MIN, INT8_MAX, name)
        check_int(self.left_shift, 0, 30, "left_shift")
        for name in ("x1", "x2", "y"):
            check_int(getattr(self, f"{name}_multiplier"), 0, INT32_MAX, f"{name}_multiplier")
            check_int(getattr(self, f"{name}_shift"), -31, 0, f"{name}_shift")
        check_act_range(self.act_min, self.act_max)

    @classmethod
    def from_scales(cls, s1: float, z1: int, s2: float, z2: int, sy: float, zy: int,
                    act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> AddParams:
        """As tflite-micro's CalculateOpDataAdd (tensorflow/lite/micro/kernels/add_common.cc):
        scales are float32, the arithmetic double; left_shift = 20;
        twice_max = 2 * max(s1, s2); real multipliers s1 / twice_max, s2 / twice_max and
        twice_max / (2^20 * sy), each through QuantizeMultiplierSmallerThanOneExp (which requires
        0 < real < 1)."""
        f1, f2, fy = (float(check_scale(v, n)) for v, n in ((s1, "s1"), (s2, "s2"), (sy, "sy")))
        twice_max = 2.0 * max(f1, f2)
        reals = (f1 / twice_max, f2 / twice_max, twice_max / ((1 << ADD_LEFT_SHIFT) * fy))
        qs = []
        for r in reals:
            if not 0.0 < r < 1.0:
                raise ValueError(f"add multiplier {r} is not in (0, 1) (output scale too small)")
            m, sh = quantize_multiplier(r)
            if sh > 0:
                raise ValueError(f"add multiplier {r} has a positive shift")
            qs.append((m, sh))
        return cls(int(z1), int(z2), int(zy), ADD_LEFT_SHIFT, qs[0][0], qs[0][1], qs[1][0],
                   qs[1][1], qs[2][0], qs[2][1], act_min, act_max)


# --- QAS (quantization-aware scaling of gradients) ------------------------------------------------

def qas_weight_scale(w_scales: ArrayLike) -> F32:
    """Quantization-aware scaling of weight gradients, per output channel: 1 / w_scale^2
    (sgd_scale.py divides the gradient by (effective_scale * y_scale / x_scale)^2 = w_scale^2).
    Computed in double, returned as float32."""
    w = np.asarray(w_scales, dtype=np.float32).astype(np.float64)
    if w.ndim != 1 or not (w > 0).all():
        raise ValueError("w_scales must be a 1-D array of positive scales")
    out: F32 = (1.0 / (w * w)).astype(np.float32)
    return out


def qas_bias_scale(w_scales: ArrayLike, x_scale: float) -> F32:
    """QAS of bias gradients, per output channel: 1 / (w_scale * x_scale)^2 (sgd_scale.py divides
    by (effective_scale * y_scale)^2). Computed in double, returned as float32."""
    w = np.asarray(w_scales, dtype=np.float32).astype(np.float64)
    if w.ndim != 1 or not (w > 0).all():
        raise ValueError("w_scales must be a 1-D array of positive scales")
    sb = w * np.float64(check_scale(x_scale, "x_scale"))
    out: F32 = (1.0 / (sb * sb)).astype(np.float32)
    return out


# --- clamp masks ----------------------------------------------------------------------------------

def mask_bytes(n: int) -> int:
    """Bytes of a 1-bit clamp mask over n elements (bit i % 8 of byte i // 8)."""
    return (n + 7) // 8
