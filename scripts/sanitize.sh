#!/usr/bin/env bash
# Builds the op library with AddressSanitizer + UndefinedBehaviorSanitizer and
# runs the pytest suite against it; fails on any sanitizer report.
#
#   bash scripts/sanitize.sh                 # build + default suite (-m "not slow")
#   bash scripts/sanitize.sh tests/robustness/test_hostile.py -x   # extra args go to pytest
#   SANITIZE_BUILD_ONLY=1 bash scripts/sanitize.sh      # just build
#   SANITIZE_LIBRARY=/path/to/sanitized.so bash scripts/sanitize.sh  # skip the build
#
# How it works (docs/SANITIZERS.md has the details and the measured result):
# * The library is configured into its own build dir (build/sanitize, or
#   $SANITIZE_BUILD_DIR) with -fsanitize=address,undefined -fno-omit-frame-pointer;
#   the -march flags of the compute cores are unchanged.
# * Python and TensorFlow are not instrumented, so gcc's ASan runtime is
#   LD_PRELOADed (it must come first in the process), and the tests load the
#   sanitized library through TF_CONVGRAD_LIBRARY. Every subprocess the tests
#   start (crash-isolated workers, the oneDNN oracle) inherits both.
# * detect_leaks=0: TensorFlow itself leaks at exit. UBSan stops at the first
#   report (halt_on_error=1). ASan reports go to files under the log dir, one per
#   process, so reports from subprocesses are not lost; UBSan's go to stderr (see
#   below). Any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
BUILD=${SANITIZE_BUILD_DIR:-$ROOT/build/sanitize}
LOGS=${SANITIZE_LOG_DIR:-$BUILD/reports}
CXX=${CXX:-g++}
# gcc 12 cannot constant-evaluate absl's `fn == nullptr` (TF headers) under the null,
# nonnull-attribute and returns-nonnull-attribute checks ("is not a constant
# expression"), so those three are left out; a null dereference is still an ASan SEGV.
FLAGS="-fsanitize=address,undefined -fno-sanitize=null,nonnull-attribute,returns-nonnull-attribute -fno-omit-frame-pointer"

NINJA=$(dirname "$PY")/ninja
[[ -x "$NINJA" ]] || NINJA=$(command -v ninja)
start=$(date +%s)
if [[ -n "${SANITIZE_LIBRARY:-}" ]]; then
  LIB=$SANITIZE_LIBRARY  # an already built sanitized library: skip the build
  echo "sanitize: using $LIB"
else
  echo "sanitize: configuring $BUILD ($FLAGS)"
  mkdir -p "$BUILD"
  if ! cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" \
    -DPython_EXECUTABLE="$PY" -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DTF_CONVGRAD_CORE_OPT=-O1 \
    -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_MODULE_LINKER_FLAGS="$FLAGS" >"$BUILD/configure.log" 2>&1; then
    cat "$BUILD/configure.log" >&2
    exit 1
  fi
  "$NINJA" -C "$BUILD" -j "${SANITIZE_JOBS:-2}" _conv_backprop_ops
  LIB=$BUILD/_conv_backprop_ops.so
  echo "sanitize: built $LIB in $(($(date +%s) - start)) s"
  [[ -n "${SANITIZE_BUILD_ONLY:-}" ]] && exit 0
fi

ASAN_RT=$("$CXX" -print-file-name=libasan.so)
UBSAN_RT=$("$CXX" -print-file-name=libubsan.so)
if [[ ! -f "$ASAN_RT" ]]; then
  echo "sanitize: $CXX has no libasan.so (apt-get install libasan*)" >&2
  exit 2
fi
rm -rf "$LOGS" && mkdir -p "$LOGS"
export LD_PRELOAD="$ASAN_RT${UBSAN_RT:+ $UBSAN_RT}"
# allocator_may_return_null=1: an impossible allocation (the hostile tests ask for
# 2**62 bytes) fails like plain malloc does, instead of an ASan abort; ASan would
# hand out 48 GiB that the kernel refuses to plain malloc, so cap it at 16 GiB.
# handle_sigfpe=0: tests/robustness/test_hostile.py kills one TF worker on purpose with TF's
# own SIGFPE (Grappler, zero stride) and expects the plain signal; a division by
# zero in our library is still reported, by UBSan, before it happens.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=16384:handle_sigfpe=0:log_path=$LOGS/asan:${ASAN_EXTRA:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan"
export TF_CONVGRAD_LIBRARY="$LIB"

# TensorFlow's own import must work under the ASan runtime before anything else.
"$PY" - <<'PY'
import os, tensorflow as tf, tf_convgrad
from tf_convgrad import _loader
assert _loader._candidates()[0] == os.environ["TF_CONVGRAD_LIBRARY"]
x = tf.ones([1, 3, 3, 1])
dw = tf_convgrad.conv2d_backprop_filter(x, [2, 2, 1, 1], tf.ones([1, 2, 2, 1]), [1] * 4, "VALID")
assert dw.numpy().sum() == 16.0, dw
print("sanitize: TensorFlow", tf.__version__, "imports and runs under ASan; library",
      os.environ["TF_CONVGRAD_LIBRARY"])
PY

start=$(date +%s)
set +e
"$PY" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$LOGS/../pytest-sanitize.log"
status=${PIPESTATUS[0]}
set -e
echo "sanitize: pytest exit code $status after $(($(date +%s) - start)) s"
# The hostile tests' impossible allocations leave "WARNING: AddressSanitizer failed to
# allocate 0x... bytes" lines (allocator_may_return_null=1): expected, counted, not a
# report. Any other line in a log file is.
expected=$(cat "$LOGS"/* 2>/dev/null | grep -c "WARNING: AddressSanitizer failed to allocate" || true)
echo "sanitize: $expected refused impossible allocations (expected: the hostile tests ask for them)"
reports=""
for f in $(find "$LOGS" -type f | sort); do
  if grep -q -v "WARNING: AddressSanitizer failed to allocate" "$f"; then
    reports="$reports $f"
  fi
done
# UBSan in gcc's combined runtime prints to stderr whatever log_path says; with
# halt_on_error=1 each report also kills its process, so it fails a test, and its text
# reaches pytest's output (directly, or in a crashed worker's log tail).
if grep -q -E "runtime error:|ERROR: AddressSanitizer" "$LOGS/../pytest-sanitize.log"; then
  reports="$reports $LOGS/../pytest-sanitize.log"
  grep -E "runtime error:|ERROR: AddressSanitizer" "$LOGS/../pytest-sanitize.log" | head -20 >&2
fi
if [[ -n "$reports" ]]; then
  echo "sanitize: SANITIZER REPORTS:" >&2
  for f in $reports; do
    echo "==== $f" >&2
    head -60 "$f" >&2
  done
  exit 1
fi
echo "sanitize: no AddressSanitizer / UndefinedBehaviorSanitizer reports"
exit $status
