#!/usr/bin/env bash
# The test command (README, .ci/run): sets up what it needs (idempotently),
# checks formatting and lint, builds and tests through Bazel (scripts/bazel_test.sh,
# installing Bazel from Debian's packages if needed), runs the default pytest suite
# against the pip-built library, then builds and checks the GPU variant.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-crosscheck
bash scripts/check_format.sh
bash scripts/bazel_test.sh --cuda-if-available
.venv/bin/python -m pytest -q "$@"

# The GPU variant (CMake + nvcc 13): it must build, load and register on this CPU-only machine
# and pass the CPU suite; the CUDA kernels themselves run in the harness's CPU emulation.
if [[ -x ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc ]]; then
  bash scripts/build_gpu.sh
  gpu_lib="$PWD/build-gpu/_conv_backprop_ops.so"
  TF_CONVGRAD_GPU_LIBRARY="$gpu_lib" .venv/bin/python -m pytest -q tests/test_gpu_build.py
  TF_CONVGRAD_LIBRARY="$gpu_lib" .venv/bin/python -m pytest -q -x
  .venv/bin/python tests/gpu/run_harness.py --dry-run
  .venv/bin/python tests/gpu/run_harness.py --emulate --quick
else
  echo "test.sh: no nvcc: skipping the GPU build checks"
fi
