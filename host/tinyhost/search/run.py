"""`tinyhost search`: contribution analysis, the memory of each choice, the search, the scheme.

    source + CompileOptions + DATA's train split + budget (+ board)
      -> MemoryModel (the compiler's figures)   -> which choices can fit at all
      -> Analyser runs (simulate.SimNet)        -> the gain of each choice that can
      -> knapsack / evolve                      -> the best choice; compiled whole, it must fit
      -> a scheme in the shipped format (+ a "search" record), for `compile --update`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tinyhost.boards import Board
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.pipeline import (
    PIPELINES,
    TINY_TRAINING,
    TORCH,
    Compilation,
    CompileOptions,
    run_passes,
)
from tinyhost.compiler.sparse import Scheme
from tinyhost.lr import BACKBONE_LR_RATIO, lr_scale
from tinyhost.ops import UpdateRule
from tinyhost.progress import bar_off
from tinyhost.search.contrib import RATIOS, Analyser, Contributions, SearchData, analyse
from tinyhost.search.memory import Fit, MemoryModel
from tinyhost.search.optimize import QUANTUM, Choice, Costs, evolve, knapsack, knapsack_min_memory
from tinyhost.search.simulate import SimNet

METHODS = ("knapsack", "evolution")
# What a search trains on by default: few samples, one epoch, at a reduced input size for the
# paper's models (docs/search.md: why these are enough to rank choices, and what they cost).
DEFAULT_SAMPLES = 150
DEFAULT_HOLDOUT = 100
DEFAULT_EPOCHS = 1
DEFAULT_SIM_SIZE = 32
DEFAULT_REFINE = 8
DEFAULT_BIAS_POINTS = 8


@dataclass
class SearchConfig:
    budget: int | None = None          # --budget (the board's SRAM with a board, else the arena)
    board: Board | None = None
    max_drop: float | None = None      # points below the full update's predicted accuracy
    method: str = "knapsack"
    seed: int = 0
    sim_size: int | None = DEFAULT_SIM_SIZE  # tiny-training models: NxN of the simulation
    samples: int = DEFAULT_SAMPLES
    holdout: int = DEFAULT_HOLDOUT
    epochs: int = DEFAULT_EPOCHS
    bias_points: int = DEFAULT_BIAS_POINTS
    layers: int | None = None          # only the last N convs' weights are candidates
    refine: int = DEFAULT_REFINE       # convs whose every ratio is measured
    progress: bool = True


@dataclass
class SearchResult:
    choice: Choice
    memory: Fit
    compiled_memory: int               # a whole compile's figure (equals memory.bytes)
    contributions: Contributions
    costs: Costs
    method: str
    seconds: float                     # wall time
    cpu_seconds: float                 # this process's CPU time (the machine may be shared)
    compiles: int
    sim: dict[str, Any] = field(default_factory=dict)
    full_memory: int | None = None
    limit: int = 0
    board: str | None = None

    @property
    def scheme(self) -> Scheme:
        return self.choice.scheme()

    def to_json(self) -> dict[str, Any]:
        """The scheme file: the shipped schemes' three keys, and what the search found."""
        s = self.scheme
        c = self.contributions
        return {"n_bias_update": s.n_bias_update, "manual_weight_idx": s.manual_weight_idx,
                "weight_update_ratio": s.weight_update_ratio,
                "search": {"method": self.method,
                           "predicted_gain": round(self.choice.gain, 3),
                           "predicted_accuracy": round(c.base + self.choice.gain, 3),
                           "head_only_accuracy": round(c.base, 3),
                           "full_update_gain": c.full,
                           "memory": self.memory.bytes,
                           "memory_kind": "board total" if self.board else "arena",
                           "board": self.board, "limit": self.limit,
                           "int8_update": self.memory.rule,
                           "seconds": round(self.seconds, 1),
                           "cpu_seconds": round(self.cpu_seconds, 1), "compiles": self.compiles,
                           "simulation": self.sim, "contributions": c.to_dict()}}


def _sim_graph(source: str, options: CompileOptions, mm: MemoryModel, size: int | None):
    """The front-end graph the simulation runs: the compiled one, or for a tiny-training model
    the same import at the reduced input size."""
    if options.frontend == TINY_TRAINING and size is not None:
        passes = PIPELINES[TINY_TRAINING]
        names = [p.name for p in passes]
        comp = Compilation(source, replace(options, input_size=size, update="full"))
        graph = run_passes(passes[:names.index("autodiff")], comp).graph
    else:
        graph = mm.front().graph
    assert graph is not None
    return graph


