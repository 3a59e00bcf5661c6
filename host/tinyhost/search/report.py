"""What `tinyhost search` prints: the chosen scheme, its predicted gain, its memory, the time."""
from __future__ import annotations

from tinyhost.search.run import SearchResult


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB ({n} B)"


def describe(r: SearchResult) -> str:
    s, c = r.scheme, r.contributions
    weights = ", ".join(f"conv {i} x {w:g}" for i, w in zip(s.manual_weight_idx,
                                                           s.weight_update_ratio, strict=True))
    where = f"on {r.board} (static RAM + stack + arena + tables)" if r.board else "arena"
    lines = [
        f"scheme ({r.method}): biases of the last {s.n_bias_update} convs; weights: "
        f"{weights or 'none'}; the fp32 head",
        f"predicted accuracy {c.base + r.choice.gain:.1f}% = head only {c.base:.1f}% "
        f"{r.choice.gain:+.1f} points (held-back train samples, simulated at "
        f"{'x'.join(map(str, r.sim['input_shape']))}, rule {r.sim['rule']})"
        + (f"; full update {c.base + c.full:.1f}%" if c.full is not None else ""),
        f"memory {_kb(r.memory.bytes)} {where}, int8 update rule {r.memory.rule}; limit "
        f"{_kb(r.limit)}" + ("" if r.compiled_memory == r.memory.bytes else
                             f" (a whole compile says {r.compiled_memory} B)"),
        f"search time {r.seconds:.1f} s ({r.cpu_seconds:.1f} s CPU): {c.runs} fine-tuning runs "
        f"({c.seconds:.1f} s), "
        f"{r.compiles} compiles",
    ]
    if c.diverged:
        lines.append(f"diverged runs (scored as 0%): {', '.join(c.diverged)}")
    return "\n".join(lines)
