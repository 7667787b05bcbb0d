"""Where a generated document comes from, as the scripts that write docs state it.

Imported by ``scripts/fuzz_long.py`` and ``scripts/hostile_table.py`` (run as scripts, this
folder is on their module path).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git_head() -> str:
    """``git describe --always --dirty`` of the source tree, or ``"unknown"``."""
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_label(override: str | None = None) -> str:
    """The op library our ops load, as a document may name it: a repository-relative path,
    never one outside the repository.

    Args:
        override: The library's path; defaults to ``TF_CONVGRAD_LIBRARY`` (None: the installed
            library).
    """
    from tf_convgrad import _cli  # imports TensorFlow

    return _cli.library_label(override or os.environ.get("TF_CONVGRAD_LIBRARY"), ROOT)
