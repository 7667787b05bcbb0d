"""Bitwise determinism across repeated runs and across intra-op thread counts.

The thread count must be fixed before TF initialises, so each count gets its own process
(``subprocess_worker.py``, all started together), which also may use only that many CPUs where there
are (the AMX core makes one task per usable CPU, so its split of the work changes too). Inputs are
generated from fixed seeds in the workers, so every process sees the same bits; each run is
repeated three times in its process.
TF's own CBF is *not* deterministic across thread counts (docs/SEMANTICS.md, "Determinism"); ours
must be.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

import configs
import subprocess_worker

THREADS = (1, 2, 3)
REPEAT = 3


class Problem(NamedTuple):
    id: str
    op: str
    first: list  # input NHWC (cbf, dbf) or filter HWIO (dbi)
    dy: list  # out_backprop, NHWC
    sizes: list  # filter sizes HWIO, or input sizes NHWC (dbi)
    strides: tuple = (1, 1)
    dilations: tuple = (1, 1)
    padding: str = "SAME"


P = Problem
PROBLEMS = [
    P("cbf-28x28x32_k3", "cbf", [8, 28, 28, 32], [8, 28, 28, 32], [3, 3, 32, 32]),
    P("cbf-28x28x64_k1_s2", "cbf", [8, 28, 28, 64], [8, 14, 14, 96], [1, 1, 64, 96], (2, 2)),
    P("cbf-14x14_g4_dil2", "cbf", [4, 14, 14, 64], [4, 14, 14, 64], [3, 3, 16, 64], (1, 1), (2, 2)),
    P("cbf-batch1_56x56", "cbf", [1, 56, 56, 16], [1, 54, 54, 16], [3, 3, 16, 16], padding="VALID"),
    P("dbf-28x28x64_k3", "dbf", [8, 28, 28, 64], [8, 28, 28, 64], [3, 3, 64, 1]),
    P("dbf-28x28x32_m2_s2", "dbf", [8, 28, 28, 32], [8, 14, 14, 64], [3, 3, 32, 2], (2, 2)),
    P("dbf-batch1_56x56_k5", "dbf", [1, 56, 56, 24], [1, 56, 56, 24], [5, 5, 24, 1]),
    P("dbi-28x28x64_k3", "dbi", [3, 3, 64, 1], [8, 28, 28, 64], [8, 28, 28, 64]),
    P(
        "dbi-28x28_k5_m2_dil2",
        "dbi",
        [5, 5, 32, 2],
        [4, 28, 28, 64],
        [4, 28, 28, 32],
        (1, 1),
        (2, 2),
    ),
    P("dbi-28x28_s2x1", "dbi", [3, 3, 48, 1], [4, 14, 28, 48], [4, 28, 28, 48], (2, 1)),
]


def _to_format(shape, data_format):
    return list(shape) if data_format == "NHWC" else [shape[0], shape[3], shape[1], shape[2]]


def _spatial4(hw, data_format):
    return [1, hw[0], hw[1], 1] if data_format == "NHWC" else [1, 1, hw[0], hw[1]]


def _run(problem, dtype, data_format):
    op = problem.op
    first = problem.first if op == "dbi" else _to_format(problem.first, data_format)
    sizes = _to_format(problem.sizes, data_format) if op == "dbi" else problem.sizes
    return {
        "key": f"{problem.id}|{dtype}|{data_format}",
        "impl": "ours",
        "op": op,
        "mode": "eager",
        "tensors": {
            "filter" if op == "dbi" else "input": {"shape": first, "dtype": dtype, "seed": 1},
            "out_backprop": {
                "shape": _to_format(problem.dy, data_format),
                "dtype": dtype,
                "seed": 2,
            },
        },
        "sizes": {"input_sizes" if op == "dbi" else "filter_sizes": {"value": sizes}},
        "attrs": {
            "strides": _spatial4(problem.strides, data_format),
            "padding": problem.padding,
            "data_format": data_format,
            "dilations": _spatial4(problem.dilations, data_format),
        },
        "repeat": REPEAT,
    }


PARAMS = [
    (problem, dtype, data_format)
    for problem in PROBLEMS
    for dtype in configs.DTYPES
    for data_format in configs.FORMATS
]


# TF's native CBF changes with the thread count (docs/SEMANTICS.md, "Determinism"): proves the
# knob works.
GUARD = {
    **_run(PROBLEMS[0], "float32", "NHWC"),
    "key": "guard|tf",
    "impl": "tf",
    "repeat": 1,
}


@pytest.fixture(scope="module")
def hashes_by_threads() -> dict[int, dict[str, dict]]:
    runs = [_run(*params) for params in PARAMS] + [GUARD]
    jobs = [(runs, {"TF_CONVGRAD_TEST_INTRA_OP_THREADS": str(n)}) for n in THREADS]
    return dict(zip(THREADS, subprocess_worker.run_jobs(jobs, timeout=900), strict=True))


@pytest.mark.parametrize(
    ("problem", "dtype", "data_format"),
    PARAMS,
    ids=[f"{p.id}-{dtype}-{fmt}" for p, dtype, fmt in PARAMS],
)
def test_bitwise_identical_across_runs_and_threads(hashes_by_threads, problem, dtype, data_format):
    key = _run(problem, dtype, data_format)["key"]
    seen = {}
    for threads, results in hashes_by_threads.items():
        result = results[key]
        assert result["ok"], (
            f"{threads} thread(s): {result.get('error_class')}: {result.get('message')}"
        )
        assert result["finite"], f"{threads} thread(s): non-finite output"
        assert len(set(result["sha256"])) == 1, f"{threads} thread(s): repeated runs differ"
        seen[threads] = result["sha256"][0]
    assert len(set(seen.values())) == 1, f"results differ across thread counts: {seen}"


def test_thread_count_really_changes(hashes_by_threads):
    """Guards the harness: TF's own CBF gives different bits with 1 and 2 threads."""
    one, two = (hashes_by_threads[n]["guard|tf"] for n in (1, 2))
    assert one["ok"] and two["ok"]
    assert one["sha256"] != two["sha256"], "the intra-op thread setting had no effect"
