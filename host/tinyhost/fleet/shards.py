"""Each device's own data: one dataset split over the fleet (`--split`), or one file per device.

The shards of the train split and of the test split are made by the same rule, so every test
sample is on exactly one device: the fleet's accuracy over all devices' test shards is the
accuracy over the whole test split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhost.datasets import Dataset, DatasetError, load_dataset, standardize
from tinyhost.layout import fit_to_plan
from tinyhost.plan import Plan

SPLITS = ("iid", "by-label", "by-group")
PIECES_PER_DEVICE = 2  # by-label: each device holds 2 of the 2N label-sorted pieces


@dataclass(frozen=True)
class SplitSpec:
    kind: str = "iid"          # iid | by-label | by-group
    column: str | None = None  # by-group: the .npz arrays COLUMN_train and COLUMN_test
    seed: int = 0

    def describe(self) -> str:
        return f"by-group {self.column}" if self.kind == "by-group" else self.kind


def load_for_plan(path: str, plan: Plan, normalize: bool = True) -> Dataset:
    """A data file in the plan's input shape, standardized with its train split's statistics
    (as `tinyhost train` does)."""
    ds = fit_to_plan(load_dataset(path), plan.tensors[plan.bindings.input].shape, None)
    return standardize(ds)[0] if normalize else ds


def _subset(ds: Dataset, tr: np.ndarray, te: np.ndarray, name: str) -> Dataset:
    # Dataset refuses an empty split; a shard may legitimately have no test sample, so those
    # are built without its check
    shard = object.__new__(Dataset)
    shard.x_train, shard.y_train = ds.x_train[tr], ds.y_train[tr]
    shard.x_test, shard.y_test = ds.x_test[te], ds.y_test[te]
    shard.class_names, shard.name = list(ds.class_names), name
    return shard


def _iid(n: int, devices: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(p) for p in np.array_split(rng.permutation(n), devices)]


def _by_label(y: np.ndarray, order: np.ndarray, devices: int) -> list[np.ndarray]:
    """McMahan et al.'s pathological non-IID split: samples sorted by label (ties in a random
    order), cut into PIECES_PER_DEVICE x devices contiguous pieces; device d gets the pieces
    order[2d], order[2d+1], so most devices see about two labels."""
    rng_ties = np.random.default_rng(len(y))  # ties: a fixed shuffle (seeded by the size)
    idx = np.lexsort((rng_ties.permutation(len(y)), y))
    pieces = np.array_split(idx, PIECES_PER_DEVICE * devices)
    return [np.sort(np.concatenate([pieces[p] for p in
                                    order[d * PIECES_PER_DEVICE:(d + 1) * PIECES_PER_DEVICE]]))
            for d in range(devices)]


def _groups(path: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    if Path(path).suffix.lower() != ".npz":
        raise DatasetError(f"{path}: --split by-group {column} needs an .npz with the arrays "
                           f"{column}_train and {column}_test (one group id per sample)")
    with np.load(path, allow_pickle=False) as z:
        keys = (f"{column}_train", f"{column}_test")
        if not all(k in z.files for k in keys):
            raise DatasetError(f"{path}: no arrays {keys[0]} and {keys[1]} for --split by-group "
                               f"{column} (it has {sorted(z.files)})")
        return z[keys[0]], z[keys[1]]


def split(path: str, ds: Dataset, devices: int, spec: SplitSpec) -> list[Dataset]:
    """`devices` shards of `ds` (loaded from `path`) by `spec`."""
    if spec.kind not in SPLITS:
        raise ValueError(f"--split {spec.kind!r}: expected one of {', '.join(SPLITS)}")
    if devices < 1:
        raise ValueError("a fleet needs at least one device")
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "iid":
        trs = _iid(len(ds.y_train), devices, rng)
        tes = _iid(len(ds.y_test), devices, rng)
    elif spec.kind == "by-label":
        order = rng.permutation(PIECES_PER_DEVICE * devices)
        trs, tes = _by_label(ds.y_train, order, devices), _by_label(ds.y_test, order, devices)
    else:
        if spec.column is None:
            raise ValueError("--split by-group needs a COLUMN")
        g_tr, g_te = _groups(path, spec.column)
        if len(g_tr) != len(ds.y_train) or len(g_te) != len(ds.y_test):
            raise DatasetError(f"{path}: {spec.column}_train/_test have {len(g_tr)}/{len(g_te)} "
                               f"entries for {len(ds.y_train)}/{len(ds.y_test)} samples")
        groups = np.unique(np.concatenate([g_tr, g_te]))
        if len(groups) < devices:
            raise DatasetError(f"{path}: {spec.column} has {len(groups)} groups, fewer than the "
                               f"{devices} devices")
        owner = {g: k % devices for k, g in enumerate(groups[rng.permutation(len(groups))])}
        trs = [np.flatnonzero([owner[g] == d for g in g_tr]) for d in range(devices)]
        tes = [np.flatnonzero([owner[g] == d for g in g_te]) for d in range(devices)]
    shards = [_subset(ds, tr, te, f"{ds.name} [{spec.describe()} {d + 1}/{devices}]")
              for d, (tr, te) in enumerate(zip(trs, tes, strict=True))]
    empty = [d for d, s in enumerate(shards) if len(s.y_train) == 0]
    if empty:
        raise DatasetError(f"{path}: {len(ds.y_train)} train samples are too few for "
                           f"{devices} devices: device(s) {empty} would get none")
    return shards


def device_shard(data: str, plan: Plan, device: int, devices: int, spec: SplitSpec,
                 normalize: bool = True) -> Dataset:
    """Device `device`'s shard: DATA is one dataset split over `devices` devices, or a comma
    list of one file per device (no split; each standardized with its own train statistics)."""
    files = data.split(",")
    if len(files) > 1:
        if len(files) != devices:
            raise ValueError(f"--data lists {len(files)} files for {devices} devices: give one "
                             "dataset to split, or one file per device")
        return load_for_plan(files[device], plan, normalize)
    ds = load_for_plan(data, plan, normalize)
    return split(data, ds, devices, spec)[device]
