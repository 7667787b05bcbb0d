"""The CPU cores' vectorised half/bfloat16 conversions (cpu_common.h) must give
exactly Eigen's per-element results, NaNs and denormals included.

Compiles tests/cpp/convert_check.cc with the flags of each instruction-set level
the cores are built for (isa_levels.FLAGS) and with -march=native, and runs it
on 2^20 random bit patterns per type; levels this CPU cannot run are skipped.
"""

import pathlib
import shutil
import subprocess

import pytest
import tensorflow as tf

import isa_levels

ROOT = pathlib.Path(__file__).resolve().parents[2]


_VARIANTS = [pytest.param(["-march=native"], id="native")] + [
    pytest.param(
        flags,
        id=level,
        marks=pytest.mark.skipif(
            not isa_levels.host_runs(level), reason=f"this CPU cannot run the {level} level"
        ),
    )
    for level, flags in isa_levels.FLAGS.items()
]


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("march", _VARIANTS)
def test_vector_conversions_match_eigen_bitwise(tmp_path, march):
    exe = tmp_path / "convert_check"
    cmd = [
        "g++",
        "-O2",
        *march,
        "-mno-avx512fp16",  # Eigen's PacketMathFP16.h does not compile with it (gcc 12)
        "-std=c++17",
        "-DTF_CONVGRAD_ISA_NS=check",
        f"-I{ROOT}",
        f"-I{tf.sysconfig.get_include()}",
        str(ROOT / "tests" / "cpp" / "convert_check.cc"),
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "half: from-acc mismatches 0, to-acc mismatches 0" in run.stdout
    assert "bfloat16: from-acc mismatches 0, to-acc mismatches 0" in run.stdout
