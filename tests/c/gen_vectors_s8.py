"""Generates test vectors for the C int8 kernels from the numpy reference
(tinyhost.refexec.kernels_s8 and .requant), for tests/c/test_kernels_s8.c (host, and Cortex-M4F
under QEMU).

Usage: gen_vectors_s8.py OUTDIR  -> writes OUTDIR/kernels_s8.vec (deterministic: fixed seeds).

Format (text, whitespace-separated tokens; '#' starts a comment line):
    case <kernel> <case-name>            kernel = the C function name without the tt_ prefix
    attrs <n> <int> ...                  integer attributes, per kernel as listed in KERNEL_ATTRS
    in  <dtype> <role> <n> <value> ...   an input tensor, flattened row-major
    out <dtype> <role> <n> <value> ...   an expected output
    end
dtype is s8 or i32 (decimal values) or f32 (the IEEE-754 bit pattern as 8 hex digits, so that the
values read back exactly on any libc). Float scalars (scales, lr) are f32 tensors of 1 element.
An absent optional operand (bias, channel selection, bias master, clamp mask, substituted rows) is
simply not listed. Clamp masks are packed bits (tinyhost.refexec.executor.pack_mask) as s8 bytes.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tinyhost.refexec import kernels_s8 as k
from tinyhost.refexec import requant as rq
from tinyhost.refexec.executor import pack_mask
from tinyhost.refexec.kernels_f32 import ConvGeom, PoolGeom
from vector_file import main, write_cases

Tensor = tuple[str, str, np.ndarray]  # (direction "in"/"out", role, values)
Case = tuple[str, str, tuple[int, ...], list[Tensor]]  # (kernel, name, attrs, tensors)

INT32_MIN, INT32_MAX = rq.INT32_MIN, rq.INT32_MAX

# The attribute order of every kernel (documentation; test_kernels_s8.c reads them in this order).
CONV_GEOM = ("in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "k_h", "k_w", "stride_h",
             "stride_w", "pad_h", "pad_w", "groups")
POOL_GEOM = ("c", "in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w", "pad_h",
             "pad_w")
KERNEL_ATTRS = {
    "srdhm": ("n",),
    "rdbpot": ("n",),
    "requantize": ("n",),
    "conv2d_s8": CONV_GEOM + ("x_zero", "y_zero", "act_min", "act_max"),
    "depthwise_conv2d_s8": CONV_GEOM + ("x_zero", "y_zero", "act_min", "act_max"),
    "add_s8": ("size", "x1_zero", "x2_zero", "y_zero", "left_shift", "x1_mult", "x1_shift",
               "x2_mult", "x2_shift", "y_mult", "y_shift", "act_min", "act_max"),
    "avgpool2d_s8": POOL_GEOM + ("x_zero", "act_min", "act_max"),
    "dequantize_s8_f32": ("size", "zero"),
    "quantize_f32_s8": ("size", "zero"),
    "requant_grad_f32": ("channels", "plane"),
    "conv2d_s8_grad_input_f32": CONV_GEOM,
    "depthwise_conv2d_s8_grad_input_f32": CONV_GEOM,
    "conv2d_s8_grad_weight_f32": CONV_GEOM + ("x_zero", "axis"),
    "add_s8_grad_f32": ("size",),
    "dequantize_grad_f32": ("size",),
    "update_s8_round_f32": ("out_c", "in_c", "k", "axis"),
    "update_s8_master_f32": ("out_c", "in_c", "k", "axis"),
    "update_s32_f32": ("size",),
    "pw_dw_conv2d_s8": tuple(f"pw_{a}" for a in CONV_GEOM) + tuple(f"dw_{a}" for a in CONV_GEOM)
    + ("x_zero", "mid_zero", "mid_act_min", "mid_act_max", "y_zero", "act_min", "act_max"),
}


def f32(*v: float) -> np.ndarray:
    return np.array(v, dtype=np.float32)


def i32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.int64).astype(np.int32)


def s8_rand(rng: np.random.Generator, *shape: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# --- requantization primitives --------------------------------------------------------------------

EDGES = [0, 1, -1, 2, -2, 3, 1 << 30, -(1 << 30), (1 << 30) + 1, INT32_MAX, INT32_MIN,
         INT32_MIN + 1, INT32_MAX - 1, 1 << 15, -(1 << 15), 12345, -98765]


def primitive_cases(rng: np.random.Generator) -> Iterator[Case]:
    # SaturatingRoundingDoublingHighMul: every pair of edge values (INT32_MIN * INT32_MIN
    # saturates), exact halves of both signs, and random pairs.
    a = [x for x in EDGES for _ in EDGES]
    b = [y for _ in EDGES for y in EDGES]
    for m in (1, 3, 5, 7, 1001):  # a*b = odd * 2^30: exactly half an LSB
        a += [1 << 30, -(1 << 30), m, -m]
        b += [m, m, 1 << 30, 1 << 30]
    a += rng.integers(INT32_MIN, INT32_MAX, size=200, endpoint=True).tolist()
    b += rng.integers(INT32_MIN, INT32_MAX, size=200, endpoint=True).tolist()
    a += rng.integers(-(1 << 20), 1 << 20, size=100).tolist()
    b += rng.integers(1 << 30, INT32_MAX, size=100, endpoint=True).tolist()
    av, bv = i32(a), i32(b)
    yield ("srdhm", "srdhm", (len(a),),
           [("in", "a", av), ("in", "b", bv),
            ("out", "r", i32(rq.saturating_rounding_doubling_high_mul(av, bv)))])

    # RoundingDivideByPOT: every exponent with edge values, exact halves (x = (2j+1) * 2^(e-1)),
    # one below and above them, and random values.
    xs, es = [], []
    for e in range(32):
        for x in EDGES:
            xs.append(x)
            es.append(e)
        if e > 0:
            for j in (0, 1, 2, -1, -2, -3):
                half = (2 * j + 1) * (1 << (e - 1))
                for d in (-1, 0, 1):
                    v = half + d
                    if INT32_MIN <= v <= INT32_MAX:
                        xs.append(v)
                        es.append(e)
    xs += rng.integers(INT32_MIN, INT32_MAX, size=300, endpoint=True).tolist()
    es += rng.integers(0, 32, size=300).tolist()
    xv, ev = i32(xs), i32(es)
    yield ("rdbpot", "rdbpot", (len(xs),),
           [("in", "x", xv), ("in", "e", ev), ("out", "r", i32(rq.rounding_divide_by_pot(xv, ev)))])

    # MultiplyByQuantizedMultiplier: every shift in [-31, 30] with values whose left shift fits,
    # real multipliers of realistic conv scales, the INT32_MIN * INT32_MIN saturation (a negative
    # multiplier), multipliers 0 and 2^31 - 1, and the spec's double-rounding example 5 * 0.25.
    xs, ms, ss = [], [], []
    def add(x: int, m: int, s: int) -> None:
        xs.append(x)
        ms.append(m)
        ss.append(s)
    for s in range(-31, 31):
        lim = INT32_MAX >> max(s, 0)
        for x in (0, 1, -1, lim, -lim - 1, lim // 3, -(lim // 7)):
            for m in (1 << 30, INT32_MAX, (1 << 30) + 12345, 0, -(1 << 30), INT32_MIN):
                add(x, m, s)
        for x in rng.integers(-lim - 1, lim, size=8, endpoint=True).tolist():
            add(x, int(rng.integers(1 << 30, 1 << 31)), s)
    m025, s025 = rq.quantize_multiplier(0.25)
    add(5, m025, s025)
    add(-5, m025, s025)
    add(INT32_MIN, INT32_MIN, 0)
    add(INT32_MIN, INT32_MIN, -5)
    for real in np.exp(rng.uniform(np.log(1e-6), np.log(3.9), size=200)):
        m, s = rq.quantize_multiplier(float(real))
        lim = INT32_MAX >> max(s, 0)
        add(int(rng.integers(-min(lim, 1 << 24), min(lim, 1 << 24))), m, s)
    xv, mv, sv = i32(xs), i32(ms), i32(ss)
    yield ("requantize", "mbqm", (len(xs),),
           [("in", "x", xv), ("in", "mult", mv), ("in", "shift", sv),
            ("out", "r", i32(rq.multiply_by_quantized_multiplier(xv, mv, sv)))])


# --- conv geometries ------------------------------------------------------------------------------

# (in_c, in_h, in_w, out_c, k_h, k_w, stride_h, stride_w, pad_h, pad_w, groups)
FIXED_CONV = [
    (3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1),
    (3, 7, 9, 5, 3, 3, 2, 2, 1, 1, 1),      # odd sizes, stride 2
    (4, 9, 7, 6, 3, 2, 1, 2, 1, 0, 2),      # groups 2, non-square kernel
    (2, 1, 17, 4, 1, 5, 1, 2, 0, 2, 1),     # Conv1d (H = 1)
    (1, 5, 5, 1, 5, 5, 1, 1, 0, 0, 1),      # 1x1 output
    (5, 6, 6, 3, 1, 1, 1, 1, 0, 0, 1),      # pointwise
    (16, 6, 5, 24, 1, 1, 1, 1, 0, 0, 1),    # pointwise, MCUNet-like
    (13, 5, 7, 7, 1, 1, 1, 1, 0, 0, 1),     # pointwise, odd everything
    (8, 7, 7, 9, 1, 1, 2, 2, 0, 0, 1),      # pointwise, stride 2
    (6, 4, 4, 5, 1, 1, 1, 1, 1, 1, 1),      # pointwise with padding (border columns all zero)
    (32, 1, 1, 10, 1, 1, 1, 1, 0, 0, 1),    # a classifier head: one output position
    (2, 4, 4, 2, 3, 3, 3, 3, 2, 2, 1),      # large padding, stride 3
    (8, 12, 12, 12, 3, 3, 1, 1, 1, 1, 1),   # a larger layer: K = 72, many 2x2 blocks
    (3, 16, 16, 8, 3, 3, 2, 2, 1, 1, 1),    # MCUNet's first layer shape (scaled down)
]
# Depthwise: (channels, multiplier, in_h, in_w, k, stride, pad)
FIXED_DEPTHWISE = [
    (4, 1, 6, 6, 3, 1, 1),
    (3, 2, 5, 5, 3, 2, 0),                  # multiplier 2
    (5, 1, 9, 8, 3, 2, 1),                  # stride 2, odd sizes
    (3, 1, 9, 11, 5, 1, 2),                 # 5x5
    (2, 1, 10, 7, 5, 2, 2),                 # 5x5 stride 2
    (3, 1, 11, 9, 7, 1, 3),                 # 7x7
    (2, 3, 13, 12, 7, 2, 3),                # 7x7 stride 2, multiplier 3
    (4, 1, 3, 3, 3, 1, 1),                  # output as small as the input
    (2, 1, 7, 1, 3, 1, 1),                  # one column
    (3, 1, 2, 2, 5, 1, 2),                  # a kernel larger than the input
    (16, 1, 10, 10, 3, 1, 1),               # MCUNet-like
    (3, 2, 4, 4, 1, 1, 1),                  # 1x1 with padding: border outputs are bias only
    (2, 1, 3, 3, 2, 1, 2),                  # windows entirely in the padding
]


# Backward-only shapes beside conv_geoms: the fp32 gradient kernels' fast paths (1x1 tiles of 4
# channels by 4 positions with remainders, groups, output channels in several passes; the
# depthwise 3x3/5x5/7x7 stride-1/2 gathers with their borders, odd and even sizes and paddings).
BACKWARD_CONV = [
    (48, 8, 8, 16, 1, 1, 1, 1, 0, 0, 1),    # pointwise, whole tiles
    (18, 5, 3, 11, 1, 1, 1, 1, 0, 0, 1),    # pointwise, channel and position remainders
    (12, 6, 6, 8, 1, 1, 1, 1, 0, 0, 2),     # pointwise, groups 2
    (8, 4, 5, 70, 1, 1, 1, 1, 0, 0, 1),     # pointwise, output channels in three passes
    (10, 3, 3, 66, 1, 1, 1, 1, 0, 0, 2),    # pointwise, groups 2 of 33 output channels
    (6, 12, 12, 6, 3, 3, 1, 1, 1, 1, 6),    # depthwise 3x3
    (5, 11, 9, 5, 3, 3, 2, 2, 1, 1, 5),     # depthwise 3x3 stride 2, odd sizes
    (4, 12, 12, 4, 3, 3, 2, 2, 0, 0, 4),    # depthwise 3x3 stride 2, no padding
    (4, 10, 11, 4, 5, 5, 1, 1, 2, 2, 4),    # depthwise 5x5
    (3, 13, 12, 3, 5, 5, 2, 2, 2, 2, 3),    # depthwise 5x5 stride 2
    (3, 12, 12, 3, 7, 7, 1, 1, 3, 3, 3),    # depthwise 7x7
    (3, 16, 15, 3, 7, 7, 2, 2, 3, 3, 3),    # depthwise 7x7 stride 2
    (2, 9, 9, 2, 7, 7, 2, 2, 1, 1, 2),      # depthwise 7x7 stride 2, small padding
    (2, 6, 7, 2, 3, 3, 1, 1, 0, 0, 2),      # depthwise 3x3 unpadded
    (2, 5, 37, 2, 3, 3, 2, 2, 1, 1, 2),     # depthwise 3x3 stride 2, wider than the column table
]


def depthwise_geom(c: int, mult: int, h: int, w: int, kk: int, s: int, p: int) -> ConvGeom:
    return ConvGeom.infer(c, h, w, c * mult, kk, kk, s, s, p, p, c)


def conv_geoms(rng: np.random.Generator, n_random: int) -> Iterator[ConvGeom]:
    for spec in FIXED_CONV:
        yield ConvGeom.infer(*spec)
    for spec in FIXED_DEPTHWISE:
        yield depthwise_geom(*spec)
    made = 0
    while made < n_random:
        groups = int(rng.choice([1, 1, 1, 2, 3, 0]))  # 0: depthwise
        if groups == 0:
            groups = int(rng.integers(1, 7))
            in_c, out_c = groups, groups * int(rng.integers(1, 3))
        else:
            in_c, out_c = groups * int(rng.integers(1, 6)), groups * int(rng.integers(1, 6))
        conv1d = rng.random() < 0.15
        in_h = 1 if conv1d else int(rng.integers(1, 12))
        in_w = int(rng.integers(1, 14))
        k_h = 1 if conv1d else int(rng.integers(1, 6))
        k_w = int(rng.integers(1, 6))
        s_h, s_w = (int(v) for v in rng.integers(1, 4, size=2))
        p_h = 0 if conv1d else int(rng.integers(0, k_h))
        p_w = int(rng.integers(0, k_w))
        if in_h + 2 * p_h < k_h or in_w + 2 * p_w < k_w:
            continue
        made += 1
        yield ConvGeom.infer(in_c, in_h, in_w, out_c, k_h, k_w, s_h, s_w, p_h, p_w, groups)


def requant_params(rng: np.random.Generator, acc: np.ndarray,
                   kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mult, shift) for effective scales that spread each channel's accumulators
    (acc, O x H x W) over about +-50 LSB, times a random factor in [1/3, 3] (so that some channels
    saturate), or for special kinds: 'left' (M in [1, 8): positive shifts), 'tiny' (shifts near
    -31)."""
    o = acc.shape[0]
    if kind == "left":
        real = rng.uniform(1.0, 7.9, size=o)
    elif kind == "tiny":
        real = np.exp(rng.uniform(np.log(2.0**-32), np.log(2.0**-20), size=o))
    else:
        spread = np.abs(acc.reshape(o, -1)).max(axis=1).astype(np.float64) + 1.0
        real = 50.0 / spread * np.exp(rng.uniform(np.log(1 / 3), np.log(3.0), size=o))
    return rq.quantize_multipliers(real)


