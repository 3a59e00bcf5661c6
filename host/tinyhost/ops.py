"""The op registry: the one source of truth for the plan's op set.

Each `OpDef` holds an op's name, opcode, operand roles (dtype, optional or not, for inputs and
outputs) and its integer attributes (name and value range), in the order the plan stores them.
Everything else derives from it: `tinyhost gen-ops` (tools/gen_ops.py) writes the C header
`firmware/runtime/include/tt/tt_ops.h` (X-macro op list, enum, operand and attribute index names,
operand dtype/optional tables, attribute ranges) and the op section of `docs/plan.cddl`; the
Python tables below (OP_SPECS, INPLACE_UPDATES, ...) are views of it. tests/host/test_codegen.py
fails when a generated file is stale. Adding an op: docs/adding-an-op.md.

Layouts (batch 1, no batch dimension stored): activations are C×H×W (Conv1d: C×1×L), conv weights
O×(I/groups)×KH×KW, linear weights O×I. Gradients have the shape of what they are the gradient of.
Optional operands are encoded as -1 in a plan. Floats are never attributes: scales live in small
f32 constant tensors.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tinyhost.dtypes import DType


class Opcode(IntEnum):
    LINEAR_F32 = 1
    LINEAR_GRAD_INPUT_F32 = 2
    LINEAR_GRAD_WEIGHT_F32 = 3
    CONV2D_F32 = 4
    CONV2D_GRAD_INPUT_F32 = 5
    CONV2D_GRAD_WEIGHT_F32 = 6
    RELU_F32 = 7
    RELU_GRAD_F32 = 8
    MAXPOOL2D_F32 = 9
    MAXPOOL2D_GRAD_F32 = 10
    AVGPOOL2D_F32 = 11
    AVGPOOL2D_GRAD_F32 = 12
    SOFTMAX_XENT_F32 = 13
    SGD_F32 = 14
    # int8 graph (docs/int8.md): integer forward, fp32 backward, QAS updates.
    CONV2D_S8 = 20
    DEPTHWISE_CONV2D_S8 = 21
    ADD_S8 = 22
    AVGPOOL2D_S8 = 23
    DEQUANTIZE_S8_F32 = 24
    REQUANT_GRAD_F32 = 25
    CONV2D_S8_GRAD_INPUT_F32 = 26
    CONV2D_S8_GRAD_WEIGHT_F32 = 27
    ADD_S8_GRAD_F32 = 28
    DEQUANTIZE_GRAD_F32 = 29
    UPDATE_S8_F32 = 30
    UPDATE_S32_F32 = 31
    ADD_F32 = 32
    PW_DW_CONV2D_S8 = 33
    LINEAR_SGD_F32 = 34
    CONV2D_S8_SGD_F32 = 35
    DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32 = 36
    CONV_DW_PW_S8 = 37
    # fp32 layers of issue 15 (numbers 64-95: this block's range).
    ACT_F32 = 64
    ACT_GRAD_F32 = 65
    CONCAT_F32 = 66
    CONCAT_GRAD_F32 = 67
    PAD_W_F32 = 68
    # optimizer state of issue 18 section 4 (numbers 96-111: this block's range): gradient
    # accumulation over N samples and SGD momentum, between a gradient and its update op.
    OPTIM_STEP_F32 = 96
    STEP_PHASE_S32 = 97


class ActFunc(IntEnum):
    """The function ACT_F32 / ACT_GRAD_F32 apply (their `func` attribute; tt_act_func in
    tt/tt_kernels_f32.h has the same numbers, tests/host/test_layers_f32.py checks it)."""
    RELU6 = 0       # min(max(x, 0), 6)
    LEAKY_RELU = 1  # x > 0 ? x : alpha * x (alpha: a one-float constant operand)
    SIGMOID = 2     # 1 / (1 + exp(-x)), in double, rounded once
    TANH = 3        # tanh(x), in double, rounded once
    HARDSWISH = 4   # x * min(max(x + 3, 0), 6) / 6


class UpdateRule(IntEnum):
    """How UPDATE_S8_F32 / UPDATE_S32_F32 apply a step (docs/int8.md, section 5)."""
    ROUND = 0   # int8/int32 state only: w <- clip(rint(w - u)); b <- b - rint(u)
    MASTER = 1  # an f32 master of the updated rows/bias: master -= u; w = clip(rint(master))


# --- attributes -----------------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class AttrRange(IntEnum):
    """The values an attribute may take; the firmware and the host refuse others at load."""
    POS = 0         # 1 .. INT32_MAX (sizes)
    NONNEG = 1      # 0 .. INT32_MAX (padding, counts, multipliers)
    INT8 = 2        # -128 .. 127 (zero points, clamp bounds)
    RSHIFT = 3      # -31 .. 0 (TFLite right shifts)
    LSHIFT = 4      # 0 .. 30
    RULE = 5        # an UpdateRule

    @property
    def bounds(self) -> tuple[int, int]:
        return _RANGE_BOUNDS[self]

    @property
    def cddl(self) -> str:
        return _RANGE_CDDL[self]


_RANGE_BOUNDS = {AttrRange.POS: (1, INT32_MAX), AttrRange.NONNEG: (0, INT32_MAX),
                 AttrRange.INT8: (-128, 127), AttrRange.RSHIFT: (-31, 0),
                 AttrRange.LSHIFT: (0, 30), AttrRange.RULE: (0, 1)}
_RANGE_CDDL = {AttrRange.POS: "pos", AttrRange.NONNEG: "nonneg", AttrRange.INT8: "int8-value",
               AttrRange.RSHIFT: "rshift-value", AttrRange.LSHIFT: "lshift-value",
               AttrRange.RULE: "update-rule"}


@dataclass(frozen=True)
class Attr:
    name: str
    range: AttrRange = AttrRange.POS


def _attrs(spec: str, prefix: str = "") -> tuple[Attr, ...]:
    """'in_c in_h pad_h:nonneg x_zero:int8' -> Attrs (POS unless a range is given)."""
    out = []
    for word in spec.split():
        name, _, kind = word.partition(":")
        out.append(Attr(prefix + name, AttrRange[kind.upper()] if kind else AttrRange.POS))
    return tuple(out)


# Attribute groups several ops share; their C parameter structs (tt_conv2d_params, ...) have the
# same field names, and tt_ops.h has a generated unpack for each (tt_conv2d_params_at, ...).
_CONV_SPEC = ("in_c in_h in_w out_c out_h out_w k_h k_w stride_h stride_w pad_h:nonneg "
              "pad_w:nonneg groups")
CONV = _attrs(_CONV_SPEC)
POOL = _attrs("c in_h in_w out_h out_w k_h k_w stride_h stride_w pad_h:nonneg pad_w:nonneg")
LINEAR = _attrs("in_features out_features")
SIZE = _attrs("size")
ACT = _attrs("act_min:int8 act_max:int8")

ATTR_GROUPS: dict[str, tuple[tuple[Attr, ...], str]] = {
    # group name -> (attributes, C struct)
    "conv2d": (CONV, "tt_conv2d_params"),
    "pool2d": (POOL, "tt_pool2d_params"),
    "linear": (LINEAR, "tt_linear_params"),
}

# Names of the shared groups as plain tuples (kernel geometry dataclasses mirror them).
CONV_ATTRS = tuple(a.name for a in CONV)
POOL_ATTRS = tuple(a.name for a in POOL)


# --- operands -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operand:
    name: str
    dtype: DType = DType.F32
    optional: bool = False  # may be -1 (absent)


def f32(name: str, optional: bool = False) -> Operand:
    return Operand(name, DType.F32, optional)


def s8(name: str, optional: bool = False) -> Operand:
    return Operand(name, DType.S8, optional)


def s32(name: str, optional: bool = False) -> Operand:
    return Operand(name, DType.S32, optional)


@dataclass(frozen=True)
class OpDef:
    """One op of the plan format."""
    opcode: Opcode
    ins: tuple[Operand, ...]
    outs: tuple[Operand, ...]
    attr_defs: tuple[Attr, ...]
    doc: str
    # Output k writes input in_place[k] (same tensor index): the update ops' state.
    in_place: tuple[int, ...] = ()
    # An elementwise op whose output may share its input's buffer (the planner may alias them).
    may_alias: bool = False
    # The host's plan check of this op (tinyhost.plan.check_plan), as the firmware's check in its
    # kernel file does it: `sizes(attrs by name)` gives every operand's element count (inputs then
    # outputs) or None when the attributes are impossible; `problem(view)` names what is wrong with
    # operand values or presence (None when fine).
    sizes: Callable[[dict[str, int]], list[int] | None] | None = None
    problem: Callable[[Any], str | None] | None = None

    @property
    def name(self) -> str:
        return self.opcode.name

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.ins)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outs)

    @property
    def operands(self) -> tuple[Operand, ...]:
        """Inputs, then outputs: the order of an op's operand list on the device."""
        return self.ins + self.outs

    @property
    def attrs(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attr_defs)

    def attr_index(self, name: str) -> int:
        try:
            return self.attrs.index(name)
        except ValueError:
            raise KeyError(f"{self.name} has no attribute {name!r}; it has "
                           f"{', '.join(self.attrs)}") from None

    def group_at(self, group: str) -> list[int]:
        """Where each occurrence of an attribute group (ATTR_GROUPS) starts in the attributes."""
        defs, _ = ATTR_GROUPS[group]
        n = len(defs)
        names = [a.name for a in defs]
        found = []
        for i in range(len(self.attr_defs) - n + 1):
            window = self.attr_defs[i:i + n]
            prefix = window[0].name[:len(window[0].name) - len(names[0])]
            if all(w.name == prefix + d.name and w.range == d.range
                   for w, d in zip(window, defs, strict=True)):
                found.append(i)
        return found


