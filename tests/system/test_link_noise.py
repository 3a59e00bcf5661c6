"""The link on a noisy wire (issue 14): the real sim behind a fault-injecting port
(TINYTRAIN_LINK_FAULTS, tinyhost.link.faults) trains exactly as on a clean one, and a hopeless
line or a silent port ends with an error that says which."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tinyhost.demo.basicmotions_model import DEFAULT_LR
from tinyhost.device import connect
from tinyhost.link import client as link_client
from tinyhost.link.client import NoisyLink
from tinyhost.link.transport import FAULTS_ENV
from tinyhost.params import pull_parameters

STEPS = 8


def train(demo_plan, demo_data, faults: str | None, monkeypatch) -> tuple[list, dict, object]:
    if faults is None:
        monkeypatch.delenv(FAULTS_ENV, raising=False)
    else:
        monkeypatch.setenv(FAULTS_ENV, faults)
    dev = connect("sim")
    try:
        dev.load_plan(demo_plan.plan, demo_plan.data)
        replies = [dev.train_step(demo_data.x_train[k], int(demo_data.y_train[k]), DEFAULT_LR)
                   for k in range(STEPS)]
        preds = [dev.evaluate(x) for x in demo_data.x_test[:4]]
        params = pull_parameters(dev, demo_plan.plan)
        return [(r.loss, r.pred, r.step) for r in replies] + preds, params, dev.client.stats
    finally:
        dev.close()


@pytest.mark.parametrize("faults", ["rate=0.01,seed=3", "corrupt=0.002,drop=0.002,dup=0.002,"
                                    "delay=0.01,delay_ms=1,seed=4"])
def test_noisy_line_trains_exactly_as_a_clean_one(sim_binary, demo_plan, demo_data, faults,
                                                   monkeypatch) -> None:
    clean_steps, clean_params, _ = train(demo_plan, demo_data, None, monkeypatch)
    steps, params, stats = train(demo_plan, demo_data, faults, monkeypatch)
    assert steps == clean_steps
    assert set(params) == set(clean_params)
    for name, value in clean_params.items():
        np.testing.assert_array_equal(params[name], value, err_msg=name)
    assert stats.resends > 0 and stats.nak + stats.corrupt > 0  # the faults did hit


def test_hopeless_line_is_called_noisy(sim_binary, monkeypatch) -> None:
    monkeypatch.setattr(link_client, "NOISY_BUDGET", 1.0)
    monkeypatch.setenv(FAULTS_ENV, "corrupt=0.5,seed=1")
    t0 = time.monotonic()
    with pytest.raises(NoisyLink, match="too noisy") as ei:
        connect("sim")
    assert time.monotonic() - t0 < 10
    assert "NAKs" in str(ei.value) and "HELLO" in str(ei.value)
