"""The fuse pass (compiler/fuse.py) with PW_DW_CONV2D_S8, and the inplace pass
(compiler/inplace.py): which ops they change, that such plans compute exactly what plans without
them do (inference and training, bit for bit), and what they save on the paper's models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from paper_data import SCHEMES, paper_model, smooth_images
from tinyhost.ops import OP_SPECS, Opcode, scratch_bytes
from tinyhost.refexec import kernels_s8 as k
from tinyhost.refexec.executor import RefExecutor
from tinyhost.refexec.kernels_f32 import ConvGeom

KB = 1024


def fused_ops(plan):
    return [op for op in plan.ops if op.opcode == Opcode.PW_DW_CONV2D_S8]


def test_reference_kernel_is_the_composition():
    rng = np.random.default_rng(0)
    g_pw = ConvGeom.infer(5, 7, 9, 12, 1, 1)
    g_dw = ConvGeom.infer(12, 7, 9, 24, 3, 3, 2, 2, 1, 1, groups=12)
    x = rng.integers(-128, 128, g_pw.x_shape).astype(np.int8)
    pw_w = rng.integers(-127, 128, g_pw.w_shape).astype(np.int8)
    dw_w = rng.integers(-127, 128, g_dw.w_shape).astype(np.int8)
    pw_q = k.ConvS8Quant(np.full(12, 1 << 30, np.int32), np.full(12, -9, np.int32), 3, -20, -20,
                         127)
    dw_q = k.ConvS8Quant(np.full(24, 1 << 30, np.int32), np.full(24, -7, np.int32), -20, 5)
    mid = k.conv2d_s8(g_pw, x, pw_w, None, pw_q.mult, pw_q.shift, 3, -20, -20, 127)
    want = k.depthwise_conv2d_s8(g_dw, mid, dw_w, None, dw_q.mult, dw_q.shift, -20, 5)
    got = k.pw_dw_conv2d_s8(g_pw, g_dw, x, pw_w, None, pw_q, dw_w, None, dw_q)
    assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="x_zero"):
        k.pw_dw_conv2d_s8(g_pw, g_dw, x, pw_w, None, pw_q, dw_w, None,
                          k.ConvS8Quant(dw_q.mult, dw_q.shift, -19, 5))


@pytest.mark.parametrize("update", ["last:2", "bias-only", "scheme"])
def test_fused_plans_train_exactly_as_unfused(synthetic_pkl, tmp_path, update):
    """Same losses, predictions, logits and trained parameters over several steps; the fused pairs
    are exactly the frozen ones outside the backward pass."""
    from tinyhost.compiler import compile_tiny_training
    if update == "scheme":  # trains half of block 2's expand conv: block 1 fuses, block 2 not
        path = tmp_path / "scheme.json"
        path.write_text(json.dumps({"n_bias_update": 4, "manual_weight_idx": [6],
                                    "weight_update_ratio": [0.5]}))
        update = str(path)
    fused = compile_tiny_training(synthetic_pkl, 4, update=update).plan
    plain = compile_tiny_training(synthetic_pkl, 4, update=update, fuse=False).plan
    assert not fused_ops(plain) and plain.meta["fusions"] == []
    names = {t.name for t in plain.tensors}
    for f, op in zip(fused.meta["fusions"], fused_ops(fused), strict=True):
        conv, dw = f["ops"]
        assert f["intermediate"] == f"{conv}.out" and f"{conv}.out" in names
        assert f"{conv}.out" not in {t.name for t in fused.tensors}
        assert f"{conv}.mask" not in names and f"{dw}.mask" not in names  # frozen layers only
        assert op.outputs[1] >= 0  # scratch, sized as the C kernel asks
        assert (fused.tensors[op.outputs[1]].nbytes
                == scratch_bytes(Opcode.PW_DW_CONV2D_S8, op.attrs))
        assert len(op.inputs) == len(OP_SPECS[Opcode.PW_DW_CONV2D_S8].inputs)
    for d in fused.meta["in_place"]:  # a depthwise output written over its input
        if d.get("backward"):  # ... or its input gradient over its output gradient
            op = next(op for op in fused.ops
                      if op.opcode == Opcode.DEPTHWISE_CONV2D_S8_GRAD_INPUT_F32
                      and fused.tensors[op.inputs[0]].name == f"grad:{d['op']}.out")
        else:
            op = next(op for op in fused.ops if op.opcode == Opcode.DEPTHWISE_CONV2D_S8
                      and fused.tensors[op.outputs[0]].name == f"{d['op']}.out")
        assert op.inputs[0] == op.outputs[0] and d["input"] not in {t.name for t in fused.tensors}
    assert plain.meta["in_place"] == []
    if update == "bias-only":  # every layer is in the backward pass
        assert not fused_ops(fused)
        return
    assert fused_ops(fused)
    if "scheme" in update:  # block 2's depthwise trains only its bias: its input is not kept
        assert [f["ops"] for f in fused.meta["fusions"]] == [["blocks.1.pointwise1",
                                                              "blocks.1.depthwise"]]
        assert [d["op"] for d in fused.meta["in_place"]
                if not d.get("backward")] == ["blocks.2.depthwise"]
    assert fused.n_forward == plain.n_forward - len(fused_ops(fused))
    assert fused.arena_size <= plain.arena_size
    a, b = RefExecutor(fused), RefExecutor(plain)
    xs = smooth_images(4, 16, seed=3)
    for step, x in enumerate(xs):
        # Inference gives the same logits (after a step the logits' bytes may hold a backward
        # tensor: the plans share buffers differently).
        assert a.evaluate(x) == b.evaluate(x)
        assert np.array_equal(a.view(fused.bindings.logits), b.view(plain.bindings.logits))
        ra, rb = a.train_step(x, step % 4), b.train_step(x, step % 4)
        assert (ra.loss, ra.pred) == (rb.loss, rb.pred)
    assert a.evaluate(xs[0]) == b.evaluate(xs[0])
    for i in fused.trainable:
        j = plain.tensor_index(fused.tensors[i].name)
        assert np.array_equal(a.read_tensor(i), b.read_tensor(j)), fused.tensors[i].name


@pytest.mark.parametrize("model", ["mcunet-5fps", "mbv2-w0.35"])
def test_paper_99kb_plans(compile_int8, model):
    """The frozen stems' expand convs fuse with their depthwise convs (block 1's 128-192 KB
    intermediate, the peak before, is gone), and the first conv, block 0's depthwise and its 1x1
    conv stream a row at a time (the first conv's 64 KB output is never stored): the 99kb plans
    fit 256 KB with the runtime's static RAM and stack, with room to spare (arena <= 190 KB)."""
    path = paper_model(model)
    update = f"{SCHEMES}:{model}:99kb"
    fused, plain = compile_int8(path, update), compile_int8(path, update, fuse=False)
    fusions = fused.plan.meta["fusions"]
    assert fusions[0]["ops"] == ["blocks.1.pointwise1", "blocks.1.depthwise"]
    assert fusions[0]["saved_bytes"] >= 128 * KB
    assert plain.report.live_at_peak[0][0] == "blocks.1.pointwise1.out"  # the peak before
    assert fused.plan.arena_size < plain.plan.arena_size
    stem = fused.plan.meta["stem_fusions"]
    assert stem[0]["ops"] == ["first_conv", "blocks.0.depthwise", "blocks.0.pointwise2"]
    assert stem[0]["saved_bytes"] >= 64 * KB
    assert fused.plan.arena_size <= 190 * KB, fused.plan.arena_size
