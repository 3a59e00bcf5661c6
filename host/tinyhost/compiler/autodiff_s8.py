"""Pass 3 for int8 graphs, autodiff: what trains (a sparse-update scheme), the loss, the fp32
backward of the quantized graph and the QAS updates (docs/int8.md).

As the fp32 autodiff: backward ops exist only where a trainable parameter needs them, gradients
flow back from the loss only as far as the earliest trainable layer, and each update follows its
gradient right away (the paper's operator reordering) unless `reorder` is off (then every update
runs after the whole backward pass, as a framework without reordering does; for measurements).

Per conv in the backward pass (gradient dy of its int8 output y):
  REQUANT_GRAD_F32 (mask, dy, eff_scale) -> dz, in place over dy (the clamp mask and the
      effective scale: dz is the gradient at the int32 accumulator). The mask is the paper's
      (act_min <= pre-clamp value <= act_max), 1 bit per element, written by the forward op;
  CONV2D_S8_GRAD_INPUT_F32 (dz, w) -> dx, if anything before the layer trains, before the update;
  CONV2D_S8_SGD_F32 (dz, x, trained rows, qas) -> the rows updated in place and db, if the
      layer trains weights: each row's gradient made and applied at once (TinyEngine's fused
      gradient and update, docs/int8.md section 10), so no whole weight gradient exists;
      CONV2D_S8_GRAD_WEIGHT_F32 (dz) -> db for a layer that trains only its bias;
  UPDATE_S32_F32 for the bias, with the per-channel QAS scales (ones with qas=False).
A residual add's input gradient (the shortcut) and the conv branch's meet at the block input:
the second contribution is added in place (ADD_F32). Tensors read by the backward (a layer's mask,
a trained layer's int8 input) are kept by the memory plan; nothing else is.

Trainable state lives in the arena: a layer training all its weights has its int8 weight there;
one training some output channels keeps only those rows there (`w_rows`, with the frozen weight
in the plan blob serving the other channels); biases are int32; with the MASTER rule, an f32 copy
of each trained tensor as well. The head is fp32 and trains with SGD_F32.
"""
from __future__ import annotations

import numpy as np

from tinyhost.compiler.autodiff import append_loss, defer_updates, len_of
from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph, IROp
from tinyhost.compiler.sparse import LayerUpdate, Scheme, layer_updates, parse_update
from tinyhost.dtypes import DType
from tinyhost.lr import BACKBONE_LR_SCALE
from tinyhost.ops import CONV_ATTRS, POOL_ATTRS, Opcode, UpdateRule
from tinyhost.plan import TensorKind
from tinyhost.quant import mask_bytes, qas_bias_scale, qas_weight_scale

CONV_S8 = (Opcode.CONV2D_S8, Opcode.DEPTHWISE_CONV2D_S8)


