#!/usr/bin/env bash
# The test command (README). Sets up what it needs (idempotently), then:
#
#   bash scripts/test.sh                one pip build, format/lint checks, the default pytest suite
#   bash scripts/test.sh -m slow        the same with pytest's arguments (here: the slow tier only)
#   bash scripts/test.sh --all          what CI runs (.ci/run): the above, plus the Bazel build and the
#                                       suite against it (CPU, and CUDA where nvcc exists), and the GPU
#                                       build variant with its suite and the CUDA harness in emulation
#
# Arguments other than --all go to the pip-build pytest run. Every step runs even when an earlier
# one failed; the last line says which failed, and the exit status is non-zero if any did.
set -uo pipefail
cd "$(dirname "$0")/.."

all=0
pytest_args=()
for arg in "$@"; do
  if [[ $arg == --all ]]; then all=1; else pytest_args+=("$arg"); fi
done

failed=()
started=$(date +%s)
run() {  # run NAME COMMAND...: one step, timed; its failure is recorded, not fatal
  local name=$1 t0=$SECONDS
  shift
  echo "=== test.sh: $name"
  if "$@"; then
    echo "=== test.sh: $name: ok ($((SECONDS - t0)) s)"
  else
    echo "=== test.sh: $name: FAILED ($((SECONDS - t0)) s)"
    failed+=("$name")
  fi
}

if ! bash scripts/setup.sh --no-crosscheck; then
  echo "RESULT: FAILED (setup: the library did not build)"
  exit 1
fi
run "format and lint" bash scripts/check_format.sh
run "pytest (pip build)" .venv/bin/python -m pytest -q "${pytest_args[@]+"${pytest_args[@]}"}"

if [[ $all == 1 ]]; then
  # The wheel as users get it (all instruction-set levels), run on an emulated AVX2-only CPU
  # (Haswell) and an AVX-only one (SandyBridge): tests/builds/test_qemu.py, against the wheel's library.
  if ! command -v qemu-x86_64 >/dev/null; then
    run "install qemu-user" bash -c "apt-get install -y -q qemu-user >/dev/null 2>&1 || \
      (apt-get update -q >/dev/null && apt-get install -y -q qemu-user >/dev/null)"
  fi
  wheel_dir=$(mktemp -d)
  run "wheel: pip wheel" .venv/bin/pip wheel -q --disable-pip-version-check --no-deps \
    --no-build-isolation -w "$wheel_dir" .
  run "wheel: qemu (Haswell, SandyBridge)" bash -c "cd '$wheel_dir' && unzip -q -o ./*.whl && \
    TF_CONVGRAD_LIBRARY='$wheel_dir/tf_convgrad/_conv_backprop_ops.so' \
    '$PWD/.venv/bin/python' -m pytest -q -rs '$PWD/tests/builds/test_qemu.py' -p no:cacheprovider"
  rm -rf "$wheel_dir"
  run "bazel build and test" bash scripts/bazel_test.sh --cuda-if-available
  # The GPU variant (CMake + nvcc 13): it must build, load and register on this CPU-only machine
  # and pass the CPU suite; the CUDA kernels themselves run in the harness's CPU emulation.
  if [[ -x ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc ]]; then
    run "GPU build" bash scripts/build_gpu.sh
    gpu_lib="$PWD/build-gpu/_conv_backprop_ops.so"
    run "GPU build: registration" env TF_CONVGRAD_GPU_LIBRARY="$gpu_lib" \
      .venv/bin/python -m pytest -q tests/builds/test_gpu_build.py
    run "GPU build: pytest" env TF_CONVGRAD_LIBRARY="$gpu_lib" .venv/bin/python -m pytest -q -x
    run "GPU harness: dry run" .venv/bin/python tests/gpu/run_harness.py --dry-run
    run "GPU harness: emulation" .venv/bin/python tests/gpu/run_harness.py --emulate --quick
  else
    echo "test.sh: no nvcc: skipping the GPU build checks"
  fi
fi

elapsed=$(($(date +%s) - started))
if ((${#failed[@]})); then
  echo "RESULT: FAILED (${#failed[@]} of the steps: $(IFS=,; echo "${failed[*]}")) in ${elapsed} s"
  exit 1
fi
echo "RESULT: ok (all steps passed$([[ $all == 1 ]] && echo ", --all")) in ${elapsed} s"
