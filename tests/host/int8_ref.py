"""An independent PyTorch model of the paper's quantized network, for the int8 tests.

Built from a tiny-training model dict (the .pkl format) the way tiny-training's
custom_quantized_format.build_quantized_network_from_cfg builds its simulated network, with the
autograd rules of algorithm/quantize/quantized_ops_diff.py and the QAS of core/optimizer/
sgd_scale.py. Nothing here comes from tinyhost: the requantization has two independent forms,

- "paper": round(acc * M) in double with M the float32 effective scale, as QuantizedConv2d does
  (exactly rounded), and the paper's add and pool (round((s1 x1 + s2 x2) / sy), round(mean));
- "tflite": TFLite's fixed-point arithmetic (gemmlowp SaturatingRoundingDoublingHighMul and
  RoundingDivideByPOT, QuantizeMultiplier, the int8 add with left shift 20, the pool's mean
  rounded half away from zero), written here again from the TFLite sources in torch int64;

and the documented choices of docs/int8.md where they differ from the paper's training code:
masks are the paper's (pre-clamp in [-128, 127]), int8 weights are clipped to [-127, 127] and the
bias is used rounded (the paper adds its float bias unrounded), dead channels do not train.

Tensors are float64 holding integers (as the paper's, which are float32), batch 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MODELS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mcu_models"
INT32_MAX = 2**31 - 1


# --- TFLite fixed point, again (torch int64) ------------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier (quantization_util.cc)."""
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    qf = q * (1 << 31)
    fixed = int(math.floor(qf + 0.5)) if qf >= 0 else -int(math.floor(-qf + 0.5))  # std::round
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def _srdhm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = a * b
    nudge = torch.where(ab >= 0, torch.tensor(1 << 30), torch.tensor(1 - (1 << 30)))
    return torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")


