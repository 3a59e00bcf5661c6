"""The compiler's IR: tensors and ops on the way to a Plan (same op set, no offsets yet)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyhost.ops import Opcode
from tinyhost.plan import NONE, DType, TensorKind


@dataclass
class IRTensor:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    kind: TensorKind
    data: np.ndarray | None = None  # parameters only

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass
class IROp:
    opcode: Opcode
    inputs: list[int]
    outputs: list[int]
    attrs: list[int]
    source: str  # the layer or graph node it came from, for messages and reports


@dataclass
class Graph:
    tensors: list[IRTensor] = field(default_factory=list)
    ops: list[IROp] = field(default_factory=list)
    input: int = NONE
    logits: int = NONE
    label: int = NONE
    loss: int = NONE
    pred: int = NONE
    n_forward: int = 0
    num_classes: int = 0

    def add_tensor(self, name: str, shape: tuple[int, ...], kind: TensorKind,
                   dtype: DType = DType.F32, data: np.ndarray | None = None) -> int:
        self.tensors.append(IRTensor(name, dtype, tuple(int(s) for s in shape), kind, data))
        return len(self.tensors) - 1

    def add_op(self, opcode: Opcode, inputs: list[int], outputs: list[int], attrs: list[int],
               source: str) -> IROp:
        op = IROp(opcode, inputs, outputs, [int(a) for a in attrs], source)
        self.ops.append(op)
        return op

    def params(self) -> list[int]:
        return [i for i, t in enumerate(self.tensors)
                if t.kind in (TensorKind.PARAM_TRAINABLE, TensorKind.PARAM_FROZEN)]
