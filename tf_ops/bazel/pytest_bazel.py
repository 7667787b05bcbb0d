"""pytest plugin for `bazel test //tests/...` (loaded by pytest_runner.sh with -p pytest_bazel).

A run against the Bazel-built library proves nothing if Python quietly loads something else: the
package from another checkout's editable install, or the pip-built library (the loader falls back
to it when TF_CONVGRAD_LIBRARY names a missing file). Once the test modules are imported (importing
tf_convgrad loads the library), this plugin checks what this process really loaded and stops the
run unless it is this workspace's package and the library named by TF_CONVGRAD_LIBRARY.
"""

from __future__ import annotations

import os
import sys

import pytest

LIBRARY_NAME = "_conv_backprop_ops.so"
# pytest_runner.sh starts pytest in the runfiles root: python/tf_convgrad/*.py there are links to
# this workspace's files.
WORKSPACE_INIT = os.path.realpath(os.path.join(os.getcwd(), "python", "tf_convgrad", "__init__.py"))


def _loaded_op_libraries() -> set[str]:
    with open("/proc/self/maps") as maps:
        paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "/" in line}
    return {os.path.realpath(p) for p in paths if os.path.basename(p) == LIBRARY_NAME}


def pytest_report_header(config):
    return (
        f"bazel: op library {os.environ.get('TF_CONVGRAD_LIBRARY', '(TF_CONVGRAD_LIBRARY unset)')}"
    )


def pytest_collection_finish(session):
    expected_library = os.path.realpath(os.environ["TF_CONVGRAD_LIBRARY"])
    module = sys.modules.get("tf_convgrad")
    problems = []
    if module is None:
        problems.append("no test imported tf_convgrad")
    else:
        init = os.path.realpath(module.__file__)
        if init != WORKSPACE_INIT:
            problems.append(
                f"tf_convgrad was imported from {init}, not from this workspace "
                f"({WORKSPACE_INIT}); is another checkout installed in editable mode?"
            )
        loaded = _loaded_op_libraries()
        if loaded != {expected_library}:
            found = ", ".join(sorted(loaded)) or "none"
            problems.append(f"the loaded op libraries are {found}; expected {expected_library}")
    if problems:
        pytest.exit("pytest_bazel: " + " ".join(problems), returncode=3)
