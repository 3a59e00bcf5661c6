"""Contribution analysis (the paper's section 3.2, Figure 5): how many accuracy points each update
choice buys, by short real fine-tuning runs on the host.

Every run starts from the imported parameters, trains the fp32 head plus one choice with batch-1
SGD on the search's train samples (simulate.SimNet: the device's int8 numerics, QAS, the update
rule), and is scored by its accuracy on samples held back from DATA's train split (never its test
split). The gains are against the head-only run:

- bias[k]: the biases of the last k convs (and the head);
- weight[(i, r)]: conv i's weights at channel ratio r (the ceil(r x out_channels) rows the
  compiler would pick, compiler/sparse.py select_channels), and the head;
- full: every weight and bias (for `--max-drop`).

The search adds them up, as the paper does (its "contributions are additive" assumption).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from tinyhost.compiler.sparse import select_channels
from tinyhost.progress import bar_off
from tinyhost.search.simulate import Diverged, SimNet, TrainSpec

RATIOS = (0.125, 0.25, 0.5, 1.0)


@dataclass
class SearchData:
    """The search's samples, as the int8 network's inputs: train (fine-tuning) and holdout
    (scoring), both from DATA's train split."""
    x_train: list[np.ndarray]
    y_train: np.ndarray
    x_hold: list[np.ndarray]
    y_hold: np.ndarray


@dataclass
class Run:
    accuracy: float          # holdout accuracy, percent
    diverged: bool
    seconds: float


@dataclass
class Contributions:
    base: float                                   # head-only holdout accuracy, percent
    bias: dict[int, float] = field(default_factory=dict)              # k -> gain (points)
    weight: dict[tuple[int, float], float] = field(default_factory=dict)  # (conv, ratio) -> gain
    full: float | None = None                     # gain of the full update
    diverged: list[str] = field(default_factory=list)
    runs: int = 0
    seconds: float = 0.0

    def bias_gain(self, k: int) -> float:
        """bias[k], linear between the measured k (0 at k = 0)."""
        if k <= 0:
            return 0.0
        ks = sorted({0, *self.bias})
        gains = [0.0 if x == 0 else self.bias[x] for x in ks]
        return float(np.interp(k, ks, gains))

    def to_dict(self) -> dict[str, object]:
        return {"base_accuracy": self.base, "bias": {str(k): v for k, v in self.bias.items()},
                "weight": [{"conv": i, "ratio": r, "gain": g}
                           for (i, r), g in sorted(self.weight.items())],
                "full": self.full, "diverged": self.diverged, "runs": self.runs,
                "seconds": round(self.seconds, 2)}


class Analyser:
    """Runs and caches the fine-tuning runs of one SimNet on one SearchData."""

    def __init__(self, net: SimNet, data: SearchData, epochs: int = 1, seed: int = 0) -> None:
        self.net, self.data, self.epochs, self.seed = net, data, epochs, seed
        self._cuts: dict[int, tuple[dict[int, np.ndarray], dict[int, np.ndarray]]] = {}
        self.weights = [c.w.numpy().astype(np.int8) for c in net.convs]

    def prepare(self, starts: set[int]) -> None:
        """The frozen prefix's tensors at every start op the runs will need, in one pass."""
        todo = starts - set(self._cuts)
        if not todo:
            return
        tr = self.net.prefix_caches(self.data.x_train, todo)
        ho = self.net.prefix_caches(self.data.x_hold, todo)
        for s in todo:
            self._cuts[s] = (tr[s], ho[s])

    def spec_bias(self, k: int) -> TrainSpec:
        n = len(self.net.convs)
        return TrainSpec(frozenset(range(n - k, n)))

    def spec_weight(self, i: int, r: float) -> TrainSpec:
        ch = select_channels(self.weights[i], r)
        return TrainSpec(frozenset(), ((i, None if ch is None else tuple(int(c) for c in ch)),))

    def spec_full(self) -> TrainSpec:
        n = len(self.net.convs)
        return TrainSpec(frozenset(range(n)), tuple((i, None) for i in range(n)))

    def run(self, spec: TrainSpec) -> Run:
        t0 = time.perf_counter()
        net = self.net
        start = net.first_op(spec)
        self.prepare({start})
        train, hold = self._cuts[start]
        net.reset()
        rng = np.random.default_rng(self.seed)
        diverged = False
        try:
            for _ in range(self.epochs):
                for j in rng.permutation(len(self.data.y_train)):
                    one = {t: v[j:j + 1] for t, v in train.items()}
                    net.train_step(one, start, int(self.data.y_train[j]), spec)
        except Diverged:
            diverged = True
        if diverged:
            acc = 0.0
        else:
            pred = np.argmax(net.logits(hold, start).numpy(), axis=1)
            acc = 100.0 * float(np.mean(pred == self.data.y_hold)) if len(pred) else 0.0
        net.reset()
        return Run(acc, diverged, time.perf_counter() - t0)


def analyse(an: Analyser, bias_ks: list[int], weights: list[tuple[int, float]], full: bool,
            progress: bool = True, into: Contributions | None = None) -> Contributions:
    """The head-only run, then one run per bias count, per (conv, ratio), and the full update;
    `into`: add to these contributions (their head-only run is the baseline)."""
    t0 = time.perf_counter()
    jobs: list[tuple[str, object, TrainSpec]] = [] if into else [("base", None, TrainSpec())]
    jobs += [("bias", k, an.spec_bias(k)) for k in bias_ks]
    jobs += [("weight", (i, r), an.spec_weight(i, r)) for i, r in weights]
    if full:
        jobs.append(("full", None, an.spec_full()))
    an.prepare({an.net.first_op(spec) for _, _, spec in jobs})
    c = into or Contributions(base=0.0)
    with tqdm(total=len(jobs), desc="contribution analysis", unit="run",
              disable=bar_off(not progress), leave=False) as bar:
        for kind, key, spec in jobs:
            r = an.run(spec)
            c.runs += 1
            if r.diverged:
                c.diverged.append(f"{kind} {key}")
            if kind == "base":
                c.base = r.accuracy
            elif kind == "bias":
                assert isinstance(key, int)
                c.bias[key] = r.accuracy - c.base
            elif kind == "weight":
                assert isinstance(key, tuple)
                c.weight[key] = r.accuracy - c.base
            else:
                c.full = r.accuracy - c.base
            bar.update()
    c.seconds += time.perf_counter() - t0
    return c
