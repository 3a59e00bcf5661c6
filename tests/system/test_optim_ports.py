"""The optimizer state on the C runtime (issue 18 section 4: `--momentum`, `--accumulate`): plans
with momentum and gradient accumulation train on the sim device byte for byte as on the reference
executor (the fp32 demo, and an int8 model whose weights would otherwise train by the fused
CONV2D_S8_SGD_F32, with both update rules), including the velocity, the gradient sums and the step
phase; a checkpoint taken mid-cycle (phase not 0) and restored after a kill goes on exactly as an
uninterrupted device; and the Cortex-M4F firmware in QEMU trains such a plan as the reference."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "host"))

from tinyhost.compiler import compile_model, compile_tiny_training  # noqa: E402
from tinyhost.compiler.optim import PHASE, is_state  # noqa: E402
from tinyhost.device import connect  # noqa: E402
from tinyhost.link.client import DeviceClient  # noqa: E402
from tinyhost.link.transport import Link, SimProcess, open_link  # noqa: E402
from tinyhost.ops import Opcode  # noqa: E402
from tinyhost.params import pull_parameters  # noqa: E402

DEMO = "host/tinyhost/demo/basicmotions_model.py:make_model"
LR = 0.01
MOMENTUM, ACCUMULATE = 0.9, 3


def _train(dev, plan, xs, ys) -> list[tuple[float, int]]:
    return [(r.loss, r.pred) for r in (dev.train_step(x, int(y), LR)
                                       for x, y in zip(xs, ys, strict=True))]


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], exact: bool = True) -> None:
    """Bit for bit; or (fp32 plans, whose C convolutions sum in another order than numpy) within
    test_qemu.py's tolerance, the phase exactly."""
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        if exact or a[k].dtype != np.float32:
            assert np.array_equal(a[k], b[k]), k
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=0, err_msg=k,
                                       atol=1e-5 * max(float(np.max(np.abs(b[k]))), 1e-30))


def _run_both(result, xs, ys, port: str = "sim", exact: bool = True) -> dict[str, np.ndarray]:
    plan, data = result.plan, result.data
    out = {}
    for p in ("ref", port):
        dev = connect(p)
        try:
            assert dev.load_plan(plan, data)
            out[p] = (_train(dev, plan, xs, ys), pull_parameters(dev, plan))
        finally:
            dev.close()
    (ref_steps, ref_params), (steps, params) = out["ref"], out[port]
    assert [p for _, p in ref_steps] == [p for _, p in steps]  # predictions
    if exact:
        assert ref_steps == steps  # losses bit for bit
    else:
        np.testing.assert_allclose([lo for lo, _ in steps], [lo for lo, _ in ref_steps], rtol=1e-5)
    _same(ref_params, params, exact)
    return params


def test_fp32_plan_with_momentum_and_accumulation_trains_on_sim_as_ref(sim_binary,
                                                                        demo_data) -> None:
    r = compile_model(DEMO, lr=LR, momentum=MOMENTUM, accumulate=ACCUMULATE)
    xs, ys = demo_data.x_train[:11], demo_data.y_train[:11]  # 3 updates and 2 samples summed
    params = _run_both(r, xs, ys, exact=False)
    assert int(params[PHASE][0]) == 11 % ACCUMULATE
    assert any(is_state(k) and k.endswith(".grad_sum") and params[k].any() for k in params)
    assert any(k.endswith(".velocity") and params[k].any() for k in params)


