"""tinyhost.fleet without Flower running: the requantization of the fleet's average (the plan's
update rule, docs/fleet.md) and the shards of --split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyhost.datasets import Dataset, DatasetError
from tinyhost.dtypes import DType
from tinyhost.fleet.params import requantize, to_dtype
from tinyhost.fleet.shards import SplitSpec, split
from tinyhost.plan import Bindings, Plan, Tensor, TensorKind


def _plan(tensors: list[tuple[str, DType, tuple[int, ...]]]) -> Plan:
    ts = [Tensor(n, d, s, TensorKind.PARAM_TRAINABLE) for n, d, s in tensors]
    return Plan(arena_size=0, n_forward=0, bindings=Bindings(-1, -1, -1, -1, -1), num_classes=2,
                default_lr=0.1, tensors=ts, ops=[], blob=b"")


def test_int8_rows_round_half_to_even_and_clip():
    # the update rule's rounding: rint (halves to even), clip to the symmetric [-127, 127]
    mean = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 126.6, 200.0, -300.0, 3.49])
    got = to_dtype(mean, np.int8)
    assert got.dtype == np.int8
    assert got.tolist() == [0, 2, 2, 0, -2, 127, 127, -127, 3]


def test_int32_bias_saturates():
    got = to_dtype(np.array([2.0**31 + 5, -2.0**31 - 5, 10.5, 11.5]), np.int32)
    assert got.tolist() == [2**31 - 1, -2**31, 10, 12]


def test_nonfinite_average_refused():
    with pytest.raises(ValueError, match="not finite"):
        to_dtype(np.array([np.nan]), np.float32)


def test_requantize_matches_an_independent_float64_average():
    rng = np.random.default_rng(3)
    plan = _plan([("w", DType.S8, (4, 3)), ("b", DType.S32, (4,)), ("fc", DType.F32, (2, 4))])
    devices = [{"w": rng.integers(-127, 128, (4, 3)).astype(np.int8),
                "b": rng.integers(-2**20, 2**20, 4).astype(np.int32),
                "fc": rng.standard_normal((2, 4)).astype(np.float32)} for _ in range(5)]
    weights = rng.integers(1, 50, 5).astype(float)
    avg = {k: sum(w * d[k].astype(np.float64) for w, d in zip(weights, devices, strict=True))
           / weights.sum() for k in devices[0]}
    out = requantize(plan, avg)
    assert out["w"].dtype == np.int8 and out["b"].dtype == np.int32
    assert out["fc"].dtype == np.float32
    # independent: the exact rational mean in Python floats, then round half to even
    for k in ("w", "b"):
        exact = [sum(w * int(d[k].reshape(-1)[j]) for w, d in zip(weights, devices, strict=True))
                 / weights.sum() for j in range(devices[0][k].size)]
        assert out[k].reshape(-1).tolist() == [int(round(v)) for v in exact]
    np.testing.assert_allclose(out["fc"], avg["fc"].astype(np.float32), rtol=0, atol=0)


def test_master_pair_derives_the_integer_tensor_from_the_averaged_master():
    """--int8-update master: the int8 rows are clip(rint(master)) of the averaged master, not the
    mean of the devices' rounded rows (which would disagree with the master)."""
    plan = _plan([("w", DType.S8, (3,)), ("w.master", DType.F32, (3,))])
    masters = [np.array([0.4, 10.4, 200.0], np.float32), np.array([0.4, 10.4, 100.0], np.float32)]
    rows = [np.clip(np.rint(m), -127, 127).astype(np.int8) for m in masters]
    avg = {"w": (rows[0].astype(np.float64) + rows[1]) / 2,
           "w.master": (masters[0].astype(np.float64) + masters[1]) / 2}
    out = requantize(plan, avg)
    assert out["w.master"].tolist() == pytest.approx([0.4, 10.4, 150.0], abs=1e-6)
    assert out["w"].tolist() == [0, 10, 127]  # from the master; the rows' mean would also be so
    # a case where they differ: masters 0.6 and 0.6 round to 1 each; mean of master 0.6 -> 1,
    # masters 0.4 and 0.8: rows 0 and 1 (mean 0.5 -> 0), master mean 0.6 -> 1
    avg2 = {"w": np.array([0.5, 0, 0]), "w.master": np.array([0.6, 0, 0])}
    assert requantize(plan, avg2)["w"].tolist() == [1, 0, 0]


