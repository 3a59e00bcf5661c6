"""The verify pass (compiler/verify.py): it runs on every compile and passes on every normal plan
(fp32, the paper's int8 format, post-training quantized; fused or not), and it refuses a
deliberately broken memory plan or graph with an error naming the tensors or the op."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tinyhost.compiler import (
    PIPELINES,
    QUANTIZE,
    TINY_TRAINING,
    TORCH,
    Compilation,
    CompileError,
    CompileOptions,
    Pass,
    VerifyError,
    compile_model,
    compile_quantized,
    compile_source,
    run_passes,
)
from tinyhost.compiler.plan_memory import lifetimes, plan_memory
from tinyhost.compiler.verify import verify
from tinyhost.plan import ARENA_ALIGN, NONE, TensorKind

SMALL = """
def make_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    return model, torch.randn(1, 2, 10, 12)
"""

QUANTIZABLE = """
def make_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 24, 1), nn.ReLU6(), nn.Conv2d(24, 24, 3, padding=1, groups=24), nn.ReLU6(),
        nn.Conv2d(24, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    return model.eval(), torch.zeros(1, 3, 12, 12)
"""


def until(frontend: str, last: str) -> tuple[Pass, ...]:
    """The pipeline's passes up to and including `last`."""
    passes = PIPELINES[frontend]
    names = [p.name for p in passes]
    return passes[:names.index(last) + 1]


@pytest.fixture(scope="module")
def planned(model_file) -> Compilation:
    """The small fp32 model, its last two layers training, through plan_memory (graph and memory
    plan, nothing emitted)."""
    return run_passes(until(TORCH, "plan_memory"),
                      Compilation(model_file(SMALL), CompileOptions(TORCH, update="last:2")))


def fresh(c: Compilation) -> Compilation:
    """A copy whose memory plan and graph can be broken without touching the fixture."""
    import copy
    return dataclasses.replace(c, graph=copy.deepcopy(c.graph), memory=copy.deepcopy(c.memory))


# -- every normal compile is verified, and passes -------------------------------------------------
def test_verify_runs_in_every_pipeline():
    for frontend in (TORCH, TINY_TRAINING, QUANTIZE):
        names = [p.name for p in PIPELINES[frontend]]
        assert names.index("plan_memory") + 1 == names.index("verify") < names.index("emit")


@pytest.mark.parametrize("update", ["full", "last:1", "bias-only", "3,8.weight"])
@pytest.mark.parametrize("reorder", [True, False])
def test_fp32_compiles_pass_verify(model_file, update, reorder):
    result = compile_model(model_file(SMALL), update=update, reorder=reorder)
    assert "verify" in result.passes


def test_demo_passes_verify(demo_plan):
    assert "verify" in demo_plan.passes


@pytest.mark.parametrize("kw", [
    {"update": "full", "int8_update": "round"},
    {"update": "full", "int8_update": "master", "fuse": False},
    {"update": "last:2", "int8_update": "auto", "reorder": False},
    {"update": "bias-only", "qas": False, "int8_update": "round"},
])
def test_int8_compiles_pass_verify(synthetic_pkl, kw):
    result = compile_source(synthetic_pkl, CompileOptions(TINY_TRAINING, num_classes=4, **kw))
    assert result.passes.count("verify") == 1


def test_quantized_compile_passes_verify(model_file):
    calib = torch.randn(8, 3, 12, 12, generator=torch.Generator().manual_seed(0)).numpy()
    for fuse in (True, False):
        result = compile_quantized(model_file(QUANTIZABLE), calib, update="last:2", fuse=fuse,
                                   int8_update="round")
        assert "verify" in result.passes


def test_paper_plans_pass_verify(compile_int8):
    from paper_data import SCHEMES, paper_model  # skips when ../shared/data is absent
    result = compile_int8(paper_model("mbv2-w0.35"), update=f"{SCHEMES}:mbv2-w0.35:99kb",
                          input_size=48)
    assert "verify" in result.passes


# -- broken memory plans are refused ---------------------------------------------------------------
def live_together(c: Compilation) -> tuple[int, int]:
    """Two arena tensors whose lifetimes overlap (a layer's input and output)."""
    lives = lifetimes(c.graph)
    op = next(op for op in c.graph.ops if op.inputs[0] in lives and op.outputs[0] in lives)
    return op.inputs[0], op.outputs[0]


def test_the_planned_graph_verifies(planned):
    verify(planned.graph, planned.memory)


def test_overlapping_live_tensors_are_refused(planned):
    c = fresh(planned)
    a, b = live_together(c)
    c.memory.offsets[b] = c.memory.offsets[a]
    with pytest.raises(VerifyError) as e:
        verify(c.graph, c.memory)
    msg = str(e.value)
    assert msg.startswith("verify: ")
    assert c.graph.tensors[a].name in msg and c.graph.tensors[b].name in msg
    assert "live at the same time" in msg


def test_partial_overlap_is_refused(planned):
    c = fresh(planned)
    a, b = live_together(c)
    # b starts one alignment step before a's last byte: they share ARENA_ALIGN bytes at most.
    size_a = c.graph.tensors[a].nbytes
    c.memory.offsets[b] = c.memory.offsets[a] + (size_a - 1) // ARENA_ALIGN * ARENA_ALIGN
    c.memory.arena_size += c.graph.tensors[b].nbytes + ARENA_ALIGN  # stays in bounds
    with pytest.raises(VerifyError, match="share arena bytes"):
        verify(c.graph, c.memory)


def test_tensors_that_are_never_live_together_may_share_bytes(planned):
    # The planner reuses bytes of dead tensors (that is its job), and the verifier accepts it.
    g, offsets = planned.graph, planned.memory.offsets
    shared = [(a, b) for a in offsets for b in offsets if a < b
              and offsets[a] < offsets[b] + g.tensors[b].nbytes
              and offsets[b] < offsets[a] + g.tensors[a].nbytes]
    assert shared
    verify(g, planned.memory)


def test_out_of_bounds_is_refused(planned):
    c = fresh(planned)
    t = max(c.memory.offsets, key=lambda i: c.graph.tensors[i].nbytes)
    end = -(-c.memory.arena_size // ARENA_ALIGN) * ARENA_ALIGN
    c.memory.offsets[t] = end  # aligned, past the end (alone there: no overlap)
    with pytest.raises(VerifyError, match=f"'{c.graph.tensors[t].name}' .* outside the "
                                          f"{c.memory.arena_size}-byte arena"):
        verify(c.graph, c.memory)


def test_shrunk_arena_is_refused(planned):
    c = fresh(planned)
    c.memory.arena_size -= ARENA_ALIGN
    with pytest.raises(VerifyError, match="outside the"):
        verify(c.graph, c.memory)


def test_misaligned_offset_is_refused(planned):
    c = fresh(planned)
    t = next(iter(c.memory.offsets))
    c.memory.offsets[t] += ARENA_ALIGN // 2
    with pytest.raises(VerifyError, match=f"'{c.graph.tensors[t].name}' .* not "
                                          f"{ARENA_ALIGN}-byte aligned"):
        verify(c.graph, c.memory)


def test_unplaced_and_misplaced_tensors_are_refused(planned):
    c = fresh(planned)
    t = next(iter(c.memory.offsets))
    del c.memory.offsets[t]
    with pytest.raises(VerifyError, match=f"'{c.graph.tensors[t].name}' is used during the step "
                                          "but has no arena offset"):
        verify(c.graph, c.memory)
    c = fresh(planned)
    frozen = next(i for i, t in enumerate(c.graph.tensors) if t.kind == TensorKind.PARAM_FROZEN)
    c.memory.offsets[frozen] = 0
    with pytest.raises(VerifyError, match="has an arena offset but is a frozen parameter"):
        verify(c.graph, c.memory)


# -- broken graphs are refused, naming the op -----------------------------------------------------
def test_operand_out_of_range_is_refused(planned):
    c = fresh(planned)
    op = c.graph.ops[2]
    op.inputs[0] = len(c.graph.tensors)
    with pytest.raises(VerifyError, match=rf"op 2 \({op.opcode.name}, .*\): operand x names "
                                          rf"tensor {len(c.graph.tensors)}"):
        verify(c.graph, c.memory)


def test_wrong_operand_count_and_missing_operand_are_refused(planned):
    c = fresh(planned)
    c.graph.ops[0].outputs.append(NONE)
    with pytest.raises(VerifyError, match=r"op 0 .* has 2 outputs, its op has 1"):
        verify(c.graph, c.memory)
    c = fresh(planned)
    c.graph.ops[0].inputs[1] = NONE  # the weight
    with pytest.raises(VerifyError, match=r"op 0 .*: operand w is required but absent"):
        verify(c.graph, c.memory)


def test_wrong_dtype_is_refused(planned):
    c = fresh(planned)
    c.graph.ops[0].inputs[0] = c.graph.label  # int32, where an f32 input belongs
    with pytest.raises(VerifyError, match=r"operand x is 'label' of dtype S32, expected F32"):
        verify(c.graph, c.memory)


def test_in_place_update_writing_elsewhere_is_refused(planned):
    c = fresh(planned)
    from tinyhost.ops import INPLACE_UPDATES
    k, op = next((k, op) for k, op in enumerate(c.graph.ops) if op.opcode in INPLACE_UPDATES)
    op.outputs[0] = op.inputs[1]  # the gradient, not the parameter
    with pytest.raises(VerifyError, match=rf"op {k} .*updated in place"):
        verify(c.graph, c.memory)


# -- in the pass loop -----------------------------------------------------------------------------
def test_a_broken_planner_fails_compilation_in_verify(model_file):
    def everything_at_zero(c: Compilation) -> Compilation:
        c.memory = plan_memory(c.need_graph())
        c.memory.offsets = {t: 0 for t in c.memory.offsets}
        return c

    passes = tuple(Pass(p.name, everything_at_zero) if p.name == "plan_memory" else p
                   for p in PIPELINES[TORCH])
    comp = Compilation(model_file(SMALL), CompileOptions(TORCH))
    with pytest.raises(VerifyError, match="live at the same time") as e:
        run_passes(passes, comp)
    assert e.value.pass_name == "verify"
    # nothing emitted
    assert comp.passes_run == ["capture", "lower", "autodiff", "optimizer", "plan_memory"]
    assert comp.plan is None


def test_errors_name_their_pass(model_file, synthetic_pkl):
    with pytest.raises(CompileError, match="^autodiff: ") as e:
        compile_model(model_file(SMALL), update="nothing-of-that-name")
    assert e.value.pass_name == "autodiff"
    with pytest.raises(CompileError) as e:
        compile_model(model_file(SMALL).replace(".py:", "_missing.py:"))
    assert e.value.pass_name == "capture"
    with pytest.raises(CompileError, match="^import_tiny: ") as e:
        compile_source(synthetic_pkl, CompileOptions(TINY_TRAINING, num_classes=0))
    assert e.value.pass_name == "import_tiny"


def test_other_exceptions_get_a_note_naming_the_pass(model_file):
    def broken(c: Compilation) -> Compilation:
        raise ValueError("a bug")

    passes = tuple(Pass(p.name, broken) if p.name == "lower" else p for p in PIPELINES[TORCH])
    with pytest.raises(ValueError, match="a bug") as e:
        run_passes(passes, Compilation(model_file(SMALL), CompileOptions(TORCH)))
    if hasattr(e.value, "__notes__"):
        assert e.value.__notes__ == ["(raised in compiler pass lower)"]


def test_options_are_checked():
    with pytest.raises(CompileError, match="--int8-update 'sometimes'"):
        compile_source("x.pkl", CompileOptions(TINY_TRAINING, num_classes=2,
                                               int8_update="sometimes"))
    with pytest.raises(CompileError, match="unknown front end"):
        compile_source("x.py:f", CompileOptions("onnx"))


def test_the_wrappers_build_the_same_options(model_file):
    src = model_file(SMALL)
    a = compile_model(src, update="last:1", lr=0.05, reorder=False)
    b = compile_source(src, CompileOptions(TORCH, update="last:1", lr=0.05, reorder=False))
    assert a.data == b.data and np.isclose(a.plan.default_lr, 0.05)
