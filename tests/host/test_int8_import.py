"""Import of the paper's int8 models (tinyhost compile --from-tiny-training).

Exactness argument, in three parts, against int8_ref.PaperNet (an independent PyTorch model of the
paper's simulated network built from the .pkl as tiny-training's custom_quantized_format does):

1. with TFLite's fixed-point requantization written again in torch, the reference executor's
   output of *every* layer equals the reference's bit for bit, end to end, at 128x128;
2. with the paper's own rounding (round(acc * M), exactly rounded) and each layer fed the
   executor's input, >= 99% of every layer's outputs are equal and none is more than 1 LSB away:
   the only difference is docs/int8.md's choice of TFLite's double rounding;
3. end to end with the paper's rounding, those 1-LSB differences compound through 40-50 layers:
   measured, about a third of the final int8 features are equal and the rest within a few LSB
   (pooled features within 2 LSB). The test asserts the bound (5 LSB for features, 3 pooled),
   not a fraction: 99% equal end to end does not hold for *any* TFLite-exact implementation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from int8_ref import PaperNet, QConvFn
from paper_data import PAPER_MODELS, SCHEMES, paper_model, smooth_images
from tinyhost.compiler import CompileError, compile_tiny_training
from tinyhost.ops import Opcode
from tinyhost.plan import DType, TensorKind
from tinyhost.refexec.executor import RefExecutor, prepare_input

CONV_COUNT = {"mcunet-5fps": 42, "mbv2-w0.35": 51}  # backbone Conv2d modules, as partial_backward


def load_cfg(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def source_of(plan, op) -> str:
    return plan.tensors[op.outputs[0]].name.removesuffix(".out")


def forward_trace(plan, x):
    """Every forward op's input and output, read right after the op (before reuse)."""
    ex = RefExecutor(plan)
    ex.set_input(x)
    inputs, outputs = {}, {}
    for op in plan.ops[:plan.n_forward]:
        name = source_of(plan, op)
        inputs[name] = ex.read_tensor(op.inputs[0])
        ex.run([op])
        outputs[name] = ex.read_tensor(op.outputs[0])
    return inputs, outputs


@pytest.fixture(scope="module", params=PAPER_MODELS)
def paper(request, compile_int8):
    path = paper_model(request.param)
    result = compile_int8(path, "last:1", fuse=False)  # every layer's output is a tensor
    plan = result.plan
    net = PaperNet(load_cfg(path), plan.constant(plan.tensor_index("classifier.weight")),
                   plan.constant(plan.tensor_index("classifier.bias")))
    return request.param, path, result, net


