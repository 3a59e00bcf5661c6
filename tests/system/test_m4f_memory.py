"""RAM of the Cortex-M4F firmware in QEMU, accounted as DESIGN.md section 8 asks: the map file gives
static RAM and what the linker script reserves, the firmware reports the arena a plan uses and the
high-water mark of its painted stack (INFO `stack_peak`), and a figure counts only where they
agree. The demo plan, trained a step, must fit the 256 KB with all three."""
from __future__ import annotations

import pytest

from tinyhost.demo.basicmotions_model import DEFAULT_LR
from tinyhost.device import connect
from tinyhost.firmware_map import map_path, read_map
from tinyhost.link.qemu import find_qemu_elf

KB = 1024

pytestmark = pytest.mark.usefixtures("qemu_ready")  # tests/system/conftest.py


def test_demo_plan_fits_in_256_kb_with_the_measured_stack(demo_plan, demo_data) -> None:
    fw = read_map(map_path(find_qemu_elf()))
    assert fw.ram_size == 256 * KB
    # The arena is all RAM the rest leaves (mps2_an386.ld): the map's parts add up to the RAM,
    # give or take the arena's 16-byte alignment.
    spare = fw.ram_size - (fw.stack_size + fw.static_ram + fw.arena_capacity)
    assert 0 <= spare < 16, fw
    assert 0 < fw.static_ram < 32 * KB and 0 < fw.flash < 256 * KB, fw

    device = connect("qemu")
    try:
        boot = device.info()
        device.load_plan(demo_plan.plan, demo_plan.data)
        device.train_step(demo_data.x_train[0], int(demo_data.y_train[0]), DEFAULT_LR)
        after = device.info()
    finally:
        device.close()

    assert boot.arena_capacity == fw.arena_capacity, "the firmware and its map file disagree"
    assert boot.stack_peak is not None and after.stack_peak is not None, \
        "the bare-metal firmware reports no stack_peak in INFO"
    # Plausible: something at boot, more once a plan was decoded and trained (the measurement
    # moves), and below the reserved stack (the paint was found, the guard was not reached).
    assert 0 < boot.stack_peak < after.stack_peak < fw.stack_size, (boot.stack_peak,
                                                                    after.stack_peak, fw)
    assert after.steps == 1 and after.arena_used >= demo_plan.plan.arena_size
    total = fw.ram_needed(after.arena_used, after.stack_peak)
    assert total <= fw.ram_size, \
        f"static {fw.static_ram} + arena {after.arena_used} + stack {after.stack_peak} B"
    print(f"\ndemo plan on mps2-an386: static RAM {fw.static_ram} B + arena {after.arena_used} B + "
          f"stack {after.stack_peak} B = {total / KB:.1f} KB of "
          f"{fw.ram_size // KB} KB")


def test_the_simulated_device_reports_no_stack_peak(sim_binary) -> None:
    """The key is optional: only ports that measure their stack send it."""
    device = connect("sim")
    try:
        assert device.info().stack_peak is None
    finally:
        device.close()
