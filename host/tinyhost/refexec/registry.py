"""Which reference function runs each opcode.

An op's reference lives beside its numpy kernel (kernels_f32.py, kernels_s8.py): a function
`run(ex, op)` that reads the op's operands from the executor's arena (shaped by the op's
attributes, read by name) and writes its outputs, registered with `@reference(Opcode.X)`.
RefExecutor looks them up here; every Opcode must have one (checked when the executor loads).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tinyhost.ops import Opcode
from tinyhost.plan import Op

if TYPE_CHECKING:
    from tinyhost.refexec.executor import RefExecutor

RunFn = Callable[["RefExecutor", Op], None]
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
