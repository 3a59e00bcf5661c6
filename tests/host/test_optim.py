"""The optimizer state (issue 18 section 4): OPTIM_STEP_F32 and STEP_PHASE_S32 against independent
references (torch.optim.SGD with momentum; the mean gradient in float64), the compiler's
`--momentum` / `--accumulate` plans trained on the reference executor against a PyTorch loop, and
the compile report's cost of the state."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinyhost.compiler import CompileError, compile_model
from tinyhost.compiler.capture import load_factory
from tinyhost.compiler.optim import MOMENTUM, Optimizer, is_state
from tinyhost.compiler.report import format_report
from tinyhost.ops import Opcode
from tinyhost.plan import TensorKind
from tinyhost.refexec.executor import RefExecutor
from tinyhost.refexec.kernels_optim import applies, next_phase, optim_step
from tinyhost.refexec.registry import NonFiniteStep

DEMO = "host/tinyhost/demo/basicmotions_model.py:make_model"


def _sgd_f32(w: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    return (w - np.float32(lr) * g).astype(np.float32)  # SGD_F32's rule


@pytest.mark.parametrize("seed", range(4))
def test_momentum_is_torch_sgd(seed: int) -> None:
    """Velocity then SGD_F32, step after step, is torch.optim.SGD(momentum=M) on random shapes."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 9, size=int(rng.integers(1, 4))))
    m, lr = float(rng.choice([0.5, 0.9, 0.99])), float(rng.uniform(0.001, 0.1))
    w = rng.standard_normal(shape).astype(np.float32)
    p = torch.nn.Parameter(torch.from_numpy(w.astype(np.float64)))
    opt = torch.optim.SGD([p], lr=lr, momentum=m)
    v = np.zeros(w.size, np.float32)
    for _ in range(7):
        g = rng.standard_normal(shape).astype(np.float32)
        s = optim_step(g.reshape(-1), None, v, 0, 1, np.float32(m))
        assert s.v is not None
        v = s.v
        w = _sgd_f32(w, s.g.reshape(shape), lr)
        p.grad = torch.from_numpy(g.astype(np.float64))
        opt.step()
    np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_accumulation_applies_the_mean_every_nth_sample(n: int) -> None:
    rng = np.random.default_rng(n)
    size = int(rng.integers(1, 50))
    acc = np.zeros(size, np.float32)
    phase, grads = 0, []
    for step in range(3 * n):
        g = rng.standard_normal(size).astype(np.float32)
        grads.append(g.astype(np.float64))
        s = optim_step(g, acc, None, phase, n, None)
        assert s.acc is not None
        acc = s.acc
        if step % n == n - 1:
            assert applies(phase, n)
            np.testing.assert_allclose(s.g, np.mean(grads, axis=0), rtol=1e-5, atol=1e-6)
            assert not acc.any()
            grads = []
        else:
            assert not applies(phase, n) and not s.g.any()
            np.testing.assert_allclose(acc, np.sum(grads, axis=0), rtol=1e-5, atol=1e-6)
        phase = next_phase(phase, n)
    assert phase == 0


def test_phase_outside_its_range_applies_and_restarts() -> None:
    assert applies(7, 3) and applies(-1, 3) and next_phase(7, 3) == 0 and next_phase(-2, 3) == 0


def test_accumulation_with_momentum_is_torch_sgd_on_mean_gradients() -> None:
    rng = np.random.default_rng(9)
    n, m, lr, size = 3, 0.9, 0.05, 20
    w = rng.standard_normal(size).astype(np.float32)
    p = torch.nn.Parameter(torch.from_numpy(w.astype(np.float64)))
    opt = torch.optim.SGD([p], lr=lr, momentum=m)
    acc, v = np.zeros(size, np.float32), np.zeros(size, np.float32)
    for step in range(4 * n):
        g = rng.standard_normal(size).astype(np.float32)
        s = optim_step(g, acc, v, step % n, n, np.float32(m))
        assert s.acc is not None and s.v is not None
        acc, v = s.acc, s.v
        w = _sgd_f32(w, s.g, lr)
        # torch: the batch's mean gradient (loss / n summed over backward passes), one step
        p.grad = (torch.zeros_like(p) if p.grad is None or step % n == 0 else p.grad) \
            + torch.from_numpy(g.astype(np.float64)) / n
        if step % n == n - 1:
            opt.step()
    np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_a_nonfinite_state_is_refused() -> None:
    big = np.full(3, 3e38, np.float32)
    with np.errstate(over="ignore"), pytest.raises(NonFiniteStep):
        optim_step(big, big.copy(), None, 0, 2, None)
    with np.errstate(over="ignore"), pytest.raises(NonFiniteStep):
        optim_step(big, None, big.copy(), 0, 1, np.float32(0.9))


# --- the compiler's plans -------------------------------------------------------------------------

def _torch_train(model: torch.nn.Module, xs: np.ndarray, ys: np.ndarray, lr: float, m: float,
                 n: int) -> list[float]:
    """batch 1 samples, gradients summed over n samples / n, one SGD(momentum=m) step per n."""
    model = model.double()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=m)
    losses = []
    opt.zero_grad()
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        out = model(torch.from_numpy(x[None].astype(np.float64)))
        loss = F.cross_entropy(out, torch.tensor([int(y)]))
        (loss / n).backward()
        losses.append(loss.item())
        if k % n == n - 1:
            opt.step()
            opt.zero_grad()
    return losses


