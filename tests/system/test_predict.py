"""`tinyhost predict` (issue 16): on-device inference into a CSV, on labeled and unlabeled data."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "host" / "tinyhost" / "demo" / "basicmotions.npz"
CLI = [sys.executable, "-m", "tinyhost.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_predict_labeled_and_unlabeled_data_alike(demo_plan_file: Path, sim_binary: Path,
                                                  tmp_path: Path) -> None:
    labeled = tmp_path / "labeled.csv"
    r = run("predict", "--port", "sim", "--plan", str(demo_plan_file), "--data", str(DATA),
            "-o", str(labeled), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    got = rows(labeled)
    assert summary["samples"] == len(got) == 40
    assert list(got[0]) == ["index", "pred", "class", "label", "correct"]
    assert summary["accuracy"] == sum(int(g["correct"]) for g in got) / 40
    ev = run("eval", "--port", "ref", "--plan", str(demo_plan_file), "--data", str(DATA),
             "--json")
    assert ev.returncode == 0 and json.loads(ev.stdout)["accuracy"] == summary["accuracy"]

    with np.load(DATA) as f:  # the same test samples, without their labels
        np.save(tmp_path / "x.npy", f["x_test"])
    r = run("predict", "--port", "ref", "--plan", str(demo_plan_file), "--data",
            str(tmp_path / "x.npy"), "-o", str(tmp_path / "u.csv"))
    assert r.returncode == 2 and "--normalize-with" in r.stderr
    r = run("predict", "--port", "ref", "--plan", str(demo_plan_file), "--data",
            str(tmp_path / "x.npy"), "--normalize-with", str(DATA), "-o", str(tmp_path / "u.csv"))
    assert r.returncode == 0, r.stderr
    unlabeled = rows(tmp_path / "u.csv")
    assert list(unlabeled[0]) == ["index", "pred", "class"]
    assert [u["pred"] for u in unlabeled] == [g["pred"] for g in got]
    assert [u["class"] for u in unlabeled] == [g["class"] for g in got]


def test_predict_refuses_bad_input_clearly(demo_plan_file: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5, 7), np.float32))
    r = run("predict", "--port", "ref", "--plan", str(demo_plan_file), "--data",
            str(tmp_path / "wrong.npy"), "--no-normalize", "-o", str(tmp_path / "p.csv"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "wrong" in r.stderr
    r = run("predict", "--port", "ref", "--plan", str(demo_plan_file), "--data", str(DATA),
            "-o", str(tmp_path / "no" / "p.csv"))
    assert r.returncode == 2 and "does not exist" in r.stderr
