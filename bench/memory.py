"""Planned training memory of the paper's int8 models, per update scheme: markdown tables.

    .venv/bin/python bench/memory.py [--models DIR] [--input-size 128] [--int8-update round]

For each model in DIR (tiny-training .pkl files; default ../shared/data/mcu_models) and each
update: full, the head only (last:1), bias-only, every shipped sparse scheme of the model
(sparse_schemes.json), and the 99kb scheme and full update without operator reordering (every
update after the whole backward pass). Columns: the planned peak arena (what the device needs for
tensors: activations, saved masks and inputs, gradients, trainable state), its ratio to the 99kb
scheme's, whether it fits a 256 KB MCU, the trainable state in the arena (int8 rows, int32 biases,
masters, the fp32 head), and the plan file (flash: frozen weights, tables). A second table gives
the paper's two ratios per model. Compiling only: nothing runs.

The figures come from the compiler's MemoryReport; this file only picks the updates and divides,
and tests/host/test_int8_memory.py guards the ratios through `measure` and `paper_ratios`.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from tinyhost.compiler import CompileResult, compile_tiny_training  # noqa: E402
from tinyhost.compiler.report import MCU_SRAM_BYTES  # noqa: E402

DEFAULT_MODELS = REPO.parent / "shared" / "data" / "mcu_models"
REFERENCE = "scheme 99kb"  # the sparse plan every ratio divides by
FULL, FULL_NO_REORDER = "full", "full, no reordering"
# The paper (Fig. 10 / Sec. 4.3): sparse update alone saves 7-9x against full update, and with
# operator reordering against full update without it about 20x.
PAPER_RATIOS = {"full / 99kb": (FULL, "7-9x"), "full no reorder / 99kb": (FULL_NO_REORDER, "~20x")}


@dataclass(frozen=True)
class Update:
    label: str
    update: str  # the --update value
    reorder: bool = True


@dataclass(frozen=True)
class Row:
    model: str
    label: str
    arena_bytes: int      # planned peak arena
    trainable_bytes: int  # trainable state in the arena
    flash_bytes: int      # the plan file

    def cells(self, reference: Row | None) -> list[str]:
        ratio = f"{self.arena_bytes / reference.arena_bytes:.1f}x" if reference else "-"
        fits = "yes" if self.arena_bytes <= MCU_SRAM_BYTES else "no"
        return [self.model, self.label, f"{self.arena_bytes / 1024:.1f}", ratio, fits,
                f"{self.trainable_bytes / 1024:.1f}", f"{self.flash_bytes / 1024:.1f}"]


HEADER = ["model", "update", "arena KB", "vs 99kb", "fits 256 KB", "trainable KB", "flash KB"]


def updates_for(pkl: Path, budgets: list[str]) -> list[Update]:
    """Every update of the table for one model; budgets are its shipped schemes' keys."""
    scheme = f"{pkl.parent / 'sparse_schemes.json'}:{pkl.stem}"
    updates = [Update(FULL, "full"), Update(FULL_NO_REORDER, "full", False),
               Update("last:1 (head only)", "last:1"), Update("bias-only", "bias-only")]
    for budget in budgets:
        updates.append(Update(f"scheme {budget}", f"{scheme}:{budget}"))
        if budget == "99kb":
            updates.append(Update("scheme 99kb, no reordering", f"{scheme}:99kb", False))
    return updates


def ratio_updates(pkl: Path) -> list[Update]:
    """The three plans paper_ratios needs (what the tests compile)."""
    return [u for u in updates_for(pkl, ["99kb"]) if u.label in (FULL, FULL_NO_REORDER, REFERENCE)]


def measure(pkl: Path, updates: list[Update], input_size: int | None = None,
            int8_update: str = "round", num_classes: int = 10,
            compile_fn: Callable[..., CompileResult] = compile_tiny_training) -> list[Row]:
    rows = []
    for u in updates:
        r = compile_fn(pkl, update=u.update, num_classes=num_classes, input_size=input_size,
                       int8_update=int8_update, reorder=u.reorder).report
        rows.append(Row(pkl.stem, u.label, r.arena_bytes, r.by_kind["trainable_params"],
                        r.flash_bytes))
    return rows


def paper_ratios(rows: list[Row]) -> dict[str, float]:
    """One model's rows -> the paper's ratios: full update / the 99kb scheme (sparse update), and
    full update without reordering / the 99kb scheme with it (sparse update and reordering)."""
    arena = {r.label: r.arena_bytes for r in rows}
    return {name: arena[label] / arena[REFERENCE] for name, (label, _) in PAPER_RATIOS.items()}


def _table(header: list[str], rows: list[list[str]], text_columns: int) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header)))
             + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS,
                    help="directory of .pkl models and sparse_schemes.json (default "
                         f"{DEFAULT_MODELS})")
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
    print(f"int8 update rule: {args.int8_update}; input "
          f"{args.input_size or 'native (128)'}; {args.num_classes}-class fp32 head\n")
    table, ratios = [], []
    for pkl in pkls:
        rows = measure(pkl, updates_for(pkl, list(schemes.get(pkl.stem, {}))), args.input_size,
                       args.int8_update, args.num_classes)
        reference = next((r for r in rows if r.label == REFERENCE), None)
        table += [r.cells(reference) for r in rows]
        if reference:
            ratios.append([pkl.stem] + [f"{v:.1f}x" for v in paper_ratios(rows).values()])
    print(_table(HEADER, table, 2))
    if ratios:
        print()
        print(_table(["model"] + [f"{name} (paper {paper})"
                                  for name, (_, paper) in PAPER_RATIOS.items()], ratios, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
