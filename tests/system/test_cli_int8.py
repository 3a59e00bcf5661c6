"""`tinyhost compile --from-tiny-training` end to end: the paper's int8 model at a small input size
with its shipped 99kb scheme, training on the reference executor from a float image dataset, and
what a device whose firmware does not run an op says (before uploading anything)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyhost.cli import main
from tinyhost.plan import DType, decode_plan

MODELS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mcu_models"
PKL = MODELS / "mcunet-5fps.pkl"
SCHEMES = MODELS / "sparse_schemes.json"
SIZE = 32


@pytest.fixture(scope="module")
def int8_plan(tmp_path_factory) -> tuple[Path, dict]:
    if not PKL.is_file():
        pytest.skip(f"{PKL} is not here")
    d = tmp_path_factory.mktemp("int8")
    out = d / "m.ttp"
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["compile", "--from-tiny-training", str(PKL), "--num-classes", "4",
                   "--input-size", str(SIZE), "--update", f"{SCHEMES}:mcunet-5fps:99kb",
                   "--int8-update", "master", "--lr", "0.002", "-o", str(out), "--json"])
    assert rc == 0
    return out, json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "img.npz"
    np.savez(path, x_train=rng.uniform(-1, 1, (8, 3, SIZE, SIZE)).astype(np.float32),
             y_train=np.arange(8) % 4,
             x_test=rng.uniform(-1, 1, (4, 3, SIZE, SIZE)).astype(np.float32),
             y_test=np.arange(4))
    return path


def test_compile_json(int8_plan):
    out, doc = int8_plan
    plan = decode_plan(out.read_bytes())
    assert doc["bytes"] == out.stat().st_size and doc["memory"]["arena_bytes"] == plan.arena_size
    int8 = doc["int8"]
    assert int8["scheme"]["manual_weight_idx"] == [21, 24, 27, 30, 36, 39]
    assert int8["int8_update"] == "master" and int8["qas"] is True
    assert int8["input_shape"] == [3, SIZE, SIZE] and int8["input_quant"]["zero"] == 0
    assert plan.tensors[plan.bindings.input].dtype == DType.S8 and plan.num_classes == 4


def test_train_ref_from_float_images(int8_plan, images, tmp_path, capsys):
    out, _ = int8_plan
    assert main(["train", "--port", "ref", "--plan", str(out), "--data", str(images),
                 "--epochs", "2", "--no-normalize", "--save-params", str(tmp_path / "p.npz"),
                 "--json"]) == 0
    captured = capsys.readouterr()
    s = json.loads(captured.out)
    assert "warning" not in captured.err
    assert s["steps"] == 16 and s["interrupted"] is None and np.isfinite(s["final_loss"])
    params = np.load(tmp_path / "p.npz")
    assert params["blocks.13.pointwise1.weight_rows"].dtype == np.int8
    assert params["blocks.13.pointwise1.weight_rows.master"].dtype == np.float32


def test_device_without_int8_ops_refuses_before_upload(int8_plan, images, sim_binary, capsys,
                                                       monkeypatch):
    """An older firmware (its HELLO lists no CONV2D_S8) is told so before the upload starts."""
    import dataclasses

    from tinyhost.device import SerialDevice
    from tinyhost.ops import Opcode
    real_info = SerialDevice.info

    def older_firmware(self):
        info = real_info(self)
        return dataclasses.replace(info, ops=[o for o in info.ops if o != Opcode.CONV2D_S8])

    monkeypatch.setattr(SerialDevice, "info", older_firmware)
    out, _ = int8_plan
    assert main(["train", "--port", "sim", "--plan", str(out), "--data", str(images),
                 "--epochs", "1", "--no-normalize", "--json"]) == 2
    err = capsys.readouterr().err
    assert "does not run CONV2D_S8" in err and "--port ref" in err


@pytest.mark.parametrize("args,message", [
    (["compile", "--from-tiny-training", "x.pkl", "-o", "p.ttp"], "needs --num-classes"),
    (["compile", "a.py:f", "--from-tiny-training", "x.pkl", "--num-classes", "2", "-o", "p.ttp"],
     "not both"),
    (["compile", "-o", "p.ttp"], "give a MODEL"),
    (["compile", "a.py:f", "--int8-update", "master", "-o", "p.ttp"],
     "--int8-update apply to int8 models only"),
    (["compile", "--from-tiny-training", "missing.pkl", "--num-classes", "2", "-o", "p.ttp"],
     "import_tiny: missing.pkl does not exist"),
])
def test_compile_errors(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_standardised_samples_warn(int8_plan, images, capsys):
    out, _ = int8_plan
    assert main(["eval", "--port", "ref", "--plan", str(out), "--data", str(images), "--json"]) == 0
    err = capsys.readouterr().err
    assert "warning: this int8 plan quantizes its input for [-1, 0.996]" in err
    assert "--no-normalize" in err


def test_backbone_lr_trains_the_same_on_sim_and_ref(images, tmp_path, capsys):
    """A backbone rate apart from the head's (the plan's lr_scale rewritten by train): the sim's
    firmware applies it exactly as the reference does, every parameter bit for bit."""
    if not PKL.is_file():
        pytest.skip(f"{PKL} is not here")
    out = tmp_path / "round.ttp"  # int8_plan's master rule needs more arena than the sim has
    assert main(["compile", "--from-tiny-training", str(PKL), "--num-classes", "4",
                 "--input-size", str(SIZE), "--update", f"{SCHEMES}:mcunet-5fps:99kb",
                 "--int8-update", "round", "-o", str(out)]) == 0
    capsys.readouterr()
    params = {}
    for port in ("ref", "sim"):
        saved = tmp_path / f"{port}.npz"
        assert main(["train", "--port", port, "--plan", str(out), "--data", str(images),
                     "--epochs", "2", "--no-normalize", "--lr", "0.01", "--backbone-lr", "0.0007",
                     "--save-params", str(saved), "--json"]) == 0
        s = json.loads(capsys.readouterr().out)
        assert s["backbone_lr"] == pytest.approx(0.0007, rel=1e-6)
        with np.load(saved) as f:
            params[port] = dict(f)
    assert params["ref"].keys() == params["sim"].keys()
    for name, a in params["ref"].items():
        assert np.array_equal(params["sim"][name], a), name
