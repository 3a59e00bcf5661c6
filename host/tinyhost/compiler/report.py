"""The memory report of a compiled plan: arena bytes by kind, the peak, and flash bytes."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tinyhost.plan import Plan, TensorKind

KIND_LABELS = {
    "activations": "activations (forward only)",
    "saved_for_backward": "saved for backward",
    "gradients": "gradients",
    "trainable_params": "trainable parameters",
}


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

    def to_dict(self) -> dict:
        return asdict(self)


def _classify(plan: Plan) -> dict[int, str]:
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


def memory_report(plan: Plan, plan_file_bytes: int) -> MemoryReport:
    kinds = _classify(plan)
    by_kind = {k: 0 for k in KIND_LABELS}
    for i, kind in kinds.items():
        by_kind[kind] += plan.tensors[i].nbytes
    # Live set per op: a tensor is live from its first write to its last read.
    n = len(plan.ops)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, op in enumerate(plan.ops):
        for t in op.inputs + op.outputs:
            if t in kinds:
                first.setdefault(t, k)
                last[t] = k
    for i in kinds:
        if plan.tensors[i].kind in (TensorKind.INPUT, TensorKind.LABEL, TensorKind.PARAM_TRAINABLE):
            first[i] = 0
        if plan.tensors[i].kind in (TensorKind.OUTPUT, TensorKind.PARAM_TRAINABLE):
            last[i] = n - 1
    live_bytes = [sum(plan.tensors[t].nbytes for t in kinds if first[t] <= k <= last[t])
                  for k in range(n)]
    peak = max(range(n), key=lambda k: live_bytes[k])
    live = sorted(((plan.tensors[t].name, plan.tensors[t].nbytes) for t in kinds
                   if first[t] <= peak <= last[t]), key=lambda x: -x[1])
    return MemoryReport(
        arena_bytes=plan.arena_size, by_kind=by_kind, peak_op=peak,
        peak_op_name=plan.ops[peak].opcode.name, live_at_peak=live,
        flash_bytes=plan_file_bytes,
        frozen_param_bytes=sum(t.nbytes for t in plan.tensors if t.kind == TensorKind.PARAM_FROZEN),
        n_ops=n, n_forward_ops=plan.n_forward,
        trainable_params=sum(plan.tensors[i].numel for i in plan.trainable))


def _kb(n: int) -> str:
    return f"{n / 1024:8.1f} KB"


def format_report(r: MemoryReport) -> str:
    lines = [f"ops: {r.n_forward_ops} forward, {r.n_ops - r.n_forward_ops} loss/backward/update; "
             f"{r.trainable_params} trainable parameters",
             f"arena (planned peak)      {_kb(r.arena_bytes)}"]
    for key, label in KIND_LABELS.items():
        lines.append(f"  {label:<24}{_kb(r.by_kind[key])}")
    lines.append("  (sizes by kind are summed before buffers are shared, so they can exceed the arena)")
    top = ", ".join(f"{name} {size}B" for name, size in r.live_at_peak[:6])
    lines.append(f"peak at op {r.peak_op} ({r.peak_op_name}): {top}")
    lines.append(f"flash (plan file)         {_kb(r.flash_bytes)}   "
                 f"frozen parameters {_kb(r.frozen_param_bytes).strip()}")
    return "\n".join(lines)