def _op(opcode: Opcode, ins: Iterable[Operand], outs: Iterable[Operand], attrs: Iterable[Attr],
        doc: str, **kw: object) -> OpDef:
    return OpDef(opcode, tuple(ins), tuple(outs), tuple(attrs), " ".join(doc.split()),
                 **kw)  # type: ignore[arg-type]


# --- the plan check's rules (the host's copy of each op's tt_op_<name>_check) --------------------
#
# Each op's `sizes` gives the element count of every operand (inputs, then outputs) from its
# attributes, or None where the firmware calls them impossible (tt_op_impossible); the attribute
# ranges are checked before, generically (tinyhost.plan_check). Its `problem` names what the
# firmware refuses in the operands' presence and values once their sizes are right. Both follow
# firmware/runtime/ops/<name>.c line by line, in C's integer semantics: every count the C keeps
# below INT32_MAX (tt_numel4, tt_conv_numel) is refused here where it is refused there.
# `problem` receives a view of the op (tinyhost.plan_check.OpView): `v.a` (attributes by name),
# `v.index(name)` (the operand's tensor index, -1 when absent), `v.present(name)`,
# `v.tensor(name)` and `v.values(name)` (a constant's values from the blob; None for an arena
# tensor, whose contents at load time are not the plan's).

TT_ERR_ARG = -1  # what the kernels' _get_buffer_size() return for impossible parameters


def _numel4(*f: int) -> int | None:
    """tt_numel4: the product, or None when a factor or partial product exceeds INT32_MAX."""
    n = 1
    for x in f:
        if x > INT32_MAX:
            return None
        n *= x
        if n > INT32_MAX:
            return None
    return n


def _mask_bytes(n: int) -> int:
    return (n + 7) // 8


def _conv_group(a: Mapping[str, int], prefix: str = "") -> dict[str, int]:
    """One conv2d attribute group (prefix "pw_" / "dw_" in PW_DW_CONV2D_S8) by its plain names."""
    return {n: a[prefix + n] for n in CONV_ATTRS}