def test_structure(paper):
    name, path, result, net = paper
    plan, cfg = result.plan, load_cfg(path)
    convs = [op for op in plan.ops[:plan.n_forward]
             if op.opcode in (Opcode.CONV2D_S8, Opcode.DEPTHWISE_CONV2D_S8)]
    assert len(convs) == CONV_COUNT[name] == len(net.layers)
    assert [source_of(plan, op) for op in convs] == [L.name for L in net.layers]
    n_res = sum(b["residual"] is not None for b in cfg["blocks"])
    assert sum(op.opcode == Opcode.ADD_S8 for op in plan.ops) == n_res
    assert [op.opcode for op in plan.ops[plan.n_forward - 3:plan.n_forward]] == [
        Opcode.AVGPOOL2D_S8, Opcode.DEQUANTIZE_S8_F32, Opcode.LINEAR_F32]
    # Input: int8 with the first conv's quantization, 128x128 by default.
    t_in = plan.tensors[plan.bindings.input]
    assert (t_in.dtype, t_in.shape) == (DType.S8, (3, 128, 128))
    fp = cfg["first_conv"]["params"]
    assert plan.meta["input_quant"] == {"scale": float(np.float32(fp["x_scale"])),
                                        "zero": fp["x_zero"]}
    for op, L in zip(convs, net.layers, strict=True):
        # Weights exactly; multipliers and shifts from QuantizeMultiplier of the effective scale.
        assert np.array_equal(plan.constant(op.inputs[1]),
                              L.weight.detach().numpy().astype(np.int8))
        assert np.array_equal(plan.constant(op.inputs[3]), L.mult.numpy()), L.name
        assert np.array_equal(plan.constant(op.inputs[4]), L.shift.numpy()), L.name
        k = plan.tensors[op.inputs[1]].shape[2]
        assert op.attr("pad_h") == (k - 1) // 2
        assert [op.attr(n) for n in ("x_zero", "y_zero", "act_min", "act_max")] == [
            L.x_zero, L.y_zero, -128, 127]
        # Biases exactly, except the saturated ones of dead channels (brought within reach).
        b = plan.constant(op.inputs[2])
        live = ~L.dead.numpy()
        assert np.array_equal(b[live], L.bias.detach().numpy()[live].astype(np.int32)), L.name
    # The head: 10 classes, fp32, torch.nn.Linear's default initialisation under seed 0.
    torch.manual_seed(0)
    head = torch.nn.Linear(net.head_w.shape[1], 10)
    assert np.array_equal(plan.constant(plan.tensor_index("classifier.weight")),
                          head.weight.detach().numpy())
    assert np.array_equal(plan.constant(plan.tensor_index("classifier.bias")),
                          head.bias.detach().numpy())
    assert plan.num_classes == 10
    if name == "mcunet-5fps":  # this model has dead channels (bias -2^31); the plan says so
        assert any("dead output channel" in note for note in plan.meta["import_notes"])


def test_forward_bit_exact_with_tflite_rounding(paper):
    """Part 1: every layer's output equals the independent torch model with TFLite's arithmetic."""
    name, _, result, net = paper
    plan = result.plan
    for x in smooth_images(2, 128, seed=1):
        _, got = forward_trace(plan, x)
        trace: dict = {}
        with torch.no_grad():
            logits = net.forward(prepare_input(plan, x).reshape(3, 128, 128), "tflite", trace)
        assert len(trace) == len(got) - 2  # all but the dequantize and the head
        for layer, ref in trace.items():
            assert np.array_equal(got[layer].reshape(-1),
                                  ref.numpy().reshape(-1).astype(np.int8)), f"{name} {layer}"
        np.testing.assert_allclose(got["logits"], logits.numpy(), rtol=1e-5, atol=1e-5)


def test_forward_vs_paper_rounding(paper):
    """Parts 2 and 3: the paper's exactly-rounded requantization, per layer and end to end."""
    name, _, result, net = paper
    plan = result.plan
    x = smooth_images(1, 128, seed=2)[0]
    inputs, got = forward_trace(plan, x)
    for L in net.layers:
        with torch.no_grad():
            ref = QConvFn.apply(torch.tensor(inputs[L.name].astype(np.float64)), L.weight, L.bias,
                                L, "paper").numpy()
        d = ref - got[L.name]
        assert np.abs(d).max() <= 1, f"{name} {L.name}: {np.abs(d).max()} LSB"
        assert np.mean(d == 0) >= 0.99, f"{name} {L.name}: {np.mean(d == 0):.4f} equal"
    trace: dict = {}
    with torch.no_grad():
        net.forward(prepare_input(plan, x).reshape(3, 128, 128), "paper", trace)
    last = [k for k in trace if k != "pool"][-1]
    d_feat = trace[last].numpy().reshape(-1) - got[last].reshape(-1)
    d_pool = trace["pool"].numpy().reshape(-1) - got["pool"].reshape(-1)
    assert np.abs(d_feat).max() <= 5 and np.abs(d_pool).max() <= 3, \
        f"{name}: features {np.abs(d_feat).max()} LSB, pooled {np.abs(d_pool).max()} LSB"


def test_reduced_input_size(paper, compile_int8):
    """--input-size compiles the same weights at another resolution."""
    name, path, full, _ = paper
    small = compile_int8(path, "last:1", input_size=32).plan
    assert small.tensors[small.bindings.input].shape == (3, 32, 32)
    w = [t for t in small.tensors if t.kind == TensorKind.PARAM_FROZEN and t.dtype == DType.S8]
    assert len(w) == CONV_COUNT[name]
    assert small.arena_size < full.plan.arena_size / 8


