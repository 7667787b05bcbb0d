"""`python -m tf_convgrad bench`: ours against TensorFlow's own CPU kernels.

Method (see docs/PERF.md for results):
* TensorFlow's kernel choice is fixed per process by TF_ENABLE_ONEDNN_OPTS, so the suite runs in
  two worker processes, oneDNN on and oneDNN off. Each worker times ours and TF's on the very same
  inputs in three modes, interleaved call by call (the order reshuffled every round), after
  warm-up calls: "graph" (the primary figure, column "ratio"), a tf.function holding
  GRAPH_CALLS = 4 independent calls of the op on different out_backprop tensors, timed per call,
  as TF's executor runs the independent gradient ops of a training step; "1-call", a tf.function
  holding one call; and "eager". Reported times are medians; "ours" is the lower of the two
  workers' medians, and TF's best is the lower of its oneDNN and native medians.
* The tool measures the machine itself: an SGEMM (tf.matmul, all threads) for the float32 peak
  FLOP rate and a large streaming multiply for the memory bandwidth. The roofline time of a case
  is max(flops / peak, bytes / bandwidth), bytes being the minimum traffic (read both inputs,
  write the output once); "% roofline" = roofline time / measured time. "ceil" = TF's best time /
  roofline time: the ratio ours would reach at 100% of the roofline, so a target ratio above it
  cannot be met on that case by a kernel that stays within the roofline.
* A 16-bit case also times ours in float32 on the same values, interleaved with the other two
  calls: "per_element" = ours 16-bit / ours float32 (at most 1: 16-bit as fast per element).
  Timed in the same rounds, it does not depend on the machine's state moving between cases.
* Each worker records the CPU time other processes used while a case ran ("fgn", in cores, from
  /proc/stat): timings taken at fgn > 0.3 are not trustworthy on a 2-core machine.

`bench --memory` measures, instead of time, the peak extra resident memory (RSS) of one call of
ours, of TF with oneDNN on and of TF native (Linux with glibc only):
* Three worker processes, one per implementation, each running the cases in turn. Per case it
  builds the inputs, calls the op once (kernel and oneDNN primitive creation) and drops the
  result; then, three times: gc, malloc_trim(0), read VmRSS, reset VmHWM to it (write 5 to
  /proc/self/clear_refs), call the op, read VmHWM, drop the result, gc, read VmRSS again.
  peak = the highest of the three VmHWM - (the lower VmRSS).
  It includes the output tensor (the same size for all three; shown as "out"), so the scratch
  part is peak - out. Memory that an implementation keeps between calls (caches, pools) is not
  in it; ours keeps none.
* RSS must fall when memory is freed, or a call's buffers hide in pages an earlier call left
  resident. So the workers run with MALLOC_MMAP_THRESHOLD_=65536: glibc serves blocks of 64 KiB
  and more that do not fit in free heap space with mmap and unmaps them on free. And
  malloc_trim(0) before each measured call gives the free heap space's pages back, without which
  a 0.5 MiB output sometimes fitted in resident free heap and measured 0. Repeated runs still
  differ by up to ~0.1 MiB (small allocations); the ratio counts peaks under 0.25 MiB as 0.25.
* With oneDNN on, TF's CPU allocator keeps blocks of 256 KiB and more in a BFC pool that never
  shrinks, so after the warm-up call its peak would read ~0; the workers set
  TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1, which sends those blocks to malloc (same kernels).
* --fresh runs a new process per case and implementation (TensorFlow's import each time, 3 to
  10 s); on the --quick cases it gave the same peaks as the batched default within 0.1 MiB.
* The peaks depend on the number of threads (per-thread scratch): compare on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from typing import Any

from .. import _cli
from . import train_bench
from .bench_cases import OP_ORDER, cost, make_calls, progress_bar, run_worker, suite
from .bench_memory import run_memory

# This module is the command (its docstring is the help) and the timing; bench_memory the memory
# mode; bench_cases the cases (the "bench" tier of .problems), their cost and calls.

__all__ = ["add_arguments", "format_table", "run", "timing_row"]


def _foreign_jiffies():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    with open("/proc/self/stat") as f:
        own = sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:15])
    return busy - own


# Calls per tf.function in the "graph" mode: independent ops, as a training step has (a layer's two
# depthwise gradients, the gradients of parallel branches), which TF's executor runs concurrently
# on its inter-op threads, all sharing one intra-op pool.
GRAPH_CALLS = 4
MODES = ("graph", "single", "eager")


def _timed_modes(impl):
    """{mode: no-argument function} for one implementation; graph modes are traced here."""
    import tensorflow as tf

    multi = tf.function(lambda: [impl(i) for i in range(GRAPH_CALLS)])
    single = tf.function(lambda: impl(0))
    return {
        "graph": lambda: [t.shape for t in multi()],
        "single": lambda: single().shape,
        "eager": lambda: impl(0).shape,
    }


def _prepare(tasks: list[tuple[dict[str, Any], float]]):
    """Worker side (:mod:`.worker`): returns the function that times one ``(case, budget)``
    task: every implementation in the three modes, interleaved (per round, each (implementation,
    mode) pair once, in a new random order) for about ``budget`` seconds. "graph" is the time of
    one GRAPH_CALLS-call function divided by GRAPH_CALLS."""
    del tasks
    import numpy as np

    hz = os.sysconf("SC_CLK_TCK")
    rng = np.random.default_rng(0)

    def run_one(task: tuple[dict[str, Any], float]) -> dict[str, Any]:
        case, budget = task
        impls = {}
        for name, impl in make_calls(case, rng, GRAPH_CALLS).items():
            for mode, fn in _timed_modes(impl).items():
                impls[(name, mode)] = fn
        first = {}
        for key, fn in impls.items():  # first call: tracing, kernel creation, primitive caches
            fn()
            t0 = time.perf_counter()
            fn()
            first[key] = time.perf_counter() - t0
            fn()
        est = max(min(first[(n, "eager")] for n, m in impls if m == "eager"), 1e-5)
        per_round = est * (GRAPH_CALLS + 2) * len({n for n, _ in impls})
        calls = int(min(30, max(5, budget / per_round)))
        samples = {key: [] for key in impls}
        j0, w0 = _foreign_jiffies(), time.perf_counter()
        order = list(impls)
        for _ in range(calls):
            random.shuffle(order)
            for key in order:
                t0 = time.perf_counter()
                impls[key]()
                samples[key].append(time.perf_counter() - t0)
        # /proc/stat and our own counters tick separately: clamp the small negative noise at 0.
        fgn = max(0.0, (_foreign_jiffies() - j0) / hz / (time.perf_counter() - w0))
        result = {"ok": True, "calls": calls, "fgn": round(fgn, 2)}
        for (name, mode), times in samples.items():
            per_call = GRAPH_CALLS if mode == "graph" else 1
            suffix = "" if mode == "graph" else f"_{mode}"
            result[f"{name}{suffix}_ms"] = 1e3 * float(np.median(times)) / per_call
        return result

    return run_one


def _isa_level() -> str:
    """The instruction-set level of our CPU cores in this process, and so in the workers, which
    inherit TF_CONVGRAD_ISA (``python -m tf_convgrad info``)."""
    from .. import _loader

    return _loader.build_info()["isa"]


def _measure_machine():
    """Float32 SGEMM rate (GFLOP/s) and streaming bandwidth (GB/s) with all threads."""
    import numpy as np
    import tensorflow as tf

    a = tf.random.normal([2048, 2048])
    tf.matmul(a, a)
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        tf.matmul(a, a).numpy()
        ts.append(time.perf_counter() - t0)
    peak = 2 * 2048**3 / min(ts) / 1e9
    v = tf.ones([64 * 1024 * 1024])  # 256 MiB
    (v * 2.0).numpy()
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        r = v * 2.0
        r = r[:1].numpy()  # forces completion without a full copy
        ts.append(time.perf_counter() - t0)
    bw = 2 * 4 * 64 * 1024 * 1024 / float(np.median(ts)) / 1e9
    return peak, bw


def _run_workers(cases, budget, progress):
    """Runs the suite with oneDNN on, then off, each in a worker process; returns
    {setting: results}."""
    out = {}
    for setting in ("onednn", "native"):
        env = {"TF_ENABLE_ONEDNN_OPTS": "1" if setting == "onednn" else "0",
               "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip

        def report(done, total, label=f"TF {setting}"):
            progress(label, done, total)

        tasks = [(case, budget) for case in cases]
        out[setting] = run_worker(
            "tf_convgrad.tools.bench:_prepare", tasks, env, report, f"bench worker ({setting})"
        )
    return out


TARGET_RATIO = {"DBF": 2.0, "DBI": 2.0, "CBF": 1.0}


def _geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


def _mode_figures(dn, nat, mode):
    """Ours, TF's best and their ratio in a secondary mode ("single" or "eager")."""
    if f"ours_{mode}_ms" not in dn:
        return {}
    ours = min(dn[f"ours_{mode}_ms"], nat[f"ours_{mode}_ms"])
    tf_best = min(dn[f"tf_{mode}_ms"], nat[f"tf_{mode}_ms"])
    return {"ours_ms": ours, "tf_best_ms": tf_best, "ratio": tf_best / ours}


