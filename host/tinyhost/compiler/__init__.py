"""The compiler: model source -> training plan, as a named list of passes (see docs/architecture.md).

Each pass has one job and its own file; an error raised inside a pass names it.
"""
from __future__ import annotations

from dataclasses import dataclass

from tinyhost.compiler.autodiff import autodiff
from tinyhost.compiler.capture import capture
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.emit import emit
from tinyhost.compiler.lower import lower
from tinyhost.compiler.plan_memory import plan_memory
from tinyhost.compiler.report import MemoryReport, memory_report
from tinyhost.plan import Plan, encode_plan

PASSES = ("capture", "lower", "autodiff", "plan_memory", "emit")


@dataclass
class CompileResult:
    plan: Plan
    data: bytes
    report: MemoryReport


def compile_model(source: str, update: str = "full", lr: float = 0.01) -> CompileResult:
    captured = capture(source)
    graph = lower(captured)
    graph = autodiff(graph, update)
    memory = plan_memory(graph)
    meta = {"model": captured.name, "source": source, "update": update,
            "input_shape": list(captured.example_input.shape[1:])}
    plan = emit(graph, memory, lr, meta)
    data = encode_plan(plan)
    return CompileResult(plan, data, memory_report(plan, len(data)))


__all__ = ["CompileError", "CompileResult", "PASSES", "compile_model"]
