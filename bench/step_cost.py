"""Instructions per training step and per op of the C runtime, counted by callgrind on the host
build (repeatable: the same binary and inputs give the same counts, whatever the machine load).

    .venv/bin/python bench/step_cost.py [PLAN.ttp ...] [--steps 3]
    .venv/bin/python bench/step_cost.py --paper [--input-size 128]

Without plans it compiles the demo model (full update, last layer, bias only); --paper compiles
the paper's two int8 models with their 99kb schemes and with the head only (last:1). Builds an
unsanitized -O2 runtime into build-bench/ (ASan would distort the counts). Prints markdown tables.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build-bench"
RUNNER = BUILD / "firmware" / "ports" / "posix" / "tinytrain_run"
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"
PAPER_MODELS = REPO.parent / "shared" / "data" / "mcu_models"


def build_runner(target: str = "tinytrain_run") -> None:
    """The unsanitized -O2 host build of `target` in build-bench/ (also bench/transfer.py's
    tinytrain_sim: ASan makes the sim ~10x slower)."""
    subprocess.run(["cmake", "-S", str(REPO), "-B", str(BUILD),
                    f"-DPython3_EXECUTABLE={sys.executable}",
                    "-DTT_SANITIZE=OFF", "-DCMAKE_BUILD_TYPE=Release"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(BUILD), "-j2", "--target", target], check=True,
                   stdout=subprocess.DEVNULL)


def callgrind(plan: Path, steps: int) -> dict[str, int]:
    """Inclusive instruction counts per function for `steps` training steps (both runs of the
    runner's arena check are included; the per-step figures divide by their total)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        str(RUNNER), str(plan), "--steps", str(steps)],
                       check=True, capture_output=True)
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                               str(out)], check=True, capture_output=True, text=True).stdout
    counts: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*:(\w+)", line) or \
            re.match(r"\s*([\d,]+)\s+\S*:(\w+)", line)
        if m:
            counts[m[2]] = max(counts.get(m[2], 0), int(m[1].replace(",", "")))
    return counts


def per_op(counts: dict[str, int], calls: int) -> dict[str, float]:
    ops: dict[str, float] = defaultdict(float)
    for fn, n in counts.items():
        if fn.startswith("tt_") and fn.endswith(("_f32", "_s8")) and fn != "tt_exec_ops":
            ops[fn[3:]] += n / calls
    return dict(sorted(ops.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plans", nargs="*", type=Path)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--paper", action="store_true", help="the paper's int8 models instead")
    ap.add_argument("--input-size", type=int, default=128, help="with --paper (default 128)")
    args = ap.parse_args()
    build_runner()
    plans: list[tuple[str, Path]] = [(p.stem, p) for p in args.plans]
    tmp = Path(tempfile.mkdtemp())
    if args.paper:
        from tinyhost.compiler import compile_tiny_training
        for model in ("mcunet-5fps", "mbv2-w0.35"):
            scheme = f"{PAPER_MODELS / 'sparse_schemes.json'}:{model}:99kb"
            for label, update in (("99kb scheme", scheme), ("last:1", "last:1")):
                path = tmp / f"{model}-{label.split()[0].replace(':', '')}.ttp"
                # rule round: the paper's in-place int8 update (masters would not fit 256 KB)
                path.write_bytes(compile_tiny_training(PAPER_MODELS / f"{model}.pkl", 10,
                                                       update=update,
                                                       input_size=args.input_size,
                                                       int8_update="round").data)
                plans.append((f"{model} {args.input_size}x{args.input_size}, {label}", path))
    elif not plans:
        from tinyhost.compiler import compile_model
        for update in ("full", "last:1", "bias-only"):
            path = tmp / f"demo-{update.replace(':', '')}.ttp"
            path.write_bytes(compile_model(DEMO_MODEL, update=update, lr=0.05).data)
            plans.append((f"demo, {update}", path))
    print(f"instructions per training step (callgrind, host x86-64 -O2 build, {args.steps} "
          "steps)\n")
    print("| plan | instructions / step |")
    print("|---|---:|")
    op_tables = []
    for name, path in plans:
        counts = callgrind(path, args.steps)
        calls = 2 * args.steps  # the runner trains twice (two fill patterns)
        step = counts.get("tt_exec_train_step", 0) / calls
        print(f"| {name} | {step:,.0f} |")
        op_tables.append((name, per_op(counts, calls)))
    for name, ops in op_tables:
        print(f"\nper op, {name}\n")
        print("| kernel | instructions / step |")
        print("|---|---:|")
        for op, n in ops.items():
            print(f"| {op} | {n:,.0f} |")


if __name__ == "__main__":
    main()
