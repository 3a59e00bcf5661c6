"""`tinyhost train` on different ports with the same seed trains the same parameters (issue 6)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
DEMO_DATA = str(REPO / "host/tinyhost/demo/basicmotions.npz")


def tinyhost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tinyhost.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def demo_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = tmp_path_factory.mktemp("plan") / "demo.ttp"
    r = tinyhost("compile", DEMO_MODEL, "--lr", "0.05", "-o", str(plan), "--json")
    assert r.returncode == 0, r.stderr
    return plan


def train_params(port: str, plan: Path, out: Path, *extra: str) -> dict[str, np.ndarray]:
    r = tinyhost("train", "--port", port, "--plan", str(plan), "--data", DEMO_DATA, "--seed", "7",
                 "--steps", "20", "--epochs", "1", "--save-params", str(out), "--json", *extra)
    assert r.returncode == 0, r.stderr
    with np.load(out) as f:
        return dict(f)


def test_ref_and_sim_train_the_same_parameters(demo_plan: Path, tmp_path: Path) -> None:
    ref = train_params("ref", demo_plan, tmp_path / "ref.npz")
    sim = train_params("sim", demo_plan, tmp_path / "sim.npz")
    assert ref.keys() == sim.keys() and len(ref) == 6
    for name, a in ref.items():
        scale = float(np.max(np.abs(a)))
        np.testing.assert_allclose(sim[name], a, rtol=0, atol=1e-5 * scale, err_msg=name)


def test_seed_and_shuffle_change_the_order(demo_plan: Path, tmp_path: Path) -> None:
    a = train_params("ref", demo_plan, tmp_path / "a.npz")
    b = train_params("ref", demo_plan, tmp_path / "b.npz", "--no-shuffle")
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_pull_refuses_one_shot_ports(demo_plan: Path, tmp_path: Path) -> None:
    r = tinyhost("pull", "--port", "ref", "--plan", str(demo_plan), "-o", str(tmp_path / "p.pt"))
    assert r.returncode == 2 and "--save-params" in r.stderr


@pytest.mark.parametrize("lr", ["2", "1e37"])  # a loss blow-up; an update the device refuses
def test_ref_and_sim_stop_a_diverging_run_alike(demo_plan: Path, tmp_path: Path, lr: str) -> None:
    said = {}
    params = {}
    for port in ("ref", "sim"):
        out = tmp_path / f"{port}.npz"
        r = tinyhost("train", "--port", port, "--plan", str(demo_plan), "--data", DEMO_DATA,
                     "--seed", "7", "--epochs", "2", "--lr", lr, "--save-params", str(out),
                     "--json")
        assert r.returncode == 1, r.stderr
        assert "training diverged" in r.stderr and "What to try" in r.stderr, r.stderr
        said[port] = r.stderr.split("stopped at ")[1].split(":")[0]  # "step N (epoch E)"
        with np.load(out) as f:
            params[port] = dict(f)
    assert said["ref"] == said["sim"]
    for name, a in params["ref"].items():
        assert np.all(np.isfinite(a)), name
        scale = float(np.max(np.abs(a)))  # fp32 sums differ in order between numpy and C
        np.testing.assert_allclose(params["sim"][name], a, rtol=0, atol=1e-5 * scale, err_msg=name)
