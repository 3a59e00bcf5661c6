"""`tinyhost compile --budget SIZE` and `--memory-chart PNG`: a plan over its budget is not written
and the error says by how much and what is live at the peak; without a budget a plan that needs
megabytes still compiles and says it exceeds a 256 KB MCU; the chart draws every arena tensor as
its lifetime (checked on the boxes it draws against lifetimes recomputed in test_compiler, not on
pixels). Float models and --from-tiny-training alike."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from paper_data import paper_model
from test_compiler import intervals
from tinyhost.cli import byte_size, main
from tinyhost.compiler import compile_model
from tinyhost.memory_chart import chart_boxes, draw_memory_chart
from tinyhost.plan import TensorKind

KB = 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# 32x64x64 fp32 activations are 512 KB each: full training needs megabytes.
BIG_CONV = """
def make_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(32, 4))
    return model, torch.randn(1, 3, 64, 64)
"""


@pytest.fixture(scope="module")
def big_spec(model_file) -> str:
    return model_file(BIG_CONV)


@pytest.fixture(scope="module")
def big_plan(big_spec):
    return compile_model(big_spec)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["compile", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("text,n", [("256KB", 256 * KB), ("256K", 256 * KB), ("262144", 262144),
                                    ("1.5MB", 1536 * KB), ("256 kb", 256 * KB), ("64KiB", 64 * KB),
                                    ("2M", 2048 * KB)])
def test_budget_sizes(text: str, n: int) -> None:
    assert byte_size(text) == n


@pytest.mark.parametrize("text", ["", "abc", "256GB", "0", "-5", "1.5", "0.1K", "KB"])
def test_bad_budget_is_an_argparse_error(text: str, tmp_path: Path, capsys, big_spec) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)
    with pytest.raises(SystemExit) as e:
        main(["compile", big_spec, "-o", str(tmp_path / "x.ttp"), "--budget", text])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --budget" in err and "KB = 1024 bytes" in err
    assert not (tmp_path / "x.ttp").exists()


def test_over_budget_fails_naming_the_peak(tmp_path: Path, capsys, big_spec, big_plan) -> None:
    r = big_plan.report
    out_file = tmp_path / "big.ttp"
    rc, out, err = run(capsys, big_spec, "-o", str(out_file), "--budget", "256KB")
    assert rc == 1 and not out_file.exists()
    over = r.arena_bytes - 256 * KB
    assert over > 256 * KB  # the model needs megabytes
    assert f"exceeds --budget 256.0 KB by {over / KB:.1f} KB ({over} bytes)" in err
    assert f"op {r.peak_op} ({r.peak_op_name})" in err
    name, size = r.live_at_peak[0]
    assert f"{name} {size / KB:.1f} KB" in err
    assert "no plan written" in err and "wrote" not in out
    # The human report on stdout says the same, with the peak's tensors listed.
    assert "exceeds --budget" in out and f"peak at op {r.peak_op} of {r.n_ops}" in out


def test_within_budget_writes_the_plan(tmp_path: Path, capsys, big_spec, big_plan) -> None:
    out_file = tmp_path / "big.ttp"
    rc, out, err = run(capsys, big_spec, "-o", str(out_file), "--budget", "4MB")
    assert rc == 0 and out_file.read_bytes() == big_plan.data
    spare = 4 * KB * KB - big_plan.report.arena_bytes
    assert f"fits --budget 4096.0 KB, {spare / KB:.1f} KB to spare" in out and not err


def test_without_budget_megabytes_compile_and_say_so(tmp_path: Path, capsys, big_spec,
                                                     big_plan) -> None:
    out_file = tmp_path / "big.ttp"
    rc, out, _ = run(capsys, big_spec, "-o", str(out_file))
    assert rc == 0 and out_file.exists()
    over = big_plan.report.arena_bytes - 256 * KB
    assert f"exceeds a 256 KB MCU by {over / KB:.1f} KB" in out and "compiled anyway" in out
    name, _ = big_plan.report.live_at_peak[0]
    assert f"peak at op {big_plan.report.peak_op} " in out and name in out


@pytest.mark.parametrize("budget", [None, "256KB", "8MB"])
def test_budget_in_json(tmp_path: Path, capsys, big_spec, big_plan, budget) -> None:
    out_file = tmp_path / "big.ttp"
    rc, out, _ = run(capsys, big_spec, "-o", str(out_file), "--json",
                     *(["--budget", budget] if budget else []))
    doc = json.loads(out)
    arena = big_plan.report.arena_bytes
    limit = byte_size(budget or "256KB")
    assert doc["budget"] == {"bytes": limit, "enforced": budget is not None,
                             "fits": arena <= limit, "over_by": max(0, arena - limit)}
    failed = budget == "256KB"
    assert rc == (1 if failed else 0)
    assert doc["plan"] == (None if failed else str(out_file)) and out_file.exists() != failed
    assert doc["memory"]["peak_op"] == big_plan.report.peak_op
    assert doc["memory"]["live_at_peak"][0] == list(big_plan.report.live_at_peak[0])


def test_int8_budget(tmp_path: Path, capsys, synthetic_pkl, compile_int8) -> None:
    report = compile_int8(synthetic_pkl, num_classes=4).report
    args = ["--from-tiny-training", str(synthetic_pkl), "--num-classes", "4", "--int8-update",
            "round"]  # the fixture's rule
    out_file = tmp_path / "s.ttp"
    rc, _, err = run(capsys, *args, "-o", str(out_file), "--budget", str(report.arena_bytes - 1))
    assert rc == 1 and not out_file.exists() and "by 1 B (1 bytes)" in err
    assert report.live_at_peak[0][0] in err
    rc, out, _ = run(capsys, *args, "-o", str(out_file), "--budget", str(report.arena_bytes))
    assert rc == 0 and out_file.exists() and "fits --budget" in out


def test_paper_model_full_update_over_256kb(tmp_path: Path, capsys, compile_int8) -> None:
    """The issue's case: mcunet-5fps with full update needs megabytes; --budget 256KB refuses it
    and names the peak."""
    pkl = paper_model("mcunet-5fps")
    r = compile_int8(pkl, "full").report
    out_file = tmp_path / "full.ttp"
    rc, _, err = run(capsys, "--from-tiny-training", str(pkl), "--num-classes", "10",
                     "--int8-update", "round",
                     "-o", str(out_file), "--budget", "256KB")
    assert rc == 1 and not out_file.exists()
    assert f"({r.arena_bytes - 256 * KB} bytes)" in err and r.live_at_peak[0][0] in err


def check_boxes(result) -> None:
    """The chart's boxes are the arena tensors' lifetimes (recomputed independently) over their
    bytes, coloured by what they are, and never overlap one another."""
    plan, report = result.plan, result.report
    boxes = chart_boxes(plan)
    spans = intervals(plan)
    assert sorted(b.tensor for b in boxes) == sorted(spans)
    for b in boxes:
        t = plan.tensors[b.tensor]
        assert (b.first, b.last) == spans[b.tensor], t.name
        assert (b.name, b.offset, b.size) == (t.name, t.arena_offset, t.nbytes)
        assert (b.kind == "trainable_params") == (t.kind == TensorKind.PARAM_TRAINABLE)
        assert (b.kind == "gradients") == (t.kind == TensorKind.GRADIENT)
        assert b.offset + b.size <= plan.arena_size
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    # What crosses the peak op is what the report lists as live there.
    at_peak = sorted((b.name, b.size) for b in boxes if b.first <= report.peak_op <= b.last)
    assert at_peak == sorted(report.live_at_peak)
    for kind, n in report.by_kind.items():
        assert sum(b.size for b in boxes if b.kind == kind) == n


def test_chart_boxes_are_lifetimes(big_plan, synthetic_pkl, compile_int8) -> None:
    check_boxes(big_plan)
    check_boxes(compile_int8(synthetic_pkl, num_classes=4))
    check_boxes(compile_int8(synthetic_pkl, "bias-only", num_classes=4, reorder=False))


def test_memory_chart_png(tmp_path: Path, capsys, synthetic_pkl, compile_int8) -> None:
    import matplotlib.image
    chart = tmp_path / "chart.png"
    rc, out, _ = run(capsys, "--from-tiny-training", str(synthetic_pkl), "--num-classes", "4",
                     "-o", str(tmp_path / "s.ttp"), "--memory-chart", str(chart))
    assert rc == 0 and f"memory chart: {chart}" in out
    assert chart.read_bytes()[:8] == PNG_SIGNATURE
    h, w, _ = matplotlib.image.imread(chart).shape
    assert w > 1000 and h > 500
    # draw_memory_chart draws exactly chart_boxes.
    result = compile_int8(synthetic_pkl, num_classes=4)
    drawn = draw_memory_chart(result.plan, result.report, tmp_path / "again.png", "t", 64 * KB)
    assert drawn == chart_boxes(result.plan)


def test_memory_chart_drawn_over_budget(tmp_path: Path, capsys, big_spec) -> None:
    chart = tmp_path / "chart.png"
    rc, _, _ = run(capsys, big_spec, "-o", str(tmp_path / "x.ttp"), "--budget", "1K",
                   "--memory-chart", str(chart))
    assert rc == 1 and chart.read_bytes()[:8] == PNG_SIGNATURE
