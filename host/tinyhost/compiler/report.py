"""The memory report of a compiled plan: arena bytes by kind, the peak and what is live there, flash
bytes, and the plan judged against a memory budget (--budget, or a 256 KB MCU for reference)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tinyhost.boards import BOARDS, BoardFit, format_fit
from tinyhost.compiler.plan_memory import Lifetime, lifetimes
from tinyhost.plan import Plan, TensorKind

KIND_LABELS = {
    "activations": "activations (forward only)",
    "saved_for_backward": "saved for backward",
    "gradients": "gradients",
    "trainable_params": "trainable parameters",
}
MCU_SRAM_BYTES = 256 * 1024  # the paper's target MCU; plans without --budget are judged against it


@dataclass
class MemoryReport:
    arena_bytes: int
    by_kind: dict[str, int]          # sum of tensor sizes per kind (before buffer sharing)
    peak_op: int                     # op index where the most bytes are live
    peak_op_name: str
    live_at_peak: list[tuple[str, int]] = field(default_factory=list)
    flash_bytes: int = 0             # the whole plan file, kept in flash on a device
    frozen_param_bytes: int = 0
    n_ops: int = 0
    n_forward_ops: int = 0
    trainable_params: int = 0        # count of trainable scalars
    live_at_peak_by_kind: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tensor_kinds(plan: Plan) -> dict[int, str]:
    """The KIND_LABELS key of every arena tensor (the report's sums and the chart's colours)."""
    backward_start = plan.n_forward + 1  # after the loss op
    used_in_backward = {t for op in plan.ops[backward_start:] for t in op.inputs}
    kinds = {}
    for i, t in enumerate(plan.tensors):
        if not t.in_arena:
            continue
        if t.kind == TensorKind.PARAM_TRAINABLE:
            kinds[i] = "trainable_params"
        elif t.kind == TensorKind.GRADIENT:
            kinds[i] = "gradients"
        elif i in used_in_backward:
            kinds[i] = "saved_for_backward"
        else:
            kinds[i] = "activations"
    return kinds


def arena_lifetimes(plan: Plan) -> dict[int, Lifetime]:
    """Each arena tensor's span, first -1 (written before the step) to last len(ops) (read after
    it or kept across steps): the planner's own lifetimes, read back from the plan."""
    return {t: lt for t, lt in lifetimes(plan).items() if plan.tensors[t].in_arena}


def memory_report(plan: Plan, plan_file_bytes: int) -> MemoryReport:
    kinds = tensor_kinds(plan)
    by_kind = {k: 0 for k in KIND_LABELS}
    for i, kind in kinds.items():
        by_kind[kind] += plan.tensors[i].nbytes
    n = len(plan.ops)
    lives = arena_lifetimes(plan)
    live_bytes = [sum(plan.tensors[t].nbytes for t, lt in lives.items() if lt.first <= k <= lt.last)
                  for k in range(n)]
    peak = max(range(n), key=lambda k: live_bytes[k])
    at_peak = [t for t, lt in lives.items() if lt.first <= peak <= lt.last]
    live = sorted(((plan.tensors[t].name, plan.tensors[t].nbytes) for t in at_peak),
                  key=lambda x: -x[1])
    peak_by_kind = {k: sum(plan.tensors[t].nbytes for t in at_peak if kinds[t] == k)
                    for k in KIND_LABELS}
    return MemoryReport(
        arena_bytes=plan.arena_size, by_kind=by_kind, peak_op=peak,
        peak_op_name=plan.ops[peak].opcode.name, live_at_peak=live,
        flash_bytes=plan_file_bytes,
        frozen_param_bytes=sum(t.nbytes for t in plan.tensors if t.kind == TensorKind.PARAM_FROZEN),
        n_ops=n, n_forward_ops=plan.n_forward,
        trainable_params=sum(plan.tensors[i].numel for i in plan.trainable),
        live_at_peak_by_kind=peak_by_kind)


def _kb(n: int) -> str:
    return f"{n / 1024:8.1f} KB"


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB"


def budget_status(r: MemoryReport, budget: int | None) -> dict[str, Any]:
    """The plan against --budget when given (enforced: compile fails over it), else against a
    256 KB MCU (only said)."""
    limit = MCU_SRAM_BYTES if budget is None else budget
    over = max(0, r.arena_bytes - limit)
    return {"bytes": limit, "enforced": budget is not None, "fits": over == 0, "over_by": over}


