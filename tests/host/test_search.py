"""`tinyhost search` (issue 12): the simulation against the reference executor, the searches
against brute force, the memory figure against `compile`'s, and the CLI end to end. Small models
and inputs; the paper-scale figures are bench/search.py's."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyhost.cli import main
from tinyhost.compiler import compile_tiny_training
from tinyhost.compiler.pipeline import (
    PIPELINES,
    TINY_TRAINING,
    Compilation,
    CompileOptions,
    run_passes,
)
from tinyhost.compiler.sparse import Scheme, layer_updates, parse_update
from tinyhost.lr import plan_rates
from tinyhost.ops import UpdateRule
from tinyhost.refexec.executor import RefExecutor
from tinyhost.search.optimize import QUANTUM, Costs, evolve, knapsack, knapsack_min_memory
from tinyhost.search.simulate import SimNet, TrainSpec

# The simulation's loss against the reference executor's, same plan and samples, over STEPS
# steps (measured on the synthetic 16x16 model: round agrees to ~1e-6, its integer forward being
# exact and its float64 gradients rounding the same int8 steps; master accumulates sub-integer
# steps whose float64-vs-float32 differences flip a rounding now and then).
STEPS = 120
TOL_ROUND = 1e-3   # max |loss difference| over the run, rule round
TOL_MASTER = 0.05  # mean |loss difference| over the run, rule master


def _front(pkl: Path, size: int | None = None):
    passes = PIPELINES[TINY_TRAINING]
    names = [p.name for p in passes]
    comp = Compilation(str(pkl), CompileOptions(TINY_TRAINING, num_classes=4, input_size=size))
    return run_passes(passes[:names.index("autodiff")], comp).graph


def _samples(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A learnable 4-class image task: which quadrant is bright, plus noise, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.uniform(-1, 0.2, (n, 3, size, size)).astype(np.float32)
    h = size // 2
    for k, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[k, :, r * h:(r + 1) * h, col * h:(col + 1) * h] += 0.8
    return np.clip(x, -1, 1), y


def _losses_both(pkl: Path, update: str, rule: str) -> tuple[np.ndarray, np.ndarray]:
    plan = compile_tiny_training(pkl, 4, update=update, int8_update=rule, lr=0.01).plan
    graph = _front(pkl)
    weights = [graph.tensors[graph.ops[k].inputs[1]].array() for k in graph.conv_ops]
    spec = TrainSpec.from_updates(layer_updates(parse_update(update, len(weights), "synthetic"),
                                                weights, update))
    rates = plan_rates(plan)
    assert rates.backbone is not None
    net = SimNet(graph, UpdateRule[rule.upper()], True, rates.head, rates.backbone / rates.head)
    x, y = _samples(STEPS, 1)
    start = net.first_op(spec)
    cuts = net.prefix_caches([net.quantize_input(v) for v in x], {start})[start]
    ex = RefExecutor(plan)
    ref = [ex.train_step(x[i], int(y[i])).loss for i in range(STEPS)]
    sim = [net.train_step({t: v[i:i + 1] for t, v in cuts.items()}, start, int(y[i]), spec)
           for i in range(STEPS)]
    return np.array(ref), np.array(sim)


SCHEME = '{"n_bias_update": 5, "manual_weight_idx": [%s], "weight_update_ratio": [1, 0.5]}'


@pytest.mark.parametrize("rule", ["round", "master"])
def test_simulation_tracks_the_reference_executor(synthetic_pkl, rule) -> None:
    n = len(_front(synthetic_pkl).conv_ops)
    update = SCHEME % f"{n - 4}, {n - 1}"
    ref, sim = _losses_both(synthetic_pkl, update, rule)
    assert np.isfinite(ref).all() and ref[:20].mean() > ref[-20:].mean()  # it learns
    diff = np.abs(ref - sim)
    if rule == "round":
        assert diff.max() < TOL_ROUND, diff.max()
    else:
        assert diff.mean() < TOL_MASTER, diff.mean()


def test_simulation_tracks_a_full_update(synthetic_pkl) -> None:
    ref, sim = _losses_both(synthetic_pkl, "full", "round")
    assert np.abs(ref - sim).max() < TOL_ROUND


# -- the searches against brute force -----------------------------------------------------------
def _random_costs(seed: int, n: int = 5) -> Costs:
    rng = np.random.default_rng(seed)
    bias = {k: 1000 + 300 * k + int(rng.integers(0, 200)) for k in range(n + 1)}
    extra = {(i, r): int(rng.integers(1, 40) * r * QUANTUM) + QUANTUM
             for i in range(n) for r in (0.25, 1.0)}
    gains = {key: float(rng.normal(1, 2)) for key in extra}
    bg = {k: float(v) for k, v in enumerate(np.cumsum(rng.uniform(-0.5, 2, n + 1)) - 0)}
    bg[0] = 0.0
    return Costs(n, bias, extra, gains, lambda k: bg[k])


def _all_choices(c: Costs):
    for k in range(c.n + 1):
        eligible = [i for i in range(c.n) if i >= c.n - k]
        for rs in itertools.product((0.0, 0.25, 1.0), repeat=len(eligible)):
            yield k, {i: r for i, r in zip(eligible, rs, strict=True) if r > 0}


@pytest.mark.parametrize("seed", range(6))
def test_knapsack_is_exact(seed) -> None:
    c = _random_costs(seed)
    limit = 1000 + 300 * 3 + 20 * QUANTUM
    best = max((c.gain(k, w) for k, w in _all_choices(c) if c.estimate(k, w) <= limit),
               default=None)
    got = knapsack(c, limit)
    assert got is not None and best is not None
    assert c.estimate(got.k, got.weights) <= limit
    assert math.isclose(got.gain, best, abs_tol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_min_memory_is_exact(seed) -> None:
    c = _random_costs(seed)
    limit = 10**6
    target = 0.6 * max(c.gain(k, w) for k, w in _all_choices(c))
    want = min(c.estimate(k, w) for k, w in _all_choices(c) if c.gain(k, w) >= target)
    got = knapsack_min_memory(c, target, limit)
    assert got is not None and got.gain >= target - 1e-9
    # the DP counts memory in QUANTUM cells, rounded up per layer
    assert want <= got.estimate <= want + c.n * QUANTUM


@pytest.mark.parametrize("seed", range(4))
def test_evolution_stays_within_the_budget_and_near_the_optimum(seed) -> None:
    c = _random_costs(seed)
    limit = 1000 + 300 * 3 + 20 * QUANTUM
    best = knapsack(c, limit)
    got = evolve(c, limit, np.random.default_rng(seed))
    assert got is not None and best is not None
    assert c.estimate(got.k, got.weights) <= limit
    assert got.gain >= best.gain - 0.25 * abs(best.gain) - 1e-9


# -- the CLI ---------------------------------------------------------------------------------------
MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(8, 8, 1))
        self.tail = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(16, 4))

    def forward(self, x):
        h = self.stem(x)
        return self.tail(h + self.block(h))


def make():
    torch.manual_seed(0)
    return Net().eval(), torch.zeros(1, 3, 16, 16)
"""


