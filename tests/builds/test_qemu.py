"""The built library on CPUs without AVX-512, emulated by ``qemu-x86_64`` (Debian: qemu-user):

* ``-cpu Haswell`` (AVX2, FMA, no AVX-512): cpuid picks avx2, and a few cases of each op and
  dtype match the float64 reference, bitwise the same run to run. An AVX-512 instruction anywhere
  on that path (e.g. one level's copy of an inline Eigen function merged into another's by the
  linker) kills the process with SIGILL.
* ``-cpu SandyBridge`` (AVX only, TensorFlow 2.21's own minimum): the baseline level, likewise;
  no AVX2, FMA or F16C instruction may run there.
* ``-cpu Haswell`` with ``TF_CONVGRAD_ISA=avx512``: ``import tf_convgrad`` fails with a clear
  ImportError naming the missing features.

TensorFlow's import alone takes ~20 s of emulation; the three processes run concurrently and use
``isa_worker.py --quick`` (3 cases x 4 dtypes).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import tf_convgrad

from isa_levels import check_worker_output

SUPPORT = pathlib.Path(__file__).resolve().parents[1] / "support"  # isa_worker.py
QEMU = shutil.which("qemu-x86_64")


def _qemu_version() -> tuple[int, int]:
    """(major, minor) of qemu-x86_64, (0, 0) if unknown."""
    try:
        out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


# QEMU emulates AVX and AVX2 (which TensorFlow itself needs) from 7.2 on (Debian 12's qemu-user).
QEMU_VERSION = _qemu_version() if QEMU else (0, 0)

pytestmark = [
    pytest.mark.skipif(
        QEMU is None, reason="qemu-x86_64 is not installed (Debian: apt-get install qemu-user)"
    ),
    pytest.mark.skipif(
        QEMU is not None and QEMU_VERSION < (7, 2),
        reason=f"qemu-x86_64 {QEMU_VERSION} emulates no AVX2 (needs 7.2 or newer)",
    ),
    pytest.mark.skipif(
        not tf_convgrad.build_info()["isa_dispatch"],
        reason="a single-level build (TF_CONVGRAD_ARCH=<-march value>) has no portable levels",
    ),
]

TIMEOUT_S = 900


def _start(cpu: str, isa: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONVGRAD_ISA", None)
    if isa is not None:
        env["TF_CONVGRAD_ISA"] = isa
    return subprocess.Popen(
        [QEMU, "-cpu", cpu, sys.executable, "isa_worker.py", "--quick"],
        env=env,
        cwd=SUPPORT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs():
    procs = {
        "haswell": _start("Haswell"),
        "sandybridge": _start("SandyBridge"),
        "haswell_avx512": _start("Haswell", isa="avx512"),
    }
    done = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return done


def _explain_signal(proc) -> str:
    if proc.returncode in (-4, 132):  # SIGILL, directly or as the shell reports it
        return "SIGILL: an instruction this emulated CPU lacks ran\n"
    return ""


def test_haswell_runs_the_avx2_level(runs):
    proc = runs["haswell"]
    assert proc.returncode == 0, _explain_signal(proc) + proc.stderr[-3000:]
    check_worker_output(proc, "avx2")


def test_sandybridge_runs_the_baseline_level(runs):
    proc = runs["sandybridge"]
    assert proc.returncode == 0, _explain_signal(proc) + proc.stderr[-3000:]
    check_worker_output(proc, "baseline")


def test_forcing_avx512_on_haswell_is_a_clear_error(runs):
    proc = runs["haswell_avx512"]
    assert proc.returncode == 1, _explain_signal(proc) + proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tf_convgrad: TF_CONVGRAD_ISA=avx512 "), last
    assert "needs CPU features this machine lacks: AVX512F" in last
    assert "this CPU runs avx2, baseline" in last
