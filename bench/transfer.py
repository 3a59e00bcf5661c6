"""Transfer learning of the paper's three int8 models on the device: the paper's Table 1 /
Figure 9 in our numbers (issue 18). Markdown tables.

    .venv/bin/python bench/transfer.py                         # the default run (see --help)
    .venv/bin/python bench/transfer.py --table sweep           # the learning-rate sweep
    .venv/bin/python bench/transfer.py --size 128 --train 500 --epochs 3 --seeds 3   # larger

The task: scikit-learn's bundled handwritten digits (1,797 real 8x8 grayscale scans of 10
digits, UCI "optdigits"), each upscaled bilinearly to the model's input (--size), replicated to
3 channels and scaled to [-1, 1] (the paper's models' input range, no per-channel
standardisation: `tinyhost train --no-normalize`). Why it fits: real images, 10 classes, far from
ImageNet (where the models were pretrained), shipped by a package, so the bench needs no
download; its 8x8 source is why a small --size loses little. Per seed, a stratified-free random
split: --train images to train on, --test others to test on; the seed also sets the sample
order. The head starts from the same init in every run (tinyhost's import, HEAD_SEED).

Per model and seed, every row trains on the device (`--port ref`, the reference executor, bit
for bit the firmware; or `--port sim`, the firmware itself) exactly as `tinyhost train` does
(tinyhost.train.train: batch 1, SGD, shuffled, the divergence guard on), for --epochs epochs:
- head only (`--update last:1`), bias-only, each shipped scheme (sparse_schemes.json), full;
- for the ~100 KB scheme (99kb; proxyless-w0.3 has 98kb): int8 + QAS with each update rule
  (round, master), int8 without QAS, and fp32 PyTorch fine-tuning of the dequantized network
  (bench/paper_fp32.py) with the same samples, order, trainable set and learning rates.
The compile flags are the defaults (`auto` update rule, the default learning rates) unless a
row says otherwise; --lr/--backbone-lr override the rates for all rows. `--table optimizer`: the
~100 KB scheme with plain SGD, momentum 0.9 and accumulation over 4 samples (`compile --momentum
--accumulate`), each also at the learning rates that keep plain SGD's step size.

Figures: the test accuracy after the last epoch, mean over the seeds (min..max), and how many
seeds diverged (the run stopped by the guard: a NaN/inf the device refused, or a loss blow-up).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from tinyhost.compiler import compile_tiny_training  # noqa: E402
from tinyhost.compiler.import_tiny import load_tiny_training  # noqa: E402
from tinyhost.datasets import Dataset  # noqa: E402
from tinyhost.device import RefDevice, SerialDevice  # noqa: E402
from tinyhost.link.client import DeviceClient  # noqa: E402
from tinyhost.link.transport import SimProcess, open_link  # noqa: E402
from tinyhost.lr import BACKBONE_LR_RATIO, TINY_LR_DEFAULT, plan_rates  # noqa: E402
from tinyhost.plan import Plan  # noqa: E402
from tinyhost.train import TrainConfig, evaluate, train  # noqa: E402

MODELS_DIR = REPO.parent / "shared" / "data" / "mcu_models"
MODELS = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")
DEFAULT_SIZE = 64
DEFAULT_TRAIN = 300
DEFAULT_TEST = 300
DEFAULT_EPOCHS = 3
DEFAULT_SEEDS = 3
NUM_CLASSES = 10
SIM_ARENA = 262144
# The learning-rate sweep: head-only at each head lr; the ~100 KB scheme at (head lr, backbone
# lr / head lr) pairs around what the head-only sweep and the report (0.001 for all
# learns, 0.01 for all diverges) point to.
SWEEP_HEAD = (0.0003, 0.001, 0.003, 0.01)
SWEEP_99 = ((0.0003, 1.0), (0.001, 1.0), (0.001, 0.5), (0.001, 0.3), (0.001, 0.1), (0.003, 1.0),
            (0.003, 0.3), (0.003, 0.1), (0.01, 0.1))
RATIOS = (1.0, 0.5, 0.3, 0.1)
# --table optimizer: tiny-training's momentum (its `sgd` optimizer) and the accumulation the
# paper's VWW setting uses; each also at the lr that keeps the step size of plain SGD (momentum
# M multiplies the long-run step by 1 / (1 - M); the mean of N samples takes N times fewer steps)
MOMENTUM = 0.9
ACCUMULATE = 4


def digits(size: int, n_train: int, n_test: int, seed: int) -> Dataset:
    """scikit-learn's digits, upscaled to size x size, 3 channels, in [-1, 1]; a random split."""
    from sklearn.datasets import load_digits  # the bench's one extra dependency (README)
    d = load_digits()
    img = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # 0..16 -> [-1, 1]
    img = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear",
                                          align_corners=False).clamp(-1, 1)
    x = img.expand(-1, 3, -1, -1).contiguous().numpy()
    y = d.target.astype(np.int64)
    if n_train + n_test > len(y):
        raise SystemExit(f"--train + --test must be at most {len(y)}")
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:n_train], order[n_train:n_train + n_test]
    return Dataset(x[tr], y[tr], x[te], y[te], [str(k) for k in range(10)], "digits")


