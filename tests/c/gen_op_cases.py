"""Single-op plans on random shapes, with the reference executor's results, for tests/c/test_ops.c.

Usage: gen_op_cases.py OUTDIR      (deterministic: fixed seeds)

Each case is a plan holding one op (plus the bindings every plan needs), the arena contents before
the op, and the bytes each of its outputs must hold after it (tinyhost.refexec, the specification).
The C test loads the plan (so the op's plan check runs), runs the op through the registration
table and compares every output byte: an op's check, run and kernel against the reference, on the
device's own code path. An op's device test is a case builder here (@cases(Opcode.X)).

OUTDIR/op_cases.bin is a sequence of records:
    name NUL  f32le lr  u32le plan length, plan  u32le arena length, arena before
    u32le n ranges, then per range: u32le offset, u32le mode (0: bytes equal, 1: f32 values within
    tt_test.h's tolerance), u32le nbytes, the expected bytes
"""
from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyhost.dtypes import DType
from tinyhost.ops import OP_SPECS, ActFunc, Opcode, make_attrs, scratch_bytes
from tinyhost.plan import (
    ARENA_ALIGN,
    BLOB_ALIGN,
    NONE,
    Bindings,
    Op,
    Plan,
    Tensor,
    TensorKind,
    decode_plan,
    encode_plan,
)
from tinyhost.quant import quantize_multiplier
from tinyhost.refexec.executor import RefExecutor

Rng = np.random.Generator


@dataclass
class Arg:
    """An operand: its value (inputs; outputs: initial contents), constant (in the blob) or not."""
    value: np.ndarray
    const: bool = False


@dataclass
class OpCase:
    name: str
    opcode: Opcode
    args: dict[str, Arg | str]  # by operand name; a str names the input an output writes in place
    attrs: dict[str, int]
    lr: float = 0.0
    skip_compare: set[str] = field(default_factory=set)  # outputs whose bytes are unspecified
    # f32 outputs whose kernels sum in another order than numpy (the fp32 convs): compared within
    # the kernels' tolerance (tt_test.h), not bit for bit.
    close: set[str] = field(default_factory=set)


BUILDERS: dict[Opcode, Callable[[Rng], Iterator[OpCase]]] = {}


def cases(opcode: Opcode) -> Callable[[Callable[[Rng], Iterator[OpCase]]], Callable]:
    def register(fn: Callable[[Rng], Iterator[OpCase]]) -> Callable[[Rng], Iterator[OpCase]]:
        BUILDERS[opcode] = fn
        return fn
    return register


