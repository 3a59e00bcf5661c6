"""Tensor element types of the plan format (shared by the op registry and the plan schema)."""
from __future__ import annotations

from enum import IntEnum

import numpy as np


class DType(IntEnum):
    F32 = 0
    S8 = 1
    S32 = 2

    @property
    def numpy(self) -> np.dtype:
        return np.dtype({DType.F32: "<f4", DType.S8: "i1", DType.S32: "<i4"}[self])

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize
