"""The plan's trainable set on the wire and back: what a device sends, how the fleet's average
becomes parameters a device takes again (docs/fleet.md, "Aggregating integers").

Flower averages the devices' arrays in float64 (its FedAvg: the weighted sum of float64
products). What comes out is put back into the plan's dtypes the way the plan's own update rule
writes them on the device (docs/int8.md section 5):
- float32 tensors: the average, rounded once to float32;
- int8 weight rows: clip(rint(average), -127, 127), halves to even (update_s8_round);
- int32 biases: sat32(rint(average)) (update_s32);
- with `--int8-update master` the plan keeps an f32 master `NAME.master` of an int8/int32
  tensor `NAME`: the masters are averaged like any float32 tensor and `NAME` is derived from the
  averaged master exactly as the device derives it (clip/sat of rint(master)), so the pair
  stays consistent (averaging both separately would not be: the mean of rounded values is not
  the rounded mean).
"""
from __future__ import annotations

import numpy as np

from tinyhost.plan import Plan

INT8_MAX = 127  # int8 weights are clipped to [-127, 127] (symmetric), as the device does
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
MASTER_SUFFIX = ".master"


def trainable_names(plan: Plan) -> list[str]:
    return [plan.tensors[i].name for i in plan.trainable]


def wire_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of the arrays' data (what one direction of a round moves per device)."""
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


def initial_parameters(plan: Plan) -> dict[str, np.ndarray]:
    """The trainable set as the plan starts it (its blob)."""
    return {plan.tensors[i].name: plan.constant(i).copy() for i in plan.trainable}


def requantize(plan: Plan, averaged: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fleet's averaged trainable set (float64, by tensor name) in the plan's dtypes, as the
    plan's update rule would write it (module docstring)."""
    names = trainable_names(plan)
    missing = [n for n in names if n not in averaged]
    if missing:
        raise ValueError(f"the aggregate lacks the trainable tensors {missing}")
    out: dict[str, np.ndarray] = {}
    for i in plan.trainable:
        t = plan.tensors[i]
        mean = np.asarray(averaged[t.name], dtype=np.float64).reshape(t.shape)
        master = t.name + MASTER_SUFFIX
        if master in averaged and t.dtype.numpy != np.float32:
            # derived from the averaged master, rounded to float32 first as the device holds it
            mean = np.asarray(averaged[master], dtype=np.float64).reshape(t.shape)
            mean = mean.astype(np.float32).astype(np.float64)
        out[t.name] = to_dtype(mean, t.dtype.numpy, t.name)
    return out


def to_dtype(mean: np.ndarray, dtype: np.dtype | type, name: str = "tensor") -> np.ndarray:
    """One averaged float64 tensor in a plan dtype (float32, int8 or int32)."""
    dt = np.dtype(dtype)
    if not np.isfinite(mean).all():
        raise ValueError(f"{name}: the average is not finite (a device sent NaN/inf)")
    if dt == np.float32:
        return mean.astype(np.float32)
    if dt == np.int8:
        return np.clip(np.rint(mean), -INT8_MAX, INT8_MAX).astype(np.int8)
    if dt == np.int32:
        return np.clip(np.rint(mean), INT32_MIN, INT32_MAX).astype(np.int32)
    raise ValueError(f"{name}: trainable tensors of dtype {dt} are not aggregated")
