"""Run ``tf.raw_ops`` convolution gradients in a subprocess, with oneDNN on or off.

TensorFlow picks between its native CPU kernels and the oneDNN (``_MklNative*``) kernels once per
process, from ``TF_ENABLE_ONEDNN_OPTS`` read at import time (``docs/SEMANTICS.md``, "Which
TensorFlow kernel runs"). To compare
against both implementations from one test session, :func:`run_raw_ops` batches the cases into a
worker process started with the requested setting and collects the results.

Crash safety: some inputs make TF abort the process (CHECK failures under oneDNN, a SIGFPE in
Grappler for zero strides in ``tf.function``). The cases therefore run in a crash-isolated worker
(:mod:`.worker`): a case that kills its process is reported as crashed, with the signal, and the
cases after it run in a fresh process.

The worker loads this file by path (``_prepare`` is its task function), so that the
``tf_convgrad`` package (whose ``__init__`` loads our op library) is not imported, and TF's own
kernels are the only ones registered; that is also why the package-relative imports below sit
inside the parent-side functions. Only with ``include_ours=True`` does the worker also import
``tf_convgrad`` and run our ops on the same tensors in the same process.

Each case may also ask for ``"device": "gpu"`` (TF's GPU kernels; reported as unavailable when
TensorFlow sees no GPU), ``"repeats": n`` (run n times; ``"deterministic"`` says whether all runs
were bitwise identical) and ``"tf32": False`` (turn TensorFloat-32 off for the case, which TF
enables by default for float32 on Ampere and newer GPUs).

Kernel identification (the ``"kernel"`` key) is *observed*, not guessed: every call runs with
``context.enable_run_metadata()`` and the op type of the executed node is read from the
partition graphs of the run metadata, in eager mode (each eager op runs as a one-node
function) and in ``tf.function``. The native kernel is reported as ``"<Op> (native)"``, a oneDNN
kernel by its op name, e.g. ``"_MklNativeConv2DBackpropFilter"``, a GPU kernel as
``"<Op> (GPU)"``. When the op fails, the eager
error text names the kernel (``__wrapped__<kernel>_device_...``); in ``tf.function`` the kernel is
predicted from the rewrite rules in ``docs/SEMANTICS.md``, "Which TensorFlow kernel runs" (oneDNN
on, float32 or bfloat16, not
EXPLICIT -> ``_MklNative<Op>``) and ``"kernel_source"`` says ``"predicted"``.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["predicted_kernel", "run_case", "run_raw_ops"]

_MODES = ("eager", "function")


def predicted_kernel(op: str, dtype: str, padding: Any, onednn: bool) -> str:
    """The kernel TF 2.21 should run for a CPU call, from TF's oneDNN rewrite rules.

    The rules are in docs/SEMANTICS.md, "Which TensorFlow kernel runs".

    float16 is predicted native: it is rewritten only on CPUs with oneDNN fp16 support
    (AVX512-FP16 or AMX), which our machines lack.

    Args:
        op: The TF op name.
        dtype: The ``T`` name.
        padding: The ``padding`` attribute.
        onednn: Whether ``TF_ENABLE_ONEDNN_OPTS`` is on.

    Returns:
        ``"_MklNative<Op>"`` or ``"<Op> (native)"``.
    """
    if isinstance(padding, bytes):
        padding = padding.decode()
    if onednn and dtype in ("float32", "bfloat16") and padding != "EXPLICIT":
        return "_MklNative" + op
    return f"{op} (native)"


def run_raw_ops(
    cases: Sequence[dict[str, Any]],
    onednn: bool,
    timeout: float = 600,
    include_ours: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Runs ``tf.raw_ops`` cases in a worker process with oneDNN on or off.

    Args:
        cases: Each a dict with keys ``"op"`` (TF's op name, e.g. ``"Conv2DBackpropFilter"``);
            ``"args"`` (input name to
            value: a float64 NumPy array for each ``T`` input, cast to ``dtype`` inside the worker;
            a list or integer array for the sizes input, lists becoming int32, arrays kept with
            their dtype); ``"attrs"`` (the op's attributes as keyword arguments); ``"dtype"``
            (``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``) and ``"mode"``
            (``"eager"``, or ``"function"`` for a ``tf.function`` with the ``T`` tensors as
            arguments and the sizes as a constant); optionally ``"device"`` (``"cpu"``, the
            default, or ``"gpu"``), ``"repeats"`` (runs per case, default 1) and ``"tf32"``
            (default True: TF's own default).
        onednn: Value of ``TF_ENABLE_ONEDNN_OPTS`` for the worker.
        timeout: Wall-clock budget in seconds for all the cases together, worker restarts
            included.
        include_ours: Also run the ``tf_convgrad`` op on the same tensors in the same worker and
            attach its result under the ``"ours"`` key of each result.
        progress: Called as ``progress(done, total)`` (in tasks) while the worker runs.

    Returns:
        One dict per case, in order, one of:

        * ``{"ok": True, "value": float64 ndarray, "kernel": str, "kernel_source": "observed",
          "deterministic": bool, "repeats": int}`` (``value`` is the first run);
        * ``{"ok": False, "error_class": "InvalidArgumentError", "message": str, "kernel": str,
          "kernel_source": "observed" | "predicted"}`` (any exception class: ``ValueError`` and
          ``TypeError`` come from graph construction in ``"function"`` mode);
        * ``{"ok": False, "crashed": True, "returncode": int, "signal": str, "message": <log
          tail>}`` when the case killed the worker (a negative return code is the signal);
        * ``{"ok": False, "timed_out": True, "returncode": int | None, "message": str}`` when the
          budget ran out before or while the case ran;
        * ``{"ok": False, "unavailable": True, "message": str}`` for a GPU case when TF sees no
          GPU.

        With ``include_ours``, ``"ours"`` holds a dict of the same form for our op. Every
        result also names the worker process that produced it (``"worker"``, ``"pid"``; see
        :mod:`.worker`).

    Raises:
        ValueError: On a malformed case.
        tf_convgrad.tools.worker.WorkerStartError: If the worker fails before it could run
            anything (e.g. TF cannot be imported); a ``RuntimeError``.
    """
    from . import worker

    tasks = []
    for index, case in enumerate(cases):
        _check_case(index, case)
        tasks.append(_task(case, "tf"))
        if include_ours:
            tasks.append(_task(case, "ours"))
    results = worker.run(
        f"{__file__}:_prepare",
        tasks,
        env={"TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0"},
        start_timeout=timeout,
        timeout=timeout,
        progress=progress,
    )
    if not include_ours:
        return results
    return [{**results[k], "ours": results[k + 1]} for k in range(0, len(tasks), 2)]