def timing_row(case, dn, nat, peak, bw):
    """One case's report row from the two workers' medians (dn: oneDNN on, nat: native)."""
    flops, nbytes = cost(case)
    # Peak for 16-bit types: same float32 FMA units after conversion; float64 half the lanes.
    p = peak / 2 if case["dtype"] == "float64" else peak
    roof_ms = 1e3 * max(flops / (p * 1e9), nbytes / (bw * 1e9))
    ours = min(dn["ours_ms"], nat["ours_ms"])
    tf_best = min(dn["tf_ms"], nat["tf_ms"])
    return dict(
        case,
        flops=flops,
        bytes=nbytes,
        ours_ms=ours,
        tf_onednn_ms=dn["tf_ms"],
        tf_native_ms=nat["tf_ms"],
        ratio=tf_best / ours,
        ours_gflops=flops / ours / 1e6,
        pct_peak=100 * flops / ours / 1e6 / p,
        pct_roofline=100 * roof_ms / ours,
        roof_ms=roof_ms,
        ceiling=tf_best / roof_ms,
        fgn=max(dn["fgn"], nat["fgn"]),
        **{
            f"{key}_{mode}": value
            for mode in ("single", "eager")
            for key, value in _mode_figures(dn, nat, mode).items()
        },
        **(
            {}
            if "ours_f32_ms" not in dn
            else {"per_element": ours / min(dn["ours_f32_ms"], nat["ours_f32_ms"])}
        ),
    )


