"""Pass for int8 graphs, fuse: a frozen 1x1 expand conv and the depthwise conv reading its output
become one PW_DW_CONV2D_S8, so the expanded tensor is never stored whole.

The peak of the paper's sparse-update plans is in the frozen stem, where an inverted bottleneck's
1x1 conv expands a small tensor six-fold (mbv2-w0.35's block 1: 8x64x64 -> 48x64x64, 192 KB) for a
depthwise conv that reads each channel on its own. The fused op's kernel makes the intermediate
one channel at a time in its scratch (one plane, e.g. 4 KB), with the unfused kernels' exact
integers (docs/int8.md), so every plan computes the same numbers fused or not.

A pair (a, b) = (ops[k], ops[k + 1]) of the forward pass is fused when
- a is CONV2D_S8 with a 1x1 kernel, stride 1, no padding and groups 1, b is DEPTHWISE_CONV2D_S8;
- a's output (the intermediate) is b's input and no other op (backward included) reads it, and it
  is no binding;
- neither writes a clamp mask (the backward does not reach them) and neither uses trainable rows;
  their weights, biases and multipliers are frozen;
- a's output zero point is b's input zero point (always, for imported graphs).
Runs after autodiff (which decides what the backward reads) and before scratch and plan_memory.
The intermediate tensor leaves the graph; graph.conv_ops entries of a and b name the fused op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyhost.compiler.graph import Graph, IROp, ops_attrs
from tinyhost.ops import CONV_ATTRS, OP_SPECS, Opcode
from tinyhost.plan import NONE, TensorKind


@dataclass(frozen=True)
class Fusion:
    conv: str          # the 1x1 conv's source (layer name)
    depthwise: str
    intermediate: str  # the tensor no longer stored
    saved_bytes: int   # its size

    def to_dict(self) -> dict[str, Any]:
        return {"ops": [self.conv, self.depthwise], "intermediate": self.intermediate,
                "saved_bytes": self.saved_bytes}


def _frozen(graph: Graph, ts: list[int]) -> bool:
    return all(t == NONE or graph.tensors[t].kind == TensorKind.PARAM_FROZEN for t in ts)


def _fusible(graph: Graph, a: IROp, b: IROp, uses: dict[int, int]) -> bool:
    if a.opcode != Opcode.CONV2D_S8 or b.opcode != Opcode.DEPTHWISE_CONV2D_S8:
        return False
    pointwise = {"k_h": 1, "k_w": 1, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0,
                 "groups": 1}
    if a.named_attrs(pointwise) != pointwise:
        return False
    mid = a.outputs[0]
    bindings = {graph.input, graph.label, graph.logits, graph.loss, graph.pred}
    if b.inputs[0] != mid or uses.get(mid) != 2 or mid in bindings:
        return False
    for op in (a, b):
        if (op.outputs[1] != NONE or op.attr("n_rows") != 0 or op.inputs[5] != NONE
                or op.inputs[6] != NONE):
            return False
        if not _frozen(graph, op.inputs[1:5]):
            return False
    return a.attr("y_zero") == b.attr("x_zero")


def _fused_op(a: IROp, b: IROp) -> IROp:
    x, pw_w, pw_b, pw_m, pw_s = a.inputs[:5]
    _, dw_w, dw_b, dw_m, dw_s = b.inputs[:5]
    attrs = ops_attrs(
        Opcode.PW_DW_CONV2D_S8,
        **{f"pw_{n}": v for n, v in a.named_attrs(CONV_ATTRS).items()},
        **{f"dw_{n}": v for n, v in b.named_attrs(CONV_ATTRS).items()},
        x_zero=a.attr("x_zero"), mid_zero=a.attr("y_zero"), mid_act_min=a.attr("act_min"),
        mid_act_max=a.attr("act_max"), y_zero=b.attr("y_zero"), act_min=b.attr("act_min"),
        act_max=b.attr("act_max"))
    outputs = [NONE] * len(OP_SPECS[Opcode.PW_DW_CONV2D_S8].outputs)
    outputs[0] = b.outputs[0]
    return IROp(Opcode.PW_DW_CONV2D_S8, [x, pw_w, pw_b, pw_m, pw_s, dw_w, dw_b, dw_m, dw_s],
                outputs, attrs, f"{a.source}+{b.source}", {"fused": (a.source, b.source)})


def fuse_pw_dw(graph: Graph) -> tuple[Graph, list[Fusion]]:
    fusions: list[Fusion] = []
    drop: set[int] = set()
    uses = graph.operand_uses()  # fusing changes no count but the dropped intermediate's
    k = 0
    while k + 1 < graph.n_forward:
        a, b = graph.ops[k], graph.ops[k + 1]
        if not _fusible(graph, a, b, uses):
            k += 1
            continue
        mid = a.outputs[0]
        fusions.append(Fusion(a.source, b.source, graph.tensors[mid].name,
                              graph.tensors[mid].nbytes))
        # The intermediate, and scratch an earlier pass may have given the two ops, go.
        drop.update(t for t in (mid, *a.outputs[2:], *b.outputs[2:]) if t != NONE)
        graph.ops[k:k + 2] = [_fused_op(a, b)]
        graph.n_forward -= 1
        graph.conv_ops = [j if j <= k else j - 1 for j in graph.conv_ops]
        k += 1
    graph.remove_tensors(drop)
    return graph, fusions


# --- the stem: conv -> depthwise -> 1x1 conv, streamed a row at a time (CONV_DW_PW_S8) -----------
#
# The first ops of the paper's networks are a strided 3x3 conv (3x128x128 -> 16x64x64), a
# depthwise conv and a 1x1 conv: with the input, the first conv's 64 KB output was the plans'
# forward peak. Fused, a ring of the conv's output rows (as many as the depthwise kernel is high)
# and one row of each later stage replace both intermediates. The rule: three consecutive forward
# ops a (CONV2D_S8 with a spatial kernel: bottlenecks' 1x1 expand convs go to PW_DW_CONV2D_S8),
# b (DEPTHWISE_CONV2D_S8) and c (CONV2D_S8, 1x1, stride 1, no padding, groups 1), each reading
# only the previous one's output, which nothing else reads; all frozen, no masks, no trained rows;
# zero points chained.

@dataclass(frozen=True)
class StemFusion:
    ops: tuple[str, str, str]
    intermediates: tuple[str, str]
    saved_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "intermediates": list(self.intermediates),
                "saved_bytes": self.saved_bytes}


def _plain_frozen(graph: Graph, op: IROp) -> bool:
    return (op.outputs[1] == NONE and op.attr("n_rows") == 0 and op.inputs[5] == NONE
            and op.inputs[6] == NONE and _frozen(graph, op.inputs[1:5]))


def _stem(graph: Graph, a: IROp, b: IROp, c: IROp, uses: dict[int, int]) -> bool:
    if (a.opcode != Opcode.CONV2D_S8 or b.opcode != Opcode.DEPTHWISE_CONV2D_S8
            or c.opcode != Opcode.CONV2D_S8):
        return False
    if a.attr("k_h") == 1 and a.attr("k_w") == 1:
        return False
    pointwise = {"k_h": 1, "k_w": 1, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0,
                 "groups": 1}
    if c.named_attrs(pointwise) != pointwise:
        return False
    bindings = {graph.input, graph.label, graph.logits, graph.loss, graph.pred}
    for prev, nxt in ((a, b), (b, c)):
        mid = prev.outputs[0]
        if nxt.inputs[0] != mid or uses.get(mid) != 2 or mid in bindings:
            return False
    return (all(_plain_frozen(graph, op) for op in (a, b, c))
            and a.attr("y_zero") == b.attr("x_zero") and b.attr("y_zero") == c.attr("x_zero"))


def _stem_op(a: IROp, b: IROp, c: IROp) -> IROp:
    values: dict[str, int] = {}
    for prefix, op in (("c_", a), ("d_", b), ("p_", c)):
        values |= {prefix + n: v for n, v in op.named_attrs(CONV_ATTRS).items()}
    values |= {"x_zero": a.attr("x_zero"), "c_zero": a.attr("y_zero"),
               "c_act_min": a.attr("act_min"), "c_act_max": a.attr("act_max"),
               "d_zero": b.attr("y_zero"), "d_act_min": b.attr("act_min"),
               "d_act_max": b.attr("act_max"), "y_zero": c.attr("y_zero"),
               "act_min": c.attr("act_min"), "act_max": c.attr("act_max")}
    outputs = [NONE] * len(OP_SPECS[Opcode.CONV_DW_PW_S8].outputs)
    outputs[0] = c.outputs[0]
    return IROp(Opcode.CONV_DW_PW_S8, [a.inputs[0], *a.inputs[1:5], *b.inputs[1:5],
                                       *c.inputs[1:5]],
                outputs, ops_attrs(Opcode.CONV_DW_PW_S8, **values),
                f"{a.source}+{b.source}+{c.source}", {"fused": (a.source, b.source, c.source)})


def fuse_stem(graph: Graph) -> tuple[Graph, list[StemFusion]]:
    fusions: list[StemFusion] = []
    drop: set[int] = set()
    uses = graph.operand_uses()
    k = 0
    while k + 2 < graph.n_forward:
        a, b, c = graph.ops[k:k + 3]
        if not _stem(graph, a, b, c, uses):
            k += 1
            continue
        mids = (a.outputs[0], b.outputs[0])
        fusions.append(StemFusion((a.source, b.source, c.source),
                                  (graph.tensors[mids[0]].name, graph.tensors[mids[1]].name),
                                  sum(graph.tensors[t].nbytes for t in mids)))
        drop.update(t for t in (*mids, *a.outputs[2:], *b.outputs[2:], *c.outputs[2:])
                    if t != NONE)
        graph.ops[k:k + 3] = [_stem_op(a, b, c)]
        graph.n_forward -= 2
        graph.conv_ops = [j if j <= k else max(k, j - 2) for j in graph.conv_ops]
        k += 1
    graph.remove_tensors(drop)
    return graph, fusions