def format_budget(r: MemoryReport, budget: int | None) -> str:
    """Fits the budget (or the 256 KB reference) with so much to spare, or by how much not."""
    b = budget_status(r, budget)
    what = f"--budget {_size(b['bytes'])}" if b["enforced"] else "a 256 KB MCU"
    if b["fits"]:
        return f"fits {what}, {_size(b['bytes'] - r.arena_bytes)} to spare"
    msg = f"exceeds {what} by {_size(b['over_by'])} ({b['over_by']} bytes)"
    return msg if b["enforced"] else msg + "; compiled anyway (--budget makes this an error)"


def format_peak(r: MemoryReport, top: int = 6) -> str:
    """Where the peak is and what makes it: the op, the live bytes by kind, the largest tensors."""
    live = sum(size for _, size in r.live_at_peak)
    kinds = ", ".join(f"{k.replace('_', ' ')} {_size(n)}"
                      for k, n in sorted(r.live_at_peak_by_kind.items(), key=lambda kn: -kn[1])
                      if n)
    lines = [f"peak at op {r.peak_op} of {r.n_ops} ({r.peak_op_name}): {_size(live)} live in "
             f"{len(r.live_at_peak)} tensors",
             f"  by kind: {kinds}",
             "  largest:"]
    lines += [f"    {name:<38}{_kb(size)}" for name, size in r.live_at_peak[:top]]
    if len(r.live_at_peak) > top:
        rest = r.live_at_peak[top:]
        lines.append(f"    ... {len(rest)} more, {_size(sum(size for _, size in rest))}")
    return "\n".join(lines)


def format_over_budget(r: MemoryReport, budget: int, top: int = 4) -> str:
    """The error of a plan that does not fit --budget: by how much, and what is live at the peak
    (compact: the report above it lists more)."""
    largest = ", ".join(f"{name} {_size(size)}" for name, size in r.live_at_peak[:top])
    live = sum(size for _, size in r.live_at_peak)
    return (f"the plan does not fit: its planned arena is {_size(r.arena_bytes)} and "
            f"{format_budget(r, budget)}; at the peak, op {r.peak_op} ({r.peak_op_name}), "
            f"{_size(live)} is live in {len(r.live_at_peak)} tensors, the largest {largest}")


def format_no_board() -> str:
    """What the verdict without --board assumes."""
    return ("  (no --board: the planned arena alone is judged; --board "
            f"{'|'.join(BOARDS)} also counts the plan tables, static RAM and stack)")


def format_report(r: MemoryReport, budget: int | None = None, fit: BoardFit | None = None) -> str:
    """The report; with a board's fit (--board) its verdict replaces the arena-alone one."""
    verdict = "(the whole plan on the board: below)" if fit else format_budget(r, budget)
    lines = [f"ops: {r.n_forward_ops} forward, {r.n_ops - r.n_forward_ops} loss/backward/update; "
             f"{r.trainable_params} trainable parameters",
             f"arena (planned peak)      {_kb(r.arena_bytes)}   {verdict}"]
    if fit is None:
        lines.append(format_no_board())
    for key, label in KIND_LABELS.items():
        lines.append(f"  {label:<24}{_kb(r.by_kind[key])}")
    lines.append("  (sizes by kind are summed before buffers are shared, so they can exceed the "
                 "arena)")
    lines.append(format_peak(r))
    lines.append(f"flash (plan file)         {_kb(r.flash_bytes)}   "
                 f"frozen parameters {_kb(r.frozen_param_bytes).strip()}")
    if fit is not None:
        lines.append(format_fit(fit))
    return "\n".join(lines)


def format_over_board(r: MemoryReport, fit: BoardFit, top: int = 4) -> str:
    """The error of a plan that does not fit its board (--board with --budget)."""
    largest = ", ".join(f"{name} {_size(size)}" for name, size in r.live_at_peak[:top])
    return (f"the plan does not fit {fit.board} with {_size(fit.ram)} of SRAM: it needs an arena "
            f"of {fit.arena} bytes + {fit.tables} for its tables, the device has "
            f"{fit.arena_capacity} ({-fit.spare} bytes over); at the peak, op {r.peak_op} "
            f"({r.peak_op_name}), the largest tensors are {largest}")