def test_train_on_float_samples(paper, compile_int8):
    """The reference executor quantizes float samples with the plan's input quantization, so an
    int8 plan trains on a float dataset; the loss of a repeated sample goes down."""
    _, path, _, _ = paper
    plan = compile_int8(path, f"{SCHEMES}:99kb", input_size=48, num_classes=3).plan
    ex = RefExecutor(plan)
    xs = smooth_images(3, 48, seed=3)
    first = [ex.train_step(x, i, lr=0.002).loss for i, x in enumerate(xs)]
    for _ in range(4):
        last = [ex.train_step(x, i, lr=0.002).loss for i, x in enumerate(xs)]
    assert sum(last) < sum(first)
    iq = plan.meta["input_quant"]
    q = np.clip(np.floor(np.abs(xs[0] / np.float32(iq["scale"])) + 0.5) * np.sign(xs[0])
                + iq["zero"], -128, 127)
    assert np.array_equal(prepare_input(plan, xs[0]), q.astype(np.int8).reshape(-1))


# --- malformed files ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth_cfg(synthetic_pkl):
    return load_cfg(synthetic_pkl)


def _save(tmp_path, obj, name="m.pkl"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _mutated(cfg, mutate):
    import copy
    c = copy.deepcopy(cfg)
    mutate(c)
    return c


MALFORMED = [
    ("not a dict", lambda c: [1, 2], "not the tiny-training model dict"),
    ("no blocks", lambda c: c.pop("blocks"), "missing key 'blocks'"),
    ("weight dtype", lambda c: c["blocks"][1]["depthwise"]["params"].__setitem__(
        "weight", c["blocks"][1]["depthwise"]["params"]["weight"].astype(np.float32)),
     "blocks.1.depthwise.params.weight: expected int8"),
    ("weight shape", lambda c: c["blocks"][0]["pointwise2"]["params"].__setitem__(
        "weight", np.zeros((8, 7, 1, 1), np.int8)), "blocks.0.pointwise2.params.weight: has shape"),
    ("channel chain", lambda c: c["blocks"][2]["pointwise1"].__setitem__("in_channel", 13),
     "blocks.2.pointwise1: in_channel is 13"),
    ("zero point", lambda c: c["first_conv"]["params"].__setitem__("y_zero", 300),
     "first_conv.params.y_zero: 300 is outside"),
    ("negative scale", lambda c: c["blocks"][0]["residual"]["params"].__setitem__("y_scale", -1.0),
     "blocks.0.residual.params.y_scale"),
    ("se block", lambda c: c["blocks"][1].__setitem__("se", {"fc": 1}), "squeeze-and-excitation"),
    ("residual conv", lambda c: c["blocks"][0]["residual"].__setitem__("kernel_size", 1),
     "residual convs"),
    ("missing w_scales", lambda c: c["feature_mix"]["params"].pop("w_scales"),
     "feature_mix.params: missing key 'w_scales'"),
]


@pytest.mark.parametrize("what,mutate,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_pkl(tmp_path, synth_cfg, what, mutate, message):
    obj = mutate(synth_cfg) if what == "not a dict" else _mutated(synth_cfg, mutate)
    with pytest.raises(CompileError, match="import_tiny") as e:
        compile_tiny_training(_save(tmp_path, obj), 4, "full")
    assert message in str(e.value)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(CompileError, match="not a tiny-training model file"):
        compile_tiny_training(path, 4)
    with pytest.raises(CompileError, match="does not exist"):
        compile_tiny_training(tmp_path / "missing.pkl", 4)


def test_too_small_input(synthetic_pkl):
    with pytest.raises(CompileError, match="--input-size"):
        compile_tiny_training(synthetic_pkl, 4, input_size=0)
    assert math.isfinite(compile_tiny_training(synthetic_pkl, 4, input_size=1).plan.arena_size)
