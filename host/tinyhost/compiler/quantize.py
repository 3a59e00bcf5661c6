"""Pass 2 for float models compiled to int8, quantize: post-training quantization of a captured
float model with calibration samples -> the int8 forward IR that import_tiny makes of the paper's
models (the same emitters, `import_tiny.Int8Emitter`), so autodiff_s8, plan_memory, emit and the
reference executor treat both alike.

- calibration: the float model runs on the samples; every node's output range (min, max over all
  samples) is recorded;
- conv (1-d as 2-d with H = 1, groups, depthwise, stride, padding): a BatchNorm that is the conv's
  only reader is folded into it (w * gamma/sqrt(var+eps), (b - mean) * gamma/sqrt(var+eps) + beta,
  in double); weights symmetric int8 per output channel, bias int32 in the accumulator's scale,
  TFLite's QuantizeMultiplier per channel (tinyhost/quant.py, docs/int8.md section 1);
- activations per tensor, asymmetric, from the calibrated range of the node that ends a fused
  chain (conv [-> BN] [-> ReLU/ReLU6], add [-> ReLU/ReLU6]); a ReLU or ReLU6 becomes the clamp
  [act_min, act_max] of the conv or add it follows, as TFLite's fused activations
  (CalculateActivationRangeQuantized): act_min = y_zero, act_max = y_zero + round(6/s_y) for ReLU6;
- residual add of two int8 tensors: ADD_S8 with TFLite's parameters;
- average pools (global or not, AdaptiveAvgPool with an integer ratio, mean over space): int8,
  the output keeps the input's quantization;
- the final Linear: the int8 features are dequantized and the Linear stays an fp32 head with the
  model's own weights (as import_tiny keeps a new fp32 head);
- anything else (MaxPool: there is no int8 max pool op) is an error naming the layer.

The input is int8 with the calibrated input range's (scale, zero); float samples are quantized with
it (refexec prepare_input). Geometry and layer names come from lower.py (the fp32 lowering), whose
walk this pass reuses with int8 handlers.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.export.graph_signature import InputKind
from torch.fx import Node

from tinyhost.compiler.capture import Captured
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph
from tinyhost.compiler.import_tiny import ACT_MAX, ACT_MIN, Int8Emitter
from tinyhost.compiler.lower import (
    Lowering,
    _arg,
    _as_chw,
    _shape,
    aten,
    conv_attrs,
    fold_batchnorm,
    layer_name,
    pool_attrs,
)
from tinyhost.dtypes import DType
from tinyhost.ops import Opcode
from tinyhost.plan import TensorKind
from tinyhost.quant import (
    INT32_MAX,
    quantize_activation_params,
    quantize_bias,
    quantize_per_channel_weights,
    round_half_away,
)

# Leaf modules the int8 lowering understands (capture checks them before export runs).
INT8_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.AvgPool1d,
    nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity, nn.Dropout,
    nn.Linear)
INT8_LAYER_NAMES = ", ".join(c.__name__ for c in INT8_LAYERS) + " and residual adds"

BATCH_NORM = (aten.batch_norm.default,)
RELU = (aten.relu.default, aten.relu_.default)
RELU6 = (aten.hardtanh.default, aten.hardtanh_.default, aten.relu6.default)
ADD = (aten.add.Tensor, aten.add_.Tensor)

Range = tuple[float, float]
Quant = tuple[float, int]


# -- calibration ----------------------------------------------------------------------------------
class _RangeRecorder(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.ranges: dict[str, Range] = {}

    def run_node(self, n: Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            lo, hi = float(out.min()), float(out.max())
            if n.name in self.ranges:
                old = self.ranges[n.name]
                lo, hi = min(lo, old[0]), max(hi, old[1])
            self.ranges[n.name] = (lo, hi)
        return out


def calibrate(captured: Captured, samples: np.ndarray) -> dict[str, Range]:
    """The float model on every sample (batch 1, as exported): each node's output (min, max)."""
    ep = captured.program
    consts = getattr(ep, "constants", {})
    shape = tuple(captured.example_input.shape)
    xs = np.asarray(samples, dtype=np.float32)
    if xs.ndim == 0 or xs.shape[0] == 0:
        raise CompileError("quantize: no calibration samples")
    if int(np.prod(xs.shape[1:])) != int(np.prod(shape[1:])):
        raise CompileError(f"quantize: calibration samples have shape {xs.shape[1:]}, the model's "
                           f"input is {shape[1:]}")
    if not np.isfinite(xs).all():
        raise CompileError("quantize: the calibration samples hold NaN or infinite values")
    args: list[Any] = []
    user = -1
    for spec in ep.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            user = len(args)
            args.append(None)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            args.append(ep.state_dict[spec.target] if spec.target in ep.state_dict
                        else consts[spec.target])
        else:
            args.append(consts[spec.target])
    rec = _RangeRecorder(ep.graph_module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one small sample at a time: threads only contend
    try:
        with torch.no_grad():
            for x in xs:
                args[user] = torch.from_numpy(np.ascontiguousarray(x)).reshape(shape)
                rec.run(*args)
    finally:
        torch.set_num_threads(threads)
    return rec.ranges


# -- float arithmetic -----------------------------------------------------------------------------
def activation_range(kind: str, yq: Quant) -> tuple[int, int]:
    """The int8 clamp of a fused activation (TFLite CalculateActivationRangeQuantized)."""
    scale, zero = yq
    if kind == "none":
        return ACT_MIN, ACT_MAX
    lo = max(ACT_MIN, zero)
    hi = ACT_MAX if kind == "relu" else min(ACT_MAX, zero + round_half_away(6.0 / scale))
    return lo, hi


def _bias_for_int32(b: np.ndarray, w_scales: np.ndarray, x_scale: float) -> np.ndarray:
    """Clips a float bias to what int32 holds in the accumulator's scale: a channel with almost
    zero weights (e.g. a BatchNorm gamma near 0) has a tiny scale and a huge integer bias; its
    output is then a constant, which Int8Emitter.fit_bias checks and marks as a dead channel."""
    lim = (INT32_MAX - 2**8) * w_scales.astype(np.float64) * np.float64(np.float32(x_scale))
    return np.clip(b.astype(np.float64), -lim, lim)


# -- the pass -------------------------------------------------------------------------------------
def _module_path(node: Node) -> str:
    """The layer's module path (e.g. `features.3.conv`), for parameter names."""
    stack = node.meta.get("nn_module_stack")
    if stack:
        path = list(stack.values())[-1][0]
        if path:
            return str(path)
    return node.name


def _sole_user(node: Node) -> Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


class Quantizer(Lowering):
    """The fp32 lowering's walk over the exported graph, with int8 handlers."""

    def __init__(self, captured: Captured, ranges: dict[str, Range]) -> None:
        super().__init__(captured)
        self.ranges = ranges
        self.emit = Int8Emitter(self.graph, "quantize")
        self.consts: dict[Node, np.ndarray] = {}
        self.quant: dict[int, Quant] = {}      # int8 tensor -> (scale, zero)
        self.fused: dict[Node, int] = {}       # BN/activation nodes folded into a conv or add
        self.used_names: set[str] = set()
        self.handlers.update({
            aten.max_pool1d.default: self.unsupported, aten.max_pool2d.default: self.unsupported,
            **{t: self.batch_norm for t in BATCH_NORM},
            **{t: self.activation_alone for t in RELU + RELU6},
            **{t: self.add for t in ADD},
        })

    # -- graph inputs -------------------------------------------------------------------------
    def placeholder(self, node: Node, sig: Any, state: dict[str, Any],
                    consts: dict[str, Any]) -> None:
        name = node.target
        if name in sig.inputs_to_parameters or name in sig.inputs_to_buffers:
            key = sig.inputs_to_parameters.get(name) or sig.inputs_to_buffers[name]
            self.consts[node] = state[key].detach().to(torch.float32).contiguous().numpy().copy()
        elif name in sig.user_inputs:
            if self.graph.input != -1:
                raise CompileError("quantize: the model must take exactly one input tensor")
            g = self.graph
            g.input = g.add_tensor("input", _as_chw(_shape(node)), TensorKind.INPUT, DType.S8)
            q = self.out_quant(node)
            g.input_quant = (float(np.float32(q[0])), q[1])
            self.quant[g.input] = q
            self.env[node] = g.input
        else:
            raise CompileError(f"quantize: unsupported graph input {name}")

    def const(self, node: Any, what: str, user: Node) -> np.ndarray | None:
        if node is None:
            return None
        if node not in self.consts:
            raise CompileError(f"quantize: {layer_name(user)}: the {what} must be a parameter")
        return self.consts[node]

    def call(self, node: Node) -> int:
        if node in self.fused:
            return self.fused[node]
        return super().call(node)

    # -- helpers ------------------------------------------------------------------------------
    def out_quant(self, node: Node) -> Quant:
        if node.name not in self.ranges:
            raise CompileError(f"quantize: {layer_name(node)}: no calibrated range")
        lo, hi = self.ranges[node.name]
        scale, zero = quantize_activation_params(lo, hi)
        return float(scale), zero

    def int8(self, node: Any, user: Node) -> tuple[int, Quant]:
        t = self.value(node)
        if t not in self.quant:
            raise CompileError(f"quantize: {layer_name(user)} reads a float tensor; only the "
                               "final Linear (the fp32 head) may follow the int8 backbone")
        return t, self.quant[t]

    def layer(self, node: Node, suffix: str = "") -> str:
        """A unique parameter-name prefix for the layer (a module called twice gets .1, .2)."""
        base = _module_path(node) + suffix
        name, i = base, 1
        while name in self.used_names:
            name, i = f"{base}.{i}", i + 1
        self.used_names.add(name)
        return name

    def fuse_activation(self, node: Node) -> tuple[Node, str]:
        """The ReLU/ReLU6 that is `node`'s only reader, folded: (last node, kind)."""
        nxt = _sole_user(node)
        if nxt is None or nxt.op != "call_function":
            return node, "none"
        if nxt.target in RELU:
            return nxt, "relu"
        if nxt.target is aten.relu6.default or (
                nxt.target in RELU6
                and (float(_arg(nxt, 1, -1.0)), float(_arg(nxt, 2, 1.0))) == (0.0, 6.0)):
            return nxt, "relu6"
        return node, "none"

    def finish(self, chain: list[Node], y: int, yq: Quant) -> int:
        for n in chain[1:]:
            self.fused[n] = y
        self.quant[y] = yq
        return y

    # -- ops ----------------------------------------------------------------------------------
    def conv(self, node: Node) -> int:
        x, xq = self.int8(node.args[0], node)
        w = self.const(node.args[1], "weight", node)
        b = self.const(_arg(node, 2), "bias", node)
        assert w is not None
        a = conv_attrs(node, w.shape)
        chain = [node]
        bn = _sole_user(node)
        if bn is not None and bn.op == "call_function" and bn.target in BATCH_NORM:
            w, b = self.fold(bn, w, b)
            chain.append(bn)
        last, kind = self.fuse_activation(chain[-1])
        if last is not chain[-1]:
            chain.append(last)
        yq = self.out_quant(chain[-1])
        w4 = w.reshape(a["out_c"], -1, a["k_h"], a["k_w"])  # O x I/g x KH x KW (Conv1d: KH = 1)
        wq, w_scales = quantize_per_channel_weights(np.ascontiguousarray(w4, np.float32))
        bq = None if b is None else quantize_bias(_bias_for_int32(b, w_scales, xq[0]), w_scales,
                                                  xq[0])
        y = self.emit.conv(self.layer(node), x, wq, bq, w_scales, xq, yq,
                           (a["stride_h"], a["stride_w"]), (a["pad_h"], a["pad_w"]), a["groups"],
                           activation_range(kind, yq))
        want = (a["out_c"], a["out_h"], a["out_w"])
        if self.graph.tensors[y].shape != want:
            raise CompileError(f"quantize: {layer_name(node)}: output {self.graph.tensors[y].shape}"
                               f" differs from the model's {want}")
        return self.finish(chain, y, yq)

    def fold(self, bn: Node, w: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if _arg(bn, 5, False):
            raise CompileError(f"quantize: {layer_name(bn)} is in training mode; call "
                               "model.eval() (capture does) so its running statistics are used")
        gamma = self.const(_arg(bn, 1), "BatchNorm weight", bn)
        beta = self.const(_arg(bn, 2), "BatchNorm bias", bn)
        mean = self.const(_arg(bn, 3), "running mean", bn)
        var = self.const(_arg(bn, 4), "running variance", bn)
        eps = float(_arg(bn, 7, 1e-5))
        if mean is None or var is None:
            raise CompileError(f"quantize: {layer_name(bn)} has no running statistics")
        return fold_batchnorm(w, b, gamma, beta, mean, var, eps)

    def batch_norm(self, node: Node) -> int:
        raise CompileError(f"quantize: {layer_name(node)}: a BatchNorm is supported only as the "
                           "only reader of a conv's output (it is folded into the conv)")

    def activation_alone(self, node: Node) -> int:
        raise CompileError(f"quantize: {layer_name(node)}: a ReLU/ReLU6 is supported only right "
                           "after a conv (with its BatchNorm) or a residual add, as their clamp "
                           "(ReLU6 as hardtanh(0, 6))")

    def unsupported(self, node: Node) -> int:
        raise CompileError(f"quantize: unsupported layer {layer_name(node)} ({node.target}): int8 "
                           "graphs have no "
                           f"max pool; use a strided conv or an average pool. Supported: "
                           f"{INT8_LAYER_NAMES}")

    def add(self, node: Node) -> int:
        if node.kwargs.get("alpha", 1) != 1 or len(node.args) != 2:
            raise CompileError(f"quantize: {layer_name(node)}: only a plain a + b is supported")
        x1, q1 = self.int8(node.args[0], node)
        x2, q2 = self.int8(node.args[1], node)
        if x1 == x2:
            raise CompileError(f"quantize: {layer_name(node)} adds a tensor to itself")
        last, kind = self.fuse_activation(node)
        yq = self.out_quant(last)
        name = self.layer(node, ".add" if node.meta.get("nn_module_stack") else "")
        y = self.emit.add(name, x1, q1, x2, q2, yq, activation_range(kind, yq))
        return self.finish([node] if last is node else [node, last], y, yq)

    def _pool(self, node: Node, opcode: Opcode, k: tuple[int, int], stride: tuple[int, int],
              pad: tuple[int, int]) -> int:
        if opcode != Opcode.AVGPOOL2D_F32:
            return self.unsupported(node)
        x, xq = self.int8(node.args[0], node)
        y = self.emit.avgpool(self.layer(node), x, pool_attrs(node, k, stride, pad), xq[1])
        self.quant[y] = xq
        return y

    def linear(self, node: Node) -> int:
        x, xq = self.int8(node.args[0], node)
        w = self.const(node.args[1], "weight", node)
        b = self.const(_arg(node, 2), "bias", node)
        assert w is not None
        if any(u.op != "output" for u in node.users):
            raise CompileError(f"quantize: {layer_name(node)}: only the model's last layer may be "
                               "a Linear (it stays the fp32 head); its output must be the logits")
        return self.emit.head(x, xq, w, b, self.layer(node))

    def run(self) -> Graph:
        g = super().run()
        if not g.ops or g.ops[-1].opcode != Opcode.LINEAR_F32 or g.ops[-1].outputs[0] != g.logits:
            raise CompileError("quantize: the model must end in a Linear layer (kept as the fp32 "
                               "head on the int8 backbone)")
        if not g.conv_ops:
            raise CompileError("quantize: the model has no conv layers to quantize")
        return g


def quantize(captured: Captured, samples: np.ndarray) -> Graph:
    """The captured float model, calibrated on `samples` (float, one per row, shaped like the
    example input without its batch dimension) -> the int8 forward graph with an fp32 head."""
    ranges = calibrate(captured, samples)
    if not all(math.isfinite(v) for r in ranges.values() for v in r):
        raise CompileError("quantize: the float model produced NaN or infinite activations on "
                           "the calibration samples")
    return Quantizer(captured, ranges).run()
