"""The fp32 layers of issue 15 (BatchNorm folded, Dropout, ReLU6, LeakyReLU, Sigmoid, Tanh,
Hardswish, residual adds, channel concatenation, depthwise and grouped convs, global max and
average pooling, Conv1d, a causal Conv1d stack) trained on the C runtime, `--port sim` and the
Cortex-M4F build under QEMU, step for step as on `--port ref`: the same predictions, losses within
1e-5, every trained parameter within 1e-5 of its largest value, frozen ones untouched, then the
same inference."""
from __future__ import annotations

import numpy as np
import pytest

from tinyhost.compiler import compile_model
from tinyhost.device import Device, connect
from tinyhost.params import pull_parameters
from tinyhost.plan import Plan

RTOL = 1e-5
STEPS = 20
LR = 0.05

LAYERS_2D = """
class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.Hardswish()

    def forward(self, x):
        return x + self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.act0 = nn.ReLU6()
        self.block = Block(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.leaky = nn.LeakyReLU(0.1)
        self.pw = nn.Conv2d(8, 4, 1)
        self.pw2 = nn.Conv2d(8, 4, 1, groups=2)
        self.sig = nn.Sigmoid()
        self.tanh = nn.Tanh()
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(32, 6)
        self.bn1 = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        x = self.block(self.act0(self.bn0(self.stem(x))))
        y = torch.cat([self.leaky(self.dw(x)), self.sig(self.pw(x)), self.tanh(self.pw2(x))], 1)
        y = torch.cat([self.pool(y), self.avg(y)], 1).flatten(1)
        return self.head(self.bn1(self.fc(self.drop(y))))


def make_model():
    torch.manual_seed(0)
    model = Net()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model, torch.randn(1, 3, 12, 12)
"""

SEQ_1D = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 5, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 8, 3, padding=1, groups=4)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = F.relu6(self.bn(self.c1(x)))
        x = torch.tanh(self.c2(x)) + x
        return self.head(torch.cat([x.mean(-1), torch.amax(x, -1)], 1))


def make_model():
    torch.manual_seed(1)
    return Net(), torch.randn(1, 3, 24)
"""


CAUSAL = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(6, 8, 3, padding=2)
        self.c2 = nn.Conv1d(8, 8, 3)
        self.head = nn.Linear(8, 6)

    def forward(self, x):
        x = F.relu(self.c1(x)[..., :-2])                 # causal: crop the future
        x = torch.sigmoid(self.c2(F.pad(x, (2, 0)))) + x  # causal: pad the past
        return self.head(x[..., -1:].flatten(1))


def make_model():
    torch.manual_seed(2)
    return Net(), torch.randn(1, 6, 16)
"""


@pytest.fixture(scope="module")
def layer_specs(model_file) -> dict[str, str]:
    return {"2d": model_file(LAYERS_2D), "1d": model_file(SEQ_1D),
            "causal": model_file(CAUSAL)}


def train_against_ref(dev: Device, plan: Plan, data: bytes, shape: tuple[int, ...]) -> None:
    ref = connect("ref")
    assert dev.load_plan(plan, data) and ref.load_plan(plan, data)
    initial = pull_parameters(ref, plan)
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((STEPS, *shape)).astype(np.float32)
    labels = rng.integers(0, plan.num_classes, STEPS)
    for k, (x, label) in enumerate(zip(xs, labels, strict=True)):
        a, b = dev.train_step(x, int(label), LR), ref.train_step(x, int(label), LR)
        assert a.pred == b.pred, f"step {k + 1}: pred {a.pred} != {b.pred}"
        np.testing.assert_allclose(a.loss, b.loss, rtol=RTOL, err_msg=f"loss at step {k + 1}")
    got, want = pull_parameters(dev, plan), pull_parameters(ref, plan)
    assert set(got) == set(want)
    trained = {plan.tensors[i].name for i in plan.trainable}
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=0, atol=RTOL * float(np.max(np.abs(w))),
                                   err_msg=name)
        assert np.array_equal(w, initial[name]) != (name in trained), name
    for x in xs[:6]:
        assert dev.evaluate(x) == ref.evaluate(x)


@pytest.mark.parametrize("model,update", [("2d", "full"), ("2d", "last:4"), ("1d", "full"),
                                          ("causal", "full")])
def test_layers_sim_equals_ref(sim_binary, layer_specs, model: str, update: str) -> None:
    result = compile_model(layer_specs[model], update=update)
    shape = tuple(result.plan.meta["input_shape"])
    dev = connect("sim")
    try:
        train_against_ref(dev, result.plan, result.data, shape)
    finally:
        dev.close()


@pytest.mark.usefixtures("qemu_ready")  # tests/system/conftest.py
@pytest.mark.parametrize("model", ["2d", "causal"])
def test_layers_qemu_equals_ref(layer_specs, model: str) -> None:
    result = compile_model(layer_specs[model])
    dev = connect("qemu")
    try:
        train_against_ref(dev, result.plan, result.data, tuple(result.plan.meta["input_shape"]))
    finally:
        dev.close()
