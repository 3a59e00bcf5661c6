"""A fleet learns together (issue 17): 8 simulated devices on non-IID shards of a real dataset,
federated with Flower, against each device trained alone and one device trained on all the data.
Prints a Markdown table.

    .venv/bin/python bench/fleet.py                        # the default run (see --help)
    .venv/bin/python bench/fleet.py --rounds 40 --plot fleet.png

The task: scikit-learn's bundled handwritten digits (1,797 real 8x8 grayscale scans of 10
digits, UCI "optdigits"; shipped by the package, no download), a stratified 75/25 train/test
split, pixels standardized with the train split's statistics (as `tinyhost train` does). Why
this one and not the demo's BasicMotions: 10 classes and 1,347 training images give 8 devices
shards of ~170 images that are non-IID in a way that matters (the by-label split: each device
holds about 2 of the 10 digits, so alone it cannot recognize the others), while BasicMotions'
40 training series would leave 5 per device and 4 classes. The model: a small CNN
(Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10; 2,730 parameters, all trained), `make_model`
below, compiled by `tinyhost compile`.

Rows, each on `sim` devices (the firmware on the host; every step runs on a device):
- federated: `tinyhost fleet`'s Python API, 8 devices, `--split by-label`, FedAvg (Flower),
  --rounds rounds of --local-epochs epochs; the aggregated model's accuracy over the whole test
  split, on the devices;
- alone: each device trains on its own shard only, for as many epochs as it trained in the
  federation (rounds x local epochs), from the same initial parameters; tested on the whole test
  split; the table gives the mean of the 8 (and min..max);
- all data: one device trains on the whole train split for the same number of epochs.
Bytes: the parameters moved between server and devices (federated), or the training images
that would have to be pooled on one device (all data; float32 as they are streamed).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))

DEVICES = 8
DEFAULT_ROUNDS = 30
DEFAULT_LOCAL_EPOCHS = 1
DEFAULT_LR = 0.02


def make_model(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The fleet bench's CNN for 1x8x8 digits."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    return model, torch.zeros(1, 1, 8, 8)


def digits_npz(path: Path, seed: int) -> None:
    """scikit-learn's digits as a .npz `tinyhost` reads (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits  # the bench extra (README)
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images[:, None] / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target, test_size=0.25, random_state=seed,
                                              stratify=d.target)
    np.savez(path, x_train=x_tr, y_train=y_tr.astype(np.int64), x_test=x_te,
             y_test=y_te.astype(np.int64))


def train_alone(plan_path: str, ds, epochs: int, lr: float, seed: int) -> float:
    """One fresh sim device trains on `ds`'s train split; its accuracy on `ds`'s test split."""
    from tinyhost.device import connect
    from tinyhost.plan import load_plan_file
    from tinyhost.train import TrainConfig, evaluate, train
    plan, data = load_plan_file(plan_path)
    device = connect("sim")
    try:
        device.load_plan(plan, data)
        result = train(device, ds, TrainConfig(epochs=epochs, lr=lr, seed=seed, progress=False))
        if result.interrupted:
            raise SystemExit(f"training stopped: {result.interrupted}")
        acc, _ = evaluate(device, ds.x_test, ds.y_test, progress=False)
    finally:
        device.close()
    return acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    ap.add_argument("--local-epochs", type=int, default=DEFAULT_LOCAL_EPOCHS)
    ap.add_argument("--lr", type=float, default=DEFAULT_LR)
    ap.add_argument("--strategy", choices=("fedavg", "fedprox"), default="fedavg")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", help="the federated run's accuracy over rounds (PNG)")
    ap.add_argument("--json", help="write the federated run's report here")
    args = ap.parse_args()

    from tinyhost.cli import main as tinyhost
    from tinyhost.datasets import Dataset
    from tinyhost.fleet import FleetConfig, SplitSpec
    from tinyhost.fleet.run import plot_fleet, run_fleet
    from tinyhost.fleet.shards import device_shard, load_for_plan
    from tinyhost.plan import load_plan_file

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    data, plan_path = tmp / "digits.npz", tmp / "digits.ttp"
    digits_npz(data, args.seed)
    with contextlib.redirect_stdout(io.StringIO()):  # the compile report: not the bench's table
        status = tinyhost(["compile", f"{Path(__file__).resolve()}:make_model", "--lr",
                           str(args.lr), "-o", str(plan_path), "--json"])
    if status != 0:
        return 1
    plan, _ = load_plan_file(str(plan_path))
    split = SplitSpec("by-label", seed=args.seed)
    epochs = args.rounds * args.local_epochs

    cfg = FleetConfig(plan=str(plan_path), data=str(data), ports=["sim"] * DEVICES, split=split,
                      rounds=args.rounds, local_epochs=args.local_epochs, lr=args.lr,
                      strategy=args.strategy, seed=args.seed)
    print(f"federated: {DEVICES} sim devices, {args.rounds} rounds x {args.local_epochs} local "
          "epochs ...", file=sys.stderr)
    report = run_fleet(cfg, progress=True)
    fed = report.test_accuracy or 0.0
    best = max((r.test_accuracy or 0.0, r.round) for r in report.rounds)
    if args.plot:
        plot_fleet(report, args.plot, f"digits, {DEVICES} sim devices, by-label split, "
                                      f"{args.strategy}: accuracy over rounds")
    if args.json:
        import json
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))

    full = load_for_plan(str(data), plan)
    alone = []
    for d in range(DEVICES):
        shard = device_shard(str(data), plan, d, DEVICES, split)
        own = Dataset(shard.x_train, shard.y_train, full.x_test, full.y_test,
                      full.class_names, f"shard {d}")
        print(f"alone: device {d} ({len(own.y_train)} images, labels "
              f"{sorted(set(own.y_train.tolist()))}) ...", file=sys.stderr)
        alone.append(train_alone(str(plan_path), own, epochs, args.lr, args.seed + d))
    print("all data on one device ...", file=sys.stderr)
    central = train_alone(str(plan_path), full, epochs, args.lr, args.seed)

    rows = [
        ("federated (FedAvg over 8 devices, by-label)" if args.strategy == "fedavg"
         else "federated (FedProx over 8 devices, by-label)",
         f"{100 * fed:.1f}%", f"{args.rounds} x {args.local_epochs} epochs",
         f"{report.to_dict()['bytes'] / 1e6:.2f} MB of parameters"),
        ("each device alone on its shard (mean of 8)",
         f"{100 * np.mean(alone):.1f}% ({100 * min(alone):.1f}..{100 * max(alone):.1f})",
         f"{epochs} epochs", "0"),
        ("one device on all the data", f"{100 * central:.1f}%", f"{epochs} epochs",
         f"{full.x_train.nbytes / 1e6:.2f} MB of images pooled"),
    ]
    print(f"digits (sklearn), {len(full.y_train)} train / {len(full.y_test)} test images, "
          f"{DEVICES} sim devices, split by-label (about 2 digits per device), lr {args.lr}, "
          f"seed {args.seed}; test accuracy on the whole test split, on the devices\n")
    print("| setting | test accuracy | training | bytes moved |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nfederated best round: {100 * best[0]:.1f}% at round {best[1]}; federated - alone "
          f"= {100 * (fed - np.mean(alone)):+.1f} points (needs >= +10), all data - federated "
          f"= {100 * (central - fed):+.1f} points (needs <= 3); failed devices: "
          f"{report.failed_devices() or 'none'}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
