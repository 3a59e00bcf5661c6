"""Sparse-update schemes: the shipped schemes select exactly the layers and channels they name, and
scheme mistakes are errors that name them.

The conv numbering is rebuilt here from the pkl as tiny-training's partial_backward.py counts
(every Conv2d of the backbone in network order: first_conv, then per block pointwise1, depthwise,
pointwise2, then feature_mix), and the channel choice from its definition (compiler/sparse.py):
the ceil(ratio * out_channels) output channels of largest L2 weight norm.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from paper_data import PAPER_MODELS, SCHEMES, paper_model
from tinyhost.compiler import CompileError, compile_tiny_training
from tinyhost.ops import Opcode, UpdateRule
from tinyhost.plan import TensorKind


def backbone_convs(cfg: dict) -> list[tuple[str, dict]]:
    convs = [("first_conv", cfg["first_conv"])]
    for i, blk in enumerate(cfg["blocks"]):
        convs += [(f"blocks.{i}.{k}", blk[k]) for k in ("pointwise1", "depthwise", "pointwise2")
                  if blk[k] is not None]
    if cfg.get("feature_mix"):
        convs.append(("feature_mix", cfg["feature_mix"]))
    return convs


def shipped(model: str) -> dict:
    if not SCHEMES.is_file():
        pytest.skip(f"{SCHEMES} is not here")
    return json.loads(SCHEMES.read_text())[model]


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_shipped_schemes_select_what_they_name(model, compile_int8):
    path = paper_model(model)
    cfg = torch.load(path, weights_only=False)
    convs = backbone_convs(cfg)
    n = len(convs)
    for budget, scheme in shipped(model).items():
        size = None if budget == "99kb" else 32  # the 99kb plan is the memory test's (128x128)
        plan = compile_int8(path, f"{SCHEMES}:{model}:{budget}", input_size=size).plan
        assert plan.meta["scheme"]["n_bias_update"] == scheme["n_bias_update"]
        trainable = {plan.tensors[i].name: plan.tensors[i] for i in plan.trainable}
        want = {"classifier.weight", "classifier.bias"}
        want |= {f"{name}.bias" for name, _ in convs[n - scheme["n_bias_update"]:]}
        for idx, ratio in zip(scheme["manual_weight_idx"], scheme["weight_update_ratio"],
                              strict=True):
            name, conv = convs[idx]
            if budget == "99kb" and ratio > 0:
                # The paper found the first pointwise conv of a block the one worth training; its
                # 99kb schemes train only those, which checks the conv numbering.
                assert name.endswith("pointwise1"), name
                assert conv["out_channel"] > conv["in_channel"], name
            w = conv["params"]["weight"]
            o = w.shape[0]
            k = math.ceil(ratio * o)
            if k == 0:
                assert f"{name}.weight" not in trainable and f"{name}.weight_rows" not in trainable
                continue
            if k == o:
                want.add(f"{name}.weight")
                assert trainable[f"{name}.weight"].shape == w.shape
                continue
            want.add(f"{name}.weight_rows")
            norms = np.sqrt((w.reshape(o, -1).astype(np.float64) ** 2).sum(1))
            top = np.sort(np.argsort(-norms, kind="stable")[:k])
            channels = plan.constant(plan.tensor_index(f"{name}.weight_channels"))
            assert np.array_equal(channels, top), f"{model} {budget} {name}"
            rows = plan.constant(plan.tensor_index(f"{name}.weight_rows"))
            assert np.array_equal(rows, w[top]) and trainable[f"{name}.weight_rows"].shape[0] == k
            # The full weight stays frozen in the blob (flash); only the rows are in the arena.
            assert plan.tensors[plan.tensor_index(f"{name}.weight")].kind == TensorKind.PARAM_FROZEN
        assert set(trainable) == want, f"{model} {budget}"
        # Every frozen int8 weight is a constant outside the arena.
        for t in plan.tensors:
            if t.kind == TensorKind.PARAM_FROZEN:
                assert not t.in_arena and t.data_offset >= 0
            if t.kind == TensorKind.PARAM_TRAINABLE:
                assert t.in_arena and t.data_offset >= 0


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_backprop_stops_at_the_earliest_trained_layer(model, compile_int8):
    path = paper_model(model)
    scheme = shipped(model)["99kb"]
    plan = compile_int8(path, f"{SCHEMES}:{model}:99kb").plan
    n = len(backbone_convs(torch.load(path, weights_only=False)))
    earliest = n - scheme["n_bias_update"]
    grad_inputs = sum(op.opcode in (Opcode.CONV2D_S8_GRAD_INPUT_F32,
                                    Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32) for op in plan.ops)
    assert grad_inputs == n - 1 - earliest
    # Weight rows train through the fused gradient-and-update op (no whole weight gradient).
    updates = [op for op in plan.ops
               if op.opcode in (Opcode.CONV2D_S8_SGD_F32, Opcode.UPDATE_S32_F32)]
    assert sum(op.opcode == Opcode.UPDATE_S32_F32 for op in updates) == scheme["n_bias_update"]
    assert sum(op.opcode == Opcode.CONV2D_S8_SGD_F32 for op in updates) == \
        sum(r > 0 for r in scheme["weight_update_ratio"])
    assert not any(op.opcode == Opcode.UPDATE_S8_F32 for op in plan.ops)
    assert all(op.attr("rule") == UpdateRule.ROUND for op in updates)  # the default rule


@pytest.fixture(scope="module")
def write_scheme(tmp_path_factory):
    d = tmp_path_factory.mktemp("schemes")

    def write(obj, name="s.json"):
        path = d / name
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return path
    return write


BAD_SCHEMES = [  # (scheme, message fragment); the synthetic model has 10 convs
    ({"n_bias_update": 4, "manual_weight_idx": [10], "weight_update_ratio": [1]},
     "manual_weight_idx 10 is out of range: the model has 10 backbone convs (indices 0..9)"),
    ({"n_bias_update": 4, "manual_weight_idx": [-1], "weight_update_ratio": [1]},
     "manual_weight_idx -1 is out of range"),
    ({"n_bias_update": 2, "manual_weight_idx": [5], "weight_update_ratio": [1]},
     "manual_weight_idx 5 is not among the last n_bias_update = 2 convs (8..9)"),
    ({"n_bias_update": 11, "manual_weight_idx": [], "weight_update_ratio": []},
     "n_bias_update 11 is out of range"),
    ({"n_bias_update": 4, "manual_weight_idx": [8, 9], "weight_update_ratio": [1]},
     "weight_update_ratio has 1 entries for 2 manual_weight_idx entries"),
    ({"n_bias_update": 4, "manual_weight_idx": [9, 9], "weight_update_ratio": [1, 1]},
     "manual_weight_idx 9 appears twice"),
    ({"n_bias_update": 4, "manual_weight_idx": [9], "weight_update_ratio": [1.5]},
     "weight_update_ratio 1.5 for conv 9"),
    ({"manual_weight_idx": [9]}, "a scheme is a JSON object with n_bias_update"),
    ("{not json", "is not valid JSON"),
]


@pytest.mark.parametrize("scheme,message", BAD_SCHEMES, ids=[m for _, m in BAD_SCHEMES])
def test_bad_scheme_is_named(synthetic_pkl, write_scheme, scheme, message):
    path = write_scheme(scheme)
    with pytest.raises(CompileError, match="autodiff: --update") as e:
        compile_tiny_training(synthetic_pkl, 4, update=str(path))
    assert message in str(e.value)


def test_scheme_file_forms(synthetic_pkl, write_scheme):
    one = {"n_bias_update": 3, "manual_weight_idx": [8, 9], "weight_update_ratio": [0.5, 0]}
    every_bias = {"n_bias_update": "all", "manual_weight_idx": None, "weight_update_ratio": None}
    shipped_like = {"source": "x", "synthetic": {"10kb": one, "20kb": every_bias}}
    single = write_scheme(one, "one.json")
    multi = write_scheme(shipped_like, "multi.json")
    # the trainable tensors themselves (rule round: no f32 masters beside them)
    names = lambda r: {r.plan.tensors[i].name for i in r.plan.trainable}  # noqa: E731
    a = compile_tiny_training(synthetic_pkl, 4, update=str(single), int8_update="round")
    b = compile_tiny_training(synthetic_pkl, 4, update=f"{multi}:synthetic:10kb",
                              int8_update="round")
    c = compile_tiny_training(synthetic_pkl, 4, update=f"{multi}:10kb",  # model: the pkl's name
                              int8_update="round")
    assert names(a) == names(b) == names(c) == {
        "classifier.weight", "classifier.bias", "blocks.2.depthwise.bias",
        "blocks.2.pointwise2.bias", "feature_mix.bias", "blocks.2.pointwise2.weight_rows"}
    d = compile_tiny_training(synthetic_pkl, 4, update=f"{multi}:20kb")
    assert len([n for n in names(d) if n.endswith(".bias")]) == 11  # n_bias_update "all"
    for update, message in ((f"{multi}", "choose one: "
                             + f"{multi}:synthetic:BUDGET with BUDGET one of 10kb, 20kb"),
                            (f"{multi}:synthetic:5kb",
                             "has no scheme '5kb' for synthetic (it has: 10kb, 20kb)"),
                            (f"{multi}:other:10kb",
                             "has no schemes for model 'other' (it has: synthetic)"),
                            (f"{single}:10kb", "holds one scheme; drop the selector"),
                            (f"{single.parent / 'missing.json'}", "cannot read"),
                            ("last:12", "K must be 1..11"),
                            ("fc.weight", "int8 models take full, last:K, bias-only")):
        with pytest.raises(CompileError) as e:
            compile_tiny_training(synthetic_pkl, 4, update=update)
        assert message in str(e.value), update
