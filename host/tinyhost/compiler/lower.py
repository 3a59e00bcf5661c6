"""Pass 2, lower: the ATen graph of a torch.export program -> IR forward ops.

Batch 1: the leading (batch) dimension of every activation is dropped. Conv1d and the 1-d pools run
as their 2-d forms with H = 1. Shape-only ops (flatten, view, squeeze, ...) alias their input: the
data order of a contiguous batch-1 tensor does not change, so they cost nothing on the device.
Dropout is an alias too (the inference form: the identity). A BatchNorm is folded into the Conv or
Linear right before it with its running statistics, which are then frozen (the device has no
BatchNorm op; the plan's meta lists each fold). Activations other than ReLU are one op (ACT_F32,
its function an attribute); residual adds are ADD_F32; channel concatenation is CONCAT_F32 (batch
1, C x H x W: the buffers one after the other); global max pooling is a max pool over the whole
plane.
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.fx import Node

from tinyhost.compiler.capture import SUPPORTED_NAMES, Captured
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph, IROp
from tinyhost.ops import ActFunc, Opcode
from tinyhost.plan import NONE, TensorKind

aten = torch.ops.aten

ALIAS_OPS = {aten.flatten.using_ints, aten.view.default, aten.reshape.default,
             aten._unsafe_view.default, aten.squeeze.dim, aten.squeeze.dims,
             aten.squeeze.default, aten.unsqueeze.default, aten.contiguous.default,
             aten.dropout.default, aten.clone.default, aten.alias.default}


def layer_name(node: Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, cls = list(stack.values())[-1]
        cls_name = cls if isinstance(cls, str) else cls.__name__
        return f"{path or '<root>'} ({cls_name.rpartition('.')[2]})"
    return node.name


def _shape(node: object) -> tuple[int, ...]:
    """The shape of a node's tensor without its batch dimension."""
    if not isinstance(node, Node):
        raise CompileError(f"lower: expected a tensor operand, got {node!r}")
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)) and val:  # (values, indices) of a max pool
        val = val[0]
    if not isinstance(val, torch.Tensor):
        raise CompileError(f"lower: node {node.name} has no tensor shape")
    if val.dim() < 2:
        raise CompileError(f"lower: {layer_name(node)} produces a {val.dim()}-d tensor; "
                           "expected a leading batch dimension")
    return tuple(int(s) for s in val.shape[1:])


def _pair(v: Any, n: int, default: int) -> tuple[int, ...]:
    if v is None or (isinstance(v, Sequence) and len(v) == 0):
        return (default,) * n
    if isinstance(v, int):
        return (v,) * n
    t = tuple(int(x) for x in v)
    return t * n if len(t) == 1 else t


def _as_chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 2:      # (C, L): a 1-d signal
        return shape[0], 1, shape[1]
    if len(shape) == 3:
        return shape
    raise CompileError(f"lower: expected a (C, L) or (C, H, W) activation, got shape {shape}")


def _arg(node: Node, i: int, default: Any = None) -> Any:
    return node.args[i] if len(node.args) > i else default