def run(args):
    """Entry point of `python -m tf_convgrad bench`."""
    if getattr(args, "train", False):  # Namespaces built by hand may lack it
        return train_bench.run_train(args)
    cases = suite(args.quick, args.op, args.dtype)
    if not cases:
        print("bench: no case matches the filters", file=sys.stderr)
        return 2
    if args.memory:
        if args.plot:
            print(
                "bench: --plot charts the timing ratios; it does not go with --memory",
                file=sys.stderr,
            )
            return 2
        return run_memory(args, cases)
    print(
        f"bench: {len(cases)} cases; measuring the machine, then two worker processes "
        "(TF oneDNN on, TF native), each timing ours and TF's interleaved",
        file=sys.stderr,
    )
    peak, bw = _measure_machine()
    isa = _isa_level()
    print(
        f"bench: measured float32 SGEMM {peak:.0f} GFLOP/s, bandwidth {bw:.1f} GB/s; "
        f"our CPU cores run at instruction-set level {isa}",
        file=sys.stderr,
    )
    runs = _run_workers(cases, args.budget, progress_bar)
    rows = [
        timing_row(case, dn, nat, peak, bw)
        for case, dn, nat in zip(cases, runs["onednn"], runs["native"], strict=True)
    ]
    summary = {}
    for op in OP_ORDER:
        ratios = [r["ratio"] for r in rows if r["op"] == op and r["dtype"] == "float32"]
        if ratios:
            summary[op] = {
                "geomean_ratio_f32": _geomean(ratios),
                "min_ratio_f32": min(ratios),
                "cases_f32": len(ratios),
                # The targets: 2.0 for the depthwise ops, 1.0 for Conv2DBackpropFilter.
                "target_ratio": TARGET_RATIO[op],
                "ceiling_below_target_f32": sum(
                    r["ceiling"] < TARGET_RATIO[op]
                    for r in rows
                    if r["op"] == op and r["dtype"] == "float32"
                ),
            }
            for mode in ("single", "eager"):
                values = [
                    r[f"ratio_{mode}"]
                    for r in rows
                    if r["op"] == op and r["dtype"] == "float32" and f"ratio_{mode}" in r
                ]
                if values:
                    summary[op][f"geomean_ratio_f32_{mode}"] = _geomean(values)
                    summary[op][f"min_ratio_f32_{mode}"] = min(values)
    for op in OP_ORDER:
        for dtype in ("bfloat16", "float16"):
            per = [r["per_element"] for r in rows if r["op"] == op and r["dtype"] == dtype]
            if per:
                summary.setdefault(op, {}).setdefault("per_element", {})[dtype] = {
                    "min": min(per),
                    "max": max(per),
                    "cases": len(per),
                }
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu": _cli.cpu_model(),
            "sgemm_gflops": peak,
            "bandwidth_gbs": bw,
            "cpus": os.cpu_count(),
            "isa": isa,
        },
        "summary": summary,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
    if args.plot:
        plot(report, args.plot)
    return 0


