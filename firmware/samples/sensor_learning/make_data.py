"""Writes this sample's data from the demo's (host/tinyhost/demo): data/recording.bin, the
BasicMotions windows the emulated IMU replays (src/recording.h says the layout), and data/plan.ttp,
the demo model compiled at the demo's learning rate, built into the image.

    .venv/bin/python firmware/samples/sensor_learning/make_data.py

tests/host/test_sensor_sample.py checks that both are what this script writes."""
from __future__ import annotations

import contextlib
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DEMO = REPO / "host" / "tinyhost" / "demo"
SCALE = 1.0 / 512  # int16 steps: +-64 in the recording's units (BasicMotions peaks at ~35)
DEMO_LR = 0.05     # the Makefile's DEMO_LR


def recording_bytes() -> bytes:
    from tinyhost.datasets import load_dataset, standardize
    ds = load_dataset(DEMO / "basicmotions.npz")
    _, mean, std = standardize(ds)
    x = np.concatenate([ds.x_train, ds.x_test])  # windows x channels x rows
    y = np.concatenate([ds.y_train, ds.y_test]).astype(np.uint8)
    windows, channels, rows = x.shape
    raw = np.round(x / SCALE)
    if np.abs(raw).max() > 32767:
        raise ValueError("the recording exceeds the int16 range at this scale")
    head = b"TTRC" + struct.pack("<HHIIIf", 1, channels, rows, windows, len(ds.x_train), SCALE)
    head += np.asarray(mean, "<f4").tobytes() + np.asarray(std, "<f4").tobytes()
    labels = y.tobytes() + bytes(-len(y) % 4)
    body = raw.astype("<i2").transpose(0, 2, 1).tobytes()  # window, row, channel
    return head + labels + body


def plan_bytes() -> bytes:
    from tinyhost.compiler import compile_model
    # from the repository root with a relative path: the plan's meta names its model source, and
    # the bytes must not depend on where the repository is checked out
    with contextlib.chdir(REPO):
        model = f"{(DEMO / 'basicmotions_model.py').relative_to(REPO)}:make_model"
        return compile_model(model, update="full", lr=DEMO_LR).data


def main() -> int:
    out = HERE / "data"
    out.mkdir(exist_ok=True)
    (out / "recording.bin").write_bytes(recording_bytes())
    (out / "plan.ttp").write_bytes(plan_bytes())
    print(f"wrote {out / 'recording.bin'} and {out / 'plan.ttp'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
