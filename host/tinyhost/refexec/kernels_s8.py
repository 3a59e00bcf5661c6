"""Numpy reference of the int8 kernels: integer forward (TFLite Micro / CMSIS-NN arithmetic) and the
fp32 backward of the paper's quantized graph (mit-han-lab/tiny-training, "On-Device Training Under
256KB Memory"). docs/int8.md is the written specification; this module is its executable form.

Layouts and conventions are those of `kernels_f32` (batch 1, activations C x H x W, conv weights
O x I/groups x KH x KW, the same ConvGeom / PoolGeom). int8 tensors are np.int8, biases,
multipliers and shifts np.int32, gradients np.float32. Every function returns new arrays and never
modifies its arguments; invalid shapes, dtypes or parameters raise ValueError (the C kernels return
TT_ERR_ARG).

Forward (bit-exact to the C kernels):
- conv2d_s8 = TFLite reference_integer_ops::ConvPerChannel
  (tensorflow/lite/kernels/internal/reference/integer_ops/conv.h; groups as in that file, depthwise
  = reference_integer_ops::DepthwiseConvPerChannel in .../integer_ops/depthwise_conv.h).
- add_s8 = reference_integer_ops::AddFunc (.../integer_ops/add.h) with the parameters of
  tflite-micro's CalculateOpDataAdd (tensorflow/lite/micro/kernels/add_common.cc);
  CMSIS-NN arm_elementwise_add_s8 (Source/BasicMathFunctions/arm_elementwise_add_s8.c) is the same.
- avgpool2d_s8 rounds as reference_integer_ops::AveragePool (.../integer_ops/pooling.h) and
  CMSIS-NN arm_avgpool_s8 (Source/PoolingFunctions/arm_avgpool_s8.c).
- quantize_f32_s8 = reference_ops::AffineQuantize (.../reference/quantize.h).

Backward (fp32, the gradient with respect to the integer values carried as floats): the autograd
functions of tiny-training's algorithm/quantize/quantized_ops_diff.py (_QuantizedConv2dFunc,
_TruncateActivationRange, _QuantizedElementwiseAddFunc, _QuantizedAvgPoolFunc); the QAS gradient
scaling of algorithm/core/optimizer/sgd_scale.py.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tinyhost.ops import Opcode, UpdateRule
from tinyhost.plan import NONE, Op
from tinyhost.quant import (  # noqa: F401  (re-exported: shared with the compiler)
    ADD_LEFT_SHIFT,
    AddParams,
    qas_bias_scale,
    qas_weight_scale,
)
from tinyhost.refexec import kernels_f32 as kf
from tinyhost.refexec.kernels_f32 import (
    ConvGeom,
    PoolGeom,
    _conv_shapes,
    _pad,
    _pool_shapes,
    _windows,
    store_weight_grads,
)
from tinyhost.refexec.registry import NonFiniteStep, reference, require_finite
from tinyhost.refexec.requant import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    WEIGHT_QMAX,
    multiply_by_quantized_multiplier,
    round_half_away_array,
    trunc_div,
)

if TYPE_CHECKING:
    from tinyhost.refexec.executor import RefExecutor

S8 = NDArray[np.int8]
I32 = NDArray[np.int32]
F32 = NDArray[np.float32]
BoolA = NDArray[np.bool_]

# --- argument checks ------------------------------------------------------------------------------

def _typed(a: ArrayLike, dtype: type, shape: tuple[int, ...] | None, name: str) -> NDArray:
    out = np.asarray(a)
    if out.dtype != dtype:
        raise ValueError(f"{name} must be {np.dtype(dtype).name}, got {out.dtype}")
    if shape is not None and out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}, expected {shape}")
    return out


def _s8(a: ArrayLike, shape: tuple[int, ...] | None, name: str) -> S8:
    return _typed(a, np.int8, shape, name)


def _f32(a: ArrayLike, shape: tuple[int, ...] | None, name: str) -> F32:
    return _typed(a, np.float32, shape, name)


def _int_in(v: int, lo: int, hi: int, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {v!r}")
    if not lo <= int(v) <= hi:
        raise ValueError(f"{name} = {v} is outside [{lo}, {hi}]")
    return int(v)


def _act_range(act_min: int, act_max: int) -> tuple[int, int]:
    lo = _int_in(act_min, INT8_MIN, INT8_MAX, "act_min")
    hi = _int_in(act_max, INT8_MIN, INT8_MAX, "act_max")
    if lo > hi:
        raise ValueError(f"act_min {lo} > act_max {hi}")
    return lo, hi


def _scale(v: float | np.floating[Any], name: str) -> np.float32:
    s = np.float32(v)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"{name} must be a positive finite float32, got {v!r}")
    return s


def _channels(channels: ArrayLike | None, n: int) -> NDArray[np.intp] | None:
    if channels is None:
        return None
    c = np.asarray(channels)
    if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"channels must be a 1-D integer array, got {c.dtype} {c.shape}")
    if c.size and (c.min() < 0 or c.max() >= n):
        raise ValueError(f"channels must be in [0, {n})")
    if np.unique(c).size != c.size:
        raise ValueError("channels must not repeat")
    return c.astype(np.intp)


# --- conv2d ---------------------------------------------------------------------------------------

def _im2col_i64(g: ConvGeom, xs: NDArray[np.int64]) -> NDArray[np.int64]:
    """(G, I/G*KH*KW, OH*OW) windows of xs (already x - x_zero) padded with 0."""
    win = _windows(_pad(xs, g, 0), g)  # (C, OH, OW, KH, KW)
    cg = g.in_c // g.groups
    cols = win.reshape(g.groups, cg, g.out_h, g.out_w, g.k_h, g.k_w).transpose(0, 1, 4, 5, 2, 3)
    return cols.reshape(g.groups, cg * g.k_h * g.k_w, g.out_h * g.out_w)


def conv2d_acc_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None,
                  x_zero: int) -> NDArray[np.int64]:
    """The int32 accumulator of conv2d_s8 (as int64 values): bias[o] + sum w * (x - x_zero) over
    the group's inputs and the window; out-of-image taps contribute 0 (TFLite skips them, which is
    padding x with x_zero). Raises ValueError if a partial sum could overflow int32 in C."""
    xa = _s8(x, g.x_shape, "x")
    wa = _s8(w, g.w_shape, "w")
    xz = _int_in(x_zero, INT8_MIN, INT8_MAX, "x_zero")
    xs = xa.astype(np.int64) - xz
    wg = wa.astype(np.int64).reshape(g.groups, g.out_c // g.groups, -1)
    acc = np.matmul(wg, _im2col_i64(g, xs)).reshape(g.y_shape)
    # C accumulates in int32: every partial sum must fit, bounded here by the sum of |terms|.
    bound = np.matmul(np.abs(wg), np.abs(_im2col_i64(g, xs))).reshape(g.y_shape)
    if bias is not None:
        ba = _typed(bias, np.int32, (g.out_c,), "bias").astype(np.int64)
        acc = acc + ba[:, None, None]
        bound = bound + np.abs(ba)[:, None, None]
    if bound.size and bound.max() > INT32_MAX:
        raise ValueError("the conv accumulator can overflow int32")
    return acc


def _requant_out(acc: NDArray[np.int64], mult: ArrayLike, shift: ArrayLike, c: int, y_zero: int,
                 act_min: int, act_max: int, return_mask: bool) -> S8 | tuple[S8, BoolA]:
    m = _typed(mult, np.int32, (c,), "mult")
    s = _typed(shift, np.int32, (c,), "shift")
    yz = _int_in(y_zero, INT8_MIN, INT8_MAX, "y_zero")
    lo, hi = _act_range(act_min, act_max)
    bshape = (c,) + (1,) * (acc.ndim - 1)
    pre = (multiply_by_quantized_multiplier(acc, m.reshape(bshape), s.reshape(bshape))
           .astype(np.int64) + yz)
    y = np.clip(pre, lo, hi).astype(np.int8)
    if return_mask:
        return y, (pre >= lo) & (pre <= hi)
    return y


@overload
def conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None, mult: ArrayLike,
              shift: ArrayLike, x_zero: int, y_zero: int, act_min: int = ...,
              act_max: int = ..., return_mask: Literal[False] = ...) -> S8: ...
@overload
def conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None, mult: ArrayLike,
              shift: ArrayLike, x_zero: int, y_zero: int, act_min: int = ...,
              act_max: int = ..., *, return_mask: Literal[True]) -> tuple[S8, BoolA]: ...
@overload
def conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None, mult: ArrayLike,
              shift: ArrayLike, x_zero: int, y_zero: int, act_min: int = ...,
              act_max: int = ..., return_mask: bool = ...) -> S8 | tuple[S8, BoolA]: ...
def conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None, mult: ArrayLike,
              shift: ArrayLike, x_zero: int, y_zero: int, act_min: int = INT8_MIN,
              act_max: int = INT8_MAX, return_mask: bool = False) -> S8 | tuple[S8, BoolA]:
    """Per-channel int8 convolution (TFLite ConvPerChannel):

        acc[o] = bias[o] + sum w * (x - x_zero)            (int32; padding contributes 0)
        y[o]   = clamp(MultiplyByQuantizedMultiplier(acc[o], mult[o], shift[o]) + y_zero,
                       act_min, act_max)

    With return_mask, also returns the bool mask act_min <= pre-clamp value <= act_max (the
    paper's _TruncateActivationRange mask, TinyEngine's 1-bit mask) for requant_grad."""
    acc = conv2d_acc_s8(g, x, w, bias, x_zero)
    return _requant_out(acc, mult, shift, g.out_c, y_zero, act_min, act_max, return_mask)


@overload
def depthwise_conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None,
                        mult: ArrayLike, shift: ArrayLike, x_zero: int, y_zero: int,
                        act_min: int = ..., act_max: int = ...,
                        return_mask: Literal[False] = ...) -> S8: ...
@overload
def depthwise_conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None,
                        mult: ArrayLike, shift: ArrayLike, x_zero: int, y_zero: int,
                        act_min: int = ..., act_max: int = ..., *,
                        return_mask: Literal[True]) -> tuple[S8, BoolA]: ...
@overload
def depthwise_conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None,
                        mult: ArrayLike, shift: ArrayLike, x_zero: int, y_zero: int,
                        act_min: int = ..., act_max: int = ...,
                        return_mask: bool = ...) -> S8 | tuple[S8, BoolA]: ...
def depthwise_conv2d_s8(g: ConvGeom, x: ArrayLike, w: ArrayLike, bias: ArrayLike | None,
                        mult: ArrayLike, shift: ArrayLike, x_zero: int, y_zero: int,
                        act_min: int = INT8_MIN, act_max: int = INT8_MAX,
                        return_mask: bool = False) -> S8 | tuple[S8, BoolA]:
    """conv2d_s8 for a depthwise geometry (groups == in_c; out_c = in_c * channel multiplier,
    output channel o reads input channel o // multiplier, as TFLite DepthwiseConvPerChannel)."""
    if g.groups != g.in_c:
        raise ValueError(f"depthwise needs groups == in_c, got groups {g.groups}, in_c {g.in_c}")
    return conv2d_s8(g, x, w, bias, mult, shift, x_zero, y_zero, act_min, act_max, return_mask)


@dataclass(frozen=True)
class ConvS8Quant:
    """One int8 conv's requantization: per-channel (mult, shift), zero points, clamp."""
    mult: ArrayLike
    shift: ArrayLike
    x_zero: int
    y_zero: int
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


def pw_dw_conv2d_s8(g_pw: ConvGeom, g_dw: ConvGeom, x: ArrayLike, pw_w: ArrayLike,
                    pw_bias: ArrayLike | None, pw_q: ConvS8Quant, dw_w: ArrayLike,
                    dw_bias: ArrayLike | None, dw_q: ConvS8Quant) -> S8:
    """A groups-1 conv (the 1x1 expand conv of an inverted bottleneck) and the depthwise conv
    reading its output, fused (PW_DW_CONV2D_S8): by definition exactly depthwise_conv2d_s8 of
    conv2d_s8, the intermediate requantized and clamped by pw_q and read with its zero point.
    The C kernel never holds the whole intermediate; this reference does."""
    if g_pw.groups != 1:
        raise ValueError(f"the first conv must have groups 1, got {g_pw.groups}")
    if g_dw.x_shape != g_pw.y_shape:
        raise ValueError(f"the depthwise input {g_dw.x_shape} is not the conv output "
                         f"{g_pw.y_shape}")
    if dw_q.x_zero != pw_q.y_zero:
        raise ValueError(f"the depthwise x_zero {dw_q.x_zero} is not the conv's y_zero "
                         f"{pw_q.y_zero}")
    mid = conv2d_s8(g_pw, x, pw_w, pw_bias, pw_q.mult, pw_q.shift, pw_q.x_zero, pw_q.y_zero,
                    pw_q.act_min, pw_q.act_max)
    return depthwise_conv2d_s8(g_dw, mid, dw_w, dw_bias, dw_q.mult, dw_q.shift, dw_q.x_zero,
                               dw_q.y_zero, dw_q.act_min, dw_q.act_max)


# --- add ------------------------------------------------------------------------------------------

def add_s8(x1: ArrayLike, x2: ArrayLike, params: AddParams,
           return_mask: bool = False) -> S8 | tuple[S8, BoolA]:
    """Elementwise int8 add, TFLite reference_integer_ops::AddFunc (same shapes, no broadcast):

        v_i = ((x_i - z_i) * 2^left_shift) scaled by MultiplyByQuantizedMultiplierSmallerThanOneExp
              (x_i_multiplier, x_i_shift)
        y   = clamp(MultiplyByQuantizedMultiplierSmallerThanOneExp(v_1 + v_2, y_multiplier,
                    y_shift) + y_zero, act_min, act_max)

    With return_mask, also returns act_min <= pre-clamp value <= act_max (see conv2d_s8)."""
    a = _s8(x1, None, "x1")
    b = _s8(x2, a.shape, "x2")
    p = params
    sh1 = (a.astype(np.int64) - p.x1_zero) << p.left_shift
    sh2 = (b.astype(np.int64) - p.x2_zero) << p.left_shift
    # MultiplyByQuantizedMultiplierSmallerThanOneExp(x, m, s) == MultiplyByQuantizedMultiplier for
    # s <= 0 (no left shift): RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m), -s).
    v1 = multiply_by_quantized_multiplier(sh1, p.x1_multiplier, p.x1_shift).astype(np.int64)
    v2 = multiply_by_quantized_multiplier(sh2, p.x2_multiplier, p.x2_shift).astype(np.int64)
    pre = (multiply_by_quantized_multiplier(v1 + v2, p.y_multiplier, p.y_shift).astype(np.int64)
           + p.y_zero)
    y = np.clip(pre, p.act_min, p.act_max).astype(np.int8)
    if return_mask:
        return y, (pre >= p.act_min) & (pre <= p.act_max)
    return y


# --- avgpool, (de)quantize ------------------------------------------------------------------------

def avgpool2d_s8(g: PoolGeom, x: ArrayLike, act_min: int = INT8_MIN, act_max: int = INT8_MAX,
                 x_zero: int = 0) -> S8:
    """int8 average pool, input and output sharing one quantization (no requantization):

        s = sum of the window of x padded with x_zero;  n = k_h * k_w
        y = clamp(s > 0 ? (s + n/2) / n : (s - n/2) / n, act_min, act_max)   (C integer division)

    i.e. the mean rounded half away from zero, as TFLite reference_integer_ops::AveragePool and
    CMSIS-NN arm_avgpool_s8. The divisor counts the padding (padding is the real value 0 = x_zero),
    matching kernels_f32.avgpool2d / PyTorch count_include_pad=True; TFLite instead divides by the
    number of in-image taps. Without padding the two agree."""
    xa = _s8(x, g.x_shape, "x")
    xz = _int_in(x_zero, INT8_MIN, INT8_MAX, "x_zero")
    lo, hi = _act_range(act_min, act_max)
    s = _windows(_pad(xa.astype(np.int64), g, xz), g).sum(axis=(3, 4))
    n = g.k_h * g.k_w
    if n > (1 << 23):
        raise ValueError("pool window too large for an int32 sum")
    q = np.where(s > 0, trunc_div(s + n // 2, n), trunc_div(s - n // 2, n))
    return np.ascontiguousarray(np.clip(q, lo, hi).astype(np.int8))


def dequantize_s8(x: ArrayLike, scale: float | np.floating[Any], zero: int) -> F32:
    """(x - zero) * scale in float32 (x - zero is exact, so this is the correctly rounded product;
    TFLite's Dequantize computes the same value in double and rounds once)."""
    xa = _s8(x, None, "x")
    s = _scale(scale, "scale")
    z = _int_in(zero, INT8_MIN, INT8_MAX, "zero")
    return ((xa.astype(np.float32) - np.float32(z)) * s).astype(np.float32)


def quantize_f32_s8(x: ArrayLike, scale: float, zero: int) -> S8:
    """TFLite AffineQuantize: clamp(std::round(x / scale) + zero, -128, 127), the division in
    float32 and std::round rounding halves AWAY from zero (not to even). NaN raises ValueError;
    infinities saturate."""
    xa = _f32(x, None, "x")
    if np.isnan(xa).any():
        raise ValueError("x has NaN")
    s = _scale(scale, "scale")
    z = _int_in(zero, INT8_MIN, INT8_MAX, "zero")
    with np.errstate(over="ignore"):
        q = (xa / s).astype(np.float32)
    r = np.clip(round_half_away_array(q), -2.0**40, 2.0**40) + z
    return np.clip(r, INT8_MIN, INT8_MAX).astype(np.int8)


# --- backward -------------------------------------------------------------------------------------

def saturation_mask(y: ArrayLike, act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> BoolA:
    """The gradient mask recoverable from the clamped output alone: act_min < y < act_max (strict).
    It differs from the paper's mask (act_min <= pre-clamp <= act_max) only where the pre-clamp
    value equals a bound exactly; see docs/int8.md."""
    ya = _s8(y, None, "y")
    lo, hi = _act_range(act_min, act_max)
    return (ya > lo) & (ya < hi)


def requant_grad(y: ArrayLike, dy: ArrayLike, eff_scale: ArrayLike, act_min: int = INT8_MIN,
                 act_max: int = INT8_MAX, mask: ArrayLike | None = None) -> F32:
    """Gradient through clamp and requantization, to the int32 accumulator (quantized_ops_diff.py:
    _TruncateActivationRange then _QuantizedConv2dFunc's grad_output * effective_scale):

        dz[c] = dy[c] * mask[c] * eff_scale[c]       (float32; channel axis 0)

    mask defaults to saturation_mask(y, act_min, act_max) (strict: a value at a bound gets no
    gradient); pass the mask returned by conv2d_s8(..., return_mask=True) to get the paper's rule
    exactly. eff_scale is the float32 x_scale * w_scale[c] / y_scale (rounding and the zero point
    are straight-through). Also the gradient of an add's clamp with eff_scale = 1."""
    ya = _s8(y, None, "y")
    dya = _f32(dy, ya.shape, "dy")
    if ya.ndim < 1:
        raise ValueError("y needs a channel axis")
    e = np.asarray(eff_scale)
    if e.ndim == 0:
        e = np.full(ya.shape[0], e)
    e = e.astype(np.float32) if e.dtype != np.float32 else e
    if e.shape != (ya.shape[0],):
        raise ValueError(f"eff_scale has shape {e.shape}, expected ({ya.shape[0]},)")
    if mask is None:
        m = saturation_mask(ya, act_min, act_max)
    else:
        m = _typed(mask, np.bool_, ya.shape, "mask")
    masked = np.where(m, dya, np.float32(0))
    return (masked * e.reshape((-1,) + (1,) * (ya.ndim - 1))).astype(np.float32)


def conv2d_s8_grad_input(g: ConvGeom, dz: ArrayLike, w: ArrayLike) -> F32:
    """dx = the transposed convolution of dz with the int8 weights as floats (torch.nn.grad.
    conv2d_input in _QuantizedConv2dFunc.backward); groups and depthwise as the forward.

    Summed in float32 in the C kernel's order, so that device and reference train bit-identical
    parameters (a one-ulp difference in a gradient can flip an int8 weight's rounding, and the
    integer forward then amplifies it): for each dx element, its group's output channels in
    ascending order, and for each channel the output positions in ascending order (that is, the
    kernel taps (ky, kx) in descending order)."""
    wa = _s8(w, g.w_shape, "w").astype(np.float32)
    dza = _f32(dz, g.y_shape, "dz")
    groups, cout_g, cin_g = g.groups, g.out_c // g.groups, g.in_c // g.groups
    wg = wa.reshape(groups, cout_g, cin_g, g.k_h, g.k_w)
    dzg = dza.reshape(groups, cout_g, 1, g.out_h, g.out_w)
    dxp = np.zeros((groups, cin_g, g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w), np.float32)
    rows = slice(None), slice(None)
    for j in range(cout_g):
        for ky in reversed(range(g.k_h)):
            ys = slice(ky, ky + g.stride_h * (g.out_h - 1) + 1, g.stride_h)
            for kx in reversed(range(g.k_w)):
                xs = slice(kx, kx + g.stride_w * (g.out_w - 1) + 1, g.stride_w)
                dxp[(*rows, ys, xs)] += dzg[:, j] * wg[:, j, :, ky, kx][:, :, None, None]
    dx = dxp[:, :, g.pad_h : g.pad_h + g.in_h, g.pad_w : g.pad_w + g.in_w]
    return np.ascontiguousarray(dx.reshape(g.x_shape))


def conv2d_s8_grad_weight(g: ConvGeom, dz: ArrayLike, x: ArrayLike, x_zero: int,
                          channels: ArrayLike | None = None, axis: int = 0) -> tuple[F32, F32]:
    """(dw, db) of the int8 conv with respect to the integer weights and bias:

        dw[o, i, ky, kx] = sum_{oy, ox} dz[o, oy, ox] * (x - x_zero)_padded-with-0[window]
        db[o]            = sum_{oy, ox} dz[o, oy, ox]                 (always every channel)

    Each sum runs in float32 over the output positions in ascending order, as the C kernel's (see
    conv2d_s8_grad_input for why the order is part of the specification).

    channels selects the weight rows to return, in the given order (the paper's sparse update):
    axis 0 selects output channels (dw has shape (len(channels), I/G, KH, KW)); axis 1 selects
    input channels of a groups == 1 conv (dw (O, len(channels), KH, KW)), as the paper's training
    code masks them (partial_backward.py: keep_mask over in_channels)."""
    dza = _f32(dz, g.y_shape, "dz")
    xa = _s8(x, g.x_shape, "x")
    xz = _int_in(x_zero, INT8_MIN, INT8_MAX, "x_zero")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (output channels) or 1 (input channels), got {axis}")
    if axis == 1 and g.groups != 1:
        raise ValueError("input-channel selection (axis 1) needs groups == 1")
    xs = xa.astype(np.float32) - np.float32(xz)  # exact: small integers
    win = kf._windows(kf._pad(xs, g, 0.0), g)  # (C, OH, OW, KH, KW); padding contributes +-0
    groups, cout_g, cin_g = g.groups, g.out_c // g.groups, g.in_c // g.groups
    wing = win.reshape(groups, 1, cin_g, g.out_h, g.out_w, g.k_h, g.k_w)
    dzg = dza.reshape(groups, cout_g, g.out_h, g.out_w)
    dw = np.zeros((groups, cout_g, cin_g, g.k_h, g.k_w), np.float32)
    db = np.zeros(g.out_c, np.float32)
    for oy in range(g.out_h):
        for ox in range(g.out_w):
            dw += dzg[:, :, oy, ox][:, :, None, None, None] * wing[:, :, :, oy, ox]
            db += dza[:, oy, ox]
    dw = dw.reshape(g.w_shape)
    sel = _channels(channels, g.w_shape[axis])
    if sel is not None:
        dw = np.ascontiguousarray(np.take(dw, sel, axis=axis))
    return dw, db


def conv2d_s8_sgd(g: ConvGeom, dz: ArrayLike, x: ArrayLike, x_zero: int,
                  channels: ArrayLike | None, w: ArrayLike, qas: ArrayLike,
                  master: ArrayLike | None,
                  lr: float | np.floating[Any]) -> tuple[S8, F32 | None, F32]:
    """The trained rows' QAS update straight from dz (CONV2D_S8_SGD_F32): exactly
    conv2d_s8_grad_weight's rows `channels` (all when None) then update_s8_round (master None) or
    update_s8_master of those rows. w, master and qas hold just the trained rows. Returns the new
    rows, the new master (or None) and db."""
    dw, db = conv2d_s8_grad_weight(g, dz, x, x_zero, channels)
    rows = _s8(w, dw.shape, "w")
    try:
        if master is None:
            return update_s8_round(rows, dw, lr, qas), None, db
        new_master, new_w = update_s8_master(master, dw, lr, qas)
        return new_w, new_master, db
    except NonFiniteStep as e:
        q = _f32(qas, (dw.shape[0],), "qas")
        ma = None if master is None else _f32(master, dw.shape, "master").copy()
        new_w = rows.copy()
        for j in range(dw.shape[0]):  # as the C op: a row at a time, up to the refused one
            one = slice(j, j + 1)
            try:
                if ma is None:
                    new_w[one] = update_s8_round(rows[one], dw[one], lr, q[one])
                else:
                    ma[one], new_w[one] = update_s8_master(ma[one], dw[one], lr, q[one])
            except NonFiniteStep:
                break
        raise NonFiniteStep(str(e), partial=(new_w, ma)) from None


def add_s8_grad(dy: ArrayLike, s1: float, s2: float, sy: float) -> tuple[F32, F32]:
    """(dx1, dx2) = (dy * (s1 / sy), dy * (s2 / sy)) (_QuantizedElementwiseAddFunc.backward), each
    factor computed in double and rounded to float32 once. Apply the add's clamp mask first
    (requant_grad with eff_scale = 1)."""
    dya = _f32(dy, None, "dy")
    f1, f2, fy = (float(_scale(v, n)) for v, n in ((s1, "s1"), (s2, "s2"), (sy, "sy")))
    return ((dya * np.float32(f1 / fy)).astype(np.float32),
            (dya * np.float32(f2 / fy)).astype(np.float32))


def avgpool2d_s8_grad(g: PoolGeom, dy: ArrayLike) -> F32:
    """dx: dy / (k_h * k_w) added to every input of its window (rounding is straight-through), the
    same as kernels_f32.avgpool2d_grad and _QuantizedAvgPoolFunc.backward."""
    return kf.avgpool2d_grad(g, _f32(dy, g.y_shape, "dy"))


def dequantize_s8_grad(dy: ArrayLike, scale: float | np.floating[Any]) -> F32:
    """dx = dy * scale (the gradient of (x - zero) * scale with respect to x)."""
    dya = _f32(dy, None, "dy")
    return (dya * _scale(scale, "scale")).astype(np.float32)


# --- QAS and the int8 updates ---------------------------------------------------------------------

def _step(dw: F32, lr: float | np.floating[Any], q: F32) -> F32:
    """u = lr * (dw * q[o]) in float32, q (one per row of dw's axis 0) broadcast over the rest."""
    qb = q.reshape((-1,) + (1,) * (dw.ndim - 1))
    return (np.float32(lr) * (dw * qb)).astype(np.float32)


def _update_geometry(w_shape: tuple[int, ...], dw: ArrayLike, qas: ArrayLike,
                     channels: ArrayLike | None,
                     axis: int) -> tuple[F32, F32, NDArray[np.intp] | None]:
    if len(w_shape) < 2 and axis == 1:
        raise ValueError("axis 1 needs a weight with an input-channel axis")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, got {axis}")
    sel = _channels(channels, w_shape[axis])
    want = list(w_shape)
    if sel is not None:
        want[axis] = sel.size
    dwa = _f32(dw, tuple(want), "dw")
    q = _f32(qas, (w_shape[0],), "qas")
    # qas is per output channel: with output-channel selection, the selected entries.
    qsel = q[sel] if (sel is not None and axis == 0) else q
    return dwa, qsel, sel


def update_s8_round(w: ArrayLike, dw: ArrayLike, lr: float | np.floating[Any], qas: ArrayLike,
                    channels: ArrayLike | None = None, axis: int = 0) -> S8:
    """Update rule A, int8 weights only: for the selected rows (all if channels is None),

        w <- clip(rint(w - lr * (dw * qas[o])), -127, 127)     (float32; rint halves to even)

    dw covers only the selected rows (the shape conv2d_s8_grad_weight returns); qas is per output
    channel (length O). Returns the whole updated weight tensor."""
    wa = _s8(w, None, "w")
    dwa, q, sel = _update_geometry(wa.shape, dw, qas, channels, axis)
    cur = wa if sel is None else np.take(wa, sel, axis=axis)
    v = (cur.astype(np.float32) - _step(dwa, lr, q)).astype(np.float32)
    require_finite(v, "the int8 weight step w - u")
    new = np.clip(np.rint(v), -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)
    out = wa.copy()
    if sel is None:
        out[...] = new
    else:
        idx: list[slice | NDArray[np.intp]] = [slice(None)] * wa.ndim
        idx[axis] = sel
        out[tuple(idx)] = new
    return out


def master_from_s8(w: ArrayLike, channels: ArrayLike | None = None, axis: int = 0) -> F32:
    """The initial float32 master copy of the selected weight rows (exact: integers)."""
    wa = _s8(w, None, "w")
    sel = _channels(channels, wa.shape[axis])
    rows = wa if sel is None else np.take(wa, sel, axis=axis)
    return rows.astype(np.float32)


def update_s8_master(master: ArrayLike, dw: ArrayLike, lr: float | np.floating[Any], qas: ArrayLike,
                     channels: ArrayLike | None = None, axis: int = 0) -> tuple[F32, S8]:
    """Update rule B, a float32 master copy of the updated rows (the paper keeps its weights as
    float parameters and rounds them in the forward):

        master <- master - lr * (dw * qas[o])          (float32; neither clipped nor rounded)
        w_rows  = clip(rint(master), -127, 127)         (int8, written into w for the forward)

    master and dw have the shape of the selected rows (master_from_s8 makes the first master);
    qas is per output channel of the whole weight (length O): with output-channel selection
    (axis 0) its entries qas[channels] are used. Returns (master, w_rows)."""
    ma = _f32(master, None, "master")
    dwa = _f32(dw, ma.shape, "dw")
    q = _f32(qas, None, "qas")
    if q.ndim != 1:
        raise ValueError(f"qas must be 1-D, got {q.shape}")
    if axis not in (0, 1) or (axis == 1 and ma.ndim < 2):
        raise ValueError(f"axis must be 0, or 1 for a weight with an input-channel axis; "
                         f"got {axis}")
    if channels is not None:
        n = q.size if axis == 0 else int(np.max(channels)) + 1 if np.size(channels) else 0
        sel = _channels(channels, n)
        assert sel is not None
        if sel.size != ma.shape[axis]:
            raise ValueError(f"master has {ma.shape[axis]} rows on axis {axis} for {sel.size} "
                             "channels")
        if axis == 0:
            q = q[sel]
    if q.shape != (ma.shape[0],):
        raise ValueError(f"qas has {q.size} output channels, master {ma.shape[0]}")
    new_master = (ma - _step(dwa, lr, q)).astype(np.float32)
    require_finite(new_master, "the f32 master weight step")
    rows = np.clip(np.rint(new_master), -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)
    return new_master, rows


def update_s32(bias: ArrayLike, db: ArrayLike, lr: float | np.floating[Any],
               qas: ArrayLike) -> tuple[NDArray, I32]:
    """Bias update, u = lr * (db * qas) in float32 (qas = qas_bias_scale). Returns (state, b_s32):

    - int32 bias (no master): b <- sat32(b - rint(u)); state is the new int32 bias. The step is
      rounded, not the sum, so the integer arithmetic is exact for any int32 bias.
    - float32 master (the paper keeps the bias as a float parameter and adds it unrounded in its
      simulated forward): master <- master - u; b_s32 = sat32(rint(master)); state is the master.
    """
    b = np.asarray(bias)
    if b.ndim != 1:
        raise ValueError(f"bias must be 1-D, got {b.shape}")
    dba = _f32(db, b.shape, "db")
    q = _f32(qas, b.shape, "qas")
    u = (np.float32(lr) * (dba * q)).astype(np.float32)
    if b.dtype == np.int32:
        require_finite(u, "the int32 bias step")
        step = np.clip(np.rint(u.astype(np.float64)), -2.0**40, 2.0**40).astype(np.int64)
        new = np.clip(b.astype(np.int64) - step, INT32_MIN, INT32_MAX).astype(np.int32)
        return new, new.copy()
    if b.dtype == np.float32:
        master = (b - u).astype(np.float32)
        require_finite(master, "the f32 master bias step")
        s32 = np.clip(np.rint(master.astype(np.float64)), INT32_MIN, INT32_MAX).astype(np.int32)
        return master, s32
    raise ValueError(f"bias must be int32 or a float32 master, got {b.dtype}")


# --- the ops: plan operands -> these kernels (refexec/registry.py) -------------------------------

def pack_mask(mask: ArrayLike) -> S8:
    """A bool mask as the plan stores it: bit i % 8 of byte i // 8 (LSB first), as int8 bytes."""
    return np.packbits(np.asarray(mask, bool).reshape(-1), bitorder="little").view(np.int8)


def unpack_mask(packed: ArrayLike, n: int) -> BoolA:
    return np.unpackbits(np.asarray(packed).view(np.uint8), count=n,
                         bitorder="little").astype(bool)


def _conv_weight(ex: RefExecutor, op: Op, shape: tuple[int, ...], n_rows: int) -> NDArray:
    """The weights a conv uses: w, with rows `channels` replaced by the trainable w_rows."""
    wv = ex.view(op.inputs[1], shape)
    w_rows, channels = op.inputs[-2], op.inputs[-1]
    if w_rows == NONE:
        return wv
    eff = wv.copy()
    eff[ex.view(channels, (n_rows,))] = ex.view(w_rows, (n_rows,) + shape[1:])
    return eff


def _store_s8_outputs(ex: RefExecutor, op: Op, y: NDArray, mask: NDArray) -> None:
    ex.view(op.outputs[0])[...] = y.reshape(-1)
    if op.outputs[1] != NONE:
        ex.view(op.outputs[1])[...] = pack_mask(mask)


@reference(Opcode.CONV2D_S8, Opcode.DEPTHWISE_CONV2D_S8)
def _run_conv2d_s8(ex: RefExecutor, op: Op) -> None:
    g = ConvGeom.from_op(op)
    xs, ws, _ = _conv_shapes(g)
    x, _, b, mult, shift, _, _ = op.inputs
    kernel = depthwise_conv2d_s8 if op.opcode == Opcode.DEPTHWISE_CONV2D_S8 else conv2d_s8
    y, mask = kernel(g, ex.view(x, xs), _conv_weight(ex, op, ws, op.attr("n_rows")),
                     ex.opt(b, (g.out_c,)), ex.view(mult), ex.view(shift), op.attr("x_zero"),
                     op.attr("y_zero"), op.attr("act_min"), op.attr("act_max"), return_mask=True)
    _store_s8_outputs(ex, op, y, mask)


@reference(Opcode.PW_DW_CONV2D_S8)
def _run_pw_dw_conv2d_s8(ex: RefExecutor, op: Op) -> None:
    g_pw, g_dw = ConvGeom.from_op(op, "pw_"), ConvGeom.from_op(op, "dw_")
    x, pw_w, pw_b, pw_m, pw_s, dw_w, dw_b, dw_m, dw_s = op.inputs
    xs, pw_ws, _ = _conv_shapes(g_pw)
    _, dw_ws, _ = _conv_shapes(g_dw)
    mid_zero = op.attr("mid_zero")
    y = pw_dw_conv2d_s8(
        g_pw, g_dw, ex.view(x, xs),
        ex.view(pw_w, pw_ws), ex.opt(pw_b, (g_pw.out_c,)),
        ConvS8Quant(ex.view(pw_m), ex.view(pw_s), op.attr("x_zero"), mid_zero,
                    op.attr("mid_act_min"), op.attr("mid_act_max")),
        ex.view(dw_w, dw_ws), ex.opt(dw_b, (g_dw.out_c,)),
        ConvS8Quant(ex.view(dw_m), ex.view(dw_s), mid_zero, op.attr("y_zero"),
                    op.attr("act_min"), op.attr("act_max")))
    ex.view(op.outputs[0])[...] = y.reshape(-1)


# AddParams fields named as the ADD_S8 attributes they come from (the rest share their names).
_ADD_ATTR = {"x1_multiplier": "x1_mult", "x2_multiplier": "x2_mult", "y_multiplier": "y_mult"}


@reference(Opcode.CONV_DW_PW_S8)
def _run_conv_dw_pw_s8(ex: RefExecutor, op: Op) -> None:
    """The three convs one after the other (the kernel streams rows; the numbers are these)."""
    x, c_w, c_b, c_m, c_s, d_w, d_b, d_m, d_s, p_w, p_b, p_m, p_s = op.inputs
    stages = ((ConvGeom.from_op(op, "c_"), c_w, c_b, c_m, c_s, "x_zero", "c_zero", "c_act_"),
              (ConvGeom.from_op(op, "d_"), d_w, d_b, d_m, d_s, "c_zero", "d_zero", "d_act_"),
              (ConvGeom.from_op(op, "p_"), p_w, p_b, p_m, p_s, "d_zero", "y_zero", "act_"))
    value = ex.view(x, stages[0][0].x_shape)
    for g, w, b, m, s, xz, yz, act in stages:
        value = conv2d_s8(g, value, ex.view(w, g.w_shape), ex.opt(b, (g.out_c,)), ex.view(m),
                       ex.view(s), op.attr(xz), op.attr(yz), op.attr(act + "min"),
                       op.attr(act + "max"))
    ex.view(op.outputs[0])[...] = value.reshape(-1)


@reference(Opcode.ADD_S8)
def _run_add_s8(ex: RefExecutor, op: Op) -> None:
    size = op.attr("size")
    p = AddParams(**{f.name: op.attr(_ADD_ATTR.get(f.name, f.name)) for f in fields(AddParams)})
    y, mask = add_s8(ex.view(op.inputs[0], (size,)), ex.view(op.inputs[1], (size,)), p,
                     return_mask=True)
    _store_s8_outputs(ex, op, y, mask)


@reference(Opcode.AVGPOOL2D_S8)
def _run_avgpool2d_s8(ex: RefExecutor, op: Op) -> None:
    g = PoolGeom.from_op(op)
    xs, _ = _pool_shapes(g)
    y = avgpool2d_s8(g, ex.view(op.inputs[0], xs), op.attr("act_min"), op.attr("act_max"),
                     op.attr("x_zero"))
    ex.view(op.outputs[0])[...] = y.reshape(-1)


def _scalar_f32(ex: RefExecutor, index: int) -> np.float32:
    return np.float32(ex.view(index)[0])


@reference(Opcode.DEQUANTIZE_S8_F32)
def _run_dequantize(ex: RefExecutor, op: Op) -> None:
    x, scale = op.inputs
    ex.view(op.outputs[0])[...] = dequantize_s8(ex.view(x, (op.attr("size"),)),
                                                _scalar_f32(ex, scale), op.attr("zero"))


@reference(Opcode.REQUANT_GRAD_F32)
def _run_requant_grad(ex: RefExecutor, op: Op) -> None:
    channels, plane = op.attr("channels"), op.attr("plane")
    mask, dy, eff = op.inputs
    bits = unpack_mask(ex.view(mask), channels * plane).reshape(channels, plane)
    dz = requant_grad(np.zeros((channels, plane), np.int8), ex.view(dy, (channels, plane)),
                      ex.view(eff, (channels,)), mask=bits)
    ex.view(op.outputs[0])[...] = dz.reshape(-1)


@reference(Opcode.CONV2D_S8_GRAD_INPUT_F32, Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32)
def _run_conv2d_s8_grad_input(ex: RefExecutor, op: Op) -> None:
    """Both ops compute the same dx (the depthwise one a channel at a time, so dx may be dz: the
    whole dx is computed before it is stored)."""
    g = ConvGeom.from_op(op)
    _, ws, ys = _conv_shapes(g)
    dx = conv2d_s8_grad_input(g, ex.view(op.inputs[0], ys),
                              _conv_weight(ex, op, ws, op.attr("n_rows")))
    ex.view(op.outputs[0])[...] = dx.reshape(-1)


@reference(Opcode.CONV2D_S8_GRAD_WEIGHT_F32)
def _run_conv2d_s8_grad_weight(ex: RefExecutor, op: Op) -> None:
    g = ConvGeom.from_op(op)
    x_zero, n_channels = op.attr("x_zero"), op.attr("n_channels")
    xs, _, ys = _conv_shapes(g)
    dz, x, channels = op.inputs
    xv = ex.view(x, xs) if x != NONE else np.full(xs, x_zero, np.int8)
    sel = None if channels == NONE else ex.view(channels, (n_channels,))
    dw, db = conv2d_s8_grad_weight(g, ex.view(dz, ys), xv, x_zero, sel)
    store_weight_grads(ex, op, dw, db)


def op_lr(ex: RefExecutor, lr_scale: int) -> np.float32:
    """An update op's learning rate: the step's times its lr_scale (f32[1], the parameter group's
    scale relative to the head) in float32, or the step's without one (C: tt_opnd_lr)."""
    if lr_scale == NONE:
        return np.float32(ex.lr)
    return np.float32(np.float32(ex.lr) * ex.view(lr_scale)[0])


@reference(Opcode.CONV2D_S8_SGD_F32)
def _run_conv2d_s8_sgd(ex: RefExecutor, op: Op) -> None:
    g = ConvGeom.from_op(op)
    n = op.attr("n_channels")
    xs, ws, ys = _conv_shapes(g)
    dz, x, channels, w, qas, master, lr_scale = op.inputs
    rows = (n,) + ws[1:]
    try:
        new_w, new_master, db = conv2d_s8_sgd(
            g, ex.view(dz, ys), ex.view(x, xs), op.attr("x_zero"), ex.opt(channels, (n,)),
            ex.view(w, rows), ex.view(qas, (n,)), ex.opt(master, rows), op_lr(ex, lr_scale))
    except NonFiniteStep as e:  # the rows before the refused one were applied, as in C
        assert e.partial is not None
        part_w, part_m = e.partial
        ex.view(w)[...] = part_w.reshape(-1)
        if part_m is not None:
            ex.view(master)[...] = part_m.reshape(-1)
        raise
    ex.view(w)[...] = new_w.reshape(-1)
    if new_master is not None:
        ex.view(master)[...] = new_master.reshape(-1)
    if op.outputs[2] != NONE:
        ex.view(op.outputs[2])[...] = db


@reference(Opcode.ADD_S8_GRAD_F32)
def _run_add_s8_grad(ex: RefExecutor, op: Op) -> None:
    size = op.attr("size")
    mask, dy, scales = op.inputs
    s1, s2, sy = (float(v) for v in ex.view(scales, (3,)))
    dz = requant_grad(np.zeros(size, np.int8), ex.view(dy, (size,)), np.float32(1),
                      mask=unpack_mask(ex.view(mask), size))
    for out, value in zip(op.outputs, add_s8_grad(dz, s1, s2, sy), strict=True):
        if out != NONE:
            ex.view(out)[...] = value


@reference(Opcode.DEQUANTIZE_GRAD_F32)
def _run_dequantize_grad(ex: RefExecutor, op: Op) -> None:
    dy, scale = op.inputs
    ex.view(op.outputs[0])[...] = dequantize_s8_grad(ex.view(dy), _scalar_f32(ex, scale))


@reference(Opcode.UPDATE_S8_F32)
def _run_update_s8(ex: RefExecutor, op: Op) -> None:
    rows, row_size, rule = op.attr("rows"), op.attr("row_size"), op.attr("rule")
    w, dw, qas, master, lr_scale = op.inputs
    wv, dwv = ex.view(w, (rows, row_size)), ex.view(dw, (rows, row_size))
    lr = op_lr(ex, lr_scale)
    if rule == UpdateRule.MASTER:
        mv = ex.view(master, (rows, row_size))
        new_master, new_w = update_s8_master(mv, dwv, lr, ex.view(qas))
        mv[...] = new_master
        wv[...] = new_w
    elif rule == UpdateRule.ROUND:
        wv[...] = update_s8_round(wv, dwv, lr, ex.view(qas))
    else:
        raise ValueError(f"unknown int8 update rule {rule}")


@reference(Opcode.UPDATE_S32_F32)
def _run_update_s32(ex: RefExecutor, op: Op) -> None:
    rule = op.attr("rule")
    b, db, qas, master, lr_scale = op.inputs
    bv = ex.view(b)
    lr = op_lr(ex, lr_scale)
    if rule == UpdateRule.MASTER:
        mv = ex.view(master)
        new_master, new_b = update_s32(mv, ex.view(db), lr, ex.view(qas))
        mv[...] = new_master
        bv[...] = new_b
    elif rule == UpdateRule.ROUND:
        bv[...] = update_s32(bv, ex.view(db), lr, ex.view(qas))[1]
    else:
        raise ValueError(f"unknown int32 update rule {rule}")
