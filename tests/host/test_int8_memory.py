"""Memory of int8 training plans: the paper's models at 128x128 with its 99kb schemes, full update
and the classifier only, with and without operator reordering. bench/memory.py prints the table and
computes the paper's ratios; the guards here go through its `measure` and `paper_ratios`, and
docs/int8.md compares the figures with the paper.

The guards are lower bounds: work that lowers the sparse plans' peak only raises the ratios.
Measured before the fused pointwise+depthwise op: full / 99kb 7.7x (mcunet-5fps) and 5.3x
(mbv2-w0.35); full without reordering / 99kb 14.2x and 8.3x. mbv2-w0.35's 99kb plan then peaked in
inference (a 48x64x64 int8 activation next to its input); both schemes add at most their own
analytic budget (99 KB) to what the classifier alone needs, which is what the budget means.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench_loader import load_bench
from paper_data import PAPER_MODELS, SCHEMES, paper_model
from test_compiler import check_memory_plan
from tinyhost.plan import TensorKind
from tinyhost.refexec.executor import RefExecutor

KB = 1024
# Lower bounds of the paper's ratios (it reports 7-9x and ~20x), per model.
MIN_FULL_OVER_SPARSE = {"mcunet-5fps": 5.0, "mbv2-w0.35": 5.0}
MIN_FULL_NO_REORDER_OVER_SPARSE = {"mcunet-5fps": 12.0, "mbv2-w0.35": 8.0}
MIN_REORDER_SAVING_ON_FULL = 1.5


def bench_memory():
    return load_bench("memory")


@pytest.fixture(scope="module", params=PAPER_MODELS)
def plans(request, compile_int8):
    path = paper_model(request.param)
    scheme = f"{SCHEMES}:{request.param}:99kb"
    return request.param, {
        "99kb": compile_int8(path, scheme),
        "99kb-no-reorder": compile_int8(path, scheme, reorder=False),
        "full": compile_int8(path, "full"),
        "classifier": compile_int8(path, "last:1"),
    }


def test_memory_plans_are_valid(plans):
    _, p = plans
    for result in p.values():
        check_memory_plan(result.plan)


def test_sparse_update_memory(plans):
    model, p = plans
    arena = {k: r.plan.arena_size for k, r in p.items()}
    # The 99kb scheme adds no more than its budget to what inference (and the head) needs.
    assert arena["99kb"] - arena["classifier"] <= 99 * KB, arena
    if model == "mcunet-5fps":
        assert arena["99kb"] <= 256 * KB, arena
    # Without reordering every weight gradient lives until the end of the step.
    assert arena["99kb-no-reorder"] > 1.2 * arena["99kb"], arena
    assert arena["99kb-no-reorder"] > 256 * KB
    # Trainable state is the trained rows, biases and head, not the trained layers' whole weights.
    trainable = sum(r.nbytes for r in (p["99kb"].plan.tensors[i] for i in p["99kb"].plan.trainable))
    assert trainable < 80 * KB
    assert p["99kb"].report.by_kind["trainable_params"] == trainable


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_paper_ratios(model, compile_int8):
    """The issue's guard: sparse update is far below full update (the paper: 7-9x), and further
    below full update without reordering (the paper: ~20x), as bench/memory.py computes them."""
    bench = bench_memory()
    pkl = paper_model(model)
    rows = bench.measure(pkl, bench.ratio_updates(pkl), compile_fn=compile_int8)
    ratios = bench.paper_ratios(rows)
    assert ratios["full / 99kb"] >= MIN_FULL_OVER_SPARSE[model], ratios
    assert ratios["full no reorder / 99kb"] >= MIN_FULL_NO_REORDER_OVER_SPARSE[model], ratios
    # Reordering alone: no weight gradient outlives its op.
    reorder = ratios["full no reorder / 99kb"] / ratios["full / 99kb"]
    assert reorder >= MIN_REORDER_SAVING_ON_FULL, ratios
    # The rows are the compiler's report.
    sparse = next(r for r in rows if r.label == bench.REFERENCE)
    report = compile_int8(pkl, f"{SCHEMES}:{model}:99kb").report
    assert (sparse.arena_bytes, sparse.flash_bytes) == (report.arena_bytes, report.flash_bytes)


def test_scheme_budget_in_meta(plans):
    model, p = plans
    meta = p["99kb"].plan.meta
    assert meta["scheme"]["source"].endswith(f"sparse_schemes.json:{model}:99kb")
    want = json.loads(SCHEMES.read_text())[model]["99kb"]
    assert meta["scheme"]["manual_weight_idx"] == want["manual_weight_idx"]
    assert meta["int8_update"] == "round" and meta["qas"] is True and meta["reorder"] is True
    assert p["99kb-no-reorder"].plan.meta["reorder"] is False


@pytest.mark.parametrize("update,rule", [("full", "round"), ("SCHEME", "master"),
                                         ("bias-only", "round")])
def test_no_op_reads_stale_arena_bytes(synthetic_pkl, tmp_path, update, rule):
    """Arena bytes not live at the start of a step are garbage on a device: filling them with
    garbage before every step changes nothing (masks, accumulated gradients, in-place dz)."""
    from tinyhost.compiler import compile_tiny_training
    if update == "SCHEME":
        path = tmp_path / "s.json"
        path.write_text(json.dumps({"n_bias_update": 10, "manual_weight_idx": [2, 4, 6, 9],
                                    "weight_update_ratio": [1, 0.5, 0, 0.25]}))
        update = str(path)
    plan = compile_tiny_training(synthetic_pkl, 4, update=update, int8_update=rule).plan
    clean, dirty = RefExecutor(plan), RefExecutor(plan)
    keep = np.zeros(plan.arena_size, bool)
    for t in plan.tensors:
        if t.in_arena and t.kind == TensorKind.PARAM_TRAINABLE:
            keep[t.arena_offset:t.arena_offset + t.nbytes] = True
    rng = np.random.default_rng(0)
    for _ in range(3):
        dirty.arena[~keep] = rng.integers(0, 256, int((~keep).sum()), np.uint8)
        x = rng.uniform(-1, 1, (3, 16, 16)).astype(np.float32)
        label = int(rng.integers(plan.num_classes))
        a, b = clean.train_step(x, label, 0.05), dirty.train_step(x, label, 0.05)
        assert (a.loss, a.pred) == (b.loss, b.pred)
    for i in plan.trainable:
        np.testing.assert_array_equal(clean.read_tensor(i), dirty.read_tensor(i),
                                      err_msg=plan.tensors[i].name)
