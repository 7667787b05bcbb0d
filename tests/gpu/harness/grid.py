"""The correctness grid: its problems and the checks of each result.

Every op x dtype x format x padding over awkward geometries, plus the same problems with each
kernel variant forced. Each problem runs three times with the output and scratch poisoned
(NaN bytes) first; on the emulation the three runs use the forward, reversed and shuffled fiber
schedules. A result passes when it is fully written, within the package's tolerance of the
float64 reference (``tools/metrics.py``), exactly zero where the sum is empty, and bitwise equal
across the runs.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from .capi import to_float64
from .package import GEOMETRY, METRICS, OPTABLE
from .problem import Geometry, Problem, make_inputs
from .torch_oracle import TorchConv, torch_tensor

#: Runs per problem (the emulation cycles through its three schedules).
REPEATS = 3
#: Seconds one grid problem may take on a GPU, for the hardware check's plan and deadline.
SECONDS_PER_PROBLEM = 0.05

G = Geometry
# Depthwise geometries: both depthwise ops. Names say what is awkward.
DW_GEOMETRIES = [
    G("3x3_c32", (2, 9, 11, 32), (3, 3, 32, 1)),
    G("3x3_s2_c24", (2, 10, 7, 24), (3, 3, 24, 1), (2, 2)),
    G("3x3_c3_odd", (3, 7, 5, 3), (3, 3, 3, 1)),
    G("3x3_c130_tiles", (1, 6, 5, 130), (3, 3, 130, 1)),
    G("5x5_c20", (1, 12, 10, 20), (5, 5, 20, 1)),
    G("5x5_s2x1_d1x2_c12", (2, 13, 11, 12), (5, 5, 12, 1), (2, 1), (1, 2)),
    G("3x3_m3_c5", (2, 8, 9, 5), (3, 3, 5, 3)),
    G("7x7_c7_chunks", (1, 15, 14, 7), (7, 7, 7, 1)),
    G("1x1_s2_m2", (3, 6, 6, 10), (1, 1, 10, 2), (2, 2)),
    G("2x4_s3x2_d2x3_m2", (2, 14, 17, 6), (2, 4, 6, 2), (3, 2), (2, 3)),
    G("3x3_c1_m8", (2, 9, 9, 1), (3, 3, 1, 8)),
    G("2x2_s3_c8", (1, 11, 11, 8), (2, 2, 8, 1), (3, 3)),
    G("3x3_s1x2_d3_c9", (2, 12, 13, 9), (3, 3, 9, 1), (1, 2), (3, 3)),
    G("3x3_c33_rows", (3, 19, 4, 33), (3, 3, 33, 1), (2, 1)),
    G("empty_batch", (0, 5, 5, 4), (3, 3, 4, 1)),
    G("valid_out0", (1, 2, 2, 3), (3, 3, 3, 1), paddings=("VALID",)),
    G("zero_channels", (1, 5, 5, 0), (3, 3, 0, 2)),
]
CBF_GEOMETRIES = [
    G("3x3_c16_o24", (2, 9, 8, 16), (3, 3, 16, 24)),
    G("1x1_c40_o136", (2, 7, 6, 40), (1, 1, 40, 136)),
    G("3x3_c64_o160_large", (1, 12, 12, 64), (3, 3, 64, 160)),
    G("3x3_g4_cf4", (2, 8, 8, 16), (3, 3, 4, 12)),
    G("3x3_g6_cf1", (2, 8, 8, 6), (3, 3, 1, 12)),
    G("3x3_s2x1_d2_c8", (2, 13, 12, 8), (3, 3, 8, 8), (2, 1), (2, 2)),
    G("5x3_s1x2_c5_o7", (2, 11, 9, 5), (5, 3, 5, 7), (1, 2)),
    G("3x3_c1_o4", (1, 7, 7, 1), (3, 3, 1, 4)),
    G("3x3_k1600_c8", (4, 20, 20, 8), (3, 3, 8, 8)),
    G("3x3_g2_o130", (1, 9, 10, 12), (3, 3, 6, 130)),
    G("empty_batch", (0, 5, 5, 4), (3, 3, 4, 2)),
    G("valid_out0", (1, 2, 2, 3), (3, 3, 3, 2), paddings=("VALID",)),
]
VARIANTS = [
    {"force_generic": 1},
    {"force_index64": 1},
    {"force_splits": 3},
    {"force_splits": 11},  # more splits than the second pass has lanes
    {"misalign": 1},  # tensors one element off alignment: no vector accesses
    {"force_simt": 1},  # CBF, half/bfloat16 only
]


def grid(quick: bool) -> list[Problem]:
    """The grid's problems; ``quick``: float16 and float32, SAME and EXPLICIT, float32 variants."""
    dtypes = ("float16", "float32") if quick else METRICS.DTYPES
    paddings = ("SAME", "EXPLICIT") if quick else GEOMETRY.PADDINGS
    variant_dtypes = ("float32",) if quick else ("float32", "bfloat16")
    problems = []
    for op in OPTABLE.KEYS:
        geometries = CBF_GEOMETRIES if op == "cbf" else DW_GEOMETRIES
        for g in geometries:
            for padding, fmt in itertools.product(g.paddings, GEOMETRY.FORMATS):
                if padding not in paddings and len(g.paddings) > 1:
                    continue
                for dtype in dtypes:
                    problems.append((op, g, padding, fmt, dtype, {}, ""))
                if g.input_shape[0] == 0 or padding != "EXPLICIT":
                    continue
                for variant in VARIANTS:
                    if "force_simt" in variant and op != "cbf":
                        continue
                    for dtype in variant_dtypes:
                        if "force_simt" in variant and dtype not in ("float16", "bfloat16"):
                            dtype = "float16"
                        problems.append((op, g, padding, fmt, dtype, variant, "variant"))
    out, seen = [], set()
    for op, g, padding, fmt, dtype, options, tag in problems:
        try:
            p = Problem(op, g, padding, fmt, dtype, dict(options), tag)
        except ValueError:
            continue  # e.g. VALID with a filter larger than the input
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out


