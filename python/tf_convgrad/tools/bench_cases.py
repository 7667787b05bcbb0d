"""The benchmark's cases, their cost, their inputs and calls, and the progress bar.

Shared by the two measurements of ``python -m tf_convgrad bench``: timing (:mod:`.bench`) and peak
memory (:mod:`.bench_memory`). A case is a plain dict (it travels to the worker processes and into
the JSON report): ``op`` (``"CBF"``, ``"DBF"``, ``"DBI"``), ``name``, ``n``, ``h``, ``w``, ``c``,
``k`` (square filter), ``s`` (equal strides), ``mo`` (Cout for CBF, the depth multiplier for
depthwise), ``pad`` (``"SAME"`` or ``"VALID"``) and ``dtype``. The layers are the ``"bench"``
tier of :mod:`.problems`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._geometry import windowed_output_size
from .._optable import op
from . import worker
from .problems import tier

__all__ = ["cost", "make_calls", "output_bytes", "progress_bar", "run_worker", "suite"]

#: The order of the ops in the report.
OP_ORDER = ("DBF", "DBI", "CBF")

#: Layers also timed in bfloat16, float16 and float64 (float32 only otherwise).
_OTHER_DTYPES = {
    "DBF": ("mbv2 56x56x144 k3", "effb0 14x14x672 k5"),
    "DBI": ("mbv2 56x56x144 k3", "effb0 14x14x672 k5"),
    "CBF": ("rn50 28x28x128->128 k3", "rn50 14x14x1024->256 k1"),
}

_ITEM = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}


def suite(
    quick: bool = False, ops: Sequence[str] | None = None, dtypes: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The benchmark cases, op by op (DBF, DBI, CBF), as plain dicts.

    Args:
        quick: Four layers only (tier ``"bench_quick"``).
        ops: Only these ops (``"CBF"``, ``"DBF"``, ``"DBI"``).
        dtypes: Only these dtypes.
    """
    cases = []
    for label in OP_ORDER:
        key = op(label).key
        for problem in tier("bench_quick" if quick else "bench", [key]):
            n, h, w, c = problem.input_shape
            k, _, _, mo = problem.filter_shape
            names = ["float32"] + (
                ["bfloat16", "float16", "float64"] if problem.name in _OTHER_DTYPES[label] else []
            )
            for dt in names:
                if (ops and label not in ops) or (dtypes and dt not in dtypes):
                    continue
                s, pad = problem.strides[0], problem.padding
                cases.append(
                    dict(op=label, name=problem.name, n=n, h=h, w=w, c=c, k=k, s=s, mo=mo, pad=pad,
                         dtype=dt)
                )  # fmt: skip
    return cases


def _out_hw(case: dict[str, Any]) -> tuple[int, int]:
    return tuple(
        windowed_output_size(size, case["k"], 1, case["s"], case["pad"])[0]
        for size in (case["h"], case["w"])
    )


def cost(case: dict[str, Any]) -> tuple[int, int]:
    """(flops, bytes) of a case: 2 x multiply-adds, and the minimum memory traffic (read both
    inputs, write the result once)."""
    n, h, w, c, k, mo = (case[key] for key in ("n", "h", "w", "c", "k", "mo"))
    oh, ow = _out_hw(case)
    out_depth = mo if case["op"] == "CBF" else c * mo
    macs = n * oh * ow * k * k * c * mo
    elems = n * h * w * c + n * oh * ow * out_depth + k * k * c * mo
    return 2 * macs, elems * _ITEM[case["dtype"]]


def output_bytes(case: dict[str, Any]) -> int:
    """Size of the op's result: the filter gradient (CBF, DBF) or the input gradient (DBI)."""
    n, h, w, c, k, mo = (case[key] for key in ("n", "h", "w", "c", "k", "mo"))
    elems = n * h * w * c if case["op"] == "DBI" else k * k * c * mo
    return elems * _ITEM[case["dtype"]]


def make_calls(case: dict[str, Any], rng: Any, copies: int = 1) -> dict[str, Any]:
    """A case's inputs (random normal) and its calls as functions of a copy index: "ours", "tf"
    and, for 16-bit cases, "ours_f32" (ours on the same values in float32). Call i uses the i-th
    of ``copies`` different out_backprop tensors, so that calls in one graph are independent ops
    that Grappler cannot merge. Imports TensorFlow and our op library."""
    import numpy as np
    import tensorflow as tf

    import tf_convgrad

    row = op(case["op"])
    n, h, w, c, k, s, mo = (case[key] for key in ("n", "h", "w", "c", "k", "s", "mo"))
    oh, ow = _out_hw(case)
    dt = tf.as_dtype(case["dtype"])
    od = mo if row.key == "cbf" else c * mo

    def normal(shape):
        return tf.cast(rng.standard_normal(shape, dtype=np.float32), dt)

    x = normal((n, h, w, c))
    dys = [normal((n, oh, ow, od)) for _ in range(copies)]
    f = normal((k, k, c, mo))
    kw = dict(out_backprop=dys[0], strides=[1, s, s, 1], padding=case["pad"])
    if row.operand == "filter":
        kw.update(input_sizes=tf.constant([n, h, w, c]), filter=f)
    else:
        kw.update(input=x, filter_sizes=tf.constant([k, k, c, mo]))
    wide = {name: tf.cast(v, tf.float32) if name in ("input", "filter") else v
            for name, v in kw.items()}  # fmt: skip
    ours, theirs = getattr(tf_convgrad, row.function), getattr(tf.raw_ops, row.tf_name)
    calls = {
        "ours": lambda i=0: ours(**dict(kw, out_backprop=dys[i])),
        "tf": lambda i=0: theirs(**dict(kw, out_backprop=dys[i])),
    }
    if dt.size == 2:
        wide_dys = [tf.cast(d, tf.float32) for d in dys]
        calls["ours_f32"] = lambda i=0: ours(**dict(wide, out_backprop=wide_dys[i]))
    return calls


def progress_bar(label: str, done: int, total: int) -> None:
    """Draws a worker's progress on stderr: redrawn on a terminal, a line every 10 cases in a
    log."""
    width = 30
    filled = width * done // total
    line = f"  {label:10s} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if done == total else ""))
    elif done == total or done % 10 == 0:  # a log file gets a line every 10 cases
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run_worker(
    target: str,
    tasks: Sequence[Any],
    env: Mapping[str, str],
    progress: Callable[[int, int], None],
    what: str,
) -> list[dict[str, Any]]:
    """Runs ``tasks`` one after another in a worker process (:func:`.worker.run`), calling
    ``progress(done, total)`` once per finished task.

    Raises:
        RuntimeError: Naming ``what``, if a task killed its process or timed out.
    """
    reported = 0

    def report(done: int, total: int) -> None:
        nonlocal reported
        if done > reported:  # the pool also reports while nothing finished
            reported = done
            progress(done, total)

    results = worker.run(target, tasks, env=env, progress=report)
    failed = [r for r in results if not r.get("ok")]
    if failed:
        detail = failed[0].get("signal", "")
        raise RuntimeError(f"{what} failed ({detail}):\n" + failed[0].get("message", ""))
    return results