def f32(rng: Rng, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def s8(rng: Rng, *shape: int, lo: int = -128) -> np.ndarray:
    return rng.integers(lo, 128, shape).astype(np.int8)


# --- building a one-op plan ----------------------------------------------------------------------

def build(case: OpCase) -> tuple[Plan, bytes]:
    """The plan and the arena contents before the op."""
    spec = OP_SPECS[case.opcode]
    tensors: list[Tensor] = []
    arena = bytearray()
    blob = bytearray()
    index: dict[str, int] = {}

    def add(name: str, value: np.ndarray, const: bool) -> int:
        dtype = {np.dtype(np.float32): DType.F32, np.dtype(np.int8): DType.S8,
                 np.dtype(np.int32): DType.S32}[value.dtype]
        raw = np.ascontiguousarray(value).tobytes()
        t = Tensor(name, dtype, tuple(value.shape) or (1,), TensorKind.ACTIVATION)
        if const:
            t.kind = TensorKind.PARAM_FROZEN
            blob.extend(b"\0" * (-len(blob) % BLOB_ALIGN))
            t.data_offset = len(blob)
            blob.extend(raw)
        else:
            arena.extend(b"\0" * (-len(arena) % ARENA_ALIGN))
            t.arena_offset = len(arena)
            arena.extend(raw)
        tensors.append(t)
        return len(tensors) - 1

    operands: list[int] = []
    for opnd in spec.operands:
        arg = case.args.get(opnd.name)
        if arg is None:
            assert opnd.optional, f"{case.name}: {opnd.name} is not optional"
            operands.append(NONE)
        elif isinstance(arg, str):
            operands.append(index[arg])
        else:
            index[opnd.name] = add(opnd.name, arg.value, arg.const)
            operands.append(index[opnd.name])
    n_in = len(spec.ins)
    bind = [add(n, v, False) for n, v in (("label", np.zeros(1, np.int32)),
                                           ("logits", np.zeros(1, np.float32)),
                                           ("loss", np.zeros(1, np.float32)),
                                           ("pred", np.zeros(1, np.int32)))]
    op = Op(case.opcode, operands[:n_in], operands[n_in:], make_attrs(case.opcode, case.attrs))
    size = len(arena) + (-len(arena) % 8)
    plan = Plan(arena_size=size, n_forward=1, bindings=Bindings(bind[1], *bind),
                num_classes=1, default_lr=case.lr, tensors=tensors, ops=[op], blob=bytes(blob),
                meta={"case": case.name})
    return plan, bytes(arena) + b"\0" * (size - len(arena))


def expected(case: OpCase, plan: Plan, before: bytes) -> list[tuple[int, int, bytes]]:
    ex = RefExecutor(plan)
    ex.arena[...] = np.frombuffer(before, np.uint8)
    ex.lr = np.float32(case.lr)
    ex.run(plan.ops)
    spec = OP_SPECS[case.opcode]
    out = []
    for name, t_index in zip(spec.outputs, plan.ops[0].outputs, strict=True):
        if t_index == NONE or name in case.skip_compare:
            continue
        t = plan.tensors[t_index]
        out.append((t.arena_offset, int(name in case.close),
                    ex.arena[t.arena_offset:t.arena_offset + t.nbytes].tobytes()))
    return out


# --- case builders -------------------------------------------------------------------------------

def _elementwise(opcode: Opcode, inputs: tuple[str, ...], out: str, in_place: str | None = None,
                 fn: Callable[[Rng, int], dict[str, np.ndarray]] | None = None) -> None:
    @cases(opcode)
    def build_cases(rng: Rng) -> Iterator[OpCase]:
        for n in (1, 7, 64, 301):
            vals = fn(rng, n) if fn else {k: f32(rng, n) for k in inputs}
            args: dict[str, Arg | str] = {k: Arg(v) for k, v in vals.items()}
            args[out] = in_place if in_place else Arg(np.zeros(n, np.float32))
            yield OpCase(f"{opcode.name}/n{n}", opcode, args, {"size": n}, lr=0.0625)


_elementwise(Opcode.RELU_F32, ("x",), "y")
_elementwise(Opcode.RELU_GRAD_F32, ("y", "dy"), "dx",
             fn=lambda rng, n: {"y": np.maximum(f32(rng, n), 0), "dy": f32(rng, n)})
_elementwise(Opcode.ADD_F32, ("a", "b"), "y", in_place="a")
_elementwise(Opcode.SGD_F32, ("w", "g"), "w_out", in_place="w")


def _act_input(rng: Rng, n: int) -> np.ndarray:
    """Values over every piece of the activations, their kinks (0, +-3, 6) included."""
    x = (f32(rng, n) * 4).astype(np.float32)
    x[: min(n, 5)] = np.array([0.0, -3.0, 3.0, 6.0, -0.0], np.float32)[: min(n, 5)]
    return x


@cases(Opcode.ACT_F32)
def _act_cases(rng: Rng) -> Iterator[OpCase]:
    for func in ActFunc:
        for n in (1, 9, 301):
            args: dict[str, Arg | str] = {"x": Arg(_act_input(rng, n))}
            args["y"] = "x" if n == 9 else Arg(np.zeros(n, np.float32))  # y may alias x
            if func == ActFunc.LEAKY_RELU:
                args["alpha"] = Arg(np.array([0.125 if n == 1 else 0.3], np.float32), const=True)
            yield OpCase(f"ACT_F32/{func.name}/n{n}", Opcode.ACT_F32, args,
                         {"size": n, "func": int(func)})


@cases(Opcode.ACT_GRAD_F32)
def _act_grad_cases(rng: Rng) -> Iterator[OpCase]:
    for func in ActFunc:
        for n in (1, 9, 301):
            x = _act_input(rng, n)
            by_y = func in (ActFunc.RELU6, ActFunc.SIGMOID, ActFunc.TANH)
            args: dict[str, Arg | str] = {"v": Arg(np.tanh(x) if by_y else x),
                                          "dy": Arg(f32(rng, n))}
            args["dx"] = "dy" if n == 9 else Arg(np.zeros(n, np.float32))  # dx may alias dy
            if func == ActFunc.LEAKY_RELU:
                args["alpha"] = Arg(np.array([0.3], np.float32), const=True)
            yield OpCase(f"ACT_GRAD_F32/{func.name}/n{n}", Opcode.ACT_GRAD_F32, args,
                         {"size": n, "func": int(func)})


@cases(Opcode.CONCAT_F32)
def _concat_cases(rng: Rng) -> Iterator[OpCase]:
    for na, nb in ((1, 1), (7, 64), (300, 3)):
        yield OpCase(f"CONCAT_F32/{na}+{nb}", Opcode.CONCAT_F32,
                     {"a": Arg(f32(rng, na)), "b": Arg(f32(rng, nb)),
                      "y": Arg(np.zeros(na + nb, np.float32))}, {"size_a": na, "size_b": nb})


@cases(Opcode.CONCAT_GRAD_F32)
def _concat_grad_cases(rng: Rng) -> Iterator[OpCase]:
    for na, nb, parts in ((1, 1, "ab"), (7, 64, "a"), (300, 3, "b"), (5, 6, "ab")):
        args: dict[str, Arg | str] = {"dy": Arg(f32(rng, na + nb))}
        for part, n in (("a", na), ("b", nb)):
            if part in parts:
                args[f"d{part}"] = Arg(np.zeros(n, np.float32))
        yield OpCase(f"CONCAT_GRAD_F32/{na}+{nb}/{parts}", Opcode.CONCAT_GRAD_F32, args,
                     {"size_a": na, "size_b": nb})


@cases(Opcode.PAD_W_F32)
def _pad_w_cases(rng: Rng) -> Iterator[OpCase]:
    # (rows, in_w, out_w, skip, lead): causal pad, crop, both, a row left all zeros, identity
    for rows, in_w, out_w, skip, lead in ((3, 8, 10, 0, 2), (4, 10, 8, 0, 0), (2, 9, 7, 2, 0),
                                          (5, 6, 6, 3, 3), (1, 4, 3, 5, 0), (2, 7, 7, 0, 0)):
        yield OpCase(f"PAD_W_F32/{rows}x{in_w}->{out_w}/s{skip}l{lead}", Opcode.PAD_W_F32,
                     {"x": Arg(f32(rng, rows, in_w)),
                      "y": Arg(np.full((rows, out_w), 7.0, np.float32))},
                     {"rows": rows, "in_w": in_w, "out_w": out_w, "skip": skip, "lead": lead})


@cases(Opcode.LINEAR_F32)
def _linear(rng: Rng) -> Iterator[OpCase]:
    for i, o, bias in ((1, 1, True), (13, 5, True), (40, 3, False)):
        args: dict[str, Arg | str] = {"x": Arg(f32(rng, i)), "w": Arg(f32(rng, o, i), const=True),
                                      "y": Arg(np.zeros(o, np.float32))}
        if bias:
            args["b"] = Arg(f32(rng, o))
        yield OpCase(f"LINEAR_F32/{i}x{o}", Opcode.LINEAR_F32, args,
                     {"in_features": i, "out_features": o})


@cases(Opcode.LINEAR_SGD_F32)
def _linear_sgd(rng: Rng) -> Iterator[OpCase]:
    for i, o, parts in ((1, 1, "wb"), (13, 5, "wb"), (40, 3, "w"), (9, 4, "b")):
        args: dict[str, Arg | str] = {"dy": Arg(f32(rng, o))}
        if "w" in parts:
            args |= {"x": Arg(f32(rng, i)), "w": Arg(f32(rng, o, i)), "w_out": "w"}
        if "b" in parts:
            args |= {"b": Arg(f32(rng, o)), "b_out": "b"}
        yield OpCase(f"LINEAR_SGD_F32/{i}x{o}/{parts}", Opcode.LINEAR_SGD_F32, args,
                     {"in_features": i, "out_features": o}, lr=0.0625)


def _conv_attrs(rng: Rng, groups_kind: str = "any") -> dict[str, int]:
    in_c = int(rng.integers(1, 5))
    groups = in_c if groups_kind == "depthwise" else (1 if rng.random() < 0.6 else in_c)
    out_c = groups * int(rng.integers(1, 3)) if groups > 1 else int(rng.integers(1, 6))
    k_h, k_w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    in_h, in_w = int(rng.integers(k_h, 9)), int(rng.integers(k_w, 9))
    s_h, s_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    p_h, p_w = int(rng.integers(0, k_h)), int(rng.integers(0, k_w))
    return {"in_c": in_c, "in_h": in_h, "in_w": in_w, "out_c": out_c,
            "out_h": (in_h + 2 * p_h - k_h) // s_h + 1, "out_w": (in_w + 2 * p_w - k_w) // s_w + 1,
            "k_h": k_h, "k_w": k_w, "stride_h": s_h, "stride_w": s_w, "pad_h": p_h, "pad_w": p_w,
            "groups": groups}


def _conv_numel(a: dict[str, int]) -> tuple[int, int, int]:
    x = a["in_c"] * a["in_h"] * a["in_w"]
    y = a["out_c"] * a["out_h"] * a["out_w"]
    w = a["out_c"] * (a["in_c"] // a["groups"]) * a["k_h"] * a["k_w"]
    return x, y, w


@cases(Opcode.CONV2D_F32)
def _conv2d(rng: Rng) -> Iterator[OpCase]:
    for k in range(6):
        a = _conv_attrs(rng)
        x, y, w = _conv_numel(a)
        args: dict[str, Arg | str] = {"x": Arg(f32(rng, x)),
                                      "w": Arg(f32(rng, w), const=k % 2 == 0),
                                      "y": Arg(np.zeros(y, np.float32))}
        if k % 3:
            args["b"] = Arg(f32(rng, a["out_c"]))
        yield OpCase(f"CONV2D_F32/{k}", Opcode.CONV2D_F32, args, a, close={"y"})


@cases(Opcode.CONV2D_GRAD_WEIGHT_F32)
def _conv2d_grad_weight(rng: Rng) -> Iterator[OpCase]:
    for k in range(6):
        a = _conv_attrs(rng)
        x, y, w = _conv_numel(a)
        args: dict[str, Arg | str] = {"dy": Arg(f32(rng, y)),
                                      "db": Arg(np.zeros(a["out_c"], np.float32))}
        if k % 3:  # 0: a bias-only layer (no x, no dw)
            args |= {"x": Arg(f32(rng, x)), "dw": Arg(np.zeros(w, np.float32))}
        yield OpCase(f"CONV2D_GRAD_WEIGHT_F32/{k}", Opcode.CONV2D_GRAD_WEIGHT_F32, args, a,
                     close={"dw", "db"})


def _requant(rng: Rng, out_c: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(s)) for s in rng.uniform(0.001, 0.9, out_c)]
    return (np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32))


