"""Pass 1, capture: a model source (`file.py:factory` or a `.pt2`) -> torch.export program."""
from __future__ import annotations

import importlib.util
import sys
import sysconfig
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from tinyhost.compiler.errors import CompileError

_T = TypeVar("_T")

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


def _user_frames(exc: BaseException) -> str:
    """The traceback of an error in the user's model code, its own lines only: frames in
    tinyhost, importlib, the standard library and installed packages are left out (the last one
    before the error stays when no user frame is left, so the line that raised is shown)."""
    if isinstance(exc, SyntaxError):
        return "".join(traceback.format_exception_only(type(exc), exc))
    ours = (str(Path(__file__).resolve().parents[1]), sys.prefix, sys.base_prefix,
            sysconfig.get_paths()["stdlib"])
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not f.filename.startswith("<frozen")
            and not any(str(Path(f.filename).resolve()).startswith(p) for p in ours)]
    lines = traceback.format_list(user or frames[-1:])
    return ("Traceback (your model's lines):\n" + "".join(lines)
            + "".join(traceback.format_exception_only(type(exc), exc)))


def _run_user_code(what: str, path: Path, fn: Callable[[], _T]) -> _T:
    """fn() (importing the model file, calling its factory) with the file's directory on
    sys.path, so `model.py` may import `mylayers.py` beside it; an error raised by the user's
    code becomes a CompileError showing that code's traceback, not tinyhost's."""
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        return fn()
    except ModuleNotFoundError as e:
        raise CompileError(f"{what} failed: module {e.name!r} is neither installed in this "
                           f"Python nor a file beside {path.name} in {folder}\n"
                           f"{_user_frames(e)}") from None
    except Exception as e:  # the user's code may raise anything: show it, not our stack
        raise CompileError(f"{what} failed\n{_user_frames(e)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)


def load_factory(spec: str) -> tuple[nn.Module, torch.Tensor]:
    """`path/to/file.py:factory` -> factory() which returns (module, example_input). The file may
    import modules beside it."""
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
    loader = module_spec.loader
    _run_user_code(f"importing {path}", path, lambda: loader.exec_module(module))
    factory = getattr(module, func, None)
    if not callable(factory):
        raise CompileError(f"{path} has no function {func!r}")
    result = _run_user_code(f"{path.name}:{func}()", path, factory)
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
