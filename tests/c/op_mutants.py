"""Mutated single-op plans: every op's plan check, the firmware's against the host's.

For every op of the registry (tinyhost.ops.OP_DEFS) a valid one-op plan (`base_plans`), then
systematic mutations of it (`op_mutants`): each attribute set to its neighbours, its range's
edges and int32's, with the operands left as they were and, where the attributes still fit
together, with the operands resized to them (so the sizes, the scratch formulas and the
impossible geometries are compared at their boundaries); every subset of the optional operands
(crossed with the attributes that say which must be there); every operand slot pointing at every
tensor, at none and past the table; each operand's tensor with another dtype, another size, moved
between the arena and the blob; the constants' values at the edges the checks test (shifts,
scales, channel indices); in-place outputs elsewhere; counts and opcodes changed.

tests/c/gen_plans.py writes them into mutants.bin with the host's verdict, which the firmware
must share (tests/c/test_plan.c); where the host refuses an op, the record also names the words
the firmware's refusal must contain (`firmware_words`), so the firmware is seen to refuse it for
the same reason. tests/host/test_plan_check.py checks that these mutants reach every refusal in
every op's check function (firmware/runtime/ops/<name>.c).
"""
from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator

import numpy as np

from tinyhost.dtypes import DType
from tinyhost.ops import INT32_MAX, INT32_MIN, OP_DEFS, OP_SPECS, Opcode, OpDef
from tinyhost.plan import (
    ARENA_ALIGN,
    BLOB_ALIGN,
    NONE,
    Bindings,
    Op,
    Plan,
    Tensor,
    TensorKind,
)
from tinyhost.plan_check import plan_problem


def _geometry(spec: str) -> dict[str, int]:
    """'in_c=2 in_h=5' -> {"in_c": 2, "in_h": 5}."""
    return {k: int(v) for k, v in (w.split("=") for w in spec.split())}


_CONV = _geometry("in_c=2 in_h=5 in_w=4 out_c=4 out_h=3 out_w=4 k_h=3 k_w=3 stride_h=2 "
                  "stride_w=1 pad_h=1 pad_w=1 groups=2")
_POOL = _geometry("c=2 in_h=5 in_w=4 out_h=3 out_w=2 k_h=3 k_w=2 stride_h=2 stride_w=2 pad_h=1 "
                  "pad_w=0")
_ACT = _geometry("act_min=-100 act_max=120")
_PW = _geometry("in_c=2 in_h=4 in_w=5 out_c=3 out_h=4 out_w=5 k_h=1 k_w=1 stride_h=1 "
                "stride_w=1 pad_h=0 pad_w=0 groups=1")
_DW = _geometry("in_c=3 in_h=4 in_w=5 out_c=6 out_h=2 out_w=5 k_h=3 k_w=3 stride_h=2 "
                "stride_w=1 pad_h=1 pad_w=1 groups=3")
_LINEAR = _geometry("in_features=3 out_features=2")
_G = _geometry

