"""Train one plan for the same steps on several devices and compare the pulled parameters.

    .venv/bin/python bench/compare_devices.py [--ports ref,sim] [--steps 20]
                                              [--model FILE.py:FACTORY]
    .venv/bin/python bench/compare_devices.py --paper mbv2-w0.35 [--input-size 128]
                                              [--ports ref,sim]

Prints, per device and tensor kind, the largest difference from the reference executor's
parameters. For the fp32 demo, fp32 tensors agree within 1e-5 relative (its conv kernels sum in a
different order than numpy). `--paper MODEL` trains one of the paper's int8 models (its ~100 KB
scheme, random images: the comparison needs the same samples, not meaningful ones); there every
tensor, the fp32 head included, must be identical (0 difference).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from tinyhost.compiler import compile_model, compile_tiny_training
from tinyhost.datasets import load_dataset, standardize
from tinyhost.device import connect
from tinyhost.params import pull_parameters
from tinyhost.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
DEMO_DATA = REPO / "host/tinyhost/demo/basicmotions.npz"
PAPER_MODELS = REPO.parent / "shared" / "data" / "mcu_models"


def random_images(size: int, n: int = 24):
    """n random 3 x size x size images in [-1, 1] (the paper models' range), 10 classes."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (n, 3, size, size)).astype(np.float32)
    y = rng.integers(0, 10, n)
    path = Path(tempfile.mkdtemp()) / "images.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    return load_dataset(path)


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


def compare(ref: dict[str, np.ndarray],
            other: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
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
    ap.add_argument("--paper", metavar="MODEL",
                    help="a paper model in ../shared/data/mcu_models (e.g. mbv2-w0.35) instead")
    ap.add_argument("--input-size", type=int, default=128, help="with --paper (default 128)")
    ap.add_argument("--scheme", help="with --paper: a budget key of sparse_schemes.json (default: "
                                     "the model's ~100 KB scheme, 99kb or proxyless-w0.3's 98kb)")
    args = ap.parse_args()
    if args.paper:
        pkl = PAPER_MODELS / f"{args.paper}.pkl"
        budget = args.scheme or ("98kb" if args.paper.startswith("proxyless") else "99kb")
        scheme = f"{PAPER_MODELS / 'sparse_schemes.json'}:{args.paper}:{budget}"
        # rule round: the paper's in-place int8 update (f32 masters would not fit 256 KB)
        result = compile_tiny_training(pkl, 10, update=scheme, lr=0.01, input_size=args.input_size,
                                       int8_update="round")
        ds = random_images(args.input_size)
        name = f"{args.paper} ({args.input_size}x{args.input_size}, {budget} scheme)"
    else:
        result = compile_model(args.model, lr=args.lr)
        ds, _, _ = standardize(load_dataset(DEMO_DATA))
        name = Path(args.model.split(":")[0]).stem
    ports = args.ports.split(",")
    params = {p: train_on(p, result.plan, result.data, ds, args.steps, args.seed) for p in ports}
    ref = params[ports[0]]
    print(f"{args.steps} training steps of {name}, seed {args.seed}; differences from {ports[0]}")
    print(f"| {'device':<8} | {'dtype':<8} | {'max abs diff':>13} | {'max rel diff':>13} |")
    print(f"|{'-' * 10}|{'-' * 10}|{'-' * 15}|{'-' * 15}|")
    for port in ports[1:]:
        for kind, (absd, reld) in sorted(compare(ref, params[port]).items()):
            print(f"| {port:<8} | {kind:<8} | {absd:13.3e} | {reld:13.3e} |")


if __name__ == "__main__":
    main()
