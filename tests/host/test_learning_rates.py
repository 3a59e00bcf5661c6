"""Learning rates per parameter group (issue 18): the head's lr is the plan's default (the step's),
the int8 backbone's is one f32 constant ratio every int8 update op applies, set at compile time
(--backbone-lr) or rewritten at train time; the reference applies it as the C ops do."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paper_data import SCHEMES, paper_model, smooth_images
from tinyhost import cli
from tinyhost.compiler import CompileError, CompileOptions, compile_source, compile_tiny_training
from tinyhost.device import RefDevice
from tinyhost.lr import BACKBONE_LR_RATIO, BACKBONE_LR_SCALE, plan_rates, with_backbone_lr
from tinyhost.ops import OP_SPECS, Opcode
from tinyhost.plan import NONE, Op, decode_plan
from tinyhost.refexec.executor import RefExecutor

SIZE = 32
INT8_UPDATES = (Opcode.UPDATE_S8_F32, Opcode.UPDATE_S32_F32, Opcode.CONV2D_S8_SGD_F32)
REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"


def compile_99kb(lr: float, backbone_lr: float | None, rule: str = "round"):
    return compile_tiny_training(paper_model("mcunet-5fps"), 4, f"{SCHEMES}:mcunet-5fps:99kb",
                                 lr=lr, backbone_lr=backbone_lr, input_size=SIZE,
                                 int8_update=rule)


def lr_scale_of(op: Op) -> int:
    return op.inputs[[o.name for o in OP_SPECS[op.opcode].ins].index("lr_scale")]


def test_every_backbone_update_reads_one_scale_and_the_head_none() -> None:
    r = compile_99kb(0.01, 0.002)
    plan = r.plan
    scale = next(i for i, t in enumerate(plan.tensors) if t.name == BACKBONE_LR_SCALE)
    assert plan.constant(scale)[0] == np.float32(0.002 / 0.01)
    updates = [op for op in plan.ops if op.opcode in INT8_UPDATES]
    assert updates and all(lr_scale_of(op) == scale for op in updates)
    assert any(op.opcode == Opcode.LINEAR_SGD_F32 for op in plan.ops)  # the head: the step's lr
    assert plan.default_lr == np.float32(0.01) and plan.meta["lr"] == {"head": 0.01,
                                                                       "backbone": 0.002}
    assert plan_rates(plan).backbone == pytest.approx(0.002, rel=1e-6)
    assert plan_rates(plan, 0.1).backbone == pytest.approx(0.02, rel=1e-6)  # --lr scales both


def test_default_backbone_lr_is_the_ratio() -> None:
    plan = compile_99kb(0.02, None).plan
    assert plan.meta["lr"]["backbone"] == pytest.approx(0.02 * BACKBONE_LR_RATIO)


@pytest.mark.parametrize("rule", ["round", "master"])
def test_the_backbone_trains_with_lr_times_scale(rule: str) -> None:
    """One step at lr 0.5 with a 0.25 ratio (exact in f32) updates the backbone exactly as a plan
    whose every rate is 0.125: the head's rate does not reach the backbone's gradients in that
    step (each input gradient uses the forward's weights) and the backbone's step is lr x
    scale. (After it, the heads differ, and so do later gradients.)"""
    a = compile_99kb(0.5, 0.125, rule)
    b = compile_99kb(0.125, 0.125, rule)
    x = smooth_images(1, SIZE, seed=1)
    devs = []
    for r, lr in ((a, 0.5), (b, 0.125)):
        d = RefDevice()
        d.load_plan(r.plan, r.data)
        d.train_step(x[0], 2, lr)
        devs.append(d)
    backbone = [i for i in a.plan.trainable if not a.plan.tensors[i].name.startswith("classifier")]
    assert backbone
    moved = 0
    for i in backbone:
        ta, tb = devs[0].read_tensor(i), devs[1].read_tensor(i)
        assert np.array_equal(ta, tb), a.plan.tensors[i].name
        moved += int(not np.array_equal(ta, a.plan.constant(i)))
    assert moved  # the backbone did train
    head = next(i for i in a.plan.trainable if a.plan.tensors[i].name.startswith("classifier"))
    assert not np.array_equal(devs[0].read_tensor(head), devs[1].read_tensor(head))


def test_train_time_rewrite_equals_compiling_with_it() -> None:
    compiled = compile_99kb(0.01, 0.003)
    rewritten, data = with_backbone_lr(compile_99kb(0.01, 0.01).plan, 0.01, 0.003)
    assert data == compiled.data
    assert decode_plan(data).meta["lr"] == {"head": 0.01, "backbone": 0.003}


def test_no_scale_without_a_backbone_and_clear_errors() -> None:
    head_only = compile_tiny_training(paper_model("mcunet-5fps"), 4, "last:1", input_size=SIZE)
    assert not any(t.name == BACKBONE_LR_SCALE for t in head_only.plan.tensors)
    assert plan_rates(head_only.plan).backbone is None
    with pytest.raises(ValueError, match="trains no int8 backbone"):
        with_backbone_lr(head_only.plan, 0.01, 0.001)
    with pytest.raises(CompileError, match="--backbone-lr applies to int8 models"):
        compile_source(DEMO_MODEL, CompileOptions(backbone_lr=0.001))
    with pytest.raises(CompileError, match="cannot work as a learning rate"):
        compile_99kb(0.01, -1.0)


def test_unscaled_ops_train_as_before() -> None:
    """A scale of 1 is exactly the step's lr: the plan with its lr_scale operands removed (the
    ops before issue 18) trains bit-identically."""
    r = compile_99kb(0.01, 0.01)
    plain = decode_plan(r.data)
    for op in plain.ops:
        if op.opcode in INT8_UPDATES:
            op.inputs[op.inputs.index(lr_scale_of(op))] = NONE
    x = smooth_images(2, SIZE, seed=2)
    out = []
    for p in (r.plan, plain):
        ex = RefExecutor(p)
        for k in range(2):
            ex.train_step(x[k], k, 0.01)
        out.append([ex.read_tensor(i) for i in p.trainable])
    for ta, tb in zip(*out, strict=True):
        assert np.array_equal(ta, tb)


def test_cli_backbone_lr_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.ttp"
    assert cli.main(["compile", "--from-tiny-training", str(paper_model("mcunet-5fps")),
                     "--num-classes", "4", "--input-size", str(SIZE), "--update",
                     f"{SCHEMES}:mcunet-5fps:99kb", "--lr", "0.02", "--backbone-lr", "0.004",
                     "-o", str(out)]) == 0
    assert "learning rates: lr 0.02 (head), 0.004 (int8 backbone)" in capsys.readouterr().out
    assert cli.main(["compile", DEMO_MODEL, "--backbone-lr", "0.1", "-o",
                     str(tmp_path / "f.ttp")]) == 2
    assert "--backbone-lr apply to int8 models only" in capsys.readouterr().err
    data = tmp_path / "img.npz"
    x = smooth_images(4, SIZE)
    np.savez(data, x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.arange(2))
    assert cli.main(["train", "--port", "ref", "--plan", str(out), "--data", str(data),
                     "--no-normalize", "--epochs", "1", "--backbone-lr", "0.001"]) == 0
    assert "lr 0.02 (head), 0.001 (int8 backbone)" in capsys.readouterr().err
