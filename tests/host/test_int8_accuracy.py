"""On-device training accuracy of a quantized float model (issue 3): on BasicMotions, with a CNN
pretrained on the host, int8 + QAS training in the reference executor reaches fp32 training's
test accuracy within 2 points, and without QAS it reaches measurably less.

bench/accuracy.py measures this over 10 seeds and both schemes and prints the table
(docs/int8.md section 12); this test runs its `measure` on the bench's main row (last:3, the
default int8 update rule) with its first 3 seeds, the bench's epochs and its smoothed figure (the
mean test accuracy of the last 5 epochs: batch-1 SGD swings by several points per epoch, which 3
seeds do not average out). Nothing here is timed.
"""
from __future__ import annotations

import pytest

from bench_loader import load_bench
from tinyhost.compiler import INT8_UPDATE_DEFAULT

SEEDS = 3
UPDATE = "last:3"
WITHIN = 0.02        # int8 + QAS at most 2 points below fp32 (the claim)
NO_QAS_BELOW = 0.10  # "measurably less": measured ~35 points below, about the head alone


def bench_accuracy():
    return load_bench("accuracy")


@pytest.fixture(scope="module")
def results():
    bench = bench_accuracy()
    variants = (bench.Variant("fp32", int8=False),
                bench.Variant("int8 + QAS", int8=True, qas=True, rule=INT8_UPDATE_DEFAULT),
                bench.Variant("int8, no QAS", int8=True, qas=False, rule=INT8_UPDATE_DEFAULT))
    rows = bench.measure(seeds=SEEDS, epochs=bench.DEFAULT_EPOCHS, updates=(UPDATE,),
                         variants=variants)
    return {r.variant: r for r in rows}


def test_int8_qas_reaches_fp32_accuracy(results):
    fp32, qas = results["fp32"], results["int8 + QAS"]
    assert fp32.smoothed_mean >= 0.9  # the transfer is learnable: fp32 gets there
    assert qas.smoothed_mean >= fp32.smoothed_mean - WITHIN, (qas.smoothed, fp32.smoothed)


def test_without_qas_measurably_less(results):
    qas, no_qas = results["int8 + QAS"], results["int8, no QAS"]
    assert no_qas.smoothed_mean <= qas.smoothed_mean - NO_QAS_BELOW, (no_qas.smoothed,
                                                                       qas.smoothed)
