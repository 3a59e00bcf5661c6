"""The compiler: model source -> training plan, as a named list of passes (see docs/architecture.md).

Each pass has one job and its own file; an error raised inside a pass names it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhost.compiler.autodiff import autodiff
from tinyhost.compiler.autodiff_s8 import autodiff_s8
from tinyhost.compiler.capture import capture
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.emit import emit
from tinyhost.compiler.fuse import fuse_pw_dw
from tinyhost.compiler.graph import Graph
from tinyhost.compiler.import_tiny import HEAD_SEED, import_tiny
from tinyhost.compiler.inplace import depthwise_in_place
from tinyhost.compiler.lower import lower
from tinyhost.compiler.plan_memory import plan_memory
from tinyhost.compiler.quantize import INT8_LAYERS, quantize
from tinyhost.compiler.report import MCU_SRAM_BYTES, MemoryReport, memory_report
from tinyhost.compiler.scratch import add_scratch
from tinyhost.ops import UpdateRule
from tinyhost.plan import Plan, encode_plan

PASSES = ("capture", "lower", "autodiff", "plan_memory", "emit")
# int8 models from tiny-training: the import replaces capture and lowering.
PASSES_TINY = ("import_tiny", "autodiff", "fuse", "inplace", "scratch", "plan_memory",
               "emit")
# float models to int8: post-training quantization replaces lowering.
PASSES_INT8 = ("capture", "quantize", "autodiff", "fuse", "inplace", "scratch", "plan_memory",
               "emit")
INT8_UPDATE_RULES = {"round": UpdateRule.ROUND, "master": UpdateRule.MASTER}
# The int8 weight update rule by default (docs/int8.md section 12): "auto" takes master, the more
# accurate by measurement, when the plan's arena fits the memory budget, and round otherwise (the
# f32 masters of the paper's 99kb schemes alone would not fit 256 KB).
INT8_UPDATE_DEFAULT = "auto"
INT8_UPDATE_CHOICES = ("auto", *INT8_UPDATE_RULES)


@dataclass
class CompileResult:
    plan: Plan
    data: bytes
    report: MemoryReport


def compile_model(source: str, update: str = "full", lr: float = 0.01,
                  reorder: bool = True) -> CompileResult:
    captured = capture(source)
    graph = lower(captured)
    graph = autodiff(graph, update, reorder)
    memory = plan_memory(graph)
    meta = {"model": captured.name, "source": source, "update": update,
            "input_shape": list(captured.example_input.shape[1:])}
    if not reorder:
        meta["reorder"] = False
    plan = emit(graph, memory, lr, meta)
    data = encode_plan(plan)
    return CompileResult(plan, data, memory_report(plan, len(data)))


def compile_tiny_training(pkl: str | Path, num_classes: int, update: str = "full",
                          lr: float = 0.01, input_size: int | None = None, qas: bool = True,
                          int8_update: str = INT8_UPDATE_DEFAULT, reorder: bool = True,
                          fuse: bool = True, budget: int | None = None) -> CompileResult:
    """A pretrained int8 model of the paper (tiny-training's .pkl) -> a training plan with a new
    fp32 head of num_classes; `update` is full, last:K, bias-only or a sparse-update scheme file
    (see compiler/sparse.py); int8_update is the int8 weight update rule, round, master or auto
    (master if the arena then fits `budget`, default MCU_SRAM_BYTES, else round);
    fuse=False keeps every frozen 1x1 expand conv and its depthwise conv apart (compiler/fuse.py)
    and every depthwise output beside its input (compiler/inplace.py): the same numbers, more
    memory; for per-layer inspection and comparisons."""
    meta = {"model": Path(pkl).stem, "source": str(pkl), "format": "tiny-training int8",
            "head": {"dtype": "f32", "init": f"torch.nn.Linear default, seed {HEAD_SEED}"}}
    return _int8_plan(lambda: import_tiny(pkl, num_classes, input_size), meta, update, lr, qas,
                      int8_update, reorder, fuse, budget)


def compile_quantized(source: str, calib: np.ndarray, update: str = "full", lr: float = 0.01,
                      qas: bool = True, int8_update: str = INT8_UPDATE_DEFAULT,
                      reorder: bool = True, fuse: bool = True,
                      calibration: dict | None = None, budget: int | None = None) -> CompileResult:
    """A float PyTorch model (FILE.py:FACTORY or .pt2), quantized to int8 after training with the
    calibration samples `calib` (compiler/quantize.py) -> a training plan with the same int8
    passes as compile_tiny_training; its final Linear stays the fp32 head. `calibration` (what
    the samples were) goes into the plan's meta."""
    captured = capture(source, INT8_LAYERS)
    meta = {"model": captured.name, "source": source, "format": "float model, int8 post-training "
            "quantization", "calibration": (calibration or {}) | {"samples": int(len(calib))},
            "head": {"dtype": "f32", "init": "the model's own Linear"}}
    return _int8_plan(lambda: quantize(captured, calib), meta, update, lr, qas, int8_update,
                      reorder, fuse, budget)


def _int8_plan(front: Callable[[], Graph], meta: dict, update: str, lr: float, qas: bool,
               int8_update: str, reorder: bool, fuse: bool, budget: int | None) -> CompileResult:
    """The int8 graph from `front` (import_tiny or quantize) through the passes after it, with
    the update rule int8_update, or for "auto" master if its arena fits the budget, else round
    (the choice and why go into the plan's meta)."""
    if int8_update not in INT8_UPDATE_CHOICES:
        raise CompileError(f"--int8-update {int8_update!r}: expected one of "
                           f"{', '.join(INT8_UPDATE_CHOICES)}")
    if int8_update != "auto":
        return _int8_passes(front(), meta, update, lr, qas, int8_update, reorder, fuse)
    limit = MCU_SRAM_BYTES if budget is None else budget
    master = _int8_passes(front(), meta, update, lr, qas, "master", reorder, fuse)
    if master.plan.arena_size <= limit:
        master.plan.meta["int8_update_auto"] = (
            f"master: its arena ({master.plan.arena_size} B) fits the {limit} B budget")
        return _reencoded(master)
    result = _int8_passes(front(), meta, update, lr, qas, "round", reorder, fuse)
    result.plan.meta["int8_update_auto"] = (
        f"round: with f32 masters the arena would be {master.plan.arena_size} B, over the "
        f"{limit} B budget")
    return _reencoded(result)


def _reencoded(result: CompileResult) -> CompileResult:
    data = encode_plan(result.plan)
    return CompileResult(result.plan, data, memory_report(result.plan, len(data)))


def _int8_passes(graph: Graph, meta: dict, update: str, lr: float, qas: bool, int8_update: str,
                 reorder: bool, fuse: bool) -> CompileResult:
    """The passes after an int8 front end (import_tiny or quantize): autodiff, fuse, inplace,
    scratch, plan_memory, emit."""
    rule = INT8_UPDATE_RULES[int8_update]
    input_shape = list(graph.tensors[graph.input].shape)
    assert graph.input_quant is not None
    graph, scheme = autodiff_s8(graph, update, meta["model"], qas=qas, rule=rule,
                                reorder=reorder)
    graph, fusions = fuse_pw_dw(graph) if fuse else (graph, [])
    graph, in_place = depthwise_in_place(graph) if fuse else (graph, [])
    graph = add_scratch(graph)
    memory = plan_memory(graph)
    meta = meta | {
        "update": update, "scheme": scheme.to_dict(), "input_shape": input_shape,
        "input_quant": {"scale": graph.input_quant[0], "zero": graph.input_quant[1]},
        "qas": qas, "int8_update": int8_update, "reorder": reorder,
        "import_notes": graph.notes, "fusions": [f.to_dict() for f in fusions],
        "in_place": [p.to_dict() for p in in_place]}
    plan = emit(graph, memory, lr, meta)
    data = encode_plan(plan)
    return CompileResult(plan, data, memory_report(plan, len(data)))


__all__ = ["CompileError", "CompileResult", "INT8_UPDATE_CHOICES", "INT8_UPDATE_DEFAULT", "PASSES",
           "PASSES_INT8", "PASSES_TINY", "compile_model", "compile_quantized",
           "compile_tiny_training"]
