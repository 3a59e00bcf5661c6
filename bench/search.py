"""`tinyhost search` against the fixed update choices (issue 12): a markdown table.

    .venv/bin/python bench/search.py                               # the paper's models (default)
    .venv/bin/python bench/search.py --models own-cnn               # a user's own int8 CNN
    .venv/bin/python bench/search.py --size 128 --train 500 --seeds 3   # larger

The task is bench/transfer.py's: scikit-learn's bundled handwritten digits (real 8x8 scans,
upscaled to --size, 3 channels, [-1, 1]), a random split per seed: --train images to train on
(the search reads only these: its runs fine-tune on part and are scored on the rest) and --test
others to test on.

Models:
- mcunet-5fps, mbv2-w0.35 (the paper's pretrained int8 models, /work/shared/data/mcu_models): the
  budget is what the compiler reports for the shipped 99kb scheme (sparse_schemes.json) at
  --size with the round rule, so the searched scheme gets exactly the shipped scheme's memory;
- own-cnn: a user's own CNN, trained here in fp32 on digits 0-4 (--pretrain-epochs), quantized
  with `--int8 --calib`, then adapted on the device to digits 5-9 it never saw (labels 0-4 again);
  the budget is halfway between its head-only and full-update memory (--own-budget to change).

Rows, each trained on the device as `tinyhost train` does (tinyhost.train.train: batch 1, SGD,
shuffled, --epochs; `--port sim`: the firmware, or `ref`: the reference executor), rule round,
the default learning rates: head only (last:1), bias-only, last:K (the largest K that fits the
budget), the shipped 99kb scheme (paper models), the searched scheme (knapsack; and with
--evolution the paper's evolutionary search too) and the full update (over the budget: for
reference). Figures: test accuracy after the last epoch (mean over seeds, min..max), the memory
compile reports (the arena), and the search's wall time.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from tinyhost.compiler import compile_quantized, compile_tiny_training  # noqa: E402
from tinyhost.compiler.pipeline import QUANTIZE, TINY_TRAINING, CompileOptions  # noqa: E402
from tinyhost.datasets import Dataset  # noqa: E402
from tinyhost.device import RefDevice, SerialDevice  # noqa: E402
from tinyhost.link.client import DeviceClient  # noqa: E402
from tinyhost.link.transport import SimProcess, open_link  # noqa: E402
from tinyhost.lr import LR_DEFAULT, TINY_LR_DEFAULT, plan_rates  # noqa: E402
from tinyhost.search.run import SearchConfig, search  # noqa: E402
from tinyhost.train import TrainConfig, evaluate, train  # noqa: E402
from transfer import MODELS_DIR, digits  # noqa: E402

PAPER = ("mcunet-5fps", "mbv2-w0.35")
OWN = "own-cnn"
OWN_MODEL = '''
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    c = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 48, 1), nn.BatchNorm2d(48), nn.ReLU(),
        nn.Conv2d(48, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
        nn.Conv2d(48, 64, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 5))
    state = torch.load(__file__.replace(".py", ".pt"))
    c.load_state_dict(state)
    return c.eval(), torch.zeros(1, 3, SIZE, SIZE)
'''


@dataclass
class Row:
    label: str
    update: str
    memory: int = 0
    accuracy: list[float] = field(default_factory=list)
    diverged: int = 0
    search_s: list[float] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    scheme: str = ""


def pretrain_own(d: Path, size: int, epochs: int, seed: int) -> str:
    """The user's model: a small CNN trained in fp32 on digits 0-4 (all of them but those in the
    transfer task's own test split is not needed: other classes)."""
    ds = digits(size, 1796, 1, seed + 100)
    keep = ds.y_train < 5
    x, y = torch.from_numpy(ds.x_train[keep]), torch.from_numpy(ds.y_train[keep])
    src = OWN_MODEL.replace("SIZE", str(size))
    ns: dict = {}
    exec(compile(src.replace("    state = torch.load(__file__.replace(\".py\", \".pt\"))\n"
                             "    c.load_state_dict(state)\n", ""), "own", "exec"), ns)
    net, _ = ns["make"]()
    net.train()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    torch.save(net.state_dict(), d / "own.pt")
    (d / "own.py").write_text(src)
    return f"{d / 'own.py'}:make"


