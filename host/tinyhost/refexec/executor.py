"""The reference executor: runs a Plan in numpy, in a byte arena laid out exactly as on the device.

This is the specification of the firmware runtime. Tensors are views into one arena at the plan's
offsets, so a memory-plan bug (two live tensors sharing bytes) shows up here as wrong numbers, not
only on the device.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyhost.ops import Opcode
from tinyhost.plan import NONE, Op, Plan
from tinyhost.refexec import kernels_f32 as k
from tinyhost.refexec.kernels_f32 import ConvGeom, LinearGeom, PoolGeom


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

    def _opt(self, index: int, shape: tuple[int, ...]) -> np.ndarray | None:
        return None if index == NONE else self.view(index, shape)

    # -- execution --------------------------------------------------------------------------
    def set_input(self, x: np.ndarray) -> None:
        b = self.plan.bindings
        dst = self.view(b.input)
        if x.size != dst.size:
            raise ValueError(f"input has {x.size} values, the plan expects {dst.size}")
        dst[...] = np.asarray(x, dtype=dst.dtype).reshape(-1)

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
        for op in ops:
            self.OPS[op.opcode](self, op)

    # -- ops: operands are views shaped by the op's geometry ------------------------------------
    def _linear(self, op: Op) -> None:
        g = LinearGeom.from_attrs(op.attrs)
        x, w, b = op.inputs
        y = k.linear(g, self.view(x, (g.in_features,)),
                     self.view(w, (g.out_features, g.in_features)), self._opt(b, (g.out_features,)))
        self.view(op.outputs[0])[...] = y.reshape(-1)

    def _linear_grad_input(self, op: Op) -> None:
        g = LinearGeom.from_attrs(op.attrs)
        dy, w = op.inputs
        dx = k.linear_grad_input(g, self.view(dy, (g.out_features,)),
                                 self.view(w, (g.out_features, g.in_features)))
        self.view(op.outputs[0])[...] = dx.reshape(-1)

    def _linear_grad_weight(self, op: Op) -> None:
        g = LinearGeom.from_attrs(op.attrs)
        dy, x = op.inputs
        xv = self.view(x, (g.in_features,)) if x != NONE else np.zeros(g.in_features, np.float32)
        dw, db = k.linear_grad_weight(g, self.view(dy, (g.out_features,)), xv)
        self._store_weight_grads(op, dw, db)

    def _store_weight_grads(self, op: Op, dw: np.ndarray, db: np.ndarray) -> None:
        """Either output may be absent: a bias-only layer has no dw (and no saved input)."""
        for out, value in zip(op.outputs, (dw, db)):
            if out != NONE:
                self.view(out)[...] = value.reshape(-1)

    @staticmethod
    def _conv_shapes(g: ConvGeom) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return ((g.in_c, g.in_h, g.in_w), (g.out_c, g.in_c // g.groups, g.k_h, g.k_w),
                (g.out_c, g.out_h, g.out_w))

    def _conv2d(self, op: Op) -> None:
        g = ConvGeom.from_attrs(op.attrs)
        xs, ws, _ = self._conv_shapes(g)
        x, w, b = op.inputs
        y = k.conv2d(g, self.view(x, xs), self.view(w, ws), self._opt(b, (g.out_c,)))
        self.view(op.outputs[0])[...] = y.reshape(-1)

    def _conv2d_grad_input(self, op: Op) -> None:
        g = ConvGeom.from_attrs(op.attrs)
        _, ws, ys = self._conv_shapes(g)
        dy, w = op.inputs
        dx = k.conv2d_grad_input(g, self.view(dy, ys), self.view(w, ws))
        self.view(op.outputs[0])[...] = dx.reshape(-1)

    def _conv2d_grad_weight(self, op: Op) -> None:
        g = ConvGeom.from_attrs(op.attrs)
        xs, _, ys = self._conv_shapes(g)
        dy, x = op.inputs
        xv = self.view(x, xs) if x != NONE else np.zeros(xs, np.float32)
        dw, db = k.conv2d_grad_weight(g, self.view(dy, ys), xv)
        self._store_weight_grads(op, dw, db)

    def _relu(self, op: Op) -> None:
        self.view(op.outputs[0])[...] = k.relu(self.view(op.inputs[0]))

    def _relu_grad(self, op: Op) -> None:
        y, dy = op.inputs
        self.view(op.outputs[0])[...] = k.relu_grad(self.view(y), self.view(dy))

    @staticmethod
    def _pool_shapes(g: PoolGeom) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (g.c, g.in_h, g.in_w), (g.c, g.out_h, g.out_w)

    def _maxpool2d(self, op: Op) -> None:
        g = PoolGeom.from_attrs(op.attrs)
        xs, _ = self._pool_shapes(g)
        self.view(op.outputs[0])[...] = k.maxpool2d(g, self.view(op.inputs[0], xs)).reshape(-1)

    def _maxpool2d_grad(self, op: Op) -> None:
        g = PoolGeom.from_attrs(op.attrs)
        xs, ys = self._pool_shapes(g)
        x, dy = op.inputs
        dx = k.maxpool2d_grad(g, self.view(x, xs), self.view(dy, ys))
        self.view(op.outputs[0])[...] = dx.reshape(-1)

    def _avgpool2d(self, op: Op) -> None:
        g = PoolGeom.from_attrs(op.attrs)
        xs, _ = self._pool_shapes(g)
        self.view(op.outputs[0])[...] = k.avgpool2d(g, self.view(op.inputs[0], xs)).reshape(-1)

    def _avgpool2d_grad(self, op: Op) -> None:
        g = PoolGeom.from_attrs(op.attrs)
        _, ys = self._pool_shapes(g)
        dx = k.avgpool2d_grad(g, self.view(op.inputs[0], ys))
        self.view(op.outputs[0])[...] = dx.reshape(-1)

    def _softmax_xent(self, op: Op) -> None:
        logits, label = op.inputs
        loss, dlogits, pred = k.softmax_xent(self.view(logits), int(self.view(label)[0]))
        out_loss, out_dlogits, out_pred = op.outputs
        self.view(out_loss)[0] = loss
        self.view(out_dlogits)[...] = dlogits
        self.view(out_pred)[0] = pred

    def _sgd(self, op: Op) -> None:
        w, g = op.inputs
        self.view(w)[...] = k.sgd(self.view(w), self.view(g), self.lr)

    OPS: dict[Opcode, Callable[[RefExecutor, Op], None]] = {
        Opcode.LINEAR_F32: _linear,
        Opcode.LINEAR_GRAD_INPUT_F32: _linear_grad_input,
        Opcode.LINEAR_GRAD_WEIGHT_F32: _linear_grad_weight,
        Opcode.CONV2D_F32: _conv2d,
        Opcode.CONV2D_GRAD_INPUT_F32: _conv2d_grad_input,
        Opcode.CONV2D_GRAD_WEIGHT_F32: _conv2d_grad_weight,
        Opcode.RELU_F32: _relu,
        Opcode.RELU_GRAD_F32: _relu_grad,
        Opcode.MAXPOOL2D_F32: _maxpool2d,
        Opcode.MAXPOOL2D_GRAD_F32: _maxpool2d_grad,
        Opcode.AVGPOOL2D_F32: _avgpool2d,
        Opcode.AVGPOOL2D_GRAD_F32: _avgpool2d_grad,
        Opcode.SOFTMAX_XENT_F32: _softmax_xent,
        Opcode.SGD_F32: _sgd,
    }
