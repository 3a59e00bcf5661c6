"""A fleet on one machine: Flower's simulation engine with N devices (`tinyhost fleet`). `sim`
ports are started here, one simulated device each, and live for the whole run (the clients
open them by their pseudo-terminal paths); `ref` devices are the reference executor in the
client's process; `qemu` starts the firmware in QEMU for each message (slow); anything else is
a serial port or pyserial URL."""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

import numpy as np

from tinyhost.device import connect
from tinyhost.fleet.app import make_client_app, make_server_app
from tinyhost.fleet.config import FleetConfig
from tinyhost.fleet.server import FleetReport
from tinyhost.fleet.shards import load_for_plan
from tinyhost.link.transport import SimProcess
from tinyhost.plan import load_plan_file


def _test_total(cfg: FleetConfig) -> int:
    plan, _ = load_plan_file(cfg.plan)
    files = cfg.data.split(",")
    return sum(len(load_for_plan(f, plan, cfg.normalize).y_test) for f in files)


def check(cfg: FleetConfig, devices: int) -> int:
    """Loads the plan and every device's shard once before Flower starts, so bad input is one
    clear error rather than N failed clients. Returns the whole test split's size."""
    from tinyhost.fleet.shards import device_shard
    from tinyhost.train import check_dataset
    plan, _ = load_plan_file(cfg.plan)
    if not plan.trainable:
        raise ValueError(f"{cfg.plan} trains nothing (no trainable tensors): nothing to federate")
    for d in range(devices):
        check_dataset(plan, device_shard(cfg.data, plan, d, devices, cfg.split, cfg.normalize))
    for port in cfg.ports:  # a port that cannot be opened at the start is a typo, not a dropout
        if port not in ("sim", "ref", "qemu"):
            connect(port).close()
    return _test_total(cfg)


def run_fleet(cfg: FleetConfig, progress: bool = True,
              round_hook: Callable[[int, list[SimProcess | None]], None] | None = None,
              max_parallel: int | None = None, quiet_flower: bool = True) -> FleetReport:
    """Runs cfg.rounds federated rounds over cfg.ports in Flower's simulation engine and returns
    the report. `round_hook(round, sims)` is called as each round is configured (tests use it to
    kill a device mid-round). `max_parallel`: clients run at once (default: the cores, at most
    the devices)."""
    from flwr.simulation import run_simulation

    devices = len(cfg.ports)
    if devices < 1:
        raise ValueError("--ports: give at least one device")
    total = check(cfg, devices)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPUs: silence its tip
    sims: list[SimProcess | None] = []
    try:
        for p in cfg.ports:
            sims.append(SimProcess() if p == "sim" else None)
        ports = [s.path if s is not None else p for s, p in zip(sims, cfg.ports, strict=True)]
        run_cfg = dataclasses.replace(cfg, ports=ports)
        sink: list[FleetReport] = []
        hook = None if round_hook is None else (lambda r: round_hook(r, sims))
        server = make_server_app(run_cfg, devices, sink, progress, hook, total)
        parallel = max_parallel or min(devices, os.cpu_count() or 1)
        backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                   "init_args": {"num_cpus": parallel, "num_gpus": 0,
                                 "include_dashboard": False, "log_to_driver": not quiet_flower}}
        level = logging.getLogger("flwr").level
        if quiet_flower:
            # (ERROR: run_simulation's deprecation warning is known, docs/fleet.md)
            logging.getLogger("flwr").setLevel(logging.ERROR)
        try:
            run_simulation(server, make_client_app(run_cfg), num_supernodes=devices,
                           backend_config=backend)  # type: ignore[arg-type]
        finally:
            logging.getLogger("flwr").setLevel(level)
        if not sink:
            raise RuntimeError("the Flower simulation ended without a report (its log above "
                               "says why)")
        sink[0].ports = list(cfg.ports)
        return sink[0]
    finally:
        for s in sims:
            if s is not None:
                s.close()


def plot_fleet(report: FleetReport, path: str, title: str) -> None:
    """Accuracy over rounds: the aggregated model over all devices' test data, each device's
    local accuracy after its local training (on its own test shard)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    rounds = [r.round for r in report.rounds]
    for d in range(report.devices):
        acc = [r.devices[d].local_test_accuracy if d in r.devices else None
               for r in report.rounds]
        ys = np.array([np.nan if a is None else a for a in acc], dtype=float)
        ax.plot(rounds, ys * 100, lw=0.8, alpha=0.5, marker=".",
                label="each device after local training (own test shard)" if d == 0 else None)
    glob = np.array([np.nan if r.test_accuracy is None else r.test_accuracy
                     for r in report.rounds], dtype=float)
    ax.plot(rounds, glob * 100, lw=2.2, color="black", marker="o",
            label="aggregated model, all devices' test data")
    for r in report.rounds:
        for f in r.failed:
            ax.axvline(r.round, color="red", lw=0.6, ls=":")
            ax.annotate(f"device {f.device} failed ({f.phase})", (r.round, 2), rotation=90,
                        fontsize=7, color="red", va="bottom")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 101)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
