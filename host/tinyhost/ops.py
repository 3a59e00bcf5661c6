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

from collections.abc import Callable, Iterable, Sequence
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


class UpdateRule(IntEnum):
    """How UPDATE_S8_F32 / UPDATE_S32_F32 apply a step (docs/int8.md, section 5)."""
    ROUND = 0   # int8/int32 state only: w <- clip(rint(w - u)); b <- b - rint(u)
    MASTER = 1  # an f32 master of the updated rows/bias: master -= u; w = clip(rint(master))


# --- attributes ------------------------------------------------------------------------------------

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


# --- operands --------------------------------------------------------------------------------------

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
            if all(w.name == prefix + d.name and w.range == d.range for w, d in zip(window, defs)):
                found.append(i)
        return found


def _op(opcode: Opcode, ins: Iterable[Operand], outs: Iterable[Operand], attrs: Iterable[Attr],
        doc: str, **kw: object) -> OpDef:
    return OpDef(opcode, tuple(ins), tuple(outs), tuple(attrs), " ".join(doc.split()),
                 **kw)  # type: ignore[arg-type]


_CONV_S8_IN = (s8("x"), s8("w"), s32("bias", True), s32("mult"), s32("shift"),
               s8("w_rows", True), s32("channels", True))
_CONV_S8_OUT = (s8("y"), s8("mask", True), s8("scratch"))
_CONV_S8_ATTRS = CONV + _attrs("x_zero:int8 y_zero:int8") + ACT + _attrs("n_rows:nonneg")

