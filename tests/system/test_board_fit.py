"""The compiler's fit verdict (tinyhost.boards, `tinyhost compile --board`) agrees with the
devices on both sides of the boundary: a plan it says fits, the device takes; one it says does not
fit (by 8 bytes), the device refuses, before any of the plan's bytes are sent: the host refuses it
from INFO, and the device itself at PLAN_BEGIN (its arena alone over) or, for a host that does
not send the arena, at PLAN_COMMIT. On the simulated device and on the bare-metal Cortex-M4F
build in QEMU."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tinyhost.boards import BOARDS, board_fit
from tinyhost.cli import main
from tinyhost.device import SerialDevice, connect
from tinyhost.link.client import DeviceClient, DeviceError
from tinyhost.link.transport import SimProcess, open_link
from tinyhost.plan import encode_plan, load_plan_file

PLAN_ARENA = -6  # TT_ERR_PLAN_ARENA
REPO = Path(__file__).resolve().parents[2]
DEMO = f"{REPO}/host/tinyhost/demo/basicmotions_model.py:make_model"


def padded(result, arena: int):
    """The compiled plan declaring a larger arena (as a bigger model would): (plan, bytes)."""
    plan = dataclasses.replace(result.plan, arena_size=arena)
    return plan, encode_plan(plan)


def boundary_plans(result, board_name: str):
    """(plan just inside, plan 8 bytes over) the board's shipped arena, by the compiler's model."""
    b = BOARDS[board_name]
    tables = b.ram_tables(result.plan)
    inside = padded(result, b.arena_capacity() - tables)
    outside = padded(result, b.arena_capacity() - tables + 8)
    assert board_fit(inside[0], b).fits and board_fit(inside[0], b).spare == 0
    assert not board_fit(outside[0], b).fits and board_fit(outside[0], b).spare == -8
    return inside, outside


def sent_bytes(device, plan, data) -> int:
    """Uploads through the host's load_plan; returns how many plan bytes went out."""
    sent = []
    device.load_plan(plan, data, sent.append)
    return sum(sent)


def check_both_sides(port: str, board_name: str, demo_plan, demo_data) -> None:
    (plan_in, data_in), (plan_out, data_out) = boundary_plans(demo_plan, board_name)
    tables = BOARDS[board_name].ram_tables(demo_plan.plan)
    x, y = demo_data.x_train[0], int(demo_data.y_train[0])

    device = connect(port)
    try:
        info = device.info()
        assert info.arena_capacity == BOARDS[board_name].arena_capacity(), \
            f"{port} has another arena than boards.py's {board_name}: update the board table"
        # Over by 8 bytes: the host refuses from INFO, nothing is sent.
        with pytest.raises(DeviceError) as e:
            sent_bytes(device, plan_out, data_out)
        assert e.value.code == PLAN_ARENA and "not uploaded" in e.value.message
        assert f"needs an arena of {plan_out.arena_size} bytes" in e.value.message
        assert f"has {info.arena_capacity}: 8 bytes too many" in e.value.message
        # The device's own checks, without the host's: a host sending the plan's arena in
        # PLAN_BEGIN is refused there, before a chunk (when the arena alone is over); one that
        # does not (an older host) at PLAN_COMMIT, by the same rule.
        if plan_out.arena_size > info.arena_capacity:
            with pytest.raises(DeviceError) as e:
                device.client.upload_plan(data_out, device.chunk,
                                          lambda n: pytest.fail("a chunk was sent"),
                                          arena=plan_out.arena_size)
            assert e.value.code == PLAN_ARENA
            assert (f"needs an arena of {plan_out.arena_size} bytes, device has "
                    f"{info.arena_capacity}") in e.value.message
        with pytest.raises(DeviceError) as e:
            device.client.upload_plan(data_out, device.chunk)
        assert e.value.code == PLAN_ARENA
        assert (f"needs an arena of {plan_out.arena_size} bytes (+{tables} for its tables), "
                f"device has {info.arena_capacity}") in e.value.message
        # Exactly fitting: accepted, trains, and the device's arena is full to the byte.
        assert sent_bytes(device, plan_in, data_in) == len(data_in)
        device.train_step(x, y, 0.01)
        after = device.info()
        assert after.plan_loaded and after.arena_used == after.arena_capacity == \
            plan_in.arena_size + tables
    finally:
        device.close()


def test_sim_agrees_with_the_compiler(sim_binary, demo_plan, demo_data) -> None:
    check_both_sides("sim", "sim", demo_plan, demo_data)


@pytest.mark.usefixtures("qemu_ready")
def test_qemu_m4f_agrees_with_the_compiler(demo_plan, demo_data) -> None:
    check_both_sides("qemu", "mps2_an386", demo_plan, demo_data)


def _compile(capsys, out: Path, *args: str) -> tuple[int, dict]:
    rc = main(["compile", DEMO, "-o", str(out), "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_budget_is_the_boards_sram_on_both_sides(sim_binary, tmp_path: Path, capsys,
                                                 demo_data) -> None:
    """`tinyhost compile --board sim --budget N`: N is the SRAM, the sim's arena. At the plan's
    exact need it compiles and a sim with that arena takes it; 8 bytes less and the compiler
    refuses, as does a sim with that arena."""
    out = tmp_path / "p.ttp"
    rc, doc = _compile(capsys, out, "--board", "sim")
    need = doc["board"]["arena"] + doc["board"]["tables"]
    assert rc == 0 and doc["board"]["fits"] and not doc["board"]["enforced"]

    rc, doc = _compile(capsys, out, "--board", "sim", "--budget", str(need))
    assert rc == 0 and doc["plan"] == str(out) and doc["board"]["spare"] == 0
    assert doc["budget"] == {"bytes": need, "enforced": True, "fits": True, "over_by": 0}
    out.unlink()
    rc, doc = _compile(capsys, out, "--board", "sim", "--budget", str(need - 8))
    assert rc == 1 and doc["plan"] is None and not out.exists()
    assert doc["budget"]["over_by"] == 8 and not doc["board"]["fits"]
    rc, _ = _compile(capsys, out, "--board", "sim", "--budget", str(need))
    plan, data = load_plan_file(str(out))
    for arena, fits in ((need, True), (need - 8, False)):
        sim = SimProcess(arena=arena)
        link = open_link(sim.path)
        link.sim = sim
        device = SerialDevice(DeviceClient(link))
        try:
            if fits:
                assert sent_bytes(device, plan, data) == len(data)
                device.train_step(demo_data.x_train[0], int(demo_data.y_train[0]), 0.01)
                assert device.info().arena_used == arena
            else:
                with pytest.raises(DeviceError, match="not uploaded"):
                    sent_bytes(device, plan, data)
        finally:
            device.close()


def test_report_names_the_board_and_without_one_what_it_assumes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.ttp"
    assert main(["compile", DEMO, "-o", str(out), "--board", "mps2_an386"]) == 0
    text = capsys.readouterr().out
    static_kb = BOARDS["mps2_an386"].static_ram / 1024
    assert "on mps2_an386 (256.0 KB SRAM):" in text
    assert f"in all = static RAM {static_kb:.1f} KB" in text
    assert f"device arena {BOARDS['mps2_an386'].arena_capacity()} bytes" in text
    assert ": fits, " in text
    assert main(["compile", DEMO, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no --board: the planned arena alone is judged" in text
