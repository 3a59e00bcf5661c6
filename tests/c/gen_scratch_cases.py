"""Kernel scratch sizes: the host's formulas (tinyhost.ops) against the C kernels' own queries.

Usage: gen_scratch_cases.py OUTDIR      (deterministic: fixed seeds)

Writes OUTDIR/scratch_cases.txt, one case a line:
    conv2d    <13 conv2d attributes> <bytes>      tt_conv2d_s8_get_buffer_size
    depthwise <13 conv2d attributes> <bytes>      tt_depthwise_conv2d_s8_get_buffer_size
    pw_dw     <13 pw attributes> <13 dw attributes> <bytes>   tt_pw_dw_conv2d_s8_get_buffer_size
(attributes in tinyhost.ops.CONV_ATTRS order, the fields of tt_conv2d_params; bytes is what
tinyhost.ops.scratch_bytes says, negative (TT_ERR_ARG) where it refuses the geometry). tests/c/
test_scratch.c calls the C function on each and requires the same number.

The geometries: small valid ones of every kind (groups 1, grouped, depthwise with multipliers,
padding, strides), the same with one field moved off (often invalid), and large ones up to int32's
limits, where the sizes pass INT32_MAX. Geometries on which the C arithmetic itself would overflow
(undefined behaviour, which the sanitizers stop) are left out and counted: see `c_overflows`.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

from tinyhost.ops import (  # the C parameter check too: what the overflow test must pass first
    CONV_ATTRS,
    INT32_MAX,
    INT32_MIN,
    _conv2d_params_ok,
    conv2d_s8_buffer_size,
    depthwise_conv2d_s8_buffer_size,
    pw_dw_conv2d_s8_buffer_size,
)

INT64_MAX = 2**63 - 1
Geometry = dict[str, int]


def conv(rng: random.Random, depthwise: bool = False, big: bool = False) -> Geometry:
    """A valid conv2d geometry (depthwise: groups == in_c, out_c a multiple)."""
    def size(lo: int, hi: int) -> int:
        if big:  # log-uniform up to hi
            return max(lo, int(2 ** rng.uniform(0, hi.bit_length())))
        return rng.randint(lo, hi)
    top = INT32_MAX if big else 9
    groups = size(1, 6 if not big else INT32_MAX)
    in_c = groups * size(1, 4 if not big else INT32_MAX) if not depthwise else groups
    out_c = groups * size(1, 4 if not big else INT32_MAX)
    in_c, out_c = min(in_c, INT32_MAX), min(out_c, INT32_MAX)
    g: Geometry = {"in_c": in_c, "out_c": out_c, "groups": groups}
    for axis in ("h", "w"):
        k = size(1, 5 if not big else INT32_MAX)
        pad = size(0, 2 if not big else INT32_MAX // 2)
        stride = size(1, 3 if not big else INT32_MAX)
        in_ = size(1, top)
        if not big:
            in_ = max(in_, k - 2 * pad)
        out = (in_ + 2 * pad - k) // stride + 1 if in_ + 2 * pad >= k else 1
        g |= {f"in_{axis}": in_, f"out_{axis}": out, f"k_{axis}": k, f"stride_{axis}": stride,
              f"pad_{axis}": pad}
    return {n: min(g[n], INT32_MAX) for n in CONV_ATTRS}  # int32 fields (big ones may clip)


def nudge(rng: random.Random, g: Geometry) -> Geometry:
    """One field moved: a neighbour, 0, -1, int32's edges."""
    out = dict(g)
    name = rng.choice(CONV_ATTRS)
    v = out[name]
    out[name] = rng.choice([v + 1, v - 1, 0, -1, 2 * v, INT32_MAX, INT32_MIN, v // 2])
    out[name] = max(INT32_MIN, min(INT32_MAX, out[name]))
    return out


def pw_dw(rng: random.Random, big: bool = False) -> tuple[Geometry, Geometry]:
    """A chain: a groups-1 conv, then a depthwise conv over its output."""
    pw = conv(rng, big=big)
    pw["groups"] = 1
    dw = conv(rng, depthwise=True, big=big)
    mult = max(1, dw["out_c"] // max(dw["in_c"], 1))
    dw |= {"in_c": pw["out_c"], "groups": pw["out_c"], "in_h": pw["out_h"],
           "in_w": pw["out_w"]}
    dw["out_c"] = min(INT32_MAX, pw["out_c"] * mult)
    for axis in ("h", "w"):
        padded = dw[f"in_{axis}"] + 2 * dw[f"pad_{axis}"]
        if padded < dw[f"k_{axis}"]:
            dw[f"k_{axis}"] = max(1, padded)
        dw[f"out_{axis}"] = min(INT32_MAX, (padded - dw[f"k_{axis}"]) // dw[f"stride_{axis}"] + 1)
    return pw, dw


def c_overflows(g: Geometry) -> bool:
    """Whether tt_depthwise_conv2d_s8_get_buffer_size's arithmetic overflows in C for g (once
    its parameter check has passed): even(k_w) in int32 at k_w == INT32_MAX, the entries or
    bytes past int64. The other two formulas cannot overflow past their parameter checks."""
    if not _conv2d_params_ok(g) or g["groups"] != g["in_c"]:
        return False
    if g["k_w"] == INT32_MAX:
        return True
    row = (g["in_w"] + 2 * g["pad_w"] + 2) & ~1
    mult = g["out_c"] // g["in_c"]
    terms = [2 * g["k_h"], 2 * g["k_h"] * row, mult * g["k_h"],
             mult * g["k_h"] * (g["k_w"] + (g["k_w"] & 1))]
    entries = terms[1] + terms[3]
    return any(abs(t) > INT64_MAX for t in [*terms, entries, 2 * entries])


def main(outdir: Path) -> None:
    rng = random.Random(2024)
    lines: list[str] = []
    skipped = 0

    def row(kind: str, geometries: list[Geometry], nbytes: int) -> None:
        values = [str(g[n]) for g in geometries for n in CONV_ATTRS]
        lines.append(" ".join([kind, *values, str(nbytes)]))

    for _ in range(1500):
        for depthwise in (False, True):
            for big in (False, False, True):
                g = conv(rng, depthwise, big)
                for h in (g, nudge(rng, g)):
                    if c_overflows(h):
                        skipped += 1
                        continue
                    row("conv2d", [h], conv2d_s8_buffer_size(h))
                    row("depthwise", [h], depthwise_conv2d_s8_buffer_size(h))
    for _ in range(3000):
        pw, dw = pw_dw(rng, big=rng.random() < 0.3)
        cases = [(pw, dw), (nudge(rng, pw), dw), (pw, nudge(rng, dw))]
        for a, b in cases:
            one = b | {"out_c": b["out_c"] // b["in_c"] if b["in_c"] > 0 else b["out_c"],
                       "in_c": 1, "groups": 1}
            if c_overflows(one):
                skipped += 1
                continue
            row("pw_dw", [a, b], pw_dw_conv2d_s8_buffer_size(a, b))
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "scratch_cases.txt").write_text(
        f"# generated by tests/c/gen_scratch_cases.py; {skipped} geometries on which the C "
        "arithmetic overflows left out\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen_scratch_cases.py OUTDIR")
    main(Path(sys.argv[1]))
