"""Run op calls in a separate Python process, surviving crashes (validation, determinism).

Parent side: :func:`run_jobs` writes each job's runs to a JSON file and starts
``sys.executable tests/subprocess_worker.py JOB RESULTS`` (jobs run concurrently, one process
each). The worker appends one JSON line per finished run and flushes it, so when a run kills the
process (a CHECK-abort, a SIGFPE) the first run without a result is the culprit: it is reported as
``{"crashed": True, "returncode": rc}`` (rc < 0 is the signal) and the worker is restarted after
it. Nothing at module level imports TensorFlow: the parent must stay free to choose the child's
environment (oneDNN, thread counts).

A run is a dict::

    {"key": str, "impl": "ours" | "tf", "op": "cbf" | "dbf" | "dbi",
     "mode": "eager" | "function",
     "tensors": {name: {"shape": [...], "dtype": "float32", "seed": int}},
     "sizes": {name: {"value": int | list | nested list, "dtype": "int32"}},
     "attrs": {...}, "repeat": int}

In "function" mode every tensor, the sizes included, is an argument of a ``tf.function``, so
shape functions see shapes but no values. A result is ``{"key", "ok": True, "shape", "dtype",
"all_zero", "finite", "sha256": [one per repeat]}`` or ``{"key", "ok": False, "error_class",
"message"}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OP_NAMES = {
    "cbf": "Conv2DBackpropFilter",
    "dbf": "DepthwiseConv2dNativeBackpropFilter",
    "dbi": "DepthwiseConv2dNativeBackpropInput",
}
OUR_FUNCTIONS = {
    "cbf": "conv2d_backprop_filter",
    "dbf": "depthwise_conv2d_native_backprop_filter",
    "dbi": "depthwise_conv2d_native_backprop_input",
}


# --------------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------------


def _read_results(path: Path) -> dict[str, dict]:
    results = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    result = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash
                    continue
                results[result["key"]] = result
    return results


def _run_one_job(runs, env_overrides, timeout, workdir: Path, index: int) -> dict[str, dict]:
    env = dict(os.environ)
    env.update({"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"})
    env.update(env_overrides)
    results: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    remaining = list(runs)
    attempt = 0
    while remaining:
        attempt += 1
        job_path = workdir / f"job{index}_{attempt}.json"
        out_path = workdir / f"out{index}_{attempt}.jsonl"
        log_path = workdir / f"log{index}_{attempt}.txt"
        job_path.write_text(json.dumps(remaining))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, __file__, str(job_path), str(out_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                timed_out = False
            except subprocess.TimeoutExpired:
                proc.kill()
                returncode = proc.wait()
                timed_out = True
        got = _read_results(out_path)
        results.update(got)
        missing = [run for run in remaining if run["key"] not in got]
        if not missing:
            break
        culprit = missing[0]
        tail = log_path.read_text(errors="replace")[-3000:]
        results[culprit["key"]] = {
            "key": culprit["key"],
            "ok": False,
            "crashed": not timed_out,
            "timed_out": timed_out,
            "returncode": returncode,
            "message": tail,
        }
        remaining = missing[1:]
        if timed_out:
            for run in remaining:
                results[run["key"]] = {
                    "key": run["key"],
                    "ok": False,
                    "timed_out": True,
                    "message": "not run: time budget exhausted",
                }
            break
    return results


def run_jobs(jobs, timeout: float = 600) -> list[dict[str, dict]]:
    """Runs each job ``(runs, env_overrides)`` in its own process, concurrently.

    Returns one ``{key: result}`` dict per job.
    """
    outputs: list[dict[str, dict] | None] = [None] * len(jobs)
    errors: list[BaseException] = []
    with tempfile.TemporaryDirectory(prefix="tf_convgrad_tests_") as tmp:

        def target(k, runs, env_overrides):
            try:
                outputs[k] = _run_one_job(runs, env_overrides, timeout, Path(tmp), k)
            except BaseException as error:  # noqa: BLE001 - re-raised in the parent thread
                errors.append(error)

        threads = [
            threading.Thread(target=target, args=(k, runs, env))
            for k, (runs, env) in enumerate(jobs)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return outputs  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Worker side (runs as a script)
# --------------------------------------------------------------------------------------------------


def _make_tensor(tf, np, spec):
    shape, dtype = spec["shape"], spec["dtype"]
    rng = np.random.default_rng(spec.get("seed", 0))
    if dtype.startswith("int"):
        return tf.constant(rng.integers(-3, 4, shape), dtype=dtype)
    return tf.cast(tf.constant(rng.uniform(-1.0, 1.0, shape)), dtype)


def _run(tf, np, hashlib, ours, run):
    op = run["op"]
    fn = (
        getattr(ours, OUR_FUNCTIONS[op])
        if run["impl"] == "ours"
        else getattr(tf.raw_ops, OP_NAMES[op])
    )
    args = {name: _make_tensor(tf, np, spec) for name, spec in run.get("tensors", {}).items()}
    for name, spec in run.get("sizes", {}).items():
        args[name] = tf.constant(np.asarray(spec["value"], dtype=spec.get("dtype", "int32")))
    attrs = run.get("attrs", {})
    if run.get("mode", "eager") == "function":
        names = list(args)

        def body(*values):
            return fn(**dict(zip(names, values, strict=True)), **attrs)

        graph_fn = tf.function(body, autograph=False)

        def call():
            return graph_fn(*[args[n] for n in names])
    else:

        def call():
            return fn(**args, **attrs)

    hashes = []
    try:
        for _ in range(run.get("repeat", 1)):
            value = call().numpy()
            hashes.append(hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest())
    except Exception as error:  # noqa: BLE001 - every failure is a result
        return {
            "key": run["key"],
            "ok": False,
            "error_class": type(error).__name__,
            "message": getattr(error, "message", None) or str(error),
        }
    as64 = value.astype(np.float64)
    return {
        "key": run["key"],
        "ok": True,
        "shape": list(value.shape),
        "dtype": str(value.dtype),
        "all_zero": bool(not np.any(as64)),
        "finite": bool(np.all(np.isfinite(as64))),
        "sha256": hashes,
    }


def _worker_main(job_path: str, out_path: str) -> int:
    import hashlib  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    runs = json.loads(Path(job_path).read_text())
    threads = os.environ.get("TF_CONVGRAD_TEST_INTRA_OP_THREADS")
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    ours = None
    if any(run["impl"] == "ours" for run in runs):
        import tf_convgrad as ours  # noqa: PLC0415
    with open(out_path, "a", buffering=1) as out:
        for run in runs:
            out.write(json.dumps(_run(tf, np, hashlib, ours, run)) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1], sys.argv[2]))
