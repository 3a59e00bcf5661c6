"""Compiler errors: each names the pass, the layer or op, and what would make it work."""
from __future__ import annotations


class CompileError(Exception):
    # The pass it was raised in (set by the pass loop, compiler/pipeline.py run_passes).
    pass_name: str | None = None
