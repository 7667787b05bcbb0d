"""Instruction-set levels of the CPU cores (cpu_dispatch.cc): each level the CPU runs gives
results within the value tests' tolerance of the float64 reference and bitwise identical from run
to run; TF_CONVGRAD_ISA is honoured and a wrong value is a clear error; ``python -m tf_convgrad
info`` says what runs. A level this CPU lacks is exercised under qemu by ``test_qemu.py``.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import tf_convgrad

import isa_levels

SUPPORT = pathlib.Path(__file__).resolve().parents[1] / "support"  # isa_worker.py
ROOT = SUPPORT.parents[1]
INFO = tf_convgrad.build_info()
DISPATCH = INFO["isa_dispatch"]
needs_dispatch = pytest.mark.skipif(
    not DISPATCH, reason="a single-level build (TF_CONVGRAD_ARCH=<-march value>)"
)


def _run(args, isa=None, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONVGRAD_ISA", None)
    if isa is not None:
        env["TF_CONVGRAD_ISA"] = isa
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=SUPPORT,
    )


def test_build_info_describes_the_build():
    assert INFO["version"] == tf_convgrad.__version__
    assert INFO["tf_version"] == "2.21.0"
    assert INFO["compiler"].startswith(("gcc ", "clang "))
    assert INFO["isa"] in INFO["isa_levels"]
    assert INFO["isa_supported"], "the level in use must be one the CPU runs"
    if DISPATCH:
        assert tuple(INFO["isa_levels"]) == isa_levels.LEVELS
        # Without TF_CONVGRAD_ISA: the best level the CPU runs.
        if not os.environ.get("TF_CONVGRAD_ISA"):
            assert INFO["isa"] == INFO["isa_supported"][0]


@needs_dispatch
def test_cpuid_agrees_with_proc_cpuinfo():
    expected = [level for level in isa_levels.LEVELS if isa_levels.host_runs(level)]
    if not isa_levels.host_cpu_flags():
        pytest.skip("no /proc/cpuinfo")
    assert INFO["isa_supported"] == expected


@needs_dispatch
def test_amx_agrees_with_proc_cpuinfo():
    """bfloat16 CBF takes AMX tiles exactly at the avx512bf16 level of a CPU with AMX-BF16 (Linux
    grants the tile state to any process that asks on such a CPU)."""
    flags = isa_levels.host_cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo")
    expected = INFO["isa"] == "avx512bf16" and {"amx_tile", "amx_bf16"} <= flags
    assert INFO["amx_bf16"] == expected


@needs_dispatch
@pytest.mark.parametrize("level", isa_levels.LEVELS)
def test_level_numerics_and_determinism(level):
    if level not in INFO["isa_supported"]:
        pytest.skip(f"this CPU cannot run the {level} level (test_qemu.py runs avx2 and baseline)")
    isa_levels.check_worker_output(_run(["isa_worker.py"], isa=level), level)


@needs_dispatch
def test_auto_is_the_best_level():
    proc = _run(["-c", "import tf_convgrad; print(tf_convgrad.build_info()['isa'])"], isa="auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == INFO["isa_supported"][0]


def test_unknown_level_is_a_clear_import_error():
    proc = _run(["-c", "import tf_convgrad"], isa="avx1024")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tf_convgrad: TF_CONVGRAD_ISA='avx1024' is not an"), last
    for level in INFO["isa_levels"]:
        assert level in last


def test_unknown_level_fails_the_ops_with_invalid_argument():
    # Loaded without tf_convgrad's import-time check: the op itself refuses to run.
    code = (
        "import sys, tensorflow as tf\n"
        "lib = tf.load_op_library(sys.argv[1])\n"
        "x = tf.ones([1, 4, 4, 2]); dy = tf.ones([1, 4, 4, 3])\n"
        "try:\n"
        "    lib.conv_grad_conv2d_backprop_filter(input=x, filter_sizes=[3, 3, 2, 3],\n"
        "        out_backprop=dy, strides=[1, 1, 1, 1], padding='SAME')\n"
        "except tf.errors.InvalidArgumentError as e:\n"
        "    print('INVALID', e.message)\n"
    )
    proc = _run(["-c", code, INFO["library"]], isa="avx1024")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "INVALID" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "TF_CONVGRAD_ISA='avx1024' is not an instruction-set level" in proc.stdout


@needs_dispatch
def test_level_above_the_cpu_is_a_clear_import_error():
    missing = [level for level in INFO["isa_levels"] if level not in INFO["isa_supported"]]
    if not missing:
        pytest.skip("this CPU runs every level; test_qemu.py forces avx512 on an emulated Haswell")
    proc = _run(["-c", "import tf_convgrad"], isa=missing[0])
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert f"TF_CONVGRAD_ISA={missing[0]}" in last and "needs CPU features" in last, last


@pytest.mark.parametrize("flag", ["info", "--version"])
def test_cli_info(flag):
    proc = _run(["-m", "tf_convgrad", flag])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert f"tf_convgrad {tf_convgrad.__version__}" in out
    assert "TensorFlow: built for 2.21.0, running 2.21.0" in out
    assert f"instruction set: {INFO['isa']} (" in out
    assert f"compiler: {INFO['compiler']}" in out


@needs_dispatch
def test_cli_info_shows_a_forced_level():
    level = INFO["isa_supported"][-1]
    proc = _run(["-m", "tf_convgrad", "info"], isa=level)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"instruction set: {level} (" in proc.stdout
    assert f"forced by TF_CONVGRAD_ISA={level}" in proc.stdout
    assert "AMX tiles: not used" in proc.stdout  # the lowest level has no AMX core


def test_level_flags_agree():
    """CMakeLists.txt, tf_ops/bazel/cpu_cores.bzl and isa_levels.FLAGS list the same flags."""
    cmake = ROOT / "CMakeLists.txt"
    bzl = ROOT / "tf_ops" / "bazel" / "cpu_cores.bzl"
    if not cmake.is_file() or not bzl.is_file():
        pytest.skip("the build files are not here (an installed package)")
    found = {}
    for m in re.finditer(r"set\(TF_CONVGRAD_FLAGS_(\w+) ([^)]*)\)", cmake.read_text()):
        found[m.group(1)] = [f for f in m.group(2).split() if not f.startswith("-mtune")]
    found.pop("single", None)
    assert found == isa_levels.FLAGS
    text = bzl.read_text()
    block = text[text.index("ISA_LEVELS = {") :]
    block = block[: block.index("\n}\n")]
    bazel = {
        m.group(1): [
            f for f in re.findall(r'"(-m[^"]+)"', m.group(2)) if not f.startswith("-mtune")
        ]
        for m in re.finditer(r'"(\w+)": \[([^\]]*)\]', block)
    }
    assert bazel == isa_levels.FLAGS
