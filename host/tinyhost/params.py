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
