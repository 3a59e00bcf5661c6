"""Which reference function runs each opcode.

An op's reference lives beside its numpy kernel (kernels_f32.py, kernels_s8.py): a function
`run(ex, op)` that reads the op's operands from the executor's arena (shaped by the op's
attributes, read by name) and writes its outputs, registered with `@reference(Opcode.X)`.
RefExecutor looks them up here; every Opcode must have one (checked when the executor loads).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tinyhost.ops import Opcode
from tinyhost.plan import Op

if TYPE_CHECKING:
    from tinyhost.refexec.executor import RefExecutor

RunFn = Callable[["RefExecutor", Op], None]


class NonFiniteStep(ArithmeticError):
    """A reference op refused a NaN/inf loss or update, as the C op does with TT_ERR_NONFINITE:
    an update writes nothing (CONV2D_S8_SGD_F32: the rows before the refused one are written,
    `partial`), and the executor stops the step there."""

    def __init__(self, what: str,
                 partial: tuple[np.ndarray, np.ndarray | None] | None = None) -> None:
        super().__init__(what)
        self.partial = partial


def require_finite(values: np.ndarray, what: str) -> None:
    """The C ops' check before an update writes: every value it would write is finite."""
    if not np.all(np.isfinite(values)):
        raise NonFiniteStep(f"{what} is not finite")
REFERENCE: dict[Opcode, RunFn] = {}


def reference(*opcodes: Opcode) -> Callable[[RunFn], RunFn]:
    """Registers the decorated function as the reference of these opcodes."""
    def register(fn: RunFn) -> RunFn:
        for opcode in opcodes:
            if opcode in REFERENCE:
                raise ValueError(f"{opcode.name} has two reference functions")
            REFERENCE[opcode] = fn
        return fn
    return register
