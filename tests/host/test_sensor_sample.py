"""The Zephyr sample firmware/samples/sensor_learning (issue 16) builds its recording and plan into
the image: they must be what its make_data.py writes from the demo today (a plan compiled by an
older tinyhost would be refused, or train differently from `--port ref`), and the recording's
layout must be the one src/recording.h reads."""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from types import ModuleType

import numpy as np

from tinyhost.datasets import load_dataset, standardize
from tinyhost.plan import decode_plan

SAMPLE = Path(__file__).resolve().parents[2] / "firmware" / "samples" / "sensor_learning"


def _make_data() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_data", SAMPLE / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_built_into_the_image_is_current() -> None:
    shipped = (SAMPLE / "data" / "plan.ttp").read_bytes()
    assert shipped == _make_data().plan_bytes(), (
        "firmware/samples/sensor_learning/data/plan.ttp is stale: run "
        ".venv/bin/python firmware/samples/sensor_learning/make_data.py")
    plan = decode_plan(shipped)
    assert plan.tensors[plan.bindings.input].shape == (6, 100) and plan.num_classes == 4


def test_the_recording_is_current_and_reads_back_as_the_demo_data() -> None:
    md = _make_data()
    data = (SAMPLE / "data" / "recording.bin").read_bytes()
    assert data == md.recording_bytes(), "recording.bin is stale: run make_data.py"
    # src/recording.h's layout, read independently of make_data.py's writer
    assert data[:4] == b"TTRC"
    version, channels, rows, windows, train, scale = struct.unpack_from("<HHIIIf", data, 4)
    assert (version, channels, rows, windows, train) == (1, 6, 100, 80, 40)
    at = 24
    mean = np.frombuffer(data, "<f4", channels, at)
    std = np.frombuffer(data, "<f4", channels, at + 4 * channels)
    at += 8 * channels
    labels = np.frombuffer(data, np.uint8, windows, at)
    at += (windows + 3) // 4 * 4
    raw = np.frombuffer(data, "<i2", windows * rows * channels, at)
    assert at + raw.nbytes == len(data)
    x = raw.reshape(windows, rows, channels).transpose(0, 2, 1) * np.float32(scale)

    ds = load_dataset(Path(md.DEMO) / "basicmotions.npz")
    _, want_mean, want_std = standardize(ds)
    np.testing.assert_array_equal(mean, want_mean)
    np.testing.assert_array_equal(std, want_std)
    np.testing.assert_array_equal(labels, np.concatenate([ds.y_train, ds.y_test]))
    np.testing.assert_allclose(x, np.concatenate([ds.x_train, ds.x_test]), rtol=0,
                               atol=scale / 2 + 1e-6)
