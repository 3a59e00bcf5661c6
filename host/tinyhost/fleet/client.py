"""A device as a Flower client. `train` puts the global trainable set on the device (WRITE_TENSOR,
the set-parameters message), trains it on the device's own shard for E local epochs (the same loop
as `tinyhost train`), reads the trained set back (READ_TENSOR) and returns only that; `evaluate`
puts the global set on the device and runs on-device evaluation over the device's test shard.

The client keeps nothing between messages: each one opens the device, binds the plan (uploaded
only if the device does not run it yet) and writes the global parameters first, so a Flower
runtime may run any node's message in any worker process."""
from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from tinyhost.datasets import Dataset
from tinyhost.device import Device, connect
from tinyhost.fleet.config import FleetConfig
from tinyhost.fleet.params import to_dtype, wire_bytes
from tinyhost.fleet.shards import device_shard
from tinyhost.params import push_parameters
from tinyhost.plan import Plan, load_plan_file
from tinyhost.train import TrainConfig, check_dataset, evaluate, train


class DeviceFailed(RuntimeError):
    """A device that could not do its part of a round; the message names it."""


@functools.lru_cache(maxsize=4)
def _plan(path: str) -> tuple[Plan, bytes]:
    return load_plan_file(path)


@functools.lru_cache(maxsize=16)
def _shard(data: str, plan_path: str, device: int, devices: int, split: Any,
           normalize: bool) -> Dataset:
    plan, _ = _plan(plan_path)
    ds = device_shard(data, plan, device, devices, split, normalize)
    check_dataset(plan, ds)
    return ds


def _open(port: str, plan: Plan, data: bytes) -> Device:
    device = connect(port)
    try:
        device.load_plan(plan, data)
    except BaseException:
        device.close()
        raise
    return device


def _proximal(plan: Plan, local: dict[str, np.ndarray], global_: dict[str, np.ndarray],
              mu: float, lr: float, steps: int) -> dict[str, np.ndarray]:
    """FedProx's proximal term mu/2 |w - w_global|^2, applied on the host after the device's
    plain-SGD epoch: its gradient steps alone contract w - w_global by (1 - lr mu) per step, so
    an epoch of `steps` steps gives w_global + (1 - lr mu)^steps (w - w_global) (a splitting of
    the FedProx objective; the device itself runs plain SGD)."""
    if mu == 0 or steps == 0:
        return local
    c = (1.0 - lr * mu) ** steps
    return {k: to_dtype(global_[k].astype(np.float64)
                        + c * (v.astype(np.float64) - global_[k].astype(np.float64)),
                        v.dtype, k)
            for k, v in local.items()}


def _read(device: Device, plan: Plan) -> dict[str, np.ndarray]:
    return {plan.tensors[i].name: device.read_tensor(i) for i in plan.trainable}


def fit(cfg: FleetConfig, device_index: int, shard: tuple[int, int], port: str,
        global_params: dict[str, np.ndarray], server_round: int,
        proximal_mu: float = 0.0) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """One device's part of a round: its trained parameters and what it reports. `shard`:
    (k, n), the k-th of n shards of cfg.data ((0, 1): all of a device's own file)."""
    plan, data = _plan(cfg.plan)
    ds = _shard(cfg.data, cfg.plan, shard[0], shard[1], cfg.split, cfg.normalize)
    lr = plan.default_lr if cfg.lr is None else cfg.lr
    t0 = time.perf_counter()
    name = f"device {device_index} ({port})"
    try:
        device = _open(port, plan, data)
        try:
            push_parameters(device, plan, global_params)
            params, result = global_params, None
            for epoch in range(cfg.local_epochs):  # one call per epoch: FedProx's step between
                seed = cfg.seed + 1000 * server_round + 100 * device_index + epoch
                result = train(device, ds, TrainConfig(epochs=1, lr=lr, seed=seed,
                                                       progress=False))
                if result.interrupted:
                    raise DeviceFailed(f"{name}: local training stopped: {result.interrupted}")
                params = _read(device, plan)
                if proximal_mu:
                    params = _proximal(plan, params, global_params, proximal_mu, lr,
                                       len(result.records))
                    push_parameters(device, plan, params)
        finally:
            device.close()
    except DeviceFailed:
        raise
    except Exception as e:  # noqa: BLE001 - any device or link failure fails this device only
        raise DeviceFailed(f"{name}: {type(e).__name__}: {e}") from e
    assert result is not None
    losses = [r.loss for r in result.records]
    metrics = {
        "num-examples": float(len(ds.y_train)),
        "device": float(device_index),
        "train-loss": float(np.mean(losses)),
        "train-accuracy": float(result.train_accuracy[-1]),
        "local-test-accuracy": float(result.test_accuracy[-1]) if len(ds.y_test) else -1.0,
        "local-test-samples": float(len(ds.y_test)),
        "bytes-down": float(wire_bytes(global_params)),
        "bytes-up": float(wire_bytes(params)),
        "seconds": time.perf_counter() - t0,
    }
    return params, metrics


def evaluate_global(cfg: FleetConfig, device_index: int, shard: tuple[int, int], port: str,
                    global_params: dict[str, np.ndarray]) -> dict[str, float]:
    """The global model's accuracy on this device's test shard, evaluated on the device."""
    plan, data = _plan(cfg.plan)
    ds = _shard(cfg.data, cfg.plan, shard[0], shard[1], cfg.split, cfg.normalize)
    try:
        device = _open(port, plan, data)
        try:
            push_parameters(device, plan, global_params)
            acc, _ = evaluate(device, ds.x_test, ds.y_test, progress=False)
        finally:
            device.close()
    except Exception as e:  # noqa: BLE001
        raise DeviceFailed(f"device {device_index} ({port}): {type(e).__name__}: {e}") from e
    n = len(ds.y_test)
    return {"num-examples": float(n), "device": float(device_index), "accuracy": acc,
            "correct": float(round(acc * n)), "bytes-down": float(wire_bytes(global_params))}
