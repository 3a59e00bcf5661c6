"""Pass 1 for int8 models, import_tiny: a tiny-training pretrained int8 model (.pkl) -> IR forward
ops.

The file is the paper's own quantized format (mit-han-lab/tiny-training, algorithm/quantize/
custom_quantized_format.py): a dict `{first_conv, blocks: [{pointwise1?, depthwise, pointwise2,
residual?, se}], feature_mix?, classifier}` of layer configs holding int8 weights, int32 biases,
per-channel weight scales and per-tensor activation (scale, zero). Everything is imported exactly,
scales included; the network is the one `build_quantized_network_from_cfg` builds:

- every conv: padding (k-1)//2, the layer's stride and groups (depthwise when groups == in ==
  out channels); the requantization multiplier and shift per output channel come from the
  effective scale x_scale * w_scale[o] / y_scale (double) through TFLite's QuantizeMultiplier;
  clamp to [-128, 127] (ReLU6 is already inside each layer's output range, as in the paper);
- a residual block adds its input (the residual's x_scale/x_zero) and the pointwise2 output, and
  requantizes to the residual's y_scale/y_zero (ADD_S8, TFLite's parameters);
- a global int8 average pool, a dequantization with the pooled tensor's (scale, zero), and a new
  fp32 linear head with `num_classes` outputs in place of the 1000-class ImageNet classifier,
  initialised as torch.nn.Linear is by default under a fixed seed (the paper's `create_scaled_head`
  builds a fresh ScaledLinear, i.e. an nn.Linear with default initialisation).

The input is int8 with the first conv's (x_scale, x_zero); `input_size` compiles the same weights
at another resolution (every layer's geometry follows from it).
"""
from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyhost.compiler.errors import CompileError
from tinyhost.compiler.graph import Graph
from tinyhost.dtypes import DType
from tinyhost.ops import Opcode
from tinyhost.plan import TensorKind
from tinyhost.quant import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    AddParams,
    effective_scale,
    multiply_by_quantized_multiplier,
    quantize_multipliers,
)

ACT_MIN, ACT_MAX = INT8_MIN, INT8_MAX
HEAD_SEED = 0


def _fail(where: str, what: str) -> CompileError:
    return CompileError(f"import_tiny: {where}: {what}")


def _get(cfg: Any, key: str, where: str) -> Any:
    if not isinstance(cfg, dict):
        raise _fail(where, f"expected a dict, got {type(cfg).__name__}")
    if key not in cfg:
        raise _fail(where, f"missing key {key!r}")
    return cfg[key]


