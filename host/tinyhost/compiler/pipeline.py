"""The pass manager: CompileOptions, the compilation a pass takes and returns, and one loop over a
named pass list (in the style of executorch's PassManager).

A pipeline is a tuple of named passes; each pass takes the `Compilation` (the IR graph and what
the passes before it learned: the captured program, the memory plan, the plan's meta, ...) and
returns it. `run_passes` is the only place passes are run: it records which ran, and an error
raised inside a pass names it (CompileError.pass_name; the messages name their pass already,
`autodiff: ...`; other exceptions get a note).

    fp32:               capture, lower, autodiff, optimizer, plan_memory, verify, emit, encode
    --from-tiny-training: import_tiny, autodiff, optimizer, fuse, inplace, scratch, plan_memory,
                        verify, emit, encode
    --int8 --calib:     capture, quantize, then as --from-tiny-training

The int8 update rule "auto" (master when the arena then fits the budget, else round) runs the
passes from autodiff to verify once with master and, if the arena is over the budget, again from
the front end's graph with round.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tinyhost.compiler.autodiff import autodiff
from tinyhost.compiler.autodiff_s8 import autodiff_s8
from tinyhost.compiler.capture import FP32_LAYERS, Captured, LayerSet, capture
from tinyhost.compiler.emit import emit
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.fuse import Fusion, StemFusion, fuse_pw_dw, fuse_stem
from tinyhost.compiler.graph import Graph
from tinyhost.compiler.import_tiny import HEAD_SEED, import_tiny
from tinyhost.compiler.inplace import InPlace, depthwise_in_place
from tinyhost.compiler.lower import lower
from tinyhost.compiler.optim import Optimizer, add_optimizer
from tinyhost.compiler.plan_memory import MemoryPlan, plan_memory
from tinyhost.compiler.quantize import INT8_LAYER_NAMES, INT8_LAYERS, quantize
from tinyhost.compiler.report import MCU_SRAM_BYTES, MemoryReport, memory_report
from tinyhost.compiler.scratch import add_scratch
from tinyhost.compiler.verify import verify
from tinyhost.lr import BACKBONE_LR_RATIO, LR_DEFAULT, check_lr, lr_scale
from tinyhost.ops import UpdateRule
from tinyhost.plan import Plan, encode_plan

INT8_UPDATE_RULES = {"round": UpdateRule.ROUND, "master": UpdateRule.MASTER}
# The int8 weight update rule by default (docs/int8.md section 12): "auto" takes master, the more
# accurate by measurement, when the plan's arena fits the memory budget, and round otherwise (the
# f32 masters of the paper's 99kb schemes alone would not fit 256 KB).
INT8_UPDATE_DEFAULT = "auto"
INT8_UPDATE_CHOICES = ("auto", *INT8_UPDATE_RULES)

# Front ends: what the source is.
TORCH = "torch"                  # FILE.py:FACTORY or .pt2, compiled in fp32
TINY_TRAINING = "tiny-training"  # one of the paper's int8 models (tiny-training's .pkl)
QUANTIZE = "quantize"            # FILE.py:FACTORY or .pt2, quantized to int8 with `calib`
FRONTENDS = (TORCH, TINY_TRAINING, QUANTIZE)

# The plan's meta keys in this order (then any others, as the passes added them): a plan's bytes
# do not depend on the order the passes run in.
META_ORDER = ("model", "source", "format", "calibration", "head", "update", "scheme",
              "input_shape", "input_quant", "lr", "qas", "int8_update", "reorder", "optimizer",
              "import_notes",
              "fusions", "stem_fusions", "in_place", "int8_update_auto")


@dataclass(frozen=True)
class CompileOptions:
    """Everything a compile takes besides the model source (the `tinyhost compile` flags)."""
    frontend: str = TORCH
    update: str = "full"        # full, last:K, bias-only, names; int8: also a sparse scheme
    lr: float = LR_DEFAULT      # the plan's default learning rate: the head's (tinyhost/lr.py)
    backbone_lr: float | None = None  # int8: the backbone's (default: lr x its ratio)
    reorder: bool = True        # each update right after its gradient (the paper's reordering)
    # the optimizer state (compiler/optim.py): SGD momentum (0: off) and samples per update
    momentum: float = 0.0
    accumulate: int = 1
    # int8 (TINY_TRAINING, QUANTIZE)
    qas: bool = True            # quantization-aware scaling of the gradients
    int8_update: str = INT8_UPDATE_DEFAULT  # round, master or auto
    # fused kernels: pw+dw convs as one, depthwise convs in place, and (int8) each trained conv's
    # weight gradient applied a row at a time (CONV2D_S8_SGD_F32) instead of stored whole
    fuse: bool = True
    budget: int | None = None   # arena bytes "auto" must fit (default MCU_SRAM_BYTES)
    # TINY_TRAINING
    num_classes: int = 0        # the new head's classes
    input_size: int | None = None  # NxN input (default: the model's)
    # QUANTIZE: the calibration samples (one per row) and what they were (for the plan's meta)
    calib: np.ndarray | None = field(default=None, compare=False)
    calibration: dict[str, Any] | None = None

    @property
    def optimizer(self) -> Optimizer:
        return Optimizer(self.momentum, self.accumulate)

    def check(self) -> None:
        self.optimizer.check()
        try:
            check_lr(self.lr, "--lr")
            if self.backbone_lr is not None:
                check_lr(self.backbone_lr, "--backbone-lr")
        except ValueError as e:
            raise CompileError(str(e)) from None
        if self.frontend == TORCH and self.backbone_lr is not None:
            raise CompileError("--backbone-lr applies to int8 models (--int8, "
                               "--from-tiny-training): an fp32 model has one lr, --lr")
        if self.frontend not in FRONTENDS:
            raise CompileError(f"unknown front end {self.frontend!r}: expected one of "
                               f"{', '.join(FRONTENDS)}")
        if self.frontend != TORCH and self.int8_update not in INT8_UPDATE_CHOICES:
            raise CompileError(f"--int8-update {self.int8_update!r}: expected one of "
                               f"{', '.join(INT8_UPDATE_CHOICES)}")
        if self.frontend == QUANTIZE and self.calib is None:
            raise CompileError("quantize: no calibration samples")


@dataclass
class Compilation:
    """What a pass takes and returns: the IR graph and what the passes so far made of it."""
    source: str
    options: CompileOptions
    meta: dict[str, Any] = field(default_factory=dict)
    captured: Captured | None = None
    graph: Graph | None = None
    memory: MemoryPlan | None = None
    plan: Plan | None = None
    data: bytes | None = None
    passes_run: list[str] = field(default_factory=list)

    # What a pass needs from earlier passes (a missing one is a pipeline bug).
    def need_graph(self) -> Graph:
        assert self.graph is not None, "no graph yet: a front-end pass must run first"
        return self.graph

    def need_captured(self) -> Captured:
        assert self.captured is not None, "no captured program: capture must run first"
        return self.captured

    def need_memory(self) -> MemoryPlan:
        assert self.memory is not None, "no memory plan: plan_memory must run first"
        return self.memory


class Pass(NamedTuple):
    name: str
    run: Callable[[Compilation], Compilation]


@dataclass
class CompileResult:
    plan: Plan
    data: bytes
    report: MemoryReport
    passes: tuple[str, ...] = ()  # the passes that ran, in order


def run_passes(passes: Sequence[Pass], comp: Compilation) -> Compilation:
    """The pass loop: each pass in order on the compilation; an error names the pass it came
    from."""
    for p in passes:
        try:
            comp = p.run(comp)
        except CompileError as e:
            if e.pass_name is None:
                e.pass_name = p.name
            raise
        except Exception as e:
            if hasattr(e, "add_note"):  # Python 3.11+
                e.add_note(f"(raised in compiler pass {p.name})")
            raise
        comp.passes_run.append(p.name)
    return comp


# -- the passes -----------------------------------------------------------------------------------
def _capture(c: Compilation) -> Compilation:
    opts = c.options
    int8 = LayerSet("--int8", INT8_LAYERS, INT8_LAYER_NAMES)
    mode, other = (int8, FP32_LAYERS) if opts.frontend == QUANTIZE else (FP32_LAYERS, int8)
    c.captured = capture(c.source, mode, other)
    c.meta |= {"model": c.captured.name, "source": c.source}
    if opts.frontend == QUANTIZE:
        samples = 0 if opts.calib is None else len(opts.calib)
        c.meta |= {"format": "float model, int8 post-training quantization",
                   "calibration": (opts.calibration or {}) | {"samples": samples},
                   "head": {"dtype": "f32", "init": "the model's own Linear"}}
    return c


def _lower(c: Compilation) -> Compilation:
    c.graph = lower(c.need_captured())
    if c.graph.notes:  # what became of BatchNorm and Dropout, for the report and pull
        c.meta["layer_notes"] = list(c.graph.notes)
    if c.graph.batchnorm_folds:
        c.meta["batchnorm_folded"] = list(c.graph.batchnorm_folds)
    return c


def _quantize(c: Compilation) -> Compilation:
    assert c.options.calib is not None
    c.graph = quantize(c.need_captured(), c.options.calib)
    return c


def _import_tiny(c: Compilation) -> Compilation:
    opts = c.options
    c.graph = import_tiny(c.source, opts.num_classes, opts.input_size)
    c.meta |= {"model": Path(c.source).stem, "source": c.source, "format": "tiny-training int8",
               "head": {"dtype": "f32", "init": f"torch.nn.Linear default, seed {HEAD_SEED}"}}
    return c


def _autodiff_f32(c: Compilation) -> Compilation:
    opts = c.options
    c.graph = autodiff(c.need_graph(), opts.update, opts.reorder)
    c.meta |= {"update": opts.update,
               "input_shape": list(c.need_captured().example_input.shape[1:])}
    if not opts.reorder:
        c.meta["reorder"] = False
    return c


def _autodiff_s8(c: Compilation) -> Compilation:
    opts, graph = c.options, c.need_graph()
    input_shape = list(graph.tensors[graph.input].shape)
    assert graph.input_quant is not None
    input_quant = {"scale": graph.input_quant[0], "zero": graph.input_quant[1]}
    ratio = BACKBONE_LR_RATIO if opts.frontend == TINY_TRAINING else 1.0
    backbone_lr = opts.lr * ratio if opts.backbone_lr is None else opts.backbone_lr
    graph, scheme = autodiff_s8(graph, opts.update, c.meta["model"], qas=opts.qas,
                                rule=INT8_UPDATE_RULES[opts.int8_update], reorder=opts.reorder,
                                fuse_updates=opts.fuse,
                                lr_scale=float(lr_scale(opts.lr, backbone_lr)),
                                keep_weight_grads=opts.optimizer.stateful)
    c.graph = graph
    c.meta["lr"] = {"head": opts.lr, "backbone": backbone_lr}
    c.meta |= {"update": opts.update, "scheme": scheme.to_dict(), "input_shape": input_shape,
               "input_quant": input_quant, "qas": opts.qas, "int8_update": opts.int8_update,
               "reorder": opts.reorder, "import_notes": graph.notes}
    return c


def _optimizer(c: Compilation) -> Compilation:
    opt = c.options.optimizer
    c.graph = add_optimizer(c.need_graph(), opt)
    if opt.stateful:  # absent by default: a plan without state keeps its bytes
        c.meta["optimizer"] = opt.to_dict()
    return c


def _fuse(c: Compilation) -> Compilation:
    fusions: list[Fusion] = []
    stems: list[StemFusion] = []
    if c.options.fuse:
        c.graph, stems = fuse_stem(c.need_graph())
        c.graph, fusions = fuse_pw_dw(c.need_graph())
    c.meta["fusions"] = [f.to_dict() for f in fusions]
    c.meta["stem_fusions"] = [f.to_dict() for f in stems]
    return c


def _inplace(c: Compilation) -> Compilation:
    in_place: list[InPlace] = []
    if c.options.fuse:
        c.graph, in_place = depthwise_in_place(c.need_graph())
    c.meta["in_place"] = [p.to_dict() for p in in_place]
    return c


def _scratch(c: Compilation) -> Compilation:
    c.graph = add_scratch(c.need_graph())
    return c


def _plan_memory(c: Compilation) -> Compilation:
    c.memory = plan_memory(c.need_graph())
    return c


def _verify(c: Compilation) -> Compilation:
    verify(c.need_graph(), c.need_memory())
    return c


def _emit(c: Compilation) -> Compilation:
    order = {k: i for i, k in enumerate(META_ORDER)}
    meta = dict(sorted(c.meta.items(), key=lambda kv: order.get(kv[0], len(order))))
    c.plan = emit(c.need_graph(), c.need_memory(), c.options.lr, meta)
    return c


def _encode(c: Compilation) -> Compilation:
    assert c.plan is not None
    c.data = encode_plan(c.plan)
    return c


_BACK_INT8 = (Pass("autodiff", _autodiff_s8), Pass("optimizer", _optimizer), Pass("fuse", _fuse),
              Pass("inplace", _inplace), Pass("scratch", _scratch))
_FINISH = (Pass("plan_memory", _plan_memory), Pass("verify", _verify), Pass("emit", _emit),
           Pass("encode", _encode))

PIPELINES: dict[str, tuple[Pass, ...]] = {
    TORCH: (Pass("capture", _capture), Pass("lower", _lower), Pass("autodiff", _autodiff_f32),
            Pass("optimizer", _optimizer), *_FINISH),
    TINY_TRAINING: (Pass("import_tiny", _import_tiny), *_BACK_INT8, *_FINISH),
    QUANTIZE: (Pass("capture", _capture), Pass("quantize", _quantize), *_BACK_INT8, *_FINISH),
}


def pass_names(frontend: str) -> tuple[str, ...]:
    return tuple(p.name for p in PIPELINES[frontend])


# -- compiling ------------------------------------------------------------------------------------
def compile_source(source: str | Path, options: CompileOptions) -> CompileResult:
    """Model source (FILE.py:FACTORY, .pt2, or a tiny-training .pkl) -> a training plan, through
    the pipeline of options.frontend."""
    options.check()
    passes = PIPELINES[options.frontend]
    comp = Compilation(str(source), options)
    if options.frontend != TORCH and options.int8_update == "auto":
        comp = _auto_rule(passes, comp)
    else:
        comp = run_passes(passes, comp)
    assert comp.plan is not None and comp.data is not None
    return CompileResult(comp.plan, comp.data, memory_report(comp.plan, len(comp.data)),
                         tuple(comp.passes_run))


def _auto_rule(passes: Sequence[Pass], comp: Compilation) -> Compilation:
    """int8_update "auto": the passes from autodiff to verify with master, and if its arena is
    over the budget again with round, from the same front-end graph; the choice and why go into
    the plan's meta."""
    names = [p.name for p in passes]
    start, end = names.index("autodiff"), names.index("verify") + 1
    comp = run_passes(passes[:start], comp)
    limit = MCU_SRAM_BYTES if comp.options.budget is None else comp.options.budget

    def trial(rule: str) -> Compilation:
        fork = replace(comp, options=replace(comp.options, int8_update=rule),
                       graph=copy.deepcopy(comp.graph), meta=dict(comp.meta),
                       passes_run=list(comp.passes_run))
        return run_passes(passes[start:end], fork)

    master = trial("master")
    arena = master.need_memory().arena_size
    if arena <= limit:
        chosen = master
        chosen.meta["int8_update_auto"] = f"master: its arena ({arena} B) fits the {limit} B budget"
    else:
        chosen = trial("round")
        chosen.meta["int8_update_auto"] = (
            f"round: with f32 masters the arena would be {arena} B, over the {limit} B budget")
    return run_passes(passes[end:], chosen)
