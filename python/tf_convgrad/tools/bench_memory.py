"""``python -m tf_convgrad bench --memory``: the peak resident memory of one call, ours and TF's.

The method is in :mod:`.bench`'s docstring (it is the command's help). Three worker processes
(:mod:`.worker`), one per implementation, or one per case and implementation with ``--fresh``;
the workers' environment is :data:`MEMORY_ENV`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from .. import _cli
from .bench_cases import OP_ORDER, make_calls, output_bytes, progress_bar, run_worker

__all__ = ["MEMORY_ENV", "RESOLUTION", "format_memory_table", "run_memory"]

# The three workers: (label, call, TF_ENABLE_ONEDNN_OPTS).
_MEMORY_WORKERS = (("ours", "ours", "0"), ("onednn", "tf", "1"), ("native", "tf", "0"))
MEMORY_ENV = {
    # glibc serves new blocks >= 64 KiB with mmap and unmaps them on free: RSS falls after a
    # free, so a call's peak is not hidden in heap pages that an earlier call left behind.
    "MALLOC_MMAP_THRESHOLD_": "65536",
    # With oneDNN on, TF's CPU allocator keeps blocks >= 256 KiB in a BFC pool that never
    # shrinks; the warm-up call would leave the measured call's memory pooled (peak ~0).
    "TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1",
}
# Repeated runs differ by up to ~0.1 MiB: the ratio counts smaller peaks as this.
RESOLUTION = 1 << 18


def _peak_reset_problem():
    """None if /proc/self/clear_refs resets VmHWM here, else why not."""
    try:
        block = b"\x01" * (64 << 20)  # raise the peak 64 MiB above the current RSS
        del block
        _reset_peak()
        gap = _status_bytes("VmHWM") - _status_bytes("VmRSS")
    except (OSError, RuntimeError) as e:
        return (
            f"cannot reset the peak RSS (VmHWM) through /proc/self/clear_refs: {e}. The memory "
            "mode needs Linux >= 4.0 with a writable /proc (not gVisor, not a read-only /proc)."
        )
    if gap > 32 << 20:
        return "writing 5 to /proc/self/clear_refs did not reset VmHWM on this kernel"
    return None


def _status_bytes(key):
    """A field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak():
    """Resets this process's VmHWM (peak RSS) to its current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _prepare(tasks: list[tuple[dict[str, Any], str]], repeats: int = 3):
    """Worker side (:mod:`.worker`): returns the function that measures one ``(case, impl)``
    task, the peak extra RSS of one call of ``impl`` (``"ours"`` or ``"tf"``): after a warm-up
    call, the highest of ``repeats`` calls, each measured on its own (the peak reset before it).
    """
    del tasks
    import ctypes
    import gc

    import numpy as np
    import tensorflow as tf

    libc = ctypes.CDLL("libc.so.6")
    gc.collect()
    gc.freeze()  # later collections skip TensorFlow's own objects (0.2 s each otherwise)
    rng = np.random.default_rng(0)

    def run_one(task: tuple[dict[str, Any], str]) -> dict[str, Any]:
        case, impl = task
        call = make_calls(case, rng)[impl]
        try:
            call()  # kernel and primitive creation; also flushes TF's deferred input frees
            peaks = []
            for _ in range(repeats):
                gc.collect()
                libc.malloc_trim(0)  # no resident free heap pages for this call to reuse
                _reset_peak()
                before = _status_bytes("VmRSS")
                result = call()
                top = _status_bytes("VmHWM")
                del result
                gc.collect()
                # Heap pages that earlier calls freed late may be given back during this call;
                # the RSS after it (its result freed) is then the lower, truer baseline.
                peaks.append(top - min(before, _status_bytes("VmRSS")))
            measured = {"ok": True, "peak_bytes": max(peaks), "peak_bytes_runs": peaks}
        except tf.errors.OpError as e:  # the kernel refuses the case
            message = (e.message or "").strip().splitlines()
            measured = {"ok": True, "error": f"{type(e).__name__}: {message[0] if message else ''}"}
        del call
        gc.collect()
        return measured

    return run_one


def _run_memory_workers(cases, fresh, progress, workers=_MEMORY_WORKERS):
    """Runs the memory workers (a process per implementation, or per case and implementation
    when ``fresh``); returns {label: results in case order}."""
    batches = [cases[i : i + 1] for i in range(len(cases))] if fresh else [cases]
    out = {}
    for label, call, onednn in workers:
        env = dict(MEMORY_ENV, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS=onednn)
        name = label if call == "ours" else f"TF {label}"
        results: list[dict[str, Any]] = []
        for batch in batches:
            done_before = len(results)

            def report(done, _total, name=name, done_before=done_before):
                progress(name, done_before + done, len(cases))

            tasks = [(case, call) for case in batch]
            what = f"bench memory worker ({label})"
            results += run_worker(
                "tf_convgrad.tools.bench_memory:_prepare", tasks, env, report, what
            )
        out[label] = results
    return out


def run_memory(args, cases):
    """`bench --memory`: peak extra RSS of one call, ours against TF oneDNN and TF native."""
    problem = _peak_reset_problem()
    if problem:
        print(f"bench --memory: {problem}", file=sys.stderr)
        return 2
    how = "a worker process per case and implementation" if args.fresh else "three worker processes"
    print(
        f"bench --memory: {len(cases)} cases; {how} (ours, TF oneDNN on, TF native), "
        "peak RSS of one call after a warm-up call",
        file=sys.stderr,
    )
    runs = _run_memory_workers(cases, args.fresh, progress_bar)
    rows = []
    for i, case in enumerate(cases):
        row = dict(case, output_bytes=output_bytes(case))
        for label, key in (("ours", "ours"), ("onednn", "tf_onednn"), ("native", "tf_native")):
            res = runs[label][i]
            row[f"{key}_peak_bytes"] = res.get("peak_bytes")
            row[f"{key}_peak_bytes_runs"] = res.get("peak_bytes_runs")
            if "error" in res:
                row[f"{key}_error"] = res["error"]
        tf_peaks = [row[k] for k in ("tf_onednn_peak_bytes", "tf_native_peak_bytes")]
        tf_peaks = [p for p in tf_peaks if p is not None]
        row["tf_best_peak_bytes"] = min(tf_peaks) if tf_peaks else None
        ours, best = row["ours_peak_bytes"], row["tf_best_peak_bytes"]
        both = ours is not None and best is not None
        row["ratio"] = max(ours, RESOLUTION) / max(best, RESOLUTION) if both else None
        row["excess_bytes"] = ours - best if both else None
        rows.append(row)
    summary = {}
    for op in OP_ORDER:
        mine = [r for r in rows if r["op"] == op and r["ratio"] is not None]
        if mine:
            summary[op] = {
                "cases": len(mine),
                "cases_above_tf": sum(r["excess_bytes"] > RESOLUTION for r in mine),
                "max_ratio": max(r["ratio"] for r in mine),
                "max_excess_bytes": max(r["excess_bytes"] for r in mine),
            }
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "mode": "memory",
        "machine": {"cpu": _cli.cpu_model(), "cpus": os.cpu_count()},
        "env": MEMORY_ENV,
        "fresh_processes": bool(args.fresh),
        "resolution_bytes": RESOLUTION,
        "summary": summary,
        "rows": rows,
    }
    print(json.dumps(report, indent=1) if args.json else format_memory_table(report))
    return 0


def format_memory_table(report):
    mib = 1 << 20

    def cell(row, key, width):
        value = row.get(key)
        if value is None:
            return f"{'error':>{width}s}"
        return f"{value / mib:{width}.2f}"

    lines = [
        f"date {report['date']}; {report['machine']['cpus']} CPUs; peak = highest RSS during a "
        "call above the RSS without it, output included (highest of 3 calls after a warm-up); MiB.",
        f"ratio = ours / TF's best (lower of oneDNN and native); <= 1: ours needs no more. "
        f"Peaks under {report['resolution_bytes'] / mib:.2f} MiB count as that in the ratio.",
        "excess = ours - TF's best (MiB); the scratch part of a peak is peak - out.",
        "",
        f"{'op':4s} {'layer':42s} {'dtype':8s} {'out':>7s} {'ours':>8s} {'oneDNN':>8s} "
        f"{'native':>8s} {'ratio':>6s} {'excess':>8s}",
    ]
    errors = []
    for r in report["rows"]:
        ratio = f"{r['ratio']:6.2f}" if r["ratio"] is not None else f"{'-':>6s}"
        excess = (
            f"{r['excess_bytes'] / mib:8.2f}" if r["excess_bytes"] is not None else f"{'-':>8s}"
        )
        lines.append(
            f"{r['op']:4s} {r['name']:42s} {r['dtype']:8s} {r['output_bytes'] / mib:7.2f} "
            f"{cell(r, 'ours_peak_bytes', 8)} {cell(r, 'tf_onednn_peak_bytes', 8)} "
            f"{cell(r, 'tf_native_peak_bytes', 8)} {ratio} {excess}"
        )
        for key, who in (("ours", "ours"), ("tf_onednn", "TF oneDNN"), ("tf_native", "TF native")):
            if f"{key}_error" in r:
                errors.append(f"  {r['op']} {r['name']} {r['dtype']}, {who}: {r[key + '_error']}")
    lines.append("")
    for op, s in report["summary"].items():
        lines.append(
            f"{op}: ours above TF's best (by > {report['resolution_bytes'] / mib:.2f} MiB) on "
            f"{s['cases_above_tf']} of {s['cases']} cases; highest ratio {s['max_ratio']:.2f}, "
            f"largest excess {s['max_excess_bytes'] / mib:.2f} MiB"
        )
    if errors:
        lines += ["", "errors (the kernel refused the case):"] + errors
    return "\n".join(lines)
