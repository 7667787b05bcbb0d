"""``--dry-run``: everything that needs neither a compiler nor a GPU.

Builds every problem and its C structs, checks the package's float64 reference (einsum) against
its loops on every float64 grid problem, checks the bfloat16 storage rounding against
``ml_dtypes`` (where installed), and lists the benchmark layers and the large cases.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from .capi import ConvShape, to_float64, to_storage
from .large import large_problems
from .layers import bench_problems
from .package import METRICS
from .problem import Problem, make_inputs


def dry_run(problems: list[Problem]) -> int:
    """Runs the checks and prints what it found; returns the number of failures."""
    failures = 0
    counts = {}
    for p in problems:
        counts[(p.op, p.tag or "grid")] = counts.get((p.op, p.tag or "grid"), 0) + 1
        s = p.c_shape
        assert ctypes.sizeof(s) == ctypes.sizeof(ConvShape) == 18 * 8
        assert s.out_rows == p.dy_shape[2 if p.data_format == "NCHW" else 1]
    # The reference's einsum formulation against its loops on every float64 grid case.
    checked = 0
    for p in problems:
        if p.dtype != "float64" or p.options:
            continue
        first, dy = make_inputs(p)
        fast = p.reference(first, dy)
        naive = p.reference(first, dy, method="loops")
        if np.any(naive):
            err = METRICS.relative_error(fast, naive)
        else:
            err = float(np.max(np.abs(fast), initial=0))
        checked += 1
        if err > 1e-12:
            failures += 1
            print(f"FAIL reference mismatch {p.id}: {err:.3g}")
    # Our storage conversions against NumPy / ml_dtypes where available.
    x = np.random.default_rng(0).standard_normal(10000) * 100
    assert np.array_equal(
        to_float64(to_storage(x, "float16"), "float16"), x.astype(np.float16).astype(np.float64)
    )
    try:
        import ml_dtypes  # noqa: PLC0415

        want = x.astype(ml_dtypes.bfloat16).astype(np.float64)
        assert np.array_equal(to_float64(to_storage(x, "bfloat16"), "bfloat16"), want)
        print("dry-run: bfloat16 rounding matches ml_dtypes")
    except ImportError:
        pass
    for (op, tag), n in sorted(counts.items()):
        print(f"dry-run: {op:3s} {tag:8s} {n:4d} problems")
    print(
        f"dry-run: reference.py einsum vs loops on {checked} float64 cases: {failures} mismatches"
    )
    bench = bench_problems(("float16",), ("NHWC",))
    print(f"dry-run: {len(bench)} benchmark layers per (dtype, format); e.g.")
    for suite, p in bench[:3] + bench[-2:]:
        print(
            f"  {suite:16s} {p.op} {p.geometry.name:28s} in={p.input_shape} dy={p.dy_shape} "
            f"MB={p.tensor_bytes() / 1e6:.1f} GFLOP={2 * p.macs() / 1e9:.2f}"
        )
    for p in large_problems():
        print(
            f"  large {p.op}: input {p.input_shape} ({math.prod(p.input_shape):,} elements > "
            f"2^31 = {2**31:,}: {math.prod(p.input_shape) > 2**31})"
        )
    return failures
