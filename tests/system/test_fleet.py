"""`tinyhost fleet` in Flower's simulation engine: three devices, the aggregate checked against an
independent computation (int8 rows and int32 biases included), and a device killed in the middle
of a round: the round goes on and the report names it."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinyhost.cli import main
from tinyhost.fleet import FleetConfig, SplitSpec
from tinyhost.fleet.client import fit
from tinyhost.fleet.params import initial_parameters, requantize
from tinyhost.fleet.run import run_fleet
from tinyhost.plan import DType, load_plan_file

DEMO = Path(__file__).resolve().parents[2] / "host" / "tinyhost" / "demo"
DATA = str(DEMO / "basicmotions.npz")


@pytest.fixture(scope="module")
def int8_plan(tmp_path_factory) -> str:
    """The demo int8 model, its last two convs trained with the round rule: int8 rows and int32
    biases on the wire, and the fp32 head."""
    plan = tmp_path_factory.mktemp("fleet") / "int8.ttp"
    assert main(["compile", f"{DEMO / 'basicmotions_int8_model.py'}:make_model", "--int8",
                 "--calib", DATA, "--update", "last:3", "--int8-update", "round", "-o",
                 str(plan), "--json"]) == 0
    return str(plan)


@pytest.fixture(scope="module")
def fp32_plan(tmp_path_factory) -> str:
    plan = tmp_path_factory.mktemp("fleet") / "fp32.ttp"
    assert main(["compile", f"{DEMO / 'basicmotions_model.py'}:make_model", "--lr", "0.05",
                 "-o", str(plan), "--json"]) == 0
    return str(plan)


def test_cli_aggregate_is_the_requantized_weighted_average(int8_plan, tmp_path, capsys):
    """`tinyhost fleet --json --plot --save-params` over three devices; the saved aggregate
    equals the same round computed without Flower (int8 rows, int32 biases, the fp32 head)."""
    plan, _ = load_plan_file(int8_plan)
    dtypes = {plan.tensors[i].dtype for i in plan.trainable}
    assert {DType.S8, DType.S32, DType.F32} <= dtypes  # every kind of tensor crosses the wire
    plot, saved = tmp_path / "fleet.png", tmp_path / "agg.npz"
    capsys.readouterr()
    assert main(["fleet", "--ports", "ref,ref,ref", "--plan", int8_plan, "--data", DATA,
                 "--split", "by-label", "--rounds", "1", "--local-epochs", "1", "--seed", "2",
                 "--json", "--plot", str(plot), "--save-params", str(saved)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["strategy"] == "fedavg" and len(out["rounds"]) == 1
    r = out["rounds"][0]
    assert r["failed"] == [] and r["aggregated"] and out["test_samples"] == 40
    assert out["test_samples_total"] == 40 and 0.0 <= out["test_accuracy"] <= 1.0
    assert [d["device"] for d in r["devices"]] == [0, 1, 2]
    nbytes = sum(plan.tensors[i].nbytes for i in plan.trainable)  # only the trainable set moves
    assert all(d["bytes_up"] == nbytes and d["bytes_down"] == 2 * nbytes for d in r["devices"])
    assert plot.stat().st_size > 10_000
    with np.load(saved) as z:
        got = {k: z[k] for k in z.files}
    # the same round without Flower: each device's local training on its shard (the reference
    # executor is deterministic), weighted by its train samples, then requantized
    cfg = FleetConfig(plan=int8_plan, data=DATA, ports=["ref"] * 3,
                      split=SplitSpec("by-label", seed=2), rounds=1, local_epochs=1, seed=2)
    g = initial_parameters(plan)
    outs, weights = [], []
    for d in range(3):
        params, m = fit(cfg, d, (d, 3), "ref", g, 1)
        outs.append(params)
        weights.append(m["num-examples"])
    w = np.array(weights) / sum(weights)
    avg = {k: sum(wi * o[k].astype(np.float64) for wi, o in zip(w, outs, strict=True)) for k in g}
    want = requantize(plan, avg)
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype
        if v.dtype == np.float32:  # Flower sums in another order: float64 rounding only
            np.testing.assert_allclose(got[k], v, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(got[k], v, err_msg=k)
    assert any(not np.array_equal(got[k], g[k]) for k in g if g[k].dtype == np.int8), \
        "no int8 row moved: the test checks nothing"


def _ppid(pid: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None


def _opened_by_a_client(path: str, sim_pid: int) -> bool:
    """Whether one of this test's descendants (the Ray workers that run the clients), other than
    the simulated device itself, has the device's port open. Only descendants: another
    container's processes may show a /dev/pts/N of their own."""
    me = str(os.getpid())
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        pid = fd_dir.parent.name
        if pid in (me, str(sim_pid)):
            continue
        up, seen = _ppid(pid), 0
        while up not in (None, "0", "1", me) and seen < 64:
            up, seen = _ppid(up), seen + 1
        if up != me:
            continue
        try:
            if any(os.readlink(fd) == path for fd in fd_dir.iterdir()):
                return True
        except OSError:  # a process that ended meanwhile
            continue
    return False


