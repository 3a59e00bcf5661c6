"""`tinyhost fleet`: devices as Flower clients (federated on-device training; docs/fleet.md)."""
import os

# Flower and Ray report usage to their makers' servers by default; a fleet tool talks to its own
# devices only (set either variable to 1 beforehand to allow it). Set before flwr/ray import:
# both read them once, at import.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from tinyhost.fleet.config import FleetConfig  # noqa: E402
from tinyhost.fleet.shards import SplitSpec  # noqa: E402

__all__ = ["FleetConfig", "SplitSpec", "run_fleet"]


def __getattr__(name: str):  # run_fleet imports Flower: only when asked for
    if name == "run_fleet":
        from tinyhost.fleet.run import run_fleet
        return run_fleet
    raise AttributeError(name)
