"""The fp32 layers of issue 15 against PyTorch autograd: activations (ACT_F32 / ACT_GRAD_F32),
channel concatenation, residual adds, BatchNorm folding, Dropout, global max pooling.

Per op: the reference kernels against torch's forward and autograd backward on random shapes. Per
model: the compiled plan trains in the reference executor as the same model trains in PyTorch
(float64, BatchNorm fused into its conv as the compiler does: frozen statistics); before the first
update the plan's loss is the unfused model's in eval mode. `tinyhost pull`'s state dict loads into
the user's own model (BatchNorm keys included) and predicts as the plan does.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from tinyhost.compiler import compile_model, compile_quantized
from tinyhost.compiler.capture import load_factory
from tinyhost.compiler.errors import CompileError
from tinyhost.device import connect
from tinyhost.ops import ActFunc, Opcode
from tinyhost.params import model_state, pull_parameters
from tinyhost.refexec.executor import RefExecutor
from tinyhost.refexec.kernels_f32 import act, act_grad, pad_w

REPO = Path(__file__).resolve().parents[2]
RTOL = 1e-5
DELTA_TOL = 1e-4  # as test_refexec_vs_torch: float32 updates against float64 ones
STEPS = 6
LR = 0.05

TORCH_ACT = {
    ActFunc.RELU6: lambda x, a: F.relu6(x),
    ActFunc.LEAKY_RELU: lambda x, a: F.leaky_relu(x, a),
    ActFunc.SIGMOID: lambda x, a: torch.sigmoid(x),
    ActFunc.TANH: lambda x, a: torch.tanh(x),
    ActFunc.HARDSWISH: lambda x, a: F.hardswish(x),
}
BY_OUTPUT = (ActFunc.RELU6, ActFunc.SIGMOID, ActFunc.TANH)  # ACT_GRAD_F32 reads y, else x


@pytest.mark.parametrize("func", list(ActFunc), ids=[f.name for f in ActFunc])
@pytest.mark.parametrize("seed", range(3))
def test_activation_matches_torch_autograd(func: ActFunc, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 9, int(rng.integers(1, 4))))
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    x.flat[: min(x.size, 4)] = [-3.0, 3.0, 0.0, 6.0][: min(x.size, 4)]  # the kinks
    alpha = np.float32(rng.uniform(0.01, 0.3))
    dy = rng.standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    yt = TORCH_ACT[func](xt, float(alpha))
    (dxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(dy.astype(np.float64)))
    y = act(func, x, alpha)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    dx = act_grad(func, y if func in BY_OUTPUT else x, dy, alpha)
    np.testing.assert_allclose(dx, dxt.numpy(), rtol=1e-5, atol=1e-6)


def test_act_func_numbers_match_the_c_header() -> None:
    header = (REPO / "firmware/runtime/include/tt/tt_kernels_f32.h").read_text()
    c = {m[1]: int(m[2]) for m in re.finditer(r"TT_ACT_(\w+) = (\d+)", header)}
    assert c == {f.name: int(f) for f in ActFunc}


# -- whole models ---------------------------------------------------------------------------------
ALL_LAYERS = """
class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.Hardswish()

    def forward(self, x):
        return x + self.act(self.bn(self.conv(x)))          # residual add


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.act0 = nn.ReLU6()
        self.block = Block(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)    # depthwise
        self.leaky = nn.LeakyReLU(0.1)
        self.pw = nn.Conv2d(8, 4, 1)
        self.pw2 = nn.Conv2d(8, 4, 1, groups=2)              # grouped
        self.sig = nn.Sigmoid()
        self.tanh = nn.Tanh()
        self.pool = nn.AdaptiveMaxPool2d(1)                  # global max pool
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(16, 6)
        self.bn1 = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = self.block(self.act0(self.bn0(self.stem(x))))
        y = torch.cat([self.leaky(self.dw(x)), self.sig(self.pw(x)), self.tanh(self.pw2(x))], 1)
        y = self.drop(self.pool(y).flatten(1))
        return self.head(self.bn1(self.fc(y)))


def make_model():
    torch.manual_seed(0)
    return randomize_bn(Net()), torch.randn(1, 3, 12, 12)
"""

SEQ1D = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, padding=1)
        self.bn = nn.BatchNorm1d(6)
        self.c2 = nn.Conv1d(6, 6, 3, padding=1, groups=3)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        x = torch.tanh(self.bn(self.c1(x)))               # functional activation
        x = torch.sigmoid(self.c2(x)) + x                  # residual add
        y = torch.cat([x.mean(-1), torch.amax(x, -1)], 1)  # global average and max pooling
        return self.head(F.leaky_relu(y))


def make_model():
    torch.manual_seed(1)
    return randomize_bn(Net()), torch.randn(1, 4, 10)
"""

