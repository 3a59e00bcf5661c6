"""The paper's model files and image-like inputs for the int8 tests (a module, not conftest.py:
`from conftest import` would find tests/system's conftest when both directories are collected)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from int8_ref import MODELS

PAPER_MODELS = ("mcunet-5fps", "mbv2-w0.35")
SCHEMES = MODELS / "sparse_schemes.json"


def paper_model(name: str) -> Path:
    path = MODELS / f"{name}.pkl"
    if not path.is_file():
        pytest.skip(f"{path} is not here (the paper's models live in ../shared/data/mcu_models)")
    return path


def smooth_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Image-like float inputs in [-1, 1] (the paper's normalisation): smooth colour fields with
    some fine texture, so activations look like a photo's rather than noise's."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g) * 2 - 1
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear",
                                          align_corners=False)
    img = img + 0.15 * (torch.rand(n, 3, size, size, generator=g) * 2 - 1)
    return img.clamp(-1, 1).numpy().astype(np.float32)
