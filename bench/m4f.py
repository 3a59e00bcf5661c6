"""Training plans on the Cortex-M4F firmware in QEMU mps2-an386: instructions per step, flash and
RAM against the 256 KB the build has. Prints markdown tables.

    make qemu && .venv/bin/python bench/m4f.py [--steps 2] [--input-size 128] [--reduced-size N]

Plans: the demo model (full, last:1, bias-only); the paper's int8 models mcunet-5fps and mbv2-w0.35
at --input-size with their 99kb sparse-update schemes (int8 update rule round, the paper's, and
master, f32 copies of the trained channels) and with full update, and with --reduced-size N the
same again at NxN (for a plan that does not fit at full size).

Each plan runs on a freshly booted firmware (`--port qemu`, -icount shift=0: costs are instruction
counts, the same on every run to one SysTick tick, 40 instructions), so the stack high-water mark
INFO reports (`stack_peak`: the stack is painted at reset) is that plan's own: upload, --steps
training steps on random samples, INFO. Flash and static RAM come from the build's map file
(tinyhost.firmware_map). A plan that needs more RAM than the build has is reported as "does not
fit" with the numbers that say why (one whose planned arena alone exceeds the device's is not
uploaded at all); one the firmware refuses for another reason (ops it lacks) as "not run".
Run time: ~2 minutes, mostly uploading the paper models' plans over the emulated UART (~16 KiB/s);
each --reduced-size adds ~1 minute.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhost.compiler import CompileResult, compile_model, compile_tiny_training
from tinyhost.device import DeviceInfo, connect
from tinyhost.firmware_map import FirmwareMemory, map_path, read_map
from tinyhost.link.client import DeviceError
from tinyhost.link.qemu import find_qemu_elf
from tinyhost.plan import DType, Plan

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
PAPER_MODELS = REPO.parent / "shared" / "data" / "mcu_models"
PAPER = ("mcunet-5fps", "mbv2-w0.35")
KB = 1024
ERR_PLAN_ARENA = -6


@dataclass(frozen=True)
class Case:
    model: str
    update: str
    compile: Callable[[], CompileResult]


@dataclass
class Row:
    case: Case
    plan: Plan
    plan_bytes: int
    costs: list[int]           # instructions per training step, one per step; empty: not run
    arena_used: int | None     # the device's arena need: plan arena + its decoded tables
    stack_peak: int | None     # measured, bytes
    refused: str = ""          # why the device did not run it
    too_large: bool = False    # ... because it needs more RAM than the build has

    @property
    def input(self) -> str:
        return "x".join(str(d) for d in self.plan.tensors[self.plan.bindings.input].shape)


def cases(args: argparse.Namespace) -> list[Case]:
    out = [Case("demo", u, lambda u=u: compile_model(DEMO_MODEL, update=u))
           for u in ("full", "last:1", "bias-only")]
    schemes = PAPER_MODELS / "sparse_schemes.json"
    for model in PAPER:
        def tiny(update: str, size: int, rule: str, model: str = model) -> CompileResult:
            return compile_tiny_training(PAPER_MODELS / f"{model}.pkl", 10, update=update,
                                         input_size=size, int8_update=rule)
        # rule round: the paper's in-place int8 update; master (an f32 copy of the trained
        # channels, more accurate) to show what it costs
        sizes = (args.input_size, args.reduced_size) if args.reduced_size else (args.input_size,)
        for size in sizes:
            for rule in ("round", "master"):
                out.append(Case(model, f"99kb scheme, {rule}",
                                lambda t=tiny, m=model, n=size, r=rule:
                                t(f"{schemes}:{m}:99kb", n, r)))
            out.append(Case(model, "full, round", lambda t=tiny, n=size: t("full", n, "round")))
    return out


def sample(plan: Plan, rng: np.random.Generator) -> np.ndarray:
    """Random input: the cost of a step does not depend on what the sample shows."""
    t = plan.tensors[plan.bindings.input]
    if t.dtype == DType.S8:
        return rng.integers(-128, 128, t.numel, dtype=np.int8)
    return rng.standard_normal(t.numel).astype(np.float32)


def run(case: Case, capacity: int, steps: int) -> Row:
    result = case.compile()
    plan = result.plan
    row = Row(case, plan, len(result.data), [], None, None)
    if plan.arena_size > capacity:
        row.refused = f"planned arena {plan.arena_size} B > device arena {capacity} B"
        row.too_large = True
        return row
    device = connect("qemu")  # a fresh boot: the stack high-water mark starts from reset
    try:
        try:
            device.load_plan(plan, result.data)
        except DeviceError as e:  # too large, or ops this firmware lacks: say so in the table
            tables = re.search(r"\+(\d+) for its tables", e.message)
            if e.code == ERR_PLAN_ARENA and tables:
                row.arena_used = plan.arena_size + int(tables[1])
                row.too_large = True
            row.refused = e.message
            return row
        rng = np.random.default_rng(0)
        for _ in range(steps):
            row.costs.append(device.train_step(sample(plan, rng), 0, plan.default_lr).cost)
        info = device.info()
        row.arena_used, row.stack_peak = info.arena_used, info.stack_peak
    finally:
        device.close()
    return row


def kb(n: float | None) -> str:
    return "—" if n is None else f"{n / KB:.1f}"


def ram_total(fw: FirmwareMemory, row: Row) -> tuple[str, str]:
    """(RAM the plan needs on this build, whether that fits). For a plan that did not run: a
    lower bound without the stack (and without the tables when it was not uploaded)."""
    if row.arena_used is not None and row.stack_peak is not None:
        total = fw.ram_needed(row.arena_used, row.stack_peak)
        return kb(total), "yes" if total <= fw.ram_size else "**does not fit**"
    arena = row.arena_used if row.arena_used is not None else row.plan.arena_size
    return f"≥ {kb(fw.static_ram + arena)}", "**does not fit**" if row.too_large else "not run"


def print_tables(fw: FirmwareMemory, info: DeviceInfo, rows: list[Row], steps: int) -> None:
    print("### Firmware build (build-arm/tinytrain_an386.map)\n")
    print("| flash: text+rodata+data | static RAM: data+bss | stack reserved | arena: the rest "
          "| RAM |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {fw.flash:,} B | {fw.static_ram:,} B | {fw.stack_size:,} B | "
          f"{fw.arena_capacity:,} B | {fw.ram_size // KB} KB |")
    print(f"\n### Training plans on Cortex-M4F (QEMU mps2-an386, -icount shift=0, "
          f"firmware {info.firmware}, {steps} steps each)\n")
    print("- instructions/step: mean cost of the training steps (exact to ±40, one SysTick tick)")
    print("- plan: the plan file in the plan store (flash: frozen weights, tables)")
    print("- planned arena: the compiler's; arena+tables: what the device needs for it (INFO "
          "arena_used, or its refusal)")
    print("- stack: the painted stack's high-water mark after upload and training (INFO "
          "stack_peak)")
    print("- RAM total: static RAM + arena+tables + measured stack, against "
          f"{fw.ram_size // KB} KB; ≥: not run, a lower bound (no stack; no tables when the "
          "planned arena alone is too large to upload)")
    fused = {r.case.model: len(r.plan.meta.get("fusions", [])) for r in rows
             if r.case.model in PAPER and "99kb" in r.case.update}
    print("- fused pointwise+depthwise pairs (compiler/fuse.py) in the 99kb plans: "
          + ", ".join(f"{k} {n}" for k, n in fused.items()) + "\n")
    print("| model | input | update | instructions/step | plan KB | planned arena KB | "
          "arena+tables KB | stack B | RAM total KB | fits 256 KB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cost = f"{statistics.mean(r.costs):,.0f}" if r.costs else "not run"
        stack = "—" if r.stack_peak is None else f"{r.stack_peak:,}"
        total, verdict = ram_total(fw, r)
        print(f"| {r.case.model} | {r.input} | {r.case.update} | {cost} | {kb(r.plan_bytes)} | "
              f"{kb(r.plan.arena_size)} | {kb(r.arena_used)} | {stack} | {total} | {verdict} |")
    refused = [r for r in rows if r.refused]
    if refused:
        print("\nwhy the device did not run:\n")
        for r in refused:
            print(f"- {r.case.model} {r.input} {r.case.update}: {r.refused}")
    print_budget(fw, [r for r in rows if r.case.model in PAPER and "99kb" in r.case.update])


def print_budget(fw: FirmwareMemory, rows: list[Row]) -> None:
    """The issue's criterion: static RAM + arena + measured stack of the Cortex-M4F build."""
    print(f"\n### {fw.ram_size // KB} KB budget: the paper models with their 99kb schemes\n")
    print("| model | input | update | static RAM KB | arena+tables KB | measured stack KB | "
          f"total KB | ≤ {fw.ram_size // KB} KB |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        total, verdict = ram_total(fw, r)
        stack = "—" if r.stack_peak is None else kb(r.stack_peak)
        print(f"| {r.case.model} | {r.input} | {r.case.update} | {kb(fw.static_ram)} | "
              f"{kb(r.arena_used)} | {stack} | {total} | {verdict} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="training steps per plan (default 2)")
    ap.add_argument("--input-size", type=int, default=128, help="paper models (default 128)")
    ap.add_argument("--reduced-size", type=int, default=0,
                    help="also the paper models at this input size (default: no)")
    args = ap.parse_args()
    elf = find_qemu_elf()
    fw = read_map(map_path(elf))
    device = connect("qemu")
    try:
        info = device.info()
    finally:
        device.close()
    if info.stack_peak is None:
        sys.exit(f"{elf} reports no stack_peak: rebuild it with `make qemu`")
    if info.arena_capacity != fw.arena_capacity:  # figures count only where both agree
        sys.exit(f"{elf} reports an arena of {info.arena_capacity} B, its map file "
                 f"{fw.arena_capacity} B: rebuild with `make qemu`")
    todo = cases(args)
    rows = []
    for k, case in enumerate(todo, 1):
        t0 = time.monotonic()
        print(f"[{k}/{len(todo)}] {case.model}, {case.update} ...", end="", file=sys.stderr,
              flush=True)
        row = run(case, info.arena_capacity, args.steps)
        status = (f"{statistics.mean(row.costs):,.0f} instructions/step" if row.costs else
                  f"{'does not fit' if row.too_large else 'not run'} ({row.refused})")
        print(f" {row.input}: {status} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        rows.append(row)
    print_tables(fw, info, rows, args.steps)


if __name__ == "__main__":
    main()
