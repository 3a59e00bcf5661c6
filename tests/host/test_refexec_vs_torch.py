"""The reference executor against a PyTorch training loop (batch 1, plain SGD, cross-entropy).

For each small model (together they use every layer the compiler accepts, in every geometry the
lowering handles) and each update scheme, the plan runs in the reference executor and the same
model trains in PyTorch (float64, from the same float32 initial values) on the same samples with
the same learning rate. Per step the losses and predictions must agree; after the last step every
trainable parameter must agree within rtol 1e-5 plus atol 1e-5 * max|torch value|, and every frozen
parameter must be bit-for-bit its initial value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinyhost.compiler import compile_model
from tinyhost.compiler.capture import load_factory
from tinyhost.ops import Opcode
from tinyhost.plan import TensorKind
from tinyhost.refexec.executor import RefExecutor

RTOL = 1e-5
DELTA_TOL = 1e-4  # float32 parameters updated in float32: measured worst 1e-5 of the largest update
STEPS = 6
LR = 0.1  # differs from the plan's default lr (0.01): the step's lr must be the one used

CONV1D = """
def make_model():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv1d(3, 8, 5, stride=2, padding=2),      # 0: 3x32 -> 8x16
        nn.ReLU(),                                    # 1
        nn.MaxPool1d(3, stride=2, padding=1),         # 2: -> 8x8
        nn.Conv1d(8, 6, 3, padding=1, groups=2),      # 3: grouped
        nn.ReLU(),                                    # 4
        nn.AvgPool1d(3, stride=2, padding=1),         # 5: -> 6x4 (count_include_pad)
        nn.Conv1d(6, 6, 3, padding=1, bias=False),    # 6: no bias
        nn.AvgPool1d(2),                              # 7: -> 6x2
        nn.AdaptiveAvgPool1d(1),                      # 8
        nn.Flatten(),                                 # 9
        nn.Linear(6, 4),                              # 10
    )
    return model, torch.randn(1, 3, 32)
"""

CONV2D = """
def make_model():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2)),    # 0: 3x12x16 -> 8x6x8, non-square
        nn.ReLU(),                                            # 1
        nn.MaxPool2d(3, stride=2, padding=1),                 # 2: -> 8x3x4
        nn.Conv2d(8, 8, 3, padding=1, groups=2),              # 3: grouped
        nn.ReLU(),                                            # 4
        nn.Conv2d(8, 8, (3, 1), padding=(1, 0), groups=8, bias=False),  # 5: depthwise
        nn.ReLU(),                                            # 6
        nn.AvgPool2d(3, stride=1, padding=1),                 # 7: padded average
        nn.AdaptiveAvgPool2d((1, 2)),                         # 8: -> 8x1x2
        nn.Flatten(),                                         # 9
        nn.Linear(16, 5),                                     # 10
    )
    return model, torch.randn(1, 3, 12, 16)
"""

MEAN2D = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = self.pool(self.relu(self.conv(x)))      # 6x4x4 -> 6x2x2
        x = self.relu(self.dw(x))
        x = x.mean(dim=(2, 3))                      # global average via mean
        x = F.relu(self.fc1(x))
        return self.fc2(x)

def make_model():
    torch.manual_seed(3)
    return Net(), torch.randn(1, 2, 8, 8)
"""

MEAN1D_MLP = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 5, 3, stride=2)
        self.act = nn.ReLU()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(5, 6, bias=False)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = self.act(self.conv(x)).mean(-1)         # 5x9 -> 5
        return self.head(self.act(self.fc(self.flat(x))))

def make_model():
    torch.manual_seed(4)
    return Net(), torch.randn(1, 4, 19)
"""

MLP = """
def make_model():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(24, 10), nn.ReLU(), nn.Linear(10, 7))
    return model, torch.randn(1, 2, 3, 4)