CAUSAL = """
class CausalConv(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.crop = k - 1
        self.conv = nn.Conv1d(cin, cout, k, padding=k - 1)

    def forward(self, x):
        return self.conv(x)[..., :-self.crop]          # the crop form


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = CausalConv(5, 8, 3)
        self.c2 = nn.Conv1d(8, 8, 3)
        self.head = nn.Linear(8, 5)

    def forward(self, x):                               # x: one-hot characters, 5 x 12
        x = F.relu(self.c1(x))
        x = torch.tanh(self.c2(F.pad(x, (2, 0)))) + x   # the pad form, and a residual
        return self.head(x[..., -1:].flatten(1))        # the last position predicts the next


def make_model():
    torch.manual_seed(2)
    return Net(), torch.randn(1, 5, 12)
"""

PRELUDE = """
def randomize_bn(model):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model
"""


@pytest.fixture(scope="module")
def specs(model_file) -> dict[str, str]:
    return {"all": model_file(PRELUDE + ALL_LAYERS), "seq1d": model_file(PRELUDE + SEQ1D),
            "causal": model_file(CAUSAL)}


def fused_like_the_plan(model: nn.Module, folds: list[dict]) -> nn.Module:
    """The model with each BatchNorm the plan folded fused into its layer (frozen statistics)."""
    model.eval()
    for fold in folds:
        layer, bn = model.get_submodule(fold["layer"]), model.get_submodule(fold["bn"])
        fused = (fuse_linear_bn_eval(layer, bn) if isinstance(layer, nn.Linear)
                 else fuse_conv_bn_eval(layer, bn))
        for path, new in ((fold["layer"], fused), (fold["bn"], nn.Identity())):
            parent, _, name = path.rpartition(".")
            setattr(model.get_submodule(parent), name, new)
    return model


@pytest.mark.parametrize("name,update", [("all", "full"), ("all", "last:3"),
                                         ("seq1d", "full"), ("seq1d", "bias-only"),
                                         ("causal", "full"), ("causal", "c1")])
