"""Pass 1, capture: a model source (`file.py:factory` or a `.pt2`) -> torch.export program."""
from __future__ import annotations

import importlib.util
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinyhost.compiler.errors import CompileError

# Leaf modules the lowering understands; anything else is named in the error before export runs.
# (Residual adds and torch.cat over channels are functions, not modules: lower.py takes them.)
SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d,
    nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Tanh,
    nn.Hardswish, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
SUPPORTED_NAMES = (", ".join(c.__name__ for c in SUPPORTED_LAYERS)
                   + ", residual adds and channel concatenation (torch.cat)")


@dataclass(frozen=True)
class LayerSet:
    """The leaf modules one compile mode lowers, for the unsupported-layer message."""
    mode: str                                 # "fp32", "--int8"
    layers: tuple[type[nn.Module], ...]
    names: str                                # what the message lists


FP32_LAYERS = LayerSet("fp32", SUPPORTED_LAYERS, SUPPORTED_NAMES)


@dataclass
class Captured:
    program: torch.export.ExportedProgram
    example_input: torch.Tensor
    name: str


def load_factory(spec: str) -> tuple[nn.Module, torch.Tensor]:
    """`path/to/file.py:factory` -> factory() which returns (module, example_input)."""
    path_str, sep, func = spec.rpartition(":")
    if not sep or not path_str.endswith(".py"):
        raise CompileError(f"model {spec!r}: expected FILE.py:FACTORY or a .pt2 file")
    path = Path(path_str)
    if not path.is_file():
        raise CompileError(f"model file {path} does not exist")
    mod_name = f"_tinyhost_model_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module
    module_spec.loader.exec_module(module)
    factory = getattr(module, func, None)
    if not callable(factory):
        raise CompileError(f"{path} has no function {func!r}")
    result = factory()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module)
            and isinstance(result[1], torch.Tensor)):
        raise CompileError(f"{spec} must return (nn.Module, example_input_tensor)")
    return result


def check_layers(model: nn.Module, layers: LayerSet = FP32_LAYERS,
                 other: LayerSet | None = None) -> None:
    """Every leaf module in `layers`; the error names the first that is not, what this mode
    supports and whether the `other` mode (fp32 / --int8) would accept it."""
    for name, m in model.named_modules():
        if next(m.children(), None) is not None or isinstance(m, layers.layers):
            continue  # containers are fine: their leaves are checked
        kind = type(m).__name__
        msg = (f"unsupported layer {kind} at '{name or '<root>'}' in a {layers.mode} plan; "
               f"supported layers ({layers.mode}): {layers.names}")
        if other is not None:
            msg += (f". {other.mode} would accept {kind}" if isinstance(m, other.layers)
                    else f". {other.mode} does not accept {kind} either")
        raise CompileError(msg)


def capture(source: str, layers: LayerSet = FP32_LAYERS,
            other: LayerSet | None = None) -> Captured:
    """`layers`: the leaf modules the caller's lowering understands (fp32 or int8); `other`: the
    other mode's, named in the error for a layer only it accepts."""
    if source.endswith(".pt2"):
        if not Path(source).is_file():
            raise CompileError(f"model file {source} does not exist")
        if not zipfile.is_zipfile(source):  # checked here: torch logs a traceback for these
            raise CompileError(f"{source} is not a torch.export .pt2 file (not a zip archive)")
        try:
            program = torch.export.load(source)
        except Exception as e:  # zip, pickle and version errors alike: one clear line
            raise CompileError(f"{source} is not a torch.export .pt2 file ({e})") from None
        example = program.example_inputs[0][0] if program.example_inputs else None
        if example is None:
            raise CompileError(f"{source} was exported without example inputs")
        return Captured(program, example, Path(source).stem)
    model, example = load_factory(source)
    check_layers(model, layers, other)
    model.eval()
    try:
        program = torch.export.export(model, (example,))
    except Exception as e:  # torch raises many types; the user needs the message, not the stack
        raise CompileError(f"torch.export failed on {source}: {e}") from None
    return Captured(program, example, Path(source.rpartition(":")[0]).stem)
