"""Pass: kernel scratch as planned tensors.

A C kernel that needs working memory (the int8 convs' im2col columns and row buffers) gets it as
an extra output operand, an int8 arena tensor of exactly the size the kernel's `_get_buffer_size()`
query returns (the device refuses any other size). plan_memory then gives it a lifetime of just
its op, so scratch shares bytes with whatever is dead at that moment and the planned arena is the
whole of what a step needs. The size formulas below mirror firmware/runtime/ops/*.c.
"""
from __future__ import annotations

from collections.abc import Callable

from tinyhost.compiler.graph import Graph
from tinyhost.ops import OP_SPECS, Opcode
from tinyhost.plan import DType, TensorKind


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def conv2d_s8_scratch(attrs: list[int]) -> int:
    """tt_conv2d_s8_get_buffer_size: two int16 im2col columns, each rounded up to 4 entries."""
    in_c, _, _, _, _, _, k_h, k_w = attrs[:8]
    groups = attrs[12]
    return 2 * _round_up(in_c // groups * k_h * k_w, 4) * 2


def depthwise_conv2d_s8_scratch(attrs: list[int]) -> int:
    """tt_depthwise_conv2d_s8_get_buffer_size: a ring of 2 k_h padded int16 input rows and one
    input channel's weights as int16 rows of even length."""
    in_c, _, in_w, out_c, _, _, k_h, k_w = attrs[:8]
    pad_w = attrs[11]
    row = (in_w + 2 * pad_w + 2) & ~1
    return (2 * k_h * row + out_c // in_c * k_h * _round_up(k_w, 2)) * 2


def pw_dw_conv2d_s8_scratch(attrs: list[int]) -> int:
    """tt_pw_dw_conv2d_s8_get_buffer_size: one intermediate plane (rounded up to 4 bytes), then
    the largest of the two kernels' scratch for a single channel (the conv with one output
    channel, the depthwise with one input channel) and a row of int32 accumulators."""
    pw, dw = list(attrs[:13]), list(attrs[13:26])
    plane = _round_up(pw[4] * pw[5], 4)
    acc = 4 * pw[5]                            # out_w int32
    pw[3] = 1                                  # out_c
    dw[0], dw[3], dw[12] = 1, dw[3] // dw[0], 1  # in_c, out_c (the multiplier), groups
    return plane + max(conv2d_s8_scratch(pw), depthwise_conv2d_s8_scratch(dw), acc)


SCRATCH_BYTES: dict[Opcode, Callable[[list[int]], int]] = {
    Opcode.CONV2D_S8: conv2d_s8_scratch,
    Opcode.DEPTHWISE_CONV2D_S8: depthwise_conv2d_s8_scratch,
    Opcode.PW_DW_CONV2D_S8: pw_dw_conv2d_s8_scratch,
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
