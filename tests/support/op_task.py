"""The worker side of ``subprocess_worker``: runs one op call per task, in a pool child.

Loaded by import name in the children of ``tf_convgrad.tools.worker`` (``prepare`` is the
target). Nothing at module level imports TensorFlow or ``tf_convgrad``: TF reads the environment
the parent chose when ``prepare`` imports it, and a child that runs only TF's ops never loads our
op library. The run format is documented in ``subprocess_worker``; the parent adds the op's
``"tf_name"`` and ``"function"`` from the op table, which the child does not import.
"""

from __future__ import annotations

import hashlib
import os
import time

#: Results up to this many elements come back whole (``"value"``), for value checks.
MAX_VALUE_ELEMENTS = 4096


def prepare(runs: list[dict]):
    """Imports TF (and ours if a run needs it), applies the thread setting; returns the runner."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    tf.get_logger().setLevel("ERROR")  # one tf.function per run: retracing warnings are noise
    threads = os.environ.get("TF_CONVGRAD_TEST_INTRA_OP_THREADS")
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        # And as many CPUs, where there are: the AMX core makes one task per CPU it may use, so
        # its split of the work changes too.
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[: max(1, int(threads))])
    ours = None
    if any(run["impl"] == "ours" for run in runs):
        import tf_convgrad as ours  # noqa: PLC0415

    return lambda run: _run(tf, np, ours, run)


def make_tensor(tf, np, spec: dict):
    """A tensor from ``{"shape", "dtype", "seed"}``: uniform in [-1, 1) (integers in [-3, 3])."""
    shape, dtype = spec["shape"], spec["dtype"]
    rng = np.random.default_rng(spec.get("seed", 0))
    if dtype.startswith("int"):
        return tf.constant(rng.integers(-3, 4, shape), dtype=dtype)
    return tf.cast(tf.constant(rng.uniform(-1.0, 1.0, shape)), dtype)


def _caller(tf, np, fn, run):
    """A no-argument function making the run's call in its mode."""
    tensors = {name: make_tensor(tf, np, spec) for name, spec in run.get("tensors", {}).items()}
    sizes = {
        name: np.asarray(spec["value"], dtype=spec.get("dtype", "int32"))
        for name, spec in run.get("sizes", {}).items()
    }
    attrs = run.get("attrs", {})
    mode = run.get("mode", "eager")
    if mode == "eager":
        args = {**tensors, **{name: tf.constant(value) for name, value in sizes.items()}}
        return lambda: fn(**args, **attrs)
    if mode == "function":
        args = {**tensors, **{name: tf.constant(value) for name, value in sizes.items()}}
    elif mode == "function_const":
        args = tensors
    else:
        raise ValueError(f"unknown mode {mode!r}")
    names = list(args)

    def body(*values):
        consts = {name: tf.constant(v) for name, v in sizes.items()} if mode != "function" else {}
        return fn(**dict(zip(names, values, strict=True)), **consts, **attrs)

    graph_fn = tf.function(body, autograph=False)
    return lambda: graph_fn(*[args[name] for name in names])


def _run(tf, np, ours, run: dict) -> dict:
    fn = (
        getattr(ours, run["function"])
        if run["impl"] == "ours"
        else getattr(tf.raw_ops, run["tf_name"])
    )
    start = time.perf_counter()
    hashes = []
    try:
        call = _caller(tf, np, fn, run)
        for _ in range(run.get("repeat", 1)):
            value = call().numpy()
            hashes.append(hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest())
    except Exception as error:  # noqa: BLE001 - every failure is a result
        return {
            "key": run["key"],
            "ok": False,
            "error_class": type(error).__name__,
            "message": getattr(error, "message", None) or str(error),
            "seconds": time.perf_counter() - start,
        }
    as64 = value.astype(np.float64)
    result = {
        "key": run["key"],
        "ok": True,
        "shape": list(value.shape),
        "dtype": str(value.dtype),
        "all_zero": bool(not np.any(as64)),
        "finite": bool(np.all(np.isfinite(as64))),
        "sha256": hashes,
        "seconds": time.perf_counter() - start,
    }
    if value.size <= MAX_VALUE_ELEMENTS:
        result["value"] = as64.ravel().tolist()
    return result
