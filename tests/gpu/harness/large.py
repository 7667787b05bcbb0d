"""The cases over 2^31 elements (GPU only): one per op, half precision.

Each op runs on a [16, 512, 512, 520] input of 2,181,038,080 elements (the input gradient for
dbi), with random data made on the GPU. The check is against a float64 reference built from
plain tensor ops on batch slices (:func:`~.torch_oracle.float64_reference`, not cuDNN).
"""

from __future__ import annotations

import math
import time

from .package import METRICS
from .problem import Geometry, Problem
from .torch_oracle import float64_reference

LARGE = [
    # (op, input NHWC, filter HWIO, format); the input (dx for dbi) has > 2^31 elements.
    ("dbi", (16, 512, 512, 520), (3, 3, 520, 1), "NHWC"),
    ("dbf", (16, 512, 512, 520), (3, 3, 520, 1), "NHWC"),
    ("cbf", (16, 512, 512, 520), (1, 1, 520, 8), "NCHW"),
]
#: Seconds one large case may take, for the hardware check's plan and deadline.
SECONDS_PER_CASE = 30.0


def large_problems() -> list[Problem]:
    """The :data:`LARGE` cases as problems (SAME padding, float16)."""
    return [
        Problem(
            op, Geometry(f"large_{'x'.join(map(str, shape))}", shape, filt), "SAME", fmt, "float16"
        )
        for op, shape, filt, fmt in LARGE
    ]


def check_large(runner, torch, deadline=None) -> list[dict]:
    """Runs and checks each large case; returns one row per case run.

    ``deadline``: stops before a case when ``deadline.allows(SECONDS_PER_CASE)`` is false.
    """
    rows = []
    for p in large_problems():
        if deadline is not None and not deadline.allows(SECONDS_PER_CASE):
            break
        elems = max(math.prod(p.input_shape), math.prod(p.dy_shape))
        t0 = time.monotonic()
        row = {"id": p.id, "kernel": runner.describe(p), "elements": elems}
        try:
            rows.append(_check_large_one(runner, torch, p, row))
        except Exception as e:  # noqa: BLE001 - reported as a failure
            row.update(ok=False, why=f"{type(e).__name__}: {e}")
            rows.append(row)
        finally:
            torch.cuda.empty_cache()
        print(
            f"{'ok  ' if row.get('ok') else 'FAIL'} {p.id} [{row['kernel']}] "
            f"elements={elems:,} err={row.get('err', float('nan')):.3g} {row.get('why', '')} "
            f"({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
    return rows


def _check_large_one(runner, torch, p: Problem, row: dict) -> dict:
    """Random data made on the GPU; float64 reference from tensor ops on batch slices."""
    t = torch
    gen = t.Generator(device="cuda").manual_seed(7)
    first = (t.rand(math.prod(p.first_shape), device="cuda", generator=gen) * 2 - 1).half()
    dy = (t.rand(math.prod(p.dy_shape), device="cuda", generator=gen) * 2 - 1).half()
    out_elems = math.prod(p.out_shape)
    out = t.full((out_elems * 2,), 0xFF, dtype=t.uint8, device="cuda")
    scratch_bytes = runner.scratch_bytes(p)
    scratch = t.full((max(scratch_bytes, 1),), 0xFF, dtype=t.uint8, device="cuda")
    runner.launch(
        p,
        first.data_ptr(),
        dy.data_ptr(),
        out.data_ptr(),
        scratch.data_ptr(),
        scratch_bytes,
        runner.backend.stream,
    )
    runner.backend.sync()
    ours = out.view(t.float16).reshape(p.out_shape)
    if not bool(t.isfinite(ours).all()):
        return dict(row, ok=False, why="unwritten (NaN) elements")
    n = p.input_nhwc[0]
    first_t = first.reshape(p.first_shape)
    dy_t = dy.reshape(p.dy_shape)
    one = p.with_batch(1)
    if p.op == "dbi":
        worst = 0.0
        for bi in (0, n - 1):  # batch entries are independent
            ref = float64_reference(t, one, first_t, dy_t[bi : bi + 1])
            worst = max(worst, _error(ours[bi : bi + 1].double(), ref))
    else:
        ref = None
        for bi in range(n):  # sum over the batch in float64
            part = float64_reference(t, one, first_t[bi : bi + 1], dy_t[bi : bi + 1])
            ref = part if ref is None else ref + part
        worst = _error(ours.double(), ref)
    ok = worst <= METRICS.TOLERANCES["float16"]
    return dict(row, ok=ok, err=worst, why="" if ok else f"error {worst:.3g}")


def _error(got, ref) -> float:
    """The norm-relative error of :func:`metrics.relative_error`, on CUDA tensors."""
    scale = float(ref.abs().max())
    return float((got - ref).abs().max()) / max(scale, 1e-300)
