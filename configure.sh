#!/usr/bin/env bash
# Configures the Bazel build for the installed TensorFlow: reads tf.sysconfig and writes
# .tf_configure.bazelrc (git-ignored, imported by .bazelrc). Non-interactive; installs nothing.
#
#   ./configure.sh [PYTHON]
#
# PYTHON is the interpreter with tensorflow==2.21.0 (default: $PYTHON_BIN_PATH, else .venv/bin/python,
# else python3); the Bazel tests run with it too. Environment:
#   TF_NEED_CUDA=1        make --config=cuda the default (nvcc from $CUDA_HOME, default /usr/local/cuda)
#   TF_CONVGRAD_ARCH=...  the compute cores' instruction sets, as in the pip build: dispatch (default: every
#                         level, chosen at run time from cpuid) or one -march value, e.g. native
set -euo pipefail
cd "$(dirname "$0")"
readonly OUT=.tf_configure.bazelrc
readonly REQUIRED_TF_VERSION=2.21.0

python=${1:-${PYTHON_BIN_PATH:-}}
if [[ -z $python ]]; then
  if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
# An absolute path, but not resolved: a virtualenv's bin/python is a symlink to the base interpreter.
if [[ $python == */* ]]; then
  python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
else
  python=$(command -v "$python") || { echo "configure.sh: $1 not found" >&2; exit 1; }
fi
if [[ ! -x $python ]]; then
  echo "configure.sh: $python does not exist. Create the environment first (bash scripts/setup.sh)," \
    "or name an interpreter with tensorflow==$REQUIRED_TF_VERSION: ./configure.sh /path/to/python" >&2
  exit 1
fi

# One KEY=VALUE per line from tf.sysconfig; every flag TensorFlow asks for must land somewhere.
read_sysconfig() {
  TF_CPP_MIN_LOG_LEVEL=3 "$python" - "$REQUIRED_TF_VERSION" <<'PY'
import sys

import tensorflow as tf

required = sys.argv[1]
if tf.__version__ != required:
    sys.exit(f"tensorflow {tf.__version__} is installed; tf_convgrad needs tensorflow=={required}")
values = {"TF_VERSION": tf.__version__, "TF_DEFINES": []}
for flag in tf.sysconfig.get_compile_flags():
    if flag.startswith("-I"):
        values["TF_HEADER_DIR"] = flag[2:]
    elif flag.startswith("-D_GLIBCXX_USE_CXX11_ABI="):
        values["TF_CXX11_ABI_FLAG"] = flag.split("=", 1)[1]
    elif flag.startswith(("-std=", "--std=")):
        values["TF_CXX_STANDARD"] = flag.split("=", 1)[1]
    elif flag.startswith("-D"):
        values["TF_DEFINES"].append(flag[2:])
    else:
        sys.exit(f"unexpected compile flag {flag!r} in tf.sysconfig.get_compile_flags()")
for flag in tf.sysconfig.get_link_flags():
    if flag.startswith("-L"):
        values["TF_SHARED_LIBRARY_DIR"] = flag[2:]
    elif flag.startswith("-l:"):
        values["TF_SHARED_LIBRARY_NAME"] = flag[3:]
    else:
        sys.exit(f"unexpected link flag {flag!r} in tf.sysconfig.get_link_flags()")
if str(tf.sysconfig.CXX11_ABI_FLAG) != values.get("TF_CXX11_ABI_FLAG"):
    sys.exit("tf.sysconfig.CXX11_ABI_FLAG disagrees with tf.sysconfig.get_compile_flags()")
for value in [v for v in values.values() if isinstance(v, str)] + values["TF_DEFINES"]:
    if any(c.isspace() or c in "\"'\\" for c in value):
        sys.exit(f"{value!r}: paths and flags with spaces or quotes are not supported")
values["TF_DEFINES"] = " ".join(values["TF_DEFINES"])
for key, value in values.items():
    print(f"{key}={value}")
PY
}

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
if ! sysconfig=$(read_sysconfig 2>"$errors"); then
  echo "configure.sh: could not read tf.sysconfig with $python:" >&2
  tail -n 5 "$errors" >&2
  echo "Install tensorflow==$REQUIRED_TF_VERSION there (bash scripts/setup.sh does), or name another" \
    "interpreter: ./configure.sh /path/to/python" >&2
  exit 1
fi

declare -A tf
while IFS='=' read -r key value; do tf[$key]=$value; done <<<"$sysconfig"
for key in TF_HEADER_DIR TF_SHARED_LIBRARY_DIR TF_SHARED_LIBRARY_NAME TF_CXX11_ABI_FLAG TF_CXX_STANDARD; do
  if [[ -z ${tf[$key]:-} ]]; then
    echo "configure.sh: tf.sysconfig gave no value for $key" >&2
    exit 1
  fi
done
if [[ ! -f ${tf[TF_SHARED_LIBRARY_DIR]}/${tf[TF_SHARED_LIBRARY_NAME]} ]]; then
  echo "configure.sh: ${tf[TF_SHARED_LIBRARY_DIR]}/${tf[TF_SHARED_LIBRARY_NAME]} does not exist" >&2
  exit 1
fi

arch=${TF_CONVGRAD_ARCH:-dispatch}
if [[ $arch == *[[:space:]]* ]]; then
  echo "configure.sh: TF_CONVGRAD_ARCH='$arch' is not a -march value" >&2
  exit 1
fi

{
  echo "# Written by ./configure.sh from $python (TensorFlow ${tf[TF_VERSION]}). Do not edit:"
  echo "# run ./configure.sh again after changing the Python environment."
  # Repository rules see --repo_env only through the commands that name it; test and cquery inherit build.
  for command in build query fetch; do
    for key in TF_HEADER_DIR TF_SHARED_LIBRARY_DIR TF_SHARED_LIBRARY_NAME TF_CXX11_ABI_FLAG TF_CXX_STANDARD \
      TF_DEFINES TF_VERSION; do
      echo "$command --repo_env=\"$key=${tf[$key]}\""
    done
    echo "$command --repo_env=PYTHON_BIN_PATH=$python"
  done
  echo "build --define=TF_CONVGRAD_ARCH=$arch"
  if [[ ${TF_NEED_CUDA:-0} == 1 ]]; then
    echo "build --config=cuda"
  fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

echo "configure.sh: wrote $OUT for TensorFlow ${tf[TF_VERSION]} ($python):"
echo "  headers ${tf[TF_HEADER_DIR]}"
echo "  library ${tf[TF_SHARED_LIBRARY_DIR]}/${tf[TF_SHARED_LIBRARY_NAME]}"
echo "  -D_GLIBCXX_USE_CXX11_ABI=${tf[TF_CXX11_ABI_FLAG]} -std=${tf[TF_CXX_STANDARD]}" \
  "$(for d in ${tf[TF_DEFINES]}; do printf -- '-D%s ' "$d"; done)"
if [[ $arch == dispatch ]]; then
  echo "  compute cores: every instruction-set level, chosen at run time (TF_CONVGRAD_ARCH=dispatch)"
else
  echo "  compute cores: -march=$arch only (TF_CONVGRAD_ARCH=$arch)"
fi
if [[ ${TF_NEED_CUDA:-0} == 1 ]]; then
  echo "  CUDA on by default (--config=cuda)"
fi