"""

MODELS = {"conv1d": CONV1D, "conv2d": CONV2D, "mean2d": MEAN2D, "mean1d_mlp": MEAN1D_MLP,
          "mlp": MLP}


@dataclass
class Case:
    model: str
    update: str
    trainable: set[str]  # the parameter names the scheme must select


CASES = [
    Case("conv1d", "full", {"0.weight", "0.bias", "3.weight", "3.bias", "6.weight",
                            "10.weight", "10.bias"}),
    Case("conv2d", "full", {"0.weight", "0.bias", "3.weight", "3.bias", "5.weight",
                            "10.weight", "10.bias"}),
    Case("mean2d", "full", {"conv.weight", "conv.bias", "dw.weight", "dw.bias", "fc1.weight",
                            "fc1.bias", "fc2.weight", "fc2.bias"}),
    Case("mean1d_mlp", "full", {"conv.weight", "conv.bias", "fc.weight", "head.weight",
                                "head.bias"}),
    Case("mlp", "full", {"1.weight", "1.bias", "3.weight", "3.bias"}),
    Case("conv1d", "last:1", {"10.weight", "10.bias"}),
    Case("conv2d", "last:2", {"5.weight", "10.weight", "10.bias"}),
    Case("conv1d", "bias-only", {"0.bias", "3.bias", "10.bias"}),
    Case("conv2d", "bias-only", {"0.bias", "3.bias", "10.bias"}),
    Case("mean2d", "bias-only", {"conv.bias", "dw.bias", "fc1.bias", "fc2.bias"}),
    # Names: whole layers and single parameters; frozen layers sit between trainable ones.
    Case("conv2d", "3,10.weight", {"3.weight", "3.bias", "10.weight"}),
    Case("conv1d", "0.bias,6", {"0.bias", "6.weight"}),
    Case("mean2d", "conv.weight, fc2", {"conv.weight", "fc2.weight", "fc2.bias"}),
    Case("mean1d_mlp", "fc", {"fc.weight"}),
]


@pytest.fixture(scope="module")
def model_specs(model_file) -> dict[str, str]:
    return {name: model_file(src) for name, src in MODELS.items()}


def assert_close(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    atol = RTOL * float(np.max(np.abs(ref))) if ref.size else 0.0
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=atol, err_msg=what)


def train_both(spec: str, update: str, lr: float | None, steps: int = STEPS, seed: int = 0):
    result = compile_model(spec, update=update, lr=0.01)
    plan = result.plan
    model, example = load_factory(spec)
    initial = {plan.tensors[i].name: plan.constant(i).copy() for i in plan.parameters}
    state = model.state_dict()
    assert set(initial) == set(state), "plan parameters are not the model's state_dict"
    for name, value in state.items():  # the blob holds the model's initial values, exactly
        np.testing.assert_array_equal(initial[name], value.numpy(), err_msg=name)
    trainable = {plan.tensors[i].name for i in plan.trainable}

    model = model.double()
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    opt = torch.optim.SGD([p for n, p in model.named_parameters() if n in trainable],
                          lr=plan.default_lr if lr is None else lr, momentum=0.0)

    ex = RefExecutor(plan)
    rng = np.random.default_rng(seed)
    shape = tuple(example.shape[1:])
    samples = []
    for step in range(steps):
        x = rng.standard_normal(shape).astype(np.float32)
        label = int(rng.integers(plan.num_classes))
        samples.append(x)
        got = ex.train_step(x, label) if lr is None else ex.train_step(x, label, lr)

        logits = model(torch.from_numpy(x).double()[None])
        loss = F.cross_entropy(logits, torch.tensor([label]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        np.testing.assert_allclose(got.loss, loss.item(), rtol=RTOL,
                                   err_msg=f"loss at step {step + 1}")
        assert got.pred == int(logits.argmax()), f"prediction at step {step + 1}"

    final = {n: p.detach().numpy() for n, p in model.named_parameters()}
    return plan, ex, initial, final, trainable, samples, model


@pytest.mark.parametrize("case", CASES, ids=[f"{c.model}-{c.update}" for c in CASES])
def test_refexec_matches_torch_sgd(case: Case, model_specs: dict[str, str]) -> None:
    plan, ex, initial, final, trainable, samples, model = train_both(
        model_specs[case.model], case.update, LR)
    assert trainable == case.trainable, f"--update {case.update} selected {sorted(trainable)}"
    for i in plan.parameters:
        t = plan.tensors[i]
        got = ex.read_tensor(i)
        if t.name in trainable:
            assert t.kind == TensorKind.PARAM_TRAINABLE
            assert not np.array_equal(got, initial[t.name]), f"{t.name} did not train"
            assert_close(got, final[t.name].astype(np.float32), t.name)
            # The updates themselves (final - initial), which the float32 parameters' own
            # rounding would hide from the check above: a wrong gradient shows here first.
            delta_got = got.astype(np.float64) - initial[t.name]
            delta_ref = final[t.name] - initial[t.name]
            np.testing.assert_allclose(delta_got, delta_ref, rtol=0,
                                       atol=DELTA_TOL * float(np.max(np.abs(delta_ref))),
                                       err_msg=f"update of {t.name}")
        else:
            assert t.kind == TensorKind.PARAM_FROZEN and not t.in_arena
            np.testing.assert_array_equal(got, initial[t.name], err_msg=f"frozen {t.name}")
    # Inference with the trained parameters agrees too.
    with torch.no_grad():
        for x in samples:
            assert ex.evaluate(x) == int(model(torch.from_numpy(x).double()[None]).argmax())


def test_default_lr_is_the_plans(model_specs: dict[str, str]) -> None:
    """train_step without an lr uses the plan's default (compiled as 0.01)."""
    plan, ex, _, final, trainable, _, _ = train_both(model_specs["mlp"], "full", None)
    assert np.float32(plan.default_lr) == np.float32(0.01)
    for i in plan.trainable:
        assert_close(ex.read_tensor(i), final[plan.tensors[i].name].astype(np.float32),
                     plan.tensors[i].name)


