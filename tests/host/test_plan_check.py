"""The host's plan check (tinyhost.plan_check, tinyhost.plan.decode_plan / check_plan) refuses what
the firmware refuses, with messages that name the op, its opcode and the problem.

The verdicts are compared with the firmware's own on every mutant plan by tests/c/test_plan.c;
here: hand-made bad plans per op family and per decoding rule (the messages), the op mutants of
tests/c/op_mutants.py reaching every refusal of every op's check function in
firmware/runtime/ops/<name>.c (so the C comparison exercises each of them), and the host's scratch
formulas against the compiler's.
"""
from __future__ import annotations

import random
import re
import struct
import sys
from pathlib import Path

import cbor2
import numpy as np
import pytest

from tinyhost import plan_check
from tinyhost.ops import (
    CONV_ATTRS,
    OP_DEFS,
    OP_SPECS,
    TT_ERR_ARG,
    Opcode,
    attrs_dict,
    scratch_bytes,
)
from tinyhost.plan import (
    NONE,
    PLAN_FORMAT_VERSION,
    Plan,
    PlanError,
    TensorKind,
    check_plan,
    decode_plan,
    encode_plan,
)

ROOT = Path(__file__).resolve().parents[2]
OPS_DIR = ROOT / "firmware" / "runtime" / "ops"
sys.path.insert(0, str(ROOT / "tests" / "c"))
import op_mutants  # noqa: E402  (tests/c/op_mutants.py)


def base(opcode: Opcode, k: int = 0) -> Plan:
    """A valid one-op plan of this op (op_mutants.BASE_ATTRS[opcode.name][k])."""
    plan = op_mutants._fit_presence(
        op_mutants.Builder(opcode, op_mutants.BASE_ATTRS[opcode.name][k])).build()
    assert plan is not None
    return plan


