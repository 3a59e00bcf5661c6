"""The plan format and the link protocol are stated in several places; they must agree.

- opcodes: host/tinyhost/ops.py (Opcode), firmware/runtime/include/tt/tt_ops.h (enum),
  docs/plan.cddl (constants), all generated from the registry (tests/host/test_codegen.py); arity:
  ops.OP_SPECS and the per-op rules of docs/plan.cddl; exec.c dispatches through the registration
  table and HELLO lists the generated op list;
- message types: host/tinyhost/link/framing.py (Msg) and firmware/runtime/include/tt/tt_device.h;
- the plan format version: tinyhost.plan, tt_version.h and docs/plan.cddl;
- docs/plan.cddl describes what the compiler writes: zcbor validates real compiled plans against it
  and rejects structurally wrong ones.
"""
from __future__ import annotations

import copy
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
import zcbor
from zcbor import CddlValidationError, DataTranslator

from tinyhost import plan as plan_mod
from tinyhost.link.framing import Msg
from tinyhost.ops import OP_SPECS, Opcode

# The int8 training ops a sparse-update plan of the paper's kind uses (see test_int8_plan_uses...).
INT8_TRAINING_OPS = frozenset({
    Opcode.CONV2D_S8, Opcode.DEPTHWISE_CONV2D_S8, Opcode.ADD_S8, Opcode.AVGPOOL2D_S8,
    Opcode.REQUANT_GRAD_F32, Opcode.CONV2D_S8_GRAD_INPUT_F32,
    Opcode.CONV2D_S8_GRAD_WEIGHT_F32, Opcode.ADD_S8_GRAD_F32,
    Opcode.CONV2D_S8_SGD_F32, Opcode.UPDATE_S32_F32, Opcode.LINEAR_SGD_F32,
})
ON_DEVICE = {op.name for op in Opcode}

ROOT = Path(__file__).resolve().parents[2]
CDDL = ROOT / "docs" / "plan.cddl"
TT_OPS_H = ROOT / "firmware" / "runtime" / "include" / "tt" / "tt_ops.h"
TT_DEVICE_H = ROOT / "firmware" / "runtime" / "include" / "tt" / "tt_device.h"
TT_VERSION_H = ROOT / "firmware" / "runtime" / "include" / "tt" / "tt_version.h"
EXEC_C = ROOT / "firmware" / "runtime" / "src" / "exec.c"
DEVICE_C = ROOT / "firmware" / "runtime" / "src" / "device.c"

# A model with a frozen first layer (update last:2): tensors with NONE offsets, every op kind the
# fp32 runtime has except the backward of the frozen layer.
SMALL_MODEL = """
def make_model():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3))
    return model, torch.randn(1, 2, 8, 8)
"""


def strip_c_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


def cddl_constants() -> dict[str, int]:
    """`NAME = integer` rules of docs/plan.cddl (comments stripped)."""
    text = re.sub(r";[^\n]*", "", CDDL.read_text())
    return {m[1]: int(m[2]) for m in re.finditer(r"^([A-Z][A-Z0-9_]*)\s*=\s*(-?\d+)\s*$", text,
                                                 flags=re.M)}


def c_enum(path: Path, prefix: str) -> dict[str, int]:
    text = strip_c_comments(path.read_text())
    return {m[1]: int(m[2], 0) for m in re.finditer(
        rf"\b{prefix}(\w+)\s*=\s*(0[xX][0-9a-fA-F]+|\d+)", text)}


@pytest.fixture(scope="module")
def cddl():
    prelude = (Path(zcbor.__file__).parent / "zcbor" / "prelude.cddl").read_text()
    return DataTranslator.from_cddl(prelude + "\n" + CDDL.read_text(), 0xFFFFFFFF).my_types


# What zcbor raises for data that does not match (a .cbor body that is not CBOR: a decode error).
INVALID = (CddlValidationError, cbor2.CBORDecodeError)


def valid(cddl, rule: str, obj) -> bool:
    try:
        cddl[rule].validate_str(cbor2.dumps(obj))
        return True
    except INVALID:
        return False


# --- (a) opcodes and arity ------------------------------------------------------------------------

