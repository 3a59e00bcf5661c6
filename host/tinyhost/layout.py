"""A dataset's sample layout against the plan's input shape (`train`/`eval --layout`).

Plans take channels-first samples without the batch axis: (C, H, W) for images, (C, L) for
sequences, as PyTorch does. Data stored channels-last (NHWC images, NWC sequences) has the same
number of values in another order, so an element count check lets it through and the model and the
per-channel standardization (axis 1) then see the wrong numbers. So a sample's shape must equal the
plan's; `--layout nhwc|nwc` moves the channels first, `nchw|ncw` states the data is already so. A
flat sample (a .csv row) is the plan's shape in row-major order, as a flattened channels-first
tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tinyhost.datasets import Dataset, DatasetError


@dataclass(frozen=True)
class Layout:
    name: str
    axes: str                   # the sample axes it names, batch first
    to_plan: tuple[int, ...]    # the transpose to the plan's channels-first order


LAYOUTS: dict[str, Layout] = {
    "nchw": Layout("nchw", "NCHW", (0, 1, 2, 3)),
    "nhwc": Layout("nhwc", "NHWC", (0, 3, 1, 2)),
    "ncw": Layout("ncw", "NCW", (0, 1, 2)),
    "nwc": Layout("nwc", "NWC", (0, 2, 1)),
}
# What a plan's input axes are called, by rank (channels-first, no batch axis).
_PLAN_AXES = {1: ("F",), 2: ("C", "W"), 3: ("C", "H", "W")}


def axis_names(rank: int) -> tuple[str, ...]:
    return _PLAN_AXES.get(rank, tuple(f"d{i}" for i in range(rank)))


def _convert(x: np.ndarray, layout: Layout, where: str) -> np.ndarray:
    if x.ndim != len(layout.axes):
        raise DatasetError(f"{where}: --layout {layout.name} needs {len(layout.axes)}-d data "
                           f"({', '.join(layout.axes)}), these samples are {x.ndim}-d "
                           f"{tuple(x.shape)}")
    return np.ascontiguousarray(x.transpose(layout.to_plan))


def _mismatch(have: tuple[int, ...], need: tuple[int, ...]) -> str:
    """Which axes disagree, by the plan's axis names; and the layout flag that fits, if one."""
    names = axis_names(len(need))
    what = (f"dataset samples are {have} ({int(np.prod(have))} values), the plan's input is "
            f"{need} ({int(np.prod(need))} values; axes {', '.join(names)})")
    if len(have) != len(need):
        msg = (f"{what}: {len(have)} axes against the plan's {len(need)}"
               if int(np.prod(have)) != int(np.prod(need)) else
               f"{what}: same number of values, {len(have)} axes against the plan's "
               f"{len(need)}; reshape the data to {need}")
    else:
        bad = [f"axis {i} ({names[i]}) is {h} in the data, {n} in the plan"
               for i, (h, n) in enumerate(zip(have, need, strict=True)) if h != n]
        msg = f"{what}: {'; '.join(bad)}"
    for layout in (LAYOUTS["nhwc"], LAYOUTS["nwc"]):
        if len(layout.to_plan) == len(have) + 1 and _squeeze(tuple(
                have[i - 1] for i in layout.to_plan[1:])) == _squeeze(need):
            msg += (f". The data looks channels-last ({layout.axes}): pass --layout "
                    f"{layout.name} to convert it")
    return msg


def _squeeze(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def check_shape(ds: Dataset, need: tuple[int, ...]) -> None:
    """Samples of exactly the plan's input shape, or a DatasetError naming the axes."""
    if ds.sample_shape != tuple(need):
        raise DatasetError(f"dataset {ds.name!r}: {_mismatch(ds.sample_shape, tuple(need))}")


def fit_to_plan(ds: Dataset, need: tuple[int, ...], layout: str | None) -> Dataset:
    """The dataset with samples of exactly the plan's input shape `need`: converted from
    `layout` (None: as stored), a flat sample reshaped to it in row-major order; a DatasetError
    naming the axes that disagree otherwise."""
    where = f"dataset {ds.name!r}"
    return replace(ds, x_train=fit_samples(ds.x_train, need, layout, where),
                   x_test=fit_samples(ds.x_test, need, layout, where))


def fit_samples(x: np.ndarray, need: tuple[int, ...], layout: str | None,
                where: str) -> np.ndarray:
    """fit_to_plan for one array of samples [N, ...] (unlabeled data too); `where` names it in
    errors."""
    if layout is not None:
        x = _convert(x, LAYOUTS[layout], where)
    have = tuple(int(d) for d in x.shape[1:])
    if have != need:
        flat = len(have) == 1 and layout is None and have[0] == int(np.prod(need))
        # axes of size 1 do not order values: (C, L) data fits an int8 plan's (C, 1, L) input
        same = _squeeze(have) == _squeeze(tuple(need))
        if not (flat or same):
            raise DatasetError(f"{where}: {_mismatch(have, tuple(need))}")
        x = x.reshape(len(x), *need)
    return x
