"""Tests of tinyhost.datasets (readers, splits, standardize, CLI) and of the demo model's layer
set."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from tinyhost.datasets import (
    Dataset,
    DatasetError,
    load_dataset,
    main,
    read_ts,
    save_npz,
    standardize,
)
from tinyhost.demo import basicmotions_model

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"
BM_TRAIN = SHARED_DATA / "BasicMotions_TRAIN.ts"
BM_TEST = SHARED_DATA / "BasicMotions_TEST.ts"
BUNDLED = Path(__file__).parents[2] / "host" / "tinyhost" / "demo" / "basicmotions.npz"
BM_CLASSES = ["Standing", "Running", "Walking", "Badminton"]

needs_shared = pytest.mark.skipif(not BM_TRAIN.is_file() or not BM_TEST.is_file(),
                                  reason=f"real BasicMotions data not found in {SHARED_DATA}")

TS_HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true b a
@data
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def toy_ts(tmp_path: Path, name: str = "toy.ts", rows: list[str] | None = None,
           header: str = TS_HEADER) -> Path:
    rows = rows if rows is not None else [
        "1,2,3:4,5,6:a", "7,8,9:10,11,12:b", "1.5,2.5,3.5:-1,-2,-3e0:a", "0,0,0:1,1,1:b",
        "2,2,2:3,3,3:a", "9,9,9:8,8,8:b", "1,1,1:1,1,1:a", "5,5,5:5,5,5:b",
    ]
    return write(tmp_path / name, header + "\n".join(rows) + "\n")


def error_of(path: Path, **kw: object) -> str:
    with pytest.raises(DatasetError) as ei:
        load_dataset(path, **kw)  # type: ignore[arg-type]
    return str(ei.value)


# ---------------------------------------------------------------- real data


@needs_shared
def test_read_ts_basicmotions() -> None:
    x, labels, declared = read_ts(BM_TRAIN)
    assert x.shape == (40, 6, 100) and x.dtype == np.float32
    assert declared == BM_CLASSES
    assert sorted(set(labels)) == sorted(BM_CLASSES)
    assert all(labels.count(c) == 10 for c in BM_CLASSES)
    # First value of the first series and last value/label of the last series, as in the file text.
    assert x[0, 0, 0] == np.float32(0.079106)
    assert x[-1, -1, -1] == np.float32(0.428803) and labels[-1] == "Badminton"


@needs_shared
@pytest.mark.parametrize("which", [BM_TRAIN, BM_TEST])
def test_load_basicmotions_pair(which: Path) -> None:
    ds = load_dataset(which)  # either file of the pair loads the same split
    assert ds.name == "BasicMotions"
    assert ds.class_names == BM_CLASSES and ds.num_classes == 4 and ds.sample_shape == (6, 100)
    assert ds.x_train.shape == ds.x_test.shape == (40, 6, 100)
    assert ds.y_train.dtype == np.int64 and np.bincount(ds.y_train).tolist() == [10] * 4
    x_te, lab_te, _ = read_ts(BM_TEST)
    np.testing.assert_array_equal(ds.x_test, x_te)
    assert [ds.class_names[i] for i in ds.y_test] == lab_te


@needs_shared
def test_bundled_npz_equals_ts() -> None:
    bundled = load_dataset(BUNDLED)
    ref = load_dataset(BM_TRAIN)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(bundled, key), getattr(ref, key))
    assert bundled.class_names == ref.class_names and bundled.name == ref.name


def test_bundled_npz_is_raw_and_compact() -> None:
    ds = load_dataset(BUNDLED)
    assert ds.x_train.shape == (40, 6, 100) and ds.class_names == BM_CLASSES
    with np.load(BUNDLED) as z:
        assert z["x_train"].dtype == np.float32 and z["y_train"].dtype == np.int64
    assert abs(float(ds.x_train[:, 0].mean()) - 2.55) < 0.01  # raw accelerometer, not standardized
    assert BUNDLED.stat().st_size < 300_000


# ---------------------------------------------------------------- .ts synthetic


def test_ts_single_file_split(tmp_path: Path) -> None:
    ds = load_dataset(toy_ts(tmp_path), test_fraction=0.25, seed=0)
    assert ds.class_names == ["b", "a"]  # @classLabel declaration order, not sorted
    assert ds.x_train.shape == (6, 2, 3) and ds.x_test.shape == (2, 2, 3)
    assert sorted(ds.y_test.tolist()) == [0, 1]  # stratified: one of each class
    x, labels, _ = read_ts(tmp_path / "toy.ts")
    np.testing.assert_array_equal(x[2], [[1.5, 2.5, 3.5], [-1, -2, -3]])
    # Every sample lands in exactly one split.
    all_x = np.concatenate([ds.x_train, ds.x_test]).reshape(8, -1)
    assert sorted(map(tuple, all_x.tolist())) == sorted(map(tuple, x.reshape(8, -1).tolist()))


def test_split_deterministic_and_seeded(tmp_path: Path) -> None:
    p = toy_ts(tmp_path)
    a, b = load_dataset(p, seed=3), load_dataset(p, seed=3)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    tests = {load_dataset(p, seed=s).x_test.tobytes() for s in range(8)}
    assert len(tests) > 1  # the seed matters


def test_ts_pair_with_sibling_and_no_declared_labels(tmp_path: Path) -> None:
    header = "@problemName Toy\n@data\n"
    toy_ts(tmp_path, "Toy_TRAIN.ts", ["1,2:3,4:walk", "5,6:7,8:run"], header)
    toy_ts(tmp_path, "Toy_TEST.ts", ["1,1:1,1:run", "2,2:2,2:walk"], header)
    ds = load_dataset(tmp_path / "Toy_TEST.ts")
    assert ds.name == "Toy" and ds.class_names == ["run", "walk"]  # sorted when not declared
    assert ds.y_train.tolist() == [1, 0] and ds.y_test.tolist() == [0, 1]


def test_ts_crlf_bom_blank_lines_and_case(tmp_path: Path) -> None:
    text = ("\ufeff#c\r\n@CLASSLABEL true x y\r\n\r\n@DATA\r\n"
            "1,2:x\r\n\r\n3,4:y\r\n1,2:x\r\n3,4:y\r\n")
    p = tmp_path / "t.ts"
    p.write_bytes(text.encode("utf-8"))
    x, labels, declared = read_ts(p)
    assert x.shape == (4, 1, 2) and labels == ["x", "y", "x", "y"] and declared == ["x", "y"]


# ---------------------------------------------------------------- .csv and .npz synthetic


def test_csv_with_header_and_string_labels(tmp_path: Path) -> None:
    rows = ["ax,ay,activity"] + [f"{i},{-i}.5,{'run' if i % 2 else 'idle'}" for i in range(8)]
    ds = load_dataset(write(tmp_path / "d.csv", "\n".join(rows) + "\n"))
    assert ds.class_names == ["idle", "run"] and ds.sample_shape == (2,)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 8 and ds.x_train.dtype == np.float32
    assert sorted(ds.y_test.tolist()) == [0, 1]


def test_csv_no_header_numeric_labels_sort_by_value(tmp_path: Path) -> None:
    rows = [f"{i},{i * 2},{lab}" for i, lab in enumerate(["10", "2", "10", "2", "1", "1"])]
    ds = load_dataset(write(tmp_path / "d.csv", "\n".join(rows)))
    assert ds.class_names == ["1", "2", "10"]
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 6  # first row kept: it is numeric


def test_npz_split_keys_int_labels_kept(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.ones((4, 3)), y_train=np.array([0, 2, 2, 0]),
             x_test=np.zeros((2, 3)), y_test=np.array([2, 0]))
    ds = load_dataset(p)
    assert ds.class_names == ["0", "1", "2"] and ds.y_train.tolist() == [0, 2, 2, 0]
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64


def test_npz_x_y_is_split(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.arange(40, dtype=np.float64).reshape(10, 2, 2), y=np.array([0, 1] * 5),
             class_names=np.array(["no", "yes"]))
    ds = load_dataset(p, test_fraction=0.4)
    assert ds.class_names == ["no", "yes"] and ds.x_test.shape == (4, 2, 2)
    assert np.bincount(ds.y_test).tolist() == [2, 2]


def test_save_npz_roundtrip_and_reproducible(tmp_path: Path) -> None:
    ds = load_dataset(toy_ts(tmp_path))
    save_npz(ds, tmp_path / "a.npz")
    save_npz(ds, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = load_dataset(tmp_path / "a.npz")
    assert back.class_names == ds.class_names and back.name == ds.name
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, key), getattr(ds, key))


def test_cli_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.npz"
    assert main(["convert", str(toy_ts(tmp_path)), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(2, 3)" in printed and "b" in printed and out.is_file()
    assert main(["convert", str(tmp_path / "nope.ts"), str(out)]) == 1
    assert "file not found" in capsys.readouterr().err


# ---------------------------------------------------------------- standardize


def test_standardize_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(0)
    x_tr = rng.normal(5.0, 2.0, size=(50, 3, 20)).astype(np.float32)
    x_tr[:, 2] = 7.0  # a constant channel must not divide by ~0
    x_te = rng.normal(100.0, 1.0, size=(10, 3, 20)).astype(np.float32)
    ds = Dataset(x_tr, np.zeros(50, np.int64), x_te, np.zeros(10, np.int64), ["c"], "t")
    out, mean, std = standardize(ds)
    assert mean.shape == std.shape == (3,) and mean.dtype == np.float32
    np.testing.assert_allclose(out.x_train[:, :2].mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.x_train[:, :2].std(axis=(0, 2)), 1.0, atol=1e-4)
    assert std[2] == 1.0 and np.all(out.x_train[:, 2] == 0.0)
    np.testing.assert_allclose(out.x_test, (x_te - mean[None, :, None]) / std[None, :, None],
                               rtol=1e-5)
    assert out.x_test[:, :2].mean() > 10  # test statistics did not leak in
    assert ds.x_train[0, 0, 0] == x_tr[0, 0, 0]  # input left untouched


def test_standardize_per_feature_2d() -> None:
    x = np.array([[0.0, 10.0], [2.0, 30.0]], np.float32)
    ds = Dataset(x, np.array([0, 1]), x.copy(), np.array([0, 1]), ["a", "b"], "t")
    out, mean, std = standardize(ds)
    np.testing.assert_allclose(mean, [1.0, 20.0])
    np.testing.assert_allclose(out.x_train, [[-1, -1], [1, 1]])


# ---------------------------------------------------------------- errors


def test_error_missing_file(tmp_path: Path) -> None:
    msg = error_of(tmp_path / "nope.ts")
    assert "nope.ts" in msg and "not found" in msg


def test_error_unknown_extension(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path / "d.txt", "1,2,a\n"))
    assert "d.txt" in msg and "unknown extension" in msg and ".txt" in msg


def test_error_missing_sibling(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, "Toy_TRAIN.ts"))
    assert "Toy_TEST.ts" in msg and "not found" in msg


@pytest.mark.parametrize("header,expect", [
    ("@classLabel maybe a b\n@data\n", "@classLabel expects true or false"),
    ("@classLabel true\n@data\n", "lists no labels"),
    ("@dimensions two\n@data\n", "@dimensions expects a positive integer"),
    ("@classLabel true a a\n@data\n", "twice"),
    ("@timeStamps true\n@data\n", "@timeStamps true"),
    ("@classLabel false\n@data\n", "no class labels"),
])
def test_error_malformed_header(tmp_path: Path, header: str, expect: str) -> None:
    msg = error_of(write(tmp_path / "h.ts", "#c\n" + header + "1,2:a\n"))
    assert "h.ts:2" in msg and expect in msg


def test_error_no_data_tag_and_data_before_header(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path / "h.ts", "@classLabel true a\n"))
    assert "h.ts" in msg and "no @data" in msg
    msg = error_of(write(tmp_path / "g.ts", "1,2:a\n@data\n"))
    assert "g.ts:1" in msg and "data before @data" in msg


def test_error_ragged_series(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=["1,2,3:4,5,6:a", "1,2,3:4,5:b"], header="@data\n"))
    assert "toy.ts:3" in msg and "ragged" in msg and "[3, 2]" in msg


def test_error_unequal_lengths(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=["1,2,3:4,5,6:a", "1,2:4,5:b"], header="@data\n"))
    assert "toy.ts:3" in msg and "unequal lengths" in msg and "line 2" in msg


def test_error_declared_length_and_dimensions(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=["1,2:4,5:a"]))
    assert "toy.ts:11" in msg and "@seriesLength is 3" in msg
    msg = error_of(toy_ts(tmp_path, rows=["1,2,3:a"]))
    assert "toy.ts:11" in msg and "@dimensions is 2" in msg


def test_error_non_numeric(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=["1,2,3:4,5,6:a", "1,2,3:4,x5,6:b"]))
    assert "toy.ts:12" in msg and "non-numeric" in msg and "'x5'" in msg and "channel 2" in msg


def test_error_missing_values(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=["1,?,3:4,5,6:a"]))
    assert "toy.ts:11" in msg and "missing value '?'" in msg
    msg = error_of(toy_ts(tmp_path, rows=["1,NaN,3:4,5,6:a"]))
    assert "toy.ts:11" in msg and "missing value" in msg


def test_error_label_not_declared(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=["1,2,3:4,5,6:a", "1,2,3:4,5,6:c"]))
    assert "toy.ts:12" in msg and "'c'" in msg and "@classLabel" in msg


def test_error_unlabelled_series(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=["1,2,3:4,5,6"], header="@data\n"))
    assert "toy.ts:2" in msg and "not a class label" in msg


def test_error_empty_dataset(tmp_path: Path) -> None:
    msg = error_of(toy_ts(tmp_path, rows=[]))
    assert "toy.ts" in msg and "empty dataset" in msg
    msg = error_of(write(tmp_path / "e.csv", "a,b,label\n\n"))
    assert "e.csv" in msg and "empty dataset" in msg


def test_error_train_test_shape_mismatch(tmp_path: Path) -> None:
    toy_ts(tmp_path, "S_TRAIN.ts", ["1,2,3:4,5,6:a", "1,2,3:4,5,6:b"], "@data\n")
    toy_ts(tmp_path, "S_TEST.ts", ["1,2:4,5:a", "1,2:4,5:b"], "@data\n")
    msg = error_of(tmp_path / "S_TRAIN.ts")
    assert "S_TEST.ts" in msg and "train/test shape mismatch" in msg
    p = tmp_path / "m.npz"
    np.savez(p, x_train=np.ones((2, 3)), y_train=np.array([0, 1]), x_test=np.ones((2, 4)),
             y_test=np.array([0, 1]))
    msg = error_of(p)
    assert "m.npz" in msg and "train/test shape mismatch" in msg


def test_error_npz_missing_keys_and_not_npz(tmp_path: Path) -> None:
    p = tmp_path / "k.npz"
    np.savez(p, x_train=np.ones((2, 3)), y_train=np.array([0, 1]))
    msg = error_of(p)
    assert "k.npz" in msg and "missing keys" in msg and "x_test" in msg and "'x_train'" in msg
    msg = error_of(write(tmp_path / "t.npz", "not a zip"))
    assert "t.npz" in msg and "not a .npz" in msg


def test_error_npz_bad_labels(tmp_path: Path) -> None:
    p = tmp_path / "l.npz"
    np.savez(p, x=np.ones((4, 3)), y=np.array([0, 1, 2, 3]), class_names=np.array(["a", "b"]))
    msg = error_of(p)
    assert "l.npz" in msg and "outside 0..1" in msg
    np.savez(p, x=np.ones((4, 3)), y=np.array([0.5, 1, 0, 1]))
    assert "integer class indices" in error_of(p)
    np.savez(p, x=np.full((4, 3), np.nan), y=np.array([0, 1, 0, 1]))
    assert "missing (NaN)" in error_of(p)


def test_error_csv_problems(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path / "r.csv", "1,2,a\n3,4,b\n5,b\n"))
    assert "r.csv:3" in msg and "ragged row" in msg
    msg = error_of(write(tmp_path / "n.csv", "f1,f2,y\n1,2,a\n3,oops,b\n"))
    assert "n.csv:3" in msg and "non-numeric value 'oops'" in msg
    msg = error_of(write(tmp_path / "q.csv", "1,2,a\n3,?,b\n"))
    assert "q.csv:2" in msg and "missing value '?'" in msg
    msg = error_of(write(tmp_path / "o.csv", "1,2,a\n1x,2,b\n3,4,a\n5,6,b\n"))
    assert "o.csv:2" in msg and "non-numeric" in msg  # a typo in a data row is not a header
    # one sample per class: nothing to test on
    msg = error_of(write(tmp_path / "s.csv", "1,a\n2,b\n"))
    assert "s.csv" in msg and "too few samples" in msg


# ---------------------------------------------------------------- demo model

ALLOWED_LAYERS = (nn.Conv1d, nn.ReLU, nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.Flatten,
                  nn.Linear)


def test_demo_model_layers_and_example_input() -> None:
    model, example = basicmotions_model.make_model()
    assert tuple(example.shape) == (1, 6, 100)
    leaves = [m for m in model.modules() if not list(m.children())]
    assert leaves and all(type(m) in ALLOWED_LAYERS for m in leaves), [
        type(m).__name__ for m in leaves]
    for m in leaves:
        if isinstance(m, nn.AdaptiveAvgPool1d):
            assert m.output_size in (1, (1,))
        if isinstance(m, nn.Conv1d):
            assert m.groups == 1 and m.stride == (1,) and m.dilation == (1,)
    assert tuple(model(example).shape) == (1, 4)
    assert sum(p.numel() for p in model.parameters()) < 20_000
    assert 0 < basicmotions_model.DEFAULT_LR < 1 and 1 <= basicmotions_model.DEFAULT_EPOCHS <= 15


def test_demo_model_deterministic_init() -> None:
    (a, xa), (b, xb) = basicmotions_model.make_model(), basicmotions_model.make_model()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert (pa == pb).all()
    assert (xa == xb).all()


def test_demo_model_trains_with_defaults() -> None:
    """The measured defaults still work: batch-1 plain SGD on the standardized bundled data."""
    import torch

    ds, _, _ = standardize(load_dataset(BUNDLED))
    x_tr, y_tr, x_te, y_te = map(torch.from_numpy, (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
    model, _ = basicmotions_model.make_model()
    opt = torch.optim.SGD(model.parameters(), lr=basicmotions_model.DEFAULT_LR, momentum=0.0)
    rng = np.random.default_rng(0)
    for _ in range(basicmotions_model.DEFAULT_EPOCHS):
        for i in rng.permutation(len(x_tr)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_tr[i:i + 1]), y_tr[i:i + 1]).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(x_te).argmax(1) == y_te).float().mean().item()
    assert acc >= 0.9
