#!/usr/bin/env bash
# Profiles the TF-free CPU cores on the layers where docs/PERF.md has them
# slower than TensorFlow: builds tools/cpu_cores_bench.cc with the cores' flags
# (CMakeLists.txt: -O3 -march=native -mprefer-vector-width=512
# -ffp-contract=fast) and, per layer, prints its timing and the top symbols of
# a `perf record` of it. Needs perf (Debian: linux-perf) and the venv from
# scripts/setup.sh (for TensorFlow's Eigen headers).
#   bash tools/profile_cores.sh            all layers below
#   bash tools/profile_cores.sh dbf 32 7 7 960 3 1 1 SAME    one layer
#   bash tools/profile_cores.sh build      only build the harness (for tools/limits.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if [ "${1:-}" != build ]; then
  command -v perf >/dev/null || { echo "profile_cores: needs perf (apt-get install linux-perf)" >&2; exit 2; }
fi
INC=$(TF_CPP_MIN_LOG_LEVEL=3 "$PY" -c 'import tensorflow as tf; print(tf.sysconfig.get_include())' 2>/dev/null)
OUT=${PROFILE_DIR:-build-profile}
mkdir -p "$OUT"
echo "profile_cores: building $OUT/cpu_cores_bench" >&2
# One level, -march=native, as a TF_CONVGRAD_ARCH=native build (tools/isa_ab.sh times the
# dispatch build's levels against it).
g++ -O3 -march=native -mno-avx512fp16 -mprefer-vector-width=512 -ffp-contract=fast -std=c++17 -DNDEBUG \
  -DEIGEN_MAX_ALIGN_BYTES=64 -DTF_CONVGRAD_ISA_NS=single '-DTF_CONVGRAD_ISA_SINGLE="native"' \
  -I. -I"$INC" -o "$OUT/cpu_cores_bench" tools/cpu_cores_bench.cc tf_ops/cc/kernels/cpu/*.cc -lpthread
if [ "${1:-}" = build ]; then exit 0; fi

# The layers both harness scripts time (one list: tools/profile_layers.txt).
mapfile -t LAYERS < <(grep -v -e "^#" -e "^$" tools/profile_layers.txt)
if [ $# -gt 0 ]; then LAYERS=("$*"); fi
for layer in "${LAYERS[@]}"; do
  # shellcheck disable=SC2086
  "$OUT/cpu_cores_bench" $layer
  # shellcheck disable=SC2086
  perf record -q -o "$OUT/perf.data" "$OUT/cpu_cores_bench" $layer >/dev/null 2>&1
  perf report -i "$OUT/perf.data" --stdio --percent-limit 4 2>/dev/null |
    grep -E '^ +[0-9]' | grep -v 'Buffer::Buffer' | sed -E 's/ +cpu_cores_bench +[^ ]+ +\[.\] / /' | cut -c1-150 | sed 's/^/    /'
done
