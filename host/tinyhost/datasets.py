"""Datasets for on-device training: readers for `.ts`, `.csv` and `.npz`, splitting, standardizing.

Everything the host streams to a device starts here as a `Dataset` of float32 samples and int64
class indices. Readers are strict: a bad file gives a `DatasetError` naming the file, the line (for
text formats) and the problem, never a traceback from numpy or a parser, because a silently
mis-read sensor file trains a useless model on the device and nobody notices until much later.

The bundled demo data (`tinyhost/demo/basicmotions.npz`) is made with
`python -m tinyhost.datasets convert BasicMotions_TRAIN.ts tinyhost/demo/basicmotions.npz`.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "DatasetError", "read_ts", "load_dataset", "save_npz", "standardize", "main"]

# Tokens the .ts/.csv world uses for "no value"; training cannot use such a sample.
_MISSING_TOKENS = frozenset({"?", "", "nan", "na", "null", "none"})
# Constant channels get std 1 rather than a tiny floor: a floor like 1e-8 would blow up any test
# sample that differs from the (constant) training value by a factor of 1e8.
_STD_EPS = 1e-6
_NPZ_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
# "_TRAIN"/"_TEST" as a word part: "Gait_TRAIN.ts" pairs, "Walk_TRAINING.ts" does not.
_SPLIT_SUFFIX = re.compile(r"_(TRAIN|TEST)(?![A-Za-z])")


class DatasetError(ValueError):
    """A dataset file or array that cannot be used; the message says which file, where and why."""


@dataclass
class Dataset:
    x_train: np.ndarray  # float32 [N, ...]
    y_train: np.ndarray  # int64 [N], values in [0, num_classes)
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    name: str

    def __post_init__(self) -> None:
        self.x_train, self.y_train, self.x_test, self.y_test = _check_splits(
            self.x_train, self.y_train, self.x_test, self.y_test, self.class_names,
            where=f"dataset {self.name!r}")
        self.class_names = [str(c) for c in self.class_names]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


# --------------------------------------------------------------------------------------------
# .ts (sktime / aeon text format)


@dataclass
class _TsHeader:
    class_labels: list[str] | None = None  # declared order; None: not declared
    dimensions: int | None = None
    series_length: int | None = None


def _parse_bool(path: Path, lineno: int, tag: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise DatasetError(f"{path}:{lineno}: malformed header: @{tag} expects true or false, got "
                           f"{value!r}")
    return v == "true"


def _parse_pos_int(path: Path, lineno: int, tag: str, value: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n <= 0:
        raise DatasetError(f"{path}:{lineno}: malformed header: @{tag} expects a positive integer, "
                           f"got {value!r}")
    return n


def _parse_ts_header_line(path: Path, lineno: int, line: str, hdr: _TsHeader) -> None:
    tag, rest = (line[1:].split(None, 1) + ["", ""])[:2]
    tag_l, rest = tag.lower(), rest.strip()
    if tag_l == "classlabel":
        parts = rest.split()
        if not parts:
            raise DatasetError(f"{path}:{lineno}: malformed header: @classLabel needs true/false")
        if not _parse_bool(path, lineno, tag, parts[0]):
            raise DatasetError(f"{path}:{lineno}: @classLabel false: the file has no class labels "
                               "to train on")
        labels = parts[1:]
        if not labels:
            raise DatasetError(f"{path}:{lineno}: malformed header: @classLabel true lists no "
                               "labels")
        if len(set(labels)) != len(labels):
            raise DatasetError(f"{path}:{lineno}: malformed header: @classLabel lists a label "
                               f"twice: {labels}")
        hdr.class_labels = labels
    elif tag_l == "timestamps":
        if _parse_bool(path, lineno, tag, rest):
            raise DatasetError(f"{path}:{lineno}: unsupported: @timeStamps true (only plain value "
                               "lists are read)")
    elif tag_l in ("missing", "univariate", "equallength"):
        _parse_bool(path, lineno, tag, rest)  # informational: the data itself is checked below
    elif tag_l == "dimensions":
        hdr.dimensions = _parse_pos_int(path, lineno, tag, rest)
    elif tag_l == "serieslength":
        hdr.series_length = _parse_pos_int(path, lineno, tag, rest)
    elif tag_l == "targetlabel":
        if _parse_bool(path, lineno, tag, rest):
            raise DatasetError(f"{path}:{lineno}: unsupported: @targetLabel true (regression); "
                               "need class labels")
    elif tag_l == "problemname":
        if not rest:
            raise DatasetError(f"{path}:{lineno}: malformed header: @problemName has no value")
    elif not tag_l:
        raise DatasetError(f"{path}:{lineno}: malformed header: '@' without a tag name")
    # Other tags are ignored: the format grows new informational tags and none change the data.


def _parse_values(path: Path, lineno: int, what: str, tokens: Sequence[str]) -> np.ndarray:
    """Floats of `tokens`; the fast path is numpy, the slow path finds the offending token."""
    try:
        arr = np.array(tokens, dtype=np.float64)
        if np.isfinite(arr).all():
            return arr
    except ValueError:
        pass
    for i, tok in enumerate(tokens):
        t = tok.strip()
        if t.lower() in _MISSING_TOKENS:
            raise DatasetError(f"{path}:{lineno}: missing value {t!r} in {what}, position {i + 1} "
                               "(missing values are not supported; impute or drop the sample)")
        try:
            v = float(t)
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: non-numeric value {t!r} in {what}, position "
                               f"{i + 1}") from None
        if not math.isfinite(v):
            raise DatasetError(f"{path}:{lineno}: non-finite value {t!r} in {what}, position "
                               f"{i + 1}")
    raise DatasetError(f"{path}:{lineno}: unparsable values in {what}")  # unreachable in practice


def _read_text_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found" if not path.exists()
                           else f"{path}: not a regular file")
    try:
        # utf-8-sig: some exported .ts/.csv files start with a BOM that would corrupt the first
        # token.
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a UTF-8 text file (byte {e.start})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from None


def read_ts(path: str | Path) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Read a `.ts` file: (x [N, C, L] float32, per-series labels, declared @classLabel list or
    None)."""
    path = Path(path)
    lines = _read_text_lines(path)
    hdr = _TsHeader()
    in_data = False
    series: list[np.ndarray] = []
    labels: list[str] = []
    # (lineno, channels, length) of the first series
    first_shape: tuple[int, int, int] | None = None
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DatasetError(f"{path}:{lineno}: malformed header: data before @data")
            if line.lower() == "@data":
                in_data = True
            else:
                _parse_ts_header_line(path, lineno, line, hdr)
            continue
        if line.startswith("@"):
            raise DatasetError(f"{path}:{lineno}: malformed header: {line.split()[0]} after @data")
        fields = line.split(":")
        if len(fields) < 2:
            raise DatasetError(f"{path}:{lineno}: expected channel values and a class label "
                               "separated by ':'")
        label = fields[-1].strip()
        if not label:
            raise DatasetError(f"{path}:{lineno}: empty class label")
        if "," in label:
            raise DatasetError(f"{path}:{lineno}: the last ':' field {label[:30]!r}... is values, "
                               "not a class label (series without labels cannot be trained on)")
        if hdr.class_labels is not None and label not in hdr.class_labels:
            raise DatasetError(f"{path}:{lineno}: class label {label!r} is not in the @classLabel "
                               f"list {hdr.class_labels}")
        channels = fields[:-1]
        if hdr.dimensions is not None and len(channels) != hdr.dimensions:
            raise DatasetError(f"{path}:{lineno}: {len(channels)} channels, but @dimensions is "
                               f"{hdr.dimensions}")
        rows = []
        for c, chan in enumerate(channels):
            rows.append(_parse_values(path, lineno, f"channel {c + 1}", chan.split(",")))
        lengths = [len(r) for r in rows]
        if len(set(lengths)) != 1:
            raise DatasetError(f"{path}:{lineno}: ragged series: channel lengths {lengths} differ")
        length = lengths[0]
        if hdr.series_length is not None and length != hdr.series_length:
            raise DatasetError(f"{path}:{lineno}: series length {length}, but @seriesLength is "
                               f"{hdr.series_length}")
        if first_shape is None:
            first_shape = (lineno, len(rows), length)
        elif (len(rows), length) != first_shape[1:]:
            raise DatasetError(
                f"{path}:{lineno}: unequal lengths: this series is {len(rows)} channels x {length} "
                f"steps, line {first_shape[0]} is {first_shape[1]} x {first_shape[2]} (all series "
                "must have one shape)")
        series.append(np.stack(rows))
        labels.append(label)
    if not in_data:
        raise DatasetError(f"{path}: malformed header: no @data line")
    if not series:
        raise DatasetError(f"{path}: empty dataset: no series after @data")
    return np.stack(series).astype(np.float32), labels, hdr.class_labels