# A valid geometry for every op, by name (several where an attribute decides which operands exist).
BASE_ATTRS: dict[str, list[dict[str, int]]] = {
    "LINEAR_F32": [_LINEAR],
    "OPTIM_STEP_F32": [_G("size=5 accumulate=3")],
    "STEP_PHASE_S32": [_G("period=3")],
    "LINEAR_GRAD_INPUT_F32": [_LINEAR],
    "LINEAR_GRAD_WEIGHT_F32": [_LINEAR],
    "CONV2D_F32": [_CONV],
    "CONV2D_GRAD_INPUT_F32": [_CONV],
    "CONV2D_GRAD_WEIGHT_F32": [_CONV],
    "RELU_F32": [_G("size=5")],
    "RELU_GRAD_F32": [_G("size=5")],
    "MAXPOOL2D_F32": [_POOL],
    "MAXPOOL2D_GRAD_F32": [_POOL],
    "AVGPOOL2D_F32": [_POOL],
    "AVGPOOL2D_GRAD_F32": [_POOL],
    "SOFTMAX_XENT_F32": [_G("num_classes=3")],
    "SGD_F32": [_G("size=5")],
    "CONV2D_S8": [_CONV | _ACT | _G("x_zero=3 y_zero=-2 n_rows=2"),
                  _CONV | _ACT | _G("x_zero=0 y_zero=0 n_rows=0")],
    "DEPTHWISE_CONV2D_S8": [_CONV | _ACT | _G("out_c=4 groups=2 x_zero=3 y_zero=-2 n_rows=3"),
                            _CONV | _ACT | _G("out_c=2 groups=2 x_zero=0 y_zero=0 n_rows=0")],
    "ADD_S8": [_ACT | _G(f"size=6 x1_zero=1 x2_zero=-3 y_zero=2 left_shift=20 "
                         f"x1_mult={1 << 30} x1_shift=-1 x2_mult={1 << 30} x2_shift=-2 "
                         f"y_mult={1 << 30} y_shift=-20")],
    "AVGPOOL2D_S8": [_POOL | _ACT | _G("x_zero=-5")],
    "DEQUANTIZE_S8_F32": [_G("size=5 zero=-3")],
    "REQUANT_GRAD_F32": [_G("channels=2 plane=5")],
    "CONV2D_S8_GRAD_INPUT_F32": [_CONV | _G("n_rows=2"), _CONV | _G("n_rows=0")],
    "CONV2D_S8_GRAD_WEIGHT_F32": [_CONV | _G("x_zero=4 n_channels=2"),
                                  _CONV | _G("x_zero=4 n_channels=4"),
                                  _CONV | _G("x_zero=4 n_channels=0")],
    "ADD_S8_GRAD_F32": [_G("size=9")],
    "DEQUANTIZE_GRAD_F32": [_G("size=5")],
    "UPDATE_S8_F32": [_G("rows=2 row_size=3 rule=1"), _G("rows=2 row_size=3 rule=0")],
    "UPDATE_S32_F32": [_G("size=3 rule=1"), _G("size=3 rule=0")],
    "ADD_F32": [_G("size=4")],
    "PW_DW_CONV2D_S8": [
        {f"pw_{k}": v for k, v in _PW.items()} | {f"dw_{k}": v for k, v in _DW.items()}
        | _ACT | _G("x_zero=1 mid_zero=-2 mid_act_min=-128 mid_act_max=100 y_zero=3")],
    "CONV_DW_PW_S8": [
        {f"c_{k}": v for k, v in _G("in_c=2 in_h=6 in_w=5 out_c=3 out_h=6 out_w=5 k_h=3 k_w=3 "
                                   "stride_h=1 stride_w=1 pad_h=1 pad_w=1 groups=1").items()}
        | {f"d_{k}": v for k, v in _G("in_c=3 in_h=6 in_w=5 out_c=3 out_h=3 out_w=5 k_h=3 k_w=3 "
                                     "stride_h=2 stride_w=1 pad_h=1 pad_w=1 groups=3").items()}
        | {f"p_{k}": v for k, v in _G("in_c=3 in_h=3 in_w=5 out_c=4 out_h=3 out_w=5 k_h=1 k_w=1 "
                                     "stride_h=1 stride_w=1 pad_h=0 pad_w=0 groups=1").items()}
        | _ACT | _G("x_zero=1 c_zero=-2 c_act_min=-128 c_act_max=100 d_zero=3 d_act_min=-90 "
                    "d_act_max=127 y_zero=-1")],
    "LINEAR_SGD_F32": [_LINEAR],
    "CONV2D_S8_SGD_F32": [_CONV | _G("x_zero=2 n_channels=2 rule=1"),
                          _CONV | _G("x_zero=2 n_channels=4 rule=0")],
    # func 1 (leaky_relu) has alpha, the others none
    "ACT_F32": [_G("size=5 func=1"), _G("size=5 func=2")],
    "ACT_GRAD_F32": [_G("size=5 func=1"), _G("size=5 func=4")],
    "CONCAT_F32": [_G("size_a=3 size_b=4")],
    "CONCAT_GRAD_F32": [_G("size_a=3 size_b=4")],
    "PAD_W_F32": [_G("rows=2 in_w=5 out_w=4 skip=2 lead=1")],
}

