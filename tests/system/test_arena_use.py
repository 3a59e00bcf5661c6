"""The runtime writes exactly the arena the compiler planned: nothing outside it, and up to its
end."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tinyhost.compiler import compile_model

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "build" / "firmware" / "ports" / "posix" / "tinytrain_run"

CONV2D_MODEL = '''
import torch, torch.nn as nn
def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1, groups=4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)), \
        torch.randn(1, 3, 17, 17)
'''


@pytest.mark.parametrize("update", ["full", "last:1", "bias-only"])
@pytest.mark.parametrize("model", ["demo", "conv2d"])
def test_written_arena_equals_planned(tmp_path: Path, model: str, update: str) -> None:
    if not RUNNER.is_file():
        pytest.fail(f"{RUNNER} is missing: run `make build`")
    if model == "demo":
        source = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
    else:
        path = tmp_path / "conv2d_model.py"
        path.write_text(CONV2D_MODEL)
        source = f"{path}:make"
    result = compile_model(source, update=update, lr=0.01)
    plan_file = tmp_path / "plan.ttp"
    plan_file.write_bytes(result.data)
    out = subprocess.run([str(RUNNER), str(plan_file), "--steps", "3"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = re.search(r"arena: planned (\d+) bytes, written (\d+) bytes", out.stdout)
    assert m, out.stdout
    planned, written = int(m[1]), int(m[2])
    assert planned == result.plan.arena_size
    # The plan's arena ends 8-aligned (the device's tables follow it); the last tensor ends in the
    # final 8 bytes, and a step writes up to exactly there.
    assert planned - 8 < written <= planned
    assert written == max(t.arena_offset + t.nbytes for t in result.plan.tensors if t.in_arena)