def scheme_99(model: str) -> str:
    return f"{MODELS_DIR}/sparse_schemes.json:{model}:{'98kb' if 'proxyless' in model else '99kb'}"


def shipped_schemes(model: str) -> list[str]:
    with open(MODELS_DIR / "sparse_schemes.json") as f:
        keys = list(json.load(f)[model])
    return [f"{MODELS_DIR}/sparse_schemes.json:{model}:{k}" for k in keys]


@dataclass(frozen=True)
class Row:
    label: str
    update: str
    qas: bool = True
    rule: str = "auto"
    fp32: bool = False      # PyTorch fine-tuning of the dequantized network instead
    lr: float | None = None
    backbone_lr: float | None = None
    momentum: float = 0.0   # compile --momentum
    accumulate: int = 1     # compile --accumulate


@dataclass
class Result:
    model: str
    row: Row
    accuracy: list[float] = field(default_factory=list)  # per seed, after the last epoch
    diverged: int = 0
    rule: str = ""
    rates: str = ""
    seconds: float = 0.0


def rows_for(model: str, table: str, lr: float | None, backbone_lr: float | None) -> list[Row]:
    s99 = scheme_99(model)
    kw = {"lr": lr, "backbone_lr": backbone_lr}
    if table == "sweep":
        b = s99.rsplit(":", 1)[1]
        out = [Row(f"head only, lr {h:g}", "last:1", lr=h) for h in SWEEP_HEAD]
        out += [Row(f"{b}, lr {h:g}, backbone {h * r:.2g}", s99, lr=h, backbone_lr=h * r)
                for h, r in SWEEP_99]
        return out
    if table == "ratios":  # the backbone/head ratio at the default head lr
        h = TINY_LR_DEFAULT if lr is None else lr
        b = s99.rsplit(":", 1)[1]
        return [Row("head only (last:1)", "last:1", lr=h)] + [
            Row(f"{b}, backbone {r:g} x head", s99, lr=h, backbone_lr=h * r) for r in RATIOS]
    if table == "full":  # the full update with the master rule, and in fp32
        return [Row("full: int8 + QAS, master", "full", rule="master", **kw),
                Row("full: fp32 (PyTorch)", "full", fp32=True, **kw)]
    if table == "optimizer":  # issue 18 section 4: momentum and accumulation at the ~100 KB scheme
        b = s99.rsplit(":", 1)[1]
        h = TINY_LR_DEFAULT if lr is None else lr
        ratio = BACKBONE_LR_RATIO if backbone_lr is None else backbone_lr / h

        def opt(label: str, scale: float, momentum: float = 0.0, accumulate: int = 1) -> Row:
            return Row(f"{b}, {label}", s99, lr=h * scale, backbone_lr=h * scale * ratio,
                       momentum=momentum, accumulate=accumulate)
        return [Row("head only (last:1)", "last:1", **kw), opt("SGD", 1.0),
                opt(f"momentum {MOMENTUM}, lr x {1 - MOMENTUM:g} (same step size)",
                    1 - MOMENTUM, MOMENTUM),
                opt(f"momentum {MOMENTUM}", 1.0, MOMENTUM),
                opt(f"accumulate {ACCUMULATE}", 1.0, accumulate=ACCUMULATE),
                opt(f"accumulate {ACCUMULATE}, lr x {ACCUMULATE}", ACCUMULATE,
                    accumulate=ACCUMULATE),
                opt(f"accumulate {ACCUMULATE} + momentum {MOMENTUM}, lr x "
                    f"{ACCUMULATE * (1 - MOMENTUM):g}", ACCUMULATE * (1 - MOMENTUM), MOMENTUM,
                    ACCUMULATE)]
    if table == "defaults":  # issue 18's bar: default flags, the ~100 KB scheme vs head only
        return [Row("head only (last:1)", "last:1", **kw),
                Row(f"{s99.rsplit(':', 1)[1]} scheme", s99, **kw)]
    out = [Row("head only (last:1)", "last:1", **kw), Row("bias-only", "bias-only", **kw)]
    out += [Row(f"{s.rsplit(':', 1)[1]} scheme", s, **kw) for s in shipped_schemes(model)]
    out.append(Row("full", "full", **kw))
    if table == "main":
        b = s99.rsplit(":", 1)[1]
        out += [Row(f"{b}: int8 + QAS, round", s99, rule="round", **kw),
                Row(f"{b}: int8 + QAS, master", s99, rule="master", **kw),
                Row(f"{b}: int8, no QAS", s99, qas=False, **kw),
                Row(f"{b}: fp32 (PyTorch)", s99, fp32=True, **kw),
                Row("head only: fp32 (PyTorch)", "last:1", fp32=True, **kw)]
    return out