def check_grid(runner, problems: list[Problem], torch=None, verbose=False, deadline=None):
    """Runs and checks each problem; returns one row (a dict) per problem run.

    Args:
        runner: A :class:`~.backends.Runner`.
        problems: The problems, in order.
        torch: PyTorch on a GPU, to show cuDNN's error against the same reference; or None.
        verbose: Print every problem, not only the failures.
        deadline: Stops before a problem when ``deadline.allows(SECONDS_PER_PROBLEM)`` is false
            (the rows so far are returned); None runs every problem.
    """
    emulated = runner.backend.name == "emulate"
    schedules = (0, 1, 2) if emulated else (0,)
    rows = []
    start = time.monotonic()
    for index, p in enumerate(problems):
        if deadline is not None and not deadline.allows(SECONDS_PER_PROBLEM):
            break
        first, dy = make_inputs(p)
        ref = p.reference(to_float64(first, p.dtype), to_float64(dy, p.dtype))
        row = {
            "id": p.id,
            "op": p.op,
            "dtype": p.dtype,
            "format": p.data_format,
            "tag": p.tag,
            "kernel": runner.describe(p),
            "ok": True,
            "why": "",
        }
        try:
            outs = runner.run(p, first, dy, repeats=REPEATS, schedules=schedules)
        except RuntimeError as e:
            row.update(ok=False, why=str(e))
            rows.append(row)
            print(f"FAIL {p.id}: {e}", flush=True)
            continue
        got = to_float64(outs[0], p.dtype)
        row["err"] = err = METRICS.relative_error(got, ref)
        why = []
        if got.size and not np.all(np.isfinite(got)):
            why.append(f"{int(np.sum(~np.isfinite(got)))} elements not written (NaN poison left)")
        elif ref.size and not np.any(ref):
            if np.any(got):
                why.append(f"expected exact zeros, max|got| = {np.max(np.abs(got)):.3g}")
        elif err > METRICS.TOLERANCES[p.dtype]:
            why.append(f"error {err:.3g} > {METRICS.TOLERANCES[p.dtype]:.3g}")
        for r, other in enumerate(outs[1:], 1):
            if other.tobytes() != outs[0].tobytes():
                what = f"schedule {schedules[r % len(schedules)]}" if emulated else "repeat"
                why.append(f"not bitwise reproducible ({what} {r} differs)")
                break
        if torch is not None and got.size:
            try:
                conv = TorchConv(
                    torch, p, torch_tensor(torch, first, p.dtype), torch_tensor(torch, dy, p.dtype)
                )
                row["torch_err"] = METRICS.relative_error(conv.result(), ref)
            except Exception as e:  # noqa: BLE001 - informative only
                row["torch_err"] = float("nan")
                if verbose:
                    print(f"  torch failed on {p.id}: {e}")
        row.update(ok=not why, why="; ".join(why))
        rows.append(row)
        if not row["ok"] or verbose:
            status = "ok  " if row["ok"] else "FAIL"
            print(f"{status} {p.id} [{row['kernel']}] err={err:.3g} {row['why']}", flush=True)
        if (index + 1) % 100 == 0:
            print(
                f"  ... {index + 1}/{len(problems)} checked ({time.monotonic() - start:.0f} s)",
                flush=True,
            )
    return rows
