"""MACs of a step counted from a plan (tinyhost.macs): a small CNN whose MACs are known by hand."""
from __future__ import annotations

from tinyhost.compiler import compile_model
from tinyhost.macs import op_macs, step_macs
from tinyhost.ops import Opcode

MODEL = """
def make_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),   # 3x16x16 -> 8x8x8
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),   # depthwise, 8x8x8
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 5),
    ), torch.randn(1, 3, 16, 16)
"""

CONV1 = 8 * 8 * 8 * 3 * 3 * 3     # out_c x out_h x out_w x in_c x k_h x k_w
DEPTHWISE = 8 * 8 * 8 * 1 * 3 * 3  # in_c / groups = 1
LINEAR = 512 * 5


def test_forward_and_backward_macs(model_file) -> None:
    plan = compile_model(model_file(MODEL), update="full").plan
    macs = step_macs(plan)
    assert macs.forward == CONV1 + DEPTHWISE + LINEAR
    by_op = {}
    for op in plan.ops[plan.n_forward:]:
        by_op.setdefault(Opcode(op.opcode), []).append(op_macs(op))
    # every layer's weight gradient does its forward's MACs; the input gradients skip the first
    # conv (nothing below it needs one)
    assert sorted(by_op[Opcode.CONV2D_GRAD_WEIGHT_F32]) == sorted([CONV1, DEPTHWISE])
    assert by_op[Opcode.CONV2D_GRAD_INPUT_F32] == [DEPTHWISE]
    assert macs.backward == sum(sum(v) for v in by_op.values())
    assert all(op_macs(op) == 0 for op in plan.ops
               if Opcode(op.opcode) in (Opcode.RELU_F32, Opcode.RELU_GRAD_F32, Opcode.SGD_F32))
