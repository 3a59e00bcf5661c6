"""The search proper: the update choice of largest summed gain under the memory budget.

A choice is k (the biases of the last k convs) and, for convs among those k, a channel ratio
(0: bias only). Its predicted gain is bias[k] + sum weight[(i, r_i)] (contrib.py). Its memory
comes from the compiler (memory.py); the searches rank choices with the compiler's costs made
additive, mem(bias k) + sum over trained weights of mem(bias n-i, weight i at r) - mem(bias n-i),
and every choice they return is compiled whole and must fit: when the additive figure was too
low, the search runs again with the capacity lowered by the overshoot.

- `knapsack`: exact over that additive model, a multiple-choice knapsack per k by dynamic
  programming over memory in QUANTUM-byte steps (costs rounded up, so it never overbooks);
- `evolve`: the paper's evolutionary search (population, crossover, mutation, elitism), same
  costs and gains;
- `knapsack_min_memory`: the smallest choice whose gain is within `drop` points of a target (the
  full update's): the "freeze until accuracy dips" form, `--max-drop`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyhost.compiler.sparse import Scheme

QUANTUM = 64  # bytes per DP memory cell


@dataclass
class Costs:
    """The compiler's memory figures the searches need: mem(bias k) for k = 0..n, and each
    candidate weight choice's extra bytes over the bias-only scheme that it implies."""
    n: int
    bias: dict[int, int]                          # k -> figure of the bias-only scheme
    extra: dict[tuple[int, float], int]           # (conv, ratio) -> extra bytes
    gains: dict[tuple[int, float], float]         # (conv, ratio) -> predicted gain
    bias_gain: Callable[[int], float]

    def estimate(self, k: int, choice: dict[int, float]) -> int:
        return self.bias[k] + sum(self.extra[(i, r)] for i, r in choice.items())

    def gain(self, k: int, choice: dict[int, float]) -> float:
        return self.bias_gain(k) + sum(self.gains[(i, r)] for i, r in choice.items())


@dataclass
class Choice:
    k: int
    weights: dict[int, float] = field(default_factory=dict)
    gain: float = 0.0
    estimate: int = 0

    def scheme(self) -> Scheme:
        idx = sorted(self.weights)
        return Scheme(self.k, idx, [self.weights[i] for i in idx], "tinyhost search")


def _options(c: Costs, k: int) -> dict[int, list[tuple[float, int, float]]]:
    """Per eligible conv (among the last k), its (ratio, cost cells, gain) with a gain > 0."""
    out: dict[int, list[tuple[float, int, float]]] = {}
    for (i, r), g in c.gains.items():
        if i >= c.n - k and g > 0 and (i, r) in c.extra:
            cells = max(0, math.ceil(c.extra[(i, r)] / QUANTUM))
            out.setdefault(i, []).append((r, cells, g))
    return out


def _dp(c: Costs, k: int, cap: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray,
                                                                      list[tuple[float, int,
                                                                                 float]]]]]:
    """best[j] = the largest weight gain within j cells, and the choice tables to trace it."""
    best = np.zeros(cap + 1)
    trace = []
    for i, opts in sorted(_options(c, k).items()):
        new = best.copy()
        pick = np.full(cap + 1, -1, np.int16)
        for o, (_, cells, g) in enumerate(opts):
            if cells > cap:
                continue
            cand = np.full(cap + 1, -np.inf)
            cand[cells:] = best[:cap + 1 - cells] + g
            better = cand > new
            new[better] = cand[better]
            pick[better] = o
        best = new
        trace.append((i, pick, opts))
    return best, trace


def _trace(trace: list[tuple[int, np.ndarray, list[tuple[float, int, float]]]],
           j: int) -> dict[int, float]:
    choice: dict[int, float] = {}
    for i, pick, opts in reversed(trace):
        o = int(pick[j])
        if o >= 0:
            r, cells, _ = opts[o]
            choice[i] = r
            j -= cells
    return choice