def test_requantize_names_a_missing_tensor():
    plan = _plan([("w", DType.S8, (3,))])
    with pytest.raises(ValueError, match="lacks the trainable tensors"):
        requantize(plan, {})


def _dataset(n_train: int = 200, n_test: int = 80, classes: int = 10) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(rng.standard_normal((n_train, 1, 4)).astype(np.float32),
                   np.arange(n_train) % classes, rng.standard_normal((n_test, 1, 4)).astype(
                       np.float32), np.arange(n_test) % classes,
                   [str(c) for c in range(classes)], "toy")


@pytest.mark.parametrize("kind", ["iid", "by-label"])
def test_shards_partition_train_and_test(kind):
    ds = _dataset()
    shards = split("toy.npz", ds, 8, SplitSpec(kind, seed=1))
    assert len(shards) == 8
    assert sum(len(s.y_train) for s in shards) == 200
    assert sum(len(s.y_test) for s in shards) == 80
    # every sample exactly once: compare sorted multisets of (x, y)
    for part in ("train", "test"):
        xs = np.concatenate([getattr(s, f"x_{part}") for s in shards]).reshape(-1, 4)
        ref = getattr(ds, f"x_{part}").reshape(-1, 4)
        assert sorted(map(tuple, xs.tolist())) == sorted(map(tuple, ref.tolist()))
    labels = [len(np.unique(s.y_train)) for s in shards]
    if kind == "by-label":
        assert max(labels) <= 4 and np.mean(labels) <= 3  # non-IID: a few labels per device
    else:
        assert min(labels) >= 8  # iid: about every label everywhere


def test_by_group_keeps_groups_whole(tmp_path: Path):
    ds = _dataset()
    path = tmp_path / "g.npz"
    g_tr, g_te = np.arange(200) // 20, np.arange(80) // 8  # 10 subjects
    np.savez(path, subject_train=g_tr, subject_test=g_te)
    shards = split(str(path), ds, 4, SplitSpec("by-group", "subject"))
    assert sum(len(s.y_train) for s in shards) == 200
    group_of = {tuple(x.reshape(-1).tolist()): g for x, g in zip(ds.x_train, g_tr, strict=True)}
    owners: dict[int, set[int]] = {}
    for d, s in enumerate(shards):
        for x in s.x_train:
            owners.setdefault(group_of[tuple(x.reshape(-1).tolist())], set()).add(d)
    assert len(owners) == 10 and all(len(o) == 1 for o in owners.values())  # whole groups
    with pytest.raises(DatasetError, match="no arrays person_train"):
        split(str(path), ds, 4, SplitSpec("by-group", "person"))
    with pytest.raises(DatasetError, match="fewer than the 12 devices"):
        split(str(path), ds, 12, SplitSpec("by-group", "subject"))


def test_too_many_devices_named():
    with pytest.raises(DatasetError, match="too few"):
        split("toy.npz", _dataset(n_train=5, n_test=5, classes=5), 8, SplitSpec("iid"))


def test_fedprox_proximal_step_contracts_towards_the_global_model():
    from tinyhost.fleet.client import _proximal
    plan = _plan([("w", DType.F32, (2,)), ("q", DType.S8, (2,))])
    g = {"w": np.array([0.0, 1.0], np.float32), "q": np.array([0, 100], np.int8)}
    local = {"w": np.array([1.0, 3.0], np.float32), "q": np.array([10, 80], np.int8)}
    out = _proximal(plan, local, g, mu=0.5, lr=0.1, steps=4)
    c = 0.95 ** 4  # (1 - lr mu)^steps
    np.testing.assert_allclose(out["w"], [c, 1 + 2 * c], rtol=1e-6)
    assert out["q"].dtype == np.int8 and out["q"].tolist() == [round(10 * c), round(100 - 20 * c)]
    assert _proximal(plan, local, g, mu=0.0, lr=0.1, steps=4) is local


