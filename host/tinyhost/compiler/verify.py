"""Pass: verify the IR and its memory plan before anything is emitted (run on every compile).

A memory-planning bug would otherwise show only as wrong numbers on a device, so, as executorch's
Verifier and TFLite Micro's planner overlap check do, the compiler checks its own output:

- every op has its op's number of operands (host/tinyhost/ops.py), each operand index is a tensor
  of the graph or -1 where the operand is optional, of the operand's dtype; an in-place op writes
  the tensors it reads; the bindings name tensors of the graph;
- every tensor that holds arena bytes during the step (plan_memory.lifetimes(), the one
  definition of a lifetime) has an offset, and every offset belongs to such a tensor; frozen
  parameters have none (they are read from the plan's blob);
- every arena tensor is aligned (ARENA_ALIGN) and lies within the arena;
- no two tensors whose lifetimes overlap share an arena byte.

Failures raise VerifyError (a CompileError, "verify: ...") naming the op or the tensors.
"""
from __future__ import annotations

from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph, IROp
from tinyhost.compiler.plan_memory import Lifetime, MemoryPlan, lifetimes
from tinyhost.ops import OP_SPECS
from tinyhost.plan import ARENA_ALIGN, NONE, TensorKind


class VerifyError(CompileError):
    """The compiler produced an inconsistent graph or memory plan (a compiler bug)."""


def _fail(what: str) -> VerifyError:
    return VerifyError(f"verify: {what}")


def _op_name(graph: Graph, k: int) -> str:
    op = graph.ops[k]
    return f"op {k} ({op.opcode.name}, {op.source})"


def verify_operands(graph: Graph) -> None:
    """Operand counts, indices, presence and dtypes of every op; the bindings."""
    n = len(graph.tensors)
    for k, op in enumerate(graph.ops):
        _verify_op(graph, k, op, n)
    for name in ("input", "logits", "label", "loss", "pred"):
        t = getattr(graph, name)
        if t != NONE and not 0 <= t < n:
            raise _fail(f"the {name} binding names tensor {t}, but the graph has {n} tensors")
    if not 0 <= graph.n_forward <= len(graph.ops):
        raise _fail(f"n_forward {graph.n_forward} is outside 0..{len(graph.ops)}")


def _verify_op(graph: Graph, k: int, op: IROp, n: int) -> None:
    spec = OP_SPECS[op.opcode]
    where = _op_name(graph, k)
    if len(op.attrs) != len(spec.attrs):
        raise _fail(f"{where} has {len(op.attrs)} attributes, its op has {len(spec.attrs)}")
    for role, got, want in (("inputs", op.inputs, spec.ins), ("outputs", op.outputs, spec.outs)):
        if len(got) != len(want):
            raise _fail(f"{where} has {len(got)} {role}, its op has {len(want)} "
                        f"({', '.join(o.name for o in want)})")
        for t, operand in zip(got, want, strict=True):
            if t == NONE:
                if not operand.optional:
                    raise _fail(f"{where}: operand {operand.name} is required but absent")
                continue
            if not 0 <= t < n:
                raise _fail(f"{where}: operand {operand.name} names tensor {t}, but the graph "
                            f"has {n} tensors")
            tensor = graph.tensors[t]
            if tensor.dtype != operand.dtype:
                raise _fail(f"{where}: operand {operand.name} is {tensor.name!r} of dtype "
                            f"{tensor.dtype.name}, expected {operand.dtype.name}")
    for out, inp in enumerate(spec.in_place):
        if op.outputs[out] != op.inputs[inp]:
            raise _fail(f"{where}: output {spec.outs[out].name} must be input "
                        f"{spec.ins[inp].name} (updated in place)")


def verify_memory(graph: Graph, memory: MemoryPlan) -> None:
    """Offsets against lifetimes: placement, alignment, bounds, and no overlap of live tensors."""
    lives = lifetimes(graph)
    offsets = memory.offsets
    for t in sorted(lives.keys() - offsets.keys()):
        raise _fail(f"tensor {graph.tensors[t].name!r} is used during the step but has no arena "
                    "offset")
    for t in sorted(offsets.keys() - lives.keys()):
        what = ("a frozen parameter" if graph.tensors[t].kind == TensorKind.PARAM_FROZEN
                else "no op's operand")
        raise _fail(f"tensor {graph.tensors[t].name!r} has an arena offset but is {what}")
    for t, off in offsets.items():
        tensor = graph.tensors[t]
        if off % ARENA_ALIGN:
            raise _fail(f"tensor {tensor.name!r} at arena offset {off} is not "
                        f"{ARENA_ALIGN}-byte aligned")
        if off < 0 or off + tensor.nbytes > memory.arena_size:
            raise _fail(f"tensor {tensor.name!r} at arena bytes {off}..{off + tensor.nbytes} lies "
                        f"outside the {memory.arena_size}-byte arena")
    _verify_no_overlap(graph, offsets, lives)


def _verify_no_overlap(graph: Graph, offsets: dict[int, int], lives: dict[int, Lifetime]) -> None:
    # Sorted by offset, each tensor need only be compared with those starting before it ends.
    placed = sorted((off, off + graph.tensors[t].nbytes, t) for t, off in offsets.items())
    for i, (start, end, a) in enumerate(placed):
        for start_b, _, b in placed[i + 1:]:
            if start_b >= end:
                break
            la, lb = lives[a], lives[b]
            if la.first <= lb.last and lb.first <= la.last:
                ta, tb = graph.tensors[a], graph.tensors[b]
                lo, hi = max(start, start_b), min(end, start_b + tb.nbytes)
                raise _fail(f"tensors {ta.name!r} (ops {la.first}..{la.last}) and {tb.name!r} "
                            f"(ops {lb.first}..{lb.last}) are live at the same time and share "
                            f"arena bytes {lo}..{hi}")


def verify(graph: Graph, memory: MemoryPlan) -> None:
    """Every check above; raises VerifyError on the first problem."""
    verify_operands(graph)
    verify_memory(graph, memory)