def zero_points(rng: np.random.Generator, i: int) -> tuple[int, int, int, int]:
    x_zero, y_zero = (int(v) for v in rng.integers(-128, 128, size=2))
    mode = i % 4
    if mode == 0:
        return x_zero, y_zero, -128, 127
    if mode == 1:  # TFLite fused ReLU: act_min = y_zero
        return x_zero, y_zero, y_zero, 127
    if mode == 2:
        lo = int(rng.integers(-128, 0))
        return x_zero, y_zero, lo, int(rng.integers(lo, 128))
    return -128, -128, -128, 127  # the paper's ReLU6-in-range layers


def row_subst(rng: np.random.Generator, w: np.ndarray) -> tuple[list[Tensor], np.ndarray]:
    """A random substitution of some output channels' rows (the sparse update's trainable rows):
    the "channels" and "rows" inputs, and the weight the kernel then effectively uses."""
    out_c = w.shape[0]
    channels = np.sort(rng.permutation(out_c)[: int(rng.integers(1, out_c + 1))])
    rows = s8_rand(rng, channels.size, *w.shape[1:], lo=-127)
    eff = w.copy()
    eff[channels] = rows
    return [("in", "channels", i32(channels)), ("in", "rows", rows)], eff


def conv_forward_cases(rng: np.random.Generator) -> Iterator[Case]:
    for i, g in enumerate(conv_geoms(rng, 24)):
        kind = "left" if i % 11 == 5 else "tiny" if i % 11 == 9 else "normal"
        xz, yz, lo, hi = zero_points(rng, i)
        x = s8_rand(rng, *g.x_shape)
        w = s8_rand(rng, *g.w_shape, lo=-127)
        taps = (g.in_c // g.groups) * g.k_h * g.k_w
        bias = i32(rng.integers(-5000, 5001, size=g.out_c) * int(np.sqrt(taps) + 1))
        if kind == "left":  # small values: acc * M stays mostly inside the int8 range
            x = s8_rand(rng, *g.x_shape, lo=-3, hi=3)
            w = s8_rand(rng, *g.w_shape, lo=-3, hi=3)
            bias = i32(rng.integers(-5, 6, size=g.out_c))
            xz = 0
        has_bias = i % 4 != 3
        ins: list[Tensor] = [("in", "x", x), ("in", "w", w)]
        w_eff = w
        if i % 3 == 1:  # some output channels use substituted (trainable) rows
            sub, w_eff = row_subst(rng, w)
            ins += sub
        acc = k.conv2d_acc_s8(g, x, w_eff, bias if has_bias else None, xz)
        mult, shift = requant_params(rng, acc, kind)
        y, mask = k.conv2d_s8(g, x, w_eff, bias if has_bias else None, mult, shift, xz, yz, lo, hi,
                              return_mask=True)
        if has_bias:
            ins.append(("in", "bias", bias))
        ins += [("in", "mult", mult), ("in", "shift", shift)]
        outs: list[Tensor] = [("out", "y", y)]
        if i % 2 == 0:  # the clamp mask the backward needs
            outs.append(("out", "mask", pack_mask(mask)))
        attrs = g.attrs() + (xz, yz, lo, hi)
        yield ("conv2d_s8", f"conv{i}_{kind}", attrs, ins + outs)
        if g.groups == g.in_c:  # depthwise (a single-channel conv is one too)
            yield ("depthwise_conv2d_s8", f"conv{i}_{kind}", attrs, ins + outs)


# The fused 1x1 conv + depthwise: (in_c, mid_c, h, w, multiplier, k, stride, pad, pw_k).
FIXED_PW_DW = [
    (8, 48, 16, 16, 1, 3, 2, 1, 1),        # mbv2-w0.35's block 1, scaled down
    (16, 48, 9, 9, 1, 7, 1, 3, 1),         # 7x7, odd size
    (5, 7, 11, 13, 2, 5, 2, 2, 1),         # multiplier 2, odd everything, stride 2
    (3, 4, 5, 4, 1, 3, 1, 0, 1),           # no padding
    (2, 3, 1, 9, 1, 3, 1, 1, 1),           # a single row
    (4, 5, 6, 7, 1, 3, 2, 1, 3),           # the first conv 3x3 (the kernel takes any groups-1 conv)
]


def pw_dw_cases(rng: np.random.Generator) -> Iterator[Case]:
    specs = list(FIXED_PW_DW)
    while len(specs) < len(FIXED_PW_DW) + 12:
        kk, s = int(rng.choice([1, 2, 3, 5, 7])), int(rng.integers(1, 3))
        h, w = (int(v) for v in rng.integers(1, 14, size=2))
        pad = int(rng.integers(0, kk))
        if min(h, w) + 2 * pad >= kk:
            specs.append((int(rng.integers(1, 9)), int(rng.integers(1, 13)), h, w,
                          int(rng.integers(1, 3)), kk, s, pad, 1))
    for i, (in_c, mid_c, h, w, mult, kk, s, pad, pk) in enumerate(specs):
        g_pw = ConvGeom.infer(in_c, h, w, mid_c, pk, pk, 1, 1, pk // 2, pk // 2, 1)
        g_dw = depthwise_geom(mid_c, mult, g_pw.out_h, g_pw.out_w, kk, s, pad)
        xz, mz, mlo, mhi = zero_points(rng, i)
        _, yz, lo, hi = zero_points(rng, i + 1)
        x = s8_rand(rng, *g_pw.x_shape)
        pw_w, dw_w = s8_rand(rng, *g_pw.w_shape, lo=-127), s8_rand(rng, *g_dw.w_shape, lo=-127)
        pw_b = i32(rng.integers(-5000, 5001, size=mid_c) * 4) if i % 4 != 3 else None
        dw_b = i32(rng.integers(-5000, 5001, size=g_dw.out_c) * 4) if i % 4 != 2 else None
        pw_m, pw_s = requant_params(rng, k.conv2d_acc_s8(g_pw, x, pw_w, pw_b, xz), "normal")
        mid = k.conv2d_s8(g_pw, x, pw_w, pw_b, pw_m, pw_s, xz, mz, mlo, mhi)
        dw_m, dw_s = requant_params(rng, k.conv2d_acc_s8(g_dw, mid, dw_w, dw_b, mz), "normal")
        y = k.pw_dw_conv2d_s8(g_pw, g_dw, x, pw_w, pw_b,
                              k.ConvS8Quant(pw_m, pw_s, xz, mz, mlo, mhi),
                              dw_w, dw_b, k.ConvS8Quant(dw_m, dw_s, mz, yz, lo, hi))
        assert np.array_equal(y, k.depthwise_conv2d_s8(g_dw, mid, dw_w, dw_b, dw_m, dw_s, mz, yz,
                                                       lo, hi))
        ins: list[Tensor] = [("in", "x", x), ("in", "pw_w", pw_w)]
        ins += [("in", "pw_bias", pw_b)] if pw_b is not None else []
        ins += [("in", "pw_mult", pw_m), ("in", "pw_shift", pw_s), ("in", "dw_w", dw_w)]
        ins += [("in", "dw_bias", dw_b)] if dw_b is not None else []
        ins += [("in", "dw_mult", dw_m), ("in", "dw_shift", dw_s)]
        attrs = g_pw.attrs() + g_dw.attrs() + (xz, mz, mlo, mhi, yz, lo, hi)
        yield ("pw_dw_conv2d_s8", f"pwdw{i}", attrs, ins + [("out", "y", y)])


# --- add, avgpool, (de)quantize -------------------------------------------------------------------

def add_cases(rng: np.random.Generator) -> Iterator[Case]:
    sizes = [1, 2, 3, 7, 64, 301, 1000]
    for i, n in enumerate(sizes + [int(v) for v in rng.integers(1, 400, size=6)]):
        s1, s2 = np.exp(rng.uniform(np.log(0.005), np.log(0.2), size=2))
        sy = (s1 + s2) * float(np.exp(rng.uniform(np.log(0.3), np.log(1.5))))
        z1, z2, zy = (int(v) for v in rng.integers(-128, 128, size=3))
        lo, hi = (-128, 127) if i % 3 else (zy, 127)
        p = k.AddParams.from_scales(s1, z1, s2, z2, sy, zy, lo, hi)
        yield add_case(rng, f"add{i}", n, p)
    # A hand-made parameter set: left_shift 23 (the largest whose shifted int8 fits int32), shifts
    # at both ends of [-31, 0], a zero multiplier.
    p = k.AddParams(5, -7, 3, 23, 1 << 30, 0, INT32_MAX, -31, (1 << 30) + 777, -9, -100, 100)
    yield add_case(rng, "add_edges", 200, p)
    p = k.AddParams(-128, 127, -128, 20, 0, -3, 1 << 30, -1, INT32_MAX, 0, -128, 127)
    yield add_case(rng, "add_edges2", 200, p)


def add_case(rng: np.random.Generator, name: str, n: int, p: k.AddParams) -> Case:
    x1, x2 = s8_rand(rng, n), s8_rand(rng, n)
    x1[:4] = [-128, 127, -128, 127][: min(4, n)]
    x2[:4] = [-128, 127, 127, -128][: min(4, n)]
    attrs = (n, p.x1_zero, p.x2_zero, p.y_zero, p.left_shift, p.x1_multiplier, p.x1_shift,
             p.x2_multiplier, p.x2_shift, p.y_multiplier, p.y_shift, p.act_min, p.act_max)
    y, mask = k.add_s8(x1, x2, p, return_mask=True)
    return ("add_s8", name, attrs, [("in", "x1", x1), ("in", "x2", x2), ("out", "y", y),
                                    ("out", "mask", pack_mask(mask))])


# (c, in_h, in_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w)
FIXED_POOL = [
    (3, 8, 8, 2, 2, 2, 2, 0, 0),
    (2, 7, 9, 3, 3, 2, 2, 1, 1),            # odd sizes, stride 2, padding
    (4, 6, 5, 3, 2, 1, 1, 1, 1),            # overlapping, non-square
    (2, 1, 15, 1, 3, 1, 2, 0, 1),           # 1-D
    (1, 5, 5, 5, 5, 5, 5, 2, 2),            # one window
    (8, 4, 4, 4, 4, 4, 4, 0, 0),            # global pool
    (3, 6, 6, 2, 2, 1, 1, 1, 1),            # even window with padding: many .5 ties
]


def pool_cases(rng: np.random.Generator) -> Iterator[Case]:
    geoms = [PoolGeom.infer(*s) for s in FIXED_POOL]
    while len(geoms) < len(FIXED_POOL) + 12:
        c = int(rng.integers(1, 6))
        in_h, in_w = int(rng.integers(1, 12)), int(rng.integers(1, 14))
        k_h, k_w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        s_h, s_w = (int(v) for v in rng.integers(1, 4, size=2))
        p_h, p_w = int(rng.integers(0, k_h // 2 + 1)), int(rng.integers(0, k_w // 2 + 1))
        if in_h + 2 * p_h < k_h or in_w + 2 * p_w < k_w:
            continue
        geoms.append(PoolGeom.infer(c, in_h, in_w, k_h, k_w, s_h, s_w, p_h, p_w))
    for i, g in enumerate(geoms):
        x = s8_rand(rng, *g.x_shape)
        if i % 3 == 1:  # few distinct values near zero: many exact ties, both signs
            x = s8_rand(rng, *g.x_shape, lo=-3, hi=3)
        xz = int(rng.integers(-128, 128)) if i % 2 else 0
        lo, hi = ((-128, 127) if i % 4 != 3
                  else (int(rng.integers(-128, 0)), int(rng.integers(0, 128))))
        yield ("avgpool2d_s8", f"pool{i}", g.attrs() + (xz, lo, hi),
               [("in", "x", x), ("out", "y", k.avgpool2d_s8(g, x, lo, hi, xz))])


def quant_cases(rng: np.random.Generator) -> Iterator[Case]:
    for i, n in enumerate([1, 5, 64, 257, 1000]):
        scale = float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(0.5)))))
        zero = int(rng.integers(-128, 128))
        x = s8_rand(rng, n)
        x[:2] = [-128, 127][: min(2, n)]
        yield ("dequantize_s8_f32", f"deq{i}", (n, zero),
               [("in", "x", x), ("in", "scale", f32(scale)),
                ("out", "y", k.dequantize_s8(x, scale, zero))])
    specials = f32(0.0, -0.0, np.inf, -np.inf, 3e38, -3e38, 1e-30, -1e-30, 1e30)
    for i, n in enumerate([9, 50, 300, 1000]):
        scale = float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(0.5)))))
        zero = int(rng.integers(-128, 128))
        x = normal(rng, n, scale=scale * 60)
        x[: len(specials)] = specials[: min(n, len(specials))]
        yield ("quantize_f32_s8", f"q{i}", (n, zero),
               [("in", "x", x), ("in", "scale", f32(scale)),
                ("out", "y", k.quantize_f32_s8(x, scale, zero))])
    # Exact halves: with a power-of-two scale, x / scale is exact, so (j + 0.5) ties round away.
    scale = 0.25
    x = (np.arange(-140, 140, dtype=np.float32) + np.float32(0.5)) * np.float32(scale)
    for zero in (0, 3, -128):
        yield ("quantize_f32_s8", f"q_ties_z{zero}", (x.size, zero),
               [("in", "x", x), ("in", "scale", f32(scale)),
                ("out", "y", k.quantize_f32_s8(x, scale, zero))])


