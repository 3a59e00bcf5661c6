"""What every part of a fleet run needs to know, and how it travels: a dataclass in the Python
API and the simulation, Flower's run config (`flwr run --run-config`) and node config
(`flower-supernode --node-config`) in the deployment runtime."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinyhost.fleet.shards import SplitSpec

STRATEGIES = ("fedavg", "fedprox")


@dataclass
class FleetConfig:
    plan: str                      # the .ttp every device runs
    data: str                      # one dataset to split, or a comma list of one file per device
    ports: list[str] = field(default_factory=list)  # one per device (sim: filled in with pty paths)
    split: SplitSpec = field(default_factory=SplitSpec)
    rounds: int = 3
    local_epochs: int = 1
    lr: float | None = None        # None: the plan's
    strategy: str = "fedavg"
    proximal_mu: float = 0.01      # fedprox
    seed: int = 0
    normalize: bool = True
    report: str | None = None      # the ServerApp writes its JSON report here (deployment)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy {self.strategy!r}: expected one of "
                             f"{', '.join(STRATEGIES)}")
        if self.rounds < 1 or self.local_epochs < 1:
            raise ValueError("--rounds and --local-epochs must be at least 1")
        if self.proximal_mu < 0:
            raise ValueError("--proximal-mu must be 0 or more")

    @classmethod
    def from_run_config(cls, rc: dict[str, Any]) -> FleetConfig:
        g = {k.replace("-", "_"): v for k, v in rc.items()}
        known = {"plan", "data", "rounds", "local_epochs", "strategy", "proximal_mu", "seed",
                 "normalize"}
        kw: dict[str, Any] = {k: g[k] for k in known if k in g}
        for k in ("rounds", "local_epochs", "seed"):
            if k in kw:
                kw[k] = int(kw[k])
        if "normalize" in kw:
            kw["normalize"] = bool(kw["normalize"])
        if "proximal_mu" in kw:
            kw["proximal_mu"] = float(kw["proximal_mu"])
        lr = float(g.get("lr", 0.0) or 0.0)
        ports = str(g.get("ports", "") or "")
        return cls(**kw, lr=lr or None, ports=[p for p in ports.split(",") if p],
                   split=SplitSpec(str(g.get("split", "iid")), str(g.get("split_column") or "")
                                   or None, int(g.get("split_seed", 0))),
                   report=str(g.get("report") or "") or None)