OP_DEFS: tuple[OpDef, ...] = (
    _op(Opcode.LINEAR_F32, (f32("x"), f32("w"), f32("b", True)), (f32("y"),), LINEAR,
        "y = W x + b"),
    _op(Opcode.LINEAR_GRAD_INPUT_F32, (f32("dy"), f32("w")), (f32("dx"),), LINEAR,
        "dx = W^T dy"),
    # A bias-only layer has neither x nor dw; at least one of dw and db exists, dw needs x.
    _op(Opcode.LINEAR_GRAD_WEIGHT_F32, (f32("dy"), f32("x", True)),
        (f32("dw", True), f32("db", True)), LINEAR, "dW = dy x^T, db = dy"),
    _op(Opcode.CONV2D_F32, (f32("x"), f32("w"), f32("b", True)), (f32("y"),), CONV,
        "2-D convolution (zero padding, groups)"),
    _op(Opcode.CONV2D_GRAD_INPUT_F32, (f32("dy"), f32("w")), (f32("dx"),), CONV,
        "its gradient with respect to the input"),
    _op(Opcode.CONV2D_GRAD_WEIGHT_F32, (f32("dy"), f32("x", True)),
        (f32("dw", True), f32("db", True)), CONV, "... with respect to the weight and bias"),
    _op(Opcode.RELU_F32, (f32("x"),), (f32("y"),), SIZE, "y = max(x, 0)", may_alias=True),
    _op(Opcode.RELU_GRAD_F32, (f32("y"), f32("dy")), (f32("dx"),), SIZE, "dx = dy where y > 0",
        may_alias=True),
    _op(Opcode.MAXPOOL2D_F32, (f32("x"),), (f32("y"),), POOL, "padding counts as -inf"),
    _op(Opcode.MAXPOOL2D_GRAD_F32, (f32("x"), f32("dy")), (f32("dx"),), POOL,
        "dy goes to the first maximum of each window"),
    _op(Opcode.AVGPOOL2D_F32, (f32("x"),), (f32("y"),), POOL,
        "padding counts (count_include_pad)"),
    _op(Opcode.AVGPOOL2D_GRAD_F32, (f32("dy"),), (f32("dx"),), POOL, "its gradient"),
    # label is an int32 scalar; outputs: loss (f32 scalar), dlogits, pred (int32 scalar).
    _op(Opcode.SOFTMAX_XENT_F32, (f32("logits"), s32("label")),
        (f32("loss"), f32("dlogits"), s32("pred")), _attrs("num_classes"),
        "loss = logsumexp(logits) - logits[label]; dlogits = softmax - onehot; pred = argmax"),
    # lr is the step's learning rate (sent with each train step).
    _op(Opcode.SGD_F32, (f32("w"), f32("g")), (f32("w_out"),), SIZE,
        "w -= lr * g, in place (w is input 0 and output 0)", in_place=(0,)),
    # --- int8 (docs/int8.md) -----------------------------------------------------------------------
    # w is O x I/g x KH x KW (frozen or trainable); a layer training only some output channels
    # keeps them in w_rows (n_rows x I/g x KH x KW, in the arena) and output channel channels[j]
    # uses w_rows[j] instead of its (stale) row of w. mask (written when the backward needs it):
    # 1 bit per element of y, bit i % 8 of byte i / 8, set where act_min <= pre-clamp <= act_max.
    # scratch: the kernel's working memory (compiler/scratch.py sizes it as the C kernel's
    # _get_buffer_size() does), a planned arena tensor live only during the op.
    _op(Opcode.CONV2D_S8, _CONV_S8_IN, _CONV_S8_OUT, _CONV_S8_ATTRS,
        "y = clamp(MBQM(bias + sum w (x - x_zero), mult, shift) + y_zero)"),
    _op(Opcode.DEPTHWISE_CONV2D_S8, _CONV_S8_IN, _CONV_S8_OUT, _CONV_S8_ATTRS,
        "the same, groups == in_c"),
    _op(Opcode.ADD_S8, (s8("x1"), s8("x2")), (s8("y"), s8("mask", True)),
        SIZE + _attrs("x1_zero:int8 x2_zero:int8 y_zero:int8 left_shift:lshift "
                      "x1_mult:nonneg x1_shift:rshift x2_mult:nonneg x2_shift:rshift "
                      "y_mult:nonneg y_shift:rshift") + ACT,
        "TFLite int8 add (left shift 20, three multipliers)"),
    # Input and output share one quantization; x_zero is the padding value.
    _op(Opcode.AVGPOOL2D_S8, (s8("x"),), (s8("y"),), POOL + _attrs("x_zero:int8") + ACT,
        "mean rounded half away from zero, one quantization in and out"),
    _op(Opcode.DEQUANTIZE_S8_F32, (s8("x"), f32("scale")), (f32("y"),),
        SIZE + _attrs("zero:int8"), "y = (x - zero) * scale"),
    # dz may be dy (in place).
    _op(Opcode.REQUANT_GRAD_F32, (s8("mask"), f32("dy"), f32("eff_scale")), (f32("dz"),),
        _attrs("channels plane"), "dz = dy * mask * eff_scale[c] over channels x plane"),
    _op(Opcode.CONV2D_S8_GRAD_INPUT_F32,
        (f32("dz"), s8("w"), s8("w_rows", True), s32("channels", True)), (f32("dx"),),
        CONV + _attrs("n_rows:nonneg"),
        "dx = transposed conv of dz with the weights the forward used (w_rows substituted)"),
    # dw: the rows `channels` (all when absent; n_channels rows, 0 without dw); db: every channel.
    # x and dw are absent together (a layer that trains only its bias keeps no input).
    _op(Opcode.CONV2D_S8_GRAD_WEIGHT_F32, (f32("dz"), s8("x", True), s32("channels", True)),
        (f32("dw", True), f32("db", True)), CONV + _attrs("x_zero:int8 n_channels:nonneg"),
        "dw (selected rows) = dz (x) (x - x_zero); db = sum dz"),
    # scales is f32[3] = (s1, s2, sy). Either output may be absent.
    _op(Opcode.ADD_S8_GRAD_F32, (s8("mask"), f32("dy"), f32("scales")),
        (f32("dx1", True), f32("dx2", True)), SIZE, "(dx1, dx2) = dy * mask * (s1/sy, s2/sy)"),
    _op(Opcode.DEQUANTIZE_GRAD_F32, (f32("dy"), f32("scale")), (f32("dx"),), SIZE,
        "dx = dy * scale"),
    # In place on w (rows x row_size, all rows updated) and master (f32, same shape, present iff
    # rule == MASTER): u = lr * (dw * qas[row]); qas holds the QAS scale of each row.
    _op(Opcode.UPDATE_S8_F32, (s8("w"), f32("dw"), f32("qas"), f32("master", True)),
        (s8("w_out"), f32("master_out", True)), _attrs("rows row_size rule:rule"),
        "int8 weight rows -= lr * dw * qas (rule: round or f32 master)", in_place=(0, 3)),
    _op(Opcode.UPDATE_S32_F32, (s32("b"), f32("db"), f32("qas"), f32("master", True)),
        (s32("b_out"), f32("master_out", True)), _attrs("size rule:rule"),
        "int32 bias -= lr * db * qas (rule: round or f32 master)", in_place=(0, 3)),
    # The compiler makes y the same tensor as a (gradient accumulation in place).
    _op(Opcode.ADD_F32, (f32("a"), f32("b")), (f32("y"),), SIZE, "y = a + b"),
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
        "y = depthwise(conv(x)), conv groups 1, fused (compiler/fuse.py)"),
    # A Linear layer's weight gradient applied as it is made (LINEAR_GRAD_WEIGHT_F32 + SGD_F32
    # without the dw buffer, bit for bit); x and w absent together (a bias-only layer).
    _op(Opcode.LINEAR_SGD_F32, (f32("dy"), f32("x", True), f32("w", True), f32("b", True)),
        (f32("w_out", True), f32("b_out", True)), LINEAR,
        "w -= lr * dy x^T, b -= lr * dy, in place: the weight gradient is never stored",
        in_place=(2, 3)),
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
    return dict(zip(OP_SPECS[opcode].attrs, (int(a) for a in attrs)))


def _check_registry() -> None:
    assert set(OP_SPECS) == set(Opcode), "every Opcode needs exactly one OpDef"
    for d in OP_DEFS:
        names = [o.name for o in d.operands]
        assert len(set(names)) == len(names), f"{d.name}: operand names repeat"
        assert len(set(d.attrs)) == len(d.attrs), f"{d.name}: attribute names repeat"
        for k, i in enumerate(d.in_place):
            assert d.outs[k].dtype == d.ins[i].dtype, f"{d.name}: in-place dtype"


_check_registry()
