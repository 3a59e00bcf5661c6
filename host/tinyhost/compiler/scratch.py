"""Pass: kernel scratch as planned tensors.

A C kernel that needs working memory (the int8 convs' im2col columns and row buffers) gets it as
an extra output operand, an int8 arena tensor of exactly the size the kernel's `_get_buffer_size()`
query returns (the device refuses any other size). plan_memory then gives it a lifetime of just
its op, so scratch shares bytes with whatever is dead at that moment and the planned arena is the
whole of what a step needs. The size formulas below mirror firmware/runtime/ops/*.c.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from tinyhost.compiler.graph import Graph
from tinyhost.dtypes import DType
from tinyhost.ops import CONV_ATTRS, OP_SPECS, Opcode, scratch_bytes
from tinyhost.plan import TensorKind


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _named(opcode: Opcode, attrs: Sequence[int]) -> dict[str, int]:
    """An op's attribute list by name (its names in ops.py)."""
    names = OP_SPECS[opcode].attrs
    if len(attrs) != len(names):
        raise ValueError(f"{opcode.name} has {len(names)} attributes, got {len(attrs)}")
    return dict(zip(names, (int(v) for v in attrs), strict=True))


def _conv_bytes(a: Mapping[str, int]) -> int:
    """tt_conv2d_s8_get_buffer_size: two int16 im2col columns, each rounded up to 4 entries."""
    return 2 * _round_up(a["in_c"] // a["groups"] * a["k_h"] * a["k_w"], 4) * 2


def _depthwise_bytes(a: Mapping[str, int]) -> int:
    """tt_depthwise_conv2d_s8_get_buffer_size: a ring of 2 k_h padded int16 input rows and one
    input channel's weights as int16 rows of even length."""
    row = (a["in_w"] + 2 * a["pad_w"] + 2) & ~1
    return (2 * a["k_h"] * row + a["out_c"] // a["in_c"] * a["k_h"] * _round_up(a["k_w"], 2)) * 2


def conv2d_s8_scratch(attrs: Sequence[int]) -> int:
    """CONV2D_S8's scratch bytes from its attribute list."""
    return _conv_bytes(_named(Opcode.CONV2D_S8, attrs))


def depthwise_conv2d_s8_scratch(attrs: Sequence[int]) -> int:
    """DEPTHWISE_CONV2D_S8's scratch bytes from its attribute list."""
    return _depthwise_bytes(_named(Opcode.DEPTHWISE_CONV2D_S8, attrs))


def pw_dw_conv2d_s8_scratch(attrs: Sequence[int]) -> int:
    """tt_pw_dw_conv2d_s8_get_buffer_size: one intermediate plane (rounded up to 4 bytes), then
    the largest of the two kernels' scratch for a single channel (the conv with one output
    channel, the depthwise with one input channel) and a row of int32 accumulators."""
    a = _named(Opcode.PW_DW_CONV2D_S8, attrs)
    pw = {n: a[f"pw_{n}"] for n in CONV_ATTRS}
    dw = {n: a[f"dw_{n}"] for n in CONV_ATTRS}
    plane = _round_up(pw["out_h"] * pw["out_w"], 4)
    acc = 4 * pw["out_w"]                   # out_w int32
    one_out = pw | {"out_c": 1}
    # one input channel: out_c is the depthwise multiplier, groups 1
    one_in = dw | {"in_c": 1, "out_c": dw["out_c"] // dw["in_c"], "groups": 1}
    return plane + max(_conv_bytes(one_out), _depthwise_bytes(one_in), acc)


def conv2d_s8_sgd_scratch(attrs: Sequence[int]) -> int:
    """CONV2D_S8_SGD_F32: one f32 row of the weight gradient (I/groups x KH x KW)."""
    a = _named(Opcode.CONV2D_S8_SGD_F32, attrs)
    return 4 * (a["in_c"] // a["groups"] * a["k_h"] * a["k_w"])


def depthwise_grad_input_scratch(attrs: Sequence[int]) -> int:
    """DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32: one f32 input plane."""
    a = _named(Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32, attrs)
    return 4 * a["in_h"] * a["in_w"]


SCRATCH_BYTES: dict[Opcode, Callable[[Sequence[int]], int]] = {
    Opcode.CONV2D_S8: conv2d_s8_scratch,
    Opcode.DEPTHWISE_CONV2D_S8: depthwise_conv2d_s8_scratch,
    Opcode.PW_DW_CONV2D_S8: pw_dw_conv2d_s8_scratch,
    Opcode.CONV2D_S8_SGD_F32: conv2d_s8_sgd_scratch,
    Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32: depthwise_grad_input_scratch,
    # the registry's copy of tt_conv_dw_pw_s8_get_buffer_size
    Opcode.CONV_DW_PW_S8: lambda attrs: scratch_bytes(Opcode.CONV_DW_PW_S8, attrs),
}


def add_scratch(graph: Graph) -> Graph:
    for op in graph.ops:
        size_of = SCRATCH_BYTES.get(op.opcode)
        if size_of is None:
            continue
        slot = OP_SPECS[op.opcode].outputs.index("scratch")
        op.outputs[slot] = graph.add_tensor(f"{op.source}.scratch", (size_of(op.attrs),),
                                            TensorKind.ACTIVATION, DType.S8)
    return graph
