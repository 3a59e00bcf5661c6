"""Nothing trained is lost (issue 14): the sim's state file (`tinyhost sim --state`) keeps what a
CHECKPOINT saved across a kill, and set-parameters (WRITE_TENSOR, `tinyhost push`) puts saved
parameters back."""
from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyhost.cli import main
from tinyhost.demo.basicmotions_model import DEFAULT_LR
from tinyhost.device import SerialDevice, connect
from tinyhost.link.client import DeviceClient, DeviceError
from tinyhost.link.transport import Link, SimProcess, open_link
from tinyhost.params import pull_parameters, push_parameters, save_parameters

DEMO_NPZ = Path(__file__).resolve().parents[2] / "host" / "tinyhost" / "demo" / "basicmotions.npz"


@pytest.fixture
def sim(sim_binary):
    dev = connect("sim")
    yield dev
    dev.close()


def start(state: Path | None) -> tuple[SimProcess, SerialDevice]:
    sim = SimProcess(state=None if state is None else str(state))
    link = open_link(sim.path)
    return sim, SerialDevice(DeviceClient(Link(link.port, link.name)))


def train(dev, demo_data, steps: range) -> None:
    for k in steps:
        dev.train_step(demo_data.x_train[k], int(demo_data.y_train[k]), DEFAULT_LR)


def test_checkpoint_survives_a_kill(sim_binary, demo_plan, demo_data, tmp_path: Path) -> None:
    state = tmp_path / "sim.state"
    sim, dev = start(state)
    try:
        assert dev.info().checkpoints
        dev.load_plan(demo_plan.plan, demo_plan.data)
        train(dev, demo_data, range(10))
        dev.checkpoint()
        saved = pull_parameters(dev, demo_plan.plan)
        train(dev, demo_data, range(10, 15))  # trained after the checkpoint: lost by the kill
    finally:
        dev.client.link.port.close()
        sim.proc.kill()
        sim.close()
    sim, dev = start(state)
    try:
        info = dev.info()
        assert info.plan_loaded and info.steps == 10
        assert not dev.load_plan(demo_plan.plan, demo_plan.data)  # runs it already: no upload
        got = pull_parameters(dev, demo_plan.plan)
        for name, value in saved.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        # ... and training goes on from there exactly as an uninterrupted device would
        train(dev, demo_data, range(10, 15))
        ref = connect("ref")
        ref.load_plan(demo_plan.plan, demo_plan.data)
        push_parameters(ref, demo_plan.plan, saved)
        train(ref, demo_data, range(10, 15))
        for name, value in pull_parameters(ref, demo_plan.plan).items():
            np.testing.assert_allclose(pull_parameters(dev, demo_plan.plan)[name], value,
                                       rtol=1e-5, atol=1e-6, err_msg=name)
    finally:
        dev.close()
        sim.close()


def test_corrupt_state_file_starts_empty_and_says_why(sim_binary, tmp_path: Path) -> None:
    state = tmp_path / "sim.state"
    state.write_bytes(b"TTSTATE1" + bytes(40))
    sim, dev = start(state)
    try:
        assert not dev.info().plan_loaded
    finally:
        dev.close()
        sim.close()


def test_checkpoint_without_a_store_is_an_error(sim, demo_plan) -> None:
    assert not sim.info().checkpoints
    sim.load_plan(demo_plan.plan, demo_plan.data)
    with pytest.raises(DeviceError, match="keeps no checkpoints"):
        sim.checkpoint()