def test_opcodes_agree_python_c_cddl():
    python = {op.name: int(op) for op in Opcode}
    c = c_enum(TT_OPS_H, "TT_OP_")
    assert c == python, "firmware/runtime/include/tt/tt_ops.h vs host/tinyhost/ops.py"
    constants = cddl_constants()
    in_cddl = {name: v for name, v in constants.items() if name in python or
               re.fullmatch(r"\w+_(F32|S8|S32)", name) and not name.startswith("DTYPE_")}
    assert in_cddl == python, "docs/plan.cddl opcode constants vs host/tinyhost/ops.py"
    assert set(OP_SPECS) == set(Opcode)


def test_arity_agrees_python_cddl(cddl):
    """Each opcode's rule in docs/plan.cddl takes exactly OP_SPECS' operand and attribute counts."""
    for op, spec in OP_SPECS.items():
        n_in, n_out = len(spec.inputs), len(spec.outputs)
        good = [int(op), [0] * n_in, [0] * n_out, [a.range.bounds[0] for a in spec.attr_defs]]
        assert valid(cddl, "op", good), f"{op.name}: {good} should match docs/plan.cddl's op"
        for k, extra in ((1, 1), (1, -1), (2, 1), (2, -1), (3, 1), (3, -1)):
            bad = copy.deepcopy(good)
            if extra > 0:
                bad[k].append(0)
            elif bad[k]:
                bad[k].pop()
            else:
                continue
            assert not valid(cddl, "op", bad), f"{op.name}: {bad} should not match"


def test_every_opcode_is_executed_and_reported():
    """exec.c runs every op through the generated registration table, and device.c reports the
    generated op list in HELLO (tests/host/test_codegen.py checks the generated files)."""
    exec_text = strip_c_comments(EXEC_C.read_text())
    assert "tt_op_find" in exec_text and "case TT_OP_" not in exec_text
    device = strip_c_comments(DEVICE_C.read_text())
    assert re.search(r"opcodes\[\]\s*=\s*\{TT_OP_LIST\(", device), "device.c HELLO list"


# --- (b) message types --------------------------------------------------------------------------

def test_message_types_agree():
    c = c_enum(TT_DEVICE_H, "TT_MSG_")
    python = {m.name: int(m) for m in Msg}
    assert c == python, "tt_device.h TT_MSG_* vs host/tinyhost/link/framing.py Msg"


# --- (d) the format version ---------------------------------------------------------------------

def test_plan_format_version_agrees():
    text = strip_c_comments(TT_VERSION_H.read_text())
    m = re.search(r"#define\s+TT_PLAN_FORMAT_VERSION\s+(\d+)u?\b", text)
    assert m, "TT_PLAN_FORMAT_VERSION not found in tt_version.h"
    assert int(m[1]) == plan_mod.PLAN_FORMAT_VERSION
    assert cddl_constants()["PLAN_FORMAT_VERSION"] == plan_mod.PLAN_FORMAT_VERSION


# --- (c) real plans validate against docs/plan.cddl -----------------------------------------------

@pytest.fixture(scope="module")
def small_plan(model_file):
    from tinyhost.compiler import compile_model
    return compile_model(model_file(SMALL_MODEL), update="last:2").data


@pytest.fixture(scope="module")
def int8_plan(synthetic_pkl, tmp_path_factory):
    """An int8 plan using every int8 op and optional operand: residual adds (gradient
    accumulation), trained rows of some channels, bias-only layers, f32 masters."""
    import json

    from tinyhost.compiler import compile_tiny_training
    scheme = tmp_path_factory.mktemp("scheme") / "scheme.json"
    scheme.write_text(json.dumps({"n_bias_update": 10, "manual_weight_idx": [2, 4, 6, 9],
                                  "weight_update_ratio": [1, 0.5, 0, 0.25]}))
    return compile_tiny_training(synthetic_pkl, 4, update=str(scheme), int8_update="master").data


@pytest.fixture(scope="module", params=["demo", "small", "int8"])
def plan_file(request, demo_plan, small_plan, int8_plan) -> bytes:
    return {"demo": demo_plan.data, "small": small_plan, "int8": int8_plan}[request.param]


def test_int8_plan_uses_every_int8_op(int8_plan):
    plan = plan_mod.decode_plan(int8_plan)
    assert {op.opcode for op in plan.ops} >= INT8_TRAINING_OPS


def test_compiled_plans_validate(cddl, plan_file):
    cddl["plan-file"].validate_str(plan_file)  # raises CddlValidationError, naming the element
    _, body, _ = cbor2.loads(plan_file)
    cddl["plan-body"].validate_str(body)


