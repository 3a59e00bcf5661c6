"""Fixtures of the simulated-hardware tests that run the bare-metal firmware in QEMU."""
from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="module")
def qemu_ready() -> None:
    """QEMU missing: skip, unless we are root (then `make setup`/`make test` installs it, as on
    CI, and its absence is a failure). The firmware missing is always a failure: `make qemu`."""
    from tinyhost.link.qemu import find_qemu, find_qemu_elf
    from tinyhost.link.transport import LinkError
    if shutil.which("qemu-system-arm") is None and not os.environ.get("TINYTRAIN_QEMU"):
        if os.geteuid() != 0:
            pytest.skip("qemu-system-arm is not installed and we are not root to install it: "
                        "apt-get install qemu-system-arm gcc-arm-none-eabi picolibc-arm-none-eabi, "
                        "then `make qemu`")
        pytest.fail("qemu-system-arm is not installed: run `make setup` (installs it as root)",
                    pytrace=False)
    try:
        find_qemu()
        find_qemu_elf()
    except LinkError as e:
        pytest.fail(str(e), pytrace=False)