def _conv_s8_cases(opcode: Opcode, kind: str) -> None:
    @cases(opcode)
    def build_cases(rng: Rng) -> Iterator[OpCase]:
        for k in range(8):
            a = _conv_attrs(rng, kind)
            x, y, w = _conv_numel(a)
            mult, shift = _requant(rng, a["out_c"])
            lo = int(rng.integers(-128, 0))
            a |= {"x_zero": int(rng.integers(-128, 128)), "y_zero": int(rng.integers(-20, 20)),
                  "act_min": lo, "act_max": int(rng.integers(lo, 128)), "n_rows": 0}
            args: dict[str, Arg | str] = {
                "x": Arg(s8(rng, x)), "w": Arg(s8(rng, w, lo=-127), const=True),
                "mult": Arg(mult, const=True), "shift": Arg(shift, const=True),
                "y": Arg(np.zeros(y, np.int8)), "mask": Arg(np.zeros((y + 7) // 8, np.int8)),
                "scratch": Arg(np.zeros(scratch_bytes(opcode, a), np.int8))}
            if k % 2:
                args["bias"] = Arg(rng.integers(-5000, 5000, a["out_c"]).astype(np.int32),
                                   const=True)
            if k % 3 == 1:  # trained rows standing in for some output channels
                ch = np.sort(rng.permutation(a["out_c"])[:int(rng.integers(1, a["out_c"] + 1))])
                a["n_rows"] = len(ch)
                args["w_rows"] = Arg(s8(rng, len(ch) * (w // a["out_c"]), lo=-127))
                args["channels"] = Arg(ch.astype(np.int32), const=True)
            yield OpCase(f"{opcode.name}/{k}", opcode, args, a,
                         skip_compare={"scratch"} | ({"mask"} if y % 8 else set()))


_conv_s8_cases(Opcode.CONV2D_S8, "any")
_conv_s8_cases(Opcode.DEPTHWISE_CONV2D_S8, "depthwise")


@cases(Opcode.CONV2D_S8_SGD_F32)
def _conv2d_s8_sgd(rng: Rng) -> Iterator[OpCase]:
    for k in range(8):
        rule = k % 2
        a = _conv_attrs(rng, "depthwise" if k % 4 == 3 else "any")
        x, y, w = _conv_numel(a)
        row = w // a["out_c"]
        ch = np.sort(rng.permutation(a["out_c"])[:int(rng.integers(1, a["out_c"] + 1))])
        rows = a["out_c"] if k % 3 == 0 else len(ch)
        rows_w = s8(rng, rows * row, lo=-127)
        args: dict[str, Arg | str] = {
            "dz": Arg(f32(rng, y)), "x": Arg(s8(rng, x)), "w": Arg(rows_w),
            "qas": Arg(rng.uniform(1, 300, rows).astype(np.float32), const=True), "w_out": "w",
            "scratch": Arg(np.zeros(4 * row, np.int8))}
        if k % 3:
            args["channels"] = Arg(ch.astype(np.int32), const=True)
        if rule:
            args |= {"master": Arg(rows_w.astype(np.float32) + f32(rng, rows * row) * 0.3),
                     "master_out": "master"}
        if k % 2 == 0:
            args["db"] = Arg(np.zeros(a["out_c"], np.float32))
        if k % 4 < 2:  # a parameter group's learning-rate scale
            args["lr_scale"] = Arg(np.array([rng.uniform(0.01, 3)], np.float32), const=True)
        a |= {"x_zero": int(rng.integers(-128, 128)), "n_channels": rows, "rule": rule}
        yield OpCase(f"CONV2D_S8_SGD_F32/{k}", Opcode.CONV2D_S8_SGD_F32, args, a, lr=0.01,
                     skip_compare={"scratch"})


@cases(Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32)
def _depthwise_grad_input(rng: Rng) -> Iterator[OpCase]:
    for k in range(8):
        a = _conv_attrs(rng, "depthwise")
        a["out_c"] = a["in_c"]  # multiplier 1
        if k % 2:  # same size, so dx may be dz
            a |= {"stride_h": 1, "stride_w": 1, "pad_h": a["k_h"] // 2, "pad_w": a["k_w"] // 2}
            a["k_h"], a["k_w"] = 2 * a["pad_h"] + 1, 2 * a["pad_w"] + 1
            a["out_h"], a["out_w"] = a["in_h"], a["in_w"]
        x, y, w = _conv_numel(a)
        args: dict[str, Arg | str] = {
            "dz": Arg(f32(rng, y)), "w": Arg(s8(rng, w, lo=-127), const=True),
            "scratch": Arg(np.zeros(4 * a["in_h"] * a["in_w"], np.int8))}
        args["dx"] = "dz" if k % 4 == 1 else Arg(np.zeros(x, np.float32))
        a["n_rows"] = 0
        if k % 3 == 2:
            ch = np.sort(rng.permutation(a["out_c"])[:int(rng.integers(1, a["out_c"] + 1))])
            a["n_rows"] = len(ch)
            args["w_rows"] = Arg(s8(rng, len(ch) * (w // a["out_c"]), lo=-127))
            args["channels"] = Arg(ch.astype(np.int32), const=True)
        yield OpCase(f"DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32/{k}",
                     Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32, args, a, skip_compare={"scratch"})


@cases(Opcode.CONV_DW_PW_S8)
def _conv_dw_pw(rng: Rng) -> Iterator[OpCase]:
    for k in range(8):
        c = _conv_attrs(rng)
        c |= {"groups": 1, "out_c": int(rng.integers(1, 6))}
        mult = 1 if k % 3 else 2
        dk_h, dk_w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        ds_h, ds_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        dp_h, dp_w = int(rng.integers(0, dk_h)), int(rng.integers(0, dk_w))
        if c["out_h"] + 2 * dp_h < dk_h or c["out_w"] + 2 * dp_w < dk_w:
            dk_h = dk_w = 1
            dp_h = dp_w = 0
        d = {"in_c": c["out_c"], "in_h": c["out_h"], "in_w": c["out_w"],
             "out_c": c["out_c"] * mult, "k_h": dk_h, "k_w": dk_w, "stride_h": ds_h,
             "stride_w": ds_w, "pad_h": dp_h, "pad_w": dp_w, "groups": c["out_c"],
             "out_h": (c["out_h"] + 2 * dp_h - dk_h) // ds_h + 1,
             "out_w": (c["out_w"] + 2 * dp_w - dk_w) // ds_w + 1}
        q = {"in_c": d["out_c"], "in_h": d["out_h"], "in_w": d["out_w"],
             "out_c": int(rng.integers(1, 6)), "out_h": d["out_h"], "out_w": d["out_w"],
             "k_h": 1, "k_w": 1, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0,
             "groups": 1}
        attrs: dict[str, int] = {}
        args: dict[str, Arg | str] = {}
        for prefix, g in (("c_", c), ("d_", d), ("p_", q)):
            attrs |= {prefix + n: v for n, v in g.items()}
            _, _, w = _conv_numel(g)
            mult_q, shift_q = _requant(rng, g["out_c"])
            args |= {prefix + "w": Arg(s8(rng, w, lo=-127), const=True),
                     prefix + "mult": Arg(mult_q, const=True),
                     prefix + "shift": Arg(shift_q, const=True)}
            if k % 2:
                args[prefix + "bias"] = Arg(rng.integers(-3000, 3000, g["out_c"])
                                            .astype(np.int32), const=True)
        zeros = [int(v) for v in rng.integers(-20, 20, 4)]
        attrs |= {"x_zero": zeros[0], "c_zero": zeros[1], "c_act_min": -128, "c_act_max": 127,
                  "d_zero": zeros[2], "d_act_min": -100, "d_act_max": 120, "y_zero": zeros[3],
                  "act_min": -128, "act_max": 100}
        x, _, _ = _conv_numel(c)
        _, y, _ = _conv_numel(q)
        args |= {"x": Arg(s8(rng, x)), "y": Arg(np.zeros(y, np.int8)),
                 "scratch": Arg(np.zeros(scratch_bytes(Opcode.CONV_DW_PW_S8, attrs), np.int8))}
        yield OpCase(f"CONV_DW_PW_S8/{k}", Opcode.CONV_DW_PW_S8, args, attrs,
                     skip_compare={"scratch"})


@cases(Opcode.UPDATE_S8_F32)
def _update_s8(rng: Rng) -> Iterator[OpCase]:
    for rule in (0, 1):
        for rows, row_size in ((1, 9), (4, 27), (7, 3)):
            n = rows * row_size
            w = s8(rng, n, lo=-127)
            args: dict[str, Arg | str] = {
                "w": Arg(w), "dw": Arg(f32(rng, n)),
                "qas": Arg(rng.uniform(1, 400, rows).astype(np.float32), const=True),
                "w_out": "w"}
            if rule:
                args |= {"master": Arg(w.astype(np.float32) + f32(rng, n) * 0.3),
                         "master_out": "master"}
            if rows != 1:  # a parameter group's learning-rate scale
                args["lr_scale"] = Arg(np.array([rng.uniform(0.01, 3)], np.float32), const=True)
            yield OpCase(f"UPDATE_S8_F32/rule{rule}/{rows}x{row_size}", Opcode.UPDATE_S8_F32,
                         args, {"rows": rows, "row_size": row_size, "rule": rule}, lr=0.01)


def _pool_attrs(rng: Rng) -> dict[str, int]:
    k_h, k_w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    in_h, in_w = int(rng.integers(k_h, 10)), int(rng.integers(k_w, 10))
    s_h, s_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    p_h, p_w = int(rng.integers(0, k_h // 2 + 1)), int(rng.integers(0, k_w // 2 + 1))
    return {"c": int(rng.integers(1, 5)), "in_h": in_h, "in_w": in_w,
            "out_h": (in_h + 2 * p_h - k_h) // s_h + 1, "out_w": (in_w + 2 * p_w - k_w) // s_w + 1,
            "k_h": k_h, "k_w": k_w, "stride_h": s_h, "stride_w": s_w, "pad_h": p_h, "pad_w": p_w}


def _pool_cases(opcode: Opcode, operands: Callable[[Rng, int, int], dict[str, Arg | str]],
                extra: Callable[[Rng], dict[str, int]] | None = None,
                close: frozenset[str] = frozenset()) -> None:
    @cases(opcode)
    def build_cases(rng: Rng) -> Iterator[OpCase]:
        for k in range(6):
            a = _pool_attrs(rng)
            x, y = a["c"] * a["in_h"] * a["in_w"], a["c"] * a["out_h"] * a["out_w"]
            yield OpCase(f"{opcode.name}/{k}", opcode, operands(rng, x, y),
                         a | (extra(rng) if extra else {}), close=set(close))


_pool_cases(Opcode.MAXPOOL2D_F32, lambda rng, x, y: {"x": Arg(f32(rng, x)),
                                                      "y": Arg(np.zeros(y, np.float32))})
# The fp32 average pools sum in another order than numpy: within tolerance.
_pool_cases(Opcode.AVGPOOL2D_F32, lambda rng, x, y: {"x": Arg(f32(rng, x)),
                                                      "y": Arg(np.zeros(y, np.float32))},
            close=frozenset({"y"}))
_pool_cases(Opcode.MAXPOOL2D_GRAD_F32, lambda rng, x, y: {
    "x": Arg(f32(rng, x)), "dy": Arg(f32(rng, y)), "dx": Arg(np.zeros(x, np.float32))})
_pool_cases(Opcode.AVGPOOL2D_GRAD_F32, lambda rng, x, y: {
    "dy": Arg(f32(rng, y)), "dx": Arg(np.zeros(x, np.float32))}, close=frozenset({"dx"}))
_pool_cases(Opcode.AVGPOOL2D_S8, lambda rng, x, y: {"x": Arg(s8(rng, x)),
                                                     "y": Arg(np.zeros(y, np.int8))},
            lambda rng: {"x_zero": int(rng.integers(-128, 128)), "act_min": -100, "act_max": 110})


@cases(Opcode.SOFTMAX_XENT_F32)
def _softmax_xent(rng: Rng) -> Iterator[OpCase]:
    for n in (1, 2, 10, 37):
        args: dict[str, Arg | str] = {
            "logits": Arg(f32(rng, n) * 4), "label": Arg(np.array([rng.integers(0, n)], np.int32)),
            "loss": Arg(np.zeros(1, np.float32)), "dlogits": Arg(np.zeros(n, np.float32)),
            "pred": Arg(np.zeros(1, np.int32))}
        yield OpCase(f"SOFTMAX_XENT_F32/{n}", Opcode.SOFTMAX_XENT_F32, args, {"num_classes": n})


@cases(Opcode.ADD_S8)
def _add_s8(rng: Rng) -> Iterator[OpCase]:
    from tinyhost.quant import AddParams
    for n in (1, 9, 100):
        p = AddParams.from_scales(float(rng.uniform(0.01, 0.1)), int(rng.integers(-30, 30)),
                                  float(rng.uniform(0.01, 0.1)), int(rng.integers(-30, 30)),
                                  float(rng.uniform(0.05, 0.2)), int(rng.integers(-30, 30)),
                                  -120, 127)
        attrs = {"size": n, "x1_zero": p.x1_zero, "x2_zero": p.x2_zero, "y_zero": p.y_zero,
                 "left_shift": p.left_shift, "x1_mult": p.x1_multiplier, "x1_shift": p.x1_shift,
                 "x2_mult": p.x2_multiplier, "x2_shift": p.x2_shift, "y_mult": p.y_multiplier,
                 "y_shift": p.y_shift, "act_min": p.act_min, "act_max": p.act_max}
        args: dict[str, Arg | str] = {"x1": Arg(s8(rng, n)), "x2": Arg(s8(rng, n)),
                                      "y": Arg(np.zeros(n, np.int8)),
                                      "mask": Arg(np.zeros((n + 7) // 8, np.int8))}
        yield OpCase(f"ADD_S8/{n}", Opcode.ADD_S8, args, attrs,
                     skip_compare={"mask"} if n % 8 else set())


@cases(Opcode.DEQUANTIZE_S8_F32)
def _dequantize(rng: Rng) -> Iterator[OpCase]:
    for n in (1, 10, 77):
        args: dict[str, Arg | str] = {"x": Arg(s8(rng, n)),
                                      "scale": Arg(np.array([0.0371], np.float32), const=True),
                                      "y": Arg(np.zeros(n, np.float32))}
        yield OpCase(f"DEQUANTIZE_S8_F32/{n}", Opcode.DEQUANTIZE_S8_F32, args,
                     {"size": n, "zero": int(rng.integers(-128, 128))})


@cases(Opcode.REQUANT_GRAD_F32)
def _requant_grad(rng: Rng) -> Iterator[OpCase]:
    for channels, plane in ((1, 8), (3, 5), (6, 16)):
        n = channels * plane
        args: dict[str, Arg | str] = {
            "mask": Arg(s8(rng, (n + 7) // 8)), "dy": Arg(f32(rng, n)),
            "eff_scale": Arg(rng.uniform(0.01, 3, channels).astype(np.float32), const=True),
            "dz": "dy" if channels == 3 else Arg(np.zeros(n, np.float32))}
        yield OpCase(f"REQUANT_GRAD_F32/{channels}x{plane}", Opcode.REQUANT_GRAD_F32, args,
                     {"channels": channels, "plane": plane})


@cases(Opcode.UPDATE_S32_F32)
def _update_s32(rng: Rng) -> Iterator[OpCase]:
    for rule in (0, 1):
        for n in (1, 6, 33):
            b = rng.integers(-10000, 10000, n).astype(np.int32)
            args: dict[str, Arg | str] = {
                "b": Arg(b), "db": Arg(f32(rng, n)),
                "qas": Arg(rng.uniform(1e3, 1e5, n).astype(np.float32), const=True), "b_out": "b"}
            if rule:
                args |= {"master": Arg(b.astype(np.float32) + f32(rng, n)), "master_out": "master"}
            if n != 1:  # a parameter group's learning-rate scale
                args["lr_scale"] = Arg(np.array([rng.uniform(0.01, 3)], np.float32), const=True)
            yield OpCase(f"UPDATE_S32_F32/rule{rule}/{n}", Opcode.UPDATE_S32_F32, args,
                         {"size": n, "rule": rule}, lr=0.01)


@cases(Opcode.OPTIM_STEP_F32)
def _optim_step(rng: Rng) -> Iterator[OpCase]:
    # (size, accumulate, phase, momentum): accumulating, applying (phase N - 1, and a phase
    # outside [0, N) as a pushed state could hold), momentum alone and with accumulation
    for n, acc, phase, mom in ((1, 1, 0, 0.9), (37, 1, 0, 0.5), (7, 3, 0, None),
                               (64, 3, 2, None), (9, 4, 7, None), (5, 2, -1, None),
                               (33, 3, 1, 0.9), (33, 3, 2, 0.9), (12, 2, 0, 0.0)):
        args: dict[str, Arg | str] = {"g": Arg(f32(rng, n)), "g_out": "g"}
        if acc > 1:
            args |= {"acc": Arg(f32(rng, n) * 3), "acc_out": "acc",
                     "phase": Arg(np.array([phase], np.int32))}
        if mom is not None:
            args |= {"v": Arg(f32(rng, n)), "v_out": "v",
                     "momentum": Arg(np.array([mom], np.float32), const=True)}
        yield OpCase(f"OPTIM_STEP_F32/{n}/acc{acc}/phase{phase}/m{mom}", Opcode.OPTIM_STEP_F32,
                     args, {"size": n, "accumulate": acc})


@cases(Opcode.STEP_PHASE_S32)
def _step_phase(rng: Rng) -> Iterator[OpCase]:
    for period, phase in ((1, 0), (2, 0), (2, 1), (5, 3), (5, 4), (4, 9), (3, -2)):
        yield OpCase(f"STEP_PHASE_S32/{period}/{phase}", Opcode.STEP_PHASE_S32,
                     {"phase": Arg(np.array([phase], np.int32)), "phase_out": "phase"},
                     {"period": period})


def main(outdir: str) -> int:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    records = bytearray()
    count = 0
    for opcode, builder in sorted(BUILDERS.items()):
        rng = np.random.default_rng(int(opcode))
        for case in builder(rng):
            plan, before = build(case)
            data = encode_plan(plan)
            decode_plan(data)  # the host's check accepts it, as the device's must
            ranges = expected(case, plan, before)
            records += case.name.encode() + b"\0" + struct.pack("<fI", case.lr, len(data)) + data
            records += struct.pack("<I", len(before)) + before + struct.pack("<I", len(ranges))
            for offset, close, raw in ranges:
                records += struct.pack("<III", offset, close, len(raw)) + raw
            count += 1
    (out / "op_cases.bin").write_bytes(bytes(records))
    print(f"{count} op cases for {len(BUILDERS)} ops")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
