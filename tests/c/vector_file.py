"""Writing the test-vector files the C kernel tests read (tests/c/tt_test.h: tt_vec_read_case);
gen_vectors.py (fp32 kernels) and gen_vectors_s8.py (int8 kernels) give their cases and how they
write a float."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

Case = tuple[str, str, tuple[int, ...], list[tuple[str, str, Any]]]  # kernel, name, attrs, tensors
DTYPES = {np.dtype(np.int8): "s8", np.dtype(np.int32): "i32", np.dtype(np.float32): "f32"}


def _values(a: np.ndarray, float_token: Callable[[np.ndarray], list[str]],
            per_line: int) -> Iterable[str]:
    vals = float_token(a.ravel()) if a.dtype == np.float32 else [str(int(v)) for v in a.ravel()]
    for i in range(0, len(vals), per_line):
        yield "  " + " ".join(vals[i : i + per_line])


def write_cases(path: Path, header: str, cases: Iterable[Case],
                float_token: Callable[[np.ndarray], list[str]], per_line: int) -> int:
    """Writes the cases (each tensor's values per_line to a line, floats as float_token makes
    them) atomically; returns how many."""
    lines = [header]
    n = 0
    for kernel, name, attrs, tensors in cases:
        lines.append(f"case {kernel} {name}")
        lines.append(f"attrs {len(attrs)} " + " ".join(str(int(a)) for a in attrs))
        for direction, role, a in tensors:
            a = np.asarray(a)
            if a.dtype not in DTYPES:
                raise TypeError(f"{kernel}/{name}: {role} has dtype {a.dtype}")
            if a.size == 0:
                raise ValueError(f"{kernel}/{name}: {role} is empty")
            lines.append(f"{direction} {DTYPES[a.dtype]} {role} {a.size}")
            lines.extend(_values(a, float_token, per_line))
        lines.append("end")
        n += 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)  # never leave a half-written file that looks up to date
    return n


def main(argv: list[str], file_name: str, write: Callable[[Path], int]) -> int:
    """`SCRIPT OUTDIR`: writes OUTDIR/file_name with write()."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    n = write(out / file_name)
    print(f"{Path(argv[0]).stem}: {n} cases -> {out / file_name}")
    return 0
