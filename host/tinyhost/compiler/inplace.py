"""Pass for int8 graphs, inplace: a depthwise conv that keeps its input's shape writes its output
over its input when nothing else reads that input (TinyEngine's in-place depthwise).

After fusion, the forward peak of the paper's 99kb plans is block 0's 3x3 depthwise conv: a
16x64x64 input (64 KB) and an output of the same size, both live. tt_depthwise_conv2d_s8 may
write y over x when out_c == in_c, the output has the input's height and width and stride_h is 1
(docs/int8.md): it copies each input row into its ring buffer before the output row with the same
index is written, and channel c writes only plane c. So when the input has no reader but this op,
one buffer serves both: the producer writes the depthwise's output tensor, the depthwise reads and
overwrites it. The reference executor computes y before storing it, so it needs nothing special.

Conditions: DEPTHWISE_CONV2D_S8 in the forward pass with multiplier 1, stride 1 and out_h, out_w
== in_h, in_w; its input is no binding and is named by exactly two operands (its producer's output
and this op's input), so no backward op reads it. Runs after autodiff and fuse.

The backward has the same chance: a same-size depthwise conv's input gradient
(DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32, a plane at a time) may be written over its output gradient
when nothing reads that afterwards, which autodiff_s8 arranges for layers that update no weights
(their bias gradient is taken first). In the paper's 99kb plans the backward peak is such a layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyhost.compiler.graph import Graph, IROp
from tinyhost.ops import Opcode


@dataclass(frozen=True)
class InPlace:
    op: str           # the depthwise conv's source
    input: str        # the tensor that no longer exists apart from the output
    saved_bytes: int
    backward: bool = False  # the input gradient over the output gradient

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "input": self.input, "saved_bytes": self.saved_bytes}
        return d | ({"backward": True} if self.backward else {})


def in_place_ok(op: IROp) -> bool:
    """Whether tt_depthwise_conv2d_s8 may write this op's output over its input."""
    if op.opcode != Opcode.DEPTHWISE_CONV2D_S8:
        return False
    a = op.named_attrs(("in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "stride_h"))
    return (a["out_c"] == a["in_c"] and (a["out_h"], a["out_w"]) == (a["in_h"], a["in_w"])
            and a["stride_h"] == 1)


def depthwise_in_place(graph: Graph) -> tuple[Graph, list[InPlace]]:
    done: list[InPlace] = []
    drop: set[int] = set()
    uses = graph.operand_uses()
    bindings = {graph.input, graph.label, graph.logits, graph.loss, graph.pred}
    for op in graph.ops[:graph.n_forward]:
        x, y = op.inputs[0], op.outputs[0]
        if not in_place_ok(op) or x in bindings or uses.get(x) != 2:
            continue
        done.append(InPlace(op.source, graph.tensors[x].name, graph.tensors[x].nbytes))
        for other in graph.ops:  # the producer now writes y, which this op reads and overwrites
            other.inputs = [y if t == x else t for t in other.inputs]
            other.outputs = [y if t == x else t for t in other.outputs]
        drop.add(x)
    done += _backward_in_place(graph, drop, bindings)
    graph.remove_tensors(drop)
    return graph, done


def _backward_in_place(graph: Graph, drop: set[int], bindings: set[int]) -> list[InPlace]:
    """A depthwise conv's input gradient over its output gradient: a same-size
    DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32 (a channel at a time through its scratch plane) whose dz
    nothing reads after it writes dx into dz's buffer; every later use of dx names dz."""
    done = []
    for k, op in enumerate(graph.ops):
        if op.opcode != Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32:
            continue
        dz, dx = op.inputs[0], op.outputs[0]
        a = op.named_attrs(("in_h", "in_w", "out_h", "out_w"))
        later = any(dz in o.inputs or dz in o.outputs for o in graph.ops[k + 1:])
        earlier = any(dx in o.inputs or dx in o.outputs for o in graph.ops[:k])
        if ((a["out_h"], a["out_w"]) != (a["in_h"], a["in_w"]) or dz in bindings
                or dx in bindings or later or earlier or dx == dz):
            continue
        done.append(InPlace(op.source, graph.tensors[dx].name, graph.tensors[dx].nbytes, True))
        for other in graph.ops[k:]:
            other.inputs = [dz if t == dx else t for t in other.inputs]
            other.outputs = [dz if t == dx else t for t in other.outputs]
        drop.add(dx)
    return done
