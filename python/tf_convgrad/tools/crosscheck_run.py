"""Running ``crosscheck``: ours, the TF implementations and the float64 reference on a grid.

Ours and the reference (:mod:`.reference`) run in this process; each TF implementation runs in
its own worker process (:mod:`.oracle`), all at once, while a :class:`Progress` display follows
them. Every result becomes an *entry*: its status against the reference (:func:`entry`), its
errors (:mod:`.metrics`), determinism and the kernel that ran.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import numpy as np

from .._optable import OPS
from . import oracle, reference, worker
from .metrics import TOLERANCES, abs_error, relative_error, round_to, ulp_distance
from .problems import Problem

__all__ = ["IMPLEMENTATIONS", "Progress", "entry", "gpu_available", "make_args", "run_grid"]

#: Implementations: key in a result row, display name.
IMPLEMENTATIONS = {
    "ours": "ours",
    "ours_gpu": "ours GPU",
    "tf_native": "TF native",
    "tf_onednn": "TF oneDNN",
    "tf_gpu": "TF GPU",
}


def make_args(config: Problem, dtype: str) -> dict[str, Any]:
    """Seeded op inputs for ``config``: uniform in [-1, 1), rounded to ``dtype``.

    The seed depends on the op and the configuration only, so every dtype sees the same data
    before rounding.

    Args:
        config: The configuration.
        dtype: The dtype the ``T`` inputs are rounded to.

    Returns:
        Keyword arguments for the op (and for the reference): float64 arrays exactly
        representable in ``dtype`` and the sizes as a list, all in ``config.data_format``.
    """
    row = OPS[config.op]
    rng = np.random.default_rng(zlib.crc32(f"{row.tf_name}|{config}".encode()))
    dy = rng.uniform(-1.0, 1.0, config.out_backprop_sizes)
    if row.operand == "filter":
        f = rng.uniform(-1.0, 1.0, config.filter_sizes)
        return {
            "input_sizes": config.input_sizes,
            "filter": round_to(f, dtype),
            "out_backprop": round_to(dy, dtype),
        }
    x = rng.uniform(-1.0, 1.0, config.input_sizes)
    return {
        "input": round_to(x, dtype),
        "filter_sizes": config.filter_sizes,
        "out_backprop": round_to(dy, dtype),
    }


def _run_reference(config: Problem, args: dict[str, Any], dilations=None) -> np.ndarray:
    function = getattr(reference, OPS[config.op].function)
    return function(**args, **config.attrs(dilations=dilations))


class Progress:
    """Progress of the implementations on a stream: a bar on a terminal, lines otherwise.

    Args:
        totals: Work items per implementation name.
        stream: Where to write (stderr by default).
        style: ``"bar"`` (one line redrawn in place), ``"lines"`` (a line every ``interval``
            seconds), ``"off"``, or ``"auto"``: a bar if ``stream`` is a terminal, else lines.
        interval: Seconds between lines in the ``"lines"`` style.
    """

    def __init__(
        self,
        totals: dict[str, int],
        stream: TextIO | None = None,
        style: str = "auto",
        interval: float = 5.0,
    ):
        self._stream = stream or sys.stderr
        if style == "auto":
            isatty = getattr(self._stream, "isatty", lambda: False)
            style = "bar" if isatty() else "lines"
        self.style = style
        self._totals = dict(totals)
        self._done = dict.fromkeys(totals, 0)
        self._interval = interval if style == "lines" else 0.2
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = -math.inf
        self._drawn = False

    def update(self, name: str, done: int, force: bool = False) -> None:
        """Records that ``name`` has finished ``done`` items; redraws if it is time to."""
        with self._lock:
            self._done[name] = min(done, self._totals[name])
            now = time.monotonic()
            if self.style == "off" or (not force and now - self._last < self._interval):
                return
            self._last = now
            self._write(self.render(now - self._start))

    def callback(self, name: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for :func:`oracle.run_raw_ops`."""
        return lambda done, _total: self.update(name, done)

    def render(self, elapsed: float, width: int = 24) -> str:
        """The progress text (without line control characters)."""
        total = sum(self._totals.values())
        done = sum(self._done.values())
        fraction = done / total if total else 1.0
        parts = [f"{name} {self._done[name]}/{n}" for name, n in self._totals.items()]
        eta = ""
        if 0 < fraction < 1:
            eta = f", ~{elapsed * (1 - fraction) / fraction:.0f} s left"
        timing = f"{elapsed:.0f} s{eta}"
        if self.style == "bar":
            filled = int(round(width * fraction))
            bar = "#" * filled + "-" * (width - filled)
            return f"crosscheck [{bar}] {fraction:4.0%} | " + " | ".join(parts) + f" | {timing}"
        return f"crosscheck: {fraction:.0%} | " + " | ".join(parts) + f" | {timing}"

    def _write(self, text: str) -> None:
        if self.style == "bar":
            self._stream.write("\r" + text + "\x1b[K")
            self._drawn = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """Draws the final state and ends the bar's line."""
        with self._lock:
            if self.style == "off":
                return
            self._write(self.render(time.monotonic() - self._start))
            if self._drawn:
                self._stream.write("\n")
                self._stream.flush()


