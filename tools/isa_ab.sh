#!/usr/bin/env bash
# A/B timing of the compute cores: a TF_CONVGRAD_ARCH=native build (one level, -march=native: the
# old default) against the default dispatch build at the level cpuid picks (and any level forced
# with ISA_AB_LEVELS), on the layers of tools/profile_cores.sh, with the TF-free harness
# tools/cpu_cores_bench.cc. Builds both into build/isa-ab-{native,dispatch} first (CMake + ninja).
# Time only on a quiet machine: every other process on it shows up in the numbers.
#
#   bash tools/isa_ab.sh                  build, then time float32 and bfloat16, 3 rounds
#   bash tools/isa_ab.sh build            only build the two variants
#   bash tools/isa_ab.sh --python         also `python -m tf_convgrad bench --quick` per library
#
# Environment: ISA_AB_ROUNDS (3), ISA_AB_DTYPES ("float32 bfloat16"; float16 too),
# ISA_AB_LEVELS (levels of the dispatch build to time besides the automatic one, e.g.
# "avx512 avx2"), ISA_AB_JOBS (ninja -j, 2), PYTHON (.venv/bin/python), CORES_BENCH_THREADS
# (the harness's: 1 = single-threaded), ISA_AB_LAYERS (one layer, e.g. "dbf 1 8 8 16 3 1 1 SAME",
# instead of the list below) and ISA_AB_REPS (timed calls per harness run instead of ~2 s' worth):
# the last two for a quick check that the script works, not for numbers. Each harness call times ~2 s of calls and reports the
# fastest; per layer the table shows the fastest over the rounds, the two builds alternating
# within each round. dispatch/native < 1 means the dispatch build is faster.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
ROUNDS=${ISA_AB_ROUNDS:-3}
DTYPES=${ISA_AB_DTYPES:-float32 bfloat16}
LEVELS=${ISA_AB_LEVELS:-}
JOBS=${ISA_AB_JOBS:-2}
NATIVE=$ROOT/build/isa-ab-native
DISPATCH=$ROOT/build/isa-ab-dispatch
NINJA=$(dirname "$PY")/ninja
[[ -x "$NINJA" ]] || NINJA=$(command -v ninja)

python_bench=0
only_build=0
for arg in "$@"; do
  case $arg in
    --python) python_bench=1 ;;
    build) only_build=1 ;;
    *)
      echo "usage: $0 [build] [--python]" >&2
      exit 2
      ;;
  esac
done

build() {  # dir arch
  mkdir -p "$1"
  if [[ ! -f $1/build.ninja ]]; then
    cmake -S "$ROOT" -B "$1" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" -DPython_EXECUTABLE="$PY" \
      -DTF_CONVGRAD_ARCH="$2" >"$1/configure.log" 2>&1 || { cat "$1/configure.log" >&2; exit 1; }
  fi
  echo "isa_ab: building $1 (TF_CONVGRAD_ARCH=$2)" >&2
  "$NINJA" -C "$1" -j "$JOBS" cpu_cores_bench _conv_backprop_ops >"$1/build.log" 2>&1 ||
    { tail -n 30 "$1/build.log" >&2; exit 1; }
}
build "$NATIVE" native
build "$DISPATCH" dispatch
if [[ $only_build == 1 ]]; then exit 0; fi
REPS=${ISA_AB_REPS:-}

# The layers both harness scripts time (one list: tools/profile_layers.txt).
mapfile -t LAYERS < <(grep -v -e "^#" -e "^$" tools/profile_layers.txt)
if [[ -n ${ISA_AB_LAYERS:-} ]]; then LAYERS=("$ISA_AB_LAYERS"); fi

# Variants: name, harness, TF_CONVGRAD_ISA.
VARIANTS=("native|$NATIVE/cpu_cores_bench|")
auto_level=$("$DISPATCH/cpu_cores_bench" 2>&1 >/dev/null | sed -n 's/^cpu_cores_bench: instruction set //p' || true)
VARIANTS+=("dispatch:${auto_level:-auto}|$DISPATCH/cpu_cores_bench|")
for level in $LEVELS; do VARIANTS+=("dispatch:$level|$DISPATCH/cpu_cores_bench|$level"); done

min_ms() {  # harness isa layer... -> the harness's "min" in ms
  local harness=$1 isa=$2
  shift 2
  # shellcheck disable=SC2086
  TF_CONVGRAD_ISA=$isa "$harness" "$@" $REPS 2>/dev/null | sed -n 's/.* min \([0-9.]*\) ms.*/\1/p'
}

