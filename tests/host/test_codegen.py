"""The files generated from the op registry (host/tinyhost/ops.py) are up to date, and every
registered op has its device side: a check and a run function in the runtime's sources."""
from __future__ import annotations

import re

from tinyhost import codegen
from tinyhost.ops import OP_DEFS


def test_generated_files_are_current():
    stale = [str(p.relative_to(codegen.ROOT)) for p in codegen.stale()]
    assert not stale, f"stale generated files {stale}: run `python -m tinyhost.codegen`"


def test_check_reports_stale_file(tmp_path, monkeypatch):
    copy = tmp_path / "tt_ops.h"
    copy.write_text(codegen.tt_ops_h() + "/* edited by hand */\n")
    monkeypatch.setattr(codegen, "TT_OPS_H", copy)
    assert codegen.stale() == [copy]
    assert codegen.main(["--check"]) == 1
    assert codegen.main([]) == 0 and copy.read_text() == codegen.tt_ops_h()
    assert codegen.main(["--check"]) == 0


def test_every_op_has_check_and_run_in_the_runtime():
    sources = "\n".join(p.read_text() for p in
                        (codegen.ROOT / "firmware" / "runtime" / "ops").glob("*.c"))
    for d in OP_DEFS:
        for fn in ("check", "run"):
            name = f"tt_op_{d.name.lower()}_{fn}"
            assert re.search(rf"^tt_status {name}\(const tt_op_ctx \*c, ", sources, re.M), \
                f"{d.name}: no {name} in firmware/runtime/ops/"


def test_header_names_operands_and_attributes():
    text = codegen.tt_ops_h()
    assert "TT_ATTR_CONV2D_S8_X_ZERO = 13" in text
    assert "TT_OPND_CONV2D_S8_SCRATCH = 9" in text
    assert "TT_ATTR_PW_DW_CONV2D_S8_DW_IN_C = 13" in text


def test_no_numeric_attribute_index_outside_generated_code():
    """Attributes are read by name: TT_ATTR_<OP>_<NAME> (or a group's generated unpack) in C,
    op.attr(name) in Python; positions appear only in the generated files."""
    root = codegen.ROOT
    c_index = re.compile(r"(->a|\ba|attrs)\s*\[\s*-?\d")
    hits = []
    for path in sorted((root / "firmware" / "runtime").rglob("*.[ch]")):
        text = path.read_text()
        if text.startswith("/* GENERATED"):
            continue
        hits += [f"{path.relative_to(root)}:{i}" for i, line in enumerate(text.splitlines(), 1)
                 if c_index.search(line)]
    py_index = re.compile(r"\.attrs\s*\[\s*(-?\d|:)")
    for path in sorted((root / "host" / "tinyhost").rglob("*.py")):
        hits += [f"{path.relative_to(root)}:{i}"
                 for i, line in enumerate(path.read_text().splitlines(), 1)
                 if py_index.search(line)]
    assert not hits, "numeric attribute indexes:\n" + "\n".join(hits)
