"""Pass 4, plan_memory: tensor lifetimes over the training step -> offsets in one arena.

Greedy by size, as TFLite Micro's GreedyMemoryPlanner: the largest tensor first, each at the lowest
aligned offset that does not overlap a placed tensor whose lifetime intersects its own. Trainable
parameters live for the whole step (and across steps); the input and label are written by the host
before the first op; the loss and prediction are read after the last.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tinyhost.compiler.graph import Graph
from tinyhost.plan import ARENA_ALIGN, NONE, TABLE_ALIGN, Plan, TensorKind


@dataclass
class Lifetime:
    tensor: int
    first: int  # op index that first writes it (-1: before the step)
    last: int   # op index that last reads it (n_ops: after the step)
    size: int


@dataclass
class MemoryPlan:
    offsets: dict[int, int]
    lifetimes: dict[int, Lifetime]
    arena_size: int


def _align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


class _Operands(Protocol):
    """What lifetimes() reads of an op: an IR op or a plan's op."""
    inputs: list[int]
    outputs: list[int]


def lifetimes(graph: Graph | Plan) -> dict[int, Lifetime]:
    """The one definition of when an arena tensor holds its bytes: the planner places by it, and
    the memory report and the lifetime chart read it back from the emitted plan (same ops and
    tensors, so the same spans)."""
    ops: Sequence[_Operands] = graph.ops
    n_ops = len(ops)
    spans: dict[int, list[int]] = {}
    for k, op in enumerate(ops):
        for t in op.inputs + op.outputs:
            if t != NONE and graph.tensors[t].kind != TensorKind.PARAM_FROZEN:
                span = spans.setdefault(t, [k, k])
                span[0], span[1] = min(span[0], k), max(span[1], k)
    result = {}
    for t, (first, last) in spans.items():
        kind = graph.tensors[t].kind
        if kind in (TensorKind.INPUT, TensorKind.LABEL, TensorKind.PARAM_TRAINABLE):
            first = -1
        if kind in (TensorKind.OUTPUT, TensorKind.PARAM_TRAINABLE):
            last = n_ops
        result[t] = Lifetime(t, first, last, _align(graph.tensors[t].nbytes))
    return result


def plan_memory(graph: Graph) -> MemoryPlan:
    lives = lifetimes(graph)
    order = sorted(lives.values(), key=lambda lt: (-lt.size, lt.first, lt.tensor))
    placed: list[tuple[int, Lifetime]] = []
    offsets: dict[int, int] = {}
    for lt in order:
        conflicts = sorted((off, other.size) for off, other in placed
                           if other.first <= lt.last and lt.first <= other.last)
        offset = 0
        for off, size in conflicts:
            if offset + lt.size <= off:
                break
            offset = max(offset, off + size)
        offsets[lt.tensor] = offset
        placed.append((offset, lt))
    # The arena ends where the highest tensor's bytes end, rounded up to the 8-byte alignment the
    # device's plan tables (placed right after it in the tightest fit) need.
    end = max((offsets[t] + graph.tensors[t].nbytes for t in offsets), default=0)
    arena = (end + TABLE_ALIGN - 1) // TABLE_ALIGN * TABLE_ALIGN
    return MemoryPlan(offsets, lives, arena)