def test_model_trains_as_torch(specs: dict[str, str], name: str, update: str) -> None:
    result = compile_model(specs[name], update=update)
    plan = result.plan
    model, example = load_factory(specs[name])
    model.eval()
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal(example.shape[1:]).astype(np.float32)
    with torch.no_grad():  # the unfused model: folding changed nothing before training
        want0 = F.cross_entropy(model(torch.from_numpy(x0)[None]), torch.tensor([0])).item()

    fused = fused_like_the_plan(model, plan.meta.get("batchnorm_folded", [])).double()
    trainable = {plan.tensors[i].name for i in plan.trainable}
    params = dict(fused.named_parameters())
    assert trainable <= set(params)
    for n, p in params.items():
        p.requires_grad_(n in trainable)
    opt = torch.optim.SGD([params[n] for n in sorted(trainable)], lr=LR)
    initial = {plan.tensors[i].name: plan.constant(i).copy() for i in plan.trainable}

    ex = RefExecutor(plan)
    for step in range(STEPS):
        x = x0 if step == 0 else rng.standard_normal(example.shape[1:]).astype(np.float32)
        label = int(rng.integers(plan.num_classes)) if step else 0
        got = ex.train_step(x, label, LR)
        logits = fused(torch.from_numpy(x).double()[None])
        loss = F.cross_entropy(logits, torch.tensor([label]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            np.testing.assert_allclose(got.loss, want0, rtol=RTOL)
        np.testing.assert_allclose(got.loss, loss.item(), rtol=RTOL, err_msg=f"step {step + 1}")
        assert got.pred == int(logits.argmax())
    for i in plan.trainable:
        t = plan.tensors[i]
        ref = params[t.name].detach().numpy()
        delta_got = ex.read_tensor(i).astype(np.float64) - initial[t.name]
        delta_ref = ref - initial[t.name]
        assert np.abs(delta_ref).max() > 0, f"{t.name} did not train"
        np.testing.assert_allclose(delta_got, delta_ref, rtol=0,
                                   atol=DELTA_TOL * float(np.abs(delta_ref).max()),
                                   err_msg=f"update of {t.name}")


def test_plan_uses_the_new_ops(specs: dict[str, str]) -> None:
    plan = compile_model(specs["all"]).plan
    opcodes = {op.opcode for op in plan.ops}
    assert {Opcode.ACT_F32, Opcode.ACT_GRAD_F32, Opcode.CONCAT_F32, Opcode.CONCAT_GRAD_F32,
            Opcode.ADD_F32} <= opcodes
    notes = " ".join(plan.meta["layer_notes"])
    assert "BatchNorm bn0 folded into stem" in notes and "frozen" in notes
    assert "Dropout (drop) is the identity on the device" in notes
    names = {t.name for t in plan.tensors}
    assert not any(n.startswith(("bn0.", "bn1.", "block.bn.")) for n in names)


def test_pulled_state_loads_into_the_users_model(specs: dict[str, str]) -> None:
    """A trained plan's parameters, as `tinyhost pull` saves them, load strictly into the user's
    own (unfused) model, which then predicts what the plan predicts."""
    result = compile_model(specs["all"])
    dev = connect("ref")
    assert dev.load_plan(result.plan, result.data)
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((8, 3, 12, 12)).astype(np.float32)
    for k, x in enumerate(xs):
        dev.train_step(x, k % 3, LR)
    state = model_state(result.plan, pull_parameters(dev, result.plan))
    model, _ = load_factory(specs["all"])
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    model.eval()
    ex = RefExecutor(result.plan)
    for i in result.plan.trainable:
        ex.view(i)[...] = dev.read_tensor(i).reshape(-1)
    with torch.no_grad():
        for x in xs:
            ex.set_input(x)
            ex.run(result.plan.ops[:result.plan.n_forward])
            want = ex.view(result.plan.bindings.logits)
            got = model(torch.from_numpy(x)[None])[0].numpy()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# -- what is refused, and how ---------------------------------------------------------------------
def compile_error(model_file, body: str, **kw: object) -> str:
    spec = model_file(PRELUDE + body)
    with pytest.raises(CompileError) as ei:
        (compile_quantized(spec, **kw) if kw else compile_model(spec))
    return str(ei.value)


def test_unsupported_layer_names_the_modes(model_file) -> None:
    msg = compile_error(model_file, """
def make_model():
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(32, 2)), \\
        torch.randn(1, 2, 10)
""")
    assert "unsupported layer GELU at '1' in a fp32 plan" in msg
    for layer in ("BatchNorm2d", "Dropout", "ReLU6", "LeakyReLU", "Sigmoid", "Tanh", "Hardswish",
                  "AdaptiveMaxPool2d", "residual adds", "torch.cat"):
        assert layer in msg, msg
    assert "--int8 does not accept GELU either" in msg


def test_int8_error_says_fp32_would_accept(model_file) -> None:
    msg = compile_error(model_file, """
def make_model():
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(32, 2)), \\
        torch.randn(1, 2, 10)
""", calib=np.zeros((2, 2, 10), np.float32))
    assert "unsupported layer Sigmoid at '1' in a --int8 plan" in msg
    assert "fp32 would accept Sigmoid" in msg


@pytest.mark.parametrize("body,words", [
    ("nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.BatchNorm1d(4), nn.Flatten(), "
     "nn.Linear(32, 2))", "BatchNorm is supported only right after a Conv or Linear"),
    ("Net(lambda y: F.hardtanh(y, -1.0, 1.0))", "only ReLU6 (hardtanh(0, 6))"),
    ("Net(lambda y: torch.cat([y, y], 2))", "only channel concatenation (dim 1)"),
    ("Net(lambda y: y + 1.0)", "only the sum of two tensors"),
])
def test_refused_forms_are_named(model_file, body: str, words: str) -> None:
    msg = compile_error(model_file, f"""
class Net(nn.Module):
    def __init__(self, fn=None):
        super().__init__()
        self.c = nn.Conv1d(2, 4, 3)
        self.fn = fn

    def forward(self, x):
        y = self.fn(self.c(x))
        return y.mean(-1)


def make_model():
    return {body}, torch.randn(1, 2, 10)
""")
    assert words in msg, msg


def test_causal_conv_sees_no_future() -> None:
    """PAD_W_F32 as the causal conv uses it: the prediction at the last position does not change
    when only earlier inputs are kept, and the crop/pad pair are each other's adjoint."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    padded = pad_w(x, 10, 0, 2)
    np.testing.assert_array_equal(padded[:, :2], 0)
    np.testing.assert_array_equal(padded[:, 2:], x)
    np.testing.assert_array_equal(pad_w(padded, 8, 2, 0), x)
    dy = rng.standard_normal((3, 10)).astype(np.float32)
    # <pad(x), dy> == <x, crop(dy)>: the backward op is the forward's adjoint
    np.testing.assert_allclose(float((padded * dy).sum()), float((x * pad_w(dy, 8, 2, 0)).sum()),
                               rtol=1e-6)