def _rdbpot(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    mask = (torch.ones_like(e) << e) - 1
    rem = x & mask
    threshold = (mask >> 1) + (x < 0).long()
    return (x >> e) + (rem > threshold).long()


def mbqm(x: torch.Tensor, m: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """MultiplyByQuantizedMultiplier (double rounding), int64 tensors broadcasting."""
    left = shift.clamp(min=0)
    right = (-shift).clamp(min=0)
    return _rdbpot(_srdhm(x << left, m), right)


# --- autograd functions (quantized_ops_diff.py) ---------------------------------------------------

def _requant(acc: torch.Tensor, eff32: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor,
             mode: str) -> torch.Tensor:
    if mode == "paper":
        return torch.round(acc * eff32.view(-1, 1, 1))
    return mbqm(acc.round().long(), mult.view(-1, 1, 1), shift.view(-1, 1, 1)).double()


class QConvFn(torch.autograd.Function):
    """_QuantizedConv2dFunc + _TruncateActivationRange: int forward, fp backward."""

    @staticmethod
    def forward(ctx, x, w, b, layer, mode):  # noqa: D401 (autograd signature)
        w_int = torch.round(w).clamp(-127, 127)
        xs = torch.round(x) - layer.x_zero
        acc = F.conv2d(xs[None], w_int, None, layer.stride, layer.padding, 1, layer.groups)[0]
        acc = acc + torch.round(b).view(-1, 1, 1)
        pre = _requant(acc, layer.eff32, layer.mult, layer.shift, mode) + layer.y_zero
        mask = (pre >= -128) & (pre <= 127)
        ctx.save_for_backward(w_int, xs, mask)
        ctx.layer = layer
        return pre.clamp(-128, 127)

    @staticmethod
    def backward(ctx, gy):
        w_int, xs, mask = ctx.saved_tensors
        L = ctx.layer
        gz = (gy * mask * L.eff32.view(-1, 1, 1))[None]
        gb = gz.sum((0, 2, 3))
        gx = torch.nn.grad.conv2d_input(xs[None].shape, w_int, gz, L.stride, L.padding, 1,
                                        L.groups)[0]
        gw = torch.nn.grad.conv2d_weight(xs[None], w_int.shape, gz, L.stride, L.padding, 1,
                                         L.groups)
        return gx, gw, gb, None, None


class QAddFn(torch.autograd.Function):
    """_QuantizedElementwiseAddFunc + the block's _TruncateActivationRange."""

    @staticmethod
    def forward(ctx, x1, x2, add, mode):
        if mode == "paper":
            real = (x1 - add.z1) * add.s1_32 + (x2 - add.z2) * add.s2_32
            pre = torch.round(real / add.sy_32) + add.zy
        else:
            v = []
            for x, z, m, s in ((x1, add.z1, add.m1, add.sh1), (x2, add.z2, add.m2, add.sh2)):
                v.append(mbqm((x.long() - z) << 20, torch.tensor(m), torch.tensor(s)))
            pre = (mbqm(v[0] + v[1], torch.tensor(add.my), torch.tensor(add.shy)) + add.zy).double()
        mask = (pre >= -128) & (pre <= 127)
        ctx.save_for_backward(mask)
        ctx.add = add
        return pre.clamp(-128, 127)

    @staticmethod
    def backward(ctx, gy):
        mask, = ctx.saved_tensors
        a = ctx.add
        g = gy * mask
        return g * a.f1, g * a.f2, None, None


class QPoolFn(torch.autograd.Function):
    """Global average pool; the paper rounds halves to even, TFLite away from zero."""

    @staticmethod
    def forward(ctx, x, mode):
        ctx.shape = x.shape
        n = x.shape[1] * x.shape[2]
        s = x.sum((1, 2))
        if mode == "paper":
            return torch.round(s / n)
        return torch.sign(s) * torch.div(s.abs() + n // 2, n, rounding_mode="floor")

    @staticmethod
    def backward(ctx, gy):
        c, h, w = ctx.shape
        return gy.view(c, 1, 1).expand(c, h, w) / (h * w), None


# --- the network ----------------------------------------------------------------------------------

@dataclass
class Layer:
    name: str
    index: int
    weight: torch.Tensor  # float64 parameter (int8 values; a master when trained with it)
    bias: torch.Tensor
    x_zero: int
    y_zero: int
    x_scale: float
    y_scale: float
    w_scales: np.ndarray
    stride: int
    padding: tuple[int, int]
    groups: int
    eff32: torch.Tensor = field(init=False)
    mult: torch.Tensor = field(init=False)
    shift: torch.Tensor = field(init=False)
    dead: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        eff = np.float64(np.float32(self.x_scale)) * self.w_scales.astype(np.float64) \
            / np.float64(np.float32(self.y_scale))
        self.eff32 = torch.tensor(eff.astype(np.float32), dtype=torch.float64)
        q = [quantize_multiplier(float(e)) for e in eff]
        self.mult = torch.tensor([m for m, _ in q], dtype=torch.int64)
        self.shift = torch.tensor([s for _, s in q], dtype=torch.int64)
        reach = self.weight.abs().reshape(self.weight.shape[0], -1).sum(1) * 255
        self.dead = (self.bias.abs() + reach) > INT32_MAX  # saturated bias: a constant output


@dataclass
class Add:
    name: str
    z1: int
    z2: int
    zy: int
    s1: float
    s2: float
    sy: float

    def __post_init__(self) -> None:
        f = [float(np.float32(v)) for v in (self.s1, self.s2, self.sy)]
        self.s1_32, self.s2_32, self.sy_32 = (torch.tensor(v, dtype=torch.float64) for v in f)
        self.f1 = float(np.float32(f[0] / f[2]))
        self.f2 = float(np.float32(f[1] / f[2]))
        twice = 2 * max(f[0], f[1])
        (self.m1, self.sh1), (self.m2, self.sh2), (self.my, self.shy) = (
            quantize_multiplier(r)
            for r in (f[0] / twice, f[1] / twice, twice / ((1 << 20) * f[2])))


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class PaperNet:
    """The network of a tiny-training model dict, with an fp32 head (ScaledLinear)."""

    def __init__(self, cfg: dict, head_w: np.ndarray, head_b: np.ndarray) -> None:
        self.layers: list[Layer] = []
        self.blocks: list[tuple[list[Layer], Add | None]] = []
        self.first = self._layer(cfg["first_conv"], "first_conv")
        for i, blk in enumerate(cfg["blocks"]):
            convs = [self._layer(blk[k], f"blocks.{i}.{k}") for k in ("pointwise1", "depthwise",
                                                                      "pointwise2") if blk[k]]
            add = None
            if blk["residual"] is not None:
                rp = blk["residual"]["params"]
                pw2 = blk["pointwise2"]["params"]
                add = Add(f"blocks.{i}.residual", rp["x_zero"], pw2["y_zero"], rp["y_zero"],
                          rp["x_scale"], pw2["y_scale"], rp["y_scale"])
            self.blocks.append((convs, add))
        self.mix = (self._layer(cfg["feature_mix"], "feature_mix") if cfg.get("feature_mix")
                    else None)
        last = self.layers[-1]
        out_q = ((self.blocks[-1][1].sy, self.blocks[-1][1].zy)
                 if self.blocks[-1][1] and not self.mix else (last.y_scale, last.y_zero))
        self.feat_scale = float(np.float32(out_q[0]))
        self.feat_zero = out_q[1]
        self.head_w = torch.tensor(head_w, dtype=torch.float64, requires_grad=True)
        self.head_b = torch.tensor(head_b, dtype=torch.float64, requires_grad=True)

    def _layer(self, c: dict, name: str) -> Layer:
        p = c["params"]
        k = _pair(c["kernel_size"])
        layer = Layer(name, len(self.layers),
                      torch.tensor(p["weight"].astype(np.float64), requires_grad=True),
                      torch.tensor(p["bias"].astype(np.float64), requires_grad=True),
                      int(p["x_zero"]), int(p["y_zero"]), float(p["x_scale"]), float(p["y_scale"]),
                      np.asarray(p["w_scales"], np.float32), int(c["stride"]),
                      ((k[0] - 1) // 2, (k[1] - 1) // 2), int(c["groups"]))
        self.layers.append(layer)
        return layer

    def forward(self, x_int: np.ndarray, mode: str, trace: dict | None = None) -> torch.Tensor:
        """Logits; trace (if given) collects every layer's int output by name."""
        def conv(layer: Layer, h: torch.Tensor) -> torch.Tensor:
            y = QConvFn.apply(h, layer.weight, layer.bias, layer, mode)
            if trace is not None:
                trace[layer.name] = y
            return y

        h = torch.tensor(x_int.astype(np.float64))
        h = conv(self.first, h)
        for convs, add in self.blocks:
            inp = h
            for layer in convs:
                h = conv(layer, h)
            if add is not None:
                h = QAddFn.apply(inp, h, add, mode)
                if trace is not None:
                    trace[add.name] = h
        if self.mix is not None:
            h = conv(self.mix, h)
        pooled = QPoolFn.apply(h, mode)
        if trace is not None:
            trace["pool"] = pooled
        feat = (pooled - self.feat_zero) * self.feat_scale
        return self.head_w @ feat + self.head_b


# --- the paper's training step (SGDScale, batch 1, no momentum) -----------------------------------

@dataclass
class TrainSpec:
    """What trains: per layer index, (bias?, None | "all" | channel list); rule round|master."""
    layers: dict[int, tuple[bool, object]]
    rule: str = "round"
    qas: bool = True


def train_step(net: PaperNet, x_int: np.ndarray, label: int, lr: float, spec: TrainSpec,
               grads: dict | None = None) -> tuple[float, int]:
    for p in [net.head_w, net.head_b] + [t for L in net.layers for t in (L.weight, L.bias)]:
        p.grad = None
    logits = net.forward(x_int, "tflite")
    loss = F.cross_entropy(logits[None], torch.tensor([label]))
    loss.backward()
    pred = int(torch.argmax(logits))
    lr32 = np.float32(lr)
    with torch.no_grad():
        for idx, (train_b, w_sel) in spec.layers.items():
            L = net.layers[idx]
            live = (~L.dead).double()
            ws = torch.tensor(L.w_scales.astype(np.float64))
            # sgd_scale.py: grad / w_scale^2 and grad_b / (w_scale * x_scale)^2, per channel.
            qw = 1.0 / ws ** 2 if spec.qas else torch.ones_like(ws)
            qb = 1.0 / (ws * np.float32(L.x_scale)) ** 2 if spec.qas else torch.ones_like(ws)
            if grads is not None:
                grads[f"{L.name}.bias"] = L.bias.grad.clone()
                grads[f"{L.name}.weight"] = L.weight.grad.clone()
            if train_b:
                u = _f32(lr32 * _f32(_f32(L.bias.grad) * _f32(qb * live)))
                if spec.rule == "master":
                    L.bias.copy_(_f32(L.bias - u))
                else:
                    L.bias -= torch.round(u)
            if w_sel is not None:
                rows = slice(None) if isinstance(w_sel, str) else torch.as_tensor(w_sel)
                g = _f32(L.weight.grad[rows])
                q = _f32((qw * live)[rows]).view(-1, *([1] * (g.dim() - 1)))
                u = _f32(lr32 * _f32(g * q))
                new = _f32(L.weight[rows] - u)
                L.weight[rows] = new if spec.rule == "master" else torch.round(new).clamp(-127, 127)
        for p in (net.head_w, net.head_b):
            p.copy_(_f32(p - _f32(lr32 * _f32(p.grad))))
    return float(loss.detach()), pred


def _f32(t: torch.Tensor) -> torch.Tensor:
    """Round to float32 (the device's arithmetic) and back to float64."""
    return t.to(torch.float32).to(torch.float64)


# --- a small synthetic model in the tiny-training format ------------------------------------------

def synthetic_cfg(seed: int = 0, size: int = 16) -> dict:
    """first_conv 3->8 (s2); blocks: [dw3 8, pw 8->8, residual], [pw 8->24, dw5 s2, pw 24->12],
    [pw 12->24, dw3, pw 24->12, residual]; feature_mix 12->16. Weights from random floats, quantized
    per channel as the paper does; ReLU6 layers use the paper's (6/255, -128) output quantization
    (so the clamp is the ReLU and masks matter); linear layers and adds are calibrated on random
    inputs. Biases are the real biases of the float layers."""
    rng = np.random.default_rng(seed)
    relu6 = (6.0 / 255, -128)

    def layer(cin, cout, k, stride, groups, x_q, act):
        w = rng.normal(0, 1.0 / math.sqrt(cin // groups * k * k), (cout, cin // groups, k, k))
        w = w.astype(np.float32)
        absmax = np.maximum(np.abs(w.reshape(cout, -1)).max(1), 5e-7).astype(np.float32)
        w_scales = (absmax / np.float32(127)).astype(np.float32)
        wq = np.clip(np.rint(w / w_scales[:, None, None, None]), -127, 127).astype(np.int8)
        b = rng.normal(0, 0.2, cout)
        bq = np.rint(b / (w_scales.astype(np.float64) * np.float32(x_q[0]))).astype(np.int32)
        return {"in_channel": cin, "out_channel": cout, "kernel_size": (k, k), "stride": stride,
                "groups": groups, "depthwise": groups == cin == cout, "act": act,
                "params": {"weight": wq, "bias": bq, "x_scale": float(x_q[0]), "x_zero": x_q[1],
                           "y_scale": None, "y_zero": None, "w_scales": w_scales}}

    def calibrate(lay, x_real_batch):
        p = lay["params"]
        k = lay["kernel_size"][0]
        w = torch.tensor(p["weight"].astype(np.float64) * p["w_scales"][:, None, None, None])
        b = torch.tensor(p["bias"] * p["w_scales"].astype(np.float64) * p["x_scale"])
        y = F.conv2d(x_real_batch, w, b, lay["stride"], (k - 1) // 2, 1, lay["groups"])
        if lay["act"] == "relu6":
            p["y_scale"], p["y_zero"] = relu6
            return y.clamp(0, 6)
        lo, hi = min(float(y.min()), 0.0), max(float(y.max()), 0.0)
        scale = (hi - lo) / 255
        p["y_scale"], p["y_zero"] = scale, int(np.clip(round(-128 - lo / scale), -128, 127))
        return y

    xq = (1 / 127.5, 0)
    x = torch.tensor(rng.uniform(-1, 1, (8, 3, size, size)))
    cfg: dict = {"first_conv": None, "blocks": [], "feature_mix": None, "classifier": None}
    first = layer(3, 8, 3, 2, 1, xq, "relu6")
    first["in_shape"] = size
    h = calibrate(first, x)
    cfg["first_conv"] = first
    q = (first["params"]["y_scale"], first["params"]["y_zero"])
    plans = [  # (convs: (kind, cout, k, stride, act)), residual
        ([("dw", 8, 3, 1, "relu6"), ("pw2", 8, 1, 1, None)], True),
        ([("pw1", 24, 1, 1, "relu6"), ("dw", 24, 5, 2, "relu6"), ("pw2", 12, 1, 1, None)], False),
        ([("pw1", 24, 1, 1, "relu6"), ("dw", 24, 3, 1, "relu6"), ("pw2", 12, 1, 1, None)], True),
    ]
    names = {"pw1": "pointwise1", "dw": "depthwise", "pw2": "pointwise2"}
    for convs, residual in plans:
        blk = {"pointwise1": None, "depthwise": None, "pointwise2": None, "residual": None,
               "se": None}
        inp, inp_q = h, q
        for kind, cout, k, stride, act in convs:
            cin = h.shape[1]
            lay = layer(cin, cout, k, stride, cin if kind == "dw" else 1, q, act)
            h = calibrate(lay, h)
            q = (lay["params"]["y_scale"], lay["params"]["y_zero"])
            blk[names[kind]] = lay
        if residual:
            s = inp + h
            lo, hi = min(float(s.min()), 0.0), max(float(s.max()), 0.0)
            scale = (hi - lo) / 255
            zero = int(np.clip(round(-128 - lo / scale), -128, 127))
            blk["residual"] = {"in_channel": inp.shape[1], "in_shape": inp.shape[2],
                               "params": {"x_scale": inp_q[0], "x_zero": inp_q[1],
                                          "y_scale": scale, "y_zero": zero}}
            h, q = s, (scale, zero)
        cfg["blocks"].append(blk)
    mix = layer(h.shape[1], 16, 1, 1, 1, q, "relu6")
    h = calibrate(mix, h)
    cfg["feature_mix"] = mix
    mq = (mix["params"]["y_scale"], mix["params"]["y_zero"])
    cls = layer(16, 10, 1, 1, 1, mq, None)
    cls["params"]["y_scale"], cls["params"]["y_zero"] = 0.1, 0
    cfg["classifier"] = cls
    return cfg
