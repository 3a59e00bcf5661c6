"""bench/transfer.py's pieces (issue 18): the digits task, the dequantized fp32 network that is its
reference point, and a run through the device path, on a small input so they stay quick."""
from __future__ import annotations

import numpy as np
import pytest

from bench_loader import load_bench
from paper_data import paper_model
from tinyhost.refexec.executor import RefExecutor

pytest.importorskip("sklearn", reason="make setup installs the bench extra (scikit-learn)")
transfer = load_bench("transfer")
fp32 = load_bench("paper_fp32")
SIZE = 32


def test_digits_task_is_real_images_in_the_models_range() -> None:
    a = transfer.digits(SIZE, 100, 50, seed=0)
    b = transfer.digits(SIZE, 100, 50, seed=1)
    assert a.x_train.shape == (100, 3, SIZE, SIZE) and a.x_test.shape == (50, 3, SIZE, SIZE)
    assert a.x_train.min() >= -1 and a.x_train.max() <= 1 and a.x_train.std() > 0.3
    assert np.array_equal(a.x_train[:, 0], a.x_train[:, 2])  # grey, replicated
    assert set(a.y_train.tolist()) <= set(range(10)) and len(set(a.y_train.tolist())) == 10
    assert not np.array_equal(a.y_train, b.y_train)  # the seed draws the split


@pytest.mark.parametrize("model", ["mcunet-5fps", "mbv2-w0.35"])
def test_fp32_network_follows_the_int8_plan(model: str) -> None:
    """Before training, the dequantized network's logits are the int8 plan's up to the int8
    rounding of every activation: closely correlated, and the same class on most images."""
    paper_model(model)
    runner = transfer.Runner(SIZE, "ref", 1)
    row = transfer.Row("", transfer.scheme_99(model))
    plan, _ = runner.plan(model, row)
    from tinyhost.compiler.import_tiny import load_tiny_training
    net = fp32.FloatPaperNet(load_tiny_training(transfer.MODELS_DIR / f"{model}.pkl"), plan)
    ds = transfer.digits(SIZE, 1, 20, seed=0)
    ex = RefExecutor(plan)
    agree, corr = 0, []
    for x in ds.x_test:
        pred = ex.evaluate(x)
        want = ex.view(plan.bindings.logits).copy()
        got = net.logits(x).detach().numpy()
        corr.append(np.corrcoef(got, want)[0, 1])
        agree += int(pred == int(np.argmax(got)))
    assert np.mean(corr) > 0.95 and agree >= 16, (np.mean(corr), agree)
    # what trains is the plan's: its head, its biases, its weight rows
    n_bias = plan.meta["scheme"]["n_bias_update"]
    n_w = len(plan.meta["scheme"]["manual_weight_idx"])
    assert len(net.params()) == 2 + n_bias + n_w


def test_a_run_on_the_device_path_and_the_table() -> None:
    paper_model("mcunet-5fps")
    runner = transfer.Runner(SIZE, "ref", 1)
    ds = transfer.digits(SIZE, 30, 30, seed=0)
    head = transfer.Row("head only (last:1)", "last:1", lr=0.001)
    acc, diverged, plan = runner.run("mcunet-5fps", head, ds, 0)
    assert 0 <= acc <= 1 and not diverged and plan.meta["update"] == "last:1"
    f = transfer.Row("99kb: fp32 (PyTorch)", transfer.scheme_99("mcunet-5fps"), fp32=True,
                     lr=0.001, backbone_lr=0.0003)
    acc32, diverged32, _ = runner.run("mcunet-5fps", f, ds, 0)
    assert 0 <= acc32 <= 1 and not diverged32
    r = transfer.Result("mcunet-5fps", head, [acc], 0, "round", "lr 0.01")
    r2 = transfer.Result("mcunet-5fps", f, [acc32], 0, "fp32", "lr 0.01")

    class Args:
        size, train, test, epochs, seeds, port = SIZE, 30, 30, 1, 1, "ref"
    text = transfer.table([r, r2], Args())
    assert "| mcunet-5fps | head only (last:1) |" in text and "99kb: fp32 (PyTorch)" in text


def test_optimizer_table_runs_momentum_and_accumulation_on_the_device_path() -> None:
    """--table optimizer: plain SGD, momentum and accumulation at the ~100 KB scheme, each also at
    the lr that keeps SGD's step size; a momentum + accumulation row trains through the plan."""
    rows = transfer.rows_for("mcunet-5fps", "optimizer", None, None)
    assert [(r.momentum, r.accumulate) for r in rows[1:]] == [
        (0.0, 1), (0.9, 1), (0.9, 1), (0.0, 4), (0.0, 4), (0.9, 4)]
    sgd, same_step = rows[1], rows[2]
    assert same_step.lr is not None and sgd.lr is not None
    assert abs(same_step.lr - sgd.lr * 0.1) < 1e-12
    paper_model("mcunet-5fps")
    runner = transfer.Runner(SIZE, "ref", 1)
    ds = transfer.digits(SIZE, 9, 10, seed=0)
    acc, diverged, plan = runner.run("mcunet-5fps", rows[-1], ds, 0)
    assert 0 <= acc <= 1 and not diverged
    assert plan.meta["optimizer"] == {"momentum": 0.9, "accumulate": 4}
    assert "momentum 0.9, an update every 4 samples" in transfer.plan_rates(plan).describe()