class AutodiffS8:
    def __init__(self, graph: Graph, updates: list[LayerUpdate], qas: bool, rule: UpdateRule,
                 fuse_updates: bool = True, lr_scale: float = 1.0,
                 keep_weight_grads: bool = False) -> None:
        self.g = graph
        self.lr_scale = lr_scale  # the backbone's lr / the head's (one shared f32 constant)
        self.lr_scale_tensor = -1
        self.updates = updates
        self.qas = qas
        self.rule = rule
        self.fuse_updates = fuse_updates  # CONV2D_S8_SGD_F32, not a whole dw + UPDATE_S8_F32
        # whole weight gradients before every update, for the optimizer state (compiler/optim.py):
        # no CONV2D_S8_SGD_F32 nor LINEAR_SGD_F32
        self.keep_weight_grads = keep_weight_grads
        self.grad: dict[int, int] = {}
        self.master: dict[int, int] = {}  # trainable tensor -> its f32 master

    # -- helpers ----------------------------------------------------------------------------
    def const(self, name: str, data: np.ndarray, dtype: DType) -> int:
        return self.g.add_tensor(name, data.shape, TensorKind.PARAM_FROZEN, dtype, data)

    def backbone_lr_scale(self) -> int:
        """The lr_scale operand of every int8 update: one constant, so that `train --backbone-lr`
        rewrites one float of the plan."""
        if self.lr_scale_tensor == -1:
            self.lr_scale_tensor = self.const(BACKBONE_LR_SCALE,
                                              np.array([self.lr_scale], np.float32), DType.F32)
        return self.lr_scale_tensor

    def new_grad(self, of: int, name: str | None = None) -> int:
        return self.g.add_grad(of, name)

    def accumulate(self, x: int, dx: int, source: str) -> None:
        """dx is a gradient contribution to x: the first is x's gradient, later ones add to it."""
        if x not in self.grad:
            self.grad[x] = dx
            return
        acc = self.grad[x]
        self.g.add_op(Opcode.ADD_F32, [acc, dx], [acc], {"size": len_of(self.g, acc)}, source)

    def contribution(self, x: int) -> int:
        """The tensor a gradient op writes its contribution to x into."""
        return self.new_grad(x, None if x not in self.grad else f"grad:{self.g.tensors[x].name}+")

    def mask_of(self, op: IROp) -> int:
        """The forward op's 1-bit clamp mask output, added now that the backward reads it."""
        if op.outputs[1] == -1:
            y = self.g.tensors[op.outputs[0]]
            n = int(np.prod(y.shape))
            op.outputs[1] = self.g.add_tensor(f"{op.source}.mask", (mask_bytes(n),),
                                              TensorKind.ACTIVATION, DType.S8)
        return op.outputs[1]

    def make_trainable(self, t: int, initial_master: np.ndarray) -> None:
        self.g.tensors[t].kind = TensorKind.PARAM_TRAINABLE
        if self.rule == UpdateRule.MASTER:
            name = f"{self.g.tensors[t].name}.master"
            m = self.g.add_tensor(name, initial_master.shape, TensorKind.PARAM_TRAINABLE,
                                  DType.F32, initial_master.astype(np.float32))
            self.master[t] = m

    # -- what trains ------------------------------------------------------------------------
    def mark_trainable(self) -> set[int]:
        g = self.g
        trainable: set[int] = set()
        for k, upd in zip(g.conv_ops, self.updates, strict=True):
            op = g.ops[k]
            x, w, b = op.inputs[:3]
            wt = g.tensors[w]
            if upd.bias:
                if b == -1:
                    raise CompileError(f"autodiff: {op.source} has no bias to train")
                self.make_trainable(b, g.tensors[b].array().astype(np.float32))
                trainable.add(b)
            if not upd.weight:
                continue
            if upd.channels is None:
                self.make_trainable(w, wt.array().astype(np.float32))
                trainable.add(w)
            else:
                rows_data = np.ascontiguousarray(wt.array()[upd.channels])
                rows = g.add_tensor(f"{op.source}.weight_rows", rows_data.shape,
                                    TensorKind.PARAM_FROZEN, DType.S8, rows_data)
                channels = self.const(f"{op.source}.weight_channels", upd.channels.astype(np.int32),
                                      DType.S32)
                op.inputs[5], op.inputs[6] = rows, channels
                op.set_attr("n_rows", len(upd.channels))
                self.make_trainable(rows, rows_data.astype(np.float32))
                trainable.add(rows)
        head = g.ops[g.n_forward - 1]
        if head.opcode != Opcode.LINEAR_F32:
            raise CompileError("autodiff: an int8 graph must end in its fp32 linear head")
        for p in head.inputs[1:]:
            if p != -1:
                g.tensors[p].kind = TensorKind.PARAM_TRAINABLE
                trainable.add(p)
        return trainable

    def needs_grad(self, trainable: set[int]) -> set[int]:
        needs: set[int] = set()
        for op in self.g.ops[:self.g.n_forward]:
            if any(i in needs or i in trainable for i in op.inputs):
                needs.update(o for o in op.outputs if o != -1)
        return needs

    # -- the pass ---------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.g
        trainable = self.mark_trainable()
        needs = self.needs_grad(trainable)
        self.grad[g.logits] = append_loss(g)
        for op in reversed(g.ops[:g.n_forward]):
            y = op.outputs[0]
            if y in self.grad:
                self.backward(op, self.grad[y], needs, trainable)
        return g

    def backward(self, op: IROp, dy: int, needs: set[int], trainable: set[int]) -> None:
        g = self.g
        x = op.inputs[0]
        if op.opcode == Opcode.LINEAR_F32:
            w, b = op.inputs[1], op.inputs[2]
            if x in needs:
                dx = self.contribution(x)
                g.add_op(Opcode.LINEAR_GRAD_INPUT_F32, [dy, w], [dx], op.named_attrs(),
                         op.source)
                self.accumulate(x, dx, op.source)
            if not self.keep_weight_grads:
                # The head's SGD step straight from dy: its weight gradient is never stored.
                g.add_op(Opcode.LINEAR_SGD_F32, [dy, x, w, b], [w, b], op.named_attrs(),
                         op.source)
                return
            dw, db = self.new_grad(w), self.new_grad(b) if b != -1 else -1
            g.add_op(Opcode.LINEAR_GRAD_WEIGHT_F32, [dy, x], [dw, db], op.named_attrs(), op.source)
            for p, dp in ((w, dw), (b, db)):
                if p != -1:
                    g.add_op(Opcode.SGD_F32, [p, dp], [p], {"size": len_of(g, p)}, op.source)
        elif op.opcode == Opcode.DEQUANTIZE_S8_F32:
            if x in needs:
                dx = self.contribution(x)
                g.add_op(Opcode.DEQUANTIZE_GRAD_F32, [dy, op.inputs[1]], [dx],
                         {"size": op.attr("size")}, op.source)
                self.accumulate(x, dx, op.source)
        elif op.opcode == Opcode.AVGPOOL2D_S8:
            if x in needs:
                dx = self.contribution(x)
                g.add_op(Opcode.AVGPOOL2D_GRAD_F32, [dy], [dx], op.named_attrs(POOL_ATTRS),
                         op.source)
                self.accumulate(x, dx, op.source)
        elif op.opcode == Opcode.ADD_S8:
            x1, x2 = op.inputs
            if x1 == x2:
                raise CompileError(f"autodiff: {op.source} adds a tensor to itself")
            size = op.attr("size")
            info = op.info
            scales = self.const(f"{op.source}.scales",
                                np.array([info["s1"], info["s2"], info["sy"]], np.float32),
                                DType.F32)
            d1 = self.contribution(x1) if x1 in needs else -1
            d2 = self.contribution(x2) if x2 in needs else -1
            if d1 == -1 and d2 == -1:
                return
            g.add_op(Opcode.ADD_S8_GRAD_F32, [self.mask_of(op), dy, scales], [d1, d2],
                     {"size": size}, op.source)
            for xi, di in ((x1, d1), (x2, d2)):
                if di != -1:
                    self.accumulate(xi, di, op.source)
        elif op.opcode in CONV_S8:
            self.conv_backward(op, dy, needs, trainable)
        else:
            raise CompileError(f"autodiff: no gradient rule for {op.opcode.name}")

    def conv_backward(self, op: IROp, dy: int, needs: set[int], trainable: set[int]) -> None:
        g = self.g
        _, w, b, _, _, w_rows, _ = op.inputs
        out_c, out_h, out_w = g.tensors[op.outputs[0]].shape
        eff = self.const(f"{op.source}.eff_scale", op.info["eff"].astype(np.float32), DType.F32)
        # dz in place over dy: nothing else reads dy.
        g.add_op(Opcode.REQUANT_GRAD_F32, [self.mask_of(op), dy, eff], [dy],
                 {"channels": out_c, "plane": out_h * out_w}, op.source)
        dz = dy
        w_state = w_rows if w_rows != -1 else w
        train_w = w_state in trainable
        train_b = b != -1 and b in trainable
        # The input gradient needs the weights the forward used: before a weight update. A layer
        # that updates no weights takes it last, as dz's last reader, so that a depthwise one
        # may run in place (compiler/inplace.py); unfused plans keep the first order.
        input_first = train_w or not self.fuse_updates
        if input_first:
            self.grad_input(op, dz, needs)
        if train_w or train_b:
            self.weight_updates(op, dz, train_w, train_b)
        if not input_first:
            self.grad_input(op, dz, needs)

    def grad_input(self, op: IROp, dz: int, needs: set[int]) -> None:
        x, w, _, _, _, w_rows, channels = op.inputs
        if x not in needs:
            return
        g = self.g
        geometry = op.named_attrs(CONV_ATTRS)
        dx = self.contribution(x)
        if (self.fuse_updates and op.opcode == Opcode.DEPTHWISE_CONV2D_S8
                and geometry["out_c"] == geometry["in_c"]):
            # a channel at a time through one plane of scratch (compiler/scratch.py): dx may be dz
            g.add_op(Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32, [dz, w, w_rows, channels],
                     [dx, -1], {**geometry, "n_rows": op.attr("n_rows")}, op.source)
        else:
            g.add_op(Opcode.CONV2D_S8_GRAD_INPUT_F32, [dz, w, w_rows, channels], [dx],
                     {**geometry, "n_rows": op.attr("n_rows")}, op.source)
        self.accumulate(x, dx, op.source)

    def weight_updates(self, op: IROp, dz: int, train_w: bool, train_b: bool) -> None:
        g = self.g
        x, w, b, _, _, w_rows, channels = op.inputs
        w_state = w_rows if w_rows != -1 else w
        geometry = op.named_attrs(CONV_ATTRS)
        x_zero, n_rows = op.attr("x_zero"), op.attr("n_rows")
        info = op.info
        out_c = geometry["out_c"]
        db = self.new_grad(b) if train_b else -1
        n_ch = 0 if not train_w else (n_rows if w_rows != -1 else out_c)
        w_scales = info["w_scales"]
        live = np.where(info["dead"], np.float32(0), np.float32(1))  # dead channels never train
        fused = self.fuse_updates and not self.keep_weight_grads
        dw = self.new_grad(w_state) if train_w and not fused else -1
        if not train_w or dw != -1:  # a bias-only layer keeps no input
            g.add_op(Opcode.CONV2D_S8_GRAD_WEIGHT_F32,
                     [dz, x if train_w else -1, channels if train_w else -1], [dw, db],
                     {**geometry, "x_zero": x_zero, "n_channels": n_ch}, op.source)
        if train_w:
            qas = (qas_weight_scale(w_scales) if self.qas else np.ones(out_c, np.float32)) * live
            if w_rows != -1:
                qas = qas[g.tensors[channels].data]
            qt = self.const(f"{op.source}.qas_w", np.ascontiguousarray(qas, np.float32), DType.F32)
            m = self.master.get(w_state, -1)
            if dw == -1:
                # The trained rows' gradient made and applied a row at a time (CONV2D_S8_SGD_F32):
                # no whole f32 weight gradient; its scratch (one row) comes from
                # compiler/scratch.py.
                g.add_op(Opcode.CONV2D_S8_SGD_F32,
                         [dz, x, channels, w_state, qt, m, self.backbone_lr_scale()],
                         [w_state, m, db, -1],
                         {**geometry, "x_zero": x_zero, "n_channels": n_ch,
                          "rule": int(self.rule)}, op.source)
            else:  # unfused (fuse off): the whole gradient, then the update
                shape = g.tensors[w_state].shape
                g.add_op(Opcode.UPDATE_S8_F32, [w_state, dw, qt, m, self.backbone_lr_scale()],
                         [w_state, m],
                         {"rows": shape[0], "row_size": int(np.prod(shape[1:])),
                          "rule": int(self.rule)}, op.source)
        if train_b:
            qas = (qas_bias_scale(w_scales, info["x_scale"]) if self.qas
                   else np.ones(out_c, np.float32)) * live
            qt = self.const(f"{op.source}.qas_b", qas, DType.F32)
            m = self.master.get(b, -1)
            g.add_op(Opcode.UPDATE_S32_F32, [b, db, qt, m, self.backbone_lr_scale()], [b, m],
                     {"size": out_c, "rule": int(self.rule)}, op.source)


def autodiff_s8(graph: Graph, update: str, model: str, qas: bool = True,
                rule: UpdateRule = UpdateRule.ROUND, reorder: bool = True,
                fuse_updates: bool = True, lr_scale: float = 1.0,
                keep_weight_grads: bool = False) -> tuple[Graph, Scheme]:
    if not graph.conv_ops:
        raise CompileError("autodiff: the int8 graph has no convs")
    scheme = parse_update(update, len(graph.conv_ops), model)
    weights = [graph.tensors[graph.ops[k].inputs[1]].array() for k in graph.conv_ops]
    updates = layer_updates(scheme, weights, update)
    graph = AutodiffS8(graph, updates, qas, rule, fuse_updates, lr_scale, keep_weight_grads).run()
    if not reorder:
        defer_updates(graph)
    return graph, scheme
