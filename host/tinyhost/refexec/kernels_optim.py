"""Reference kernels of the optimizer state (issue 18 section 4): OPTIM_STEP_F32 (gradient
accumulation over N samples, SGD momentum) and STEP_PHASE_S32 (the accumulation's step phase).

The float operations are optim_step_f32.c's, in its order, each rounded to float32:
    accumulating (phase < N - 1):  acc' = acc + g;  g' = 0
    applying (phase N - 1):        m = (acc + g) / N;  acc' = 0
    without accumulation:          m = g
    with momentum, when applying:  v' = momentum * v + m;  g' = v'     (PyTorch's SGD, dampening 0)
    without momentum:              g' = m
The update op after it then applies g' with its own rule, so an accumulating step (g' = 0) leaves
every parameter as it was: w - lr * 0 = w in float, rint(w - 0) = w for int8/int32 state, and a
master keeps its value (w = rint(master) already).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from tinyhost.ops import Opcode
from tinyhost.plan import NONE, Op
from tinyhost.refexec.registry import NonFiniteStep, reference

if TYPE_CHECKING:
    from tinyhost.refexec.executor import RefExecutor

F32 = NDArray[np.float32]


@dataclass
class OptimState:
    """What OPTIM_STEP_F32 writes: the gradient to apply and the new state (None: absent)."""
    g: F32
    acc: F32 | None
    v: F32 | None


def applies(phase: int, accumulate: int) -> bool:
    """Whether this step's update applies: every step without accumulation, else at phase
    N - 1 (and at a phase outside [0, N), which only a pushed state can hold)."""
    return accumulate <= 1 or not 0 <= phase < accumulate - 1


def next_phase(phase: int, period: int) -> int:
    """STEP_PHASE_S32: the phase after this step."""
    return phase + 1 if 0 <= phase < period - 1 else 0


def optim_step(g: F32, acc: F32 | None, v: F32 | None, phase: int, accumulate: int,
               momentum: np.float32 | None) -> OptimState:
    """One sample's gradient through accumulation and momentum (the module's rules); raises
    NonFiniteStep when a new acc or v value is not finite (the C op then writes nothing)."""
    g = np.asarray(g, np.float32)
    if accumulate > 1:
        assert acc is not None
        total = (np.asarray(acc, np.float32) + g).astype(np.float32)
        if not applies(phase, accumulate):
            if not np.all(np.isfinite(total)):
                raise NonFiniteStep("the accumulated gradient acc + g is not finite")
            return OptimState(np.zeros_like(g), total, None if v is None else np.asarray(v))
        m = (total / np.float32(accumulate)).astype(np.float32)
        new_acc: F32 | None = np.zeros_like(g)
    else:
        m, new_acc = g, None
    if momentum is None:
        if not np.all(np.isfinite(m)):
            raise NonFiniteStep("the mean gradient is not finite")
        return OptimState(m, new_acc, None)
    assert v is not None
    new_v = (np.float32(momentum) * np.asarray(v, np.float32)).astype(np.float32)
    new_v = (new_v + m).astype(np.float32)
    if not np.all(np.isfinite(new_v)):
        raise NonFiniteStep("the velocity momentum * v + g is not finite")
    return OptimState(new_v.copy(), new_acc, new_v)


@reference(Opcode.OPTIM_STEP_F32)
def _run_optim_step(ex: RefExecutor, op: Op) -> None:
    g, acc, v, phase, momentum = op.inputs
    n = op.attr("accumulate")
    state = optim_step(ex.view(g), None if acc == NONE else ex.view(acc),
                       None if v == NONE else ex.view(v),
                       0 if phase == NONE else int(ex.view(phase)[0]), n,
                       None if momentum == NONE else np.float32(ex.view(momentum)[0]))
    ex.view(g)[...] = state.g
    if state.acc is not None:
        ex.view(acc)[...] = state.acc
    if state.v is not None:
        ex.view(v)[...] = state.v


@reference(Opcode.STEP_PHASE_S32)
def _run_step_phase(ex: RefExecutor, op: Op) -> None:
    phase = ex.view(op.inputs[0])
    phase[0] = next_phase(int(phase[0]), op.attr("period"))
