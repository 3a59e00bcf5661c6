"""The server side: a Flower strategy (FedAvg, or FedProx) that aggregates the devices' trained
sets with the plan's requantization, and records what every round did (the fleet report)."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedProx
from tqdm import tqdm

from tinyhost.fleet.config import FleetConfig
from tinyhost.fleet.params import initial_parameters, requantize
from tinyhost.plan import Plan, load_plan_file
from tinyhost.progress import bar_off

_DEVICE_IN_REASON = re.compile(r"device (\d+) \(([^)]*)\)")


@dataclass
class DeviceRound:
    device: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    local_test_accuracy: float | None = None  # its own test shard, after local training
    global_test_accuracy: float | None = None  # the aggregated model on its test shard
    test_samples: int = 0
    bytes_down: int = 0  # global parameters sent to it (train and evaluate)
    bytes_up: int = 0    # its trained parameters back
    seconds: float | None = None


@dataclass
class Failure:
    phase: str  # train | evaluate
    device: int | None
    node: int
    reason: str


@dataclass
class RoundReport:
    round: int
    devices: dict[int, DeviceRound] = field(default_factory=dict)
    failed: list[Failure] = field(default_factory=list)
    test_accuracy: float | None = None  # the aggregated model over the answering devices' tests
    test_samples: int = 0
    aggregated: bool = False  # False: no device trained, the global model stayed as it was

    @property
    def bytes(self) -> int:
        return sum(d.bytes_down + d.bytes_up for d in self.devices.values())

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "aggregated": self.aggregated,
                "test_accuracy": self.test_accuracy, "test_samples": self.test_samples,
                "bytes": self.bytes,
                "devices": [asdict(d) for _, d in sorted(self.devices.items())],
                "failed": [asdict(f) for f in self.failed]}


@dataclass
class FleetReport:
    devices: int
    strategy: str
    rounds: list[RoundReport] = field(default_factory=list)
    test_samples_total: int = 0  # the whole test split (all devices' shards)
    ports: list[str] = field(default_factory=list)
    final_params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float | None:
        return self.rounds[-1].test_accuracy if self.rounds else None

    def failed_devices(self) -> list[int]:
        return sorted({f.device for r in self.rounds for f in r.failed if f.device is not None})

    def to_dict(self) -> dict[str, Any]:
        last = self.rounds[-1] if self.rounds else None
        return {"devices": self.devices, "ports": self.ports, "strategy": self.strategy,
                "rounds": [r.to_dict() for r in self.rounds],
                "test_accuracy": self.test_accuracy,
                "test_samples": last.test_samples if last else 0,
                "test_samples_total": self.test_samples_total,
                "failed_devices": self.failed_devices(),
                "bytes": sum(r.bytes for r in self.rounds)}


def _device_of(msg: Message) -> int | None:
    m = _DEVICE_IN_REASON.search(msg.error.reason or "")
    return int(m.group(1)) if m else None


def metrics_of(msg: Message) -> dict[str, float]:
    """A reply's one MetricRecord (our clients send scalars only)."""
    rec = next(iter(msg.content.metric_records.values()))
    return {k: float(cast(float, v)) for k, v in rec.items()}


def _arrays(rec: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in rec.items()}


def to_record(params: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in params.items()})


