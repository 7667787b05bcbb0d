"""Tasks for tests/robustness/test_worker_pool.py, run in the pool's child processes.

A task is a dict whose ``"kind"`` says what the child does: ``"echo"`` returns the task's
``"value"``, the environment variable named by ``"env"`` and what the child has imported;
``"print"`` prints ``"value"`` first; ``"signal"`` kills the child with the named signal;
``"hang"`` sleeps for an hour; ``"raise"`` raises. No imports beyond the standard library, so
the children start in milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def prepare(tasks: list[dict]):
    """The pool's target; a task ``{"kind": "fail_prepare"}`` anywhere makes it raise."""
    if any(task["kind"] == "fail_prepare" for task in tasks):
        raise RuntimeError("prepare refused the chain")
    return run_one


def run_one(task: dict) -> dict:
    kind = task["kind"]
    if kind == "signal":
        os.kill(os.getpid(), getattr(signal, task["signal"]))
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "raise":
        raise ValueError("the task raised")
    elif kind == "print":
        print(task["value"], flush=True)
    return {
        "ok": True,
        "value": task.get("value"),
        "env": os.environ.get(task.get("env", ""), None),
        "imported": sorted(m for m in ("tensorflow", "tf_convgrad") if m in sys.modules),
    }
