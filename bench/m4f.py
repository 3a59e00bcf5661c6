"""Training plans on the Cortex-M4F firmware in QEMU mps2-an386: what each needs of the build's
256 KB of SRAM (static RAM + arena + plan tables in RAM + measured stack), beside the paper's
figure, and instructions per step. Prints markdown tables.

    make qemu && .venv/bin/python bench/m4f.py [--steps 1] [--input-size 128] [--jobs 2]
                                               [--models demo,mcunet-5fps] [--schemes 99kb]

Plans: the demo model (full, last:1, bias-only), and each of the paper's int8 models
(mcunet-5fps, mbv2-w0.35, proxyless-w0.3, ../shared/data/mcu_models/) with each sparse-update
scheme shipped for it in sparse_schemes.json (49 KB ... 148 KB), at --input-size. The int8 update
rule is the default, auto, judged against this build's arena (`tinyhost compile --board
mps2_an386`): master (f32 copies of the trained channels, the more accurate) where that plan fits,
round (the paper's in-place int8 update) where it does not.

Each plan runs on a freshly booted firmware (`--port qemu`, -icount shift=0: costs are instruction
counts, the same on every run to one SysTick tick, 40 instructions), so the stack high-water mark
INFO reports (`stack_peak`: the stack is painted at reset) is that plan's own: upload, --steps
training steps on random samples, INFO. Static RAM comes from the build's map file
(tinyhost.firmware_map); the arena and the tables' RAM from INFO (`arena_used`). Beside the
device's answer stands the compiler's verdict for the board (tinyhost.boards): they must agree. A
plan the compiler says does not fit is offered to the device all the same, which refuses it before
any byte is sent (INFO's arena_capacity, PLAN_BEGIN).

The speed table: MACs of a step counted from the plan (tinyhost.macs; forward, and loss +
backward + updates), instructions per step and per MAC, the time a step would take at the
STM32F746's 216 MHz if every instruction took one cycle (QEMU counts instructions, not cycles: a
lower bound, labelled so), and the ops that took the most instructions. Per-op costs come from
bench/plan_ops.c (built into build/arm like the kernel benches), which runs one step of the same
plan op by op under the same QEMU; the production firmware does not time single ops.

Run time: ~10 minutes with 2 jobs, mostly uploading the paper models' plans over the emulated
UART (~16 KiB/s) and compiling them at 128x128.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyhost.boards import BOARDS, board_fit
from tinyhost.compiler import CompileResult, compile_model, compile_tiny_training
from tinyhost.device import connect
from tinyhost.firmware_map import FirmwareMemory, map_path, read_map
from tinyhost.link.client import DeviceError
from tinyhost.link.qemu import find_qemu_elf
from tinyhost.macs import StepMacs, step_macs
from tinyhost.ops import Opcode
from tinyhost.plan import DType, Plan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernels import build_arm, qemu_cmd  # noqa: E402  (bench/kernels.py: the same QEMU harness)

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
PAPER_MODELS = REPO.parent / "shared" / "data" / "mcu_models"
SCHEMES = PAPER_MODELS / "sparse_schemes.json"
PAPER = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")
BOARD = BOARDS["mps2_an386"]
KB = 1024
CLOCK_HZ = 216_000_000  # the STM32F746 the paper measured on
OPS_TARGET = "bench_plan_ops_an386"
OPS_BUILD = REPO / "build" / "arm"
# The paper's own figures (Lin et al., "On-Device Training Under 256KB Memory", NeurIPS 2022), as
# issue 11 quotes them: the peak SRAM measured on its STM32F746 with TinyEngine and sparse update.
PAPER_FIGURE = {
    "mcunet-5fps": "206 (measured, VWW)",
    "mbv2-w0.35": "141 (measured)",
    "proxyless-w0.3": "< 256 (no figure)",
}


@dataclass(frozen=True)
class Case:
    model: str
    update: str       # --update: full, last:1, bias-only, or a scheme's budget key (99kb)
    input_size: int   # paper models


@dataclass
class Row:
    case: Case
    input: str = ""
    rule: str = ""            # int8 update rule the compile chose ("" for fp32)
    plan_bytes: int = 0
    arena: int = 0            # the plan's arena
    compiler_fits: bool = False
    costs: list[int] = field(default_factory=list)  # instructions per training step
    arena_used: int | None = None  # INFO: arena + the tables' RAM
    stack_peak: int | None = None
    refused: str = ""         # the device's (or the host's pre-upload) refusal
    bytes_sent: int = 0       # plan bytes sent before a refusal
    seconds: float = 0.0
    macs: StepMacs | None = None
    op_costs: list[tuple[int, int, str]] = field(default_factory=list)  # (op, cost, opcode name)
    ops_note: str = ""        # why there are no per-op costs


def cases(input_size: int, only: set[str] | None = None) -> list[Case]:
    """The demo's three updates and every scheme of each paper model (only: those scheme keys)."""
    out = [Case("demo", u, 0) for u in ("full", "last:1", "bias-only")]
    schemes = json.loads(SCHEMES.read_text())
    for model in PAPER:
        out += [Case(model, key, input_size)
                for key in sorted(schemes[model], key=lambda k: int(k.rstrip("kb")))
                if only is None or key in only]
    return out