def _run_oracle(
    name: str,
    cases: list[dict[str, Any]],
    onednn: bool,
    progress: Progress,
    out: dict[str, Any],
    timeout: float,
) -> None:
    try:
        out[name] = oracle.run_raw_ops(
            cases, onednn=onednn, timeout=timeout, progress=progress.callback(name)
        )
        progress.update(name, len(cases))
    except Exception as error:  # reported; the TF oracles never fail the run
        out[name] = error


def _run_ours(case: dict[str, Any]) -> dict[str, Any]:
    """Our op on one case, in this process (same code path as the oracle's workers)."""
    import tensorflow as tf

    ours = importlib.import_module("tf_convgrad")  # loads our op library
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # one tf.function per case in "function" mode: no retracing warnings
    try:
        return oracle.run_case(tf, ours, case, "ours")
    except Exception as error:  # noqa: BLE001 -- a Python-level failure is a refusal too
        return {"ok": False, "error_class": type(error).__name__, "message": str(error)}
    finally:
        logger.setLevel(level)


def entry(
    result: Any,
    ref: np.ndarray,
    dtype: str,
    ref_undilated: np.ndarray | None = None,
    ours_value: np.ndarray | None = None,
) -> dict[str, Any]:
    """Classifies one implementation's result and measures its errors.

    Returns:
        ``status`` (ok / wrong / ignores dilation / refuses: <class> / crashed (<signal>) /
        timed out / unavailable), ``err`` (norm-relative), ``abs_err``, ``ulp``,
        ``deterministic`` (None when not repeated or not run), ``kernel``, ``kernel_source``,
        ``ours_diff`` (``max|x - ours| / max|ref|``, TF only) and ``message`` on failures.
    """
    out: dict[str, Any] = {
        "status": "unavailable",
        "err": None,
        "abs_err": None,
        "ulp": None,
        "deterministic": None,
        "kernel": None,
        "kernel_source": None,
        "ours_diff": None,
    }
    if isinstance(result, Exception) or result is None:
        if isinstance(result, Exception):
            out["message"] = str(result)
        return out
    out["kernel"] = result.get("kernel")
    out["kernel_source"] = result.get("kernel_source")
    if result.get("crashed"):
        out["status"] = f"crashed ({worker.signal_name(result.get('returncode'))})"
        out["message"] = result.get("message", "")
        return out
    if result.get("timed_out"):
        out["status"] = "timed out"
        out["message"] = result.get("message", "")
        return out
    if result.get("unavailable"):
        out["message"] = result.get("message", "")
        return out
    if not result["ok"]:
        out["status"] = "refuses: " + result["error_class"].removesuffix("Error")
        out["message"] = _first_line(result.get("message", ""))
        return out
    value = result["value"]
    tol = TOLERANCES[dtype]
    out["err"] = relative_error(value, ref)
    out["abs_err"] = abs_error(value, ref)
    out["ulp"] = ulp_distance(value, ref, dtype)
    if result.get("repeats", 1) > 1:
        out["deterministic"] = bool(result.get("deterministic"))
    if ours_value is not None and value.shape == ref.shape:
        out["ours_diff"] = relative_error(value, ours_value, scale=ref)
    if out["err"] <= tol:
        out["status"] = "ok"
    elif (
        ref_undilated is not None
        and relative_error(value, ref_undilated) <= 10 * tol
        and relative_error(value, ref_undilated) < out["err"]
    ):
        out["status"] = "ignores dilation"
    else:
        out["status"] = "wrong"
    return out


def _first_line(message: str) -> str:
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:[^\]]*\].*$", "", message, flags=re.S)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    # Graph-mode errors put the kernel message after a traceback, before "[[{{node ...}}]]".
    for i, line in enumerate(lines):
        if line.startswith("[[{{node") and i > 0:
            return lines[i - 1]
    return lines[0] if lines else ""


