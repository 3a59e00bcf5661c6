"""Planned training memory of the paper's int8 models, per update scheme: a markdown table.

    .venv/bin/python bench/memory.py [--models DIR] [--input-size 128] [--int8-update round]

For each model in DIR (tiny-training .pkl files; default ../shared/data/mcu_models) and each
update: full, the head only (last:1), bias-only, every shipped sparse scheme of the model
(sparse_schemes.json), and the 99kb scheme and full update without operator reordering (every
update after the whole backward pass). Columns: the planned peak arena (what the device needs for
tensors: activations, saved masks and inputs, gradients, trainable state), its ratio to the 99kb
scheme's, the trainable state in the arena (int8 rows, int32 biases, masters, the fp32 head), and
the plan file (flash: frozen weights, tables). Compiling only: nothing runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from tinyhost.compiler import compile_tiny_training  # noqa: E402

DEFAULT_MODELS = REPO.parent / "shared" / "data" / "mcu_models"


def rows_for(pkl: Path, schemes: dict, size: int | None, rule: str, classes: int) -> list[list[str]]:
    model = pkl.stem
    schemes_file = pkl.parent / "sparse_schemes.json"
    updates = [("full", "full", True), ("full, no reordering", "full", False),
               ("last:1 (head only)", "last:1", True), ("bias-only", "bias-only", True)]
    for budget in schemes.get(model, {}):
        updates.append((f"scheme {budget}", f"{schemes_file}:{model}:{budget}", True))
        if budget == "99kb":
            updates.append(("scheme 99kb, no reordering", f"{schemes_file}:{model}:99kb", False))
    results = {}
    for label, update, reorder in updates:
        results[label] = compile_tiny_training(pkl, classes, update=update, input_size=size,
                                               int8_update=rule, reorder=reorder)
    ref = results.get("scheme 99kb")
    out = []
    for label, r in results.items():
        plan = r.plan
        trainable = sum(plan.tensors[i].nbytes for i in plan.trainable)
        ratio = f"{plan.arena_size / ref.plan.arena_size:.1f}x" if ref else "-"
        out.append([model, label, f"{plan.arena_size / 1024:.1f}", ratio,
                    f"{trainable / 1024:.1f}", f"{len(r.data) / 1024:.1f}"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS,
                    help=f"directory of .pkl models and sparse_schemes.json (default {DEFAULT_MODELS})")
    ap.add_argument("--input-size", type=int, help="input resolution (default: the model's, 128)")
    ap.add_argument("--int8-update", choices=("round", "master"), default="round")
    ap.add_argument("--num-classes", type=int, default=10)
    args = ap.parse_args()
    pkls = sorted(args.models.glob("*.pkl"))
    if not pkls:
        print(f"no .pkl models in {args.models}", file=sys.stderr)
        return 2
    schemes_path = args.models / "sparse_schemes.json"
    schemes = json.loads(schemes_path.read_text()) if schemes_path.is_file() else {}
    header = ["model", "update", "arena KB", "vs 99kb", "trainable KB", "flash KB"]
    print(f"int8 update rule: {args.int8_update}; input "
          f"{args.input_size or 'native (128)'}; {args.num_classes}-class fp32 head\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    for pkl in pkls:
        for row in rows_for(pkl, schemes, args.input_size, args.int8_update, args.num_classes):
            print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
