"""Generates test vectors for the C fp32 kernels from the numpy reference
(tinyhost.refexec.kernels_f32).

Usage: gen_vectors.py OUTDIR  -> writes OUTDIR/kernels_f32.vec (deterministic: fixed seeds).

Format (text, whitespace-separated tokens; '#' starts a comment line):
    case <kernel> <case-name>            kernel = the C function name without the tt_ prefix
    attrs <n> <int> ...                  the op's integer attributes in plan order (tinyhost.ops)
    in  f32 <role> <n> <value> ...       an input tensor, flattened row-major
    in  i32 <role> <n> <int> ...
    out f32 <role> <n> <value> ...       an expected output
    out i32 <role> <n> <int> ...
    end
float32 values are written with float.hex() ("0x1.8p+1"), which strtof reads back exactly.
Roles are the operand names of tinyhost.ops.OP_SPECS; an absent optional operand (a bias) is simply
not listed. Scalars are tensors of 1 element: softmax_xent's label and pred (i32) and loss (f32),
and sgd's lr (f32, an input: the step's learning rate).
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tinyhost.refexec import kernels_f32 as k
from tinyhost.refexec.kernels_f32 import ConvGeom, LinearGeom, PoolGeom
from vector_file import main, write_cases

Tensor = tuple[str, str, np.ndarray]  # (direction "in"/"out", role, values)
Case = tuple[str, str, tuple[int, ...], list[Tensor]]  # (kernel, name, attrs, tensors)


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# --- geometries: fixed cases that must be covered, then random ones -------------------------------

# (in_c, in_h, in_w, out_c, k_h, k_w, stride_h, stride_w, pad_h, pad_w, groups)
FIXED_CONV = [
    (3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1),
    (3, 7, 9, 5, 3, 3, 2, 2, 1, 1, 1),      # odd sizes, stride 2
    (4, 9, 7, 6, 3, 2, 1, 2, 1, 0, 2),      # groups 2, non-square kernel
    (4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 4),      # depthwise
    (3, 5, 5, 6, 3, 3, 2, 2, 0, 0, 3),      # depthwise, multiplier 2
    (2, 1, 17, 4, 1, 5, 1, 2, 0, 2, 1),     # Conv1d (H = 1)
    (1, 5, 5, 1, 5, 5, 1, 1, 0, 0, 1),      # 1x1 output
    (5, 6, 6, 3, 1, 1, 1, 1, 0, 0, 1),      # pointwise
    (2, 4, 4, 2, 3, 3, 3, 3, 2, 2, 1),      # large padding, stride 3
]
# (c, in_h, in_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w)
FIXED_POOL = [
    (3, 8, 8, 2, 2, 2, 2, 0, 0),
    (2, 7, 9, 3, 3, 2, 2, 1, 1),            # odd sizes, stride 2, padding
    (4, 6, 5, 3, 2, 1, 1, 1, 1),            # overlapping, non-square
    (2, 1, 15, 1, 3, 1, 2, 0, 1),           # 1-D
    (1, 5, 5, 5, 5, 5, 5, 2, 2),            # one window
]


def conv_geoms(rng: np.random.Generator, n_random: int) -> Iterator[ConvGeom]:
    for spec in FIXED_CONV:
        yield ConvGeom.infer(*spec)
    made = 0
    while made < n_random:
        groups = int(rng.choice([1, 1, 2, 3, 0]))  # 0: depthwise
        cg = int(rng.integers(1, 4))
        if groups == 0:
            groups = int(rng.integers(2, 7))
            in_c, out_c = groups, groups * int(rng.integers(1, 3))
        else:
            in_c, out_c = groups * cg, groups * int(rng.integers(1, 4))
        conv1d = rng.random() < 0.2
        in_h = 1 if conv1d else int(rng.integers(1, 12))
        in_w = int(rng.integers(1, 14))
        k_h = 1 if conv1d else int(rng.integers(1, 5))
        k_w = int(rng.integers(1, 6))
        s_h, s_w = (int(v) for v in rng.integers(1, 4, size=2))
        p_h = 0 if conv1d else int(rng.integers(0, k_h))
        p_w = int(rng.integers(0, k_w))
        if in_h + 2 * p_h < k_h or in_w + 2 * p_w < k_w:
            continue
        made += 1
        yield ConvGeom.infer(in_c, in_h, in_w, out_c, k_h, k_w, s_h, s_w, p_h, p_w, groups)


def pool_geoms(rng: np.random.Generator, n_random: int) -> Iterator[PoolGeom]:
    for spec in FIXED_POOL:
        yield PoolGeom.infer(*spec)
    made = 0
    while made < n_random:
        one_d = rng.random() < 0.2
        c = int(rng.integers(1, 6))
        in_h = 1 if one_d else int(rng.integers(1, 12))
        in_w = int(rng.integers(1, 14))
        k_h = 1 if one_d else int(rng.integers(1, 5))
        k_w = int(rng.integers(1, 5))
        s_h, s_w = (int(v) for v in rng.integers(1, 4, size=2))
        p_h, p_w = int(rng.integers(0, k_h // 2 + 1)), int(rng.integers(0, k_w // 2 + 1))
        if in_h + 2 * p_h < k_h or in_w + 2 * p_w < k_w:
            continue
        made += 1
        yield PoolGeom.infer(c, in_h, in_w, k_h, k_w, s_h, s_w, p_h, p_w)


# --- cases ----------------------------------------------------------------------------------------

def linear_cases(rng: np.random.Generator) -> Iterator[Case]:
    shapes = [(1, 1), (7, 5), (64, 10), (33, 17), (3, 40)]
    shapes += [(int(a), int(b)) for a, b in rng.integers(1, 50, size=(5, 2))]
    for i, (fi, fo) in enumerate(shapes):
        g = LinearGeom(fi, fo)
        x, w, b, dy = _rand(rng, fi), _rand(rng, fo, fi), _rand(rng, fo), _rand(rng, fo)
        bias = i % 3 != 1
        ins: list[Tensor] = [("in", "x", x), ("in", "w", w)] + ([("in", "b", b)] if bias else [])
        yield ("linear_f32", f"lin{i}", g.attrs(),
               ins + [("out", "y", k.linear(g, x, w, b if bias else None))])
        yield ("linear_grad_input_f32", f"lin{i}", g.attrs(),
               [("in", "dy", dy), ("in", "w", w), ("out", "dx", k.linear_grad_input(g, dy, w))])
        dw, db = k.linear_grad_weight(g, dy, x)
        yield ("linear_grad_weight_f32", f"lin{i}", g.attrs(),
               [("in", "dy", dy), ("in", "x", x), ("out", "dw", dw), ("out", "db", db)])


def conv_cases(rng: np.random.Generator) -> Iterator[Case]:
    for i, g in enumerate(conv_geoms(rng, 12)):
        x, w, b = _rand(rng, *g.x_shape), _rand(rng, *g.w_shape), _rand(rng, g.out_c)
        dy = _rand(rng, *g.y_shape)
        bias = i % 3 != 2
        ins: list[Tensor] = [("in", "x", x), ("in", "w", w)] + ([("in", "b", b)] if bias else [])
        yield ("conv2d_f32", f"conv{i}", g.attrs(),
               ins + [("out", "y", k.conv2d(g, x, w, b if bias else None))])
        yield ("conv2d_grad_input_f32", f"conv{i}", g.attrs(),
               [("in", "dy", dy), ("in", "w", w), ("out", "dx", k.conv2d_grad_input(g, dy, w))])
        dw, db = k.conv2d_grad_weight(g, dy, x)
        yield ("conv2d_grad_weight_f32", f"conv{i}", g.attrs(),
               [("in", "dy", dy), ("in", "x", x), ("out", "dw", dw), ("out", "db", db)])


def relu_cases(rng: np.random.Generator) -> Iterator[Case]:
    for i, n in enumerate([1, 2, 7, 64, 301] + [int(v) for v in rng.integers(1, 200, size=3)]):
        x, dy = _rand(rng, n), _rand(rng, n)
        x[:: 4] = 0.0  # exact zeros: relu'(0) = 0
        y = k.relu(x)
        yield ("relu_f32", f"relu{i}", (n,), [("in", "x", x), ("out", "y", y)])
        yield ("relu_grad_f32", f"relu{i}", (n,),
               [("in", "y", y), ("in", "dy", dy), ("out", "dx", k.relu_grad(y, dy))])


def pool_cases(rng: np.random.Generator) -> Iterator[Case]:
    for i, g in enumerate(pool_geoms(rng, 12)):
        x, dy = _rand(rng, *g.x_shape), _rand(rng, *g.y_shape)
        if i % 2 == 1:  # few distinct values: ties test first-maximum routing
            x = np.round(x).astype(np.float32)
        yield ("maxpool2d_f32", f"pool{i}", g.attrs(),
               [("in", "x", x), ("out", "y", k.maxpool2d(g, x))])
        yield ("maxpool2d_grad_f32", f"pool{i}", g.attrs(),
               [("in", "x", x), ("in", "dy", dy), ("out", "dx", k.maxpool2d_grad(g, x, dy))])
        yield ("avgpool2d_f32", f"pool{i}", g.attrs(),
               [("in", "x", x), ("out", "y", k.avgpool2d(g, x))])
        yield ("avgpool2d_grad_f32", f"pool{i}", g.attrs(),
               [("in", "dy", dy), ("out", "dx", k.avgpool2d_grad(g, dy))])


def softmax_cases(rng: np.random.Generator) -> Iterator[Case]:
    specs = [(1, 1.0), (2, 1.0), (10, 1.0), (10, 4.0), (37, 2.0), (10, 30.0), (10, 100.0),
             (100, 1.0)]
    for i, (n, scale) in enumerate(specs):
        for argmax_label in (False, True):
            logits = (rng.standard_normal(n) * scale).astype(np.float32)
            label = int(logits.argmax()) if argmax_label else int(rng.integers(0, n))
            loss, d, pred = k.softmax_xent(logits, label)
            yield ("softmax_xent_f32", f"xent{i}{'a' if argmax_label else ''}", (n,),
                   [("in", "logits", logits), ("in", "label", np.array([label], np.int32)),
                    ("out", "loss", np.array([loss], np.float32)), ("out", "dlogits", d),
                    ("out", "pred", np.array([pred], np.int32))])
    ties = np.array([0.5, 2.0, -1.0, 2.0, 2.0], np.float32)  # pred = the first maximum
    loss, d, pred = k.softmax_xent(ties, 3)
    yield ("softmax_xent_f32", "xent_ties", (5,),
           [("in", "logits", ties), ("in", "label", np.array([3], np.int32)),
            ("out", "loss", np.array([loss], np.float32)), ("out", "dlogits", d),
            ("out", "pred", np.array([pred], np.int32))])


def sgd_cases(rng: np.random.Generator) -> Iterator[Case]:
    for i, (n, lr) in enumerate([(1, 0.1), (17, 0.01), (1000, 0.5), (33, 1e-3), (8, 0.0)]):
        w, g = _rand(rng, n), _rand(rng, n)
        yield ("sgd_f32", f"sgd{i}", (n,),
               [("in", "w", w), ("in", "g", g), ("in", "lr", np.array([lr], np.float32)),
                ("out", "w", k.sgd(w, g, lr))])


def all_cases() -> Iterator[Case]:
    # One generator (fixed seed) per kernel family, so adding cases to one leaves the others alone.
    yield from linear_cases(np.random.default_rng(1))
    yield from conv_cases(np.random.default_rng(2))
    yield from relu_cases(np.random.default_rng(3))
    yield from pool_cases(np.random.default_rng(4))
    yield from softmax_cases(np.random.default_rng(5))
    yield from sgd_cases(np.random.default_rng(6))


def _hex(v: float) -> str:
    """float.hex() without the trailing zeros of its 52-bit mantissa ("0x1.8p+1", "0x1p-3")."""
    h = v.hex()
    if "p" not in h:  # inf, nan
        return h
    mant, exp = h.split("p")
    return mant.rstrip("0").rstrip(".") + "p" + exp


def _hex_tokens(flat: np.ndarray) -> list[str]:
    return [_hex(float(v)) for v in flat]


def write_vectors(path: Path) -> int:
    header = "# tinytrain fp32 kernel vectors, generated by tests/c/gen_vectors.py. Do not edit."
    return write_cases(path, header, all_cases(), _hex_tokens, per_line=8)


if __name__ == "__main__":
    sys.exit(main(sys.argv, "kernels_f32.vec", write_vectors))
