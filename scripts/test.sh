#!/usr/bin/env bash
# The test command (README, .ci/run): sets up what it needs (idempotently),
# checks formatting and lint, then runs the default pytest suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-crosscheck
bash scripts/check_format.sh
exec .venv/bin/python -m pytest -q "$@"
