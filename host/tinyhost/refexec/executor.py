"""The reference executor: runs a Plan in numpy, in a byte arena laid out exactly as on the device.

This is the specification of the firmware runtime. Tensors are views into one arena at the plan's
offsets, so a memory-plan bug (two live tensors sharing bytes) shows up here as wrong numbers, not
only on the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyhost.ops import Opcode
from tinyhost.plan import NONE, DType, Op, Plan
from tinyhost.quant import mask_bytes  # noqa: F401  (re-exported)
from tinyhost.refexec import kernels_f32 as _kernels_f32  # noqa: F401  (registers its ops)
from tinyhost.refexec import kernels_optim as _kernels_optim  # noqa: F401  (registers its ops)
from tinyhost.refexec import kernels_s8 as q
from tinyhost.refexec.kernels_s8 import pack_mask, unpack_mask  # noqa: F401  (re-exported)
from tinyhost.refexec.registry import REFERENCE, NonFiniteStep

NONFINITE_NAME = "TT_ERR_NONFINITE"  # tt_status.h: -15

_missing = set(Opcode) - set(REFERENCE)
assert not _missing, f"ops without a reference function: {sorted(o.name for o in _missing)}"


def prepare_input(plan: Plan, x: np.ndarray) -> np.ndarray:
    """A sample as the plan's input tensor holds it (flat). An int8 input takes float samples
    quantized with the plan's input quantization (meta["input_quant"], TFLite AffineQuantize) or
    int8 samples as they are."""
    t = plan.tensors[plan.bindings.input]
    a = np.asarray(x)
    if a.size != t.numel:
        raise ValueError(f"sample has {a.size} values, the plan's input {t.shape} needs {t.numel}")
    if t.dtype == DType.S8 and a.dtype != np.int8:
        iq = plan.meta.get("input_quant")
        if not isinstance(iq, dict) or "scale" not in iq or "zero" not in iq:
            raise ValueError("the plan's input is int8 but its meta has no input_quant "
                             "{scale, zero} to quantize float samples with")
        a = q.quantize_f32_s8(np.ascontiguousarray(a, dtype=np.float32), iq["scale"], iq["zero"])
    return np.ascontiguousarray(a, dtype=t.dtype.numpy).reshape(-1)


@dataclass
class StepResult:
    loss: float
    pred: int


class RefExecutor:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.arena = np.zeros(plan.arena_size, dtype=np.uint8)
        self.lr = np.float32(plan.default_lr)
        self.steps = 0
        self.reset_parameters()

    # -- tensor access ----------------------------------------------------------------------
    def reset_parameters(self) -> None:
        for i in self.plan.trainable:
            self.view(i)[...] = self.plan.constant(i).reshape(-1)

    def view(self, index: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """A writable view of an arena tensor, or a read-only view of a constant one."""
        t = self.plan.tensors[index]
        if t.in_arena:
            raw = self.arena[t.arena_offset:t.arena_offset + t.nbytes]
        else:
            raw = np.frombuffer(self.plan.blob, np.uint8, t.nbytes, t.data_offset)
        flat = raw.view(t.dtype.numpy)
        return flat if shape is None else flat.reshape(shape)

    def read_tensor(self, index: int) -> np.ndarray:
        t = self.plan.tensors[index]
        return self.view(index).reshape(t.shape).copy()

    def opt(self, index: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """view(), or None for an absent optional operand."""
        return None if index == NONE else self.view(index, shape)

    # -- execution --------------------------------------------------------------------------
    def set_input(self, x: np.ndarray) -> None:
        b = self.plan.bindings
        self.view(b.input)[...] = prepare_input(self.plan, x)

    def train_step(self, x: np.ndarray, label: int, lr: float | None = None) -> StepResult:
        b = self.plan.bindings
        if not 0 <= label < self.plan.num_classes:
            raise ValueError(f"label {label} outside [0, {self.plan.num_classes})")
        self.set_input(x)
        self.view(b.label)[0] = label
        self.lr = np.float32(self.plan.default_lr if lr is None else lr)
        self.run(self.plan.ops)
        self.steps += 1
        return StepResult(float(self.view(b.loss)[0]), int(self.view(b.pred)[0]))

    def evaluate(self, x: np.ndarray) -> int:
        self.set_input(x)
        self.run(self.plan.ops[:self.plan.n_forward])
        return int(np.argmax(self.view(self.plan.bindings.logits)))

    def run(self, ops: list[Op]) -> None:
        for k, op in enumerate(ops):
            try:
                # overflow is the device's float arithmetic too; an update refuses what it makes
                with np.errstate(over="ignore", invalid="ignore"):
                    REFERENCE[op.opcode](self, op)
            except NonFiniteStep as e:  # the firmware's message (exec.c), for the same op
                raise NonFiniteStep(f"op {k} (opcode {int(op.opcode)}) failed: "
                                    f"{NONFINITE_NAME} ({e})") from None