# --- backward -------------------------------------------------------------------------------------

def backward_cases(rng: np.random.Generator) -> Iterator[Case]:
    for i, (c, plane) in enumerate([(1, 1), (3, 17), (8, 64), (5, 1), (1, 500), (16, 49)]):
        lo, hi = [(-128, 127), (-128, 127), (-20, 90), (0, 127), (-128, -128), (5, 5)][i]
        y = s8_rand(rng, c, plane)
        flat = y.reshape(-1)
        flat[:: 5] = lo  # values at the bounds get no gradient
        flat[1:: 7] = hi
        y = np.clip(y, lo, hi).astype(np.int8)
        mask = k.saturation_mask(y, lo, hi)
        if i % 2:  # a forward's mask: also values at a bound that were not clamped
            mask |= rng.random(mask.shape) < 0.2
        dy = normal(rng, c, plane)
        e = np.exp(rng.uniform(np.log(1e-4), np.log(1.0), size=c)).astype(np.float32)
        yield ("requant_grad_f32", f"rg{i}", (c, plane),
               [("in", "mask", pack_mask(mask)), ("in", "dy", dy), ("in", "eff_scale", e),
                ("out", "dz", k.requant_grad(y, dy, e, lo, hi, mask=mask))])

    geoms = list(conv_geoms(rng, 10)) + [ConvGeom.infer(*s) for s in BACKWARD_CONV]
    for i, g in enumerate(geoms):
        dz = normal(rng, *g.y_shape, scale=1e-3)
        w = s8_rand(rng, *g.w_shape, lo=-127)
        x = s8_rand(rng, *g.x_shape)
        yield ("conv2d_s8_grad_input_f32", f"gi{i}", g.attrs(),
               [("in", "dz", dz), ("in", "w", w), ("out", "dx", k.conv2d_s8_grad_input(g, dz, w))])
        sub, w_eff = row_subst(rng, w)
        yield ("conv2d_s8_grad_input_f32", f"gi{i}_rows", g.attrs(),
               [("in", "dz", dz), ("in", "w", w)] + sub
               + [("out", "dx", k.conv2d_s8_grad_input(g, dz, w_eff))])
        if g.groups == g.in_c == g.out_c:  # the depthwise kernel: the same dx, a channel at a time
            yield ("depthwise_conv2d_s8_grad_input_f32", f"dgi{i}_rows", g.attrs(),
                   [("in", "dz", dz), ("in", "w", w)] + sub
                   + [("out", "dx", k.conv2d_s8_grad_input(g, dz, w_eff))])
        xz = int(rng.integers(-128, 128))
        ins: list[Tensor] = [("in", "dz", dz), ("in", "x", x)]
        dw, db = k.conv2d_s8_grad_weight(g, dz, x, xz)
        yield ("conv2d_s8_grad_weight_f32", f"gw{i}", g.attrs() + (xz, 0),
               ins + [("out", "dw", dw), ("out", "db", db)])
        # The sparse update: a random subset of output channels in random order, and (groups 1)
        # of input channels.
        sel = rng.permutation(g.out_c)[: int(rng.integers(1, g.out_c + 1))]
        dw, db = k.conv2d_s8_grad_weight(g, dz, x, xz, channels=sel, axis=0)
        yield ("conv2d_s8_grad_weight_f32", f"gw{i}_out{sel.size}", g.attrs() + (xz, 0),
               ins + [("in", "channels", i32(sel)), ("out", "dw", dw), ("out", "db", db)])
        if g.groups == 1:
            sel = rng.permutation(g.in_c)[: int(rng.integers(1, g.in_c + 1))]
            dw, db = k.conv2d_s8_grad_weight(g, dz, x, xz, channels=sel, axis=1)
            yield ("conv2d_s8_grad_weight_f32", f"gw{i}_in{sel.size}", g.attrs() + (xz, 1),
                   ins + [("in", "channels", i32(sel)), ("out", "dw", dw), ("out", "db", db)])

    for i, n in enumerate([1, 7, 100, 999]):
        dy = normal(rng, n)
        s1, s2, sy = (float(np.float32(v))
                      for v in np.exp(rng.uniform(np.log(1e-3), np.log(0.3), size=3)))
        ins = [("in", "dy", dy), ("in", "s1", f32(s1)), ("in", "s2", f32(s2)),
               ("in", "sy", f32(sy))]
        dx1, dx2 = k.add_s8_grad(dy, s1, s2, sy)
        yield ("add_s8_grad_f32", f"ag{i}", (n,), ins + [("out", "dx1", dx1), ("out", "dx2", dx2)])
        mask = rng.random(n) < 0.7  # the add's clamp mask, applied first
        dz = k.requant_grad(np.zeros(n, np.int8), dy, np.float32(1), mask=mask)
        dx1, dx2 = k.add_s8_grad(dz, s1, s2, sy)
        yield ("add_s8_grad_f32", f"ag{i}_mask", (n,),
               ins + [("in", "mask", pack_mask(mask)), ("out", "dx1", dx1), ("out", "dx2", dx2)])
        scale = s1
        yield ("dequantize_grad_f32", f"dg{i}", (n,),
               [("in", "dy", dy), ("in", "scale", f32(scale)),
                ("out", "dx", k.dequantize_s8_grad(dy, scale))])