def own_task(size: int, n_train: int, n_test: int, seed: int) -> Dataset:
    """Digits 5-9 (never seen in pretraining) as labels 0-4."""
    ds = digits(size, 1796, 1, seed)
    keep = ds.y_train >= 5
    x, y = ds.x_train[keep], ds.y_train[keep] - 5
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:n_train], order[n_train:n_train + n_test]
    return Dataset(x[tr], y[tr], x[te], y[te], [str(k) for k in range(5, 10)], "digits 5-9")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="search_bench_"))

    def compile(self, model: str, source: str, update: str, calib: np.ndarray | None):
        a = self.args
        if model == OWN:
            return compile_quantized(source, calib, update=update, int8_update="round")
        return compile_tiny_training(MODELS_DIR / f"{model}.pkl", 10, update=update,
                                     input_size=a.size, int8_update="round", lr=TINY_LR_DEFAULT)

    def options(self, model: str, calib: np.ndarray | None, budget: int) -> tuple[str,
                                                                                 CompileOptions]:
        a = self.args
        if model == OWN:
            return self.own_source, CompileOptions(QUANTIZE, lr=LR_DEFAULT, int8_update="round",
                                                   calib=calib, budget=budget)
        return str(MODELS_DIR / f"{model}.pkl"), CompileOptions(
            TINY_TRAINING, lr=TINY_LR_DEFAULT, int8_update="round", num_classes=10,
            input_size=a.size, budget=budget)

    def device(self, plan):
        if self.args.port == "ref":
            return RefDevice(), lambda: None
        sim = SimProcess(arena=max(262144, plan.arena_size + 65536))
        dev = SerialDevice(DeviceClient(open_link(sim.path)))

        def close() -> None:
            dev.close()
            sim.close()
        return dev, close

    def train(self, plan, data: bytes, ds: Dataset, seed: int) -> tuple[float, bool]:
        dev, close = self.device(plan)
        try:
            dev.load_plan(plan, data)
            r = train(dev, ds, TrainConfig(epochs=self.args.epochs, lr=plan_rates(plan).head,
                                           seed=seed, progress=False))
            if r.diverged:
                return evaluate(dev, ds.x_test, ds.y_test, progress=False)[0], True
            return r.test_accuracy[-1], False
        finally:
            close()

    def model(self, model: str) -> list[Row]:
        a = self.args
        self.own_source = ""
        rows: dict[str, Row] = {}
        for seed in range(a.seeds):
            if model == OWN:
                if not self.own_source:
                    self.own_source = pretrain_own(self.tmp, a.own_size, a.pretrain_epochs, 0)
                ds = own_task(a.own_size, a.train, a.test, seed)
            else:
                ds = digits(a.size, a.train, a.test, seed)
            calib = ds.x_train if model == OWN else None
            head = self.compile(model, self.own_source, "last:1", calib)
            full = self.compile(model, self.own_source, "full", calib)
            if model == OWN:
                budget = a.own_budget or (head.report.arena_bytes + full.report.arena_bytes) // 2
                shipped = None
            else:
                shipped = f"{MODELS_DIR}/sparse_schemes.json:{model}:99kb"
                budget = self.compile(model, "", shipped, None).report.arena_bytes
            n_conv = len(full.plan.meta["scheme"]["manual_weight_idx"])
            last_k = max(k for k in range(1, n_conv + 2)
                         if self.compile(model, self.own_source, f"last:{k}", calib)
                         .report.arena_bytes <= budget)
            fixed = [("head only (last:1)", "last:1"), ("bias-only", "bias-only"),
                     (f"last:{last_k} (largest K in budget)", f"last:{last_k}")]
            if shipped:
                fixed.append(("shipped 99kb scheme", shipped))
            methods = ["knapsack"] + (["evolution"] if a.evolution else [])
            for m in methods:
                src, opts = self.options(model, calib, budget)
                cfg = SearchConfig(budget=budget, method=m, seed=seed, sim_size=a.sim_size,
                                   samples=a.search_samples, holdout=a.holdout,
                                   progress=not a.quiet)
                r = search(src, opts, ds.x_train, ds.y_train, cfg)
                path = self.tmp / f"{model}_{m}_{seed}.json"
                path.write_text(json.dumps(r.to_json()))
                row = rows.setdefault(f"searched ({m})", Row(f"searched ({m})", str(path)))
                row.search_s.append(r.seconds)
                row.predicted.append(r.choice.gain)
                s = r.scheme
                row.scheme = (f"bias {s.n_bias_update}, w {dict(zip(s.manual_weight_idx, s.weight_update_ratio, strict=True))}")  # noqa: E501
                fixed.append((f"searched ({m})", str(path)))
            fixed.append(("full (over the budget)", "full"))
            for label, update in fixed:
                res = self.compile(model, self.own_source, update, calib)
                t0 = time.perf_counter()
                acc, div = self.train(res.plan, res.data, ds, seed)
                row = rows.setdefault(label, Row(label, update))
                row.memory = res.report.arena_bytes
                row.accuracy.append(100 * acc)
                row.diverged += div
                if not a.quiet:
                    print(f"  {model} seed {seed} {label}: {100 * acc:.1f}% "
                          f"({row.memory} B, {time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                          flush=True)
            rows["_budget"] = Row("budget", "", budget)
        return list(rows.values())


def table(results: dict[str, list[Row]], args: argparse.Namespace) -> str:
    out = [f"digits (sklearn), {args.train} train / {args.test} test images per seed, "
           f"{args.seeds} seeds, {args.epochs} epochs on --port {args.port}, rule round; paper "
           f"models at {args.size}x{args.size}, own-cnn at {args.own_size}x{args.own_size}. "
           f"Search: {args.search_samples} fine-tuning samples, {args.holdout} held back, "
           f"simulated at {args.sim_size}x{args.sim_size} (paper models).", "",
           "| model | update | arena (compile) | in budget | test % mean (min..max) | diverged "
           "| search s | scheme |", "|---|---|---:|---|---:|---:|---:|---|"]
    for model, rows in results.items():
        budget = next(r.memory for r in rows if r.label == "budget")
        out.append(f"| {model} | **budget** | {budget / 1024:.1f} KB | | | | | |")
        for r in rows:
            if r.label == "budget":
                continue
            acc = np.array(r.accuracy)
            secs = f"{np.mean(r.search_s):.0f}" if r.search_s else ""
            out.append(f"| {model} | {r.label} | {r.memory / 1024:.1f} KB | "
                       f"{'yes' if r.memory <= budget else 'no'} | {acc.mean():.1f} "
                       f"({acc.min():.1f}..{acc.max():.1f}) | {r.diverged}/{len(acc)} | {secs} | "
                       f"{r.scheme} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--models", default=",".join(PAPER), help=f"of {', '.join(PAPER)}, {OWN}")
    ap.add_argument("--size", type=int, default=64, help="paper models' input NxN (default 64)")
    ap.add_argument("--own-size", type=int, default=32, help="own-cnn's input (default 32)")
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--port", choices=("ref", "sim"), default="sim")
    ap.add_argument("--sim-size", type=int, default=32, help="search's simulation size")
    ap.add_argument("--search-samples", type=int, default=150)
    ap.add_argument("--holdout", type=int, default=100)
    ap.add_argument("--evolution", action="store_true", help="also the evolutionary search")
    ap.add_argument("--pretrain-epochs", type=int, default=15)
    ap.add_argument("--own-budget", type=int, help="own-cnn's arena budget (bytes)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.port == "sim":
        import os
        if "TINYTRAIN_SIM" not in os.environ:
            from step_cost import BUILD, build_runner
            build_runner("tinytrain_sim")
            os.environ["TINYTRAIN_SIM"] = str(BUILD / "firmware" / "ports" / "posix" /
                                              "tinytrain_sim")
    t0 = time.perf_counter()
    results = {m: Bench(args).model(m) for m in args.models.split(",") if m}
    print(table(results, args))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
