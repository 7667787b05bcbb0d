"""What limits each depthwise layer of the benchmark: memory or the kernel's own instruction rate.

For every float32 depthwise case of `python -m tf_convgrad bench`, times the TF-free core
(tools/cpu_cores_bench.cc, built by `bash tools/profile_cores.sh build`) three ways, each the
fastest call of ROUNDS runs (the minimum, not the median: this VM's neighbours slow single calls
by up to 2x, and the work itself is deterministic):
  full   the layer itself, one thread;
  cache  the same kernel on a slice of the layer that stays in L2 between calls (as many rows as
         keep two images' inputs and output within 800 KiB), one thread, as the time of two
         images minus the time of one: that removes the per-call costs (filter packing,
         scratch) that the whole layer spreads over its batch;
  2thr   the layer itself, two threads.
and prints, per layer, GFLOP/s (2 x MACs of the nominal layer, padding taps included, the same
count for the slice) and:
  cache/full  > 1.3: the kernel runs that much faster once its data is in cache, so memory
              (bandwidth, or the misses one core keeps in flight) limits the full layer;
              <= 1.3: "kernel", its instruction rate limits it (loads, FMAs per output).
  2thr/full   the speed-up from the second core (2.0 = perfect; less: shared memory bandwidth
              or too few tasks).

  .venv/bin/python tools/limits.py [--harness build-profile/cpu_cores_bench] [--rounds 3] [--json]
(about 4 minutes; the layers are the benchmark's own, from tf_convgrad.tools.bench_cases.suite.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

from tf_convgrad.tools import bench_cases

CACHE_BYTES = 800 << 10
LINE = re.compile(r"min ([0-9.]+) ms")


def _slice_rows(case):
    """Input rows of the cache-resident slice: two images' inputs and output within CACHE_BYTES."""
    rows = case["h"]
    while rows > case["k"] + 1:
        sliced = dict(case, n=2, h=rows)
        if bench_cases.cost(sliced)[1] <= CACHE_BYTES:
            break
        rows -= 1
    return rows


def _time(harness, case, n, h, threads, reps, rounds):
    args = [harness, case["op"].lower(), n, h, case["w"], case["c"], case["k"], case["s"],
            case["mo"], case["pad"], reps]  # fmt: skip
    env = dict(os.environ, CORES_BENCH_THREADS=str(threads))
    best = None
    for _ in range(rounds):
        out = subprocess.run(
            [str(a) for a in args], env=env, capture_output=True, text=True, check=True
        ).stdout
        ms = float(LINE.search(out).group(1))
        best = ms if best is None else min(best, ms)
    return best


def measure(harness, rounds, progress=print):
    rows = []
    cases = bench_cases.suite(ops=["DBF", "DBI"], dtypes=["float32"])
    for i, case in enumerate(cases):
        h = _slice_rows(case)
        sliced = dict(case, n=1, h=h)
        flops, slice_flops = bench_cases.cost(case)[0], bench_cases.cost(sliced)[0]
        full = _time(harness, case, case["n"], case["h"], 1, 20, rounds)
        two = _time(harness, case, case["n"], case["h"], 2, 20, rounds)
        # One image's time on the slice, without the per-call costs: two images minus one.
        cache = _time(harness, case, 2, h, 1, 400, rounds) - _time(
            harness, case, 1, h, 1, 400, rounds
        )
        row = dict(
            op=case["op"],
            name=case["name"],
            slice_rows=h,
            slice_bytes=bench_cases.cost(dict(case, n=2, h=h))[1],
            full_gflops=flops / full / 1e6,
            cache_gflops=slice_flops / cache / 1e6 if cache > 0 else float("nan"),
            two_gflops=flops / two / 1e6,
        )
        row["cache_over_full"] = row["cache_gflops"] / row["full_gflops"]
        row["two_over_full"] = row["two_gflops"] / row["full_gflops"]
        row["limit"] = (
            "memory"
            if row["cache_over_full"] > 1.3
            else "kernel"
            if row["cache_over_full"] > 0
            else "unresolved"  # two images timed no slower than one: noise
        )
        rows.append(row)
        progress(f"limits: {i + 1}/{len(cases)} {case['op']} {case['name']}", file=sys.stderr)
    return rows


def format_rows(rows):
    lines = [
        f"{'op':4s} {'layer':36s} {'full':>6s} {'cache':>6s} {'2thr':>6s} "
        f"{'cache/full':>10s} {'2thr/full':>9s}  limit (GFLOP/s; rows of the cache slice)",
    ]
    for r in rows:
        lines.append(
            f"{r['op']:4s} {r['name']:36s} {r['full_gflops']:6.1f} {r['cache_gflops']:6.1f} "
            f"{r['two_gflops']:6.1f} {r['cache_over_full']:10.2f} {r['two_over_full']:9.2f}  "
            f"{r['limit']} ({r['slice_rows']} rows)"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--harness", default="build-profile/cpu_cores_bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not os.path.exists(args.harness):
        print(
            f"limits: no harness at {args.harness}; build it: bash tools/profile_cores.sh build",
            file=sys.stderr,
        )
        return 2
    rows = measure(args.harness, args.rounds)
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
