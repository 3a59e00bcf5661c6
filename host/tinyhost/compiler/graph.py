"""The compiler's IR: tensors and ops on the way to a Plan (same op set, no offsets yet).

Attributes are read and written by name (`op.attr("stride_h")`, `ops_attrs(opcode, ...)`), never by
position: host/tinyhost/ops.py holds each op's attribute names in plan order.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyhost.dtypes import DType
from tinyhost.ops import OP_SPECS, Opcode, attr_index
from tinyhost.plan import NONE, TensorKind


def ops_attrs(opcode: Opcode, **values: int) -> list[int]:
    """The attribute list of an op with this opcode, in plan order, from its attributes by name.
    A missing or unknown name is a ValueError naming it."""
    names = OP_SPECS[opcode].attrs
    unknown = [n for n in values if n not in names]
    missing = [n for n in names if n not in values]
    if unknown or missing:
        raise ValueError(f"{opcode.name} attributes: "
                         + "; ".join(part for part in (
                             f"missing {', '.join(missing)}" if missing else "",
                             f"unknown {', '.join(unknown)}" if unknown else "") if part)
                         + f" (it has {', '.join(names)})")
    return [int(values[n]) for n in names]


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

    def array(self) -> np.ndarray:
        """The data of a tensor that has some (a parameter); an error naming it otherwise."""
        if self.data is None:
            raise ValueError(f"tensor {self.name!r} has no data")
        return self.data


@dataclass
class IROp:
    opcode: Opcode
    inputs: list[int]
    outputs: list[int]
    attrs: list[int]
    source: str  # the layer or graph node it came from, for messages and reports
    # Float facts a later pass needs but the op does not carry (int8 graphs: the scales from which
    # backward constants are made only if the layer is in the backward pass).
    info: dict[str, Any] = field(default_factory=dict)

    def attr(self, name: str) -> int:
        """Attribute `name` (a KeyError naming the op's attributes if it has none of that name)."""
        return self.attrs[attr_index(self.opcode, name)]

    def set_attr(self, name: str, value: int) -> None:
        self.attrs[attr_index(self.opcode, name)] = int(value)

    def named_attrs(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Attributes by name: all of them, or those in `names` (to build another op's list with
        ops_attrs, e.g. a gradient op sharing the forward op's geometry)."""
        all_names = OP_SPECS[self.opcode].attrs
        return {n: self.attr(n) for n in (all_names if names is None else names)}


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
    # int8 graphs (compiler/import_tiny.py): the input's (scale, zero) and the forward op index of
    # every backbone conv in network order (what sparse-update schemes index).
    input_quant: tuple[float, int] | None = None
    conv_ops: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what an import changed, for the plan's meta
    # fp32: each BatchNorm folded into the layer before it (lower.py), so `tinyhost pull` can give
    # the user's model its own keys back: {"bn", "layer", "eps", "layer_bias"}.
    batchnorm_folds: list[dict[str, Any]] = field(default_factory=list)

    def add_tensor(self, name: str, shape: tuple[int, ...], kind: TensorKind,
                   dtype: DType = DType.F32, data: np.ndarray | None = None) -> int:
        self.tensors.append(IRTensor(name, dtype, tuple(int(s) for s in shape), kind, data))
        return len(self.tensors) - 1

    def add_grad(self, of: int, name: str | None = None) -> int:
        """A gradient tensor shaped like tensor `of`."""
        t = self.tensors[of]
        return self.add_tensor(name or f"grad:{t.name}", t.shape, TensorKind.GRADIENT)

    def add_op(self, opcode: Opcode, inputs: list[int], outputs: list[int],
               attrs: Mapping[str, int], source: str, info: dict[str, Any] | None = None) -> IROp:
        """Appends an op; `attrs` are its attributes by name (ops_attrs puts them in order)."""
        op = IROp(opcode, inputs, outputs, ops_attrs(opcode, **attrs), source, info or {})
        self.ops.append(op)
        return op

    def operand_uses(self) -> dict[int, int]:
        """How many operand slots (inputs and outputs) of all ops name each tensor."""
        count: dict[int, int] = {}
        for op in self.ops:
            for t in op.inputs + op.outputs:
                if t != NONE:
                    count[t] = count.get(t, 0) + 1
        return count

    def remove_tensors(self, drop: set[int]) -> None:
        """Deletes tensors that no op names any more (a fusion's intermediate), renumbering the
        others in the ops and the bindings."""
        if not drop:
            return
        keep = [i for i in range(len(self.tensors)) if i not in drop]
        new = {old: i for i, old in enumerate(keep)} | {NONE: NONE}
        for op in self.ops:
            if any(t in drop for t in op.inputs + op.outputs):
                raise ValueError(f"{op.source} still uses a tensor being removed")
            op.inputs = [new[t] for t in op.inputs]
            op.outputs = [new[t] for t in op.outputs]
        for name in ("input", "logits", "label", "loss", "pred"):
            if getattr(self, name) in drop:
                raise ValueError(f"the {name} binding is being removed")
            setattr(self, name, new[getattr(self, name)])
        self.tensors = [self.tensors[i] for i in keep]

    def params(self) -> list[int]:
        return [i for i, t in enumerate(self.tensors)
                if t.kind in (TensorKind.PARAM_TRAINABLE, TensorKind.PARAM_FROZEN)]
