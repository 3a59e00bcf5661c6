"""The memory of an update choice, from the real compiler: what `tinyhost compile` reports for it.

A `MemoryModel` runs the model's front end once (import, or capture + quantize) and then, per
scheme, the compiler's own passes from autodiff to plan_memory on a copy of that graph, with the
int8 update rule resolved as `compile` resolves it (`auto`: master when its arena fits the arena
budget, else round). The figure is the one `compile` prints: with a board, what the plan needs
there in all (static RAM + stack + arena + plan tables, tinyhost/boards.py); without one, the
planned arena. Every scheme is compiled once (cached by its JSON form).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from typing import Any

from tinyhost.boards import TABLES_IN_RAM, Board
from tinyhost.compiler.pipeline import (
    PIPELINES,
    Compilation,
    CompileOptions,
    compile_source,
    run_passes,
)
from tinyhost.compiler.report import MCU_SRAM_BYTES
from tinyhost.compiler.sparse import Scheme

KB = 1024


def scheme_json(s: Scheme) -> str:
    """A scheme as `--update` takes it inline (compiler/sparse.py)."""
    return json.dumps({"n_bias_update": s.n_bias_update,
                       "manual_weight_idx": [int(i) for i in s.manual_weight_idx],
                       "weight_update_ratio": [float(r) for r in s.weight_update_ratio]})


@dataclass
class Fit:
    bytes: int          # the figure compile reports (board total, or the arena)
    arena: int
    rule: str           # the int8 update rule compile takes for it
    fits: bool


@dataclass
class MemoryModel:
    source: str
    options: CompileOptions        # the compile options (their update is replaced per scheme)
    board: Board | None = None
    budget: int | None = None      # --budget SIZE (the board's SRAM with a board, else the arena)
    cache: dict[str, Fit] = field(default_factory=dict)
    compiles: int = 0
    _front: Compilation | None = None

    def __post_init__(self) -> None:
        self.options.check()
        self.passes = PIPELINES[self.options.frontend]
        names = [p.name for p in self.passes]
        self._start = names.index("autodiff")
        self._end = names.index("plan_memory") + 1

    # -- the limits compile applies ----------------------------------------------------------
    @property
    def arena_budget(self) -> int:
        """The arena `auto` must fit, and the one the device has (compile's arena_budget)."""
        if self.board is not None:
            return self.board.arena_capacity(self.budget)
        return MCU_SRAM_BYTES if self.budget is None else self.budget

    @property
    def limit(self) -> int:
        """The largest figure that fits: a board's arena capacity plus its static RAM and stack
        (fits = arena + tables <= capacity), or the arena budget."""
        if self.board is not None:
            return self.arena_budget + self.board.static_ram + self.board.stack
        return self.arena_budget

    def front(self) -> Compilation:
        if self._front is None:
            comp = Compilation(self.source, replace(self.options, update="full"))
            self._front = run_passes(self.passes[:self._start], comp)
        return self._front

    @property
    def n_conv(self) -> int:
        g = self.front().graph
        assert g is not None
        return len(g.conv_ops)

    # -- one scheme --------------------------------------------------------------------------
    def _arena(self, update: str, rule: str) -> tuple[int, Any]:
        front = self.front()
        fork = replace(front, options=replace(front.options, update=update, int8_update=rule),
                       graph=copy.deepcopy(front.graph), meta=dict(front.meta),
                       passes_run=list(front.passes_run))
        comp = run_passes(self.passes[self._start:self._end], fork)
        self.compiles += 1
        return comp.need_memory().arena_size, comp

    def fit(self, s: Scheme) -> Fit:
        key = scheme_json(s)
        if key in self.cache:
            return self.cache[key]
        rule = self.options.int8_update
        if rule == "auto":
            arena, comp = self._arena(key, "master")
            rule = "master"
            if arena > self.arena_budget:
                arena, comp = self._arena(key, "round")
                rule = "round"
        else:
            arena, comp = self._arena(key, rule)
        figure = arena
        if self.board is not None:
            tables = 0
            if TABLES_IN_RAM:  # the decoded tables' RAM needs the emitted plan
                plan = run_passes(self.passes[self._end:-1], comp).plan
                assert plan is not None
                tables = self.board.ram_tables(plan)
            figure = self.board.static_ram + self.board.stack + arena + tables
        fit = Fit(figure, arena, rule, figure <= self.limit)
        self.cache[key] = fit
        return fit

    def compile_check(self, s: Scheme) -> int:
        """The figure of a whole `compile` of the scheme (every pass, as the CLI runs it)."""
        opts = replace(self.options, update=scheme_json(s), budget=self.arena_budget)
        result = compile_source(self.source, opts)
        if self.board is None:
            return result.report.arena_bytes
        from tinyhost.boards import board_fit
        return board_fit(result.plan, self.board, self.budget).total