def _per_bias_count(c: Costs, limit: int) -> Iterator[tuple[int, int, np.ndarray, Any]]:
    """For each bias count k that fits `limit`: (k, the weights' capacity in quanta, and the DP
    table and trace over the convs for it), which both knapsack forms search."""
    for k in range(c.n + 1):
        if k in c.bias and c.bias[k] <= limit:
            cap = (limit - c.bias[k]) // QUANTUM
            yield (k, cap, *_dp(c, k, cap))


def knapsack(c: Costs, limit: int) -> Choice | None:
    """The best choice whose additive memory is within `limit` (exact for that model)."""
    best: Choice | None = None
    for k, cap, _table, trace in _per_bias_count(c, limit):
        weights = _trace(trace, cap)
        ch = Choice(k, weights, c.gain(k, weights), c.estimate(k, weights))
        if best is None or ch.gain > best.gain + 1e-9:
            best = ch
    return best


def knapsack_min_memory(c: Costs, target: float, limit: int) -> Choice | None:
    """The choice of least additive memory whose gain reaches `target` (within `limit`)."""
    best: Choice | None = None
    for k, _cap, table, trace in _per_bias_count(c, limit):
        ok = np.nonzero(c.bias_gain(k) + table >= target - 1e-9)[0]
        if not ok.size:
            continue
        weights = _trace(trace, int(ok[0]))
        ch = Choice(k, weights, c.gain(k, weights), c.estimate(k, weights))
        if best is None or ch.estimate < best.estimate:
            best = ch
    return best


def evolve(c: Costs, limit: int, rng: np.random.Generator, population: int = 50,
           generations: int = 60, mutate: float = 0.2) -> Choice | None:
    """The paper's evolutionary search over (k, ratio per conv) under the additive memory."""
    known = [key for key in c.gains if key in c.extra]  # measured, and with a memory figure
    convs = sorted({i for i, _ in known})
    ratios = {i: [0.0] + sorted(r for (j, r) in known if j == i) for i in convs}
    ks = sorted(k for k, m in c.bias.items() if m <= limit)
    if not ks:
        return None

    def repair(k: int, w: dict[int, float]) -> tuple[int, dict[int, float]]:
        w = {i: r for i, r in w.items() if r > 0}
        if w:  # a trained weight trains its bias: k covers the earliest trained conv
            k = max(k, c.n - min(w))
        return k, w

    def fitness(k: int, w: dict[int, float]) -> float:
        if k not in c.bias or c.estimate(k, w) > limit:
            return -math.inf
        return c.gain(k, w) - 1e-9 * c.estimate(k, w)  # ties: the smaller

    def random_member() -> tuple[int, dict[int, float]]:
        k = int(rng.choice(ks))
        eligible = [i for i in convs if i >= c.n - k]
        w = {i: float(rng.choice(ratios[i])) for i in eligible if rng.random() < 0.3}
        return repair(k, w)

    pop = [random_member() for _ in range(population)]
    pop.append((max(ks), {}))  # bias-only at the largest k that fits: always feasible
    for _ in range(generations):
        scored = sorted(pop, key=lambda m: -fitness(*m))
        elite = scored[:max(2, population // 4)]
        children = list(elite)
        while len(children) < population:
            a, b = (elite[int(rng.integers(len(elite)))] for _ in range(2))
            k = a[0] if rng.random() < 0.5 else b[0]
            w = {i: (a[1] if rng.random() < 0.5 else b[1]).get(i, 0.0) for i in convs}
            if rng.random() < mutate:
                k = int(np.clip(k + rng.integers(-3, 4), 0, c.n))
            for i in convs:
                if rng.random() < mutate / 4:
                    w[i] = float(rng.choice(ratios[i]))
            children.append(repair(k, w))
        pop = children
    k, w = max(pop, key=lambda m: fitness(*m))
    if fitness(k, w) == -math.inf:  # nothing feasible
        return None
    return Choice(k, w, c.gain(k, w), c.estimate(k, w))
