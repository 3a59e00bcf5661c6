"""The memory report of a compiled plan: arena bytes by kind, the peak and what is live there, flash
bytes, and the plan judged against a memory budget (--budget, or a 256 KB MCU for reference)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tinyhost.boards import BOARDS, BoardFit, format_fit
from tinyhost.compiler.optim import STATE_PREFIX
from tinyhost.compiler.plan_memory import Lifetime, lifetimes
from tinyhost.ops import Opcode
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
    # --momentum / --accumulate (compiler/optim.py): None without optimizer state
    optimizer: dict[str, Any] | None = None

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


def optimizer_cost(plan: Plan) -> dict[str, Any] | None:
    """What the optimizer state costs: persistent bytes (velocity, gradient sums, phase) and the
    weight gradients the updates now read whole (an int8 plan fuses them away otherwise)."""
    opt = plan.meta.get("optimizer")
    if not opt:
        return None
    state = {"velocity": 0, "grad_sum": 0, "phase": 0}
    for t in plan.tensors:
        if t.name.startswith(STATE_PREFIX) and t.kind == TensorKind.PARAM_TRAINABLE:
            kind = t.name.rpartition(".")[2] if "." in t.name else "phase"
            state[kind if kind in state else "phase"] += t.nbytes
    grads = {op.inputs[0] for op in plan.ops if op.opcode == Opcode.OPTIM_STEP_F32}
    sizes = sorted((plan.tensors[g].nbytes for g in grads), reverse=True)
    return {**opt, "int8": "scheme" in plan.meta, "state_bytes": sum(state.values()),
            **{f"{k}_bytes": v for k, v in state.items()},
            "weight_grad_bytes": sum(sizes), "largest_weight_grad_bytes": sizes[0] if sizes else 0}


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
        trainable_params=sum(plan.tensors[i].numel for i in plan.trainable
                             if not plan.tensors[i].name.startswith(STATE_PREFIX)),
        live_at_peak_by_kind=peak_by_kind, optimizer=optimizer_cost(plan))


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
    if r.optimizer is not None:
        lines.append(format_optimizer(r.optimizer))
    lines.append(f"flash (plan file)         {_kb(r.flash_bytes)}   "
                 f"frozen parameters {_kb(r.frozen_param_bytes).strip()}")
    if fit is not None:
        lines.append(format_fit(fit))
    return "\n".join(lines)


def format_optimizer(o: dict[str, Any]) -> str:
    """The optimizer state's line: what it is and what it costs."""
    what = []
    if o["momentum"]:
        what.append(f"momentum {o['momentum']:g}")
    if o["accumulate"] > 1:
        what.append(f"accumulate {o['accumulate']} (an update every {o['accumulate']} samples, "
                    "their mean gradient)")
    parts = [f"velocity {_size(o['velocity_bytes'])}" if o["velocity_bytes"] else "",
             f"gradient sums {_size(o['grad_sum_bytes'])}" if o["grad_sum_bytes"] else "",
             f"step phase {_size(o['phase_bytes'])}" if o["phase_bytes"] else ""]
    fused = ("the fused gradient-and-update ops (CONV2D_S8_SGD_F32, LINEAR_SGD_F32), which "
             "never store a weight gradient, are not used" if o.get("int8") else
             "an fp32 plan stores them anyway")
    return (f"optimizer state: {', '.join(what)}\n"
            f"  persistent (in trainable parameters above) {_size(o['state_bytes'])}: "
            f"{', '.join(p for p in parts if p)} (one f32 per trained element each)\n"
            f"  weight gradients read whole by the updates {_size(o['weight_grad_bytes'])} "
            f"(largest {_size(o['largest_weight_grad_bytes'])}, live during its layer's "
            f"backward): {fused}")


def format_over_board(r: MemoryReport, fit: BoardFit, top: int = 4) -> str:
    """The error of a plan that does not fit its board (--board with --budget)."""
    largest = ", ".join(f"{name} {_size(size)}" for name, size in r.live_at_peak[:top])
    return (f"the plan does not fit {fit.board} with {_size(fit.ram)} of SRAM: it needs an arena "
            f"of {fit.arena} bytes + {fit.tables} for its tables, the device has "
            f"{fit.arena_capacity} ({-fit.spare} bytes over); at the peak, op {r.peak_op} "
            f"({r.peak_op_name}), the largest tensors are {largest}")
