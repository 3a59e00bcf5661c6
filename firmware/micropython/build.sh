#!/usr/bin/env bash
# Builds MicroPython with `import tinytrain` (this directory's user C module) from a MicroPython
# tree outside the repository (nothing of it is committed; README.md says how to get one).
#
#   firmware/micropython/build.sh MICROPY_DIR [unix|qemu] [OUT_DIR]
#
#   unix  (default) the unix port: OUT_DIR/micropython (default OUT_DIR: build/micropython-unix)
#   qemu  the bare-metal qemu port for the MPS2-AN500 board (Cortex-M7, FPU) in QEMU:
#         OUT_DIR/firmware.elf (default OUT_DIR: build/micropython-qemu)
#
# Neither needs MicroPython's git submodules: the features that would (btree, ssl, ffi, frozen
# micropython-lib) are switched off. Needs gcc (unix) or gcc-arm-none-eabi (qemu), the venv's
# zcbor (make setup) and Monocypher (tools/fetch-monocypher.sh, into OUT_DIR/third_party).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mp="${1:?usage: build.sh MICROPY_DIR [unix|qemu] [OUT_DIR]}"
port="${2:-unix}"
[[ -f "$mp/py/mpconfig.h" ]] || { echo "build.sh: $mp is not a MicroPython tree (no py/mpconfig.h)" >&2; exit 2; }
mp="$(cd "$mp" && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
zcbor="$("$python" -c "import importlib.util as u; print(u.find_spec('zcbor').submodule_search_locations[0])")" \
  || { echo "build.sh: no zcbor for $python (run make setup)" >&2; exit 2; }
jobs="${JOBS:-2}"
fetch_monocypher() { # the link's MACs (docs/security.md); fetched from PyPI, never committed
  bash "$repo/tools/fetch-monocypher.sh" "$1/third_party/monocypher" "$python"
  echo "$1/third_party/monocypher"
}
make -C "$mp/mpy-cross" -j"$jobs" >/dev/null
case "$port" in
  unix)
    out="$(mkdir -p "${3:-$repo/build/micropython-unix}" && cd "${3:-$repo/build/micropython-unix}" && pwd)"
    make -C "$mp/ports/unix" -j"$jobs" BUILD="$out" PROG=micropython \
      USER_C_MODULES="$here" ZCBOR_DIR="$zcbor" MONOCYPHER_DIR="$(fetch_monocypher "$out")" \
      MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_PY_FFI=0 FROZEN_MANIFEST=
    echo "built $out/micropython"
    ;;
  qemu)
    out="$(mkdir -p "${3:-$repo/build/micropython-qemu}" && cd "${3:-$repo/build/micropython-qemu}" && pwd)"
    make -C "$mp/ports/qemu" -j"$jobs" BOARD=MPS2_AN500 BUILD="$out" \
      USER_C_MODULES="$here" ZCBOR_DIR="$zcbor" MONOCYPHER_DIR="$(fetch_monocypher "$out")" \
      FROZEN_MANIFEST=
    echo "built $out/firmware.elf"
    ;;
  *) echo "build.sh: unknown port '$port' (unix or qemu)" >&2; exit 2 ;;
esac