def _int(v: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        else:
            raise _fail(where, f"expected an integer, got {v!r}")
    n = int(v)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise _fail(where, f"{n} is outside [{lo}, {hi}]")
    return n


def _scale(v: Any, where: str) -> float:
    try:
        f = float(np.asarray(v, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise _fail(where, f"expected a positive float scale, got {v!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise _fail(where, f"expected a positive finite scale, got {f}")
    return f


def _pair(v: Any, where: str) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise _fail(where, f"expected an int or a pair, got {v!r}")
        return _int(v[0], where, 1), _int(v[1], where, 1)
    n = _int(v, where, 1)
    return n, n


def _array(v: Any, where: str, dtype: type, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype != dtype:
        raise _fail(where, f"expected {np.dtype(dtype).name}, got {a.dtype}")
    if shape is not None and a.shape != shape:
        raise _fail(where, f"has shape {a.shape}, expected {shape}")
    return np.ascontiguousarray(a)


@dataclass
class Int8Emitter:
    """Adds int8 forward layers to a graph from their quantized parameters: the IR both int8
    front ends build (import_tiny from the paper's files, quantize from float models), so the
    passes after them see one form. Errors are CompileErrors that name `pass_name` and the layer."""
    g: Graph
    pass_name: str

    def fail(self, where: str, what: str) -> CompileError:
        return CompileError(f"{self.pass_name}: {where}: {what}")

    def conv(self, name: str, x: int, weight: np.ndarray, bias: np.ndarray | None,
             w_scales: np.ndarray, xq: tuple[float, int], yq: tuple[float, int],
             stride: tuple[int, int], padding: tuple[int, int], groups: int,
             act: tuple[int, int], too_small_hint: str = "") -> int:
        """CONV2D_S8 (DEPTHWISE_CONV2D_S8 when groups == in == out channels): int8 weight
        O x I/g x KH x KW, int32 bias, per-channel f32 weight scales; the requantization
        multiplier and shift per output channel from QuantizeMultiplier(x_scale * w_scale[o] /
        y_scale) (double); clamp to `act`. Returns the output tensor."""
        g = self.g
        out_c, _, kh, kw = weight.shape
        in_c, h, w_ = g.tensors[x].shape
        (sh, sw), (ph, pw) = stride, padding
        (x_scale, x_zero), (y_scale, y_zero) = xq, yq
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise self.fail(name, f"input {h}x{w_} is too small for its {kh}x{kw} kernel"
                            + (f"; {too_small_hint}" if too_small_hint else ""))
        eff = effective_scale(x_scale, w_scales, y_scale)
        mult, shift = quantize_multipliers(eff)
        if shift.max() > 30 or shift.min() < -31:
            raise self.fail(name, "an effective scale x_scale * w_scale / y_scale is out of range "
                            f"({eff.min():g}..{eff.max():g})")
        dead = np.zeros(out_c, bool)
        if bias is not None:
            bias, dead = self.fit_bias(name, weight, bias, mult, shift, eff, y_zero, act)
        depthwise = groups == in_c == out_c
        wt = g.add_tensor(f"{name}.weight", weight.shape, TensorKind.PARAM_FROZEN, DType.S8, weight)
        bt = -1 if bias is None else g.add_tensor(f"{name}.bias", bias.shape,
                                                  TensorKind.PARAM_FROZEN, DType.S32, bias)
        mt = g.add_tensor(f"{name}.mult", (out_c,), TensorKind.PARAM_FROZEN, DType.S32, mult)
        st = g.add_tensor(f"{name}.shift", (out_c,), TensorKind.PARAM_FROZEN, DType.S32, shift)
        y = g.add_tensor(f"{name}.out", (out_c, oh, ow), TensorKind.ACTIVATION, DType.S8)
        attrs = {"in_c": in_c, "in_h": h, "in_w": w_, "out_c": out_c, "out_h": oh, "out_w": ow,
                 "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "pad_h": ph, "pad_w": pw,
                 "groups": groups, "x_zero": x_zero, "y_zero": y_zero, "act_min": act[0],
                 "act_max": act[1], "n_rows": 0}
        info = {"kind": "conv", "index": len(g.conv_ops), "w_scales": w_scales, "dead": dead,
                "x_scale": x_scale, "y_scale": y_scale, "x_zero": x_zero, "eff": eff}
        g.conv_ops.append(len(g.ops))
        g.add_op(Opcode.DEPTHWISE_CONV2D_S8 if depthwise else Opcode.CONV2D_S8,
                 [x, wt, bt, mt, st, -1, -1], [y, -1, -1], attrs, name, info)
        return y

    def fit_bias(self, name: str, weight: np.ndarray, bias: np.ndarray, mult: np.ndarray,
                 shift: np.ndarray, eff: np.ndarray, y_zero: int,
                 act: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The int32 accumulator bias + sum w * (x - x_zero) must not overflow for any input
        (undefined behaviour in C; the reference kernels refuse it). The paper's models mark dead
        channels with a saturated bias (+-2^31): whatever the input, their output is one constant
        (usually a clamp bound). Such a bias is pulled in just far enough to rule out overflow,
        which is kept only if the channel's output is still that same constant for every input
        (the requantization is monotonic, so the two ends of the accumulator's reach decide);
        anything else is an error. Returns the bias and the mask of such dead channels: autodiff
        gives them a zero QAS scale, so they never train (their weights must not grow into
        overflow, and a huge-scale bias gradient on a constant output means nothing)."""
        out_c = weight.shape[0]
        reach = np.abs(weight.astype(np.int64)).reshape(out_c, -1).sum(axis=1) * 255
        limit = INT32_MAX - reach
        if (limit < 0).any():
            raise self.fail(name, "the weights alone can overflow the int32 accumulator")
        b = bias.astype(np.int64)
        over = np.nonzero(np.abs(b) > limit)[0]
        if over.size == 0:
            return bias, np.zeros(out_c, bool)
        # Toward zero to a multiple of 256, so that an f32 master copy holds it exactly.
        fitted = b.copy()
        fitted[over] = np.sign(b[over]) * (limit[over] // 256 * 256)
        for o in over:
            ends = np.array([fitted[o] - reach[o], fitted[o] + reach[o]], np.int64)
            got = multiply_by_quantized_multiplier(ends, mult[o], shift[o]).astype(np.int64)
            # The paper's arithmetic on the original bias: round((acc) * M) in double.
            orig = np.rint((np.array([b[o] - reach[o], b[o] + reach[o]], np.float64)) * eff[o])
            outs = np.clip(np.concatenate([got, orig]) + y_zero, act[0], act[1])
            if not (outs == outs[0]).all():
                raise self.fail(name, f"output channel {o}: bias {b[o]} and weights can overflow "
                                "the int32 accumulator")
        self.g.notes.append(f"{name}: the saturated bias of dead output channel(s) "
                            f"{', '.join(map(str, over))} (constant output) brought within int32 "
                            "reach; same outputs; these channels never train")
        dead = np.zeros(out_c, bool)
        dead[over] = True
        return fitted.astype(np.int32), dead

    def add(self, name: str, x1: int, q1: tuple[float, int], x2: int, q2: tuple[float, int],
            yq: tuple[float, int], act: tuple[int, int]) -> int:
        """ADD_S8 of two int8 tensors of one shape, requantized to yq (TFLite's parameters)."""
        g = self.g
        shape = g.tensors[x1].shape
        if g.tensors[x2].shape != shape:
            raise self.fail(name, f"adds {shape} to {g.tensors[x2].shape}")
        try:
            p = AddParams.from_scales(q1[0], q1[1], q2[0], q2[1], yq[0], yq[1], act[0], act[1])
        except ValueError as e:
            raise self.fail(name, str(e)) from None
        y = g.add_tensor(f"{name}.out", shape, TensorKind.ACTIVATION, DType.S8)
        attrs = {"size": int(np.prod(shape)), "x1_zero": p.x1_zero, "x2_zero": p.x2_zero,
                 "y_zero": p.y_zero, "left_shift": p.left_shift, "x1_mult": p.x1_multiplier,
                 "x1_shift": p.x1_shift, "x2_mult": p.x2_multiplier, "x2_shift": p.x2_shift,
                 "y_mult": p.y_multiplier, "y_shift": p.y_shift, "act_min": p.act_min,
                 "act_max": p.act_max}
        g.add_op(Opcode.ADD_S8, [x1, x2], [y, -1], attrs, name,
                 {"kind": "add", "s1": q1[0], "s2": q2[0], "sy": yq[0]})
        return y

    def avgpool(self, name: str, x: int, pool: Mapping[str, int], x_zero: int) -> int:
        """AVGPOOL2D_S8 with the geometry `pool` (ops.POOL_ATTRS by name); input and output
        share one quantization."""
        shape = (pool["c"], pool["out_h"], pool["out_w"])
        y = self.g.add_tensor(f"{name}.out", shape, TensorKind.ACTIVATION, DType.S8)
        self.g.add_op(Opcode.AVGPOOL2D_S8, [x], [y],
                      {**pool, "x_zero": x_zero, "act_min": ACT_MIN, "act_max": ACT_MAX}, name)
        return y

    def head(self, x: int, xq: tuple[float, int], weight: np.ndarray, bias: np.ndarray | None,
             name: str) -> int:
        """The int8 features dequantized (DEQUANTIZE_S8_F32), then the fp32 LINEAR_F32 head
        (frozen here; autodiff makes it train). Sets the logits binding and ends the forward."""
        g = self.g
        n = int(np.prod(g.tensors[x].shape))
        out_f, in_f = weight.shape
        if in_f != n:
            raise self.fail(name, f"takes {in_f} features, its input has {n}")
        scale = g.add_tensor("features.scale", (1,), TensorKind.PARAM_FROZEN, DType.F32,
                             np.array([xq[0]], np.float32))
        feat = g.add_tensor("features", (n,), TensorKind.ACTIVATION, DType.F32)
        g.add_op(Opcode.DEQUANTIZE_S8_F32, [x, scale], [feat], {"size": n, "zero": xq[1]},
                 "features", {"kind": "dequantize", "scale": xq[0]})
        hw = g.add_tensor(f"{name}.weight", (out_f, in_f), TensorKind.PARAM_FROZEN,
                          data=np.array(weight, np.float32))
        hb = -1 if bias is None else g.add_tensor(f"{name}.bias", (out_f,), TensorKind.PARAM_FROZEN,
                                                  data=np.array(bias, np.float32))
        logits = g.add_tensor("logits", (out_f,), TensorKind.ACTIVATION)
        g.add_op(Opcode.LINEAR_F32, [feat, hw, hb], [logits],
                 {"in_features": in_f, "out_features": out_f}, name)
        g.logits = logits
        g.num_classes = out_f
        g.n_forward = len(g.ops)
        return logits


class Importer:
    def __init__(self, cfg: dict[str, Any], name: str, num_classes: int,
                 input_size: int) -> None:
        self.cfg = cfg
        self.name = name
        self.num_classes = num_classes
        self.input_size = input_size
        self.native = input_size == self._native_size()
        self.g = Graph()
        self.emit = Int8Emitter(self.g, "import_tiny")

    def _native_size(self) -> int | None:
        first = self.cfg.get("first_conv")
        size = first.get("in_shape") if isinstance(first, dict) else None
        return int(size) if isinstance(size, (int, np.integer)) else None

    # -- layers -----------------------------------------------------------------------------
    def conv(self, cfg: Any, name: str, x: int,
             x_quant: tuple[float, int]) -> tuple[int, tuple[float, int]]:
        """One quantized conv (QuantizedConv2d of the paper): returns its output and (scale,
        zero)."""
        g = self.g
        params = _get(cfg, "params", name)
        in_c = _int(_get(cfg, "in_channel", name), f"{name}.in_channel", 1)
        out_c = _int(_get(cfg, "out_channel", name), f"{name}.out_channel", 1)
        kh, kw = _pair(_get(cfg, "kernel_size", name), f"{name}.kernel_size")
        sh, sw = _pair(_get(cfg, "stride", name), f"{name}.stride")
        groups = _int(cfg.get("groups", 1), f"{name}.groups", 1)
        c, h, w_ = g.tensors[x].shape
        if in_c != c:
            raise _fail(name, f"in_channel is {in_c} but its input has {c} channels")
        if in_c % groups or out_c % groups:
            raise _fail(name, f"groups {groups} does not divide {in_c} -> {out_c} channels")
        weight = _array(_get(params, "weight", f"{name}.params"), f"{name}.params.weight", np.int8,
                        (out_c, in_c // groups, kh, kw))
        bias_v = params.get("bias")
        bias = None if bias_v is None else _array(bias_v, f"{name}.params.bias", np.int32, (out_c,))
        w_scales = np.asarray(_get(params, "w_scales", f"{name}.params"))
        if w_scales.shape != (out_c,) or not np.issubdtype(w_scales.dtype, np.floating):
            raise _fail(f"{name}.params.w_scales", f"expected float[{out_c}], got "
                        f"{w_scales.dtype} {w_scales.shape}")
        w_scales = w_scales.astype(np.float32)
        if not (np.isfinite(w_scales).all() and (w_scales > 0).all()):
            raise _fail(f"{name}.params.w_scales", "scales must be positive and finite")
        x_scale = _scale(_get(params, "x_scale", f"{name}.params"), f"{name}.params.x_scale")
        x_zero = _int(_get(params, "x_zero", f"{name}.params"), f"{name}.params.x_zero",
                      INT8_MIN, INT8_MAX)
        y_scale = _scale(_get(params, "y_scale", f"{name}.params"), f"{name}.params.y_scale")
        y_zero = _int(_get(params, "y_zero", f"{name}.params"), f"{name}.params.y_zero",
                      INT8_MIN, INT8_MAX)
        # The paper pads (k-1)//2 on each side, whatever the stride.
        ph, pw = (kh - 1) // 2, (kw - 1) // 2
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1
        if self.native and oh > 0 and ow > 0 and "out_shape" in cfg and \
                cfg["out_shape"] not in (oh, (oh, ow), [oh, ow]):
            raise _fail(name, f"out_shape {cfg['out_shape']} disagrees with the geometry "
                        f"({h}x{w_} input, kernel {kh}x{kw}, stride {sh}, padding {ph}) -> "
                        f"{oh}x{ow}")
        y = self.emit.conv(name, x, weight, bias, w_scales, (x_scale, x_zero), (y_scale, y_zero),
                           (sh, sw), (ph, pw), groups, (ACT_MIN, ACT_MAX),
                           "use a larger --input-size")
        if abs(x_scale - x_quant[0]) > 1e-6 * x_quant[0] or x_zero != x_quant[1]:
            g.ops[-1].info["input_quant_mismatch"] = (x_quant, (x_scale, x_zero))
        return y, (y_scale, y_zero)

    def block(self, cfg: Any, name: str, x: int,
              xq: tuple[float, int]) -> tuple[int, tuple[float, int]]:
        if not isinstance(cfg, dict):
            raise _fail(name, f"expected a dict, got {type(cfg).__name__}")
        if cfg.get("se") is not None:
            raise _fail(name, "squeeze-and-excitation blocks are not supported (the paper's "
                        "training code does not support them either)")
        h, hq = x, xq
        for part in ("pointwise1", "depthwise", "pointwise2"):
            if cfg.get(part) is not None:
                h, hq = self.conv(cfg[part], f"{name}.{part}", h, hq)
        if h == x:
            raise _fail(name, "a block without any conv")
        res = cfg.get("residual")
        if res is None:
            return h, hq
        if "kernel_size" in res:
            raise _fail(f"{name}.residual", "residual convs (a conv on the shortcut) are not "
                        "supported; the paper's MCUNet and MobileNetV2 models have none")
        if self.g.tensors[h].shape != self.g.tensors[x].shape:
            raise _fail(f"{name}.residual", f"adds the block input {self.g.tensors[x].shape} to "
                        f"{self.g.tensors[h].shape}")
        rp = _get(res, "params", f"{name}.residual")
        where = f"{name}.residual.params"
        s1 = _scale(_get(rp, "x_scale", where), f"{where}.x_scale")
        z1 = _int(_get(rp, "x_zero", where), f"{where}.x_zero", INT8_MIN, INT8_MAX)
        sy = _scale(_get(rp, "y_scale", where), f"{where}.y_scale")
        zy = _int(_get(rp, "y_zero", where), f"{where}.y_zero", INT8_MIN, INT8_MAX)
        y = self.emit.add(f"{name}.residual", x, (s1, z1), h, hq, (sy, zy), (ACT_MIN, ACT_MAX))
        return y, (sy, zy)

    # -- the network ------------------------------------------------------------------------
    def run(self) -> Graph:
        cfg, g = self.cfg, self.g
        for key in ("first_conv", "blocks"):
            _get(cfg, key, "model")
        if not isinstance(cfg["blocks"], (list, tuple)):
            raise _fail("model.blocks", f"expected a list, got {type(cfg['blocks']).__name__}")
        first = cfg["first_conv"]
        in_c = _int(_get(first, "in_channel", "first_conv"), "first_conv.in_channel", 1)
        fp = _get(first, "params", "first_conv")
        in_scale = _scale(_get(fp, "x_scale", "first_conv.params"), "first_conv.params.x_scale")
        in_zero = _int(_get(fp, "x_zero", "first_conv.params"), "first_conv.params.x_zero",
                       INT8_MIN, INT8_MAX)
        s = self.input_size
        g.input = g.add_tensor("input", (in_c, s, s), TensorKind.INPUT, DType.S8)
        g.input_quant = (float(np.float32(in_scale)), in_zero)
        x, xq = self.conv(first, "first_conv", g.input, (in_scale, in_zero))
        for i, blk in enumerate(cfg["blocks"]):
            x, xq = self.block(blk, f"blocks.{i}", x, xq)
        if cfg.get("feature_mix") is not None:
            x, xq = self.conv(cfg["feature_mix"], "feature_mix", x, xq)
        # Global average pool (int8, same quantization in and out), then the fp32 head.
        c, h, w = g.tensors[x].shape
        pooled = self.emit.avgpool("pool", x, {"c": c, "in_h": h, "in_w": w, "out_h": 1, "out_w": 1,
                                               "k_h": h, "k_w": w, "stride_h": h, "stride_w": w,
                                               "pad_h": 0, "pad_w": 0}, xq[1])
        import torch  # the head's initialisation is torch.nn.Linear's
        gen_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(HEAD_SEED)
            head = torch.nn.Linear(c, self.num_classes)
        finally:
            torch.random.set_rng_state(gen_state)
        self.emit.head(pooled, xq, head.weight.detach().numpy(), head.bias.detach().numpy(),
                       "classifier")
        return g


def load_tiny_training(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CompileError(f"import_tiny: {path} does not exist")
    import torch
    try:
        cfg = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, AttributeError,
            ModuleNotFoundError, TypeError) as e:
        raise CompileError(f"import_tiny: {path} is not a tiny-training model file "
                           f"(torch.load failed: {e})") from None
    if not isinstance(cfg, dict):
        raise CompileError(f"import_tiny: {path} holds a {type(cfg).__name__}, not the "
                           "tiny-training model dict {first_conv, blocks, feature_mix, classifier}")
    return cfg


def import_tiny(path: str | Path, num_classes: int, input_size: int | None = None) -> Graph:
    """The pkl at `path` -> the forward IR graph (int8 backbone, fp32 head of num_classes)."""
    if num_classes < 1:
        raise CompileError(f"import_tiny: --num-classes must be at least 1, got {num_classes}")
    cfg = load_tiny_training(path)
    native = Importer(cfg, "", 1, 0)._native_size()
    size = native if input_size is None else input_size
    if size is None:
        raise CompileError("import_tiny: first_conv has no in_shape; give --input-size")
    if size < 1:
        raise CompileError(f"import_tiny: --input-size must be positive, got {size}")
    return Importer(cfg, Path(path).stem, num_classes, int(size)).run()