def run_case(tf: Any, ours: Any, case: dict[str, Any], impl: str = "tf") -> dict[str, Any]:
    """Runs one case in this process, as the worker does.

    Args:
        tf: The ``tensorflow`` module.
        ours: The ``tf_convgrad`` module (for ``impl="ours"``), or None.
        case: A case as :func:`run_raw_ops` takes it.
        impl: ``"tf"`` (``tf.raw_ops``) or ``"ours"``.

    Returns:
        A result as :func:`run_raw_ops` returns it (never ``crashed`` or ``timed_out``).
    """
    return _run_task(tf, ours, _task(case, impl))


def _task(case: dict[str, Any], impl: str) -> dict[str, Any]:
    """A worker task: the case with the op-table facts the worker cannot import."""
    from .._optable import BY_TF_NAME

    op = BY_TF_NAME[case["op"]]
    return {**case, "impl": impl, "sizes_name": op.sizes, "ours_function": op.function}


def _check_case(index: int, case: dict[str, Any]) -> None:
    from .._optable import BY_TF_NAME
    from .metrics import DTYPES

    op = case.get("op")
    if op not in BY_TF_NAME:
        raise ValueError(f"case {index}: unknown op {op!r}; expected one of {list(BY_TF_NAME)}")
    if case.get("dtype") not in DTYPES:
        raise ValueError(f"case {index}: dtype must be one of {DTYPES}, got {case.get('dtype')!r}")
    if case.get("mode", "eager") not in _MODES:
        raise ValueError(f"case {index}: mode must be one of {_MODES}, got {case.get('mode')!r}")
    if case.get("device", "cpu") not in ("cpu", "gpu"):
        raise ValueError(f"case {index}: device must be 'cpu' or 'gpu', got {case.get('device')!r}")
    if not isinstance(case.get("repeats", 1), int) or case.get("repeats", 1) < 1:
        raise ValueError(f"case {index}: repeats must be an integer >= 1")
    if not isinstance(case.get("args"), dict) or not isinstance(case.get("attrs", {}), dict):
        raise ValueError(f"case {index}: 'args' and 'attrs' must be dicts")


# --------------------------------------------------------------------------------------------
# Worker side. Everything below runs in the worker process too, which imports TF after the
# parent has set TF_ENABLE_ONEDNN_OPTS.


