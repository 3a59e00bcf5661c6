"""Sample shapes against the plan's input shape (tinyhost/layout.py, `--layout`): NHWC images and
NWC sequences are refused with the disagreeing axes named, or converted with --layout; flat .csv
rows take the plan's shape."""
from __future__ import annotations

import numpy as np
import pytest

from tinyhost.datasets import Dataset, DatasetError, standardize
from tinyhost.layout import check_shape, fit_to_plan


def dataset(shape: tuple[int, ...], n: int = 6) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    return Dataset(x, np.arange(n) % 2, x[:2].copy(), np.arange(2) % 2, ["a", "b"], "t")


def test_nhwc_into_an_nchw_plan_is_refused_with_the_axes() -> None:
    with pytest.raises(DatasetError) as ei:
        fit_to_plan(dataset((8, 8, 3)), (3, 8, 8), None)
    msg = str(ei.value)
    assert "dataset samples are (8, 8, 3) (192 values), the plan's input is (3, 8, 8)" in msg
    assert "axis 0 (C) is 8 in the data, 3 in the plan" in msg
    assert "axis 2 (W) is 3 in the data, 8 in the plan" in msg
    assert "--layout nhwc" in msg


@pytest.mark.parametrize("layout,shape,need,perm", [
    ("nhwc", (5, 7, 3), (3, 5, 7), (0, 3, 1, 2)),
    ("nwc", (9, 2), (2, 9), (0, 2, 1)),
    ("nchw", (3, 5, 7), (3, 5, 7), (0, 1, 2, 3)),
    ("ncw", (2, 9), (2, 9), (0, 1, 2)),
])
def test_layout_converts_to_channels_first(layout: str, shape, need, perm) -> None:
    ds = dataset(shape)
    out = fit_to_plan(ds, need, layout)
    np.testing.assert_array_equal(out.x_train, ds.x_train.transpose(perm))
    np.testing.assert_array_equal(out.x_test, ds.x_test.transpose(perm))
    assert out.x_train.flags.c_contiguous and out.sample_shape == need
    # standardization then runs over the real channels: per-channel mean 0
    mean = standardize(out)[0].x_train.mean(axis=(0, *range(2, len(need) + 1)))
    np.testing.assert_allclose(mean, 0, atol=1e-5)


def test_layout_of_the_wrong_rank_is_refused() -> None:
    with pytest.raises(DatasetError, match="--layout nhwc needs 4-d data"):
        fit_to_plan(dataset((9, 2)), (2, 9), "nhwc")
    with pytest.raises(DatasetError, match=r"axis 0 \(C\) is 9 in the data, 2 in the plan"):
        fit_to_plan(dataset((9, 2)), (2, 9), "ncw")


def test_flat_rows_take_the_plans_shape() -> None:
    ds = dataset((12,))
    out = fit_to_plan(ds, (3, 4), None)
    np.testing.assert_array_equal(out.x_train, ds.x_train.reshape(-1, 3, 4))
    with pytest.raises(DatasetError, match=r"\(12,\) \(12 values\), the plan's input is \(3, 5\)"):
        fit_to_plan(ds, (3, 5), None)


def test_same_count_other_rank_says_reshape() -> None:
    with pytest.raises(DatasetError, match=r"2 axes against the plan's 3; reshape the data"):
        check_shape(dataset((6, 4)), (2, 3, 4))


def test_axes_of_size_one_may_differ() -> None:
    """(C, L) data into an int8 plan's (C, 1, L) input: the same values in the same order."""
    ds = dataset((6, 10))
    out = fit_to_plan(ds, (6, 1, 10), None)
    np.testing.assert_array_equal(out.x_train, ds.x_train.reshape(-1, 6, 1, 10))
    with pytest.raises(DatasetError, match="pass --layout nwc"):
        fit_to_plan(dataset((10, 6)), (6, 1, 10), None)
    np.testing.assert_array_equal(fit_to_plan(dataset((10, 6)), (6, 1, 10), "nwc").x_train,
                                  dataset((10, 6)).x_train.transpose(0, 2, 1).reshape(-1, 6, 1, 10))
