"""The paper's int8 models dequantized to fp32 PyTorch, fine-tuned as the device trains them: the
fp32 reference point of bench/transfer.py.

Every conv of the tiny-training model dict (the .pkl) becomes a float Conv2d with weight
`w_int8 * s_w[o]` and bias `b_int32 * s_w[o] * s_x`, its output clamped to what its int8 output
can hold, `[(-128 - y_zero) s_y, (127 - y_zero) s_y]` (the paper's models fold ReLU6 into that
range); residual adds are float adds clamped to their output's range; then the global average
pool and the same fp32 head the int8 plan starts from (read from the plan). What trains is the
plan's: its resolved scheme (meta["scheme"]: the biases of the last n_bias_update convs, the
weights of manual_weight_idx with the plan's output channels, `compiler.sparse.select_channels`)
and the head. SGD at batch 1 without momentum, the head at `lr` and the backbone at
`backbone_lr`, in the float domain: QAS makes the int8 update the same step in real units, so
the two are trained with the same rates. Dead channels (a saturated int32 bias, which the int8
plan never trains) do train here; the paper's models have few."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tinyhost.compiler.sparse import select_channels
from tinyhost.plan import Plan


@dataclass
class FloatConv:
    weight: torch.Tensor
    bias: torch.Tensor
    stride: int
    padding: int
    groups: int
    lo: float
    hi: float
    w_mask: torch.Tensor | None = None  # 1 on trained output channels; None: frozen weight
    b_trains: bool = False


def _conv(c: dict[str, Any]) -> FloatConv:
    p = c["params"]
    ws = np.asarray(p["w_scales"], np.float64)
    w = p["weight"].astype(np.float64) * ws[:, None, None, None]
    b = p["bias"].astype(np.float64) * ws * float(p["x_scale"])
    k = c["kernel_size"]
    k = k[0] if isinstance(k, (tuple, list)) else k
    ys, yz = float(p["y_scale"]), int(p["y_zero"])
    return FloatConv(torch.tensor(w, dtype=torch.float32), torch.tensor(b, dtype=torch.float32),
                     int(c["stride"]), (int(k) - 1) // 2, int(c["groups"]),
                     (-128 - yz) * ys, (127 - yz) * ys)


class FloatPaperNet:
    """The dequantized network with the plan's trainable set."""

    def __init__(self, cfg: dict[str, Any], plan: Plan) -> None:
        self.convs: list[FloatConv] = [_conv(cfg["first_conv"])]
        self.blocks: list[tuple[list[int], tuple[float, float] | None]] = []
        for blk in cfg["blocks"]:
            idx = []
            for key in ("pointwise1", "depthwise", "pointwise2"):
                if blk[key]:
                    self.convs.append(_conv(blk[key]))
                    idx.append(len(self.convs) - 1)
            add = None
            if blk["residual"] is not None:
                rp = blk["residual"]["params"]
                ys, yz = float(rp["y_scale"]), int(rp["y_zero"])
                add = ((-128 - yz) * ys, (127 - yz) * ys)
            self.blocks.append((idx, add))
        self.mix = None
        if cfg.get("feature_mix"):
            self.convs.append(_conv(cfg["feature_mix"]))
            self.mix = len(self.convs) - 1
        names = {plan.tensors[i].name: i for i in plan.trainable}
        self.head_w = torch.tensor(plan.constant(names["classifier.weight"]).copy())
        self.head_b = torch.tensor(plan.constant(names["classifier.bias"]).copy())
        s = plan.meta["scheme"]
        n = len(self.convs)
        for k in range(n - int(s["n_bias_update"]), n):
            self.convs[k].b_trains = True
        for k, ratio in zip(s["manual_weight_idx"], s["weight_update_ratio"], strict=True):
            c = self.convs[k]
            int8 = cfg_weight(cfg, k)
            ch = select_channels(int8, float(ratio))
            mask = torch.zeros(c.weight.shape[0])
            mask[torch.as_tensor(ch, dtype=torch.long) if ch is not None else slice(None)] = 1
            c.w_mask = mask.view(-1, 1, 1, 1)
        q = plan.meta["input_quant"]
        self.in_scale, self.in_zero = float(q["scale"]), int(q["zero"])

    def params(self) -> list[torch.Tensor]:
        out = [self.head_w, self.head_b]
        for c in self.convs:
            out += ([c.weight] if c.w_mask is not None else []) + ([c.bias] if c.b_trains else [])
        return out

    def _apply(self, k: int, h: torch.Tensor) -> torch.Tensor:
        c = self.convs[k]
        y = F.conv2d(h, c.weight, c.bias, c.stride, c.padding, 1, c.groups)
        return y.clamp(c.lo, c.hi)

    def logits(self, x: np.ndarray) -> torch.Tensor:
        """x: one float sample in [-1, 1], quantized and dequantized as the int8 plan's input."""
        q = np.clip(np.round(x / self.in_scale) + self.in_zero, -128, 127)
        h = torch.tensor(((q - self.in_zero) * self.in_scale)[None], dtype=torch.float32)
        h = self._apply(0, h)
        for idx, add in self.blocks:
            inp = h
            for k in idx:
                h = self._apply(k, h)
            if add is not None:
                h = (inp + h).clamp(*add)
        if self.mix is not None:
            h = self._apply(self.mix, h)
        feat = h.mean(dim=(2, 3))[0]
        return self.head_w @ feat + self.head_b

    def train_step(self, x: np.ndarray, label: int, lr: float, backbone_lr: float) -> float:
        ps = self.params()
        for p in ps:
            p.requires_grad_(True)
            p.grad = None
        loss = F.cross_entropy(self.logits(x)[None], torch.tensor([label]))
        loss.backward()
        with torch.no_grad():
            self.head_w -= lr * self.head_w.grad
            self.head_b -= lr * self.head_b.grad
            for c in self.convs:
                if c.w_mask is not None:
                    c.weight -= backbone_lr * c.weight.grad * c.w_mask
                if c.b_trains:
                    c.bias -= backbone_lr * c.bias.grad
        return float(loss.detach())

    def predict(self, x: np.ndarray) -> int:
        with torch.no_grad():
            return int(torch.argmax(self.logits(x)))


def cfg_weight(cfg: dict[str, Any], k: int) -> np.ndarray:
    """The int8 weight of backbone conv k, in network order (first_conv, pw1/dw/pw2 per block,
    feature_mix): the order of sparse_schemes.json's manual_weight_idx."""
    convs = [cfg["first_conv"]] + [b[key] for b in cfg["blocks"]
                                   for key in ("pointwise1", "depthwise", "pointwise2") if b[key]]
    if cfg.get("feature_mix"):
        convs.append(cfg["feature_mix"])
    return np.asarray(convs[k]["params"]["weight"])