def _prepare(tasks: list[dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The worker's task function (:mod:`.worker`): imports TF (and ours if a task needs it)."""
    import tensorflow as tf

    # One tf.function per task ("function" mode) is by design: TF's retracing warning is noise here.
    tf.get_logger().setLevel("ERROR")
    ours = None
    if any(task["impl"] == "ours" for task in tasks):
        sys.path.append(str(Path(__file__).resolve().parents[2]))  # a fallback: installed wins
        import tf_convgrad as ours
    return functools.partial(_run_task, tf, ours)


def _run_task(tf: Any, ours: Any, task: dict[str, Any]) -> dict[str, Any]:
    from tensorflow.python.eager import context

    op = task["op"]
    attrs = dict(task.get("attrs", {}))
    dtype = getattr(tf, task["dtype"])
    mode = task.get("mode", "eager")
    if task["impl"] == "ours":
        fn = getattr(ours, task["ours_function"])
    else:
        fn = getattr(tf.raw_ops, op)
    sizes_name = task["sizes_name"]

    tensors = {}
    sizes = {}
    for name, value in task["args"].items():
        if name == sizes_name:
            if not isinstance(value, np.ndarray):
                value = np.asarray(value, dtype=np.int32)
            sizes[name] = value
        else:
            value = np.asarray(value)
            if np.issubdtype(value.dtype, np.floating):
                tensors[name] = tf.cast(tf.constant(value.astype(np.float64)), dtype)
            else:
                tensors[name] = tf.constant(value)

    if mode == "function":
        names = list(tensors)

        def body(*values: Any) -> Any:
            return fn(**dict(zip(names, values, strict=True)), **sizes, **attrs)

        graph_fn = tf.function(body, autograph=False)

        def call() -> Any:
            return graph_fn(*[tensors[n] for n in names])
    else:
        sizes_t = {name: tf.constant(value) for name, value in sizes.items()}

        def call() -> Any:
            return fn(**tensors, **sizes_t, **attrs)

    device = task.get("device", "cpu")
    if device == "gpu" and not tf.config.list_physical_devices("GPU"):
        return {"ok": False, "unavailable": True, "message": "TensorFlow sees no GPU"}
    if device == "gpu":
        tf.config.experimental.enable_tensor_float_32_execution(task.get("tf32", True))
    repeats = int(task.get("repeats", 1))
    ctx = context.context()
    ctx.enable_run_metadata()
    values = []
    try:
        for _ in range(repeats):
            if device == "gpu":
                with tf.device("/GPU:0"):
                    output = call()
            else:
                output = call()
            values.append(output.numpy())
    except Exception as error:  # every failure is a result to report
        message = getattr(error, "message", None) or str(error)
        kernel, source = _kernel_from_message(message, op), "observed"
        if kernel is None:
            kernel, source = _predict(task), "predicted"
        return {
            "ok": False,
            "error_class": type(error).__name__,
            "message": message,
            "kernel": kernel,
            "kernel_source": source,
        }
    finally:
        # Exporting also clears the collected metadata, so nothing leaks into the next task.
        metadata = ctx.export_run_metadata()
        ctx.disable_run_metadata()
    kernel, source = _kernel_from_metadata(metadata, op, task["impl"]), "observed"
    if kernel is None:
        kernel, source = _predict(task), "predicted"
    first = np.ascontiguousarray(values[0])
    deterministic = all(
        v.shape == first.shape and np.ascontiguousarray(v).tobytes() == first.tobytes()
        for v in values[1:]
    )
    return {
        "ok": True,
        "value": first.astype(np.float64),
        "kernel": kernel,
        "kernel_source": source,
        "deterministic": deterministic,
        "repeats": repeats,
    }


def _predict(task: dict[str, Any]) -> str:
    if task["impl"] == "ours":
        return "ConvGrad>" + task["op"]
    if task.get("device", "cpu") == "gpu":
        return f"{task['op']} (GPU)"
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0", "false", "False")
    return predicted_kernel(
        task["op"], task["dtype"], task.get("attrs", {}).get("padding", ""), onednn
    )


def _kernel_name(op: str, node_op: str) -> str:
    return f"{op} (native)" if node_op == op else node_op


def _kernel_from_metadata(metadata: Any, op: str, impl: str) -> str | None:
    """The op type of the executed node implementing ``op``, from the partition graphs."""
    found = None
    for graph in metadata.partition_graphs:
        for node in graph.node:
            if node.op.endswith(op):
                found = node
    if found is None:
        return None
    on_gpu = "GPU" in found.device.upper()
    if impl == "ours":
        return found.op + (" (GPU)" if on_gpu else "")
    if on_gpu:
        return f"{found.op} (GPU)"
    return _kernel_name(op, found.op)


def _kernel_from_message(message: str, op: str) -> str | None:
    """The kernel named in an eager error (``{{function_node __wrapped__<kernel>_device_...``)."""
    match = re.search(r"__wrapped__(\S+?)_device_", message)
    if match is None:
        return None
    name = match.group(1)
    if name.lstrip("_").startswith("Mkl"):
        return "_" + name.lstrip("_")
    return _kernel_name(op, name)