# --------------------------------------------------------------------------------------------
# .csv


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    lines = _read_text_lines(path)
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(lines)
    try:
        for row in reader:
            if any(f.strip() for f in row):
                rows.append((reader.line_num, row))
    except csv.Error as e:
        raise DatasetError(f"{path}:{reader.line_num + 1}: malformed CSV: {e}") from None
    if rows:
        first = rows[0][1]
        # A header is a first row whose feature columns are all non-numeric; a row with only some
        # non-numeric fields is data with a typo and must be reported, not skipped.
        feats = [f.strip() for f in first[:-1]]
        if feats and not any(_is_number(f) or f.lower() in _MISSING_TOKENS for f in feats):
            rows = rows[1:]
    if not rows:
        raise DatasetError(f"{path}: empty dataset: no data rows")
    width = len(rows[0][1])
    if width < 2:
        raise DatasetError(f"{path}:{rows[0][0]}: expected at least 2 columns (features..., "
                           f"label), got {width}")
    x = np.empty((len(rows), width - 1), dtype=np.float64)
    labels: list[str] = []
    for k, (lineno, row) in enumerate(rows):
        if len(row) != width:
            raise DatasetError(f"{path}:{lineno}: ragged row: {len(row)} columns, line "
                               f"{rows[0][0]} has {width}")
        label = row[-1].strip()
        if label.lower() in _MISSING_TOKENS:
            raise DatasetError(f"{path}:{lineno}: missing class label {label!r} in the last column")
        x[k] = _parse_values(path, lineno, "row", row[:-1])
        labels.append(label)
    return x.astype(np.float32), labels


