#!/usr/bin/env bash
# Fails if any C++ file is not clang-format clean or any Python file is not ruff clean.
# Pass --fix to rewrite the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t CC < <(git ls-files '*.cc' '*.h' '*.cu' '*.cu.cc' '*.cu.h' | sort -u)
if [[ "${1:-}" == "--fix" ]]; then
  .venv/bin/clang-format -i "${CC[@]}"
  .venv/bin/ruff format python tests scripts tools tf_ops/bazel
  .venv/bin/ruff check --fix python tests scripts tools tf_ops/bazel
  exit 0
fi
echo "check_format: clang-format (${#CC[@]} files), ruff format, ruff check"
.venv/bin/clang-format --dry-run -Werror "${CC[@]}"
.venv/bin/ruff format --no-cache --check python tests scripts tools tf_ops/bazel
.venv/bin/ruff check --no-cache python tests scripts tools tf_ops/bazel