class Runner:
    def __init__(self, size: int, port: str, epochs: int) -> None:
        self.size, self.port, self.epochs = size, port, epochs
        self.plans: dict[tuple[str, Row], tuple[Plan, bytes]] = {}
        self.cfgs: dict[str, dict] = {}

    def plan(self, model: str, row: Row) -> tuple[Plan, bytes]:
        key = (model, row if not row.fp32 else Row("", row.update, lr=row.lr,
                                                    backbone_lr=row.backbone_lr,
                                                    momentum=row.momentum,
                                                    accumulate=row.accumulate))
        if key not in self.plans:
            extra = {} if row.lr is None else {"lr": row.lr}
            r = compile_tiny_training(MODELS_DIR / f"{model}.pkl", NUM_CLASSES, row.update,
                                      input_size=self.size, qas=row.qas, int8_update=row.rule,
                                      backbone_lr=row.backbone_lr, momentum=row.momentum,
                                      accumulate=row.accumulate, **extra)
            assert r.data is not None
            self.plans[key] = (r.plan, r.data)
        return self.plans[key]

    def device(self, plan: Plan):
        """(device, closer): the reference executor, or the sim firmware with an arena that
        holds the plan (the full update needs more than a 256 KB MCU has)."""
        if self.port == "ref":
            return RefDevice(), lambda: None
        sim = SimProcess(arena=max(SIM_ARENA, plan.arena_size + 65536))
        link = open_link(sim.path)
        dev = SerialDevice(DeviceClient(link))

        def close() -> None:
            dev.close()
            sim.close()
        return dev, close

    def run(self, model: str, row: Row, ds: Dataset, seed: int) -> tuple[float, bool, Plan]:
        plan, data = self.plan(model, row)
        rates = plan_rates(plan)
        if row.fp32:
            from paper_fp32 import FloatPaperNet
            if model not in self.cfgs:
                self.cfgs[model] = load_tiny_training(MODELS_DIR / f"{model}.pkl")
            net = FloatPaperNet(self.cfgs[model], plan)
            rng = np.random.default_rng(seed)  # tinyhost.train.train's order
            blr = rates.backbone if rates.backbone is not None else rates.head
            for _ in range(self.epochs):
                for i in rng.permutation(len(ds.x_train)):
                    loss = net.train_step(ds.x_train[i], int(ds.y_train[i]), rates.head, blr)
                    if not np.isfinite(loss):
                        return 0.0, True, plan
            acc = float(np.mean([net.predict(x) == y for x, y in zip(ds.x_test, ds.y_test,
                                                                      strict=True)]))
            return acc, False, plan
        dev, close = self.device(plan)
        try:
            dev.load_plan(plan, data)
            r = train(dev, ds, TrainConfig(epochs=self.epochs, lr=rates.head, seed=seed,
                                           progress=False))
            if r.diverged:  # the parameters where the guard stopped it
                return evaluate(dev, ds.x_test, ds.y_test, progress=False)[0], True, plan
        finally:
            close()
        return r.test_accuracy[-1], False, plan


