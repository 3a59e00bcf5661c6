"""`tinyhost compile MODEL --int8 --calib DATA`: a float model quantized after training, trained on
the reference executor, and the flag mistakes the command names."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyhost.cli import main

DEMO = Path(__file__).resolve().parents[2] / "host" / "tinyhost" / "demo"
MODEL = f"{DEMO / 'basicmotions_int8_model.py'}:make_model"
DATA = str(DEMO / "basicmotions.npz")


def test_compile_int8_and_train_ref(tmp_path, capsys):
    plan = tmp_path / "plan.ttp"
    assert main(["compile", MODEL, "--int8", "--calib", DATA, "--update", "last:2",
                 "-o", str(plan), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    int8 = out["int8"]
    assert int8["calibration"] == {"data": DATA, "split": "train", "normalize": True,
                                   "samples": 40}
    assert int8["qas"] is True and int8["input_shape"] == [6, 1, 100]
    assert int8["scheme"]["n_bias_update"] == 1 and int8["scheme"]["manual_weight_idx"] == [2]
    assert main(["train", "--port", "ref", "--plan", str(plan), "--data", DATA, "--epochs", "2",
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err  # calibrated on standardized samples, as trained
    summary = json.loads(captured.out)
    assert summary["steps"] == 80 and len(summary["test_accuracy"]) == 2
    # raw samples into a plan calibrated on standardized ones: said so
    assert main(["eval", "--port", "ref", "--plan", str(plan), "--data", DATA,
                 "--no-normalize", "--json"]) == 0
    assert "calibrated on standardized samples but these are raw" in capsys.readouterr().err


def test_compile_int8_text_report(tmp_path, capsys):
    assert main(["compile", MODEL, "--int8", "--calib", DATA, "--int8-update", "master",
                 "--no-qas", "-o", str(tmp_path / "p.ttp")]) == 0
    out = capsys.readouterr().out
    assert "QAS off, int8 update rule master" in out
    assert "calibrated on 40 samples" in out and "(train split, standardized)" in out


@pytest.mark.parametrize("args,message", [
    (["compile", MODEL, "--int8", "-o", "p.ttp"], "--int8 needs --calib DATA"),
    (["compile", MODEL, "--calib", DATA, "-o", "p.ttp"], "--calib applies to --int8 only"),
    (["compile", MODEL, "--no-normalize", "-o", "p.ttp"], "--no-normalize applies to --int8 only"),
    (["compile", "--from-tiny-training", "x.pkl", "--num-classes", "2", "--int8", "--calib", DATA,
      "-o", "p.ttp"], "--from-tiny-training models are int8 already"),
    (["compile", MODEL, "--int8", "--calib", DATA, "--num-classes", "3", "-o", "p.ttp"],
     "--num-classes apply to --from-tiny-training models only"),
    (["compile", MODEL, "--no-qas", "-o", "p.ttp"],
     "--no-qas apply to int8 models only (--int8 or --from-tiny-training)"),
    (["compile", MODEL, "--int8", "--calib", "missing.npz", "-o", "p.ttp"], "missing.npz"),
])
def test_compile_int8_errors(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.ttp").exists()


def test_unsupported_layer_is_named(tmp_path, capsys):
    model = tmp_path / "m.py"
    model.write_text("import torch\nfrom torch import nn\n\ndef make():\n"
                     "    return nn.Sequential(nn.Conv1d(6, 8, 3), nn.ReLU(), nn.MaxPool1d(2), "
                     "nn.Flatten(), nn.Linear(392, 4)), torch.zeros(1, 6, 100)\n")
    assert main(["compile", f"{model}:make", "--int8", "--calib", DATA, "-o",
                 str(tmp_path / "p.ttp")]) == 2
    err = capsys.readouterr().err
    assert "unsupported layer MaxPool1d at '2'" in err and "Conv1d" in err