def _conv_numel(p: Mapping[str, int]) -> tuple[int, int, int] | None:
    """tt_conv_numel: (x, y, w) element counts, None for an impossible geometry or a count over
    int32 (sizes and strides are positive, padding non-negative: the attribute ranges)."""
    padded_h = p["in_h"] + 2 * p["pad_h"]
    padded_w = p["in_w"] + 2 * p["pad_w"]
    if (p["in_c"] % p["groups"] != 0 or p["out_c"] % p["groups"] != 0 or padded_h < p["k_h"]
            or padded_w < p["k_w"] or (padded_h - p["k_h"]) // p["stride_h"] + 1 != p["out_h"]
            or (padded_w - p["k_w"]) // p["stride_w"] + 1 != p["out_w"]):
        return None
    x = _numel4(p["in_c"], p["in_h"], p["in_w"])
    y = _numel4(p["out_c"], p["out_h"], p["out_w"])
    w = _numel4(p["out_c"], p["in_c"] // p["groups"], p["k_h"], p["k_w"])
    return None if x is None or y is None or w is None else (x, y, w)


def _pool_numel(p: Mapping[str, int]) -> tuple[int, int] | None:
    """tt_pool_numel: (x, y) element counts, None for an impossible geometry."""
    padded_h = p["in_h"] + 2 * p["pad_h"]
    padded_w = p["in_w"] + 2 * p["pad_w"]
    if (2 * p["pad_h"] > p["k_h"] or 2 * p["pad_w"] > p["k_w"] or padded_h < p["k_h"]
            or padded_w < p["k_w"] or (padded_h - p["k_h"]) // p["stride_h"] + 1 != p["out_h"]
            or (padded_w - p["k_w"]) // p["stride_w"] + 1 != p["out_w"]):
        return None
    x = _numel4(p["c"], p["in_h"], p["in_w"])
    y = _numel4(p["c"], p["out_h"], p["out_w"])
    return None if x is None or y is None else (x, y)


def _act_range_ok(lo: int, hi: int) -> bool:
    """tt_act_range_ok."""
    return -128 <= lo <= 127 and -128 <= hi <= 127 and lo <= hi


# The kernels' scratch sizes: firmware/runtime/ops/{conv2d_s8,depthwise_conv2d_s8,
# pw_dw_conv2d_s8}.c, _get_buffer_size() and the parameter check they start with
# (ops_common.h: tt_conv2d_params_ok), TT_ERR_ARG where those refuse the geometry.

def _fits_i32(n: int) -> bool:
    return 0 < n <= INT32_MAX


def _numel_fits_i32(*f: int) -> bool:
    """tt_numel_fits_i32: every partial product positive and within int32."""
    n = 1
    for x in f:
        n *= x
        if not _fits_i32(n):
            return False
    return True


def _window_ok(size: int, out: int, k: int, stride: int, pad: int) -> bool:
    """tt_window_ok: one spatial axis."""
    if size <= 0 or out <= 0 or k <= 0 or stride <= 0 or pad < 0:
        return False
    padded = size + 2 * pad
    if padded < k or padded > INT32_MAX:
        return False
    return out == (padded - k) // stride + 1


def _conv2d_params_ok(p: Mapping[str, int]) -> bool:
    """tt_conv2d_params_ok."""
    if (p["in_c"] <= 0 or p["out_c"] <= 0 or p["groups"] <= 0 or p["in_c"] % p["groups"] != 0
            or p["out_c"] % p["groups"] != 0):
        return False
    if not (_window_ok(p["in_h"], p["out_h"], p["k_h"], p["stride_h"], p["pad_h"])
            and _window_ok(p["in_w"], p["out_w"], p["k_w"], p["stride_w"], p["pad_w"])):
        return False
    return (_numel_fits_i32(p["in_c"], p["in_h"], p["in_w"])
            and _numel_fits_i32(p["out_c"], p["out_h"], p["out_w"])
            and _numel_fits_i32(p["out_c"], p["in_c"] // p["groups"], p["k_h"], p["k_w"]))


def _i32_or_err(nbytes: int) -> int:
    return nbytes if nbytes <= INT32_MAX else TT_ERR_ARG


def conv2d_s8_buffer_size(p: Mapping[str, int]) -> int:
    """tt_conv2d_s8_get_buffer_size: two int16 im2col columns of (in_c / groups) * k_h * k_w
    entries, each rounded up to a multiple of 4; TT_ERR_ARG for impossible parameters."""
    if not _conv2d_params_ok(p):
        return TT_ERR_ARG
    column = (p["in_c"] // p["groups"] * p["k_h"] * p["k_w"] + 3) & ~3
    return _i32_or_err(2 * column * 2)


def depthwise_conv2d_s8_buffer_size(p: Mapping[str, int]) -> int:
    """tt_depthwise_conv2d_s8_get_buffer_size: a ring of 2 k_h int16 input rows (in_w + 2 pad_w
    + 1 entries, rounded up to even) and one input channel's weights as int16 rows of even length
    (multiplier x k_h rows); TT_ERR_ARG for impossible parameters or groups != in_c."""
    if not _conv2d_params_ok(p) or p["groups"] != p["in_c"]:
        return TT_ERR_ARG
    mult = p["out_c"] // p["in_c"]
    row = (p["in_w"] + 2 * p["pad_w"] + 2) & ~1
    k_w_even = p["k_w"] + (p["k_w"] & 1)
    entries = 2 * p["k_h"] * row + mult * p["k_h"] * k_w_even
    return _i32_or_err(entries * 2)


def pw_dw_conv2d_s8_buffer_size(pw: Mapping[str, int], dw: Mapping[str, int]) -> int:
    """tt_pw_dw_conv2d_s8_get_buffer_size: one intermediate plane (rounded up to 4 bytes), then the
    largest of the first conv's scratch for one output channel, the depthwise's for one input
    channel and a row of int32 accumulators; TT_ERR_ARG unless the two convs chain (the first
    groups 1, the second depthwise over the first's output)."""
    if not (_conv2d_params_ok(pw) and _conv2d_params_ok(dw) and pw["groups"] == 1
            and dw["groups"] == dw["in_c"] and dw["in_c"] == pw["out_c"]
            and dw["in_h"] == pw["out_h"] and dw["in_w"] == pw["out_w"]):
        return TT_ERR_ARG
    b1 = conv2d_s8_buffer_size({**pw, "out_c": 1})
    b2 = depthwise_conv2d_s8_buffer_size(
        {**dw, "out_c": dw["out_c"] // dw["in_c"], "in_c": 1, "groups": 1})
    if b1 < 0 or b2 < 0:
        return TT_ERR_ARG
    acc = pw["out_w"] * 4
    plane = (pw["out_h"] * pw["out_w"] + 3) & ~3
    return _i32_or_err(plane + max(b1, b2, acc))


def _band(p: Mapping[str, int]) -> dict[str, int]:
    """conv_dw_pw_s8.c band_of: one output row from an input band of k_h rows."""
    return {**p, "in_h": p["k_h"], "pad_h": 0, "stride_h": 1, "out_h": 1}


def conv_dw_pw_s8_buffer_size(c: Mapping[str, int], d: Mapping[str, int],
                              p: Mapping[str, int]) -> int:
    """tt_conv_dw_pw_s8_get_buffer_size: the ring of d.k_h conv output rows, the two input bands,
    a depthwise and a 1x1 output row, the ring's tags (each rounded up to 4 bytes) and the largest
    of the three kernels' scratch for their band geometries; TT_ERR_ARG unless the three chain."""
    if not (_conv2d_params_ok(c) and _conv2d_params_ok(d) and _conv2d_params_ok(p)
            and d["in_c"] == c["out_c"] and d["in_h"] == c["out_h"] and d["in_w"] == c["out_w"]
            and d["groups"] == d["in_c"] and p["in_c"] == d["out_c"] and p["in_h"] == d["out_h"]
            and p["in_w"] == d["out_w"] and p["k_h"] == p["k_w"] == 1
            and p["stride_h"] == p["stride_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
            and p["groups"] == 1):
        return TT_ERR_ARG
    kernels = (conv2d_s8_buffer_size(_band(c)), depthwise_conv2d_s8_buffer_size(_band(d)),
               conv2d_s8_buffer_size(_band(p)))
    if min(kernels) < 0:
        return TT_ERR_ARG
    pieces = (d["k_h"] * c["out_c"] * c["out_w"], c["in_c"] * c["k_h"] * c["in_w"],
              d["in_c"] * d["k_h"] * d["in_w"], d["out_c"] * d["out_w"], p["out_c"] * p["out_w"],
              d["k_h"] * 4)
    return _i32_or_err(sum((n + 3) // 4 * 4 for n in pieces) + max(kernels))


def _scratch_conv_dw_pw_s8(a: Mapping[str, int]) -> int:
    return conv_dw_pw_s8_buffer_size(_conv_group(a, "c_"), _conv_group(a, "d_"),
                                     _conv_group(a, "p_"))


def _scratch_conv2d_s8(a: Mapping[str, int]) -> int:
    return conv2d_s8_buffer_size(_conv_group(a))


def _scratch_depthwise_conv2d_s8(a: Mapping[str, int]) -> int:
    return depthwise_conv2d_s8_buffer_size(_conv_group(a))


def _scratch_pw_dw_conv2d_s8(a: Mapping[str, int]) -> int:
    return pw_dw_conv2d_s8_buffer_size(_conv_group(a, "pw_"), _conv_group(a, "dw_"))


# Every op with a `scratch` output: its scratch bytes from its attributes by name.
_SCRATCH: dict[str, Callable[[Mapping[str, int]], int]] = {
    "CONV2D_S8": _scratch_conv2d_s8,
    "DEPTHWISE_CONV2D_S8": _scratch_depthwise_conv2d_s8,
    "PW_DW_CONV2D_S8": _scratch_pw_dw_conv2d_s8,
    "CONV_DW_PW_S8": _scratch_conv_dw_pw_s8,
}


def scratch_bytes(opcode: Opcode, attrs: Mapping[str, int] | Sequence[int]) -> int:
    """The bytes of scratch an op with a `scratch` output needs (attributes by name, or the op's
    attribute list): for the int8 conv kernels exactly what their C _get_buffer_size() returns,
    TT_ERR_ARG (negative) where it refuses the geometry; for any other op, what its plan check
    requires of the operand (TT_ERR_ARG where the attributes are impossible). KeyError for an op
    without a scratch operand."""
    spec = OP_SPECS[Opcode(opcode)]
    a = attrs if isinstance(attrs, Mapping) else attrs_dict(spec.opcode, attrs)
    kernel = _SCRATCH.get(spec.name)
    if kernel is not None:
        return kernel(a)
    names = [o.name for o in spec.operands]
    if "scratch" not in names:
        raise KeyError(f"{spec.name} has no scratch operand")
    in_range = all(d.range.bounds[0] <= a[d.name] <= d.range.bounds[1] for d in spec.attr_defs)
    numel = spec.sizes(dict(a)) if in_range and spec.sizes is not None else None
    return TT_ERR_ARG if numel is None else numel[names.index("scratch")]


# Sizes (tt_op_<name>_check up to tt_op_check_operands).

def _sizes_linear(a: Mapping[str, int]) -> tuple[int, int] | None:
    if _numel4(a["in_features"], a["out_features"]) is None:
        return None
    return a["in_features"], a["out_features"]


def _sizes_linear_f32(a: Mapping[str, int]) -> list[int] | None:
    s = _sizes_linear(a)
    return None if s is None else [s[0], s[1] * s[0], s[1], s[1]]         # x, w, b, y


def _sizes_linear_grad_input_f32(a: Mapping[str, int]) -> list[int] | None:
    s = _sizes_linear(a)
    return None if s is None else [s[1], s[1] * s[0], s[0]]               # dy, w, dx


def _sizes_linear_grad_weight_f32(a: Mapping[str, int]) -> list[int] | None:
    s = _sizes_linear(a)
    return None if s is None else [s[1], s[0], s[1] * s[0], s[1]]         # dy, x, dw, db


def _sizes_linear_sgd_f32(a: Mapping[str, int]) -> list[int] | None:
    s = _sizes_linear(a)
    if s is None:
        return None
    i, o = s
    return [o, i, o * i, o, o * i, o]                     # dy, x, w, b, w_out, b_out


def _sizes_conv2d_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _conv_numel(a)
    return None if n is None else [n[0], n[2], a["out_c"], n[1]]          # x, w, b, y


def _sizes_conv2d_grad_input_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _conv_numel(a)
    return None if n is None else [n[1], n[2], n[0]]                      # dy, w, dx


def _sizes_conv2d_grad_weight_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _conv_numel(a)
    return None if n is None else [n[1], n[0], n[2], a["out_c"]]          # dy, x, dw, db


def _sizes_elementwise(k: int) -> Callable[[Mapping[str, int]], list[int] | None]:
    """k operands of `size` elements each (RELU, RELU_GRAD, SGD, ADD_F32)."""
    def sizes(a: Mapping[str, int]) -> list[int] | None:
        return [a["size"]] * k
    return sizes


def _sizes_pool(order: str) -> Callable[[Mapping[str, int]], list[int] | None]:
    """A pool's operands by their geometry: order "xy" (forward), "xyx" (max-pool gradient: x,
    dy, dx), "yx" (average-pool gradient: dy, dx)."""
    def sizes(a: Mapping[str, int]) -> list[int] | None:
        n = _pool_numel(a)
        return None if n is None else [n[0] if c == "x" else n[1] for c in order]
    return sizes


def _sizes_softmax_xent_f32(a: Mapping[str, int]) -> list[int] | None:
    n = a["num_classes"]
    return [n, 1, 1, n, 1]                                # logits, label, loss, dlogits, pred


def _sizes_conv_s8(scratch: Callable[[Mapping[str, int]], int]) \
        -> Callable[[Mapping[str, int]], list[int] | None]:
    """CONV2D_S8 and DEPTHWISE_CONV2D_S8 (the same check, each with its kernel's scratch)."""
    def sizes(a: Mapping[str, int]) -> list[int] | None:
        n_rows = a["n_rows"]
        n = _conv_numel(a)
        if n is None or not _act_range_ok(a["act_min"], a["act_max"]) or n_rows > a["out_c"]:
            return None
        s = scratch(a)
        if s <= 0:
            return None
        x, y, w = n
        out_c = a["out_c"]
        # x, w, bias, mult, shift, w_rows, channels, y, mask, scratch
        return [x, w, out_c, out_c, out_c, n_rows * (w // out_c), n_rows, y, _mask_bytes(y), s]
    return sizes


def _sizes_add_s8(a: Mapping[str, int]) -> list[int] | None:
    if not _act_range_ok(a["act_min"], a["act_max"]):
        return None
    n = a["size"]
    return [n, n, n, _mask_bytes(n)]                      # x1, x2, y, mask


def _sizes_avgpool2d_s8(a: Mapping[str, int]) -> list[int] | None:
    n = _pool_numel(a)
    if n is None or not _act_range_ok(a["act_min"], a["act_max"]):
        return None
    return [n[0], n[1]]


def _sizes_scaled(a: Mapping[str, int]) -> list[int] | None:
    """DEQUANTIZE_S8_F32 (x, scale, y) and DEQUANTIZE_GRAD_F32 (dy, scale, dx)."""
    return [a["size"], 1, a["size"]]


def _sizes_requant_grad_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _numel4(a["channels"], a["plane"])
    if n is None:
        return None
    return [_mask_bytes(n), n, a["channels"], n]          # mask, dy, eff_scale, dz


def _sizes_conv2d_s8_grad_input_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _conv_numel(a)
    if n is None or a["n_rows"] > a["out_c"]:
        return None
    x, y, w = n
    # dz, w, w_rows, channels, dx
    return [y, w, a["n_rows"] * (w // a["out_c"]), a["n_rows"], x]


def _sizes_conv2d_s8_grad_weight_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _conv_numel(a)
    if n is None or a["n_channels"] > a["out_c"]:
        return None
    x, y, w = n
    # dz, x, channels, dw, db
    return [y, x, a["n_channels"], a["n_channels"] * (w // a["out_c"]), a["out_c"]]


def _sizes_add_s8_grad_f32(a: Mapping[str, int]) -> list[int] | None:
    n = a["size"]
    return [_mask_bytes(n), n, 3, n, n]                   # mask, dy, scales, dx1, dx2


def _sizes_update_s8_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _numel4(a["rows"], a["row_size"])
    if n is None:
        return None
    return [n, n, a["rows"], n, 1, n, n]  # w, dw, qas, master, lr_scale, w_out, master_out


def _sizes_update_s32_f32(a: Mapping[str, int]) -> list[int] | None:
    n = a["size"]
    return [n, n, n, n, 1, n, n]          # b, db, qas, master, lr_scale, b_out, master_out


def _sizes_pw_dw_conv2d_s8(a: Mapping[str, int]) -> list[int] | None:
    pw, dw = _conv_group(a, "pw_"), _conv_group(a, "dw_")
    n1, n2 = _conv_numel(pw), _conv_numel(dw)
    if (n1 is None or n2 is None or not _act_range_ok(a["mid_act_min"], a["mid_act_max"])
            or not _act_range_ok(a["act_min"], a["act_max"])):
        return None
    s = pw_dw_conv2d_s8_buffer_size(pw, dw)  # checks the chain
    if s <= 0:
        return None
    (x, _mid, pw_w), (_mid2, y, dw_w) = n1, n2
    mid_c, out_c = pw["out_c"], dw["out_c"]
    # x, pw_w, pw_bias, pw_mult, pw_shift, dw_w, dw_bias, dw_mult, dw_shift, y, scratch
    return [x, pw_w, mid_c, mid_c, mid_c, dw_w, out_c, out_c, out_c, y, s]


# Problems (tt_op_<name>_check after tt_op_check_operands), with the firmware's words.

def _channels_ok(v: Any, name: str, out_c: int) -> bool:
    """tt_channels_ok: absent, or a constant of strictly increasing indices in [0, out_c)."""
    if not v.present(name):
        return True
    values = v.values(name)
    if values is None:
        return False
    prev = -1
    for c in values.tolist():
        if c < prev + 1 or c >= out_c:
            return False
        prev = c
    return True


def _shifts_problem(v: Any, name: str) -> str | None:
    """tt_shifts_ok: a constant of int32 requantization shifts, each in [-31, 30]. (The firmware
    reads an arena tensor's bytes at load instead of refusing it: they are not the plan's.)"""
    values = v.values(name)
    if values is None:
        return f"the requantization shifts ({name}) are not a constant"
    return None if bool(((values >= -31) & (values <= 30)).all()) else _SHIFTS


def _scales_problem(v: Any, name: str, words: str) -> str | None:
    """tt_scales_ok: f32 scales, each positive and finite (NaN is neither); a constant, as for
    the shifts."""
    values = v.values(name)
    if values is None:
        return f"the scales ({name}) are not a constant"
    return None if bool(((values > 0) & (values <= FLT_MAX)).all()) else words


FLT_MAX = 3.4028234663852886e38
_CHANNELS = "channel indices are not constant, increasing and below out_c"
_SHIFTS = "a requantization shift is outside [-31, 30]"
_ROWS = "substituted weight rows, their channels and n_rows disagree"
_IN_PLACE = "an update must write its state in place"


def _problem_weight_grad(v: Any) -> str | None:
    """LINEAR_GRAD_WEIGHT_F32, CONV2D_GRAD_WEIGHT_F32: a bias-only layer has neither x nor dw; at
    least one of dw and db, and dw needs x."""
    x_in, dw, db = v.present("x"), v.present("dw"), v.present("db")
    if not (dw or db) or (dw and not x_in):
        return "a weight gradient needs its input, and at least one of dw and db"
    return None


def _problem_sgd_f32(v: Any) -> str | None:
    if v.index("w") != v.index("w_out"):
        return "SGD must update in place"
    if v.tensor("w").arena_offset < 0:
        return "SGD on a constant"
    return None


def _problem_conv_s8(v: Any) -> str | None:
    """CONV2D_S8, DEPTHWISE_CONV2D_S8."""
    rows = v.a["n_rows"] > 0
    if v.present("w_rows") != rows or v.present("channels") != rows:
        return _ROWS
    problem = _shifts_problem(v, "shift")
    if problem is not None:
        return problem
    return None if _channels_ok(v, "channels", v.a["out_c"]) else _CHANNELS


def _problem_scale(v: Any) -> str | None:
    """DEQUANTIZE_S8_F32, DEQUANTIZE_GRAD_F32."""
    return _scales_problem(v, "scale", "the scale is not positive and finite")


def _problem_conv2d_s8_grad_input_f32(v: Any) -> str | None:
    rows = v.a["n_rows"] > 0
    if v.present("w_rows") != rows or v.present("channels") != rows:
        return _ROWS
    return None if _channels_ok(v, "channels", v.a["out_c"]) else _CHANNELS


def _problem_conv2d_s8_grad_weight_f32(v: Any) -> str | None:
    dw, x_in, sel, db = v.present("dw"), v.present("x"), v.present("channels"), v.present("db")
    n_ch, out_c = v.a["n_channels"], v.a["out_c"]
    if (dw != x_in or dw != (n_ch > 0) or (not dw and sel) or (dw and not sel and n_ch != out_c)
            or (not dw and not db)):
        return ("a weight gradient needs its input and n_channels rows (all rows without "
                "channels); with neither, db")
    return None if _channels_ok(v, "channels", out_c) else _CHANNELS


def _problem_add_s8_grad_f32(v: Any) -> str | None:
    problem = _scales_problem(v, "scales", "the add's scales are not positive and finite")
    if problem is not None:
        return problem
    if not (v.present("dx1") or v.present("dx2")):
        return "the add gradient has no output"
    return None


def _problem_update(state: str) -> Callable[[Any], str | None]:
    """UPDATE_S8_F32 (state w), UPDATE_S32_F32 (state b): in place, and a master iff rule 1."""
    def problem(v: Any) -> str | None:
        if (v.index(f"{state}_out") != v.index(state)
                or v.index("master_out") != v.index("master")):
            return _IN_PLACE
        if v.present("master") != (v.a["rule"] == UpdateRule.MASTER):
            return "an f32 master is needed exactly for rule 1"
        return None
    return problem


_PW_DW_PARAMS = ("pw_w", "pw_bias", "pw_mult", "pw_shift", "dw_w", "dw_bias", "dw_mult",
                 "dw_shift")


def _problem_pw_dw_conv2d_s8(v: Any) -> str | None:
    # Fused only where frozen: every parameter is a constant.
    for name in _PW_DW_PARAMS:
        if v.present(name) and v.tensor(name).arena_offset >= 0:
            return "a fused conv's weights, biases and multipliers must be constants"
    return _shifts_problem(v, "pw_shift") or _shifts_problem(v, "dw_shift")


def _problem_linear_sgd_f32(v: Any) -> str | None:
    if v.index("w_out") != v.index("w") or v.index("b_out") != v.index("b"):
        return _IN_PLACE
    x, w, b = v.present("x"), v.present("w"), v.present("b")
    return None if (w or b) and w == x else "the step needs w with x, b, or both"


def _sizes_conv2d_s8_sgd_f32(a: Mapping[str, int]) -> list[int] | None:
    n = _conv_numel(a)
    if n is None or a["n_channels"] > a["out_c"]:
        return None
    x, y, w = n
    row, rows = w // a["out_c"], a["n_channels"]
    # dz, x, channels, w, qas, master, lr_scale, w_out, master_out, db, scratch
    return [y, x, rows, rows * row, rows, rows * row, 1, rows * row, rows * row, a["out_c"],
            4 * row]


def _problem_conv2d_s8_sgd_f32(v: Any) -> str | None:
    if not v.present("channels") and v.a["n_channels"] != v.a["out_c"]:
        return "without channels every row trains (n_channels == out_c)"
    if v.index("w_out") != v.index("w") or v.index("master_out") != v.index("master"):
        return _IN_PLACE
    if v.present("master") != (v.a["rule"] == UpdateRule.MASTER):
        return "an f32 master is needed exactly for rule 1"
    return None if _channels_ok(v, "channels", v.a["out_c"]) else _CHANNELS


def _sizes_depthwise_conv2d_s8_grad_input_f32(a: Mapping[str, int]) -> list[int] | None:
    sizes = _sizes_conv2d_s8_grad_input_f32(a)
    if sizes is None or not a["groups"] == a["in_c"] == a["out_c"]:
        return None
    # dz, w, w_rows, channels, dx, scratch (one f32 input plane)
    return sizes + [4 * a["in_h"] * a["in_w"]]


def _sizes_conv_dw_pw_s8(a: Mapping[str, int]) -> list[int] | None:
    c, d, p = _conv_group(a, "c_"), _conv_group(a, "d_"), _conv_group(a, "p_")
    n1, n2, n3 = _conv_numel(c), _conv_numel(d), _conv_numel(p)
    if (n1 is None or n2 is None or n3 is None
            or not _act_range_ok(a["c_act_min"], a["c_act_max"])
            or not _act_range_ok(a["d_act_min"], a["d_act_max"])
            or not _act_range_ok(a["act_min"], a["act_max"])):
        return None
    s = _scratch_conv_dw_pw_s8(a)  # checks the chain
    if s <= 0:
        return None
    (x, _, c_w), (_, _, d_w), (_, y, p_w) = n1, n2, n3
    c_oc, d_oc, p_oc = c["out_c"], d["out_c"], p["out_c"]
    return [x, c_w, c_oc, c_oc, c_oc, d_w, d_oc, d_oc, d_oc, p_w, p_oc, p_oc, p_oc, y, s]


def _problem_conv_dw_pw_s8(v: Any) -> str | None:
    for name in ("c_w", "c_bias", "c_mult", "c_shift", "d_w", "d_bias", "d_mult", "d_shift",
                 "p_w", "p_bias", "p_mult", "p_shift"):
        if v.present(name) and v.tensor(name).arena_offset >= 0:
            return "a fused conv's weights, biases and multipliers must be constants"
    return (_shifts_problem(v, "c_shift") or _shifts_problem(v, "d_shift")
            or _shifts_problem(v, "p_shift"))


_CONV_S8_IN = (s8("x"), s8("w"), s32("bias", True), s32("mult"), s32("shift"),
               s8("w_rows", True), s32("channels", True))
_CONV_S8_OUT = (s8("y"), s8("mask", True), s8("scratch"))
_CONV_S8_ATTRS = CONV + _attrs("x_zero:int8 y_zero:int8") + ACT + _attrs("n_rows:nonneg")

OP_DEFS: tuple[OpDef, ...] = (
    _op(Opcode.LINEAR_F32, (f32("x"), f32("w"), f32("b", True)), (f32("y"),), LINEAR,
        "y = W x + b", sizes=_sizes_linear_f32),
    _op(Opcode.LINEAR_GRAD_INPUT_F32, (f32("dy"), f32("w")), (f32("dx"),), LINEAR,
        "dx = W^T dy", sizes=_sizes_linear_grad_input_f32),
    # A bias-only layer has neither x nor dw; at least one of dw and db exists, dw needs x.
    _op(Opcode.LINEAR_GRAD_WEIGHT_F32, (f32("dy"), f32("x", True)),
        (f32("dw", True), f32("db", True)), LINEAR, "dW = dy x^T, db = dy",
        sizes=_sizes_linear_grad_weight_f32, problem=_problem_weight_grad),
    _op(Opcode.CONV2D_F32, (f32("x"), f32("w"), f32("b", True)), (f32("y"),), CONV,
        "2-D convolution (zero padding, groups)", sizes=_sizes_conv2d_f32),
    _op(Opcode.CONV2D_GRAD_INPUT_F32, (f32("dy"), f32("w")), (f32("dx"),), CONV,
        "its gradient with respect to the input",
        sizes=_sizes_conv2d_grad_input_f32),
    _op(Opcode.CONV2D_GRAD_WEIGHT_F32, (f32("dy"), f32("x", True)),
        (f32("dw", True), f32("db", True)), CONV, "... with respect to the weight and bias",
        sizes=_sizes_conv2d_grad_weight_f32, problem=_problem_weight_grad),
    _op(Opcode.RELU_F32, (f32("x"),), (f32("y"),), SIZE, "y = max(x, 0)", may_alias=True,
        sizes=_sizes_elementwise(2)),
    _op(Opcode.RELU_GRAD_F32, (f32("y"), f32("dy")), (f32("dx"),), SIZE, "dx = dy where y > 0",
        may_alias=True, sizes=_sizes_elementwise(3)),
    _op(Opcode.MAXPOOL2D_F32, (f32("x"),), (f32("y"),), POOL, "padding counts as -inf",
        sizes=_sizes_pool("xy")),
    _op(Opcode.MAXPOOL2D_GRAD_F32, (f32("x"), f32("dy")), (f32("dx"),), POOL,
        "dy goes to the first maximum of each window", sizes=_sizes_pool("xyx")),
    _op(Opcode.AVGPOOL2D_F32, (f32("x"),), (f32("y"),), POOL,
        "padding counts (count_include_pad)", sizes=_sizes_pool("xy")),
    _op(Opcode.AVGPOOL2D_GRAD_F32, (f32("dy"),), (f32("dx"),), POOL, "its gradient",
        sizes=_sizes_pool("yx")),
    # label is an int32 scalar; outputs: loss (f32 scalar), dlogits, pred (int32 scalar).
    _op(Opcode.SOFTMAX_XENT_F32, (f32("logits"), s32("label")),
        (f32("loss"), f32("dlogits"), s32("pred")), _attrs("num_classes"),
        "loss = logsumexp(logits) - logits[label]; dlogits = softmax - onehot; pred = argmax",
        sizes=_sizes_softmax_xent_f32),
    # lr is the step's learning rate (sent with each train step).
    _op(Opcode.SGD_F32, (f32("w"), f32("g")), (f32("w_out"),), SIZE,
        "w -= lr * g, in place (w is input 0 and output 0)", in_place=(0,),
        sizes=_sizes_elementwise(3), problem=_problem_sgd_f32),
    # --- int8 (docs/int8.md) ----------------------------------------------------------------------
    # w is O x I/g x KH x KW (frozen or trainable); a layer training only some output channels
    # keeps them in w_rows (n_rows x I/g x KH x KW, in the arena) and output channel channels[j]
    # uses w_rows[j] instead of its (stale) row of w. mask (written when the backward needs it):
    # 1 bit per element of y, bit i % 8 of byte i / 8, set where act_min <= pre-clamp <= act_max.
    # scratch: the kernel's working memory (compiler/scratch.py sizes it as the C kernel's
    # _get_buffer_size() does), a planned arena tensor live only during the op.
    _op(Opcode.CONV2D_S8, _CONV_S8_IN, _CONV_S8_OUT, _CONV_S8_ATTRS,
        "y = clamp(MBQM(bias + sum w (x - x_zero), mult, shift) + y_zero)",
        sizes=_sizes_conv_s8(_scratch_conv2d_s8), problem=_problem_conv_s8),
    _op(Opcode.DEPTHWISE_CONV2D_S8, _CONV_S8_IN, _CONV_S8_OUT, _CONV_S8_ATTRS,
        "the same, groups == in_c",
        sizes=_sizes_conv_s8(_scratch_depthwise_conv2d_s8), problem=_problem_conv_s8),
    _op(Opcode.ADD_S8, (s8("x1"), s8("x2")), (s8("y"), s8("mask", True)),
        SIZE + _attrs("x1_zero:int8 x2_zero:int8 y_zero:int8 left_shift:lshift "
                      "x1_mult:nonneg x1_shift:rshift x2_mult:nonneg x2_shift:rshift "
                      "y_mult:nonneg y_shift:rshift") + ACT,
        "TFLite int8 add (left shift 20, three multipliers)", sizes=_sizes_add_s8),
    # Input and output share one quantization; x_zero is the padding value.
    _op(Opcode.AVGPOOL2D_S8, (s8("x"),), (s8("y"),), POOL + _attrs("x_zero:int8") + ACT,
        "mean rounded half away from zero, one quantization in and out",
        sizes=_sizes_avgpool2d_s8),
    _op(Opcode.DEQUANTIZE_S8_F32, (s8("x"), f32("scale")), (f32("y"),),
        SIZE + _attrs("zero:int8"), "y = (x - zero) * scale",
        sizes=_sizes_scaled, problem=_problem_scale),
    # dz may be dy (in place).
    _op(Opcode.REQUANT_GRAD_F32, (s8("mask"), f32("dy"), f32("eff_scale")), (f32("dz"),),
        _attrs("channels plane"), "dz = dy * mask * eff_scale[c] over channels x plane",
        sizes=_sizes_requant_grad_f32),
    _op(Opcode.CONV2D_S8_GRAD_INPUT_F32,
        (f32("dz"), s8("w"), s8("w_rows", True), s32("channels", True)), (f32("dx"),),
        CONV + _attrs("n_rows:nonneg"),
        "dx = transposed conv of dz with the weights the forward used (w_rows substituted)",
        sizes=_sizes_conv2d_s8_grad_input_f32, problem=_problem_conv2d_s8_grad_input_f32),
    # dw: the rows `channels` (all when absent; n_channels rows, 0 without dw); db: every channel.
    # x and dw are absent together (a layer that trains only its bias keeps no input).
    _op(Opcode.CONV2D_S8_GRAD_WEIGHT_F32, (f32("dz"), s8("x", True), s32("channels", True)),
        (f32("dw", True), f32("db", True)), CONV + _attrs("x_zero:int8 n_channels:nonneg"),
        "dw (selected rows) = dz (x) (x - x_zero); db = sum dz",
        sizes=_sizes_conv2d_s8_grad_weight_f32, problem=_problem_conv2d_s8_grad_weight_f32),
    # scales is f32[3] = (s1, s2, sy). Either output may be absent.
    _op(Opcode.ADD_S8_GRAD_F32, (s8("mask"), f32("dy"), f32("scales")),
        (f32("dx1", True), f32("dx2", True)), SIZE, "(dx1, dx2) = dy * mask * (s1/sy, s2/sy)",
        sizes=_sizes_add_s8_grad_f32, problem=_problem_add_s8_grad_f32),
    _op(Opcode.DEQUANTIZE_GRAD_F32, (f32("dy"), f32("scale")), (f32("dx"),), SIZE,
        "dx = dy * scale",
        sizes=_sizes_scaled, problem=_problem_scale),
    # In place on w (rows x row_size, all rows updated) and master (f32, same shape, present iff
    # rule == MASTER): u = lr' * (dw * qas[row]); qas holds the QAS scale of each row. lr' is the
    # step's lr times lr_scale[0] (f32) when the plan gives one: the backbone's learning rate
    # relative to the head's (issue 18; one shared constant, so `train --backbone-lr` rewrites
    # one float), else the step's lr.
    _op(Opcode.UPDATE_S8_F32,
        (s8("w"), f32("dw"), f32("qas"), f32("master", True), f32("lr_scale", True)),
        (s8("w_out"), f32("master_out", True)), _attrs("rows row_size rule:rule"),
        "int8 weight rows -= lr * lr_scale * dw * qas (rule: round or f32 master)",
        in_place=(0, 3), sizes=_sizes_update_s8_f32, problem=_problem_update("w")),
    _op(Opcode.UPDATE_S32_F32,
        (s32("b"), f32("db"), f32("qas"), f32("master", True), f32("lr_scale", True)),
        (s32("b_out"), f32("master_out", True)), _attrs("size rule:rule"),
        "int32 bias -= lr * lr_scale * db * qas (rule: round or f32 master)", in_place=(0, 3),
        sizes=_sizes_update_s32_f32, problem=_problem_update("b")),
    # The compiler makes y the same tensor as a (gradient accumulation in place).
    _op(Opcode.ADD_F32, (f32("a"), f32("b")), (f32("y"),), SIZE, "y = a + b",
        sizes=_sizes_elementwise(3)),
    # A frozen CONV2D_S8 with groups 1 (a 1x1 expand conv) and the DEPTHWISE_CONV2D_S8 that is its
    # only reader, fused (compiler/fuse.py): the intermediate (mid) is made one channel at a time
    # in the scratch, never whole. No masks, no trainable rows; every parameter a constant.
    _op(Opcode.PW_DW_CONV2D_S8,
        (s8("x"), s8("pw_w"), s32("pw_bias", True), s32("pw_mult"), s32("pw_shift"),
         s8("dw_w"), s32("dw_bias", True), s32("dw_mult"), s32("dw_shift")),
        (s8("y"), s8("scratch")),
        _attrs(_CONV_SPEC, "pw_") + _attrs(_CONV_SPEC, "dw_")
        + _attrs("x_zero:int8 mid_zero:int8 mid_act_min:int8 mid_act_max:int8 y_zero:int8")
        + ACT,
        "y = depthwise(conv(x)), conv groups 1, fused (compiler/fuse.py)",
        sizes=_sizes_pw_dw_conv2d_s8, problem=_problem_pw_dw_conv2d_s8),
    # A Linear layer's weight gradient applied as it is made (LINEAR_GRAD_WEIGHT_F32 + SGD_F32
    # without the dw buffer, bit for bit); x and w absent together (a bias-only layer).
    _op(Opcode.LINEAR_SGD_F32, (f32("dy"), f32("x", True), f32("w", True), f32("b", True)),
        (f32("w_out", True), f32("b_out", True)), LINEAR,
        "w -= lr * dy x^T, b -= lr * dy, in place: the weight gradient is never stored",
        in_place=(2, 3), sizes=_sizes_linear_sgd_f32, problem=_problem_linear_sgd_f32),
    # The int8 conv's trained rows updated straight from dz, one row at a time (TinyEngine's
    # fused gradient and update): CONV2D_S8_GRAD_WEIGHT_F32 + UPDATE_S8_F32 bit for bit, without
    # the n_channels x row f32 weight gradient; scratch holds one row of it (4 * row bytes). w is
    # the trained rows (channels; all out_c rows when absent), updated in place with its master
    # (rule MASTER); db (optional) as the gradient op's, for UPDATE_S32_F32.
    _op(Opcode.CONV2D_S8_SGD_F32,
        (f32("dz"), s8("x"), s32("channels", True), s8("w"), f32("qas"), f32("master", True),
         f32("lr_scale", True)),
        (s8("w_out"), f32("master_out", True), f32("db", True), s8("scratch")),
        CONV + _attrs("x_zero:int8 n_channels rule:rule"),
        "trained rows -= lr * lr_scale * qas * (dz (x) (x - x_zero)), a row at a time; "
        "db = sum dz",
        in_place=(3, 5), sizes=_sizes_conv2d_s8_sgd_f32, problem=_problem_conv2d_s8_sgd_f32),
    # CONV2D_S8_GRAD_INPUT_F32 of a depthwise conv with multiplier 1, a channel at a time through
    # one f32 plane of scratch: dx may be dz (in place; compiler/inplace.py), so a bias-only
    # depthwise layer's backward needs one gradient buffer where it needed two.
    _op(Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32,
        (f32("dz"), s8("w"), s8("w_rows", True), s32("channels", True)),
        (f32("dx"), s8("scratch")), CONV + _attrs("n_rows:nonneg"),
        "dx = transposed depthwise conv of dz (groups == in_c == out_c); dx may be dz",
        sizes=_sizes_depthwise_conv2d_s8_grad_input_f32,
        problem=_problem_conv2d_s8_grad_input_f32),
    # A frozen stem streamed a row at a time (compiler/fuse.py): a conv, the depthwise conv that is
    # its only reader and the 1x1 conv that is the depthwise's only reader; neither intermediate is
    # stored whole (a ring of the conv's output rows and one row of each later stage in scratch).
    _op(Opcode.CONV_DW_PW_S8,
        (s8("x"), s8("c_w"), s32("c_bias", True), s32("c_mult"), s32("c_shift"),
         s8("d_w"), s32("d_bias", True), s32("d_mult"), s32("d_shift"),
         s8("p_w"), s32("p_bias", True), s32("p_mult"), s32("p_shift")),
        (s8("y"), s8("scratch")),
        _attrs(_CONV_SPEC, "c_") + _attrs(_CONV_SPEC, "d_") + _attrs(_CONV_SPEC, "p_")
        + _attrs("x_zero:int8 c_zero:int8 c_act_min:int8 c_act_max:int8 d_zero:int8 "
                 "d_act_min:int8 d_act_max:int8 y_zero:int8") + ACT,
        "y = 1x1conv(depthwise(conv(x))), frozen, a row at a time (compiler/fuse.py)",
        sizes=_sizes_conv_dw_pw_s8, problem=_problem_conv_dw_pw_s8),
)


# --- fp32 layers of issue 15: activations, channel concatenation ---------------------------------

def _sizes_act_f32(a: Mapping[str, int]) -> list[int] | None:
    """`size` elements, alpha one float; a func that is no ActFunc is impossible."""
    if a["func"] > max(ActFunc):
        return None
    n = a["size"]
    return [n, 1, n]                                      # x, alpha, y


def _sizes_act_grad(a: Mapping[str, int]) -> list[int] | None:
    if a["func"] > max(ActFunc):
        return None
    n = a["size"]
    return [n, n, 1, n]                                   # v, dy, alpha, dx


def _problem_act(v: Any) -> str | None:
    if v.present("alpha") != (v.a["func"] == ActFunc.LEAKY_RELU):
        return "alpha is needed exactly for leaky_relu"
    return None


def _sizes_concat(order: str) -> Callable[[Mapping[str, int]], list[int] | None]:
    """CONCAT_F32 ("aby": a, b, y) and CONCAT_GRAD_F32 ("yab": dy, da, db)."""
    def sizes(a: Mapping[str, int]) -> list[int] | None:
        n = {"a": a["size_a"], "b": a["size_b"], "y": a["size_a"] + a["size_b"]}
        return None if n["y"] > INT32_MAX else [n[c] for c in order]
    return sizes


def _problem_concat_grad(v: Any) -> str | None:
    return None if v.present("da") or v.present("db") else "the concat gradient has no output"


def _sizes_pad_w_f32(a: Mapping[str, int]) -> list[int] | None:
    x, y = _numel4(a["rows"], a["in_w"]), _numel4(a["rows"], a["out_w"])
    return None if x is None or y is None else [x, y]


_ACT_ATTRS = _attrs("size func:nonneg")

OP_DEFS += (
    # func: an ActFunc. alpha (LEAKY_RELU only, absent otherwise): the negative slope, a
    # one-float constant (floats are never attributes).
    _op(Opcode.ACT_F32, (f32("x"), f32("alpha", True)), (f32("y"),), _ACT_ATTRS,
        "y = func(x), elementwise: relu6, leaky_relu, sigmoid, tanh, hardswish",
        sizes=_sizes_act_f32, problem=_problem_act),
    # v is what the derivative needs: the forward output y (relu6, sigmoid, tanh) or input x
    # (leaky_relu, hardswish).
    _op(Opcode.ACT_GRAD_F32, (f32("v"), f32("dy"), f32("alpha", True)), (f32("dx"),),
        _ACT_ATTRS, "dx = dy * func'(x), from v = y (relu6, sigmoid, tanh) or x (the others)",
        sizes=_sizes_act_grad, problem=_problem_act),
    # Batch 1, C x H x W: concatenating channels (dim 1) is concatenating the buffers.
    _op(Opcode.CONCAT_F32, (f32("a"), f32("b")), (f32("y"),), _attrs("size_a size_b"),
        "y = [a, b]: channel concatenation", sizes=_sizes_concat("aby")),
    _op(Opcode.CONCAT_GRAD_F32, (f32("dy"),), (f32("da", True), f32("db", True)),
        _attrs("size_a size_b"), "(da, db) = (dy[:size_a], dy[size_a:]); either may be absent",
        sizes=_sizes_concat("yab"), problem=_problem_concat_grad),
    # Rows (C x H of a C x H x W tensor) padded with zeros / cropped along W: the causal Conv1d's
    # F.pad(x, (k - 1, 0)) and conv(x)[..., :-(k - 1)]. Its gradient is the same op with in_w,
    # out_w and skip, lead swapped.
    _op(Opcode.PAD_W_F32, (f32("x"),), (f32("y"),), _attrs("rows in_w out_w skip:nonneg "
                                                         "lead:nonneg"),
        "y[r, j] = x[r, j - lead + skip] where that is in x, else 0",
        sizes=_sizes_pad_w_f32),
)



def _sizes_optim_step_f32(a: Mapping[str, int]) -> list[int] | None:
    n = a["size"]
    return [n, n, n, 1, 1, n, n, n]  # g, acc, v, phase, momentum, g_out, acc_out, v_out


_OPTIM = "the optimizer state must be written in place"
MOMENTUM_MAX = 1.0  # momentum is in [0, 1): at 1 or above the velocity never decays


def _problem_optim_step_f32(v: Any) -> str | None:
    """optim_step_f32.c's check: in place; acc and phase exactly when accumulate > 1; v exactly
    with momentum, a constant in [0, 1); the phase in the arena. (With neither, g stays g.)"""
    if (v.index("g_out") != v.index("g") or v.index("acc_out") != v.index("acc")
            or v.index("v_out") != v.index("v")):
        return _OPTIM
    accumulate = v.a["accumulate"] > 1
    if v.present("acc") != accumulate or v.present("phase") != accumulate:
        return "acc and phase are needed exactly when accumulate > 1"
    if v.present("v") != v.present("momentum"):
        return "a velocity is needed exactly with a momentum"
    if accumulate and v.tensor("phase").arena_offset < 0:
        return "the step phase is not in the arena"
    if v.present("momentum"):
        m = v.values("momentum")
        if m is None or not 0.0 <= float(m[0]) < MOMENTUM_MAX:
            return "the momentum is not a constant in [0, 1)"
    return None


def _problem_step_phase_s32(v: Any) -> str | None:
    return None if v.index("phase_out") == v.index("phase") else _IN_PLACE


OP_DEFS += (
    # The gradient g an update op (SGD_F32, UPDATE_S8_F32, UPDATE_S32_F32) applies next,
    # rewritten in place from the optimizer state (compiler/optim.py). With accumulate N > 1
    # (acc, phase): while phase < N - 1 the sample's gradient is added to acc and g becomes 0
    # (an update by 0 changes no parameter); at phase N - 1, g = (acc + g) / N and acc = 0.
    # With a momentum (v, momentum: a one-float constant): v = momentum * v + g; g = v, only when
    # the update applies. Refused (TT_ERR_NONFINITE, nothing written) when a new acc or v value
    # would not be finite.
    _op(Opcode.OPTIM_STEP_F32,
        (f32("g"), f32("acc", True), f32("v", True), s32("phase", True), f32("momentum", True)),
        (f32("g_out"), f32("acc_out", True), f32("v_out", True)), _attrs("size accumulate"),
        "accumulation (mean over accumulate steps) and momentum of a gradient, in place",
        in_place=(0, 1, 2), sizes=_sizes_optim_step_f32, problem=_problem_optim_step_f32),
    # The step phase of accumulation, the plan's last op: phase = phase + 1, 0 after period - 1
    # (and for a value outside [0, period), which a pushed state could hold).
    _op(Opcode.STEP_PHASE_S32, (s32("phase"),), (s32("phase_out"),), _attrs("period"),
        "phase = (phase + 1) mod period, in place", in_place=(0,),
        sizes=lambda a: [1, 1], problem=_problem_step_phase_s32),
)

OP_SPECS: dict[Opcode, OpDef] = {d.opcode: d for d in OP_DEFS}
OpSpec = OpDef  # the older name

# Updates write their state operands in place: output k is input in_place[k].
INPLACE_UPDATES: frozenset[Opcode] = frozenset(d.opcode for d in OP_DEFS if d.in_place)
# Ops whose output may share its input's buffer (elementwise, same size).
INPLACE_OK: frozenset[Opcode] = frozenset(d.opcode for d in OP_DEFS if d.may_alias)


def attr_index(opcode: Opcode, name: str) -> int:
    """Where attribute `name` of an op with this opcode sits in its attribute list."""
    return OP_SPECS[opcode].attr_index(name)


def make_attrs(opcode: Opcode, values: dict[str, int]) -> list[int]:
    """An op's attribute list from its attributes by name; a missing or unknown name is an
    error naming it."""
    names = OP_SPECS[opcode].attrs
    unknown = set(values) - set(names)
    missing = [n for n in names if n not in values]
    if unknown or missing:
        raise KeyError(f"{opcode.name} attributes: missing {missing}, unknown {sorted(unknown)}")
    return [int(values[n]) for n in names]


def attrs_dict(opcode: Opcode, attrs: Sequence[int]) -> dict[str, int]:
    """An op's attribute list by name."""
    return dict(zip(OP_SPECS[opcode].attrs, (int(a) for a in attrs), strict=False))


def _check_registry() -> None:
    assert set(OP_SPECS) == set(Opcode), "every Opcode needs exactly one OpDef"
    for d in OP_DEFS:
        names = [o.name for o in d.operands]
        assert len(set(names)) == len(names), f"{d.name}: operand names repeat"
        assert len(set(d.attrs)) == len(d.attrs), f"{d.name}: attribute names repeat"
        for k, i in enumerate(d.in_place):
            assert d.outs[k].dtype == d.ins[i].dtype, f"{d.name}: in-place dtype"


_check_registry()