def test_backward_stops_at_first_trainable_layer(model_specs: dict[str, str]) -> None:
    """`last:1` on the conv1d model trains only the Linear head: no conv backward op at all, and
    no gradient tensor for any activation before the head's input."""
    plan = compile_model(model_specs["conv1d"], update="last:1").plan
    backward = plan.ops[plan.n_forward:]
    opcodes = [op.opcode for op in backward]
    assert opcodes == [Opcode.SOFTMAX_XENT_F32, Opcode.LINEAR_GRAD_WEIGHT_F32, Opcode.SGD_F32,
                       Opcode.SGD_F32], [o.name for o in opcodes]
    grads = [t.name for t in plan.tensors if t.kind == TensorKind.GRADIENT]
    assert sorted(grads) == sorted(["grad:" + plan.tensors[plan.bindings.logits].name,
                                    "grad:10.weight", "grad:10.bias"]), grads


SHARED = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Conv1d(2, 4, 3, padding=1)
        self.conv = nn.Conv1d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.pre(x))
        x = torch.relu(self.conv(x))
        x = torch.relu(self.conv(x))                # the same layer again: shared weights
        return self.fc(x.mean(-1))

def make_model():
    torch.manual_seed(6)
    return Net(), torch.randn(1, 2, 10)
"""


def test_shared_layer_is_refused_or_trained_correctly(model_file) -> None:
    """A layer used twice: the compiler must either refuse it, naming the layer, or train it
    exactly as PyTorch does (gradients of both uses summed, one update after both)."""
    from tinyhost.compiler import CompileError
    spec = model_file(SHARED)
    try:
        compile_model(spec)
    except CompileError as e:
        assert "conv" in str(e), str(e)
        return
    plan, ex, initial, final, trainable, _, _ = train_both(spec, "full", 0.5)
    for i in plan.trainable:
        name = plan.tensors[i].name
        delta_got = ex.read_tensor(i).astype(np.float64) - initial[name]
        delta_ref = final[name] - initial[name]
        np.testing.assert_allclose(delta_got, delta_ref, rtol=0,
                                   atol=DELTA_TOL * float(np.max(np.abs(delta_ref))),
                                   err_msg=f"update of {name}")