def conv_attrs(node: Node, wshape: tuple[int, ...]) -> dict[str, int]:
    """The conv geometry (ops.CONV_ATTRS by name) of an aten conv1d/conv2d node with a weight of
    shape `wshape` (Conv1d as the 2-d conv with H = 1)."""
    two_d = node.target in (aten.conv2d.default, aten.conv2d.padding)
    n = 2 if two_d else 1
    k = (wshape[2], wshape[3]) if two_d else (1, wshape[2])
    stride = _pair(_arg(node, 3), n, 1)
    padding = _arg(node, 4, 0)
    dilation = _pair(_arg(node, 5), n, 1)
    groups = int(_arg(node, 6, 1))
    if any(d != 1 for d in dilation):
        raise CompileError(f"lower: {layer_name(node)}: dilation {dilation} is not supported")
    if isinstance(padding, str):
        if padding == "valid":
            pad = (0,) * n
        elif all(s == 1 for s in stride) and all(kk % 2 for kk in k[-n:]):
            pad = tuple(kk // 2 for kk in k[-n:])
        else:
            raise CompileError(f"lower: {layer_name(node)}: padding='same' needs odd kernels")
    else:
        pad = _pair(padding, n, 0)
    if not two_d:
        stride, pad = (1, *stride), (0, *pad)
    in_c, in_h, in_w = _as_chw(_shape(node.args[0]))
    out_c, out_h, out_w = _as_chw(_shape(node))
    return {"in_c": in_c, "in_h": in_h, "in_w": in_w, "out_c": out_c, "out_h": out_h,
            "out_w": out_w, "k_h": k[0], "k_w": k[1], "stride_h": stride[0],
            "stride_w": stride[1], "pad_h": pad[0], "pad_w": pad[1], "groups": groups}


def pool_attrs(node: Node, k: tuple[int, int], stride: tuple[int, int],
               pad: tuple[int, int]) -> dict[str, int]:
    """The pool geometry (ops.POOL_ATTRS by name) of a pooling node (the 1-d pools as 2-d with
    H = 1)."""
    c, in_h, in_w = _as_chw(_shape(node.args[0]))
    y_shape = _shape(node)
    out_h, out_w = (1, 1) if len(y_shape) == 1 else _as_chw(y_shape)[1:]
    return {"c": c, "in_h": in_h, "in_w": in_w, "out_h": out_h, "out_w": out_w, "k_h": k[0],
            "k_w": k[1], "stride_h": stride[0], "stride_w": stride[1], "pad_h": pad[0],
            "pad_w": pad[1]}


def fold_batchnorm(w: np.ndarray, b: np.ndarray | None, gamma: np.ndarray | None,
                   beta: np.ndarray | None, mean: np.ndarray, var: np.ndarray,
                   eps: float) -> tuple[np.ndarray, np.ndarray]:
    """A conv's (weight, bias) with the inference BatchNorm after it folded in (double, returned
    as float32): bn(conv(x)) = conv'(x)."""
    out_c = w.shape[0]
    g = np.ones(out_c) if gamma is None else gamma.astype(np.float64)
    s = g / np.sqrt(var.astype(np.float64) + eps)
    b0 = np.zeros(out_c) if b is None else b.astype(np.float64)
    beta64 = np.zeros(out_c) if beta is None else beta.astype(np.float64)
    wf = w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))
    bf = (b0 - mean.astype(np.float64)) * s + beta64
    return wf.astype(np.float32), bf.astype(np.float32)



# aten activations -> ActFunc (ReLU6 is hardtanh(0, 6) after export).
ACTIVATIONS: dict[Any, ActFunc] = {
    aten.hardtanh.default: ActFunc.RELU6, aten.hardtanh_.default: ActFunc.RELU6,
    aten.relu6.default: ActFunc.RELU6,
    aten.leaky_relu.default: ActFunc.LEAKY_RELU, aten.leaky_relu_.default: ActFunc.LEAKY_RELU,
    aten.sigmoid.default: ActFunc.SIGMOID, aten.sigmoid_.default: ActFunc.SIGMOID,
    aten.tanh.default: ActFunc.TANH, aten.tanh_.default: ActFunc.TANH,
    aten.hardswish.default: ActFunc.HARDSWISH, aten.hardswish_.default: ActFunc.HARDSWISH,
}


