"""Fixtures of the int8 tests: the paper's model files (skipped when absent), a cache of compiled
int8 plans shared by the whole session, and a small synthetic model in the same format."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from int8_ref import synthetic_cfg


@functools.cache
def _compile(path: str, num_classes: int, update: str, input_size: int | None, qas: bool,
             int8_update: str, reorder: bool, fuse: bool):
    from tinyhost.compiler import compile_tiny_training
    return compile_tiny_training(path, num_classes, update=update, input_size=input_size, qas=qas,
                                 int8_update=int8_update, reorder=reorder, fuse=fuse)


@pytest.fixture(scope="session")
def compile_int8():
    """compile_int8(path, update="full", num_classes=10, input_size=None, qas=True,
    int8_update="round", reorder=True, fuse=True) -> CompileResult, compiled once per session."""
    def get(path, update="full", num_classes=10, input_size=None, qas=True, int8_update="round",
            reorder=True, fuse=True):
        return _compile(str(path), num_classes, update, input_size, qas, int8_update, reorder,
                        fuse)
    return get


@pytest.fixture(scope="session")
def synthetic_pkl(tmp_path_factory) -> Path:
    """A 16x16 model in the tiny-training format: residual and plain blocks, 3x3 and 5x5
    depthwise, strides, a feature_mix layer (int8_ref.synthetic_cfg)."""
    path = tmp_path_factory.mktemp("tiny") / "synthetic.pkl"
    torch.save(synthetic_cfg(seed=0, size=16), path)
    return path
