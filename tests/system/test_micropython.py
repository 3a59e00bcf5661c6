"""`import tinytrain` in MicroPython (firmware/micropython, issue 16): the unix port with the user
C module trains the demo plans as `--port ref` does: the int8 plan bit for bit (losses, parameters,
accuracy), the fp32 plan within the tolerance every C port has against numpy's summation order.
The qemu port (MPS2-AN500, a Cortex-M7 in QEMU) does the same over its raw REPL.

Needs MicroPython built with the module: `firmware/micropython/build.sh MICROPY_DIR [unix|qemu]`
(README, "MicroPython") puts it in build/micropython-{unix,qemu}/; TINYTRAIN_MICROPYTHON and
TINYTRAIN_MICROPYTHON_QEMU name others. Without them these tests skip (a MicroPython tree is
fetched outside the repository, never shipped)."""
from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tinyhost.cli import main
from tinyhost.datasets import load_dataset, standardize
from tinyhost.plan import load_plan_file
from tinyhost.refexec.executor import RefExecutor, prepare_input

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "host" / "tinyhost" / "demo"
DATA = str(DEMO / "basicmotions.npz")
SCRIPT = REPO / "firmware" / "micropython" / "scripts" / "train_plan.py"
STEPS = 40


def _micropython() -> Path:
    path = Path(os.environ.get("TINYTRAIN_MICROPYTHON",
                               REPO / "build" / "micropython-unix" / "micropython"))
    if not path.is_file():
        pytest.skip(f"no MicroPython with the tinytrain module at {path}: build one with "
                    "firmware/micropython/build.sh MICROPY_DIR (README: MicroPython)")
    return path


@pytest.fixture(scope="module")
def micropython() -> Path:
    return _micropython()


def _samples() -> tuple[np.ndarray, np.ndarray]:
    ds, _, _ = standardize(load_dataset(DATA))
    return ds.x_train[:STEPS], ds.y_train[:STEPS]