def compile_case(case: Case) -> CompileResult:
    if case.model == "demo":
        return compile_model(DEMO_MODEL, update=case.update)
    return compile_tiny_training(PAPER_MODELS / f"{case.model}.pkl", 10,
                                 update=f"{SCHEMES}:{case.model}:{case.update}",
                                 input_size=case.input_size, int8_update="auto",
                                 budget=BOARD.arena_capacity())


def sample(plan: Plan, rng: np.random.Generator) -> np.ndarray:
    """Random input: the cost of a step does not depend on what the sample shows."""
    t = plan.tensors[plan.bindings.input]
    if t.dtype == DType.S8:
        return rng.integers(-128, 128, t.numel, dtype=np.int8)
    return rng.standard_normal(t.numel).astype(np.float32)


def run(case: Case, steps: int) -> Row:
    t0 = time.monotonic()
    result = compile_case(case)
    plan = result.plan
    row = Row(case, "x".join(str(d) for d in plan.tensors[plan.bindings.input].shape),
              plan.meta.get("int8_update", ""), len(result.data), plan.arena_size,
              board_fit(plan, BOARD).fits)
    row.macs = step_macs(plan)
    row.op_costs, row.ops_note = op_costs(result.data)
    device = connect("qemu")  # a fresh boot: the stack high-water mark starts from reset
    try:
        sent: list[int] = []
        try:
            device.load_plan(plan, result.data, sent.append)
        except DeviceError as e:
            row.refused, row.bytes_sent = e.message, sum(sent)
            return row
        rng = np.random.default_rng(0)
        for _ in range(steps):
            row.costs.append(device.train_step(sample(plan, rng), 0, plan.default_lr).cost)
        info = device.info()
        row.arena_used, row.stack_peak = info.arena_used, info.stack_peak
    finally:
        device.close()
        row.seconds = time.monotonic() - t0
    return row


def op_costs(data: bytes) -> tuple[list[tuple[int, int, str]], str]:
    """(op index, instructions, opcode name) of one training step, from bench/plan_ops.c."""
    with tempfile.NamedTemporaryFile(suffix=".ttp") as f:
        f.write(data)
        f.flush()
        cmd = qemu_cmd(OPS_BUILD / f"{OPS_TARGET}.elf")
        cmd[cmd.index("enable=on,target=native,arg=bench")] += f",arg={f.name}"
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    rows = []
    for line in (out.stdout + out.stderr).splitlines():  # semihosting writes to either
        parts = line.split()
        if len(parts) == 4 and parts[0] == "op":
            rows.append((int(parts[1]), int(parts[3]), Opcode(int(parts[2])).name))
        elif line.startswith(("plan not loaded", "no arena")):
            return [], line.strip()
    return rows, "" if rows else (out.stdout + out.stderr).strip()[-120:]


