"""Run ``tf.raw_ops`` convolution gradients in a subprocess, with oneDNN on or off.

TensorFlow picks between its native CPU kernels and the oneDNN (``_MklNative*``) kernels once per
process, from ``TF_ENABLE_ONEDNN_OPTS`` read at import time (``docs/SEMANTICS.md``, "Which
TensorFlow kernel runs"). To compare
against both implementations from one test session, :func:`run_raw_ops` batches the cases into a
worker process started with the requested setting and collects the results.

Crash safety: some inputs make TF abort the process (CHECK failures under oneDNN, a SIGFPE in
Grappler for zero strides in ``tf.function``). The worker therefore writes the result of every
task to its own file as soon as it finishes. When the worker dies, the first task without a result
is the one that killed it; the parent marks it crashed and restarts the worker after it.

The worker is started as ``python -c <bootstrap> <this file> ...``: it loads this file by path,
so that the ``tf_convgrad`` package (whose ``__init__`` loads our op library) is not imported,
and TF's own kernels are the only ones registered. Only with ``include_ours=True`` does the
worker also import ``tf_convgrad`` and run our ops on the same tensors in the same process.

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

import argparse
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OPS", "OURS_FUNCTIONS", "predicted_kernel", "run_raw_ops", "signal_name"]

#: The op names accepted in a case's ``"op"``, mapped to the name of their integer sizes input.
OPS = {
    "Conv2DBackpropFilter": "filter_sizes",
    "DepthwiseConv2dNativeBackpropFilter": "filter_sizes",
    "DepthwiseConv2dNativeBackpropInput": "input_sizes",
}

#: The ``tf_convgrad`` wrapper that mirrors each TF op.
OURS_FUNCTIONS = {
    "Conv2DBackpropFilter": "conv2d_backprop_filter",
    "DepthwiseConv2dNativeBackpropFilter": "depthwise_conv2d_native_backprop_filter",
    "DepthwiseConv2dNativeBackpropInput": "depthwise_conv2d_native_backprop_input",
}

_DTYPES = ("float16", "bfloat16", "float32", "float64")
_MODES = ("eager", "function")

# Loads this file as a module without importing the tf_convgrad package.
_BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_tf_convgrad_oracle_worker', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "sys.exit(module._worker_main(sys.argv[2:]))\n"
)


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
        cases: Each a dict with keys ``"op"`` (a key of :data:`OPS`); ``"args"`` (input name to
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
        * ``{"ok": False, "crashed": True, "returncode": int, "message": <log tail>}`` when the
          case killed the worker (a negative return code is the signal number);
        * ``{"ok": False, "timed_out": True, "returncode": int | None, "message": str}`` when the
          budget ran out before or while the case ran;
        * ``{"ok": False, "unavailable": True, "message": str}`` for a GPU case when TF sees no
          GPU.

        With ``include_ours``, ``"ours"`` holds a dict of the same form for our op.

    Raises:
        ValueError: On a malformed case.
        RuntimeError: If the worker fails before it could run anything (e.g. TF cannot be
            imported).
    """
    tasks = []
    for index, case in enumerate(cases):
        _check_case(index, case)
        tasks.append({**case, "impl": "tf"})
        if include_ours:
            tasks.append({**case, "impl": "ours"})

    results: list[dict[str, Any] | None] = [None] * len(tasks)
    env = dict(os.environ)
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="tf_convgrad_oracle_") as tmp:
        workdir = Path(tmp)
        with open(workdir / "tasks.pkl", "wb") as f:
            pickle.dump(tasks, f, protocol=pickle.HIGHEST_PROTOCOL)
        package_parent = str(Path(__file__).resolve().parents[2])  # python/
        start = 0
        while start < len(tasks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for k in range(start, len(tasks)):
                    results[k] = _timed_out(None, "not run: the oracle's time budget ran out")
                break
            log_path = workdir / f"worker_{start}.log"
            command = [sys.executable, "-c", _BOOTSTRAP, str(Path(__file__).resolve())]
            command += ["--worker", str(workdir), "--start", str(start)]
            if include_ours:
                command += ["--ours-path", package_parent]
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
                )
                returncode, timed_out = _wait(proc, workdir, start, len(tasks), deadline, progress)
            done = start
            while done < len(tasks) and (workdir / f"result_{done}.pkl").exists():
                with open(workdir / f"result_{done}.pkl", "rb") as f:
                    results[done] = pickle.load(f)
                done += 1
            if done == len(tasks):
                break
            log_tail = _log_tail(log_path)
            if not (workdir / f"ready_{start}").exists() and not timed_out:
                raise RuntimeError(
                    f"oracle worker (TF_ENABLE_ONEDNN_OPTS={env['TF_ENABLE_ONEDNN_OPTS']}) "
                    f"exited with code {returncode} before running any case:\n{log_tail}"
                )
            if timed_out:
                results[done] = _timed_out(
                    returncode, log_tail or f"killed at the oracle's time limit ({timeout:g} s)"
                )
            else:
                results[done] = {
                    "ok": False,
                    "crashed": True,
                    "returncode": returncode,
                    "message": log_tail or f"worker killed ({signal_name(returncode)})",
                }
            start = done + 1

    if not include_ours:
        return results  # type: ignore[return-value]
    merged = []
    for k in range(0, len(tasks), 2):
        merged.append({**results[k], "ours": results[k + 1]})  # type: ignore[dict-item]
    return merged