def _resize(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if x.shape[1:] == shape:
        return x
    t = torch.nn.functional.interpolate(torch.from_numpy(x.astype(np.float32)),
                                        size=shape[1:], mode="bilinear", align_corners=False)
    return t.numpy()


def search_data(net: SimNet, x: np.ndarray, y: np.ndarray, model_shape: tuple[int, ...],
                cfg: SearchConfig) -> SearchData:
    """DATA's train split -> held-back and fine-tuning samples, as the simulation's inputs."""
    if tuple(x.shape[1:]) != tuple(model_shape) and \
            [d for d in x.shape[1:] if d != 1] == [d for d in model_shape if d != 1]:
        x = x.reshape((len(x), *model_shape))  # C x L samples of a Conv1d model (C x 1 x L)
    if tuple(x.shape[1:]) != tuple(model_shape):
        raise ValueError(f"DATA's samples are {'x'.join(map(str, x.shape[1:]))}, the model's "
                         f"input is {'x'.join(map(str, model_shape))}")
    n_classes = net.head_w.shape[0]
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"DATA has labels outside 0..{n_classes - 1} (the head's classes)")
    if len(y) < 20:
        raise ValueError(f"DATA's train split has {len(y)} samples; the search needs at least 20 "
                         "(some to fine-tune on, some held back to score)")
    order = np.random.default_rng(cfg.seed).permutation(len(y))
    n_hold = min(cfg.holdout, len(y) // 3)
    hold, train = order[:n_hold], order[n_hold:n_hold + cfg.samples]
    shape = net.graph.tensors[net.graph.input].shape
    xs = _resize(np.asarray(x, np.float32), shape)
    return SearchData([net.quantize_input(v) for v in xs[train]], y[train].astype(np.int64),
                      [net.quantize_input(v) for v in xs[hold]], y[hold].astype(np.int64))


def _sim_rule(options: CompileOptions, mm: MemoryModel) -> str:
    """The update rule the runs simulate: the given one; for auto, master when even the full
    update compiles with master (so every choice will), else round (docs/search.md)."""
    if options.int8_update != "auto":
        return options.int8_update
    n = mm.n_conv
    return mm.fit(Scheme(n, list(range(n)), [1.0] * n)).rule


def costs_of(mm: MemoryModel, cfg: SearchConfig, limit: int) -> tuple[dict[int, int],
                                                                     dict[tuple[int, float], int]]:
    """The compiler's figures: bias-only for k = 0.. until over `limit`; per conv i (last
    first) and ratio, the extra of weight i at r over bias-only n - i, while it fits."""
    n = mm.n_conv
    bias: dict[int, int] = {}
    extra: dict[tuple[int, float], int] = {}
    with tqdm(total=n + 1, desc="memory: bias counts", unit="compile", leave=False,
              disable=bar_off(not cfg.progress)) as bar:
        for k in range(n + 1):
            f = mm.fit(Scheme(k, [], []))
            bar.update()
            if f.bytes > limit:
                break
            bias[k] = f.bytes
    first = 0 if cfg.layers is None else max(0, n - cfg.layers)
    layers = [i for i in range(n - 1, first - 1, -1) if n - i in bias]
    with tqdm(total=len(layers) * len(RATIOS), desc="memory: weights", unit="compile",
              leave=False, disable=bar_off(not cfg.progress)) as bar:
        for i in layers:
            for r in RATIOS:
                f = mm.fit(Scheme(n - i, [i], [r]))
                bar.update()
                if f.bytes > limit:
                    bar.update(len(RATIOS) - 1 - RATIOS.index(r))
                    break
                extra[(i, r)] = max(0, f.bytes - bias[n - i])
    return bias, extra


def _bias_grid(kmax: int, points: int) -> list[int]:
    if kmax <= 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(1, kmax, min(points, kmax))})


