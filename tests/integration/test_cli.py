"""``python -m tf_convgrad``: the entry point as a user runs it, in fresh interpreters.

* ``--help`` imports no TensorFlow (it took ~5 s when it did);
* an unknown option gets the subcommand's usage, not the top-level one;
* TensorFlow's import notices (oneDNN, CUDA driver, CPU features) are not printed, unless the
  user set TF_CPP_MIN_LOG_LEVEL;
* ``import tf_convgrad`` from a script still loads the whole API at once.
"""

from __future__ import annotations

import os
import subprocess
import sys


def _cli(*argv, importtime=False, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "tf_convgrad"]
    return subprocess.run(
        [*cmd, *argv], env=full_env, capture_output=True, text=True, timeout=300
    )  # fmt: skip


def _imported(stderr: str) -> set[str]:
    """Top-level module names in ``-X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_help_imports_no_tensorflow():
    for argv in (["--help"], ["crosscheck", "--help"], ["bench", "--help"]):
        run = _cli(*argv, importtime=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "usage: python -m tf_convgrad" in run.stdout
        imported = _imported(run.stderr)
        assert "tf_convgrad" in imported  # the measurement works
        assert "tensorflow" not in imported and "keras" not in imported, argv


def test_unknown_option_gets_the_subcommand_usage():
    run = _cli("crosscheck", "--bogus")
    assert run.returncode == 2
    assert "usage: python -m tf_convgrad crosscheck" in run.stderr
    assert "unrecognized arguments: --bogus" in run.stderr


def test_tensorflow_import_notices_are_not_printed():
    run = _cli("info")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "instruction set:" in run.stdout
    for noise in ("oneDNN custom operations", "cuInit", "I0000", "absl::InitializeLog"):
        assert noise not in run.stderr, run.stderr
    # The user's own setting wins: TF's notices are back.
    loud = _cli("info", TF_CPP_MIN_LOG_LEVEL="0")
    assert "oneDNN custom operations" in loud.stderr or "cudart" in loud.stderr, loud.stderr


def test_import_from_a_script_loads_the_api():
    code = "import tf_convgrad as t; print(callable(t.enable), callable(t.conv2d), len(t.__all__))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "True", "12"]
