"""Sparse-update schemes for int8 graphs: what `--update` trains, in the paper's terms.

A scheme (tiny-training's backward_config, the format of the shipped sparse_schemes.json) names
layers by their index among the backbone's convs in network order (0-based, every Conv2d of the
backbone, the head excluded), as algorithm/core/utils/partial_backward.py does:

- n_bias_update: the biases of the last N convs train;
- manual_weight_idx: the convs whose weights train; each must be among those N (the paper asserts
  it: a layer whose weight trains also trains its bias);
- weight_update_ratio: per index, the fraction of the layer's channels whose weights train
  (0 = bias only, 1 = all; an integer above 1 is a channel count, as in the paper).

The new fp32 head always trains (the paper's classifier is always updated). The simple forms are
schemes too: `full` (every conv, all channels), `last:K` (the head and the last K-1 convs, weights
and biases: "the last K layers with parameters", as for fp32 models), `bias-only` (every conv's
bias and the head).

Channel choice (documented in docs/int8.md): the k = ceil(ratio * out_channels) output channels of
largest weight L2 norm (ties: lower index), kept in index order. The paper's training code instead
masks k = floor(ratio * in_channels) *input* channels by weight norm ('magnitude+'); its compiled
graph keeps the first k output channels. Output channels are what the int8 kernels and the update
ops select rows of, and with per-output-channel QAS they keep each updated row's scale whole.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyhost.compiler.errors import CompileError

SIMPLE_FORMS = "full, last:K, bias-only"
SCHEME_KEYS = {"n_bias_update", "manual_weight_idx", "weight_update_ratio"}
SCHEME_FORMS = ("scheme.json (one scheme) or sparse_schemes.json:MODEL:BUDGET "
                "(e.g. :mcunet-5fps:99kb)")


@dataclass
class Scheme:
    n_bias_update: int
    manual_weight_idx: list[int]
    weight_update_ratio: list[float]
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"n_bias_update": self.n_bias_update, "manual_weight_idx": self.manual_weight_idx,
                "weight_update_ratio": self.weight_update_ratio, "source": self.source}


@dataclass
class LayerUpdate:
    """What trains in one conv: its bias, and its weight: None (frozen), all rows, or the rows
    `channels` (sorted output-channel indices)."""
    bias: bool = False
    weight: bool = False
    channels: np.ndarray | None = field(default=None)  # None with weight=True: every channel


def _err(update: str, what: str) -> CompileError:
    return CompileError(f"autodiff: --update {update}: {what}")


def _int_list(v: Any, update: str, name: str) -> list[int]:
    if v is None:
        return []
    if isinstance(v, str):  # the paper's config form "21-24-27"
        v = [p for p in v.split("-") if p]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise _err(update, f"{name} must be a list of integers, got {v!r}")
    out = []
    for p in v:
        try:
            f = float(p)
        except (TypeError, ValueError):
            raise _err(update, f"{name} holds {p!r}, not an integer") from None
        if isinstance(p, bool) or not f.is_integer():
            raise _err(update, f"{name} holds {p!r}, not an integer")
        out.append(int(f))
    return out


def _ratios(v: Any, n: int, update: str) -> list[float]:
    if v is None:
        return [1.0] * n
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return [float(v)] * n
    if isinstance(v, str):
        v = [p for p in v.split("-") if p]
    if not isinstance(v, (list, tuple)):
        raise _err(update, f"weight_update_ratio must be a list of numbers, got {v!r}")
    try:
        out = [float(p) for p in v]
    except (TypeError, ValueError):
        raise _err(update, f"weight_update_ratio holds a non-number: {v!r}") from None
    if len(out) != n:
        raise _err(update, f"weight_update_ratio has {len(out)} entries for {n} "
                   "manual_weight_idx entries")
    return out


def scheme_from_dict(d: Any, n_conv: int, update: str, source: str) -> Scheme:
    if not isinstance(d, dict) or "n_bias_update" not in d:
        raise _err(update, "a scheme is a JSON object with n_bias_update, manual_weight_idx and "
                   "weight_update_ratio")
    nb = d["n_bias_update"]
    if nb == "all":
        nb = n_conv
    if isinstance(nb, bool) or not isinstance(nb, int):
        raise _err(update, f"n_bias_update must be an integer or \"all\", got {nb!r}")
    idx = _int_list(d.get("manual_weight_idx"), update, "manual_weight_idx")
    return Scheme(nb, idx, _ratios(d.get("weight_update_ratio"), len(idx), update), source)


def _load_json(path: Path, update: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise _err(update, f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise _err(update, f"{path} is not valid JSON: {e}") from None


def _choices(d: dict[str, Any]) -> str:
    return ", ".join(k for k, v in d.items() if isinstance(v, dict)) or "none"


def scheme_from_file(update: str, n_conv: int, model: str) -> Scheme:
    """`PATH.json` holding one scheme, or the shipped file with a selector: `PATH.json:MODEL:BUDGET`
    or `PATH.json:BUDGET` (the model is the imported file's name)."""
    at = update.find(".json")
    path, rest = Path(update[:at + 5]), update[at + 5:]
    if rest and not rest.startswith(":"):
        raise _err(update, f"expected {SCHEME_FORMS}")
    keys = [k for k in rest[1:].split(":")] if rest else []
    data = _load_json(path, update)
    if isinstance(data, dict) and SCHEME_KEYS & data.keys():
        if keys:
            raise _err(update, f"{path} holds one scheme; drop the selector {rest!r}")
        return scheme_from_dict(data, n_conv, update, str(path))
    if not isinstance(data, dict):
        raise _err(update, f"{path} holds no scheme")
    if len(keys) == 2:
        model_key, budget = keys
    elif len(keys) == 1:
        if isinstance(data.get(keys[0]), dict) and "n_bias_update" in data[keys[0]]:
            return scheme_from_dict(data[keys[0]], n_conv, update, f"{path}:{keys[0]}")
        model_key, budget = model, keys[0]
    elif not keys:
        if isinstance(data.get(model), dict):
            raise _err(update, f"{path} has several schemes for {model}; choose one: "
                       f"{path}:{model}:BUDGET with BUDGET one of {_choices(data[model])}")
        raise _err(update, f"{path} holds several schemes; choose one with "
                   f"{path}:MODEL:BUDGET (models: {_choices(data)})")
    else:
        raise _err(update, f"expected {SCHEME_FORMS}")
    models = data.get(model_key)
    if not isinstance(models, dict):
        raise _err(update, f"{path} has no schemes for model {model_key!r} (it has: "
                   f"{_choices(data)})")
    if not isinstance(models.get(budget), dict):
        raise _err(update, f"{path} has no scheme {budget!r} for {model_key} (it has: "
                   f"{_choices(models)})")
    return scheme_from_dict(models[budget], n_conv, update, f"{path}:{model_key}:{budget}")


def parse_update(update: str, n_conv: int, model: str) -> Scheme:
    """Any accepted `--update` string for an int8 model -> a Scheme (not yet checked)."""
    u = update.strip()
    if u in ("full", "all"):
        return Scheme(n_conv, list(range(n_conv)), [1.0] * n_conv, u)
    if u == "bias-only":
        return Scheme(n_conv, [], [], u)
    if u.startswith("last:"):
        try:
            k = int(u[5:])
        except ValueError:
            k = 0
        if not 1 <= k <= n_conv + 1:
            raise _err(update, f"K must be 1..{n_conv + 1} (the head and the model's {n_conv} "
                       "backbone convs)")
        return Scheme(k - 1, list(range(n_conv - k + 1, n_conv)), [1.0] * (k - 1), u)
    if u.startswith("{"):  # one scheme as inline JSON (what `tinyhost search` compiles)
        try:
            d = json.loads(u)
        except json.JSONDecodeError as e:
            raise _err(update, f"not valid JSON: {e}") from None
        return scheme_from_dict(d, n_conv, update, "inline")
    if ".json" in u:
        return scheme_from_file(u, n_conv, model)
    raise _err(update, f"int8 models take {SIMPLE_FORMS}, or a scheme file: {SCHEME_FORMS}")


def check_scheme(s: Scheme, n_conv: int, update: str) -> None:
    """The checks of the paper's parsed_backward_config, as errors naming what is wrong."""
    if not 0 <= s.n_bias_update <= n_conv:
        raise _err(update, f"n_bias_update {s.n_bias_update} is out of range: the model has "
                   f"{n_conv} backbone convs")
    first_bias = n_conv - s.n_bias_update
    seen: set[int] = set()
    for i in s.manual_weight_idx:
        if not 0 <= i < n_conv:
            raise _err(update, f"manual_weight_idx {i} is out of range: the model has {n_conv} "
                       f"backbone convs (indices 0..{n_conv - 1})")
        if i in seen:
            raise _err(update, f"manual_weight_idx {i} appears twice")
        seen.add(i)
        if i < first_bias:
            raise _err(update, f"manual_weight_idx {i} is not among the last n_bias_update = "
                       f"{s.n_bias_update} convs ({first_bias}..{n_conv - 1}); a layer whose "
                       "weight trains also trains its bias")
    for i, r in zip(s.manual_weight_idx, s.weight_update_ratio, strict=True):
        if not (0 <= r <= 1 or (r > 1 and float(r).is_integer())) or not math.isfinite(r):
            raise _err(update, f"weight_update_ratio {r} for conv {i}: expected a fraction in "
                       "[0, 1] or a whole channel count")


def select_channels(weight: np.ndarray, ratio: float) -> np.ndarray | None:
    """Output channels whose weights train for `ratio`: None for all, an empty array for none,
    else the ceil(ratio * O) rows of largest L2 norm (ties: lower index), sorted."""
    o = weight.shape[0]
    k = min(o, int(ratio)) if ratio > 1 else math.ceil(ratio * o - 1e-9)
    if k >= o:
        return None
    if k <= 0:
        return np.zeros(0, np.int32)
    norms = np.sqrt((weight.astype(np.float64).reshape(o, -1) ** 2).sum(axis=1))
    keep = np.argsort(-norms, kind="stable")[:k]
    return np.sort(keep).astype(np.int32)


def layer_updates(s: Scheme, weights: list[np.ndarray], update: str) -> list[LayerUpdate]:
    """Per backbone conv (network order): what trains."""
    n = len(weights)
    check_scheme(s, n, update)
    out = [LayerUpdate(bias=i >= n - s.n_bias_update) for i in range(n)]
    for i, r in zip(s.manual_weight_idx, s.weight_update_ratio, strict=True):
        ch = select_channels(weights[i], r)
        if ch is not None and ch.size == 0:
            continue  # ratio 0: bias only
        out[i].weight = True
        out[i].channels = ch
    return out
