"""Pass 5, emit: IR graph + memory plan -> Plan (the schema the .ttp file serializes).

Only this pass reads the memory plan; the constant blob holds every parameter's initial value,
each 16-byte aligned (frozen ones are read in place on the device, trainable ones copied to the
arena).
"""
from __future__ import annotations

from typing import Any

from tinyhost.compiler.graph import Graph
from tinyhost.compiler.plan_memory import MemoryPlan
from tinyhost.plan import BLOB_ALIGN, NONE, Bindings, Op, Plan, Tensor


def emit(graph: Graph, memory: MemoryPlan, default_lr: float,
         meta: dict[str, Any]) -> Plan:
    blob = bytearray()
    tensors = []
    for i, t in enumerate(graph.tensors):
        data_offset = NONE
        if t.data is not None:
            blob += b"\0" * (-len(blob) % BLOB_ALIGN)
            data_offset = len(blob)
            blob += t.data.astype(t.dtype.numpy).tobytes()
        tensors.append(Tensor(t.name, t.dtype, t.shape, t.kind,
                              arena_offset=memory.offsets.get(i, NONE), data_offset=data_offset))
    return Plan(
        arena_size=memory.arena_size, n_forward=graph.n_forward,
        bindings=Bindings(graph.input, graph.label, graph.logits, graph.loss, graph.pred),
        num_classes=graph.num_classes, default_lr=default_lr, tensors=tensors,
        ops=[Op(op.opcode, op.inputs, op.outputs, op.attrs) for op in graph.ops],
        blob=bytes(blob), meta=meta)
