"""Opening a port: a real serial device, a pyserial URL (socket://, loop://), `sim`, which
starts the host-native firmware on a pseudo-terminal and talks to it through pyserial exactly
as to a board, or `qemu`, which starts the Cortex-M4F firmware in QEMU (link/qemu.py)."""
from __future__ import annotations

import os
import select
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import serial

from tinyhost.keys import read_key
from tinyhost.link.errors import REPO_ROOT, LinkError
from tinyhost.link.faults import Faults, FaultyPort
from tinyhost.link.qemu import QemuProcess

SIM_IN_BUILD = REPO_ROOT / "build" / "firmware" / "ports" / "posix" / "tinytrain_sim"

__all__ = ["REPO_ROOT", "SIM_IN_BUILD", "Link", "LinkError", "SimProcess", "find_sim_binary",
           "open_link"]


def find_sim_binary() -> Path:
    env = os.environ.get("TINYTRAIN_SIM")
    if env:
        if not Path(env).is_file():
            raise LinkError(f"TINYTRAIN_SIM={env} does not exist")
        return Path(env)
    if SIM_IN_BUILD.is_file():
        return SIM_IN_BUILD
    found = shutil.which("tinytrain_sim")
    if found:
        return Path(found)
    raise LinkError("the simulated device is not built: run `make build` in the tinytrain "
                    "checkout, or set TINYTRAIN_SIM to the tinytrain_sim binary")


class SimProcess:
    """The simulated device as a child process; it exits when we close its stdin."""

    def __init__(self, arena: int | None = None, board: str | None = None,
                 exit_with_parent: bool = True, state: str | None = None,
                 key: str | None = None) -> None:
        args = [str(find_sim_binary())]
        if state is not None:
            args += ["--state", state]
        if key is not None:  # provisioned with this key file (docs/security.md)
            args += ["--key", key]
        if arena is not None:
            args += ["--arena", str(arena)]
        if board is not None:
            args += ["--board", board]
        if exit_with_parent:
            args.append("--exit-with-stdin")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.path = self._read_path()

    def _read_path(self, timeout: float = 10.0) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not line.startswith("tinytrain-sim: "):
            self.close()
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise LinkError(f"the simulated device did not start: {line or err or 'no output'}")
        return line.split(": ", 1)[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


FAULTS_ENV = "TINYTRAIN_LINK_FAULTS"  # a noisy wire on purpose (link/faults.py)


@dataclass
class Link:
    port: serial.SerialBase | FaultyPort
    name: str
    sim: SimProcess | QemuProcess | None = None

    def close(self) -> None:
        self.port.close()
        if self.sim is not None:
            self.sim.close()


def open_link(port: str, baudrate: int = 115200, sim_key: str | None = None) -> Link:
    """The port opened; `sim` and `qemu` start a device, provisioned with the key file sim_key
    when given."""
    link = _open(port, baudrate, sim_key)
    spec = os.environ.get(FAULTS_ENV)
    if spec:
        try:
            faults = Faults.parse(spec)
        except ValueError as e:
            link.close()
            raise LinkError(f"{FAULTS_ENV}: {e}") from None
        link.port = FaultyPort(link.port, faults)
        link.name += f" with faults {spec}"
    return link


def _open(port: str, baudrate: int, sim_key: str | None) -> Link:
    if port == "qemu":
        # A key file provisions this run's device by semihosting (`--key HEX`, main.c); an
        # image built with a key (TT_AN386_KEY_FILE) keeps its own.
        args = ("--key", read_key(sim_key).hex()) if sim_key is not None else ()
        qemu = QemuProcess(firmware_args=args)
        assert qemu.serial is not None
        return Link(qemu.serial, f"qemu ({qemu.description})", qemu)
    sim = None
    if port == "sim":
        sim = SimProcess(key=sim_key)
        target = sim.path
    else:
        target = port
    try:
        ser = serial.serial_for_url(target, baudrate=baudrate, timeout=0.01, write_timeout=5)
    except (serial.SerialException, ValueError) as e:
        if sim is not None:
            sim.close()
        raise LinkError(f"cannot open port {port}: {e}") from None
    return Link(ser, port if sim is None else f"sim ({target})", sim)
