"""Instructions per MAC of the int8 conv kernels (tt_conv2d_s8, tt_depthwise_conv2d_s8) on
MCUNet-like layers: Cortex-M4F in QEMU (mps2-an386, -icount shift=0), the portable C inner loops
against the DSP (SXTB16/SMLAD) ones, and optionally the portable code on the host under callgrind.

    .venv/bin/python bench/kernels.py [--callgrind] [--build-dir build/arm] [--cmsis-nn DIR]

Builds bench/kernels_s8.c for the AN386 twice (firmware/ports/baremetal/kernel_tests.cmake, in the
ARM build tree the host build also uses for its QEMU tests), runs both, checks that they computed
the same outputs, and prints a markdown table. Counts are whole kernel calls (im2col or row
conversion, the MACs, requantization, loops), deterministic, exact to +-40 instructions (one
SysTick tick). Instructions are not cycles: on a real Cortex-M4 SMLAD and loads take 1-2 cycles.

--cmsis-nn DIR adds CMSIS-NN's kernels on the same shapes, built from a CMSIS-NN tree outside
this repository into the same QEMU harness (bench/cmsis_nn_s8.c, in BUILD_DIR-cmsis-nn), and
prints our DSP build's instructions over theirs. Getting a tree: `git clone
https://github.com/ARM-software/CMSIS-NN`, or the copy a Zephyr workspace has at
modules/lib/cmsis-nn (`west update`). Nothing of it is committed here.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PORT = REPO / "firmware" / "ports" / "baremetal"
TARGETS = {"portable": "bench_kernels_s8_an386_portable", "dsp": "bench_kernels_s8_an386"}
LINE = re.compile(r"^layer (\S+) (\d+) (\d+) ([0-9a-f]{8})$")
CMSIS_LINE = re.compile(r"^cmsis (\S+) (\S+) (\d+) (\d+)$")
CMSIS_TARGET = "bench_cmsis_nn_s8_an386"


def build_arm(build_dir: Path, targets: list[str], cmsis_nn: Path | None = None) -> None:
    if not (build_dir / "CMakeCache.txt").exists() or cmsis_nn is not None:
        extra = [] if cmsis_nn is None else [f"-DCMSIS_NN_DIR={cmsis_nn.resolve()}"]
        subprocess.run(["cmake", "-S", str(PORT), "-B", str(build_dir),
                        f"-DCMAKE_TOOLCHAIN_FILE={REPO / 'cmake' / 'arm-none-eabi.cmake'}",
                        f"-DPython3_EXECUTABLE={sys.executable}", *extra],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir), "-j2", "--target", *targets],
                   check=True, stdout=subprocess.DEVNULL)


def run_cmsis_nn(elf: Path) -> dict[str, list[tuple[str, int, int]]]:
    """{layer: [(function, macs, instructions), ...]} from one run of the CMSIS-NN bench ELF."""
    out = subprocess.run(qemu_cmd(elf), check=True, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    if "cost unit instructions" not in text:
        raise RuntimeError(f"{elf.name}: the cost counter is not counting instructions:\n{text}")
    rows: dict[str, list[tuple[str, int, int]]] = {}
    for line in text.splitlines():
        m = CMSIS_LINE.match(line.strip())
        if m:
            rows.setdefault(m.group(1), []).append((m.group(2), int(m.group(3)),
                                                    int(m.group(4))))
        elif " refused " in line:
            raise RuntimeError(f"{elf.name}: {line.strip()}")
    return rows


def qemu_cmd(elf: Path) -> list[str]:
    return ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-display", "none",
            "-monitor", "none", "-serial", "null", "-icount", "shift=0",
            "-semihosting-config", "enable=on,target=native,arg=bench", "-kernel", str(elf)]


def run_qemu(elf: Path) -> dict[str, tuple[int, int, str]]:
    """{layer: (macs, instructions, checksum)} from one run of a bench ELF."""
    out = subprocess.run(qemu_cmd(elf), check=True, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    if "cost unit instructions" not in text:
        raise RuntimeError(f"{elf.name}: the cost counter is not counting instructions:\n{text}")
    rows = {}
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)), m.group(4))
    if not rows:
        raise RuntimeError(f"{elf.name} printed no results:\n{text}")
    return rows


def host_callgrind(layers: list[str]) -> dict[str, int]:
    """Instructions (callgrind Ir) of each layer's kernel call, portable code, host -O2."""
    ops = REPO / "firmware" / "runtime" / "ops"
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "bench_kernels_s8"
        cc = shutil.which("cc") or "gcc"
        subprocess.run([cc, "-O2", "-std=c11", f"-I{REPO / 'firmware' / 'runtime' / 'include'}",
                        f"-I{ops}", str(REPO / "bench" / "kernels_s8.c"),
                        str(ops / "conv2d_s8.c"), str(ops / "depthwise_conv2d_s8.c"),
                        str(ops / "variant_s8.c"), "-o", str(exe)], check=True)
        counts = {}
        for name in layers:
            fn = "tt_depthwise_conv2d_s8" if name.startswith("depthwise") else "tt_conv2d_s8"
            out_file = Path(tmp) / f"cg.{name}"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                            f"--toggle-collect={fn}", str(exe), name],
                           check=True, capture_output=True)
            summary = re.search(r"^summary:\s+(\d+)", out_file.read_text(), re.M)
            if summary is None:
                raise RuntimeError(f"no callgrind summary for {name}")
            counts[name] = int(summary.group(1))
        return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", type=Path, default=REPO / "build" / "arm")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count the portable kernels on the host with callgrind")
    ap.add_argument("--cmsis-nn", type=Path, metavar="DIR",
                    help="a CMSIS-NN tree (Include/, Source/): its kernels on the same shapes, "
                         "side by side")
    args = ap.parse_args()
    if args.cmsis_nn is not None and not (args.cmsis_nn / "Include" / "arm_nnfunctions.h").exists():
        print(f"--cmsis-nn {args.cmsis_nn}: no Include/arm_nnfunctions.h there (a CMSIS-NN "
              "checkout: git clone https://github.com/ARM-software/CMSIS-NN)", file=sys.stderr)
        return 2
    tools = ("qemu-system-arm", "arm-none-eabi-gcc") + (("valgrind",) if args.callgrind else ())
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2

    build_arm(args.build_dir, list(TARGETS.values()))
    res = {v: run_qemu(args.build_dir / f"{t}.elf") for v, t in TARGETS.items()}
    if res["portable"].keys() != res["dsp"].keys():
        raise RuntimeError("the two builds ran different layers")
    for name, (_, _, ck) in res["dsp"].items():
        if res["portable"][name][2] != ck:
            raise RuntimeError(f"{name}: the DSP and portable kernels computed different outputs")
    host = host_callgrind(list(res["dsp"])) if args.callgrind else {}

    head = "| layer | MACs | portable instr/MAC | DSP instr/MAC | portable / DSP |"
    rule = "|---|---:|---:|---:|---:|"
    if host:
        head += " x86-64 portable instr/MAC (callgrind) |"
        rule += "---:|"
    print("Cortex-M4F (QEMU mps2-an386, -icount shift=0): instructions per MAC of one kernel call,")
    print("including im2col / row conversion and requantization. Outputs identical in both "
          "builds.\n")
    print(head)
    print(rule)
    for name, (macs, dsp, _) in res["dsp"].items():
        port = res["portable"][name][1]
        row = f"| {name} | {macs} | {port / macs:.2f} | {dsp / macs:.2f} | {port / dsp:.2f}x |"
        if host:
            row += f" {host[name] / macs:.2f} |"
        print(row)
    if args.cmsis_nn is not None:
        cmsis_dir = args.build_dir.parent / f"{args.build_dir.name}-cmsis-nn"
        build_arm(cmsis_dir, [CMSIS_TARGET], args.cmsis_nn)
        theirs = run_cmsis_nn(cmsis_dir / f"{CMSIS_TARGET}.elf")
        print("\nCMSIS-NN on the same shapes (NHWC, OHWI weights; its DSP paths, built with the "
              f"firmware's flags from {args.cmsis_nn}): instructions per MAC, and ours (DSP) "
              "over theirs.\n")
        print("| layer | CMSIS-NN function | their instr/MAC | our DSP instr/MAC | ours / theirs |")
        print("|---|---|---:|---:|---:|")
        for name, (macs, dsp, _) in res["dsp"].items():
            for fn, their_macs, cost in theirs.get(name, []):
                if their_macs != macs:
                    raise RuntimeError(f"{name}: {their_macs} MACs in CMSIS-NN, {macs} in ours")
                print(f"| {name} | `{fn}` | {cost / macs:.2f} | {dsp / macs:.2f} | "
                      f"{dsp / cost:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