def measure(models: tuple[str, ...], table: str, size: int, n_train: int, n_test: int,
            epochs: int, seeds: int, port: str, lr: float | None = None,
            backbone_lr: float | None = None, progress: bool = True) -> list[Result]:
    torch.set_num_threads(1)
    if port == "sim" and "TINYTRAIN_SIM" not in os.environ:
        # the firmware unsanitized and -O2 (bench/step_cost.py's build-bench/): the same code,
        # bit for bit the same results, ~10x faster than the sanitized test build
        from step_cost import BUILD, build_runner
        build_runner("tinytrain_sim")
        os.environ["TINYTRAIN_SIM"] = str(BUILD / "firmware" / "ports" / "posix" /
                                          "tinytrain_sim")
    runner = Runner(size, port, epochs)
    results: list[Result] = []
    for model in models:
        rows = rows_for(model, table, lr, backbone_lr)
        res = {row: Result(model, row) for row in rows}
        for seed in range(seeds):
            ds = digits(size, n_train, n_test, seed)
            for row in rows:
                t0 = time.perf_counter()
                acc, diverged, plan = runner.run(model, row, ds, seed)
                r = res[row]
                r.seconds += time.perf_counter() - t0
                r.accuracy.append(acc)
                r.diverged += diverged
                r.rule = "fp32" if row.fp32 else plan.meta.get("int8_update", "")
                r.rates = plan_rates(plan).describe()
                if progress:
                    print(f"  {model} seed {seed} {row.label}: {100 * acc:.1f}%"
                          f"{' DIVERGED' if diverged else ''} ({time.perf_counter() - t0:.0f} s)",
                          file=sys.stderr, flush=True)
        results += res.values()
    return results


def table(results: list[Result], args: argparse.Namespace) -> str:
    lines = [f"digits (sklearn) at {args.size}x{args.size}, {args.train} train / {args.test} test "
             f"images per seed, {args.epochs} epochs, {args.seeds} seeds, --port {args.port}. "
             "Test accuracy after the last epoch: mean (min..max) over the seeds; diverged: "
             "seeds the guard stopped.", "",
             "| model | update | rule | learning rates | test % | vs head only | diverged |",
             "|---|---|---|---|---:|---:|---:|"]
    for model in dict.fromkeys(r.model for r in results):
        rs = [r for r in results if r.model == model]
        heads = [r for r in rs if r.row.update == "last:1" and not r.row.fp32]
        for r in rs:
            # against head-only training at the same head lr (the sweep has one per lr)
            head = next((h for h in heads if h.row.lr == r.row.lr), heads[0] if heads else None)
            a = 100 * np.array(r.accuracy)
            vs = "" if head is None or r is head else \
                f"{float(np.mean(a - 100 * np.array(head.accuracy))):+.1f} " \
                f"(min {float(np.min(a - 100 * np.array(head.accuracy))):+.1f})"
            lines.append(f"| {model} | {r.row.label} | {r.rule} | {r.rates} | "
                         f"{a.mean():.1f} ({a.min():.1f}..{a.max():.1f}) | {vs} | "
                         f"{r.diverged}/{len(r.accuracy)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--table", choices=("main", "schemes", "sweep", "ratios", "full", "defaults",
                                        "optimizer"),
                    default="main",
                    help="main: every update and the 99kb variants; schemes: the updates only; "
                         "sweep: head-only and the ~100 KB scheme over head lr x backbone ratio; "
                         "ratios: head-only and the ~100 KB scheme at backbone/head lr ratios "
                         "1, 0.5, 0.3, 0.1 (head at --lr or the default); full: the full update "
                         "with the master rule and in fp32; defaults: head-only "
                         "and the ~100 KB scheme with default flags; optimizer: the ~100 KB "
                         "scheme with SGD, momentum 0.9 and accumulation over 4 samples "
                         "(compile --momentum/--accumulate), each also at the lr that keeps "
                         "plain SGD's step size")
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE, help="input NxN (default 64)")
    ap.add_argument("--train", type=int, default=DEFAULT_TRAIN)
    ap.add_argument("--test", type=int, default=DEFAULT_TEST)
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--seeds", type=int, default=DEFAULT_SEEDS)
    ap.add_argument("--port", choices=("ref", "sim"), default="sim",
                    help="sim (default): the firmware, built unsanitized -O2 into build-bench/ "
                         "(or $TINYTRAIN_SIM); ref: the reference executor (bit for bit the "
                         "same, ~10x slower)")
    ap.add_argument("--lr", type=float, help="head lr for every row (default: the plan's)")
    ap.add_argument("--backbone-lr", type=float, help="backbone lr for every row")
    ap.add_argument("--quiet", action="store_true", help="no per-run lines on stderr")
    args = ap.parse_args()
    models = tuple(m for m in args.models.split(",") if m)
    t0 = time.perf_counter()
    results = measure(models, args.table, args.size, args.train, args.test, args.epochs,
                      args.seeds, args.port, args.lr, args.backbone_lr, not args.quiet)
    print(table(results, args))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