echo "isa_ab: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds; dtypes $DTYPES"
echo "isa_ab: native = $NATIVE (-march=native), dispatch = $DISPATCH"
declare -A best
for dtype in $DTYPES; do
  for ((round = 0; round < ROUNDS; ++round)); do
    for layer in "${LAYERS[@]}"; do
      # Alternate the order of the variants from round to round.
      order=("${VARIANTS[@]}")
      if ((round % 2 == 1)); then
        order=()
        for ((i = ${#VARIANTS[@]} - 1; i >= 0; --i)); do order+=("${VARIANTS[$i]}"); done
      fi
      for variant in "${order[@]}"; do
        IFS='|' read -r name harness isa <<<"$variant"
        # shellcheck disable=SC2086
        ms=$(CORES_BENCH_DTYPE=$dtype min_ms "$harness" "$isa" $layer)
        if [[ -z $ms ]]; then
          echo "isa_ab: $harness failed on $layer ($dtype, TF_CONVGRAD_ISA=$isa)" >&2
          exit 1
        fi
        key="$dtype|$layer|$name"
        if [[ -z ${best[$key]:-} ]] || awk "BEGIN{exit !($ms < ${best[$key]})}"; then best[$key]=$ms; fi
      done
    done
    echo "isa_ab: $dtype round $((round + 1))/$ROUNDS done" >&2
  done
done

header=$(printf '%-8s %-34s' dtype layer)
for variant in "${VARIANTS[@]}"; do header+=$(printf ' %19s' "${variant%%|*}"); done
for variant in "${VARIANTS[@]:1}"; do
  name=${variant%%|*}
  header+=$(printf ' %18s' "${name#dispatch:}/native")
done
echo
echo "fastest call over $ROUNDS rounds, ms; /native = that variant's time / the native build's"
echo "$header"
declare -A logsum count
for dtype in $DTYPES; do
  for layer in "${LAYERS[@]}"; do
    line=$(printf '%-8s %-34s' "$dtype" "$layer")
    base=${best["$dtype|$layer|native"]}
    for variant in "${VARIANTS[@]}"; do line+=$(printf ' %19s' "${best["$dtype|$layer|${variant%%|*}"]}"); done
    for variant in "${VARIANTS[@]:1}"; do
      name=${variant%%|*}
      ratio=$(awk "BEGIN{printf \"%.3f\", ${best["$dtype|$layer|$name"]} / $base}")
      line+=$(printf ' %18s' "$ratio")
      logsum[$name]=$(awk "BEGIN{print ${logsum[$name]:-0} + log($ratio)}")
      count[$name]=$((${count[$name]:-0} + 1))
    done
    echo "$line"
  done
done
for variant in "${VARIANTS[@]:1}"; do
  name=${variant%%|*}
  echo "geomean $name / native: $(awk "BEGIN{printf \"%.3f\", exp(${logsum[$name]} / ${count[$name]})}")" \
    "over ${count[$name]} layer x dtype pairs"
done

if [[ $python_bench == 1 ]]; then
  echo
  for variant in native dispatch; do
    dir=$NATIVE
    [[ $variant == dispatch ]] && dir=$DISPATCH
    echo "isa_ab: python -m tf_convgrad bench --quick with $dir/_conv_backprop_ops.so" >&2
    TF_CONVGRAD_LIBRARY=$dir/_conv_backprop_ops.so "$PY" -m tf_convgrad bench --quick --json \
      >"$ROOT/build/isa-ab-$variant.json"
  done
  "$PY" - "$ROOT/build/isa-ab-native.json" "$ROOT/build/isa-ab-dispatch.json" <<'PY'
import json
import math
import sys

native, dispatch = (json.load(open(p)) for p in sys.argv[1:3])
print(f"python bench --quick, ours_ms: native vs dispatch ({dispatch['machine'].get('isa', '?')})")
logs = []
for a, b in zip(native["rows"], dispatch["rows"], strict=True):
    ratio = b["ours_ms"] / a["ours_ms"]
    logs.append(math.log(ratio))
    name = f"{a['op']} {a['name']} {a['dtype']}"
    print(f"{name:60s} {a['ours_ms']:9.3f} {b['ours_ms']:9.3f} {ratio:7.3f}")
print(f"geomean dispatch / native: {math.exp(sum(logs) / len(logs)):.3f} over {len(logs)} cases")
PY
fi
