#!/usr/bin/env bash
# A fuzzing campaign over the device's decoders (tests/fuzz): the plan loader/checker/executor
# and the link's message handling, each for SECONDS (default 600), on fresh seeds plus whatever
# corpus earlier campaigns left in build-fuzz/. Prints the executions and any finding (libFuzzer
# writes a crashing input as crash-* in the current directory and stops).
#   bench/fuzz.sh [SECONDS] [JOBS]     (make fuzz-build first; JOBS parallel workers, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
jobs=${2:-1}
fuzz=build-fuzz
[ -x $fuzz/fuzz_plan ] || { echo "build the targets first: make fuzz-build" >&2; exit 2; }
mkdir -p $fuzz/corpus-plan $fuzz/corpus-device $fuzz/findings
run() {
  local name=$1; shift
  echo "== $name: $seconds s, $jobs job(s)"
  "$@" -max_total_time="$seconds" -jobs="$jobs" -workers="$jobs" -print_final_stats=1 \
    -artifact_prefix=$fuzz/findings/ 2>&1 | tee $fuzz/$name.log |
    grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY" || true
}
run fuzz_plan $fuzz/fuzz_plan -dict=tests/fuzz/plan.dict $fuzz/corpus-plan $fuzz/seeds/plan
TT_FUZZ_PLAN=$fuzz/seeds/small.ttp run fuzz_device $fuzz/fuzz_device -dict=tests/fuzz/device.dict \
  $fuzz/corpus-device $fuzz/seeds/device
found=$(ls $fuzz/findings | wc -l)
echo "findings: $found (in $fuzz/findings)"
[ "$found" -eq 0 ]