def test_killed_device_mid_round_is_survived_and_reported(fp32_plan, tmp_path, capsys):
    """Device 1 (a simulated device) is killed in round 2 as soon as its client has opened it
    (the client then binds the plan, writes the parameters and trains 10 local epochs): that
    round aggregates the two others, round 3 runs without it, and the report says device 1
    failed."""
    capsys.readouterr()
    killed: list[int] = []

    def kill_when_busy(sim) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _opened_by_a_client(sim.path, sim.proc.pid):
            time.sleep(0.005)
        sim.proc.kill()  # its client is at work: binding the plan, or in its 10 local epochs
        killed.append(2)

    def hook(server_round: int, sims) -> None:
        if server_round == 2:
            threading.Thread(target=kill_when_busy, args=(sims[1],), daemon=True).start()

    cfg = FleetConfig(plan=fp32_plan, data=DATA, ports=["sim", "sim", "sim"],
                      split=SplitSpec("iid"), rounds=3, local_epochs=10)
    report = run_fleet(cfg, progress=False, round_hook=hook)
    assert killed == [2]
    r1, r2, r3 = report.rounds
    why = f"round 2 failures {r2.failed}, round 3 failures {r3.failed}"
    assert r1.failed == [] and sorted(r1.devices) == [0, 1, 2]
    train_fail = [f for f in r2.failed if f.device == 1 and f.phase == "train"]
    assert train_fail, why
    # it died under the client's hands (the link broke), not before the client came
    assert "cannot open port" not in train_fail[0].reason, train_fail[0].reason
    assert r2.aggregated and r3.aggregated  # the rounds went on
    assert all(f.device == 1 for r in (r2, r3) for f in r.failed), why
    assert {f.phase for f in r3.failed} == {"train", "evaluate"}, why
    assert report.failed_devices() == [1]
    assert r3.test_accuracy is not None and r3.test_samples == 40 - r1.devices[1].test_samples
    d = report.to_dict()
    assert d["failed_devices"] == [1] and d["rounds"][1]["failed"][0]["device"] == 1
    assert "device 1" in d["rounds"][1]["failed"][0]["reason"]


@pytest.mark.parametrize("args,message", [
    (["--split", "by-group"], "--split by-group needs the COLUMN"),
    (["--split", "iid", "x"], "takes no COLUMN"),
    (["--data", f"{DATA},{DATA}"], "lists 2 files for 3 devices"),
    (["--ports", "ref,ref,/dev/ttyNOPE"], "cannot open port /dev/ttyNOPE"),
    (["--split", "by-group", "subject"], "no arrays subject_train and subject_test"),
])
def test_cli_errors(fp32_plan, args, message, capsys):
    base = ["fleet", "--ports", "ref,ref,ref", "--plan", fp32_plan, "--data", DATA]
    capsys.readouterr()
    assert main(base + args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--rounds", "--local-epochs"])
def test_counts_below_one_are_refused(fp32_plan, flag, capsys):
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        main(["fleet", "--ports", "ref,ref,ref", "--plan", fp32_plan, "--data", DATA, flag, "0"])
    assert e.value.code == 2 and "give 1 or more" in capsys.readouterr().err