# An op without BASE_ATTRS gets the first of these geometries its rules accept (a conv's groups
# as given, then depthwise), attribute by attribute by name; tests/host/test_plan_check.py names
# an op that none fits.
_DEFAULTS = _CONV | _POOL | _LINEAR | _ACT | _G(
    "size=5 num_classes=3 channels=2 plane=5 rows=2 row_size=3 n_rows=2 n_channels=2 rule=1 "
    "left_shift=20 zero=0 mid_act_min=-100 mid_act_max=120")
_DEPTHWISE_DEFAULTS = _DEFAULTS | _G("out_c=2 groups=2")


def _default_attrs(spec: OpDef) -> list[dict[str, int]]:
    out = []
    for defaults in (_DEFAULTS, _DEPTHWISE_DEFAULTS):
        attrs = {}
        for name in spec.attrs:
            plain = name.removeprefix("pw_").removeprefix("dw_")
            if plain in defaults:
                attrs[name] = defaults[plain]
            elif name.endswith("_zero"):
                attrs[name] = 0
            elif name.endswith("_mult"):
                attrs[name] = 1 << 30
            elif name.endswith("_shift"):
                attrs[name] = -1
        if len(attrs) == len(spec.attrs):
            out.append(attrs)
    return out



def _stage_name(name: str) -> str:
    """An operand's name without a fused op's stage prefix (pw_w -> w, c_shift -> shift)."""
    stage, _, rest = name.partition("_")
    return rest if stage in ("pw", "dw", "c", "d", "p") and rest else name


# Operands that are constants (in the blob) in the base plans (by their name without a stage
# prefix); the rest live in the arena.
CONSTANT_NAMES = {"w", "b", "bias", "mult", "shift", "channels", "scale", "scales", "eff_scale",
                  "qas", "momentum"}
SHIFT_NAMES = {"shift"}
SCALE_NAMES = {"scale", "scales", "eff_scale", "qas"}
FLT_MAX = float(np.finfo(np.float32).max)


def _state_inputs(spec: OpDef) -> set[str]:
    """Inputs an output writes in place (the update ops' state): in the arena."""
    return {spec.ins[i].name for i in spec.in_place}


