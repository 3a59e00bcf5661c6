"""Post-training quantization of float models (compiler/quantize.py): BatchNorm folding, the int8
forward against the float model within quantization error, calibration ranges -> (scale, zero)
and clamps, the graph's structure, and unsupported layers named."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinyhost.compiler import CompileError, compile_quantized
from tinyhost.compiler.capture import capture
from tinyhost.compiler.lower import fold_batchnorm
from tinyhost.compiler.quantize import INT8_LAYERS, calibrate
from tinyhost.ops import Opcode
from tinyhost.refexec.executor import RefExecutor
from tinyhost.refexec.requant import (
    effective_scale,
    quantize_activation_params,
    quantize_multipliers,
    quantize_per_channel_weights,
)


class Residual(nn.Module):
    """x + pw(relu6(bn(depthwise(x)))): a MobileNet-style residual block."""

    def __init__(self, c: int, conv: type[nn.Module], bn: type[nn.Module]) -> None:
        super().__init__()
        self.dw = conv(c, c, 3, padding=1, groups=c)
        self.bn = bn(c)
        self.act = nn.ReLU6()
        self.pw = conv(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw(self.act(self.bn(self.dw(x))))


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


def model_2d(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _randomize_bn(nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        Residual(8, nn.Conv2d, nn.BatchNorm2d),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)), seed)


def model_1d(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _randomize_bn(nn.Sequential(
        nn.Conv1d(6, 8, 7, stride=2, padding=3), nn.BatchNorm1d(8), nn.ReLU(),
        Residual(8, nn.Conv1d, nn.BatchNorm1d),
        nn.Conv1d(8, 16, 5, stride=2, padding=2), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 4)), seed)


def write_model(tmp_path: Path, model: nn.Module, shape: tuple[int, ...]) -> str:
    path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, *shape),)), path)
    return str(path)


def samples(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed)).numpy()


def forward(plan, x: np.ndarray, tensor: str) -> np.ndarray:
    ex = RefExecutor(plan)
    index = next(i for i, t in enumerate(plan.tensors) if t.name == tensor)
    out = []
    for s in x:
        ex.evaluate(s)
        out.append(ex.read_tensor(index).reshape(-1))
    return np.array(out)


# -- BatchNorm folding ----------------------------------------------------------------------------
@pytest.mark.parametrize("conv", [nn.Conv1d(4, 6, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2),
                                  nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)])
def test_fold_batchnorm_equals_conv_then_bn(conv):
    torch.manual_seed(1)
    bn = (nn.BatchNorm1d if isinstance(conv, nn.Conv1d) else nn.BatchNorm2d)(conv.out_channels)
    _randomize_bn(bn, 2)
    t = lambda p: None if p is None else p.detach().numpy()  # noqa: E731
    w, b = fold_batchnorm(t(conv.weight), t(conv.bias), t(bn.weight), t(bn.bias),
                          t(bn.running_mean), t(bn.running_var), bn.eps)
    x = torch.randn(2, conv.in_channels, *([9] if isinstance(conv, nn.Conv1d) else [9, 9]))
    with torch.no_grad():
        want = bn.eval()(conv(x))
        folded = conv._conv_forward(x, torch.from_numpy(w), torch.from_numpy(b))
    np.testing.assert_allclose(folded.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


# -- calibration and the graph ---------------------------------------------------------------------
def test_calibration_ranges_set_scales_zero_points_and_clamps(tmp_path):
    model = model_2d()
    x = samples((3, 16, 16), 12, seed=3)
    src = write_model(tmp_path, model, (3, 16, 16))
    ranges = calibrate(capture(src), x)
    assert ranges["input"] == (float(x.min()), float(x.max()))
    plan = compile_quantized(src, x, update="full").plan
    scale, zero = quantize_activation_params(*ranges["input"])
    assert plan.meta["input_quant"] == {"scale": float(scale), "zero": zero}
    convs = [op for op in plan.ops[:plan.n_forward]
             if op.opcode in (Opcode.CONV2D_S8, Opcode.DEPTHWISE_CONV2D_S8)]
    assert [plan.tensors[op.inputs[1]].name for op in convs] == [
        "0.weight", "3.dw.weight", "3.pw.weight", "4.weight"]
    # conv -> BN -> ReLU: one op, quantized by the ReLU's range; the clamp is the ReLU (y_zero).
    first = convs[0]
    y_zero, act_min, act_max = (first.attr(n) for n in ("y_zero", "act_min", "act_max"))
    lo, hi = ranges["relu"]
    assert lo == 0.0 and (y_zero, act_min, act_max) == (-128, -128, 127)
    y_scale = quantize_activation_params(lo, hi)[0]
    # the depthwise conv after it: x_scale from that range, y_scale from its ReLU6's range, the
    # weight scales from its BN-folded weights -> QuantizeMultiplier per channel
    dw, bn = model[3].dw, model[3].bn
    t = lambda a: a.detach().numpy()  # noqa: E731
    w, _ = fold_batchnorm(t(dw.weight), t(dw.bias), t(bn.weight), t(bn.bias), t(bn.running_mean),
                          t(bn.running_var), bn.eps)
    s_w = quantize_per_channel_weights(w)[1]
    mult, shift = quantize_multipliers(effective_scale(
        y_scale, s_w, quantize_activation_params(*ranges["hardtanh"])[0]))
    np.testing.assert_array_equal(plan.constant(convs[1].inputs[3]), mult)
    np.testing.assert_array_equal(plan.constant(convs[1].inputs[4]), shift)
    assert convs[1].attr("x_zero") == y_zero  # its input zero point is the first conv's output's
    # ReLU6 (hardtanh(0, 6)): clamp at y_zero and at 6 if the range reaches it
    last = convs[3]
    s6, z6 = quantize_activation_params(*ranges["hardtanh_1"])
    assert [last.attr(n) for n in ("y_zero", "act_min", "act_max")] == [
        z6, max(-128, z6), min(127, z6 + round(6 / float(s6)))]
    # residual add requantizes to the add's calibrated range; input/output zero points chain
    add = next(op for op in plan.ops if op.opcode == Opcode.ADD_S8)
    assert add.attr("y_zero") == quantize_activation_params(*ranges["add"])[1]
    assert add.attr("x1_zero") == y_zero  # the shortcut is the first conv's output
    # average pools keep their input's quantization; the head is fp32 with the model's weights
    pools = [op for op in plan.ops if op.opcode == Opcode.AVGPOOL2D_S8]
    assert len(pools) == 2 and pools[0].attr("x_zero") == z6
    head = next(op for op in plan.ops if op.opcode == Opcode.LINEAR_F32)
    np.testing.assert_array_equal(RefExecutor(plan).read_tensor(head.inputs[1]),
                                  model[-1].weight.detach().numpy())


def test_int8_forward_within_quantization_error(tmp_path):
    """One conv + BN + ReLU, globally pooled: each dequantized feature is within the error the
    roundings can make. At each output position, (x + ex)(w + ew) - xw with |ex| <= s_x/2 and
    |ew| <= s_w/2 is at most s_x/2 sum|w| + s_w/2 sum|x| + taps s_x s_w/4 (ReLU does not enlarge
    it); the bias is off by s_w s_x/2, the requantization by 1.5 LSB (TFLite's double rounding),
    the pool's mean by 0.5 LSB. The pool averages the positions' bounds."""
    torch.manual_seed(4)
    model = _randomize_bn(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)), 5)
    x = samples((3, 10, 10), 20, seed=6)
    plan = compile_quantized(write_model(tmp_path, model, (3, 10, 10)), x).plan
    assert plan.ops[0].opcode == Opcode.CONV2D_S8
    got = forward(plan, x, "features")
    with torch.no_grad():
        want = model[:5](torch.from_numpy(x)).numpy()
    s_x = plan.meta["input_quant"]["scale"]
    s_y = RefExecutor(plan).read_tensor(
        next(i for i, t in enumerate(plan.tensors) if t.name == "features.scale"))[0]
    bn = model[1]
    w, _ = fold_batchnorm(model[0].weight.detach().numpy(), model[0].bias.detach().numpy(),
                          *(t.detach().numpy() for t in (bn.weight, bn.bias, bn.running_mean,
                                                         bn.running_var)), bn.eps)
    s_w = np.abs(w).reshape(8, -1).max(axis=1) / 127
    taps = w[0].size
    with torch.no_grad():  # sum of |x| over each output's window, averaged over the positions
        patch = nn.functional.conv2d(torch.from_numpy(np.abs(x) + s_x / 2), torch.ones(1, 3, 3, 3),
                                     padding=1).mean(dim=(1, 2, 3)).numpy()
    bound = (s_x / 2 * np.abs(w).reshape(8, -1).sum(axis=1)[None, :]
             + s_w[None, :] / 2 * patch[:, None] + taps * s_x * s_w[None, :] / 4
             + s_w[None, :] * s_x / 2 + 2.0 * s_y)
    err = np.abs(got - want)
    assert (err <= bound).all(), (err.max(axis=0), bound.max(axis=0))
    # the bound is tight enough to matter (well below the features), and this is real int8
    # The worst case is loose (every rounding aligned); the roundings are unbiased and average
    # out over the window and the positions: measured 0.5 output LSB. Two LSB catches any
    # systematic error (a wrong scale, zero point or fold), and this is real int8 (err > 0).
    assert 0 < err.max() <= 2 * s_y, (err.max(), s_y)


@pytest.mark.parametrize("make,shape", [(model_2d, (3, 16, 16)), (model_1d, (6, 40))])
def test_quantized_model_follows_the_float_model(tmp_path, make, shape):
    model = make()
    x = samples(shape, 40, seed=7)
    plan = compile_quantized(write_model(tmp_path, model, shape), x[:30]).plan
    got = forward(plan, x, "logits")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel < 0.08, rel
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.9


# -- errors ----------------------------------------------------------------------------------------
def _factory_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "model.py"
    path.write_text("import torch\nfrom torch import nn\n\ndef make():\n    torch.manual_seed(0)\n"
                    f"    return {body}, torch.zeros(1, 6, 32)\n")
    return f"{path}:make"


@pytest.mark.parametrize("body,message", [
    ("nn.Sequential(nn.Conv1d(6, 8, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), "
     "nn.Linear(120, 4))",
     "unsupported layer MaxPool1d at '2'"),
    ("nn.Sequential(nn.Conv1d(6, 8, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(240, 4))",
     "unsupported layer Sigmoid at '1'"),
    ("nn.Sequential(nn.Conv1d(6, 8, 3), nn.AdaptiveAvgPool1d(1), nn.BatchNorm1d(8), nn.Flatten(), "
     "nn.Linear(8, 4))", "quantize: 2 (BatchNorm1d)"),
    ("nn.Sequential(nn.Conv1d(6, 8, 3), nn.AdaptiveAvgPool1d(1), nn.ReLU(), nn.Flatten(), "
     "nn.Linear(8, 4))", "quantize: 2 (ReLU)"),
    ("nn.Sequential(nn.Conv1d(6, 8, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten())",
     "must end in a Linear"),
    ("nn.Sequential(nn.Conv1d(6, 8, 3), nn.Flatten(), nn.Linear(240, 8), nn.Linear(8, 4))",
     "quantize: 2 (Linear): only the model's last layer may be a Linear"),
])
def test_unsupported_is_named(tmp_path, body, message):
    with pytest.raises(CompileError) as e:
        compile_quantized(_factory_file(tmp_path, body), samples((6, 32), 4, seed=0))
    assert message in str(e.value)


def test_functional_max_pool_is_named(tmp_path):
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(6, 8, 3)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            y = nn.functional.max_pool1d(self.conv(x), 30)
            return self.fc(y.flatten(1))

    with pytest.raises(CompileError, match="unsupported layer .*max_pool1d.*no max pool"):
        compile_quantized(write_model(tmp_path, M().eval(), (6, 32)), samples((6, 32), 2, 0))


def test_calibration_samples_are_checked(tmp_path):
    src = write_model(tmp_path, model_1d(), (6, 40))
    with pytest.raises(CompileError, match=r"calibration samples have shape \(6, 41\)"):
        compile_quantized(src, samples((6, 41), 2, 0))
    with pytest.raises(CompileError, match="no calibration samples"):
        compile_quantized(src, np.zeros((0, 6, 40), np.float32))


def test_int8_layer_list_has_no_max_pool():
    assert not any(issubclass(c, (nn.MaxPool1d, nn.MaxPool2d)) for c in INT8_LAYERS)
