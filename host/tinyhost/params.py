"""Trained parameters back from a device: into a PyTorch state_dict (.pt) or raw arrays (.npz)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyhost.device import Device
from tinyhost.plan import Plan, TensorKind


def pull_parameters(device: Device, plan: Plan) -> dict[str, np.ndarray]:
    """Every parameter of the model by its state_dict name: trainable ones as the device holds
    them now, frozen ones from the plan (they never change)."""
    params = {}
    for i in plan.parameters:
        t = plan.tensors[i]
        params[t.name] = (device.read_tensor(i) if t.kind == TensorKind.PARAM_TRAINABLE
                          else plan.constant(i).copy())
    return params


def push_parameters(device: Device, plan: Plan, params: dict[str, np.ndarray]) -> list[str]:
    """Puts trained parameters back on a device (set-parameters): every trainable tensor of the
    plan from `params` (by state_dict name, e.g. what pull_parameters or a saved .npz gave), in
    the plan's dtype and shape. Frozen ones must equal the plan's: they are the plan. Returns the
    names written."""
    # optimizer state (`optim:...`, compile --momentum/--accumulate) that `params` lacks (a saved
    # state_dict has none) starts again from the plan's (zeros): a new accumulation cycle
    params = {**{plan.tensors[i].name: plan.constant(i) for i in plan.trainable
                 if plan.tensors[i].name.startswith("optim:")}, **params}
    missing = [plan.tensors[i].name for i in plan.trainable if plan.tensors[i].name not in params]
    if missing:
        raise ValueError(f"no value for the trainable parameters {missing}")
    for i in plan.parameters:
        t = plan.tensors[i]
        if t.kind != TensorKind.PARAM_TRAINABLE and t.name in params and not np.array_equal(
                np.asarray(params[t.name]).reshape(-1), plan.constant(i).reshape(-1)):
            raise ValueError(f"{t.name} is frozen in this plan (in flash), and the value given "
                             "differs: these parameters come from another plan")
    written = []
    for i in plan.trainable:
        t = plan.tensors[i]
        device.write_tensor(i, np.asarray(params[t.name]))  # refuses another dtype or shape
        written.append(t.name)
    return written


def load_parameters(path: str | Path) -> dict[str, np.ndarray]:
    """What save_parameters wrote (.npz or .pt)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    if path.suffix in (".pt", ".pth"):
        import torch
        state = torch.load(path, map_location="cpu")
        return {k: v.numpy() for k, v in state.items()}
    raise ValueError(f"{path}: parameters are read from .pt (PyTorch state_dict) or .npz")


def model_state(plan: Plan, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The parameters under the user's model's own keys, for load_state_dict: constants the
    compiler made (`const:...`, e.g. a LeakyReLU's slope) and the optimizer state (`optim:...`)
    leave, and each BatchNorm the compiler folded into the layer before it (plan meta
    `batchnorm_folded`) comes back as an identity (weight 1, bias 0, running mean 0, running
    variance 1 - eps, so var + eps rounds to 1) after the folded layer; where that layer had no
    bias, its folded bias becomes the BatchNorm's."""
    state = {k: v for k, v in params.items() if not k.startswith(("const:", "optim:"))}
    for fold in plan.meta.get("batchnorm_folded", []):
        bn, layer, eps = fold["bn"], fold["layer"], np.float32(fold["eps"])
        n = state[f"{layer}.weight"].shape[0]
        beta = np.zeros(n, np.float32)
        if not fold["layer_bias"] and fold.get("affine", True):
            beta = state.pop(f"{layer}.bias")
        var = np.float32(1) - eps
        while np.float32(var + eps) < 1:
            var = np.nextafter(var, np.float32(2))
        if fold.get("affine", True):
            state[f"{bn}.weight"] = np.ones(n, np.float32)
            state[f"{bn}.bias"] = beta
        state[f"{bn}.running_mean"] = np.zeros(n, np.float32)
        state[f"{bn}.running_var"] = np.full(n, var, np.float32)
        state[f"{bn}.num_batches_tracked"] = np.array(0, np.int64)
    return state


def save_parameters(params: dict[str, np.ndarray], path: str | Path) -> None:
    path = Path(path)
    if path.suffix == ".npz":
        # numpy's stubs let a ** mapping fill savez's keyword allow_pickle: not so here
        np.savez(path, **params)  # type: ignore[arg-type]
    elif path.suffix in (".pt", ".pth"):
        import torch
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in params.items()}, path)
    else:
        raise ValueError(f"{path}: parameters are saved as .pt (PyTorch state_dict) or .npz")
