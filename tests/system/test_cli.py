"""The `tinyhost` command line end to end: compile, train on the sim device and on the reference
executor, info, pull from a long-running `tinyhost sim`, and one-line errors (exit status 2)."""
from __future__ import annotations

import csv
import json
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyhost.cli import main
from tinyhost.plan import decode_plan, encode_plan
from tinyhost.train import CSV_FIELDS

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = str(REPO / "host/tinyhost/demo/basicmotions_model.py") + ":make_model"
DEMO_NPZ = str(REPO / "host/tinyhost/demo/basicmotions.npz")
EPOCHS = 3
TRAIN_SAMPLES = 40
RTOL = 1e-5


def tinyhost_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "tinyhost"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "tinyhost.cli"]


def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(tinyhost_cmd() + args, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def read_metrics(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


# -- compile --------------------------------------------------------------------------------------
def test_compile_prints_memory_report(tmp_path: Path) -> None:
    proc = run(["compile", DEMO_MODEL, "--lr", "0.05", "-o", "demo.ttp"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = decode_plan((tmp_path / "demo.ttp").read_bytes())
    out = proc.stdout
    assert f"wrote demo.ttp ({(tmp_path / 'demo.ttp').stat().st_size} bytes)" in out
    assert f"{plan.arena_size / 1024:.1f} KB" in out  # the arena figure
    for label in ("arena", "activations", "saved for backward", "gradients",
                  "trainable parameters", "peak at op", "flash"):
        assert label in out, f"{label!r} missing from:\n{out}"
    assert "3412 trainable parameters" in out
    assert np.float32(plan.default_lr) == np.float32(0.05)


def test_compile_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_file = tmp_path / "demo.ttp"
    assert main(["compile", DEMO_MODEL, "-o", str(out_file), "--json", "--update", "last:1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    plan = decode_plan(out_file.read_bytes())
    assert doc["bytes"] == out_file.stat().st_size
    mem = doc["memory"]
    assert mem["arena_bytes"] == plan.arena_size
    assert set(mem["by_kind"]) == {"activations", "saved_for_backward", "gradients",
                                   "trainable_params"}
    assert mem["by_kind"]["trainable_params"] == (32 * 4 + 4) * 4  # last:1 = the Linear head
    assert mem["trainable_params"] == 32 * 4 + 4


def test_compile_unsupported_layer_is_one_error_line(tmp_path: Path, model_file) -> None:
    spec = model_file("""
def make_model():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(6, 8, batch_first=True)
            self.fc = nn.Linear(8, 4)
        def forward(self, x):
            y, _ = self.lstm(x)
            return self.fc(y[:, -1])
    return Net(), torch.randn(1, 10, 6)
""")
    proc = run(["compile", spec, "-o", "x.ttp"], tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "LSTM" in lines[0] and "supported layers" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.ttp").exists()


@pytest.mark.parametrize("content", [None, b"not a zip archive\n"], ids=["missing", "corrupt"])
def test_compile_bad_pt2_is_one_error_line(tmp_path: Path, content: bytes | None) -> None:
    if content is not None:
        (tmp_path / "model.pt2").write_bytes(content)
    proc = run(["compile", "model.pt2", "-o", "x.ttp"], tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model.pt2" in lines[0], \
        proc.stderr
    assert "Traceback" not in proc.stderr


# -- train on the sim device ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_run(sim_binary, demo_plan_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """One `tinyhost train --port sim` run of the demo (a subprocess, as a user runs it)."""
    d = tmp_path_factory.mktemp("train-sim")
    proc = run(["train", "--port", "sim", "--plan", str(demo_plan_file), "--data", DEMO_NPZ,
                "--epochs", str(EPOCHS), "--log", "m.csv", "--plot", "l.png",
                "--save-params", "p.pt", "--json"], d)
    return proc, d


def test_train_sim_exit_and_summary(sim_run) -> None:
    proc, d = sim_run
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["steps"] == EPOCHS * TRAIN_SAMPLES and s["epochs"] == EPOCHS
    assert len(s["train_accuracy"]) == len(s["test_accuracy"]) == EPOCHS
    assert s["interrupted"] is None
    assert s["device"].startswith("sim")
    assert (s["metrics"], s["plot"], s["params"]) == ("m.csv", "l.png", "p.pt")
    assert np.float32(s["lr"]) == np.float32(0.05)  # the plan's default


def test_train_sim_metrics_csv(sim_run) -> None:
    proc, d = sim_run
    s = json.loads(proc.stdout)
    fields, rows = read_metrics(d / "m.csv")
    assert fields == CSV_FIELDS == ["step", "epoch", "sample", "label", "pred", "loss", "correct",
                                    "cost", "test_accuracy"]
    assert [int(r["step"]) for r in rows] == list(range(1, EPOCHS * TRAIN_SAMPLES + 1))
    for e in range(1, EPOCHS + 1):
        epoch = [r for r in rows if int(r["epoch"]) == e]
        assert len(epoch) == TRAIN_SAMPLES
        assert sorted(int(r["sample"]) for r in epoch) == list(range(TRAIN_SAMPLES))
        acc = np.mean([int(r["correct"]) for r in epoch])
        assert acc == pytest.approx(s["train_accuracy"][e - 1])
    for r in rows:
        assert int(r["correct"]) == int(int(r["pred"]) == int(r["label"]))
        assert np.isfinite(float(r["loss"])) and float(r["loss"]) >= 0
        assert int(r["cost"]) > 0  # the sim reports microseconds per step
    ends = [(int(r["step"]), float(r["test_accuracy"])) for r in rows if r["test_accuracy"]]
    assert [step for step, _ in ends] == [TRAIN_SAMPLES * e for e in range(1, EPOCHS + 1)]
    assert [acc for _, acc in ends] == pytest.approx(s["test_accuracy"])


def test_train_sim_learns(sim_run) -> None:
    proc, d = sim_run
    s = json.loads(proc.stdout)
    _, rows = read_metrics(d / "m.csv")
    mean_loss = [np.mean([float(r["loss"]) for r in rows if int(r["epoch"]) == e])
                 for e in (1, EPOCHS)]
    assert mean_loss[1] < mean_loss[0], mean_loss
    assert s["test_accuracy"][-1] > 0.5


def test_train_sim_plot(sim_run) -> None:
    _, d = sim_run
    png = (d / "l.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


def test_train_sim_saved_params_load_into_model(sim_run, demo_data, demo_plan) -> None:
    """The pulled state_dict loads strictly into the demo model, and PyTorch with it predicts the
    test split exactly as accurately as the device did after the last epoch."""
    from tinyhost.demo.basicmotions_model import make_model
    proc, d = sim_run
    s = json.loads(proc.stdout)
    state = torch.load(d / "p.pt", weights_only=True)
    model, _ = make_model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    assert all(not torch.equal(state[k], initial[k]) for k in initial)  # all of it trained
    model.eval()
    with torch.no_grad():
        preds = model(torch.from_numpy(demo_data.x_test)).argmax(1).numpy()
    assert float(np.mean(preds == demo_data.y_test)) == pytest.approx(s["test_accuracy"][-1])


def test_train_ref_equals_sim(sim_run, demo_plan_file: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture) -> None:
    """`--port ref` works, and with the same seed it records what the sim device recorded."""
    _, d = sim_run
    rc = main(["train", "--port", "ref", "--plan", str(demo_plan_file), "--data", DEMO_NPZ,
               "--epochs", str(EPOCHS), "--log", str(tmp_path / "r.csv"),
               "--save-params", str(tmp_path / "r.npz"), "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["device"] == "ref" and s["steps"] == EPOCHS * TRAIN_SAMPLES
    _, sim_rows = read_metrics(d / "m.csv")
    _, ref_rows = read_metrics(tmp_path / "r.csv")
    for a, b in zip(sim_rows, ref_rows, strict=True):
        assert (a["step"], a["sample"], a["label"], a["pred"]) == \
            (b["step"], b["sample"], b["label"], b["pred"])
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=RTOL)
    sim_params = torch.load(d / "p.pt", weights_only=True)
    with np.load(tmp_path / "r.npz") as ref_params:
        assert set(ref_params.files) == set(sim_params)
        for name in ref_params.files:
            r = ref_params[name]
            np.testing.assert_allclose(sim_params[name].numpy(), r, rtol=RTOL,
                                       atol=RTOL * float(np.abs(r).max()), err_msg=name)


def test_info_ref(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "--port", "ref"]) == 0
    out = capsys.readouterr().out
    assert "reference executor" in out and "no plan loaded" in out
    assert main(["info", "--port", "ref", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["board"] == "ref"


def test_info_sim(sim_binary, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "--port", "sim", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["board"] == "posix-sim" and info["arena_capacity"] == 262144
    assert info["plan_format"] == 1 and not info["plan_loaded"]


# -- a long-running `tinyhost sim`: train, then pull -----------------------------------------------
@pytest.fixture
def running_sim(sim_binary, tmp_path: Path):
    proc = subprocess.Popen(tinyhost_cmd() + ["sim"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "tinyhost sim printed nothing"
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), path
        yield path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0


def test_pull_from_running_sim(running_sim: str, demo_plan_file: Path, demo_plan, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:
    port, plan_file = running_sim, str(demo_plan_file)
    # Before training there: the device runs no plan, pull refuses.
    assert main(["pull", "--port", port, "--plan", plan_file, "-o", str(tmp_path / "x.pt")]) == 2
    assert "does not run plan" in capsys.readouterr().err

    rc = main(["train", "--port", port, "--plan", plan_file, "--data", DEMO_NPZ, "--epochs", "1",
               "--save-params", str(tmp_path / "trained.pt"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)

    assert main(["pull", "--port", port, "--plan", plan_file, "-o",
                 str(tmp_path / "pulled.pt")]) == 0
    assert "wrote 6 tensors" in capsys.readouterr().out
    trained = torch.load(tmp_path / "trained.pt", weights_only=True)
    pulled = torch.load(tmp_path / "pulled.pt", weights_only=True)
    assert set(trained) == set(pulled) == {"0.weight", "0.bias", "3.weight", "3.bias",
                                           "7.weight", "7.bias"}
    for name in trained:
        assert torch.equal(trained[name], pulled[name]), name
        assert not torch.equal(pulled[name], torch.from_numpy(
            demo_plan.plan.constant(demo_plan.plan.tensor_index(name)).copy())), name

    # The device keeps training state between commands: eval sees the trained parameters.
    assert main(["eval", "--port", port, "--plan", plan_file, "--data", DEMO_NPZ, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == summary["test_accuracy"][-1]

    # Another plan than the one the device runs: refused, nothing written.
    other = decode_plan(demo_plan_file.read_bytes())
    other.default_lr = 0.125
    (tmp_path / "other.ttp").write_bytes(encode_plan(other))
    assert main(["pull", "--port", port, "--plan", str(tmp_path / "other.ttp"), "-o",
                 str(tmp_path / "o.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not run plan" in err
    assert not (tmp_path / "o.pt").exists()


def test_train_corrupt_plan_file(tmp_path: Path, demo_plan, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "cut.ttp"
    bad.write_bytes(demo_plan.data[:len(demo_plan.data) // 2])
    assert main(["train", "--port", "ref", "--plan", str(bad), "--data", DEMO_NPZ]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("error: ") and "truncated" in err[0], err


# -- data errors ----------------------------------------------------------------------------------
def test_dataset_shape_mismatch(tmp_path: Path, demo_plan_file: Path,
                                capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=rng.standard_normal((8, 3, 50)).astype(np.float32),
             y_train=np.arange(8) % 4, x_test=rng.standard_normal((4, 3, 50)).astype(np.float32),
             y_test=np.arange(4) % 4)
    rc = main(["train", "--port", "ref", "--plan", str(demo_plan_file), "--data", str(bad),
               "--epochs", "1", "--log", str(tmp_path / "m.csv")])
    assert rc == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "(3, 50)" in err[0] and "(6, 100)" in err[0] and "600" in err[0], err[0]
    assert not (tmp_path / "m.csv").exists()


def test_nhwc_data_refused_or_converted_with_layout(tmp_path: Path, model_file,
                                                   capsys: pytest.CaptureFixture) -> None:
    """Images stored NHWC, same count as the 3x8x8 plan's input: refused naming the axes, and with
    --layout nhwc trained exactly as the same images stored NCHW."""
    spec = model_file("""
def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2)), torch.randn(1, 3, 8, 8)
""")
    plan = tmp_path / "p.ttp"
    assert main(["compile", spec, "-o", str(plan)]) == 0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3, 8, 8)).astype(np.float32) * np.array([1, 5, 9])[:, None, None]
    y = np.arange(10) % 2
    for name, xs in (("nchw", x), ("nhwc", x.transpose(0, 2, 3, 1))):
        np.savez(tmp_path / f"{name}.npz", x_train=xs[:8], y_train=y[:8], x_test=xs[8:],
                 y_test=y[8:])
    capsys.readouterr()
    train = ["train", "--port", "ref", "--plan", str(plan), "--epochs", "1", "--json"]
    assert main([*train, "--data", str(tmp_path / "nhwc.npz")]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "axis 0 (C) is 8 in the data, 3 in the plan" in err[0], err
    assert "--layout nhwc" in err[0]
    got = {}
    for name, extra in (("nchw", []), ("nhwc", ["--layout", "nhwc"])):
        out = tmp_path / f"{name}-params.npz"
        assert main([*train, "--data", str(tmp_path / f"{name}.npz"), "--save-params", str(out),
                     "--no-shuffle", *extra]) == 0
        with np.load(out) as f:
            got[name] = dict(f)
    for k, v in got["nchw"].items():
        np.testing.assert_array_equal(got["nhwc"][k], v, err_msg=k)


def test_dataset_labels_beyond_plan_classes(tmp_path: Path, demo_plan_file: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    bad = tmp_path / "six.npz"
    np.savez(bad, x_train=rng.standard_normal((12, 6, 100)).astype(np.float32),
             y_train=np.arange(12) % 6, x_test=rng.standard_normal((6, 6, 100)).astype(np.float32),
             y_test=np.arange(6))
    assert main(["eval", "--port", "ref", "--plan", str(demo_plan_file), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "0..5" in err and "4 classes" in err, err
