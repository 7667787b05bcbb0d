#!/usr/bin/env bash
# Sets up tf-convgrad in ./.venv (idempotent: reuses what is already there) and,
# unless called with --no-crosscheck, runs the cross-check against TensorFlow.
#   bash scripts/setup.sh                 # set up + python -m tf_convgrad crosscheck
#   bash scripts/setup.sh --no-crosscheck # set up only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
# Install the pinned tools only when something is missing or has another version.
if ! "$VENV/bin/python" - <<'PYCHECK' 2>/dev/null; then
import importlib.metadata as md, re, sys
for line in open("requirements-dev.txt"):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, version = re.split(r"==", line)
    if md.version(name) != version:
        sys.exit(1)
PYCHECK
  echo "setup: installing pinned requirements (TensorFlow is ~600 MB; a minute or two)"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r requirements-dev.txt
fi
# (Re)build the op library; scikit-build-core keeps build/ so this is incremental.
echo "setup: building the op library (pip install --no-build-isolation -e .; a first build takes 1-3 minutes)"
# Verbose pip into build-setup.log; on the terminal, the build's progress lines as they come
# ([3/7] Building ...). pipefail: the pipeline fails when pip does.
if ! "$VENV/bin/pip" install --disable-pip-version-check -v --no-build-isolation --no-deps -e . 2>&1 \
  | tee build-setup.log \
  | { grep --line-buffered -E "^ *\[[0-9]+/[0-9]+\]|^ *\*\*\* " | sed -u 's/^ */setup:   /'; true; }; then
  grep -E "error|Error|FAILED" build-setup.log | head -40 >&2 || true
  echo "setup: the build failed; the full log is in build-setup.log" >&2
  exit 1
fi
"$VENV/bin/python" -c "import tf_convgrad; print('setup: tf_convgrad', tf_convgrad.__version__, 'loaded')" 2>&1 \
  | grep -v -E "^(I0000|WARNING: All log messages|To enable the following|E0000)" || true

if [[ "${1:-}" != "--no-crosscheck" ]]; then
  echo "setup: running python -m tf_convgrad crosscheck"
  exec "$VENV/bin/python" -m tf_convgrad crosscheck
fi
