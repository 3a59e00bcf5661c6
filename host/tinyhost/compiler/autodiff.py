"""Pass 3, autodiff: choose what trains, append the loss, derive backward and update ops.

Backward ops exist only where a trainable parameter needs them: gradients flow back from the loss
only as far as the earliest trainable layer, and frozen layers before it keep nothing for backward.
A tensor read by several ops (a residual block's input) gets the sum of their gradients (ADD_F32);
a residual add passes its output gradient to both inputs unchanged, a channel concatenation splits
it (CONCAT_GRAD_F32).
Each update is applied right after its gradient is computed (the paper's operator reordering), so
no weight gradient outlives its layer; the input gradient of a layer is computed first, while the
weights still hold the values the forward pass used.
"""
from __future__ import annotations

from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph, IROp
from tinyhost.dtypes import DType
from tinyhost.ops import INPLACE_UPDATES, ActFunc, Opcode
from tinyhost.plan import TensorKind

PARAM_OPS = {Opcode.LINEAR_F32, Opcode.CONV2D_F32}


def _param_layers(graph: Graph) -> list[tuple[IROp, list[int]]]:
    """Forward ops that own parameters, with their (weight, bias) tensor ids, in order."""
    return [(op, [p for p in op.inputs[1:] if p != -1]) for op in graph.ops[:graph.n_forward]
            if op.opcode in PARAM_OPS]


def layer_names(graph: Graph) -> list[str]:
    return sorted({graph.tensors[p].name.rpartition(".")[0]
                   for _, params in _param_layers(graph) for p in params})


def select_trainable(graph: Graph, update: str) -> set[int]:
    """`full`, `last:K` (last K layers with parameters), `bias-only`, or names: a comma list of
    layers (`0,fc`) or parameters (`fc.weight`)."""
    layers = _param_layers(graph)
    all_params = [p for _, params in layers for p in params]
    if update in ("full", "all"):
        return set(all_params)
    if update == "bias-only":
        return {op.inputs[2] for op, _ in layers if op.inputs[2] != -1}
    if update.startswith("last:"):
        try:
            k = int(update[5:])
        except ValueError:
            k = 0
        if not 1 <= k <= len(layers):
            raise CompileError(f"autodiff: --update {update}: K must be 1..{len(layers)} "
                               "(the number of layers with parameters)")
        return {p for _, params in layers[-k:] for p in params}
    chosen: set[int] = set()
    for name in filter(None, (n.strip() for n in update.split(","))):
        hits = {p for p in all_params
                if graph.tensors[p].name == name or graph.tensors[p].name.startswith(name + ".")}
        if not hits:
            raise CompileError(f"autodiff: --update names {name!r}, which is not a layer or "
                               f"parameter of this model; layers: {', '.join(layer_names(graph))}")
        chosen |= hits
    if not chosen:
        raise CompileError("autodiff: --update selects no parameters")
    return chosen


