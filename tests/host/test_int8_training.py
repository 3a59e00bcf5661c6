"""int8 training (backward + QAS + sparse update) in the reference executor against PyTorch autograd
of the paper's formulation (int8_ref: quantized_ops_diff.py's gradients, sgd_scale.py's QAS).

A small synthetic model in the paper's format (residual and plain blocks, 3x3 and 5x5 depthwise,
strides, ReLU6 as the clamp) trains for a few steps on the same samples in both. Per step: the
loss and prediction, and every weight and bias gradient the plan computes (read from the arena
right after its op), against the torch gradients. After the last step: every trained parameter
(int8 weights exactly, int32 biases exactly, f32 masters and the fp32 head within float32
tolerance) and every frozen one bit for bit, including the untrained rows of a partly trained
layer. What trains is derived here from the scheme's definition, not taken from the compiler.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from closeness import assert_close
from int8_ref import PaperNet, TrainSpec, train_step
from paper_data import smooth_images
from tinyhost.compiler import compile_tiny_training
from tinyhost.ops import Opcode
from tinyhost.plan import NONE, TensorKind
from tinyhost.refexec.executor import RefExecutor, prepare_input

STEPS = 4
LR = 0.05
N_CONV = 10  # synthetic model: first, b0 (dw, pw2), b1 (pw1, dw, pw2), b2 (pw1, dw, pw2), mix
SCHEME = {"n_bias_update": 7, "manual_weight_idx": [3, 4, 6, 9],
          "weight_update_ratio": [0.5, 1, 0.25, 0]}

CASES = [  # id, update, rule, qas, reorder
    ("full-round", "full", "round", True, True),
    ("full-master", "full", "master", True, True),
    ("last3-round", "last:3", "round", True, True),
    ("biasonly-round", "bias-only", "round", True, True),
    ("scheme-master", "SCHEME", "master", True, True),
    ("scheme-round-noqas", "SCHEME", "round", False, True),
    ("scheme-round-noreorder", "SCHEME", "round", True, False),
]


def top_channels(w: np.ndarray, ratio: float) -> list[int] | str | None:
    """The scheme's channel choice, from its definition: ceil(ratio * O) output channels of
    largest L2 norm (ties: lower index); "all" for 1; None for 0."""
    o = w.shape[0]
    k = math.ceil(ratio * o)
    if k == 0:
        return None
    if k >= o:
        return "all"
    norms = np.sqrt((w.reshape(o, -1).astype(np.float64) ** 2).sum(1))
    return sorted(np.argsort(-norms, kind="stable")[:k].tolist())


def spec_for(update: str, net: PaperNet, rule: str, qas: bool) -> TrainSpec:
    n = len(net.layers)
    if update == "full":
        layers = {i: (True, "all") for i in range(n)}
    elif update == "bias-only":
        layers = {i: (True, None) for i in range(n)}
    elif update.startswith("last:"):
        k = int(update[5:]) - 1  # the head is one of the K layers
        layers = {i: (True, "all") for i in range(n - k, n)}
    else:
        s = SCHEME
        layers = {i: (True, None) for i in range(n - s["n_bias_update"], n)}
        for i, r in zip(s["manual_weight_idx"], s["weight_update_ratio"], strict=False):
            layers[i] = (True, top_channels(net.layers[i].weight.detach().numpy(), r))
    return TrainSpec(layers, rule, qas)


def effective_weight(ex: RefExecutor, plan, name: str) -> np.ndarray:
    """The int8 weight a conv uses now: its weight with trained rows substituted."""
    w = ex.read_tensor(plan.tensor_index(f"{name}.weight")).copy()
    try:
        rows = ex.read_tensor(plan.tensor_index(f"{name}.weight_rows"))
        channels = ex.read_tensor(plan.tensor_index(f"{name}.weight_channels"))
        w[channels] = rows
    except KeyError:
        pass
    return w


@pytest.fixture(scope="module")
def samples():
    xs = smooth_images(STEPS, 16, seed=5)
    return xs, [1, 3, 0, 2][:STEPS]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_training_matches_torch(case, synthetic_pkl, samples, tmp_path):
    _, update, rule, qas, reorder = case
    if update == "SCHEME":
        path = tmp_path / "scheme.json"
        path.write_text(json.dumps(SCHEME))
        update_arg = str(path)
    else:
        update_arg = update
    # Unfused (fuse=False): the weight gradients exist as tensors, to compare with torch's;
    # test_fused_updates_are_the_same_arithmetic shows the fused plan computes the same.
    # one learning rate for head and backbone, as the torch model applies it
    result = compile_tiny_training(synthetic_pkl, 4, update=update_arg, qas=qas, int8_update=rule,
                                   reorder=reorder, fuse=False, lr=LR, backbone_lr=LR)
    plan = result.plan
    cfg = torch.load(synthetic_pkl, weights_only=False)
    net = PaperNet(cfg, plan.constant(plan.tensor_index("classifier.weight")),
                   plan.constant(plan.tensor_index("classifier.bias")))
    assert len(net.layers) == N_CONV
    spec = spec_for(update, net, rule, qas)
    initial = {L.name: (L.weight.detach().numpy().copy(), L.bias.detach().numpy().copy())
               for L in net.layers}
    ex = RefExecutor(plan)
    grad_ops = [op for op in plan.ops if op.opcode == Opcode.CONV2D_S8_GRAD_WEIGHT_F32]
    # Backward ops exist exactly for the layers that train (and stop at the earliest).
    trained_names = {net.layers[i].name for i in spec.layers}
    assert {plan.tensors[op.outputs[1]].name.removeprefix("grad:").removesuffix(".bias")
            for op in grad_ops} == trained_names
    # Backprop stops at the earliest trained layer: input gradients only above it, and only the
    # layers from it on keep a clamp mask for backward.
    earliest = min(spec.layers)
    grad_inputs = [op for op in plan.ops if op.opcode == Opcode.CONV2D_S8_GRAD_INPUT_F32]
    assert len(grad_inputs) == N_CONV - 1 - earliest
    masks = {plan.tensors[t].name.removesuffix(".mask") for t in range(len(plan.tensors))
             if plan.tensors[t].name.endswith(".mask")}
    assert {L.name for L in net.layers if L.name in masks} == \
        {L.name for L in net.layers[earliest:]}
    xs, labels = samples
    changed = 0
    for step, (x, label) in enumerate(zip(xs, labels, strict=True)):
        # The reference executor, op by op, reading each weight-gradient op's outputs.
        ex.set_input(x)
        ex.view(plan.bindings.label)[0] = label
        ex.lr = np.float32(LR)
        got_grads = {}
        for op in plan.ops:
            ex.run([op])
            if op.opcode == Opcode.CONV2D_S8_GRAD_WEIGHT_F32:
                for t in op.outputs:
                    if t != NONE:
                        got_grads[plan.tensors[t].name.removeprefix("grad:")] = ex.read_tensor(t)
        loss, pred = float(ex.view(plan.bindings.loss)[0]), int(ex.view(plan.bindings.pred)[0])
        ref_grads: dict = {}
        ref_loss, ref_pred = train_step(net, prepare_input(plan, x).reshape(3, 16, 16), label, LR,
                                        spec, ref_grads)
        assert pred == ref_pred and loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-6), step
        for i, (_, sel) in spec.layers.items():
            name = net.layers[i].name
            assert_close(got_grads[f"{name}.bias"], ref_grads[f"{name}.bias"],
                         f"{name}.bias step {step}")
            if sel is None:
                assert f"{name}.weight" not in got_grads and f"{name}.weight_rows" not in got_grads
            elif sel == "all":
                assert_close(got_grads[f"{name}.weight"], ref_grads[f"{name}.weight"],
                             f"{name}.weight step {step}")
            else:
                assert_close(got_grads[f"{name}.weight_rows"], ref_grads[f"{name}.weight"][sel],
                             f"{name}.weight rows step {step}")
    # Parameters after the last step.
    for i, L in enumerate(net.layers):
        w_now = effective_weight(ex, plan, L.name)
        w_ref = torch.round(L.weight.detach()).clamp(-127, 127).numpy().astype(np.int8)
        assert np.array_equal(w_now, w_ref), f"{L.name}.weight"
        changed += int((w_now != initial[L.name][0]).sum())
        train_b, sel = spec.layers.get(i, (False, None))
        if sel is None:  # frozen weight: bit for bit
            assert np.array_equal(w_now, initial[L.name][0].astype(np.int8)), L.name
        elif sel != "all":  # untrained rows of a partly trained layer: bit for bit
            frozen_rows = np.setdiff1d(np.arange(w_now.shape[0]), sel)
            assert np.array_equal(w_now[frozen_rows],
                                  initial[L.name][0][frozen_rows].astype(np.int8))
        b_now = ex.read_tensor(plan.tensor_index(f"{L.name}.bias"))
        assert np.array_equal(b_now, torch.round(L.bias.detach()).numpy().astype(np.int32)), \
            f"{L.name}.bias"
        if not train_b:
            assert np.array_equal(b_now, initial[L.name][1].astype(np.int32))
        if rule == "master" and sel is not None:
            key = f"{L.name}.weight.master" if sel == "all" else f"{L.name}.weight_rows.master"
            master = ex.read_tensor(plan.tensor_index(key))
            ref = L.weight.detach().numpy()
            assert_close(master, (ref if sel == "all" else ref[sel]).astype(np.float32), key)
            w_start = initial[L.name][0] if sel == "all" else initial[L.name][0][sel]
            assert not np.array_equal(master, w_start), f"{key} did not move"
    for key, ref in (("classifier.weight", net.head_w), ("classifier.bias", net.head_b)):
        assert_close(ex.read_tensor(plan.tensor_index(key)),
                     ref.detach().numpy().astype(np.float32), key)
    if qas and rule == "round" and any(sel is not None for _, sel in spec.layers.values()):
        assert changed > 0, "no int8 weight moved: the test would not see the update rule"
    # Trainable tensors are exactly those of the spec (+ masters) and the head.
    want = {"classifier.weight", "classifier.bias"}
    for i, (_, sel) in spec.layers.items():
        name = net.layers[i].name
        want.add(f"{name}.bias")
        if sel is not None:
            want.add(f"{name}.weight" if sel == "all" else f"{name}.weight_rows")
    if rule == "master":
        want |= {f"{n}.master" for n in want if not n.startswith("classifier")}
    assert {plan.tensors[i].name for i in plan.trainable} == want


def test_no_reordering_is_the_same_arithmetic(synthetic_pkl, samples):
    """Updates after the whole backward pass change the schedule, not the numbers."""
    xs, labels = samples
    runs = []
    for reorder in (True, False):
        plan = compile_tiny_training(synthetic_pkl, 4, update="full", reorder=reorder).plan
        ex = RefExecutor(plan)
        losses = [ex.train_step(x, y, LR).loss for x, y in zip(xs, labels, strict=True)]
        runs.append((losses, {plan.tensors[i].name: ex.read_tensor(i) for i in plan.trainable}))
    assert runs[0][0] == runs[1][0]
    for name, value in runs[0][1].items():
        assert np.array_equal(value, runs[1][1][name]), name


@pytest.mark.parametrize("rule", ["round", "master"])
def test_fused_updates_are_the_same_arithmetic(synthetic_pkl, samples, tmp_path, rule):
    """CONV2D_S8_SGD_F32 (each trained row's gradient made and applied at once) trains exactly as
    the whole weight gradient followed by UPDATE_S8_F32, with less memory."""
    path = tmp_path / "scheme.json"
    path.write_text(json.dumps(SCHEME))
    xs, labels = samples
    runs = []
    for fuse in (True, False):
        result = compile_tiny_training(synthetic_pkl, 4, update=str(path), int8_update=rule,
                                       fuse=fuse)
        plan = result.plan
        fused = sum(op.opcode == Opcode.CONV2D_S8_SGD_F32 for op in plan.ops)
        unfused = sum(op.opcode == Opcode.UPDATE_S8_F32 for op in plan.ops)
        assert (fused, unfused) == ((3, 0) if fuse else (0, 3))
        ex = RefExecutor(plan)
        losses = [ex.train_step(x, y, LR).loss for x, y in zip(xs, labels, strict=True)]
        runs.append((losses, {plan.tensors[i].name: ex.read_tensor(i) for i in plan.trainable},
                     plan.arena_size))
    assert runs[0][0] == runs[1][0]
    for name, value in runs[0][1].items():
        assert np.array_equal(value, runs[1][1][name]), name
    assert runs[0][2] <= runs[1][2]


def test_dead_channels_do_not_train(tmp_path, synthetic_pkl, samples):
    """A channel whose bias saturates (the paper's dead channels, bias -2^31) imports with the
    same outputs and never trains, whatever the update scheme."""
    cfg = torch.load(synthetic_pkl, weights_only=False)
    pw1 = cfg["blocks"][1]["pointwise1"]["params"]
    pw1["bias"] = pw1["bias"].copy()
    pw1["bias"][5] = np.int32(-2**31)
    path = tmp_path / "dead.pkl"
    torch.save(cfg, path)
    plan = compile_tiny_training(path, 4, update="full", int8_update="master", lr=LR,
                                 backbone_lr=LR).plan
    assert any("blocks.1.pointwise1" in n and "5" in n for n in plan.meta["import_notes"])
    ex = RefExecutor(plan)
    w0 = ex.read_tensor(plan.tensor_index("blocks.1.pointwise1.weight"))
    b0 = ex.read_tensor(plan.tensor_index("blocks.1.pointwise1.bias"))
    assert b0[5] > -2**31 and b0[5] < -2**31 + 2**20  # brought within reach, still hugely negative
    xs, labels = samples
    out = plan.tensor_index("blocks.1.pointwise1.out")
    for x, y in zip(xs, labels, strict=True):
        ex.set_input(x)
        k = next(k for k, op in enumerate(plan.ops) if op.outputs[0] == out)
        ex.run(plan.ops[:k + 1])
        assert (ex.read_tensor(out)[5] == -128).all()  # ReLU-dead, as the paper's float model
        ex.train_step(x, y, LR)
    w1 = ex.read_tensor(plan.tensor_index("blocks.1.pointwise1.weight"))
    b1 = ex.read_tensor(plan.tensor_index("blocks.1.pointwise1.bias"))
    assert np.array_equal(w1[5], w0[5]) and b1[5] == b0[5]
    assert not np.array_equal(w1, w0) and not np.array_equal(b1, b0)
    assert not any(t.kind == TensorKind.PARAM_FROZEN and "blocks.1.pointwise1.weight" == t.name
                   for t in plan.tensors)


def test_plan_check_refuses_inconsistent_updates(synthetic_pkl):
    """A master copy goes with rule MASTER, and updates name their state as outputs."""
    import dataclasses

    from tinyhost.plan import PlanError, check_plan
    plan = compile_tiny_training(synthetic_pkl, 4, update="full", int8_update="master").plan
    k = next(k for k, op in enumerate(plan.ops) if op.opcode == Opcode.CONV2D_S8_SGD_F32)
    for mutate in (lambda op: op.attrs.__setitem__(-1, 0),          # rule ROUND with a master
                   lambda op: op.outputs.__setitem__(1, NONE),       # master not updated in place
                   lambda op: op.attrs.__setitem__(-1, 2)):          # no such rule
        bad = dataclasses.replace(plan, ops=[dataclasses.replace(o, inputs=list(o.inputs),
                                                                 outputs=list(o.outputs),
                                                                 attrs=list(o.attrs))
                                             for o in plan.ops])
        mutate(bad.ops[k])
        with pytest.raises(PlanError, match="CONV2D_S8_SGD_F32"):
            check_plan(bad)
    check_plan(plan)