DEMO = Path(__file__).resolve().parents[2] / "host" / "tinyhost" / "demo"


@pytest.fixture(scope="module")
def demo_plan(tmp_path_factory) -> str:
    from tinyhost.cli import main
    path = str(tmp_path_factory.mktemp("fleet") / "p.ttp")
    assert main(["compile", f"{DEMO / 'basicmotions_model.py'}:make_model", "--update",
                 "last:1", "-o", path, "--json"]) == 0
    return path


def test_one_data_file_per_device(demo_plan, tmp_path):
    """--data a.npz,b.npz: device k gets all of file k (standardized with its own statistics)."""
    from tinyhost.datasets import load_dataset
    from tinyhost.fleet.shards import device_shard
    from tinyhost.plan import load_plan_file
    plan, _ = load_plan_file(demo_plan)
    ds = load_dataset(DEMO / "basicmotions.npz")
    files = []
    for k, part in enumerate((slice(0, 20), slice(20, 40))):
        files.append(str(tmp_path / f"dev{k}.npz"))
        np.savez(files[-1], x_train=ds.x_train[part], y_train=ds.y_train[part],
                 x_test=ds.x_test[part], y_test=ds.y_test[part])
    for k in range(2):
        shard = device_shard(",".join(files), plan, k, 2, SplitSpec("iid"))
        assert len(shard.y_train) == 20 and len(shard.y_test) == 20
        np.testing.assert_array_equal(shard.y_train, ds.y_train[20 * k:20 * (k + 1)])
        np.testing.assert_allclose(shard.x_train.mean(axis=(0, 2)), 0, atol=1e-5)
    with pytest.raises(ValueError, match="lists 2 files for 3 devices"):
        device_shard(",".join(files), plan, 0, 3, SplitSpec("iid"))


def test_client_app_applies_fedprox_config_from_the_message(demo_plan, monkeypatch):
    """Flower's FedProx puts `proximal-mu` in the train message's config; the ClientApp's train
    function (called here directly, no runtime) passes it to the local training: its reply is
    the plain local training's result pulled towards the global set by the proximal step."""
    from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from tinyhost.fleet import FleetConfig
    from tinyhost.fleet.app import client_handlers
    from tinyhost.fleet.client import _proximal, fit
    from tinyhost.fleet.params import initial_parameters
    from tinyhost.fleet.server import to_record
    from tinyhost.plan import load_plan_file

    plan, _ = load_plan_file(demo_plan)
    cfg = FleetConfig(plan=demo_plan, data=str(DEMO / "basicmotions.npz"), ports=["ref"] * 2,
                      split=SplitSpec("iid"), lr=0.05)
    g = {k: v + np.float32(0.5) for k, v in initial_parameters(plan).items()}
    train, _ = client_handlers(cfg)
    # what a Flower runtime sets for the process it runs a message in
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 7)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    msg = Message(RecordDict({"arrays": to_record(g), "config": ConfigRecord(
        {"server-round": 1, "proximal-mu": 2.0})}), dst_node_id=7, message_type=MessageType.TRAIN)
    ctx = Context(run_id=1, node_id=7, node_config={"partition-id": 1, "num-partitions": 2},
                  state=RecordDict(), run_config={})
    reply = train(msg, ctx)
    got = {k: v.numpy() for k, v in reply.content.array_records["arrays"].items()}
    plain, m = fit(cfg, 1, (1, 2), "ref", g, 1)
    steps = int(m["num-examples"])
    want = _proximal(plan, plain, g, 2.0, 0.05, steps)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
        assert not np.array_equal(got[k], plain[k])  # the proximal step did something