def refused(plan: Plan, *words: str) -> str:
    """check_plan and decode_plan (through the file) both refuse it, naming every one of words."""
    with pytest.raises(PlanError) as ei:
        check_plan(plan)
    msg = str(ei.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    with pytest.raises(PlanError) as ei2:
        decode_plan(encode_plan(plan))
    for w in words:
        assert w in str(ei2.value), f"{w!r} not in {ei2.value}"
    return msg


def operand(plan: Plan, name: str) -> int:
    op = plan.ops[0]
    names = [o.name for o in OP_SPECS[op.opcode].operands]
    return [*op.inputs, *op.outputs][names.index(name)]


def set_operand(plan: Plan, name: str, t: int) -> None:
    op = plan.ops[0]
    spec = OP_SPECS[op.opcode]
    i = [o.name for o in spec.operands].index(name)
    if i < len(spec.ins):
        op.inputs[i] = t
    else:
        op.outputs[i - len(spec.ins)] = t


def set_attr(plan: Plan, name: str, v: int) -> None:
    plan.ops[0].attrs[OP_SPECS[plan.ops[0].opcode].attrs.index(name)] = v


def set_values(plan: Plan, name: str, values: list) -> None:
    t = plan.tensors[operand(plan, name)]
    raw = np.asarray(values, t.dtype.numpy).tobytes()
    assert len(raw) == t.nbytes
    blob = bytearray(plan.blob)
    blob[t.data_offset:t.data_offset + len(raw)] = raw
    plan.blob = bytes(blob)


# --- every op's base plan is valid, its rules are wired -------------------------------------------

def test_every_op_has_rules_and_a_valid_base_plan() -> None:
    have = {name.split("/")[0] for name, _, _ in op_mutants.base_plans()}
    for d in OP_DEFS:
        assert d.sizes is not None, f"{d.name}: no `sizes` rule in its OpDef (tinyhost/ops.py)"
        assert d.name in have, (f"{d.name}: no valid one-op plan: give it a geometry in "
                                "tests/c/op_mutants.py BASE_ATTRS")
    for name, _, plan in op_mutants.base_plans():
        check_plan(plan)
        assert decode_plan(encode_plan(plan)).ops == plan.ops, name


# --- hand-made bad plans, per op family -----------------------------------------------------------

def test_fp32_dense_and_conv() -> None:
    p = base(Opcode.LINEAR_F32)
    set_attr(p, "in_features", 4)
    refused(p, "op 0 (LINEAR_F32)", "operand 0 (x)", "need F32 of 16 bytes")
    p = base(Opcode.LINEAR_F32)
    set_attr(p, "out_features", 0)
    refused(p, "op 0 (LINEAR_F32): impossible attributes", "out_features = 0")
    p = base(Opcode.LINEAR_F32)
    set_attr(p, "in_features", 2**31 - 1)  # in * out over int32: the device refuses
    refused(p, "impossible attributes")
    p = base(Opcode.CONV2D_F32)
    set_attr(p, "groups", 3)
    refused(p, "op 0 (CONV2D_F32): impossible attributes")
    p = base(Opcode.CONV2D_F32)
    set_attr(p, "out_w", 5)
    refused(p, "impossible attributes", "out_w=5")
    p = base(Opcode.CONV2D_F32)
    set_operand(p, "y", operand(p, "w"))  # writes the constant weight
    refused(p, "op 0 (CONV2D_F32)", "operand 3 (y)")


@pytest.mark.parametrize("opcode", [Opcode.LINEAR_GRAD_WEIGHT_F32, Opcode.CONV2D_GRAD_WEIGHT_F32])
def test_weight_gradients_need_their_input(opcode: Opcode) -> None:
    p = base(opcode)
    set_operand(p, "x", NONE)
    refused(p, f"op 0 ({opcode.name})", "a weight gradient needs its input")
    p = base(opcode)
    set_operand(p, "dw", NONE)
    set_operand(p, "db", NONE)
    refused(p, "at least one of dw and db")
    p = base(opcode)
    set_operand(p, "x", NONE)
    set_operand(p, "dw", NONE)  # a bias-only layer
    check_plan(p)


def test_pools() -> None:
    p = base(Opcode.MAXPOOL2D_F32)
    set_attr(p, "pad_w", 2)  # more than half the 2-wide kernel
    refused(p, "op 0 (MAXPOOL2D_F32): impossible attributes")
    p = base(Opcode.AVGPOOL2D_GRAD_F32)
    set_operand(p, "dy", operand(p, "dx"))  # dx's size is the input's
    refused(p, "operand 0 (dy)")


def test_sgd_in_place_on_the_arena() -> None:
    p = base(Opcode.SGD_F32)
    set_operand(p, "w_out", operand(p, "g"))
    refused(p, "op 0 (SGD_F32): SGD must update in place")
    p = base(Opcode.SGD_F32)
    w = p.tensors[operand(p, "w")]
    w.arena_offset, w.kind = NONE, TensorKind.PARAM_FROZEN
    refused(p, "op 0 (SGD_F32)", "writes constant tensor")
    p = base(Opcode.LINEAR_SGD_F32)
    set_operand(p, "b_out", NONE)
    refused(p, "op 0 (LINEAR_SGD_F32): an update must write its state in place")
    p = base(Opcode.LINEAR_SGD_F32)
    for name in ("x",):
        set_operand(p, name, NONE)
    refused(p, "the step needs w with x, b, or both")


def test_int8_convs() -> None:
    p = base(Opcode.CONV2D_S8)
    set_values(p, "channels", [1, 0])
    refused(p, "op 0 (CONV2D_S8): channel indices are not constant, increasing and below out_c")
    p = base(Opcode.CONV2D_S8)
    set_values(p, "channels", [0, 4])  # out_c is 4
    refused(p, "channel indices")
    p = base(Opcode.CONV2D_S8)
    set_attr(p, "n_rows", 0)
    refused(p, "op 0 (CONV2D_S8)")
    p = base(Opcode.CONV2D_S8, 1)
    set_operand(p, "w_rows", operand(p, "mask"))  # present without n_rows
    refused(p, "op 0 (CONV2D_S8)")
    p = base(Opcode.CONV2D_S8)
    shifts = np.frombuffer(p.blob, np.int32, 4, p.tensors[operand(p, "shift")].data_offset)
    set_values(p, "shift", [*shifts[:3], 31])
    refused(p, "a requantization shift is outside [-31, 30]")
    p = base(Opcode.DEPTHWISE_CONV2D_S8)
    scratch = p.tensors[operand(p, "scratch")]
    scratch.shape = (scratch.numel - 1,)
    refused(p, "op 0 (DEPTHWISE_CONV2D_S8)", "operand 9 (scratch)")
    p = base(Opcode.CONV2D_S8)
    set_attr(p, "act_min", 121)  # above act_max
    refused(p, "op 0 (CONV2D_S8): impossible attributes")
    p = base(Opcode.PW_DW_CONV2D_S8)
    set_attr(p, "dw_in_c", 2)  # the depthwise no longer reads the first conv's output
    refused(p, "op 0 (PW_DW_CONV2D_S8): impossible attributes")


def test_int8_constants_must_be_constants() -> None:
    """The firmware reads a shift or scale operand's bytes at load; an arena tensor's are not the
    plan's, so both sides refuse one."""
    p = base(Opcode.CONV2D_S8)
    shift = p.tensors[operand(p, "shift")]
    shift.arena_offset, shift.data_offset = p.arena_size, NONE
    p.arena_size += 16
    msg = refused(p, "op 0 (CONV2D_S8)", "not a constant")
    assert op_mutants.known_firmware_bug(msg) is None
    p = base(Opcode.PW_DW_CONV2D_S8)
    w = p.tensors[operand(p, "dw_w")]
    w.arena_offset, w.data_offset = p.arena_size, NONE
    p.arena_size += 64
    refused(p, "a fused conv's weights, biases and multipliers must be constants")


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_scales_positive_and_finite(value: float) -> None:
    p = base(Opcode.DEQUANTIZE_S8_F32)
    set_values(p, "scale", [value])
    refused(p, "op 0 (DEQUANTIZE_S8_F32): the scale is not positive and finite")
    p = base(Opcode.ADD_S8_GRAD_F32)
    set_values(p, "scales", [1.0, value, 1.0])
    refused(p, "op 0 (ADD_S8_GRAD_F32): the add's scales are not positive and finite")


def test_int8_backward_and_updates() -> None:
    p = base(Opcode.ADD_S8_GRAD_F32)
    set_operand(p, "dx1", NONE)
    set_operand(p, "dx2", NONE)
    refused(p, "the add gradient has no output")
    p = base(Opcode.CONV2D_S8_GRAD_WEIGHT_F32)
    set_operand(p, "x", NONE)
    refused(p, "op 0 (CONV2D_S8_GRAD_WEIGHT_F32): a weight gradient needs its input")
    p = base(Opcode.UPDATE_S8_F32)  # rule 1, with its master
    set_attr(p, "rule", 0)
    refused(p, "op 0 (UPDATE_S8_F32): an f32 master is needed exactly for rule 1")
    p = base(Opcode.UPDATE_S8_F32)
    set_attr(p, "rule", 2)
    refused(p, "op 0 (UPDATE_S8_F32): impossible attributes: rule = 2")
    p = base(Opcode.UPDATE_S32_F32)
    set_operand(p, "master_out", NONE)
    refused(p, "op 0 (UPDATE_S32_F32): an update must write its state in place")
    p = base(Opcode.REQUANT_GRAD_F32)
    set_attr(p, "plane", 9)  # 18 mask bits: 3 bytes, not 2
    refused(p, "op 0 (REQUANT_GRAD_F32)", "operand 0 (mask)")


def test_unknown_opcode_and_counts() -> None:
    p = base(Opcode.RELU_F32)
    p.ops[0].opcode = 99  # type: ignore[assignment]
    refused(p, "op 0 (unknown opcode): opcode 99 is not supported")
    p = base(Opcode.RELU_F32)
    p.ops[0].opcode = Opcode.SGD_F32
    refused(p, "op 0 (SGD_F32): wrong operand count")


# --- tensors, bindings and decoding ---------------------------------------------------------------

def test_tensors_and_bindings() -> None:
    p = base(Opcode.RELU_F32)
    p.tensors[0].arena_offset = 2
    refused(p, "tensor 0", "arena or is misaligned")
    p = base(Opcode.LINEAR_F32)
    w = p.tensors[operand(p, "w")]
    w.data_offset = len(p.blob)
    refused(p, "constant blob")
    p = base(Opcode.SGD_F32)
    p.tensors[operand(p, "w")].arena_offset = NONE
    refused(p, "trainable tensor", "is not in the arena")
    p = base(Opcode.RELU_F32)
    p.bindings.label = p.bindings.loss
    refused(p, "plan binding 'label'")
    p = base(Opcode.RELU_F32)
    p.num_classes = 2
    refused(p, "num_classes (2)")
    p = base(Opcode.RELU_F32)
    p.num_classes = 2**30 + 1  # 4 * num_classes wraps to the logits' 4 bytes in 32 bits
    msg = refused(p, "exceeds uint32")
    assert op_mutants.known_firmware_bug(msg) is None
    p = base(Opcode.RELU_F32)
    p.n_forward = 2
    refused(p, "forward op count 2")
    p = base(Opcode.RELU_F32)
    p.tensors[0].arena_offset = 2**31
    refused(p, "malformed plan")


def _file(body: bytes) -> bytes:
    import hashlib
    return cbor2.dumps([PLAN_FORMAT_VERSION, body, hashlib.sha256(body).digest()])


def _body_items(plan: Plan) -> list[bytes]:
    """The body's ten items, each as CBOR bytes."""
    data = encode_plan(plan)
    body = cbor2.loads(cbor2.loads(data)[1])
    return [cbor2.dumps(x) for x in body]


def _body(items: list[bytes]) -> bytes:
    return bytes([0x80 | len(items)]) + b"".join(items)


def test_decoding_follows_zcbor() -> None:
    """Where a general CBOR reader and zcbor (the device's decoder) differ, the host follows
    zcbor: the widths it decodes, its container depth, what it skips in meta."""
    plan = base(Opcode.RELU_F32)
    items = _body_items(plan)
    ok = _file(_body(items))
    assert decode_plan(ok).ops == plan.ops
    # arena_size in an 8-byte encoding: zcbor's uint32 decoder takes at most 4 bytes.
    wide = [b"\x1b" + struct.pack(">Q", plan.arena_size), *items[1:]]
    with pytest.raises(PlanError, match="malformed plan: header"):
        decode_plan(_file(_body(wide)))
    # ... but a 4-byte encoding of a small number is fine.
    four = [b"\x1a" + struct.pack(">I", plan.arena_size), *items[1:]]
    decode_plan(_file(_body(four)))
    # The learning rate as a half float is fine; as an integer it is not.
    decode_plan(_file(_body([*items[:4], b"\xf9\x3c\x00", *items[5:]])))
    with pytest.raises(PlanError, match="header"):
        decode_plan(_file(_body([*items[:4], b"\x01", *items[5:]])))
    # An indefinite-length body array is fine (zcbor takes it), trailing bytes after it ignored.
    decode_plan(_file(b"\x9f" + b"".join(items) + b"\xff"))
    decode_plan(_file(_body(items) + b"\x00\x01"))
    # meta: anything CBOR, 5 containers deep at most (the body is the sixth); invalid UTF-8 text
    # and an indefinite map with an odd item count are skipped as zcbor skips them.
    for meta, good in ((b"\x81" * 5 + b"\x00", True), (b"\x81" * 6 + b"\x00", False),
                       (b"\x62\xff\xfe", True), (b"\xbf\x01\xff", True),
                       (b"\xc1\x1b" + b"\0" * 8, True), (b"\xdb" + b"\0" * 8 + b"\x00", False),
                       (b"\x5f\x41\x00\xff", False), (b"\xfc", False)):
        data = _file(_body([*items[:7], meta, *items[8:]]))
        if good:
            decode_plan(data)
        else:
            with pytest.raises(PlanError, match="trailer"):
                decode_plan(data)
    # A tensor name that is not UTF-8 (zcbor does not look): accepted.
    tensors = cbor2.loads(items[5])
    raw = bytearray(items[5])
    at = raw.index(tensors[0][6].encode())
    raw[at] = 0xFF
    decode_plan(_file(_body([*items[:5], bytes(raw), *items[6:]])))


def test_blob_alignment_in_the_file() -> None:
    """The device reads constants in place: their address, the blob's own offset included, must be
    4-byte aligned."""
    plan = base(Opcode.LINEAR_F32)
    items = _body_items(plan)
    for extra in range(1, 4):
        pad = cbor2.dumps(b"\0" * (len(cbor2.loads(items[8])) + extra))
        data = _file(_body([*items[:8], pad, items[9]]))
        with pytest.raises(PlanError, match="misaligned"):
            decode_plan(data)


# --- the op mutants reach every refusal of every op's C check ------------------------------------

_LITERAL = r'"(?:[^"\\]|\\.)*"'


def _c_function_words(body: str, sources: str, seen: set[str]) -> list[str]:
    """tt_op_refuse / tt_fail string literals of a C function body (adjacent literals joined,
    without a leading "op %u: "), and those of the shared check helpers it calls (tt_op_*
    functions defined in the runtime with a tt_error argument)."""
    out = []
    for call in re.finditer(rf"tt_(?:op_refuse\(c|fail\(err,\s*\w+)\s*,\s*((?:{_LITERAL}\s*)+)",
                            body):
        text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', call.group(1)))
        out.append(re.sub(r"^op %u: ", "", text))
    for helper in set(re.findall(r"\b(tt_op_\w+)\(", body)) - seen - {
            "tt_op_refuse", "tt_op_impossible", "tt_op_check_operands"}:
        seen.add(helper)
        m = re.search(rf"\ntt_status {helper}\([^{{;]*?tt_error \*err\)\s*\{{(.*?)\n\}}",
                      sources, re.DOTALL)
        if m is not None:
            out += _c_function_words(m.group(1), sources, seen)
    return out


def _c_check_words(name: str) -> list[str]:
    """The messages tt_op_<name>_check refuses with, its shared helpers' included."""
    path = OPS_DIR / f"{name.lower()}.c"
    text = path.read_text()
    m = re.search(r"tt_status tt_op_\w+_check\(const tt_op_ctx \*c, tt_error \*err\)\s*\{(.*?)\n\}",
                  text, re.DOTALL)
    assert m is not None, f"no check function in {path}"
    sources = "\n".join(p.read_text() for p in sorted(OPS_DIR.glob("*.c")))
    sources += "\n" + (OPS_DIR.parent / "src" / "op_check.c").read_text()
    return _c_function_words(m.group(1), sources, {f"tt_op_{name.lower()}_check"})


@pytest.fixture(scope="module")
def mutant_reasons() -> dict[str, set[str]]:
    """For every op, the problems the host names in its op mutants."""
    reasons: dict[str, set[str]] = {d.name: set() for d in OP_DEFS}
    for name, plan in op_mutants.op_mutants():
        problem = plan_check.plan_problem(plan)
        if problem is not None and problem.startswith("op 0 ("):
            reasons[name.split("/")[1]].add(problem)
    return reasons


# Refusals in an op's C check that no plan can reach (reported to the firmware's owner).
UNREACHABLE = {
    # w_out must be w, and tt_op_check_operands refuses a constant output before.
    ("SGD_F32", "SGD on a constant"),
}


@pytest.mark.parametrize("name", [d.name for d in OP_DEFS])
def test_op_mutants_reach_every_refusal(name: str, mutant_reasons) -> None:
    found = mutant_reasons[name]
    words = ["impossible attributes", "names tensor", "its attributes need",
             "writes constant tensor",
             *(w for w in _c_check_words(name) if (name, w) not in UNREACHABLE)]
    missing = [w for w in words if not any(w in r for r in found)]
    assert not missing, f"{name}: no op mutant is refused for {missing}"


def test_firmware_words_are_the_firmware_literals() -> None:
    """Each op's own refusals (the host's `problem` words) are the firmware's text (a whole C
    literal, or part of one where the host says more: an arena tensor given as shifts or scales),
    so the C test can require them in the firmware's message."""
    host = {w for _, plan in op_mutants.op_mutants()
            if (p := plan_check.plan_problem(plan)) is not None
            and (w := op_mutants.firmware_words(p)) is not None}
    every_c = {w for d in OP_DEFS for w in _c_check_words(d.name)}
    generic = {"impossible attributes", "is not supported", "wrong operand count", "names tensor",
               "bytes, its attributes need", "writes constant tensor"}
    missing = {w for w in host - generic if not any(w in c for c in every_c)}
    assert not missing, missing


# --- scratch: the host's formulas, the compiler's -------------------------------------------------

def _random_conv(rng: random.Random, depthwise: bool) -> dict[str, int]:
    in_c = rng.randint(1, 8)
    groups = in_c if depthwise else rng.choice([1, in_c])
    out_c = groups * rng.randint(1, 3)
    g = {"in_c": in_c, "out_c": out_c, "groups": groups}
    for axis in "hw":
        k, pad, stride = rng.randint(1, 5), rng.randint(0, 2), rng.randint(1, 3)
        size = max(rng.randint(1, 20), k - 2 * pad)
        g |= {f"in_{axis}": size, f"k_{axis}": k, f"pad_{axis}": pad, f"stride_{axis}": stride,
              f"out_{axis}": (size + 2 * pad - k) // stride + 1}
    return g


def _compiler_scratch(opcode: Opcode, attrs: list[int]) -> int:
    """The bytes the compiler's scratch pass gives a lone op with these attributes."""
    from tinyhost.compiler.graph import Graph, IROp
    from tinyhost.compiler.scratch import add_scratch
    spec = OP_SPECS[opcode]
    op = IROp(opcode, [NONE] * len(spec.inputs), [NONE] * len(spec.outputs), list(attrs), "op")
    graph = Graph(ops=[op])
    add_scratch(graph)
    return graph.tensors[op.outputs[spec.outputs.index("scratch")]].nbytes


def test_scratch_bytes_equals_the_compilers_formulas() -> None:
    """tinyhost.compiler.scratch sizes the planned scratch tensors; on valid geometries it must
    say what scratch_bytes (the C formulas) says."""
    rng = random.Random(7)
    for _ in range(500):
        for opcode, depthwise in ((Opcode.CONV2D_S8, False),
                                  (Opcode.DEPTHWISE_CONV2D_S8, True)):
            a = _random_conv(rng, depthwise) | {"x_zero": 0, "y_zero": 0, "act_min": -128,
                                                "act_max": 127, "n_rows": 0}
            attrs = [a[n] for n in OP_SPECS[opcode].attrs]
            compiler = _compiler_scratch(opcode, attrs)
            assert scratch_bytes(opcode, attrs) == compiler == scratch_bytes(opcode, a)
        pw = _random_conv(rng, False) | {"groups": 1}
        pw["in_c"] = rng.randint(1, 8)
        dw = _random_conv(rng, True)
        dw |= {"in_c": pw["out_c"], "groups": pw["out_c"], "in_h": pw["out_h"], "in_w": pw["out_w"],
               "out_c": pw["out_c"] * rng.randint(1, 2)}
        for axis in "hw":
            padded = dw[f"in_{axis}"] + 2 * dw[f"pad_{axis}"]
            dw[f"k_{axis}"] = min(dw[f"k_{axis}"], padded)
            dw[f"out_{axis}"] = (padded - dw[f"k_{axis}"]) // dw[f"stride_{axis}"] + 1
        a = ({f"pw_{n}": pw[n] for n in CONV_ATTRS} | {f"dw_{n}": dw[n] for n in CONV_ATTRS}
             | dict.fromkeys(("x_zero", "mid_zero", "y_zero"), 0)
             | {"mid_act_min": -128, "mid_act_max": 127, "act_min": -128, "act_max": 127})
        attrs = [a[n] for n in OP_SPECS[Opcode.PW_DW_CONV2D_S8].attrs]
        got = scratch_bytes(Opcode.PW_DW_CONV2D_S8, attrs)
        assert got > 0 and got == _compiler_scratch(Opcode.PW_DW_CONV2D_S8, attrs), a


def test_scratch_bytes_refuses_as_the_kernels_do() -> None:
    a = dict.fromkeys(OP_SPECS[Opcode.CONV2D_S8].attrs, 1) | {"pad_h": 0, "pad_w": 0}
    assert scratch_bytes(Opcode.CONV2D_S8, a) == 16  # one entry rounded up to 4, two columns
    assert scratch_bytes(Opcode.CONV2D_S8, a | {"groups": 2}) == TT_ERR_ARG
    assert scratch_bytes(Opcode.DEPTHWISE_CONV2D_S8, a | {"in_c": 2, "out_c": 2}) == TT_ERR_ARG
    big = a | {"in_c": 46341, "out_c": 1, "k_h": 46341, "in_h": 46341}  # ~2^31 entries
    assert scratch_bytes(Opcode.CONV2D_S8, big) == TT_ERR_ARG
    with pytest.raises(KeyError):
        scratch_bytes(Opcode.RELU_F32, {"size": 1})


def test_scratch_of_compiled_plans(synthetic_pkl, compile_int8) -> None:
    """Every scratch tensor of a compiled int8 plan has scratch_bytes bytes."""
    plan = compile_int8(synthetic_pkl, update="full").plan
    seen = 0
    for op in plan.ops:
        names = [o.name for o in OP_SPECS[op.opcode].operands]
        if "scratch" in names:
            t = plan.tensors[[*op.inputs, *op.outputs][names.index("scratch")]]
            assert t.nbytes == scratch_bytes(op.opcode, attrs_dict(op.opcode, op.attrs)), op
            seen += 1
    assert seen > 0
