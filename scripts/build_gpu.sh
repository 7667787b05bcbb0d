#!/usr/bin/env bash
# Builds the GPU variant of the op library into build-gpu/ (CMake + nvcc +
# ninja -j2) and prints the path of the .so. Needs the project's .venv
# (scripts/setup.sh) and nvcc >= 12.8: /usr/local/cuda/bin/nvcc, $CUDACXX, nvcc
# on PATH, or, failing those, the CUDA 13 compiler wheels from PyPI installed
# into build-gpu/cuda-venv (nvidia-cuda-nvcc, -runtime, -cccl; ~150 MB).
#   bash scripts/build_gpu.sh            # configure (once) + build
#   TF_CONVGRAD_GPU_JOBS=4 TF_CONVGRAD_GPU_BUILD_DIR=/tmp/b bash scripts/build_gpu.sh
# The library registers CPU and GPU kernels; load it with
#   TF_CONVGRAD_LIBRARY=build-gpu/_conv_backprop_ops.so python ...
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${TF_CONVGRAD_GPU_BUILD_DIR:-build-gpu}
JOBS=${TF_CONVGRAD_GPU_JOBS:-2}
PY=.venv/bin/python
[[ -x "$PY" ]] || { echo "build_gpu: run scripts/setup.sh first (.venv missing)" >&2; exit 1; }

nvcc=${CUDACXX:-}
if [[ -z "$nvcc" ]]; then
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then
    nvcc=/usr/local/cuda/bin/nvcc
  elif command -v nvcc >/dev/null; then
    nvcc=$(command -v nvcc)
  else
    echo "build_gpu: no nvcc found; installing the CUDA 13 compiler wheels into $BUILD/cuda-venv"
    mkdir -p "$BUILD"
    [[ -x "$BUILD/cuda-venv/bin/python" ]] || "$PY" -m venv "$BUILD/cuda-venv"
    "$BUILD/cuda-venv/bin/pip" install --disable-pip-version-check -q \
      "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*"
    nvcc=$(find "$BUILD/cuda-venv" -path '*/bin/nvcc' -type f | head -n 1)
    [[ -n "$nvcc" ]] || { echo "build_gpu: nvcc not found in the wheels" >&2; exit 1; }
  fi
fi
cuda_root=$(cd "$(dirname "$nvcc")/.." && pwd)
echo "build_gpu: nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') at $nvcc"

start=$SECONDS
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$PWD/$PY" -DCMAKE_MAKE_PROGRAM="$PWD/.venv/bin/ninja" \
    -DTF_CONVGRAD_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" -DCUDAToolkit_ROOT="$cuda_root"
fi
.venv/bin/ninja -C "$BUILD" -j "$JOBS"
lib="$(cd "$BUILD" && pwd)/_conv_backprop_ops.so"
echo "build_gpu: built in $((SECONDS - start)) s: $lib ($(du -h "$lib" | cut -f1))"
