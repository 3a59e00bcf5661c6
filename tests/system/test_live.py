"""`tinyhost train --live` (issue 16): curves redrawn in the terminal as the sim trains; refused
without a terminal; output paths checked before training; SIGTERM keeps the metrics CSV whole."""
from __future__ import annotations

import csv
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = str(REPO / "host" / "tinyhost" / "demo" / "basicmotions.npz")
CLI = [sys.executable, "-m", "tinyhost.cli"]


def test_live_view_draws_moving_curves_in_a_terminal(demo_plan_file: Path, sim_binary: Path,
                                                     tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: tinyhost on a pseudo-terminal, as a user at a terminal runs it
        os.environ["COLUMNS"], os.environ["LINES"] = "100", "40"
        os.execv(sys.executable, [*CLI, "train", "--port", "sim", "--plan", str(demo_plan_file),
                                  "--data", DATA, "--epochs", "2", "--live"])
    out = bytearray()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child has exited
                break
            if not chunk:
                break
            out.extend(chunk)
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    frames = text.count("\x1b[H")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # plotext colours each character
    titles = [t.split("/")[0] for t in plain.split("step ")[1:] if "/80" in t[:12]]
    assert frames >= 3, f"{frames} redraws"
    assert len(set(titles)) >= 3, "the step count did not move between frames"
    assert "accuracy: test (on device) " in plain and "test (per epoch)" in plain
    assert "\x1b[?25h" in text  # the cursor is given back


def test_live_refuses_without_a_terminal(demo_plan_file: Path) -> None:
    r = subprocess.run([*CLI, "train", "--port", "ref", "--plan", str(demo_plan_file), "--data",
                        DATA, "--live"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "stdout is not a terminal" in r.stderr


def test_bad_output_paths_fail_before_training(demo_plan_file: Path, tmp_path: Path) -> None:
    for flag in ("--log", "--plot", "--save-params"):
        start = time.monotonic()
        r = subprocess.run([*CLI, "train", "--port", "sim", "--plan", str(demo_plan_file),
                            "--data", DATA, flag, str(tmp_path / "missing" / "out.file")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and f"{flag} " in r.stderr and "does not exist" in r.stderr
        assert "training on" not in r.stderr and time.monotonic() - start < 30


def test_sigterm_keeps_every_step_in_the_metrics_csv(demo_plan_file: Path, sim_binary: Path,
                                                     tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    proc = subprocess.Popen([*CLI, "train", "--port", "sim", "--plan", str(demo_plan_file),
                             "--data", DATA, "--epochs", "50", "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) > 30:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # as `timeout` does
    _, err = proc.communicate(timeout=60)
    assert "training stopped early: interrupted" in err, err
    rows = list(csv.DictReader(log.open()))
    steps = [int(r["step"]) for r in rows]
    assert len(steps) > 30 and steps == list(range(1, len(steps) + 1))


def test_sigkill_leaves_every_finished_row(demo_plan_file: Path, sim_binary: Path,
                                          tmp_path: Path) -> None:
    """kill -9 runs no handler: the CSV holds what was flushed, each row as it was trained (an
    epoch's last row waits only for the epoch's evaluation)."""
    log = tmp_path / "metrics.csv"
    proc = subprocess.Popen([*CLI, "train", "--port", "sim", "--plan", str(demo_plan_file),
                             "--data", DATA, "--epochs", "50", "--log", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline and seen <= 50:
        seen = len(log.read_text().splitlines()) - 1 if log.exists() else 0
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)
    steps = [int(r["step"]) for r in csv.DictReader(log.open())]
    assert len(steps) >= seen > 50 and steps == list(range(1, len(steps) + 1))
    assert all(r["loss"] for r in csv.DictReader(log.open()))  # no torn row
