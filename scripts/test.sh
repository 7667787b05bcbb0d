#!/usr/bin/env bash
# The test command (README, .ci/run): sets up what it needs (idempotently),
# checks formatting and lint, builds and tests through Bazel (scripts/bazel_test.sh,
# installing Bazel from Debian's packages if needed), then runs the default pytest
# suite against the pip-built library.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-crosscheck
bash scripts/check_format.sh
bash scripts/bazel_test.sh --cuda-if-available
exec .venv/bin/python -m pytest -q "$@"
