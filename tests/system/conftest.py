"""Fixtures of the simulated-hardware tests that run the bare-metal firmware in QEMU."""
from __future__ import annotations

import os
import shutil

import pytest


def qemu_required() -> bool:
    """TT_REQUIRE_QEMU=1 (set by `make test`, which installs QEMU and the ARM toolchain first):
    a QEMU test that cannot run fails instead of skipping."""
    return os.environ.get("TT_REQUIRE_QEMU", "") not in ("", "0")


@pytest.fixture(scope="module")
def qemu_ready() -> None:
    """QEMU missing: skip (a developer running pytest by hand), unless TT_REQUIRE_QEMU is set, as
    `make test` does (then its absence is a failure). The firmware missing is always a failure:
    `make qemu`."""
    from tinyhost.link.errors import LinkError
    from tinyhost.link.qemu import find_qemu, find_qemu_elf
    if shutil.which("qemu-system-arm") is None and not os.environ.get("TINYTRAIN_QEMU"):
        if qemu_required():
            pytest.fail("qemu-system-arm is not installed and TT_REQUIRE_QEMU is set: run "
                        "`make test` as root (it installs it), or apt-get install qemu-system-arm "
                        "gcc-arm-none-eabi picolibc-arm-none-eabi", pytrace=False)
        pytest.skip("qemu-system-arm is not installed: apt-get install qemu-system-arm "
                    "gcc-arm-none-eabi picolibc-arm-none-eabi, then `make qemu` (`make test` "
                    "does both as root)")
    try:
        find_qemu()
        find_qemu_elf()
    except LinkError as e:
        pytest.fail(str(e), pytrace=False)
