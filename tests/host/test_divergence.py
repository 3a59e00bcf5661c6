"""Divergence is never silent (issue 18): learning rates that cannot work are refused up front,
the reference executor refuses a NaN/inf loss or update exactly where the firmware does
(TT_ERR_NONFINITE, nothing written), and `train` stops on it or on a loss blow-up, says what to
try, exits 1 and still saves the parameters."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyhost import cli
from tinyhost.compiler import compile_model
from tinyhost.datasets import Dataset
from tinyhost.device import NONFINITE, RefDevice
from tinyhost.link.client import DeviceError
from tinyhost.refexec import kernels_f32 as kf
from tinyhost.refexec import kernels_s8 as ks
from tinyhost.refexec.registry import NonFiniteStep
from tinyhost.train import LossWatch, TrainConfig, describe_nonfinite, train

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
DEMO_DATA = str(REPO / "host/tinyhost/demo/basicmotions.npz")


@pytest.fixture(scope="module")
def demo_plan(tmp_path_factory: pytest.TempPathFactory):
    result = compile_model(DEMO_MODEL, lr=0.05)
    path = tmp_path_factory.mktemp("plan") / "demo.ttp"
    path.write_bytes(result.data)
    return result, path


@pytest.mark.parametrize("command", ["compile", "train"])
@pytest.mark.parametrize("lr", ["0", "-0.01", "nan", "inf", "-inf", "0.0e0", "fast"])
def test_learning_rates_that_cannot_work_are_refused(command: str, lr: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv = (["compile", DEMO_MODEL, "-o", str(tmp_path / "p.ttp")] if command == "compile" else
            ["train", "--port", "ref", "--plan", str(tmp_path / "p.ttp"), "--data", DEMO_DATA])
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, f"--lr={lr}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--lr" in err and ("learning rate" in err or "not a number" in err)
    assert not (tmp_path / "p.ttp").exists()


def test_learning_rate_type_accepts_positive_numbers() -> None:
    assert cli.learning_rate("0.001") == 0.001
    assert cli.learning_rate("1e-4") == 1e-4


def test_loss_watch_stops_a_blow_up_and_not_a_noisy_descent() -> None:
    w = LossWatch(factor=4.0, window=5, floor=np.log(10))
    rng = np.random.default_rng(0)
    assert all(w.add(float(v)) is None for v in 2.3 * np.exp(-np.arange(200) / 50)
               * (1 + 0.5 * rng.random(200)))
    w = LossWatch(factor=4.0, window=5, floor=np.log(10))
    said = [w.add(v) for v in [2.3] + [10.0] * 5]  # 4 x 2.3 = 9.2 < 10
    assert said[:5] == [None] * 5 and said[5] is not None and "blew up" in said[5]
    w = LossWatch(factor=4.0, window=5, floor=np.log(10))
    assert all(w.add(v) is None for v in [2.3] + [9.0] * 20)  # not over 9.2
    # the floor: a run that starts near 0 loss is not stopped by noise of ordinary size
    w = LossWatch(factor=4.0, window=5, floor=np.log(10))
    assert all(w.add(v) is None for v in [0.01] * 5 + [1.5] * 20)
    assert LossWatch(factor=0, window=5, floor=1).add(1e30) is None  # off


def test_reference_kernels_refuse_nonfinite_steps() -> None:
    w = np.ones(4, np.float32)
    with pytest.raises(NonFiniteStep):
        kf.sgd(w, np.array([0, np.nan, 0, 0], np.float32), 0.1)
    with pytest.raises(NonFiniteStep):
        kf.sgd(w, np.array([0, 3e38, 0, 0], np.float32), -10.0)
    rows = np.full((2, 3), 5, np.int8)
    dw = np.array([[0.5, 0.25, -1], [2, np.inf, 0]], np.float32)
    q = np.ones(2, np.float32)
    with pytest.raises(NonFiniteStep):
        ks.update_s8_round(rows, dw, 0.1, q)
    with pytest.raises(NonFiniteStep):
        ks.update_s8_master(rows.astype(np.float32), dw, 0.1, q)
    with pytest.raises(NonFiniteStep):
        ks.update_s32(np.array([7, -7], np.int32), np.array([np.nan, 1], np.float32), 0.1, q)
    assert (rows == 5).all() and (w == 1).all()  # inputs are never written


def test_nan_loss_is_refused_before_any_update(demo_plan) -> None:
    result, _ = demo_plan
    plan = result.plan
    dev = RefDevice()
    dev.load_plan(plan, result.data)
    assert dev.exec is not None
    head_b = next(i for i in plan.trainable if plan.tensors[i].shape == (plan.num_classes,))
    dev.exec.view(head_b)[0] = np.inf  # logits inf: the loss is NaN
    before = {i: dev.read_tensor(i) for i in plan.trainable}
    x = np.ones(plan.tensors[plan.bindings.input].shape, np.float32)
    with pytest.raises(DeviceError) as e:
        dev.train_step(x, 1, 0.05)
    assert e.value.code == NONFINITE
    assert "the loss is NaN" in describe_nonfinite(plan, e.value.message)
    for i, a in before.items():
        assert np.array_equal(dev.read_tensor(i), a)
    assert dev.info().steps == 0  # a refused step is not counted (as on the device)


def test_nan_gradient_is_refused_where_it_would_be_written(demo_plan) -> None:
    """A NaN input sample: max pooling drops the NaN, so the loss is finite, but the first conv's
    weight gradient is NaN; its update is refused, and that weight stays as it was."""
    result, _ = demo_plan
    plan = result.plan
    dev = RefDevice()
    dev.load_plan(plan, result.data)
    first_w = plan.trainable[0]
    before = dev.read_tensor(first_w)
    x = np.zeros(plan.tensors[plan.bindings.input].shape, np.float32)
    x[..., 3] = np.nan
    with pytest.raises(DeviceError) as e:
        dev.train_step(x, 1, 0.05)
    said = describe_nonfinite(plan, e.value.message)
    assert e.value.code == NONFINITE and plan.tensors[first_w].name in said, said
    assert np.array_equal(dev.read_tensor(first_w), before)


def test_a_huge_learning_rate_never_writes_a_nonfinite_parameter(demo_plan) -> None:
    result, _ = demo_plan
    plan = result.plan
    dev = RefDevice()
    dev.load_plan(plan, result.data)
    x = np.random.default_rng(0).standard_normal(plan.tensors[plan.bindings.input].shape)
    with pytest.raises(DeviceError) as e:
        for _ in range(5):  # weights of ~1e36 after the first step; then inf steps or logits
            dev.train_step(x.astype(np.float32), 1, 3e37)
    said = describe_nonfinite(plan, e.value.message)
    assert e.value.code == NONFINITE
    assert "the loss is NaN" in said or "update (op" in said, said
    for i in plan.trainable:
        assert np.all(np.isfinite(dev.read_tensor(i)))


def _demo_dataset() -> Dataset:
    with np.load(DEMO_DATA) as f:
        return Dataset(f["x_train"].astype(np.float32), f["y_train"],
                       f["x_test"].astype(np.float32), f["y_test"], ["a", "b", "c", "d"], "demo")


def test_train_stops_on_divergence_and_keeps_the_records(demo_plan) -> None:
    result, _ = demo_plan
    dev = RefDevice()
    dev.load_plan(result.plan, result.data)
    r = train(dev, _demo_dataset(), TrainConfig(epochs=3, lr=1e6, progress=False))
    assert r.diverged and r.interrupted is not None
    assert ("refused" in r.interrupted or "NaN" in r.interrupted
            or "blew up" in r.interrupted)
    assert len(r.records) < 3 * 40 and r.summary()["diverged"] is True


def test_cli_train_diverging_exits_1_says_what_to_try_and_saves(
        demo_plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = demo_plan
    out = tmp_path / "params.npz"
    code = cli.main(["train", "--port", "ref", "--plan", str(path), "--data", DEMO_DATA,
                     "--lr", "1e6", "--epochs", "2", "--save-params", str(out), "--json"])
    err = capsys.readouterr().err
    assert code == 1
    assert "diverged" in err and "What to try" in err and "--lr 100000" in err
    with np.load(out) as f:
        assert len(f.files) == 6 and all(np.all(np.isfinite(f[k])) for k in f.files)


def test_cli_train_default_lr_does_not_stop(demo_plan, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, path = demo_plan
    code = cli.main(["train", "--port", "ref", "--plan", str(path), "--data", DEMO_DATA,
                     "--epochs", "2", "--json"])
    assert code == 0, capsys.readouterr().err


class _Store(RefDevice):
    """The reference executor with a checkpoint store that records the step count it saved at,
    or fails."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.saved: list[int] = []
        self.fail = fail

    def checkpoint(self) -> None:
        if self.fail:
            raise DeviceError(-14, "CHECKPOINT: saving the parameters failed (-5)")
        self.saved.append(self._need().steps)


def test_a_diverged_run_does_not_overwrite_the_last_good_checkpoint(demo_plan) -> None:
    result, _ = demo_plan
    dev = _Store()
    dev.load_plan(result.plan, result.data)
    r = train(dev, _demo_dataset(), TrainConfig(epochs=3, lr=1e6, progress=False,
                                                checkpoint_every=1))
    assert r.diverged and r.interrupted is not None
    steps = [rec.step for rec in r.records]
    watched = "blew up" in r.interrupted or r.interrupted.endswith("the loss is NaN")
    good = steps[:-1] if watched else steps  # a refused step is not in the records
    assert dev.saved == good  # every good step, nothing from the one that diverged or after


def test_a_failing_checkpoint_stops_training_and_says_so(demo_plan) -> None:
    result, _ = demo_plan
    dev = _Store(fail=True)
    dev.load_plan(result.plan, result.data)
    r = train(dev, _demo_dataset(), TrainConfig(epochs=2, lr=0.05, progress=False,
                                                checkpoint_every=5))
    assert r.interrupted is not None and "checkpoint failed" in r.interrupted
    assert len(r.records) == 5
