"""The compiler passes and the plan format: memory plan validity (lifetimes recomputed here from the
op list, not taken from plan_memory), the memory report, the .ttp encoding (round trip, blob
alignment, refusal of corrupt/truncated/other-version files), error messages, and .pt2 input."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import cbor2
import numpy as np
import pytest
import torch

from tinyhost.compiler import CompileError, compile_model
from tinyhost.compiler.capture import SUPPORTED_LAYERS
from tinyhost.plan import (
    ARENA_ALIGN,
    BLOB_ALIGN,
    NONE,
    PLAN_FORMAT_VERSION,
    PlanError,
    TensorKind,
    decode_plan,
    encode_plan,
    load_plan_file,
)
from tinyhost.refexec.executor import RefExecutor

SMALL_CONV2D = """
def make_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    return model, torch.randn(1, 2, 10, 12)
"""

HOST_WRITTEN = (TensorKind.INPUT, TensorKind.LABEL, TensorKind.PARAM_TRAINABLE)
HOST_READ = (TensorKind.OUTPUT, TensorKind.PARAM_TRAINABLE)


@pytest.fixture(scope="module")
def small_spec(model_file) -> str:
    return model_file(SMALL_CONV2D)


@pytest.fixture(scope="module")
def plans(demo_plan, small_spec):
    """Compile results covering full, partial and bias-only updates."""
    out = {"demo-full": demo_plan}
    for update in ("full", "last:1", "last:2", "bias-only", "3,8.weight"):
        out[f"small-{update}"] = compile_model(small_spec, update=update)
    return out


def intervals(plan) -> dict[int, tuple[int, int]]:
    """[first, last] op index during which each arena tensor must keep its bytes: from the op that
    first writes it (-1: written before the step by the host or the plan loader) to the op that
    last reads or writes it (len(ops): read after the step, or kept across steps)."""
    n = len(plan.ops)
    writes: dict[int, list[int]] = {}
    reads: dict[int, list[int]] = {}
    for k, op in enumerate(plan.ops):
        for t in op.inputs:
            if t != NONE:
                reads.setdefault(t, []).append(k)
        for t in op.outputs:
            if t != NONE:
                writes.setdefault(t, []).append(k)
    spans = {}
    for i, t in enumerate(plan.tensors):
        if not t.in_arena:
            assert i not in writes, f"op writes {t.name}, which has no arena storage"
            continue
        if t.kind in HOST_WRITTEN:
            first = -1
        else:
            assert i in writes, f"arena tensor {t.name} is never written"
            first = min(writes[i])
            assert not reads.get(i) or min(reads[i]) > first, \
                f"{t.name} is read (op {min(reads[i])}) before it is written (op {first})"
        last = n if t.kind in HOST_READ else max(reads.get(i, []) + writes.get(i, []))
        spans[i] = (first, last)
    return spans


def check_memory_plan(plan) -> None:
    spans = intervals(plan)
    for i in spans:
        t = plan.tensors[i]
        assert t.arena_offset % ARENA_ALIGN == 0, f"{t.name} at {t.arena_offset} is misaligned"
        assert 0 <= t.arena_offset and t.arena_offset + t.nbytes <= plan.arena_size, t.name
    items = sorted(spans.items())
    for a, (i, (fi, li)) in enumerate(items):
        ti = plan.tensors[i]
        for j, (fj, lj) in items[a + 1:]:
            if fi <= lj and fj <= li:  # lifetimes intersect: the bytes must not
                tj = plan.tensors[j]
                assert (ti.arena_offset + ti.nbytes <= tj.arena_offset
                        or tj.arena_offset + tj.nbytes <= ti.arena_offset), (
                    f"{ti.name} [{ti.arena_offset}, +{ti.nbytes}) live {fi}..{li} overlaps "
                    f"{tj.name} [{tj.arena_offset}, +{tj.nbytes}) live {fj}..{lj}")
    # No slack at the end: the arena ends with the last (aligned) tensor.
    end = max(plan.tensors[i].arena_offset + plan.tensors[i].nbytes for i in spans)
    assert plan.arena_size - end < ARENA_ALIGN


PLAN_NAMES = ["demo-full", "small-full", "small-last:1", "small-last:2", "small-bias-only",
              "small-3,8.weight"]


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_memory_plan_is_valid(plans, name: str) -> None:
    check_memory_plan(plans[name].plan)


def test_memory_plan_shares_buffers(demo_plan) -> None:
    """The planner reuses memory: the arena is well below the sum of all arena tensors."""
    plan = demo_plan.plan
    total = sum(t.nbytes for t in plan.tensors if t.in_arena)
    assert plan.arena_size < 0.75 * total, (plan.arena_size, total)


@pytest.mark.parametrize("name", ["demo-full", "small-full", "small-bias-only"])
def test_no_op_reads_stale_arena_bytes(plans, name: str) -> None:
    """Bytes that are not live at the start of a step are garbage (on a device, whatever the last
    step left there). Filling them with NaN before every step must not change any result."""
    plan = plans[name].plan
    clean, dirty = RefExecutor(plan), RefExecutor(plan)
    keep = np.zeros(plan.arena_size, bool)
    for t in plan.tensors:
        if t.in_arena and t.kind == TensorKind.PARAM_TRAINABLE:
            keep[t.arena_offset:t.arena_offset + t.nbytes] = True
    nan = np.frombuffer(np.full(plan.arena_size // 4, np.nan, np.float32).tobytes(), np.uint8)
    rng = np.random.default_rng(0)
    shape = plan.tensors[plan.bindings.input].shape
    for _ in range(3):
        dirty.arena[~keep] = nan[:plan.arena_size][~keep]
        x = rng.standard_normal(shape).astype(np.float32)
        label = int(rng.integers(plan.num_classes))
        a, b = clean.train_step(x, label, 0.05), dirty.train_step(x, label, 0.05)
        assert (a.loss, a.pred) == (b.loss, b.pred)
        dirty.arena[~keep] = nan[:plan.arena_size][~keep]
        assert clean.evaluate(x) == dirty.evaluate(x)
    for i in plan.trainable:
        np.testing.assert_array_equal(clean.read_tensor(i), dirty.read_tensor(i),
                                      err_msg=plan.tensors[i].name)


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_memory_report_adds_up(plans, name: str) -> None:
    result = plans[name]
    plan, r = result.plan, result.report
    arena = [t for t in plan.tensors if t.in_arena]
    assert set(r.by_kind) == {"activations", "saved_for_backward", "gradients", "trainable_params"}
    assert sum(r.by_kind.values()) == sum(t.nbytes for t in arena)
    assert r.by_kind["trainable_params"] == sum(plan.tensors[i].nbytes for i in plan.trainable)
    assert r.by_kind["gradients"] == sum(t.nbytes for t in arena if t.kind == TensorKind.GRADIENT)
    assert r.arena_bytes == plan.arena_size
    assert r.flash_bytes == len(result.data)
    assert r.frozen_param_bytes == sum(t.nbytes for t in plan.tensors
                                       if t.kind == TensorKind.PARAM_FROZEN)
    assert r.trainable_params == sum(plan.tensors[i].numel for i in plan.trainable)
    assert (r.n_ops, r.n_forward_ops) == (len(plan.ops), plan.n_forward)
    # The peak: recomputed from independent lifetimes, and it must fit the arena.
    n = len(plan.ops)
    spans = intervals(plan)
    live = [sum(plan.tensors[i].nbytes for i, (first, last) in spans.items()
                if max(first, 0) <= k <= min(last, n - 1)) for k in range(n)]
    assert sum(size for _, size in r.live_at_peak) == max(live) == live[r.peak_op]
    assert max(live) <= plan.arena_size
    assert r.peak_op_name == plan.ops[r.peak_op].opcode.name


def test_demo_report_numbers(demo_plan) -> None:
    r = demo_plan.report
    assert r.trainable_params == 3412  # as the demo model documents
    assert r.frozen_param_bytes == 0
    assert r.by_kind["trainable_params"] == 3412 * 4


def test_bias_only_freezes_weights(plans) -> None:
    plan = plans["small-bias-only"].plan
    assert {plan.tensors[i].name for i in plan.trainable} == {"0.bias", "3.bias", "8.bias",
                                                              "10.bias"}
    for i in plan.parameters:
        t = plan.tensors[i]
        if t.name.endswith("weight"):
            assert t.kind == TensorKind.PARAM_FROZEN and not t.in_arena and t.data_offset != NONE
    assert plans["small-bias-only"].report.frozen_param_bytes > 0


# -- the .ttp file ---------------------------------------------------------------------------------
def blob_file_offset(data: bytes) -> int:
    version, body, digest = cbor2.loads(data)
    blob = cbor2.loads(body)[-1]
    start = data.index(body) + len(body) - len(blob)
    assert data[start:start + len(blob)] == blob
    return start


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_round_trip(plans, name: str) -> None:
    result = plans[name]
    decoded = decode_plan(result.data)
    original = result.plan
    for f in dataclasses.fields(original):
        if f.name != "default_lr":
            assert getattr(decoded, f.name) == getattr(original, f.name), f.name
    assert np.float32(decoded.default_lr) == np.float32(original.default_lr)
    assert encode_plan(decoded) == result.data
    for i in original.parameters:
        np.testing.assert_array_equal(decoded.constant(i), original.constant(i))


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_blob_is_16_byte_aligned_in_the_file(plans, name: str) -> None:
    data = plans[name].data
    start = blob_file_offset(data)
    assert start % BLOB_ALIGN == 0
    plan = plans[name].plan
    for i in plan.parameters:  # so every parameter is aligned in flash
        assert (start + plan.tensors[i].data_offset) % BLOB_ALIGN == 0, plan.tensors[i].name


def test_blob_alignment_for_every_header_length(plans) -> None:
    """Whatever precedes the blob (here: meta of growing length), the encoder pads it aligned."""
    plan = plans["small-full"].plan
    offsets = set()
    for n in range(40):
        p = dataclasses.replace(plan, meta={"note": "x" * n})
        data = encode_plan(p)
        start = blob_file_offset(data)
        assert start % BLOB_ALIGN == 0, n
        assert decode_plan(data).meta == {"note": "x" * n}
        offsets.add(start)
    assert len(offsets) > 1


def test_compile_is_deterministic(small_spec, plans) -> None:
    assert compile_model(small_spec, update="full").data == plans["small-full"].data


@pytest.mark.parametrize("cut", [0, 1, 5, 100, "half", "blob", -1])
def test_decode_refuses_truncated(demo_plan, cut) -> None:
    data = demo_plan.data
    n = {"half": len(data) // 2, "blob": blob_file_offset(data) + 10}.get(cut, cut)
    with pytest.raises(PlanError, match="corrupt or truncated"):
        decode_plan(data[:n])


@pytest.mark.parametrize("where", ["tables", "blob", "last", "hash"])
def test_decode_refuses_flipped_byte(demo_plan, where: str) -> None:
    data = bytearray(demo_plan.data)
    _, body, _ = cbor2.loads(data)
    body_at = bytes(data).index(body)
    pos = {"tables": body_at + 40, "blob": blob_file_offset(bytes(data)) + 123,
           "last": body_at + len(body) - 1, "hash": len(data) - 1}[where]
    data[pos] ^= 0x10
    with pytest.raises(PlanError, match="hash does not match"):
        decode_plan(bytes(data))


@pytest.mark.parametrize("version", [0, 2, 17])
def test_decode_refuses_other_version(demo_plan, version: int) -> None:
    _, body, digest = cbor2.loads(demo_plan.data)
    data = cbor2.dumps([version, body, digest])
    with pytest.raises(PlanError) as ei:
        decode_plan(data)
    msg = str(ei.value)
    assert f"version {version}" in msg and f"version {PLAN_FORMAT_VERSION}" in msg, msg


def test_decode_refuses_trailing_bytes(demo_plan) -> None:
    with pytest.raises(PlanError):
        decode_plan(demo_plan.data + b"junk")


def test_decode_refuses_inconsistent_plan(demo_plan) -> None:
    """A well-formed file with the right hash but a tensor outside the arena."""
    plan = decode_plan(demo_plan.data)
    plan.tensors[plan.bindings.logits].arena_offset = plan.arena_size - 4
    with pytest.raises(PlanError, match="outside the .*arena"):
        decode_plan(encode_plan(plan))


def test_load_plan_file(tmp_path: Path, demo_plan) -> None:
    p = tmp_path / "p.ttp"
    p.write_bytes(demo_plan.data)
    plan, data = load_plan_file(str(p))
    assert data == demo_plan.data and plan.ops == demo_plan.plan.ops
    with pytest.raises(PlanError, match="cannot read plan"):
        load_plan_file(str(tmp_path / "missing.ttp"))
    p.write_bytes(demo_plan.data[:-7])
    with pytest.raises(PlanError):
        load_plan_file(str(p))


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,type_name", [
    ("nn.LSTM(4, 8, batch_first=True)", "LSTM"),
    ("nn.GELU()", "GELU"),
])
def test_unsupported_layer(model_file, layer: str, type_name: str) -> None:
    spec = model_file(f"""
