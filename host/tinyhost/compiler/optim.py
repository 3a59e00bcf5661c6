"""Pass: the optimizer state (issue 18 section 4): gradient accumulation over N samples
(`--accumulate N`) and SGD with momentum (`--momentum M`) for the trainable set.

Before every update op (SGD_F32, UPDATE_S8_F32, UPDATE_S32_F32) the pass puts an OPTIM_STEP_F32
that rewrites the update's gradient in place (refexec/kernels_optim.py has the rules): with
accumulation it adds the sample's gradient to a persistent f32 sum and hands the update 0 (a
no-op) until the N-th sample, when it hands it the mean; with momentum it keeps a persistent f32
velocity v = M v + g and hands the update v (PyTorch's SGD, dampening 0, not Nesterov). One
STEP_PHASE_S32, the plan's last op, advances the shared step phase (0 .. N-1).

State lives in the arena as trainable tensors (`optim:<param>.grad_sum`, `optim:<param>.velocity`,
`optim:phase`): persistent across steps, saved by CHECKPOINT and read/written by pull/push like
the parameters, so `train --resume` continues the cycle where it stopped.

The updates need whole gradients: with either option on, the int8 backbone's fused
CONV2D_S8_SGD_F32 and the head's LINEAR_SGD_F32 (gradient made and applied a row at a time, never
stored; compiler/autodiff_s8.py) become the gradient op plus update op, so each trained layer's
weight gradient is an arena tensor for the span of its backward.

For the int8 QAS updates (docs/int8.md section 5: u = lr * qas * g, qas = 1/s^2 per output
channel), the velocity is kept in gradient units and the update multiplies by qas after it.
tiny-training's SGDScale scales the gradient by qas first and keeps torch.optim.SGD's momentum
buffer of the scaled gradient; as qas is a constant per channel, its buffer is qas * ours exactly
in real arithmetic, so both apply the same step (up to float rounding), and one OPTIM_STEP_F32
serves the fp32 head and the int8 backbone alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyhost.compiler.autodiff import len_of
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph, IROp, ops_attrs
from tinyhost.dtypes import DType
from tinyhost.ops import MOMENTUM_MAX, Opcode
from tinyhost.plan import NONE, TensorKind

# The update ops and the input index of the gradient each applies.
UPDATE_GRAD_INPUT = {Opcode.SGD_F32: 1, Opcode.UPDATE_S8_F32: 1, Opcode.UPDATE_S32_F32: 1}
STATE_PREFIX = "optim:"      # the state tensors' names: not parameters of the model
PHASE = "optim:phase"
MOMENTUM = "optim:momentum"  # the one-float constant every OPTIM_STEP_F32 reads
ACCUMULATE_MAX = 1 << 16


@dataclass(frozen=True)
class Optimizer:
    """`--momentum M` (0: plain SGD) and `--accumulate N` (1: an update every sample)."""
    momentum: float = 0.0
    accumulate: int = 1

    @property
    def stateful(self) -> bool:
        return self.momentum != 0.0 or self.accumulate > 1

    def check(self) -> None:
        if not (math.isfinite(self.momentum) and 0.0 <= self.momentum < MOMENTUM_MAX):
            raise CompileError(f"--momentum {self.momentum!r}: give a number in [0, 1) (0.9 is "
                               "tiny-training's; 0 turns momentum off)")
        if not 1 <= self.accumulate <= ACCUMULATE_MAX:
            raise CompileError(f"--accumulate {self.accumulate!r}: give a whole number of "
                               f"samples per update, 1 (off) .. {ACCUMULATE_MAX}")

    def to_dict(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "accumulate": self.accumulate}


def is_state(name: str) -> bool:
    return name.startswith(STATE_PREFIX)


def add_optimizer(graph: Graph, opt: Optimizer) -> Graph:
    """OPTIM_STEP_F32 before every update op and STEP_PHASE_S32 last (nothing without state)."""
    opt.check()
    if not opt.stateful:
        return graph
    fused = [op for op in graph.ops if op.opcode in (Opcode.LINEAR_SGD_F32,
                                                      Opcode.CONV2D_S8_SGD_F32)]
    if fused:
        raise CompileError(f"optimizer: {fused[0].source} updates by a fused op "
                           f"({fused[0].opcode.name}), which keeps no gradient to accumulate "
                           "or give momentum (a compiler bug: autodiff must not fuse then)")
    g = graph
    phase = NONE
    if opt.accumulate > 1:
        phase = g.add_tensor(PHASE, (1,), TensorKind.PARAM_TRAINABLE, DType.S32,
                             np.zeros(1, np.int32))
    momentum = NONE
    if opt.momentum:
        momentum = g.add_tensor(MOMENTUM, (1,), TensorKind.PARAM_FROZEN, DType.F32,
                                np.array([opt.momentum], np.float32))
    ops: list[IROp] = []
    n_updates = 0
    for k, op in enumerate(g.ops):
        if k >= g.n_forward and op.opcode in UPDATE_GRAD_INPUT:
            ops.append(_optim_step(g, op, opt, phase, momentum))
            n_updates += 1
        ops.append(op)
    if not n_updates:
        raise CompileError("optimizer: the plan has no update op to give momentum or "
                           "accumulation")
    g.ops = ops
    if phase != NONE:
        g.add_op(Opcode.STEP_PHASE_S32, [phase], [phase], {"period": opt.accumulate}, "optimizer")
    return g


def _optim_step(g: Graph, update: IROp, opt: Optimizer, phase: int, momentum: int) -> IROp:
    grad = update.inputs[UPDATE_GRAD_INPUT[update.opcode]]
    param = g.tensors[update.inputs[0]]
    size = len_of(g, grad)

    def state(what: str) -> int:
        return g.add_tensor(f"{STATE_PREFIX}{param.name}.{what}", (size,),
                            TensorKind.PARAM_TRAINABLE, DType.F32, np.zeros(size, np.float32))

    acc = state("grad_sum") if opt.accumulate > 1 else NONE
    vel = state("velocity") if opt.momentum else NONE
    return IROp(Opcode.OPTIM_STEP_F32, [grad, acc, vel, phase, momentum], [grad, acc, vel],
                ops_attrs(Opcode.OPTIM_STEP_F32, size=size, accumulate=opt.accumulate),
                update.source, {})

