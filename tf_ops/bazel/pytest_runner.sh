#!/usr/bin/env bash
# Runs the pytest suite against an op library built by Bazel (tests/BUILD).
#   pytest_runner.sh PYTHON LIBRARY [PYTEST_ARGS...]
# PYTHON is the interpreter ./configure.sh read TensorFlow from; LIBRARY is the .so's runfiles path. The
# package's Python files come from this workspace (python/ on PYTHONPATH), the library through
# TF_CONVGRAD_LIBRARY, and the plugin pytest_bazel.py fails the run unless both are really the ones loaded.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 PYTHON LIBRARY [PYTEST_ARGS...]" >&2
  exit 2
fi
python=$1
library=$2
shift 2
# Bazel starts tests in the runfiles tree of this workspace.
root=$PWD
if [[ ! -x $python ]]; then
  echo "pytest_runner: the Python that ./configure.sh recorded ($python) is gone; run ./configure.sh again." >&2
  exit 1
fi
if [[ ! -f $root/$library ]]; then
  echo "pytest_runner: the op library $library is not in the runfiles ($root)." >&2
  exit 1
fi
export TF_CONVGRAD_LIBRARY=$root/$library
export PYTHONPATH=$root/python:$root/tf_ops/bazel${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1
# pytest reads pyproject.toml (markers, the default -m "not slow") from the runfiles root.
exec "$python" -m pytest -p pytest_bazel -p no:cacheprovider -q "$@"
