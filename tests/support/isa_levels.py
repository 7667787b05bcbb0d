"""The instruction-set levels of a dispatch build, as the tests need them.

``FLAGS`` mirrors the levels' compiler flags in CMakeLists.txt and tf_ops/bazel/cpu_cores.bzl
(``test_isa.py::test_level_flags_agree`` checks that the three agree), without ``-mtune``.
``CPUINFO`` is what /proc/cpuinfo must list for a level to run here. ``check_worker_output``
asserts an ``isa_worker.py`` run (test_isa.py, test_qemu.py).
"""

from __future__ import annotations

import functools
import json

LEVELS = ("avx512bf16", "avx512", "avx2", "baseline")  # best first

FLAGS = {
    "avx512bf16": ["-march=x86-64-v4", "-mavx512bf16", "-mprfchw"],
    "avx512": ["-march=x86-64-v4", "-mprfchw"],
    "avx2": ["-march=x86-64-v3"],
    "baseline": ["-march=x86-64-v2", "-mavx"],
}

_V2 = ["pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm"]  # pni: SSE3
_BASELINE = _V2 + ["avx"]
_AVX2 = _BASELINE + ["avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe"]
_AVX512 = _AVX2 + ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "3dnowprefetch"]
CPUINFO = {
    "avx512bf16": _AVX512 + ["avx512_bf16"],
    "avx512": _AVX512,
    "avx2": _AVX2,
    "baseline": _BASELINE,
}


@functools.cache
def host_cpu_flags() -> frozenset[str]:
    """The flags line of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def host_runs(level: str) -> bool:
    """Whether /proc/cpuinfo lists everything ``level`` needs."""
    return set(CPUINFO[level]) <= host_cpu_flags()


def check_worker_output(proc, expected_isa: str) -> list[dict]:
    """Asserts that an isa_worker.py run chose expected_isa and passed every case."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["info"]["isa"] == expected_isa
    results = report["results"]
    assert results
    failures = []
    for r in results:
        if "error" in r:
            failures.append(f"{r['id']}: {r['error']}")
        elif not r["err"] <= r["tol"]:
            failures.append(f"{r['id']}: norm-relative error {r['err']:.3g} > {r['tol']:.3g}")
        elif not r["deterministic"]:
            failures.append(f"{r['id']}: two runs differ bitwise")
    assert not failures, f"level {expected_isa}:\n" + "\n".join(failures)
    return results
