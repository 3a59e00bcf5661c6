"""The reference executor: runs a Plan in numpy, in a byte arena laid out exactly as on the device.

This is the specification of the firmware runtime. Tensors are views into one arena at the plan's
offsets, so a memory-plan bug (two live tensors sharing bytes) shows up here as wrong numbers, not
only on the device.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyhost.ops import Opcode, UpdateRule
from tinyhost.plan import NONE, DType, Op, Plan
from tinyhost.refexec import kernels_f32 as k
from tinyhost.refexec import kernels_s8 as q
from tinyhost.refexec.kernels_f32 import ConvGeom, LinearGeom, PoolGeom


def pack_mask(mask: np.ndarray) -> np.ndarray:
    """A bool mask as the plan stores it: bit i % 8 of byte i // 8 (LSB first), as int8 bytes."""
    return np.packbits(np.asarray(mask, bool).reshape(-1), bitorder="little").view(np.int8)


def unpack_mask(packed: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(np.asarray(packed).view(np.uint8), count=n, bitorder="little").astype(bool)


def mask_bytes(n: int) -> int:
    return (n + 7) // 8


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

    def _opt(self, index: int, shape: tuple[int, ...]) -> np.ndarray | None:
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

    # -- int8 ops (kernels_s8; docs/int8.md) --------------------------------------------------
    def _scalar_f32(self, index: int) -> np.float32:
        return np.float32(self.view(index)[0])

    def _conv_weight(self, w: int, w_rows: int, channels: int, n_rows: int,
                     shape: tuple[int, ...]) -> np.ndarray:
        """The weights a conv uses: w, with rows `channels` replaced by the trainable w_rows."""
        wv = self.view(w, shape)
        if w_rows == NONE:
            return wv
        eff = wv.copy()
        eff[self.view(channels, (n_rows,))] = self.view(w_rows, (n_rows,) + shape[1:])
        return eff

    def _conv2d_s8(self, op: Op) -> None:
        g = ConvGeom.from_attrs(op.attrs[:13])
        x_zero, y_zero, act_min, act_max, n_rows = op.attrs[13:]
        xs, ws, _ = self._conv_shapes(g)
        x, w, b, mult, shift, w_rows, channels = op.inputs
        kernel = q.depthwise_conv2d_s8 if op.opcode == Opcode.DEPTHWISE_CONV2D_S8 else q.conv2d_s8
        y, mask = kernel(g, self.view(x, xs), self._conv_weight(w, w_rows, channels, n_rows, ws),
                         self._opt(b, (g.out_c,)), self.view(mult), self.view(shift),
                         x_zero, y_zero, act_min, act_max, return_mask=True)
        self._store_s8_outputs(op, y, mask)

    def _pw_dw_conv2d_s8(self, op: Op) -> None:
        g_pw, g_dw = ConvGeom.from_attrs(op.attrs[:13]), ConvGeom.from_attrs(op.attrs[13:26])
        x_zero, mid_zero, mid_min, mid_max, y_zero, act_min, act_max = op.attrs[26:]
        x, pw_w, pw_b, pw_m, pw_s, dw_w, dw_b, dw_m, dw_s = op.inputs
        xs, pw_ws, _ = self._conv_shapes(g_pw)
        _, dw_ws, _ = self._conv_shapes(g_dw)
        y = q.pw_dw_conv2d_s8(
            g_pw, g_dw, self.view(x, xs),
            self.view(pw_w, pw_ws), self._opt(pw_b, (g_pw.out_c,)),
            q.ConvS8Quant(self.view(pw_m), self.view(pw_s), x_zero, mid_zero, mid_min, mid_max),
            self.view(dw_w, dw_ws), self._opt(dw_b, (g_dw.out_c,)),
            q.ConvS8Quant(self.view(dw_m), self.view(dw_s), mid_zero, y_zero, act_min, act_max))
        self.view(op.outputs[0])[...] = y.reshape(-1)

    def _store_s8_outputs(self, op: Op, y: np.ndarray, mask: np.ndarray) -> None:
        self.view(op.outputs[0])[...] = y.reshape(-1)
        if op.outputs[1] != NONE:
            self.view(op.outputs[1])[...] = pack_mask(mask)

    def _add_s8(self, op: Op) -> None:
        size, *params = op.attrs
        p = q.AddParams(*params)
        y, mask = q.add_s8(self.view(op.inputs[0], (size,)), self.view(op.inputs[1], (size,)), p,
                           return_mask=True)
        self._store_s8_outputs(op, y, mask)

    def _avgpool2d_s8(self, op: Op) -> None:
        g = PoolGeom.from_attrs(op.attrs[:11])
        x_zero, act_min, act_max = op.attrs[11:]
        xs, _ = self._pool_shapes(g)
        y = q.avgpool2d_s8(g, self.view(op.inputs[0], xs), act_min, act_max, x_zero)
        self.view(op.outputs[0])[...] = y.reshape(-1)

    def _dequantize(self, op: Op) -> None:
        size, zero = op.attrs
        x, scale = op.inputs
        self.view(op.outputs[0])[...] = q.dequantize_s8(self.view(x, (size,)),
                                                        self._scalar_f32(scale), zero)

    def _mask(self, index: int, n: int) -> np.ndarray:
        return unpack_mask(self.view(index), n)

    def _requant_grad(self, op: Op) -> None:
        channels, plane = op.attrs
        mask, dy, eff = op.inputs
        n = channels * plane
        dz = q.requant_grad(np.zeros((channels, plane), np.int8), self.view(dy, (channels, plane)),
                            self.view(eff, (channels,)), mask=self._mask(mask, n).reshape(channels, plane))
        self.view(op.outputs[0])[...] = dz.reshape(-1)

    def _conv2d_s8_grad_input(self, op: Op) -> None:
        g = ConvGeom.from_attrs(op.attrs[:13])
        n_rows = op.attrs[13]
        _, ws, ys = self._conv_shapes(g)
        dz, w, w_rows, channels = op.inputs
        dx = q.conv2d_s8_grad_input(g, self.view(dz, ys),
                                    self._conv_weight(w, w_rows, channels, n_rows, ws))
        self.view(op.outputs[0])[...] = dx.reshape(-1)

    def _conv2d_s8_grad_weight(self, op: Op) -> None:
        g = ConvGeom.from_attrs(op.attrs[:13])
        x_zero, n_channels = op.attrs[13:]
        xs, _, ys = self._conv_shapes(g)
        dz, x, channels = op.inputs
        xv = self.view(x, xs) if x != NONE else np.full(xs, x_zero, np.int8)
        sel = None if channels == NONE else self.view(channels, (n_channels,))
        dw, db = q.conv2d_s8_grad_weight(g, self.view(dz, ys), xv, x_zero, sel)
        self._store_weight_grads(op, dw, db)

    def _add_s8_grad(self, op: Op) -> None:
        size, = op.attrs
        mask, dy, scales = op.inputs
        s1, s2, sy = (float(v) for v in self.view(scales, (3,)))
        dz = q.requant_grad(np.zeros(size, np.int8), self.view(dy, (size,)), np.float32(1),
                            mask=self._mask(mask, size))
        for out, value in zip(op.outputs, q.add_s8_grad(dz, s1, s2, sy)):
            if out != NONE:
                self.view(out)[...] = value

    def _dequantize_grad(self, op: Op) -> None:
        dy, scale = op.inputs
        self.view(op.outputs[0])[...] = q.dequantize_s8_grad(self.view(dy),
                                                             self._scalar_f32(scale))

    def _update_s8(self, op: Op) -> None:
        rows, row_size, rule = op.attrs
        w, dw, qas, master = op.inputs
        wv, dwv = self.view(w, (rows, row_size)), self.view(dw, (rows, row_size))
        if rule == UpdateRule.MASTER:
            mv = self.view(master, (rows, row_size))
            new_master, new_w = q.update_s8_master(mv, dwv, self.lr, self.view(qas))
            mv[...] = new_master
            wv[...] = new_w
        elif rule == UpdateRule.ROUND:
            wv[...] = q.update_s8_round(wv, dwv, self.lr, self.view(qas))
        else:
            raise ValueError(f"unknown int8 update rule {rule}")

    def _update_s32(self, op: Op) -> None:
        size, rule = op.attrs
        b, db, qas, master = op.inputs
        bv = self.view(b)
        if rule == UpdateRule.MASTER:
            mv = self.view(master)
            new_master, new_b = q.update_s32(mv, self.view(db), self.lr, self.view(qas))
            mv[...] = new_master
            bv[...] = new_b
        elif rule == UpdateRule.ROUND:
            bv[...] = q.update_s32(bv, self.view(db), self.lr, self.view(qas))[1]
        else:
            raise ValueError(f"unknown int32 update rule {rule}")

    def _add_f32(self, op: Op) -> None:
        a, b = op.inputs
        self.view(op.outputs[0])[...] = (self.view(a) + self.view(b)).astype(np.float32)

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
        Opcode.CONV2D_S8: _conv2d_s8,
        Opcode.DEPTHWISE_CONV2D_S8: _conv2d_s8,
        Opcode.ADD_S8: _add_s8,
        Opcode.AVGPOOL2D_S8: _avgpool2d_s8,
        Opcode.DEQUANTIZE_S8_F32: _dequantize,
        Opcode.REQUANT_GRAD_F32: _requant_grad,
        Opcode.CONV2D_S8_GRAD_INPUT_F32: _conv2d_s8_grad_input,
        Opcode.CONV2D_S8_GRAD_WEIGHT_F32: _conv2d_s8_grad_weight,
        Opcode.ADD_S8_GRAD_F32: _add_s8_grad,
        Opcode.DEQUANTIZE_GRAD_F32: _dequantize_grad,
        Opcode.UPDATE_S8_F32: _update_s8,
        Opcode.UPDATE_S32_F32: _update_s32,
        Opcode.ADD_F32: _add_f32,
        Opcode.PW_DW_CONV2D_S8: _pw_dw_conv2d_s8,
    }
