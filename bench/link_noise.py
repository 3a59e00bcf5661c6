"""The demo trained on the simulated device through a noisy wire (issue 14): time against the clean
run and whether the trained parameters are identical.

    .venv/bin/python bench/link_noise.py [--rates 0.001,0.01,0.02] [--epochs 1] [--seed 1]

Each byte either way is corrupted, dropped or duplicated with probability RATE (split evenly;
tinyhost.link.faults, as TINYTRAIN_LINK_FAULTS=rate=RATE would), on `--port sim` with the demo
plan, `--seed`/`--no-shuffle` order. Prints wall time (upload, training, evaluation after each
epoch, the parameter pull), its ratio to the clean run measured in the same invocation, the
link's resends by cause, the final chunk size, and whether every pulled parameter is identical to
the clean run's. A run that cannot finish says why.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhost.compiler import compile_model
from tinyhost.datasets import load_dataset, standardize
from tinyhost.demo.basicmotions_model import DEFAULT_LR
from tinyhost.device import SerialDevice, connect
from tinyhost.link.errors import LinkError
from tinyhost.link.transport import FAULTS_ENV
from tinyhost.params import pull_parameters
from tinyhost.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
DEMO_DATA = REPO / "host/tinyhost/demo/basicmotions.npz"


@dataclass
class Run:
    rate: float
    seconds: float
    params: dict[str, np.ndarray] | None
    stats: str
    chunk: int
    error: str | None = None


def run(rate: float, epochs: int, seed: int) -> Run:
    os.environ[FAULTS_ENV] = f"rate={rate},seed={seed}"
    result = compile_model(DEMO_MODEL, lr=DEFAULT_LR)
    ds, _, _ = standardize(load_dataset(DEMO_DATA))
    t0 = time.monotonic()
    dev = None
    try:
        dev = connect("sim")
        assert isinstance(dev, SerialDevice)
        dev.load_plan(result.plan, result.data)
        out = train(dev, ds, TrainConfig(epochs=epochs, lr=DEFAULT_LR, seed=seed, shuffle=False,
                                         progress=False))
        if out.interrupted:
            raise LinkError(out.interrupted)
        params = pull_parameters(dev, result.plan)
        s = dev.client.stats
        return Run(rate, time.monotonic() - t0, params,
                   f"{s.requests} requests, {s.nak} NAK, {s.corrupt} corrupt, {s.silent} silent",
                   dev.client.chunk_size(dev.chunk))
    except (LinkError, OSError) as e:
        return Run(rate, time.monotonic() - t0, None, "", 0, str(e).splitlines()[0][:100])
    finally:
        if dev is not None:
            dev.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="0.001,0.01,0.02",
                    help="byte fault rates to run besides the clean one (default 0.001,0.01,0.02)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    ap.add_argument("--seed", type=int, default=1, help="fault and sample order seed")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    runs = []
    for rate in [0.0, *rates]:
        print(f"rate {rate:g} ...", file=sys.stderr, flush=True)
        runs.append(run(rate, args.epochs, args.seed))
    clean = runs[0]
    print(f"### The demo on `--port sim` through a noisy wire ({args.epochs} epoch(s), "
          f"seed {args.seed})\n")
    print("| byte fault rate | finished | seconds | × clean | identical to clean | link | "
          "final chunk B |")
    print("|---:|---|---:|---:|---|---|---:|")
    for r in runs:
        same = (r.params is not None and clean.params is not None and r.params.keys() ==
                clean.params.keys() and all(np.array_equal(r.params[k], clean.params[k])
                                            for k in r.params))
        done = "yes" if r.error is None else f"no: {r.error}"
        print(f"| {r.rate:g} | {done} | {r.seconds:.1f} | {r.seconds / clean.seconds:.1f} | "
              f"{'yes' if same else 'no'} | {r.stats} | {r.chunk} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