class Autodiff:
    def __init__(self, graph: Graph, trainable: set[int]) -> None:
        self.g = graph
        self.trainable = trainable
        self.grad: dict[int, int] = {}

    def needs_grad(self) -> set[int]:
        """Activations whose gradient is needed: downstream of a trainable parameter."""
        needs: set[int] = set()
        for op in self.g.ops[:self.g.n_forward]:
            if any(i in needs or i in self.trainable for i in op.inputs):
                needs.update(op.outputs)
        return needs

    def new_grad(self, of: int) -> int:
        return self.g.add_grad(of)

    def set_grad(self, x: int, dx: int, op: IROp) -> None:
        """x's gradient is dx, or, where another reader of x gave it one already, their sum.
        Every reader of x comes after x's writer, so the sum is complete when the backward
        (in reverse program order) reaches the writer."""
        if x in self.grad:
            acc = self.g.add_grad(x)
            self.g.add_op(Opcode.ADD_F32, [self.grad[x], dx], [acc], {"size": len_of(self.g, x)},
                          op.source)
            dx = acc
        self.grad[x] = dx

    def refuse_shared_parameters(self) -> None:
        """A layer called twice would need its gradients summed before one update; the in-place
        update after each use would feed the earlier use's backward the new weights."""
        seen: dict[int, str] = {}
        for op in self.g.ops[:self.g.n_forward]:
            for p in op.inputs[1:]:
                if p in self.trainable and p in seen:
                    raise CompileError(f"autodiff: parameter {self.g.tensors[p].name!r} is used by "
                                       f"{seen[p]} and {op.source}; training a layer that is "
                                       "called more than once is not supported (freeze it with "
                                       "--update, or use separate layers)")
                seen.setdefault(p, op.source)

    def run(self) -> Graph:
        g = self.g
        self.refuse_shared_parameters()
        for p in self.trainable:
            g.tensors[p].kind = TensorKind.PARAM_TRAINABLE
        needs = self.needs_grad()
        if g.logits not in needs:
            raise CompileError("autodiff: nothing to train: no trainable parameter reaches the "
                               "loss")
        self.grad[g.logits] = append_loss(g)
        for op in reversed(g.ops[:g.n_forward]):
            y = op.outputs[0]
            if y in self.grad:
                self.backward(op, self.grad[y], needs)
        return g

    def backward(self, op: IROp, dy: int, needs: set[int]) -> None:
        g, x = self.g, op.inputs[0]
        if op.opcode in PARAM_OPS:
            w, b = op.inputs[1], op.inputs[2]
            grad_input, grad_weight = {
                Opcode.LINEAR_F32: (Opcode.LINEAR_GRAD_INPUT_F32, Opcode.LINEAR_GRAD_WEIGHT_F32),
                Opcode.CONV2D_F32: (Opcode.CONV2D_GRAD_INPUT_F32, Opcode.CONV2D_GRAD_WEIGHT_F32),
            }[op.opcode]
            if x in needs:
                dx = self.new_grad(x)
                g.add_op(grad_input, [dy, w], [dx], op.named_attrs(), op.source)
                self.set_grad(x, dx, op)
            train_w, train_b = w in self.trainable, b != -1 and b in self.trainable
            if train_w or train_b:
                # A bias-only layer computes no dw and so keeps no input x for backward.
                dw = self.new_grad(w) if train_w else -1
                db = self.new_grad(b) if train_b else -1
                g.add_op(grad_weight, [dy, x if train_w else -1], [dw, db], op.named_attrs(),
                         op.source)
                for p, dp in ((w, dw), (b, db)):
                    if p in self.trainable:
                        g.add_op(Opcode.SGD_F32, [p, dp], [p], {"size": len_of(g, p)}, op.source)
        elif op.opcode == Opcode.ADD_F32:  # d(a + b) = dy for both: shared, not copied
            for t in op.inputs:
                if t in needs:
                    self.set_grad(t, dy, op)
        elif op.opcode == Opcode.CONCAT_F32:
            da, db = (self.new_grad(t) if t in needs else -1 for t in op.inputs)
            if da != -1 or db != -1:
                g.add_op(Opcode.CONCAT_GRAD_F32, [dy], [da, db], op.named_attrs(), op.source)
            for t, dt in zip(op.inputs, (da, db), strict=True):
                if dt != -1:
                    self.set_grad(t, dt, op)
        elif x in needs:
            dx = self.new_grad(x)
            if op.opcode == Opcode.ACT_F32:
                # the derivative from the output where it is a function of it, else the input
                by_y = ActFunc(op.attr("func")) in (ActFunc.RELU6, ActFunc.SIGMOID, ActFunc.TANH)
                v = op.outputs[0] if by_y else x
                g.add_op(Opcode.ACT_GRAD_F32, [v, dy, op.inputs[1]], [dx], op.named_attrs(),
                         op.source)
            elif op.opcode == Opcode.PAD_W_F32:  # its adjoint: the same op, the other way
                g.add_op(Opcode.PAD_W_F32, [dy], [dx],
                         {"rows": op.attr("rows"), "in_w": op.attr("out_w"),
                          "out_w": op.attr("in_w"), "skip": op.attr("lead"),
                          "lead": op.attr("skip")}, op.source)
            elif op.opcode == Opcode.RELU_F32:
                g.add_op(Opcode.RELU_GRAD_F32, [op.outputs[0], dy], [dx], op.named_attrs(),
                         op.source)
            elif op.opcode == Opcode.MAXPOOL2D_F32:
                g.add_op(Opcode.MAXPOOL2D_GRAD_F32, [x, dy], [dx], op.named_attrs(), op.source)
            elif op.opcode == Opcode.AVGPOOL2D_F32:
                g.add_op(Opcode.AVGPOOL2D_GRAD_F32, [dy], [dx], op.named_attrs(), op.source)
            else:
                raise CompileError(f"autodiff: no gradient rule for {op.opcode.name}")
            self.set_grad(x, dx, op)


def append_loss(g: Graph) -> int:
    """Binds label, loss and prediction and appends softmax cross-entropy on the logits; returns
    the logits' gradient tensor, where backpropagation starts."""
    g.label = g.add_tensor("label", (), TensorKind.LABEL, DType.S32)
    g.loss = g.add_tensor("loss", (), TensorKind.OUTPUT)
    g.pred = g.add_tensor("pred", (), TensorKind.OUTPUT, DType.S32)
    dlogits = g.add_grad(g.logits)
    g.add_op(Opcode.SOFTMAX_XENT_F32, [g.logits, g.label], [g.loss, dlogits, g.pred],
             {"num_classes": g.num_classes}, "loss")
    return dlogits


def len_of(graph: Graph, t: int) -> int:
    return graph.tensors[t].nbytes // graph.tensors[t].dtype.itemsize


def defer_updates(graph: Graph) -> None:
    """Move every parameter update after the whole backward pass (keeping their order): the
    schedule without the paper's operator reordering, where every weight gradient stays live
    until the end of the step. Safe because an update only writes its own parameter, which no
    later backward op reads (a layer's input gradient precedes its update)."""
    start = graph.n_forward
    head = graph.ops[:start]
    updates: list[IROp] = []
    rest: list[IROp] = []
    for op in graph.ops[start:]:
        (updates if op.opcode in INPLACE_UPDATES else rest).append(op)
    graph.ops = head + rest + updates


def autodiff(graph: Graph, update: str, reorder: bool = True) -> Graph:
    graph = Autodiff(graph, select_trainable(graph, update)).run()
    if not reorder:
        defer_updates(graph)
    return graph