def test_small_plan_has_constants(small_plan):
    """The small plan does exercise the NONE offsets (frozen parameters, tensors without data)."""
    plan = plan_mod.decode_plan(small_plan)
    assert any(t.arena_offset == plan_mod.NONE for t in plan.tensors)
    assert any(t.data_offset == plan_mod.NONE for t in plan.tensors)


def test_zcbor_cli_validates(plan_file, tmp_path):
    """The command docs/plan.cddl documents. (zcbor 0.9.1 cannot open a binary -i FILE, so the
    plan goes through stdin.)"""
    exe = Path(sys.executable).with_name("zcbor")
    if not exe.exists():
        pytest.skip(f"no zcbor command next to {sys.executable}")
    for rule, data in (("plan-file", plan_file), ("plan-body", cbor2.loads(plan_file)[1])):
        res = subprocess.run([str(exe), "validate", "-c", str(CDDL), "-t", rule, "-i", "-",
                              "--input-as", "cbor"], input=data, capture_output=True)
        assert res.returncode == 0, res.stderr.decode()[-2000:]
    bad = cbor2.dumps([2, cbor2.loads(plan_file)[1], b"\0" * 32])
    res = subprocess.run([str(exe), "validate", "-c", str(CDDL), "-t", "plan-file", "-i", "-",
                          "--input-as", "cbor"], input=bad, capture_output=True)
    assert res.returncode != 0


# Structurally wrong bodies: (what, mutation of the decoded body list).
T, OPS = 5, 6  # tensors, ops
WRONG_BODIES = [
    ("unknown dtype", lambda b: b[T][0].__setitem__(0, 3)),
    ("unknown tensor kind", lambda b: b[T][0].__setitem__(1, 7)),
    ("arena offset -2", lambda b: b[T][0].__setitem__(3, -2)),
    ("nbytes negative", lambda b: b[T][0].__setitem__(2, -4)),
    ("tensor name not text", lambda b: b[T][0].__setitem__(6, b"w")),
    ("tensor entry short", lambda b: b[T][0].pop()),
    ("shape not a list", lambda b: b[T][0].__setitem__(5, 4)),
    ("unknown opcode", lambda b: b[OPS][0].__setitem__(0, 99)),
    ("op missing an input", lambda b: b[OPS][0][1].pop()),
    ("op with an extra attribute", lambda b: b[OPS][0][3].append(1)),
    ("op attribute zero where positive", lambda b: b[OPS][0][3].__setitem__(0, 0)),
    ("operand -2", lambda b: b[OPS][0][1].__setitem__(0, -2)),
    ("bindings short", lambda b: b[2].pop()),
    ("default_lr an integer", lambda b: b.__setitem__(4, 1)),
    ("arena_size 2^32", lambda b: b.__setitem__(0, 2**32)),
    ("meta not a map", lambda b: b.__setitem__(7, [1])),
    ("meta with an integer key", lambda b: b.__setitem__(7, {1: 2})),
    ("pad not bytes", lambda b: b.__setitem__(8, "pad")),
    ("blob missing", lambda b: b.pop()),
    ("extra field", lambda b: b.append(0)),
]


@pytest.mark.parametrize("what,mutate", WRONG_BODIES, ids=[w for w, _ in WRONG_BODIES])
def test_wrong_bodies_fail_validation(cddl, small_plan, what, mutate):
    body = cbor2.loads(cbor2.loads(small_plan)[1])
    assert valid(cddl, "plan-body", body)
    mutate(body)
    assert not valid(cddl, "plan-body", body), f"{what}: accepted by docs/plan.cddl"
    # ... and through the file rule (.cbor), with a correct hash.
    raw = cbor2.dumps(body)
    assert not valid_file(cddl, [1, raw, hashlib.sha256(raw).digest()])


def valid_file(cddl, outer) -> bool:
    try:
        cddl["plan-file"].validate_str(cbor2.dumps(outer))
        return True
    except INVALID:
        return False


def test_wrong_outer_fails_validation(cddl, small_plan):
    version, body, digest = cbor2.loads(small_plan)
    assert valid_file(cddl, [version, body, digest])
    assert not valid_file(cddl, [2, body, digest])
    assert not valid_file(cddl, [version, body, digest[:31]])
    assert not valid_file(cddl, [version, body, digest, 0])
    assert not valid_file(cddl, [version, body[:-1], digest])  # body is not a whole plan-body
