"""The int8 reference kernels (tinyhost.refexec.kernels_s8, .requant) against independent
references.

- Requantization primitives: brute-force Python-integer implementations written here from the C
  sources (gemmlowp fixedpoint.h, CMSIS-NN arm_nnsupportfunctions.h, TFLite quantization_util.cc),
  exact equality; the forward kernels bit-exactly against those primitives applied per element.
- Forward kernels: against float64 PyTorch on the same integers with the real effective scale,
  within 1 LSB everywhere and exactly equal in >= 99% of the outputs.
- Backward: against torch autograd of the paper's own autograd functions
  (mit-han-lab/tiny-training algorithm/quantize/quantized_ops_diff.py), whose few lines of logic
  are copied below, in float64; tolerance as tests/host/test_kernels_f32.py (rtol 1e-5, atol
  1e-5 * max|ref|).
- QAS and the weight updates: against sgd_scale.py's gradient scaling followed by torch SGD.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from closeness import RTOL, assert_close
from tinyhost.refexec import kernels_s8 as k
from tinyhost.refexec import requant as rq
from tinyhost.refexec.kernels_f32 import ConvGeom, PoolGeom

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1




def t64(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def assert_lsb(got: np.ndarray, ref: np.ndarray, what: str, min_exact: float = 0.99) -> None:
    """Within 1 LSB everywhere and exactly equal in >= min_exact of the elements."""
    assert got.dtype == np.int8 and got.shape == ref.shape, what
    diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
    assert diff.max(initial=0) <= 1, f"{what}: max diff {diff.max()}"
    exact = float((diff == 0).mean()) if diff.size else 1.0
    assert exact >= min_exact, f"{what}: only {exact:.4f} exact"


# --- brute-force integer references (Python ints) -------------------------------------------------

def bf_srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, literally: truncating C division."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    t = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    q = abs(t) // (1 << 31)
    return q if t >= 0 else -q


def bf_srdhm_cmsis(a: int, b: int) -> int:
    """CMSIS-NN arm_nn_doubling_high_mult_no_sat: (a*b + 2^30) >> 31 (arithmetic shift = floor)."""
    return (a * b + (1 << 30)) >> 31


def bf_round_half_away(fr: Fraction) -> int:
    mag = abs(fr)
    r = math.floor(mag + Fraction(1, 2))
    return r if fr >= 0 else -r


def bf_rdbpot(x: int, e: int) -> int:
    """RoundingDivideByPOT: the exact quotient rounded to nearest, halves away from zero."""
    return bf_round_half_away(Fraction(x, 1 << e))


def bf_mbqm(x: int, m: int, s: int) -> int:
    left, right = max(s, 0), max(-s, 0)
    return bf_rdbpot(bf_srdhm(x * (1 << left), m), right)


def bf_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier with exact rationals: frexp, std::round, the 2^31 and shift
    cases."""
    if real == 0:
        return 0, 0
    fr = Fraction(real)
    mag = abs(fr)
    e = 0
    while mag / Fraction(2) ** e >= 1:
        e += 1
    while mag / Fraction(2) ** e < Fraction(1, 2):
        e -= 1
    q = bf_round_half_away(mag / Fraction(2) ** e * (1 << 31))
    if q == 1 << 31:
        q, e = q // 2, e + 1
    if e < -31:
        return 0, 0
    return (q if fr > 0 else -q), e


def rand_i32(rng: np.random.Generator, n: int) -> list[int]:
    edge = [0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MIN + 1, INT32_MAX - 1, 1 << 30,
            -(1 << 30)]
    wide = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True).tolist()
    small = rng.integers(-70000, 70000, n).tolist()
    return edge + wide + small


# --- requantization primitives --------------------------------------------------------------------

KNOWN_MULTIPLIERS = [
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.75, (1610612736, 0)),
    (0.25, (1 << 30, -1)),
    (-0.5, (-(1 << 30), 0)),
    (3.0, (1610612736, 2)),
    (2.0**-32, (1 << 30, -31)),
    (2.0**-33, (0, 0)),                       # shift < -31 flushes to zero
    (0.0, (0, 0)),
    (1 - 2.0**-33, (1 << 30, 1)),             # rounds to 2^31: halved, shift + 1
    # q*2^31 = 2^31 - 0.5 - 2^-22: floor(x+0.5) gets this wrong
    (1 - 2.0**-32 - 2.0**-53, (INT32_MAX, 0)),
    (0.0030517578125 * 1.1, None),
]


@pytest.mark.parametrize("real,expected", KNOWN_MULTIPLIERS)
def test_quantize_multiplier_known(real: float, expected: tuple[int, int] | None) -> None:
    got = rq.quantize_multiplier(real)
    assert got == bf_quantize_multiplier(real)
    if expected is not None:
        assert got == expected


