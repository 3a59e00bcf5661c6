"""The op table shared by the compiler, the reference executor and the firmware.

Opcode numbers are part of the plan format: they must match `firmware/runtime/include/tt/tt_ops.h`
and `docs/plan.cddl` (a test checks all three). Each entry lists the operand roles and the integer
attributes in the order the plan stores them; the C decoder reads attributes positionally.

Layouts (batch 1, no batch dimension stored): activations are C×H×W (Conv1d: C×1×L), conv weights
O×(I/groups)×KH×KW, linear weights O×I. Gradients have the shape of what they are the gradient of.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


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


@dataclass(frozen=True)
class OpSpec:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[str, ...]


CONV_ATTRS = ("in_c", "in_h", "in_w", "out_c", "out_h", "out_w",
              "k_h", "k_w", "stride_h", "stride_w", "pad_h", "pad_w", "groups")
POOL_ATTRS = ("c", "in_h", "in_w", "out_h", "out_w", "k_h", "k_w",
              "stride_h", "stride_w", "pad_h", "pad_w")

# Optional operands are encoded as -1: a bias; in weight-gradient ops, x and dw of a layer that
# trains only its bias (no dw, so no saved input), or db of one without a trainable bias.
OP_SPECS: dict[Opcode, OpSpec] = {
    Opcode.LINEAR_F32: OpSpec(("x", "w", "b"), ("y",), ("in_features", "out_features")),
    Opcode.LINEAR_GRAD_INPUT_F32: OpSpec(("dy", "w"), ("dx",), ("in_features", "out_features")),
    Opcode.LINEAR_GRAD_WEIGHT_F32: OpSpec(("dy", "x"), ("dw", "db"), ("in_features", "out_features")),
    Opcode.CONV2D_F32: OpSpec(("x", "w", "b"), ("y",), CONV_ATTRS),
    Opcode.CONV2D_GRAD_INPUT_F32: OpSpec(("dy", "w"), ("dx",), CONV_ATTRS),
    Opcode.CONV2D_GRAD_WEIGHT_F32: OpSpec(("dy", "x"), ("dw", "db"), CONV_ATTRS),
    Opcode.RELU_F32: OpSpec(("x",), ("y",), ("size",)),
    Opcode.RELU_GRAD_F32: OpSpec(("y", "dy"), ("dx",), ("size",)),
    Opcode.MAXPOOL2D_F32: OpSpec(("x",), ("y",), POOL_ATTRS),
    Opcode.MAXPOOL2D_GRAD_F32: OpSpec(("x", "dy"), ("dx",), POOL_ATTRS),
    Opcode.AVGPOOL2D_F32: OpSpec(("x",), ("y",), POOL_ATTRS),
    Opcode.AVGPOOL2D_GRAD_F32: OpSpec(("dy",), ("dx",), POOL_ATTRS),
    # label is an int32 scalar tensor; outputs: loss (f32 scalar), dlogits, pred (int32 scalar).
    Opcode.SOFTMAX_XENT_F32: OpSpec(("logits", "label"), ("loss", "dlogits", "pred"), ("num_classes",)),
    # In-place: w -= lr * g, where lr is the step's learning rate (sent with each train step).
    Opcode.SGD_F32: OpSpec(("w", "g"), ("w",), ("size",)),
}

# Ops whose output may share its input's buffer (elementwise, same size).
INPLACE_OK: frozenset[Opcode] = frozenset({Opcode.RELU_F32, Opcode.RELU_GRAD_F32})