def _label_sort_key(label: str) -> tuple[int, float, str]:
    # Numeric labels ("1", "2", "10") sort by value, not as text, so index order matches intuition.
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# --------------------------------------------------------------------------------------------
# .npz


def _npz_labels(path: Path, key: str, y: np.ndarray) -> np.ndarray:
    """Integer class indices as int64; string labels stay strings (see `_npz_class_indices`)."""
    if y.ndim != 1:
        raise DatasetError(f"{path}: {key} must be 1-D, got shape {y.shape}")
    if y.dtype.kind in "US":
        try:
            return y.astype(np.str_)
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: {key} holds byte strings that are not ASCII") from None
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        return y.astype(np.int64)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    raise DatasetError(f"{path}: {key} must hold integer class indices or string labels, got dtype "
                       f"{y.dtype}")


def checked_samples(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """Array `key` of `path` as float32 samples [N, ...], or a DatasetError saying what is wrong."""
    if x.dtype.kind not in "fiub":
        raise DatasetError(f"{path}: {key} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DatasetError(f"{path}: {key} must be [N, ...] with at least 2 dimensions, got shape "
                           f"{x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DatasetError(f"{path}: {key} has missing (NaN) or infinite values")
    return x


def _read_npz(path: Path, test_fraction: float, seed: int) -> Dataset:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found" if not path.exists()
                           else f"{path}: not a regular file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from None
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # np.load would try a .npy or a pickle instead
        raise DatasetError(f"{path}: not a .npz archive (no zip signature)")
    try:
        # allow_pickle=False: a dataset file must never be able to run code on the host.
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - every zip/zlib/format error means the same here
        raise DatasetError(f"{path}: corrupt .npz or one holding non-plain (object) arrays: "
                           f"{e}") from None
    name = (str(arrays["name"]) if "name" in arrays and arrays["name"].ndim == 0
            else _base_name(path))
    class_names: list[str] | None = None
    if "class_names" in arrays:
        cn = arrays["class_names"]
        if cn.ndim != 1 or cn.size == 0:
            raise DatasetError(f"{path}: class_names must be a non-empty 1-D array, got shape "
                               f"{cn.shape}")
        class_names = [str(c) for c in cn.tolist()]
    if all(k in arrays for k in _NPZ_SPLIT_KEYS):
        xs = [checked_samples(path, k, arrays[k]) for k in ("x_train", "x_test")]
        ys = [_npz_labels(path, k, arrays[k]) for k in ("y_train", "y_test")]
        ys, class_names = _npz_class_indices(path, ys, class_names)
        x_tr, y_tr, x_te, y_te = _check_splits(xs[0], ys[0], xs[1], ys[1], class_names,
                                               where=str(path))
        return Dataset(x_tr, y_tr, x_te, y_te, class_names, name)
    if "x" in arrays and "y" in arrays:
        x = checked_samples(path, "x", arrays["x"])
        [y], class_names = _npz_class_indices(path, [_npz_labels(path, "y", arrays["y"])],
                                              class_names)
        return _split_dataset(path, x, y, class_names, name, test_fraction, seed)
    raise DatasetError(f"{path}: missing keys: need x_train, y_train, x_test, y_test (or x, y); "
                       f"found {sorted(arrays) or 'no arrays'}")


def _npz_class_indices(path: Path, ys: list[np.ndarray], class_names: list[str] | None
                       ) -> tuple[list[np.ndarray], list[str]]:
    """Integer labels are kept as given (names default to "0".."K-1"); string labels are mapped to
    indices of `class_names` if stored, else of their sorted set."""
    if any(y.dtype.kind == "U" for y in ys):
        if not all(y.dtype.kind == "U" for y in ys):
            raise DatasetError(f"{path}: the train labels and test labels mix strings and integers")
        if class_names is None:
            class_names = sorted(set().union(*(y.tolist() for y in ys)), key=_label_sort_key)
        index = {s: i for i, s in enumerate(class_names)}
        for y in ys:
            for s in y.tolist():
                if s not in index:
                    raise DatasetError(f"{path}: label {s!r} is not in class_names {class_names}")
        return [np.array([index[s] for s in y.tolist()], dtype=np.int64) for y in ys], class_names
    nonempty = [y for y in ys if y.size]
    if not nonempty:
        raise DatasetError(f"{path}: empty dataset: no labels")
    lo = min(int(y.min()) for y in nonempty)
    if lo < 0:
        raise DatasetError(f"{path}: negative class index {lo}; class indices must be "
                           "0..num_classes-1")
    hi = max(int(y.max()) for y in nonempty)
    if class_names is None:
        class_names = [str(i) for i in range(hi + 1)]
    elif hi >= len(class_names):
        raise DatasetError(f"{path}: class index {hi} outside 0..{len(class_names) - 1} "
                           f"({len(class_names)} class_names)")
    return ys, class_names


def save_npz(dataset: Dataset, path: str | Path) -> None:
    """Write `dataset` as a compressed .npz (float32 samples) that `load_dataset` reads back.

    Byte-reproducible (fixed zip timestamps) so re-converting a bundled file gives no git diff.
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise DatasetError(f"{path}: output must end in .npz")
    arrays: dict[str, np.ndarray] = {
        "x_train": np.ascontiguousarray(dataset.x_train, dtype=np.float32),
        "y_train": np.ascontiguousarray(dataset.y_train, dtype=np.int64),
        "x_test": np.ascontiguousarray(dataset.x_test, dtype=np.float32),
        "y_test": np.ascontiguousarray(dataset.y_test, dtype=np.int64),
        "class_names": np.array(dataset.class_names, dtype=np.str_),
        "name": np.array(dataset.name, dtype=np.str_),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, arr in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue(), compresslevel=9)
    except OSError as e:
        raise DatasetError(f"{path}: cannot write: {e.strerror or e}") from None


# --------------------------------------------------------------------------------------------
# Loading, splitting, checks


def _check_splits(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray,
                  class_names: Sequence[str], where: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_tr, x_te = np.asarray(x_tr), np.asarray(x_te)
    y_tr, y_te = np.asarray(y_tr), np.asarray(y_te)
    for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if x.ndim < 2:
            raise DatasetError(f"{where}: x_{split} must be [N, ...] with at least 2 dimensions, "
                               f"got {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DatasetError(f"{where}: y_{split} shape {y.shape} does not match x_{split} shape "
                               f"{x.shape}")
        if y.size and y.dtype.kind not in "iu":
            raise DatasetError(f"{where}: y_{split} must hold integer class indices, got dtype "
                               f"{y.dtype}")
        if x.shape[0] == 0:
            raise DatasetError(f"{where}: empty dataset: the {split} split has no samples")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DatasetError(f"{where}: train/test shape mismatch: train samples are "
                           f"{x_tr.shape[1:]}, "
                           f"test samples are {x_te.shape[1:]}")
    if len(class_names) == 0:
        raise DatasetError(f"{where}: no class names")
    n = len(class_names)
    for split, y in (("train", y_tr), ("test", y_te)):
        if y.min() < 0 or y.max() >= n:
            raise DatasetError(f"{where}: y_{split} has class index "
                               f"{int(y.min() if y.min() < 0 else y.max())} "
                               f"outside 0..{n - 1} ({n} class names)")
    return (np.ascontiguousarray(x_tr, dtype=np.float32),
            np.ascontiguousarray(y_tr, dtype=np.int64),
            np.ascontiguousarray(x_te, dtype=np.float32),
            np.ascontiguousarray(y_te, dtype=np.int64))


def _stratified_split(y: np.ndarray, test_fraction: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices (each in file order), taking ~test_fraction of every class for test."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(y):  # sorted, so the RNG stream is consumed in a fixed order
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        # Every class keeps >= 1 training sample; classes with >= 2 samples get >= 1 test sample.
        n_test = min(max(int(round(idx.size * test_fraction)), 1 if idx.size >= 2 else 0),
                     idx.size - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _split_dataset(path: Path, x: np.ndarray, y: np.ndarray, class_names: list[str], name: str,
                   test_fraction: float, seed: int) -> Dataset:
    if x.shape[0] == 0:
        raise DatasetError(f"{path}: empty dataset: no samples")
    if x.shape[0] != y.shape[0]:
        raise DatasetError(f"{path}: {x.shape[0]} samples but {y.shape[0]} labels")
    tr, te = _stratified_split(y, test_fraction, seed)
    if te.size == 0:
        raise DatasetError(f"{path}: too few samples ({x.shape[0]}) to split off a test set "
                           "(need at least 2 samples of some class)")
    x_tr, y_tr, x_te, y_te = _check_splits(x[tr], y[tr], x[te], y[te], class_names, where=str(path))
    return Dataset(x_tr, y_tr, x_te, y_te, class_names, name)


def _base_name(path: Path) -> str:
    if path.suffix.lower() != ".ts":
        return path.stem
    matches = list(_SPLIT_SUFFIX.finditer(path.stem))
    return path.stem[:matches[-1].start()] + path.stem[matches[-1].end():] if matches else path.stem


def _load_ts(path: Path, test_fraction: float, seed: int) -> Dataset:
    # The last _TRAIN/_TEST wins, so "A_TEST_B_TRAIN.ts" pairs with "A_TEST_B_TEST.ts".
    matches = list(_SPLIT_SUFFIX.finditer(path.stem))
    m = matches[-1] if matches else None
    if m is None:
        x, labels, declared = read_ts(path)
        class_names = declared if declared is not None else sorted(set(labels), key=_label_sort_key)
        y = np.array([class_names.index(s) for s in labels], dtype=np.int64)
        return _split_dataset(path, x, y, class_names, path.stem, test_fraction, seed)
    other = "TEST" if m.group(1) == "TRAIN" else "TRAIN"
    sibling = path.with_name(path.stem[:m.start(1)] + other + path.stem[m.end(1):] + path.suffix)
    train_path, test_path = (path, sibling) if m.group(1) == "TRAIN" else (sibling, path)
    if not sibling.exists():
        raise DatasetError(f"{path}: the {other} split {sibling} was not found "
                           f"(a *_{m.group(1)}.ts file is loaded together with its *_{other}.ts "
                           "sibling)")
    x_tr, lab_tr, decl_tr = read_ts(train_path)
    x_te, lab_te, decl_te = read_ts(test_path)
    if decl_tr is not None and decl_te is not None and set(decl_tr) != set(decl_te):
        raise DatasetError(f"{test_path}: @classLabel list {decl_te} differs from {train_path}'s "
                           f"{decl_tr}")
    decl = decl_tr if decl_tr is not None else decl_te
    class_names = (decl if decl is not None
                   else sorted(set(lab_tr) | set(lab_te), key=_label_sort_key))
    for p, labs in ((train_path, lab_tr), (test_path, lab_te)):
        for s in labs:
            if s not in class_names:
                raise DatasetError(f"{p}: class label {s!r} is not in {class_names}")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DatasetError(f"{test_path}: train/test shape mismatch: {train_path.name} series are "
                           f"{x_tr.shape[1]} channels x {x_tr.shape[2]} steps, {test_path.name} "
                           f"series are {x_te.shape[1]} x {x_te.shape[2]}")
    index = {s: i for i, s in enumerate(class_names)}
    y_tr = np.array([index[s] for s in lab_tr], dtype=np.int64)
    y_te = np.array([index[s] for s in lab_te], dtype=np.int64)
    return Dataset(x_tr, y_tr, x_te, y_te, list(class_names), _base_name(path))


def _load_csv(path: Path, test_fraction: float, seed: int) -> Dataset:
    x, labels = _read_csv(path)
    class_names = sorted(set(labels), key=_label_sort_key)
    index = {s: i for i, s in enumerate(class_names)}
    y = np.array([index[s] for s in labels], dtype=np.int64)
    return _split_dataset(path, x, y, class_names, path.stem, test_fraction, seed)


def load_dataset(path: str | Path, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Load a `.ts` (a *_TRAIN/*_TEST pair or a single file), `.npz` or `.csv` dataset.

    Files without a predefined split are split deterministically (by `seed`), stratified by class.
    """
    path = Path(path)
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"{path}: test_fraction must be between 0 and 1, got {test_fraction}")
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    ext = path.suffix.lower()
    if ext == ".ts":
        return _load_ts(path, test_fraction, seed)
    if ext == ".npz":
        return _read_npz(path, test_fraction, seed)
    if ext == ".csv":
        return _load_csv(path, test_fraction, seed)
    raise DatasetError(f"{path}: unknown extension {repr(ext) if ext else '(none)'}: expected .ts, "
                       ".npz or .csv")


def standardize(dataset: Dataset) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Per-channel (axis 1) standardization with statistics of the TRAIN split only.

    Test statistics must not leak into training; the device applies the same (mean, std) to the
    samples it receives. Returns (standardized copy, mean [C], std [C]) as float32.
    """
    x = dataset.x_train.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))  # everything except the channel/feature axis
    mean = x.mean(axis=axes)
    std = x.std(axis=axes)
    std = np.where(std < _STD_EPS, 1.0, std)
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    m, s = mean.reshape(bshape), std.reshape(bshape)
    out = Dataset(
        x_train=((dataset.x_train - m) / s).astype(np.float32),
        y_train=dataset.y_train.copy(),
        x_test=((dataset.x_test - m) / s).astype(np.float32),
        y_test=dataset.y_test.copy(),
        class_names=list(dataset.class_names),
        name=dataset.name,
    )
    return out, mean.astype(np.float32), std.astype(np.float32)


# --------------------------------------------------------------------------------------------
# CLI


def _describe(ds: Dataset) -> str:
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=ds.num_classes)
    classes = ", ".join(f"{i}={c} ({n} samples)"
                        for i, (c, n) in enumerate(zip(ds.class_names, counts, strict=True)))
    return (f"{ds.name}: train x {ds.x_train.shape}, test x {ds.x_test.shape}, "
            f"sample shape {ds.sample_shape}, {ds.num_classes} classes: {classes}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyhost.datasets",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    conv = sub.add_parser("convert",
                          help="convert a .ts/.csv/.npz dataset to the bundled .npz format")
    conv.add_argument("input", type=Path, help="dataset file (.ts, .csv or .npz)")
    conv.add_argument("output", type=Path, help="output .npz")
    conv.add_argument("--test-fraction", type=float, default=0.25,
                      help="test share when the input has no predefined split (default 0.25)")
    conv.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    args = parser.parse_args(argv)
    try:
        ds = load_dataset(args.input, test_fraction=args.test_fraction, seed=args.seed)
        save_npz(ds, args.output)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(_describe(ds))
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
