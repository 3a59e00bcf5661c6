#!/usr/bin/env bash
# Makes sure the system packages a build step needs are present. As root it installs what is
# missing with apt-get; otherwise it prints exactly what to install and fails.
#   tools/system-deps.sh base   the host build and the Python environment (make demo)
#   tools/system-deps.sh arm    the Cortex-M4F firmware and QEMU to run it (make qemu, make test)
#   tools/system-deps.sh lint   clang-format, for the runtime's C style (make lint, make test)
#   tools/system-deps.sh fuzz   clang with libFuzzer, for the fuzz targets (make fuzz-smoke, test)
set -euo pipefail

missing=()
case "${1:-base}" in
  base)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    command -v make >/dev/null 2>&1 || missing+=(make)
    python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
    # Python's headers: pymonocypher (signed plans, the pip `sign` extra) builds from its sdist.
    python3 -c "import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(
      sysconfig.get_paths()['include'], 'Python.h')))" >/dev/null 2>&1 || missing+=(python3-dev)
    ;;
  arm)
    command -v arm-none-eabi-gcc >/dev/null 2>&1 || missing+=(gcc-arm-none-eabi)
    { command -v arm-none-eabi-gcc >/dev/null 2>&1 &&
      [ -f "$(arm-none-eabi-gcc -print-file-name=picolibc.specs)" ]; } || missing+=(picolibc-arm-none-eabi)
    command -v qemu-system-arm >/dev/null 2>&1 || missing+=(qemu-system-arm)
    ;;
  lint)
    command -v clang-format >/dev/null 2>&1 || missing+=(clang-format)
    ;;
  fuzz)
    command -v clang-14 >/dev/null 2>&1 || missing+=(clang-14)
    ;;
  *)
    echo "usage: $0 base|arm|lint|fuzz" >&2
    exit 2
    ;;
esac

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