class Lowering:
    def __init__(self, captured: Captured) -> None:
        self.ep = captured.program
        self.graph = Graph()
        self.env: dict[Node, int] = {}
        self.handlers: dict[Any, Callable[[Node], int]] = {
            aten.linear.default: self.linear,
            aten.conv1d.default: self.conv, aten.conv2d.default: self.conv,
            aten.conv1d.padding: self.conv, aten.conv2d.padding: self.conv,
            aten.relu.default: self.relu, aten.relu_.default: self.relu,
            aten.max_pool1d.default: self.maxpool, aten.max_pool2d.default: self.maxpool,
            aten.avg_pool1d.default: self.avgpool, aten.avg_pool2d.default: self.avgpool,
            aten.adaptive_avg_pool1d.default: self.adaptive_avgpool,
            aten.adaptive_avg_pool2d.default: self.adaptive_avgpool,
            aten.mean.dim: self.mean,
            aten.batch_norm.default: self.batch_norm,
            aten.add.Tensor: self.add, aten.add_.Tensor: self.add,
            aten.cat.default: self.cat, aten.concat.default: self.cat,
            aten.adaptive_max_pool1d.default: self.adaptive_maxpool,
            aten.adaptive_max_pool2d.default: self.adaptive_maxpool,
            aten.amax.default: self.amax,
            aten.pad.default: self.pad, aten.constant_pad_nd.default: self.pad,
            aten.slice.Tensor: self.slice,
            **{t: self.activation_fn for t in ACTIVATIONS},
        }
        self.buffers: dict[Node, np.ndarray] = {}  # BatchNorm running statistics
        self.producer: dict[int, IROp] = {}        # activation -> the op that wrote it
        self.dropouts: list[str] = []

    # -- graph walk -------------------------------------------------------------------------
    def run(self) -> Graph:
        sig = self.ep.graph_signature
        state = self.ep.state_dict
        consts = getattr(self.ep, "constants", {})
        outputs: list[Node] = []
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                self.placeholder(node, sig, state, consts)
            elif node.op == "call_function":
                self.env[node] = self.call(node)
            elif node.op == "output":
                outputs = [a for a in node.args[0] if isinstance(a, Node)]
        if len(outputs) != 1:
            raise CompileError(f"lower: the model must return one tensor (the logits), "
                               f"it returns {len(outputs)}")
        logits = self.env[outputs[0]]
        shape = _shape(outputs[0])
        if len(shape) != 1:
            raise CompileError(f"lower: the model output must be (batch, classes), got "
                               f"(batch, {', '.join(map(str, shape))})")
        self.graph.logits = logits
        self.graph.num_classes = shape[0]
        self.graph.n_forward = len(self.graph.ops)
        if self.graph.n_forward == 0:
            raise CompileError("lower: the model has no operations")
        if self.dropouts:
            self.graph.notes.append(f"Dropout ({', '.join(self.dropouts)}) is the identity on "
                                    "the device (inference form; no random masks)")
        self.drop_unused_parameters()
        return self.graph

    def drop_unused_parameters(self) -> None:
        """Parameters no op reads (a folded BatchNorm's weight and bias) leave the plan."""
        used = {t for op in self.graph.ops for t in op.inputs}
        self.graph.remove_tensors({i for i, t in enumerate(self.graph.tensors)
                                   if t.kind == TensorKind.PARAM_FROZEN and i not in used})

    def placeholder(self, node: Node, sig: Any, state: dict[str, Any],
                    consts: dict[str, Any]) -> None:
        name = node.target
        if name in sig.inputs_to_parameters:
            key = sig.inputs_to_parameters[name]
            data = state[key].detach().to(torch.float32).contiguous().numpy().copy()
            self.env[node] = self.graph.add_tensor(key, data.shape, TensorKind.PARAM_FROZEN,
                                                   data=data)
        elif name in sig.inputs_to_buffers:  # read only by batch_norm, which folds them
            key = sig.inputs_to_buffers[name]
            self.buffers[node] = state[key].detach().to(torch.float32).numpy().copy() \
                if key in state else np.asarray(consts[key], np.float32)
        elif name in sig.user_inputs:
            if self.graph.input != -1:
                raise CompileError("lower: the model must take exactly one input tensor")
            self.graph.input = self.graph.add_tensor("input", _shape(node), TensorKind.INPUT)
            self.env[node] = self.graph.input
        else:
            raise CompileError(f"lower: unsupported graph input {name}")

    def call(self, node: Node) -> int:
        if node.target is aten.dropout.default:
            self.dropouts.append(layer_name(node).partition(" ")[0])
        if node.target in ALIAS_OPS or node.target is operator.getitem:
            return self.alias(node)
        handler = self.handlers.get(node.target)
        if handler is None:
            raise CompileError(f"lower: unsupported op {node.target} in {layer_name(node)}; "
                               f"supported layers: {SUPPORTED_NAMES}")
        return handler(node)

    # -- helpers ----------------------------------------------------------------------------
    def value(self, node: Any) -> int:
        if isinstance(node, Node) and node in self.buffers:
            raise CompileError(f"lower: buffer {node.name} is read by an op other than a "
                               "BatchNorm; fp32 plans support only BatchNorm's running "
                               "statistics (folded into the layer before it)")
        if not isinstance(node, Node) or node not in self.env:
            raise CompileError(f"lower: unsupported operand {node!r}")
        return self.env[node]

    def activation(self, node: Node) -> int:
        return self.graph.add_tensor(node.name, _shape(node), TensorKind.ACTIVATION)

    def param(self, node: Any, what: str, user: Node) -> int:
        if node is None:
            return -1
        t = self.value(node)
        if self.graph.tensors[t].kind != TensorKind.PARAM_FROZEN:
            raise CompileError(f"lower: {layer_name(user)}: the {what} must be a parameter")
        return t

    def add_op(self, opcode: Opcode, inputs: list[int], outputs: list[int],
               attrs: dict[str, int], node: Node) -> int:
        """Appends a forward op writing outputs[0] (remembered as its producer); returns it."""
        op = self.graph.add_op(opcode, inputs, outputs, attrs, layer_name(node))
        self.producer[outputs[0]] = op
        return outputs[0]

    def alias(self, node: Node) -> int:
        src = node.args[0]
        if node.target is operator.getitem:  # (values, indices) of an adaptive max pool
            if isinstance(src, Node) and src.target in (aten.adaptive_max_pool1d.default,
                                                        aten.adaptive_max_pool2d.default):
                if node.args[1] == 0:
                    return self.value(src)
                if not node.users:
                    return NONE  # the indices, unused
            raise CompileError(f"lower: unsupported multi-output op feeding {node.name} "
                               "(pooling indices are not supported)")
        return self.value(src)

    # -- ops --------------------------------------------------------------------------------
    def linear(self, node: Node) -> int:
        x = self.value(node.args[0])
        w = self.param(node.args[1], "weight", node)
        b = self.param(_arg(node, 2), "bias", node)
        out_f, in_f = self.graph.tensors[w].shape
        x_shape = _shape(node.args[0])
        if x_shape != (in_f,):
            raise CompileError(f"lower: {layer_name(node)} takes a flat input of {in_f} features, "
                               f"got shape {x_shape}; add nn.Flatten()")
        y = self.activation(node)
        return self.add_op(Opcode.LINEAR_F32, [x, w, b], [y],
                           {"in_features": in_f, "out_features": out_f}, node)

    def conv(self, node: Node) -> int:
        x = self.value(node.args[0])
        w = self.param(node.args[1], "weight", node)
        b = self.param(_arg(node, 2), "bias", node)
        attrs = conv_attrs(node, self.graph.tensors[w].shape)
        y = self.activation(node)
        return self.add_op(Opcode.CONV2D_F32, [x, w, b], [y], attrs, node)

    def relu(self, node: Node) -> int:
        x = self.value(node.args[0])
        y = self.activation(node)
        size = int(np.prod(self.graph.tensors[y].shape))
        self.graph.add_op(Opcode.RELU_F32, [x], [y], {"size": size}, layer_name(node))
        return y

    def _pool(self, node: Node, opcode: Opcode, k: tuple[int, int], stride: tuple[int, int],
              pad: tuple[int, int]) -> int:
        x = self.value(node.args[0])
        y = self.activation(node)
        return self.add_op(opcode, [x], [y], pool_attrs(node, k, stride, pad), node)

    def _pool_geometry(self, node: Node, two_d: bool) -> tuple[tuple[int, int], ...]:
        n = 2 if two_d else 1
        k = _pair(node.args[1], n, 1)
        stride = _pair(_arg(node, 2), n, 0)
        if not _arg(node, 2):
            stride = k
        pad = _pair(_arg(node, 3, 0), n, 0)
        if not two_d:
            k, stride, pad = (1, *k), (1, *stride), (0, *pad)
        return k, stride, pad  # type: ignore[return-value]

    def maxpool(self, node: Node) -> int:
        two_d = node.target is aten.max_pool2d.default
        dilation = _pair(_arg(node, 4), 2 if two_d else 1, 1)
        if any(d != 1 for d in dilation) or _arg(node, 5, False):
            raise CompileError(f"lower: {layer_name(node)}: dilation and ceil_mode are not "
                               "supported")
        return self._pool(node, Opcode.MAXPOOL2D_F32, *self._pool_geometry(node, two_d))

    def avgpool(self, node: Node) -> int:
        two_d = node.target is aten.avg_pool2d.default
        k, stride, pad = self._pool_geometry(node, two_d)
        if _arg(node, 4, False) or (not _arg(node, 5, True) and any(pad)) or _arg(node, 6):
            raise CompileError(f"lower: {layer_name(node)}: ceil_mode, count_include_pad=False "
                               "with padding and divisor_override are not supported")
        return self._pool(node, Opcode.AVGPOOL2D_F32, k, stride, pad)

    def _global_pool(self, node: Node, out_hw: tuple[int, int],
                     opcode: Opcode = Opcode.AVGPOOL2D_F32) -> int:
        _, in_h, in_w = _as_chw(_shape(node.args[0]))
        if in_h % out_hw[0] or in_w % out_hw[1]:
            raise CompileError(f"lower: {layer_name(node)}: adaptive pooling from {in_h}x{in_w} "
                               f"to {out_hw[0]}x{out_hw[1]} needs an integer ratio")
        k = (in_h // out_hw[0], in_w // out_hw[1])
        return self._pool(node, opcode, k, k, (0, 0))

    def adaptive_avgpool(self, node: Node) -> int:
        two_d = node.target is aten.adaptive_avg_pool2d.default
        out = _pair(node.args[1], 2 if two_d else 1, 1)
        return self._global_pool(node, (out[0], out[1]) if two_d else (1, out[0]))

    def mean(self, node: Node) -> int:
        rank = len(_shape(node.args[0])) + 1  # with batch
        dims_arg = node.args[1]
        ints = [d for d in dims_arg if isinstance(d, int)] \
            if isinstance(dims_arg, (list, tuple)) else []
        if not isinstance(dims_arg, (list, tuple)) or len(ints) != len(dims_arg):
            raise CompileError(f"lower: {layer_name(node)}: mean over dimensions {dims_arg!r}")
        dims = sorted(d % rank for d in ints)
        if dims != list(range(2, rank)):
            raise CompileError(f"lower: {layer_name(node)}: mean is supported only over all "
                               "spatial dimensions (global average pooling)")
        return self._global_pool(node, (1, 1))


    # -- issue 15: BatchNorm, activations, residual adds, concatenation, global max pooling ----
    def batch_norm(self, node: Node) -> int:
        """Folded into the Conv/Linear whose output it alone reads: frozen statistics."""
        src = node.args[0]
        x = self.value(src)
        prod = self.producer.get(x)
        if (prod is None or prod.opcode not in (Opcode.CONV2D_F32, Opcode.LINEAR_F32)
                or not isinstance(src, Node) or len(src.users) != 1):
            raise CompileError(f"lower: {layer_name(node)}: a BatchNorm is supported only right "
                               "after a Conv or Linear layer whose output nothing else reads "
                               "(it is folded into that layer)")
        if _arg(node, 5, False):
            raise CompileError(f"lower: {layer_name(node)} is in training mode; its running "
                               "statistics are needed (capture calls model.eval())")
        w, b = prod.inputs[1], prod.inputs[2]
        if sum(w in op.inputs for op in self.graph.ops) != 1:
            raise CompileError(f"lower: {layer_name(node)}: the layer before it is used more "
                               "than once, so its BatchNorm cannot be folded into it")
        gamma, beta = (None if _arg(node, i) is None else
                       self.graph.tensors[self.param(_arg(node, i), "scale", node)].array()
                       for i in (1, 2))
        mean, var = (self.buffers.get(_arg(node, i)) for i in (3, 4))
        if mean is None or var is None:
            raise CompileError(f"lower: {layer_name(node)} has no running statistics "
                               "(track_running_stats=False is not supported)")
        eps = float(_arg(node, 7, 1e-5))
        wt = self.graph.tensors[w]
        wf, bf = fold_batchnorm(wt.array(), None if b == NONE else
                                self.graph.tensors[b].array(), gamma, beta, mean, var, eps)
        wt.data = wf
        layer = wt.name.rpartition(".")[0]
        if b == NONE:
            prod.inputs[2] = self.graph.add_tensor(f"{layer}.bias", bf.shape,
                                                   TensorKind.PARAM_FROZEN, data=bf)
        else:
            self.graph.tensors[b].data = bf
        bn = layer_name(node).partition(" ")[0]
        self.graph.batchnorm_folds.append({"bn": bn, "layer": layer, "eps": eps,
                                           "layer_bias": b != NONE, "affine": gamma is not None})
        self.graph.notes.append(f"BatchNorm {bn} folded into {layer} with its running "
                                "statistics (frozen: not updated on the device)")
        return x

    def activation_fn(self, node: Node) -> int:
        func = ACTIVATIONS[node.target]
        x = self.value(node.args[0])
        inputs = [x, NONE]
        if node.target in (aten.hardtanh.default, aten.hardtanh_.default):
            bounds = (float(_arg(node, 1, -1.0)), float(_arg(node, 2, 1.0)))
            if bounds != (0.0, 6.0):
                raise CompileError(f"lower: {layer_name(node)}: Hardtanh{bounds} is not "
                                   "supported; only ReLU6 (hardtanh(0, 6))")
        if func == ActFunc.LEAKY_RELU:
            slope = np.array([_arg(node, 1, 0.01)], np.float32)
            inputs[1] = self.graph.add_tensor(f"const:{node.name}.negative_slope", (1,),
                                              TensorKind.PARAM_FROZEN, data=slope)
        y = self.activation(node)
        size = int(np.prod(self.graph.tensors[y].shape))
        return self.add_op(Opcode.ACT_F32, inputs, [y], {"size": size, "func": int(func)}, node)

    def add(self, node: Node) -> int:
        a, b = node.args[0], node.args[1]
        if not (isinstance(a, Node) and isinstance(b, Node)) or node.kwargs.get("alpha", 1) != 1:
            raise CompileError(f"lower: {layer_name(node)}: only the sum of two tensors is "
                               "supported (a residual add), not a constant or alpha")
        if _shape(a) != _shape(b):
            raise CompileError(f"lower: {layer_name(node)}: adding shapes {_shape(a)} and "
                               f"{_shape(b)}; broadcasting is not supported")
        y = self.activation(node)
        size = int(np.prod(self.graph.tensors[y].shape))
        return self.add_op(Opcode.ADD_F32, [self.value(a), self.value(b)], [y], {"size": size},
                           node)

    def cat(self, node: Node) -> int:
        """Over channels (dim 1) only: then, batch 1, it is the buffers one after another. More
        than two inputs: a chain of two-input concatenations."""
        arg0 = node.args[0]
        parts = list(arg0) if isinstance(arg0, (list, tuple)) else [arg0]
        rank = len(_shape(node)) + 1
        if int(_arg(node, 1, 0)) % rank != 1:
            raise CompileError(f"lower: {layer_name(node)}: torch.cat over dim {_arg(node, 1, 0)}"
                               "; only channel concatenation (dim 1) is supported")
        if len(parts) == 1:
            return self.value(parts[0])
        acc = self.value(parts[0])
        for k, part in enumerate(parts[1:], start=2):
            b = self.value(part)
            sa = int(np.prod(self.graph.tensors[acc].shape))
            sb = int(np.prod(self.graph.tensors[b].shape))
            if k == len(parts):
                y = self.activation(node)
            else:  # an intermediate of the chain
                shape = self.graph.tensors[acc].shape
                cs = self.graph.tensors[b].shape
                y = self.graph.add_tensor(f"{node.name}.{k}", (shape[0] + cs[0], *shape[1:]),
                                          TensorKind.ACTIVATION)
            acc = self.add_op(Opcode.CONCAT_F32, [acc, b], [y], {"size_a": sa, "size_b": sb},
                              node)
        return acc

    def adaptive_maxpool(self, node: Node) -> int:
        two_d = node.target is aten.adaptive_max_pool2d.default
        out = _pair(node.args[1], 2 if two_d else 1, 1)
        return self._global_pool(node, (out[0], out[1]) if two_d else (1, out[0]),
                                 Opcode.MAXPOOL2D_F32)

    def amax(self, node: Node) -> int:
        """torch.amax over all spatial dimensions: global max pooling."""
        rank = len(_shape(node.args[0])) + 1
        dims = sorted(int(d) % rank for d in _arg(node, 1, []))
        if dims != list(range(2, rank)):
            raise CompileError(f"lower: {layer_name(node)}: amax is supported only over all "
                               "spatial dimensions (global max pooling)")
        return self._global_pool(node, (1, 1), Opcode.MAXPOOL2D_F32)


    # -- causal Conv1d: zero padding and cropping along the last axis ---------------------------
    def _pad_w(self, node: Node, src: Any, left: int, right: int) -> int:
        """PAD_W_F32: `left` zeros before each row (negative: crop), `right` after."""
        shape = _shape(src)
        in_w, rows = shape[-1], int(np.prod(shape[:-1]))
        out_w = in_w + left + right
        if out_w <= 0:
            raise CompileError(f"lower: {layer_name(node)}: nothing left of {in_w} values")
        y = self.activation(node)
        return self.add_op(Opcode.PAD_W_F32, [self.value(src)], [y],
                           {"rows": rows, "in_w": in_w, "out_w": out_w, "skip": max(-left, 0),
                            "lead": max(left, 0)}, node)

    def pad(self, node: Node) -> int:
        """F.pad(x, (left, right)) with zeros: the causal Conv1d's left padding."""
        arg = node.args[1]
        ints = [v for v in arg if isinstance(v, int)] if isinstance(arg, (list, tuple)) else []
        pads = ints if isinstance(arg, (list, tuple)) and len(ints) == len(arg) else []
        if node.target is aten.pad.default:
            mode, value = _arg(node, 2, "constant"), _arg(node, 3, None)
        else:
            mode, value = "constant", _arg(node, 2, 0)
        if mode != "constant" or value not in (None, 0, 0.0) or len(pads) < 2 or any(pads[2:]):
            raise CompileError(f"lower: {layer_name(node)}: only zero padding of the last axis "
                               f"is supported (F.pad(x, (left, right))), not {pads} {mode}")
        return self._pad_w(node, node.args[0], pads[0], pads[1])

    def slice(self, node: Node) -> int:
        """x[..., a:b] (step 1) along the last axis: the causal Conv1d's crop; the whole batch
        axis is an alias."""
        src = node.args[0]
        full = (1, *_shape(src))
        dim = int(_arg(node, 1, 0)) % len(full)
        start, end, step = slice(_arg(node, 2), _arg(node, 3), _arg(node, 4, 1)).indices(full[dim])
        if step == 1 and start == 0 and end == full[dim]:
            return self.value(src)
        if step != 1 or dim != len(full) - 1 or end <= start:
            raise CompileError(f"lower: {layer_name(node)}: slicing is supported only along the "
                               "last axis with step 1 (e.g. a causal conv's x[..., :-pad])")
        return self._pad_w(node, src, -start, end - full[dim])


def lower(captured: Captured) -> Graph:
    return Lowering(captured).run()