def gpu_available() -> bool:
    """Whether TensorFlow (in this process) sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _start_workers(
    workers: dict[str, tuple[bool, list[dict[str, Any]]]],
    names: dict[str, str],
    bar: Progress,
    out: dict[str, Any],
    timeout: float,
) -> list[threading.Thread]:
    """Starts a thread per TF worker, each filling ``out[name]`` with results or an error."""
    threads = []
    for key, (onednn, worker_cases) in workers.items():
        thread = threading.Thread(
            target=_run_oracle,
            args=(names[key], worker_cases, onednn, bar, out, timeout),
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    return threads


def run_grid(
    configs: Sequence[Problem],
    dtypes: Sequence[str],
    mode: str = "eager",
    with_tf: bool = True,
    devices: Sequence[str] = ("cpu",),
    repeats: int = 2,
    progress: str = "auto",
    timeout: float = 900,
    tf32: bool = True,
) -> list[dict[str, Any]]:
    """Runs every (configuration, dtype) pair and returns one row per pair.

    Ours and the float64 reference run in this process while the TF implementations run in
    worker processes (oneDNN off and on for ``"cpu"``, TF's GPU kernels for ``"gpu"``), in
    parallel.

    Args:
        configs: The configurations.
        dtypes: The dtypes to run each configuration in.
        mode: ``"eager"`` or ``"function"`` (for ours and for TF).
        with_tf: Run TF's implementations.
        devices: Where TF's kernels run: ``"cpu"`` (native and oneDNN) and/or ``"gpu"``.
        repeats: Runs per implementation and case, for the determinism check (1: no check).
        progress: Progress display style (see :class:`Progress`).
        timeout: Time budget of each TF worker, seconds.
        tf32: Leave TensorFloat-32 on for TF's float32 GPU kernels (TF's default).

    Returns:
        Rows with keys ``op`` (TF's op name), ``config``, ``dtype``, ``tolerance``, ``pass``
        (all of ours within tolerance) and one entry (see :func:`entry`) per implementation
        that ran: ``ours``, ``ours_gpu`` (our ops placed on the GPU, with ``"gpu"`` in
        ``devices``), ``tf_native``, ``tf_onednn``, ``tf_gpu``.
    """
    pairs = [(config, dtype) for config in configs for dtype in dtypes]
    args_list = [make_args(config, dtype) for config, dtype in pairs]
    cases = [
        {"op": OPS[config.op].tf_name, "args": args, "attrs": config.attrs(), "dtype": dtype,
         "mode": mode, "repeats": repeats}
        for (config, dtype), args in zip(pairs, args_list, strict=True)
    ]  # fmt: skip
    # Load our library before starting the workers, so that a missing build fails fast.
    importlib.import_module("tf_convgrad")
    workers: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
    if with_tf and "cpu" in devices:
        workers["tf_native"] = (False, cases)
        workers["tf_onednn"] = (True, cases)
    if with_tf and "gpu" in devices:
        workers["tf_gpu"] = (False, [dict(c, device="gpu", tf32=tf32) for c in cases])
    ours_keys = ["ours"] + (["ours_gpu"] if "gpu" in devices else [])
    names = {key: IMPLEMENTATIONS[key] for key in ours_keys + list(workers)}
    bar = Progress({names[key]: len(pairs) for key in names}, style=progress)
    oracle_results: dict[str, Any] = {}
    threads = _start_workers(workers, names, bar, oracle_results, timeout)

    ours_results: dict[str, list[dict[str, Any]]] = {key: [] for key in ours_keys}
    references = []
    for k, ((config, _), args) in enumerate(zip(pairs, args_list, strict=True)):
        ref = _run_reference(config, args)
        ref_undilated = None
        if OPS[config.op].depthwise and config.dilations != (1, 1):
            try:  # What TF computes when it ignores the dilations, if the shapes allow it.
                ref_undilated = _run_reference(config, args, dilations=(1, 1))
            except ValueError:
                pass
        references.append((ref, ref_undilated))
        for key in ours_keys:
            device = "gpu" if key == "ours_gpu" else "cpu"
            ours_results[key].append(_run_ours(dict(cases[k], device=device)))
            bar.update(names[key], k + 1)
    for thread in threads:
        thread.join()
    bar.finish()
    for key in workers:
        if isinstance(oracle_results.get(names[key]), Exception):
            print(
                f"crosscheck: warning: {names[key]} failed: {oracle_results[names[key]]}",
                file=sys.stderr,
            )

    rows = []
    for k, (config, dtype) in enumerate(pairs):
        ref, ref_undilated = references[k]
        row = {
            "op": OPS[config.op].tf_name,
            "config": str(config),
            "dtype": dtype,
            "tolerance": TOLERANCES[dtype],
        }
        for key in ours_keys:
            result = entry(ours_results[key][k], ref, dtype)
            if result["status"] == "wrong" and result["err"] is not None:
                if math.isinf(result["err"]):
                    result["message"] = "non-finite values or a wrong shape"
            row[key] = result
        row["pass"] = all(row[key]["status"] == "ok" for key in ours_keys)
        first = ours_results["ours"][k]
        ours_value = first["value"] if first.get("ok") else None
        for key in workers:
            result = oracle_results.get(names[key])
            if isinstance(result, list):
                result = result[k]
            row[key] = entry(result, ref, dtype, ref_undilated, ours_value)
        rows.append(row)
    return rows
