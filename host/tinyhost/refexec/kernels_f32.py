"""Numpy reference of the fp32 kernels: the specification `firmware/runtime/ops/*.c` is tested
against.

One function per opcode of `tinyhost.ops` (same semantics as `tt/tt_kernels_f32.h`). Batch 1, no
batch dimension: activations are (C, H, W) (Conv1d: H = 1), conv weights (O, I/groups, KH, KW),
linear weights (O, I), biases and other vectors 1-D. Every function returns new float32 arrays and
never modifies its arguments. Invalid geometry or mismatched shapes raise ValueError, where the C
kernels return TT_ERR_ARG (an out-of-range label: TT_ERR_LABEL).

Semantics (PyTorch's, batch 1): conv and linear with optional bias; max pool pads with -inf and its
backward routes each gradient to the FIRST maximum of its window in row-major scan order; avg pool
counts the zero padding in its divisor (count_include_pad=True, divisor k_h*k_w); softmax
cross-entropy returns loss = logsumexp - logits[label], dlogits = softmax - onehot and the first
argmax; sgd returns w - lr*g in float32. Output sizes must be exactly
(in + 2*pad - k) // stride + 1 (no ceil mode), and pools need pad <= k/2 (as PyTorch requires, so
no window lies entirely in the padding).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING, Any, Self, TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from tinyhost.ops import ActFunc, Opcode
from tinyhost.plan import NONE, Op
from tinyhost.refexec.registry import reference, require_finite

if TYPE_CHECKING:
    from tinyhost.refexec.executor import RefExecutor

F32 = NDArray[np.float32]
_ScalarT = TypeVar("_ScalarT", bound=np.generic)

_INT32_MAX = 2**31 - 1


def _out_size(n: int, k: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - k) // stride + 1


def _check_window(axis: str, n: int, out: int, k: int, stride: int, pad: int) -> None:
    if n + 2 * pad < k:
        raise ValueError(f"kernel {axis} {k} is larger than the padded input ({n} + 2*{pad})")
    want = _out_size(n, k, stride, pad)
    if out != want:
        raise ValueError(f"out_{axis} is {out}, expected (in + 2*pad - k) // stride + 1 = {want}")


class _Geom:
    """Shared by the geometry dataclasses: construction from a plan's attribute list."""

    @classmethod
    def from_attrs(cls, attrs: Sequence[int]) -> Self:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        if len(attrs) != len(names):
            raise ValueError(f"{cls.__name__} takes {len(names)} attributes {names}, "
                             f"got {len(attrs)}")
        return cls(*(int(a) for a in attrs))

    @classmethod
    def from_op(cls, op: Op, prefix: str = "") -> Self:
        """The geometry of a plan op, from its attributes by name (`prefix`: which of several,
        e.g. "pw_" and "dw_" of PW_DW_CONV2D_S8)."""
        return cls(*(int(op.attr(prefix + f.name)) for f in fields(cls)))  # type: ignore[arg-type]

    def attrs(self) -> tuple[int, ...]:
        """The attribute list in plan order (the inverse of from_attrs)."""
        return astuple(self)  # type: ignore[call-overload]

    def _check_ints(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{type(self).__name__}.{f.name} must be an int, got {v!r}")
            lo = 0 if f.name.startswith("pad") else 1
            if not lo <= v <= _INT32_MAX:
                raise ValueError(f"{type(self).__name__}.{f.name} = {v} is out of range")


@dataclass(frozen=True)
class LinearGeom(_Geom):
    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        self._check_ints()


@dataclass(frozen=True)
class ConvGeom(_Geom):
    in_c: int
    in_h: int
    in_w: int
    out_c: int
    out_h: int
    out_w: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    groups: int

    def __post_init__(self) -> None:
        self._check_ints()
        if self.in_c % self.groups or self.out_c % self.groups:
            raise ValueError(f"groups {self.groups} must divide in_c {self.in_c} "
                             f"and out_c {self.out_c}")
        _check_window("h", self.in_h, self.out_h, self.k_h, self.stride_h, self.pad_h)
        _check_window("w", self.in_w, self.out_w, self.k_w, self.stride_w, self.pad_w)

    @classmethod
    def infer(cls, in_c: int, in_h: int, in_w: int, out_c: int, k_h: int, k_w: int,
              stride_h: int = 1, stride_w: int = 1, pad_h: int = 0, pad_w: int = 0,
              groups: int = 1) -> ConvGeom:
        """The geometry with the output size computed from the input size."""
        return cls(in_c, in_h, in_w, out_c, _out_size(in_h, k_h, stride_h, pad_h),
                   _out_size(in_w, k_w, stride_w, pad_w), k_h, k_w, stride_h, stride_w, pad_h,
                   pad_w, groups)

    @property
    def x_shape(self) -> tuple[int, int, int]:
        return (self.in_c, self.in_h, self.in_w)

    @property
    def y_shape(self) -> tuple[int, int, int]:
        return (self.out_c, self.out_h, self.out_w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.out_c, self.in_c // self.groups, self.k_h, self.k_w)


@dataclass(frozen=True)
class PoolGeom(_Geom):
    c: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int

    def __post_init__(self) -> None:
        self._check_ints()
        if 2 * self.pad_h > self.k_h or 2 * self.pad_w > self.k_w:
            raise ValueError(f"pool padding ({self.pad_h}, {self.pad_w}) must be at most half the "
                             f"kernel ({self.k_h}, {self.k_w})")
        _check_window("h", self.in_h, self.out_h, self.k_h, self.stride_h, self.pad_h)
        _check_window("w", self.in_w, self.out_w, self.k_w, self.stride_w, self.pad_w)

    @classmethod
    def infer(cls, c: int, in_h: int, in_w: int, k_h: int, k_w: int, stride_h: int | None = None,
              stride_w: int | None = None, pad_h: int = 0, pad_w: int = 0) -> PoolGeom:
        """The geometry with the output size computed; the stride defaults to the kernel size."""
        sh = k_h if stride_h is None else stride_h
        sw = k_w if stride_w is None else stride_w
        return cls(c, in_h, in_w, _out_size(in_h, k_h, sh, pad_h), _out_size(in_w, k_w, sw, pad_w),
                   k_h, k_w, sh, sw, pad_h, pad_w)

    @property
    def x_shape(self) -> tuple[int, int, int]:
        return (self.c, self.in_h, self.in_w)

    @property
    def y_shape(self) -> tuple[int, int, int]:
        return (self.c, self.out_h, self.out_w)


def _arr(a: ArrayLike, shape: tuple[int, ...], name: str) -> F32:
    out = np.asarray(a)
    if out.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}, expected {shape}")
    return out


def _windows(xp: NDArray[_ScalarT], g: ConvGeom | PoolGeom) -> NDArray[_ScalarT]:
    """(C, OH, OW, KH, KW) read-only view of the windows of the padded input xp (C, Hp, Wp)."""
    v = sliding_window_view(xp, (g.k_h, g.k_w), axis=(1, 2))
    return v[:, : g.stride_h * (g.out_h - 1) + 1 : g.stride_h,
             : g.stride_w * (g.out_w - 1) + 1 : g.stride_w]


def _pad(x: NDArray[_ScalarT], g: ConvGeom | PoolGeom, value: float) -> NDArray[_ScalarT]:
    return np.pad(x, ((0, 0), (g.pad_h, g.pad_h), (g.pad_w, g.pad_w)), constant_values=value)


def _fold(cols: F32, g: ConvGeom | PoolGeom, c: int) -> F32:
    """Adjoint of _windows: sums cols (C, KH, KW, OH, OW) back onto the input (C, H, W)."""
    hp, wp = g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w
    dxp = np.zeros((c, hp, wp), np.float32)
    for ky in range(g.k_h):
        for kx in range(g.k_w):
            dxp[:, ky : ky + g.stride_h * (g.out_h - 1) + 1 : g.stride_h,
                kx : kx + g.stride_w * (g.out_w - 1) + 1 : g.stride_w] += cols[:, ky, kx]
    return np.ascontiguousarray(dxp[:, g.pad_h : g.pad_h + g.in_h, g.pad_w : g.pad_w + g.in_w])


# --- linear ---------------------------------------------------------------------------------------

def linear(g: LinearGeom, x: ArrayLike, w: ArrayLike, b: ArrayLike | None) -> F32:
    """y[o] = b[o] + sum_i w[o, i] x[i], summed in float32 in the C kernel's order (the bias, then
    i ascending): the int8 graphs' fp32 head must train bit-identically on the device (see
    kernels_s8.conv2d_s8_grad_input)."""
    xa = _arr(x, (g.in_features,), "x")
    wa = _arr(w, (g.out_features, g.in_features), "w")
    y = (_arr(b, (g.out_features,), "b").copy() if b is not None
         else np.zeros(g.out_features, np.float32))
    for i in range(g.in_features):
        y += wa[:, i] * xa[i]
    return y


def linear_grad_input(g: LinearGeom, dy: ArrayLike, w: ArrayLike) -> F32:
    """dx[i] = sum_o dy[o] w[o, i], summed in float32 over o ascending (the C kernel's order)."""
    dya = _arr(dy, (g.out_features,), "dy")
    wa = _arr(w, (g.out_features, g.in_features), "w")
    dx = np.zeros(g.in_features, np.float32)
    for o in range(g.out_features):
        dx += dya[o] * wa[o]
    return dx


def linear_grad_weight(g: LinearGeom, dy: ArrayLike, x: ArrayLike) -> tuple[F32, F32]:
    """(dw, db): dw[o, i] = dy[o] x[i], db = dy."""
    dya = _arr(dy, (g.out_features,), "dy")
    xa = _arr(x, (g.in_features,), "x")
    return np.outer(dya, xa).astype(np.float32, copy=False), dya.copy()


# --- conv2d ---------------------------------------------------------------------------------------
# im2col: the windows of the padded input are gathered into cols (G, I/G*KH*KW, OH*OW), so each
# group's convolution is one matrix product with its weights (G, O/G, I/G*KH*KW).

def _im2col(g: ConvGeom, x: F32) -> F32:
    win = _windows(_pad(x, g, 0.0), g)  # (C, OH, OW, KH, KW)
    cg = g.in_c // g.groups
    cols = win.reshape(g.groups, cg, g.out_h, g.out_w, g.k_h, g.k_w).transpose(0, 1, 4, 5, 2, 3)
    return cols.reshape(g.groups, cg * g.k_h * g.k_w, g.out_h * g.out_w)


def linear_sgd(g: LinearGeom, dy: ArrayLike, x: ArrayLike | None, w: ArrayLike | None,
               b: ArrayLike | None,
               lr: float | np.floating[Any]) -> tuple[F32 | None, F32 | None]:
    """The layer's SGD step from its output gradient: (w - lr * dy x^T, b - lr * dy), each in
    float32 with the product rounded before the step, as linear_grad_weight then sgd give it."""
    dyv = _arr(dy, (g.out_features,), "dy")
    new_w = new_b = None
    if w is not None:
        if x is None:
            raise ValueError("a weight step needs the layer's input x")
        dw, _ = linear_grad_weight(g, dyv, x)
        new_w = sgd(_arr(w, (g.out_features, g.in_features), "w"), dw, lr)
    if b is not None:
        new_b = sgd(_arr(b, (g.out_features,), "b"), dyv, lr)
    return new_w, new_b


def conv2d(g: ConvGeom, x: ArrayLike, w: ArrayLike, b: ArrayLike | None) -> F32:
    """y[o, oy, ox] = b[o] + sum over the group's inputs and the window of w * zero-padded x."""
    xa = _arr(x, g.x_shape, "x")
    wa = _arr(w, g.w_shape, "w").reshape(g.groups, g.out_c // g.groups, -1)
    y = np.matmul(wa, _im2col(g, xa)).reshape(g.y_shape)
    if b is not None:
        y = y + _arr(b, (g.out_c,), "b")[:, None, None]
    out: F32 = y.astype(np.float32, copy=False)
    return out


def conv2d_grad_input(g: ConvGeom, dy: ArrayLike, w: ArrayLike) -> F32:
    """dx = the adjoint of conv2d (without bias) applied to dy."""
    dya = _arr(dy, g.y_shape, "dy").reshape(g.groups, g.out_c // g.groups, g.out_h * g.out_w)
    wa = _arr(w, g.w_shape, "w").reshape(g.groups, g.out_c // g.groups, -1)
    cols = np.matmul(wa.transpose(0, 2, 1), dya)  # (G, I/G*KH*KW, OH*OW)
    return _fold(cols.reshape(g.in_c, g.k_h, g.k_w, g.out_h, g.out_w), g, g.in_c)


def conv2d_grad_weight(g: ConvGeom, dy: ArrayLike, x: ArrayLike) -> tuple[F32, F32]:
    """(dw, db): dw[o, i, ky, kx] = sum_{oy, ox} dy[o, oy, ox] x_padded[window];
    db[o] = sum dy[o]."""
    dya = _arr(dy, g.y_shape, "dy")
    xa = _arr(x, g.x_shape, "x")
    dyg = dya.reshape(g.groups, g.out_c // g.groups, g.out_h * g.out_w)
    dw = np.matmul(dyg, _im2col(g, xa).transpose(0, 2, 1)).reshape(g.w_shape)
    return dw.astype(np.float32, copy=False), dya.sum(axis=(1, 2), dtype=np.float32)


# --- relu -----------------------------------------------------------------------------------------

def relu(x: ArrayLike) -> F32:
    """y = x where x > 0, else 0 (any shape)."""
    xa = _arr(x, np.shape(x), "x")
    return np.where(xa > 0, xa, np.float32(0)).astype(np.float32, copy=False)


def relu_grad(y: ArrayLike, dy: ArrayLike) -> F32:
    """dx = dy where the forward output y > 0, else 0."""
    ya = _arr(y, np.shape(y), "y")
    dya = _arr(dy, ya.shape, "dy")
    return np.where(ya > 0, dya, np.float32(0)).astype(np.float32, copy=False)


# --- pooling --------------------------------------------------------------------------------------

def _argmax_windows(g: PoolGeom, x: F32) -> NDArray[np.intp]:
    """Flat index (in row-major window order) of the first maximum of each window, (C, OH, OW)."""
    win = _windows(_pad(x, g, -np.inf), g).reshape(g.c, g.out_h, g.out_w, g.k_h * g.k_w)
    idx: NDArray[np.intp] = win.argmax(axis=-1)  # numpy's argmax returns the first maximum
    return idx


def maxpool2d(g: PoolGeom, x: ArrayLike) -> F32:
    """y = max over each window of the -inf-padded x."""
    xa = _arr(x, g.x_shape, "x")
    return np.ascontiguousarray(_windows(_pad(xa, g, -np.inf), g).max(axis=(3, 4)))


def maxpool2d_grad(g: PoolGeom, x: ArrayLike, dy: ArrayLike) -> F32:
    """dx: each dy[c, oy, ox] is added to the first maximum of its window; everything else is 0."""
    xa = _arr(x, g.x_shape, "x")
    dya = _arr(dy, g.y_shape, "dy")
    idx = _argmax_windows(g, xa)
    hp, wp = g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w
    c, oy, ox = np.indices(idx.shape)
    iy = oy * g.stride_h + idx // g.k_w
    ix = ox * g.stride_w + idx % g.k_w
    flat = ((c * hp + iy) * wp + ix).ravel()
    # Overlapping windows (stride < kernel) can route several gradients to one input: sum them.
    dxp = np.bincount(flat, weights=dya.ravel(), minlength=g.c * hp * wp).astype(np.float32)
    dxp = dxp.reshape(g.c, hp, wp)
    return np.ascontiguousarray(dxp[:, g.pad_h : g.pad_h + g.in_h, g.pad_w : g.pad_w + g.in_w])


def avgpool2d(g: PoolGeom, x: ArrayLike) -> F32:
    """y = sum over each window of the zero-padded x, divided by k_h*k_w (padding counts)."""
    xa = _arr(x, g.x_shape, "x")
    s = _windows(_pad(xa, g, 0.0), g).sum(axis=(3, 4), dtype=np.float32)
    y: F32 = (s / np.float32(g.k_h * g.k_w)).astype(np.float32, copy=False)
    return y


def avgpool2d_grad(g: PoolGeom, dy: ArrayLike) -> F32:
    """dx: each dy[c, oy, ox] / (k_h*k_w) is added to every input of its window."""
    dya = _arr(dy, g.y_shape, "dy")
    share = dya / np.float32(g.k_h * g.k_w)
    cols = np.broadcast_to(share[:, None, None], (g.c, g.k_h, g.k_w, g.out_h, g.out_w))
    return _fold(cols, g, g.c)


# --- loss and update ------------------------------------------------------------------------------

def softmax_xent(logits: ArrayLike, label: int) -> tuple[np.float32, F32, int]:
    """(loss, dlogits, pred) of one sample.

    loss = logsumexp(logits) - logits[label]; dlogits = softmax(logits) - onehot(label);
    pred = index of the first maximum. With m = logits[pred], e = exp(logits - m) (so e[pred] = 1)
    and r = the sum of e without e[pred], this is computed as
        loss = log1p(r) - (logits[label] - m),   dlogits = e / (1 + r) - onehot(label),
    except dlogits[label] = -r / (1 + r) when label == pred. Subtracting the max avoids overflow;
    using r instead of 1 + r keeps a small loss and gradient (a confident, correct prediction)
    accurate instead of rounding them to multiples of ulp(1).
    """
    la = np.asarray(logits)
    if la.dtype != np.float32 or la.ndim != 1 or la.size == 0:
        raise ValueError(f"logits must be a non-empty 1-D float32 array, got {la.dtype} {la.shape}")
    n = la.size
    lab = int(label)
    if not 0 <= lab < n:
        raise ValueError(f"label {lab} is outside [0, num_classes={n})")
    pred = int(la.argmax())  # numpy's argmax returns the first maximum
    m = la[pred]
    # exp and log1p in double, rounded to float32 once: libm's float functions differ between C
    # libraries by an ulp, double ones agree after the rounding (all but ~2^-29 of the time), and
    # r is summed in the C kernel's order, so device and reference agree bit for bit.
    e = np.exp((la - m).astype(np.float64)).astype(np.float32)
    r = np.float32(0)
    for j in range(n):
        if j != pred:
            r = np.float32(r + e[j])
    s = np.float32(1) + r
    loss = np.float32(np.log1p(np.float64(r))) - (la[lab] - m)
    d = (e / s).astype(np.float32, copy=False)
    d[lab] = -r / s if lab == pred else d[lab] - np.float32(1)
    return loss, d, pred


def sgd(w: ArrayLike, g: ArrayLike, lr: float | np.floating[Any]) -> F32:
    """w - lr*g, computed in float32 (the C kernel updates w in place); NonFiniteStep when a
    value is not finite (the C kernel then writes nothing)."""
    wa = _arr(w, np.shape(w), "w")
    ga = _arr(g, wa.shape, "g")
    new = (wa - np.float32(lr) * ga).astype(np.float32, copy=False)
    require_finite(new, "the SGD step w - lr*g")
    return new


# --- the ops: plan operands -> these kernels (refexec/registry.py) -------------------------------

def _conv_shapes(g: ConvGeom) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Shapes of a conv's input, weight and output."""
    return ((g.in_c, g.in_h, g.in_w), (g.out_c, g.in_c // g.groups, g.k_h, g.k_w),
            (g.out_c, g.out_h, g.out_w))


def _pool_shapes(g: PoolGeom) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (g.c, g.in_h, g.in_w), (g.c, g.out_h, g.out_w)


def store_weight_grads(ex: RefExecutor, op: Op, dw: NDArray, db: NDArray) -> None:
    """Either output may be absent: a bias-only layer has no dw (and no saved input)."""
    for out, value in zip(op.outputs, (dw, db), strict=True):
        if out != NONE:
            ex.view(out)[...] = value.reshape(-1)


@reference(Opcode.LINEAR_F32)
def _run_linear(ex: RefExecutor, op: Op) -> None:
    g = LinearGeom.from_op(op)
    x, w, b = op.inputs
    y = linear(g, ex.view(x, (g.in_features,)), ex.view(w, (g.out_features, g.in_features)),
               ex.opt(b, (g.out_features,)))
    ex.view(op.outputs[0])[...] = y.reshape(-1)


@reference(Opcode.LINEAR_GRAD_INPUT_F32)
def _run_linear_grad_input(ex: RefExecutor, op: Op) -> None:
    g = LinearGeom.from_op(op)
    dy, w = op.inputs
    dx = linear_grad_input(g, ex.view(dy, (g.out_features,)),
                           ex.view(w, (g.out_features, g.in_features)))
    ex.view(op.outputs[0])[...] = dx.reshape(-1)


@reference(Opcode.LINEAR_GRAD_WEIGHT_F32)
def _run_linear_grad_weight(ex: RefExecutor, op: Op) -> None:
    g = LinearGeom.from_op(op)
    dy, x = op.inputs
    xv = ex.view(x, (g.in_features,)) if x != NONE else np.zeros(g.in_features, np.float32)
    dw, db = linear_grad_weight(g, ex.view(dy, (g.out_features,)), xv)
    store_weight_grads(ex, op, dw, db)


@reference(Opcode.LINEAR_SGD_F32)
def _run_linear_sgd(ex: RefExecutor, op: Op) -> None:
    g = LinearGeom.from_op(op)
    dy, x, w, b = op.inputs
    new_w, new_b = linear_sgd(g, ex.view(dy), ex.opt(x, (g.in_features,)),
                              ex.opt(w, (g.out_features, g.in_features)),
                              ex.opt(b, (g.out_features,)), ex.lr)
    for index, value in ((w, new_w), (b, new_b)):
        if value is not None:
            ex.view(index)[...] = value.reshape(-1)


@reference(Opcode.CONV2D_F32)
def _run_conv2d(ex: RefExecutor, op: Op) -> None:
    g = ConvGeom.from_op(op)
    xs, ws, _ = _conv_shapes(g)
    x, w, b = op.inputs
    y = conv2d(g, ex.view(x, xs), ex.view(w, ws), ex.opt(b, (g.out_c,)))
    ex.view(op.outputs[0])[...] = y.reshape(-1)


@reference(Opcode.CONV2D_GRAD_INPUT_F32)
def _run_conv2d_grad_input(ex: RefExecutor, op: Op) -> None:
    g = ConvGeom.from_op(op)
    _, ws, ys = _conv_shapes(g)
    dy, w = op.inputs
    dx = conv2d_grad_input(g, ex.view(dy, ys), ex.view(w, ws))
    ex.view(op.outputs[0])[...] = dx.reshape(-1)


@reference(Opcode.CONV2D_GRAD_WEIGHT_F32)
def _run_conv2d_grad_weight(ex: RefExecutor, op: Op) -> None:
    g = ConvGeom.from_op(op)
    xs, _, ys = _conv_shapes(g)
    dy, x = op.inputs
    xv = ex.view(x, xs) if x != NONE else np.zeros(xs, np.float32)
    dw, db = conv2d_grad_weight(g, ex.view(dy, ys), xv)
    store_weight_grads(ex, op, dw, db)


@reference(Opcode.RELU_F32)
def _run_relu(ex: RefExecutor, op: Op) -> None:
    ex.view(op.outputs[0])[...] = relu(ex.view(op.inputs[0]))


@reference(Opcode.RELU_GRAD_F32)
def _run_relu_grad(ex: RefExecutor, op: Op) -> None:
    y, dy = op.inputs
    ex.view(op.outputs[0])[...] = relu_grad(ex.view(y), ex.view(dy))


@reference(Opcode.MAXPOOL2D_F32)
def _run_maxpool2d(ex: RefExecutor, op: Op) -> None:
    g = PoolGeom.from_op(op)
    xs, _ = _pool_shapes(g)
    ex.view(op.outputs[0])[...] = maxpool2d(g, ex.view(op.inputs[0], xs)).reshape(-1)


@reference(Opcode.MAXPOOL2D_GRAD_F32)
def _run_maxpool2d_grad(ex: RefExecutor, op: Op) -> None:
    g = PoolGeom.from_op(op)
    xs, ys = _pool_shapes(g)
    x, dy = op.inputs
    ex.view(op.outputs[0])[...] = maxpool2d_grad(g, ex.view(x, xs), ex.view(dy, ys)).reshape(-1)


@reference(Opcode.AVGPOOL2D_F32)
def _run_avgpool2d(ex: RefExecutor, op: Op) -> None:
    g = PoolGeom.from_op(op)
    xs, _ = _pool_shapes(g)
    ex.view(op.outputs[0])[...] = avgpool2d(g, ex.view(op.inputs[0], xs)).reshape(-1)


@reference(Opcode.AVGPOOL2D_GRAD_F32)
def _run_avgpool2d_grad(ex: RefExecutor, op: Op) -> None:
    g = PoolGeom.from_op(op)
    _, ys = _pool_shapes(g)
    ex.view(op.outputs[0])[...] = avgpool2d_grad(g, ex.view(op.inputs[0], ys)).reshape(-1)


@reference(Opcode.SOFTMAX_XENT_F32)
def _run_softmax_xent(ex: RefExecutor, op: Op) -> None:
    logits, label = op.inputs
    loss, dlogits, pred = softmax_xent(ex.view(logits), int(ex.view(label)[0]))
    out_loss, out_dlogits, out_pred = op.outputs
    ex.view(out_loss)[0] = loss
    ex.view(out_dlogits)[...] = dlogits
    ex.view(out_pred)[0] = pred
    require_finite(np.asarray(loss), "the loss")  # written, then the step ends (as in C)


@reference(Opcode.SGD_F32)
def _run_sgd(ex: RefExecutor, op: Op) -> None:
    w, g = op.inputs
    ex.view(w)[...] = sgd(ex.view(w), ex.view(g), ex.lr)


@reference(Opcode.ADD_F32)
def _run_add_f32(ex: RefExecutor, op: Op) -> None:
    a, b = op.inputs
    ex.view(op.outputs[0])[...] = (ex.view(a) + ex.view(b)).astype(np.float32)


# --- activations and concatenation (issue 15) -----------------------------------------------------
# Float32 operations in act_f32.c's order; sigmoid and tanh in double, rounded once (as C does:
# the rounded double results of two C libraries agree where their float ones differ by an ulp).

def act(func: ActFunc, x: ArrayLike, alpha: float | np.floating[Any] = 0.0) -> F32:
    """y = func(x), elementwise (any shape)."""
    xa = _arr(x, np.shape(x), "x")
    f0, f6 = np.float32(0), np.float32(6)
    if func == ActFunc.RELU6:
        y = np.where(xa > 0, np.where(xa < 6, xa, f6), f0)
    elif func == ActFunc.LEAKY_RELU:
        y = np.where(xa > 0, xa, xa * np.float32(alpha))
    elif func == ActFunc.SIGMOID:
        y = 1.0 / (1.0 + np.exp(-xa.astype(np.float64)))
    elif func == ActFunc.TANH:  # from expm1, as act_f32.c (libm's tanh costs the M4F RAM)
        e = np.expm1(-2.0 * np.abs(xa.astype(np.float64)))
        th = -e / (2.0 + e)
        y = np.where(xa < 0, -th, th)
    elif func == ActFunc.HARDSWISH:
        t = xa + np.float32(3)
        y = xa * np.where(t > 0, np.where(t < 6, t, f6), f0) / f6
    else:
        raise ValueError(f"unknown activation function {func}")
    return np.asarray(y).astype(np.float32)


def act_grad(func: ActFunc, v: ArrayLike, dy: ArrayLike,
             alpha: float | np.floating[Any] = 0.0) -> F32:
    """dx = dy * func'(x), from v = the forward output (relu6, sigmoid, tanh) or input (leaky_relu,
    hardswish), as PyTorch's backward formulas."""
    va = _arr(v, np.shape(v), "v")
    dya = _arr(dy, va.shape, "dy")
    f0, f1 = np.float32(0), np.float32(1)
    if func == ActFunc.RELU6:
        dx = np.where((va > 0) & (va < 6), dya, f0)
    elif func == ActFunc.LEAKY_RELU:
        dx = np.where(va > 0, dya, dya * np.float32(alpha))
    elif func == ActFunc.SIGMOID:
        dx = dya * ((f1 - va) * va)
    elif func == ActFunc.TANH:
        dx = dya * (f1 - va * va)
    elif func == ActFunc.HARDSWISH:
        dx = np.where(va <= -3, f0,
                      np.where(va < 3, dya * (va / np.float32(3) + np.float32(0.5)), dya))
    else:
        raise ValueError(f"unknown activation function {func}")
    return np.asarray(dx).astype(np.float32)


def _alpha(ex: RefExecutor, index: int) -> np.float32:
    return np.float32(0) if index == NONE else np.float32(ex.view(index)[0])


@reference(Opcode.ACT_F32)
def _run_act(ex: RefExecutor, op: Op) -> None:
    x, alpha = op.inputs
    ex.view(op.outputs[0])[...] = act(ActFunc(op.attr("func")), ex.view(x), _alpha(ex, alpha))


@reference(Opcode.ACT_GRAD_F32)
def _run_act_grad(ex: RefExecutor, op: Op) -> None:
    v, dy, alpha = op.inputs
    ex.view(op.outputs[0])[...] = act_grad(ActFunc(op.attr("func")), ex.view(v), ex.view(dy),
                                           _alpha(ex, alpha))


@reference(Opcode.CONCAT_F32)
def _run_concat(ex: RefExecutor, op: Op) -> None:
    a, b = op.inputs
    ex.view(op.outputs[0])[...] = np.concatenate([ex.view(a), ex.view(b)])


@reference(Opcode.CONCAT_GRAD_F32)
def _run_concat_grad(ex: RefExecutor, op: Op) -> None:
    dy = ex.view(op.inputs[0])
    n = int(op.attr("size_a"))
    da, db = op.outputs
    if da != NONE:
        ex.view(da)[...] = dy[:n]
    if db != NONE:
        ex.view(db)[...] = dy[n:]


def pad_w(x: ArrayLike, out_w: int, skip: int, lead: int) -> F32:
    """Rows of x (rows, in_w) -> (rows, out_w): y[r, j] = x[r, j - lead + skip] inside the row,
    else 0 (zero padding by lead, cropping by skip)."""
    xa = _arr(x, np.shape(x), "x")
    rows, in_w = xa.shape
    y = np.zeros((rows, out_w), np.float32)
    lo, hi = max(0, lead - skip), min(out_w, in_w + lead - skip)  # the j whose source is in x
    if lo < hi:
        y[:, lo:hi] = xa[:, lo - lead + skip:hi - lead + skip]
    return y


@reference(Opcode.PAD_W_F32)
def _run_pad_w(ex: RefExecutor, op: Op) -> None:
    rows, in_w = int(op.attr("rows")), int(op.attr("in_w"))
    y = pad_w(ex.view(op.inputs[0], (rows, in_w)), int(op.attr("out_w")), int(op.attr("skip")),
              int(op.attr("lead")))
    ex.view(op.outputs[0])[...] = y.reshape(-1)
