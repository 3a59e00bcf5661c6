"""Train one plan for the same steps on several devices and compare the pulled parameters.

    .venv/bin/python bench/compare_devices.py [--ports ref,sim] [--steps 20] [--model FILE.py:FACTORY]

Prints, per device and tensor kind, the largest difference from the reference executor's
parameters. fp32 tensors should agree within 1e-5 relative; integer tensors exactly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tinyhost.compiler import compile_model
from tinyhost.datasets import load_dataset, standardize
from tinyhost.device import connect
from tinyhost.params import pull_parameters
from tinyhost.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
DEMO_DATA = REPO / "host/tinyhost/demo/basicmotions.npz"


def train_on(port: str, plan, data: bytes, ds, steps: int, seed: int) -> dict[str, np.ndarray]:
    device = connect(port)
    try:
        device.load_plan(plan, data)
        cfg = TrainConfig(epochs=steps // len(ds.x_train) + 1, lr=plan.default_lr, seed=seed,
                          max_steps=steps, progress=False)
        result = train(device, ds, cfg)
        if result.interrupted:
            raise RuntimeError(f"{port}: {result.interrupted}")
        return pull_parameters(device, plan)
    finally:
        device.close()


def compare(ref: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Per dtype kind: (largest absolute difference, largest difference relative to max |ref|)."""
    worst: dict[str, tuple[float, float]] = {}
    for name, a in ref.items():
        b = other[name]
        kind = str(a.dtype)
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        scale = float(np.max(np.abs(a))) or 1.0
        prev = worst.get(kind, (0.0, 0.0))
        worst[kind] = (max(prev[0], diff), max(prev[1], diff / scale))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", default="ref,sim")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=DEMO_MODEL)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    result = compile_model(args.model, lr=args.lr)
    ds, _, _ = standardize(load_dataset(DEMO_DATA))
    ports = args.ports.split(",")
    params = {p: train_on(p, result.plan, result.data, ds, args.steps, args.seed) for p in ports}
    ref = params[ports[0]]
    print(f"{args.steps} training steps of {Path(args.model.split(':')[0]).stem}, seed {args.seed}; "
          f"differences from {ports[0]}")
    print(f"| {'device':<8} | {'dtype':<8} | {'max abs diff':>13} | {'max rel diff':>13} |")
    print(f"|{'-' * 10}|{'-' * 10}|{'-' * 15}|{'-' * 15}|")
    for port in ports[1:]:
        for kind, (absd, reld) in sorted(compare(ref, params[port]).items()):
            print(f"| {port:<8} | {kind:<8} | {absd:13.3e} | {reld:13.3e} |")


if __name__ == "__main__":
    main()