def _run_micropython(mp: Path, plan: Path, tmp: Path, lr: str = "-"
                     ) -> tuple[list[tuple[int, int]], float, bytes]:
    loaded, _ = load_plan_file(str(plan))
    x, y = _samples()
    (tmp / "samples.bin").write_bytes(b"".join(prepare_input(loaded, s).tobytes() for s in x))
    (tmp / "labels.bin").write_bytes(np.asarray(y, "<i4").tobytes())
    r = subprocess.run([str(mp), str(SCRIPT), str(plan), str(tmp / "samples.bin"),
                        str(tmp / "labels.bin"), lr, str(tmp / "params.bin")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    steps, accuracy = [], None
    for line in r.stdout.splitlines():
        word = line.split()
        if word[0] == "step":
            steps.append((int(word[2], 16), int(word[3])))
        elif word[0] == "accuracy":
            accuracy = float(word[1])
    assert accuracy is not None and len(steps) == STEPS, r.stdout
    return steps, accuracy, (tmp / "params.bin").read_bytes()


def _run_ref(plan: Path) -> tuple[list[tuple[int, int]], float, RefExecutor]:
    loaded, _ = load_plan_file(str(plan))
    ex = RefExecutor(loaded)
    x, y = _samples()
    steps = []
    for s, label in zip(x, y, strict=True):
        r = ex.train_step(s, int(label))
        steps.append((struct.unpack("<I", struct.pack("<f", r.loss))[0], r.pred))
    right = sum(ex.evaluate(s) == int(label) for s, label in zip(x, y, strict=True))
    return steps, float(np.float32(right / len(y))), ex


def _params(ex: RefExecutor) -> bytes:
    return b"".join(ex.view(i).tobytes() for i in ex.plan.trainable)


def test_int8_plan_trains_bit_for_bit_like_ref(micropython: Path, tmp_path: Path) -> None:
    plan = tmp_path / "int8.ttp"
    assert main(["compile", f"{DEMO / 'basicmotions_int8_model.py'}:make_model", "--int8",
                 "--calib", DATA, "--update", "last:2", "-o", str(plan)]) == 0
    mp_steps, mp_acc, mp_params = _run_micropython(micropython, plan, tmp_path)
    ref_steps, ref_acc, ex = _run_ref(plan)
    assert mp_steps == ref_steps
    assert mp_params == _params(ex)
    assert mp_acc == ref_acc


def test_fp32_plan_trains_like_ref(micropython: Path, demo_plan_file: Path,
                                   tmp_path: Path) -> None:
    mp_steps, mp_acc, mp_params = _run_micropython(micropython, demo_plan_file, tmp_path)
    ref_steps, ref_acc, ex = _run_ref(demo_plan_file)
    assert [p for _, p in mp_steps] == [p for _, p in ref_steps]
    mp_loss = np.array([b for b, _ in mp_steps], np.uint32).view(np.float32)
    ref_loss = np.array([b for b, _ in ref_steps], np.uint32).view(np.float32)
    np.testing.assert_allclose(mp_loss, ref_loss, rtol=1e-5, atol=1e-6)
    got = np.frombuffer(mp_params, np.float32)
    want = np.frombuffer(_params(ex), np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.max(np.abs(want))))
    assert mp_acc == ref_acc


def _run_sim(plan_path: Path) -> tuple[list[tuple[int, int]], bytes]:
    """The same samples on the simulated device (the C runtime behind the link)."""
    from tinyhost.device import connect
    plan, data = load_plan_file(str(plan_path))
    x, y = _samples()
    device = connect("sim")
    try:
        device.load_plan(plan, data)
        steps = []
        for s, label in zip(x, y, strict=True):
            r = device.train_step(s, int(label), plan.default_lr)
            steps.append((struct.unpack("<I", struct.pack("<f", r.loss))[0], r.pred))
        params = b"".join(device.read_tensor(i).tobytes() for i in plan.trainable)
    finally:
        device.close()
    return steps, params


def test_fp32_plan_trains_bit_for_bit_like_the_sim(micropython: Path, demo_plan_file: Path,
                                                   sim_binary: Path, tmp_path: Path) -> None:
    """fp32: numpy (ref) sums in another order than C, on every port; the C runtime in
    MicroPython and in the simulated device give the same bits."""
    mp_steps, _, mp_params = _run_micropython(micropython, demo_plan_file, tmp_path)
    sim_steps, sim_params = _run_sim(demo_plan_file)
    assert mp_steps == sim_steps
    assert mp_params == sim_params


def test_bad_input_raises_a_python_error(micropython: Path, demo_plan_file: Path) -> None:
    code = f"""
import tinytrain
try:
    tinytrain.Plan(b"not a plan")
except RuntimeError as e:
    print("refused:", e)
m = tinytrain.Plan(open({str(demo_plan_file)!r}, "rb").read())
for bad in ((bytes(3), 0), (bytes(m.input_size), m.classes)):
    try:
        m.train(*bad)
    except ValueError as e:
        print("refused:", e)
try:
    m.restore(b"123")
except ValueError as e:
    print("refused:", e)
print("steps", m.steps, "classes", m.classes, "lr", m.lr > 0)
"""
    r = subprocess.run([str(micropython), "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith("refused:")]) == 4, r.stdout
    assert lines[-1] == "steps 0 classes 4 lr True", r.stdout


# --- the qemu port: the same runs on an emulated Cortex-M7, driven over MicroPython's raw REPL ---

QEMU_ELF = Path(os.environ.get("TINYTRAIN_MICROPYTHON_QEMU",
                               REPO / "build" / "micropython-qemu" / "firmware.elf"))


def _raw_repl(elf: Path, programs: list[str], timeout: float = 300) -> list[str]:
    """Runs each program in turn in the raw REPL (Ctrl-A; program, Ctrl-D; the reply is
    "OK" stdout Ctrl-D stderr Ctrl-D ">") and returns their outputs; an error fails the test."""
    qemu = subprocess.Popen(["qemu-system-arm", "-semihosting", "-machine", "mps2-an500",
                             "-nographic", "-monitor", "null", "-kernel", str(elf)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert qemu.stdin is not None and qemu.stdout is not None
    try:
        os.set_blocking(qemu.stdout.fileno(), False)
        got = bytearray()

        def wait_for(marker: bytes, start: int) -> int:
            deadline = time.monotonic() + timeout
            while (at := got.find(marker, start)) < 0:
                assert time.monotonic() < deadline, f"no {marker!r}: {bytes(got)[-400:]!r}"
                assert qemu.poll() is None, f"QEMU exited: {bytes(got)[-400:]!r}"
                chunk = qemu.stdout.read()  # type: ignore[union-attr]
                if chunk:
                    got.extend(chunk)
                else:
                    time.sleep(0.01)
            return at + len(marker)

        pos = wait_for(b">>> ", 0)
        qemu.stdin.write(b"\x01")
        qemu.stdin.flush()
        pos = wait_for(b"raw REPL; CTRL-B to exit\r\n>", pos)
        outputs = []
        for program in programs:
            qemu.stdin.write(program.encode() + b"\x04")
            qemu.stdin.flush()
            pos = wait_for(b"OK", pos)
            end_out = wait_for(b"\x04", pos)
            end_err = wait_for(b"\x04", end_out)
            out, err = bytes(got[pos:end_out - 1]), bytes(got[end_out:end_err - 1])
            assert not err, f"{program[:200]}\n-> {err.decode(errors='replace')}"
            outputs.append(out.decode().replace("\r\n", "\n"))
            pos = wait_for(b">", end_err)
        return outputs
    finally:
        qemu.kill()
        qemu.wait()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _run_qemu(plan: Path) -> tuple[list[tuple[int, int]], bytes]:
    loaded, data = load_plan_file(str(plan))
    x, y = _samples()
    programs = ["import tinytrain, binascii, struct, gc\nP = bytearray()"]
    programs += [f"P.extend(binascii.a2b_base64({_b64(data[i:i + 3072])!r}))"
                 for i in range(0, len(data), 3072)]
    programs.append("m = tinytrain.Plan(P)\ndel P\ngc.collect()")
    for s, label in zip(x, y, strict=True):
        programs.append(
            f"l, p = m.train(binascii.a2b_base64({_b64(prepare_input(loaded, s).tobytes())!r}), "
            f"{int(label)})\nprint('%08x' % struct.unpack('<I', struct.pack('<f', l))[0], p)")
    # the parameters come back in pieces: one base64 string of them all may not fit the heap
    size = sum(loaded.tensors[i].nbytes for i in loaded.trainable)
    programs.append("S = m.save()\ngc.collect()")
    pieces = [f"print(binascii.b2a_base64(S[{i}:{i + 2048}]).decode().strip())"
              for i in range(0, size, 2048)]
    out = _raw_repl(QEMU_ELF, programs + pieces)
    steps = [(int(o.split()[0], 16), int(o.split()[1]))
             for o in out[-len(pieces) - 1 - STEPS:-len(pieces) - 1]]
    return steps, b"".join(base64.b64decode(o.strip()) for o in out[-len(pieces):])


@pytest.fixture(scope="module")
def micropython_qemu() -> Path:
    if not QEMU_ELF.is_file() or shutil.which("qemu-system-arm") is None:
        pytest.skip(f"no MicroPython qemu-port firmware with the tinytrain module at {QEMU_ELF} "
                    "(firmware/micropython/build.sh MICROPY_DIR qemu) or no qemu-system-arm")
    return QEMU_ELF


def test_qemu_port_trains_the_int8_plan_bit_for_bit(micropython_qemu: Path,
                                                     tmp_path: Path) -> None:
    plan = tmp_path / "int8.ttp"
    assert main(["compile", f"{DEMO / 'basicmotions_int8_model.py'}:make_model", "--int8",
                 "--calib", DATA, "--update", "last:2", "-o", str(plan)]) == 0
    steps, params = _run_qemu(plan)
    ref_steps, _, ex = _run_ref(plan)
    assert steps == ref_steps
    assert params == _params(ex)


def test_qemu_port_trains_the_fp32_plan_like_ref(micropython_qemu: Path,
                                                 demo_plan_file: Path) -> None:
    steps, params = _run_qemu(demo_plan_file)
    ref_steps, _, ex = _run_ref(demo_plan_file)
    assert [p for _, p in steps] == [p for _, p in ref_steps]
    got = np.frombuffer(params, np.float32)
    want = np.frombuffer(_params(ex), np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.max(np.abs(want))))
