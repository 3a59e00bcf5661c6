"""Training steps per second on the host: the posix simulator (`--port sim`) and the reference
executor (`--port ref`), on the plans bench/m4f.py times on the Cortex-M4F. Prints a markdown
table.

    .venv/bin/python bench/host_speed.py [--steps 5] [--models demo,mcunet-5fps,mbv2-w0.35]

Plans: the demo model with its full update, and each paper model (../shared/data/mcu_models/)
with its 99kb sparse-update scheme at --input-size (default 128), compiled as bench/m4f.py
compiles them. Each plan is uploaded, one step is run untimed (first-touch costs), then --steps
steps on random samples are timed by the wall clock (the machine's load shows in the figures: they
are not instruction counts). The simulator runs twice: the build `make build` makes (ASan + UBSan,
what `make test` runs) and an unsanitized -O2 build in build-bench/ (bench/step_cost.py's).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhost.compiler import CompileResult
from tinyhost.device import connect
from tinyhost.link.transport import SIM_IN_BUILD

sys.path.insert(0, str(Path(__file__).resolve().parent))
from m4f import Case, compile_case, sample  # noqa: E402  (bench/m4f.py: the same plans)
from step_cost import BUILD, build_runner  # noqa: E402  (the unsanitized -O2 build)

RELEASE_SIM = BUILD / "firmware" / "ports" / "posix" / "tinytrain_sim"
DEVICES = (("sim (make build: ASan+UBSan)", "sim", SIM_IN_BUILD),
           ("sim (-O2, build-bench)", "sim", RELEASE_SIM),
           ("ref (numpy reference executor)", "ref", None))


@dataclass
class Timing:
    case: Case
    device: str
    steps: int
    seconds: float


def time_steps(result: CompileResult, port: str, sim: Path | None, steps: int) -> float:
    """Wall-clock seconds of `steps` training steps after one untimed step."""
    plan = result.plan
    if sim is not None:
        os.environ["TINYTRAIN_SIM"] = str(sim)
    device = connect(port)
    try:
        device.load_plan(plan, result.data, lambda _n: None)
        rng = np.random.default_rng(0)
        device.train_step(sample(plan, rng), 0, plan.default_lr)
        t0 = time.perf_counter()
        for _ in range(steps):
            device.train_step(sample(plan, rng), 0, plan.default_lr)
        return time.perf_counter() - t0
    finally:
        device.close()
        os.environ.pop("TINYTRAIN_SIM", None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per plan (default 5)")
    ap.add_argument("--input-size", type=int, default=128, help="paper models (default 128)")
    ap.add_argument("--models", default="demo,mcunet-5fps,mbv2-w0.35",
                    help="comma list: demo and/or paper models (default: demo and the two "
                         "paper models issue 13 names)")
    args = ap.parse_args()
    if args.steps < 1:
        sys.exit("--steps must be at least 1")
    if not SIM_IN_BUILD.is_file():
        sys.exit(f"{SIM_IN_BUILD} is missing: run `make build` first")
    build_runner("tinytrain_sim")
    cases = [Case("demo", "full", 0) if m == "demo" else Case(m, "99kb", args.input_size)
             for m in args.models.split(",")]
    rows: list[Timing] = []
    for case in cases:
        result = compile_case(case)
        for name, port, sim in DEVICES:
            seconds = time_steps(result, port, sim, args.steps)
            rows.append(Timing(case, name, args.steps, seconds))
            print(f"{case.model} {case.update} {name}: {args.steps / seconds:.2f} steps/s",
                  file=sys.stderr, flush=True)
    print(f"\n### Training steps per second on the host ({args.steps} timed steps per plan, "
          "wall clock)\n")
    print("| model | update | device | ms/step | steps/s |")
    print("|---|---|---|---:|---:|")
    for r in rows:
        update = r.case.update if r.case.model == "demo" else f"{r.case.update} scheme"
        print(f"| {r.case.model} | {update} | {r.device} | {1000 * r.seconds / r.steps:,.1f} | "
              f"{r.steps / r.seconds:,.2f} |")


if __name__ == "__main__":
    main()
