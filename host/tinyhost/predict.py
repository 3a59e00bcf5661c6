"""`tinyhost predict`: on-device inference on samples, labeled or not, into a CSV of predictions.

Samples come from a dataset file as `train` reads it (a split of it, its labels kept to score the
predictions) or from unlabeled data: an .npz holding `x` [N, ...] or an .npy array. They are
standardized as training standardized them: with the per-channel mean and std of the train split
of the data the model was trained with (`--normalize-with`; a labeled DATA's own train split by
default), since the plan does not carry them."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhost.datasets import Dataset, DatasetError, checked_samples, load_dataset, standardize


@dataclass
class Samples:
    x: np.ndarray                  # float32 [N, ...]
    labels: np.ndarray | None      # int64 [N] when known
    class_names: list[str] | None
    name: str


def read_unlabeled(path: Path) -> np.ndarray | None:
    """The samples of an unlabeled file (.npy, or .npz with `x` and no labels), else None."""
    if path.suffix == ".npy":
        return checked_samples(path, "the array", np.load(path, allow_pickle=False))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files or any(k.startswith("y") for k in f.files):
                return None
            return checked_samples(path, "x", f["x"])
    return None


def load_samples(path: str, split: str) -> tuple[Samples, Dataset | None]:
    """The samples to predict, and the labeled dataset they came from (None: unlabeled)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{path}: no such file")
    x = read_unlabeled(p)
    if x is not None:
        return Samples(x, None, None, p.stem), None
    ds = load_dataset(p)
    parts = {"train": [(ds.x_train, ds.y_train)], "test": [(ds.x_test, ds.y_test)],
             "all": [(ds.x_train, ds.y_train), (ds.x_test, ds.y_test)]}[split]
    return Samples(np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]),
                   list(ds.class_names), ds.name), ds


def standardizer(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel mean and std `train` standardized this dataset's samples with."""
    _, mean, std = standardize(ds)
    return mean, std


def apply_standardization(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    if x.shape[1] != len(mean):
        raise DatasetError(f"samples have {x.shape[1]} channels (axis 1), the statistics "
                           f"{len(mean)}")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)


def write_predictions(path: str, preds: np.ndarray, samples: Samples) -> None:
    """index, pred, class (when names are known), label and correct (when labels are)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        names = samples.class_names
        head = ["index", "pred"] + (["class"] if names else [])
        head += ["label", "correct"] if samples.labels is not None else []
        w.writerow(head)
        for i, p in enumerate(preds):
            row: list[object] = [i, int(p)]
            if names:
                row.append(names[p] if 0 <= p < len(names) else "")
            if samples.labels is not None:
                row += [int(samples.labels[i]), int(p == samples.labels[i])]
            w.writerow(row)
