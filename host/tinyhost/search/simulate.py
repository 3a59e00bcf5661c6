"""Fast host simulation of on-device int8 training, for the search's contribution analysis.

A `SimNet` runs the int8 front-end graph (what import_tiny or quantize made, before autodiff) in
PyTorch with the device's numerics:

- forward: the integer forward of the device, exactly: each conv's int32 accumulator from a
  float64 convolution (exact for int8 x int8 sums below 2**53), then the reference executor's own
  fixed-point requantization, add and average pool (tinyhost.quant / refexec.kernels_s8 on numpy);
- backward: PyTorch autograd through straight-through estimators that carry the paper's rules
  (docs/int8.md section 5): a conv's gradient at its accumulator is dy x clamp mask x effective
  scale, an add's dy x mask x s_i / s_y, a pool's the mean's; gradients are float64 here, float32
  on the device (the one difference: see tests/host/test_search.py for how far the loss curves
  then drift apart);
- update: batch-1 SGD with the plan's rule: the fp32 head at the head's lr, each int8 weight row
  and int32 bias with QAS at the backbone's lr (lr x lr_scale), rule round (int8/int32 only) or
  master (an f32 copy rounded into the int8 weights); dead channels never train.

Where the device computes a frozen prefix of the network again at every step, a SimNet keeps the
int8 tensors a run needs at its first trained layer for every sample (`prefix_cache`), so a run
that trains only late layers costs only those layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F

from tinyhost.compiler.graph import Graph, IROp
from tinyhost.compiler.sparse import LayerUpdate
from tinyhost.ops import Opcode, UpdateRule
from tinyhost.quant import (
    AddParams,
    qas_bias_scale,
    qas_weight_scale,
)
from tinyhost.refexec.kernels_f32 import ConvGeom, PoolGeom
from tinyhost.refexec.kernels_s8 import add_s8, quantize_f32_s8

CONVS = (Opcode.CONV2D_S8, Opcode.DEPTHWISE_CONV2D_S8)
_ADD_ATTR = {"x1_multiplier": "x1_mult", "x2_multiplier": "x2_mult", "y_multiplier": "y_mult"}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class Diverged(ArithmeticError):
    """A non-finite loss or update: the device would refuse the step (TT_ERR_NONFINITE)."""


@dataclass(frozen=True)
class TrainSpec:
    """What a simulated run trains besides the fp32 head (always trained): per backbone conv
    (network order) its bias, and its weight rows (None: all rows)."""
    bias: frozenset[int] = frozenset()
    weights: tuple[tuple[int, tuple[int, ...] | None], ...] = ()

    @staticmethod
    def from_updates(updates: list[LayerUpdate]) -> TrainSpec:
        """The spec of a compiled scheme (compiler.sparse.layer_updates)."""
        return TrainSpec(frozenset(i for i, u in enumerate(updates) if u.bias),
                         tuple((i, None if u.channels is None else tuple(int(c) for c in
                                                                          u.channels))
                               for i, u in enumerate(updates) if u.weight))

    def convs(self) -> set[int]:
        return set(self.bias) | {i for i, _ in self.weights}


@dataclass
class _Conv:
    op: int                      # forward op index
    geom: ConvGeom
    w: torch.Tensor              # float64 holding the int8 weights
    b: torch.Tensor              # float64 holding the int32 bias
    mult: np.ndarray
    shift: np.ndarray
    eff: torch.Tensor            # float32 effective scale per output channel
    qas_w: np.ndarray            # QAS x live (0 for a dead channel)
    qas_b: np.ndarray
    exact32: bool = False        # float32 convolution is exact (fan-in x 127 x 255 < 2**24)
    mult_t: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    left: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    right: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    w_master: torch.Tensor | None = None
    b_master: np.ndarray | None = None


@dataclass
class SimNet:
    """The int8 network of a front-end graph, trainable in PyTorch (see the module docstring)."""
    graph: Graph
    rule: UpdateRule = UpdateRule.ROUND
    qas: bool = True
    lr: float = 0.001            # the head's
    lr_scale: float = 0.5        # the backbone's lr / the head's
    convs: list[_Conv] = field(default_factory=list)
    _init: dict[str, torch.Tensor] = field(default_factory=dict)
    _cuts: dict[int, list[int]] = field(default_factory=dict)
    _attr_cache: dict[int, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        g = self.graph
        self.ops: list[IROp] = g.ops[:g.n_forward]
        head = self.ops[-1]
        if head.opcode != Opcode.LINEAR_F32:
            raise ValueError("the int8 graph must end in its fp32 linear head")
        self.head_op = len(self.ops) - 1
        for k in g.conv_ops:
            op = g.ops[k]
            x, w, b, mult, shift = op.inputs[:5]
            info = op.info
            live = np.where(info["dead"], np.float32(0), np.float32(1))
            out_c = op.attr("out_c")
            ones = np.ones(out_c, np.float32)
            qw = qas_weight_scale(info["w_scales"]) if self.qas else ones
            qb = qas_bias_scale(info["w_scales"], info["x_scale"]) if self.qas else ones
            self.convs.append(_Conv(
                k, ConvGeom.from_op(op),  # type: ignore[arg-type]
                torch.from_numpy(g.tensors[w].array().astype(np.float64)),
                torch.from_numpy(g.tensors[b].array().astype(np.float64)) if b != -1
                else torch.zeros(out_c, dtype=torch.float64),
                g.tensors[mult].array().astype(np.int64), g.tensors[shift].array().astype(np.int64),
                torch.from_numpy(np.asarray(info["eff"], np.float32)),
                (qw * live).astype(np.float32), (qb * live).astype(np.float32)))
        for c in self.convs:
            fan_in = c.geom.in_c // c.geom.groups * c.geom.k_h * c.geom.k_w
            c.exact32 = fan_in * 127 * 255 < 2**24
            c.mult_t = torch.from_numpy(c.mult)[:, None, None]
            c.left = torch.from_numpy(np.maximum(c.shift, 0))[:, None, None]
            c.right = torch.from_numpy(np.maximum(-c.shift, 0))[:, None, None]
        self.conv_of_op = {c.op: i for i, c in enumerate(self.convs)}
        w, b = head.inputs[1], head.inputs[2]
        self.head_w = torch.from_numpy(g.tensors[w].array().astype(np.float32).copy())
        self.head_b = torch.from_numpy(g.tensors[b].array().astype(np.float32).copy())
        self._init = {"head_w": self.head_w.clone(), "head_b": self.head_b.clone()}
        self._init_conv = [(c.w.clone(), c.b.clone()) for c in self.convs]
        self.input_quant = g.input_quant
        # the tensors each op reads, and the op that writes each tensor
        self._writer = {t: k for k, op in enumerate(self.ops) for t in op.outputs if t != -1}

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        """The imported parameters again (every run starts from them)."""
        self.head_w = self._init["head_w"].clone()
        self.head_b = self._init["head_b"].clone()
        for c, (w, b) in zip(self.convs, self._init_conv, strict=True):
            c.w, c.b = w.clone(), b.clone()
            c.w_master = None
            c.b_master = None

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """A float sample as the plan's int8 input (TFLite AffineQuantize, as prepare_input)."""
        assert self.input_quant is not None
        scale, zero = self.input_quant
        shape = self.graph.tensors[self.graph.input].shape
        return quantize_f32_s8(np.ascontiguousarray(x, np.float32).reshape(shape), scale, zero)

    # -- the frozen prefix ------------------------------------------------------------------
    def cut_tensors(self, start: int) -> list[int]:
        """The tensors ops before `start` write and ops from `start` on read (what a run whose
        first trained op is `start` needs of the frozen prefix)."""
        if start not in self._cuts:
            later = {t for op in self.ops[start:] for t in op.inputs}
            self._cuts[start] = sorted(
                t for t in later if t == self.graph.input or self._writer.get(t, start) < start)
        return self._cuts[start]

    def prefix_caches(self, xq: list[np.ndarray], starts: set[int],
                      chunk: int = 64) -> dict[int, dict[int, np.ndarray]]:
        """Per start op, the cut tensors there for all samples (first axis: the sample; int8
        values as np.int8, the head's f32 input as float32), from one batched forward pass."""
        need = {s: self.cut_tensors(s) for s in starts}
        parts: dict[int, dict[int, list[np.ndarray]]] = {s: {t: [] for t in need[s]}
                                                         for s in starts}
        with torch.no_grad():
            for lo in range(0, len(xq), chunk):
                vals = {self.graph.input: _t(np.stack(xq[lo:lo + chunk]))}
                done = 0
                for s in sorted(starts):
                    vals = self._forward(vals, done, s)
                    done = s
                    for t in need[s]:
                        parts[s][t].append(_store(vals[t]))
        return {s: {t: np.concatenate(v) if v else np.zeros(0) for t, v in d.items()}
                for s, d in parts.items()}

    # -- forward (batched: every value has the sample as its first axis) --------------------
    def _attrs(self, op: IROp) -> dict[str, int]:
        key = id(op)
        if key not in self._attr_cache:
            self._attr_cache[key] = op.named_attrs()
        return self._attr_cache[key]

    def _forward(self, vals: dict[int, torch.Tensor], start: int,
                 stop: int) -> dict[int, torch.Tensor]:
        """Runs ops [start, stop) on `vals` (tensor -> value)."""
        for k in range(start, stop):
            op = self.ops[k]
            a = self._attrs(op)
            if op.opcode in CONVS:
                self._conv(vals, op, a, self.convs[self.conv_of_op[k]])
            elif op.opcode == Opcode.ADD_S8:
                self._add(vals, op, a)
            elif op.opcode == Opcode.AVGPOOL2D_S8:
                self._pool(vals, op, a)
            elif op.opcode == Opcode.DEQUANTIZE_S8_F32:
                scale = np.float32(self.graph.tensors[op.inputs[1]].array().reshape(-1)[0])
                x = vals[op.inputs[0]]
                vals[op.outputs[0]] = ((x.to(torch.float32) - a["zero"])
                                       * float(scale)).reshape(x.shape[0], -1)
            elif op.opcode == Opcode.LINEAR_F32:
                x = vals[op.inputs[0]]
                vals[op.outputs[0]] = F.linear(x.reshape(x.shape[0], -1), self.head_w,
                                               self.head_b)
            else:
                raise ValueError(f"the search's simulation has no {op.opcode.name} (op {k}, "
                                 f"{op.source})")
        return vals

    def _conv(self, vals: dict[int, torch.Tensor], op: IROp, a: dict[str, int],
              c: _Conv) -> None:
        g = c.geom
        x = vals[op.inputs[0]]
        xs = x.reshape(x.shape[0], g.in_c, g.in_h, g.in_w) - a["x_zero"]
        if c.exact32:  # every partial sum below 2**24: float32 is exact, and faster
            acc = F.conv2d(xs.to(torch.float32), c.w.to(torch.float32), None,
                           (g.stride_h, g.stride_w), (g.pad_h, g.pad_w), 1, g.groups)
            acc = acc.to(torch.float64) + c.b[:, None, None]
        else:
            acc = F.conv2d(xs, c.w, None, (g.stride_h, g.stride_w), (g.pad_h, g.pad_w), 1,
                           g.groups) + c.b[:, None, None]
        pre = _mbqm(acc.detach().round().to(torch.int64), c.mult_t, c.left, c.right) \
            + a["y_zero"]
        lo, hi = a["act_min"], a["act_max"]
        y = torch.clamp(pre, lo, hi).to(torch.float64)
        if acc.requires_grad:
            scale = c.eff.to(torch.float64)[:, None, None] * ((pre >= lo) & (pre <= hi))
            y = y + (acc - acc.detach()) * scale
        vals[op.outputs[0]] = y

    def _add(self, vals: dict[int, torch.Tensor], op: IROp, a: dict[str, int]) -> None:
        p = AddParams(**{f.name: a[_ADD_ATTR.get(f.name, f.name)] for f in fields(AddParams)})
        x1, x2 = (vals[t] for t in op.inputs)
        x2 = x2.reshape(x1.shape)
        y_np, mask = add_s8(_s8(x1), _s8(x2), p, return_mask=True)
        y = torch.from_numpy(y_np.astype(np.float64))
        if x1.requires_grad or x2.requires_grad:
            i = op.info
            f1, f2 = (float(np.float32(float(np.float32(s)) / float(np.float32(i["sy"]))))
                      for s in (i["s1"], i["s2"]))
            m = torch.from_numpy(mask)
            y = y + m * ((x1 - x1.detach()) * f1 + (x2 - x2.detach()) * f2)
        vals[op.outputs[0]] = y

    def _pool(self, vals: dict[int, torch.Tensor], op: IROp, a: dict[str, int]) -> None:
        """avgpool2d_s8 (the mean rounded half away from zero, padding = x_zero, counted),
        batched in torch; its gradient the mean's."""
        g = PoolGeom.from_op(op)  # type: ignore[arg-type]
        x = vals[op.inputs[0]]
        x = x.reshape(x.shape[0], g.c, g.in_h, g.in_w)
        xp = F.pad(x.detach(), (g.pad_w, g.pad_w, g.pad_h, g.pad_h), value=float(a["x_zero"]))
        n = g.k_h * g.k_w
        s = F.avg_pool2d(xp, (g.k_h, g.k_w), (g.stride_h, g.stride_w),
                         divisor_override=1).round().to(torch.int64)
        q = torch.where(s > 0, torch.div(s + n // 2, n, rounding_mode="trunc"),
                        torch.div(s - n // 2, n, rounding_mode="trunc"))
        y = torch.clamp(q, a["act_min"], a["act_max"]).to(torch.float64)
        if x.requires_grad:
            p = F.avg_pool2d(x, (g.k_h, g.k_w), (g.stride_h, g.stride_w), (g.pad_h, g.pad_w),
                             count_include_pad=True)
            y = y + (p - p.detach())
        vals[op.outputs[0]] = y

    # -- a run ------------------------------------------------------------------------------
    def first_op(self, spec: TrainSpec) -> int:
        """The first forward op a run of `spec` must compute at every step."""
        convs = spec.convs()
        return min((self.convs[i].op for i in convs), default=self.head_op)

    def logits(self, cut: dict[int, np.ndarray], start: int) -> torch.Tensor:
        """Logits of a batch of samples from their cut tensors at op `start` (no training)."""
        with torch.no_grad():
            vals = {t: _load(v) for t, v in cut.items()}
            return self._forward(vals, start, len(self.ops))[self.graph.logits]

    def train_step(self, cut: dict[int, np.ndarray], start: int, label: int, spec: TrainSpec,
                   lr: float | None = None) -> float:
        """One batch-1 SGD step from one sample's cut tensors at op `start` (arrays with a
        first axis of 1); returns the loss."""
        lr32 = np.float32(self.lr if lr is None else lr)
        blr = np.float32(lr32 * np.float32(self.lr_scale))
        rows = dict(spec.weights)
        for i in spec.convs():
            c = self.convs[i]
            c.w.requires_grad_(i in rows)
            c.b.requires_grad_(i in spec.bias)
        self.head_w.requires_grad_(True)
        self.head_b.requires_grad_(True)
        try:
            vals = {t: _load(v) for t, v in cut.items()}
            logits = self._forward(vals, start, len(self.ops))[self.graph.logits]
            loss = F.cross_entropy(logits, torch.tensor([label]))
            if not torch.isfinite(loss):
                raise Diverged("non-finite loss")
            loss.backward()
        finally:
            for c in self.convs:
                c.w.requires_grad_(False)
                c.b.requires_grad_(False)
            self.head_w.requires_grad_(False)
            self.head_b.requires_grad_(False)
        with torch.no_grad():
            self._head_sgd(lr32)
            for i in spec.convs():
                self._conv_update(self.convs[i], i in spec.bias, i in rows, rows.get(i), blr)
        return float(loss.detach())

    def _head_sgd(self, lr: np.float32) -> None:
        for p in (self.head_w, self.head_b):
            assert p.grad is not None
            g = p.grad.to(torch.float32)
            new = p - torch.tensor(lr) * g
            if not torch.isfinite(new).all():
                raise Diverged("non-finite head update")
            p.copy_(new)
            p.grad = None

    def _conv_update(self, c: _Conv, bias: bool, weight: bool, sel: tuple[int, ...] | None,
                     lr: np.float32) -> None:
        if weight:
            assert c.w.grad is not None
            idx = slice(None) if sel is None else list(sel)
            dw = c.w.grad[idx].to(torch.float32)
            q = torch.from_numpy(c.qas_w[idx]).reshape((-1,) + (1,) * (dw.dim() - 1))
            u = torch.tensor(lr) * (dw * q)
            if self.rule == UpdateRule.MASTER:
                if c.w_master is None:
                    c.w_master = c.w.to(torch.float32).clone()
                m = c.w_master[idx] - u
                if not torch.isfinite(m).all():
                    raise Diverged("non-finite weight update")
                c.w_master[idx] = m
                new = m
            else:
                new = c.w[idx].to(torch.float32) - u
                if not torch.isfinite(new).all():
                    raise Diverged("non-finite weight update")
            c.w[idx] = torch.clamp(torch.round(new), -127, 127).to(torch.float64)
        if bias:
            assert c.b.grad is not None
            db = c.b.grad.to(torch.float32).numpy()
            u = (lr * (db * c.qas_b)).astype(np.float32)
            if not np.isfinite(u).all():
                raise Diverged("non-finite bias update")
            if self.rule == UpdateRule.MASTER:
                if c.b_master is None:
                    c.b_master = c.b.numpy().astype(np.float32)
                c.b_master = (c.b_master - u).astype(np.float32)
                b = np.clip(np.rint(c.b_master.astype(np.float64)), INT32_MIN, INT32_MAX)
            else:
                b = np.clip(c.b.numpy() - np.rint(u.astype(np.float64)), INT32_MIN, INT32_MAX)
            c.b = torch.from_numpy(b.astype(np.float64))
        c.w.grad = None
        c.b.grad = None


def _mbqm(acc: torch.Tensor, mult: torch.Tensor, left: torch.Tensor,
          right: torch.Tensor) -> torch.Tensor:
    """TFLite MultiplyByQuantizedMultiplier (tinyhost.quant's definition) in torch int64, for
    per-channel (C, 1, 1) multiplier and shifts; mult > 0, so no saturating case."""
    ab = (acc << left) * mult
    nudge = torch.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")
    mask = (torch.ones_like(right) << right) - 1
    threshold = (mask >> 1) + (high < 0).to(torch.int64)
    return (high >> right) + ((high & mask) > threshold).to(torch.int64)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x).astype(np.float64))


def _store(x: torch.Tensor) -> np.ndarray:
    if x.dtype == torch.float64:  # int8 values
        return x.numpy().astype(np.int8)
    return x.numpy().copy()


def _load(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(v.astype(np.float64) if v.dtype == np.int8 else v)


def _s8(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy().astype(np.int8)

