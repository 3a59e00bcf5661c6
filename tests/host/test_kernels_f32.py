"""The numpy reference kernels (tinyhost.refexec.kernels_f32) against PyTorch autograd.

PyTorch runs in float64 on the same float32 inputs, so the comparison measures the reference's own
float32 error. Tolerance, for every output array r and reference result x:
    |x - r| <= rtol*|r| + atol   with rtol = 1e-5 and atol = 1e-5 * max|r|
(the atol term scales with the array, so elements that cancel to ~0 are not held to a relative bound
their float32 accumulation cannot meet). The C kernels are held to the same tolerance (tests/c).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from closeness import assert_close
from tinyhost.ops import CONV_ATTRS, OP_SPECS, POOL_ATTRS, Opcode
from tinyhost.refexec import kernels_f32 as k
from tinyhost.refexec.kernels_f32 import ConvGeom, LinearGeom, PoolGeom


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def t64(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


# --- geometry -------------------------------------------------------------------------------------

def test_geometry_fields_follow_op_table() -> None:
    assert tuple(f for f in ConvGeom.__dataclass_fields__) == CONV_ATTRS
    assert tuple(f for f in PoolGeom.__dataclass_fields__) == POOL_ATTRS
    assert tuple(LinearGeom.__dataclass_fields__) == OP_SPECS[Opcode.LINEAR_F32].attrs
    g = ConvGeom.infer(4, 9, 7, 6, 3, 2, 1, 2, 1, 0, 2)
    assert ConvGeom.from_attrs(list(g.attrs())) == g
    p = PoolGeom.infer(2, 7, 9, 3, 3, 2, 2, 1, 1)
    assert PoolGeom.from_attrs(p.attrs()) == p
    assert LinearGeom.from_attrs([7, 5]) == LinearGeom(7, 5)


# --- linear ---------------------------------------------------------------------------------------

LINEAR_CASES = [(1, 1, True), (7, 5, True), (7, 5, False), (64, 10, True), (33, 17, False),
                (256, 3, True)]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("in_f,out_f,bias", LINEAR_CASES)
def test_linear(in_f: int, out_f: int, bias: bool, seed: int) -> None:
    rng = np.random.default_rng(1000 + 17 * in_f + out_f + seed)
    g = LinearGeom(in_f, out_f)
    x, w, b, dy = rand(rng, in_f), rand(rng, out_f, in_f), rand(rng, out_f), rand(rng, out_f)
    xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
    yt = F.linear(xt, wt, bt if bias else None)
    yt.backward(t64(dy))
    assert_close(k.linear(g, x, w, b if bias else None), yt, "y")
    assert_close(k.linear_grad_input(g, dy, w), xt.grad, "dx")
    dw, db = k.linear_grad_weight(g, dy, x)
    assert_close(dw, wt.grad, "dw")
    assert_close(db, bt.grad if bias else t64(dy), "db")  # without a bias: db is still dy


# --- conv2d ---------------------------------------------------------------------------------------

# (in_c, in_h, in_w, out_c, k_h, k_w, stride_h, stride_w, pad_h, pad_w, groups)
CONV_CASES = [
    (3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1),      # plain 3x3 "same"
    (3, 7, 9, 5, 3, 3, 2, 2, 1, 1, 1),      # odd sizes, stride 2
    (3, 8, 8, 4, 3, 3, 2, 2, 1, 1, 1),      # stride 2 leaving the last input row/col unused
    (4, 9, 7, 6, 3, 2, 1, 2, 1, 0, 2),      # groups 2, non-square kernel, mixed stride
    (4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 4),      # depthwise
    (3, 5, 5, 6, 3, 3, 2, 2, 0, 0, 3),      # depthwise with channel multiplier 2
    (6, 5, 6, 9, 2, 3, 2, 1, 1, 1, 3),      # groups 3
    (2, 1, 17, 4, 1, 5, 1, 2, 0, 2, 1),     # Conv1d as H = 1
    (4, 1, 16, 4, 1, 3, 1, 1, 0, 1, 4),     # depthwise Conv1d
    (1, 5, 5, 1, 5, 5, 1, 1, 0, 0, 1),      # kernel covers the input: 1x1 output
    (5, 6, 6, 3, 1, 1, 1, 1, 0, 0, 1),      # pointwise
    (2, 4, 4, 2, 3, 3, 3, 3, 2, 2, 1),      # padding larger than half the kernel, stride 3
    (8, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1),   # a longer reduction (72 terms)
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d(case: tuple[int, ...], bias: bool) -> None:
    in_c, in_h, in_w, out_c, kh, kw, sh, sw, ph, pw, groups = case
    rng = np.random.default_rng([*case, bias])
    g = ConvGeom.infer(in_c, in_h, in_w, out_c, kh, kw, sh, sw, ph, pw, groups)
    x, w, b = rand(rng, *g.x_shape), rand(rng, *g.w_shape), rand(rng, out_c)
    dy = rand(rng, *g.y_shape)
    xt, wt, bt = t64(x, True), t64(w, True), t64(b, True)
    yt = F.conv2d(xt[None], wt, bt if bias else None, stride=(sh, sw), padding=(ph, pw),
                  groups=groups)[0]
    assert yt.shape == g.y_shape
    yt.backward(t64(dy))
    assert_close(k.conv2d(g, x, w, b if bias else None), yt, "y")
    assert_close(k.conv2d_grad_input(g, dy, w), xt.grad, "dx")
    dw, db = k.conv2d_grad_weight(g, dy, x)
    assert_close(dw, wt.grad, "dw")
    assert_close(db, bt.grad if bias else t64(dy).sum(dim=(1, 2)), "db")


# --- relu -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 5), (16, 1, 9)])
def test_relu(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    x = rand(rng, *shape)
    x.flat[:: 3] = 0.0  # exact zeros: the gradient at 0 is 0, as in PyTorch
    dy = rand(rng, *shape)
    xt = t64(x, True)
    yt = F.relu(xt)
    yt.backward(t64(dy))
    y = k.relu(x)
    assert_close(y, yt, "y")
    assert_close(k.relu_grad(y, dy), xt.grad, "dx")


# --- pooling --------------------------------------------------------------------------------------

# (c, in_h, in_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w)
POOL_CASES = [
    (3, 8, 8, 2, 2, 2, 2, 0, 0),      # the usual 2x2/2
    (2, 7, 9, 3, 3, 2, 2, 1, 1),      # odd sizes, stride 2, padding
    (4, 6, 5, 3, 2, 1, 1, 1, 1),      # overlapping windows, non-square kernel
    (2, 7, 7, 2, 2, 1, 1, 1, 1),      # padding = half the kernel
    (3, 9, 9, 3, 3, 3, 3, 0, 0),
    (2, 5, 7, 3, 3, 2, 2, 0, 0),      # last column unused
    (2, 1, 15, 1, 3, 1, 2, 0, 1),     # 1-D pooling as H = 1
    (1, 5, 5, 5, 5, 5, 5, 2, 2),      # one window over the whole (padded) input
]


def _pool_setup(case: tuple[int, ...], ties: bool) -> tuple[PoolGeom, np.ndarray, np.ndarray]:
    c, in_h, in_w, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng([*case, ties])
    g = PoolGeom.infer(c, in_h, in_w, kh, kw, sh, sw, ph, pw)
    x = rand(rng, *g.x_shape)
    if ties:  # few distinct values: windows with several maxima test first-maximum routing
        x = np.round(x).astype(np.float32)
    return g, x, rand(rng, *g.y_shape)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_maxpool2d(case: tuple[int, ...], ties: bool) -> None:
    g, x, dy = _pool_setup(case, ties)
    xt = t64(x, True)
    yt = F.max_pool2d(xt[None], (g.k_h, g.k_w), (g.stride_h, g.stride_w), (g.pad_h, g.pad_w))[0]
    assert yt.shape == g.y_shape
    yt.backward(t64(dy))
    assert_close(k.maxpool2d(g, x), yt, "y")
    assert_close(k.maxpool2d_grad(g, x, dy), xt.grad, "dx")


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_avgpool2d(case: tuple[int, ...]) -> None:
    g, x, dy = _pool_setup(case, False)
    xt = t64(x, True)
    yt = F.avg_pool2d(xt[None], (g.k_h, g.k_w), (g.stride_h, g.stride_w), (g.pad_h, g.pad_w),
                      count_include_pad=True)[0]
    assert yt.shape == g.y_shape
    yt.backward(t64(dy))
    assert_close(k.avgpool2d(g, x), yt, "y")
    assert_close(k.avgpool2d_grad(g, dy), xt.grad, "dx")


def test_maxpool_first_maximum() -> None:
    g = PoolGeom.infer(1, 2, 2, 2, 2)
    x = np.ones((1, 2, 2), np.float32)
    dx = k.maxpool2d_grad(g, x, np.full((1, 1, 1), 3.0, np.float32))
    np.testing.assert_array_equal(dx, [[[3.0, 0.0], [0.0, 0.0]]])


# --- softmax cross-entropy ------------------------------------------------------------------------

SOFTMAX_CASES = [(1, 0, 1.0), (2, 1, 1.0), (10, 3, 1.0), (10, 9, 5.0), (37, 0, 3.0),
                 (10, 4, 100.0), (10, 6, 30.0)]


@pytest.mark.parametrize("n,label,scale", SOFTMAX_CASES)
@pytest.mark.parametrize("label_is_argmax", [False, True])
def test_softmax_xent(n: int, label: int, scale: float, label_is_argmax: bool) -> None:
    rng = np.random.default_rng(n * 13 + label + int(scale))
    logits = (rng.standard_normal(n) * scale).astype(np.float32)
    if label_is_argmax:  # a confident correct prediction: loss and gradient are close to 0
        label = int(logits.argmax())
    lt = t64(logits, True)
    loss_t = F.cross_entropy(lt[None], torch.tensor([label]))
    loss_t.backward()
    loss, d, pred = k.softmax_xent(logits, label)
    assert isinstance(loss, np.float32)
    assert_close(np.asarray(loss), loss_t, "loss")
    assert_close(d, lt.grad, "dlogits")
    assert isinstance(pred, int) and pred == int(torch.argmax(lt))


def test_softmax_xent_first_argmax_and_stability() -> None:
    loss, d, pred = k.softmax_xent(np.array([1e30, -3.0, 1e30], np.float32), 2)
    assert pred == 0
    assert np.isfinite(loss) and abs(float(loss) - np.log(2)) < 1e-6
    np.testing.assert_allclose(d, [0.5, 0.0, -0.5], atol=1e-7)


@pytest.mark.parametrize("label", [-1, 10, 99])
def test_softmax_xent_bad_label(label: int) -> None:
    with pytest.raises(ValueError, match=rf"label {label}.*num_classes=10"):
        k.softmax_xent(np.zeros(10, np.float32), label)


# --- sgd ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,lr", [(1, 0.1), (17, 0.01), (1000, 0.5)])
def test_sgd(size: int, lr: float) -> None:
    rng = np.random.default_rng(size)
    w, g = rand(rng, size), rand(rng, size)
    p = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
    p.grad = torch.tensor(g, dtype=torch.float64)
    torch.optim.SGD([p], lr=np.float32(lr).item()).step()
    out = k.sgd(w, g, lr)
    assert_close(out, p.detach(), "w")
    np.testing.assert_array_equal(out, w - np.float32(lr) * g)  # exactly the float32 expression
    assert out is not w


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    (4, 5, 5, 6, 3, 3, 3, 3, 1, 1, 0, 0, 4),    # groups does not divide out_c
    (3, 5, 5, 4, 3, 3, 3, 3, 1, 1, 0, 0, 2),    # groups does not divide in_c
    (3, 5, 5, 4, 3, 3, 3, 3, 1, 1, 0, 0, 0),    # groups 0
    (0, 5, 5, 4, 3, 3, 3, 3, 1, 1, 0, 0, 1),    # no channels
    (3, 5, 5, 4, 3, 3, 3, 3, 0, 1, 0, 0, 1),    # stride 0
    (3, 5, 5, 4, 3, 3, 3, 3, 1, 1, -1, 0, 1),   # negative padding
    (3, 5, 5, 4, 4, 3, 3, 3, 1, 1, 0, 0, 1),    # out_h inconsistent with the input
    (3, 2, 5, 4, 1, 3, 3, 3, 1, 1, 0, 0, 1),    # kernel larger than the input
    (3, 5, 5, 4, 3, 3, 3, 3, 1, 1, 0, 0),       # an attribute missing
])
def test_conv_geometry_errors(attrs: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        ConvGeom.from_attrs(attrs)


@pytest.mark.parametrize("attrs", [
    (2, 5, 5, 3, 3, 3, 3, 1, 1, 2, 2),          # padding more than half the kernel
    (2, 5, 5, 3, 3, 3, 3, 0, 1, 1, 1),          # stride 0
    (2, 5, 5, 2, 2, 3, 3, 1, 1, 1, 1),          # out size wrong
    (0, 5, 5, 2, 2, 2, 2, 2, 2, 0, 0),          # no channels
])
def test_pool_geometry_errors(attrs: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        PoolGeom.from_attrs(attrs)


def test_shape_and_dtype_errors() -> None:
    g = LinearGeom(3, 2)
    with pytest.raises(ValueError):
        LinearGeom(0, 2)
    with pytest.raises(ValueError, match="shape"):
        k.linear(g, np.zeros(4, np.float32), np.zeros((2, 3), np.float32), None)
    with pytest.raises(ValueError, match="float32"):
        k.linear(g, np.zeros(3), np.zeros((2, 3), np.float32), None)
    cg = ConvGeom.infer(2, 4, 4, 2, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        k.conv2d(cg, np.zeros((2, 4, 4), np.float32), np.zeros((2, 2, 3, 2), np.float32), None)
    with pytest.raises(ValueError, match="shape"):
        k.relu_grad(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError):
        k.softmax_xent(np.zeros(0, np.float32), 0)