@pytest.mark.parametrize(("m", "n"), [(0.9, 1), (0.0, 3), (0.5, 2)])
def test_plan_trains_as_torch_sgd(m: float, n: int) -> None:
    """The demo model's plan with --momentum/--accumulate on the reference executor, and PyTorch
    (float64, same initial values, same samples) with SGD(momentum) over mean gradients of n
    samples: the same losses step by step and the same parameters at the end."""
    lr = 0.01
    data = np.load("host/tinyhost/demo/basicmotions.npz")
    xs, ys = data["x_train"][:12].astype(np.float32), data["y_train"][:12]
    plan = compile_model(DEMO, lr=lr, momentum=m, accumulate=n).plan
    assert plan.meta["optimizer"] == {"momentum": m, "accumulate": n}
    ex = RefExecutor(plan)
    losses = [ex.train_step(x, int(y)).loss for x, y in zip(xs, ys, strict=True)]
    model, _ = load_factory(DEMO)
    ref = _torch_train(model, xs, ys, lr, m, n)
    np.testing.assert_allclose(losses, ref, rtol=1e-4, atol=1e-5)
    state = dict(model.state_dict())
    for i in plan.trainable:
        t = plan.tensors[i]
        if is_state(t.name):
            continue
        want = state[t.name].numpy()
        np.testing.assert_allclose(ex.read_tensor(i), want, rtol=1e-4,
                                   atol=1e-5 * float(np.abs(want).max()), err_msg=t.name)


def test_plan_holds_the_state_and_its_cost() -> None:
    base = compile_model(DEMO)
    r = compile_model(DEMO, momentum=0.9, accumulate=4)
    plan = r.plan
    ops = [op.opcode for op in plan.ops]
    n_updates = ops.count(Opcode.SGD_F32)
    assert ops.count(Opcode.OPTIM_STEP_F32) == n_updates and ops[-1] == Opcode.STEP_PHASE_S32
    params = sum(plan.tensors[i].numel for i in base.plan.trainable)
    states = [plan.tensors[i] for i in plan.trainable if is_state(plan.tensors[i].name)]
    assert all(t.kind == TensorKind.PARAM_TRAINABLE for t in states)
    assert sum(t.nbytes for t in states) == 2 * 4 * params + 4  # velocity + sum + phase
    assert r.report.optimizer is not None
    assert r.report.optimizer["state_bytes"] == 2 * 4 * params + 4
    assert r.report.trainable_params == params  # the state is not a parameter
    text = format_report(r.report)
    assert "momentum 0.9" in text and "accumulate 4" in text and "velocity" in text
    assert base.report.optimizer is None and "momentum" not in format_report(base.report)
    assert "optimizer" not in base.plan.meta


@pytest.mark.parametrize(("m", "n", "words"), [(1.0, 1, "--momentum"), (-0.1, 1, "--momentum"),
                                                (float("nan"), 1, "--momentum"),
                                                (0.0, 0, "--accumulate")])
def test_bad_options_are_refused(m: float, n: int, words: str) -> None:
    with pytest.raises(CompileError, match=words):
        compile_model(DEMO, momentum=m, accumulate=n)


def test_optimizer_off_is_no_state() -> None:
    assert not Optimizer().stateful and Optimizer(0.9).stateful and Optimizer(0, 2).stateful


def test_push_of_a_state_dict_restarts_the_optimizer_state() -> None:
    """pull's state_dict holds the model's parameters only; pushing it back zeroes the velocity,
    the gradient sums and the phase (a new cycle), and keeps the parameters."""
    from tinyhost.device import connect
    from tinyhost.params import model_state, pull_parameters, push_parameters
    r = compile_model(DEMO, momentum=0.9, accumulate=3)
    data = np.load("host/tinyhost/demo/basicmotions.npz")
    dev = connect("ref")
    dev.load_plan(r.plan, r.data)
    for x, y in zip(data["x_train"][:5], data["y_train"][:5], strict=True):
        dev.train_step(x.astype(np.float32), int(y), 0.01)
    pulled = pull_parameters(dev, r.plan)
    assert pulled["optim:phase"][0] == 2 and any(
        pulled[k].any() for k in pulled if k.endswith(".velocity"))
    state = model_state(r.plan, pulled)
    assert not any(is_state(k) for k in state)
    push_parameters(dev, r.plan, state)
    after = pull_parameters(dev, r.plan)
    for k, v in after.items():
        if k == MOMENTUM:  # a constant of the plan
            assert v[0] == np.float32(0.9)
        elif is_state(k):
            assert not v.any(), k
        else:
            np.testing.assert_array_equal(v, pulled[k], err_msg=k)


def test_no_reorder_gives_the_same_training() -> None:
    """--no-reorder moves the updates after the backward pass; each OPTIM_STEP_F32 stays right
    before its update, and the numbers do not change."""
    data = np.load("host/tinyhost/demo/basicmotions.npz")
    out = []
    for reorder in (True, False):
        plan = compile_model(DEMO, lr=0.01, momentum=0.5, accumulate=2, reorder=reorder).plan
        ops = plan.ops
        for k, op in enumerate(ops):
            if op.opcode == Opcode.OPTIM_STEP_F32:
                assert ops[k + 1].opcode == Opcode.SGD_F32 and ops[k + 1].inputs[1] == op.inputs[0]
        ex = RefExecutor(plan)
        for x, y in zip(data["x_train"][:6], data["y_train"][:6], strict=True):
            ex.train_step(x.astype(np.float32), int(y))
        out.append({plan.tensors[i].name: ex.read_tensor(i) for i in plan.trainable})
    assert out[0].keys() == out[1].keys()
    for k in out[0]:
        np.testing.assert_array_equal(out[0][k], out[1][k], err_msg=k)
