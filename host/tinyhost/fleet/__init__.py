"""`tinyhost fleet`: devices as Flower clients (federated on-device training; docs/fleet.md)."""
from tinyhost.fleet.config import FleetConfig
from tinyhost.fleet.shards import SplitSpec

__all__ = ["FleetConfig", "SplitSpec", "run_fleet"]


def __getattr__(name: str):  # run_fleet imports Flower: only when asked for
    if name == "run_fleet":
        from tinyhost.fleet.run import run_fleet
        return run_fleet
    raise AttributeError(name)
