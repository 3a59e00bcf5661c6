"""The compiler: model source -> training plan, as a named list of passes (see docs/architecture.md
and compiler/pipeline.py, the pass manager).

Each pass has one job and its own file; an error raised inside a pass names it. `compile_source`
takes a CompileOptions; compile_model, compile_tiny_training and compile_quantized are its
keyword forms for each front end.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.pipeline import (
    INT8_UPDATE_CHOICES,
    INT8_UPDATE_DEFAULT,
    INT8_UPDATE_RULES,
    PIPELINES,
    QUANTIZE,
    TINY_TRAINING,
    TORCH,
    Compilation,
    CompileOptions,
    CompileResult,
    Pass,
    compile_source,
    pass_names,
    run_passes,
)
from tinyhost.compiler.verify import VerifyError
from tinyhost.lr import LR_DEFAULT, TINY_LR_DEFAULT

PASSES = pass_names(TORCH)
# int8 models from tiny-training: the import replaces capture and lowering.
PASSES_TINY = pass_names(TINY_TRAINING)
# float models to int8: post-training quantization replaces lowering.
PASSES_INT8 = pass_names(QUANTIZE)


def compile_model(source: str, update: str = "full", lr: float = LR_DEFAULT,
                  reorder: bool = True, momentum: float = 0.0,
                  accumulate: int = 1) -> CompileResult:
    """A float PyTorch model (FILE.py:FACTORY or .pt2) -> an fp32 training plan; momentum and
    accumulate: the optimizer state (compiler/optim.py)."""
    return compile_source(source, CompileOptions(TORCH, update=update, lr=lr, reorder=reorder,
                                                 momentum=momentum, accumulate=accumulate))


def compile_tiny_training(pkl: str | Path, num_classes: int, update: str = "full",
                          lr: float = TINY_LR_DEFAULT, input_size: int | None = None,
                          qas: bool = True,
                          int8_update: str = INT8_UPDATE_DEFAULT, reorder: bool = True,
                          fuse: bool = True, budget: int | None = None,
                          backbone_lr: float | None = None, momentum: float = 0.0,
                          accumulate: int = 1) -> CompileResult:
    """A pretrained int8 model of the paper (tiny-training's .pkl) -> a training plan with a new
    fp32 head of num_classes; `update` is full, last:K, bias-only or a sparse-update scheme file
    (see compiler/sparse.py); int8_update is the int8 weight update rule, round, master or auto
    (master if the arena then fits `budget`, default MCU_SRAM_BYTES, else round);
    fuse=False keeps every frozen 1x1 expand conv and its depthwise conv apart (compiler/fuse.py)
    and every depthwise output beside its input (compiler/inplace.py): the same numbers, more
    memory; for per-layer inspection and comparisons. lr is the head's learning rate and
    backbone_lr the int8 backbone's (defaults: tinyhost.lr, chosen by bench/transfer.py)."""
    return compile_source(pkl, CompileOptions(
        TINY_TRAINING, update=update, lr=lr, reorder=reorder, qas=qas, int8_update=int8_update,
        fuse=fuse, budget=budget, num_classes=num_classes, input_size=input_size,
        backbone_lr=backbone_lr, momentum=momentum, accumulate=accumulate))


def compile_quantized(source: str, calib: np.ndarray, update: str = "full",
                      lr: float = LR_DEFAULT,
                      qas: bool = True, int8_update: str = INT8_UPDATE_DEFAULT,
                      reorder: bool = True, fuse: bool = True,
                      calibration: dict[str, Any] | None = None,
                      budget: int | None = None,
                      backbone_lr: float | None = None, momentum: float = 0.0,
                      accumulate: int = 1) -> CompileResult:
    """A float PyTorch model (FILE.py:FACTORY or .pt2), quantized to int8 after training with the
    calibration samples `calib` (compiler/quantize.py) -> a training plan with the same int8
    passes as compile_tiny_training; its final Linear stays the fp32 head. `calibration` (what
    the samples were) goes into the plan's meta."""
    return compile_source(source, CompileOptions(
        QUANTIZE, update=update, lr=lr, reorder=reorder, qas=qas, int8_update=int8_update,
        fuse=fuse, budget=budget, calib=calib, calibration=calibration, backbone_lr=backbone_lr,
        momentum=momentum, accumulate=accumulate))


__all__ = ["INT8_UPDATE_CHOICES", "INT8_UPDATE_DEFAULT", "INT8_UPDATE_RULES", "PASSES",
           "PASSES_INT8", "PASSES_TINY", "PIPELINES", "QUANTIZE", "TINY_TRAINING", "TORCH",
           "Compilation", "CompileError", "CompileOptions", "CompileResult", "Pass",
           "VerifyError", "compile_model", "compile_quantized", "compile_source",
           "compile_tiny_training", "pass_names", "run_passes"]
