#!/usr/bin/env bash
# The GPU hardware check: one command for one device lease (docs/GPU.md, "Hardware check").
#
#   bash scripts/gpu_check.sh               on the GPU machine (nvcc, numpy, torch; no TensorFlow)
#   bash scripts/gpu_check.sh --emulate     the same plan's grid on the CPU emulation (g++)
#   bash scripts/gpu_check.sh --dry-run     the plan and its estimated seconds only
#
# Runs `tests/gpu/run_harness.py --hardware-check`: the quick correctness grid, the >2^31-element
# cases and the benchmark table, within the harness's own budget (harness/plan.py BUDGET_S, from
# its start); `timeout` ends it at HARD_LIMIT_S whatever happens. The report
# (gpu_check_<date>_<device>.md and .json, rewritten after every phase and benchmark row) and the
# log gpu_check.log go to $OUT (default build/gpu-check); the report names $GPU_CHECK_COMMIT as
# its commit where set (the device tool's copy of the tree has no git). Other arguments go to
# run_harness.py.
# The exit status is run_harness.py's (non-zero on a wrong result), or 124 after the timeout.
set -uo pipefail
cd "$(dirname "$0")/.."

HARD_LIMIT_S=540
out=${OUT:-build/gpu-check}
python=${PYTHON:-python3}
mkdir -p "$out"
PYTHONUNBUFFERED=1 timeout --kill-after=10 "$HARD_LIMIT_S" \
  "$python" tests/gpu/run_harness.py --hardware-check --out "$out" "$@" 2>&1 |
  tee "$out/gpu_check.log"
status=${PIPESTATUS[0]}
if ((status == 124 || status == 137)); then
  echo "gpu_check.sh: stopped after ${HARD_LIMIT_S} s; the report holds what was measured" |
    tee -a "$out/gpu_check.log"
fi
exit "$status"