def _check_case(index: int, case: dict[str, Any]) -> None:
    op = case.get("op")
    if op not in OPS:
        raise ValueError(f"case {index}: unknown op {op!r}; expected one of {list(OPS)}")
    if case.get("dtype") not in _DTYPES:
        raise ValueError(f"case {index}: dtype must be one of {_DTYPES}, got {case.get('dtype')!r}")
    if case.get("mode", "eager") not in _MODES:
        raise ValueError(f"case {index}: mode must be one of {_MODES}, got {case.get('mode')!r}")
    if case.get("device", "cpu") not in ("cpu", "gpu"):
        raise ValueError(f"case {index}: device must be 'cpu' or 'gpu', got {case.get('device')!r}")
    if not isinstance(case.get("repeats", 1), int) or case.get("repeats", 1) < 1:
        raise ValueError(f"case {index}: repeats must be an integer >= 1")
    if not isinstance(case.get("args"), dict) or not isinstance(case.get("attrs", {}), dict):
        raise ValueError(f"case {index}: 'args' and 'attrs' must be dicts")


def _timed_out(returncode: int | None, message: str) -> dict[str, Any]:
    return {"ok": False, "timed_out": True, "returncode": returncode, "message": message}


def _wait(
    proc: subprocess.Popen,
    workdir: Path,
    start: int,
    total: int,
    deadline: float,
    progress: Callable[[int, int], None] | None,
) -> tuple[int | None, bool]:
    """Waits for the worker, reporting progress; kills it at the deadline."""
    done = start
    while True:
        try:
            return proc.wait(timeout=0.5), False
        except subprocess.TimeoutExpired:
            pass
        if progress is not None:
            while done < total and (workdir / f"result_{done}.pkl").exists():
                done += 1
            progress(done, total)
        if time.monotonic() > deadline:
            proc.kill()
            return proc.wait(), True


_STARTUP_NOISE = re.compile(
    r"^I\d{4} |^WARNING: All log messages before absl|cuInit|cuda drivers|oneDNN custom operations"
)


def _log_tail(path: Path, limit: int = 2000) -> str:
    """The interesting end of a worker log: its fatal (CHECK) lines, else its last lines.

    TF's start-up chatter (info lines, the CUDA probe) is dropped; a worker killed by a signal
    without printing anything (SIGFPE) leaves an empty tail.
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    fatal = [line for line in lines if "Check failed" in line or re.match(r"F\d{4} ", line)]
    kept = fatal or [line for line in lines if line.strip() and not _STARTUP_NOISE.search(line)]
    return "\n".join(kept)[-limit:]


# --------------------------------------------------------------------------------------------
# Worker side. Everything below runs in the subprocess, which imports TF after the parent has
# set TF_ENABLE_ONEDNN_OPTS.


def _worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="tf_convgrad oracle worker")
    parser.add_argument("--worker", required=True, type=Path, help="work directory")
    parser.add_argument("--start", type=int, default=0, help="first task to run")
    parser.add_argument("--ours-path", default=None, help="import tf_convgrad from here")
    args = parser.parse_args(argv)

    import tensorflow as tf  # imported only after the parent set the env

    # One tf.function per task ("function" mode) is by design: TF's retracing warning is noise here.
    tf.get_logger().setLevel("ERROR")
    with open(args.worker / "tasks.pkl", "rb") as f:
        tasks = pickle.load(f)
    ours = None
    if args.ours_path is not None:
        sys.path.append(args.ours_path)  # a fallback: an installed tf_convgrad wins
        import tf_convgrad as ours
    (args.worker / f"ready_{args.start}").touch()
    for k in range(args.start, len(tasks)):
        result = _run_task(tf, ours, tasks[k])
        tmp_path = args.worker / f"result_{k}.tmp"
        with open(tmp_path, "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp_path, args.worker / f"result_{k}.pkl")
    return 0


def _run_task(tf: Any, ours: Any, task: dict[str, Any]) -> dict[str, Any]:
    from tensorflow.python.eager import context

    op = task["op"]
    attrs = dict(task.get("attrs", {}))
    dtype = getattr(tf, task["dtype"])
    mode = task.get("mode", "eager")
    if task["impl"] == "ours":
        fn = getattr(ours, OURS_FUNCTIONS[op])
    else:
        fn = getattr(tf.raw_ops, op)
    sizes_name = OPS[op]

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
        kernel, source = _kernel_from_message(message), "observed"
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


def _kernel_from_message(message: str) -> str | None:
    """The kernel named in an eager error (``{{function_node __wrapped__<kernel>_device_...``)."""
    match = re.search(r"__wrapped__(\S+?)_device_", message)
    if match is None:
        return None
    name = match.group(1)
    if name.lstrip("_").startswith("Mkl"):
        return "_" + name.lstrip("_")
    return _kernel_name(name, name) if name in OPS else name


def signal_name(returncode: int | None) -> str:
    """``"SIGABRT"`` for -6 and so on; the code itself otherwise."""
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            pass
    return f"exit code {returncode}"


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