@pytest.fixture(scope="module")
def user_model(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("search")
    (d / "net.py").write_text(MODEL)
    x, y = _samples(240, 0)
    xt, yt = _samples(60, 9)
    np.savez(d / "quadrants.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    # a small one for the searches that take the default sample counts (compile --update auto)
    np.savez(d / "few.npz", x_train=x[:60], y_train=y[:60], x_test=xt, y_test=yt)
    return f"{d / 'net.py'}:make", str(d / "quadrants.npz")


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_search_writes_a_scheme_compile_takes_with_the_same_memory(user_model, tmp_path,
                                                                   capsys) -> None:
    model, data = user_model
    scheme, png = tmp_path / "scheme.json", tmp_path / "contrib.png"
    base = [model, "--int8", "--calib", data, "--int8-update", "round"]
    assert main(["compile", *base, "--update", "full", "-o", str(tmp_path / "f.ttp"),
                 "--json"]) == 0
    full = _json_out(capsys)["memory"]["arena_bytes"]
    assert main(["compile", *base, "--update", "last:1", "-o", str(tmp_path / "h.ttp"),
                 "--json"]) == 0
    head = _json_out(capsys)["memory"]["arena_bytes"]
    budget = (head + full) // 2
    assert main(["search", *base, "--data", data, "--budget", str(budget), "-o", str(scheme),
                 "--json", "--plot", str(png), "--samples", "120", "--holdout", "60"]) == 0
    out = _json_out(capsys)
    s = out["search"]
    assert png.stat().st_size > 10_000
    assert s["memory"] <= budget and s["memory_kind"] == "arena"
    saved = json.loads(scheme.read_text())
    assert {"n_bias_update", "manual_weight_idx", "weight_update_ratio"} <= saved.keys()
    assert main(["compile", *base, "--update", str(scheme), "-o", str(tmp_path / "p.ttp"),
                 "--budget", str(budget), "--json"]) == 0
    assert _json_out(capsys)["memory"]["arena_bytes"] == s["memory"]


def test_search_on_a_board_and_compile_update_auto(user_model, tmp_path, capsys) -> None:
    model, data = user_model
    base = [model, "--int8", "--calib", data, "--board", "mps2_an386"]
    budget = "48KB"
    assert main(["search", *base, "--data", data, "--budget", budget, "--seed", "3",
                 "-o", str(tmp_path / "s.json"), "--json", "--samples", "60",
                 "--holdout", "30", "--refine", "2", "--bias-points", "3"]) == 0
    s = _json_out(capsys)["search"]
    assert s["board"] == "mps2_an386" and s["memory_kind"] == "board total"
    assert s["memory"] <= 48 * 1024
    plan = tmp_path / "auto.ttp"
    few = str(Path(data).with_name("few.npz"))
    assert main(["compile", *base, "--update", "auto", "--data", few, "--budget", budget,
                 "-o", str(plan), "--json"]) == 0
    out = _json_out(capsys)
    assert out["board"]["total"] <= 48 * 1024 and plan.is_file()
    assert Path(str(plan.with_suffix("")) + ".scheme.json").is_file()


def test_max_drop_takes_less_memory_than_full(user_model, tmp_path, capsys) -> None:
    model, data = user_model
    base = [model, "--int8", "--calib", data, "--int8-update", "round"]
    assert main(["search", *base, "--data", data, "--max-drop", "2", "-o",
                 str(tmp_path / "s.json"), "--json", "--samples", "60", "--holdout", "30",
                 "--refine", "2", "--bias-points", "3"]) == 0
    s = _json_out(capsys)["search"]
    full_gain = s["full_update_gain"]
    assert full_gain is not None
    assert s["predicted_gain"] >= full_gain - 2 - 1e-6  # within 2 points of full, as predicted
    assert main(["compile", *base, "--update", "full", "-o", str(tmp_path / "f.ttp"),
                 "--json"]) == 0
    assert s["memory"] <= _json_out(capsys)["memory"]["arena_bytes"]


@pytest.mark.parametrize("extra, message", [
    (["--budget", "64KB"], "int8 models"),                 # an fp32 model
    ([], "--budget SIZE"),                                 # no budget nor --max-drop
])
def test_search_errors_are_clear(user_model, tmp_path, capsys, extra, message) -> None:
    model, data = user_model
    assert main(["search", model, "--data", data, "-o", str(tmp_path / "s.json"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_search_refuses_data_of_another_shape(user_model, tmp_path, capsys) -> None:
    model, data = user_model
    bad = tmp_path / "bad.npz"
    x, y = _samples(60, 0, size=8)
    np.savez(bad, x_train=x, y_train=y, x_test=x, y_test=y)
    assert main(["search", model, "--int8", "--calib", data, "--data", str(bad), "--budget",
                 "64KB", "-o", str(tmp_path / "s.json")]) == 2
    assert "model's input is 3x16x16" in capsys.readouterr().err


def test_scheme_inline_json_is_an_update(synthetic_pkl) -> None:
    s = Scheme(3, [], [])
    r = compile_tiny_training(synthetic_pkl, 4, update=json.dumps(s.to_dict() | {"x": 1}))
    assert r.plan.meta["scheme"]["n_bias_update"] == 3
    torch.manual_seed(0)
