#!/usr/bin/env bash
# The Bazel build path, end to end and offline (docs/BAZEL.md):
#   1. installs Bazel (Debian's bazel-bootstrap, 4.2.3) and buildifier (npm) if they are missing,
#   2. checks the BUILD and .bzl files with buildifier,
#   3. ./configure.sh with the project's Python, bazel build //tf_ops/...,
#   4. bazel test //tests/...: the default pytest suite against the library Bazel built.
#
#   bash scripts/bazel_test.sh                       # the CPU library
#   bash scripts/bazel_test.sh --cuda                # also --config=cuda (nvcc 13) and the suite against it
#   bash scripts/bazel_test.sh --cuda-if-available   # the same where nvcc is installed, else a note
#
# Environment: BAZEL (Bazel to run, default `bazel`; e.g. the npm @bazel/bazel-linux_x64@2.1.0 binary),
# PYTHON_BIN_PATH (default .venv/bin/python, made by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
readonly BUILDIFIER_VERSION=8.2.1
# Lint as buildifier does by default, less the warnings that ask to load rules from @rules_cc,
# @rules_java or @rules_shell: those apply from Bazel 8 on; in Bazel 2.1-6 the rules are native.
readonly BUILDIFIER_WARNINGS=-native-cc-binary,-native-cc-fdo-prefetch-hints,-native-cc-fdo-profile,\
-native-cc-import,-native-cc-library,-native-cc-objc-import,-native-cc-objc-library,-native-cc-proto,\
-native-cc-test,-native-cc-toolchain,-native-cc-toolchain-suite,-native-java-binary,-native-java-import,\
-native-java-library,-native-java-lite-proto,-native-java-package-config,-native-java-plugin,\
-native-java-proto,-native-java-runtime,-native-java-test,-native-java-toolchain,-native-sh-binary,\
-native-sh-test
cuda=0
for arg in "$@"; do
  case $arg in
    --cuda) cuda=1 ;;
    --cuda-if-available)
      if [[ -x ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc ]]; then
        cuda=1
      else
        echo "bazel_test: no ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc: skipping --config=cuda"
      fi
      ;;
    *)
      echo "usage: $0 [--cuda | --cuda-if-available]" >&2
      exit 2
      ;;
  esac
done

step_start=$SECONDS
step() {
  echo "bazel_test: $* ($((SECONDS - step_start)) s so far)"
}
as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

bazel=${BAZEL:-bazel}
if ! command -v "$bazel" >/dev/null; then
  if [[ -n ${BAZEL:-} ]] || ! command -v apt-get >/dev/null; then
    echo "bazel_test: no Bazel ('$bazel'). Install Debian's bazel-bootstrap, or" \
      "npm install @bazel/bazel-linux_x64@2.1.0 and set BAZEL to its binary." >&2
    exit 1
  fi
  step "installing Bazel: apt-get install bazel-bootstrap"
  log=$(mktemp)
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q bazel-bootstrap >"$log" 2>&1; then
    # Stale package lists: refresh once and retry.
    if ! { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q bazel-bootstrap; } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      echo "bazel_test: could not install bazel-bootstrap" >&2
      exit 1
    fi
  fi
  rm -f "$log"
fi

buildifier=$(command -v buildifier || true)
if [[ -z $buildifier ]]; then
  # Kept outside the repository, one directory per version.
  prefix=${XDG_CACHE_HOME:-$HOME/.cache}/tf_convgrad/buildifier-$BUILDIFIER_VERSION
  buildifier=$prefix/node_modules/.bin/buildifier
  if [[ ! -x $buildifier ]]; then
    if ! command -v npm >/dev/null; then
      echo "bazel_test: buildifier is missing and npm is not installed to fetch it" \
        "(npm install -g @bazel/buildifier@$BUILDIFIER_VERSION)" >&2
      exit 1
    fi
    step "installing buildifier $BUILDIFIER_VERSION (npm)"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
      "@bazel/buildifier@$BUILDIFIER_VERSION" >/dev/null
  fi
fi

python=${PYTHON_BIN_PATH:-.venv/bin/python}
if [[ ! -x $python ]]; then
  echo "bazel_test: $python is missing: run bash scripts/setup.sh first (or set PYTHON_BIN_PATH)" >&2
  exit 1
fi

# Tracked and new (not ignored) Bazel files; the BUILD templates of the repository rules too.
mapfile -t build_files < <(git ls-files --cached --others --exclude-standard 'WORKSPACE' 'BUILD' '*/BUILD' '*.bzl')
mapfile -t templates < <(git ls-files --cached --others --exclude-standard 'tf_ops/bazel/BUILD.*.tpl')
step "buildifier -mode=check -lint=warn ($((${#build_files[@]} + ${#templates[@]})) files)"
"$buildifier" -mode=check -lint=warn -warnings="$BUILDIFIER_WARNINGS" "${build_files[@]}"
"$buildifier" -mode=check -lint=warn -warnings="$BUILDIFIER_WARNINGS" -type=build "${templates[@]}"

step "./configure.sh $python"
./configure.sh "$python"

variants=(cpu)
if [[ $cuda == 1 ]]; then variants+=(cuda); fi
for variant in "${variants[@]}"; do
  flags=()
  if [[ $variant == cuda ]]; then flags=(--config=cuda); fi
  step "bazel build ${flags[*]+${flags[*]} }//tf_ops/..."
  "$bazel" build "${flags[@]}" //tf_ops/...
  step "bazel test ${flags[*]+${flags[*]} }//tests/..."
  "$bazel" test "${flags[@]}" //tests/...
  # The suite's own summary line per tier (Bazel itself prints only PASSED or FAILED).
  logs="$("$bazel" info bazel-testlogs 2>/dev/null)/tests"
  for log in "$logs"/pytest_*/test.log; do
    tier=$(basename "$(dirname "$log")")
    summary=$(grep -E '(passed|failed|error).* in [0-9.]+s' "$log" | tail -n 1 || true)
    echo "bazel_test: //tests:$tier ($variant): ${summary:-no pytest summary in $log}"
  done
done
if [[ ${TF_CONVGRAD_KEEP_BAZEL:-0} != 1 ]]; then
  # The server holds ~450 MB; TF_CONVGRAD_KEEP_BAZEL=1 keeps it for fast rebuilds.
  "$bazel" shutdown
fi
step "done"