@pytest.mark.parametrize("seed", [0, 1])
def test_quantize_multiplier_random(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reals = np.exp2(rng.uniform(-40, 12, 3000)) * rng.choice([-1.0, 1.0], 3000)
    # values at or next to a rounding half of the 31-bit significand
    halves = [(2 * n + 1) / 2.0**32 for n in rng.integers(2**29, 2**30, 200)]
    for r in [*reals.tolist(), *halves, *(np.nextafter(h, 0) for h in halves),
              *(np.nextafter(h, 1) for h in halves)]:
        m, s = rq.quantize_multiplier(float(r))
        assert (m, s) == bf_quantize_multiplier(float(r)), r
        if m:
            assert (1 << 30) <= abs(m) < (1 << 31) and -31 <= s
            assert abs(m * 2.0 ** (s - 31) - r) <= abs(r) * 2.0**-30


def test_quantize_multipliers_vector() -> None:
    reals = [0.5, 0.001, 1.5, 0.0]
    m, s = rq.quantize_multipliers(reals)
    assert m.dtype == np.int32 and s.dtype == np.int32
    got = list(zip(m.tolist(), s.tolist(), strict=True))
    assert got == [rq.quantize_multiplier(r) for r in reals]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_srdhm_and_rdbpot_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rand_i32(rng, 400)
    b = rand_i32(rng, 400)[::-1]
    pairs = list(zip(a, b, strict=True)) + [(INT32_MIN, INT32_MIN), (INT32_MIN, INT32_MAX),
                                            (INT32_MAX, INT32_MAX), (-3, 1 << 30), (3, 1 << 30)]
    av = np.array([p[0] for p in pairs], np.int64)
    bv = np.array([p[1] for p in pairs], np.int64)
    got = rq.saturating_rounding_doubling_high_mul(av, bv)
    for (x, y), g in zip(pairs, got.tolist(), strict=True):
        assert g == bf_srdhm(x, y), (x, y)
        if not x == y == INT32_MIN:  # CMSIS-NN's no_sat form agrees everywhere else
            assert g == bf_srdhm_cmsis(x, y), (x, y)
    assert rq.saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    xs = np.array(a, np.int64)
    for e in range(32):
        got = rq.rounding_divide_by_pot(xs, e)
        assert got.tolist() == [bf_rdbpot(x, e) for x in a], e


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiply_by_quantized_multiplier_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    xs = rand_i32(rng, 300)
    for _ in range(40):
        m = int(rng.choice([rng.integers(1 << 30, 1 << 31), rng.integers(INT32_MIN, INT32_MAX),
                            INT32_MIN, INT32_MAX, 0, 1 << 30]))
        s = int(rng.integers(-31, 31))
        # keep x * 2^left in int32 (beyond it C overflows: the reference raises)
        lim = INT32_MAX >> max(s, 0)
        x = [v for v in xs if -lim - 1 <= v <= lim]
        got = rq.multiply_by_quantized_multiplier(np.array(x, np.int64), m, s)
        assert got.dtype == np.int32
        assert got.tolist() == [bf_mbqm(v, m, s) for v in x], (m, s)


def test_multiply_by_quantized_multiplier_known_and_per_channel() -> None:
    # TFLite's double rounding: 5 * 0.25 = 1.25 gives 2 (SRDHM rounds 2.5 up to 3, then 3/2 -> 2).
    m, s = rq.quantize_multiplier(0.25)
    got = rq.multiply_by_quantized_multiplier(np.array([5, -5, 6, -6, 100]), m, s)
    assert got.tolist() == [2, -1, 2, -2, 25]
    # -1.5 -> -1
    assert rq.multiply_by_quantized_multiplier(np.array([-3]), 1 << 30, 0).tolist() == [-1]
    # per-channel broadcast (C, 1, 1)
    rng = np.random.default_rng(7)
    acc = rng.integers(-(1 << 20), 1 << 20, (3, 4, 5))
    mult, shift = rq.quantize_multipliers([0.001, 0.37, 2.5])
    got = rq.multiply_by_quantized_multiplier(acc, mult[:, None, None], shift[:, None, None])
    for c in range(3):
        assert got[c].ravel().tolist() == [bf_mbqm(int(v), int(mult[c]), int(shift[c]))
                                           for v in acc[c].ravel()]
    with pytest.raises(ValueError):  # x << left_shift overflows int32
        rq.multiply_by_quantized_multiplier(np.array([1 << 29]), 1 << 30, 3)
    with pytest.raises(ValueError):
        rq.multiply_by_quantized_multiplier(np.array([1 << 31]), 1 << 30, 0)


# --- quantization parameters ----------------------------------------------------------------------

@pytest.mark.parametrize("rmin,rmax,scale,zero", [
    (0.0, 1.0, 1 / 255, -128),
    (-1.0, 1.0, 2 / 255, -1),      # zero point -0.5 rounds away from zero (std::round)
    (2.0, 5.0, 5 / 255, -128),     # the range is extended to contain 0
    (-3.0, -1.0, 3 / 255, 127),
    (-0.25, 6.0, 6.25 / 255, -118),  # -128 + 10.2
    (0.0, 0.0, 1.0, 0),            # degenerate: TFLite's scale 0 replaced by 1
])
def test_quantize_activation_params(rmin: float, rmax: float, scale: float, zero: int) -> None:
    s, z = rq.quantize_activation_params(rmin, rmax)
    assert s.dtype == np.float32 and s == np.float32(scale) and z == zero


@pytest.mark.parametrize("seed", [0, 1])
def test_activation_params_represent_zero(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        lo, hi = sorted(rng.normal(0, 3, 2))
        s, z = rq.quantize_activation_params(lo, hi)
        assert -128 <= z <= 127
        q = k.quantize_f32_s8(np.array([0.0], np.float32), s, z)
        assert q[0] == z and k.dequantize_s8(q, s, z)[0] == 0.0
        # the range's ends quantize within one step of the int8 limits
        ends = k.quantize_f32_s8(np.array([min(lo, 0), max(hi, 0)], np.float32), s, z).astype(int)
        assert ends[0] <= -127 and ends[1] >= 126


def paper_weight_scales(w: torch.Tensor, n_bit: int = 8, tol: float = 1e-6) -> torch.Tensor:
    """tiny-training algorithm/quantize/quantize_helper.py get_weight_scales (general case)."""
    flat = w.reshape(w.shape[0], -1)
    maxs = torch.max(flat.min(dim=1)[0].abs(), flat.max(dim=1)[0].abs())
    mins = -maxs
    if not (maxs - mins).min() > tol:
        for i in range(len(mins)):
            mins[i] = min(mins[i], -tol / 2)
            maxs[i] = max(maxs[i], tol / 2)
    return maxs / (2 ** (n_bit - 1) - 1)


@pytest.mark.parametrize("shape", [(6, 3, 3, 3), (4, 1, 7, 7), (10, 16), (5, 2, 1, 5)])
def test_quantize_per_channel_weights_vs_paper(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(list(shape))
    scale = rng.uniform(0.01, 1, (shape[0],) + (1,) * (len(shape) - 1))
    w = (rng.standard_normal(shape) * scale).astype(np.float32)
    w[1] = 0.0  # an all-zero channel: the scale is guarded
    wq, scales = rq.quantize_per_channel_weights(w)
    wt = torch.tensor(w)
    ref_scales = paper_weight_scales(wt)
    ref_q = (wt / ref_scales.view(-1, *([1] * (len(shape) - 1)))).round().int()
    assert scales.dtype == np.float32 and wq.dtype == np.int8
    np.testing.assert_array_equal(scales, ref_scales.numpy())
    np.testing.assert_array_equal(wq, ref_q.numpy())
    assert np.abs(wq).max() <= 127


def test_quantize_bias_and_effective_scale() -> None:
    ws = np.array([0.01, 0.002], np.float32)
    b = rq.quantize_bias(np.array([0.5, -0.3], np.float32), ws, 0.05)
    assert b.dtype == np.int32 and b.tolist() == [1000, -3000]
    eff = rq.effective_scale(0.05, ws, 0.1)
    np.testing.assert_allclose(eff, [0.005, 0.001], rtol=1e-7)


# --- quantize / dequantize ------------------------------------------------------------------------

def test_quantize_rounds_half_away() -> None:
    x = np.array([1.25, -1.25, 0.75, -0.75, 0.25, 100.0, -100.0, np.inf, -np.inf, 0.2499999],
                 np.float32)
    q = k.quantize_f32_s8(x, 0.5, 3)
    # x / 0.5 = 2.5, -2.5, 1.5, -1.5, 0.5 round away from zero to 3, -3, 2, -2, 1 (then + 3);
    # half-to-even would give 2, -2, 2, -2, 0
    assert q.tolist() == [6, 0, 5, 1, 4, 127, -128, 127, -128, 3]
    with pytest.raises(ValueError):
        k.quantize_f32_s8(np.array([np.nan], np.float32), 0.5, 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_quantize_dequantize_random(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(5000) * 2).astype(np.float32)
    s, z = np.float32(0.0173), -11
    q = k.quantize_f32_s8(x, s, z)
    quot = (x / s).astype(np.float32).astype(np.float64)
    ref = np.clip(np.sign(quot) * np.floor(np.abs(quot) + 0.5) + z, -128, 127)  # exact in float64
    np.testing.assert_array_equal(q.astype(np.float64), ref)
    d = k.dequantize_s8(q, s, z)
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d,
                                  ((q.astype(np.float64) - z) * np.float64(s)).astype(np.float32))


# --- conv2d_s8 ------------------------------------------------------------------------------------

# (in_c, in_h, in_w, out_c, k_h, k_w, stride_h, stride_w, pad_h, pad_w, groups)
CONV_CASES = [
    (3, 9, 7, 5, 3, 3, 1, 1, 1, 1, 1),       # odd sizes, "same"
    (3, 8, 8, 4, 3, 3, 2, 2, 1, 1, 1),       # stride 2
    (4, 11, 13, 6, 3, 2, 2, 1, 1, 0, 2),     # groups 2, non-square kernel, mixed stride
    (8, 15, 15, 8, 7, 7, 1, 1, 3, 3, 8),     # depthwise 7x7
    (6, 14, 13, 12, 7, 7, 2, 2, 3, 3, 6),    # depthwise 7x7, stride 2, channel multiplier 2
    (16, 6, 5, 10, 1, 1, 1, 1, 0, 0, 1),     # pointwise
    (5, 1, 17, 7, 1, 5, 1, 2, 0, 2, 1),      # Conv1d as H = 1
    (24, 4, 4, 32, 3, 3, 1, 1, 1, 1, 1),     # a longer reduction (216 terms)
]


def make_conv(case: tuple[int, ...], seed: int, bias: bool = True, relu: bool = False):
    """A float conv quantized as a converter would: per-channel weights, activation ranges from the
    data (the output range narrowed by 10% so that some outputs saturate)."""
    in_c, in_h, in_w, out_c, kh, kw, sh, sw, ph, pw, groups = case
    rng = np.random.default_rng([*case, seed, bias, relu])
    g = ConvGeom.infer(in_c, in_h, in_w, out_c, kh, kw, sh, sw, ph, pw, groups)
    xr = (rng.standard_normal(g.x_shape) + rng.uniform(-0.5, 1.0)).astype(np.float32)
    xs, xz = rq.quantize_activation_params(float(xr.min()), float(xr.max()))
    x = k.quantize_f32_s8(xr, xs, xz)
    fan_in = (in_c // groups) * kh * kw
    wr = (rng.standard_normal(g.w_shape) / np.sqrt(fan_in)).astype(np.float32)
    w, ws = rq.quantize_per_channel_weights(wr)
    b = (rq.quantize_bias(rng.standard_normal(out_c).astype(np.float32) * 0.3, ws, xs)
         if bias else None)
    acc = conv_acc_float(g, x, w, b, xz)
    yr = acc * (np.float64(xs) * ws.astype(np.float64))[:, None, None]
    lo, hi = (0.0 if relu else float(yr.min()) * 0.9), float(yr.max()) * 0.9
    ys, yz = rq.quantize_activation_params(lo, hi)
    eff = rq.effective_scale(xs, ws, ys)
    mult, shift = rq.quantize_multipliers(eff)
    act_min = yz if relu else -128
    return g, dict(x=x, w=w, b=b, xs=xs, xz=xz, ws=ws, ys=ys, yz=yz, eff=eff, mult=mult,
                   shift=shift, act_min=act_min, act_max=127, rng=rng)


def conv_acc_float(g: ConvGeom, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                   xz: int) -> np.ndarray:
    """The accumulator in float64 PyTorch (exact: integers far below 2^53)."""
    acc = F.conv2d(t64(x.astype(np.float64) - xz)[None], t64(w), None, (g.stride_h, g.stride_w),
                   (g.pad_h, g.pad_w), 1, g.groups)[0].numpy()
    if b is not None:
        acc = acc + b.astype(np.float64)[:, None, None]
    return acc


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_s8(case: tuple[int, ...], relu: bool) -> None:
    g, p = make_conv(case, 0, bias=not relu, relu=relu)
    y = k.conv2d_s8(g, p["x"], p["w"], p["b"], p["mult"], p["shift"], p["xz"], p["yz"],
                    p["act_min"], p["act_max"])
    assert y.dtype == np.int8 and y.shape == g.y_shape
    acc = conv_acc_float(g, p["x"], p["w"], p["b"], p["xz"])
    # the integer accumulator is exact
    np.testing.assert_array_equal(k.conv2d_acc_s8(g, p["x"], p["w"], p["b"], p["xz"]), acc)
    # bit-exact: TFLite's per-element requantization, from the brute-force primitives
    bf = np.array([[min(max(bf_mbqm(int(a), int(p["mult"][o]), int(p["shift"][o])) + p["yz"],
                            p["act_min"]), p["act_max"]) for a in acc[o].ravel()]
                   for o in range(g.out_c)]).reshape(g.y_shape)
    np.testing.assert_array_equal(y, bf)
    # the real arithmetic: round(acc * effective scale) + zero, within 1 LSB
    ref = np.clip(np.rint(acc * p["eff"][:, None, None]) + p["yz"], p["act_min"], p["act_max"])
    assert_lsb(y, ref.astype(np.int8), "conv vs float")
    if g.groups == g.in_c:
        np.testing.assert_array_equal(
            k.depthwise_conv2d_s8(g, p["x"], p["w"], p["b"], p["mult"], p["shift"], p["xz"],
                                  p["yz"], p["act_min"], p["act_max"]), y)
    # some outputs saturate (the mask rule matters), and the returned mask is the pre-clamp test
    y2, mask = k.conv2d_s8(g, p["x"], p["w"], p["b"], p["mult"], p["shift"], p["xz"], p["yz"],
                           p["act_min"], p["act_max"], return_mask=True)
    np.testing.assert_array_equal(y2, y)
    pre = np.rint(acc * p["eff"][:, None, None]) + p["yz"]
    agree = mask == ((pre >= p["act_min"]) & (pre <= p["act_max"]))
    assert agree.mean() >= 0.99


def test_conv2d_s8_padding_is_zero_point() -> None:
    # a 3x3 all-ones kernel over a constant input equal to x_zero: every output is exactly bias.
    g = ConvGeom.infer(1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1)
    x = np.full(g.x_shape, -7, np.int8)
    y = k.conv2d_s8(g, x, np.ones(g.w_shape, np.int8), np.array([40], np.int32),
                    *rq.quantize_multipliers([0.5]), x_zero=-7, y_zero=3)
    assert (y == 23).all()


def test_conv2d_s8_checks() -> None:
    g = ConvGeom.infer(4, 5, 5, 4, 3, 3, 1, 1, 1, 1, 2)
    x = np.zeros(g.x_shape, np.int8)
    w = np.zeros(g.w_shape, np.int8)
    m, s = rq.quantize_multipliers([0.1] * 4)
    with pytest.raises(ValueError):
        k.depthwise_conv2d_s8(g, x, w, None, m, s, 0, 0)
    with pytest.raises(ValueError):
        k.conv2d_s8(g, x.astype(np.int16), w, None, m, s, 0, 0)
    with pytest.raises(ValueError):
        k.conv2d_s8(g, x, w, None, m, s, 0, 0, act_min=10, act_max=5)
    with pytest.raises(ValueError):
        k.conv2d_s8(g, x, w, None, m[:3], s[:3], 0, 0)


# --- add_s8 ---------------------------------------------------------------------------------------

def bf_add(a: int, b: int, p: k.AddParams) -> int:
    """TFLite reference_integer_ops::AddFunc with the brute-force primitives."""
    v1 = bf_mbqm((a - p.x1_zero) * (1 << p.left_shift), p.x1_multiplier, p.x1_shift)
    v2 = bf_mbqm((b - p.x2_zero) * (1 << p.left_shift), p.x2_multiplier, p.x2_shift)
    out = bf_mbqm(v1 + v2, p.y_multiplier, p.y_shift) + p.y_zero
    return min(max(out, p.act_min), p.act_max)


@pytest.mark.parametrize("seed", range(6))
def test_add_s8(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 9)), int(rng.integers(1, 12)), int(rng.integers(1, 12)))
    s1, s2 = (float(np.float32(v)) for v in rng.uniform(0.005, 0.1, 2))
    z1, z2, zy = (int(v) for v in rng.integers(-128, 128, 3))
    sy = float(np.float32((s1 + s2) * rng.uniform(0.6, 1.2)))
    act_min = zy if seed % 2 else -128
    p = k.AddParams.from_scales(s1, z1, s2, z2, sy, zy, act_min, 127)
    assert p.left_shift == 20
    x1 = rng.integers(-128, 128, shape).astype(np.int8)
    x2 = rng.integers(-128, 128, shape).astype(np.int8)
    y = k.add_s8(x1, x2, p)
    assert y.dtype == np.int8 and y.shape == shape
    bf = np.array([bf_add(a, b, p)
                   for a, b in zip(x1.ravel().tolist(), x2.ravel().tolist(), strict=True)])
    np.testing.assert_array_equal(y.ravel(), bf)
    real = (s1 * (x1.astype(np.float64) - z1) + s2 * (x2.astype(np.float64) - z2)) / sy
    ref = np.clip(np.rint(real) + zy, act_min, 127).astype(np.int8)
    assert_lsb(y, ref, "add vs float")


def test_add_params_from_scales_matches_tflite() -> None:
    # CalculateOpDataAdd by hand: s1 = 0.5, s2 = 0.25, sy = 1: twice_max = 1
    p = k.AddParams.from_scales(0.5, 1, 0.25, 2, 1.0, 3)
    assert (p.x1_multiplier, p.x1_shift) == rq.quantize_multiplier(0.5) == (1 << 30, 0)
    assert (p.x2_multiplier, p.x2_shift) == (1 << 30, -1)
    assert (p.y_multiplier, p.y_shift) == rq.quantize_multiplier(1.0 / (1 << 20)) == (1 << 30, -19)
    with pytest.raises(ValueError):  # output multiplier >= 1
        k.AddParams.from_scales(1.0, 0, 1.0, 0, 1e-7, 0)


# --- avgpool2d_s8 ---------------------------------------------------------------------------------

# (c, in_h, in_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w)
POOL_CASES = [
    (3, 8, 8, 2, 2, 2, 2, 0, 0),
    (2, 7, 9, 3, 3, 2, 2, 1, 1),
    (4, 6, 5, 3, 2, 1, 1, 1, 1),
    (5, 7, 7, 7, 7, 7, 7, 0, 0),     # global (the paper's only pool)
    (6, 4, 6, 4, 6, 4, 6, 0, 0),     # global, even count 24: ties exist
    (2, 1, 15, 1, 4, 1, 2, 0, 2),    # 1-D
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_avgpool2d_s8(case: tuple[int, ...]) -> None:
    c, in_h, in_w, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng(list(case))
    g = PoolGeom.infer(c, in_h, in_w, kh, kw, sh, sw, ph, pw)
    x = rng.integers(-128, 128, g.x_shape).astype(np.int8)
    xz = int(rng.integers(-20, 20))
    y = k.avgpool2d_s8(g, x, x_zero=xz)
    n = kh * kw
    s = F.avg_pool2d(t64(x)[None], (kh, kw), (sh, sw), (ph, pw),
                     count_include_pad=True)[0].numpy() * n
    s = s + xz * (n - F.avg_pool2d(torch.ones((1, *g.x_shape), dtype=torch.float64), (kh, kw),
                                   (sh, sw), (ph, pw), count_include_pad=True)[0].numpy() * n)
    ref = np.clip(np.sign(s) * np.floor(np.abs(s) / n + 0.5), -128, 127)  # exact: s, n small
    np.testing.assert_array_equal(y, ref.astype(np.int8))  # TFLite rounding, bit-exact
    # the paper's QuantizedAvgPool (global, torch.round: halves to even) differs only at ties
    if ph == pw == 0 and (kh, kw) == (in_h, in_w):
        paper = t64(x).mean([-1, -2]).round().numpy()
        tie = np.abs(np.abs(s[:, 0, 0] / n) % 1 - 0.5) < 1e-9
        np.testing.assert_array_equal(y[:, 0, 0][~tie], paper[~tie])
    ylim = k.avgpool2d_s8(g, x, act_min=-5, act_max=7, x_zero=xz)
    np.testing.assert_array_equal(ylim, np.clip(y, -5, 7))


def test_avgpool2d_s8_rounding() -> None:
    g = PoolGeom.infer(4, 1, 2, 1, 2)
    x = np.array([[[1, 2]], [[-1, -2]], [[2, 2]], [[-3, 2]]], np.int8)  # means 1.5, -1.5, 2, -0.5
    assert k.avgpool2d_s8(g, x).ravel().tolist() == [2, -2, 2, -1]


# --- backward: the paper's autograd functions (quantized_ops_diff.py), float64 --------------------

class PaperConv(torch.autograd.Function):
    """_QuantizedConv2dFunc (CONV_W_GRAD = True, no gradient quantization)."""
    last_dz: torch.Tensor | None = None

    @staticmethod
    def forward(ctx, x, weight, bias, zero_x, zero_y, effective_scale, stride, padding, groups):
        x = x.round()
        weight = weight.round()
        ctx.stride, ctx.padding, ctx.groups = stride, padding, groups
        ctx.input_size, ctx.weight_size = x.shape, weight.shape
        x = x - zero_x
        ctx.save_for_backward(weight, effective_scale, x)
        out = F.conv2d(x, weight, None, stride, padding, 1, groups).round()
        out = out + bias.view(1, -1, 1, 1)
        out = (out * effective_scale.view(1, -1, 1, 1)).round()
        return out + zero_y

    @staticmethod
    def backward(ctx, grad_output):
        weight, effective_scale, _x = ctx.saved_tensors
        g = grad_output * effective_scale.view(1, -1, 1, 1)
        PaperConv.last_dz = g
        grad_bias = g.sum([0, 2, 3])
        grad_x = torch.nn.grad.conv2d_input(ctx.input_size, weight, g, stride=ctx.stride,
                                            padding=ctx.padding, groups=ctx.groups)
        grad_w = torch.nn.grad.conv2d_weight(_x, ctx.weight_size, g, stride=ctx.stride,
                                             padding=ctx.padding, groups=ctx.groups)
        return grad_x, grad_w, grad_bias, None, None, None, None, None, None


class PaperTruncate(torch.autograd.Function):
    """_TruncateActivationRange, generalised to [act_min, act_max] (the paper: [-128, 127])."""
    last_pre: torch.Tensor | None = None

    @staticmethod
    def forward(ctx, x, lo, hi):
        PaperTruncate.last_pre = x.detach().clone()
        ctx.save_for_backward((lo <= x) & (x <= hi))
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad_output):
        (mask,) = ctx.saved_tensors
        return grad_output * mask, None, None


class PaperAdd(torch.autograd.Function):
    """_QuantizedElementwiseAddFunc (the x1, x2 gradients)."""

    @staticmethod
    def forward(ctx, x1, x2, z1, z2, zy, s1, s2, sy):
        ctx.scales = (s1, s2, sy)
        out = ((x1.round() - z1) * s1 + (x2.round() - z2) * s2) / sy
        return out.round() + zy

    @staticmethod
    def backward(ctx, grad_output):
        s1, s2, sy = ctx.scales
        grad_sum = grad_output / sy
        return grad_sum * s1, grad_sum * s2, None, None, None, None, None, None


class PaperAvgPool(torch.autograd.Function):
    """_QuantizedAvgPoolFunc (global)."""

    @staticmethod
    def forward(ctx, x):
        ctx.input_shape = x.shape
        return x.mean([-1, -2], keepdim=True).round()

    @staticmethod
    def backward(ctx, grad_output):
        shp = ctx.input_shape
        return grad_output.repeat(1, 1, *shp[-2:]) / (shp[-1] * shp[-2])


def paper_conv_backward(g: ConvGeom, p: dict, dy: np.ndarray):
    """Run the paper's conv + truncate forward and backward; return the tensors and gradients."""
    eff32 = p["eff"].astype(np.float32)  # the paper's effective_scale buffer is float32
    bias = p["b"] if p["b"] is not None else np.zeros(g.out_c, np.int32)
    xt, wt, bt = t64(p["x"], True), t64(p["w"], True), t64(bias, True)
    out = PaperConv.apply(xt[None], wt, bt, float(p["xz"]), float(p["yz"]), t64(eff32),
                          (g.stride_h, g.stride_w), (g.pad_h, g.pad_w), g.groups)
    y = PaperTruncate.apply(out, float(p["act_min"]), float(p["act_max"]))[0]
    y.backward(t64(dy))
    pre = PaperTruncate.last_pre[0].numpy()
    return dict(y=y.detach().numpy().astype(np.int8), pre=pre, eff32=eff32,
                mask=(pre >= p["act_min"]) & (pre <= p["act_max"]),
                dz=PaperConv.last_dz[0], dx=xt.grad, dw=wt.grad, db=bt.grad)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_s8_backward_vs_paper(case: tuple[int, ...], relu: bool) -> None:
    g, p = make_conv(case, 1, relu=relu)
    dy = p["rng"].standard_normal(g.y_shape).astype(np.float32)
    ref = paper_conv_backward(g, p, dy)
    # with the paper's mask (pre-clamp, inclusive), the chain is the paper's exactly
    dz = k.requant_grad(ref["y"], dy, ref["eff32"], p["act_min"], p["act_max"], mask=ref["mask"])
    assert_close(dz, ref["dz"], "dz")
    assert_close(k.conv2d_s8_grad_input(g, dz, p["w"]), ref["dx"], "dx")
    dw, db = k.conv2d_s8_grad_weight(g, dz, p["x"], p["xz"])
    assert_close(dw, ref["dw"], "dw")
    assert_close(db, ref["db"], "db")
    # sparse update: a subset of output channels, in the given order
    ch = p["rng"].permutation(g.out_c)[: max(1, g.out_c // 3)]
    dws, dbs = k.conv2d_s8_grad_weight(g, dz, p["x"], p["xz"], channels=ch)
    assert_close(dws, ref["dw"][torch.tensor(ch)], "dw[channels]")
    assert_close(dbs, ref["db"], "db (all channels)")
    if g.groups == 1:  # the paper's training code selects input channels
        ich = p["rng"].permutation(g.in_c)[: max(1, g.in_c // 2)]
        dwi, _ = k.conv2d_s8_grad_weight(g, dz, p["x"], p["xz"], channels=ich, axis=1)
        assert_close(dwi, ref["dw"][:, torch.tensor(ich)], "dw[:, channels]")
    # the strict rule from y alone differs from the paper only where pre-clamp == a bound exactly
    dz_strict = k.requant_grad(ref["y"], dy, ref["eff32"], p["act_min"], p["act_max"])
    at_bound = (ref["pre"] == p["act_min"]) | (ref["pre"] == p["act_max"])
    ref_dz = ref["dz"].numpy()
    np.testing.assert_allclose(dz_strict[~at_bound], ref_dz[~at_bound], rtol=RTOL, atol=1e-12)
    assert (dz_strict[at_bound] == 0).all()
    if relu:  # the clamp at act_min (= y_zero) acts as the ReLU: many values below it
        assert (ref["pre"] < p["act_min"]).mean() > 0.2


def test_requant_grad_mask_rules() -> None:
    """Pre-clamp values at, inside and beyond the bounds: the paper keeps the gradient at the bound
    (inclusive), the strict rule from y cannot tell a bound value from a saturated one."""
    pre = np.array([[-140, -128, -127, 0, 126, 127, 130]], np.float64)
    y = np.clip(pre, -128, 127).astype(np.int8)
    dy = np.ones(y.shape, np.float32)
    paper_mask = (pre >= -128) & (pre <= 127)
    xt = t64(pre, True)
    PaperTruncate.apply(xt, -128.0, 127.0).backward(t64(dy))
    np.testing.assert_array_equal(k.requant_grad(y, dy, [2.0], mask=paper_mask),
                                  xt.grad.numpy() * 2)
    assert k.requant_grad(y, dy, [2.0]).tolist() == [[0, 0, 2, 2, 2, 0, 0]]
    saturated = [[False, False, True, True, True, False, False]]
    assert k.saturation_mask(y, -128, 127).tolist() == saturated
    # a fused activation range
    saturated = [[False, False, False, True, False, False, False]]
    assert k.saturation_mask(y, -127, 126).tolist() == saturated


def test_depthwise_7x7_backward_stride2() -> None:
    g, p = make_conv(CONV_CASES[4], 2)
    dz = p["rng"].standard_normal(g.y_shape).astype(np.float32)
    xt, wt = t64(p["x"].astype(np.float64) - p["xz"], True), t64(p["w"], True)
    yt = F.conv2d(xt[None], wt, None, (g.stride_h, g.stride_w), (g.pad_h, g.pad_w), 1, g.groups)[0]
    yt.backward(t64(dz))
    assert_close(k.conv2d_s8_grad_input(g, dz, p["w"]), xt.grad, "dx")
    assert_close(k.conv2d_s8_grad_weight(g, dz, p["x"], p["xz"])[0], wt.grad, "dw")


@pytest.mark.parametrize("seed", range(4))
def test_add_s8_backward_vs_paper(seed: int) -> None:
    rng = np.random.default_rng(50 + seed)
    shape = (3, 5, 4)
    s1, s2 = (float(np.float32(v)) for v in rng.uniform(0.01, 0.1, 2))
    sy = float(np.float32((s1 + s2) * 0.7))
    z1, z2, zy = (int(v) for v in rng.integers(-50, 50, 3))
    x1 = rng.integers(-128, 128, shape).astype(np.int8)
    x2 = rng.integers(-128, 128, shape).astype(np.int8)
    dy = rng.standard_normal(shape).astype(np.float32)
    a, b = t64(x1, True), t64(x2, True)
    out = PaperAdd.apply(a[None], b[None], float(z1), float(z2), float(zy), s1, s2, sy)
    y = PaperTruncate.apply(out, -128.0, 127.0)[0]
    y.backward(t64(dy))
    pre = PaperTruncate.last_pre[0].numpy()
    yq = y.detach().numpy().astype(np.int8)
    dzy = k.requant_grad(yq, dy, 1.0, mask=(pre >= -128) & (pre <= 127))
    dx1, dx2 = k.add_s8_grad(dzy, s1, s2, sy)
    assert_close(dx1, a.grad, "dx1")
    assert_close(dx2, b.grad, "dx2")
    # our forward agrees with the paper's forward within 1 LSB
    p = k.AddParams.from_scales(s1, z1, s2, z2, sy, zy)
    assert_lsb(k.add_s8(x1, x2, p), yq, "add vs paper forward")


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_avgpool2d_s8_backward(case: tuple[int, ...]) -> None:
    c, in_h, in_w, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng([*case, 9])
    g = PoolGeom.infer(c, in_h, in_w, kh, kw, sh, sw, ph, pw)
    x = rng.integers(-128, 128, g.x_shape).astype(np.int8)
    dy = rng.standard_normal(g.y_shape).astype(np.float32)
    xt = t64(x, True)
    if ph == pw == 0 and (kh, kw) == (in_h, in_w):
        PaperAvgPool.apply(xt[None])[0].backward(t64(dy))
    else:
        F.avg_pool2d(xt[None], (kh, kw), (sh, sw), (ph, pw),
                     count_include_pad=True)[0].backward(t64(dy))
    assert_close(k.avgpool2d_s8_grad(g, dy), xt.grad, "dx")


def test_dequantize_s8_grad() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (4, 6)).astype(np.int8)
    dy = rng.standard_normal((4, 6)).astype(np.float32)
    s, z = 0.0371, 5
    xt = t64(x, True)
    ((xt - z) * float(np.float32(s))).backward(t64(dy))
    assert_close(k.dequantize_s8_grad(dy, s), xt.grad, "dx")
    assert_close(k.dequantize_s8(x, s, z), (t64(x) - z) * float(np.float32(s)), "y")


# --- QAS (sgd_scale.py) and the int8 updates ------------------------------------------------------

class FakeQConv:
    """The attributes SGDScale.pre_step reads from a QuantizedConv2dDiff."""

    def __init__(self, eff: np.ndarray, x_scale: float, y_scale: float, w: np.ndarray,
                 b: np.ndarray):
        self.effective_scale = torch.from_numpy(eff.astype(np.float32))  # to_pt: float32 buffer
        self.x_scale, self.y_scale = x_scale, y_scale
        self.weight = torch.nn.Parameter(torch.from_numpy(w.astype(np.float32)))
        self.bias = torch.nn.Parameter(torch.from_numpy(b.astype(np.float32)))


def sgd_scale_pre_step(m: FakeQConv) -> None:
    """tiny-training algorithm/core/optimizer/sgd_scale.py, SGDScale.pre_step, for one conv."""
    if m.bias.grad is not None:
        m.bias.grad.data = m.bias.grad.data / (m.effective_scale.data * m.y_scale) ** 2
    if m.weight.grad is not None:
        w_scale = m.effective_scale.data * m.y_scale / m.x_scale
        m.weight.grad.data = m.weight.grad.data / w_scale.view(-1, 1, 1, 1) ** 2


def near_tie(v: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    return np.abs(np.abs(v) % 1 - 0.5) < eps


@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[3], CONV_CASES[5]],
                         ids=["3x3", "dw7x7", "pw"])
def test_qas_scales_vs_sgd_scale(case: tuple[int, ...]) -> None:
    g, p = make_conv(case, 3)
    rng = p["rng"]
    dw = rng.standard_normal(g.w_shape).astype(np.float32)
    db = rng.standard_normal(g.out_c).astype(np.float32)
    m = FakeQConv(p["eff"], float(p["xs"]), float(p["ys"]), p["w"], p["b"])
    m.weight.grad, m.bias.grad = torch.from_numpy(dw.copy()), torch.from_numpy(db.copy())
    sgd_scale_pre_step(m)
    qw = k.qas_weight_scale(p["ws"])
    qb = k.qas_bias_scale(p["ws"], p["xs"])
    assert qw.dtype == np.float32 and qb.dtype == np.float32
    assert_close(dw * qw[:, None, None, None], m.weight.grad, "QAS weight")
    assert_close(db * qb, m.bias.grad, "QAS bias")
    np.testing.assert_allclose(qw, 1 / p["ws"].astype(np.float64) ** 2, rtol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_update_s8_master_vs_paper_sgd(sparse: bool) -> None:
    """Three QAS-SGD steps (momentum 0, as sgd_scale_nomom) on the paper's float parameters vs the
    float32 master rule; the int8 weights are the master rounded and clipped."""
    g, p = make_conv(CONV_CASES[0], 4)
    rng = p["rng"]
    ch = np.array([3, 0]) if sparse else None
    m = FakeQConv(p["eff"], float(p["xs"]), float(p["ys"]), p["w"], p["b"])
    opt = torch.optim.SGD([m.weight, m.bias], lr=0.05, momentum=0.0)
    qw, qb = k.qas_weight_scale(p["ws"]), k.qas_bias_scale(p["ws"], p["xs"])
    master = k.master_from_s8(p["w"], ch)
    bmaster = p["b"].astype(np.float32)
    w = p["w"].copy()
    for _ in range(3):
        dw_full = (rng.standard_normal(g.w_shape) * 1e-4).astype(np.float32)
        db = (rng.standard_normal(g.out_c) * 1e-4).astype(np.float32)
        keep = np.zeros(g.out_c, bool)
        keep[ch if sparse else slice(None)] = True
        opt.zero_grad()
        m.weight.grad = torch.from_numpy(dw_full * keep[:, None, None, None])
        m.bias.grad = torch.from_numpy(db.copy())
        sgd_scale_pre_step(m)
        opt.step()
        dw = dw_full if ch is None else dw_full[ch]
        master, rows = k.update_s8_master(master, dw, 0.05, qw, ch)
        bmaster, b32 = k.update_s32(bmaster, db, 0.05, qb)
        if ch is None:
            w = rows
        else:
            w[ch] = rows
    ref = m.weight.detach().numpy()
    ref_rows = ref if ch is None else ref[ch]
    np.testing.assert_allclose(master, ref_rows, rtol=1e-5, atol=1e-4)
    ok = (np.clip(np.rint(ref), -127, 127) == w) | near_tie(ref)
    assert ok.all()
    if ch is not None:  # the other rows are untouched
        others = np.setdiff1d(np.arange(g.out_c), ch)
        np.testing.assert_array_equal(w[others], p["w"][others])
    np.testing.assert_allclose(bmaster, m.bias.detach().numpy(), rtol=1e-5)
    np.testing.assert_array_equal(b32, np.rint(bmaster).astype(np.int32))


@pytest.mark.parametrize("axis", [0, 1])
def test_update_s8_round(axis: int) -> None:
    rng = np.random.default_rng(11 + axis)
    w = rng.integers(-127, 128, (6, 4, 3, 3)).astype(np.int8)
    qas = rng.uniform(1e3, 1e5, 6).astype(np.float32)
    ch = np.array([4, 1, 2]) if axis == 0 else np.array([3, 0, 2])
    shape = list(w.shape)
    shape[axis] = ch.size
    dw = (rng.standard_normal(shape) * 1e-4).astype(np.float32)
    dw.flat[0] = 1e3  # saturates
    lr = 0.1
    new = k.update_s8_round(w, dw, lr, qas, ch, axis=axis)
    assert new.dtype == np.int8
    cur = np.take(w, ch, axis=axis).astype(np.float64)
    qb = qas[ch] if axis == 0 else qas
    target = cur - lr * dw.astype(np.float64) * qb.reshape(-1, 1, 1, 1)
    got = np.take(new, ch, axis=axis)
    ok = (np.clip(np.rint(target), -127, 127) == got) | near_tie(target)
    assert ok.all()
    assert got.flat[0] == -127
    rest = np.ones(w.shape[axis], bool)
    rest[ch] = False
    np.testing.assert_array_equal(np.compress(rest, new, axis=axis),
                                  np.compress(rest, w, axis=axis))
    # rounding: halves to even (torch.round); a step below one half leaves the weight unchanged
    w1 = np.array([[2, 2, 3, 5]], np.int8)
    out = k.update_s8_round(w1, np.array([[0.5, -0.5, 0.5, 0.49]], np.float32), 1.0,
                            np.ones(1, np.float32))
    assert out.tolist() == [[2, 2, 2, 5]]


def test_update_s32_int() -> None:
    b = np.array([10, -10, 2**31 - 2, 7], np.int32)
    db = np.array([2.5, -1.4, -100.0, 0.4], np.float32)
    new, b32 = k.update_s32(b, db, 1.0, np.ones(4, np.float32))
    assert new.dtype == np.int32 and new.tolist() == b32.tolist() == [8, -9, 2**31 - 1, 7]


def test_geometry_reuses_f32_dataclasses() -> None:
    g = ConvGeom.from_attrs([4, 9, 7, 8, 9, 7, 3, 3, 1, 1, 1, 1, 4])
    x = np.zeros(g.x_shape, np.int8)
    m, s = rq.quantize_multipliers([0.01] * 8)
    y = k.depthwise_conv2d_s8(g, x, np.ones(g.w_shape, np.int8), None, m, s, 0, -3)
    assert y.shape == g.y_shape and (y == -3).all()
