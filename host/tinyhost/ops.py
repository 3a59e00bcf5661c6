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


@dataclass(frozen=True)
class OpSpec:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[str, ...]


CONV_ATTRS = ("in_c", "in_h", "in_w", "out_c", "out_h", "out_w",
              "k_h", "k_w", "stride_h", "stride_w", "pad_h", "pad_w", "groups")
POOL_ATTRS = ("c", "in_h", "in_w", "out_h", "out_w", "k_h", "k_w",
              "stride_h", "stride_w", "pad_h", "pad_w")

# int8 attributes after CONV_ATTRS: zero points and the clamp range are int8 values; n_rows is the
# number of trainable weight rows that replace rows `channels` of the (frozen) weight (0: none).
CONV_S8_ATTRS = CONV_ATTRS + ("x_zero", "y_zero", "act_min", "act_max", "n_rows")
# PW_DW_CONV2D_S8: both convs' geometry, then the zero points and clamps of the chain x -> mid -> y.
PW_DW_S8_ATTRS = (tuple(f"pw_{a}" for a in CONV_ATTRS) + tuple(f"dw_{a}" for a in CONV_ATTRS)
                  + ("x_zero", "mid_zero", "mid_act_min", "mid_act_max", "y_zero", "act_min",
                     "act_max"))
ADD_S8_ATTRS = ("size", "x1_zero", "x2_zero", "y_zero", "left_shift", "x1_mult", "x1_shift",
                "x2_mult", "x2_shift", "y_mult", "y_shift", "act_min", "act_max")


class UpdateRule(IntEnum):
    """How UPDATE_S8_F32 / UPDATE_S32_F32 apply a step (docs/int8.md, section 5)."""
    ROUND = 0   # int8/int32 state only: w <- clip(rint(w - u)); b <- b - rint(u)
    MASTER = 1  # an f32 master of the updated rows/bias: master -= u; w = clip(rint(master))


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
    # --- int8 (docs/int8.md). Floats are never attributes: scales live in small f32 constants.
    # y = clamp(MBQM(bias + sum w * (x - x_zero), mult[o], shift[o]) + y_zero). w is O x I/g x
    # KH x KW (frozen or trainable); a layer training only some output channels keeps them in
    # w_rows (n_rows x I/g x KH x KW, in the arena) and output channel channels[j] uses w_rows[j]
    # instead of its (stale) row of w. bias, w_rows and channels are optional.
    # mask (optional; written when the backward needs it): 1 bit per element of y, bit i % 8 of
    # byte i / 8 (i the C x H x W index), set where act_min <= pre-clamp value <= act_max.
    # scratch: the kernel's working memory (compiler/scratch.py sizes it as the C kernel's
    # _get_buffer_size() does), a planned arena tensor live only during the op.
    Opcode.CONV2D_S8: OpSpec(("x", "w", "bias", "mult", "shift", "w_rows", "channels"),
                             ("y", "mask", "scratch"), CONV_S8_ATTRS),
    Opcode.DEPTHWISE_CONV2D_S8: OpSpec(("x", "w", "bias", "mult", "shift", "w_rows", "channels"),
                                       ("y", "mask", "scratch"), CONV_S8_ATTRS),
    Opcode.ADD_S8: OpSpec(("x1", "x2"), ("y", "mask"), ADD_S8_ATTRS),
    # Input and output share one quantization; x_zero is the padding value.
    Opcode.AVGPOOL2D_S8: OpSpec(("x",), ("y",), POOL_ATTRS + ("x_zero", "act_min", "act_max")),
    # y = (x - zero) * scale[0]
    Opcode.DEQUANTIZE_S8_F32: OpSpec(("x", "scale"), ("y",), ("size", "zero")),
    # dz = dy * mask * eff_scale[c] over channels x plane (mask: the forward's bits); dz may be dy.
    Opcode.REQUANT_GRAD_F32: OpSpec(("mask", "dy", "eff_scale"), ("dz",), ("channels", "plane")),
    # dx = transposed conv of dz with the weights the forward used (w with w_rows substituted).
    Opcode.CONV2D_S8_GRAD_INPUT_F32: OpSpec(("dz", "w", "w_rows", "channels"), ("dx",),
                                            CONV_ATTRS + ("n_rows",)),
    # dw (the rows `channels`, all when -1; n_channels rows, 0 without dw) and db (every channel).
    # x and dw are absent together (a layer that trains only its bias keeps no input).
    Opcode.CONV2D_S8_GRAD_WEIGHT_F32: OpSpec(("dz", "x", "channels"), ("dw", "db"),
                                             CONV_ATTRS + ("x_zero", "n_channels")),
    # The add's clamp mask (the forward's bits), then (dx1, dx2) = dy * (f32(s1/sy), f32(s2/sy));
    # scales is f32[3] = (s1, s2, sy). Either output may be absent.
    Opcode.ADD_S8_GRAD_F32: OpSpec(("mask", "dy", "scales"), ("dx1", "dx2"), ("size",)),
    Opcode.DEQUANTIZE_GRAD_F32: OpSpec(("dy", "scale"), ("dx",), ("size",)),
    # In place on w (rows x row_size int8, all rows updated) and master (f32, same shape, present
    # iff rule == MASTER): u = lr * (dw * qas[row]). qas already holds the QAS scale of each row.
    Opcode.UPDATE_S8_F32: OpSpec(("w", "dw", "qas", "master"), ("w", "master"),
                                 ("rows", "row_size", "rule")),
    # In place on the int32 bias b (and its f32 master iff rule == MASTER): u = lr * (db * qas).
    Opcode.UPDATE_S32_F32: OpSpec(("b", "db", "qas", "master"), ("b", "master"), ("size", "rule")),
    # y = a + b; the compiler makes y the same tensor as a (gradient accumulation in place).
    Opcode.ADD_F32: OpSpec(("a", "b"), ("y",), ("size",)),
    # A frozen CONV2D_S8 with groups 1 (a 1x1 expand conv) and the DEPTHWISE_CONV2D_S8 that is
    # its only reader, fused (compiler/fuse.py): y = depthwise(conv(x)) exactly, the intermediate
    # (mid) made one channel at a time in the scratch, never whole. No masks, no trainable rows.
    Opcode.PW_DW_CONV2D_S8: OpSpec(("x", "pw_w", "pw_bias", "pw_mult", "pw_shift",
                                    "dw_w", "dw_bias", "dw_mult", "dw_shift"),
                                   ("y", "scratch"), PW_DW_S8_ATTRS),
}

# Updates write their state operands in place: output k is input k.
INPLACE_UPDATES: frozenset[Opcode] = frozenset({Opcode.SGD_F32, Opcode.UPDATE_S8_F32,
                                                Opcode.UPDATE_S32_F32})

# Ops whose output may share its input's buffer (elementwise, same size).
INPLACE_OK: frozenset[Opcode] = frozenset({Opcode.RELU_F32, Opcode.RELU_GRAD_F32})


def attr_index(opcode: Opcode, name: str) -> int:
    """Where attribute `name` of an op with this opcode sits in its attribute list."""
    try:
        return OP_SPECS[opcode].attrs.index(name)
    except ValueError:
        raise KeyError(f"{opcode.name} has no attribute {name!r}; it has "
                       f"{', '.join(OP_SPECS[opcode].attrs)}") from None
