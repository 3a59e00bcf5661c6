"""`tinyhost fleet`: the command's work (cli.py only parses and calls this)."""
from __future__ import annotations

import argparse
import json
import sys

from tinyhost.fleet.config import FleetConfig
from tinyhost.fleet.shards import SplitSpec


def config_from_args(args: argparse.Namespace) -> FleetConfig:
    ports = [p.strip() for p in args.ports.split(",") if p.strip()]
    kind, column = args.split[0], (args.split[1] if len(args.split) > 1 else None)
    if kind == "by-group" and column is None:
        raise ValueError("--split by-group needs the COLUMN: --split by-group subject")
    if kind != "by-group" and column is not None:
        raise ValueError(f"--split {kind} takes no COLUMN (only by-group does)")
    return FleetConfig(plan=args.plan, data=args.data, ports=ports,
                       split=SplitSpec(kind, column, args.seed), rounds=args.rounds,
                       local_epochs=args.local_epochs, lr=args.lr, strategy=args.strategy,
                       proximal_mu=args.proximal_mu, seed=args.seed, normalize=args.normalize)


def print_round_table(report_dict: dict) -> None:
    for r in report_dict["rounds"]:
        acc = r["test_accuracy"]
        print(f"round {r['round']}: aggregated model {'-' if acc is None else f'{acc:.1%}'} on "
              f"{r['test_samples']} test samples, {r['bytes']} bytes moved"
              f"{'' if r['aggregated'] else ' (no device trained: model unchanged)'}")
        for d in r["devices"]:
            loc, glo = d["local_test_accuracy"], d["global_test_accuracy"]
            loss, tra = d["train_loss"], d["train_accuracy"]
            fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
            print(f"  device {d['device']}: loss {fmt(loss, '.4f')}, train acc "
                  f"{fmt(tra, '.1%')}, local test acc {fmt(loc, '.1%')}, aggregated "
                  f"model {'-' if glo is None else f'{glo:.1%}'} on its {d['test_samples']} "
                  f"test samples, {d['bytes_down']} B down / {d['bytes_up']} B up")
        for f in r["failed"]:
            who = f"device {f['device']}" if f["device"] is not None else f"node {f['node']}"
            print(f"  FAILED {who} ({f['phase']}): {f['reason']}")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        from tinyhost.fleet.run import plot_fleet, run_fleet
    except ImportError as e:
        print(f"error: tinyhost fleet needs Flower ({e}): pip install -e '.[fleet]' "
              "(make setup installs it)", file=sys.stderr)
        return 2
    quiet = args.json
    if not quiet:
        print(f"fleet of {len(cfg.ports)} devices ({', '.join(cfg.ports)}), {cfg.strategy}, "
              f"{cfg.rounds} rounds x {cfg.local_epochs} local epochs, data {cfg.data} "
              f"split {cfg.split.describe()}", file=sys.stderr)
    report = run_fleet(cfg, progress=not quiet)
    d = report.to_dict()
    if args.plot:
        plot_fleet(report, args.plot, f"{len(cfg.ports)} devices, {cfg.strategy}, split "
                                      f"{cfg.split.describe()}: accuracy over rounds")
        d["plot"] = args.plot
    if args.save_params:
        from tinyhost.params import save_parameters
        save_parameters(report.final_params, args.save_params)
        d["params"] = args.save_params
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print_round_table(d)
        acc = d["test_accuracy"]
        print(f"final test accuracy (aggregated model, on the devices): "
              f"{'-' if acc is None else f'{acc:.1%}'} over {d['test_samples']} of "
              f"{d['test_samples_total']} test samples; {d['bytes']} bytes of parameters moved")
        if d["failed_devices"]:
            print(f"devices that failed: {d['failed_devices']} (the rounds went on without "
                  "them)")
        for what in ("plot", "params"):
            if what in d:
                print(f"{what}: {d[what]}")
    return 1 if d["test_accuracy"] is None else 0
