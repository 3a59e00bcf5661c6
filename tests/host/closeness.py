"""The fp32 tolerance every kernel test uses: rtol 1e-5, plus atol 1e-5 of the reference's
largest magnitude (so values near zero in a tensor of large ones are not held to 1e-5 of
themselves)."""
from __future__ import annotations

import numpy as np
import torch

RTOL = 1e-5


def assert_close(got: np.ndarray, ref: np.ndarray | torch.Tensor | None, what: str = "") -> None:
    assert ref is not None, f"{what}: no reference (a missing autograd gradient?)"
    ref_np = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    got = np.asarray(got)
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    assert got.shape == ref_np.shape, f"{what}: shape {got.shape} != {ref_np.shape}"
    atol = 1e-5 * float(np.max(np.abs(ref_np))) if ref_np.size else 0.0
    np.testing.assert_allclose(got, ref_np, rtol=RTOL, atol=atol, err_msg=what)