def test_push_puts_parameters_back(sim, demo_plan, demo_data, tmp_path: Path) -> None:
    plan = demo_plan.plan
    sim.load_plan(plan, demo_plan.data)
    train(sim, demo_data, range(6))
    trained = pull_parameters(sim, plan)
    sim.reset()
    assert any(not np.array_equal(pull_parameters(sim, plan)[k], trained[k]) for k in trained)
    push_parameters(sim, plan, trained)
    for name, value in pull_parameters(sim, plan).items():
        np.testing.assert_array_equal(value, trained[name], err_msg=name)
    # what does not belong to the plan is refused, naming it
    wrong = dict(trained)
    name = plan.tensors[plan.trainable[0]].name
    wrong[name] = wrong[name].astype(np.float64)
    with pytest.raises(ValueError, match=name):
        push_parameters(sim, plan, wrong)
    frozen = [plan.tensors[i].name for i in plan.parameters if i not in plan.trainable]
    if frozen:
        wrong = dict(trained)
        wrong[frozen[0]] = wrong[frozen[0]] + 1
        with pytest.raises(ValueError, match="frozen"):
            push_parameters(sim, plan, wrong)
    with pytest.raises(DeviceError, match="not a trainable"):
        sim.client.write_tensor(plan.bindings.input, b"\0" * 4, sim.chunk)


def test_push_command(sim_binary, demo_plan, demo_plan_file, demo_data, tmp_path: Path,
                      capsys) -> None:
    sim = SimProcess()
    try:
        trained_dev = connect("ref")
        trained_dev.load_plan(demo_plan.plan, demo_plan.data)
        train(trained_dev, demo_data, range(4))
        params = pull_parameters(trained_dev, demo_plan.plan)
        path = tmp_path / "p.npz"
        save_parameters(params, path)
        assert main(["push", "--port", sim.path, "--plan", str(demo_plan_file), str(path)]) == 0
        assert "plan uploaded first" in capsys.readouterr().out
        dev = connect(sim.path)
        try:
            dev.load_plan(demo_plan.plan, demo_plan.data)
            for name, value in pull_parameters(dev, demo_plan.plan).items():
                np.testing.assert_array_equal(value, params[name], err_msg=name)
        finally:
            dev.close()
        assert main(["push", "--port", "sim", "--plan", str(demo_plan_file), str(path)]) == 2
    finally:
        sim.close()


def test_resume_after_a_kill_ends_as_an_uninterrupted_run(sim_binary, demo_plan_file,
                                                           tmp_path: Path) -> None:
    """`train --checkpoint-every` on a sim with a state file, the sim killed mid-run, restarted
    from its file, `train --resume`: the same final parameters and one log row per step."""
    args = ["--plan", str(demo_plan_file), "--data", str(DEMO_NPZ), "--epochs", "8", "--seed",
            "3", "--checkpoint-every", "25", "--json"]

    def run(port: str, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tinyhost.cli", "train", "--port", port,
                                 *args, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    # the uninterrupted run
    sim = SimProcess(state=str(tmp_path / "whole.state"))
    try:
        whole = run(sim.path, "--save-params", str(tmp_path / "whole.npz"))
        assert whole.wait(timeout=120) == 0, whole.stderr.read() if whole.stderr else ""
    finally:
        sim.close()
    # killed after some checkpoints, then resumed
    state, log = tmp_path / "cut.state", tmp_path / "cut.csv"
    sim = SimProcess(state=str(state))
    cut = run(sim.path, "--log", str(log))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or
                                           log.read_text().count("\n") < 130):
        time.sleep(0.005)
    sim.proc.kill()
    sim.close()
    assert cut.wait(timeout=60) != 0  # the link died under it
    rows_before = log.read_text().count("\n") - 1
    sim = SimProcess(state=str(state))
    try:
        dev = connect(sim.path)
        steps = dev.info().steps
        dev.close()
        assert 0 < steps < rows_before and steps % 25 == 0, (steps, rows_before)
        resumed = run(sim.path, "--resume", "--log", str(log),
                      "--save-params", str(tmp_path / "cut.npz"))
        assert resumed.wait(timeout=120) == 0, resumed.stderr.read() if resumed.stderr else ""
    finally:
        sim.close()
    a, b = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "cut.npz")
    assert a.files == b.files
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with open(log, newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