def make_model():
    return nn.Sequential(nn.Conv1d(2, 4, 3), {layer}), torch.randn(1, 2, 10)
""")
    with pytest.raises(CompileError) as ei:
        compile_model(spec)
    msg = str(ei.value)
    assert type_name in msg and "'1'" in msg, msg
    assert "supported layers" in msg
    for cls in SUPPORTED_LAYERS:
        assert cls.__name__ in msg, f"{cls.__name__} missing from: {msg}"


def test_unknown_update_name(small_spec) -> None:
    with pytest.raises(CompileError) as ei:
        compile_model(small_spec, update="0,nosuchlayer")
    msg = str(ei.value)
    assert "nosuchlayer" in msg
    listed = msg.rpartition("layers:")[2]
    assert {n.strip() for n in listed.split(",")} == {"0", "3", "8", "10"}, msg


@pytest.mark.parametrize("update", ["last:0", "last:9", "last:x"])
def test_bad_last_k(small_spec, update: str) -> None:
    with pytest.raises(CompileError, match="1..4"):
        compile_model(small_spec, update=update)


def test_bad_model_spec(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match="does not exist"):
        compile_model(str(tmp_path / "nope.py") + ":make_model")
    with pytest.raises(CompileError, match="FILE.py:FACTORY"):
        compile_model("model_without_factory")
    (tmp_path / "m.py").write_text("x = 1\n")
    with pytest.raises(CompileError, match="no function 'make'"):
        compile_model(str(tmp_path / "m.py") + ":make")


def test_model_file_imports_modules_beside_it(tmp_path: Path) -> None:
    """model.py may import mylayers.py from its own directory; an error in the user's code shows
    the user's traceback lines (model.py, mylayers.py), not tinyhost's."""
    (tmp_path / "mylayers_t.py").write_text(
        "from torch import nn\n\n"
        "def block(c):\n    return nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.ReLU())\n\n"
        "def broken():\n    raise ValueError('bad width 7')\n")
    (tmp_path / "model_t.py").write_text(
        "import torch\nfrom torch import nn\nfrom mylayers_t import block, broken\n\n"
        "def make():\n"
        "    return nn.Sequential(block(2), nn.Flatten(), nn.Linear(20, 3)), torch.randn(1, 2, 10)"
        "\n\ndef bad():\n    broken()\n\ndef missing():\n    import no_such_module_q\n")
    spec = str(tmp_path / "model_t.py")
    assert compile_model(spec + ":make").plan.num_classes == 3
    with pytest.raises(CompileError) as ei:
        compile_model(spec + ":bad")
    msg = str(ei.value)
    assert "model_t.py\", line 9, in bad" in msg and "mylayers_t.py\", line 7" in msg, msg
    assert "ValueError: bad width 7" in msg and "tinyhost" not in msg.replace(str(tmp_path), "")
    with pytest.raises(CompileError, match="'no_such_module_q' is neither installed .* nor a "
                                           "file beside model_t.py"):
        compile_model(spec + ":missing")
    (tmp_path / "syntax_t.py").write_text("def make(:\n    pass\n")
    with pytest.raises(CompileError, match="SyntaxError"):
        compile_model(str(tmp_path / "syntax_t.py") + ":make")


# -- .pt2 input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["demo", "small"])
def test_pt2_equals_factory(tmp_path: Path, which: str, demo_plan, plans, small_spec) -> None:
    from tinyhost.compiler.capture import load_factory
    from tinyhost.demo.basicmotions_model import DEFAULT_LR, make_model
    if which == "demo":
        model, example = make_model()
        ref, lr = demo_plan, DEFAULT_LR
    else:
        model, example = load_factory(small_spec)
        ref, lr = plans["small-full"], 0.01
    path = tmp_path / f"{which}.pt2"
    torch.export.save(torch.export.export(model.eval(), (example,)), str(path))
    got = compile_model(str(path), lr=lr)
    assert got.plan.ops == ref.plan.ops
    assert got.plan.tensors == ref.plan.tensors
    assert got.plan.blob == ref.plan.blob
    assert (got.plan.arena_size, got.plan.bindings, got.plan.num_classes) == \
        (ref.plan.arena_size, ref.plan.bindings, ref.plan.num_classes)
    assert got.plan.meta["input_shape"] == ref.plan.meta["input_shape"]
    # Only meta (model name, source) differs, so the files differ only there.
    assert hashlib.sha256(encode_plan(dataclasses.replace(got.plan, meta=ref.plan.meta))).digest() \
        == hashlib.sha256(ref.data).digest()


def test_no_reorder_defers_updates(small_spec) -> None:
    """--no-reorder: the same ops, every update after the whole backward pass (the schedule the
    paper's operator reordering improves on), the same training arithmetic, more memory."""
    a = compile_model(small_spec, update="full").plan
    b = compile_model(small_spec, update="full", reorder=False).plan
    kinds = [op.opcode.name for op in b.ops]
    first_sgd = kinds.index("SGD_F32")
    assert all(k == "SGD_F32" for k in kinds[first_sgd:])
    assert sorted(kinds) == sorted(op.opcode.name for op in a.ops)
    assert b.arena_size > a.arena_size and b.meta["reorder"] is False
    check_memory_plan(b)
    rng = np.random.default_rng(0)
    ea, eb = RefExecutor(a), RefExecutor(b)
    for _ in range(3):
        x = rng.standard_normal(a.tensors[a.bindings.input].shape).astype(np.float32)
        assert ea.train_step(x, 1, 0.05).loss == eb.train_step(x, 1, 0.05).loss
    for i in a.trainable:
        np.testing.assert_array_equal(ea.read_tensor(i), eb.read_tensor(i))


# -- attributes by name (compiler/graph.py) -------------------------------------------------------
def test_ops_attrs_orders_by_name_and_refuses_missing_or_unknown() -> None:
    from tinyhost.compiler.graph import ops_attrs
    from tinyhost.ops import OP_SPECS, Opcode
    names = OP_SPECS[Opcode.AVGPOOL2D_S8].attrs
    values = {n: i + 1 for i, n in enumerate(names)}
    assert ops_attrs(Opcode.AVGPOOL2D_S8, **dict(reversed(values.items()))) == \
        list(range(1, len(names) + 1))
    assert ops_attrs(Opcode.RELU_F32, size=7) == [7]
    with pytest.raises(ValueError, match="RELU_F32 attributes: missing size"):
        ops_attrs(Opcode.RELU_F32)
    with pytest.raises(ValueError, match="RELU_F32 attributes: unknown stride"):
        ops_attrs(Opcode.RELU_F32, size=7, stride=2)


def test_ir_ops_read_and_write_attributes_by_name() -> None:
    from tinyhost.compiler.graph import Graph
    from tinyhost.ops import CONV_ATTRS, Opcode
    g = Graph()
    geometry = dict(zip(CONV_ATTRS, (2, 5, 5, 4, 5, 5, 3, 3, 1, 1, 1, 1, 1), strict=True))
    op = g.add_op(Opcode.CONV2D_S8_GRAD_INPUT_F32, [0, 1, NONE, NONE], [2],
                  {**geometry, "n_rows": 0}, "conv")
    assert op.attr("out_c") == 4 and op.attr("n_rows") == 0
    op.set_attr("n_rows", 3)
    assert op.attrs[-1] == 3 and op.named_attrs(["k_h", "n_rows"]) == {"k_h": 3, "n_rows": 3}
    assert op.named_attrs(CONV_ATTRS) == geometry
    with pytest.raises(KeyError, match="has no attribute 'x_zero'"):
        op.attr("x_zero")


def test_no_numeric_attribute_index_in_the_compiler() -> None:
    """Attributes are read by name in compiler/ (ops.py holds their order): no `attrs[3]`,
    `attrs[:13]` or `attrs[-1]`; graph.py's IROp.attr is the one place that indexes by position,
    through ops.attr_index."""
    import re
    compiler = Path(__file__).resolve().parents[2] / "host" / "tinyhost" / "compiler"
    numeric = re.compile(r"attrs\s*\[\s*(-?\d|:)")
    hits = [f"{p.name}:{i}: {line.strip()}" for p in sorted(compiler.glob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if numeric.search(line)]
    assert not hits, "numeric attribute indexes:\n" + "\n".join(hits)