def make_strategy(cfg: FleetConfig, plan: Plan, report: FleetReport,
                  round_hook: Callable[[int], None] | None = None) -> FedAvg:
    """Flower's FedAvg or FedProx over `cfg.ports`' devices, every device in every round; the
    average is taken by Flower in float64 and requantized here (tinyhost.fleet.params)."""
    base: type[FedAvg] = FedProx if cfg.strategy == "fedprox" else FedAvg
    n = report.devices

    class FleetStrategy(base):  # type: ignore[valid-type,misc]
        def _round(self, server_round: int) -> RoundReport:
            if not report.rounds or report.rounds[-1].round != server_round:
                report.rounds.append(RoundReport(server_round))
            return report.rounds[-1]

        def _failures(self, server_round: int, replies: list[Message], phase: str) -> None:
            r = self._round(server_round)
            for msg in replies:
                if msg.has_error():
                    r.failed.append(Failure(phase, _device_of(msg), msg.metadata.src_node_id,
                                            msg.error.reason or ""))

        def configure_train(self, server_round: int, arrays: ArrayRecord,
                            config: ConfigRecord, grid: Grid) -> Iterable[Message]:
            self._round(server_round)
            # every device in every round (fraction 1); the first round waits for all N to be
            # connected, later ones go on with those still connected (a gateway that went away
            # must not stop the fleet)
            self.min_available_nodes = n if server_round == 1 else 1
            while server_round == 1 and len(list(grid.get_node_ids())) < n:
                time.sleep(1)  # (FedAvg samples from those connected when it is asked)
            if round_hook is not None:
                round_hook(server_round)
            return super().configure_train(server_round, arrays, config, grid)

        def aggregate_train(self, server_round: int, replies: Iterable[Message]
                            ) -> tuple[ArrayRecord | None, MetricRecord | None]:
            replies = list(replies)
            self._failures(server_round, replies, "train")
            r = self._round(server_round)
            for msg in replies:
                if msg.has_error():
                    continue
                m = metrics_of(msg)
                d = r.devices.setdefault(int(m["device"]), DeviceRound(int(m["device"])))
                d.train_loss, d.train_accuracy = float(m["train-loss"]), float(m["train-accuracy"])
                lta = float(m["local-test-accuracy"])
                d.local_test_accuracy = lta if lta >= 0 else None
                d.bytes_down += int(m["bytes-down"])
                d.bytes_up += int(m["bytes-up"])
                d.seconds = float(m["seconds"])
                # Flower's average, explicitly in float64 (int8/int32 arrays too)
                rec = msg.content.array_records[self.arrayrecord_key]
                msg.content[self.arrayrecord_key] = ArrayRecord(
                    {k: Array(v.numpy().astype(np.float64)) for k, v in rec.items()})
            arrays, metrics = super().aggregate_train(server_round, replies)
            if arrays is None:
                return None, metrics
            r.aggregated = True
            return to_record(requantize(plan, _arrays(arrays))), metrics

        def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                               ) -> MetricRecord | None:
            replies = list(replies)
            self._failures(server_round, replies, "evaluate")
            r = self._round(server_round)
            correct = samples = 0
            for msg in replies:
                if msg.has_error():
                    continue
                m = metrics_of(msg)
                d = r.devices.setdefault(int(m["device"]), DeviceRound(int(m["device"])))
                d.global_test_accuracy = float(m["accuracy"])
                d.test_samples = int(m["num-examples"])
                d.bytes_down += int(m["bytes-down"])
                correct += int(m["correct"])
                samples += int(m["num-examples"])
            r.test_samples = samples
            r.test_accuracy = correct / samples if samples else None
            if all(msg.has_error() for msg in replies):
                return None
            return super().aggregate_evaluate(server_round, replies)

    kw: dict[str, Any] = dict(min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=n)
    if cfg.strategy == "fedprox":
        kw["proximal_mu"] = cfg.proximal_mu
    return FleetStrategy(**kw)


def run_server(grid: Grid, cfg: FleetConfig, devices: int, progress: bool = True,
               round_hook: Callable[[int], None] | None = None,
               test_samples_total: int = 0) -> FleetReport:
    """What the ServerApp does: the rounds, with a progress bar; the report."""
    plan, _ = load_plan_file(cfg.plan)
    report = FleetReport(devices, cfg.strategy, ports=list(cfg.ports),
                         test_samples_total=test_samples_total)
    bar = tqdm(total=cfg.rounds, desc="fleet rounds", unit="round", disable=bar_off(not progress))

    def hook(server_round: int) -> None:
        if server_round > 1:
            last = report.rounds[-2] if len(report.rounds) > 1 else None
            if last is not None:
                bar.update(1)
                if last.test_accuracy is not None:
                    bar.set_postfix(acc=f"{last.test_accuracy:.1%}",
                                    failed=len(last.failed))
        if round_hook is not None:
            round_hook(server_round)

    strategy = make_strategy(cfg, plan, report, hook)
    try:
        result = strategy.start(grid, to_record(initial_parameters(plan)),
                                num_rounds=cfg.rounds)
    finally:
        bar.update(cfg.rounds - bar.n)
        bar.close()
    report.final_params = requantize(plan, _arrays(result.arrays)) if result.arrays else {}
    if cfg.report:
        with open(cfg.report, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    return report