def print_speed(rows: list[Row]) -> None:
    print("\n### Speed of a training step (Cortex-M4F in QEMU: instructions)\n")
    print("- MACs: counted from the plan's geometry (tinyhost.macs): forward; loss + backward + "
          "updates (a weight gradient of trained rows counts its whole layer)")
    print(f"- ms at {CLOCK_HZ // 1_000_000} MHz: instructions / {CLOCK_HZ // 1_000_000} MHz, "
          "assuming one instruction per cycle (a lower bound: QEMU counts instructions)")
    print("- top ops: by instructions in one step, from bench/plan_ops.c (the plan run op by op "
          "under the same QEMU)\n")
    print("| model | update | MACs fwd | MACs bwd | instructions/step | instr/MAC | "
          f"ms/step at {CLOCK_HZ // 1_000_000} MHz (1 instr/cycle) | top ops by instructions |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if not r.costs or r.macs is None:
            continue
        cost = statistics.mean(r.costs)
        update = r.case.update if r.case.model == "demo" else f"{r.case.update} scheme"
        if r.op_costs:
            total = sum(c for _, c, _ in r.op_costs)
            by_kind: dict[str, int] = {}
            for _, c, name in r.op_costs:
                by_kind[name] = by_kind.get(name, 0) + c
            top = sorted(by_kind.items(), key=lambda kv: -kv[1])[:3]
            tops = "; ".join(f"{name} {c / total:.0%}" for name, c in top)
        else:
            tops = f"— ({r.ops_note})" if r.ops_note else "—"
        print(f"| {r.case.model} | {update} | {r.macs.forward:,} | {r.macs.backward:,} | "
              f"{cost:,.0f} | {cost / max(r.macs.total, 1):.1f} | "
              f"{cost / CLOCK_HZ * 1000:.0f} | {tops} |")


def print_kinds(rows: list[Row], n: int) -> None:
    """Instructions per op kind of each paper-model plan: the n costliest kinds, then the rest."""
    paper = [r for r in rows if r.op_costs and r.case.model != "demo"]
    if not paper:
        return
    print("\n### Instructions per op kind (bench/plan_ops.c, one step)\n")
    print("| model | update | op kind | instructions | share |")
    print("|---|---|---|---:|---:|")
    for r in paper:
        total = sum(c for _, c, _ in r.op_costs)
        by_kind: dict[str, int] = {}
        for _, c, name in r.op_costs:
            by_kind[name] = by_kind.get(name, 0) + c
        ranked = sorted(by_kind.items(), key=lambda kv: -kv[1])
        rest = sum(c for _, c in ranked[n:])
        for name, c in ranked[:n] + ([("(the other kinds)", rest)] if rest else []):
            print(f"| {r.case.model} | {r.case.update} scheme | {name} | {c:,} | "
                  f"{c / total:.1%} |")
        print(f"| {r.case.model} | {r.case.update} scheme | **all** | {total:,} | 100% |")


def kb(n: float | None) -> str:
    return "—" if n is None else f"{n / KB:.1f}"


def total(fw: FirmwareMemory, r: Row) -> tuple[str, str]:
    """(RAM the plan needs on this build, whether it fits 256 KB). For a refused plan: a lower
    bound (static RAM + its arena, no stack)."""
    if r.arena_used is not None and r.stack_peak is not None:
        t = fw.ram_needed(r.arena_used, r.stack_peak)
        return kb(t), "yes" if t <= fw.ram_size else "**no**"
    return f"≥ {kb(fw.static_ram + r.arena)}", "**no**"


def agrees(r: Row) -> str:
    device_took = r.arena_used is not None
    if device_took == r.compiler_fits:
        return "yes" if device_took or r.bytes_sent == 0 else f"refused after {r.bytes_sent} B"
    return "**NO**"


def print_tables(fw: FirmwareMemory, firmware: str, rows: list[Row], steps: int) -> None:
    print("### Firmware build (build-arm/tinytrain_an386.map)\n")
    print("| flash: text+rodata+data | static RAM: data+bss | stack reserved | arena: the rest "
          "| RAM |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {fw.flash:,} B | {fw.static_ram:,} B | {fw.stack_size:,} B | "
          f"{fw.arena_capacity:,} B | {fw.ram_size // KB} KB |")
    print(f"\n### Training plans on Cortex-M4F (QEMU mps2-an386, -icount shift=0, firmware "
          f"{firmware}, {steps} step{'s' if steps > 1 else ''} each)\n")
    print("- rule: the int8 update rule `auto` chose against this build's arena (master where it "
          "fits, else round)")
    print("- arena + tables: INFO arena_used (the tables' RAM, if any, included); refused: the "
          "planned arena")
    print("- stack: the painted stack's high-water mark after upload and training (INFO "
          "stack_peak)")
    print(f"- total: static RAM {kb(fw.static_ram)} KB + arena + tables + measured stack, "
          f"against {fw.ram_size // KB} KB; ≥: refused, static RAM + arena")
    print("- compiler agrees: `tinyhost compile --board mps2_an386`'s verdict is the device's "
          "(and a refused plan was refused before any byte was sent)")
    print("- paper KB: the paper's measured peak SRAM for the model (its STM32F746, TinyEngine)\n")
    print("| model | input | update | rule | instructions/step | plan KB | arena + tables KB | "
          "stack KB | total KB | paper KB | fits 256 KB | compiler agrees |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|---|---|")
    for r in rows:
        cost = f"{statistics.mean(r.costs):,.0f}" if r.costs else "refused"
        t, fits = total(fw, r)
        update = r.case.update if r.case.model == "demo" else f"{r.case.update} scheme"
        paper = PAPER_FIGURE.get(r.case.model, "")
        print(f"| {r.case.model} | {r.input} | {update} | {r.rule or '—'} | {cost} | "
              f"{kb(r.plan_bytes)} | {kb(r.arena_used if r.arena_used is not None else r.arena)} "
              f"| {kb(r.stack_peak)} | {t} | {paper} | {fits} | {agrees(r)} |")
    refused = [r for r in rows if r.refused]
    if refused:
        print("\nwhy the device did not run:\n")
        for r in refused:
            print(f"- {r.case.model} {r.input} {r.case.update}: {r.refused}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1, help="training steps per plan (default 1)")
    ap.add_argument("--input-size", type=int, default=128, help="paper models (default 128)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="plans compiled and run at once, each in its own QEMU (default 2)")
    ap.add_argument("--models", default=",".join(("demo",) + PAPER),
                    help="comma list of models (default: all)")
    ap.add_argument("--schemes", default="",
                    help="comma list of the paper models' scheme keys to run, e.g. 99kb "
                         "(default: every scheme)")
    ap.add_argument("--kinds", type=int, default=8,
                    help="op kinds listed per paper-model plan in the per-kind table (default 8)")
    args = ap.parse_args()
    schemes = json.loads(SCHEMES.read_text())
    known = {k for m in PAPER for k in schemes[m]}
    only = {k for k in args.schemes.split(",") if k} or None
    if only is not None and not only <= known:
        sys.exit(f"--schemes: unknown key(s) {', '.join(sorted(only - known))}; the schemes are "
                 f"{', '.join(sorted(known, key=lambda k: int(k.rstrip('kb'))))}")
    elf = find_qemu_elf()
    fw = read_map(map_path(elf))
    device = connect("qemu")
    try:
        info = device.info()
    finally:
        device.close()
    if info.stack_peak is None:
        sys.exit(f"{elf} reports no stack_peak: rebuild it with `make qemu`")
    if info.arena_capacity != fw.arena_capacity or fw.arena_capacity != BOARD.arena_capacity():
        sys.exit(f"{elf} reports an arena of {info.arena_capacity} B, its map file "
                 f"{fw.arena_capacity} B, tinyhost.boards {BOARD.arena_capacity()} B: rebuild "
                 "with `make qemu`, or update boards.py from the map file")
    build_arm(OPS_BUILD, [OPS_TARGET])
    wanted = set(args.models.split(","))
    todo = [c for c in cases(args.input_size, only) if c.model in wanted]
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, case, args.steps) for case in todo]
        rows = []
        for k, fut in enumerate(futures, 1):
            row = fut.result()
            status = (f"{statistics.mean(row.costs):,.0f} instructions/step" if row.costs else
                      f"refused ({row.refused})")
            print(f"[{k}/{len(todo)}] {row.case.model} {row.case.update} {row.input} "
                  f"{row.rule}: {status} ({row.seconds:.0f} s)", file=sys.stderr, flush=True)
            rows.append(row)
    print(f"{len(rows)} plans in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    print_tables(fw, info.firmware, rows, args.steps)
    print_speed(rows)
    print_kinds(rows, args.kinds)


if __name__ == "__main__":
    main()
