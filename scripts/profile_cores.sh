#!/usr/bin/env bash
# Profiles the TF-free CPU cores on the layers where docs/PERF.md has them
# slower than TensorFlow: builds tools/cpu_cores_bench.cc with the cores' flags
# (CMakeLists.txt: -O3 -march=native -mprefer-vector-width=512
# -ffp-contract=fast) and, per layer, prints its timing and the top symbols of
# a `perf record` of it. Needs perf (Debian: linux-perf) and the venv from
# scripts/setup.sh (for TensorFlow's Eigen headers).
#   bash scripts/profile_cores.sh            all layers below
#   bash scripts/profile_cores.sh dbf 32 7 7 960 3 1 1 SAME    one layer
#   bash scripts/profile_cores.sh build      only build the harness (for tools/limits.py)
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

# The float32 layers below 1.0 in at least one of docs/PERF.md's runs (op N H W C K stride M|Cout padding).
LAYERS=(
  "dbf 32 7 7 960 3 1 1 SAME"
  "dbf 16 113 113 96 3 2 1 VALID"
  "dbf 16 112 112 32 3 1 1 SAME"
  "dbf 1 112 112 32 3 1 1 SAME"
  "dbi 1 112 112 32 3 1 1 SAME"
  "dbi 32 14 14 384 3 1 1 SAME"
  "cbf 8 230 230 3 7 2 64 VALID"
  "cbf 16 56 56 64 3 1 64 SAME"
  "cbf 16 56 56 256 1 1 64 SAME"
  "cbf 32 28 28 128 3 1 128 SAME"
  "cbf 32 14 14 256 3 1 256 SAME"
  "cbf 32 7 7 512 3 1 512 SAME"
)
if [ $# -gt 0 ]; then LAYERS=("$*"); fi
for layer in "${LAYERS[@]}"; do
  # shellcheck disable=SC2086
  "$OUT/cpu_cores_bench" $layer
  # shellcheck disable=SC2086
  perf record -q -o "$OUT/perf.data" "$OUT/cpu_cores_bench" $layer >/dev/null 2>&1
  perf report -i "$OUT/perf.data" --stdio --percent-limit 4 2>/dev/null |
    grep -E '^ +[0-9]' | grep -v 'Buffer::Buffer' | sed -E 's/ +cpu_cores_bench +[^ ]+ +\[.\] / /' | cut -c1-150 | sed 's/^/    /'
done