@pytest.fixture(scope="module")
def synthetic_pkl(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tests/host/int8_ref.py's synthetic 16x16 int8 model and a scheme training weights (some
    rows of a conv) and biases."""
    import torch

    from int8_ref import synthetic_cfg
    d = tmp_path_factory.mktemp("optim")
    torch.save(synthetic_cfg(seed=0, size=16), d / "synthetic.pkl")
    (d / "scheme.json").write_text(json.dumps({"n_bias_update": 4, "manual_weight_idx": [6, 7],
                                               "weight_update_ratio": [0.5, 1]}))
    return d / "synthetic.pkl", d / "scheme.json"


@pytest.mark.parametrize("rule", ["round", "master"])
@pytest.mark.parametrize(("momentum", "accumulate"), [(0.9, 1), (0.0, 2), (0.9, 3)])
def test_int8_plan_with_optimizer_state_trains_on_sim_as_ref(sim_binary, synthetic_pkl, rule: str,
                                                             momentum: float,
                                                             accumulate: int) -> None:
    pkl, scheme = synthetic_pkl
    r = compile_tiny_training(pkl, 4, update=str(scheme), lr=0.05, int8_update=rule,
                              momentum=momentum, accumulate=accumulate)
    ops = [op.opcode for op in r.plan.ops]
    assert Opcode.CONV2D_S8_SGD_F32 not in ops and Opcode.LINEAR_SGD_F32 not in ops
    assert ops.count(Opcode.OPTIM_STEP_F32) == sum(
        ops.count(o) for o in (Opcode.SGD_F32, Opcode.UPDATE_S8_F32, Opcode.UPDATE_S32_F32))
    rng = np.random.default_rng(5)
    xs = rng.uniform(-1, 1, (10, 3, 16, 16)).astype(np.float32)
    ys = rng.integers(0, 4, 10)
    before = {r.plan.tensors[i].name: r.plan.constant(i) for i in r.plan.trainable}
    params = _run_both(r, xs, ys)
    moved = [k for k in params if not is_state(k) and k in before
             and not np.array_equal(params[k].reshape(-1), before[k].reshape(-1))]
    assert any("weight" in k and not k.endswith("master") for k in moved), moved


def _start(state: Path):
    sim = SimProcess(state=str(state))
    link = open_link(sim.path)
    from tinyhost.device import SerialDevice
    return sim, SerialDevice(DeviceClient(Link(link.port, link.name)))


def test_resume_mid_cycle_goes_on_as_an_uninterrupted_device(sim_binary, demo_data,
                                                             tmp_path: Path) -> None:
    """CHECKPOINT at step 7 (phase 1 of 3, a gradient sum and a velocity held), a kill, the state
    file restored: the next steps end where an uninterrupted sim ends, bit for bit."""
    r = compile_model(DEMO, lr=LR, momentum=MOMENTUM, accumulate=ACCUMULATE)
    xs, ys = demo_data.x_train[:14], demo_data.y_train[:14]
    whole = connect("sim")
    try:
        whole.load_plan(r.plan, r.data)
        want_losses = _train(whole, r.plan, xs, ys)
        want = pull_parameters(whole, r.plan)
    finally:
        whole.close()
    state = tmp_path / "sim.state"
    sim, dev = _start(state)
    try:
        dev.load_plan(r.plan, r.data)
        got_losses = _train(dev, r.plan, xs[:7], ys[:7])
        dev.checkpoint()
        assert int(pull_parameters(dev, r.plan)[PHASE][0]) == 7 % ACCUMULATE
        _train(dev, r.plan, xs[7:9], ys[7:9])  # lost by the kill
    finally:
        dev.client.link.port.close()
        sim.proc.kill()
        sim.close()
    sim, dev = _start(state)
    try:
        assert dev.info().steps == 7
        assert not dev.load_plan(r.plan, r.data)  # runs it already, from the state file
        got_losses += _train(dev, r.plan, xs[7:], ys[7:])
        got = pull_parameters(dev, r.plan)
    finally:
        dev.close()
        sim.close()
    assert got_losses == want_losses
    _same(got, want)


@pytest.mark.usefixtures("qemu_ready")
def test_qemu_trains_an_optimizer_plan_as_the_reference(demo_data) -> None:
    r = compile_model(DEMO, lr=LR, momentum=MOMENTUM, accumulate=ACCUMULATE)
    xs, ys = demo_data.x_train[:8], demo_data.y_train[:8]  # QEMU's UART is slow: 8 steps
    params = _run_both(r, xs, ys, port="qemu", exact=False)
    assert int(params[PHASE][0]) == 8 % ACCUMULATE


def test_train_resume_with_momentum_and_accumulation(sim_binary, tmp_path: Path) -> None:
    """test_state.py's `train --checkpoint-every 25 ... --resume` check (a sim killed mid-run,
    restarted from its state file) on a plan with momentum and accumulation over 3 samples: the
    checkpoints fall mid-cycle, and the resumed run still ends as the uninterrupted one."""
    sys.path.insert(0, str(Path(__file__).parent))
    import test_state
    plan = tmp_path / "optim.ttp"
    plan.write_bytes(compile_model(DEMO, lr=LR, momentum=MOMENTUM, accumulate=ACCUMULATE).data)
    test_state.test_resume_after_a_kill_ends_as_an_uninterrupted_run(sim_binary, plan, tmp_path)
