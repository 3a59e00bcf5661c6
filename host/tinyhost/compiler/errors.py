"""Compiler errors: each names the pass, the layer or op, and what would make it work."""
from __future__ import annotations


class CompileError(Exception):
    pass