def search(source: str, options: CompileOptions, x: np.ndarray, y: np.ndarray,
           cfg: SearchConfig) -> SearchResult:
    """The whole search (see the module docstring). x, y: DATA's train split."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    if options.frontend == TORCH:
        raise CompileError("search: update schemes are for int8 models: give --int8 --calib DATA "
                           "(quantize a float MODEL) or --from-tiny-training PKL")
    if cfg.method not in METHODS:
        raise ValueError(f"unknown search method {cfg.method!r}: {', '.join(METHODS)}")
    if cfg.budget is None and cfg.max_drop is None:
        raise ValueError("search needs --budget SIZE, --max-drop PCT, or both")
    if cfg.max_drop is not None and not 0 <= cfg.max_drop < 100:
        raise ValueError(f"--max-drop {cfg.max_drop}: expected points in [0, 100)")
    torch.manual_seed(cfg.seed)
    mm = MemoryModel(source, replace(options, update="full"), cfg.board, cfg.budget)
    front = mm.front().graph
    assert front is not None
    model_shape = front.tensors[front.input].shape
    n = mm.n_conv
    full = Scheme(n, list(range(n)), [1.0] * n)
    full_fit = mm.fit(full) if cfg.max_drop is not None else None
    limit = mm.limit
    if cfg.budget is None and full_fit is not None:  # --max-drop alone: anything up to full
        limit = max(limit, full_fit.bytes)
    bias_mem, extra = costs_of(mm, cfg, limit)
    if not bias_mem:
        raise CompileError(f"search: even the head alone needs {mm.fit(Scheme(0, [], [])).bytes}"
                           f" B, over the limit of {limit} B")
    rule = _sim_rule(options, mm)
    size = cfg.sim_size if options.frontend == TINY_TRAINING else None
    graph = _sim_graph(source, options, mm, size)
    backbone = (options.backbone_lr if options.backbone_lr is not None else
                options.lr * (BACKBONE_LR_RATIO if options.frontend == TINY_TRAINING else 1.0))
    net = SimNet(graph, UpdateRule.MASTER if rule == "master" else UpdateRule.ROUND,
                 options.qas, options.lr, float(lr_scale(options.lr, backbone)))
    data = search_data(net, x, y, model_shape, cfg)
    an = Analyser(net, data, cfg.epochs, cfg.seed)
    # Phase 1: every candidate conv at the largest ratio that fits; phase 2: the other ratios of
    # the `refine` convs that gained most (and of those whose ratio 1 does not fit).
    top = {i: max(r for (j, r) in extra if j == i) for i, _ in extra}
    contrib = analyse(an, _bias_grid(max(bias_mem), cfg.bias_points), sorted(top.items()),
                      cfg.max_drop is not None, cfg.progress)
    ranked = sorted(top, key=lambda i: -contrib.weight[(i, top[i])])
    keep = set(ranked[:cfg.refine]) | {i for i, r in top.items() if r < 1.0}
    rest = sorted(key for key in extra if key[0] in keep and key not in contrib.weight)
    analyse(an, [], rest, False, cfg.progress, into=contrib)
    costs = Costs(n, bias_mem, extra, dict(contrib.weight), contrib.bias_gain)
    rng = np.random.default_rng(cfg.seed)

    def solve(lim: int) -> Choice | None:
        if cfg.max_drop is not None:
            assert contrib.full is not None
            return knapsack_min_memory(costs, contrib.full - cfg.max_drop, lim)
        if cfg.method == "evolution":
            return evolve(costs, lim, rng)
        return knapsack(costs, lim)

    choice, fit = _solve_checked(solve, mm, limit)
    if choice is None or fit is None:
        # nothing predicted reaches the target: the best under the limit
        choice, fit = _solve_checked(lambda lim: knapsack(costs, lim), mm, limit)
    if choice is None or fit is None:
        raise CompileError("search: no update choice fits the budget")
    compiled = mm.compile_check(choice.scheme())
    sim = {"input_shape": list(graph.tensors[graph.input].shape), "rule": rule,
           "train_samples": len(data.y_train), "holdout_samples": len(data.y_hold),
           "epochs": cfg.epochs, "seed": cfg.seed, "lr_head": options.lr,
           "lr_backbone": backbone}
    return SearchResult(choice, fit, compiled, contrib, costs,
                        "max-drop (knapsack)" if cfg.max_drop is not None else cfg.method,
                        time.perf_counter() - t0, time.process_time() - cpu0,
                        mm.compiles + 1, sim,
                        None if full_fit is None else full_fit.bytes, limit,
                        None if cfg.board is None else cfg.board.name)


def _solve_checked(solve, mm: MemoryModel, limit: int) -> tuple[Choice | None, Fit | None]:
    """solve(limit), compiled whole; if the compiler's figure is over, again with the capacity
    lowered by the overshoot (the additive estimate was low)."""
    lim = limit
    for _ in range(12):
        choice = solve(lim)
        if choice is None:
            return None, None
        fit = mm.fit(choice.scheme())
        if fit.bytes <= limit:
            return choice, fit
        lim -= fit.bytes - limit + QUANTUM
    return None, None

