"""Multiply-accumulates of a plan's ops, from their geometry attributes (the registry's conv2d and
linear attribute groups, tinyhost.ops.ATTR_GROUPS), for the speed benches (bench/m4f.py).

An op counts the MACs of every conv or linear geometry it carries: a conv is out_c x out_h x
out_w x (in_c / groups) x k_h x k_w, a linear in_features x out_features. Its gradient ops (input,
weight, the fused weight gradient + update) carry the same geometry and do the same number of
MACs; elementwise ops, pools and the loss count 0. A fused op (PW_DW_CONV2D_S8, CONV_DW_PW_S8)
counts each geometry it fuses. Trained rows are not told apart: a weight gradient of part of a
layer's rows counts the whole layer (an upper bound for sparse schemes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tinyhost.ops import ATTR_GROUPS, OP_SPECS, Opcode


class _Op(Protocol):
    opcode: int
    attrs: list[int]


class _Plan(Protocol):
    ops: list[_Op]
    n_forward: int


def op_macs(op: _Op) -> int:
    spec = OP_SPECS[Opcode(op.opcode)]
    total = 0
    for group, per in (("conv2d", _conv), ("linear", _linear)):
        width = len(ATTR_GROUPS[group][0])
        for at in spec.group_at(group):
            total += per(op.attrs[at:at + width])
    return total


def _conv(a: list[int]) -> int:
    in_c, _, _, out_c, out_h, out_w, k_h, k_w, _, _, _, _, groups = a
    return out_c * out_h * out_w * (in_c // groups) * k_h * k_w


def _linear(a: list[int]) -> int:
    return a[0] * a[1]


@dataclass(frozen=True)
class StepMacs:
    forward: int
    backward: int  # loss, backward and updates: every op after the forward ones

    @property
    def total(self) -> int:
        return self.forward + self.backward


def step_macs(plan: _Plan) -> StepMacs:
    per_op = [op_macs(op) for op in plan.ops]
    return StepMacs(sum(per_op[:plan.n_forward]), sum(per_op[plan.n_forward:]))
