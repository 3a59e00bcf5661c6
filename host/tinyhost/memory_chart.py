"""The lifetime chart of a plan's arena: every arena tensor a rectangle spanning the ops from the
one that first writes it to the one that last reads it (x) over its bytes in the arena (y), coloured
by kind, with the peak op, the arena's size and the budget marked."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyhost.compiler.report import (
    KIND_LABELS,
    MCU_SRAM_BYTES,
    MemoryReport,
    arena_lifetimes,
    tensor_kinds,
)
from tinyhost.plan import Plan

KIND_COLORS = {"activations": "tab:blue", "saved_for_backward": "tab:orange",
               "gradients": "tab:red", "trainable_params": "tab:green"}


@dataclass(frozen=True)
class Box:
    """One drawn rectangle: ops first..last (-1: written before the step, len(ops): read after it
    or kept across steps) by arena bytes [offset, offset + size)."""
    tensor: int
    name: str
    kind: str  # a KIND_LABELS key
    first: int
    last: int
    offset: int
    size: int


def chart_boxes(plan: Plan) -> list[Box]:
    """What the chart draws, from the same lifetimes and kinds as the memory report."""
    kinds = tensor_kinds(plan)
    return [Box(t, plan.tensors[t].name, kinds[t], lt.first, lt.last, plan.tensors[t].arena_offset,
                plan.tensors[t].nbytes)
            for t, lt in sorted(arena_lifetimes(plan).items())]


def draw_memory_chart(plan: Plan, report: MemoryReport, path: str | Path, title: str,
                      budget: int | None = None) -> list[Box]:
    """Writes the chart (PNG) and returns the boxes it drew. The budget line is --budget when
    given, else a 256 KB MCU for reference."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.artist import Artist
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    boxes = chart_boxes(plan)
    n_ops, kb = len(plan.ops), 1024
    fig, ax = plt.subplots(figsize=(14, 6.5))
    for kind in KIND_LABELS:
        rects = [Rectangle((b.first - 0.5, b.offset / kb), b.last - b.first + 1, b.size / kb)
                 for b in boxes if b.kind == kind]
        ax.add_collection(PatchCollection(rects, facecolor=KIND_COLORS[kind], edgecolor="white",
                                          linewidth=0.3, alpha=0.85))
    # Names on the rectangles big enough to carry one: the axes are ~1000 x 560 px, a 6 pt
    # character ~5.5 px wide and ~9 px tall.
    arena_kb = plan.arena_size / kb
    px_per_op = 1000 / (n_ops + 2)
    for b in boxes:
        width, height = b.last - b.first + 1, b.size / kb
        if height >= 0.025 * arena_kb and width * px_per_op >= 5.5 * len(b.name) + 4:
            ax.text(b.first - 0.5 + width / 2, (b.offset + b.size / 2) / kb, b.name, fontsize=6,
                    ha="center", va="center", clip_on=True)
    live_kb = sum(size for _, size in report.live_at_peak) / kb
    ax.axvline(report.peak_op, color="black", linestyle="--", linewidth=1)
    ax.axvline(plan.n_forward - 0.5, color="grey", linestyle=":", linewidth=0.8)
    ax.axhline(arena_kb, color="black", linewidth=1)
    limit = MCU_SRAM_BYTES if budget is None else budget
    ax.axhline(limit / kb, color="tab:purple", linestyle="-.", linewidth=1)
    handles: list[Artist] = [Patch(color=KIND_COLORS[k], label=label)
                             for k, label in KIND_LABELS.items()]
    handles += [
        plt.Line2D([], [], color="black", linestyle="--",
                   label=f"peak: op {report.peak_op} ({report.peak_op_name}), "
                         f"{live_kb:.1f} KB live"),
        plt.Line2D([], [], color="black", label=f"arena {arena_kb:.1f} KB"),
        plt.Line2D([], [], color="tab:purple", linestyle="-.",
                   label=f"budget {limit / kb:.1f} KB" if budget is not None else "a 256 KB MCU"),
        plt.Line2D([], [], color="grey", linestyle=":", label="forward | loss, backward, updates"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_xlim(-1.5, n_ops + 0.5)
    ax.set_ylim(0, max(arena_kb, limit / kb) * 1.03)
    ax.set_xlabel(f"op index (-1: before the step, {n_ops}: after it)")
    ax.set_ylabel("arena offset (KB)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return boxes
