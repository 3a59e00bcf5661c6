"""Flower's two apps for a fleet: the ClientApp (one device) and the ServerApp (the rounds).

`make_client_app(cfg)` / `make_server_app(cfg)` carry a FleetConfig (the simulation engine, the
Python API). The module's `client_app` and `server_app` are what the deployment runtime loads
(`flwr run` with the Flower App in tinyhost/fleet/flwr_app): they read the run config (plan,
data, split, rounds, ...) and each SuperNode's node config:
- `port`: the device this SuperNode drives (a serial path, `sim`, `qemu`, `ref`);
- `partition-id` and `num-partitions`: its shard of the run's DATA; or
- `data`: a file of its own (then it is all of that file)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from tinyhost.fleet.client import evaluate_global, fit
from tinyhost.fleet.config import FleetConfig
from tinyhost.fleet.server import FleetReport, run_server, to_record


def _where(cfg: FleetConfig | None, context: Context
           ) -> tuple[FleetConfig, int, tuple[int, int], str]:
    """This node's config, device index, shard and port."""
    nc = context.node_config
    c = cfg if cfg is not None else FleetConfig.from_run_config(dict(context.run_config))
    index = int(nc.get("partition-id", 0))
    devices = int(nc.get("num-partitions", 1))
    shard = (index, devices)
    if nc.get("data"):
        c, shard = dataclasses.replace(c, data=str(nc["data"])), (0, 1)
    if nc.get("plan"):
        c = dataclasses.replace(c, plan=str(nc["plan"]))
    port = str(nc["port"]) if nc.get("port") else (c.ports[index] if index < len(c.ports)
                                                   else "")
    if not port:
        raise ValueError(f"device {index} (no port): give the SuperNode --node-config "
                         "\"port='/dev/ttyACM0'\" (or sim, qemu, ref)")
    return c, index, shard, port


def _params(msg: Message) -> dict[str, Any]:
    return {k: v.numpy() for k, v in msg.content.array_records["arrays"].items()}


Handler = Callable[[Message, Context], Message]


def client_handlers(cfg: FleetConfig | None = None) -> tuple[Handler, Handler]:
    """The ClientApp's train and evaluate functions (apart, so tests can call them)."""

    def train(msg: Message, context: Context) -> Message:
        c, index, shard, port = _where(cfg, context)
        config = msg.content.config_records["config"]
        params, metrics = fit(c, index, shard, port, _params(msg),
                              int(cast(int, config.get("server-round", 0))),
                              float(cast(float, config.get("proximal-mu", 0.0))))
        content = RecordDict({"arrays": to_record(params),
                              "metrics": MetricRecord(dict(metrics))})
        return Message(content=content, reply_to=msg)

    def evaluate(msg: Message, context: Context) -> Message:
        c, index, shard, port = _where(cfg, context)
        metrics = evaluate_global(c, index, shard, port, _params(msg))
        return Message(content=RecordDict({"metrics": MetricRecord(dict(metrics))}),
                       reply_to=msg)

    return train, evaluate


def make_client_app(cfg: FleetConfig | None = None) -> ClientApp:
    app = ClientApp()
    train, evaluate = client_handlers(cfg)
    app.train()(train)
    app.evaluate()(evaluate)
    return app


def make_server_app(cfg: FleetConfig | None = None, devices: int | None = None,
                    sink: list[FleetReport] | None = None, progress: bool = True,
                    round_hook: Callable[[int], None] | None = None,
                    test_samples_total: int = 0) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        c = cfg if cfg is not None else FleetConfig.from_run_config(dict(context.run_config))
        n = devices
        if n is None:  # deployment: every SuperNode connected when the run starts
            n = int(dict(context.run_config).get("devices", 0)) or len(list(grid.get_node_ids()))
        report = run_server(grid, c, n, progress, round_hook, test_samples_total)
        if sink is not None:
            sink.append(report)

    return app


# the deployment runtime's entry points (tinyhost/fleet/flwr_app/pyproject.toml names them)
client_app = make_client_app()
server_app = make_server_app(progress=False)

__all__ = ["client_app", "make_client_app", "make_server_app", "server_app"]