def _values(name: str, dtype: DType, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "channels":
        return np.arange(n, dtype=np.int32)
    if _stage_name(name) in SHIFT_NAMES:
        return rng.integers(-3, 1, n).astype(np.int32)
    if name.endswith("mult"):
        return np.full(n, 1 << 30, np.int32)
    if name in SCALE_NAMES:
        return np.full(n, 0.5, np.float32)
    if name == "momentum":  # OPTIM_STEP_F32's: in [0, 1)
        return np.full(n, 0.9, np.float32)
    if dtype == DType.S8:
        return rng.integers(-20, 21, n).astype(np.int8)
    if dtype == DType.S32:
        return rng.integers(-100, 101, n).astype(np.int32)
    return (rng.standard_normal(n) * 0.1).astype(np.float32)


class Builder:
    """A one-op plan: the op's operands sized by its registry rules, constants in the blob."""

    def __init__(self, opcode: Opcode, attrs: dict[str, int], present: set[str] | None = None,
                 constants: set[str] | None = None, seed: int = 0) -> None:
        self.spec = OP_SPECS[opcode]
        self.attrs = dict(attrs)
        state = _state_inputs(self.spec)
        names = [o.name for o in self.spec.operands]
        self.present = set(names) if present is None else present | {
            o.name for o in self.spec.operands if not o.optional}
        self.constants = ({n for n in names if _stage_name(n) in CONSTANT_NAMES and n not in state}
                          if constants is None else constants)
        self.seed = seed

    def build(self) -> Plan | None:
        """The plan, or None when the attributes are impossible or the tensors too large."""
        spec = self.spec
        assert spec.sizes is not None
        numel = spec.sizes(self.attrs)
        if numel is None or sum(numel) > 16384:
            return None
        rng = np.random.default_rng(self.seed)
        tensors: list[Tensor] = []
        arena = 0
        blob = bytearray()

        def add(name: str, dtype: DType, n: int, const: bool, kind: TensorKind) -> int:
            nonlocal arena
            t = Tensor(name, dtype, (n,), kind)
            if const:
                blob.extend(b"\0" * (-len(blob) % BLOB_ALIGN))
                t.data_offset = len(blob)
                t.kind = TensorKind.PARAM_FROZEN
                blob.extend(_values(name, dtype, n, rng).tobytes())
            else:
                arena += -arena % ARENA_ALIGN
                t.arena_offset = arena
                arena += t.nbytes
            tensors.append(t)
            return len(tensors) - 1

        index: dict[str, int] = {}
        operands = []
        in_place = {spec.outs[k].name: spec.ins[i].name for k, i in enumerate(spec.in_place)}
        for opnd, n in zip(spec.operands, numel, strict=True):
            if opnd.name not in self.present:
                operands.append(NONE)
            elif opnd.name in in_place and in_place[opnd.name] in index:
                operands.append(index[in_place[opnd.name]])
            else:
                kind = (TensorKind.PARAM_TRAINABLE if opnd.name in _state_inputs(spec)
                        else TensorKind.ACTIVATION)
                index[opnd.name] = add(opnd.name, opnd.dtype, n, opnd.name in self.constants,
                                       kind)
                operands.append(index[opnd.name])
        # Trainable state starts from the blob: give it data there too.
        for t in tensors:
            if t.kind == TensorKind.PARAM_TRAINABLE:
                blob.extend(b"\0" * (-len(blob) % BLOB_ALIGN))
                t.data_offset = len(blob)
                blob.extend(_values(t.name, t.dtype, t.numel, rng).tobytes())
        bind = [add(name, dtype, 1, False, kind) for name, dtype, kind in (
            ("label", DType.S32, TensorKind.LABEL), ("logits", DType.F32, TensorKind.ACTIVATION),
            ("loss", DType.F32, TensorKind.OUTPUT), ("pred", DType.S32, TensorKind.OUTPUT))]
        n_in = len(spec.ins)
        op = Op(spec.opcode, operands[:n_in], operands[n_in:],
                [self.attrs[a] for a in spec.attrs])
        arena += -arena % 8
        return Plan(arena_size=arena, n_forward=1, bindings=Bindings(bind[1], *bind),
                    num_classes=1, default_lr=0.01, tensors=tensors, ops=[op],
                    blob=bytes(blob) + b"\0" * (-len(blob) % BLOB_ALIGN or 16 * (not blob)),
                    meta={"op": spec.name})


def base_plans() -> Iterator[tuple[str, Builder, Plan]]:
    """A valid one-op plan per base geometry of every op (BASE_ATTRS; else the first default
    geometry the host accepts, or none)."""
    for d in OP_DEFS:
        if d.name in BASE_ATTRS:
            for k, attrs in enumerate(BASE_ATTRS[d.name]):
                b = _fit_presence(Builder(d.opcode, attrs))
                plan = b.build()
                assert plan is not None, f"{d.name}: base attributes {attrs} are impossible"
                yield f"{d.name}/{k}", b, plan
            continue
        for attrs in _default_attrs(d):
            b = _fit_presence(Builder(d.opcode, attrs))
            plan = b.build()
            if plan is not None and plan_problem(plan) is None:
                yield f"{d.name}/default", b, plan
                break


def _fit_presence(b: Builder) -> Builder:
    """The optional operands a base plan of this kind has: a master exactly with rule 1, rows and
    channels exactly with n_rows/n_channels (all rows: no channels)."""
    a = b.attrs
    present = {o.name for o in b.spec.operands if not o.optional}
    for o in b.spec.operands:
        if not o.optional:
            continue
        if o.name.startswith("master"):
            if a.get("rule") == 1:
                present.add(o.name)
        elif o.name in ("w_rows", "channels") and "n_rows" in a:
            if a["n_rows"] > 0:
                present.add(o.name)
        elif o.name == "channels" and "n_channels" in a:
            if 0 < a["n_channels"] < a["out_c"]:
                present.add(o.name)
        elif o.name in ("x", "dw") and "n_channels" in a:
            if a["n_channels"] > 0:
                present.add(o.name)
        elif o.name == "alpha":  # ACT_F32, ACT_GRAD_F32: leaky_relu's slope
            if a["func"] == 1:
                present.add(o.name)
        else:
            present.add(o.name)
    return Builder(b.spec.opcode, a, present, b.constants, b.seed)


def _fitted(opcode: Opcode, attrs: dict[str, int]) -> Builder:
    return _fit_presence(Builder(opcode, attrs))


# --- mutations -----------------------------------------------------------------------------------

def _attr_values(v: int, lo: int, hi: int) -> list[int]:
    out = {v + 1, v - 1, 0, -1, 1, 2 * v, lo - 1, lo, hi, hi + 1, INT32_MAX, INT32_MIN}
    return sorted(x for x in out if x != v and INT32_MIN <= x <= INT32_MAX)


def _set_values(plan: Plan, t_index: int, values: np.ndarray) -> None:
    t = plan.tensors[t_index]
    raw = values.astype(t.dtype.numpy).tobytes()
    assert len(raw) == t.nbytes and t.data_offset >= 0
    blob = bytearray(plan.blob)
    blob[t.data_offset:t.data_offset + len(raw)] = raw
    plan.blob = bytes(blob)


def _to_blob(plan: Plan, i: int) -> None:
    """Tensor i as a constant: its bytes appended to the blob (zeros), out of the arena."""
    t = plan.tensors[i]
    t.arena_offset, t.kind = NONE, TensorKind.PARAM_FROZEN
    if t.data_offset == NONE:
        blob = bytearray(plan.blob)
        blob.extend(b"\0" * (-len(blob) % BLOB_ALIGN))
        t.data_offset = len(blob)
        blob.extend(b"\0" * t.nbytes)
        plan.blob = bytes(blob)


def _to_arena(plan: Plan, i: int) -> None:
    t = plan.tensors[i]
    at = plan.arena_size + (-plan.arena_size % ARENA_ALIGN)
    t.arena_offset, t.data_offset = at, NONE
    t.kind = TensorKind.ACTIVATION
    plan.arena_size = at + t.nbytes + (-(at + t.nbytes) % 8)


def _mutants_of(name: str, b: Builder, plan: Plan) -> Iterator[tuple[str, Plan]]:
    spec = b.spec
    op = plan.ops[0]
    operands = [*op.inputs, *op.outputs]
    n_in = len(spec.ins)

    def variant(fn) -> Plan:  # a copy of the base plan with fn applied
        p = copy.deepcopy(plan)
        fn(p)
        return p

    def set_operand(p: Plan, slot: int, t: int) -> None:
        if slot < n_in:
            p.ops[0].inputs[slot] = t
        else:
            p.ops[0].outputs[slot - n_in] = t

    # Attributes: each one moved, the operands kept; and, where possible, resized to it.
    for a in spec.attr_defs:
        lo, hi = a.range.bounds
        for v in _attr_values(b.attrs[a.name], lo, hi):
            k = spec.attrs.index(a.name)
            yield (f"{name}/attr-{a.name}={v}",
                   variant(lambda p, k=k, v=v: p.ops[0].attrs.__setitem__(k, v)))
            resized = _fitted(spec.opcode, b.attrs | {a.name: v}).build() \
                if lo <= v <= hi else None
            if resized is not None:
                yield f"{name}/attr-{a.name}={v}-resized", resized
            kept = Builder(spec.opcode, b.attrs | {a.name: v}, b.present, b.constants).build() \
                if lo <= v <= hi else None
            if kept is not None:
                yield f"{name}/attr-{a.name}={v}-resized-same-operands", kept
    # Which optional operands are there, crossed with the attributes that decide it.
    optional = [o.name for o in spec.operands if o.optional]
    modes = [m for m in ("n_rows", "n_channels", "rule") if m in b.attrs]
    mode_values = [sorted({0, 1, b.attrs[m], b.attrs.get("out_c", 1)}) for m in modes]
    for values in itertools.product(*mode_values):
        attrs = b.attrs | dict(zip(modes, values, strict=True))
        for r in range(len(optional) + 1):
            for subset in itertools.combinations(optional, r):
                p = Builder(spec.opcode, attrs, set(subset), b.constants).build()
                if p is not None:
                    tag = ",".join(f"{m}={v}" for m, v in zip(modes, values, strict=True))
                    yield f"{name}/present-{'+'.join(subset) or 'none'}/{tag}", p
    # Operand slots: none, past the table, int32's minimum, the first tensor of each dtype and
    # placement (arena or blob) and the plan's bindings.
    kinds: dict[tuple[DType, bool], int] = {}
    for i, t in enumerate(plan.tensors):
        kinds.setdefault((t.dtype, t.in_arena), i)
    b_ = plan.bindings
    targets = sorted({NONE, len(plan.tensors), INT32_MIN, *kinds.values(), b_.label, b_.loss,
                      b_.pred})
    for slot, opnd in enumerate(spec.operands):
        for t in targets:
            if t != operands[slot]:
                yield (f"{name}/operand-{opnd.name}->{t}",
                       variant(lambda p, s=slot, t=t: set_operand(p, s, t)))
        if operands[slot] < 0:
            continue
        i = operands[slot]
        t0 = plan.tensors[i]
        for dtype in DType:
            if dtype != t0.dtype:
                def retype(p: Plan, i: int = i, dtype: DType = dtype) -> None:
                    t = p.tensors[i]
                    t.shape = (t.nbytes // dtype.itemsize,)  # same bytes where they divide
                    t.dtype = dtype
                yield f"{name}/operand-{opnd.name}-as-{dtype.name}", variant(retype)
        for delta in (1, -1):
            if t0.numel + delta >= 0:
                def reshape(p: Plan, i: int = i, d: int = delta) -> None:
                    t = p.tensors[i]
                    t.shape = (t.numel + d,)
                    if t.in_arena:
                        p.arena_size += 16
                yield f"{name}/operand-{opnd.name}-numel{delta:+d}", variant(reshape)
        if t0.in_arena:  # (a trainable tensor keeps its initial value where it is)
            yield f"{name}/operand-{opnd.name}-constant", variant(lambda p, i=i: _to_blob(p, i))
        else:
            yield f"{name}/operand-{opnd.name}-in-arena", variant(lambda p, i=i: _to_arena(p, i))
            yield (f"{name}/operand-{opnd.name}-trainable",
                   variant(lambda p, i=i: setattr(p.tensors[i], "kind",
                                                  TensorKind.PARAM_TRAINABLE)))
        # A constant's values at the edges of what the checks accept.
        if not t0.in_arena:
            edits: list[tuple[str, np.ndarray]] = []
            base = np.frombuffer(plan.blob[t0.data_offset:t0.data_offset + t0.nbytes],
                                 t0.dtype.numpy).copy()
            if _stage_name(opnd.name) in SHIFT_NAMES and len(base):
                for v in (-32, -31, 30, 31, INT32_MIN, INT32_MAX):
                    edits.append((f"{v}", np.concatenate([base[:-1], [v]]).astype(np.int32)))
            if opnd.name in SCALE_NAMES and len(base):
                for v in (0.0, -0.0, -1.0, float("nan"), float("inf"), -float("inf"), FLT_MAX,
                          1e-45):
                    edits.append((f"{v}", np.concatenate([base[:-1], [v]]).astype(np.float32)))
            if opnd.name == "channels" and len(base):
                out_c = b.attrs["out_c"]
                edits += [("last=out_c", np.concatenate([base[:-1], [out_c]])),
                          ("first=-1", np.concatenate([[-1], base[1:]])),
                          ("last=out_c-1", np.concatenate([base[:-1], [out_c - 1]])),
                          ("reversed", base[::-1].copy())]
                if len(base) > 1:
                    edits.append(("repeated", np.concatenate([base[:1], base[:-1]])))
            if opnd.name.endswith("mult") and len(base):
                for v in (0, -1, INT32_MIN, INT32_MAX):
                    edits.append((f"{v}", np.concatenate([base[:-1], [v]]).astype(np.int32)))
            for what, values in edits:
                yield (f"{name}/value-{opnd.name}={what}",
                       variant(lambda p, i=i, v=values: _set_values(p, i, v)))
    # In-place outputs written elsewhere: a fresh arena tensor of the same size.
    for k in range(len(spec.in_place)):
        if operands[n_in + k] < 0:
            continue

        def elsewhere(p: Plan, k: int = k) -> None:
            src = p.tensors[p.ops[0].outputs[k]]
            p.tensors.append(Tensor("copy", src.dtype, src.shape, TensorKind.ACTIVATION))
            _to_arena(p, len(p.tensors) - 1)
            p.ops[0].outputs[k] = len(p.tensors) - 1
        yield f"{name}/in-place-{spec.outs[k].name}-elsewhere", variant(elsewhere)
    # Counts and opcodes.
    yield f"{name}/one-input-less", variant(lambda p: p.ops[0].inputs.pop())
    yield f"{name}/one-output-more", variant(lambda p: p.ops[0].outputs.append(NONE))
    yield f"{name}/one-attr-less", variant(lambda p: p.ops[0].attrs.pop())
    yield f"{name}/one-attr-more", variant(lambda p: p.ops[0].attrs.append(1))
    for code in (0, 15, 35, 255, 65535, 65536, 2**32 - 1):
        if code not in OP_SPECS:
            yield f"{name}/opcode-{code}", variant(lambda p, c=code: setattr(p.ops[0], "opcode", c))
    for other in OP_DEFS:  # other ops of the same counts (the registry's rules decide)
        if other.opcode != spec.opcode and (len(other.ins), len(other.outs), len(
                other.attr_defs)) == (len(spec.ins), len(spec.outs), len(spec.attr_defs)):
            yield (f"{name}/as-{other.name}",
                   variant(lambda p, c=other.opcode: setattr(p.ops[0], "opcode", c)))


def op_mutants() -> Iterator[tuple[str, Plan]]:
    """(name, plan): each op's base plans, then their mutants."""
    for name, b, plan in base_plans():
        yield f"op/{name}/base", plan
        yield from _mutants_of(f"op/{name}", b, plan)


# --- what the firmware says ----------------------------------------------------------------------

# The host's words for an op's refusal (tinyhost.plan_check) -> words the firmware's message for
# the same refusal contains (src/op_check.c, src/plan_check.c, the op's check).
_FIRMWARE_WORDS = [
    (r"impossible attributes", "impossible attributes"),
    (r"is not supported by this firmware", "is not supported"),
    (r"wrong operand count", "wrong operand count"),
    (r"operand \d+ \(\w+\) names tensor", "names tensor"),
    (r"its attributes need", "bytes, its attributes need"),
    (r"writes constant tensor", "writes constant tensor"),
    # An arena tensor as shifts or scales: the firmware refuses it with the values' words.
    (r"requantization shifts \(\w+\) are not a constant", "requantization shift is outside"),
    (r"scales \(\w+\) are not a constant", "not positive and finite"),
]

# Where the firmware is known to decide otherwise than its documented intent, which the host
# follows (reported; the test tolerates these until the firmware is fixed): host words -> why.
KNOWN_FIRMWARE_BUGS: dict[str, str] = {}  # none now (shifts and scales read from the arena and
# a 32-bit 4 * num_classes were, until the firmware refused both)


def firmware_words(problem: str) -> str | None:
    """The words the firmware's refusal of an op contains, for the host's message `problem`
    ("op K (NAME): ..."), or None when it is not an op's refusal or has no fixed words."""
    m = re.match(r"op \d+ \([^)]*\): (.*)", problem, re.DOTALL)
    if m is None:
        return None
    rest = m.group(1)
    for pattern, words in _FIRMWARE_WORDS:
        if re.search(pattern, rest):
            return words
    if any(k in rest for k in KNOWN_FIRMWARE_BUGS):
        return None
    return rest  # an op's own problem: the firmware's words exactly


def known_firmware_bug(problem: str | None) -> str | None:
    if problem is None:
        return None
    return next((why for k, why in KNOWN_FIRMWARE_BUGS.items() if k in problem), None)
