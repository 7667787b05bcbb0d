"""Op calls in crash-isolated worker processes (validation, determinism, the hostile corpus).

A thin layer over ``tf_convgrad.tools.worker``: the runs go to its child processes, whose task
function is ``op_task.py``, and the results come back by key. A run that kills its process (a
CHECK-abort, a SIGFPE) is reported as ``{"crashed": True, "returncode": rc, "signal": name}``
and the runs after it go on in a fresh process. The children start with oneDNN off
(``worker.BASE_ENV``) unless a job's environment says otherwise.

A run is a dict::

    {"key": str, "impl": "ours" | "tf", "op": "cbf" | "dbf" | "dbi",
     "mode": "eager" | "function" | "function_const",
     "tensors": {name: {"shape": [...], "dtype": "float32", "seed": int}},
     "sizes": {name: {"value": int | list | nested list, "dtype": "int32"}},
     "attrs": {...}, "repeat": int}

In "function" mode every tensor, the sizes included, is an argument of a ``tf.function``, so
shape functions see shapes but no values; in "function_const" the sizes are a constant inside
the function, so the shape function sees their value. A result is ``{"key", "ok": True,
"shape", "dtype", "all_zero", "finite", "sha256": [one per repeat], "seconds"}`` plus
``"value"`` (float64, flattened) when the output has at most ``op_task.MAX_VALUE_ELEMENTS``
elements, or ``{"key", "ok": False, "error_class", "message"}``, or one of the worker's crash
and time-out results; each names its process (``"worker"``, ``"pid"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tf_convgrad._optable import OPS
from tf_convgrad.tools import worker

HERE = Path(__file__).resolve().parent
TARGET = "op_task:prepare"


def _task(run: dict) -> dict:
    op = OPS[run["op"]]
    return {**run, "tf_name": op.tf_name, "function": op.function}


def _by_key(runs: Sequence[dict], results: Sequence[dict]) -> dict[str, dict]:
    return {run["key"]: {"key": run["key"], **r} for run, r in zip(runs, results, strict=True)}


def run(
    runs: Sequence[dict],
    env: Mapping[str, str] | None = None,
    workers: int = 2,
    case_timeout: float = 120,
    total_timeout: float = 1800,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict]:
    """Runs the runs in ``workers`` worker processes side by side; returns ``{key: result}``.

    Args:
        runs: The runs (see the module docstring).
        env: Environment overrides for the workers, e.g. ``{"TF_ENABLE_ONEDNN_OPTS": "1"}``.
        workers: Worker processes at a time; runs are dealt to them round-robin.
        case_timeout: Seconds one run may take before it is killed and marked timed out.
        total_timeout: Seconds for all runs; the runs left then are not run.
        progress: ``progress(done, total)``, called as results arrive.
    """
    results = worker.run(
        TARGET,
        [_task(r) for r in runs],
        env=env,
        workers=workers,
        task_timeout=case_timeout,
        timeout=total_timeout,
        progress=progress,
        sys_path=[HERE],
    )
    return _by_key(runs, results)


def run_jobs(
    jobs: Sequence[tuple[Sequence[dict], Mapping[str, str]]], timeout: float = 600
) -> list[dict[str, dict]]:
    """Runs each job ``(runs, env)`` in its own worker process, all jobs at the same time.

    Returns:
        One ``{key: result}`` dict per job.
    """
    outputs = worker.run_jobs(
        TARGET,
        [([_task(r) for r in runs], env) for runs, env in jobs],
        timeout=timeout,
        sys_path=[HERE],
    )
    return [_by_key(runs, results) for (runs, _), results in zip(jobs, outputs, strict=True)]