# --- QAS updates ----------------------------------------------------------------------------------

def update_cases(rng: np.random.Generator) -> Iterator[Case]:
    # (out_c, in_c, k): conv 3x3, pointwise, depthwise (in_c 1), linear.
    shapes = [(4, 3, 9), (16, 8, 1), (6, 1, 9), (10, 32, 1), (1, 1, 1), (5, 7, 25)]
    for i, (o, ic, kk) in enumerate(shapes):
        w = s8_rand(rng, o, ic, kk, lo=-127)
        w.reshape(-1)[:: 11] = 127
        w.reshape(-1)[1:: 13] = -127
        w_scales = np.exp(rng.uniform(np.log(1e-3), np.log(5e-2), size=o)).astype(np.float32)
        qas = k.qas_weight_scale(w_scales)
        lr = float(np.float32(0.05))
        for sel_kind in ("all", "out", "in"):
            if sel_kind == "in" and ic == 1:
                continue
            axis = 1 if sel_kind == "in" else 0
            n_axis = ic if axis else o
            sel = (None if sel_kind == "all"
                   else rng.permutation(n_axis)[: int(rng.integers(1, n_axis + 1))])
            rows = list(w.shape)
            if sel is not None:
                rows[axis] = sel.size
            # Steps of a few LSB, so that rounding, ties and the clip all happen.
            dw = normal(rng, *rows).astype(np.float32)
            q_rows = qas if (sel is None or axis == 1) else qas[sel]
            qb = q_rows.reshape((-1,) + (1,) * (len(rows) - 1))
            dw = (dw * np.float32(3.0) / (np.float32(lr) * qb)).astype(np.float32)
            ins: list[Tensor] = [("in", "dw", dw), ("in", "lr", f32(lr)), ("in", "qas", qas)]
            if sel is not None:
                ins.append(("in", "channels", i32(sel)))
            name = f"u{i}_{sel_kind}"
            new_w = k.update_s8_round(w, dw, lr, qas, channels=sel, axis=axis)
            yield ("update_s8_round_f32", name, (o, ic, kk, axis),
                   [("in", "w", w)] + ins + [("out", "w", new_w)])
            master = k.master_from_s8(w, channels=sel, axis=axis)
            master = (master + normal(rng, *master.shape, scale=0.4)).astype(np.float32)
            new_master, w_rows = k.update_s8_master(master, dw, lr, qas, channels=sel, axis=axis)
            full = w.copy()
            if sel is None:
                full[...] = w_rows
            else:
                idx: list = [slice(None)] * 3
                idx[axis] = sel
                full[tuple(idx)] = w_rows
            yield ("update_s8_master_f32", name, (o, ic, kk, axis),
                   [("in", "master", master), ("in", "w", w)] + ins +
                   [("out", "master", new_master), ("out", "w", full)])
    # Exact ties: lr = qas = 1 and steps j + 0.5 round half to even.
    w = s8_rand(rng, 2, 3, 20, lo=-120, hi=120)
    dw = (rng.integers(-4, 4, size=w.shape) + 0.5).astype(np.float32)
    qas = f32(1.0, 1.0)
    yield ("update_s8_round_f32", "u_ties", (2, 3, 20, 0),
           [("in", "w", w), ("in", "dw", dw), ("in", "lr", f32(1.0)), ("in", "qas", qas),
            ("out", "w", k.update_s8_round(w, dw, 1.0, qas))])

    for i, n in enumerate([1, 10, 64, 300]):
        b = i32(rng.integers(-(1 << 20), 1 << 20, size=n))
        b[:4] = [INT32_MAX - 3, INT32_MIN + 2, INT32_MAX, 0][: min(n, 4)]
        w_scales = np.exp(rng.uniform(np.log(1e-3), np.log(5e-2), size=n)).astype(np.float32)
        qas = k.qas_bias_scale(w_scales, 0.02)
        lr = float(np.float32(0.01))
        db = (normal(rng, n) * np.float32(5.0) / (np.float32(lr) * qas)).astype(np.float32)
        if n >= 4:  # steps large enough to saturate
            db[:3] = (f32(-1e4, 1e4, -1e12) / (np.float32(lr) * qas[:3])).astype(np.float32)
        ins: list[Tensor] = [("in", "db", db), ("in", "lr", f32(lr)), ("in", "qas", qas)]
        new_b, _ = k.update_s32(b, db, lr, qas)
        yield ("update_s32_f32", f"b{i}", (n,), [("in", "b", b)] + ins + [("out", "b", new_b)])
        master = (b.astype(np.float32) + normal(rng, n, scale=0.5)).astype(np.float32)
        new_master, b_s32 = k.update_s32(master, db, lr, qas)
        yield ("update_s32_f32", f"bm{i}", (n,),
               [("in", "b", b), ("in", "master", master)] + ins +
               [("out", "b", b_s32), ("out", "master", new_master)])
    # Ties of the rounded step: lr = qas = 1, db = j + 0.5.
    b = i32(rng.integers(-1000, 1000, size=16))
    db = (np.arange(-8, 8, dtype=np.float32) + np.float32(0.5)).astype(np.float32)
    ones = np.ones(16, np.float32)
    yield ("update_s32_f32", "b_ties", (16,),
           [("in", "b", b), ("in", "db", db), ("in", "lr", f32(1.0)), ("in", "qas", ones),
            ("out", "b", k.update_s32(b, db, 1.0, ones)[0])])


