"""The bare-metal Cortex-M4F firmware (firmware/ports/baremetal) in QEMU's mps2-an386 over
`--port qemu`: it trains the demo plan exactly as the numpy reference does, reports its board and
costs in instructions (deterministic under -icount), refuses a plan its 256 KB of RAM cannot hold,
and its MPU turns stray accesses and stack overflows into a reported fault and an exit status.

QEMU's UART moves ~16 KiB/s, so this trains 20 steps (2.4 KB per sample), not an epoch."""
from __future__ import annotations

import numpy as np
import pytest

from tinyhost.compiler import compile_model
from tinyhost.demo.basicmotions_model import DEFAULT_LR
from tinyhost.device import connect
from tinyhost.link.client import DeviceError
from tinyhost.params import pull_parameters

RTOL = 1e-5
STEPS = 20

pytestmark = pytest.mark.usefixtures("qemu_ready")  # tests/system/conftest.py


@pytest.fixture
def qemu():
    dev = connect("qemu")
    yield dev
    dev.close()


def test_info_reports_the_board(qemu) -> None:
    info = qemu.info()
    assert info.board == "mps2-an386"
    assert info.cost_unit == "instructions"  # -icount shift=0, detected by the firmware
    assert 160 * 1024 <= info.arena_capacity < 256 * 1024
    assert info.max_payload == 4096 and info.plan_capacity == 1 << 20
    assert not info.plan_loaded and info.steps == 0
    assert qemu.name.startswith("qemu (mps2-an386")


def test_demo_training_matches_reference(qemu, demo_plan, demo_data) -> None:
    plan, data = demo_plan.plan, demo_plan.data
    ref = connect("ref")
    assert qemu.load_plan(plan, data) and ref.load_plan(plan, data)
    initial = pull_parameters(ref, plan)
    order = np.random.default_rng(0).permutation(len(demo_data.x_train))[:STEPS]
    xs, labels = demo_data.x_train[order], demo_data.y_train[order]
    assert len(set(labels.tolist())) > 1
    costs = []
    for k, (x, label) in enumerate(zip(xs, labels, strict=True)):
        a = qemu.train_step(x, int(label), DEFAULT_LR)
        b = ref.train_step(x, int(label), DEFAULT_LR)
        assert a.step == b.step == k + 1
        assert a.pred == b.pred, f"step {k + 1}: pred {a.pred} != {b.pred}"
        np.testing.assert_allclose(a.loss, b.loss, rtol=RTOL, err_msg=f"loss at step {k + 1}")
        costs.append(a.cost)
    got, want = pull_parameters(qemu, plan), pull_parameters(ref, plan)
    assert set(got) == set(want)
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=0, atol=RTOL * float(np.max(np.abs(w))),
                                   err_msg=name)
    for i in plan.trainable:
        name = plan.tensors[i].name
        assert not np.array_equal(want[name], initial[name]), f"{name} did not train"
    for x in demo_data.x_test[:4]:  # inference with the trained parameters
        assert qemu.evaluate(x) == ref.evaluate(x)
    assert qemu.info().steps == STEPS

    # Costs are instruction counts (not time): the same steps from the same parameters cost the
    # same, to the counter's resolution of one SysTick tick = 40 instructions under -icount.
    assert all(100_000 < c < 100_000_000 for c in costs), costs
    qemu.reset()
    for k in range(3):
        again = qemu.train_step(xs[k], int(labels[k]), DEFAULT_LR)
        assert abs(again.cost - costs[k]) <= 40, \
            f"step {k + 1}: {again.cost} vs {costs[k]} instructions"
    print(f"\ndemo training step on mps2-an386: {min(costs)}..{max(costs)} instructions")


LARGE_ACTIVATIONS = """
def make_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(8, 4, 1), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    return model, torch.randn(1, 8, 8000)   # a 256 KB input: more than the whole RAM
"""


def test_plan_larger_than_arena_is_refused(qemu, model_file) -> None:
    result = compile_model(model_file(LARGE_ACTIVATIONS))
    capacity = qemu.info().arena_capacity
    assert result.plan.arena_size > capacity and len(result.data) < 16 * 1024
    with pytest.raises(DeviceError) as e:
        qemu.load_plan(result.plan, result.data)
    assert e.value.code == -6  # TT_ERR_PLAN_ARENA
    assert str(result.plan.arena_size) in e.value.message and str(capacity) in e.value.message, \
        e.value.message
    assert not qemu.info().plan_loaded


@pytest.mark.parametrize("selftest,words", [
    ("--selftest-fault", ("MemManage fault", "0x10000000", "not permitted by the MPU")),
    ("--selftest-stack", ("MemManage fault", "stack overflow", "below the stack")),
])
def test_mpu_faults_are_reported_with_an_exit_status(selftest: str, words: tuple[str, ...]) -> None:
    from tinyhost.link.qemu import QemuProcess
    proc = QemuProcess(firmware_args=(selftest,), read_banner=False)
    try:
        status = proc.wait(timeout=30)
        output = proc.output()
    finally:
        proc.close()
    assert status == 3, output  # TT_FAULT_EXIT_STATUS, through semihosting SYS_EXIT_EXTENDED
    for w in words:
        assert w in output, output


def test_checkpoint_survives_a_warm_reset(demo_plan, demo_data) -> None:
    """The bare-metal firmware keeps its last checkpoint (and its plan) across a reset: it comes
    back with the checkpoint's parameters and step count, not the steps after it."""
    from tinyhost.device import SerialDevice
    from tinyhost.link.client import DeviceClient
    from tinyhost.link.qemu import QemuProcess
    from tinyhost.link.transport import Link

    plan, data = demo_plan.plan, demo_plan.data
    qemu = QemuProcess(monitor=True)
    try:
        assert qemu.serial is not None
        dev = SerialDevice(DeviceClient(Link(qemu.serial, "qemu (warm reset test)")))
        assert dev.info().checkpoints
        dev.load_plan(plan, data)
        for k in range(3):
            dev.train_step(demo_data.x_train[k], int(demo_data.y_train[k]), DEFAULT_LR)
        dev.checkpoint()
        saved = pull_parameters(dev, plan)
        dev.train_step(demo_data.x_train[3], int(demo_data.y_train[3]), DEFAULT_LR)
        qemu.warm_reset()
        assert "restored the checkpoint" in qemu.banner
        info = dev.info()
        assert info.plan_loaded and info.steps == 3
        for name, value in pull_parameters(dev, plan).items():
            np.testing.assert_array_equal(value, saved[name], err_msg=name)
    finally:
        qemu.close()
