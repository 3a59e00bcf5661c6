"""The Renode Robot test (boards/renode/train.robot), where Renode is installed."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROBOT = REPO / "boards" / "renode" / "train.robot"


@pytest.mark.skipif(shutil.which("renode-test") is None,
                    reason="renode-test is not on PATH "
                           "(Renode cannot be installed on this machine)")
def test_renode_trains_the_f746_firmware(tmp_path: Path) -> None:
    elf = Path(os.environ.get("TINYTRAIN_F746_ELF", REPO / "build-f746" / "zephyr" / "zephyr.elf"))
    if not elf.is_file():
        pytest.fail(f"{elf} is missing: build it with `west build -b nucleo_f746zg firmware "
                    "-d build-f746`, or set TINYTRAIN_F746_ELF")
    plan = tmp_path / "demo.ttp"
    subprocess.run([str(REPO / ".venv/bin/tinyhost"), "compile",
                    f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model", "--lr", "0.05",
                    "-o", str(plan)], check=True, capture_output=True)
    result = subprocess.run(["renode-test", str(ROBOT), "--variable", f"ELF:{elf}",
                             "--variable", f"PLAN:{plan}"], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
