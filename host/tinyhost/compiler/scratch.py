"""Pass: kernel scratch as planned tensors.

A C kernel that needs working memory (the int8 convs' im2col columns and row buffers, a fused
op's rows) gets it as an extra output operand, an int8 arena tensor of exactly the size the
kernel's `_get_buffer_size()` query returns (the device refuses any other size). plan_memory then
gives it a lifetime of just its op, so scratch shares bytes with whatever is dead at that moment
and the planned arena is the whole of what a step needs. The sizes are the op registry's
(`tinyhost.ops.scratch_bytes`: the C formulas, checked against the kernels by tests/c's
test_scratch and against the firmware's plan check by test_plan).
"""
from __future__ import annotations

from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph
from tinyhost.dtypes import DType
from tinyhost.ops import OP_SPECS, scratch_bytes
from tinyhost.plan import TensorKind


def add_scratch(graph: Graph) -> Graph:
    for op in graph.ops:
        outputs = OP_SPECS[op.opcode].outputs
        if "scratch" not in outputs:
            continue
        size = scratch_bytes(op.opcode, op.attrs)
        if size <= 0:
            raise CompileError(f"scratch: {op.source}: the {op.opcode.name} kernel refuses this "
                               "geometry")
        op.outputs[outputs.index("scratch")] = graph.add_tensor(
            f"{op.source}.scratch", (size,), TensorKind.ACTIVATION, DType.S8)
    return graph