def format_table(report):
    m = report["machine"]
    lines = [
        f"date {report['date']}; {m.get('cpu', 'CPU')}, {m['cpus']} CPUs; measured SGEMM "
        f"{m['sgemm_gflops']:.0f} GFLOP/s, "
        f"bandwidth {m['bandwidth_gbs']:.1f} GB/s; ours at instruction-set level "
        f"{m.get('isa', '?')}",
        "ratio = TF's best (faster of oneDNN and native) / ours; >1 means ours is faster. "
        "fgn = other processes' load (cores) while timing. ceil = TF's best / roofline time, "
        "the ratio ours would reach at 100% of the roofline.",
        "",
        f"{'op':4s} {'layer':38s} {'dtype':8s} {'ours ms':>8s} {'oneDNN':>8s} {'native':>8s} "
        f"{'ratio':>6s} {'1-call':>6s} {'eager':>6s} {'GFLOP/s':>8s} {'%peak':>6s} {'%roof':>6s} "
        f"{'ceil':>6s} {'fgn':>4s}",
    ]
    for r in report["rows"]:
        lines.append(
            f"{r['op']:4s} {r['name']:38s} {r['dtype']:8s} {r['ours_ms']:8.2f} "
            f"{r['tf_onednn_ms']:8.2f} {r['tf_native_ms']:8.2f} {r['ratio']:6.2f} "
            f"{r.get('ratio_single', float('nan')):6.2f} {r.get('ratio_eager', float('nan')):6.2f} "
            f"{r['ours_gflops']:8.1f} {r['pct_peak']:6.1f} {r['pct_roofline']:6.1f} "
            f"{r['ceiling']:6.2f} {r['fgn']:4.1f}"
        )
    lines.append("")
    for op, s in report["summary"].items():
        if "geomean_ratio_f32" in s:
            lines.append(
                f"{op}: float32 geomean ratio {s['geomean_ratio_f32']:.2f} over {s['cases_f32']} "
                f"layers, lowest {s['min_ratio_f32']:.2f}; "
                f"{s['ceiling_below_target_f32']} with a ceiling below the target "
                f"{s['target_ratio']:.1f}"
            )
            others = [
                f"{mode} {s[f'geomean_ratio_f32_{mode}']:.2f} "
                f"(lowest {s[f'min_ratio_f32_{mode}']:.2f})"
                for mode in ("single", "eager")
                if f"geomean_ratio_f32_{mode}" in s
            ]
            if others:
                lines.append(f"{op}: float32 geomean ratio, " + ", ".join(others))
        for dtype, p in s.get("per_element", {}).items():
            lines.append(
                f"{op}: {dtype} per element (ours {dtype} / ours float32, timed interleaved) "
                f"{p['min']:.2f}-{p['max']:.2f} over {p['cases']} layers; <= 1 is as fast"
            )
    return "\n".join(lines)


def plot(report, path):
    """Writes a PNG bar chart of the ratios (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return
    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(rows) + 1.5))
    labels = [f"{r['op']} {r['name']} {r['dtype']}" for r in rows]
    colors = [{"DBF": "tab:blue", "DBI": "tab:orange", "CBF": "tab:green"}[r["op"]] for r in rows]
    ax.barh(range(len(rows)), [r["ratio"] for r in rows], color=colors)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("TF best time / ours (log scale; > 1: ours faster)")
    ax.set_title(f"tf_convgrad vs TensorFlow 2.21 CPU kernels, {report['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"bench: wrote {path}", file=sys.stderr)


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="four layers only")
    parser.add_argument("--op", action="append", choices=sorted(OP_ORDER), help="repeatable")
    parser.add_argument(
        "--dtype",
        action="append",
        type=_cli.dtype,
        metavar="DTYPE",
        help="float32, bfloat16, float16 or float64 (or f32, bf16, f16, f64); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", metavar="PNG", help="write a bar chart of the ratios")
    parser.add_argument(
        "--budget", type=float, default=0.6, help="seconds of timed calls per case and worker"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="instead of timing, measure the peak resident memory of one call (see above)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="with --memory: a new worker process per case and implementation (slow)",
    )
    train_bench.add_train_arguments(parser)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m tf_convgrad.tools.bench")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
