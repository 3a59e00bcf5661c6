"""What link authorization costs (issue 14 section 5, docs/security.md).

    .venv/bin/python bench/auth.py [--epochs 1] [--no-qemu]

1. On the Cortex-M4F (QEMU mps2-an386, -icount: instructions): one MAC (keyed BLAKE2b-128, the
   tag of a request or reply) over payloads of 0 to 4096 bytes, from the firmware's --bench-mac
   (build-arm, `make qemu`). A provisioned device computes two per request: the request's tag it
   checks, its reply's.
2. On the host: the same MAC with hashlib, per call.
3. The demo's training (`--port sim`, `--epochs`, seed 1, no shuffle) on an open and on a
   provisioned simulated device: wall time of upload, training, evaluation and parameter pull,
   and whether the parameters are identical.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

from tinyhost.compiler import compile_model
from tinyhost.datasets import load_dataset, standardize
from tinyhost.demo.basicmotions_model import DEFAULT_LR
from tinyhost.device import SerialDevice, connect
from tinyhost.keys import new_key, write_key
from tinyhost.link.qemu import find_qemu, find_qemu_elf, qemu_command
from tinyhost.params import pull_parameters
from tinyhost.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
DEMO_DATA = REPO / "host/tinyhost/demo/basicmotions.npz"
SIZES = (0, 64, 256, 1024, 4096)


def m4f_macs() -> dict[int, int]:
    """Instructions per MAC by payload size, from the firmware's --bench-mac."""
    cmd = qemu_command(find_qemu(), find_qemu_elf(), 0, ("--bench-mac",))
    cmd[cmd.index("-serial") + 1] = "null"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr  # the semihosting console
    costs = {}
    for line in out.splitlines():
        if "bench-mac" in line:  # tinytrain-an386: bench-mac N bytes: M instructions
            words = line.split()
            costs[int(words[2])] = int(words[4])
    return costs


def host_mac_us(size: int) -> float:
    key, data = bytes(32), bytes(size)
    n = 20000
    t = timeit.timeit(lambda: hashlib.blake2b(data, key=key, digest_size=16).digest(), number=n)
    return t / n * 1e6


def train_demo(key: str | None, epochs: int) -> tuple[float, dict[str, np.ndarray]]:
    result = compile_model(DEMO_MODEL, lr=DEFAULT_LR)
    ds, _, _ = standardize(load_dataset(DEMO_DATA))
    t0 = time.monotonic()
    dev = connect("sim", key)
    try:
        assert isinstance(dev, SerialDevice)
        dev.load_plan(result.plan, result.data)
        train(dev, ds, TrainConfig(epochs=epochs, lr=DEFAULT_LR, seed=1, shuffle=False,
                                   progress=False))
        params = pull_parameters(dev, result.plan)
    finally:
        dev.close()
    return time.monotonic() - t0, params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1, help="demo training epochs (default 1)")
    ap.add_argument("--no-qemu", action="store_true", help="skip the Cortex-M4F figures")
    args = ap.parse_args()

    m4f = {} if args.no_qemu else m4f_macs()
    print("MAC (keyed BLAKE2b-128) per payload size")
    print(f"{'bytes':>6} | {'M4F instructions':>16} | {'ms at 216 MHz*':>14} | {'host us':>8}")
    for size in SIZES:
        ins = m4f.get(size)
        col = f"{ins:>16,} | {ins / 216e3:>14.3f}" if ins else f"{'-':>16} | {'-':>14}"
        print(f"{size:>6} | {col} | {host_mac_us(size):>8.2f}")
    print("* at one instruction per cycle (QEMU -icount counts instructions, not cycles)")

    with tempfile.TemporaryDirectory() as tmp:
        key = str(Path(tmp) / "bench.key")
        write_key(key, new_key())
        open_s, open_p = train_demo(None, args.epochs)
        keyed_s, keyed_p = train_demo(key, args.epochs)
    same = all(np.array_equal(open_p[k], keyed_p[k]) for k in open_p)
    print(f"\ndemo, {args.epochs} epoch(s) on --port sim: open {open_s:.2f} s, provisioned "
          f"{keyed_s:.2f} s ({keyed_s / open_s:.2f}x); parameters identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
