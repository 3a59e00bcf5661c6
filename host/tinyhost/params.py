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