def all_cases() -> Iterator[Case]:
    # One generator (fixed seed) per kernel family, so adding cases to one leaves the others alone.
    yield from primitive_cases(np.random.default_rng(11))
    yield from conv_forward_cases(np.random.default_rng(12))
    yield from add_cases(np.random.default_rng(13))
    yield from pool_cases(np.random.default_rng(14))
    yield from quant_cases(np.random.default_rng(15))
    yield from backward_cases(np.random.default_rng(16))
    yield from update_cases(np.random.default_rng(17))
    yield from pw_dw_cases(np.random.default_rng(18))


# --- output ---------------------------------------------------------------------------------------

def _bit_tokens(flat: np.ndarray) -> list[str]:
    """Floats as the 8 hex digits of their bit pattern (exact on any libc)."""
    return [f"{v:08x}" for v in flat.view(np.uint32).tolist()]


def _checked(cases: Iterator[Case]) -> Iterator[Case]:
    for kernel, name, attrs, tensors in cases:
        want = KERNEL_ATTRS[kernel]
        if len(attrs) != len(want):
            raise ValueError(f"{kernel}/{name}: {len(attrs)} attributes, expected {want}")
        yield kernel, name, attrs, tensors


def write_vectors(path: Path) -> int:
    header = "# tinytrain int8 kernel vectors, generated by tests/c/gen_vectors_s8.py. Do not edit."
    return write_cases(path, header, _checked(all_cases()), _bit_tokens, per_line=12)


if __name__ == "__main__":
    sys.exit(main(sys.argv, "kernels_s8.vec", write_vectors))
