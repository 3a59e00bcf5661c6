"""`--port qemu`: the bare-metal Cortex-M4F firmware (firmware/ports/baremetal) in QEMU's
mps2-an386 machine, its UART0 on a local TCP socket that pyserial opens as `socket://`.

QEMU runs with `-icount shift=0` (one instruction per virtual nanosecond), so the firmware reports
training-step costs in instructions and runs deterministically; `-display none -monitor none`
(not `-nographic`, whose stdio multiplexer eats byte 0x01), `server=on,wait=on` (the guest
starts only once we are connected, so its banner is not lost) and `nodelay=on` (without it Nagle
and delayed ACKs cost ~40 ms per reply; we disable Nagle on our end too). Semihosting gives the
firmware an exit status and a console (QEMU's stderr, kept in a log) for fault reports.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import serial

from tinyhost.link.errors import REPO_ROOT, LinkError

QEMU_ELF_IN_BUILD = REPO_ROOT / "build-arm" / "tinytrain_an386.elf"
BANNER_PREFIX = b"tinytrain-an386: "
MACHINE = "mps2-an386"
START_TIMEOUT = 20.0  # seconds for QEMU to listen and the firmware to print its banner


def find_qemu() -> str:
    env = os.environ.get("TINYTRAIN_QEMU")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise LinkError(f"TINYTRAIN_QEMU={env} is not an executable")
        return env
    found = shutil.which("qemu-system-arm")
    if found:
        return found
    raise LinkError("qemu-system-arm is not installed: apt-get install qemu-system-arm "
                    "(`make setup` does it when run as root), or set TINYTRAIN_QEMU")


def find_qemu_elf() -> Path:
    env = os.environ.get("TINYTRAIN_QEMU_ELF")
    if env:
        if not Path(env).is_file():
            raise LinkError(f"TINYTRAIN_QEMU_ELF={env} does not exist")
        return Path(env)
    if QEMU_ELF_IN_BUILD.is_file():
        return QEMU_ELF_IN_BUILD
    raise LinkError(f"the QEMU firmware is not built ({QEMU_ELF_IN_BUILD} is missing): run "
                    "`make qemu` in the tinytrain checkout (it needs the apt packages "
                    "gcc-arm-none-eabi and picolibc-arm-none-eabi), or set TINYTRAIN_QEMU_ELF")


def qemu_command(qemu: str, elf: Path, tcp_port: int, firmware_args: tuple[str, ...] = (),
                 icount: bool = True, monitor: str | None = None) -> list[str]:
    """The command line (also documented in boards/qemu/mps2-an386.md). `monitor`: a unix
    socket path for QEMU's monitor (system_reset), else none."""
    semihosting = "enable=on,target=native"
    if firmware_args:  # argv[0] first, as the semihosting command line expects
        semihosting += "".join(f",arg={a}" for a in (elf.name, *firmware_args))
    cmd = [qemu, "-M", MACHINE, "-cpu", "cortex-m4", "-kernel", str(elf),
           "-display", "none",
           "-monitor", "none" if monitor is None else f"unix:{monitor},server=on,wait=off",
           "-serial", f"tcp:127.0.0.1:{tcp_port},server=on,wait=on,nodelay=on",
           "-semihosting-config", semihosting]
    if icount:
        cmd += ["-icount", "shift=0"]
    return cmd


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies (Linux), so no QEMU outlives a killed host."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class QemuProcess:
    """QEMU running the firmware, connected: `serial` is the open pyserial port on UART0 and
    `banner` the firmware's first line. `close()` stops QEMU."""

    def __init__(self, elf: Path | None = None, firmware_args: tuple[str, ...] = (),
                 icount: bool = True, timeout: float = START_TIMEOUT,
                 read_banner: bool = True, monitor: bool = False) -> None:
        self.qemu = find_qemu()
        self.monitor = (str(Path(tempfile.mkdtemp(prefix="tinytrain-qemu-")) / "monitor")
                        if monitor else None)
        self.elf = Path(elf) if elf is not None else find_qemu_elf()
        self.log = tempfile.TemporaryFile(prefix="tinytrain-qemu-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.serial: serial.SerialBase | None = None
        self.banner = ""
        try:
            for _attempt in range(3):  # the free port may be taken before QEMU binds it
                self.tcp_port = _free_port()
                self.command = qemu_command(self.qemu, self.elf, self.tcp_port, firmware_args,
                                            icount, self.monitor)
                self._start()
                if self._connect(timeout) or "Address already in use" not in self.output():
                    break
            if self.serial is None:
                raise LinkError(f"QEMU did not start: {self._last_words()}")
            if read_banner:
                self._read_banner(timeout)
        except BaseException:
            self.close()
            raise

    @property
    def description(self) -> str:
        return f"{MACHINE}, tcp:127.0.0.1:{self.tcp_port}"

    def _start(self) -> None:
        self.log.seek(0)
        self.log.truncate()
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            # PR_SET_PDEATHSIG fires when the creating *thread* exits: main thread only.
            preexec_fn=_die_with_parent if in_main_thread and os.name == "posix" else None)

    def _connect(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.serial = serial.serial_for_url(f"socket://127.0.0.1:{self.tcp_port}",
                                                    timeout=0.01, write_timeout=5)
                sock = getattr(self.serial, "_socket", None)  # pyserial does not disable Nagle
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return True
            except (serial.SerialException, OSError):
                time.sleep(0.05)
        return False

    def _read_banner(self, timeout: float) -> None:
        assert self.serial is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            try:
                line += self.serial.read_until(b"\n", 256 - len(line))
            except serial.SerialException as e:
                raise LinkError(f"QEMU closed the serial connection: {e}; "
                                f"{self._last_words()}") from None
            if len(line) >= 256:
                break
        if not line.startswith(BANNER_PREFIX):
            raise LinkError(f"{self.elf} in QEMU did not print the tinytrain banner (got "
                            f"{line[:80]!r}): is it the tinytrain firmware? {self._last_words()}")
        self.banner = line.decode(errors="replace").strip()

    def warm_reset(self, timeout: float = START_TIMEOUT) -> None:
        """Resets the machine as its reset button would (QEMU's system_reset: the CPU restarts
        from the image; memory outside the image's loadable sections, the plan slots and the
        checkpoints, stays) and reads the firmware's new banner. Needs monitor=True."""
        if self.monitor is None:
            raise LinkError("warm_reset needs QemuProcess(monitor=True)")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mon:
            mon.settimeout(timeout)
            mon.connect(self.monitor)
            mon.sendall(b"system_reset\n")
            time.sleep(0.2)
        self._read_banner(timeout)

    def output(self) -> str:
        """What QEMU printed so far: its messages and the firmware's semihosting console."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def _last_words(self) -> str:
        status = "" if self.proc is None or self.proc.poll() is None else \
            f"QEMU exited with status {self.proc.returncode}; "
        tail = self.output().strip().splitlines()[-3:]
        return status + ("output: " + " | ".join(tail) if tail else "no output")

    def wait(self, timeout: float) -> int:
        """Waits for QEMU to exit (the firmware's semihosting exit status) and returns it."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.serial is not None:
            try:
                self.serial.close()
            except Exception:
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
