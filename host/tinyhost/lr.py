"""Learning rates per parameter group (issue 18): the fp32 head and the int8 backbone.

The plan stores the head's learning rate as its default lr (the step's lr, sent with every TRAIN
request) and the backbone's as one f32 constant, `backbone.lr_scale` = backbone lr / head lr,
which every int8 update op (UPDATE_S8_F32, UPDATE_S32_F32, CONV2D_S8_SGD_F32) multiplies the
step's lr by (C: tt_opnd_lr; reference: kernels_s8.op_lr). So `--lr` alone scales both groups,
and `train --backbone-lr` rewrites that one float (a new plan, uploaded as such).

The defaults are the transfer bench's (bench/transfer.py, docs/int8.md section 13)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from tinyhost.plan import Plan, encode_plan

BACKBONE_LR_SCALE = "backbone.lr_scale"  # the tensor (compiler/autodiff_s8.py makes it)
LR_DEFAULT = 0.01  # fp32 models and float models quantized with --int8 (one lr for all groups:
#                    bench/accuracy.py measured BasicMotions so)
# The paper's int8 models (--from-tiny-training), chosen by bench/transfer.py (docs/int8.md
# section 13): their new fp32 head learns from pooled int8 features of large norm, so a head step
# at lr 0.01 (the old default for all) moves the logits by ~10 and the loss blows up
# (mcunet-5fps head-only diverged at 0.01 on every sweep seed, at 0.003 on one); 0.001 is the
# largest head lr that trained on every seed. The backbone at 0.5 x that: of the ratios 1, 0.5,
# 0.3, 0.1, the best mean for mcunet-5fps's 99kb scheme and second best for mbv2-w0.35's (which
# prefers 1, where mcunet-5fps loses 8 points).
TINY_LR_DEFAULT = 0.001
BACKBONE_LR_RATIO = 0.5


@dataclass(frozen=True)
class LearningRates:
    head: float
    backbone: float | None  # None: the plan trains no int8 backbone layer
    # the plan's optimizer state (compile --momentum/--accumulate, compiler/optim.py)
    momentum: float = 0.0
    accumulate: int = 1

    def describe(self) -> str:
        if self.backbone is None:
            text = f"lr {self.head:g}"
        else:
            text = f"lr {self.head:g} (head), {self.backbone:.3g} (int8 backbone)"
        if self.momentum:
            text += f", momentum {self.momentum:g}"
        if self.accumulate > 1:
            text += f", an update every {self.accumulate} samples (their mean gradient)"
        return text


FLT_MAX = float(np.finfo(np.float32).max)


def lr_ok(value: float) -> bool:
    """The one rule for a learning rate, the device's (tt_check_lr): a finite number above 0 that
    a float32 holds (0 trains nothing, a negative one climbs the loss, NaN/inf make every update
    non-finite)."""
    return math.isfinite(value) and 0.0 < value <= FLT_MAX


def check_lr(value: float, flag: str) -> None:
    if not lr_ok(value):
        raise ValueError(f"{flag} {value!r} cannot work as a learning rate: give a finite number "
                         "above 0")


def lr_scale(head: float, backbone: float) -> np.float32:
    """The backbone's scale as the plan stores it (f32)."""
    check_lr(head, "--lr")
    check_lr(backbone, "--backbone-lr")
    return np.float32(backbone / head)


def _scale_tensor(plan: Plan) -> int | None:
    return next((i for i, t in enumerate(plan.tensors) if t.name == BACKBONE_LR_SCALE), None)


def plan_rates(plan: Plan, head: float | None = None) -> LearningRates:
    """The rates a step at `head` (default: the plan's lr) trains each group with."""
    h = plan.default_lr if head is None else head
    opt = plan.meta.get("optimizer") or {}
    momentum, accumulate = float(opt.get("momentum", 0.0)), int(opt.get("accumulate", 1))
    i = _scale_tensor(plan)
    backbone = None if i is None else float(np.float32(np.float32(h) * plan.constant(i)[0]))
    return LearningRates(h, backbone, momentum, accumulate)


def with_backbone_lr(plan: Plan, head: float, backbone: float) -> tuple[Plan, bytes]:
    """The plan with its backbone's lr set to `backbone` when the step's lr is `head`: its
    lr_scale constant rewritten, the default lr set to `head`. ValueError for a plan that trains
    no int8 backbone layer."""
    i = _scale_tensor(plan)
    if i is None:
        raise ValueError("--backbone-lr: this plan trains no int8 backbone layer (fp32 models "
                         "have one learning rate, --lr; a head-only int8 plan trains only the "
                         "head)")
    t = plan.tensors[i]
    blob = bytearray(plan.blob)
    blob[t.data_offset:t.data_offset + t.nbytes] = lr_scale(head, backbone).tobytes()
    meta = dict(plan.meta)
    meta["lr"] = {"head": head, "backbone": backbone}
    new = replace(plan, blob=bytes(blob), default_lr=head, meta=meta)
    return new, encode_plan(new)
