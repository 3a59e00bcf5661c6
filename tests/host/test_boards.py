"""The board memory models (tinyhost.boards): the bare-metal numbers are the current build's (its
map file), every number says where it comes from, and the fit verdict is arena + the tables' RAM
against the device's arena."""
from __future__ import annotations

from pathlib import Path

import pytest

from tinyhost.boards import (
    BOARDS,
    TABLES_IN_RAM,
    board,
    board_fit,
    board_for_info,
    format_fit,
)
from tinyhost.firmware_map import read_map
from tinyhost.plan import Op, Plan

REPO = Path(__file__).resolve().parents[2]
MAP = REPO / "build-arm" / "tinytrain_an386.map"


def test_bare_metal_numbers_are_the_current_builds() -> None:
    if not MAP.is_file():
        pytest.skip(f"{MAP} does not exist (`make qemu` writes it)")
    fw = read_map(MAP)
    b = BOARDS["mps2_an386"]
    assert (b.ram, b.static_ram, b.stack) == (fw.ram_size, fw.static_ram, fw.stack_size), (
        f"boards.py's mps2_an386 (ram {b.ram}, static_ram {b.static_ram}, stack {b.stack}) is "
        f"not the build's {fw}: update BOARDS from the map file")
    assert b.arena_capacity() == fw.arena_capacity


def test_every_number_has_a_source() -> None:
    for b in BOARDS.values():
        assert set(b.sources) == {"ram", "static_ram", "stack", "arena"}, b.name
        assert b.static_ram + b.stack + b.arena_capacity() <= b.ram, b.name
        assert board(b.name) is b
        for name in b.info_names:
            assert board_for_info(name) is b
    with pytest.raises(ValueError, match="unknown board 'uno'.*mps2_an386"):
        board("uno")
    assert board_for_info("some-other-board") is None


def test_the_cli_knows_every_board() -> None:
    from tinyhost.cli import BOARD_NAMES
    assert BOARD_NAMES == tuple(BOARDS)


def test_budget_is_the_whole_sram() -> None:
    b = BOARDS["mps2_an386"]
    # 256 KB: the build's own arena; 128 KB: what a build for 128 KB of RAM would leave.
    assert b.arena_capacity(256 * 1024) == b.arena_capacity()
    assert b.arena_capacity(128 * 1024) == b.arena_capacity() - 128 * 1024
    assert BOARDS["sim"].arena_capacity(100_000) == 100_000
    n = BOARDS["nucleo_f746zg"]
    assert n.arena_capacity() == 245_760  # the Kconfig arena of the shipped build


def _plan(arena: int, n_tensors: int) -> Plan:
    return Plan(arena_size=arena, n_forward=1, bindings=None, num_classes=2, default_lr=0.01,
                tensors=[None] * n_tensors, ops=[Op(1, [0, 1, 2], [3], [4, 5])], blob=b"")


def test_fit_is_arena_plus_tables_against_the_device_arena() -> None:
    b = BOARDS["mps2_an386"]
    plan = _plan(0, 3)
    # tables: 3 tensors x 20 B -> 64, 1 op -> 16, 4 operands -> 16, 2 attrs -> 8
    assert b.tables_bytes(plan) == 64 + 16 + 16 + 8
    assert BOARDS["sim"].tables_bytes(plan) == 72 + 16 + 16 + 8  # 24-byte tensors on 64-bit
    assert b.ram_tables(plan) == (b.tables_bytes(plan) if TABLES_IN_RAM else 0)
    plan.arena_size = b.arena_capacity() - b.ram_tables(plan)
    fit = board_fit(plan, b)
    assert fit.fits and fit.spare == 0 and not fit.enforced
    assert fit.total == b.static_ram + b.stack + fit.arena_need
    assert "fits, 0 B of its arena to spare" in format_fit(fit)
    plan.arena_size += 8
    fit = board_fit(plan, b)
    assert not fit.fits and fit.spare == -8
    assert "does NOT fit" in format_fit(fit) and "by 8 B" in format_fit(fit)
    fit = board_fit(plan, b, ram=512 * 1024)
    assert fit.fits and fit.enforced and fit.ram == 512 * 1024
    assert "512.0 KB (--budget) SRAM" in format_fit(fit)
